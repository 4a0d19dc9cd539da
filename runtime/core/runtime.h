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
#include "versions.h"
#include "../lua/lua_engine.h"

typedef struct as_shop {
    const char *id;         /* interned */
    as_pack *merchant;      /* version in force for new cases (one reference), or NULL */
    as_versions versions;   /* every merchant pack version the shop loaded (versions.h) */
    as_shop_events events;
    as_lua_group *lua_group; /* one reference: the memory budget of all its merchant packs */
} as_shop;

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
    uv_timer_t *timer; /* real clock only: the one timer that drives the scheduler */
    as_strmap orders, cases, shops, strings;
    as_pack *platform;
    as_pack **installed; /* every pack version installed, owned: their shells */
    as_versions bundled; /* the platform's and categories' pack versions (versions.h) */
    int ninstalled;
    as_category_pack *cats;
    int ncats;
    as_lua_limits limits;
    size_t lua_shop_memory; /* each shop's lua_group cap */
    int auto_pay;
    as_outbox_fn outbox;
    as_stats stats;
    int depth; /* nesting of applied commands (auto-pay runs inside a command) */
    struct as_durable *dur; /* the store pipeline (durable.c), NULL when nothing is durable */
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
/* Writes an outbox entry in the turn's transaction; delivered once it is durable. */
void as__durable_outbox(as_runtime *rt, const char *key, const char *kind, const char *case_id,
                        int64_t amount);
/* 1 when the store said, at the restore, that `url` acknowledged the outbox entry `key` (an
 * entry handed back for the other URLs); 0 otherwise. */
int as__outbox_acked(const as_runtime *rt, const char *key, const char *url);
void as__durable_free(as_runtime *rt);
struct as_store;
/* Attaches `store` (its close() is called when the runtime is freed) and restores from it;
 * as_runtime_attach_store with a store object, for engines other than SQLite. */
int as__durable_attach(as_runtime *rt, struct as_store *store, as_error *err);

/* Journals a pack version row (versions.h) in the turn's transaction; `shop` "" for the
 * platform's own packs. A no-op without a store. */
void as__durable_pack(as_runtime *rt, const char *shop, const as_version *v, int current);

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
int as__merchant_limits(as_runtime *rt, const char *shop, as_lua_limits *lim, as_error *err);

/* as_runtime_submit for a request already parsed (borrowed). */
int as__submit_json(as_runtime *rt, json_t *req, as_done_cb cb, void *ud);

void as__fire_due(as_runtime *rt);
/* Real clock: points the one timer at the earliest deadline. */
void as__rearm(as_runtime *rt);
/* Takes a pack's shell into the runtime's keeping (pack.h); on failure the pack is freed. */
int as__runtime_keep(as_runtime *rt, as_pack *p, as_error *err);

const char *as__intern(as_runtime *rt, const char *s);
as_shop *as__shop_get(as_runtime *rt, const char *id, int create);
as_pack *as__category_pack(as_runtime *rt, const char *category);

/* Orders and cases (engine.c) */
int as__order_create(as_runtime *rt, json_t *order, as_error *err);
int as__case_open(as_runtime *rt, as_cmd *cmd, as_error *err);
int as__case_act(as_runtime *rt, as_cmd *cmd, as_error *err);
as_case *as__case_get(as_runtime *rt, const char *id);
as_order *as__order_get(as_runtime *rt, const char *id);
/* Fires every deadline due at or before `to_ms`, each at its own instant, then moves the
 * virtual clock to `to_ms`. */
void as__advance(as_runtime *rt, int64_t to_ms);

/* JSON codec (codec.c) */
int as__cmd_parse_open(as_cmd *cmd, json_t *obj);
int as__cmd_parse_act(as_cmd *cmd, const char *action, json_t *payload);
json_t *as__case_json(const as_case *c);
json_t *as__order_json(const as_order *o);
json_t *as__metrics_json(const as_metrics *m);

#endif
