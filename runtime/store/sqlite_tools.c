/* sqlite_tools.c -- `aftersale db check`'s questions to the file itself, and `db backup`
 * (sqlite_tools.h). The rows' own decoding is the restore's (durable.c); here are the
 * questions it does not ask: SQLite's integrity and the references between tables. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "../core/alloc.h"
#include "../core/digest.h"
#include "../core/err.h"
#include "../core/limits.h"
#include "sqlite_tools.h"

/* ------------------------------------------------------------------------------------------
 * Check
 * ---------------------------------------------------------------------------------------- */

/* An invariant: the rows of `q` are its exceptions, column 0 the row's key (store.h's names),
 * column 1 why. */
typedef struct invariant {
    const char *table, *q;
} invariant;

static const invariant invariants[] = {
    {"meta", "SELECT 'format', 'missing: the file does not say it is aftersale''s'"
             " WHERE NOT EXISTS(SELECT 1 FROM meta WHERE k = 'format' AND v = 'aftersale')"},
    {"cases", "SELECT id, 'its order_id ' || quote(order_id) || ' names no stored order'"
              " FROM cases WHERE order_id NOT IN (SELECT id FROM orders)"},
    {"cases", "SELECT id, 'has no history (its open is entry 0)' FROM cases"
              " WHERE id NOT IN (SELECT case_id FROM events)"},
    {"outbox", "SELECT key, 'names case ' || quote(case_id) || ', which is not stored'"
               " FROM outbox WHERE case_id NOT IN (SELECT id FROM cases)"},
    {"outbox_acks", "SELECT key || ' ' || url, 'acknowledges an entry the outbox does not hold'"
                    " FROM outbox_acks WHERE key NOT IN (SELECT key FROM outbox)"},
};

/* A key or sentence from the file, safe to print. */
static void say(as_store_problem_fn problem, void *ud, const char *table, const char *key,
                const char *why)
{
    char k[256], w[512];
    snprintf(k, sizeof k, "%s", key ? key : "");
    snprintf(w, sizeof w, "%s", why);
    as__limit_sanitize(k);
    as__limit_sanitize(w);
    problem(ud, table, key ? k : NULL, w);
}

/* Runs `q` (rows of key, why) and reports each row; a query that fails is a finding. */
static void exceptions(sqlite3 *db, const char *table, const char *q, as_store_problem_fn problem,
                       void *ud)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW)
        say(problem, ud, table, (const char *)sqlite3_column_text(st, 0),
            (const char *)sqlite3_column_text(st, 1));
    if (rc != SQLITE_DONE) { /* the query reads other tables too: this one may be whole */
        char why[512];
        snprintf(why, sizeof why, "checking it against the other tables failed: %s",
                 sqlite3_errmsg(db));
        say(problem, ud, table, NULL, why);
    }
    sqlite3_finalize(st);
}

static void integrity(sqlite3 *db, as_store_problem_fn problem, void *ud)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK
                 ? SQLITE_ROW /* go on */
                 : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        /* a row may hold several findings, one a line, under a banner naming the schema */
        const char *row = (const char *)sqlite3_column_text(st, 0);
        char *text = as__strdup(row ? row : ""), *save = NULL; /* owned here; strtok_r cuts it */
        if (text == NULL) {
            say(problem, ud, "database", NULL, "out of memory reading integrity_check");
            break;
        }
        for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            if (strcmp(l, "ok") != 0 && strncmp(l, "*** in database", 15) != 0)
                say(problem, ud, "database", NULL, l);
        as__free(text);
    }
    if (rc != SQLITE_DONE) {
        char why[512];
        snprintf(why, sizeof why, "integrity_check did not finish: %s", sqlite3_errmsg(db));
        say(problem, ud, "database", NULL, why);
    }
    sqlite3_finalize(st);
}

/* Every pack version's stored SHA-256 against its source (schema 1's rows have none; a pruned
 * version, source '' and not current, keeps only its identity). */
static int pack_digests(sqlite3 *db, as_store_problem_fn problem, void *ud, as_error *err)
{
    static const char q[] =
        "SELECT CASE shop WHEN '' THEN '(platform)' ELSE shop END || '/' || name || '@' || version,"
        " source, sha256 FROM packs WHERE sha256 != '' AND NOT (source = '' AND current = 0)";
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char sha[AS_SHA256_HEX];
        const char *stored = (const char *)sqlite3_column_text(st, 2);
        const void *src = sqlite3_column_blob(st, 1);
        if (as__sha256_hex(src ? src : "", (size_t)sqlite3_column_bytes(st, 1), sha) != 0) {
            sqlite3_finalize(st);
            return as__err(err, AS_ENOMEM, "out of memory");
        }
        if (stored && strcmp(stored, sha) != 0)
            say(problem, ud, "packs", (const char *)sqlite3_column_text(st, 0),
                "its source does not match its stored SHA-256 (the version would load as "
                "failed: every hook refused)");
    }
    if (rc != SQLITE_DONE) {
        char why[512];
        snprintf(why, sizeof why, "cannot be read: %s", sqlite3_errmsg(db));
        say(problem, ud, "packs", NULL, why);
    }
    sqlite3_finalize(st);
    return 0;
}

static long long count(sqlite3 *db, const char *q)
{
    sqlite3_stmt *st;
    long long n = -1;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

int as__store_sqlite_check(as_store *s, as_store_problem_fn problem, void *ud,
                           as_store_counts *counts, as_error *err)
{
    sqlite3 *db = as__store_sqlite_handle(s);
    /* one read transaction: every question sees the same snapshot while a server writes */
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    integrity(db, problem, ud);
    for (size_t i = 0; i < sizeof invariants / sizeof invariants[0]; i++)
        exceptions(db, invariants[i].table, invariants[i].q, problem, ud);
    int rc = pack_digests(db, problem, ud, err);
    *counts = (as_store_counts){
        count(db, "SELECT count(*) FROM orders"), count(db, "SELECT count(*) FROM cases"),
        count(db, "SELECT count(*) FROM events"), count(db, "SELECT count(*) FROM packs"),
        count(db, "SELECT count(*) FROM outbox"), count(db, "SELECT count(*) FROM idempotency")};
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

int as__store_sqlite_commands(as_store *s, as_store_command_fn row, void *ud, as_error *err)
{
    sqlite3 *db = as__store_sqlite_handle(s);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT case_id, n, cmd FROM events WHERE cmd IS NOT NULL"
                           " ORDER BY case_id, n",
                           -1, &st, NULL) != SQLITE_OK)
        return as__err(err, AS_EIO, "sqlite: reading the commands: %s", sqlite3_errmsg(db));
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        sqlite3_int64 n = sqlite3_column_int64(st, 1);
        const void *data = sqlite3_column_blob(st, 2);
        int len = sqlite3_column_bytes(st, 2);
        /* a key SQLite cannot type as this build wrote it is the row's own damage */
        if (id == NULL || n < 0 || n > UINT32_MAX) rc = row(ud, id ? id : "", UINT32_MAX, "", 0);
        else rc = row(ud, id, (uint32_t)n, data ? data : "", (size_t)len);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = as__err(err, AS_EIO, "sqlite: reading the commands: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Backup
 * ---------------------------------------------------------------------------------------- */

/* Refuses a DEST that exists (without `force`) or that a server holds; with `force` removes
 * DEST's own write-ahead log and index, which would otherwise be replayed into the copy. */
static int clear_dest(const char *dest, int force, as_error *err)
{
    char pid[24];
    as__store_sqlite_writer(dest, pid);
    if (pid[0])
        return as__err(err, AS_EIO,
                       "%s is open for writing by another process (pid %s); a "
                       "backup never replaces a file in use",
                       dest, pid);
    static const char *const sides[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
        char *p = as__store_path_with(dest, sides[i]); /* owned here */
        if (p == NULL) return as__err(err, AS_ENOMEM, "out of memory");
        int there = access(p, F_OK) == 0;
        int rc = there && !force ? as__err(err, AS_EIO, "%s exists; --force replaces it", p)
                 : there && unlink(p) != 0
                     ? as__err(err, AS_EIO, "cannot remove %s: %s", p, strerror(errno))
                     : 0;
        as__free(p);
        if (rc) return rc;
    }
    return 0;
}

/* Makes `path`'s bytes durable (its directory entry: as__store_sync_dir). */
static int sync_file(const char *path, as_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : errno;
    if (fd >= 0) close(fd);
    if (rc) return as__err(err, AS_EIO, "cannot sync %s: %s", path, strerror(rc));
    return 0;
}

/* The backup proper into `tmp`, a new file. */
static int copy_into(sqlite3 *src, const char *tmp, int *pages, as_error *err)
{
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    sqlite3_backup *b = rc == SQLITE_OK ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
    if (b) {
        /* all pages in one step: one read transaction, hence one consistent snapshot; a
         * stepwise copy would restart each time the server commits */
        do {
            rc = sqlite3_backup_step(b, -1);
            if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) sqlite3_sleep(50);
        } while (rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
        *pages = sqlite3_backup_pagecount(b);
        sqlite3_backup_finish(b);
        rc = rc == SQLITE_DONE ? sqlite3_errcode(dst) : rc;
        /* the copy says WAL like its source; a rollback journal instead lets readers of the
         * copy leave no -wal and -shm beside it (a server puts it back in WAL mode) */
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    } else if (rc == SQLITE_OK) {
        rc = sqlite3_errcode(dst);
    }
    if (rc != SQLITE_OK)
        as__err(err, AS_EIO, "backup into %s: %s", tmp,
                dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    sqlite3_close(dst);
    return rc == SQLITE_OK ? 0 : AS_EIO;
}

int as__store_sqlite_backup(as_store *s, const char *dest, int force, int *pages, as_error *err)
{
    *pages = 0;
    int rc = clear_dest(dest, force, err);
    if (rc) return rc;
    char *tmp = as__store_path_with(dest, ".partial"); /* owned here */
    if (tmp == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    unlink(tmp); /* a partial copy left by a backup that was killed */
    rc = copy_into(as__store_sqlite_handle(s), tmp, pages, err);
    if (rc == 0) rc = sync_file(tmp, err);
    if (rc == 0 && rename(tmp, dest) != 0)
        rc = as__err(err, AS_EIO, "cannot rename %s to %s: %s", tmp, dest, strerror(errno));
    if (rc == 0) rc = as__store_sync_dir(dest, err);
    if (rc) unlink(tmp);
    as__free(tmp);
    return rc;
}
