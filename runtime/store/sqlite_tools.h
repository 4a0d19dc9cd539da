/* sqlite_tools.h -- what `aftersale db` does to a SQLite file besides restoring its rows: the
 * file's own integrity and the invariants between its tables (`db check`), and the online
 * backup (`db backup`). Each works on a store from as__store_sqlite_open_readonly, so a server
 * may go on writing the file meanwhile. */
#ifndef AS_SQLITE_TOOLS_H
#define AS_SQLITE_TOOLS_H

#include <sqlite3.h>

#include "stores.h"

/* One problem found: `table` and `key` name the row as store.h does (`key` NULL for the
 * file as a whole, `table` then "database"); `why` is a sentence. Pointers valid during the
 * call only. */
typedef void (*as_store_problem_fn)(void *ud, const char *table, const char *key, const char *why);

/* How many rows each table holds, for a summary; -1 for a table that cannot be read. */
typedef struct as_store_counts {
    long long orders, cases, events, packs, outbox, idempotency;
} as_store_counts;

/* What sqlite_store.c lends the tools. The SQLite connection of a store from
 * as__store_sqlite_open(_readonly): the store's, valid until it is closed. */
sqlite3 *as__store_sqlite_handle(as_store *s);
/* The pid of the process that holds `path` for writing (as__store_sqlite_open's lock on
 * PATH-writer; "unknown" when it wrote none), or "" when no process does. */
void as__store_sqlite_writer(const char *path, char pid[24]);
/* `path` followed by `suffix`, malloc'd (the caller frees it); NULL on OOM. */
char *as__store_path_with(const char *path, const char *suffix);
/* Makes the directory entry of `path` durable (fsync of its directory); 0 or AS_EIO. */
int as__store_sync_dir(const char *path, as_error *err);

/* Runs SQLite's integrity_check and checks what the restore takes for granted but does not
 * see row by row: every case's order_id names a stored order, every case has a history,
 * outbox entries and their acknowledgements name stored cases and entries, the SHA-256
 * stored with each pack version is that of its source, the file says it is aftersale's.
 * Calls `problem` for each finding, fills *counts, and returns 0; AS_ENOMEM stops it. A
 * query the damaged file cannot answer is a finding too. */
int as__store_sqlite_check(as_store *s, as_store_problem_fn problem, void *ud,
                           as_store_counts *counts, as_error *err);

/* Hands `row` every party's command the events table keeps (events.cmd), by case id and
 * entry: the case, the entry n, the command's data (valid during the call). A `row` that returns non-zero
 * stops with its code; AS_EIO when the table cannot be read. */
typedef int (*as_store_command_fn)(void *ud, const char *case_id, uint32_t n, const void *data,
                                   size_t len);
int as__store_sqlite_commands(as_store *s, as_store_command_fn row, void *ud, as_error *err);

/* Copies the database of `s` into a new file at `dest` with SQLite's online backup API: one
 * consistent snapshot (a read transaction, which a writer in WAL mode does not wait for),
 * written beside `dest` as DEST.partial, synced and renamed, so that `dest` is either whole
 * or absent. An existing DEST (or DEST-wal, DEST-shm) is refused unless `force`, and never
 * replaced while a server holds DEST for writing. *pages is the number of pages copied.
 * Returns 0 or AS_EIO. */
int as__store_sqlite_backup(as_store *s, const char *dest, int force, int *pages, as_error *err);

#endif
