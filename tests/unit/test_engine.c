/* test_engine.c -- commands through the public API (aftersale/aftersale.h) on a virtual clock
 * with the bundled packs: the check order and error codes of docs/design.md#check-order and #error-codes, the eligibility
 * checks of docs/rulebook.md#eligibility, and "a refused command changes nothing" (every refusal compares the
 * case's JSON before and after). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aftersale/aftersale.h"
#include "core/runtime.h"
#include "core/timefmt.h"
#include "unit_common.h"

#define T0 1772323200000ll /* 2026-03-01T00:00:00Z, 08:00 in UTC+8 */

typedef struct T {
    as_runtime *rt;
    as_error err;
} T;

#define ORDER_O1                                                                           \
    "{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":["                          \
    "{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":2,\"price\":19900},"                 \
    "{\"sku\":\"T2\",\"category\":\"apparel\",\"qty\":1,\"price\":5000,\"custom_made\":true}]," \
    "\"shipping_fee\":0,\"freight_insurance\":true}"
#define ORDER_OE                                                                           \
    "{\"id\":\"OE\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":["                          \
    "{\"sku\":\"P1\",\"category\":\"electronics\",\"qty\":1,\"price\":300000,"             \
    "\"serial\":\"490154203237518\"}],\"shipping_fee\":0}"
#define ORDER_OM                                                                           \
    "{\"id\":\"OM\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":["                          \
    "{\"sku\":\"A1\",\"category\":\"apparel\",\"qty\":1,\"price\":100},"                   \
    "{\"sku\":\"E1\",\"category\":\"electronics\",\"qty\":1,\"price\":100}],\"shipping_fee\":0}"
#define ORDER_ON /* never shipped */                                                       \
    "{\"id\":\"ON\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":["                          \
    "{\"sku\":\"N1\",\"category\":\"apparel\",\"qty\":1,\"price\":3000}],\"shipping_fee\":500}"

/* C1: a no-reason return of one T1, opened on day 1 after delivery. */
#define CASE_C1                                                                            \
    "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"no_reason\","   \
    "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}"
/* CP: a partial refund (quality, with evidence) of one T1. */
#define CASE_CP                                                                            \
    "{\"id\":\"CP\",\"order\":\"O1\",\"type\":\"partial_refund\",\"reason\":\"quality\","    \
    "\"items\":[{\"sku\":\"T1\",\"qty\":1}],\"evidence\":[\"photo1\"],\"requested_amount\":5000}"

static void ok_(T *t, int rc, const char *what, int line)
{
    ck_assert_msg(rc == 0, "line %d: %s refused: %s (%s)", line, what, as_err_name(rc), t->err.msg);
}
#define OK(t, expr) ok_((t), (expr), #expr, __LINE__)

/* A runtime at T0 with the bundled packs; orders O1, OE, OM and ON paid at T0, O1, OE and OM
 * shipped at T0 + 1d and delivered at T0 + 3d; the clock at T0 + 4d. */
static void world(T *t, int auto_pay, long instructions)
{
    memset(t, 0, sizeof *t);
    as_options o = {0};
    o.start_ms = T0;
    o.auto_pay = auto_pay;
    o.lua_instructions = instructions;
    o.lua_memory = 8 << 20;
    t->rt = unit_runtime(&o, &t->err);
    ck_assert_int_eq(as_runtime_now(t->rt), T0);
    OK(t, as_order_create_json(t->rt, ORDER_O1, &t->err));
    OK(t, as_order_create_json(t->rt, ORDER_OE, &t->err));
    OK(t, as_order_create_json(t->rt, ORDER_OM, &t->err));
    OK(t, as_order_create_json(t->rt, ORDER_ON, &t->err));
    as_runtime_advance(t->rt, T0 + AS_DAY);
    OK(t, as_order_event(t->rt, "O1", "ship", &t->err));
    OK(t, as_order_event(t->rt, "OE", "ship", &t->err));
    OK(t, as_order_event(t->rt, "OM", "ship", &t->err));
    as_runtime_advance(t->rt, T0 + 3 * AS_DAY);
    OK(t, as_order_event(t->rt, "O1", "deliver", &t->err));
    OK(t, as_order_event(t->rt, "OE", "deliver", &t->err));
    OK(t, as_order_event(t->rt, "OM", "deliver", &t->err));
    as_runtime_advance(t->rt, T0 + 4 * AS_DAY);
}

static void bye(T *t)
{
    as_runtime_free(t->rt);
    t->rt = NULL;
}

static int open_(T *t, const char *who, const char *json)
{
    memset(&t->err, 0, sizeof t->err);
    return as_case_open_json(t->rt, who, json, &t->err);
}

static int act(T *t, const char *who, const char *id, const char *action, const char *payload,
               int64_t version)
{
    memset(&t->err, 0, sizeof t->err);
    return as_case_act_json(t->rt, who, id, action, payload, version, &t->err);
}

/* The case's JSON has this substring. */
static int case_has(T *t, const char *id, const char *needle)
{
    char *j = as_case_get_json(t->rt, id);
    ck_assert_msg(j != NULL, "case %s is unknown", id);
    int yes = strstr(j, needle) != NULL;
    as_free(j);
    return yes;
}

#define STATE(s) "\"state\":\"" s "\""

/* docs/design.md#check-order: "the first failing check is the answer, and a refused command changes
 * nothing": `expr` must fail with `want` (code and message) and leave case `id` exactly as
 * it was. */
#define REFUSED(t, id, want, expr)                                                         \
    do {                                                                                   \
        char *b_ = as_case_get_json((t)->rt, (id));                                        \
        ck_assert_msg(b_ != NULL, "case %s is unknown", (id));                             \
        int rc_ = (expr);                                                                  \
        ck_assert_msg(rc_ == (want), "%s: %s (%s), want %s", #expr, as_err_name(rc_),      \
                      (t)->err.msg, as_err_name(want));                                    \
        ck_assert_int_eq((t)->err.code, (want));                                           \
        ck_assert_msg((t)->err.msg[0] != '\0', "%s: no message", #expr);                   \
        char *a_ = as_case_get_json((t)->rt, (id));                                        \
        ck_assert_ptr_nonnull(a_);                                                         \
        ck_assert_str_eq(b_, a_);                                                          \
        as_free(b_);                                                                       \
        as_free(a_);                                                                       \
    } while (0)

/* An open that must fail with `want` and create no case `newid`, leaving C1 (when it exists)
 * unchanged. */
#define OPEN_REFUSED(t, newid, want, who, json)                                            \
    do {                                                                                   \
        ck_assert_ptr_null(as_case_get_json((t)->rt, (newid)));                            \
        char *b_ = as_case_get_json((t)->rt, "C1");                                        \
        int rc_ = open_((t), (who), (json));                                               \
        ck_assert_msg(rc_ == (want), "open %s: %s (%s), want %s", (newid), as_err_name(rc_), \
                      (t)->err.msg, as_err_name(want));                                    \
        ck_assert_int_eq((t)->err.code, (want));                                           \
        ck_assert_msg((t)->err.msg[0] != '\0', "open %s: no message", (newid));            \
        ck_assert_ptr_null(as_case_get_json((t)->rt, (newid)));                            \
        char *a_ = as_case_get_json((t)->rt, "C1");                                        \
        if (b_ || a_) ck_assert_str_eq(b_, a_);                                            \
        as_free(b_);                                                                       \
        as_free(a_);                                                                       \
    } while (0)

/* ==========================================================================================
 * The happy path the other tests start from
 * ======================================================================================== */

START_TEST(engine_open_gives_requested_with_merchant_response)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    ck_assert(case_has(&t, "C1", STATE("requested")));
    ck_assert(case_has(&t, "C1", "\"version\":1"));
    ck_assert(case_has(&t, "C1", "\"refund_amount\":19900"));
    ck_assert(case_has(&t, "C1", "\"priority\":4"));
    char due[96];
    snprintf(due, sizeof due, "\"deadline\":{\"kind\":\"merchant_response\",\"due\":%lld}",
             (long long)(T0 + 4 * AS_DAY + 48 * AS_HOUR));
    ck_assert_msg(case_has(&t, "C1", due), "no %s", due);
    ck_assert(case_has(&t, "C1", "\"platform\":\"platform@3\""));
    ck_assert(case_has(&t, "C1", "\"category\":\"apparel@2\""));
    /* docs/design.md#states-and-actions: the platform may open for the buyer */
    OK(&t, open_(&t, "platform",
                 "{\"id\":\"C2\",\"order\":\"OE\",\"type\":\"exchange\",\"reason\":\"wrong_item\","
                 "\"items\":[{\"sku\":\"P1\",\"qty\":1}],\"evidence\":[\"p\"]}"));
    ck_assert(case_has(&t, "C2", STATE("requested")));
    ck_assert(case_has(&t, "C2", "\"actor\":\"platform\""));
    ck_assert(case_has(&t, "C2", "\"priority\":2"));
    bye(&t);
}
END_TEST

/* docs/rulebook.md#conventions: "A deadline of duration D entered at time t fires at exactly t + D. An
 * action stamped before t + D wins; at t + D the deadline has already fired". */
START_TEST(engine_deadline_fires_at_exactly_t_plus_d)
{
    T t;
    world(&t, 0, 0);
    int64_t opened = as_runtime_now(t.rt);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    as_runtime_advance(t.rt, opened + 48 * AS_HOUR - 1);
    ck_assert(case_has(&t, "C1", STATE("requested")));
    as_runtime_advance(t.rt, opened + 48 * AS_HOUR);
    ck_assert(case_has(&t, "C1", STATE("awaiting_return")));
    ck_assert(case_has(&t, "C1", "\"action\":\"auto_agree\""));
    /* the merchant's answer at t + D meets the new state */
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "merchant:S1", "C1", "reject",
                                             "{\"reason\":\"late\"}", -1));
    bye(&t);
}
END_TEST

/* ==========================================================================================
 * docs/design.md#check-order check 2: not_found
 * ======================================================================================== */

START_TEST(engine_unknown_case_or_order_is_not_found)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_ENOT_FOUND, act(&t, "merchant:S1", "C9", "agree", NULL, -1));
    /* check 2 comes before check 3: a malformed payload or an unknown action on an unknown
     * case is still not_found */
    REFUSED(&t, "C1", AS_ENOT_FOUND, act(&t, "merchant:S1", "C9", "agree", "{", -1));
    REFUSED(&t, "C1", AS_ENOT_FOUND, act(&t, "merchant:S1", "C9", "frobnicate", NULL, -1));
    REFUSED(&t, "C1", AS_ENOT_FOUND,
            act(&t, "merchant:S1", "C9", "reject", "{\"reason\":\"x\",\"bogus\":1}", -1));
    OPEN_REFUSED(&t, "C9", AS_ENOT_FOUND, "buyer:B1",
                 "{\"id\":\"C9\",\"order\":\"O9\",\"type\":\"refund_only\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}],\"evidence\":[\"p\"]}");
    OPEN_REFUSED(&t, "C9", AS_ENOT_FOUND, "buyer:B1",
                 "{\"id\":\"C9\",\"order\":\"O9\",\"type\":\"gift\",\"reason\":\"x\","
                 "\"items\":[],\"bogus\":true}");
    /* and the same for an order event */
    ck_assert_int_eq(as_order_event(t.rt, "O9", "ship", &t.err), AS_ENOT_FOUND);
    bye(&t);
}
END_TEST

/* ==========================================================================================
 * docs/design.md#check-order check 3: bad_request for the shape
 * ======================================================================================== */

START_TEST(engine_malformed_json_is_bad_request)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "reject", "{", -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "reject", "", -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "reject", "[1]", -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST,
            act(&t, "merchant:S1", "C1", "reject", "{\"reason\":\"a\",\"reason\":\"b\"}", -1));
    /* a value of the wrong type */
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "reject", "{\"reason\":5}", -1));
    /* a documented payload missing its required key */
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "reject", "{}", -1));
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1", "{\"id\":\"C2\",");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":\"1\"}]}");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\"}");
    ck_assert_int_eq(as_order_create_json(t.rt, "{\"id\":", &t.err), AS_EBAD_REQUEST);
    bye(&t);
}
END_TEST

/* docs/design.md#actions-and-payloads "keys not listed here are refused with bad_request". */
START_TEST(engine_unknown_key_is_bad_request)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST,
            act(&t, "merchant:S1", "C1", "reject", "{\"reason\":\"x\",\"note\":\"y\"}", -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "buyer:B1", "C1", "withdraw", "{\"why\":1}", -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST,
            act(&t, "buyer:B1", "C1", "revise", "{\"reason\":\"quality\",\"type\":\"exchange\"}", -1));
    /* check 3 before check 4: a wrong buyer with an unknown key is told bad_request */
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "buyer:B2", "C1", "withdraw", "{\"why\":1}", -1));
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"colour\":\"red\"}");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1,\"size\":\"L\"}]}");
    ck_assert_int_eq(as_order_create_json(t.rt,
                                          "{\"id\":\"OX\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":["
                                          "{\"sku\":\"X\",\"category\":\"apparel\",\"qty\":1,"
                                          "\"price\":1}],\"discount\":5}",
                                          &t.err),
                     AS_EBAD_REQUEST);
    bye(&t);
}
END_TEST

START_TEST(engine_unknown_action_is_bad_request)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "frobnicate", NULL, -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "", NULL, -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "AGREE", NULL, -1));
    /* system actions are no caller's (docs/design.md#parties-and-principals: system is never an API caller) */
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "merchant:S1", "C1", "auto_agree", NULL, -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "platform", "C1", "auto_close", NULL, -1));
    /* open is not an action on an existing case */
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "buyer:B1", "C1", "open", NULL, -1));
    /* check 3 before 4: even for a party that could never take it */
    REFUSED(&t, "C1", AS_EBAD_REQUEST, act(&t, "buyer:B2", "C1", "frobnicate", NULL, -1));
    ck_assert_int_eq(as_order_event(t.rt, "O1", "lose", &t.err), AS_EBAD_REQUEST);
    bye(&t);
}
END_TEST

/* ==========================================================================================
 * docs/design.md#check-order check 4: forbidden
 * ======================================================================================== */

/* "actor not party to the case (wrong buyer, wrong shop)". */
START_TEST(engine_wrong_party_is_forbidden)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "buyer:B2", "C1", "withdraw", NULL, -1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "merchant:S2", "C1", "agree", NULL, -1));
    /* check 4 before 5: the wrong buyer asking what the state does not allow */
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "buyer:B2", "C1", "escalate", NULL, -1));
    /* ... and before 6 */
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "merchant:S2", "C1", "agree", NULL, 0));
    OPEN_REFUSED(&t, "C2", AS_EFORBIDDEN, "buyer:B2",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}");
    OPEN_REFUSED(&t, "C2", AS_EFORBIDDEN, "merchant:S1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}");
    /* not a principal at all */
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "system", "C1", "agree", NULL, -1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "buyer:", "C1", "withdraw", NULL, -1));
    bye(&t);
}
END_TEST

/* "an action the actor's role never performs (a buyer's agree)". */
START_TEST(engine_role_never_takes_action_is_forbidden)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "buyer:B1", "C1", "agree", NULL, -1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "logistics", "C1", "agree", NULL, -1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "platform", "C1", "agree", NULL, -1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "merchant:S1", "C1", "withdraw", NULL, -1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "merchant:S1", "C1", "rule_for_buyer", NULL, -1));
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "buyer:B1", "C1", "delivered", NULL, -1));
    /* the platform acts for the buyer only to open */
    REFUSED(&t, "C1", AS_EFORBIDDEN, act(&t, "platform", "C1", "withdraw", NULL, -1));
    /* check 4 before 5: a buyer's inspect is forbidden, not invalid_state */
    REFUSED(&t, "C1", AS_EFORBIDDEN,
            act(&t, "buyer:B1", "C1", "inspect", "{\"result\":\"fault\"}", -1));
    bye(&t);
}
END_TEST

/* ==========================================================================================
 * docs/design.md#check-order checks 5 and 6: invalid_state, conflict
 * ======================================================================================== */

START_TEST(engine_action_not_in_state_is_invalid_state)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "merchant:S1", "C1", "confirm_return", NULL, -1));
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "buyer:B1", "C1", "escalate", NULL, -1));
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "buyer:B1", "C1", "accept_offer", NULL, -1));
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "platform", "C1", "refund_succeeded", NULL, -1));
    REFUSED(&t, "C1", AS_EINVALID_STATE,
            act(&t, "buyer:B1", "C1", "ship_return", "{\"carrier\":\"SF\",\"tracking\":\"1\"}", -1));
    /* docs/rulebook.md#where-agreement-leads: an offer is for a partial_refund only */
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "merchant:S1", "C1", "offer", "{\"amount\":100}", -1));
    /* check 5 before 6 and 7 */
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "merchant:S1", "C1", "confirm_return", NULL, 0));
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "merchant:S1", "C1", "offer", "{\"amount\":0}", -1));
    /* a terminal case takes nothing but tracking news */
    OK(&t, act(&t, "buyer:B1", "C1", "withdraw", NULL, -1));
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "buyer:B1", "C1", "withdraw", NULL, -1));
    REFUSED(&t, "C1", AS_EINVALID_STATE, act(&t, "merchant:S1", "C1", "agree", NULL, -1));
    OK(&t, act(&t, "logistics", "C1", "delivered", NULL, -1)); /* docs/design.md#states-and-actions: any state */
    ck_assert(case_has(&t, "C1", STATE("closed")));
    bye(&t);
}
END_TEST

/* docs/rulebook.md#eligibility: revise is invalid_state "after a rejection at receipt ..., when the merchant
 * holds the goods". */
START_TEST(engine_revise_refused_when_goods_are_held)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    OK(&t, act(&t, "merchant:S1", "C1", "agree", NULL, -1));
    OK(&t, act(&t, "buyer:B1", "C1", "ship_return", "{\"carrier\":\"SF\",\"tracking\":\"SF1\"}", -1));
    ck_assert(case_has(&t, "C1", STATE("returning")));
    OK(&t, act(&t, "merchant:S1", "C1", "reject_return", "{\"reason\":\"tag_removed\"}", -1));
    ck_assert(case_has(&t, "C1", STATE("rejected")));
    REFUSED(&t, "C1", AS_EINVALID_STATE,
            act(&t, "buyer:B1", "C1", "revise", "{\"reason\":\"size_fit\"}", -1));
    OK(&t, act(&t, "buyer:B1", "C1", "escalate", NULL, -1)); /* escalation stays open */
    ck_assert(case_has(&t, "C1", STATE("platform_review")));
    bye(&t);
}
END_TEST

/* docs/design.md#check-order check 6: "stale version → conflict". */
START_TEST(engine_stale_version_is_conflict)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    REFUSED(&t, "C1", AS_ECONFLICT, act(&t, "merchant:S1", "C1", "agree", NULL, 0));
    REFUSED(&t, "C1", AS_ECONFLICT, act(&t, "merchant:S1", "C1", "agree", NULL, 2));
    OK(&t, act(&t, "merchant:S1", "C1", "agree", NULL, 1));
    ck_assert(case_has(&t, "C1", "\"version\":2"));
    ck_assert(case_has(&t, "C1", STATE("awaiting_return")));
    /* the version a caller saw before is stale now */
    REFUSED(&t, "C1", AS_ECONFLICT, act(&t, "buyer:B1", "C1", "withdraw", NULL, 1));
    bye(&t);
}
END_TEST

/* ==========================================================================================
 * docs/design.md#check-order check 7: values out of range
 * ======================================================================================== */

/* "an offer outside 1 fen … the cap of docs/rulebook.md#amounts". */
START_TEST(engine_offer_out_of_range_is_bad_request)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_CP));
    ck_assert(case_has(&t, "CP", "\"refund_amount\":5000"));
    REFUSED(&t, "CP", AS_EBAD_REQUEST, act(&t, "merchant:S1", "CP", "offer", "{\"amount\":0}", -1));
    REFUSED(&t, "CP", AS_EBAD_REQUEST, act(&t, "merchant:S1", "CP", "offer", "{\"amount\":-5}", -1));
    /* the cap: paid for the case (the order has shipped, so no shipping fee) */
    REFUSED(&t, "CP", AS_EBAD_REQUEST,
            act(&t, "merchant:S1", "CP", "offer", "{\"amount\":19901}", -1));
    REFUSED(&t, "CP", AS_EBAD_REQUEST, act(&t, "merchant:S1", "CP", "offer", "{\"amount\":\"5\"}", -1));
    REFUSED(&t, "CP", AS_EBAD_REQUEST, act(&t, "merchant:S1", "CP", "offer", NULL, -1));
    /* check 6 before 7 */
    REFUSED(&t, "CP", AS_ECONFLICT, act(&t, "merchant:S1", "CP", "offer", "{\"amount\":0}", 7));
    /* the edges themselves are fine */
    OK(&t, act(&t, "merchant:S1", "CP", "offer", "{\"amount\":19900}", 1));
    ck_assert(case_has(&t, "CP", STATE("negotiating")));
    OK(&t, act(&t, "buyer:B1", "CP", "accept_offer", NULL, -1));
    ck_assert(case_has(&t, "CP", STATE("refunding")));
    ck_assert(case_has(&t, "CP", "\"refund_amount\":19900"));
    bye(&t);
}
END_TEST

START_TEST(engine_other_values_out_of_range_are_bad_request)
{
    T t;
    world(&t, 0, 0);
    /* docs/rulebook.md#electronics: receipt-check reasons are a closed list */
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    OK(&t, act(&t, "merchant:S1", "C1", "agree", NULL, -1));
    OK(&t, act(&t, "buyer:B1", "C1", "ship_return",
               "{\"carrier\":\"SF\",\"tracking\":\"SF1\",\"shipping_cost\":1200}", -1));
    REFUSED(&t, "C1", AS_EBAD_REQUEST,
            act(&t, "merchant:S1", "C1", "reject_return", "{\"reason\":\"dirty\"}", -1));
    /* an inspection result other than fault / no_fault (an electronics quality return) */
    OK(&t, open_(&t, "buyer:B1",
                 "{\"id\":\"CE\",\"order\":\"OE\",\"type\":\"return_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"P1\",\"qty\":1}],\"evidence\":[\"p\"]}"));
    OK(&t, act(&t, "merchant:S1", "CE", "agree", NULL, -1));
    OK(&t, act(&t, "buyer:B1", "CE", "ship_return", "{\"carrier\":\"SF\",\"tracking\":\"SF2\"}", -1));
    OK(&t, act(&t, "merchant:S1", "CE", "confirm_return", "{\"serial\":\"490154203237518\"}", -1));
    ck_assert(case_has(&t, "CE", STATE("inspecting")));
    REFUSED(&t, "CE", AS_EBAD_REQUEST,
            act(&t, "merchant:S1", "CE", "inspect", "{\"result\":\"maybe\"}", -1));
    REFUSED(&t, "CE", AS_EBAD_REQUEST, act(&t, "merchant:S1", "CE", "inspect", NULL, -1));
    /* an unknown case type or reason */
    OPEN_REFUSED(&t, "C3", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C3\",\"order\":\"O1\",\"type\":\"gift\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[\"p\"]}");
    OPEN_REFUSED(&t, "C3", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C3\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"bored\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}]}");
    /* check 4 before 7: a wrong buyer with an unknown type is forbidden */
    OPEN_REFUSED(&t, "C3", AS_EFORBIDDEN, "buyer:B2",
                 "{\"id\":\"C3\",\"order\":\"O1\",\"type\":\"gift\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[\"p\"]}");
    /* docs/design.md#limits: an id already in use is bad_request */
    OPEN_REFUSED(&t, "C1x", AS_EBAD_REQUEST, "buyer:B1", CASE_C1);
    bye(&t);
}
END_TEST

/* ==========================================================================================
 * docs/design.md#check-order check 8 / docs/rulebook.md#eligibility: eligibility, stage 1 then stage 2
 * ======================================================================================== */

/* Stage 1 #1: "an item's SKU is not on the order, or its qty is above what was bought; items of
 * more than one category; a value out of range (bad_permille)". */
START_TEST(engine_stage1_bad_request)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"ZZ\",\"qty\":1}]}");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":2}]}");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":0}]}");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"OM\",\"type\":\"return_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"A1\",\"qty\":1},{\"sku\":\"E1\",\"qty\":1}],"
                 "\"evidence\":[\"p\"]}");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"partial_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[\"p\"],\"bad_permille\":0}");
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"partial_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[\"p\"],\"bad_permille\":1001}");
    /* #1 before #3: a SKU not on the order next to one with an open case */
    OPEN_REFUSED(&t, "C2", AS_EBAD_REQUEST, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1},{\"sku\":\"ZZ\",\"qty\":1}]}");
    bye(&t);
}
END_TEST

/* Stage 1 #2: "order not shipped: anything but refund_only; shipped, not delivered: anything
 * but refund_only or return_refund → not_eligible". */
START_TEST(engine_stage1_shipment_status_not_eligible)
{
    T t;
    world(&t, 0, 0);
    OPEN_REFUSED(&t, "C2", AS_ENOT_ELIGIBLE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"ON\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
                 "\"items\":[{\"sku\":\"N1\",\"qty\":1}]}");
    /* #2 before #6: no evidence for a quality claim, but not shipped decides first */
    OPEN_REFUSED(&t, "C2", AS_ENOT_ELIGIBLE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"ON\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"N1\",\"qty\":1}]}");
    OK(&t, as_order_event(t.rt, "ON", "ship", &t.err));
    OPEN_REFUSED(&t, "C2", AS_ENOT_ELIGIBLE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"ON\",\"type\":\"exchange\",\"reason\":\"wrong_item\","
                 "\"items\":[{\"sku\":\"N1\",\"qty\":1}],\"evidence\":[\"p\"]}");
    OPEN_REFUSED(&t, "C2", AS_ENOT_ELIGIBLE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"ON\",\"type\":\"reship\",\"reason\":\"missing_item\","
                 "\"items\":[{\"sku\":\"N1\",\"qty\":1}],\"evidence\":[\"p\"]}");
    /* shipped, not delivered: a return_refund is possible */
    OK(&t, open_(&t, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"ON\",\"type\":\"return_refund\",\"reason\":\"not_as_described\","
                 "\"items\":[{\"sku\":\"N1\",\"qty\":1}],\"evidence\":[\"p\"]}"));
    bye(&t);
}
END_TEST

/* Before shipment a refund_only is a cancellation: only stage 1 applies, and the shipping fee
 * goes back with the last item, shown from the open on (docs/rulebook.md#eligibility, docs/rulebook.md#amounts). */
START_TEST(engine_cancellation_before_shipment)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"ON\",\"type\":\"refund_only\",\"reason\":\"no_reason\","
                 "\"items\":[{\"sku\":\"N1\",\"qty\":1}]}"));
    ck_assert(case_has(&t, "C2", "\"refund_amount\":3500"));
    OK(&t, act(&t, "merchant:S1", "C2", "agree", NULL, -1));
    ck_assert(case_has(&t, "C2", STATE("refunding")));
    ck_assert(case_has(&t, "C2", "\"refund_amount\":3500"));
    bye(&t);
}
END_TEST

/* Stage 1 #3: "a case item's SKU has another open (non-terminal) case on this order". */
START_TEST(engine_stage1_duplicate_case)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    OPEN_REFUSED(&t, "C2", AS_EDUPLICATE_CASE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}");
    /* #3 before #6: no evidence, but the duplicate decides first */
    OPEN_REFUSED(&t, "C2", AS_EDUPLICATE_CASE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}");
    /* withdraw frees the SKU (docs/rulebook.md#eligibility) */
    OK(&t, act(&t, "buyer:B1", "C1", "withdraw", NULL, -1));
    OK(&t, open_(&t, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"size_fit\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}"));
    bye(&t);
}
END_TEST

/* Stage 1 #4: "the case covers more units of a SKU line than refunds have left unsettled". */
START_TEST(engine_stage1_settled_units_not_eligible)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1",
                 "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"refund_only\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":2}],\"evidence\":[\"p\"]}"));
    OK(&t, act(&t, "merchant:S1", "C1", "agree", NULL, -1));
    OK(&t, act(&t, "platform", "C1", "refund_succeeded", NULL, -1));
    ck_assert(case_has(&t, "C1", STATE("refunded")));
    OPEN_REFUSED(&t, "C2", AS_ENOT_ELIGIBLE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"refund_only\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}],\"evidence\":[\"p\"]}");
    bye(&t);
}
END_TEST

/* Stage 1 #5: "the SKU line already had 5 opens + revisions, so the 6th is refused (withdraw
 * gives none back; refused ones do not count)". */
START_TEST(engine_stage1_attempt_limit)
{
    T t;
    world(&t, 0, 0);
    char id[16], json[256];
    /* a refused open does not count */
    OPEN_REFUSED(&t, "A0", AS_EEVIDENCE_REQUIRED, "buyer:B1",
                 "{\"id\":\"A0\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}");
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof id, "A%d", i);
        snprintf(json, sizeof json,
                 "{\"id\":\"%s\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
                 id);
        OK(&t, open_(&t, "buyer:B1", json));
        OK(&t, act(&t, "buyer:B1", id, "withdraw", NULL, -1));
    }
    OPEN_REFUSED(&t, "A6", AS_EATTEMPT_LIMIT, "buyer:B1",
                 "{\"id\":\"A6\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}");
    /* the other line is not limited */
    OK(&t, open_(&t, "buyer:B1",
                 "{\"id\":\"A7\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"wrong_item\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[\"p\"]}"));
    bye(&t);
}
END_TEST

/* Stage 1 #6: "reason in {quality, ...} with no evidence → evidence_required". */
START_TEST(engine_stage1_evidence_required)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    OPEN_REFUSED(&t, "C2", AS_EEVIDENCE_REQUIRED, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}]}");
    OPEN_REFUSED(&t, "C2", AS_EEVIDENCE_REQUIRED, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"damaged_in_transit\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[]}");
    /* #6 before #7 */
    OPEN_REFUSED(&t, "C2", AS_EEVIDENCE_REQUIRED, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"partial_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"requested_amount\":999999}");
    /* a revise is checked like an open and refused the same way, changing nothing */
    REFUSED(&t, "C1", AS_EEVIDENCE_REQUIRED,
            act(&t, "buyer:B1", "C1", "revise", "{\"reason\":\"quality\"}", -1));
    bye(&t);
}
END_TEST

/* Stage 1 #7: "requested_amount above paid for the case (+ shipping where docs/rulebook.md#amounts allows)". */
START_TEST(engine_stage1_amount_exceeds_paid)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_CP));
    OPEN_REFUSED(&t, "C2", AS_EAMOUNT_EXCEEDS_PAID, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"partial_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[\"p\"],\"requested_amount\":5001}");
    REFUSED(&t, "CP", AS_EAMOUNT_EXCEEDS_PAID,
            act(&t, "buyer:B1", "CP", "revise", "{\"requested_amount\":19901}", -1));
    OK(&t, act(&t, "buyer:B1", "CP", "revise", "{\"requested_amount\":19900}", -1));
    ck_assert(case_has(&t, "CP", "\"refund_amount\":19900"));
    bye(&t);
}
END_TEST

/* Stage 2 (platform policy) #1: "reason no_reason and the item is custom_made" → not_eligible;
 * #2 goods back after delivery. */
START_TEST(engine_stage2_not_eligible)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    OPEN_REFUSED(&t, "C2", AS_ENOT_ELIGIBLE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}]}");
    OPEN_REFUSED(&t, "C2", AS_ENOT_ELIGIBLE, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"OE\",\"type\":\"refund_only\",\"reason\":\"no_reason\","
                 "\"items\":[{\"sku\":\"P1\",\"qty\":1}]}");
    bye(&t);
}
END_TEST

/* Stage 2 #3: "reason no_reason or size_fit later than day 7 after delivery" (UTC+8 days). */
START_TEST(engine_stage2_window_expired)
{
    T t;
    world(&t, 0, 0);
    /* delivered T0 + 3d = 08:00 local; day 7 ends at 23:59:59.999 local of T0 + 10d */
    int64_t day8 = T0 + 10 * AS_DAY + 16 * AS_HOUR;
    as_runtime_advance(t.rt, day8 - 1);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    as_runtime_advance(t.rt, day8);
    OPEN_REFUSED(&t, "C2", AS_EWINDOW_EXPIRED, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"OE\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
                 "\"items\":[{\"sku\":\"P1\",\"qty\":1}]}");
    /* revising the open case on day 8 is checked at the time of the revision */
    REFUSED(&t, "C1", AS_EWINDOW_EXPIRED,
            act(&t, "buyer:B1", "C1", "revise", "{\"reason\":\"size_fit\"}", -1));
    bye(&t);
}
END_TEST

/* docs/rulebook.md#electronics 三包: day 8-15 after delivery a quality claim may ask for exchange or repair. */
START_TEST(engine_stage2_remedy_not_allowed)
{
    T t;
    world(&t, 0, 0);
    as_runtime_advance(t.rt, T0 + 13 * AS_DAY);
    OPEN_REFUSED(&t, "CE", AS_EREMEDY_NOT_ALLOWED, "buyer:B1",
                 "{\"id\":\"CE\",\"order\":\"OE\",\"type\":\"return_refund\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"P1\",\"qty\":1}],\"evidence\":[\"p\"]}");
    OK(&t, open_(&t, "buyer:B1",
                 "{\"id\":\"CE\",\"order\":\"OE\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"P1\",\"qty\":1}],\"evidence\":[\"p\"]}"));
    bye(&t);
}
END_TEST

/* docs/rulebook.md#electronics: past the warranty year → warranty_expired. */
START_TEST(engine_stage2_warranty_expired)
{
    T t;
    world(&t, 0, 0);
    as_runtime_advance(t.rt, T0 + 400 * AS_DAY);
    OPEN_REFUSED(&t, "CE", AS_EWARRANTY_EXPIRED, "buyer:B1",
                 "{\"id\":\"CE\",\"order\":\"OE\",\"type\":\"repair\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"P1\",\"qty\":1}],\"evidence\":[\"p\"]}");
    bye(&t);
}
END_TEST

/* ==========================================================================================
 * Rules that fail (docs/design.md#hooks-and-layers)
 * ======================================================================================== */

/* Writes `src` to a temporary .lua file; the caller unlinks it. */
static void write_pack(char *path, size_t len, const char *src)
{
    snprintf(path, len, "/tmp/as_test_pack_XXXXXX.lua");
    int fd = mkstemps(path, 4);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(src);
    ck_assert_int_eq(write(fd, src, n), (ssize_t)n);
    close(fd);
}

/* "A failing merchant hook never blocks a buyer: its answer is dropped, the failure is
 * recorded in the case history ... and the command goes on with the platform and category
 * answers." */
START_TEST(engine_looping_merchant_pack_does_not_block_open)
{
    T t;
    world(&t, 0, 50000);
    char path[64];
    write_pack(path, sizeof path,
               "local function spin() while true do end end\n"
               "return { name = 'greedy', version = '3', eligibility = spin, refund_amount = spin,"
               " deadlines = spin, priority = spin, auto_decide = spin }\n");
    int rc = as_runtime_load_merchant(t.rt, "S1", path, &t.err);
    unlink(path);
    OK(&t, rc);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    ck_assert(case_has(&t, "C1", STATE("requested")));
    ck_assert(case_has(&t, "C1", "\"refund_amount\":19900"));
    ck_assert(case_has(&t, "C1", "\"merchant\":\"greedy@3\""));
    ck_assert_msg(case_has(&t, "C1", "\"note\":"), "no note in the history");
    ck_assert(case_has(&t, "C1", "instruction budget"));
    char due[96];
    snprintf(due, sizeof due, "\"due\":%lld", (long long)(T0 + 4 * AS_DAY + 48 * AS_HOUR));
    ck_assert(case_has(&t, "C1", due)); /* the platform's 48h stands */
    /* the shop's metrics count the dropped answers */
    char *m = as_shop_metrics_json(t.rt, "S1");
    ck_assert_ptr_nonnull(m);
    ck_assert_msg(strstr(m, "\"rule_drops\":0") == NULL, "no rule drops counted: %s", m);
    as_free(m);
    bye(&t);
}
END_TEST

/* "When a platform or category hook throws or exceeds a budget, the command is refused with
 * rule_error and the case is untouched" — here: no case at all. */
START_TEST(engine_throwing_category_pack_is_rule_error)
{
    T t;
    world(&t, 0, 0);
    char path[64];
    write_pack(path, sizeof path,
               "return { name = 'apparel', version = '3', categories = { 'apparel' },"
               " eligibility = function() error('category rules are broken') end }\n");
    int rc = as_runtime_load_pack(t.rt, path, &t.err);
    unlink(path);
    OK(&t, rc);
    OPEN_REFUSED(&t, "C1", AS_ERULE_ERROR, "buyer:B1", CASE_C1);
    ck_assert_msg(strstr(t.err.msg, "category rules are broken"), "%s", t.err.msg);
    /* nothing was counted against the line either: with the good pack back, it opens */
    OK(&t, as_runtime_load_pack(t.rt, AS_SOURCE_ROOT "/plugins/apparel/apparel.lua", &t.err));
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    ck_assert(case_has(&t, "C1", "\"category\":\"apparel@2\""));
    bye(&t);
}
END_TEST

/* docs/design.md#pack-versions: "a case records the versions in force when it opened and keeps them
 * until it ends, even when a new version is loaded". */
START_TEST(engine_category_pack_version_pinned_at_open)
{
    T t;
    world(&t, 0, 0);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    char path[64];
    write_pack(path, sizeof path,
               "return { name = 'apparel', version = '3', categories = { 'apparel' },"
               " eligibility = function() while true do end end }\n");
    int rc = as_runtime_load_pack(t.rt, path, &t.err);
    unlink(path);
    OK(&t, rc);
    /* C1 keeps apparel@2: its revise runs the old rules */
    OK(&t, act(&t, "buyer:B1", "C1", "revise", "{\"reason\":\"size_fit\"}", -1));
    ck_assert(case_has(&t, "C1", "\"category\":\"apparel@2\""));
    /* a new case gets apparel@3, which runs away: rule_error, no case */
    OPEN_REFUSED(&t, "C2", AS_ERULE_ERROR, "buyer:B1",
                 "{\"id\":\"C2\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"wrong_item\","
                 "\"items\":[{\"sku\":\"T2\",\"qty\":1}],\"evidence\":[\"p\"]}");
    ck_assert_msg(strstr(t.err.msg, "instruction budget"), "%s", t.err.msg);
    bye(&t);
}
END_TEST

/* A category hook that fails during an action refuses it with rule_error and leaves the case
 * exactly as it was (docs/design.md#hooks-and-layers). */
START_TEST(engine_failing_category_hook_on_action_changes_nothing)
{
    T t;
    world(&t, 0, 0);
    char path[64];
    write_pack(path, sizeof path,
               "return { name = 'apparel', version = '3', categories = { 'apparel' },"
               " refund_amount = function(case) if case.state == 'awaiting_return' then"
               "   error('no amount today') end return nil end }\n");
    int rc = as_runtime_load_pack(t.rt, path, &t.err);
    unlink(path);
    OK(&t, rc);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    OK(&t, act(&t, "merchant:S1", "C1", "agree", NULL, -1));
    ck_assert(case_has(&t, "C1", STATE("awaiting_return")));
    REFUSED(&t, "C1", AS_ERULE_ERROR,
            act(&t, "buyer:B1", "C1", "ship_return",
                "{\"carrier\":\"SF\",\"tracking\":\"SF1\",\"shipping_cost\":800}", 2));
    ck_assert_msg(strstr(t.err.msg, "no amount today"), "%s", t.err.msg);
    bye(&t);
}
END_TEST

/* docs/design.md#check-order: "A deadline is never refused: when a platform or category hook fails as it
 * fires, the failure is recorded and the deadline's default action of docs/rulebook.md#deadlines is
 * taken." */
START_TEST(engine_deadline_never_refused_by_failing_rule)
{
    T t;
    world(&t, 0, 0);
    char path[64];
    write_pack(path, sizeof path,
               "return { name = 'apparel', version = '3', categories = { 'apparel' },"
               " deadlines = function(case) if case.state == 'awaiting_return' then"
               "   error('no deadline for you') end return nil end }\n");
    int rc = as_runtime_load_pack(t.rt, path, &t.err);
    unlink(path);
    OK(&t, rc);
    int64_t opened = as_runtime_now(t.rt);
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    as_runtime_advance(t.rt, opened + 48 * AS_HOUR);
    ck_assert(case_has(&t, "C1", STATE("awaiting_return")));
    ck_assert(case_has(&t, "C1", "\"action\":\"auto_agree\""));
    ck_assert_msg(case_has(&t, "C1", "no deadline for you"), "the failure is not in the history");
    char due[96]; /* the platform's buyer_ship stands */
    snprintf(due, sizeof due, "\"deadline\":{\"kind\":\"buyer_ship\",\"due\":%lld}",
             (long long)(opened + 48 * AS_HOUR + 7 * AS_DAY));
    ck_assert_msg(case_has(&t, "C1", due), "no %s", due);
    bye(&t);
}
END_TEST

/* docs/design.md#time-and-deadlines: on the real clock, deadlines are data in one scheduler driving one uv_timer_t;
 * the timer fires the deadline without any command arriving. */
START_TEST(engine_real_clock_timer_fires_deadline)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    as_options o = {0};
    o.loop = &loop;
    T t = {0};
    t.rt = unit_runtime(&o, &t.err);
    char path[64];
    write_pack(path, sizeof path,
               "return { name = 'quick', version = '1',"
               " deadlines = function() return { merchant_response = 30 } end }\n");
    int rc = as_runtime_load_merchant(t.rt, "S1", path, &t.err);
    unlink(path);
    OK(&t, rc);
    OK(&t, as_order_create_json(t.rt, ORDER_O1, &t.err));
    OK(&t, as_order_event(t.rt, "O1", "deliver", &t.err));
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    ck_assert(case_has(&t, "C1", STATE("requested")));
    /* one timer for the whole scheduler: the loop has exactly one active handle */
    ck_assert_int_eq(uv_loop_alive(&loop), 1);
    for (int i = 0; i < 100 && case_has(&t, "C1", STATE("requested")); i++)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert(case_has(&t, "C1", STATE("awaiting_return")));
    ck_assert(case_has(&t, "C1", "\"action\":\"auto_agree\""));
    bye(&t);
    uv_run(&loop, UV_RUN_NOWAIT); /* completes the timer's close */
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* docs/design.md#pack-versions: "an old version is freed when no open case pins it" -- its engine state goes
 * with its last case, while the case still names the version it ran under. */
START_TEST(engine_old_version_freed_when_last_case_ends)
{
    T t;
    world(&t, 1, 0);
    char v1[64], v2[64];
    write_pack(v1, sizeof v1, "return { name = 'm', version = '1', priority = function() return 9 end }\n");
    write_pack(v2, sizeof v2, "return { name = 'm', version = '2', priority = function() return 8 end }\n");
    OK(&t, as_runtime_load_merchant(t.rt, "S1", v1, &t.err));
    OK(&t, open_(&t, "buyer:B1", CASE_C1));
    as_pack *old = t.rt->installed[t.rt->ninstalled - 1];
    ck_assert_str_eq(old->version, "1");
    OK(&t, as_runtime_load_merchant(t.rt, "S1", v2, &t.err));
    unlink(v1);
    unlink(v2);
    ck_assert_msg(as__pack_loaded(old), "v1 is pinned by the open C1 and must stay loaded");
    ck_assert(case_has(&t, "C1", "\"priority\":9"));
    OK(&t, act(&t, "buyer:B1", "C1", "withdraw", NULL, -1));
    ck_assert_msg(!as__pack_loaded(old), "v1 is still loaded after its last case ended");
    ck_assert(case_has(&t, "C1", "\"merchant\":\"m@1\""));
    bye(&t);
}
END_TEST

static Suite *engine_suite(void)
{
    Suite *s = suite_create("engine");
    TCase *basic = tcase_create("basic");
    tcase_set_timeout(basic, 30);
    tcase_add_test(basic, engine_open_gives_requested_with_merchant_response);
    tcase_add_test(basic, engine_deadline_fires_at_exactly_t_plus_d);
    tcase_add_test(basic, engine_cancellation_before_shipment);
    tcase_add_test(basic, engine_real_clock_timer_fires_deadline);
    tcase_add_test(basic, engine_old_version_freed_when_last_case_ends);
    suite_add_tcase(s, basic);

    TCase *order = tcase_create("check_order");
    tcase_set_timeout(order, 30);
    tcase_add_test(order, engine_unknown_case_or_order_is_not_found);
    tcase_add_test(order, engine_malformed_json_is_bad_request);
    tcase_add_test(order, engine_unknown_key_is_bad_request);
    tcase_add_test(order, engine_unknown_action_is_bad_request);
    tcase_add_test(order, engine_wrong_party_is_forbidden);
    tcase_add_test(order, engine_role_never_takes_action_is_forbidden);
    tcase_add_test(order, engine_action_not_in_state_is_invalid_state);
    tcase_add_test(order, engine_revise_refused_when_goods_are_held);
    tcase_add_test(order, engine_stale_version_is_conflict);
    tcase_add_test(order, engine_offer_out_of_range_is_bad_request);
    tcase_add_test(order, engine_other_values_out_of_range_are_bad_request);
    suite_add_tcase(s, order);

    TCase *elig = tcase_create("eligibility");
    tcase_set_timeout(elig, 30);
    tcase_add_test(elig, engine_stage1_bad_request);
    tcase_add_test(elig, engine_stage1_shipment_status_not_eligible);
    tcase_add_test(elig, engine_stage1_duplicate_case);
    tcase_add_test(elig, engine_stage1_settled_units_not_eligible);
    tcase_add_test(elig, engine_stage1_attempt_limit);
    tcase_add_test(elig, engine_stage1_evidence_required);
    tcase_add_test(elig, engine_stage1_amount_exceeds_paid);
    tcase_add_test(elig, engine_stage2_not_eligible);
    tcase_add_test(elig, engine_stage2_window_expired);
    tcase_add_test(elig, engine_stage2_remedy_not_allowed);
    tcase_add_test(elig, engine_stage2_warranty_expired);
    suite_add_tcase(s, elig);

    TCase *rules = tcase_create("failing_rules");
    tcase_set_timeout(rules, 30);
    tcase_add_test(rules, engine_looping_merchant_pack_does_not_block_open);
    tcase_add_test(rules, engine_throwing_category_pack_is_rule_error);
    tcase_add_test(rules, engine_category_pack_version_pinned_at_open);
    tcase_add_test(rules, engine_failing_category_hook_on_action_changes_nothing);
    tcase_add_test(rules, engine_deadline_never_refused_by_failing_rule);
    suite_add_tcase(s, rules);
    return s;
}

int main(void)
{
    return unit_run(engine_suite(), 1);
}
