/* workflow.c -- the rows of docs/rulebook.md#where-agreement-leads and their index. */
#include "workflow.h"

#include <pthread.h>

#include "aftersale/error.h"

#define R(from, act, cond, to, eff, types)                                                  \
    {AS_STATE_##from, AS_ACT_##act, AS_WC_##cond, AS_STATE_##to, AS_WE_##eff, types}
#define ANY_STATE AS_WF_ANY
#define REFUNDS (AS_T(REFUND_ONLY) | AS_T(PARTIAL_REFUND))
#define RETURNS (AS_T(RETURN_REFUND) | AS_T(EXCHANGE) | AS_T(REPAIR))

/* "agree" and its stand-ins: where agreement leads, by type. */
#define AGREEMENT(from, act)                                                               \
    R(from, act, ALWAYS, REFUNDING, NONE, REFUNDS),                                        \
    R(from, act, ALWAYS, AWAITING_RETURN, NONE, RETURNS),                                  \
    R(from, act, ALWAYS, RESHIPPING, NONE, AS_T(RESHIP))

/* Goods back and accepted: where the requested remedy leads. */
#define REMEDY_BY_TYPE(from, act, cond, eff)                                               \
    R(from, act, cond, REFUNDING, eff, AS_T(RETURN_REFUND)),                               \
    R(from, act, cond, RESHIPPING, eff, AS_T(EXCHANGE)),                                   \
    R(from, act, cond, REPAIRING, eff, AS_T(REPAIR))

#define RECEIPT(act)                                                                       \
    R(RETURNING, act, SERIAL_MISMATCH, REJECTED, HOLD, AS_T_ANY),                          \
    R(RETURNING, act, INSPECT, INSPECTING, NONE, AS_T_ANY),                                \
    REMEDY_BY_TYPE(RETURNING, act, ALWAYS, NONE)

#define INSPECTION(act)                                                                    \
    R(INSPECTING, act, REMEDY_REFUND, REFUNDING, REMEDY, AS_T_ANY),                        \
    R(INSPECTING, act, REMEDY_EXCHANGE, RESHIPPING, REMEDY, AS_T_ANY),                     \
    R(INSPECTING, act, REMEDY_REPAIR, REPAIRING, REMEDY, AS_T_ANY),                        \
    R(INSPECTING, act, REMEDY_REJECT, REJECTED, REMEDY_HOLD, AS_T_ANY)

static const as_wf_row rows[] = {
    /* requested: the merchant answers */
    AGREEMENT(REQUESTED, AGREE),
    AGREEMENT(REQUESTED, AUTO_AGREE),
    R(REQUESTED, REJECT, ALWAYS, REJECTED, NONE, AS_T_ANY),
    R(REQUESTED, OFFER, ALWAYS, NEGOTIATING, NONE, AS_T(PARTIAL_REFUND)),
    R(REQUESTED, REVISE, ALWAYS, REQUESTED, NONE, AS_T_ANY),
    R(REQUESTED, WITHDRAW, ALWAYS, CLOSED, NONE, AS_T_ANY),
    /* negotiating: the buyer answers the offer */
    R(NEGOTIATING, ACCEPT_OFFER, ALWAYS, REFUNDING, NONE, AS_T_ANY),
    R(NEGOTIATING, DECLINE_OFFER, ALWAYS, REJECTED, NONE, AS_T_ANY),
    R(NEGOTIATING, AUTO_DECLINE, ALWAYS, REJECTED, NONE, AS_T_ANY),
    R(NEGOTIATING, WITHDRAW, ALWAYS, CLOSED, NONE, AS_T_ANY),
    /* rejected: revise, escalate or let it close */
    R(REJECTED, REVISE, NOT_HELD, REQUESTED, NONE, AS_T_ANY),
    R(REJECTED, ESCALATE, ALWAYS, PLATFORM_REVIEW, NONE, AS_T_ANY),
    R(REJECTED, WITHDRAW, ALWAYS, CLOSED, NONE, AS_T_ANY),
    R(REJECTED, AUTO_CLOSE, ALWAYS, CLOSED, NONE, AS_T_ANY),
    /* platform_review: a ruling */
    R(PLATFORM_REVIEW, RULE_FOR_BUYER, ALWAYS, REFUNDING, NONE, REFUNDS),
    REMEDY_BY_TYPE(PLATFORM_REVIEW, RULE_FOR_BUYER, HELD, TYPE_REMEDY),
    AGREEMENT(PLATFORM_REVIEW, RULE_FOR_BUYER),
    R(PLATFORM_REVIEW, RULE_FOR_MERCHANT, ALWAYS, CLOSED, NONE, AS_T_ANY),
    /* awaiting_return: the buyer ships */
    R(AWAITING_RETURN, SHIP_RETURN, INSTANT, REFUNDING, NONE, AS_T_ANY),
    R(AWAITING_RETURN, SHIP_RETURN, ALWAYS, RETURNING, NONE, AS_T_ANY),
    R(AWAITING_RETURN, WITHDRAW, ALWAYS, CLOSED, NONE, AS_T_ANY),
    R(AWAITING_RETURN, AUTO_CLOSE, ALWAYS, CLOSED, NONE, AS_T_ANY),
    /* returning: the receipt check */
    RECEIPT(CONFIRM_RETURN),
    RECEIPT(AUTO_CONFIRM_RETURN),
    R(RETURNING, REJECT_RETURN, ALWAYS, REJECTED, HOLD, AS_T_ANY),
    /* inspecting */
    INSPECTION(INSPECT),
    INSPECTION(AUTO_INSPECT),
    /* reshipping, repairing, delivering */
    R(RESHIPPING, SHIP_REPLACEMENT, ALWAYS, DELIVERING, NONE, AS_T_ANY),
    R(RESHIPPING, REFUND_INSTEAD, ALWAYS, REFUNDING, NONE, AS_T_ANY),
    R(RESHIPPING, AUTO_REFUND, ALWAYS, REFUNDING, NONE, AS_T_ANY),
    R(REPAIRING, FINISH_REPAIR, ALWAYS, DELIVERING, NONE, AS_T_ANY),
    R(REPAIRING, AUTO_REFUND, ALWAYS, REFUNDING, NONE, AS_T_ANY),
    R(DELIVERING, CONFIRM_RECEIPT, ALWAYS, COMPLETED, NONE, AS_T_ANY),
    R(DELIVERING, AUTO_COMPLETE, ALWAYS, COMPLETED, NONE, AS_T_ANY),
    /* refunding: the payment system's callback */
    R(REFUNDING, REFUND_SUCCEEDED, ALWAYS, REFUNDED, NONE, AS_T_ANY),
    {AS_STATE_REFUNDING, AS_ACT_REFUND_FAILED, AS_WC_ALWAYS, AS_WF_SAME, AS_WE_NONE, AS_T_ANY},
    /* tracking news: accepted in any state, recorded, starts nothing */
    {ANY_STATE, AS_ACT_RETURN_DELIVERED, AS_WC_ALWAYS, AS_WF_SAME, AS_WE_NONE, AS_T_ANY},
    {ANY_STATE, AS_ACT_DELIVERED, AS_WC_ALWAYS, AS_WF_SAME, AS_WE_NONE, AS_T_ANY},
};

#define NROWS ((int)(sizeof rows / sizeof rows[0]))

/* first row and count per (state, action); rows of one pair are contiguous */
static struct {
    uint8_t first, count;
} index_[AS_STATE_COUNT][AS_ACT_COUNT];
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void build_index(void)
{
    for (int s = 0; s < AS_STATE_COUNT; s++)
        for (int i = 0; i < NROWS; i++) {
            if (rows[i].from != s && rows[i].from != AS_WF_ANY) continue;
            if (index_[s][rows[i].action].count == 0) index_[s][rows[i].action].first = (uint8_t)i;
            index_[s][rows[i].action].count++;
        }
}

static int type_ok(const as_wf_row *r, int type)
{
    return r->types == 0 || (r->types >> type) & 1u;
}

static int structural_ok(const as_wf_row *r, int held)
{
    if (r->cond == AS_WC_HELD) return held;
    if (r->cond == AS_WC_NOT_HELD) return !held;
    return 1;
}

int as__workflow_allows(int state, int action, int type, int held)
{
    pthread_once(&index_once, build_index);
    const as_wf_row *r = &rows[index_[state][action].first];
    for (int i = 0; i < index_[state][action].count; i++, r++)
        if (type_ok(r, type) && structural_ok(r, held)) return 1;
    return 0;
}

int as__workflow_route(int state, int action, int type, int held, as_wf_cond_fn cond,
                       void *ctx, const as_wf_row **row)
{
    pthread_once(&index_once, build_index);
    const as_wf_row *r = &rows[index_[state][action].first];
    for (int i = 0; i < index_[state][action].count; i++, r++) {
        if (!type_ok(r, type) || !structural_ok(r, held)) continue;
        int ok = 1;
        if (r->cond != AS_WC_ALWAYS && r->cond != AS_WC_HELD && r->cond != AS_WC_NOT_HELD)
            ok = cond(ctx, (as_wf_cond)r->cond);
        if (ok < 0) return ok;
        if (ok) {
            *row = r;
            return 0;
        }
    }
    return AS_EINVALID_STATE;
}

const as_wf_row *as__workflow_rows(int *n)
{
    *n = NROWS;
    return rows;
}
