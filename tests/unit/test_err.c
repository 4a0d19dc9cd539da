/* test_err.c -- the one error list (docs/design.md#error-codes). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/error.h"
#include "core/err.h"
#include "unit_common.h"

/* docs/design.md#error-codes: "Error codes — the complete list". The runtime adds only its own `nomem` and
 * `io` (error.h). */
static const struct {
    int code;
    const char *name;
} contract[] = {
    {AS_EUNAUTHORIZED, "unauthorized"},
    {AS_ENOT_FOUND, "not_found"},
    {AS_EBAD_REQUEST, "bad_request"},
    {AS_EFORBIDDEN, "forbidden"},
    {AS_EINVALID_STATE, "invalid_state"},
    {AS_ECONFLICT, "conflict"},
    {AS_EDUPLICATE_CASE, "duplicate_case"},
    {AS_ENOT_ELIGIBLE, "not_eligible"},
    {AS_EWINDOW_EXPIRED, "window_expired"},
    {AS_EATTEMPT_LIMIT, "attempt_limit"},
    {AS_EEVIDENCE_REQUIRED, "evidence_required"},
    {AS_EAMOUNT_EXCEEDS_PAID, "amount_exceeds_paid"},
    {AS_EREMEDY_NOT_ALLOWED, "remedy_not_allowed"},
    {AS_EWARRANTY_EXPIRED, "warranty_expired"},
    {AS_ERULE_ERROR, "rule_error"},
};
#define NCONTRACT ((int)(sizeof contract / sizeof contract[0]))

/* Every code's value as error.h pins it (append-only: a value never changes and is never
 * reused). Written as numbers, not as the AS_E* names alone, so that a reorder or a
 * renumbering of the list fails here; in the list's order, so that a code added anywhere but
 * at the end fails too. A new code is added here, at the end, with the next value. */
static const struct {
    int code;
    int value;
    const char *name;
} pinned[] = {
    {AS_EUNAUTHORIZED, -99, "unauthorized"},
    {AS_ENOT_FOUND, -98, "not_found"},
    {AS_EBAD_REQUEST, -97, "bad_request"},
    {AS_EFORBIDDEN, -96, "forbidden"},
    {AS_EINVALID_STATE, -95, "invalid_state"},
    {AS_ECONFLICT, -94, "conflict"},
    {AS_EDUPLICATE_CASE, -93, "duplicate_case"},
    {AS_ENOT_ELIGIBLE, -92, "not_eligible"},
    {AS_EWINDOW_EXPIRED, -91, "window_expired"},
    {AS_EATTEMPT_LIMIT, -90, "attempt_limit"},
    {AS_EEVIDENCE_REQUIRED, -89, "evidence_required"},
    {AS_EAMOUNT_EXCEEDS_PAID, -88, "amount_exceeds_paid"},
    {AS_EREMEDY_NOT_ALLOWED, -87, "remedy_not_allowed"},
    {AS_EWARRANTY_EXPIRED, -86, "warranty_expired"},
    {AS_ERULE_ERROR, -85, "rule_error"},
    {AS_ENOMEM, -84, "nomem"},
    {AS_EIO, -83, "io"},
};
#define NPINNED ((int)(sizeof pinned / sizeof pinned[0]))

/* The library's name and message tables are indexed by code - AS__ERR_FIRST - 1, so each
 * code must sit at its place in the list: a gap, a duplicate or a reorder stops the build. */
#define ERR_POS(up, low, val, msg) err_pos_##up,
enum { err_pos_before = AS__ERR_FIRST, AS_ERRNO_MAP(ERR_POS) };
#undef ERR_POS
#define ERR_GAPLESS(up, low, val, msg)                                                             \
    _Static_assert(val == err_pos_##up, #low " is not at its place: a gap or a reorder");
AS_ERRNO_MAP(ERR_GAPLESS)
#undef ERR_GAPLESS

START_TEST(err_values_are_pinned)
{
    for (int i = 0; i < NPINNED; i++) {
        ck_assert_msg(pinned[i].code == pinned[i].value, "%s is %d, pinned at %d", pinned[i].name,
                      pinned[i].code, pinned[i].value);
        ck_assert_str_eq(as_err_name(pinned[i].value), pinned[i].name);
        ck_assert_int_eq(as_err_from_name(pinned[i].name), pinned[i].value);
    }
    /* the bounds the tables are indexed between, and a list neither longer nor shorter */
    ck_assert_int_eq(AS__ERR_FIRST, -100);
    ck_assert_int_eq(AS__ERR_END, pinned[NPINNED - 1].value + 1);
#define ERR_ONE(up, low, val, msg) +1
    ck_assert_int_eq(0 AS_ERRNO_MAP(ERR_ONE), NPINNED);
#undef ERR_ONE
}
END_TEST

START_TEST(err_names_match_the_contract)
{
    for (int i = 0; i < NCONTRACT; i++) {
        ck_assert_msg(contract[i].code < 0, "%s is not negative", contract[i].name);
        ck_assert_str_eq(as_err_name(contract[i].code), contract[i].name);
    }
    ck_assert_str_eq(as_err_name(AS_ENOMEM), "nomem");
    ck_assert_str_eq(as_err_name(AS_EIO), "io");
}
END_TEST

/* Every code the enum defines is a contract code or one of the runtime's own two: no name
 * outside the list can reach a caller. */
START_TEST(err_list_is_complete_and_closed)
{
    int n = 0;
    for (int code = AS__ERR_FIRST + 1; code < AS__ERR_END; code++, n++) {
        const char *name = as_err_name(code);
        int known = strcmp(name, "nomem") == 0 || strcmp(name, "io") == 0;
        for (int i = 0; i < NCONTRACT; i++) known |= strcmp(name, contract[i].name) == 0;
        ck_assert_msg(known, "code %d has the non-contract name '%s'", code, name);
    }
    ck_assert_int_eq(n, NCONTRACT + 2);
    /* distinct codes */
    for (int i = 0; i < NCONTRACT; i++)
        for (int j = i + 1; j < NCONTRACT; j++) ck_assert_int_ne(contract[i].code, contract[j].code);
}
END_TEST

START_TEST(err_from_name_round_trips)
{
    for (int i = 0; i < NCONTRACT; i++)
        ck_assert_int_eq(as_err_from_name(contract[i].name), contract[i].code);
    for (int code = AS__ERR_FIRST + 1; code < AS__ERR_END; code++)
        ck_assert_int_eq(as_err_from_name(as_err_name(code)), code);
    ck_assert_int_eq(as_err_from_name("unknown"), 0);
    ck_assert_int_eq(as_err_from_name(""), 0);
    ck_assert_int_eq(as_err_from_name("NOT_FOUND"), 0);
    ck_assert_int_eq(as_err_from_name("not_found "), 0);
    ck_assert_int_eq(as_err_from_name("success"), 0);
}
END_TEST

START_TEST(err_unknown_codes)
{
    ck_assert_str_eq(as_err_name(0), "unknown");
    ck_assert_str_eq(as_err_name(1), "unknown");
    ck_assert_str_eq(as_err_name(AS__ERR_FIRST), "unknown");
    ck_assert_str_eq(as_err_name(AS__ERR_END), "unknown");
    ck_assert_str_eq(as_err_name(-1000), "unknown");
    ck_assert_str_eq(as_strerror(0), "success");
    ck_assert_str_eq(as_strerror(-1000), "unknown error");
    ck_assert_str_eq(as_strerror(AS__ERR_END), "unknown error");
    /* every code has a sentence of its own */
    for (int code = AS__ERR_FIRST + 1; code < AS__ERR_END; code++) {
        const char *m = as_strerror(code);
        ck_assert_ptr_nonnull(m);
        ck_assert_str_ne(m, "unknown error");
        ck_assert_uint_gt(strlen(m), 5);
    }
}
END_TEST

/* docs/design.md#error-codes: a caller-owned as_error receives the code and a sentence. */
START_TEST(err_setter_fills_and_returns)
{
    as_error e = {0};
    ck_assert_int_eq(as__err(&e, AS_ECONFLICT, "case '%s' is at version %d", "C1", 3),
                     AS_ECONFLICT);
    ck_assert_int_eq(e.code, AS_ECONFLICT);
    ck_assert_str_eq(e.msg, "case 'C1' is at version 3");
    /* NULL err: the code still comes back */
    ck_assert_int_eq(as__err(NULL, AS_ENOT_FOUND, "x"), AS_ENOT_FOUND);
    /* a long message is cut, not overrun */
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    as__err(&e, AS_EBAD_REQUEST, "%s", big);
    ck_assert_int_eq(e.code, AS_EBAD_REQUEST);
    ck_assert_uint_eq(strlen(e.msg), AS_ERROR_MSG_MAX - 1);
}
END_TEST

static Suite *err_suite(void)
{
    Suite *s = suite_create("err");
    TCase *tc = tcase_create("list");
    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, err_values_are_pinned);
    tcase_add_test(tc, err_names_match_the_contract);
    tcase_add_test(tc, err_list_is_complete_and_closed);
    tcase_add_test(tc, err_from_name_round_trips);
    tcase_add_test(tc, err_unknown_codes);
    tcase_add_test(tc, err_setter_fills_and_returns);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(err_suite(), 1);
}
