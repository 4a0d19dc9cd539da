/* fields.h -- the domain's field vocabulary, written once: the keys of the Lua views, the
 * field ids of the native host API (aftersale/plugin.h), the keys of the case and order JSON,
 * and the members the journal stores. The four consumers iterate or look up these tables
 * instead of spelling the fields themselves, so a field is added in one row (and, when the
 * journal keeps it, one of the stored lists at the end). What is not field vocabulary stays
 * with its consumer: a case's pinned rules, deadline and history in the case JSON, a record's
 * strings and pins in journal.c.
 *
 * A view row is X(id, key, kind, flags, getter):
 *   id      an AS_F_* of plugin.h (its numbers are the plugin ABI: the schema refers to them and
 *           never renumbers), or an internal AS__F_* for what the host API has no field for;
 *   key     the name as Lua and JSON see it;
 *   kind    how the value reads (as_field_kind, without the AS_FK_ prefix);
 *   flags   which consumers see the row beyond the native API, as letters: L the Lua view,
 *           J the JSON object, C a case's items in the case JSON, E the Lua order view's
 *           `cases` entries (AS_FF_*), NONE for the native API only;
 *   getter  an expression over the view's context: `o` (order), `c` and `v` (case and its
 *           values), `it` and `q` (item and its quantity). An INT that is AS_UNSET and a STR
 *           that is NULL read as absent.
 * Rows are in the order of the view's JSON object. */
#ifndef AS_FIELDS_H
#define AS_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "aftersale/plugin.h"
#include "domain.h"

typedef enum { AS_FV_ORDER, AS_FV_CASE, AS_FV_ITEM, AS_FV_COUNT } as_field_view;

typedef enum {
    AS_FK_INT,  /* fen, ms UTC or a count */
    AS_FK_BOOL, /* 0 or 1 (the native API reads it as a number) */
    AS_FK_STR,
    AS_FK_ITEMS, /* a list of item views (as__field_item), its length in .i */
    AS_FK_STRS,  /* a list of strings (.strs), its length in .i */
    AS_FK_CASES, /* the order's other cases (as__field_next_case), their count in .i */
} as_field_kind;

enum {
    AS_FF_LUA = 1 << 0,       /* a key of the Lua view */
    AS_FF_JSON = 1 << 1,      /* a key of the view's JSON object (of an order's lines) */
    AS_FF_CASE_ITEM = 1 << 2, /* a key of a case's items in the case JSON */
    AS_FF_EARLIER = 1 << 3,   /* a key of the entries of the Lua order view's `cases` */
};

/* Fields the host API has none for: lists (reached by as_host_api.count/at instead) and the
 * JSON-only line attempts. They follow plugin.h's last field; when plugin.h appends one, name
 * the new last field here. */
#define AS__F_PUBLIC_LAST AS_F_EVIDENCE_COUNT
enum {
    AS__F_ITEMS = AS__F_PUBLIC_LAST + 1,
    AS__F_EVIDENCE,
    AS__F_CASES,
    AS__F_ATTEMPTS,
    AS__F_COUNT
};

#define AS_ORDER_FIELDS(X)                                                                         \
    X(AS_F_ID, "id", STR, LJ, o->id)                                                               \
    X(AS_F_SHOP, "shop", STR, LJ, o->shop)                                                         \
    X(AS_F_BUYER, "buyer", STR, LJ, o->buyer)                                                      \
    X(AS_F_SHIPPING_FEE, "shipping_fee", INT, LJ, o->shipping_fee)                                 \
    X(AS_F_FREIGHT_INSURANCE, "freight_insurance", BOOL, LJ, o->freight_insurance)                 \
    X(AS__F_ITEMS, "items", ITEMS, LJ, o->nitems)                                                  \
    X(AS_F_PAID_AT, "paid_at", INT, LJ, o->paid_at)                                                \
    X(AS_F_SHIPPED_AT, "shipped_at", INT, LJ, o->shipped_at)                                       \
    X(AS_F_DELIVERED_AT, "delivered_at", INT, LJ, o->delivered_at)                                 \
    X(AS_F_CONFIRMED_AT, "confirmed_at", INT, LJ, o->confirmed_at)                                 \
    X(AS_F_BUYER_CREDIT, "buyer_credit", INT, LJ,                                                  \
      o->buyer_credit < 0 ? AS_UNSET : o->buyer_credit)                                            \
    X(AS__F_CASES, "cases", CASES, L, as__field_cases(o, c))

/* The case's values are `v`, the staged ones during a hook call. */
#define AS_CASE_FIELDS(X)                                                                          \
    X(AS_F_ID, "id", STR, LJE, c->id)                                                              \
    X(AS_F_ORDER, "order", STR, LJ, c->order->id)                                                  \
    X(AS_F_TYPE, "type", STR, LJE, as__type_name(c->type))                                         \
    X(AS_F_REASON, "reason", STR, LJE, as__reason_name(v->reason))                                 \
    X(AS_F_CATEGORY, "category", STR, LJ, c->category)                                             \
    X(AS__F_ITEMS, "items", ITEMS, LJE, c->nitems)                                                 \
    X(AS_F_STATE, "state", STR, LJE, as__state_name(v->state))                                     \
    X(AS_F_VERSION, "version", INT, LJ, v->version)                                                \
    X(AS_F_REFUND_AMOUNT, "refund_amount", INT, LJ, v->refund_amount)                              \
    X(AS_F_REQUESTED_AMOUNT, "requested_amount", INT, LJ, v->requested_amount)                     \
    X(AS_F_BAD_PERMILLE, "bad_permille", INT, LJ,                                                  \
      v->bad_permille < 0 ? AS_UNSET : v->bad_permille)                                            \
    X(AS_F_REMEDY, "remedy", STR, LJ,                                                              \
      v->remedy == AS_REMEDY_NONE ? NULL : as__remedy_name(v->remedy))                             \
    X(AS_F_PRIORITY, "priority", INT, LJ, v->priority == 0 ? AS_UNSET : v->priority)               \
    X(AS__F_EVIDENCE, "evidence", STRS, LJ, v->evidence)                                           \
    X(AS_F_OPENED_AT, "opened_at", INT, LJE, c->opened_at)                                         \
    X(AS_F_PAID, "paid", INT, L, as__case_paid(c))                                                 \
    X(AS_F_SHIPPING_FEE, "shipping_fee", INT, L, as__case_fee(c))                                  \
    X(AS_F_RETURN_SHIPPING, "return_shipping", INT, L, v->return_shipping)                         \
    X(AS_F_NEEDS_INSPECTION, "needs_inspection", BOOL, L, (v->flags & AS_CF_INSPECT) != 0)         \
    X(AS_F_ENDED_AT, "ended_at", INT, E, c->ended_at)                                              \
    X(AS_F_REPAIR_DAYS, "repair_days", INT, E, c->repair_days)                                     \
    X(AS_F_EVIDENCE_COUNT, "evidence_count", INT, NONE, as__vals_evidence_count(v))

/* An order's line, or a case's item with its line's fields (`q` the case's quantity). */
#define AS_ITEM_FIELDS(X)                                                                          \
    X(AS_F_SKU, "sku", STR, LJC, it->sku)                                                          \
    X(AS_F_CATEGORY, "category", STR, LJ, it->category)                                            \
    X(AS_F_QTY, "qty", INT, LJC, q)                                                                \
    X(AS_F_PRICE, "price", INT, LJ, it->price)                                                     \
    X(AS_F_LIVE, "live", BOOL, LJ, it->live)                                                       \
    X(AS_F_CUSTOM_MADE, "custom_made", BOOL, LJ, it->custom_made)                                  \
    X(AS_F_NO_REASON_EXCLUDED, "no_reason_excluded", BOOL, LJ, it->no_reason_excluded)             \
    X(AS__F_ATTEMPTS, "attempts", INT, J, it->attempts)                                            \
    X(AS_F_SERIAL, "serial", STR, LJ, it->serial)

/* The stored half: the fixed-width members of the journal's records (journal.c), in record
 * order, as X(bits, member, bound) where a nonzero bound is the first stored value that does
 * not read back (an enum's count, a bool's 2). The journal's writer and reader both iterate
 * these lists; the strings, lists and pins between them are written around them. The layout
 * is the store's (store.h): a row moves only with a schema version. These are lists of their
 * own rather than a flag on the view rows because the record's order is not the JSON's and a
 * record holds members no view shows (offer_amount, flags, repair_since), as views show
 * derived values (a case's paid and shipping_fee) no record holds. */
#define AS_STORED_ORDER(X)                                                                         \
    X(64, shipping_fee, 0)                                                                         \
    X(64, paid_at, 0)                                                                              \
    X(64, shipped_at, 0)                                                                           \
    X(64, delivered_at, 0)                                                                         \
    X(64, confirmed_at, 0)                                                                         \
    X(16, buyer_credit, 0)                                                                         \
    X(8, freight_insurance, 2)
#define AS_STORED_ITEM(X) X(64, price, 0) X(32, qty, 0) X(32, attempts, 0)
/* after AS_STORED_ITEM, one byte: bit i is the i-th row */
#define AS_STORED_ITEM_BITS(X) X(live) X(custom_made) X(no_reason_excluded)
/* of as_case_vals, after the case's pins */
#define AS_STORED_CASE_VALS(X)                                                                     \
    X(64, refund_amount, 0)                                                                        \
    X(64, requested_amount, 0)                                                                     \
    X(64, return_shipping, 0)                                                                      \
    X(64, offer_amount, 0)                                                                         \
    X(32, bad_permille, 0)                                                                         \
    X(32, version, 0)                                                                              \
    X(16, flags, 0)                                                                                \
    X(8, state, AS_STATE_COUNT)                                                                    \
    X(8, reason, AS_REASON_COUNT)                                                                  \
    X(8, remedy, 0)                                                                                \
    X(8, priority, 0)
/* of as_case, after the evidence */
#define AS_STORED_CASE_TIMES(X)                                                                    \
    X(64, opened_at, 0)                                                                            \
    X(64, ended_at, 0)                                                                             \
    X(64, repair_since, 0)                                                                         \
    X(32, repair_days, 0)

/* A view's context. An order view's `c` is the case of the call (left out of its `cases`),
 * or NULL; a case view's `v` its values (staged ones in a call). */
typedef struct as_field_ctx {
    const as_order *order;
    const as_case *c;
    const as_case_vals *v;
    const as_item *item; /* an item view's line */
    int32_t qty;         /* an item view's quantity: the line's, or the case's of it */
} as_field_ctx;

/* Only the members of its kind are set. */
typedef struct as_field_value {
    as_field_kind kind;
    int64_t i;               /* INT, BOOL; a list's length */
    const char *s;           /* STR */
    const char *const *strs; /* STRS */
} as_field_value;

typedef struct as_field_row {
    int id;
    const char *key;
    uint8_t len; /* of key */
    uint8_t kind;
    uint8_t flags;
} as_field_row;

/* The view's rows in JSON order; *n is set. Static storage. */
const as_field_row *as__field_rows(as_field_view view, int *n);
/* The row of `key` (`len` bytes, which may hold a NUL) in the view, or NULL. */
const as_field_row *as__field_find(as_field_view view, const char *key, size_t len);
/* The context of element i of an order's lines or a case's items (the ITEMS of `view`);
 * 0, or -1 when i is out of range. */
int as__field_item(as_field_view view, const as_field_ctx *x, int i, as_field_ctx *out);
/* The order's cases but `self`: their count, and the one after `prev` (the first for NULL),
 * or NULL after the last. */
int as__field_cases(const as_order *o, const as_case *self);
const as_case *as__field_next_case(const as_order *o, const as_case *self, const as_case *prev);

/* ------------------------------------------------------------------------------------------
 * The getter
 * ---------------------------------------------------------------------------------------- */

/* Each sets the kind and the member it reads. */
static inline int as__field_put_INT(as_field_value *out, int64_t x)
{
    out->kind = AS_FK_INT;
    out->i = x;
    return x != AS_UNSET;
}

static inline int as__field_put_BOOL(as_field_value *out, int x)
{
    out->kind = AS_FK_BOOL;
    out->i = x != 0;
    return 1;
}

static inline int as__field_put_STR(as_field_value *out, const char *s)
{
    out->kind = AS_FK_STR;
    out->s = s;
    return s != NULL;
}

static inline int as__field_put_ITEMS(as_field_value *out, int n)
{
    out->kind = AS_FK_ITEMS;
    out->i = n;
    return 1;
}

static inline int as__field_put_STRS(as_field_value *out, char **strs)
{
    int n = 0;
    while (strs && strs[n])
        n++;
    out->kind = AS_FK_STRS;
    out->i = n;
    out->strs = (const char *const *)strs;
    return 1;
}

static inline int as__field_put_CASES(as_field_value *out, int n)
{
    out->kind = AS_FK_CASES;
    out->i = n;
    return 1;
}

#define AS__FIELD_GET(id, key, kind, flags, expr)                                                  \
    case id:                                                                                       \
        return as__field_put_##kind(out, expr);

/* Reads `field` of the view: 1 with *out set, or 0 when the field is absent or not one of the
 * view (any int is safe: plugins pass what they like). Strings are valid while the context's
 * objects are. Inline: the native and Lua views read through it on every access, and a call
 * across objects was a fifth of a native hook's time. */
static inline int as__field_get(as_field_view view, int field, const as_field_ctx *x,
                                as_field_value *out)
{
    switch (view) {
    case AS_FV_ORDER: {
        const as_order *o = x->order;
        const as_case *c = x->c;
        switch (field) {
            AS_ORDER_FIELDS(AS__FIELD_GET)
        default:
            return 0;
        }
    }
    case AS_FV_CASE: {
        const as_case *c = x->c;
        const as_case_vals *v = x->v;
        switch (field) {
            AS_CASE_FIELDS(AS__FIELD_GET)
        default:
            return 0;
        }
    }
    case AS_FV_ITEM: {
        const as_item *it = x->item;
        int32_t q = x->qty;
        switch (field) {
            AS_ITEM_FIELDS(AS__FIELD_GET)
        default:
            return 0;
        }
    }
    default:
        return 0;
    }
}
#undef AS__FIELD_GET

#endif
