/* domain.h -- orders and cases in memory (docs/design.md#limits).
 *
 * Layout matters here: a million open cases must fit in a few hundred bytes each, so an
 * order carries its items and id in one allocation, a case its items and id in one, and
 * repeated strings (shops, buyers, SKUs, categories) are interned once per runtime. */
#ifndef AS_DOMAIN_H
#define AS_DOMAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "sched.h"

#define AS_UNSET INT64_MIN /* an instant or amount that has not happened / was not given */

struct as_pack;
struct as_shop;

typedef struct as_item {
    const char *sku;      /* interned */
    const char *category; /* interned */
    const char *serial;   /* interned, or NULL */
    int64_t price;        /* fen per unit */
    int32_t qty;
    int32_t attempts; /* opens + revisions on this line (docs/rulebook.md#eligibility stage 1 #5) */
    bool live, custom_made, no_reason_excluded;
} as_item;

typedef struct as_order {
    const char *id; /* points into this allocation */
    const char *shop, *buyer; /* interned */
    struct as_shop *shop_ref; /* the runtime's, for the shop's rules and metrics */
    struct as_case *cases, *last_case; /* the order's cases, oldest first (next_in_order) */
    int64_t shipping_fee, paid_at, shipped_at, delivered_at, confirmed_at;
    uint32_t ncases;
    int16_t buyer_credit; /* -1 when unknown */
    bool freight_insurance;
    uint8_t dirty; /* changed in this loop turn, not yet journaled */
    uint16_t nitems;
    as_item items[]; /* followed by the id's bytes */
} as_order;

typedef struct as_case_item {
    uint16_t line; /* index into order->items */
    int32_t qty;
} as_case_item;

/* Case flags. */
enum {
    AS_CF_HELD = 1 << 0,          /* rejected while the merchant holds the returned goods */
    AS_CF_INSPECT = 1 << 1,       /* the inspection hook routes this return via inspecting */
    AS_CF_RULED_BUYER = 1 << 2,   /* platform ruled for the buyer */
    AS_CF_ESCALATED = 1 << 3,
    AS_CF_RESPONDED = 1 << 4,     /* the merchant has acted */
    AS_CF_AUTO_AGREED = 1 << 5,   /* agreed by a merchant_response timeout */
    AS_CF_FEE_ADDED = 1 << 6,     /* the shipping fee went into this refund */
};

/* Everything a command may change. A command stages a copy, runs the hooks against it, and
 * commits it only when nothing refused: a refused command changes nothing. */
typedef struct as_case_vals {
    int64_t refund_amount;    /* fen */
    int64_t requested_amount; /* fen, AS_UNSET when not given */
    int64_t return_shipping;  /* fen the buyer paid to ship back, 0 until ship_return */
    int64_t offer_amount;     /* fen, the merchant's pending offer */
    char **evidence;          /* owned block: NULL-terminated array, strings inside */
    int32_t bad_permille;     /* -1 when not given */
    uint32_t version;
    uint16_t flags;
    uint8_t state, reason;
    int8_t remedy;   /* as_remedy */
    int8_t priority; /* 0 when no layer answered */
} as_case_vals;

/* Where an entry's refund amount came from (docs/design.md#provenance). */
typedef enum {
    AS_RS_DEFAULT,   /* the host's: what was paid for the case, the fee where it goes back */
    AS_RS_REQUESTED, /* a partial refund's requested amount */
    AS_RS_OFFER,     /* the merchant's offer the buyer accepted */
    AS_RS_RULE,      /* a refund_amount hook's answer (the entry's rule_layer says whose) */
    AS_RS_COUNT
} as_refund_source;

/* One entry of a case's history with its provenance (docs/design.md#provenance), in 40 bytes:
 * every open case holds one, and what the history shows that the case already knows (what
 * was paid, the fee, the return shipping) is a flag here, not a copy. */
typedef struct as_hist {
    int64_t at_ms;
    int64_t refund; /* fen, with AS_HF_REFUND: the refund as the entry left it */
    char *note;     /* owned, or NULL */
    char *why;      /* owned, or NULL: the deciding hook's own words; on the entry of a
                     * failed hook (AS_HF_FAILED), the file:line it raised at */
    uint8_t action, role, from, to;
    uint8_t flags;     /* AS_HF_* */
    uint8_t rule;      /* as__hist_rule: the hook whose answer decided the entry and its layer
                        * (for a dropped answer, the hook and layer dropped) */
    uint8_t refund_by; /* with AS_HF_REFUND, as__hist_refund_by: where the amount came from */
    uint8_t deadline;  /* the deadline kind that fired, or AS_NONE_U8 */
} as_hist;

enum {
    AS_HF_DROPPED = 1,      /* the note records a dropped rule answer or a failed hook */
    AS_HF_FAILED = 2,       /* with DROPPED: the hook failed (threw, ran out of budget) */
    AS_HF_PARTY = 4,        /* the actor is the order's buyer or shop, as `role` says: an entry
                             * keeps no id of its own, since checks 4 made sure the two are equal */
    AS_HF_REFUND = 8,       /* the entry shows the refund (`refund`, `refund_by`) */
    AS_HF_FEE = 16,         /* with REFUND: the order's shipping fee is part of it */
    AS_HF_RETURN_SHIP = 32, /* with REFUND: the case's return shipping is known (shown as a part) */
    AS_HF_ALL = 63,
};

/* `rule`: hook in the low 4 bits (0xF none), layer in bits 4-5 (3 none), bits 6-7 set, so
 * that no hook and no layer is AS_NONE_U8. Hooks and layers are AS_NONE_U8 when none. */
static inline uint8_t as__hist_rule(int hook, int layer)
{
    return (uint8_t)(0xC0 | (hook == AS_NONE_U8 ? 0xF : hook) | (layer == AS_NONE_U8 ? 3 : layer) << 4);
}
static inline int as__hist_hook(uint8_t rule)
{
    return (rule & 0xF) == 0xF ? AS_NONE_U8 : rule & 0xF;
}
static inline int as__hist_layer(uint8_t rule)
{
    return (rule >> 4 & 3) == 3 ? AS_NONE_U8 : rule >> 4 & 3;
}
/* `refund_by`: as_refund_source in the low 2 bits, the layer of an AS_RS_RULE in bits 2-3
 * (3 none), the high bits set. */
static inline uint8_t as__hist_refund_by(int source, int layer)
{
    return (uint8_t)(0xF0 | source | (layer == AS_NONE_U8 ? 3 : layer) << 2);
}
_Static_assert(AS_RS_COUNT <= 4, "a refund source is 2 bits of refund_by");
static inline int as__hist_refund_source(uint8_t by)
{
    return by & 3;
}
static inline int as__hist_refund_layer(uint8_t by)
{
    return (by >> 2 & 3) == 3 ? AS_NONE_U8 : by >> 2 & 3;
}

typedef struct as_case {
    as_sched_node deadline; /* first: the scheduler hands back this pointer */
    as_order *order;
    struct as_case *next_in_order; /* the order's next case (an intrusive list: no array) */
    struct as_pack *rules[3]; /* pinned at open: platform, category, merchant (or NULL) */
    as_case_vals v;
    int64_t opened_at, ended_at, repair_since;
    as_hist *hist; /* owned */
    uint32_t nhist, caphist;
    int32_t repair_days;
    uint32_t saved_hist; /* history entries already journaled */
    const char *category; /* interned */
    const char *id;       /* points into this allocation */
    uint8_t type;
    uint8_t nitems;
    uint8_t dirty; /* changed in this loop turn, not yet journaled */
    uint8_t deadline_layer; /* the layer whose deadlines answer set the pending deadline's
                             * duration, or AS_NONE_U8 for the host's default */
    uint8_t refund_source;  /* as_refund_source of v.refund_amount */
    uint8_t refund_layer;   /* with AS_RS_RULE: the layer whose refund_amount stood */
    uint32_t seq;  /* the low bits of the batch that journaled its last change (durable.c) */
    uint32_t wl_pos; /* its slot in its shop's worklist (worklist.h) */
    uint32_t cmd_head; /* its first command staged in this turn (journal.h), 0: none */
    as_case_item items[]; /* followed by the id's bytes */
} as_case;

static inline as_case *as__case_of_node(as_sched_node *n)
{
    return (as_case *)n;
}

/* Appends `c` to its order's list of cases. */
static inline void as__order_add_case(as_order *o, as_case *c)
{
    c->next_in_order = NULL;
    if (o->last_case) o->last_case->next_in_order = c;
    else o->cases = c;
    o->last_case = c;
    o->ncases++;
}

/* Σ price × qty over the case's items: "paid for the case" (docs/rulebook.md conventions). */
int64_t as__case_paid(const as_case *c);
/* The order's shipping fee when it goes back with this case's refund now (docs/rulebook.md#amounts:
 * the order has not shipped and, with this case, no unit of it is left unsettled; never for a
 * partial refund), else 0. */
int64_t as__case_fee(const as_case *c);
/* The evidence count of a staged vals. */
int as__vals_evidence_count(const as_case_vals *v);
/* Copies `n` strings into one owned block; NULL on OOM. An empty list gives NULL too when
 * n == 0 (no evidence), so check n before treating NULL as failure. */
char **as__evidence_copy(const char *const *strs, int n);

#endif
