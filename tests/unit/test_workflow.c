/* test_workflow.c -- the base workflow as data: every row of docs/rulebook.md#where-agreement-leads (and the states and
 * actions of docs/design.md#states-and-actions) through as__workflow_allows and as__workflow_route. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/error.h"
#include "core/workflow.h"
#include "unit_common.h"

/* A condition oracle: the answer for each hook condition and a log of what was asked. */
typedef struct oracle {
    int answer[16];
    int asked[16];
    int order[16];
    int nasked;
} oracle;

static int ask(void *ctx, as_wf_cond cond)
{
    oracle *o = ctx;
    ck_assert_msg(cond != AS_WC_ALWAYS && cond != AS_WC_HELD && cond != AS_WC_NOT_HELD,
                  "structural condition %d handed to the callback", cond);
    o->asked[cond]++;
    if (o->nasked < 16) o->order[o->nasked++] = cond;
    return o->answer[cond];
}

static oracle none(void)
{
    oracle o;
    memset(&o, 0, sizeof o);
    return o;
}

/* Routes and returns the row, failing the test when there is none. */
static const as_wf_row *route_ok(int state, int action, int type, int held, oracle *o)
{
    const as_wf_row *row = NULL;
    int rc = as__workflow_route(state, action, type, held, ask, o, &row);
    ck_assert_msg(rc == 0, "%s in %s (type %s, held %d) refused: %d", as__action_name(action),
                  as__state_name(state), as__type_name(type), held, rc);
    ck_assert_ptr_nonnull(row);
    return row;
}

static int route_to(int state, int action, int type, int held, oracle *o)
{
    return route_ok(state, action, type, held, o)->to;
}

#define ALL_TYPES(t) for (int t = 0; t < AS_TYPE_COUNT; t++)

/* ------------------------------------------------------------------------------------------
 * Which actions each state takes
 * ---------------------------------------------------------------------------------------- */

/* The (state, action) pairs docs/rulebook.md#deadlines, docs/rulebook.md#where-agreement-leads allow, for every type, ignoring only the two
 * type- and hold-dependent exceptions tested on their own below (offer, revise). */
static int expected_pair(int s, int a)
{
    if (a == AS_ACT_RETURN_DELIVERED || a == AS_ACT_DELIVERED) return 1; /* any state */
    switch (s) {
    case AS_STATE_REQUESTED:
        return a == AS_ACT_AGREE || a == AS_ACT_AUTO_AGREE || a == AS_ACT_REJECT ||
               a == AS_ACT_REVISE || a == AS_ACT_WITHDRAW;
    case AS_STATE_NEGOTIATING:
        return a == AS_ACT_ACCEPT_OFFER || a == AS_ACT_DECLINE_OFFER ||
               a == AS_ACT_AUTO_DECLINE || a == AS_ACT_WITHDRAW;
    case AS_STATE_REJECTED:
        return a == AS_ACT_ESCALATE || a == AS_ACT_WITHDRAW || a == AS_ACT_AUTO_CLOSE;
    case AS_STATE_PLATFORM_REVIEW:
        return a == AS_ACT_RULE_FOR_BUYER || a == AS_ACT_RULE_FOR_MERCHANT;
    case AS_STATE_AWAITING_RETURN:
        return a == AS_ACT_SHIP_RETURN || a == AS_ACT_WITHDRAW || a == AS_ACT_AUTO_CLOSE;
    case AS_STATE_RETURNING:
        return a == AS_ACT_CONFIRM_RETURN || a == AS_ACT_AUTO_CONFIRM_RETURN ||
               a == AS_ACT_REJECT_RETURN;
    case AS_STATE_INSPECTING: return a == AS_ACT_INSPECT || a == AS_ACT_AUTO_INSPECT;
    case AS_STATE_RESHIPPING:
        return a == AS_ACT_SHIP_REPLACEMENT || a == AS_ACT_REFUND_INSTEAD || a == AS_ACT_AUTO_REFUND;
    case AS_STATE_REPAIRING: return a == AS_ACT_FINISH_REPAIR || a == AS_ACT_AUTO_REFUND;
    case AS_STATE_DELIVERING: return a == AS_ACT_CONFIRM_RECEIPT || a == AS_ACT_AUTO_COMPLETE;
    case AS_STATE_REFUNDING: return a == AS_ACT_REFUND_SUCCEEDED || a == AS_ACT_REFUND_FAILED;
    default: return 0; /* terminal */
    }
}

/* docs/design.md#check-order check 5: "action not allowed in this state → invalid_state" — the whole
 * state × action × type matrix against docs/rulebook.md#where-agreement-leads. */
START_TEST(workflow_allowed_matrix)
{
    for (int s = 0; s < AS_STATE_COUNT; s++)
        for (int a = 0; a < AS_ACT_COUNT; a++) {
            if (a == AS_ACT_OFFER || a == AS_ACT_REVISE) continue;
            ALL_TYPES(t)
            for (int held = 0; held <= 1; held++) {
                int want = expected_pair(s, a);
                ck_assert_msg(as__workflow_allows(s, a, t, held) == want,
                              "%s in %s (type %s, held %d): allowed=%d, want %d",
                              as__action_name(a), as__state_name(s), as__type_name(t), held,
                              as__workflow_allows(s, a, t, held), want);
            }
        }
}
END_TEST

/* docs/rulebook.md#where-agreement-leads: "A merchant offer is for a partial_refund in requested only (→ negotiating;
 * one offer per round)". */
START_TEST(workflow_offer_only_for_partial_refund_in_requested)
{
    ALL_TYPES(t)
    for (int s = 0; s < AS_STATE_COUNT; s++) {
        int want = s == AS_STATE_REQUESTED && t == AS_TYPE_PARTIAL_REFUND;
        ck_assert_msg(as__workflow_allows(s, AS_ACT_OFFER, t, 0) == want,
                      "offer in %s for %s: want %d", as__state_name(s), as__type_name(t), want);
    }
    oracle o = none();
    ck_assert_int_eq(route_to(AS_STATE_REQUESTED, AS_ACT_OFFER, AS_TYPE_PARTIAL_REFUND, 0, &o),
                     AS_STATE_NEGOTIATING);
    const as_wf_row *row = NULL;
    ck_assert_int_eq(as__workflow_route(AS_STATE_REQUESTED, AS_ACT_OFFER, AS_TYPE_REFUND_ONLY, 0,
                                        ask, &o, &row),
                     AS_EINVALID_STATE);
    ck_assert_int_eq(as__workflow_route(AS_STATE_NEGOTIATING, AS_ACT_OFFER,
                                        AS_TYPE_PARTIAL_REFUND, 0, ask, &o, &row),
                     AS_EINVALID_STATE);
}
END_TEST

/* docs/rulebook.md#eligibility: revise "in requested or rejected — but not after a rejection at receipt or a
 * no_fault inspection, when the merchant holds the goods: invalid_state"; it returns the case
 * to requested. */
START_TEST(workflow_revise_not_allowed_when_goods_are_held)
{
    ALL_TYPES(t)
    {
        ck_assert(as__workflow_allows(AS_STATE_REQUESTED, AS_ACT_REVISE, t, 0));
        ck_assert(as__workflow_allows(AS_STATE_REJECTED, AS_ACT_REVISE, t, 0));
        ck_assert(!as__workflow_allows(AS_STATE_REJECTED, AS_ACT_REVISE, t, 1));
        oracle o = none();
        ck_assert_int_eq(route_to(AS_STATE_REQUESTED, AS_ACT_REVISE, t, 0, &o), AS_STATE_REQUESTED);
        ck_assert_int_eq(route_to(AS_STATE_REJECTED, AS_ACT_REVISE, t, 0, &o), AS_STATE_REQUESTED);
        const as_wf_row *row = NULL;
        ck_assert_int_eq(as__workflow_route(AS_STATE_REJECTED, AS_ACT_REVISE, t, 1, ask, &o, &row),
                         AS_EINVALID_STATE);
        for (int s = 0; s < AS_STATE_COUNT; s++)
            if (s != AS_STATE_REQUESTED && s != AS_STATE_REJECTED)
                ck_assert_msg(!as__workflow_allows(s, AS_ACT_REVISE, t, 0), "revise in %s",
                              as__state_name(s));
        /* holding the goods does not stop escalation or withdrawal */
        ck_assert(as__workflow_allows(AS_STATE_REJECTED, AS_ACT_ESCALATE, t, 1));
        ck_assert(as__workflow_allows(AS_STATE_REJECTED, AS_ACT_WITHDRAW, t, 1));
    }
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Where each action leads (docs/rulebook.md#where-agreement-leads)
 * ---------------------------------------------------------------------------------------- */

static int agreement_dest(int t)
{
    switch (t) {
    case AS_TYPE_REFUND_ONLY:
    case AS_TYPE_PARTIAL_REFUND: return AS_STATE_REFUNDING;
    case AS_TYPE_RETURN_REFUND:
    case AS_TYPE_EXCHANGE:
    case AS_TYPE_REPAIR: return AS_STATE_AWAITING_RETURN;
    case AS_TYPE_RESHIP: return AS_STATE_RESHIPPING;
    }
    return -1;
}

/* docs/rulebook.md#where-agreement-leads "agree (or auto_agree) →" column. */
START_TEST(workflow_agree_leads_by_type)
{
    ALL_TYPES(t)
    {
        oracle o = none();
        ck_assert_int_eq(route_to(AS_STATE_REQUESTED, AS_ACT_AGREE, t, 0, &o), agreement_dest(t));
        ck_assert_int_eq(route_to(AS_STATE_REQUESTED, AS_ACT_AUTO_AGREE, t, 0, &o),
                         agreement_dest(t));
        ck_assert_int_eq(o.nasked, 0); /* no hook condition on agreement */
        ck_assert_int_eq(route_ok(AS_STATE_REQUESTED, AS_ACT_AGREE, t, 0, &o)->effect, AS_WE_NONE);
    }
}
END_TEST

/* docs/rulebook.md#where-agreement-leads: reject in requested → rejected; withdraw in requested, negotiating, rejected
 * or awaiting_return → closed (docs/rulebook.md#eligibility). */
START_TEST(workflow_reject_and_withdraw)
{
    static const int withdrawable[] = {AS_STATE_REQUESTED, AS_STATE_NEGOTIATING,
                                       AS_STATE_REJECTED, AS_STATE_AWAITING_RETURN};
    ALL_TYPES(t)
    {
        oracle o = none();
        ck_assert_int_eq(route_to(AS_STATE_REQUESTED, AS_ACT_REJECT, t, 0, &o), AS_STATE_REJECTED);
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(route_to(withdrawable[i], AS_ACT_WITHDRAW, t, 0, &o), AS_STATE_CLOSED);
        ck_assert_int_eq(route_to(AS_STATE_REJECTED, AS_ACT_WITHDRAW, t, 1, &o), AS_STATE_CLOSED);
    }
}
END_TEST

/* docs/rulebook.md#where-agreement-leads negotiating: accept_offer → refunding; decline_offer → rejected, like
 * auto_decline (docs/rulebook.md#deadlines). */
START_TEST(workflow_negotiating)
{
    oracle o = none();
    int t = AS_TYPE_PARTIAL_REFUND;
    ck_assert_int_eq(route_to(AS_STATE_NEGOTIATING, AS_ACT_ACCEPT_OFFER, t, 0, &o), AS_STATE_REFUNDING);
    ck_assert_int_eq(route_to(AS_STATE_NEGOTIATING, AS_ACT_DECLINE_OFFER, t, 0, &o), AS_STATE_REJECTED);
    ck_assert_int_eq(route_to(AS_STATE_NEGOTIATING, AS_ACT_AUTO_DECLINE, t, 0, &o), AS_STATE_REJECTED);
}
END_TEST

/* docs/rulebook.md#where-agreement-leads: in rejected the buyer may escalate (→ platform_review); docs/rulebook.md#deadlines escalation_window
 * expiry auto_close → closed. */
START_TEST(workflow_rejected_escalate_or_close)
{
    ALL_TYPES(t)
    {
        oracle o = none();
        ck_assert_int_eq(route_to(AS_STATE_REJECTED, AS_ACT_ESCALATE, t, 0, &o),
                         AS_STATE_PLATFORM_REVIEW);
        ck_assert_int_eq(route_to(AS_STATE_REJECTED, AS_ACT_ESCALATE, t, 1, &o),
                         AS_STATE_PLATFORM_REVIEW);
        ck_assert_int_eq(route_to(AS_STATE_REJECTED, AS_ACT_AUTO_CLOSE, t, 0, &o), AS_STATE_CLOSED);
    }
}
END_TEST

/* docs/rulebook.md#where-agreement-leads: rule_for_buyer → where agreement leads, except refund_only / partial_refund
 * straight to refunding, and when the merchant holds the goods, where the requested remedy
 * leads with `remedy` set to the type's; rule_for_merchant → closed. */
START_TEST(workflow_platform_rulings)
{
    ALL_TYPES(t)
    {
        oracle o = none();
        const as_wf_row *r = route_ok(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_BUYER, t, 0, &o);
        ck_assert_int_eq(r->to, agreement_dest(t));
        ck_assert_int_eq(route_to(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_MERCHANT, t, 0, &o),
                         AS_STATE_CLOSED);
        ck_assert_int_eq(route_to(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_MERCHANT, t, 1, &o),
                         AS_STATE_CLOSED);
    }
    oracle o = none();
    const as_wf_row *r;
    r = route_ok(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_BUYER, AS_TYPE_RETURN_REFUND, 1, &o);
    ck_assert_int_eq(r->to, AS_STATE_REFUNDING);
    ck_assert_int_eq(r->effect, AS_WE_TYPE_REMEDY);
    r = route_ok(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_BUYER, AS_TYPE_EXCHANGE, 1, &o);
    ck_assert_int_eq(r->to, AS_STATE_RESHIPPING);
    ck_assert_int_eq(r->effect, AS_WE_TYPE_REMEDY);
    r = route_ok(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_BUYER, AS_TYPE_REPAIR, 1, &o);
    ck_assert_int_eq(r->to, AS_STATE_REPAIRING);
    ck_assert_int_eq(r->effect, AS_WE_TYPE_REMEDY);
    r = route_ok(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_BUYER, AS_TYPE_REFUND_ONLY, 1, &o);
    ck_assert_int_eq(r->to, AS_STATE_REFUNDING);
    r = route_ok(AS_STATE_PLATFORM_REVIEW, AS_ACT_RULE_FOR_BUYER, AS_TYPE_PARTIAL_REFUND, 1, &o);
    ck_assert_int_eq(r->to, AS_STATE_REFUNDING);
    ck_assert_int_eq(o.nasked, 0);
}
END_TEST

/* docs/rulebook.md#where-agreement-leads / docs/rulebook.md#instant-refund: in awaiting_return the buyer's ship_return → returning, or refunding
 * when the instant_refund hook says so; buyer_ship expiry auto_close → closed. */
START_TEST(workflow_ship_return_instant_or_not)
{
    int t = AS_TYPE_RETURN_REFUND;
    oracle o = none();
    ck_assert_int_eq(route_to(AS_STATE_AWAITING_RETURN, AS_ACT_SHIP_RETURN, t, 0, &o),
                     AS_STATE_RETURNING);
    ck_assert_int_eq(o.asked[AS_WC_INSTANT], 1);
    o = none();
    o.answer[AS_WC_INSTANT] = 1;
    ck_assert_int_eq(route_to(AS_STATE_AWAITING_RETURN, AS_ACT_SHIP_RETURN, t, 0, &o),
                     AS_STATE_REFUNDING);
    ck_assert_int_eq(o.asked[AS_WC_INSTANT], 1);
    ck_assert_int_eq(route_to(AS_STATE_AWAITING_RETURN, AS_ACT_AUTO_CLOSE, t, 0, &o),
                     AS_STATE_CLOSED);
}
END_TEST

/* docs/rulebook.md#where-agreement-leads "after the return is confirmed →" column, with the receipt check first
 * (serial mismatch → rejected, goods held, docs/rulebook.md#electronics) and then the inspection hook. */
START_TEST(workflow_return_confirmed_leads_by_type)
{
    static const struct {
        int type, to;
    } want[] = {
        {AS_TYPE_RETURN_REFUND, AS_STATE_REFUNDING},
        {AS_TYPE_EXCHANGE, AS_STATE_RESHIPPING},
        {AS_TYPE_REPAIR, AS_STATE_REPAIRING},
    };
    static const int acts[] = {AS_ACT_CONFIRM_RETURN, AS_ACT_AUTO_CONFIRM_RETURN};
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < 3; i++) {
            oracle o = none();
            const as_wf_row *r = route_ok(AS_STATE_RETURNING, acts[a], want[i].type, 0, &o);
            ck_assert_int_eq(r->to, want[i].to);
            ck_assert_int_eq(r->effect, AS_WE_NONE);
            /* the conditions are asked in row order: serial first, then inspection */
            ck_assert_int_eq(o.nasked, 2);
            ck_assert_int_eq(o.order[0], AS_WC_SERIAL_MISMATCH);
            ck_assert_int_eq(o.order[1], AS_WC_INSPECT);

            o = none();
            o.answer[AS_WC_INSPECT] = 1;
            ck_assert_int_eq(route_to(AS_STATE_RETURNING, acts[a], want[i].type, 0, &o),
                             AS_STATE_INSPECTING);

            o = none();
            o.answer[AS_WC_SERIAL_MISMATCH] = 1;
            o.answer[AS_WC_INSPECT] = 1;
            r = route_ok(AS_STATE_RETURNING, acts[a], want[i].type, 0, &o);
            ck_assert_int_eq(r->to, AS_STATE_REJECTED);
            ck_assert_int_eq(r->effect, AS_WE_HOLD);
            ck_assert_int_eq(o.asked[AS_WC_INSPECT], 0); /* a mismatch is decided first */
        }
}
END_TEST

/* docs/rulebook.md#where-agreement-leads: reject_return in returning (goods not intact) → rejected, merchant holds. */
START_TEST(workflow_reject_return_holds_goods)
{
    ALL_TYPES(t)
    {
        oracle o = none();
        const as_wf_row *r = route_ok(AS_STATE_RETURNING, AS_ACT_REJECT_RETURN, t, 0, &o);
        ck_assert_int_eq(r->to, AS_STATE_REJECTED);
        ck_assert_int_eq(r->effect, AS_WE_HOLD);
    }
}
END_TEST

/* docs/rulebook.md#electronics / docs/rulebook.md#where-agreement-leads: inspection result → the remedy's state (fault), or rejected with the
 * merchant keeping the goods (no_fault → remedy reject); auto_inspect the same (docs/rulebook.md#deadlines). */
START_TEST(workflow_inspection_outcomes)
{
    static const struct {
        int cond, to, effect;
    } want[] = {
        {AS_WC_REMEDY_REFUND, AS_STATE_REFUNDING, AS_WE_REMEDY},
        {AS_WC_REMEDY_EXCHANGE, AS_STATE_RESHIPPING, AS_WE_REMEDY},
        {AS_WC_REMEDY_REPAIR, AS_STATE_REPAIRING, AS_WE_REMEDY},
        {AS_WC_REMEDY_REJECT, AS_STATE_REJECTED, AS_WE_REMEDY_HOLD},
    };
    static const int acts[] = {AS_ACT_INSPECT, AS_ACT_AUTO_INSPECT};
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < 4; i++)
            ALL_TYPES(t)
            {
                oracle o = none();
                o.answer[want[i].cond] = 1;
                const as_wf_row *r = route_ok(AS_STATE_INSPECTING, acts[a], t, 0, &o);
                ck_assert_int_eq(r->to, want[i].to);
                ck_assert_int_eq(r->effect, want[i].effect);
            }
    /* no remedy answered at all: no row applies */
    oracle o = none();
    const as_wf_row *row = NULL;
    ck_assert_int_eq(as__workflow_route(AS_STATE_INSPECTING, AS_ACT_INSPECT, AS_TYPE_REPAIR, 0,
                                        ask, &o, &row),
                     AS_EINVALID_STATE);
    ck_assert_int_eq(o.nasked, 4);
}
END_TEST

/* docs/rulebook.md#where-agreement-leads and docs/rulebook.md#deadlines: reshipping, repairing, delivering, refunding. */
START_TEST(workflow_fulfilment_and_payment)
{
    ALL_TYPES(t)
    {
        oracle o = none();
        ck_assert_int_eq(route_to(AS_STATE_RESHIPPING, AS_ACT_SHIP_REPLACEMENT, t, 0, &o),
                         AS_STATE_DELIVERING);
        ck_assert_int_eq(route_to(AS_STATE_RESHIPPING, AS_ACT_REFUND_INSTEAD, t, 0, &o),
                         AS_STATE_REFUNDING);
        ck_assert_int_eq(route_to(AS_STATE_RESHIPPING, AS_ACT_AUTO_REFUND, t, 0, &o),
                         AS_STATE_REFUNDING);
        ck_assert_int_eq(route_to(AS_STATE_REPAIRING, AS_ACT_FINISH_REPAIR, t, 0, &o),
                         AS_STATE_DELIVERING);
        ck_assert_int_eq(route_to(AS_STATE_REPAIRING, AS_ACT_AUTO_REFUND, t, 0, &o),
                         AS_STATE_REFUNDING);
        ck_assert_int_eq(route_to(AS_STATE_DELIVERING, AS_ACT_CONFIRM_RECEIPT, t, 0, &o),
                         AS_STATE_COMPLETED);
        ck_assert_int_eq(route_to(AS_STATE_DELIVERING, AS_ACT_AUTO_COMPLETE, t, 0, &o),
                         AS_STATE_COMPLETED);
        ck_assert_int_eq(route_to(AS_STATE_REFUNDING, AS_ACT_REFUND_SUCCEEDED, t, 0, &o),
                         AS_STATE_REFUNDED);
        /* refund_failed leaves the case in refunding */
        ck_assert_int_eq(route_to(AS_STATE_REFUNDING, AS_ACT_REFUND_FAILED, t, 0, &o), AS_WF_SAME);
        ck_assert_int_eq(o.nasked, 0);
    }
}
END_TEST

/* docs/design.md#states-and-actions: logistics `return_delivered`, `delivered` are "accepted in any state, recorded
 * in the history; starts nothing". */
START_TEST(workflow_logistics_allowed_in_every_state)
{
    for (int s = 0; s < AS_STATE_COUNT; s++)
        ALL_TYPES(t)
        for (int held = 0; held <= 1; held++) {
            oracle o = none();
            ck_assert(as__workflow_allows(s, AS_ACT_RETURN_DELIVERED, t, held));
            ck_assert(as__workflow_allows(s, AS_ACT_DELIVERED, t, held));
            ck_assert_int_eq(route_to(s, AS_ACT_RETURN_DELIVERED, t, held, &o), AS_WF_SAME);
            ck_assert_int_eq(route_to(s, AS_ACT_DELIVERED, t, held, &o), AS_WF_SAME);
            ck_assert_int_eq(route_ok(s, AS_ACT_DELIVERED, t, held, &o)->effect, AS_WE_NONE);
        }
}
END_TEST

/* Terminal states take nothing but tracking news. */
START_TEST(workflow_terminal_states_take_nothing)
{
    static const int term[] = {AS_STATE_REFUNDED, AS_STATE_COMPLETED, AS_STATE_CLOSED};
    for (int i = 0; i < 3; i++)
        for (int a = 0; a < AS_ACT_COUNT; a++) {
            if (a == AS_ACT_RETURN_DELIVERED || a == AS_ACT_DELIVERED) continue;
            ALL_TYPES(t)
            {
                oracle o = none();
                const as_wf_row *row = NULL;
                ck_assert(!as__workflow_allows(term[i], a, t, 0));
                ck_assert_int_eq(as__workflow_route(term[i], a, t, 0, ask, &o, &row),
                                 AS_EINVALID_STATE);
            }
        }
}
END_TEST

/* A condition's error (a hook that failed) is the route's answer, and stops the scan. */
START_TEST(workflow_condition_error_propagates)
{
    oracle o = none();
    o.answer[AS_WC_INSTANT] = AS_ERULE_ERROR;
    const as_wf_row *row = NULL;
    ck_assert_int_eq(as__workflow_route(AS_STATE_AWAITING_RETURN, AS_ACT_SHIP_RETURN,
                                        AS_TYPE_RETURN_REFUND, 0, ask, &o, &row),
                     AS_ERULE_ERROR);
    ck_assert_ptr_null(row);
    o = none();
    o.answer[AS_WC_SERIAL_MISMATCH] = AS_ENOMEM;
    ck_assert_int_eq(as__workflow_route(AS_STATE_RETURNING, AS_ACT_CONFIRM_RETURN,
                                        AS_TYPE_RETURN_REFUND, 0, ask, &o, &row),
                     AS_ENOMEM);
    ck_assert_int_eq(o.asked[AS_WC_INSPECT], 0);
}
END_TEST

/* The rows are data: every row names a real state, action and destination, and no system
 * action is reachable except from the state whose deadline fires it. */
START_TEST(workflow_rows_are_well_formed)
{
    int n = 0;
    const as_wf_row *rows = as__workflow_rows(&n);
    ck_assert_int_gt(n, 0);
    for (int i = 0; i < n; i++) {
        const as_wf_row *r = &rows[i];
        ck_assert(r->from == AS_WF_ANY || r->from < AS_STATE_COUNT);
        ck_assert(r->action < AS_ACT_COUNT);
        ck_assert(r->to == AS_WF_SAME || r->to < AS_STATE_COUNT);
        ck_assert(r->action != AS_ACT_OPEN);
        if (as__action_role(r->action) == AS_ROLE_SYSTEM && r->from != AS_WF_ANY) {
            as_deadline_kind k = as__state_deadline(r->from);
            ck_assert_msg(k != AS_DL_NONE && as__deadline_action(k) == r->action,
                          "row %d: %s in %s is no deadline of that state", i,
                          as__action_name(r->action), as__state_name(r->from));
        }
    }
}
END_TEST

static Suite *workflow_suite(void)
{
    Suite *s = suite_create("workflow");
    TCase *allow = tcase_create("allows");
    tcase_set_timeout(allow, 10);
    tcase_add_test(allow, workflow_allowed_matrix);
    tcase_add_test(allow, workflow_offer_only_for_partial_refund_in_requested);
    tcase_add_test(allow, workflow_revise_not_allowed_when_goods_are_held);
    tcase_add_test(allow, workflow_logistics_allowed_in_every_state);
    tcase_add_test(allow, workflow_terminal_states_take_nothing);
    tcase_add_test(allow, workflow_rows_are_well_formed);
    suite_add_tcase(s, allow);

    TCase *route = tcase_create("route");
    tcase_set_timeout(route, 10);
    tcase_add_test(route, workflow_agree_leads_by_type);
    tcase_add_test(route, workflow_reject_and_withdraw);
    tcase_add_test(route, workflow_negotiating);
    tcase_add_test(route, workflow_rejected_escalate_or_close);
    tcase_add_test(route, workflow_platform_rulings);
    tcase_add_test(route, workflow_ship_return_instant_or_not);
    tcase_add_test(route, workflow_return_confirmed_leads_by_type);
    tcase_add_test(route, workflow_reject_return_holds_goods);
    tcase_add_test(route, workflow_inspection_outcomes);
    tcase_add_test(route, workflow_fulfilment_and_payment);
    tcase_add_test(route, workflow_condition_error_propagates);
    suite_add_tcase(s, route);
    return s;
}

int main(void)
{
    return unit_run(workflow_suite(), 1);
}
