/* sqlite_store.c -- the embedded default engine: one SQLite file in WAL mode, so a
 * committed and synced batch survives a crash or a power cut.
 *
 * Durability: SQLite runs with synchronous=NORMAL, which writes every transaction to the
 * write-ahead log at COMMIT and syncs the log only around checkpoints (which keeps the file
 * consistent across a power cut). sync() is what makes the transactions written so far
 * durable: the xSync of SQLite's own file object of the log (an fdatasync in the unix VFS).
 * It goes through the VFS rather than through a descriptor of ours so that a VFS that
 * stands between SQLite and the disk sees it -- the power-cut test's shim
 * (tests/crash/powercut.c) keeps what was written since the last xSync and drops or tears it
 * at a simulated cut; a raw fdatasync would be invisible to it. It costs the same syscall.
 * The runtime answers a batch only after sync(); meanwhile the next batch's transaction is
 * written, which is why the fsync is not part of COMMIT here as it would be with
 * synchronous=FULL.
 *
 * A log removed underneath (`rm FILE-wal`) is still read and written by SQLite through its
 * open descriptor, but no restart would find it: every acknowledged batch since the last
 * checkpoint would be lost at the next crash. sync() notices (the log's name no longer leads
 * to the file we opened), copies the log into the main file with a FULL checkpoint (which
 * syncs the main file) and fails with a sentence; the runtime refuses writes from then on.
 *
 * Schema (user_version 5; application_id marks the file as aftersale's):
 *   meta(k, v)                          what wrote the file
 *   orders(id, data)                    the order record (journal.c layout)
 *   cases(id, order_id, due, data)      the case record; `due` is the pending deadline, NULL
 *                                       when none: the pending deadlines are the rows with a due
 *   events(rowid, case_id, n, data, cmd)  the append-only history, in commit order; cmd:
 *                                       the party's command that made the entry, NULL for
 *                                       the others (schema 5); the restore does not read
 *                                       it, `backtest` does
 *   outbox(key, kind, case_id, amount, acked)    acked: for every URL (the entry is done)
 *   outbox_acks(key, url)               the URLs that acknowledged an entry not yet done
 *   idempotency(key, code, message, at)   at: when first answered (runtime ms); pruned
 *                                       after the retention time (schema 3)
 *   packs(shop, name, version, source, current, sha256, uploaded_at)
 *                                       every pack version's source by its identity; shop ''
 *                                       for the platform's own packs (schema 2); source ''
 *                                       for a version pruned: not current, no case pins it
 * Migrations: each schema version is a step from the one before; a file with a newer
 * user_version than this build knows is refused.
 *
 * Read-only (the `aftersale db` tools): the same file opened SQLITE_OPEN_READONLY beside a
 * writer, without its lock; it reads through the WAL index like any reader, and refuses a
 * schema it would have to migrate, since migrating is a write. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/limits.h"
#include "sqlite_tools.h"
#include "stores.h"
#include "../core/wbuf.h"

#define APP_ID 0x41534c31 /* "ASL1" */
#define APP_ID_TEXT "1095978033" /* APP_ID in decimal, for the migration's PRAGMA */
_Static_assert(APP_ID == 1095978033, "APP_ID_TEXT must spell APP_ID");
#define SCHEMA_VERSION 5

static const char *const migrations[SCHEMA_VERSION] = {
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta VALUES('format', 'aftersale');"
    "CREATE TABLE orders(id TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE cases(id TEXT PRIMARY KEY, order_id TEXT NOT NULL, due INTEGER,"
    " data BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE events(case_id TEXT NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE outbox(key TEXT PRIMARY KEY, kind TEXT NOT NULL, case_id TEXT NOT NULL,"
    " amount INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE idempotency(key TEXT PRIMARY KEY, code INTEGER NOT NULL,"
    " message TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE packs(shop TEXT NOT NULL, version TEXT NOT NULL, name TEXT NOT NULL,"
    " source TEXT NOT NULL, current INTEGER NOT NULL, PRIMARY KEY(shop, version)) WITHOUT ROWID;",
    /* 2: a pack version is (shop, name, version) and carries the SHA-256 of its source (the
     * rows of schema 1 get theirs computed at load); outbox acknowledgements per URL */
    "CREATE TABLE packs2(shop TEXT NOT NULL, name TEXT NOT NULL, version TEXT NOT NULL,"
    " source TEXT NOT NULL, current INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " uploaded_at INTEGER NOT NULL, PRIMARY KEY(shop, name, version)) WITHOUT ROWID;"
    "INSERT INTO packs2 SELECT shop, name, version, source, current, '', 0 FROM packs;"
    "DROP TABLE packs;"
    "ALTER TABLE packs2 RENAME TO packs;"
    /* outbox: acknowledgements per URL. A row (key, url) says that URL answered 2xx for the
     * instruction `key`; outbox.acked still means "done for every URL". */
    "CREATE TABLE outbox_acks(key TEXT NOT NULL, url TEXT NOT NULL,"
    " PRIMARY KEY(key, url)) WITHOUT ROWID;",
    /* 3: retention. An idempotency key carries the time it was answered (the keys of schema
     * 2 count from the migration) and is pruned after the retention time; an outbox entry
     * done for every URL is settled and pruned with its acknowledgements. */
    "ALTER TABLE idempotency ADD COLUMN at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE idempotency SET at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;"
    "CREATE INDEX idempotency_at ON idempotency(at);"
    "DELETE FROM outbox_acks WHERE key IN (SELECT key FROM outbox WHERE acked = 1);"
    "DELETE FROM outbox WHERE acked = 1;",
    /* 4: provenance (docs/design.md#provenance). A case row and a history entry's row carry
     * it after their schema-3 members (journal.c); the rows written before get "none": no
     * deadline layer, the default refund, no refund layer; no rule, refund or deadline, no
     * why, a refund of 0. Every row then has the members, and a row cut short stays damaged. */
    "UPDATE cases SET data = CAST(data || X'FF00FF' AS BLOB);"
    "UPDATE events SET data = CAST(data || X'FFFFFFFFFFFFFF0000000000000000' AS BLOB);"
    /* the parties' commands with their payloads, one per history entry a party made, for
     * `aftersale backtest`; a file of an older schema has none (nothing to migrate) */
    "CREATE TABLE commands(case_id TEXT NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL);",
    /* 5: a party's command is kept in the row of the entry it made, which is written anyway:
     * a row of its own per command cost a fifth of the durable throughput. The rows of schema
     * 4 move there by their (case, entry), through an index made for the move, behind the
     * byte 00 that names their layout (journal.c CMD_FULL). */
    "ALTER TABLE events ADD COLUMN cmd BLOB;"
    "CREATE INDEX commands_move ON commands(case_id, n);"
    "UPDATE events SET cmd = (SELECT CAST(X'00' || c.data AS BLOB) FROM commands c"
    " WHERE c.case_id = events.case_id AND c.n = events.n);"
    "DROP TABLE commands;",
};

enum {
    S_ORDER,
    S_CASE,
    S_EVENT,
    S_OUTBOX,
    S_OUTBOX_ACK,
    S_OUTBOX_ACK_URL,
    S_IDEM,
    S_PACK_OLD,
    S_PACK,
    S_PRUNE_IDEM,
    S_PRUNE_ACKS,
    S_PRUNE_OUTBOX,
    S_PRUNE_PACK,
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_COUNT
};

static const char *const sql[S_COUNT] = {
    [S_ORDER] = "INSERT INTO orders(id, data) VALUES(?1, ?2)"
                " ON CONFLICT(id) DO UPDATE SET data = excluded.data",
    [S_CASE] = "INSERT INTO cases(id, order_id, due, data) VALUES(?1, ?2, ?3, ?4)"
               " ON CONFLICT(id) DO UPDATE SET due = excluded.due, data = excluded.data",
    [S_EVENT] = "INSERT INTO events(case_id, n, data, cmd) VALUES(?1, ?2, ?3, ?4)",
    /* a key names one instruction (a refund instructed again has a key of its own) */
    [S_OUTBOX] = "INSERT INTO outbox(key, kind, case_id, amount) VALUES(?1, ?2, ?3, ?4)"
                 " ON CONFLICT(key) DO NOTHING",
    [S_OUTBOX_ACK] = "UPDATE outbox SET acked = 1 WHERE key = ?1",
    /* only for a known entry: an acknowledgement of an unknown key leaves no row behind */
    [S_OUTBOX_ACK_URL] = "INSERT OR IGNORE INTO outbox_acks(key, url)"
                         " SELECT ?1, ?2 WHERE EXISTS(SELECT 1 FROM outbox WHERE key = ?1)",
    [S_IDEM] = "INSERT OR IGNORE INTO idempotency(key, code, message, at) VALUES(?1, ?2, ?3, ?4)",
    [S_PACK_OLD] = "UPDATE packs SET current = 0 WHERE shop = ?1",
    [S_PACK] = "INSERT OR REPLACE INTO packs(shop, name, version, source, current, sha256,"
               " uploaded_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_PRUNE_IDEM] = "DELETE FROM idempotency WHERE at < ?1",
    [S_PRUNE_ACKS] = "DELETE FROM outbox_acks WHERE key IN (SELECT key FROM outbox WHERE acked = 1)",
    [S_PRUNE_OUTBOX] = "DELETE FROM outbox WHERE acked = 1",
    [S_PRUNE_PACK] = "UPDATE packs SET source = '' WHERE shop = ?1 AND name = ?2 AND version = ?3"
                     " AND current = 0",
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
};

typedef struct sqlite_store {
    as_store base;
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    /* SQLite's file object of the write-ahead log, owned by the connection, which keeps it
     * open for its whole life in WAL mode: sync() calls its xSync */
    sqlite3_file *wal;
    const char *wal_path; /* SQLite's, valid while db is open */
    int wal_fd;           /* owned; the log opened by its name, to notice it removed or replaced */
    int lock_fd;          /* owned; FILE-writer, flocked while this store is open (one writer) */
    /* held by commit() for its transaction and by sync() for the checkpoint of a removed
     * log: the connection is NOMUTEX, and the two run on different threads */
    pthread_mutex_t txn;
    char *path;           /* owned; the file, to name in sentences */
} sqlite_store;

static int db_err(sqlite_store *s, as_error *err, const char *what)
{
    return as__err(err, AS_EIO, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
}

/* ------------------------------------------------------------------------------------------
 * Commit
 * ---------------------------------------------------------------------------------------- */

/* Binds the fields read from `r` to `st`'s parameters first, first + 1, ... as `layout` says,
 * one letter a field: s text (absent: NULL), b blob, B blob (absent: NULL), 1 a byte, 4 an unsigned 32-bit integer,
 * i a signed one (an error code), 8 a 64-bit one, t a time (INT64_MIN: NULL). The layouts are the record writers' in durable.c. */
static void bind_fields(sqlite3_stmt *st, int first, as_rbuf *r, const char *layout)
{
    for (int i = first; *layout; layout++, i++) {
        size_t n;
        const char *p;
        int64_t v;
        switch (*layout) {
        case 's':
            p = as__rbuf_str(r, &n);
            if (p) sqlite3_bind_text(st, i, p, (int)n, SQLITE_STATIC);
            else sqlite3_bind_null(st, i);
            break;
        case 'b':
        case 'B':
            p = as__rbuf_str(r, &n);
            if (p || *layout == 'b') sqlite3_bind_blob(st, i, p ? p : "", (int)n, SQLITE_STATIC);
            else sqlite3_bind_null(st, i);
            break;
        case '1': sqlite3_bind_int(st, i, as__rbuf_u8(r)); break;
        case '4': sqlite3_bind_int64(st, i, as__rbuf_u32(r)); break;
        case 'i': sqlite3_bind_int(st, i, (int32_t)as__rbuf_u32(r)); break;
        case '8': sqlite3_bind_int64(st, i, as__rbuf_i64(r)); break;
        case 't':
            v = as__rbuf_i64(r);
            if (v == INT64_MIN) sqlite3_bind_null(st, i);
            else sqlite3_bind_int64(st, i, v);
            break;
        }
    }
}

/* Steps a statement that answers no rows; 0 when it ran. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* The records bound whole by a layout: their statement and their fields in order. */
static const struct {
    int stmt;
    const char *layout;
} plain_records[] = {
    [AS_REC_ORDER] = {S_ORDER, "sb"},          /* id, blob */
    [AS_REC_CASE] = {S_CASE, "sstb"},          /* id, order, due, blob */
    [AS_REC_EVENT] = {S_EVENT, "s4bB"},        /* case, seq, blob, command */
    [AS_REC_OUTBOX] = {S_OUTBOX, "sss8"},      /* key, kind, case, amount */
    [AS_REC_IDEM] = {S_IDEM, "sis8"},          /* key, code, message, at */
    [AS_REC_PACK_PRUNE] = {S_PRUNE_PACK, "sss"}, /* shop, name, version */
};

/* Binds one record's fields to its statement. Returns the statement, NULL for a bad record. */
static sqlite3_stmt *bind_record(sqlite_store *s, int kind, as_rbuf *r)
{
    sqlite3_stmt *st;
    switch (kind) {
    case AS_REC_OUTBOX_ACK: {
        size_t kn, un;
        const char *key = as__rbuf_str(r, &kn), *url = as__rbuf_str(r, &un);
        if (key == NULL) return NULL;
        st = s->st[url ? S_OUTBOX_ACK_URL : S_OUTBOX_ACK];
        sqlite3_bind_text(st, 1, key, (int)kn, SQLITE_STATIC);
        if (url) sqlite3_bind_text(st, 2, url, (int)un, SQLITE_STATIC);
        break;
    }
    case AS_REC_PRUNE:
        /* the settled outbox first (its acknowledgements, then the entries); the key prune
         * is the statement stepped by the caller */
        for (int i = S_PRUNE_ACKS; i <= S_PRUNE_OUTBOX; i++)
            if (step_done(s->st[i]) != 0) return NULL;
        st = s->st[S_PRUNE_IDEM];
        bind_fields(st, 1, r, "8"); /* before */
        break;
    case AS_REC_PACK: {
        size_t n;
        const char *shop = as__rbuf_str(r, &n);
        if (shop == NULL) return NULL;
        sqlite3_bind_text(s->st[S_PACK_OLD], 1, shop, (int)n, SQLITE_STATIC);
        if (step_done(s->st[S_PACK_OLD]) != 0) return NULL;
        st = s->st[S_PACK];
        sqlite3_bind_text(st, 1, shop, (int)n, SQLITE_STATIC);
        bind_fields(st, 2, r, "sss1s8"); /* name, version, source, current, sha256, at */
        break;
    }
    default:
        if (kind < 0 || (size_t)kind >= sizeof plain_records / sizeof plain_records[0] ||
            plain_records[kind].layout == NULL)
            return NULL;
        st = s->st[plain_records[kind].stmt];
        bind_fields(st, 1, r, plain_records[kind].layout);
        break;
    }
    return r->bad ? NULL : st;
}

static int write_batch(sqlite_store *s, const unsigned char *batch, size_t len, as_error *err)
{
    as_rbuf r = {batch, len, 0, 0};
    if (sqlite3_step(s->st[S_BEGIN]) != SQLITE_DONE) {
        sqlite3_reset(s->st[S_BEGIN]);
        return db_err(s, err, "begin");
    }
    sqlite3_reset(s->st[S_BEGIN]);
    while (r.pos < r.len) {
        int kind = as__rbuf_u8(&r);
        sqlite3_stmt *st = bind_record(s, kind, &r);
        if (st == NULL) {
            as__err(err, AS_EIO, "store: a malformed batch record (kind %d)", kind);
            goto fail;
        }
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_DONE) {
            db_err(s, err, "write");
            goto fail;
        }
    }
    if (sqlite3_step(s->st[S_COMMIT]) != SQLITE_DONE) {
        sqlite3_reset(s->st[S_COMMIT]);
        db_err(s, err, "commit");
        goto fail;
    }
    sqlite3_reset(s->st[S_COMMIT]);
    return 0;
fail:
    sqlite3_step(s->st[S_ROLLBACK]);
    sqlite3_reset(s->st[S_ROLLBACK]);
    return AS_EIO;
}

static int sqlite_commit(as_store *base, const unsigned char *batch, size_t len, as_error *err)
{
    sqlite_store *s = (sqlite_store *)base;
    pthread_mutex_lock(&s->txn);
    int rc = write_batch(s, batch, len, err);
    pthread_mutex_unlock(&s->txn);
    return rc;
}

/* Whether the log's name still leads to the file SQLite writes: `rm` leaves it without a
 * link, `mv` or a new file under the name leaves the name on another inode. */
static int wal_in_place(const sqlite_store *s)
{
    struct stat ours, named;
    return fstat(s->wal_fd, &ours) == 0 && ours.st_nlink > 0 && stat(s->wal_path, &named) == 0 &&
           named.st_dev == ours.st_dev && named.st_ino == ours.st_ino;
}

/* The log is gone from the directory, but SQLite still reads it through its descriptor: a
 * FULL checkpoint copies every transaction in it into the main file and syncs that, so what
 * was acknowledged survives this process. Always fails: nothing written later can be made
 * durable (a restart would not find the log), so the runtime must stop taking writes. */
static int save_removed_wal(sqlite_store *s, as_error *err)
{
    const char *db = sqlite3_db_filename(s->db, "main");
    int in_log = -1, copied = -2;
    pthread_mutex_lock(&s->txn);
    int rc = sqlite3_wal_checkpoint_v2(s->db, "main", SQLITE_CHECKPOINT_FULL, &in_log, &copied);
    pthread_mutex_unlock(&s->txn);
    if (rc != SQLITE_OK || in_log != copied)
        return as__err(err, AS_EIO,
                       "the write-ahead log %s was removed, and copying it into %s failed (%s): "
                       "what was acknowledged since the last checkpoint is only in this process",
                       s->wal_path, db,
                       rc != SQLITE_OK ? sqlite3_errstr(rc) : "readers in the way");
    return as__err(err, AS_EIO,
                   "the write-ahead log %s was removed; what was acknowledged is in %s; restart "
                   "to go on",
                   s->wal_path, db);
}

static int sqlite_sync(as_store *base, as_error *err)
{
    sqlite_store *s = (sqlite_store *)base;
    int rc = s->wal->pMethods->xSync(s->wal, SQLITE_SYNC_NORMAL);
    if (rc != SQLITE_OK)
        return as__err(err, AS_EIO, "sqlite: syncing the write-ahead log: %s", sqlite3_errstr(rc));
    /* checked after the sync: a log removed before this check is caught now, one removed
     * after it by the next sync, which copies the batches answered meanwhile too */
    if (!wal_in_place(s)) return save_removed_wal(s, err);
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Load
 * ---------------------------------------------------------------------------------------- */

static const char *col_text(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

/* One table's rows for the visitor. Column 0 of `q` is the row's key as store.h names it;
 * `row` reads the columns after it. */
typedef struct load_step {
    const char *table, *q;
    int (*row)(sqlite3_stmt *st, const as_store_visitor *v);
} load_step;

/* A row `step.row` refused: to the visitor's `refused` (0: go on), or the sentence that stops
 * the load. `err` holds the visitor's sentence on entry. */
static int refused_row(sqlite_store *s, const load_step *step, sqlite3_stmt *st, int rc,
                       const as_store_visitor *v, as_error *err)
{
    char why[sizeof err->msg], key[256];
    snprintf(why, sizeof why, "%s", err->code ? err->msg : "refused by the runtime");
    snprintf(key, sizeof key, "%s", col_text(st, 0));
    as__limit_sanitize(key); /* a damaged key's bytes must not drive the terminal */
    if (rc == AS_ENOMEM)
        return as__err(err, rc, "out of memory restoring %s %s from %s", step->table, key, s->path);
    if (v->refused) {
        *err = (as_error){0};
        return v->refused(v->ud, step->table, key, why);
    }
    return as__err(err, rc, "%s: %s %s could not be restored: %s; `aftersale db check %s` lists "
                   "every row it cannot read", s->path, step->table, key, why, s->path);
}

/* Runs the step's query and hands each row to its `row`. */
static int each_row(sqlite_store *s, const load_step *step, const as_store_visitor *v,
                    as_error *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, step->q, -1, &st, NULL), stop = 0;
    while (rc == SQLITE_OK && stop == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((stop = step->row(st, v)) != 0) stop = refused_row(s, step, st, stop, v, err);
        rc = SQLITE_OK;
    }
    if (stop == 0 && rc != SQLITE_DONE)
        stop = as__err(err, AS_EIO, "%s: reading %s: %s", s->path, step->table,
                       sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    return stop;
}

static int row_pack(sqlite3_stmt *st, const as_store_visitor *v)
{
    const char *source = col_text(st, 4);
    return v->pack(v->ud, col_text(st, 1), col_text(st, 2), col_text(st, 3), source,
                   (size_t)sqlite3_column_bytes(st, 4), sqlite3_column_int(st, 5),
                   col_text(st, 6), sqlite3_column_int64(st, 7));
}

static int row_order(sqlite3_stmt *st, const as_store_visitor *v)
{
    return v->order(v->ud, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
}

static int row_case(sqlite3_stmt *st, const as_store_visitor *v)
{
    int64_t due =
        sqlite3_column_type(st, 2) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(st, 2);
    return v->a_case(v->ud, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), due);
}

static int row_event(sqlite3_stmt *st, const as_store_visitor *v)
{
    return v->event(v->ud, col_text(st, 1), (uint32_t)sqlite3_column_int64(st, 2),
                    sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3));
}

static int row_outbox(sqlite3_stmt *st, const as_store_visitor *v)
{
    return v->outbox(v->ud, col_text(st, 0), col_text(st, 1), col_text(st, 2),
                     sqlite3_column_int64(st, 3));
}

static int row_outbox_ack(sqlite3_stmt *st, const as_store_visitor *v)
{
    return v->outbox_ack(v->ud, col_text(st, 1), col_text(st, 2));
}

static int row_idem(sqlite3_stmt *st, const as_store_visitor *v)
{
    return v->idem(v->ud, col_text(st, 0), sqlite3_column_int(st, 1), col_text(st, 2),
                   sqlite3_column_int64(st, 3));
}

/* The rows in the visitor's order (store.h); the key columns spell the names of store.h. */
static const load_step load_steps[] = {
    {"packs",
     "SELECT CASE shop WHEN '' THEN '(platform)' ELSE shop END || '/' || name || '@' || version,"
     " shop, name,"
     " version, source, current, sha256, uploaded_at FROM packs"
     " ORDER BY uploaded_at, name, version",
     row_pack},
    {"orders", "SELECT id, data FROM orders", row_order},
    {"cases", "SELECT id, data, due FROM cases", row_case},
    {"events", "SELECT case_id || '#' || n, case_id, n, data FROM events ORDER BY rowid",
     row_event},
    {"outbox", "SELECT key, kind, case_id, amount FROM outbox WHERE acked = 0", row_outbox},
    {"outbox_acks",
     "SELECT a.key || ' ' || a.url, a.key, a.url FROM outbox_acks a JOIN outbox o ON o.key = a.key"
     " WHERE o.acked = 0",
     row_outbox_ack},
    {"idempotency", "SELECT key, code, message, at FROM idempotency ORDER BY at", row_idem},
};

static int pragma_int(sqlite_store *s, const char *q, int *out);

static int sqlite_load(as_store *base, const as_store_visitor *v, as_error *err)
{
    sqlite_store *s = (sqlite_store *)base;
    int rc, orders = 0, cases = 0;
    if (pragma_int(s, "SELECT count(*) FROM orders", &orders) ||
        pragma_int(s, "SELECT count(*) FROM cases", &cases))
        return as__err(err, AS_EIO, "%s: counting the orders and cases: %s", s->path,
                       sqlite3_errmsg(s->db));
    if ((rc = v->reserve(v->ud, (size_t)orders, (size_t)cases)) != 0)
        return as__err(err, rc, "store: out of memory for %d orders and %d cases", orders, cases);
    for (size_t i = 0; i < sizeof load_steps / sizeof load_steps[0]; i++) {
        const load_step *step = &load_steps[i];
        if ((step->row == row_outbox && v->outbox == NULL) ||
            (step->row == row_outbox_ack && v->outbox_ack == NULL) ||
            (step->row == row_idem && v->idem == NULL))
            continue; /* a snapshot delivers and answers nothing */
        if ((rc = each_row(s, step, v, err)) != 0) return rc;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * Open and close
 * ---------------------------------------------------------------------------------------- */

static void sqlite_close(as_store *base)
{
    sqlite_store *s = (sqlite_store *)base;
    if (s == NULL) return;
    for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(s->st[i]);
    if (s->wal_fd >= 0) close(s->wal_fd);
    sqlite3_close(s->db);
    if (s->lock_fd >= 0) close(s->lock_fd); /* last: the file is ours until it is closed */
    pthread_mutex_destroy(&s->txn);
    as__free(s->path);
    as__free(s);
}

static const as_store_engine sqlite_engine = {"sqlite", sqlite_commit, sqlite_sync, sqlite_load,
                                              sqlite_close};

char *as__store_path_with(const char *path, const char *suffix)
{
    size_t a = strlen(path), b = strlen(suffix);
    char *p = as__malloc(a + b + 1);
    if (p) {
        memcpy(p, path, a);
        memcpy(p + a, suffix, b + 1);
    }
    return p;
}

int as__store_sync_dir(const char *path, as_error *err)
{
    char *copy = as__strdup(path); /* owned here; dirname() may write into it */
    if (copy == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    int dir = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = dir >= 0 && fsync(dir) == 0 ? 0 : errno;
    if (dir >= 0) close(dir);
    as__free(copy);
    if (rc) return as__err(err, AS_EIO, "%s: cannot sync its directory: %s", path, strerror(rc));
    return 0;
}

/* Finds SQLite's file object of the write-ahead log and opens a descriptor of ours by its
 * name (to notice it removed later), and makes the log's directory entry durable: a log
 * created just now would otherwise vanish in a power cut with every batch in it. */
static int open_wal(sqlite_store *s, const char *path, as_error *err)
{
    int rows;
    s->wal_path = sqlite3_filename_wal(sqlite3_db_filename(s->db, "main"));
    if (pragma_int(s, "SELECT count(*) FROM meta", &rows) != 0) /* a read creates the log */
        return db_err(s, err, "open");
    if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &s->wal) != SQLITE_OK ||
        s->wal == NULL || s->wal->pMethods == NULL)
        return as__err(err, AS_EIO, "%s: SQLite opened no write-ahead log", path);
    /* The unix VFS marks a new log to have its directory synced at its first xSync and clears
     * the mark then: done here, before the syncer thread exists, that write to the file
     * object never races a checkpoint's xSync on the writer thread. From then on its xSync
     * reads the descriptor and nothing else the writer touches. */
    if (s->wal->pMethods->xSync(s->wal, SQLITE_SYNC_NORMAL) != SQLITE_OK)
        return as__err(err, AS_EIO, "%s: cannot sync its write-ahead log", path);
    if (s->wal_path == NULL || (s->wal_fd = open(s->wal_path, O_RDONLY | O_CLOEXEC)) < 0)
        return as__err(err, AS_EIO, "%s: cannot open its write-ahead log: %s", path,
                       strerror(errno));
    return as__store_sync_dir(path, err);
}

/* The pid the holder of the writer lock `fd` wrote into it, or "unknown". */
static void holder_pid(int fd, char pid[24])
{
    ssize_t got = pread(fd, pid, 23, 0);
    pid[got > 0 ? got : 0] = '\0';
    pid[strcspn(pid, "\n")] = '\0';
    if (pid[0] == '\0') snprintf(pid, 24, "unknown");
}

/* One writer per file: FILE-writer is flocked for as long as the store is open and holds the
 * holder's pid. SQLite's own locks let two processes take turns, which two runtimes that
 * each hold the file's state in memory must never do. The kernel drops a flock with its
 * process, so a killed server never leaves the file locked. */
static int lock_writer(sqlite_store *s, const char *path, as_error *err)
{
    char *lock = as__store_path_with(path, "-writer"); /* owned here */
    if (lock == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    s->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    as__free(lock);
    if (s->lock_fd < 0)
        return as__err(err, AS_EIO, "%s: cannot open its writer lock %s-writer: %s", path, path,
                       strerror(errno));
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[24];
        holder_pid(s->lock_fd, pid);
        if (e == EWOULDBLOCK)
            return as__err(err, AS_EIO,
                           "%s is open for writing by another process (pid %s); one writer per "
                           "file: stop that one first",
                           path, pid);
        return as__err(err, AS_EIO, "%s: cannot lock %s-writer: %s", path, path, strerror(e));
    }
    char pid[24];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, pid, (size_t)len, 0) != len)
        return as__err(err, AS_EIO, "%s: cannot write %s-writer: %s", path, path, strerror(errno));
    return 0;
}

void as__store_sqlite_writer(const char *path, char pid[24])
{
    pid[0] = '\0';
    char *lock = as__store_path_with(path, "-writer"); /* owned here */
    int fd = lock ? open(lock, O_RDONLY | O_CLOEXEC) : -1;
    as__free(lock);
    if (fd < 0) return;
    /* the holder has it exclusively: a shared lock is refused exactly while one is there */
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) holder_pid(fd, pid);
    close(fd);
}

static int pragma_int(sqlite_store *s, const char *q, int *out)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(st);
    *out = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : -1;
}

/* Checks the file is aftersale's and of a schema this build reads; *version is its schema
 * (0 for a new, empty file). */
static int check_file(sqlite_store *s, const char *path, int *version, as_error *err)
{
    int app = 0, tables = 0;
    if (pragma_int(s, "PRAGMA application_id", &app) ||
        pragma_int(s, "PRAGMA user_version", version) ||
        pragma_int(s, "SELECT count(*) FROM sqlite_master", &tables))
        return as__err(err, AS_EIO, "%s: not a database aftersale can read (%s)", path,
                       sqlite3_errmsg(s->db));
    if (app != APP_ID && (app != 0 || tables != 0))
        return as__err(err, AS_EIO, "%s: a database, but not aftersale's; refusing to touch it",
                       path);
    if (*version > SCHEMA_VERSION)
        return as__err(err, AS_EIO, "%s: schema version %d is newer than this build's %d", path,
                       *version, SCHEMA_VERSION);
    return 0;
}

/* Brings a checked file's schema from `version` to SCHEMA_VERSION. */
static int migrate(sqlite_store *s, const char *path, int version, as_error *err)
{
    int check = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK) {
        check = sqlite3_step(st) == SQLITE_ROW && strcmp(col_text(st, 0), "ok") == 0;
        sqlite3_finalize(st);
    }
    if (!check) return as__err(err, AS_EIO, "%s: the database is damaged (quick_check failed)", path);
    /* each step's stamp, as SQL text of its own (a PRAGMA takes no bound parameter) */
#define STAMP(v) "PRAGMA application_id = " APP_ID_TEXT "; PRAGMA user_version = " #v ";"
    static const char *const stamps[] = {STAMP(1), STAMP(2), STAMP(3), STAMP(4), STAMP(5)};
    _Static_assert(sizeof stamps / sizeof stamps[0] == SCHEMA_VERSION, "a stamp per step");
#undef STAMP
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char *msg = NULL;
        if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(s->db, migrations[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(s->db, stamps[v], NULL, NULL, &msg) != SQLITE_OK ||
            sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            as__err(err, AS_EIO, "%s: migrating to schema %d failed: %s", path, v + 1,
                    msg ? msg : sqlite3_errmsg(s->db));
            sqlite3_free(msg);
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            return AS_EIO;
        }
    }
    return 0;
}

/* A store with nothing open yet; NULL on OOM. */
static sqlite_store *store_new(const char *path, const as_store_engine *engine)
{
    sqlite_store *s = as__calloc(1, sizeof *s);
    if (s == NULL || (s->path = as__strdup(path)) == NULL) {
        as__free(s);
        return NULL;
    }
    s->base.engine = engine;
    s->wal_fd = -1;
    s->lock_fd = -1;
    pthread_mutex_init(&s->txn, NULL);
    return s;
}

/* Opens the SQLite connection of `s` with `flags`. */
static int open_db(sqlite_store *s, int flags, as_error *err)
{
    if (sqlite3_open_v2(s->path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(s->db, 5000);
        return 0;
    }
    return as__err(err, AS_EIO, "%s: cannot open: %s", s->path,
                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
}

int as__store_sqlite_open(const char *path, as_store **out, as_error *err)
{
    *out = NULL;
    sqlite_store *s = store_new(path, &sqlite_engine);
    if (s == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    int rc, version;
    if ((rc = lock_writer(s, path, err)) != 0 ||
        (rc = open_db(s, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err)) != 0 ||
        (rc = check_file(s, path, &version, err)) != 0 ||
        (rc = migrate(s, path, version, err)) != 0) {
        sqlite_close(&s->base);
        return rc;
    }
    char *msg = NULL;
    if (sqlite3_exec(s->db,
                     "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
                     "PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -65536;",
                     NULL, NULL, &msg) != SQLITE_OK) {
        as__err(err, AS_EIO, "%s: %s", path, msg ? msg : "cannot set WAL mode");
        sqlite3_free(msg);
        sqlite_close(&s->base);
        return AS_EIO;
    }
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v2(s->db, sql[i], -1, &s->st[i], NULL) != SQLITE_OK) {
            rc = db_err(s, err, "prepare");
            sqlite_close(&s->base);
            return rc;
        }
    if ((rc = open_wal(s, path, err)) != 0) {
        sqlite_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static int readonly_commit(as_store *base, const unsigned char *batch, size_t len, as_error *err)
{
    return as__err(err, AS_EIO, "%s: opened read-only", ((sqlite_store *)base)->path);
}

static const as_store_engine sqlite_readonly_engine = {"sqlite (read-only)", readonly_commit,
                                                       NULL, sqlite_load, sqlite_close};

int as__store_sqlite_open_readonly(const char *path, as_store **out, as_error *err)
{
    *out = NULL;
    sqlite_store *s = store_new(path, &sqlite_readonly_engine);
    if (s == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    int rc, version = 0;
    if ((rc = open_db(s, SQLITE_OPEN_READONLY, err)) == 0 &&
        (rc = check_file(s, path, &version, err)) == 0 && version < SCHEMA_VERSION)
        rc = version == 0
                 ? as__err(err, AS_EIO, "%s: an empty database, not aftersale's", path)
                 : as__err(err, AS_EIO,
                           "%s: schema version %d is older than this build's %d: start "
                           "`aftersale serve --db %s` once, which migrates it, then try again",
                           path, version, SCHEMA_VERSION, path);
    if (rc) {
        sqlite_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

sqlite3 *as__store_sqlite_handle(as_store *s)
{
    return ((sqlite_store *)s)->db;
}
