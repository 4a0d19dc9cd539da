/* claims.c -- what open and revise share (docs/rulebook.md#eligibility): the platform's fixed
 * checks (stage 1), the rules' eligibility (stage 2), then the amount, deadline, priority
 * and auto_decide hooks, and applying auto_decide's answer. */
#include <string.h>

#include "engine.h"
#include "err.h"

/* Stage 1, the platform's fixed checks, in order. `self` is the case itself on a revise. */
static int stage1(const as_case *c, const as_case_vals *v, as_error *err)
{
    const as_order *o = c->order;
    if (v->bad_permille != -1 && (v->bad_permille < 1 || v->bad_permille > 1000))
        return as__err(err, AS_EBAD_REQUEST, "bad_permille must be from 1 to 1000");
    int type = c->type;
    if (o->shipped_at == AS_UNSET && type != AS_TYPE_REFUND_ONLY)
        return as__err(err, AS_ENOT_ELIGIBLE,
                       "the order has not shipped: only a refund_only (cancellation) is possible");
    if (o->shipped_at != AS_UNSET && o->delivered_at == AS_UNSET && type != AS_TYPE_REFUND_ONLY &&
        type != AS_TYPE_RETURN_REFUND)
        return as__err(err, AS_ENOT_ELIGIBLE,
                       "the order is on its way: only refund_only or return_refund is possible");
    for (int i = 0; i < c->nitems; i++)
        for (const as_case *other = o->cases; other; other = other->next_in_order) {
            if (other != c && !as__state_terminal(other->v.state) &&
                as__case_covers(other, c->items[i].line))
                return as__err(err, AS_EDUPLICATE_CASE, "SKU '%s' already has open case '%s'",
                               o->items[c->items[i].line].sku, other->id);
        }
    for (int i = 0; i < c->nitems; i++) {
        int line = c->items[i].line;
        if (c->items[i].qty > o->items[line].qty - as__settled_units(o, line, c))
            return as__err(err, AS_ENOT_ELIGIBLE, "SKU '%s': no unrefunded units left for %d",
                           o->items[line].sku, c->items[i].qty);
    }
    for (int i = 0; i < c->nitems; i++)
        if (o->items[c->items[i].line].attempts >= 5)
            return as__err(err, AS_EATTEMPT_LIMIT, "SKU '%s' already had 5 opens and revisions",
                           o->items[c->items[i].line].sku);
    if (as__fault_evidence_reason(v->reason) && as__vals_evidence_count(v) == 0)
        return as__err(err, AS_EEVIDENCE_REQUIRED, "reason '%s' needs evidence",
                       as__reason_name(v->reason));
    if (v->requested_amount != AS_UNSET) {
        int64_t cap = as__case_paid(c) + (o->shipped_at == AS_UNSET ? o->shipping_fee : 0);
        if (v->requested_amount > cap)
            return as__err(err, AS_EAMOUNT_EXCEEDS_PAID,
                           "requested %lld fen is above the %lld fen paid for the case",
                           (long long)v->requested_amount, (long long)cap);
    }
    return 0;
}

/* Stage 1, stage 2 and the open hooks before the decision: refund_amount, deadlines,
 * priority. The staged values are in t->nv, in state `requested`. */
int as__claim(as_txn *t)
{
    int rc = stage1(t->c, &t->nv, t->err);
    if (rc) return rc;
    const as_order *o = t->c->order;
    int cancellation = o->shipped_at == AS_UNSET && t->c->type == AS_TYPE_REFUND_ONLY;
    if (!cancellation && (rc = as__layers_eligibility(&t->L, t->err)) != 0) return rc;
    /* docs/rulebook.md#amounts: the fee is judged at open and at each revise, so the hooks after
     * refund_amount (auto_decide, the packs' thresholds) see the refund as it stands */
    int64_t fee = as__case_fee(t->c);
    int64_t amount = as__case_paid(t->c) + fee;
    t->refund_source = AS_RS_DEFAULT;
    t->refund_layer = AS_NONE_U8;
    if (t->c->type == AS_TYPE_PARTIAL_REFUND && t->nv.requested_amount != AS_UNSET) {
        amount = t->nv.requested_amount;
        t->refund_source = AS_RS_REQUESTED;
    }
    t->nv.refund_amount = amount;
    if (fee)
        t->nv.flags |= AS_CF_FEE_ADDED;
    else
        t->nv.flags &= (uint16_t)~AS_CF_FEE_ADDED;
    if ((rc = as__layers_refund_amount(&t->L, as__refund_cap(t->c, &t->nv), &t->nv.refund_amount,
                                       t->err)) != 0)
        return rc;
    as__txn_refund_by_rule(t);
    if ((rc = as__txn_deadline(t)) != 0) return rc;
    int prio = t->nv.priority;
    if ((rc = as__layers_priority(&t->L, &prio, t->err)) != 0) return rc;
    t->nv.priority = (int8_t)prio;
    return as__layers_decide(&t->L, &t->decision, t->decide_reason, sizeof t->decide_reason,
                             t->err);
}

void as__count_attempt(as_runtime *rt, as_case *c)
{
    for (int i = 0; i < c->nitems; i++)
        c->order->items[c->items[i].line].attempts++;
    as__touch_order(rt, c->order);
}

int as__case_apply(as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient);

/* Applies auto_decide's answer, asked last in as__claim(), as the system's action, with the
 * layer that gave it and its why. */
void as__decide(as_runtime *rt, as_case *c, const as_txn *t)
{
    if (t->decision == 0) return;
    as_cmd cmd;
    as_error err = {0};
    as__cmd_init(&cmd, (as_principal){AS_ROLE_SYSTEM, NULL},
                 t->decision == 1 ? AS_ACT_AGREE : AS_ACT_REJECT);
    cmd.text = t->decide_reason;
    cmd.by_hook = AS_HOOK_AUTO_DECIDE;
    cmd.by_layer = t->L.stood[AS_HOOK_AUTO_DECIDE];
    cmd.why = t->L.why;
    as__case_apply(rt, c, &cmd, &err, 0);
}
