/* test_buf.c -- the protocol text buffer and decimal integers (api/buf.h): appends and growth,
 * the one allocation a right hint costs, a failure that sticks (out of memory, a refused part),
 * and every 64-bit integer's digits as printf would give them. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/buf.h"
#include "unit_common.h"

/* The allocator for the whole suite: counts allocations and fails every one past `budget`
 * (-1: none fails). Each test runs in a child of its own (fork mode), so settings do not
 * leak between tests. */
static long allocs, budget = -1;

static int allow(void)
{
    if (budget >= 0 && allocs >= budget) return 0;
    allocs++;
    return 1;
}

static void *t_malloc(size_t n)
{
    return allow() ? malloc(n) : NULL;
}

static void *t_realloc(void *p, size_t n)
{
    return allow() ? realloc(p, n) : NULL;
}

static void *t_calloc(size_t c, size_t n)
{
    return allow() ? calloc(c, n) : NULL;
}

START_TEST(buf_appends_and_takes)
{
    as_buf b;
    as__buf_init(&b, 0);
    ck_assert_int_eq(as__buf_str(&b, "HTTP/1.1 "), 0);
    ck_assert_int_eq(as__buf_u64(&b, 200), 0);
    ck_assert_int_eq(as__buf_put(&b, " OK\r\nxyz", 5), 0);
    ck_assert_int_eq(as__buf_put(&b, NULL, 0), 0);
    ck_assert_int_eq(as__buf_i64(&b, -7), 0);
    size_t len;
    char *s = as__buf_take(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "HTTP/1.1 200 OK\r\n-7"); /* NUL-terminated too */
    ck_assert_uint_eq(len, strlen(s));
    /* taken: the buffer is empty and owns nothing */
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.len, 0);
    as_free(s);
    /* an empty text is "" */
    s = as__buf_take(&b, &len);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(len, 0);
    as_free(s);
}
END_TEST

/* Growth past the hint keeps every byte, embedded NULs included. */
START_TEST(buf_grows_past_its_hint)
{
    as_buf b;
    as__buf_init(&b, 3);
    char want[70000];
    for (size_t i = 0; i < sizeof want; i++) {
        want[i] = (char)(i * 7);
        ck_assert_int_eq(as__buf_put(&b, &want[i], 1), 0);
    }
    ck_assert_uint_eq(b.len, sizeof want);
    size_t len;
    char *s = as__buf_take(&b, &len);
    ck_assert_uint_eq(len, sizeof want);
    ck_assert_int_eq(memcmp(s, want, sizeof want), 0);
    ck_assert_int_eq(s[len], '\0');
    as_free(s);
}
END_TEST

/* A text no longer than its hint costs one allocation, the NUL of as__buf_take included. */
START_TEST(buf_right_hint_is_one_allocation)
{
    as_buf b;
    as__buf_init(&b, 10);
    ck_assert_int_eq(allocs, 0); /* init allocates nothing */
    as__buf_str(&b, "0123");
    as__buf_str(&b, "456789");
    size_t len;
    char *s = as__buf_take(&b, &len);
    ck_assert_str_eq(s, "0123456789");
    ck_assert_int_eq(allocs, 1);
    as_free(s);
    as__buf_free(&b); /* an empty buffer: a no-op */
}
END_TEST

/* Out of memory at the n-th allocation, for every n: the error sticks, every later append is
 * a no-op, the text is not taken and nothing leaks (the ASan build checks). */
START_TEST(buf_out_of_memory_sticks)
{
    for (long n = 0; n < 8; n++) {
        allocs = 0;
        budget = n;
        as_buf b;
        as__buf_init(&b, 1);
        int rc = 0;
        for (int i = 0; i < 1000 && rc == 0; i++)
            rc = as__buf_str(&b, "abcdefgh");
        ck_assert_int_eq(rc, AS_ENOMEM);
        ck_assert_int_eq(as__buf_str(&b, "x"), AS_ENOMEM);
        ck_assert_int_eq(as__buf_u64(&b, 1), AS_ENOMEM);
        size_t len = 99;
        ck_assert_ptr_null(as__buf_take(&b, &len));
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(b.err, 0); /* emptied, as after init */
    }
    budget = -1;
}
END_TEST

/* A writer's refusal is kept (the first one), and the text is dropped. */
START_TEST(buf_refusal_sticks)
{
    as_buf b;
    as__buf_init(&b, 0);
    as__buf_str(&b, "part one");
    ck_assert_int_eq(as__buf_fail(&b, AS_EBAD_REQUEST), AS_EBAD_REQUEST);
    ck_assert_int_eq(as__buf_fail(&b, AS_ENOMEM), AS_EBAD_REQUEST);
    ck_assert_int_eq(as__buf_str(&b, "part two"), AS_EBAD_REQUEST);
    ck_assert_uint_eq(b.len, strlen("part one"));
    size_t len;
    ck_assert_ptr_null(as__buf_take(&b, &len));
    /* and as__buf_free drops a text that is not wanted */
    as__buf_str(&b, "dropped");
    as__buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

/* The digits of every boundary and a spread of values, against printf as the oracle. */
START_TEST(buf_decimal_integers)
{
    static const uint64_t u[] = {0,
                                 1,
                                 9,
                                 10,
                                 11,
                                 99,
                                 100,
                                 1000000,
                                 4294967295u,
                                 4294967296u,
                                 9223372036854775807u,
                                 9223372036854775808u,
                                 UINT64_MAX};
    char got[AS_DEC_MAX], want[32];
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        snprintf(want, sizeof want, "%" PRIu64, u[i]);
        ck_assert_uint_eq(as__dec_u64(u[i], got), strlen(want));
        ck_assert_str_eq(got, want);
    }
    static const int64_t s[] = {
        0, 1, -1, 9, -9, 10, -10, INT64_MAX, INT64_MIN, INT64_MIN + 1, -1000000, 1772323200000};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        snprintf(want, sizeof want, "%" PRId64, s[i]);
        ck_assert_uint_eq(as__dec_i64(s[i], got), strlen(want));
        ck_assert_str_eq(got, want);
    }
    ck_assert_uint_eq(as__dec_i64(INT64_MIN, got), AS_DEC_MAX - 1); /* the longest fits */
    uint64_t x = 0x9e3779b97f4a7c15u; /* and a million more, scattered over the range */
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t v = (int64_t)x >> (i % 64);
        snprintf(want, sizeof want, "%" PRId64, v);
        as__dec_i64(v, got);
        ck_assert_str_eq(got, want);
    }
}
END_TEST

static Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("buf");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, buf_appends_and_takes);
    tcase_add_test(tc, buf_grows_past_its_hint);
    tcase_add_test(tc, buf_right_hint_is_one_allocation);
    tcase_add_test(tc, buf_out_of_memory_sticks);
    tcase_add_test(tc, buf_refusal_sticks);
    tcase_add_test(tc, buf_decimal_integers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (as_replace_allocator(t_malloc, t_realloc, t_calloc, free) != 0) return EXIT_FAILURE;
    return unit_run(buf_suite(), 1);
}
