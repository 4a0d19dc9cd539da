/* aftersale/aftersale.h -- embedding libaftersale (DESIGN.md §6).
 *
 * A runtime holds orders, cases, the rule packs and one deadline scheduler. It runs on a
 * real clock (a libuv loop you own) or a virtual clock (headless, driven by
 * as_runtime_advance). All calls are for one thread: the loop's. Every call that can be
 * refused returns 0 or a negative AS_E* code and fills the caller-owned `err`; a refused
 * call changes nothing. Money is integer fen, time integer ms since the Unix epoch (UTC). */
#ifndef AFTERSALE_H
#define AFTERSALE_H

#include <stddef.h>
#include <stdint.h>

#include "aftersale/error.h"
#include "aftersale/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct as_runtime as_runtime;
struct uv_loop_s;

/* A side effect the platform must carry out (DESIGN.md §5): `kind` is "refund" (pay
 * `amount_fen` back for `case_id`) or "notify". `key` is stable across re-deliveries of the
 * same instruction. Strings are valid for the duration of the call. */
typedef void (*as_outbox_cb)(void *data, const char *kind, const char *case_id,
                             int64_t amount_fen, const char *key);

typedef struct as_options {
    struct uv_loop_s *loop; /* NULL: virtual clock starting at start_ms */
    int64_t start_ms;
    int auto_pay;           /* 1: a refund instruction is paid at once (scenarios) */
    long lua_instructions;  /* per hook call; 0 for the default (1,000,000) */
    size_t lua_memory;      /* bytes per pack; 0 for the default (32 MiB) */
    as_outbox_cb outbox;    /* may be NULL */
    void *outbox_data;
} as_options;

/* Creates a runtime with no packs loaded. Free with as_runtime_free. NULL on failure. */
AS_EXTERN as_runtime *as_runtime_new(const as_options *opts, as_error *err);
/* Frees the runtime and everything it owns; NULL is a no-op. With a real clock the caller
 * must run its loop once more afterwards so that the timer handle's close completes. */
AS_EXTERN void as_runtime_free(as_runtime *rt);

/* Loads a platform pack (no categories) or a category pack (it serves its categories) from
 * a Lua file, replacing the version in force for new cases. */
AS_EXTERN int as_runtime_load_pack(as_runtime *rt, const char *path, as_error *err);
/* Loads a native plugin (aftersale/plugin.h) named `file` from the plugin directory `dir`,
 * installed like as_runtime_load_pack installs a Lua pack. */
AS_EXTERN int as_runtime_load_native(as_runtime *rt, const char *dir, const char *file,
                                     as_error *err);
/* Loads every bundled pack below `dir` (platform/platform.lua and each <cat>/<cat>.lua). */
AS_EXTERN int as_runtime_load_packs_dir(as_runtime *rt, const char *dir, as_error *err);
/* Loads a new version of `shop`'s merchant rules, in force for cases opened from now on. */
AS_EXTERN int as_runtime_load_merchant(as_runtime *rt, const char *shop, const char *path,
                                       as_error *err);

/* Orders: `json` is the order object of DESIGN.md §1. */
AS_EXTERN int as_order_create_json(as_runtime *rt, const char *json, as_error *err);
/* `event` is "ship", "deliver" or "confirm"; stamps the order with the current time. */
AS_EXTERN int as_order_event(as_runtime *rt, const char *order_id, const char *event,
                             as_error *err);

/* Cases: `principal` is "buyer:ID", "merchant:SHOP", "platform" or "logistics". */
AS_EXTERN int as_case_open_json(as_runtime *rt, const char *principal, const char *json,
                                as_error *err);
/* `payload_json` may be NULL (no payload); `version` is -1 when the caller saw none. */
AS_EXTERN int as_case_act_json(as_runtime *rt, const char *principal, const char *case_id,
                               const char *action, const char *payload_json, int64_t version,
                               as_error *err);

/* The case as JSON text, or NULL when unknown. Free with as_free. */
AS_EXTERN char *as_case_get_json(as_runtime *rt, const char *case_id);
/* A shop's metrics (RULES.md §5) as JSON text. Free with as_free. */
AS_EXTERN char *as_shop_metrics_json(as_runtime *rt, const char *shop);

AS_EXTERN int64_t as_runtime_now(const as_runtime *rt);
/* Virtual clock: fires every deadline due up to `to_ms` in due order, each at its own
 * instant, and moves time to `to_ms`. A no-op on a real clock. */
AS_EXTERN void as_runtime_advance(as_runtime *rt, int64_t to_ms);

AS_EXTERN void as_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
