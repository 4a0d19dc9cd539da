/* test_sched.c -- the deadline scheduler (docs/design.md#time-and-deadlines). */
#include <check.h>
#include <stdlib.h>

#include "core/sched.h"
#include "unit_common.h"

START_TEST(sched_pops_in_due_order)
{
    as_sched s;
    as_sched_node n[5];
    int64_t due[5] = {50, 10, 40, 20, 30};
    as__sched_init(&s);
    for (int i = 0; i < 5; i++) {
        as__sched_node_init(&n[i]);
        ck_assert_int_eq(as__sched_add(&s, &n[i], due[i]), 0);
    }
    int64_t last = -1;
    as_sched_node *x;
    int count = 0;
    while ((x = as__sched_pop_due(&s, 1000)) != NULL) {
        ck_assert_int_ge(x->due_ms, last);
        ck_assert(!as__sched_pending(x));
        last = x->due_ms;
        count++;
    }
    ck_assert_int_eq(count, 5);
    as__sched_free(&s);
}
END_TEST

START_TEST(sched_equal_due_fires_in_insertion_order)
{
    as_sched s;
    as_sched_node n[8];
    as__sched_init(&s);
    for (int i = 0; i < 8; i++) {
        as__sched_node_init(&n[i]);
        as__sched_add(&s, &n[i], 100);
    }
    for (int i = 0; i < 8; i++) ck_assert_ptr_eq(as__sched_pop_due(&s, 100), &n[i]);
    as__sched_free(&s);
}
END_TEST

/* docs/rulebook.md#conventions: a deadline of duration D entered at t fires at exactly t + D. */
START_TEST(sched_boundary_due_at_now_is_expired)
{
    as_sched s;
    as_sched_node n;
    as__sched_init(&s);
    as__sched_node_init(&n);
    as__sched_add(&s, &n, 1000);
    ck_assert_ptr_null(as__sched_pop_due(&s, 999));
    ck_assert_ptr_eq(as__sched_pop_due(&s, 1000), &n);
    as__sched_free(&s);
}
END_TEST

START_TEST(sched_remove_and_reschedule)
{
    as_sched s;
    as_sched_node n[100];
    as__sched_init(&s);
    for (int i = 0; i < 100; i++) {
        as__sched_node_init(&n[i]);
        as__sched_add(&s, &n[i], (i * 37) % 100);
    }
    for (int i = 0; i < 100; i += 3) as__sched_remove(&s, &n[i]);
    as__sched_add(&s, &n[1], 1000); /* reschedule later */
    as__sched_remove(&s, &n[0]);    /* removing twice is a no-op */
    int64_t last = -1;
    int count = 0;
    as_sched_node *x;
    while ((x = as__sched_pop_due(&s, 999)) != NULL) {
        ck_assert_int_ge(x->due_ms, last);
        ck_assert_ptr_ne(x, &n[1]);
        last = x->due_ms;
        count++;
    }
    ck_assert_int_eq(count, 100 - 34 - 1);
    ck_assert_ptr_eq(as__sched_peek(&s), &n[1]);
    as__sched_free(&s);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("heap");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, sched_pops_in_due_order);
    tcase_add_test(tc, sched_equal_due_fires_in_insertion_order);
    tcase_add_test(tc, sched_boundary_due_at_now_is_expired);
    tcase_add_test(tc, sched_remove_and_reschedule);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(sched_suite(), 0);
}
