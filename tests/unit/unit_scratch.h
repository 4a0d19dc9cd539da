/* unit_scratch.h -- scratch files for the suites that write databases (test_store.c,
 * test_durable.c): one directory per test case, made and removed by the parent process (an
 * unchecked fixture: tcase_add_unchecked_fixture(tc, root_make, root_remove)), so a failing
 * test (its forked child exits at once) leaves nothing behind. Header-only. */
#ifndef AS_UNIT_SCRATCH_H
#define AS_UNIT_SCRATCH_H

#include <check.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The directory of the running test case. */
static char root[64];

static inline void root_make(void)
{
    strcpy(root, "/tmp/as-test-unit-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static inline int unit_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static inline void root_remove(void)
{
    if (root[0]) nftw(root, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    root[0] = '\0';
}

static inline int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The first column of the first row of `q` on `path`, as an integer, through a plain SQLite
 * connection of its own (not the engine's). */
static inline long long sql_int(const char *path, const char *q)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

#endif
