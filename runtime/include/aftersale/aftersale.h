/* aftersale/aftersale.h -- embedding libaftersale (docs/design.md#interfaces).
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

/* ---- Memory ----------------------------------------------------------------------------- */

typedef void *(*as_malloc_fn)(size_t size);
typedef void *(*as_realloc_fn)(void *ptr, size_t size);
typedef void *(*as_calloc_fn)(size_t count, size_t size);
typedef void (*as_free_fn)(void *ptr);

/* Replaces the allocator of the whole library (like uv_replace_allocator): every block the
 * runtime, its Lua states and its stores allocate, and every string it hands out (free them
 * with as_free). The functions are also installed into libuv (uv_replace_allocator) and
 * jansson (json_set_alloc_funcs, which takes no realloc), so call this first, before the
 * process makes any libuv loop or jansson value, and before the first as_runtime_new:
 * from then on it is refused with AS_EINVALID_STATE, since a block freed by another
 * allocator than the one that made it is undefined behaviour. SQLite keeps its own
 * allocator. The functions must behave like the C library's (realloc(NULL, n) allocates,
 * free(NULL) does nothing) and may fail by returning NULL at any time: each call that
 * allocates then returns AS_ENOMEM with nothing changed. Returns 0, AS_EBAD_REQUEST when a
 * function is NULL, or AS_EINVALID_STATE. Not thread-safe: call it on the main thread. */
AS_EXTERN int as_replace_allocator(as_malloc_fn malloc_fn, as_realloc_fn realloc_fn,
                                   as_calloc_fn calloc_fn, as_free_fn free_fn);

/* A side effect the platform must carry out (docs/design.md#storage-and-durability): `kind`
 * is "refund" (pay `amount_fen` back for `case_id`) or "notify". `key` is stable across re-deliveries of the
 * same instruction. Strings are valid for the duration of the call. */
typedef void (*as_outbox_cb)(void *data, const char *kind, const char *case_id,
                             int64_t amount_fen, const char *key);

typedef struct as_options {
    struct uv_loop_s *loop; /* NULL: virtual clock starting at start_ms */
    int64_t start_ms;
    int auto_pay;           /* 1: a refund instruction is paid at once (scenarios) */
    long lua_instructions;  /* per hook call; 0 for the default (1,000,000) */
    size_t lua_memory;      /* bytes per pack; 0 for the default (32 MiB) */
    size_t lua_shop_memory; /* bytes for all live versions of one shop's merchant packs
                             * together; 0 for the default (64 MiB) */
    as_outbox_cb outbox;    /* may be NULL */
    void *outbox_data;
    int64_t idempotency_ms; /* a durable runtime remembers an idempotency key's answer this
                             * long, then forgets it (memory and file); 0 for the default */
} as_options;

#define AS_IDEMPOTENCY_DEFAULT_MS (24 * 3600 * 1000LL) /* 24 h */

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
/* Called with a read's outcome: code 0 and the JSON text, or an AS_E* code and its sentence
 * (valid during the call). */
typedef void (*as_read_cb)(void *ud, int code, const char *text);
/* The case as JSON text, handed to `cb` once everything it shows is durable: at once when
 * nothing it shows waits for a commit (or the runtime has no store), else after the commit.
 * AS_ENOT_FOUND for an unknown case; AS_EIO once the store has failed and the case shows a
 * change that may not be on disk. Returns 0 or that code (cb is called either way). */
AS_EXTERN int as_case_read(as_runtime *rt, const char *case_id, as_read_cb cb, void *ud);
/* NULL, or the sentence of the store failure after which the runtime refuses writes (a
 * restart restores what is on disk). Valid until the runtime is freed. */
AS_EXTERN const char *as_runtime_store_failure(const as_runtime *rt);
/* Loads a new version of `shop`'s merchant rules, in force for cases opened from now on. */
AS_EXTERN int as_runtime_load_merchant(as_runtime *rt, const char *shop, const char *path,
                                       as_error *err);

/* Orders: `json` is the order object of docs/design.md#domain-model. */
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

/* The case as JSON text, or NULL when unknown. Free with as_free. This is what memory holds
 * now: on a durable runtime it may show a change whose commit is still running (and that a
 * crash would lose); as_case_read shows only what is durable. */
AS_EXTERN char *as_case_get_json(as_runtime *rt, const char *case_id);
/* A shop's metrics (docs/rulebook.md#metrics) as JSON text. Free with as_free. */
AS_EXTERN char *as_shop_metrics_json(as_runtime *rt, const char *shop);

/* ---- Durable runtimes (docs/design.md#storage-and-durability) ---------------------------- */

/* Called once a submitted command is answered: `code` 0 (applied and durable) or the
 * refusal's AS_E* code, `message` its sentence (valid during the call). */
typedef void (*as_done_cb)(void *ud, int code, const char *message);

/* Makes the runtime durable on the SQLite file `db_path` (created when missing) and restores
 * what the file holds: orders, cases, histories, pinned merchant pack versions, pending
 * deadlines (those already due fire at once, in due order), undelivered outbox entries (they
 * are delivered again) and idempotency keys. Needs a real clock (as_options.loop), the
 * bundled packs already loaded, and no command run yet. A file that is not aftersale's, of a
 * newer schema, or damaged is refused with AS_EIO. From then on every change is written in
 * one transaction per loop turn, off the loop thread. */
AS_EXTERN int as_runtime_attach_store(as_runtime *rt, const char *db_path, as_error *err);
/* Runs one request of docs/pipe.md (a JSON object with "op") and calls `done` once its
 * outcome is durable -- at once when the runtime has no store. Returns the outcome's code
 * (0 or AS_E*) for callers that need not wait. A request with a "key" already seen is not
 * applied again: `done` gets the first outcome. */
AS_EXTERN int as_runtime_submit(as_runtime *rt, const char *request_json, as_done_cb done,
                                void *ud);
/* Called with a read's outcome: code 0 and the JSON text, or an AS_E* code and its sentence
 * (valid during the call). */
typedef void (*as_read_cb)(void *ud, int code, const char *text);
/* The case as JSON text, handed to `cb` once everything it shows is durable: at once when
 * nothing it shows waits for a commit (or the runtime has no store), else after the commit.
 * AS_ENOT_FOUND for an unknown case; AS_EIO once the store has failed and the case shows a
 * change that may not be on disk. Returns 0 or that code (cb is called either way). */
AS_EXTERN int as_case_read(as_runtime *rt, const char *case_id, as_read_cb cb, void *ud);
/* NULL, or the sentence of the store failure after which the runtime refuses writes (a
 * restart restores what is on disk). Valid until the runtime is freed. */
AS_EXTERN const char *as_runtime_store_failure(const as_runtime *rt);
/* Loads a new version of `shop`'s merchant rules from Lua source text; on a durable runtime
 * the source is stored with its version so that cases pinning it survive a restart. */
AS_EXTERN int as_runtime_load_merchant_source(as_runtime *rt, const char *shop,
                                              const char *source, as_error *err);
/* 1 when nothing submitted is waiting for the disk. */
AS_EXTERN int as_runtime_idle(const as_runtime *rt);

AS_EXTERN int64_t as_runtime_now(const as_runtime *rt);
/* Virtual clock: fires every deadline due up to `to_ms` in due order, each at its own
 * instant, and moves time to `to_ms`. A no-op on a real clock. */
AS_EXTERN void as_runtime_advance(as_runtime *rt, int64_t to_ms);

/* Frees a string the library handed out (as_case_get_json, ...), with the allocator in force
 * (as_replace_allocator). NULL is a no-op. */
AS_EXTERN void as_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
