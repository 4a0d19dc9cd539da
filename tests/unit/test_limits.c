/* test_limits.c -- the one table of input limits (limits.h), each at its bound and one past. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/limits.h"
#include "unit_common.h"

static char *filled(size_t n, char c)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

START_TEST(limits_identifiers_at_64_bytes_and_one_past)
{
    char *at = filled(AS_MAX_ID, 'a'), *past = filled(AS_MAX_ID + 1, 'a');
    ck_assert_int_eq(as__limit_id(at, strlen(at)), 0);
    ck_assert_int_ne(as__limit_id(past, strlen(past)), 0);
    ck_assert_int_ne(as__limit_id("", 0), 0);
    ck_assert_int_eq(as__limit_id("Az09._:-", 8), 0);
    ck_assert_int_eq(as__limit_id("...", 3), 0);
    free(at);
    free(past);
}
END_TEST

/* Every byte that could break a URL path, a header, a JSON string or a log line. */
START_TEST(limits_identifiers_refuse_every_unsafe_byte)
{
    ck_assert_int_ne(as__limit_id(".", 1), 0);
    ck_assert_int_ne(as__limit_id("..", 2), 0);
    for (int c = 1; c < 256; c++) {
        char s[3] = {'a', (char)c, 0};
        int safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '_' || c == ':' || c == '-';
        ck_assert_msg((as__limit_id(s, 2) == 0) == safe, "byte %d", c);
    }
    ck_assert_int_ne(as__limit_id("a\0b", 3), 0); /* an embedded NUL */
}
END_TEST

START_TEST(limits_versions_have_no_colon_and_32_bytes)
{
    char *at = filled(AS_MAX_VERSION, '1'), *past = filled(AS_MAX_VERSION + 1, '1');
    ck_assert_int_eq(as__limit_version(at, strlen(at)), 0);
    ck_assert_int_ne(as__limit_version(past, strlen(past)), 0);
    ck_assert_int_eq(as__limit_version("2.0.1-rc_1", 10), 0);
    ck_assert_int_ne(as__limit_version("1:2", 3), 0);
    ck_assert_int_ne(as__limit_version("", 0), 0);
    free(at);
    free(past);
}
END_TEST

START_TEST(limits_text_is_utf8_without_controls_at_256_bytes)
{
    char *at = filled(AS_MAX_TEXT, 'x'), *past = filled(AS_MAX_TEXT + 1, 'x');
    ck_assert_int_eq(as__limit_text(at, strlen(at)), 0);
    ck_assert_int_ne(as__limit_text(past, strlen(past)), 0);
    free(at);
    free(past);
    ck_assert_int_eq(as__limit_text("质量问题 \"quoted\" <b>", strlen("质量问题 \"quoted\" <b>")), 0);
    ck_assert_int_eq(as__limit_text("\xf0\x9f\x93\xa6", 4), 0); /* U+1F4E6 */
    static const char *const bad[] = {
        "a\r\nb", "tab\there", "\x7f", "\xc2\x85", /* NEL, a C1 control */
        "\xc0\xaf",                                 /* overlong '/' */
        "\xed\xa0\x80",                             /* a surrogate */
        "\xf4\x90\x80\x80",                         /* above U+10FFFF */
        "\xe4\xb8",                                 /* truncated */
        "\xff", "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(as__limit_text(bad[i], strlen(bad[i])) != 0, "bad[%zu] accepted", i);
    ck_assert_int_ne(as__limit_text("a\0b", 3), 0);
    /* 256 bytes of three-byte characters is 85 characters and one byte: cut mid-sequence */
    char cjk[AS_MAX_TEXT + 3] = "";
    for (int i = 0; i < 86; i++) strcat(cjk, "质");
    ck_assert_int_ne(as__limit_text(cjk, AS_MAX_TEXT), 0);
    ck_assert_int_eq(as__limit_text(cjk, 255), 0);
}
END_TEST

START_TEST(limits_sources_may_hold_controls_but_no_nul)
{
    const char src[] = "return {name = 'm',\n\tversion = '1'}\r\n";
    ck_assert_int_eq(as__limit_utf8(src, strlen(src), 1), 0);
    ck_assert_int_ne(as__limit_utf8(src, strlen(src), 0), 0);
    ck_assert_int_ne(as__limit_utf8("return\0{}", 9, 1), 0);
    ck_assert_int_ne(as__limit_utf8("-- \xff", 4, 1), 0);
}
END_TEST

/* An error message quotes input and is cut to its buffer: what comes out is always valid
 * UTF-8 without control characters, so it can be put in JSON and in a log line as it is. */
START_TEST(limits_messages_are_echo_safe)
{
    as_error e;
    as__err(&e, AS_EBAD_REQUEST, "unknown key '%s'", "a\r\nInjected: 1\x01\xff");
    ck_assert_str_eq(e.msg, "unknown key 'a?" "?Injected: 1?" "?'");
    char big[AS_ERROR_MSG_MAX + 8] = "";
    while (strlen(big) + 3 < sizeof big) strcat(big, "质");
    as__err(&e, AS_EBAD_REQUEST, "x%s", big); /* the cut lands inside a character */
    ck_assert_int_eq(as__limit_utf8(e.msg, strlen(e.msg), 0), 0);
}
END_TEST

START_TEST(limits_money_bounds_cannot_overflow)
{
    /* the largest products and sums the runtime forms at the bounds */
    ck_assert(AS_MAX_MONEY * AS_MAX_QTY * AS_MAX_ORDER_LINES < INT64_MAX / 8);
    ck_assert(AS_MAX_MONEY * 1000 < INT64_MAX / 8);
    ck_assert(AS_MAX_TIME + (int64_t)366 * 86400000 < INT64_MAX / 8);
}
END_TEST

static Suite *limits_suite(void)
{
    Suite *s = suite_create("limits");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, limits_identifiers_at_64_bytes_and_one_past);
    tcase_add_test(tc, limits_identifiers_refuse_every_unsafe_byte);
    tcase_add_test(tc, limits_versions_have_no_colon_and_32_bytes);
    tcase_add_test(tc, limits_text_is_utf8_without_controls_at_256_bytes);
    tcase_add_test(tc, limits_sources_may_hold_controls_but_no_nul);
    tcase_add_test(tc, limits_messages_are_echo_safe);
    tcase_add_test(tc, limits_money_bounds_cannot_overflow);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(limits_suite(), 1);
}
