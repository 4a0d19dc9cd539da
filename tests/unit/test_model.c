/* test_model.c -- the vocabulary of docs/design.md#domain-model and docs/design.md#states-and-actions and the deadline table of docs/rulebook.md#deadlines
 * (core/model.h). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "unit_common.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------------------------------------
 * Names: the contract's spelling, in both directions
 * ---------------------------------------------------------------------------------------- */

/* docs/design.md#case "Types": the six case types, spelled as the contract spells them. */
START_TEST(model_type_names_are_the_contracts)
{
    static const char *const want[] = {"refund_only", "return_refund", "exchange",
                                       "repair",      "partial_refund", "reship"};
    ck_assert_int_eq(AS_TYPE_COUNT, COUNT(want));
    for (int i = 0; i < COUNT(want); i++) {
        ck_assert_str_eq(as__type_name(i), want[i]);
        ck_assert_int_eq(as__type_from(want[i]), i);
    }
}
END_TEST

/* docs/design.md#case "Reasons": the ten reasons. */
START_TEST(model_reason_names_are_the_contracts)
{
    static const char *const want[] = {"no_reason",     "quality",      "not_as_described",
                                       "wrong_item",    "missing_item", "damaged_in_transit",
                                       "not_received",  "late_delivery", "size_fit",
                                       "spoiled"};
    ck_assert_int_eq(AS_REASON_COUNT, COUNT(want));
    for (int i = 0; i < COUNT(want); i++) {
        ck_assert_str_eq(as__reason_name(i), want[i]);
        ck_assert_int_eq(as__reason_from(want[i]), i);
    }
}
END_TEST

/* docs/design.md#states "States": the fourteen states of the table. */
START_TEST(model_state_names_are_the_contracts)
{
    static const char *const want[] = {
        "requested", "negotiating", "rejected",   "platform_review", "awaiting_return",
        "returning", "inspecting",  "repairing",  "reshipping",      "delivering",
        "refunding", "refunded",    "completed",  "closed"};
    ck_assert_int_eq(AS_STATE_COUNT, COUNT(want));
    for (int i = 0; i < COUNT(want); i++) {
        ck_assert_str_eq(as__state_name(i), want[i]);
        ck_assert_int_eq(as__state_from(want[i]), i);
    }
}
END_TEST

/* docs/design.md#actions-and-payloads "Actions" and the system actions of docs/rulebook.md#deadlines: name and acting role. */
START_TEST(model_action_names_and_roles_are_the_contracts)
{
    static const struct {
        const char *name;
        as_role role;
    } want[] = {
        {"open", AS_ROLE_BUYER},
        {"revise", AS_ROLE_BUYER},
        {"withdraw", AS_ROLE_BUYER},
        {"escalate", AS_ROLE_BUYER},
        {"accept_offer", AS_ROLE_BUYER},
        {"decline_offer", AS_ROLE_BUYER},
        {"confirm_receipt", AS_ROLE_BUYER},
        {"ship_return", AS_ROLE_BUYER},
        {"agree", AS_ROLE_MERCHANT},
        {"finish_repair", AS_ROLE_MERCHANT},
        {"refund_instead", AS_ROLE_MERCHANT},
        {"reject", AS_ROLE_MERCHANT},
        {"offer", AS_ROLE_MERCHANT},
        {"confirm_return", AS_ROLE_MERCHANT},
        {"reject_return", AS_ROLE_MERCHANT},
        {"inspect", AS_ROLE_MERCHANT},
        {"ship_replacement", AS_ROLE_MERCHANT},
        {"rule_for_buyer", AS_ROLE_PLATFORM},
        {"rule_for_merchant", AS_ROLE_PLATFORM},
        {"refund_succeeded", AS_ROLE_PLATFORM},
        {"refund_failed", AS_ROLE_PLATFORM},
        {"return_delivered", AS_ROLE_LOGISTICS},
        {"delivered", AS_ROLE_LOGISTICS},
        {"auto_agree", AS_ROLE_SYSTEM},
        {"auto_decline", AS_ROLE_SYSTEM},
        {"auto_close", AS_ROLE_SYSTEM},
        {"auto_confirm_return", AS_ROLE_SYSTEM},
        {"auto_inspect", AS_ROLE_SYSTEM},
        {"auto_refund", AS_ROLE_SYSTEM},
        {"auto_complete", AS_ROLE_SYSTEM},
    };
    ck_assert_int_eq(AS_ACT_COUNT, COUNT(want));
    for (int i = 0; i < COUNT(want); i++) {
        int a = as__action_from(want[i].name);
        ck_assert_msg(a >= 0, "action '%s' unknown", want[i].name);
        ck_assert_str_eq(as__action_name(a), want[i].name);
        ck_assert_msg(as__action_role((as_action)a) == want[i].role, "role of '%s' is %s",
                      want[i].name, as__role_name(as__action_role((as_action)a)));
    }
}
END_TEST

/* docs/design.md#parties-and-principals "Actors". */
START_TEST(model_role_names_are_the_contracts)
{
    static const char *const want[] = {"buyer", "merchant", "platform", "logistics", "system"};
    ck_assert_int_eq(AS_ROLE_COUNT, COUNT(want));
    for (int i = 0; i < COUNT(want); i++) {
        ck_assert_str_eq(as__role_name(i), want[i]);
        ck_assert_int_eq(as__role_from(want[i]), i);
    }
}
END_TEST

/* docs/rulebook.md#deadlines deadline names and docs/design.md#hooks-and-layers remedies. */
START_TEST(model_deadline_and_remedy_names_round_trip)
{
    static const char *const dl[] = {"merchant_response", "buyer_response", "escalation_window",
                                     "buyer_ship",        "merchant_receive", "inspection",
                                     "merchant_ship",     "repair",           "buyer_confirm"};
    ck_assert_int_eq(AS_DL_COUNT, COUNT(dl));
    for (int i = 0; i < COUNT(dl); i++) {
        ck_assert_str_eq(as__deadline_name(i), dl[i]);
        ck_assert_int_eq(as__deadline_from(dl[i]), i);
    }
    static const char *const rem[] = {"refund", "exchange", "repair", "reject"};
    ck_assert_int_eq(AS_REMEDY_COUNT, COUNT(rem));
    for (int i = 0; i < COUNT(rem); i++) {
        ck_assert_str_eq(as__remedy_name(i), rem[i]);
        ck_assert_int_eq(as__remedy_from(rem[i]), i);
    }
}
END_TEST

START_TEST(model_unknown_names_and_indexes)
{
    ck_assert_int_eq(as__type_from("refund"), -1);
    ck_assert_int_eq(as__type_from(""), -1);
    ck_assert_int_eq(as__type_from(NULL), -1);
    ck_assert_int_eq(as__reason_from("Quality"), -1); /* case matters */
    ck_assert_int_eq(as__state_from("open"), -1);
    ck_assert_int_eq(as__action_from("agree "), -1);
    ck_assert_int_eq(as__role_from("system:1"), -1);
    ck_assert_int_eq(as__deadline_from("refunding"), -1);
    ck_assert_int_eq(as__remedy_from(NULL), -1);
    ck_assert_str_eq(as__type_name(-1), "unknown");
    ck_assert_str_eq(as__type_name(AS_TYPE_COUNT), "unknown");
    ck_assert_str_eq(as__state_name(AS_STATE_COUNT), "unknown");
    ck_assert_str_eq(as__action_name(AS_ACT_COUNT), "unknown");
    ck_assert_str_eq(as__reason_name(255), "unknown");
    ck_assert_str_eq(as__remedy_name(AS_REMEDY_NONE), "unknown");
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * States and deadlines
 * ---------------------------------------------------------------------------------------- */

/* docs/rulebook.md#deadlines: each state's deadline; platform_review and refunding have none ("a person
 * decides", "the outbox delivers again"), nor do the terminal states. */
START_TEST(model_state_deadline_kinds)
{
    static const struct {
        as_state s;
        as_deadline_kind k;
    } want[] = {
        {AS_STATE_REQUESTED, AS_DL_MERCHANT_RESPONSE},
        {AS_STATE_NEGOTIATING, AS_DL_BUYER_RESPONSE},
        {AS_STATE_REJECTED, AS_DL_ESCALATION_WINDOW},
        {AS_STATE_PLATFORM_REVIEW, AS_DL_NONE},
        {AS_STATE_AWAITING_RETURN, AS_DL_BUYER_SHIP},
        {AS_STATE_RETURNING, AS_DL_MERCHANT_RECEIVE},
        {AS_STATE_INSPECTING, AS_DL_INSPECTION},
        {AS_STATE_REPAIRING, AS_DL_REPAIR},
        {AS_STATE_RESHIPPING, AS_DL_MERCHANT_SHIP},
        {AS_STATE_DELIVERING, AS_DL_BUYER_CONFIRM},
        {AS_STATE_REFUNDING, AS_DL_NONE},
        {AS_STATE_REFUNDED, AS_DL_NONE},
        {AS_STATE_COMPLETED, AS_DL_NONE},
        {AS_STATE_CLOSED, AS_DL_NONE},
    };
    ck_assert_int_eq(COUNT(want), AS_STATE_COUNT);
    for (int i = 0; i < COUNT(want); i++)
        ck_assert_msg(as__state_deadline(want[i].s) == want[i].k, "state %s waits on %s",
                      as__state_name(want[i].s), as__deadline_name(as__state_deadline(want[i].s)));
    ck_assert_int_eq(as__state_deadline(-1), AS_DL_NONE);
    ck_assert_int_eq(as__state_deadline(AS_STATE_COUNT), AS_DL_NONE);
}
END_TEST

/* docs/design.md#states-and-actions: refunded, completed and closed are the terminal states, and only they. */
START_TEST(model_terminal_states)
{
    for (int s = 0; s < AS_STATE_COUNT; s++) {
        bool want = s == AS_STATE_REFUNDED || s == AS_STATE_COMPLETED || s == AS_STATE_CLOSED;
        ck_assert_msg(as__state_terminal(s) == want, "state %s terminal=%d", as__state_name(s),
                      as__state_terminal(s));
    }
    ck_assert(!as__state_terminal(-1));
    ck_assert(!as__state_terminal(AS_STATE_COUNT));
}
END_TEST

/* docs/rulebook.md#deadlines "on expiry (system action)". */
START_TEST(model_deadline_fires_system_action)
{
    static const struct {
        as_deadline_kind k;
        as_action a;
    } want[] = {
        {AS_DL_MERCHANT_RESPONSE, AS_ACT_AUTO_AGREE},
        {AS_DL_BUYER_RESPONSE, AS_ACT_AUTO_DECLINE},
        {AS_DL_ESCALATION_WINDOW, AS_ACT_AUTO_CLOSE},
        {AS_DL_BUYER_SHIP, AS_ACT_AUTO_CLOSE},
        {AS_DL_MERCHANT_RECEIVE, AS_ACT_AUTO_CONFIRM_RETURN},
        {AS_DL_INSPECTION, AS_ACT_AUTO_INSPECT},
        {AS_DL_MERCHANT_SHIP, AS_ACT_AUTO_REFUND},
        {AS_DL_REPAIR, AS_ACT_AUTO_REFUND},
        {AS_DL_BUYER_CONFIRM, AS_ACT_AUTO_COMPLETE},
    };
    ck_assert_int_eq(COUNT(want), AS_DL_COUNT);
    for (int i = 0; i < COUNT(want); i++) {
        as_action a = as__deadline_action(want[i].k);
        ck_assert_msg(a == want[i].a, "%s fires %s", as__deadline_name(want[i].k),
                      as__action_name(a));
        /* docs/design.md#parties-and-principals: `system` (deadlines and rules) takes every deadline's action */
        ck_assert_int_eq(as__action_role(a), AS_ROLE_SYSTEM);
    }
}
END_TEST

/* docs/rulebook.md#merchant-bounds: the merchant's own windows (it may shorten them) versus the buyer's (it may
 * lengthen them). */
START_TEST(model_merchant_and_buyer_windows)
{
    static const as_deadline_kind merchants[] = {AS_DL_MERCHANT_RESPONSE, AS_DL_MERCHANT_RECEIVE,
                                                 AS_DL_INSPECTION, AS_DL_MERCHANT_SHIP,
                                                 AS_DL_REPAIR};
    static const as_deadline_kind buyers[] = {AS_DL_BUYER_SHIP, AS_DL_BUYER_RESPONSE,
                                              AS_DL_ESCALATION_WINDOW, AS_DL_BUYER_CONFIRM};
    ck_assert_int_eq(COUNT(merchants) + COUNT(buyers), AS_DL_COUNT);
    for (int i = 0; i < COUNT(merchants); i++)
        ck_assert_msg(as__deadline_is_merchants(merchants[i]), "%s should be the merchant's",
                      as__deadline_name(merchants[i]));
    for (int i = 0; i < COUNT(buyers); i++)
        ck_assert_msg(!as__deadline_is_merchants(buyers[i]), "%s should be the buyer's",
                      as__deadline_name(buyers[i]));
}
END_TEST

/* docs/rulebook.md#where-agreement-leads: "the case goes where its requested remedy leads: refund, exchange, repair";
 * the other types ask for no goods-back remedy. */
START_TEST(model_type_remedy)
{
    ck_assert_int_eq(as__type_remedy(AS_TYPE_RETURN_REFUND), AS_REMEDY_REFUND);
    ck_assert_int_eq(as__type_remedy(AS_TYPE_EXCHANGE), AS_REMEDY_EXCHANGE);
    ck_assert_int_eq(as__type_remedy(AS_TYPE_REPAIR), AS_REMEDY_REPAIR);
    ck_assert_int_eq(as__type_remedy(AS_TYPE_REFUND_ONLY), AS_REMEDY_NONE);
    ck_assert_int_eq(as__type_remedy(AS_TYPE_PARTIAL_REFUND), AS_REMEDY_NONE);
    ck_assert_int_eq(as__type_remedy(AS_TYPE_RESHIP), AS_REMEDY_NONE);
}
END_TEST

static Suite *model_suite(void)
{
    Suite *s = suite_create("model");
    TCase *names = tcase_create("names");
    tcase_set_timeout(names, 10);
    tcase_add_test(names, model_type_names_are_the_contracts);
    tcase_add_test(names, model_reason_names_are_the_contracts);
    tcase_add_test(names, model_state_names_are_the_contracts);
    tcase_add_test(names, model_action_names_and_roles_are_the_contracts);
    tcase_add_test(names, model_role_names_are_the_contracts);
    tcase_add_test(names, model_deadline_and_remedy_names_round_trip);
    tcase_add_test(names, model_unknown_names_and_indexes);
    suite_add_tcase(s, names);

    TCase *props = tcase_create("properties");
    tcase_set_timeout(props, 10);
    tcase_add_test(props, model_state_deadline_kinds);
    tcase_add_test(props, model_terminal_states);
    tcase_add_test(props, model_deadline_fires_system_action);
    tcase_add_test(props, model_merchant_and_buyer_windows);
    tcase_add_test(props, model_type_remedy);
    suite_add_tcase(s, props);
    return s;
}

int main(void)
{
    return unit_run(model_suite(), 1);
}
