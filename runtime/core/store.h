/* store.h -- one storage interface, several engines (docs/design.md#storage-and-durability).
 *
 * The runtime keeps its state in memory and journals every change: at the end of a loop turn
 * the changes of all the turn's commands go to the store as one batch, committed off the loop
 * thread in one transaction with whatever other batches wait for the writer (group commit,
 * durable.c); a turn is never split. A command is answered only after the batch holding it
 * is durable. At start the store hands everything back through a visitor.
 *
 * An engine is a vtable; `memory` keeps the rows in the process (tests restart from it),
 * `sqlite` is the embedded default (WAL, one file; `commit` writes a batch's transaction and
 * `sync` makes it durable, so that the two overlap across consecutive batches). A runtime
 * without a store (the headless `run`) journals nothing at all. The interface knows rows, not SQL,
 * so a PostgreSQL engine can implement the same calls for several runtime nodes. */
#ifndef AS_STORE_H
#define AS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "aftersale/error.h"

/* Batch records (see journal.c for the writer, the engines for the reader):
 *   ORDER        str id, bytes data
 *   CASE         str id, str order, i64 due (INT64_MIN: no deadline), bytes data
 *   EVENT        str case, u32 n (index in the case history), bytes data, str command
 *                (absent: no party's command made the entry; else a party's command, never
 *                a system action, which a replay derives again, as journal.c writes it:
 *                u8 layout (1; 0: a schema-4 command, moved, which has every field below
 *                whether given or not, and an open's on every action), i64 at, u8 action, u8 role, str principal id, i64 version (-1: none), u32
 *                given (AS_P_*), str text, str tracking; then only the fields given, in
 *                this order: str serial, u8 reason, u8 result (FF: none), i64 amount, i64
 *                shipping_cost, i64 requested_amount, i64 bad_permille, u8 evidence count
 *                and str each; then an open's str order, u8 type, u8 item count, each str
 *                sku + i64 qty (another action: nothing)). A party's command makes exactly
 *                one entry, an open entry 0.
 *   OUTBOX       str key, str kind, str case, i64 amount  (a key names one instruction: the
 *                same key again changes nothing)
 *   OUTBOX_ACK   str key, str url (absent: acknowledged for every URL, the entry is done)
 *   IDEM         str key, u32 code (negative as two's complement), str message, i64 at (the
 *                runtime's time when it was first answered)
 *   PACK         str shop ("" for the platform's own packs), str name, str version,
 *                bytes source, u8 current, str sha256 (hex), i64 uploaded_at
 *   PACK_PRUNE   str shop, str name, str version: that version (not current) keeps its row
 *                and identity, its source is dropped (stored as ''): no case pins it
 *   PRUNE        i64 before: idempotency keys answered before `before` are forgotten, and
 *                outbox entries done for every URL (they are never read again) go
 * where bytes = u32 length + the bytes. */
enum {
    AS_REC_ORDER = 1,
    AS_REC_CASE,
    AS_REC_EVENT,
    AS_REC_OUTBOX,
    AS_REC_OUTBOX_ACK,
    AS_REC_IDEM,
    AS_REC_PACK,
    AS_REC_PRUNE,
    AS_REC_PACK_PRUNE,
};

/* What load() hands back, row by row, in this order: packs (by upload time), orders, cases,
 * events (in the order they were written), outbox entries not yet acknowledged for every URL,
 * then the URLs that did acknowledge one of those entries (outbox_ack), idempotency keys
 * (oldest first). A visitor
 * returns 0 to go on or a negative code to stop the load with it (its sentence in the
 * `err` of load(), saying what is wrong with the row, not which row: the engine names that).
 * Pointers are valid during the call only.
 *
 * A row is named by its table and key, as `aftersale db check` prints it: orders ID,
 * cases ID, events CASE#N, packs SHOP/NAME@VERSION ("(platform)" for the shop ""), outbox
 * KEY, outbox_acks KEY URL, idempotency KEY. */
typedef struct as_store_visitor {
    void *ud;
    /* first: how many orders and cases follow (to size the indexes) */
    int (*reserve)(void *ud, size_t orders, size_t cases);
    int (*pack)(void *ud, const char *shop, const char *name, const char *version,
                const char *source, size_t len, int current, const char *sha256,
                int64_t uploaded_at);
    int (*order)(void *ud, const void *data, size_t len);
    int (*a_case)(void *ud, const void *data, size_t len, int64_t due);
    int (*event)(void *ud, const char *case_id, uint32_t n, const void *data, size_t len);
    /* outbox, idem, outbox_ack: NULL skips those rows (a snapshot delivers and answers
     * nothing) */
    int (*outbox)(void *ud, const char *key, const char *kind, const char *case_id,
                  int64_t amount);
    int (*idem)(void *ud, const char *key, int code, const char *message, int64_t at);
    /* a URL that acknowledged an entry handed to outbox() (called after all of them) */
    int (*outbox_ack)(void *ud, const char *key, const char *url);
    /* NULL: a row refused by a callback above stops the load with a sentence that names the
     * file, the row and `aftersale db check FILE`. Otherwise called with that row's table,
     * key (sanitized for a terminal) and the callback's sentence; returning 0 goes on with
     * the next row. Never called for AS_ENOMEM, which always stops the load. */
    int (*refused)(void *ud, const char *table, const char *key, const char *why);
} as_store_visitor;

typedef struct as_store as_store;

typedef struct as_store_engine {
    const char *name;
    /* Writes one batch of records as one transaction. Called from the store's writer thread,
     * one call at a time. Returns 0 or AS_EIO with the reason. Without a `sync` the
     * batch is durable when this returns. */
    int (*commit)(as_store *s, const unsigned char *batch, size_t len, as_error *err);
    /* NULL, or: makes every batch committed so far durable. Called from the syncer thread,
     * one call at a time, possibly while `commit` writes the batch after: the fsync of one
     * batch overlaps the transaction of the next. */
    int (*sync)(as_store *s, as_error *err);
    /* Hands every stored row to `v`, on the loop thread, before any command runs. */
    int (*load)(as_store *s, const as_store_visitor *v, as_error *err);
    void (*close)(as_store *s);
} as_store_engine;

struct as_store {
    const as_store_engine *engine;
};

#endif
