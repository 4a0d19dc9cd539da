/* runtime.h -- the runtime's state and its internal entry points (libaftersale's core).
 *
 * The runtime is the in-memory truth: orders, cases, shops, rule registry, one deadline
 * scheduler and one clock. Commands run to completion one at a time on the loop thread;
 * each either commits whole or is refused with nothing changed. */
#ifndef AS_RUNTIME_H
#define AS_RUNTIME_H

#include <jansson.h>
#include <uv.h>

#include "aftersale/aftersale.h"
#include "clock.h"
#include "command.h"
#include "domain.h"
#include "metrics.h"
#include "pack.h"
#include "sched.h"
#include "strmap.h"
#include "turn.h"
#include "versions.h"
#include "worklist.h"

typedef struct as_shop {
    const char *id;         /* interned */
    as_pack *merchant;      /* version in force for new cases (one reference), or NULL */
    as_versions versions;   /* every merchant pack version the shop loaded (versions.h) */
    as_shop_events events;
    as_shop_cases cases;     /* its cases in worklist order (worklist.h) */
    as_pack_group *lua_group; /* one reference: the memory budget of all its merchant packs */
    /* Its figures, kept between asks (shops.c): computed again only once an event was added
     * or the window has moved past one, so that asking for one shop's metrics recomputes
     * only the shops that changed since, not every shop. */
    as_metrics fig;
    int fig_stale;                        /* on rt->fig_stale */
    struct as_shop *fig_next;             /* rt->fig_stale's link */
    as_sched_node fig_due;                /* when its window changes next (rt->fig_due) */
    struct as_shop *peer_next, *peer_prev; /* the shops of fig.main_category (rt->peers) */
} as_shop;

/* The shops whose figures have one main category: a flag is judged among them. */
typedef struct as_peer_group {
    const char *category; /* interned */
    as_shop *first;
} as_peer_group;

typedef struct as_category_pack {
    const char *category; /* interned */
    as_pack *pack;        /* one reference */
} as_category_pack;

/* Counters for benchmarks and, later, /metrics. */
typedef struct as_stats {
    uint64_t transitions, commands, refused, deadlines_fired, hook_calls;
    uint64_t by_type_state[AS_TYPE_COUNT][AS_STATE_COUNT]; /* transitions into each state */
    uint64_t commits, commit_ns_sum, commit_ns_max;        /* group commits and their time */
    uint64_t rule_failures[AS_LAYER_COUNT];
    uint64_t merchant_dropped;
    uint64_t pack_load_failures; /* stored versions that failed to load (versions.h) */
} as_stats;

typedef struct as_outbox_fn {
    as_outbox_cb cb;
    void *data;
} as_outbox_fn;

struct as_runtime {
    as_clock clock;
    as_sched sched;
    uv_loop_t *loop;   /* the loop of its I/O and its step (as_options.loop), or NULL headless */
    uv_timer_t *timer; /* real clock only: the one timer that drives the scheduler */
    as_turn turn;      /* the loop turn's step (turn.h); empty without a loop */
    as_strmap orders, cases, shops, strings;
    as_pack *platform;
    as_pack **installed; /* every pack version installed, owned: their shells */
    as_versions bundled; /* the platform's and categories' pack versions (versions.h) */
    int ninstalled;
    as_category_pack *cats;
    int ncats;
    as_pack_loaders loaders; /* the engines (lib/wiring.c) */
    as_pack_limits limits;
    size_t lua_shop_memory; /* each shop's lua_group cap */
    int64_t idempotency_ms; /* how long an idempotency key is remembered (durable.c) */
    int auto_pay;
    as_outbox_fn outbox;
    as_stats stats;
    int depth; /* nesting of applied commands (auto-pay runs inside a command) */
    struct as_durable *dur; /* the store pipeline (durable.c), NULL when nothing is durable */
    as_shop *fig_stale;     /* shops whose figures must be computed again (shops.c) */
    as_sched fig_due;       /* shops by when their window changes next */
    as_peer_group *peers;   /* owned; by main category */
    int npeers;
};

/* Durability (durable.c). Marks an order or case changed in this turn; the turn's end
 * journals it. A no-op without a store. */
void as__durable_touch_case(as_runtime *rt, as_case *c);
void as__durable_touch_order(as_runtime *rt, as_order *o);
static inline void as__touch_case(as_runtime *rt, as_case *c)
{
    if (rt->dur && !c->dirty) as__durable_touch_case(rt, c);
}
static inline void as__touch_order(as_runtime *rt, as_order *o)
{
    if (rt->dur && !o->dirty) as__durable_touch_order(rt, o);
}
/* Reads wait for what they show to be durable (docs/api.md "Reads"). A read notes each case
 * it shows (need starts at AS_READ_NOW), then as__read_wait: 0, answer now; 1, `cb` is
 * called once it is durable (code 0, or AS_EIO and the reason when its batch failed); or
 * AS_EIO (the store failed earlier: it never will be) / AS_ENOMEM in `err`, cb not called. */
enum { AS_READ_NOW, AS_READ_IN_FLIGHT, AS_READ_TURN };
void as__read_note(const as_runtime *rt, const as_case *c, int *need);
void as__read_note_order(const as_runtime *rt, const as_order *o, int *need);
int as__read_wait(as_runtime *rt, int need, as_done_cb cb, void *ud, as_error *err);

/* Reserves what journaling one change needs, before the change is made, so that nothing can
 * fail once it is (issue 11 #4: a command is answered durable only with its rows in the
 * batch): room for `bytes` more record bytes in the turn's batch (as__journal_*_size/bound),
 * a dirty slot for a case and one for an order, the slot of one answer, and the batch the
 * turn's end hands over. 0 or AS_ENOMEM; callers skip measuring `bytes` without a store. */
int as__durable_reserve(as_runtime *rt, size_t bytes);
/* Writes an outbox entry in the turn's transaction; delivered once it is durable. Called
 * before the change that instructs it is made: AS_ENOMEM leaves the batch as it was. */
int as__durable_outbox(as_runtime *rt, const char *key, const char *kind, const char *case_id,
                       int64_t amount);
/* 1 when the store said, at the restore, that `url` acknowledged the outbox entry `key` (an
 * entry handed back for the other URLs); 0 otherwise. */
int as__outbox_acked(const as_runtime *rt, const char *key, const char *url);
void as__durable_free(as_runtime *rt);
/* The end of the turn's step: the turn's changes go to the writer as one batch. A no-op
 * without a store. */
void as__durable_hand_over(as_runtime *rt);
struct as_store;
/* Attaches `store` (its close() is called when the runtime is freed) and restores from it;
 * as_runtime_attach_store with a store object, for engines other than SQLite. */
int as__durable_attach(as_runtime *rt, struct as_store *store, as_error *err);
/* A row the restore could not take, by its table and key (store.h) and why; 0 goes on. */
typedef int (*as_restore_refused_fn)(void *ud, const char *table, const char *key,
                                     const char *why);
/* Restores `store`'s orders, cases, histories and pack versions into `rt` (new, without a
 * store) as a snapshot, for the tools that read a file (`aftersale db`): the store stays the
 * caller's and is never written, no outbox entry is delivered, no idempotency key kept, no
 * deadline fires (each case's is scheduled on rt's clock as stored). `refused` NULL: the
 * first row that cannot be restored stops it (err names the file, the row and
 * `aftersale db check`); else it hears of every such row and the restore goes on. */
int as__runtime_restore(as_runtime *rt, struct as_store *store, as_restore_refused_fn refused,
                        void *ud, as_error *err);

/* Journals a pack version row (versions.h) in the turn's transaction; `shop` "" for the
 * platform's own packs. A no-op without a store. Writes in the room reserved for it with
 * as__durable_reserve(as__durable_pack_size(...)); unreserved (the bundled packs' rows at
 * attach) a failure fails the batch. */
void as__durable_pack(as_runtime *rt, const char *shop, const as_version *v, int current);
size_t as__durable_pack_size(const char *shop, const as_version *v);
/* Journals that `v`'s source is pruned (versions.c); its row and identity stay. 0 or
 * AS_ENOMEM (nothing journaled). */
int as__durable_pack_prune(as_runtime *rt, const char *shop, const as_version *v);

/* Loads merchant rules from source text and puts them in force for `shop`'s new cases
 * (versions.c: AS_ECONFLICT for another source under a used name@version); on a durable
 * runtime the source is journaled with its version. `chunk` names it in messages. */
int as__merchant_install(as_runtime *rt, const char *shop, const char *src, size_t len,
                         const char *chunk, as_error *err);

/* A merchant upload from outside (the pipe, HTTP, the C API): the shop id and the source
 * checked against the limits (limits.h), then installed as above. */
int as__merchant_upload(as_runtime *rt, const char *shop, const char *src, size_t len,
                        as_error *err);
/* rt->limits with `shop`'s memory group (made on first use); AS_ENOMEM. */
int as__merchant_limits(as_runtime *rt, const char *shop, as_pack_limits *lim, as_error *err);

/* A command as the request layer hands it over: runs it against rt, 0 or a refusal in err. */
typedef int (*as_run_fn)(as_runtime *rt, void *arg, as_error *err);
/* Runs `run` (now) as one command under the idempotency `key` (NULL: none) and calls `cb`
 * (may be NULL) once its outcome is durable -- at once without a store. A key seen before is
 * not run again: cb gets the first outcome. Everything the answer and the key's record need
 * is reserved before `run` changes anything. Returns the outcome's code. */
int as__durable_run(as_runtime *rt, const char *key, as_run_fn run, void *arg, as_done_cb cb,
                    void *ud);
/* Journals that `url` (NULL: every URL) acknowledged the outbox entry `key`. 0 or AS_ENOMEM. */
int as__outbox_ack(as_runtime *rt, const char *key, const char *url, as_error *err);
/* NULL, or the sentence of the store failure after which writes are refused. */
const char *as__store_failure(const as_runtime *rt);
/* 1 when nothing submitted is waiting for the disk. */
int as__runtime_idle(const as_runtime *rt);
/* Why a store cannot be attached now (no loop, one attached, commands run): 0 or
 * AS_EBAD_REQUEST. A refused attach touches nothing, not even the file. */
int as__durable_attach_refused(const as_runtime *rt, as_error *err);

/* The runtime without its wiring: `loaders` make its packs (copied). as_runtime_new is this
 * with the library's engines (lib/embed.c); as__runtime_free is as_runtime_free. */
as_runtime *as__runtime_new(const as_options *opts, const as_pack_loaders *loaders, as_error *err);
void as__runtime_free(as_runtime *rt);
/* Installs a platform or category pack (`p` taken over either way) under its version's
 * identity: `src` its source text (NULL for a native plugin), `sha` the SHA-256 of what it
 * was loaded from. */
int as__install_version(as_runtime *rt, as_pack *p, const char *src, size_t len,
                        const char *sha, as_error *err);

void as__fire_due(as_runtime *rt);
/* Real clock: points the one timer at the earliest deadline. A virtual clock on a loop has no
 * timer: a deadline already due wakes the next step instead. */
void as__rearm(as_runtime *rt);
/* Takes a pack's shell into the runtime's keeping (pack.h); on failure the pack is freed. */
int as__runtime_keep(as_runtime *rt, as_pack *p, as_error *err);

const char *as__intern(as_runtime *rt, const char *s);
as_shop *as__shop_get(as_runtime *rt, const char *id, int create);
as_pack *as__category_pack(as_runtime *rt, const char *category);

/* Per shop (shops.c): fn over the cases of `shop` (NULL: every shop, merged) that are open
 * (closed 0) or ended, in worklist order, until it returns non-zero; 0 or AS_ENOMEM. */
int as__worklist_each(as_runtime *rt, const char *shop, int closed,
                      int (*fn)(void *ud, const as_case *c), void *ud);
size_t as__open_cases(as_runtime *rt);
size_t as__failed_merchant_packs(as_runtime *rt);
/* The shop's metrics now, flagged among its peers (an unknown shop: zeros). 0 or AS_ENOMEM. */
int as__shop_metrics(as_runtime *rt, const char *shop, as_metrics *out);
/* Records a metrics event of `s` (metrics.h) in the room as__events_reserve made, and marks
 * the shop's figures to be computed again. */
void as__shop_event(as_runtime *rt, as_shop *s, as_event_kind k, int64_t t, const as_order *o,
                    int64_t val);
void as__shop_metrics_free(as_runtime *rt);

/* Orders and cases (orders.c, cases.c, deadlines.c, registry.c; engine.h lists the files) */
/* `event` "ship", "deliver" or "confirm" on the order, at the current time. */
int as__order_event(as_runtime *rt, const char *order_id, const char *event, as_error *err);
int as__order_create(as_runtime *rt, json_t *order, as_error *err);
int as__case_open(as_runtime *rt, as_cmd *cmd, as_error *err);
int as__case_act(as_runtime *rt, as_cmd *cmd, as_error *err);
as_case *as__case_get(as_runtime *rt, const char *id);
as_order *as__order_get(as_runtime *rt, const char *id);
/* Virtual clock: fires every deadline due at or before `to_ms`, each at its own instant,
 * calling `fired` (may be NULL) with `ud` after each one applied, then moves the clock to
 * `to_ms`. A no-op on a real clock. */
void as__advance(as_runtime *rt, int64_t to_ms, as_fired_cb fired, void *ud);

#endif
