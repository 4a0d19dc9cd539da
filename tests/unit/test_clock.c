/* test_clock.c -- the two clocks behind one interface (docs/design.md#time-and-deadlines). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <uv.h>

#include "core/clock.h"
#include "unit_common.h"

/* docs/design.md#time-and-deadlines: the virtual clock is a number the headless runner moves forward. */
START_TEST(clock_virtual_starts_where_told)
{
    as_clock c;
    as__clock_init_virtual(&c, 1772323200000ll);
    ck_assert(as__clock_is_virtual(&c));
    ck_assert_int_eq(as__clock_now(&c), 1772323200000ll);
    ck_assert_int_eq(as__clock_set(&c, 1772323200000ll + 1), 0);
    ck_assert_int_eq(as__clock_now(&c), 1772323200000ll + 1);
}
END_TEST

/* clock.h: "time never goes back (an earlier `ms` is ignored)". */
START_TEST(clock_virtual_never_goes_back)
{
    as_clock c;
    as__clock_init_virtual(&c, 5000);
    ck_assert_int_eq(as__clock_set(&c, 9000), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, 8999), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, 0), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, INT64_MIN), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, 9000), 0); /* the same instant is fine */
    ck_assert_int_eq(as__clock_now(&c), 9000);
    int64_t last = as__clock_now(&c);
    for (int64_t t = 20000; t > 0; t -= 777) {
        as__clock_set(&c, t);
        ck_assert_int_ge(as__clock_now(&c), last);
        last = as__clock_now(&c);
    }
    ck_assert_int_eq(last, 20000);
}
END_TEST

/* A negative start (before the epoch) is still a point in time the clock can hold. */
START_TEST(clock_virtual_negative_start)
{
    as_clock c;
    as__clock_init_virtual(&c, -86400000);
    ck_assert_int_eq(as__clock_now(&c), -86400000);
    as__clock_set(&c, -1);
    ck_assert_int_eq(as__clock_now(&c), -1);
}
END_TEST

static void on_timer(uv_timer_t *t)
{
    (void)t;
}

/* docs/design.md#time-and-deadlines: the real clock is libuv's loop time shifted to wall-clock ms UTC. The bounds
 * are generous on purpose: this checks the shift, not the machine's speed. */
START_TEST(clock_real_tracks_wall_time)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    as_clock c;
    as__clock_init_real(&c, &loop);
    ck_assert(!as__clock_is_virtual(&c));
    int64_t before = wall_ms();
    int64_t now = as__clock_now(&c);
    ck_assert_msg(now > before - 2000 && now < before + 2000, "real clock %lld, wall %lld",
                  (long long)now, (long long)before);

    /* run the loop through a short timer: loop time moves on, the clock follows the wall */
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_timer, 30, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    int64_t later = as__clock_now(&c);
    int64_t wall = wall_ms();
    ck_assert_int_ge(later, now); /* never back */
    ck_assert_msg(later > wall - 2000 && later < wall + 2000, "real clock %lld, wall %lld",
                  (long long)later, (long long)wall);

    /* as__clock_set is the virtual clock's only: refused, and time is unchanged */
    ck_assert_int_eq(as__clock_set(&c, later + 86400000), -1);
    ck_assert_int_lt(as__clock_now(&c), later + 86400000);

    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

static Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");
    TCase *v = tcase_create("virtual");
    tcase_set_timeout(v, 10);
    tcase_add_test(v, clock_virtual_starts_where_told);
    tcase_add_test(v, clock_virtual_never_goes_back);
    tcase_add_test(v, clock_virtual_negative_start);
    suite_add_tcase(s, v);

    TCase *r = tcase_create("real");
    tcase_set_timeout(r, 20);
    tcase_add_test(r, clock_real_tracks_wall_time);
    suite_add_tcase(s, r);
    return s;
}

int main(void)
{
    return unit_run(clock_suite(), 1);
}
