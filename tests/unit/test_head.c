/* test_head.c -- the HTTP/1.1 response head writer (api/head.h): the status lines of every
 * status the server answers, the bytes of a whole head as the server sent them before it had
 * the writer, and the names and values it refuses (RFC 9110 §5.5, §5.6.2). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/head.h"
#include "unit_common.h"

/* The head's text, or NULL when the writer refused a part; free with as_free. */
static char *take(as_buf *b)
{
    size_t len;
    char *s = as__buf_take(b, &len);
    if (s) ck_assert_uint_eq(len, strlen(s));
    return s;
}

START_TEST(head_status_lines)
{
    static const struct {
        int status;
        const char *line;
    } want[] = {
        {200, "HTTP/1.1 200 OK\r\n"},
        {201, "HTTP/1.1 201 Created\r\n"},
        {400, "HTTP/1.1 400 Bad Request\r\n"},
        {401, "HTTP/1.1 401 Unauthorized\r\n"},
        {403, "HTTP/1.1 403 Forbidden\r\n"},
        {404, "HTTP/1.1 404 Not Found\r\n"},
        {405, "HTTP/1.1 405 Method Not Allowed\r\n"},
        {408, "HTTP/1.1 408 Request Timeout\r\n"},
        {409, "HTTP/1.1 409 Conflict\r\n"},
        {413, "HTTP/1.1 413 Payload Too Large\r\n"},
        {422, "HTTP/1.1 422 Unprocessable Entity\r\n"},
        {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
        {500, "HTTP/1.1 500 Internal Server Error\r\n"},
        {503, "HTTP/1.1 503 Service Unavailable\r\n"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__head_status(&b, want[i].status), 0);
        char *s = take(&b);
        ck_assert_str_eq(s, want[i].line);
        as_free(s);
    }
    /* a status outside the table is refused, not sent with a guessed reason */
    static const int unknown[] = {0, -1, 100, 204, 299, 302, 418, 502, 600, 1000};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__head_status(&b, unknown[i]), AS_EBAD_REQUEST);
        ck_assert_ptr_null(take(&b));
    }
}
END_TEST

/* docs/api.md's answers: exactly the bytes the server wrote with its old format string,
 * "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n". */
START_TEST(head_whole_answer_is_unchanged)
{
    static const struct {
        int status;
        const char *reason, *type;
        size_t length;
        int close;
    } cases[] = {
        {200, "OK", "application/json", 11, 0},
        {201, "Created", "application/json", 11, 1},
        {404, "Not Found", "application/json", 0, 0},
        {503, "Service Unavailable", "application/json", 1 << 20, 1},
        {200, "OK", "text/plain; version=0.0.4", 4096, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char want[256];
        snprintf(want, sizeof want,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                 cases[i].status, cases[i].reason, cases[i].type, cases[i].length,
                 cases[i].close ? "Connection: close\r\n" : "");
        as_buf b;
        as__buf_init(&b, 0);
        as__head_status(&b, cases[i].status);
        as__head_field(&b, "Content-Type", cases[i].type);
        as__head_field_u64(&b, "Content-Length", cases[i].length);
        if (cases[i].close) as__head_field(&b, "Connection", "close");
        ck_assert_int_eq(as__head_end(&b), 0);
        char *s = take(&b);
        ck_assert_str_eq(s, want);
        as_free(s);
    }
}
END_TEST

START_TEST(head_numbers_are_digits)
{
    as_buf b;
    as__buf_init(&b, 0);
    as__head_field_u64(&b, "Content-Length", 0);
    as__head_field_u64(&b, "Content-Length", UINT64_MAX);
    char *s = take(&b);
    ck_assert_str_eq(s, "Content-Length: 0\r\nContent-Length: 18446744073709551615\r\n");
    as_free(s);
}
END_TEST

/* A name is a token: no separator, space, control or non-ASCII byte, not empty. */
START_TEST(head_names_must_be_tokens)
{
    static const char *const bad[] = {
        "",    "Content Type", "X:Y",  "X\r\nY", "X\n",  "\xc3\x84rger", "(x)",
        "a,b", "a;b",          "a=b",  "a\"b",   "a/b",  "a[b]",         "a{b}",
        "a?b", "a@b",          "a\\b", "a\tb",   "\x7f", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_msg(as__head_field(&b, bad[i], "v") == AS_EBAD_REQUEST, "name '%s'", bad[i]);
        ck_assert_ptr_null(take(&b));
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__head_field_u64(&b, bad[i], 1), AS_EBAD_REQUEST);
        ck_assert_ptr_null(take(&b));
    }
    as_buf b;
    as__buf_init(&b, 0);
    ck_assert_int_eq(as__head_field(&b, "X-A_b.c~!#$%&'*+^`|09", "v"), 0);
    char *s = take(&b);
    ck_assert_str_eq(s, "X-A_b.c~!#$%&'*+^`|09: v\r\n");
    as_free(s);
}
END_TEST

/* A value with CR or LF would end the field and write fields of its own (response splitting);
 * other controls are refused as well. HTAB, SP, visible bytes and obs-text pass as they are. */
START_TEST(head_values_hold_no_line_break)
{
    static const char *const bad[] = {"a\r\nSet-Cookie: x=1", "\r\n", "\n",   "\r",   "a\rb",
                                      "close\n\r\n<html>",    "\x01", "\x1f", "\x7f", "a\x1b[0m"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        as__head_status(&b, 200);
        ck_assert_int_eq(as__head_field(&b, "X-Value", bad[i]), AS_EBAD_REQUEST);
        /* refused: what follows is not written and the head is not taken */
        ck_assert_int_eq(as__head_field(&b, "Connection", "close"), AS_EBAD_REQUEST);
        ck_assert_int_eq(as__head_end(&b), AS_EBAD_REQUEST);
        ck_assert_ptr_null(take(&b));
    }
    static const char *const good[] = {
        "",    "text/plain; version=0.0.4", "a\tb",
        " x ", "\x80\xff obs-text",         "~!@#$%^&*()_+{}|:\"<>?"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        as_buf b;
        as__buf_init(&b, 0);
        ck_assert_int_eq(as__head_field(&b, "X-Value", good[i]), 0);
        char *s = take(&b);
        char want[128];
        snprintf(want, sizeof want, "X-Value: %s\r\n", good[i]);
        ck_assert_str_eq(s, want);
        as_free(s);
    }
}
END_TEST

static Suite *head_suite(void)
{
    Suite *s = suite_create("head");
    TCase *tc = tcase_create("head");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, head_status_lines);
    tcase_add_test(tc, head_whole_answer_is_unchanged);
    tcase_add_test(tc, head_numbers_are_digits);
    tcase_add_test(tc, head_names_must_be_tokens);
    tcase_add_test(tc, head_values_hold_no_line_break);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(head_suite(), 1);
}
