/* test_router.c -- the HTTP API's routes (api/router.h): every route of docs/api.md#endpoints,
 * path parameters and the bytes they may not hold, trailing slashes, paths longer than any
 * route, 404 against 405 (docs/api.md: "a method other than those listed on a /v1/ path is
 * 405 (a GET to a path not listed is 404)"), query strings. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "api/router.h"
#include "unit_common.h"

/* One request per route, with the parameters it must hand over. */
static const struct {
    const char *method, *target;
    as_route route;
    int nparams;
    const char *params[AS_ROUTE_MAX_PARAMS];
} served[] = {
    {"GET", "/healthz", AS_ROUTE_HEALTHZ, 0, {NULL}},
    {"GET", "/metrics", AS_ROUTE_METRICS, 0, {NULL}},
    {"GET", "/v1/cases/C1", AS_ROUTE_CASE_GET, 1, {"C1"}},
    {"GET", "/v1/cases", AS_ROUTE_CASE_LIST, 0, {NULL}},
    {"GET", "/v1/shops/S1/metrics", AS_ROUTE_SHOP_METRICS, 1, {"S1"}},
    {"GET", "/v1/rules", AS_ROUTE_RULES_LIST, 0, {NULL}},
    {"GET", "/v1/shops/S1/rules", AS_ROUTE_SHOP_RULES, 1, {"S1"}},
    {"GET", "/v1/shops/S1/rules/v3", AS_ROUTE_SHOP_RULE, 2, {"S1", "v3"}},
    {"PUT", "/v1/shops/S1/rules", AS_ROUTE_SHOP_RULES_PUT, 1, {"S1"}},
    {"POST", "/v1/shops/S1/rules/backtest", AS_ROUTE_SHOP_RULES_BACKTEST, 1, {"S1"}},
    {"POST", "/v1/orders", AS_ROUTE_ORDER_CREATE, 0, {NULL}},
    {"POST", "/v1/orders/O1/ship", AS_ROUTE_ORDER_SHIP, 1, {"O1"}},
    {"POST", "/v1/orders/O1/deliver", AS_ROUTE_ORDER_DELIVER, 1, {"O1"}},
    {"POST", "/v1/orders/O1/confirm", AS_ROUTE_ORDER_CONFIRM, 1, {"O1"}},
    {"POST", "/v1/cases", AS_ROUTE_CASE_OPEN, 0, {NULL}},
    {"POST", "/v1/cases/C1/actions", AS_ROUTE_CASE_ACT, 1, {"C1"}},
    {"GET", "/v1/clock", AS_ROUTE_CLOCK_GET, 0, {NULL}},
    {"POST", "/v1/clock/advance", AS_ROUTE_CLOCK_ADVANCE, 0, {NULL}},
};
#define NSERVED ((int)(sizeof served / sizeof served[0]))

/* Matches and asserts the status and `keyed`; returns the match for more checks. */
static as_route_match expect(const char *method, const char *target, as_route_status want,
                             int keyed)
{
    as_route_match m;
    as_route_status st = as__router_match(method, target, &m);
    ck_assert_msg(st == want, "%s %s: status %d, want %d", method, target, st, want);
    ck_assert_msg(m.keyed == keyed, "%s %s: keyed %d, want %d", method, target, m.keyed, keyed);
    return m;
}

START_TEST(router_every_route_matches)
{
    int seen[AS__ROUTE_COUNT] = {0};
    for (int i = 0; i < NSERVED; i++) {
        int keyed = strncmp(served[i].target, "/v1/", 4) == 0;
        as_route_match m = expect(served[i].method, served[i].target, AS_ROUTE_FOUND, keyed);
        ck_assert_msg(m.route == served[i].route, "%s %s: route %d, want %d", served[i].method,
                      served[i].target, m.route, served[i].route);
        ck_assert_int_eq(m.nparams, served[i].nparams);
        for (int k = 0; k < m.nparams; k++)
            ck_assert_str_eq(m.params[k], served[i].params[k]);
        ck_assert_str_eq(m.query, "");
        seen[m.route]++;
    }
    /* a route added to the table is added here too */
    for (int r = 0; r < AS__ROUTE_COUNT; r++)
        ck_assert_msg(seen[r] == 1, "route %d untested", r);
}
END_TEST

/* /healthz and /metrics answer any method (docs/openapi.yaml); their names are exact. */
START_TEST(router_health_and_metrics_take_any_method)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        ck_assert_int_eq(expect(methods[i], "/healthz", AS_ROUTE_FOUND, 0).route, AS_ROUTE_HEALTHZ);
        ck_assert_int_eq(expect(methods[i], "/metrics", AS_ROUTE_FOUND, 0).route, AS_ROUTE_METRICS);
    }
    expect("GET", "/HEALTHZ", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/healthz/", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/healthzz", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/v1/healthz", AS_ROUTE_NO_ROUTE, 1);
    expect("GET", "/metrics/x", AS_ROUTE_NO_ROUTE, 0);
}
END_TEST

/* docs/design.md#limits: a parameter is 1-64 bytes of A-Z a-z 0-9 . _ : -, handed over as it
 * came (no decoding), NUL-terminated. */
START_TEST(router_params_take_every_identifier_byte)
{
    as_route_match m = expect("GET", "/v1/cases/a.B_9:z-", AS_ROUTE_FOUND, 1);
    ck_assert_str_eq(m.params[0], "a.B_9:z-");
    m = expect("GET", "/v1/shops/...x/rules/:", AS_ROUTE_FOUND, 1);
    ck_assert_str_eq(m.params[0], "...x");
    ck_assert_str_eq(m.params[1], ":");
    char id[AS_ROUTE_PARAM_MAX + 1], target[128];
    memset(id, 'x', AS_ROUTE_PARAM_MAX);
    id[AS_ROUTE_PARAM_MAX] = '\0';
    strcpy(target, "/v1/cases/");
    strcat(target, id);
    strcat(target, "/actions");
    m = expect("POST", target, AS_ROUTE_FOUND, 1);
    ck_assert_int_eq(m.route, AS_ROUTE_CASE_ACT);
    ck_assert_str_eq(m.params[0], id);
}
END_TEST

/* Any other byte, an escape or "." / ".." makes a segment no identifier: 404 on /v1/, for any
 * method, before a route or a method is looked at. Outside /v1/ the path is simply unknown. */
START_TEST(router_odd_bytes_are_unknown_identifiers)
{
    static const char *const odd[] = {
        "%41",  "C%2F1", "C 1",         "C+1",  "C~1",   "C\"1",  "C<1", "C\\1", "C;1",
        "C,1",  "C=1",   "C&1",         "C#1",  "C@1",   "C!1",   "C*1", "C(1)", "C'1",
        "\x80", "\xff",  "caf\xc3\xa9", "C\t1", "C\x01", "C\x7f", ".",   "..",   "",
    };
    char target[128];
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        strcpy(target, "/v1/cases/");
        strcat(target, odd[i]);
        expect("GET", target, AS_ROUTE_BAD_ID, 1);
        expect("DELETE", target, AS_ROUTE_BAD_ID, 1);
        strcat(target, "/actions");
        expect("POST", target, AS_ROUTE_BAD_ID, 1);
        /* in a fixed segment, too */
        strcpy(target, "/v1/");
        strcat(target, odd[i]);
        expect("GET", target, AS_ROUTE_BAD_ID, 1);
        strcpy(target, "/");
        strcat(target, odd[i]);
        expect("GET", target, AS_ROUTE_NO_ROUTE, 0);
    }
    expect("GET", "/v1/ca%73es/C1", AS_ROUTE_BAD_ID, 1); /* not decoded into "cases" */
    expect("GET", "/v1/cases/C1%3Fx", AS_ROUTE_BAD_ID, 1);
}
END_TEST

/* A trailing '/' is an empty segment, as is "//": no identifier, on any route. On the longest
 * route it makes a sixth segment: longer than any route, no /v1/ path. */
START_TEST(router_trailing_slashes)
{
    for (int i = 0; i < NSERVED; i++) {
        char target[128];
        strcpy(target, served[i].target);
        strcat(target, "/");
        int segs = 0;
        for (const char *p = target; *p; p++)
            segs += *p == '/';
        int keyed = strncmp(target, "/v1/", 4) == 0 && segs <= 5;
        expect(served[i].method, target, keyed ? AS_ROUTE_BAD_ID : AS_ROUTE_NO_ROUTE, keyed);
    }
    expect("GET", "/v1/", AS_ROUTE_BAD_ID, 1);
    expect("GET", "/v1//cases", AS_ROUTE_BAD_ID, 1);
    expect("GET", "/v1/cases//C1", AS_ROUTE_BAD_ID, 1);
    expect("GET", "//v1/cases", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/v1", AS_ROUTE_NO_ROUTE, 0); /* not under /v1/: no key asked for */
}
END_TEST

/* More segments than the longest route (5) is no /v1/ path at all: 404 without a key. A
 * segment longer than an identifier is an unknown one; so is one of 16 KiB. */
START_TEST(router_overlong_paths)
{
    expect("GET", "/v1/shops/S1/rules/v3/x", AS_ROUTE_NO_ROUTE, 0);
    expect("DELETE", "/v1/shops/S1/rules/v3/x", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/v1/a/b/c/d/e/f/g", AS_ROUTE_NO_ROUTE, 0);

    size_t n = 16 << 10;
    char *t = malloc(n + 16);
    ck_assert_ptr_nonnull(t);
    /* 8 Ki segments */
    for (size_t i = 0; i < n; i += 2)
        t[i] = '/', t[i + 1] = 'a';
    t[n] = '\0';
    memcpy(t, "/v1/", 4);
    expect("GET", t, AS_ROUTE_NO_ROUTE, 0);
    /* one segment of 16 Ki bytes */
    strcpy(t, "/v1/cases/");
    memset(t + 10, 'x', n - 10);
    t[n] = '\0';
    expect("GET", t, AS_ROUTE_BAD_ID, 1);
    /* one byte past an identifier */
    t[10 + AS_ROUTE_PARAM_MAX + 1] = '\0';
    expect("GET", t, AS_ROUTE_BAD_ID, 1);
    t[10 + AS_ROUTE_PARAM_MAX] = '\0';
    ck_assert_int_eq(expect("GET", t, AS_ROUTE_FOUND, 1).route, AS_ROUTE_CASE_GET);
    free(t);
}
END_TEST

/* docs/api.md: on a /v1/ path no route serves, a GET or POST is 404 and another method 405,
 * whether or not the path has routes under other methods; outside /v1/ everything is 404. */
START_TEST(router_404_or_405)
{
    static const char *const other[] = {"PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        expect(other[i], "/v1/cases/C1", AS_ROUTE_BAD_METHOD, 1);
        expect(other[i], "/v1/cases/C1/actions", AS_ROUTE_BAD_METHOD, 1);
        expect(other[i], "/v1/nope", AS_ROUTE_BAD_METHOD, 1);
        expect(other[i], "/nope", AS_ROUTE_NO_ROUTE, 0);
        expect(other[i], "/v2/cases", AS_ROUTE_NO_ROUTE, 0);
    }
    expect("PUT", "/v1/cases", AS_ROUTE_BAD_METHOD, 1);
    expect("PATCH", "/v1/shops/S1/metrics", AS_ROUTE_BAD_METHOD, 1);
    expect("DELETE", "/v1/shops/S1/rules", AS_ROUTE_BAD_METHOD, 1);
    expect("PUT", "/v1/shops/S1/rules/v3", AS_ROUTE_BAD_METHOD, 1);
    /* GET and POST where only the other one is served, or nothing is */
    expect("GET", "/v1/orders", AS_ROUTE_NO_ROUTE, 1);
    expect("GET", "/v1/orders/O1/ship", AS_ROUTE_NO_ROUTE, 1);
    expect("GET", "/v1/cases/C1/actions", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/cases/C1", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/shops/S1/metrics", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/shops/S1/rules", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/rules", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/orders/O1/refund", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/orders/O1", AS_ROUTE_NO_ROUTE, 1);
    expect("GET", "/v1/nope", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/cases/C1/act", AS_ROUTE_NO_ROUTE, 1);
    expect("POST", "/v1/cases/C1/actions/x", AS_ROUTE_NO_ROUTE, 1);
    expect("GET", "/v2/cases/C1", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/V1/cases", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "/v1x/cases", AS_ROUTE_NO_ROUTE, 0);
    /* methods are compared as http_method_str spells them */
    expect("get", "/v1/cases/C1", AS_ROUTE_BAD_METHOD, 1);
}
END_TEST

/* The query is what follows the first '?', not decoded, and has no part in matching. */
START_TEST(router_query_strings)
{
    const char *t = "/v1/cases?shop=S1&state=submitted";
    as_route_match m = expect("GET", t, AS_ROUTE_FOUND, 1);
    ck_assert_int_eq(m.route, AS_ROUTE_CASE_LIST);
    ck_assert_str_eq(m.query, "shop=S1&state=submitted");
    ck_assert_ptr_eq(m.query, t + strlen("/v1/cases?")); /* into the target: no copy */

    m = expect("GET", "/v1/cases?", AS_ROUTE_FOUND, 1);
    ck_assert_str_eq(m.query, "");
    m = expect("GET", "/v1/cases/C1?a=/v1/../x&b=%2F", AS_ROUTE_FOUND, 1);
    ck_assert_int_eq(m.route, AS_ROUTE_CASE_GET);
    ck_assert_str_eq(m.params[0], "C1");
    ck_assert_str_eq(m.query, "a=/v1/../x&b=%2F");
    m = expect("GET", "/v1/cases?a?b", AS_ROUTE_FOUND, 1);
    ck_assert_str_eq(m.query, "a?b");
    m = expect("POST", "/v1/cases/C1/actions?x", AS_ROUTE_FOUND, 1);
    ck_assert_int_eq(m.route, AS_ROUTE_CASE_ACT);
    m = expect("GET", "/healthz?probe=1", AS_ROUTE_FOUND, 0);
    ck_assert_int_eq(m.route, AS_ROUTE_HEALTHZ);
    ck_assert_str_eq(m.query, "probe=1");
    /* the query is set whatever the verdict */
    ck_assert_str_eq(expect("GET", "/nope?q=1", AS_ROUTE_NO_ROUTE, 0).query, "q=1");
    ck_assert_str_eq(expect("DELETE", "/v1/cases/C1?q=2", AS_ROUTE_BAD_METHOD, 1).query, "q=2");
    ck_assert_str_eq(expect("GET", "/v1/cases/C%31?q=3", AS_ROUTE_BAD_ID, 1).query, "q=3");
    /* a trailing slash before the query is still an empty segment */
    expect("GET", "/v1/cases/?shop=S1", AS_ROUTE_BAD_ID, 1);
    expect("GET", "/?x", AS_ROUTE_NO_ROUTE, 0);
}
END_TEST

/* Request-targets that are not paths (RFC 9112 §3.2): the asterisk, the absolute form, and
 * nothing at all. */
START_TEST(router_targets_that_are_not_paths)
{
    expect("OPTIONS", "*", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "http://localhost/v1/cases", AS_ROUTE_NO_ROUTE, 0);
    expect("CONNECT", "localhost:8080", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "v1/cases", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "", AS_ROUTE_NO_ROUTE, 0);
    expect("GET", "?x=1", AS_ROUTE_NO_ROUTE, 0);
}
END_TEST

/* Each call starts from a clean match: nothing of an earlier one shows through. */
START_TEST(router_match_starts_clean)
{
    as_route_match m;
    memset(&m, 0x5a, sizeof m);
    ck_assert_int_eq(as__router_match("GET", "/v1/shops/S1/rules/v3", &m), AS_ROUTE_FOUND);
    ck_assert_int_eq(as__router_match("GET", "/v1/rules", &m), AS_ROUTE_FOUND);
    ck_assert_int_eq(m.nparams, 0);
    ck_assert_str_eq(m.params[0], "");
    ck_assert_int_eq(as__router_match("GET", "/nope", &m), AS_ROUTE_NO_ROUTE);
    ck_assert_int_eq(m.keyed, 0);
    ck_assert_int_eq(m.nparams, 0);
}
END_TEST

static Suite *router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("match");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, router_every_route_matches);
    tcase_add_test(tc, router_health_and_metrics_take_any_method);
    tcase_add_test(tc, router_params_take_every_identifier_byte);
    tcase_add_test(tc, router_odd_bytes_are_unknown_identifiers);
    tcase_add_test(tc, router_trailing_slashes);
    tcase_add_test(tc, router_overlong_paths);
    tcase_add_test(tc, router_404_or_405);
    tcase_add_test(tc, router_query_strings);
    tcase_add_test(tc, router_targets_that_are_not_paths);
    tcase_add_test(tc, router_match_starts_clean);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(router_suite(), 1);
}
