/* test_timefmt.c -- scenario durations (docs/design.md#scenario-files), ISO instants and the platform-local
 * calendar day of docs/rulebook.md#conventions (core/timefmt.h). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/timefmt.h"
#include "unit_common.h"

#define T_2026_03_01 1772323200000ll /* 2026-03-01T00:00:00Z */

/* ------------------------------------------------------------------------------------------
 * Durations
 * ---------------------------------------------------------------------------------------- */

/* docs/design.md#scenario-files: "whole numbers with units d, h, m (minutes), s, each at most once and in that
 * order (90s, 48h, 3d, 7d12h, 16d23h59m59s, 0s)". */
START_TEST(timefmt_duration_accepts_the_documented_forms)
{
    static const struct {
        const char *s;
        int64_t ms;
    } ok[] = {
        {"90s", 90 * AS_SECOND},
        {"48h", 48 * AS_HOUR},
        {"3d", 3 * AS_DAY},
        {"7d12h", 7 * AS_DAY + 12 * AS_HOUR},
        {"16d23h59m59s", 16 * AS_DAY + 23 * AS_HOUR + 59 * AS_MINUTE + 59 * AS_SECOND},
        {"0s", 0},
        {"1m", 60000},
        {"6d1s", 6 * AS_DAY + 1000},
        {"1d1m", AS_DAY + AS_MINUTE},
        {"2h30m", 2 * AS_HOUR + 30 * AS_MINUTE},
        {"007s", 7000},
        {"400d", 400 * AS_DAY},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -12345;
        ck_assert_msg(as__duration_parse(ok[i].s, &ms) == 0, "'%s' refused", ok[i].s);
        ck_assert_msg(ms == ok[i].ms, "'%s' gave %lld, want %lld", ok[i].s, (long long)ms,
                      (long long)ok[i].ms);
    }
}
END_TEST

/* docs/design.md#scenario-files: each unit at most once, in the order d h m s, always with a unit. */
START_TEST(timefmt_duration_rejects_malformed)
{
    static const char *const bad[] = {
        "3h2d", /* out of order */
        "1d1d", /* twice */
        "",     /* empty */
        "5",    /* no unit */
        "1x",   /* unknown unit */
        "d",    /* no number */
        "1d2",  /* trailing number */
        "1m1h", "2s1m", "1h1h", "1s1d",
        "-1s",  "+1s", " 1s", "1s ", "1 s", "1.5h", "1D", "1H", "s", "1d 2h", "1ms",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -777;
        ck_assert_msg(as__duration_parse(bad[i], &ms) == -1, "'%s' accepted as %lld", bad[i],
                      (long long)ms);
        ck_assert_msg(ms == -777, "'%s' wrote *ms on failure", bad[i]);
    }
    int64_t ms;
    ck_assert_int_eq(as__duration_parse(NULL, &ms), -1);
}
END_TEST

/* A duration too long for int64 ms is malformed, not a wrapped (and, in C, undefined)
 * product: 200000000000 days is 1.7e19 ms. */
START_TEST(timefmt_duration_rejects_overflow)
{
    int64_t ms = -777;
    ck_assert_msg(as__duration_parse("200000000000d", &ms) == -1,
                  "200000000000d accepted as %lld ms", (long long)ms);
    ms = -777;
    ck_assert_msg(as__duration_parse("99999999999999999999s", &ms) == -1,
                  "a 20-digit count accepted as %lld ms", (long long)ms);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Instants
 * ---------------------------------------------------------------------------------------- */

/* docs/design.md#time-and-deadlines: times are integer ms since the Unix epoch, UTC; scenarios write them as
 * "2026-03-01T00:00:00Z" (docs/design.md#scenario-files "start"). */
START_TEST(timefmt_instant_parses_utc)
{
    int64_t ms = -1;
    ck_assert_int_eq(as__instant_parse("1970-01-01T00:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(as__instant_parse("2026-03-01T00:00:00Z", &ms), 0);
    ck_assert_int_eq(ms, T_2026_03_01);
    ck_assert_int_eq(as__instant_parse("2026-03-01T15:59:59.999Z", &ms), 0);
    ck_assert_int_eq(ms, T_2026_03_01 + 16 * AS_HOUR - 1);
    ck_assert_int_eq(as__instant_parse("2026-03-01T00:00:00.5Z", &ms), 0);
    ck_assert_int_eq(ms, T_2026_03_01 + 500);
    ck_assert_int_eq(as__instant_parse("2026-03-01T00:00:00.123456Z", &ms), 0);
    ck_assert_int_eq(ms, T_2026_03_01 + 123);
    ck_assert_int_eq(as__instant_parse("2024-02-29T12:00:00Z", &ms), 0); /* leap day */
    ck_assert_int_eq(ms, 1709208000000ll);
    ck_assert_int_eq(as__instant_parse("1969-12-31T23:59:59Z", &ms), 0);
    ck_assert_int_eq(ms, -1000);
}
END_TEST

START_TEST(timefmt_instant_rejects_malformed)
{
    static const char *const bad[] = {
        "2026-03-01T00:00:00",       /* no zone */
        "2026-03-01T00:00:00+08:00", /* not UTC */
        "2026-03-01 00:00:00Z",      /* space */
        "2026-3-01T00:00:00Z",       /* short month */
        "2026-13-01T00:00:00Z",      /* month 13 */
        "2026-00-10T00:00:00Z",
        "2026-03-32T00:00:00Z",
        "2026-03-01T24:00:00Z",
        "2026-03-01T00:60:00Z",
        "2026-03-01T00:00:00.Z",     /* a dot without digits */
        "2026-03-01T00:00:00Zjunk",
        "2026-03-01",
        "",
        "yesterday",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -777;
        ck_assert_msg(as__instant_parse(bad[i], &ms) == -1, "'%s' accepted as %lld", bad[i],
                      (long long)ms);
    }
    int64_t ms;
    ck_assert_int_eq(as__instant_parse(NULL, &ms), -1);
}
END_TEST

/* An instant names one real moment: a day the month does not have, or a negative field, is
 * malformed rather than silently normalised by timegm into another date. */
START_TEST(timefmt_instant_rejects_impossible_fields)
{
    static const char *const bad[] = {
        "2026-02-30T00:00:00Z", /* February has 28 days in 2026 */
        "2025-02-29T00:00:00Z", /* not a leap year */
        "2026-04-31T00:00:00Z", /* April has 30 */
        "2026-03-01T-1:00:00Z", /* negative hour */
        "2026-03-01T00:-1:00Z", /* negative minute */
        "2026-03-01T00:00:-1Z", /* negative second */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -777;
        ck_assert_msg(as__instant_parse(bad[i], &ms) == -1, "'%s' accepted as %lld", bad[i],
                      (long long)ms);
    }
    int64_t ms;
    ck_assert_int_eq(as__instant_parse("2024-02-29T00:00:00Z", &ms), 0); /* a leap year */
    ck_assert_int_eq(as__instant_parse("2026-04-30T23:59:59Z", &ms), 0);
}
END_TEST

START_TEST(timefmt_instant_format_round_trips)
{
    char buf[32];
    as__instant_format(T_2026_03_01 + 16 * AS_HOUR - 1, buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-03-01T15:59:59.999Z");
    as__instant_format(0, buf, sizeof buf);
    ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
    as__instant_format(-1, buf, sizeof buf); /* negative ms floor to the second before */
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.999Z");
    as__instant_format(-1000, buf, sizeof buf);
    ck_assert_str_eq(buf, "1969-12-31T23:59:59.000Z");
    for (int64_t t = T_2026_03_01 - 5 * AS_DAY; t < T_2026_03_01 + 400 * AS_DAY; t += 7 * AS_HOUR + 13) {
        int64_t back = 0;
        as__instant_format(t, buf, sizeof buf);
        ck_assert_int_eq(as__instant_parse(buf, &back), 0);
        ck_assert_int_eq(back, t);
    }
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Local days (docs/rulebook.md#conventions: local_day(t) = floor((t + 8h) / 24h))
 * ---------------------------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* docs/rulebook.md#conventions: the calendar is UTC+8, so a local day starts at 16:00Z. */
START_TEST(timefmt_local_day_edges_in_utc8)
{
    int64_t midnight_local = T_2026_03_01 + 16 * AS_HOUR; /* 2026-03-02T00:00+08:00 */
    int64_t d = as__local_day(T_2026_03_01);
    ck_assert_int_eq(d, T_2026_03_01 / AS_DAY); /* 08:00 local on 2026-03-01 */
    ck_assert_int_eq(as__local_day(midnight_local - 1), d);
    ck_assert_int_eq(as__local_day(midnight_local), d + 1);
    ck_assert_int_eq(as__local_day(midnight_local + AS_DAY - 1), d + 1);
    ck_assert_int_eq(as__local_day(midnight_local + AS_DAY), d + 2);
    /* "day N after delivery": delivered 23:59 local, a claim at 00:00 local is day 1 */
    int64_t delivered = midnight_local - AS_MINUTE;
    ck_assert_int_eq(as__local_day(midnight_local) - as__local_day(delivered), 1);
    ck_assert_int_eq(as__local_day(midnight_local + 7 * AS_DAY - 1) - as__local_day(delivered), 7);
    ck_assert_int_eq(as__local_day(midnight_local + 7 * AS_DAY) - as__local_day(delivered), 8);
}
END_TEST

/* floor, not truncation, before the epoch. */
START_TEST(timefmt_local_day_negative_times)
{
    ck_assert_int_eq(as__local_day(0), 0);
    ck_assert_int_eq(as__local_day(16 * AS_HOUR - 1), 0);
    ck_assert_int_eq(as__local_day(16 * AS_HOUR), 1);
    ck_assert_int_eq(as__local_day(-8 * AS_HOUR), 0);
    ck_assert_int_eq(as__local_day(-8 * AS_HOUR - 1), -1);
    ck_assert_int_eq(as__local_day(-1), 0);
    ck_assert_int_eq(as__local_day(-32 * AS_HOUR), -1);
    ck_assert_int_eq(as__local_day(-32 * AS_HOUR - 1), -2);
    ck_assert_int_eq(as__local_day(-365 * AS_DAY), -365);
    for (int64_t t = -3 * AS_DAY - 5; t < 3 * AS_DAY; t += AS_HOUR / 2 + 1)
        ck_assert_int_eq(as__local_day(t), floor_div(t + 8 * AS_HOUR, AS_DAY));
}
END_TEST

static Suite *timefmt_suite(void)
{
    Suite *s = suite_create("timefmt");
    TCase *dur = tcase_create("duration");
    tcase_set_timeout(dur, 10);
    tcase_add_test(dur, timefmt_duration_accepts_the_documented_forms);
    tcase_add_test(dur, timefmt_duration_rejects_malformed);
    tcase_add_test(dur, timefmt_duration_rejects_overflow);
    suite_add_tcase(s, dur);

    TCase *inst = tcase_create("instant");
    tcase_set_timeout(inst, 10);
    tcase_add_test(inst, timefmt_instant_parses_utc);
    tcase_add_test(inst, timefmt_instant_rejects_malformed);
    tcase_add_test(inst, timefmt_instant_rejects_impossible_fields);
    tcase_add_test(inst, timefmt_instant_format_round_trips);
    suite_add_tcase(s, inst);

    TCase *day = tcase_create("local_day");
    tcase_set_timeout(day, 10);
    tcase_add_test(day, timefmt_local_day_edges_in_utc8);
    tcase_add_test(day, timefmt_local_day_negative_times);
    suite_add_tcase(s, day);
    return s;
}

int main(void)
{
    return unit_run(timefmt_suite(), 1);
}
