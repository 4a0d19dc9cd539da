/* test_strmap.c -- the open-addressing index of objects keyed by their own string
 * (core/strmap.h). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/error.h"
#include "core/strmap.h"
#include "unit_common.h"

typedef struct obj {
    char key[24];
    int n;
    int seen;
} obj;

static const char *obj_key(const void *o)
{
    return ((const obj *)o)->key;
}

#define N 10000

static obj *make_objs(int n, const char *prefix)
{
    obj *v = calloc((size_t)n, sizeof *v);
    ck_assert_ptr_nonnull(v);
    for (int i = 0; i < n; i++) {
        snprintf(v[i].key, sizeof v[i].key, "%s%d", prefix, i);
        v[i].n = i;
    }
    return v;
}

START_TEST(strmap_empty_map)
{
    as_strmap m;
    as__strmap_init(&m, obj_key);
    ck_assert_ptr_null(as__strmap_get(&m, "x"));
    ck_assert_ptr_null(as__strmap_del(&m, "x"));
    size_t pos = 0;
    ck_assert_ptr_null(as__strmap_next(&m, &pos));
    ck_assert_uint_eq(m.len, 0);
    as__strmap_free(&m);
    as__strmap_free(&m); /* freeing twice is harmless: slots were reset */
}
END_TEST

START_TEST(strmap_put_get_10000_keys)
{
    obj *v = make_objs(N, "case-");
    as_strmap m;
    as__strmap_init(&m, obj_key);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(as__strmap_put(&m, &v[i]), 0);
        ck_assert_uint_eq(m.len, (size_t)i + 1);
    }
    /* load stays under 3/4 and the capacity is a power of two */
    ck_assert_uint_le(m.len * 4, m.cap * 3);
    ck_assert_uint_eq(m.cap & (m.cap - 1), 0);
    for (int i = 0; i < N; i++) {
        char key[24];
        snprintf(key, sizeof key, "case-%d", i);
        obj *o = as__strmap_get(&m, key);
        ck_assert_ptr_eq(o, &v[i]);
    }
    ck_assert_ptr_null(as__strmap_get(&m, "case-10000"));
    ck_assert_ptr_null(as__strmap_get(&m, "case-"));
    ck_assert_ptr_null(as__strmap_get(&m, ""));
    ck_assert_ptr_null(as__strmap_get(&m, "CASE-1"));
    as__strmap_free(&m);
    free(v);
}
END_TEST

/* Iteration visits every live object exactly once, and never a deleted one. */
START_TEST(strmap_iteration_visits_each_once)
{
    obj *v = make_objs(N, "k");
    as_strmap m;
    as__strmap_init(&m, obj_key);
    for (int i = 0; i < N; i++) as__strmap_put(&m, &v[i]);
    for (int i = 0; i < N; i += 3) ck_assert_ptr_eq(as__strmap_del(&m, v[i].key), &v[i]);
    size_t pos = 0;
    obj *o;
    int count = 0;
    while ((o = as__strmap_next(&m, &pos)) != NULL) {
        ck_assert_msg(o->n % 3 != 0, "deleted object %d visited", o->n);
        o->seen++;
        count++;
    }
    ck_assert_int_eq(count, N - (N + 2) / 3);
    ck_assert_uint_eq(m.len, (size_t)count);
    for (int i = 0; i < N; i++) ck_assert_int_eq(v[i].seen, i % 3 != 0);
    /* the end stays the end */
    ck_assert_ptr_null(as__strmap_next(&m, &pos));
    as__strmap_free(&m);
    free(v);
}
END_TEST

START_TEST(strmap_delete_then_get)
{
    obj *v = make_objs(N, "order/");
    as_strmap m;
    as__strmap_init(&m, obj_key);
    for (int i = 0; i < N; i++) as__strmap_put(&m, &v[i]);
    for (int i = 0; i < N; i += 2) ck_assert_ptr_eq(as__strmap_del(&m, v[i].key), &v[i]);
    ck_assert_uint_eq(m.len, N / 2);
    for (int i = 0; i < N; i++) {
        obj *o = as__strmap_get(&m, v[i].key);
        if (i % 2) ck_assert_ptr_eq(o, &v[i]);
        else ck_assert_ptr_null(o);
    }
    /* deleting an absent key returns NULL and changes nothing */
    ck_assert_ptr_null(as__strmap_del(&m, v[0].key));
    ck_assert_ptr_null(as__strmap_del(&m, "never-there"));
    ck_assert_uint_eq(m.len, N / 2);
    /* delete everything: the map is empty and answers so */
    for (int i = 1; i < N; i += 2) ck_assert_ptr_eq(as__strmap_del(&m, v[i].key), &v[i]);
    ck_assert_uint_eq(m.len, 0);
    for (int i = 0; i < N; i += 97) ck_assert_ptr_null(as__strmap_get(&m, v[i].key));
    size_t pos = 0;
    ck_assert_ptr_null(as__strmap_next(&m, &pos));
    /* and takes everything back */
    for (int i = 0; i < N; i++) ck_assert_int_eq(as__strmap_put(&m, &v[i]), 0);
    for (int i = 0; i < N; i++) ck_assert_ptr_eq(as__strmap_get(&m, v[i].key), &v[i]);
    as__strmap_free(&m);
    free(v);
}
END_TEST

/* Tombstones are reused: a long run of delete + put with a steady population neither grows
 * the table nor loses a key, and a lookup that crosses tombstones still finds its key. */
START_TEST(strmap_tombstone_reuse)
{
    enum { LIVE = 100, CHURN = 50000 };
    obj *v = make_objs(LIVE, "t");
    obj *extra = make_objs(CHURN, "churn");
    as_strmap m;
    as__strmap_init(&m, obj_key);
    for (int i = 0; i < LIVE; i++) as__strmap_put(&m, &v[i]);
    size_t cap = m.cap;
    /* put a new key, delete it again: every slot it leaves is a tombstone */
    for (int i = 0; i < CHURN; i++) {
        ck_assert_int_eq(as__strmap_put(&m, &extra[i]), 0);
        ck_assert_ptr_eq(as__strmap_get(&m, extra[i].key), &extra[i]);
        ck_assert_ptr_eq(as__strmap_del(&m, extra[i].key), &extra[i]);
        ck_assert_uint_eq(m.len, LIVE);
        ck_assert_uint_le(m.len + m.tombs, m.cap); /* some slot is always free */
    }
    ck_assert_uint_le(m.cap, cap * 2);
    for (int i = 0; i < LIVE; i++) ck_assert_ptr_eq(as__strmap_get(&m, v[i].key), &v[i]);
    for (int i = 0; i < CHURN; i += 101) ck_assert_ptr_null(as__strmap_get(&m, extra[i].key));

    /* delete and re-put the same key: found again, counted once */
    for (int r = 0; r < 1000; r++) {
        ck_assert_ptr_eq(as__strmap_del(&m, v[r % LIVE].key), &v[r % LIVE]);
        ck_assert_ptr_null(as__strmap_get(&m, v[r % LIVE].key));
        ck_assert_int_eq(as__strmap_put(&m, &v[r % LIVE]), 0);
        ck_assert_uint_eq(m.len, LIVE);
    }
    size_t pos = 0;
    int count = 0;
    while (as__strmap_next(&m, &pos)) count++;
    ck_assert_int_eq(count, LIVE);
    ck_assert_uint_le(m.cap, cap * 2);
    as__strmap_free(&m);
    free(v);
    free(extra);
}
END_TEST

/* Keys are compared by content, not by pointer (interning happens above the map). */
START_TEST(strmap_keys_compare_by_content)
{
    obj a = {"same", 1, 0};
    as_strmap m;
    as__strmap_init(&m, obj_key);
    as__strmap_put(&m, &a);
    char k[8];
    strcpy(k, "same");
    ck_assert_ptr_eq(as__strmap_get(&m, k), &a);
    ck_assert_uint_eq(as__hash(k), as__hash("same"));
    ck_assert_uint_ne(as__hash("same"), as__hash("samf"));
    ck_assert_ptr_eq(as__strmap_del(&m, k), &a);
    as__strmap_free(&m);
}
END_TEST

static Suite *strmap_suite(void)
{
    Suite *s = suite_create("strmap");
    TCase *tc = tcase_create("map");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, strmap_empty_map);
    tcase_add_test(tc, strmap_put_get_10000_keys);
    tcase_add_test(tc, strmap_iteration_visits_each_once);
    tcase_add_test(tc, strmap_delete_then_get);
    tcase_add_test(tc, strmap_tombstone_reuse);
    tcase_add_test(tc, strmap_keys_compare_by_content);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(strmap_suite(), 1);
}
