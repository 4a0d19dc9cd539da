/* test_prom.c -- the Prometheus text exposition writer (api/prom.h): TYPE lines, samples with
 * and without labels exactly as GET /metrics wrote them with format strings, label values
 * escaped per the format (backslash, double quote, newline), the names it refuses. */
#include <check.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/prom.h"
#include "unit_common.h"

static char *take(as_buf *b)
{
    size_t len;
    char *s = as__buf_take(b, &len);
    if (s) ck_assert_uint_eq(len, strlen(s));
    return s;
}

/* Asserts the buffer's text and frees it. */
static void expect_text(as_buf *b, const char *want)
{
    char *s = take(b);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s, want);
    as_free(s);
}

START_TEST(prom_type_lines)
{
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__prom_type(&b, "aftersale_open_cases", types[i]), 0);
        char want[64];
        snprintf(want, sizeof want, "# TYPE aftersale_open_cases %s\n", types[i]);
        expect_text(&b, want);
    }
    static const char *const bad[] = {"Counter", "", "counter ", "info", "gauge\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__prom_type(&b, "m", bad[i]), AS_EBAD_REQUEST);
        ck_assert_ptr_null(take(&b));
    }
}
END_TEST

/* The lines of GET /metrics, against the format strings http.c had before the writer. */
START_TEST(prom_samples_are_unchanged)
{
    as_buf b;
    as__buf_init(&b, 0);
    as_prom_label cls = {"class", "4xx"};
    as__prom_sample(&b, "aftersale_http_requests_total", &cls, 1, 17);
    as_prom_label tr[2] = {{"type", "return_refund"}, {"state", "refunded"}};
    as__prom_sample(&b, "aftersale_transitions_total", tr, 2, UINT64_MAX);
    as__prom_sample(&b, "aftersale_commands_total", NULL, 0, 0);
    as_prom_label le = {"le", "+Inf"};
    as__prom_sample(&b, "aftersale_http_request_duration_seconds_bucket", &le, 1, 3);
    as__prom_sample_i64(&b, "aftersale_webhook_backlog", NULL, 0, -2);
    as__prom_sample_i64(&b, "aftersale_webhook_backlog", NULL, 0, INT64_MIN);
    as__prom_sample_seconds(&b, "aftersale_commit_seconds_sum", NULL, 0, 1000250);
    char want[1024];
    snprintf(want, sizeof want,
             "aftersale_http_requests_total{class=\"%dxx\"} %llu\n"
             "aftersale_transitions_total{type=\"%s\",state=\"%s\"} %llu\n"
             "aftersale_commands_total %llu\n"
             "aftersale_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
             "aftersale_webhook_backlog %lld\n"
             "aftersale_webhook_backlog %lld\n"
             "aftersale_commit_seconds_sum %.6f\n",
             4, 17ULL, "return_refund", "refunded", (unsigned long long)UINT64_MAX, 0ULL, 3ULL,
             -2LL, (long long)INT64_MIN, 1.000250);
    expect_text(&b, want);
}
END_TEST

/* Seconds from microseconds: six decimals, as "%.6f" shows the same number of seconds. */
START_TEST(prom_seconds_have_six_decimals)
{
    static const uint64_t us[] = {0,       1,       9,        10,        999999,     1000000,
                                  1000001, 1000250, 59999999, 123456789, 3600000000, 86400000001};
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        as__prom_sample_seconds(&b, "s", NULL, 0, us[i]);
        char want[64];
        snprintf(want, sizeof want, "s %.6f\n", (double)us[i] / 1e6);
        expect_text(&b, want);
    }
    as_buf b;
    as__buf_init(&b, 0);
    as__prom_sample_seconds(&b, "s", NULL, 0, UINT64_MAX);
    expect_text(&b, "s 18446744073709.551615\n");
}
END_TEST

/* The format's three escapes and nothing else: a value stays one quoted value on one line. */
START_TEST(prom_label_values_are_escaped)
{
    static const struct {
        const char *value, *shown;
    } cases[] = {
        {"plain", "plain"},
        {"", ""},
        {"a\\b", "a\\\\b"},
        {"say \"hi\"", "say \\\"hi\\\""},
        {"two\nlines", "two\\nlines"},
        {"\\\"\n", "\\\\\\\"\\n"},
        {"\"} 1\nforged_metric 99\n", "\\\"} 1\\nforged_metric 99\\n"},
        {"caf\xc3\xa9 \xe6\x9c\x8d", "caf\xc3\xa9 \xe6\x9c\x8d"}, /* UTF-8 as it is */
        {"tab\there", "tab\there"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        as_prom_label l[2] = {{"layer", cases[i].value}, {"x", "y"}};
        ck_assert_int_eq(as__prom_sample(&b, "aftersale_rule_failures_total", l, 2, 1), 0);
        char want[256];
        snprintf(want, sizeof want, "aftersale_rule_failures_total{layer=\"%s\",x=\"y\"} 1\n",
                 cases[i].shown);
        char *s = take(&b);
        ck_assert_str_eq(s, want);
        ck_assert_ptr_eq(strchr(s, '\n'), s + strlen(s) - 1); /* one line */
        as_free(s);
    }
}
END_TEST

START_TEST(prom_names_are_checked)
{
    static const char *const bad_metric[] = {"",     "1abc",     "a-b",  "a b", "a.b",
                                             "a\nb", "\xc3\xa9", "a{b}", "a\"b"};
    for (size_t i = 0; i < sizeof bad_metric / sizeof bad_metric[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__prom_type(&b, bad_metric[i], "counter"), AS_EBAD_REQUEST);
        ck_assert_ptr_null(take(&b));
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__prom_sample(&b, bad_metric[i], NULL, 0, 1), AS_EBAD_REQUEST);
        ck_assert_ptr_null(take(&b));
    }
    static const char *const good_metric[] = {"a", "_", ":", "a:b_c9", "_9", ":x:"};
    for (size_t i = 0; i < sizeof good_metric / sizeof good_metric[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__prom_sample(&b, good_metric[i], NULL, 0, 1), 0);
        as__buf_free(&b);
    }
    /* label names: no colon, not "__..." (Prometheus's own), not empty; a value is needed */
    static const char *const bad_label[] = {"", "a:b", "__name__", "__", "9a", "a-b", "a b"};
    for (size_t i = 0; i < sizeof bad_label / sizeof bad_label[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        as_prom_label l = {bad_label[i], "v"};
        ck_assert_int_eq(as__prom_sample(&b, "m", &l, 1, 1), AS_EBAD_REQUEST);
        ck_assert_ptr_null(take(&b));
    }
    as_buf b;
    as__buf_init(&b, 0);
    as_prom_label l[2] = {{"_a", "v"}, {"b9_", "w"}};
    ck_assert_int_eq(as__prom_sample_i64(&b, "m", l, 2, -1), 0);
    expect_text(&b, "m{_a=\"v\",b9_=\"w\"} -1\n");
    as_prom_label none[2] = {{"ok", "v"}, {"missing", NULL}};
    as__buf_init(&b, 0);
    ck_assert_int_eq(as__prom_sample_seconds(&b, "m", none, 2, 1), AS_EBAD_REQUEST);
    ck_assert_ptr_null(take(&b));
    as_prom_label unnamed = {NULL, "v"};
    as__buf_init(&b, 0);
    ck_assert_int_eq(as__prom_sample(&b, "m", &unnamed, 1, 1), AS_EBAD_REQUEST);
    ck_assert_ptr_null(take(&b));
}
END_TEST

/* One refused part drops the whole text: no exposition goes out with a metric missing. */
START_TEST(prom_refusal_drops_the_text)
{
    as_buf b;
    as__buf_init(&b, 0);
    as__prom_type(&b, "good_total", "counter");
    as__prom_sample(&b, "good_total", NULL, 0, 1);
    as__prom_type(&b, "bad-name", "counter");
    ck_assert_int_eq(as__prom_sample(&b, "later_total", NULL, 0, 1), AS_EBAD_REQUEST);
    ck_assert_ptr_null(take(&b));
}
END_TEST

static Suite *prom_suite(void)
{
    Suite *s = suite_create("prom");
    TCase *tc = tcase_create("prom");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, prom_type_lines);
    tcase_add_test(tc, prom_samples_are_unchanged);
    tcase_add_test(tc, prom_seconds_have_six_decimals);
    tcase_add_test(tc, prom_label_values_are_escaped);
    tcase_add_test(tc, prom_names_are_checked);
    tcase_add_test(tc, prom_refusal_drops_the_text);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(prom_suite(), 1);
}
