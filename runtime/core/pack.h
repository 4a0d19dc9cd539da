/* pack.h -- one loaded version of a rule pack, whatever engine runs it (STYLE.md 9).
 *
 * The rule layers hold `as_pack` pointers and call hooks through the engine's small vtable;
 * they never ask whether a pack is Lua or native. A pack is reference-counted: the registry
 * holds one reference to the version in force, and every case that pinned it at open holds
 * one, so an old version is freed when its last case ends. */
#ifndef AS_PACK_H
#define AS_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "aftersale/error.h"
#include "domain.h"

#define AS_HOOK_MAP(XX)                                                                    \
    XX(ORDER_CHECK, order_check)                                                           \
    XX(ELIGIBILITY, eligibility)                                                           \
    XX(REFUND_AMOUNT, refund_amount)                                                       \
    XX(DEADLINES, deadlines)                                                               \
    XX(PRIORITY, priority)                                                                 \
    XX(AUTO_DECIDE, auto_decide)                                                           \
    XX(ON_INSPECTION, on_inspection)                                                       \
    XX(INSPECTION, inspection)                                                             \
    XX(INSTANT_REFUND, instant_refund)

#define AS__HOOK_ENUM(up, low) AS_HOOK_##up,
typedef enum { AS_HOOK_MAP(AS__HOOK_ENUM) AS_HOOK_COUNT } as_hook;
#undef AS__HOOK_ENUM

const char *as__hook_name(int h);

typedef enum { AS_LAYER_PLATFORM, AS_LAYER_CATEGORY, AS_LAYER_MERCHANT, AS_LAYER_COUNT } as_layer;
const char *as__layer_name(int l);

/* What a hook sees: read-only views of these, valid for the duration of the call. */
typedef struct as_hook_args {
    const as_order *order;
    const as_case *c;        /* the case (for eligibility: the request), or NULL */
    const as_case_vals *v;   /* the case's staged values */
    int64_t now_ms;
    int inspect_fault;       /* on_inspection: 1 "fault", 0 "no_fault" */
} as_hook_args;

typedef enum {
    AS_ANS_NIL,      /* no opinion */
    AS_ANS_TRUE,     /* eligibility allowed, inspection / instant_refund yes */
    AS_ANS_FALSE,    /* inspection / instant_refund no */
    AS_ANS_INT,      /* refund_amount, priority */
    AS_ANS_REFUSAL,  /* {error=code, message=...}: code in `code`, sentence in `msg` */
    AS_ANS_DEADLINES,
    AS_ANS_AGREE,
    AS_ANS_REJECT,   /* reason in `msg` */
    AS_ANS_REMEDY,
} as_answer_kind;

/* A text answer (a refusal's message, a reject reason): docs/design.md#limits text, 1-256 bytes. */
#define AS_ANSWER_TEXT_MAX 256
/* "file:line" of the Lua code a failing hook raised at: Lua's short source (at most 60 bytes)
 * and a line number. */
#define AS_WHERE_MAX 80

typedef struct as_answer {
    as_answer_kind kind;
    int code;        /* refusal code */
    int64_t i;       /* int answers, remedy */
    uint32_t dl_set; /* bit k set: dl[k] given */
    int64_t dl[AS_DL_COUNT];
    char msg[AS_ANSWER_TEXT_MAX + 1];
    char why[AS_ANSWER_TEXT_MAX + 1]; /* auto_decide: the hook's reason for it, or "" */
    char where[AS_WHERE_MAX];         /* a failed call: the file:line it raised at, or "" */
} as_answer;

typedef struct as_pack as_pack;

typedef struct as_engine {
    const char *kind; /* "lua" or "native" */
    /* Runs hook `h`. Returns 0 with `ans` filled (its `why` "" unless the answer gave one), or
     * AS_ERULE_ERROR with the reason in `err` (a throw, a wrong type, a spent budget) and in
     * ans->where the file:line it raised at when the engine knows one ("" otherwise). Never
     * longjmps out. */
    int (*call)(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans, as_error *err);
    /* Bytes the pack's engine holds now. */
    size_t (*memory)(const as_pack *p);
    void (*free_impl)(as_pack *p);
} as_engine;

struct as_pack {
    const as_engine *engine;
    void *impl;          /* engine-owned */
    char *name;          /* owned */
    char *version;       /* owned */
    char **categories;   /* owned, NULL-terminated; empty for platform and merchant packs */
    const char *owner;   /* a merchant pack's shop (interned by the runtime), else NULL */
    uint32_t hooks;      /* bit h set when the pack defines hook h */
    int refs;
    int kept;            /* the shell belongs to a runtime: unref at zero frees only impl */
    uint64_t failures;   /* hook calls that failed (thrown, budget) */
    uint64_t dropped;    /* merchant answers dropped for leaving the bounds of
                            docs/rulebook.md#merchant-bounds */
};

static inline int as__pack_has(const as_pack *p, as_hook h)
{
    return p != NULL && (p->hooks >> h) & 1u;
}

/* Allocates a pack shell owning copies of name and version; NULL on OOM. */
as_pack *as__pack_new(const as_engine *engine, const char *name, const char *version);
/* A version that failed to load (versions.h): every hook fails with `why`. NULL on OOM. */
as_pack *as__pack_new_failed(const char *name, const char *version, const char *why);
/* Takes a copy of the categories list; returns 0 or AS_ENOMEM. */
int as__pack_set_categories(as_pack *p, const char *const *cats, int n);
void as__pack_ref(as_pack *p);
/* Drops a reference; at zero frees the engine state, and the shell too unless `kept`.
 * NULL is a no-op. */
void as__pack_unref(as_pack *p);
/* Frees a kept shell (and its engine state if still there). */
void as__pack_free_shell(as_pack *p);
/* True while the pack's engine state is loaded (some case or the registry holds it). */
static inline int as__pack_loaded(const as_pack *p)
{
    return p->impl != NULL;
}
int as__pack_serves(const as_pack *p, const char *category);

/* ---- The engines that make packs (docs/design.md#hooks-and-layers) -----------------------
 * Core never names an engine: the library's wiring (lib/wiring.c) hands the runtime these
 * loaders, Lua's and the native plugins', and core calls them through this table. */

/* A memory budget that several pack states share (a Lua engine's): all live versions of one shop's merchant
 * packs, so versions pinned by old cases cannot grow the process without bound.
 * Reference-counted: its owner (the shop) holds one reference, every state charged to it
 * holds one. */
typedef struct as_pack_group as_pack_group;

typedef struct as_pack_limits {
    long instructions;   /* per hook call; default 1,000,000 */
    size_t memory;       /* bytes per pack state; default 32 MiB */
    long cpu_ms;         /* thread CPU time per hook call, the backstop; default 20 ms */
    as_pack_group *group; /* borrowed: the states' shared budget, or NULL for none */
    long fail_alloc;     /* tests: the n-th allocation of the state and all after it fail
                          * (0: none) */
} as_pack_limits;

/* as_options.lua_shop_memory's default: all live versions of one shop's merchant packs. */
#define AS_PACK_SHOP_MEMORY_DEFAULT ((size_t)64 << 20)

typedef struct as_pack_loaders {
    /* A pack from source text (Lua): AS_EBAD_REQUEST (not a valid pack), AS_ERULE_ERROR (the
     * chunk threw or ran out of budget) or AS_ENOMEM; *out holds one reference. */
    int (*source)(const char *src, size_t len, const char *chunk, const as_pack_limits *lim,
                  as_pack **out, as_error *err);
    /* A native plugin `file` from directory `dir` (plugin.h). */
    int (*native)(const char *dir, const char *file, as_pack **out, as_error *err);
    /* A shared memory budget of `cap` bytes with one reference; NULL on OOM. */
    as_pack_group *(*group_new)(size_t cap);
    void (*group_unref)(as_pack_group *g); /* NULL is a no-op */
} as_pack_loaders;

#endif
