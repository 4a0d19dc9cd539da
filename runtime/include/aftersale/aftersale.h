/* aftersale/aftersale.h -- embedding libaftersale: the whole API of the runtime.
 *
 * This header is the specification (docs/design.md#interfaces is its tour). A runtime holds
 * orders, cases, the rule packs and one deadline scheduler. It runs on a real clock (a libuv
 * loop you own) or a virtual clock (time moves only when told: as_runtime_advance), either
 * headless or on a loop that serves its I/O (as_options.virtual_clock).
 *
 * Rules that hold for every call unless its comment says otherwise:
 * - Threads: every call on a runtime is for one thread, the thread of its loop (or, on a
 *   virtual clock, the one thread that uses it). Nothing here is thread-safe.
 * - Codes: a call that can be refused returns 0 or a negative AS_E* code (aftersale/error.h)
 *   and fills the caller-owned `err` (which may be NULL) with a sentence. A refused call
 *   changes nothing: not memory, not the store. AS_ENOMEM is possible wherever a call
 *   allocates; the runtime keeps serving after it.
 * - Strings handed in are borrowed for the duration of the call, never kept. Strings handed
 *   out to a callback are valid during the callback only; strings returned are the caller's
 *   and freed with as_free.
 * - Callbacks (as_done_cb, as_read_cb, as_outbox_cb) run on the runtime's thread, either
 *   during the call that caused them or later from the loop. A callback may call any function
 *   of this header on the same runtime except as_runtime_free.
 * - Units: money is integer fen (`_fen`), time integer ms since the Unix epoch, UTC (`_ms`).
 * - Identifiers (orders, cases, shops, buyers, keys) are 1-64 bytes of A-Z a-z 0-9 . _ : -
 *   (docs/design.md#limits); an id outside that is refused where it enters. */
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

/* ---- Version ----------------------------------------------------------------------------- */

/* The library's version as "MAJOR.MINOR.PATCH" (static storage), and as one number
 * MAJOR * 10000 + MINOR * 100 + PATCH, so that a program can compare the library it runs
 * with the AS_VERSION_* it was compiled against. */
AS_EXTERN const char *as_version_string(void);
AS_EXTERN int as_version_number(void);

/* ---- Memory ------------------------------------------------------------------------------ */

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
 * function is NULL, or AS_EINVALID_STATE. Call it on the main thread. */
AS_EXTERN int as_replace_allocator(as_malloc_fn malloc_fn, as_realloc_fn realloc_fn,
                                   as_calloc_fn calloc_fn, as_free_fn free_fn);
/* The allocator in force, for programs built on the library that want their blocks counted
 * and failed with the runtime's (the server and the CLI do). NULL when it fails. */
AS_EXTERN void *as_malloc(size_t size);
AS_EXTERN void *as_calloc(size_t count, size_t size);
AS_EXTERN void *as_realloc(void *ptr, size_t size);
/* A copy of `s` (NULL for NULL or when out of memory). Free with as_free. */
AS_EXTERN char *as_strdup(const char *s);
/* Frees what the library handed out (as_case_get_json, ...) or as_malloc made, with the
 * allocator in force. NULL is a no-op. */
AS_EXTERN void as_free(void *p);

/* ---- Values at the edge ------------------------------------------------------------------ */

/* 1 when the `len` bytes at `s` are an identifier (docs/design.md#limits), else 0. */
AS_EXTERN int as_id_valid(const char *s, size_t len);

/* Who asks: "buyer:ID", "merchant:SHOP", "platform" or "logistics". */
typedef enum as_party {
    AS_PARTY_NONE = 0, /* not a principal */
    AS_PARTY_BUYER = 1,
    AS_PARTY_MERCHANT = 2,
    AS_PARTY_PLATFORM = 3,
    AS_PARTY_LOGISTICS = 4,
} as_party;
/* The party of `principal`, and in *id (when id is not NULL) the buyer or shop id it names
 * (a pointer into `principal`, NULL for the platform and logistics). AS_PARTY_NONE when the
 * text names no principal (the id part must be an identifier). */
AS_EXTERN as_party as_principal_parse(const char *principal, const char **id);

/* Durations "90s", "15m", "48h", "7d", "7d12h" (docs/design.md#scenario-files: the units d, h,
 * m, s, each at most once, in that order) into *ms: 0, or AS_EBAD_REQUEST for anything else
 * (nothing written). */
AS_EXTERN int as_duration_parse(const char *text, int64_t *ms);
/* An RFC 3339 UTC instant "2026-03-01T00:00:00Z" (".123" milliseconds allowed) into *ms: 0
 * or AS_EBAD_REQUEST. */
AS_EXTERN int as_instant_parse(const char *text, int64_t *ms);
/* `ms` as an RFC 3339 UTC instant into `buf` (at least 32 bytes; always terminated). */
AS_EXTERN void as_instant_format(int64_t ms, char *buf, size_t cap);

/* ---- Runtimes ---------------------------------------------------------------------------- */

/* A side effect the platform must carry out (docs/design.md#storage-and-durability): `kind`
 * is "refund" (pay `amount_fen` back for `case_id`) or "notify". `key` is stable across
 * re-deliveries of the same instruction. Strings are valid for the duration of the call. On
 * a durable runtime it is called once the instruction is on disk, and again after every
 * restart until it is acknowledged (AS_OP_OUTBOX_ACK). */
typedef void (*as_outbox_cb)(void *data, const char *kind, const char *case_id,
                             int64_t amount_fen, const char *key);

/* Options of as_runtime_new. Zero is every field's default, so `as_options o = {0}` is a
 * virtual clock at 0 with the defaults. `reserved` must stay zero: fields added later take
 * its room, so a program compiled against this header keeps working with a later library
 * (as_runtime_new refuses non-zero reserved words with AS_EBAD_REQUEST), and the struct keeps
 * its size (lib/embed.c asserts it). */
typedef struct as_options {
    /* The loop the runtime does its I/O on (the store's threads wake it, as_runtime_defer
     * queues for its step), which must outlive the runtime; NULL: headless, no I/O, and a
     * virtual clock. With a loop the clock is the loop's real time, unless virtual_clock. */
    struct uv_loop_s *loop;
    int64_t start_ms;       /* a virtual clock's first instant (ms UTC); unused on a real one */
    int auto_pay;           /* 1: a refund instruction is paid at once (scenarios) */
    long lua_instructions;  /* per hook call; 0 for the default (1,000,000) */
    size_t lua_memory;      /* bytes per pack; 0 for the default (32 MiB) */
    size_t lua_shop_memory; /* bytes for all live versions of one shop's merchant packs
                             * together; 0 for the default (64 MiB) */
    as_outbox_cb outbox;    /* may be NULL */
    void *outbox_data;
    int64_t idempotency_ms; /* a durable runtime remembers an idempotency key's answer this
                             * long, then forgets it (memory and file); 0 for the default */
    /* 1 with a `loop`: I/O on the loop, but a virtual clock starting at start_ms that moves
     * only with as_runtime_advance or as_runtime_clock_advance -- no libuv timer fires a
     * deadline, and a deadline fires only when a move passes its instant (or in the next step
     * when it is already due, a zero duration or one restored from a store). Such a runtime
     * can be durable (as_runtime_attach_store); the dev server `aftersale serve --clock
     * virtual` is one. 0: the loop's real clock. Without a loop the clock is virtual anyway.
     * Any other value: AS_EBAD_REQUEST. */
    int virtual_clock;
    uint64_t reserved[7];
} as_options;

#define AS_IDEMPOTENCY_DEFAULT_MS (24 * 3600 * 1000LL) /* 24 h */

/* Creates a runtime with no packs loaded, owned by the caller (free with as_runtime_free).
 * `opts` may be NULL (all defaults). NULL on failure with err filled: AS_ENOMEM, or
 * AS_EBAD_REQUEST for a non-zero reserved word or a virtual_clock other than 0 and 1. The
 * loop, when given, must outlive it. */
AS_EXTERN as_runtime *as_runtime_new(const as_options *opts, as_error *err);
/* Frees the runtime and everything it owns; NULL is a no-op. A durable runtime first waits
 * for the batch its writer holds (nothing acknowledged is lost; what was not acknowledged
 * may or may not be on disk). With a real clock the caller must run its loop once more
 * afterwards (uv_run UV_RUN_NOWAIT) so that its handles' close callbacks complete. Functions
 * queued with as_runtime_defer run first. Not from a callback of this runtime. */
AS_EXTERN void as_runtime_free(as_runtime *rt);

/* Loads a platform pack (no categories) or a category pack (it serves its categories) from
 * the Lua file `path`, in force for cases opened from now on. 0, AS_EIO (unreadable),
 * AS_EBAD_REQUEST (not a valid pack), AS_ERULE_ERROR (its chunk threw or ran out of budget),
 * AS_ECONFLICT (another source under a name@version this runtime has), AS_ENOMEM. */
AS_EXTERN int as_runtime_load_pack(as_runtime *rt, const char *path, as_error *err);
/* Loads the native plugin (aftersale/plugin.h) `file` from the directory `dir`, installed
 * as as_runtime_load_pack installs a Lua pack. Codes as there; AS_EBAD_REQUEST also for a
 * wrong ABI version, a short struct or a missing symbol. */
AS_EXTERN int as_runtime_load_native(as_runtime *rt, const char *dir, const char *file,
                                     as_error *err);
/* Loads every bundled pack below `dir` (platform/platform.lua and each <cat>/<cat>.lua), as
 * as_runtime_load_pack; stops at the first refusal (packs loaded before it stay). */
AS_EXTERN int as_runtime_load_packs_dir(as_runtime *rt, const char *dir, as_error *err);
/* Loads a new version of `shop`'s merchant rules from the Lua file `path` (or from the
 * source text `source`), in force for that shop's cases opened from now on; cases opened
 * before keep the version they pinned. On a durable runtime the source is journaled with its
 * version. 0, AS_EIO (unreadable file), AS_EBAD_REQUEST (shop id or source outside the
 * limits, not a valid pack, a pack naming categories, too many versions), AS_ERULE_ERROR,
 * AS_ECONFLICT (the name@version is taken by another source), AS_ENOMEM. */
AS_EXTERN int as_runtime_load_merchant(as_runtime *rt, const char *shop, const char *path,
                                       as_error *err);
AS_EXTERN int as_runtime_load_merchant_source(as_runtime *rt, const char *shop,
                                              const char *source, as_error *err);

/* Makes the runtime durable on the SQLite file `db_path` (created when missing) and restores
 * what the file holds: orders, cases, histories, pinned merchant pack versions, pending
 * deadlines (those already due fire at once, in due order), undelivered outbox entries (they
 * are delivered again) and idempotency keys. Needs a loop (as_options.loop; its clock real or
 * virtual), the bundled packs already loaded, and no command run yet (else AS_EBAD_REQUEST,
 * the file untouched). The file does not keep a virtual clock's time: on attach a virtual
 * clock moves on to the last transition the file records when that is later than its start,
 * so that time never goes back across a restart. A file another process writes, one that is
 * not aftersale's, of a newer schema, or damaged is refused with AS_EIO. From then on every
 * change is written in one transaction per loop turn, off the loop thread; answers wait for
 * it. */
AS_EXTERN int as_runtime_attach_store(as_runtime *rt, const char *db_path, as_error *err);
/* NULL, or the sentence of the store failure after which the runtime refuses writes (a
 * restart restores what is on disk). Valid until the runtime is freed. */
AS_EXTERN const char *as_runtime_store_failure(const as_runtime *rt);
/* 1 when the store said at the restore that `url` already received the outbox entry `key`
 * (a deliverer then skips that URL), else 0. */
AS_EXTERN int as_outbox_delivered(const as_runtime *rt, const char *key, const char *url);
/* 1 when nothing submitted is waiting for the disk (always 1 without a store). */
AS_EXTERN int as_runtime_idle(const as_runtime *rt);

/* The runtime's clock now. */
AS_EXTERN int64_t as_runtime_now(const as_runtime *rt);
/* 1 when the runtime's clock is virtual (headless, or as_options.virtual_clock), 0 when it
 * is a loop's real clock. */
AS_EXTERN int as_runtime_clock_virtual(const as_runtime *rt);
/* Virtual clock: fires every deadline due up to `to_ms` in due order, each at its own
 * instant, and moves time to `to_ms` (never back). A no-op on a real clock. Not from a
 * callback of this runtime. On a loop (as_options.virtual_clock) call it from a function
 * queued with as_runtime_defer: what it fires goes into that turn's group commit, which it
 * does not wait for (as_runtime_clock_advance does). */
AS_EXTERN void as_runtime_advance(as_runtime *rt, int64_t to_ms);


/* ---- The loop turn ---------------------------------------------------------------------- */

/* Queues fn(ud) for the step of this loop turn (docs/design.md#the-loop-turn): after the
 * turn's I/O callbacks, in the order queued, and before the turn's group commit, which takes
 * everything the queued functions changed as one batch. Call commands and reads from such a
 * function (or from this runtime's own callbacks), not from a raw libuv callback of yours,
 * as aftersale's own server and pipe do: rules then never run inside an I/O callback, and
 * requests read together are answered in order. fn may queue more; they run in the same
 * step. On a virtual clock (no loop) fn runs before this returns. Returns 0, or AS_ENOMEM and
 * fn is not called. Queued functions still waiting when the runtime is freed run then. */
typedef void (*as_step_fn)(void *ud);
AS_EXTERN int as_runtime_defer(as_runtime *rt, as_step_fn fn, void *ud);

/* ---- Commands ---------------------------------------------------------------------------- */

/* Called once a command is answered: `code` 0 (applied, and durable on a durable runtime)
 * or the refusal's AS_E* code, `message` its sentence ("" on success; valid during the
 * call). */
typedef void (*as_done_cb)(void *ud, int code, const char *message);

typedef enum as_op {
    AS_OP_ORDER_CREATE = 1, /* body: the order object (docs/design.md#domain-model) */
    AS_OP_ORDER_SHIP = 2,   /* target: the order; stamps it with the current time */
    AS_OP_ORDER_DELIVER = 3,
    AS_OP_ORDER_CONFIRM = 4,
    AS_OP_CASE_OPEN = 5,    /* body: the case object; may hold "as" (below) */
    AS_OP_CASE_ACT = 6,     /* target: the case; body {"action", "payload", "version", "as"} */
    AS_OP_RULES_LOAD = 7,   /* target: the shop; body: the Lua source text (not JSON) */
    AS_OP_OUTBOX_ACK = 8,   /* target: the outbox key; url: who received it (NULL: all) */
} as_op;

/* One typed command. Every pointer is borrowed for the call. */
typedef struct as_command {
    as_op op;
    /* Who asks. Orders and outbox acknowledgements are the platform's; rules.load the
     * platform's or the shop's own merchant; case commands any party's (the workflow
     * decides, docs/design.md#states-and-actions). In a case body, "as": PRINCIPAL lets the
     * platform act for a party; from anyone else it is AS_EFORBIDDEN. */
    const char *principal;
    const char *target;
    const char *body; /* the op's document, parsed once by the library */
    size_t body_len;
    const char *url;
    /* An idempotency key (an identifier; NULL: none), scoped to `principal`: a command under
     * a key the principal used before is not applied again and gets the first answer. Keys
     * are kept by the store, across restarts: a runtime without one (no
     * as_runtime_attach_store: the headless, virtual-clock runtime of tests) checks a key's
     * shape and applies every command. */
    const char *key;
    size_t key_len;
} as_command;

/* Runs `cmd` and calls `done` (may be NULL) with its outcome once it is durable -- at once
 * when the runtime has no store. The checks run in the order of
 * docs/design.md#states-and-actions: an unknown case is AS_ENOT_FOUND before anything about
 * the body. Codes: every code of error.h but AS_EUNAUTHORIZED. AS_EIO once the store has
 * failed. Returns the outcome's code for callers that need not wait (on a durable runtime
 * the change is not on disk yet when it returns 0). */
AS_EXTERN int as_runtime_command(as_runtime *rt, const as_command *cmd, as_done_cb done,
                                 void *ud);

/* Called with a read's outcome: code 0 and the JSON text, or an AS_E* code and its sentence
 * (valid during the call). */
typedef void (*as_read_cb)(void *ud, int code, const char *text);

/* Runs one line of the pipe protocol (docs/pipe.md: a JSON object with "op", "id" echoed)
 * and calls `cb` once with the answer line as JSON text (code 0, and the code of the outcome
 * it reports otherwise): writes once durable, reads once what they show is durable. Requests
 * with a "key" already seen are not applied again. Returns 0 or the outcome's code. */
AS_EXTERN int as_runtime_request(as_runtime *rt, const char *line, size_t len, as_read_cb cb,
                                 void *ud);
/* The same for a request without an "id" whose answer is only a code: `done` gets the code
 * and sentence. */
AS_EXTERN int as_runtime_submit(as_runtime *rt, const char *request_json, as_done_cb done,
                                void *ud);

/* Shorthands of as_runtime_command for a runtime without a store (tests, scenarios): each
 * returns the outcome's code with the sentence in err. `payload_json` may be NULL;
 * `version` -1 when the caller saw none. */
AS_EXTERN int as_order_create_json(as_runtime *rt, const char *json, as_error *err);
/* `event` is "ship", "deliver" or "confirm". */
AS_EXTERN int as_order_event(as_runtime *rt, const char *order_id, const char *event,
                             as_error *err);
AS_EXTERN int as_case_open_json(as_runtime *rt, const char *principal, const char *json,
                                as_error *err);
AS_EXTERN int as_case_act_json(as_runtime *rt, const char *principal, const char *case_id,
                               const char *action, const char *payload_json, int64_t version,
                               as_error *err);

/* ---- Moving a virtual clock ------------------------------------------------------------ */

/* A deadline a move of the clock fired: the case `case_id`, the deadline's kind
 * ("merchant_response", docs/design.md#states), the instant `at_ms` it fired at (its due
 * time), the system action it took ("auto_agree") and the state the case is in after it
 * ("awaiting_return"). Strings are valid during the call only. */
typedef void (*as_fired_cb)(void *ud, const char *case_id, const char *deadline, int64_t at_ms,
                            const char *action, const char *state);
/* as_runtime_advance as a command: on a virtual clock fires every deadline due up to `to_ms`
 * in due order, each at its own instant, calling `fired` (may be NULL) after each one it
 * applied, in that order and before this returns; moves time to `to_ms`; then calls `done`
 * (may be NULL) once everything the move changed is durable (at once without a store), as
 * as_runtime_command answers. On a loop call it from a function queued with
 * as_runtime_defer, like a command. `ud` goes to both callbacks. Returns the code `done`
 * gets: 0; AS_ECONFLICT on a real clock (its time moves by itself; nothing fired);
 * AS_EBAD_REQUEST for a `to_ms` before now (time never goes back) or past the end of year
 * 9999; AS_EIO once the store has failed (nothing fired); AS_ENOMEM before anything moved.
 * A deadline that fails to fire for want of memory is not reported and is tried again a
 * second later, as every deadline is. Not from an as_done_cb, as_read_cb or as_outbox_cb. */
AS_EXTERN int as_runtime_clock_advance(as_runtime *rt, int64_t to_ms, as_fired_cb fired,
                                       as_done_cb done, void *ud);
/* A move of the clock as a request from outside (the HTTP server's POST /v1/clock/advance,
 * docs/api.md): `principal` must be "platform" (else AS_EFORBIDDEN); `body` (`len` bytes,
 * borrowed) is the JSON object {"by": DURATION} (as_duration_parse, above 0 and at most 365
 * days) or {"to": INSTANT} (ms UTC, or an RFC 3339 string; from now to 365 days on), any
 * other member or shape AS_EBAD_REQUEST; then as_runtime_clock_advance (AS_ECONFLICT on a
 * real clock). Calls `cb` once: code 0 and the JSON text {"now": MS, "fired": [{"case",
 * "deadline", "at", "action", "to"}...]} (in firing order) once the move is durable, or the
 * refusal's code and sentence. Returns the refusal's code, or 0 once the move is made (on a
 * durable runtime before it is on disk). A refusal changes nothing, but for an AS_ENOMEM met
 * while writing the answer after the move: its sentence then says the clock moved. */
AS_EXTERN int as_runtime_clock_request(as_runtime *rt, const char *principal, const char *body,
                                       size_t len, as_read_cb cb, void *ud);

/* ---- Reads ------------------------------------------------------------------------------- */
/* A read hands its JSON to `cb` once everything it shows is durable: at once when nothing it
 * shows waits for a commit (or there is no store), else after that commit. Deadlines due by
 * now fire first. Each returns 0 or the code it hands to `cb` (cb is called either way):
 * AS_ENOT_FOUND (unknown), AS_EFORBIDDEN (outside the principal's scope), AS_EBAD_REQUEST
 * (a query out of range), AS_EIO (the store failed and what it shows may not be on disk),
 * AS_ENOMEM. The scope of a principal: the platform and logistics see every case, a buyer
 * the cases of its orders, a merchant its shop's. */

/* The case (docs/api.md "Cases"), as the system sees it. */
AS_EXTERN int as_case_read(as_runtime *rt, const char *case_id, as_read_cb cb, void *ud);
/* The case as `principal` sees it: each history entry names the packs it was decided under,
 * and "actions" lists what that principal may do now (the platform: every party's action
 * but logistics'). */
AS_EXTERN int as_case_view(as_runtime *rt, const char *principal, const char *case_id,
                           as_read_cb cb, void *ud);
/* The order with its lines (docs/api.md "Orders"), for the platform. */
AS_EXTERN int as_order_read(as_runtime *rt, const char *order_id, as_read_cb cb, void *ud);

typedef struct as_worklist_query {
    const char *principal;
    const char *shop;  /* NULL: every shop the principal sees (a merchant: its own) */
    const char *state; /* NULL: the open cases; else the cases in that state */
    long limit;        /* 1..1000; 0 for 50 */
    long cursor;       /* 0, or the "cursor" of the page before */
    uint64_t reserved[4];
} as_worklist_query;
/* {"cases": [{id, order, state, type, version, priority, due}...], "cursor"}: the cases by
 * priority (1 first, none as 100), then deadline (none last), then id -- from the shop's own
 * index, which the runtime keeps in that order. Logistics has no worklist (AS_EFORBIDDEN);
 * a merchant asking for another shop AS_EFORBIDDEN. */
AS_EXTERN int as_worklist_read(as_runtime *rt, const as_worklist_query *q, as_read_cb cb,
                               void *ud);

/* These answer at once with a string the caller frees with as_free (NULL with err on
 * refusal). */
/* The shop's metrics (docs/rulebook.md#metrics) over the 30-day window ending now. Refused
 * (AS_EFORBIDDEN) for a principal other than the platform and the shop's merchant. */
AS_EXTERN char *as_shop_metrics_read(as_runtime *rt, const char *principal, const char *shop,
                                     as_error *err);
/* The packs in force: {"platform", "categories": {CAT: "name@version (engine)"},
 * "merchants": {SHOP: "name@version"}} -- a merchant sees its own shop only; buyers and
 * logistics AS_EFORBIDDEN. */
AS_EXTERN char *as_rules_read(as_runtime *rt, const char *principal, as_error *err);
/* The shop's merchant pack versions (`version` NULL), or one version with its source;
 * AS_ENOT_FOUND for a version the shop never had; the platform's and the shop's only. */
AS_EXTERN char *as_shop_rules_read(as_runtime *rt, const char *principal, const char *shop,
                                   const char *version, as_error *err);
/* The runtime's counters, for monitoring: {"commands", "refused", "deadlines_fired",
 * "transitions": [{"type", "state", "count"}], "rule_failures": {LAYER: n},
 * "pack_load_failures", "merchant_packs_failed", "commits", "commit_seconds_sum",
 * "commit_seconds_max", "open_cases", "pending_deadlines"}. */
AS_EXTERN char *as_runtime_stats_json(as_runtime *rt, as_error *err);

/* The case as JSON text, or NULL when unknown (free with as_free). This is what memory holds
 * now: on a durable runtime it may show a change whose commit is still running (and that a
 * crash would lose); as_case_read shows only what is durable. */
AS_EXTERN char *as_case_get_json(as_runtime *rt, const char *case_id);
/* A shop's metrics as as_shop_metrics_read shows them to the platform; NULL on OOM. */
AS_EXTERN char *as_shop_metrics_json(as_runtime *rt, const char *shop);

/* ---- Packs and database files, without a server ------------------------------------------ */

/* Loads the pack at `path` alone (a Lua file in the sandbox, or a native plugin ending in
 * ".so") and describes it: {"name", "version", "engine", "categories": [...], "hooks":
 * [...], "memory": BYTES}. Free with as_free; NULL with err: the codes of
 * as_runtime_load_pack. */
AS_EXTERN char *as_pack_inspect(const char *path, as_error *err);

/* The tools of docs/db.md. Each opens the SQLite file `path` of a server read-only: no
 * writer lock is taken and nothing is written or migrated, so each works while a server
 * runs on it. `packs_dir` holds the bundled packs the rows are checked against, as a
 * server's start checks them. AS_EIO for a file that cannot be opened as aftersale's. */
typedef struct as_db_counts {
    long long orders, cases, events, packs, outbox, idempotency; /* -1: table unreadable */
} as_db_counts;
/* A row that fails a check: its table and key (NULL for the file as a whole) and why. */
typedef void (*as_db_problem_cb)(void *ud, const char *table, const char *key, const char *why);
/* Integrity, every row restorable, the invariants between tables; each problem goes to
 * `problem`, the rows counted in *counts. 0 when the check ran (clean or not: count the
 * calls), else the code that stopped it. */
AS_EXTERN int as_db_check(const char *path, const char *packs_dir, as_db_problem_cb problem,
                          void *ud, as_db_counts *counts, as_error *err);
/* A consistent copy of `path` at `dest` (SQLite's online backup, written as DEST.partial,
 * synced, renamed); `force` replaces an existing dest. *pages: the pages copied. */
AS_EXTERN int as_db_backup(const char *path, const char *dest, int force, int *pages,
                           as_error *err);
/* Hands `line` each order by id, each followed by its cases oldest first: `kind` "order" or
 * "case", and `json` the line {"order": ORDER} or {"case": CASE} as JSON text. A `line` that returns non-zero stops the export with
 * that code; a row that cannot be restored stops it with AS_EIO naming the row. */
typedef int (*as_db_line_cb)(void *ud, const char *kind, const char *json);
AS_EXTERN int as_db_export(const char *path, const char *packs_dir, as_db_line_cb line,
                           void *ud, as_error *err);

/* A shop's recorded history, for a replay (`aftersale backtest`): hands `line` first
 * {"rules": {"shop", "version", "source"}} for the shop's merchant pack in force (when the
 * file keeps its source), then each of the shop's orders by id as as_db_export writes them
 * (kind "order"), then each party's command on its cases (kind "command", by case and entry):
 * {"command": {"at": MS, "case", "n": ENTRY, "as": PRINCIPAL, "action", "body"}}, `body`
 * the case object of an open or the payload of an action. AS_EBAD_REQUEST when the shop has
 * more than `max_cases` cases (nothing handed over); the rest as as_db_export. */
AS_EXTERN int as_db_history(const char *path, const char *packs_dir, const char *shop,
                            long max_cases, as_db_line_cb line, void *ud, as_error *err);

/* Bounds of as_db_backtest. Zero is every field's default. */
typedef struct as_backtest_limits {
    long max_cases;      /* a shop with more cases is refused; 0 for 100,000 */
    int64_t budget_ms;   /* wall time for the replays; 0 for 10,000 (10 s) */
    uint64_t reserved[4]; /* must be zero (AS_EBAD_REQUEST), for fields added later */
} as_backtest_limits;

/* What the candidate merchant pack `source` (`len` bytes, borrowed) would have changed for
 * `shop`: the shop's recorded history in the server file `db_path` (as_db_history: opened
 * read-only, nothing written, a server may hold it) is replayed on a virtual clock by two
 * headless runtimes of this call's own, each with the bundled packs of `packs_dir`: the
 * baseline under the shop's merchant pack in force in the file (or none), the candidate under
 * `source`. The parties' commands come at their recorded times; deadlines and auto-decisions
 * are derived again; a command a runtime refuses is skipped and counted. `lim` may be NULL
 * (the defaults).
 *
 * Returns the report as JSON text, the caller's (free with as_free):
 * {"shop", "baseline_rules": VERSION or null, "changed": [{"case", "baseline": OUTCOME,
 * "candidate": OUTCOME}...], "totals": {"refunded", "auto_agreed", "disputes" (each
 * {"baseline", "candidate", "delta"}), "cases", "changed", "skipped": {"baseline",
 * "candidate"}}}, an OUTCOME being {"state" (null: not opened), "refund_amount" (fen),
 * "auto_decisions", "deadlines": [DECIDED_BY...]}. "changed" lists the shop's cases in the
 * order they were opened whose outcome differs; "refunded" counts the refunds of the cases
 * refunding or refunded, "auto_agreed" and "disputes" the cases auto-agreed and escalated.
 *
 * NULL with err on refusal: the source is loaded first, as PUT /v1/shops/{shop}/rules loads
 * one (the codes of as_runtime_load_merchant_source: AS_EBAD_REQUEST for a source over 1 MiB,
 * not UTF-8 without NUL bytes, or not a valid merchant pack, AS_ERULE_ERROR for a top level
 * that throws or runs out of budget), before the file is read; then AS_EIO for a file that
 * cannot be opened as aftersale's, a row that cannot be restored, or a merchant pack in force
 * in the file that no longer loads; AS_EBAD_REQUEST for more than `max_cases` cases, for the
 * replays passing `budget_ms` (checked between events; one hook call is bounded by the Lua
 * budget), or a non-zero reserved word or negative limit; AS_ENOMEM.
 *
 * Threads: unlike the rest of this header this call uses no runtime of the caller's, only
 * objects it makes and frees itself, so it may run on any thread, several at once (a server
 * runs it on a worker thread, off its loop). as_replace_allocator must not run meanwhile. */
AS_EXTERN char *as_db_backtest(const char *db_path, const char *packs_dir, const char *shop,
                               const char *source, size_t len, const as_backtest_limits *lim,
                               as_error *err);

#ifdef __cplusplus
}
#endif
#endif
