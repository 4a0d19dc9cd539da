/* test_store.c -- the storage interface (runtime/store/store.h, docs/design.md#storage-and-durability) through the
 * SQLite engine's vtable, and the byte records of wbuf.h it carries.
 *
 * What store.h promises and these tests hold it to:
 *   - "Opens (creating when missing) the SQLite database at `path`. A file that is not an
 *     aftersale database, or one of a newer schema, or a corrupt one, is refused with AS_EIO and
 *     a sentence; it is never recreated or half-read."
 *   - commit: "Writes one batch of records as one durable transaction ... Returns 0 or AS_EIO":
 *     a malformed batch leaves no partial rows.
 *   - load: "packs, orders, cases, events (in the order they were written), outbox entries not
 *     yet acknowledged, idempotency keys", a visitor's negative code stops the load with it.
 *   - wbuf.h: "NULL is written as an absent string, told apart from \"\"", "Every read past the
 *     end sets `bad` and yields zeros". */
#include <check.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aftersale/error.h"
#include "store/stores.h"
#include "core/wbuf.h"
#include "unit_common.h"
#include "unit_scratch.h"

/* ==========================================================================================
 * Scratch files (root_make/root_remove, exists and sql_int are unit_scratch.h's)
 * ======================================================================================== */

/* A fresh path under the root for this test: "<root>/<name>". */
static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", root, name);
    unlink(buf);
}

/* The whole file, malloc'd; *len its size. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(n > 0 ? (size_t)n : 1);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(fread(p, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void spit(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* Runs SQL on `path` with a plain SQLite connection (not the engine). */
static void sql_exec(const char *path, const char *q)
{
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, q, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", q, msg ? msg : "?");
    sqlite3_free(msg);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
}

/* Opening `path` must be refused with AS_EIO, a message containing `needle`, and leave the
 * file byte for byte as it was, with no journal or WAL created beside it. */
static void assert_refused_untouched(const char *path, const char *needle)
{
    size_t n0, n1;
    unsigned char *before = slurp(path, &n0);
    as_store *s = (as_store *)0x1;
    as_error err = {0};
    int rc = as__store_sqlite_open(path, &s, &err);
    ck_assert_msg(rc == AS_EIO, "%s: opened with %d (%s), want AS_EIO", path, rc, err.msg);
    ck_assert_int_eq(err.code, AS_EIO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "message \"%s\" does not say \"%s\"", err.msg,
                  needle);
    ck_assert_msg(strstr(err.msg, path) != NULL, "message \"%s\" does not name the file", err.msg);
    unsigned char *after = slurp(path, &n1);
    ck_assert_uint_eq(n0, n1);
    ck_assert_msg(memcmp(before, after, n0) == 0, "%s was changed by a refused open", path);
    char side[512];
    snprintf(side, sizeof side, "%s-wal", path);
    ck_assert_msg(!exists(side), "%s left behind", side);
    snprintf(side, sizeof side, "%s-journal", path);
    ck_assert_msg(!exists(side), "%s left behind", side);
    free(before);
    free(after);
}

static as_store *open_ok(const char *path)
{
    as_store *s = NULL;
    as_error err = {0};
    int rc = as__store_sqlite_open(path, &s, &err);
    ck_assert_msg(rc == 0, "open %s: %d %s", path, rc, err.msg);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(s->engine);
    ck_assert_str_eq(s->engine->name, "sqlite");
    return s;
}

/* ==========================================================================================
 * A visitor that writes what load() hands back as lines of text, in call order.
 * ======================================================================================== */

#define LOG_MAX 64

typedef struct rec_log {
    char line[LOG_MAX][256];
    int n;
    int stop_at;  /* 1-based call number (after reserve) at which to return stop_code */
    int stop_code;
    int calls;
} rec_log;

static void logf_(rec_log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(rec_log *l, const char *fmt, ...)
{
    ck_assert_int_lt(l->n, LOG_MAX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->line[l->n++], sizeof l->line[0], fmt, ap);
    va_end(ap);
}

/* Blob bytes as text, non-printables as \xNN, so a NUL inside a blob shows. */
static const char *blob(char *buf, size_t cap, const void *data, size_t len)
{
    size_t o = 0;
    const unsigned char *p = data;
    buf[0] = '\0';
    for (size_t i = 0; i < len && o + 5 < cap; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f) buf[o++] = (char)p[i];
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", p[i]);
        buf[o] = '\0';
    }
    return buf;
}

static int next_call(rec_log *l)
{
    return ++l->calls == l->stop_at ? l->stop_code : 0;
}

static int v_reserve(void *ud, size_t orders, size_t cases)
{
    rec_log *l = ud;
    logf_(l, "reserve %zu %zu", orders, cases);
    return 0;
}

static int v_pack(void *ud, const char *shop, const char *name, const char *version,
                  const char *source, size_t len, int current, const char *sha256,
                  int64_t uploaded_at)
{
    rec_log *l = ud;
    ck_assert_uint_eq(len, strlen(source));
    if (sha256[0] || uploaded_at)
        logf_(l, "pack %s %s %s [%s] %d %s %lld", shop, name, version, source, current, sha256,
              (long long)uploaded_at);
    else
        logf_(l, "pack %s %s %s [%s] %d", shop, name, version, source, current);
    return next_call(l);
}

static int v_order(void *ud, const void *data, size_t len)
{
    rec_log *l = ud;
    char b[128];
    logf_(l, "order [%s]", blob(b, sizeof b, data, len));
    return next_call(l);
}

static int v_case(void *ud, const void *data, size_t len, int64_t due)
{
    rec_log *l = ud;
    char b[128];
    if (due == INT64_MIN) logf_(l, "case [%s] no-due", blob(b, sizeof b, data, len));
    else logf_(l, "case [%s] due %lld", blob(b, sizeof b, data, len), (long long)due);
    return next_call(l);
}

static int v_event(void *ud, const char *case_id, uint32_t n, const void *data, size_t len)
{
    rec_log *l = ud;
    char b[128];
    logf_(l, "event %s %u [%s]", case_id, n, blob(b, sizeof b, data, len));
    return next_call(l);
}

static int v_outbox(void *ud, const char *key, const char *kind, const char *case_id,
                    int64_t amount)
{
    rec_log *l = ud;
    logf_(l, "outbox %s %s %s %lld", key, kind, case_id, (long long)amount);
    return next_call(l);
}

static int v_idem(void *ud, const char *key, int code, const char *message, int64_t at)
{
    rec_log *l = ud;
    logf_(l, "idem %s %d [%s] @%lld", key, code, message, (long long)at);
    return next_call(l);
}

static int v_outbox_ack(void *ud, const char *key, const char *url)
{
    rec_log *l = ud;
    logf_(l, "ack %s %s", key, url);
    return next_call(l);
}

static int v_refused(void *ud, const char *table, const char *key, const char *why)
{
    rec_log *l = ud;
    logf_(l, "refused %s %s [%s]", table, key, why);
    return 0;
}

/* `refusing`: with v_refused, which logs the row and goes on. */
static int load_with(as_store *s, rec_log *l, int refusing, as_error *err)
{
    as_store_visitor v = {l,       v_reserve, v_pack, v_order,      v_case,
                          v_event, v_outbox,  v_idem, v_outbox_ack, refusing ? v_refused : NULL};
    memset(err, 0, sizeof *err);
    return s->engine->load(s, &v, err);
}

static int load_into(as_store *s, rec_log *l, as_error *err)
{
    return load_with(s, l, 0, err);
}

/* load() must succeed and hand back exactly `want` (NULL-terminated), in this order. */
static void assert_loads(as_store *s, const char *const *want)
{
    rec_log l;
    memset(&l, 0, sizeof l);
    as_error err;
    int rc = load_into(s, &l, &err);
    ck_assert_msg(rc == 0, "load: %d %s", rc, err.msg);
    /* store.h fixes the order of the kinds of rows, not of packs or of acknowledgements
     * among themselves */
    for (int i = 0; i < l.n; i++)
        for (int j = i + 1; j < l.n && strncmp(l.line[j], l.line[i], 4) == 0; j++)
            if ((strncmp(l.line[i], "pack ", 5) == 0 || strncmp(l.line[i], "ack ", 4) == 0) &&
                strcmp(l.line[i], l.line[j]) > 0) {
                char t[sizeof l.line[0]];
                memcpy(t, l.line[i], sizeof t);
                memcpy(l.line[i], l.line[j], sizeof t);
                memcpy(l.line[j], t, sizeof t);
            }
    int n = 0;
    while (want[n]) n++;
    for (int i = 0; i < n || i < l.n; i++) {
        const char *w = i < n ? want[i] : "(nothing)";
        const char *g = i < l.n ? l.line[i] : "(nothing)";
        ck_assert_msg(strcmp(w, g) == 0, "load row %d: got \"%s\", want \"%s\"", i, g, w);
    }
}

/* ==========================================================================================
 * Batch builders: the record layouts of store.h, written with the wbuf calls journal.c uses.
 * ======================================================================================== */

static void r_order(as_wbuf *b, const char *id, const void *data, size_t n)
{
    as__wbuf_u8(b, AS_REC_ORDER);
    as__wbuf_str(b, id);
    as__wbuf_u32(b, (uint32_t)n);
    as__wbuf_bytes(b, data, n);
}

static void r_case(as_wbuf *b, const char *id, const char *order, int64_t due, const char *data)
{
    as__wbuf_u8(b, AS_REC_CASE);
    as__wbuf_str(b, id);
    as__wbuf_str(b, order);
    as__wbuf_i64(b, due);
    as__wbuf_u32(b, (uint32_t)strlen(data));
    as__wbuf_bytes(b, data, strlen(data));
}

static void r_event(as_wbuf *b, const char *case_id, uint32_t n, const char *data)
{
    as__wbuf_u8(b, AS_REC_EVENT);
    as__wbuf_str(b, case_id);
    as__wbuf_u32(b, n);
    as__wbuf_u32(b, (uint32_t)strlen(data));
    as__wbuf_bytes(b, data, strlen(data));
    as__wbuf_str(b, NULL); /* no party's command made it */
}

static void r_outbox(as_wbuf *b, const char *key, const char *kind, const char *case_id,
                     int64_t amount)
{
    as__wbuf_u8(b, AS_REC_OUTBOX);
    as__wbuf_str(b, key);
    as__wbuf_str(b, kind);
    as__wbuf_str(b, case_id);
    as__wbuf_i64(b, amount);
}

/* `url` NULL: acknowledged for every URL */
static void r_ack(as_wbuf *b, const char *key, const char *url)
{
    as__wbuf_u8(b, AS_REC_OUTBOX_ACK);
    as__wbuf_str(b, key);
    as__wbuf_str(b, url);
}

static void r_idem_at(as_wbuf *b, const char *key, int code, const char *msg, int64_t at)
{
    as__wbuf_u8(b, AS_REC_IDEM);
    as__wbuf_str(b, key);
    as__wbuf_u32(b, (uint32_t)code); /* negative as two's complement */
    as__wbuf_str(b, msg);
    as__wbuf_i64(b, at);
}

static void r_idem(as_wbuf *b, const char *key, int code, const char *msg)
{
    r_idem_at(b, key, code, msg, 1000);
}

static void r_prune(as_wbuf *b, int64_t before)
{
    as__wbuf_u8(b, AS_REC_PRUNE);
    as__wbuf_i64(b, before);
}

static void r_pack(as_wbuf *b, const char *shop, const char *name, const char *version,
                   const char *source, int current)
{
    as__wbuf_u8(b, AS_REC_PACK);
    as__wbuf_str(b, shop);
    as__wbuf_str(b, name);
    as__wbuf_str(b, version);
    as__wbuf_str(b, source);
    as__wbuf_u8(b, (uint8_t)current);
    as__wbuf_str(b, "");
    as__wbuf_i64(b, 0);
}

static int commit(as_store *s, const as_wbuf *b, as_error *err)
{
    ck_assert(!b->oom);
    memset(err, 0, sizeof *err);
    return s->engine->commit(s, b->p, b->len, err);
}

static void commit_ok(as_store *s, const as_wbuf *b)
{
    as_error err;
    int rc = commit(s, b, &err);
    ck_assert_msg(rc == 0, "commit: %d %s", rc, err.msg);
}

/* The engines behind the interface: each batch test runs once per engine (a Check loop test,
 * `_i`). The memory engine keeps its rows across close(), so "reopen" restarts on the same
 * rows there and on the same file for SQLite. */
enum { ENG_SQLITE, ENG_MEMORY, ENG_COUNT };

typedef struct eng {
    int kind;
    as_store *s;
    char path[256];
} eng;

static as_store *eng_open(eng *e, int kind, const char *name)
{
    e->kind = kind;
    path_of(e->path, sizeof e->path, name);
    if (kind == ENG_MEMORY) {
        e->s = as__store_memory_new();
        ck_assert_ptr_nonnull(e->s);
        ck_assert_str_eq(e->s->engine->name, "memory");
    } else {
        e->s = open_ok(e->path);
    }
    return e->s;
}

static as_store *eng_reopen(eng *e)
{
    e->s->engine->close(e->s);
    if (e->kind == ENG_SQLITE) e->s = open_ok(e->path);
    return e->s;
}

static void eng_free(eng *e)
{
    e->s->engine->close(e->s);
    if (e->kind == ENG_MEMORY) as__store_memory_free(e->s);
    e->s = NULL;
}

/* ==========================================================================================
 * Opening
 * ======================================================================================== */

START_TEST(store_new_file_gets_schema)
{
    char path[256];
    path_of(path, sizeof path, "new.db");
    ck_assert(!exists(path));
    as_store *s = open_ok(path);
    ck_assert(exists(path));
    static const char *const empty[] = {"reserve 0 0", NULL};
    assert_loads(s, empty);
    s->engine->close(s);

    /* the file is marked as aftersale's, schema 5, with the tables of sqlite_store.c */
    ck_assert_int_eq(sql_int(path, "PRAGMA application_id"), 0x41534c31);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 5);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND"
                                   " name IN ('meta', 'orders', 'cases', 'events', 'outbox',"
                                   " 'outbox_acks', 'idempotency', 'packs')"),
                     8);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM meta WHERE k = 'format' AND"
                                   " v = 'aftersale'"),
                     1);
    /* WAL, as store.h says */
    ck_assert_int_eq(sql_int(path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);

    /* opening it again works, migrates nothing twice, and keeps what was committed */
    s = open_ok(path);
    as_wbuf b = {0};
    r_order(&b, "O1", "order-1", 7);
    commit_ok(s, &b);
    s->engine->close(s);
    s = open_ok(path);
    static const char *const one[] = {"reserve 1 0", "order [order-1]", NULL};
    assert_loads(s, one);
    s->engine->close(s);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM meta"), 1);
    as__wbuf_free(&b);
}
END_TEST

/* store.h: "A file that is not an aftersale database ... is refused with AS_EIO and a
 * sentence; it is never recreated or half-read." */
START_TEST(store_foreign_sqlite_database_refused_untouched)
{
    char path[256];
    path_of(path, sizeof path, "foreign.db");
    sql_exec(path, "CREATE TABLE mine(x INTEGER, y TEXT);"
                   "INSERT INTO mine VALUES(1, 'keep me'), (2, 'and me');");
    assert_refused_untouched(path, "not aftersale's");
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM mine"), 2);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'orders'"), 0);

    /* a database another program marked as its own, still without tables, is not ours
     * either */
    char other[256];
    path_of(other, sizeof other, "other-app.db");
    sql_exec(other, "PRAGMA application_id = 1234; PRAGMA user_version = 1;");
    assert_refused_untouched(other, "not aftersale's");
    ck_assert_int_eq(sql_int(other, "PRAGMA application_id"), 1234);
}
END_TEST

START_TEST(store_garbage_file_refused_untouched)
{
    char path[256];
    unsigned char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 7 + 13);
    path_of(path, sizeof path, "garbage.db");
    spit(path, junk, sizeof junk);
    assert_refused_untouched(path, "not a database aftersale can read");

    /* a short text file is not an empty database to be recreated either */
    path_of(path, sizeof path, "notes.txt");
    spit(path, "hello, this is not a database\n", 30);
    assert_refused_untouched(path, path);
}
END_TEST

START_TEST(store_newer_schema_refused)
{
    char path[256];
    path_of(path, sizeof path, "newer.db");
    as_store *s = open_ok(path);
    s->engine->close(s);
    sql_exec(path, "PRAGMA user_version = 6;");
    assert_refused_untouched(path, "newer");
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 6);
}
END_TEST

/* sqlite_store.c: "each schema version is a step from the one before". A file written by
 * the schema-1 build (outbox acknowledged only as a whole) opens as schema 3 with its rows
 * (an entry already done is settled: pruned), and takes per-URL acknowledgements from then
 * on. */
START_TEST(store_schema_1_file_migrates_keeping_rows)
{
    char path[256];
    path_of(path, sizeof path, "v1.db");
    /* schema 1 exactly as the previous build created it */
    sql_exec(path,
             "PRAGMA application_id = 1095978033; PRAGMA user_version = 1;"
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
             " source TEXT NOT NULL, current INTEGER NOT NULL, PRIMARY KEY(shop, version))"
             " WITHOUT ROWID;"
             "INSERT INTO orders VALUES('O1', X'6f31');"
             "INSERT INTO outbox VALUES('C1:refund', 'refund', 'C1', 19900, 0);"
             "INSERT INTO outbox VALUES('C2:refund', 'refund', 'C2', 500, 1);");
    ck_assert_int_eq(0x41534c31, 1095978033);
    as_store *s = open_ok(path);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 5);
    static const char *const kept[] = {"reserve 1 0", "order [o1]",
                                       "outbox C1:refund refund C1 19900", NULL};
    assert_loads(s, kept);
    as_wbuf b = {0};
    r_ack(&b, "C1:refund", "http://a.example/hook");
    commit_ok(s, &b);
    static const char *const acked[] = {"reserve 1 0", "order [o1]",
                                        "outbox C1:refund refund C1 19900",
                                        "ack C1:refund http://a.example/hook", NULL};
    assert_loads(s, acked);
    s->engine->close(s);
    s = open_ok(path); /* migrated once: opening again changes nothing */
    assert_loads(s, acked);
    s->engine->close(s);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 5);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM outbox_acks"), 1);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM outbox WHERE key = 'C2:refund'"), 0);
    as__wbuf_free(&b);
}
END_TEST

/* sqlite_store.c, schema 5: "The rows of schema 4 move there by their (case, entry)". A
 * schema-4 file (made here from a new one: its command log a table of its own) keeps every
 * entry, and each command lands in the row of its entry and no other, behind its layout byte
 * 00. */
START_TEST(store_schema_4_commands_move_into_their_entries)
{
    char path[256];
    path_of(path, sizeof path, "v4.db");
    as_store *s = open_ok(path);
    as_wbuf b = {0};
    r_case(&b, "C1", "O1", INT64_MIN, "c1");
    r_event(&b, "C1", 0, "c1-e0");
    r_event(&b, "C1", 1, "c1-e1");
    r_event(&b, "C2", 0, "c2-e0");
    commit_ok(s, &b);
    s->engine->close(s);
    sql_exec(path, "ALTER TABLE events DROP COLUMN cmd;"
                   "CREATE TABLE commands(case_id TEXT NOT NULL, n INTEGER NOT NULL,"
                   " data BLOB NOT NULL);"
                   "INSERT INTO commands VALUES('C1', 1, X'c101'), ('C2', 0, X'c200'),"
                   " ('C9', 0, X'c900');"
                   "PRAGMA user_version = 4;");
    s = open_ok(path);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 5);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name = 'commands'"),
                     0);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM events"), 3);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM events WHERE case_id = 'C1' AND n = 1"
                                   " AND cmd = X'00c101'"),
                     1);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM events WHERE case_id = 'C2' AND n = 0"
                                   " AND cmd = X'00c200'"),
                     1);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM events WHERE cmd IS NULL"), 1);
    static const char *const kept[] = {"reserve 0 1", "case [c1] no-due", "event C1 0 [c1-e0]",
                                       "event C1 1 [c1-e1]", "event C2 0 [c2-e0]", NULL};
    assert_loads(s, kept);
    s->engine->close(s);
    as__wbuf_free(&b);
}
END_TEST

/* store.h: OUTBOX_ACK "str key, str url (absent: acknowledged for every URL, the entry is
 * done)"; load() hands back the entries not done and then the URLs that acknowledged them. */
START_TEST(store_outbox_ack_per_url_survives_reopen)
{
    eng e;
    as_store *s = eng_open(&e, _i, "acks.db");
    as_wbuf b = {0};
    r_outbox(&b, "K1", "refund", "C1", 100);
    r_outbox(&b, "K2", "refund", "C2", 200);
    r_outbox(&b, "K3", "refund", "C3", 300);
    r_ack(&b, "K1", "http://a/x");
    commit_ok(s, &b);
    as__wbuf_reset(&b);
    r_ack(&b, "K1", "http://a/x"); /* again: one row */
    r_ack(&b, "K1", "https://b/y");
    r_ack(&b, "K2", "http://a/x");
    r_ack(&b, "K2", NULL);         /* K2 done everywhere: neither it nor its acks come back */
    r_ack(&b, "K3", "http://a/x");
    r_ack(&b, "K9", "http://a/x"); /* unknown: leaves nothing behind */
    /* a key written again is the instruction it names, unchanged and not due anew */
    r_outbox(&b, "K2", "refund", "C2", 999);
    commit_ok(s, &b);
    static const char *const want[] = {
        "reserve 0 0",
        "outbox K1 refund C1 100",
        "outbox K3 refund C3 300",
        "ack K1 http://a/x",
        "ack K1 https://b/y",
        "ack K3 http://a/x",
        NULL,
    };
    assert_loads(s, want);
    s = eng_reopen(&e);
    assert_loads(s, want);

    /* the last URL's answer: K1 done, its acknowledgements no longer handed back */
    as__wbuf_reset(&b);
    r_ack(&b, "K1", NULL);
    commit_ok(s, &b);
    s = eng_reopen(&e);
    static const char *const left[] = {"reserve 0 0", "outbox K3 refund C3 300",
                                       "ack K3 http://a/x", NULL};
    assert_loads(s, left);
    if (e.kind == ENG_SQLITE) {
        eng_free(&e);
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM outbox_acks WHERE key = 'K9'"), 0);
        ck_assert_int_eq(sql_int(e.path, "SELECT amount FROM outbox WHERE key = 'K2'"), 200);
    } else {
        eng_free(&e);
    }
    as__wbuf_free(&b);
}
END_TEST

/* store.h PRUNE: idempotency keys answered before `before` are forgotten, newer ones kept
 * (handed back oldest first), and outbox entries done for every URL leave the file with their
 * acknowledgements; entries still owed stay. */
START_TEST(store_prune_forgets_old_keys_and_settled_outbox)
{
    eng e;
    as_store *s = eng_open(&e, _i, "prune.db");
    as_wbuf b = {0};
    r_idem_at(&b, "k1", 0, "", 1000);
    r_idem_at(&b, "k2", AS_ENOT_FOUND, "unknown case", 2000);
    r_idem_at(&b, "k3", 0, "", 3000);
    r_outbox(&b, "E1", "refund", "C1", 100);
    r_outbox(&b, "E2", "refund", "C2", 200);
    r_ack(&b, "E1", "http://a/x");
    r_ack(&b, "E2", "http://a/x");
    r_ack(&b, "E1", NULL);
    commit_ok(s, &b);
    as__wbuf_reset(&b);
    r_prune(&b, 2000); /* k1 goes; k2, answered at 2000, stays */
    commit_ok(s, &b);
    char k2[64];
    snprintf(k2, sizeof k2, "idem k2 %d [unknown case] @2000", AS_ENOT_FOUND);
    const char *const want[] = {"reserve 0 0", "outbox E2 refund C2 200", "ack E2 http://a/x",
                                k2, "idem k3 0 [] @3000", NULL};
    assert_loads(s, want);
    s = eng_reopen(&e);
    assert_loads(s, want);
    if (e.kind == ENG_SQLITE) {
        eng_free(&e);
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM outbox"), 1);
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM outbox_acks"), 1);
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM idempotency"), 2);
    } else {
        eng_free(&e);
    }
    as__wbuf_free(&b);
}
END_TEST

/* sqlite_store.c: "one writer per file". While a store is open on the file, another open
 * for writing is refused naming the holder's pid and leaves the file as it was; once the
 * holder closes, the file opens again with what was committed. */
START_TEST(store_second_writer_refused_naming_the_holder)
{
    char path[256], pid[32];
    path_of(path, sizeof path, "writer.db");
    as_store *s = open_ok(path);
    as_wbuf b = {0};
    r_outbox(&b, "K1", "refund", "C1", 100);
    commit_ok(s, &b);
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    size_t n0, w0, n1, w1;
    unsigned char *db0 = slurp(path, &n0), *wal0 = slurp(wal, &w0);
    as_store *second = (as_store *)0x1;
    as_error err = {0};
    ck_assert_int_eq(as__store_sqlite_open(path, &second, &err), AS_EIO);
    ck_assert_ptr_null(second);
    ck_assert_msg(strstr(err.msg, pid) && strstr(err.msg, "one writer per file") &&
                      strstr(err.msg, path),
                  "message \"%s\" names neither the holder nor the file", err.msg);
    unsigned char *db1 = slurp(path, &n1), *wal1 = slurp(wal, &w1);
    ck_assert(n0 == n1 && memcmp(db0, db1, n0) == 0);
    ck_assert(w0 == w1 && memcmp(wal0, wal1, w0) == 0);
    free(db0), free(wal0), free(db1), free(wal1);
    s->engine->close(s);
    s = open_ok(path);
    static const char *const want[] = {"reserve 0 0", "outbox K1 refund C1 100", NULL};
    assert_loads(s, want);
    s->engine->close(s);
    as__wbuf_free(&b);
}
END_TEST

/* store.h: "... or a corrupt one, is refused with AS_EIO". */
START_TEST(store_damaged_file_refused)
{
    char path[256];
    path_of(path, sizeof path, "damaged.db");
    as_store *s = open_ok(path);
    as_wbuf b = {0};
    char data[600];
    memset(data, 'd', sizeof data);
    for (int i = 0; i < 400; i++) {
        char id[32];
        snprintf(id, sizeof id, "O%04d", i);
        r_order(&b, id, data, sizeof data);
    }
    commit_ok(s, &b);
    s->engine->close(s); /* checkpoints: everything is in the main file */
    as__wbuf_free(&b);
    char wal[300];
    snprintf(wal, sizeof wal, "%s-wal", path);
    ck_assert(!exists(wal));

    /* scribble over the middle of the file, keeping the header (page 1) intact */
    size_t n;
    unsigned char *p = slurp(path, &n);
    ck_assert_uint_gt(n, 16 * 4096);
    for (size_t i = n / 2; i < n / 2 + 3 * 4096; i++) p[i] = (unsigned char)(i * 31 + 5);
    spit(path, p, n);
    free(p);
    assert_refused_untouched(path, "damaged");
}
END_TEST

/* ==========================================================================================
 * Commit and load
 * ======================================================================================== */

START_TEST(store_commit_then_load_hands_back_every_row)
{
    eng e;
    as_store *s = eng_open(&e, _i, "rows.db");
    as_wbuf b = {0};
    r_pack(&b, "S1", "m-rules", "1", "return {v=1}", 1);
    r_order(&b, "O1", "ord-one", 7);
    r_order(&b, "O2", "ord\0two", 7); /* blobs are bytes: a NUL inside survives */
    r_case(&b, "C1", "O1", 1772323200000ll, "case-one");
    r_case(&b, "C2", "O2", INT64_MIN, "case-two");
    r_event(&b, "C1", 0, "c1-e0");
    r_event(&b, "C2", 0, "c2-e0");
    r_event(&b, "C1", 1, "c1-e1");
    r_outbox(&b, "C1:refund", "refund", "C1", 19900);
    r_outbox(&b, "C2:notify", "notify", "C2", 0);
    r_idem(&b, "k-ok", 0, "");
    r_idem(&b, "k-refused", AS_ENOT_FOUND, "unknown case 'C9'");
    commit_ok(s, &b);

    /* a second batch: upserts, a later event, an ack, a newer pack version, a deadline
     * cleared, and an idempotency key written again (the first answer stands) */
    as__wbuf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    r_order(&b, "O1", "ord-one-v2", 10);
    r_case(&b, "C1", "O1", INT64_MIN, "case-one-v2");
    r_case(&b, "C2", "O2", 1772323260000ll, "case-two-v2");
    r_event(&b, "C1", 2, "c1-e2");
    r_event(&b, "C2", 1, "c2-e1");
    r_ack(&b, "C1:refund", NULL);
    r_ack(&b, "no-such-key", NULL); /* acknowledging what is unknown is harmless */
    r_pack(&b, "S1", "m-rules", "2", "return {v=2}", 1);
    r_idem(&b, "k-refused", 0, "second answer");
    commit_ok(s, &b);

    char refused[64];
    snprintf(refused, sizeof refused, "idem k-refused %d [unknown case 'C9'] @1000", AS_ENOT_FOUND);
    const char *const want[] = {
        "reserve 2 2",
        /* packs: the older version no longer current */
        "pack S1 m-rules 1 [return {v=1}] 0",
        "pack S1 m-rules 2 [return {v=2}] 1",
        "order [ord-one-v2]",
        "order [ord\\x00two]",
        "case [case-one-v2] no-due",
        "case [case-two-v2] due 1772323260000",
        /* events in the order they were committed, across cases and batches */
        "event C1 0 [c1-e0]",
        "event C2 0 [c2-e0]",
        "event C1 1 [c1-e1]",
        "event C1 2 [c1-e2]",
        "event C2 1 [c2-e1]",
        /* the acknowledged refund is not handed back */
        "outbox C2:notify notify C2 0",
        "idem k-ok 0 [] @1000",
        refused, /* the code comes back negative, the message as written */
        NULL,
    };
    assert_loads(s, want);

    /* and the same after closing and opening the store again */
    s = eng_reopen(&e);
    assert_loads(s, want);
    eng_free(&e);
    as__wbuf_free(&b);
}
END_TEST

START_TEST(store_load_keeps_every_due_value)
{
    eng e;
    as_store *s = eng_open(&e, _i, "due.db");
    as_wbuf b = {0};
    r_order(&b, "O1", "o", 1);
    r_case(&b, "C1", "O1", -5, "negative due is a due");
    r_case(&b, "C2", "O1", 0, "zero due is a due");
    r_case(&b, "C3", "O1", INT64_MAX, "far");
    commit_ok(s, &b);
    static const char *const want[] = {
        "reserve 1 3",
        "order [o]",
        "case [negative due is a due] due -5",
        "case [zero due is a due] due 0",
        "case [far] due 9223372036854775807",
        NULL,
    };
    assert_loads(s, want);
    eng_free(&e);
    as__wbuf_free(&b);
}
END_TEST

/* store.h: "A visitor returns 0 to go on or a negative code to stop the load with it." */
START_TEST(store_visitor_stops_load_with_its_code)
{
    eng e;
    as_store *s = eng_open(&e, _i, "stop.db");
    as_wbuf b = {0};
    r_order(&b, "O1", "o1", 2);
    r_order(&b, "O2", "o2", 2);
    r_case(&b, "C1", "O1", INT64_MIN, "c1");
    r_event(&b, "C1", 0, "e0");
    commit_ok(s, &b);

    rec_log l;
    memset(&l, 0, sizeof l);
    l.stop_at = 1; /* the first order */
    l.stop_code = AS_ENOMEM;
    as_error err;
    int rc = load_into(s, &l, &err);
    ck_assert_int_eq(rc, AS_ENOMEM);
    ck_assert_int_eq(err.code, AS_ENOMEM);
    ck_assert_str_ne(err.msg, "");
    ck_assert_int_eq(l.n, 2); /* reserve, the order that stopped it; no case, no event */
    ck_assert_str_eq(l.line[1], "order [o1]");

    memset(&l, 0, sizeof l);
    l.stop_at = 4; /* the event */
    l.stop_code = AS_EIO;
    ck_assert_int_eq(load_into(s, &l, &err), AS_EIO);
    ck_assert_int_eq(l.n, 5);
    ck_assert_str_eq(l.line[4], "event C1 0 [e0]");
    eng_free(&e);
    as__wbuf_free(&b);
}
END_TEST

/* store.h: a refused row "stops the load with a sentence that names the file, the row and
 * `aftersale db check FILE`"; with a `refused` callback the load hears of it and goes on;
 * AS_ENOMEM always stops. */
START_TEST(store_refused_row_is_named_or_handed_on)
{
    eng e;
    as_store *s = eng_open(&e, _i, "refused.db");
    as_wbuf b = {0};
    r_order(&b, "O1", "o1", 2);
    r_case(&b, "C1", "O1", INT64_MIN, "c1");
    r_event(&b, "C1", 0, "e0");
    r_event(&b, "C1", 1, "e1");
    commit_ok(s, &b);

    rec_log l;
    memset(&l, 0, sizeof l);
    l.stop_at = 3; /* event C1#0 */
    l.stop_code = AS_EIO;
    as_error err;
    ck_assert_int_eq(load_with(s, &l, 0, &err), AS_EIO);
    ck_assert_msg(strstr(err.msg, "events C1#0 could not be restored"), "%s", err.msg);
    if (e.kind == ENG_SQLITE) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "`aftersale db check %s`", e.path);
        ck_assert_msg(strstr(err.msg, cmd) && strncmp(err.msg, e.path, strlen(e.path)) == 0,
                      "%s", err.msg);
    }

    memset(&l, 0, sizeof l);
    l.stop_at = 3;
    l.stop_code = AS_EIO;
    ck_assert_int_eq(load_with(s, &l, 1, &err), 0);
    ck_assert_int_eq(l.n, 6);
    ck_assert_str_eq(l.line[3], "event C1 0 [e0]");
    ck_assert_str_eq(l.line[4], "refused events C1#0 [refused by the runtime]");
    ck_assert_str_eq(l.line[5], "event C1 1 [e1]");

    memset(&l, 0, sizeof l);
    l.stop_at = 2; /* the case, for lack of memory: not a row's fault */
    l.stop_code = AS_ENOMEM;
    ck_assert_int_eq(load_with(s, &l, 1, &err), AS_ENOMEM);
    ck_assert_int_eq(l.n, 3);
    ck_assert_msg(strstr(err.msg, "out of memory restoring cases C1"), "%s", err.msg);
    eng_free(&e);
    as__wbuf_free(&b);
}
END_TEST

/* store.h: the read-only open takes no writer lock, writes nothing, reads what a writer
 * committed while that writer holds the file, and refuses what it cannot read untouched. */
START_TEST(store_readonly_open_reads_beside_the_writer)
{
    char path[256];
    path_of(path, sizeof path, "ro.db");
    as_store *w = open_ok(path);
    as_wbuf b = {0};
    r_order(&b, "O1", "o1", 2);
    commit_ok(w, &b);
    as_store *r = NULL;
    as_error err = {0};
    ck_assert_int_eq(as__store_sqlite_open_readonly(path, &r, &err), 0);
    static const char *const want[] = {"reserve 1 0", "order [o1]", NULL};
    assert_loads(r, want);
    /* what the writer commits later, the reader's next load sees */
    as__wbuf_reset(&b);
    r_order(&b, "O2", "o2", 2);
    commit_ok(w, &b);
    static const char *const both[] = {"reserve 2 0", "order [o1]", "order [o2]", NULL};
    assert_loads(r, both);
    ck_assert_int_eq(r->engine->commit(r, b.p, b.len, &err), AS_EIO);
    ck_assert_ptr_null(r->engine->sync);
    r->engine->close(r);
    w->engine->close(w);

    /* a missing file is not created; an older schema asks for a server start */
    char missing[256];
    path_of(missing, sizeof missing, "ro-missing.db");
    ck_assert_int_eq(as__store_sqlite_open_readonly(missing, &r, &err), AS_EIO);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(access(missing, F_OK), -1);
    sql_exec(path, "PRAGMA user_version = 1");
    ck_assert_int_eq(as__store_sqlite_open_readonly(path, &r, &err), AS_EIO);
    ck_assert_msg(strstr(err.msg, "older than this build's") && strstr(err.msg, "aftersale serve"),
                  "%s", err.msg);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 1);
    as__wbuf_free(&b);
}
END_TEST

/* A new PACK version becomes the shop's current one; other shops' current versions stay,
 * even when they hold a pack of the same name and version. */
START_TEST(store_pack_current_is_per_shop)
{
    eng e;
    as_store *s = eng_open(&e, _i, "packs.db");
    as_wbuf b = {0};
    r_pack(&b, "S1", "rules", "1", "s1-v1", 1);
    r_pack(&b, "S2", "rules", "1", "s2-v1", 1);
    commit_ok(s, &b);
    as__wbuf_reset(&b);
    r_pack(&b, "S1", "rules", "2", "s1-v2", 1);
    commit_ok(s, &b);
    static const char *const want[] = {
        "reserve 0 0",
        "pack S1 rules 1 [s1-v1] 0",
        "pack S1 rules 2 [s1-v2] 1",
        "pack S2 rules 1 [s2-v1] 1",
        NULL,
    };
    assert_loads(s, want);
    s = eng_reopen(&e);
    assert_loads(s, want);
    eng_free(&e);
    as__wbuf_free(&b);
}
END_TEST

/* Commit with a batch of `n` bytes that must be refused with AS_EIO, after which the store
 * still loads exactly `want` and takes a good batch. */
static void assert_bad_batch(as_store *s, const unsigned char *p, size_t n,
                             const char *const *want)
{
    as_error err = {0};
    int rc = s->engine->commit(s, p, n, &err);
    ck_assert_msg(rc == AS_EIO, "a malformed batch of %zu bytes committed with %d", n, rc);
    ck_assert_int_eq(err.code, AS_EIO);
    ck_assert_str_ne(err.msg, "");
    assert_loads(s, want);
}

START_TEST(store_malformed_batch_leaves_database_as_it_was)
{
    eng e;
    as_store *s = eng_open(&e, _i, "malformed.db");
    as_wbuf b = {0};
    r_pack(&b, "S1", "m", "1", "src-1", 1);
    r_order(&b, "O1", "o1", 2);
    commit_ok(s, &b);
    static const char *const before[] = {"reserve 1 0", "pack S1 m 1 [src-1] 1", "order [o1]",
                                         NULL};
    assert_loads(s, before);

    /* good records, then a CASE record cut short in its data */
    as_wbuf bad = {0};
    r_order(&bad, "O2", "o2", 2);
    r_event(&bad, "C1", 0, "e0");
    r_outbox(&bad, "K", "refund", "C1", 5);
    r_idem(&bad, "key", 0, "");
    size_t good = bad.len;
    r_case(&bad, "C1", "O2", 99, "a case record");
    for (size_t cut = good + 1; cut < bad.len; cut += 3)
        assert_bad_batch(s, bad.p, cut, before);

    /* an unknown record kind after good ones */
    bad.len = good;
    as__wbuf_u8(&bad, 99);
    as__wbuf_str(&bad, "x");
    assert_bad_batch(s, bad.p, bad.len, before);
    /* kind 0 */
    bad.len = good;
    as__wbuf_u8(&bad, 0);
    assert_bad_batch(s, bad.p, bad.len, before);

    /* a PACK record cut after its shop: the earlier version stays current (the statement
     * that clears `current` ran inside the rolled-back transaction) */
    as__wbuf_reset(&bad);
    as__wbuf_u8(&bad, AS_REC_PACK);
    as__wbuf_str(&bad, "S1");
    as__wbuf_str(&bad, "m");
    assert_bad_batch(s, bad.p, bad.len, before);

    /* a string length pointing past the end of the batch */
    as__wbuf_reset(&bad);
    as__wbuf_u8(&bad, AS_REC_OUTBOX_ACK);
    as__wbuf_u32(&bad, 1000);
    as__wbuf_bytes(&bad, "abc", 3);
    assert_bad_batch(s, bad.p, bad.len, before);

    /* the store is not left inside a transaction: a good batch still commits */
    as__wbuf_reset(&b);
    r_order(&b, "O4", "o4", 2);
    commit_ok(s, &b);
    static const char *const after[] = {"reserve 2 0", "pack S1 m 1 [src-1] 1", "order [o1]",
                                        "order [o4]", NULL};
    assert_loads(s, after);
    s = eng_reopen(&e);
    assert_loads(s, after);
    eng_free(&e);

    /* nothing of the refused batches reached the file either */
    if (e.kind == ENG_SQLITE) {
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM orders"), 2);
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM events"), 0);
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM outbox"), 0);
        ck_assert_int_eq(sql_int(e.path, "SELECT count(*) FROM idempotency"), 0);
    }
    as__wbuf_free(&b);
    as__wbuf_free(&bad);
}
END_TEST

/* store.h: sqlite's sync() makes what commit() wrote durable by flushing the write-ahead log,
 * which exists from the open on. */
START_TEST(store_sqlite_sync_flushes_the_log)
{
    char path[256], wal[300];
    path_of(path, sizeof path, "sync.db");
    snprintf(wal, sizeof wal, "%s-wal", path);
    as_store *s = open_ok(path);
    ck_assert(exists(wal));
    ck_assert_ptr_nonnull(s->engine->sync);
    as_wbuf b = {0};
    r_order(&b, "O1", "order-1", 7);
    commit_ok(s, &b);
    struct stat st;
    ck_assert_int_eq(stat(wal, &st), 0);
    ck_assert_int_gt(st.st_size, 0); /* the transaction sits in the log, for sync() */
    as_error err = {0};
    ck_assert_int_eq(s->engine->sync(s, &err), 0);
    s->engine->close(s);
    as__wbuf_free(&b);

    as_store *m = as__store_memory_new(); /* commit() alone is durable there */
    ck_assert_ptr_null(m->engine->sync);
    as__store_memory_free(m);
}
END_TEST

/* sqlite_store.c: "A log removed underneath ... sync() notices, copies the log into the main
 * file with a FULL checkpoint and fails with a sentence". Removed (`rm`, _i 0) or replaced by
 * another file under its name (`mv` and a new empty one, _i 1): the batch synced before the
 * removal and the one committed after it are both in the main file alone -- a copy of it
 * without its log and -shm, which is what a kill -9 right after the failed sync would leave
 * to a restart. */
START_TEST(store_sqlite_removed_log_is_saved_into_the_main_file)
{
    char path[256], wal[300], moved[300], copy[256], want[700];
    path_of(path, sizeof path, "gone.db");
    path_of(copy, sizeof copy, "gone-copy.db");
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(moved, sizeof moved, "%s-moved", path);
    as_store *s = open_ok(path);
    as_wbuf b1 = {0}, b2 = {0}, b3 = {0};
    as_error err = {0};
    r_order(&b1, "O1", "order-1", 7);
    commit_ok(s, &b1);
    ck_assert_int_eq(s->engine->sync(s, &err), 0); /* O1 acknowledged */
    if (_i == 0) {
        ck_assert_int_eq(unlink(wal), 0);
    } else {
        ck_assert_int_eq(rename(wal, moved), 0);
        FILE *f = fopen(wal, "w");
        ck_assert_ptr_nonnull(f);
        fclose(f);
    }
    r_order(&b2, "O2", "order-2", 7);
    commit_ok(s, &b2); /* into the log that no restart would find */
    ck_assert_int_eq(s->engine->sync(s, &err), AS_EIO);
    snprintf(want, sizeof want, /* root is absolute, as SQLite's names of the files are */
             "the write-ahead log %s was removed; what was acknowledged is in %s; restart to go on",
             wal, path);
    ck_assert_str_eq(err.msg, want);

    size_t n;
    unsigned char *main_file = slurp(path, &n);
    FILE *f = fopen(copy, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(main_file, 1, n, f), n);
    fclose(f);
    free(main_file);
    as_store *again = open_ok(copy);
    assert_loads(again, (const char *const[]){"reserve 2 0", "order [order-1]", "order [order-2]", NULL});
    again->engine->close(again);

    /* and it stays failed: a later batch is not pretended durable */
    r_order(&b3, "O3", "order-3", 7);
    commit_ok(s, &b3);
    ck_assert_int_eq(s->engine->sync(s, &err), AS_EIO);
    s->engine->close(s);
    as__wbuf_free(&b1);
    as__wbuf_free(&b2);
    as__wbuf_free(&b3);
}
END_TEST

START_TEST(store_empty_batch_commits_nothing)
{
    eng e;
    as_store *s = eng_open(&e, _i, "empty.db");
    as_error err = {0};
    ck_assert_int_eq(s->engine->commit(s, (const unsigned char *)"", 0, &err), 0);
    static const char *const want[] = {"reserve 0 0", NULL};
    assert_loads(s, want);
    eng_free(&e);
}
END_TEST

/* ==========================================================================================
 * wbuf / rbuf
 * ======================================================================================== */

START_TEST(store_wbuf_rbuf_round_trip)
{
    as_wbuf b = {0};
    as__wbuf_u8(&b, 0xab);
    as__wbuf_u16(&b, 0xbeef);
    as__wbuf_u32(&b, 0xdeadbeefu);
    as__wbuf_i64(&b, INT64_MIN);
    as__wbuf_i64(&b, -2);
    as__wbuf_str(&b, NULL);
    as__wbuf_str(&b, "");
    as__wbuf_str(&b, "abc");
    as__wbuf_u32(&b, (uint32_t)AS_ECONFLICT);
    ck_assert(!b.oom);
    ck_assert_uint_eq(b.len, 1 + 2 + 4 + 8 + 8 + 4 + 4 + (4 + 3) + 4);

    as_rbuf r = {b.p, b.len, 0, 0};
    ck_assert_uint_eq(as__rbuf_u8(&r), 0xab);
    ck_assert_uint_eq(as__rbuf_u16(&r), 0xbeef);
    ck_assert_uint_eq(as__rbuf_u32(&r), 0xdeadbeefu);
    ck_assert(as__rbuf_i64(&r) == INT64_MIN);
    ck_assert(as__rbuf_i64(&r) == -2);
    size_t n = 99;
    ck_assert_ptr_null(as__rbuf_str(&r, &n)); /* absent */
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(r.bad, 0);
    n = 99;
    const char *e = as__rbuf_str(&r, &n); /* present and empty */
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(n, 0);
    const char *s = as__rbuf_str(&r, &n);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(n, 3);
    ck_assert(memcmp(s, "abc", 3) == 0);
    ck_assert_int_eq((int32_t)as__rbuf_u32(&r), AS_ECONFLICT);
    ck_assert_int_eq(r.bad, 0);
    ck_assert_uint_eq(r.pos, r.len);

    /* past the end: zeros, NULL, and `bad` set for good */
    ck_assert_uint_eq(as__rbuf_u8(&r), 0);
    ck_assert_int_eq(r.bad, 1);
    ck_assert_uint_eq(as__rbuf_u32(&r), 0);
    ck_assert(as__rbuf_i64(&r) == 0);
    n = 99;
    ck_assert_ptr_null(as__rbuf_str(&r, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(r.bad, 1);

    /* a read that straddles the end yields zero, not the bytes that are there */
    as_rbuf t = {b.p, 3, 0, 0};
    ck_assert_uint_eq(as__rbuf_u8(&t), 0xab);
    ck_assert_uint_eq(as__rbuf_u32(&t), 0); /* 2 bytes left */
    ck_assert_int_eq(t.bad, 1);
    /* once bad, a read that would fit yields zero too */
    ck_assert_uint_eq(as__rbuf_u8(&t), 0);

    /* a string whose length runs past the end */
    as_wbuf c = {0};
    as__wbuf_u32(&c, 10);
    as__wbuf_bytes(&c, "short", 5);
    as_rbuf u = {c.p, c.len, 0, 0};
    n = 99;
    ck_assert_ptr_null(as__rbuf_str(&u, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(u.bad, 1);

    /* reset keeps the memory, free gives it back */
    size_t cap = b.cap;
    as__wbuf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, cap);
    as__wbuf_str(&b, "again");
    as_rbuf v = {b.p, b.len, 0, 0};
    s = as__rbuf_str(&v, &n);
    ck_assert_uint_eq(n, 5);
    ck_assert(memcmp(s, "again", 5) == 0);
    as__wbuf_free(&b);
    ck_assert_ptr_null(b.p);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_uint_eq(b.cap, 0);
    as__wbuf_free(&c);
}
END_TEST

START_TEST(store_wbuf_grows_past_first_block)
{
    as_wbuf b = {0};
    char chunk[1000];
    for (int i = 0; i < 50; i++) {
        memset(chunk, 'a' + i % 26, sizeof chunk);
        as__wbuf_bytes(&b, chunk, sizeof chunk);
    }
    ck_assert(!b.oom);
    ck_assert_uint_eq(b.len, 50000);
    ck_assert_uint_ge(b.cap, 50000);
    for (int i = 0; i < 50; i++) ck_assert_int_eq(b.p[i * 1000 + 999], 'a' + i % 26);
    as__wbuf_free(&b);
}
END_TEST

/* A row key written as an absent string (NULL) is a malformed record: for orders, cases and
 * packs (whose keys SQLite holds NOT NULL) every engine refuses the batch whole, rather than
 * keep part of it or fail in another way. For outbox and idempotency records (SQLite's
 * INSERT OR IGNORE skips the row) the batch may also commit without that record, but no row
 * without a key may come back. */
START_TEST(store_record_without_key_refused)
{
    eng e;
    as_store *s = eng_open(&e, _i, "nullkey.db");
    as_wbuf b = {0};
    r_order(&b, "O1", "o1", 2);
    r_pack(&b, "S1", "m", "1", "src", 1);
    commit_ok(s, &b);
    static const char *const before[] = {"reserve 1 0", "pack S1 m 1 [src] 1", "order [o1]",
                                         NULL};
    static const char *const kinds[] = {"order", "case", "pack", "outbox", "idem"};
    for (int k = 0; k < 5; k++) {
        as__wbuf_reset(&b);
        r_order(&b, "O1", "o1-changed", 10); /* shows whether the batch was applied */
        switch (k) {
        case 0: r_order(&b, NULL, "o?", 2); break;
        case 1: r_case(&b, NULL, "O1", INT64_MIN, "c?"); break;
        case 2: r_pack(&b, NULL, "m", "2", "src2", 1); break;
        case 3: r_outbox(&b, NULL, "refund", "C1", 1); break;
        default: r_idem(&b, NULL, 0, "");
        }
        as_error err = {0};
        int rc = s->engine->commit(s, b.p, b.len, &err);
        ck_assert_msg(rc == AS_EIO || (k >= 3 && rc == 0),
                      "%s engine: a %s record without its key committed with %d",
                      s->engine->name, kinds[k], rc);
        if (rc == 0) {
            static const char *const applied[] = {"reserve 1 0", "pack S1 m 1 [src] 1",
                                                  "order [o1-changed]", NULL};
            assert_loads(s, applied);
            as__wbuf_reset(&b);
            r_order(&b, "O1", "o1", 2);
            commit_ok(s, &b);
        }
        assert_loads(s, before);
    }
    eng_free(&e);
    as__wbuf_free(&b);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");

    TCase *open = tcase_create("open");
    tcase_add_unchecked_fixture(open, root_make, root_remove);
    tcase_set_timeout(open, 30);
    tcase_add_test(open, store_new_file_gets_schema);
    tcase_add_test(open, store_foreign_sqlite_database_refused_untouched);
    tcase_add_test(open, store_garbage_file_refused_untouched);
    tcase_add_test(open, store_newer_schema_refused);
    tcase_add_test(open, store_second_writer_refused_naming_the_holder);
    tcase_add_test(open, store_schema_1_file_migrates_keeping_rows);
    tcase_add_test(open, store_schema_4_commands_move_into_their_entries);
    tcase_add_test(open, store_damaged_file_refused);
    tcase_add_test(open, store_readonly_open_reads_beside_the_writer);
    tcase_add_test(open, store_sqlite_sync_flushes_the_log);
    tcase_add_loop_test(open, store_sqlite_removed_log_is_saved_into_the_main_file, 0, 2);
    suite_add_tcase(s, open);

    TCase *batch = tcase_create("batch");
    tcase_add_unchecked_fixture(batch, root_make, root_remove);
    tcase_set_timeout(batch, 30);
    tcase_add_loop_test(batch, store_commit_then_load_hands_back_every_row, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_load_keeps_every_due_value, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_visitor_stops_load_with_its_code, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_refused_row_is_named_or_handed_on, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_pack_current_is_per_shop, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_outbox_ack_per_url_survives_reopen, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_prune_forgets_old_keys_and_settled_outbox, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_malformed_batch_leaves_database_as_it_was, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_empty_batch_commits_nothing, 0, ENG_COUNT);
    tcase_add_loop_test(batch, store_record_without_key_refused, 0, ENG_COUNT);
    suite_add_tcase(s, batch);

    TCase *wbuf = tcase_create("wbuf");
    tcase_add_test(wbuf, store_wbuf_rbuf_round_trip);
    tcase_add_test(wbuf, store_wbuf_grows_past_first_block);
    suite_add_tcase(s, wbuf);
    return s;
}

int main(void)
{
    return unit_run(store_suite(), 1);
}
