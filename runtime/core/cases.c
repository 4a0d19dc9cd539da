/* cases.c -- opening a case and acting on one: checks 1-8 of docs/design.md#check-order,
 * routing through the workflow table, then the transaction's commit (as_txn.c). A refused
 * command changes nothing. */
#include <string.h>

#include "alloc.h"
#include "engine.h"
#include "err.h"
#include "workflow.h"

static int check_party(const as_order *o, const as_principal *who, as_role role, as_error *err)
{
    if (who->role == AS_ROLE_PLATFORM && role == AS_ROLE_BUYER)
        return 0; /* the platform on the buyer's behalf (open only; checked by the caller) */
    if (who->role != role)
        return as__err(err, AS_EFORBIDDEN, "a %s never takes this action (it is the %s's)",
                       as__role_name(who->role), as__role_name(role));
    if (role == AS_ROLE_BUYER && strcmp(who->id, o->buyer) != 0)
        return as__err(err, AS_EFORBIDDEN, "buyer '%s' is not the buyer of order '%s'", who->id,
                       o->id);
    if (role == AS_ROLE_MERCHANT && strcmp(who->id, o->shop) != 0)
        return as__err(err, AS_EFORBIDDEN, "shop '%s' is not the shop of order '%s'", who->id,
                       o->id);
    return 0;
}

static int build_case(as_runtime *rt, as_order *o, as_cmd *cmd, as_case **out, as_error *err)
{
    size_t idlen = strlen(cmd->case_id);
    as_case *c = as__calloc(1, sizeof *c + (size_t)cmd->nitems * sizeof(as_case_item) + idlen + 1);
    if (c == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    char *id = (char *)(c->items + cmd->nitems);
    memcpy(id, cmd->case_id, idlen + 1);
    c->id = id;
    c->order = o;
    c->type = (uint8_t)cmd->type;
    c->nitems = (uint8_t)cmd->nitems;
    c->ended_at = AS_UNSET;
    c->deadline_layer = c->refund_layer = AS_NONE_U8;
    as__sched_node_init(&c->deadline);
    *out = c;
    for (int i = 0; i < cmd->nitems; i++) {
        int line = as__item_line(o, cmd->items[i].sku);
        if (line < 0)
            return as__err(err, AS_EBAD_REQUEST, "SKU '%s' is not on order '%s'", cmd->items[i].sku,
                           o->id);
        if (cmd->items[i].qty < 1 || cmd->items[i].qty > o->items[line].qty)
            return as__err(err, AS_EBAD_REQUEST,
                           "SKU '%s': qty %lld is not from 1 to the %d bought", cmd->items[i].sku,
                           (long long)cmd->items[i].qty, o->items[line].qty);
        for (int p = 0; p < i; p++)
            if (c->items[p].line == line)
                return as__err(err, AS_EBAD_REQUEST, "SKU '%s' is listed twice", cmd->items[i].sku);
        if (i > 0 && o->items[line].category != c->category)
            return as__err(err, AS_EBAD_REQUEST, "a case's items must share one category");
        c->items[i].line = (uint16_t)line;
        c->items[i].qty = (int32_t)cmd->items[i].qty;
        c->category = o->items[line].category;
    }
    c->v.state = AS_STATE_REQUESTED;
    c->v.reason = (uint8_t)cmd->reason;
    c->v.remedy = AS_REMEDY_NONE;
    c->v.requested_amount = cmd->given & AS_P_REQUESTED ? cmd->requested_amount : AS_UNSET;
    c->v.bad_permille = cmd->given & AS_P_PERMILLE ? (int32_t)cmd->bad_permille : -1;
    if (cmd->nevidence &&
        (c->v.evidence = as__evidence_copy(cmd->evidence, cmd->nevidence)) == NULL)
        return as__err(err, AS_ENOMEM, "out of memory");
    c->rules[AS_LAYER_PLATFORM] = rt->platform;
    c->rules[AS_LAYER_CATEGORY] = as__category_pack(rt, c->category);
    c->rules[AS_LAYER_MERCHANT] = o->shop_ref->merchant;
    return 0;
}

void as__case_free(as_case *c)
{
    if (c == NULL) return;
    for (uint32_t i = 0; i < c->nhist; i++) {
        as__free(c->hist[i].note);
        as__free(c->hist[i].why);
    }
    as__free(c->hist);
    as__free(c->v.evidence);
    as__free(c);
}

static int claim_ranges(const as_cmd *cmd, as_error *err)
{
    if (cmd->type < 0 && cmd->action == AS_ACT_OPEN)
        return as__err(err, AS_EBAD_REQUEST, "unknown case type");
    if ((cmd->given & AS_P_REASON) && cmd->reason < 0)
        return as__err(err, AS_EBAD_REQUEST, "unknown reason");
    if ((cmd->given & AS_P_REQUESTED) && cmd->requested_amount < 0)
        return as__err(err, AS_EBAD_REQUEST, "requested_amount must not be negative");
    if ((cmd->given & AS_P_PERMILLE) && (cmd->bad_permille < 1 || cmd->bad_permille > 1000))
        return as__err(err, AS_EBAD_REQUEST, "bad_permille must be from 1 to 1000");
    return 0;
}

int as__case_open(as_runtime *rt, as_cmd *cmd, as_error *err)
{
    as__fire_due(rt);
    if (cmd->order_id == NULL && cmd->shape_err)
        return as__err(err, cmd->shape_err, "%s", cmd->shape_msg);
    as_order *o = as__order_get(rt, cmd->order_id);
    if (o == NULL) return as__err(err, AS_ENOT_FOUND, "unknown order '%s'", cmd->order_id);
    if (cmd->shape_err) return as__err(err, cmd->shape_err, "%s", cmd->shape_msg);
    if (as__case_get(rt, cmd->case_id))
        return as__err(err, AS_EBAD_REQUEST, "case '%s' already exists", cmd->case_id);
    int rc = check_party(o, &cmd->who, AS_ROLE_BUYER, err);
    if (rc) return rc;
    if ((rc = claim_ranges(cmd, err)) != 0) return rc;
    as_case *c = NULL;
    if ((rc = build_case(rt, o, cmd, &c, err)) != 0) {
        as__case_free(c);
        return rc;
    }
    as_txn t;
    as__txn_init(&t, rt, c, cmd, err, 0);
    c->opened_at = t.now;
    rc = as__claim(&t);
    as__account_layers(rt, &t.L);
    /* the map takes the case once everything after it has room: then nothing can fail */
    if (rc == 0 && (as__txn_room(&t, 1, 0) != 0 || as__worklist_reserve(&o->shop_ref->cases) != 0 ||
                    as__strmap_put(&rt->cases, c) != 0 ||
                    (t.deadline_ms >= 0 && as__schedule(rt, c, t.now + t.deadline_ms) != 0)))
        rc = as__err(err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__strmap_del(&rt->cases, c->id);
        as__txn_abort(&t);
        as__case_free(c);
        return rc;
    }
    for (int l = 0; l < AS_LAYER_COUNT; l++)
        as__pack_ref(c->rules[l]);
    as__order_add_case(o, c);
    c->v = t.nv;
    c->v.version = 1;
    c->refund_source = t.refund_source;
    c->refund_layer = t.refund_layer;
    if (t.deadline_ms >= 0) c->deadline_layer = t.deadline_layer;
    as__txn_command(&t); /* entry 0, about to be appended */
    as__hist_append(&t, &cmd->who, AS_ACT_OPEN, AS_STATE_REQUESTED, AS_STATE_REQUESTED, NULL, NULL);
    as__worklist_add(&o->shop_ref->cases, c);
    as__txn_notes(&t, NULL, AS_ACT_OPEN);
    as__count_attempt(rt, c);
    as__touch_case(rt, c);
    as__event(rt, o, AS_EV_OPEN, 0);
    rt->stats.transitions++;
    rt->stats.commands++;
    as__decide(rt, c, &t);
    return 0;
}

static const char *const return_rejections[] = {
    "tag_removed", "soiled", "worn", "activated", "serial_mismatch", "missing_parts", NULL};

/* Check 7 of docs/design.md#states-and-actions: values out of range. */
static int action_ranges(const as_case *c, const as_cmd *cmd, as_error *err)
{
    switch (cmd->action) {
    case AS_ACT_OFFER: {
        int64_t cap = as__refund_cap(c, &c->v);
        if (cmd->amount < 1 || cmd->amount > cap)
            return as__err(err, AS_EBAD_REQUEST, "an offer must be from 1 to %lld fen",
                           (long long)cap);
        return 0;
    }
    case AS_ACT_INSPECT:
        if (cmd->result < 0)
            return as__err(err, AS_EBAD_REQUEST, "result must be 'fault' or 'no_fault'");
        return 0;
    case AS_ACT_REJECT_RETURN:
        for (const char *const *r = return_rejections; *r; r++)
            if (strcmp(*r, cmd->text) == 0) return 0;
        return as__err(err, AS_EBAD_REQUEST, "'%s' is not a receipt-check reason", cmd->text);
    case AS_ACT_SHIP_RETURN:
        if ((cmd->given & AS_P_SHIPPING) &&
            (cmd->shipping_cost < 0 || cmd->shipping_cost > (int64_t)1e11))
            return as__err(err, AS_EBAD_REQUEST, "shipping_cost must be a non-negative amount");
        return 0;
    case AS_ACT_REVISE:
        return claim_ranges(cmd, err);
    default:
        return 0;
    }
}

/* The action's own staged changes before routing. */
static int prepare(as_txn *t)
{
    as_cmd *cmd = t->cmd;
    switch (cmd->action) {
    case AS_ACT_OFFER:
        t->nv.offer_amount = cmd->amount;
        return 0;
    case AS_ACT_ACCEPT_OFFER:
        t->nv.refund_amount = t->nv.offer_amount;
        t->refund_source = AS_RS_OFFER;
        t->refund_layer = AS_NONE_U8;
        return 0;
    case AS_ACT_ESCALATE:
        t->nv.flags |= AS_CF_ESCALATED;
        return 0;
    case AS_ACT_RULE_FOR_BUYER:
        t->nv.flags |= AS_CF_RULED_BUYER;
        return 0;
    case AS_ACT_SHIP_RETURN: {
        t->nv.return_shipping = cmd->given & AS_P_SHIPPING ? cmd->shipping_cost : 0;
        int64_t amount = t->nv.refund_amount;
        int rc = as__layers_refund_amount(&t->L, as__refund_cap(t->c, &t->nv), &amount, t->err);
        if (rc) return rc;
        t->nv.refund_amount = amount;
        as__txn_refund_by_rule(t);
        rc = as__txn_cond(t, AS_WC_INSPECT);
        return rc < 0 ? rc : 0; /* rule_error, or the host's nomem as itself */
    }
    case AS_ACT_REVISE:
        if (cmd->given & AS_P_REASON) t->nv.reason = (uint8_t)cmd->reason;
        if (cmd->given & AS_P_REQUESTED) t->nv.requested_amount = cmd->requested_amount;
        if (cmd->given & AS_P_PERMILLE) t->nv.bad_permille = (int32_t)cmd->bad_permille;
        if (cmd->given & AS_P_EVIDENCE) {
            t->new_evidence = as__evidence_copy(cmd->evidence, cmd->nevidence);
            if (cmd->nevidence && t->new_evidence == NULL)
                return as__err(t->err, AS_ENOMEM, "out of memory");
            t->nv.evidence = t->new_evidence;
        }
        return 0;
    default:
        return 0;
    }
}

/* The history note of the command in *out (owned by the caller; NULL when it has none): 0, or
 * AS_ENOMEM -- an entry without the note it should carry would be a silent change. */
static int note_for(const as_cmd *cmd, char **out)
{
    *out = NULL;
    if (cmd->text == NULL) return 0;
    switch (cmd->action) {
    case AS_ACT_REJECT:
    case AS_ACT_REJECT_RETURN:
    case AS_ACT_REFUND_FAILED:
    case AS_ACT_SHIP_RETURN:
    case AS_ACT_SHIP_REPLACEMENT: {
        /* "reason" or "carrier tracking" */
        size_t a = strlen(cmd->text), b = cmd->tracking ? strlen(cmd->tracking) : 0;
        char *note = as__malloc(a + b + 2);
        if (note == NULL) return AS_ENOMEM;
        memcpy(note, cmd->text, a);
        note[a] = ' ';
        memcpy(note + a + 1, cmd->tracking ? cmd->tracking : "", b);
        note[b ? a + b + 1 : a] = '\0';
        *out = note;
        return 0;
    }
    default:
        return 0;
    }
}

/* Checks 5-8 and the commit, for a case that exists and a caller already vetted (checks
 * 1-4). `lenient` while a deadline fires. */
int as__case_apply(as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient)
{
    int held = (c->v.flags & AS_CF_HELD) != 0;
    if (!as__workflow_allows(c->v.state, cmd->action, c->type, held))
        return as__err(err, AS_EINVALID_STATE, "'%s' is not allowed in state '%s'%s",
                       as__action_name(cmd->action), as__state_name(c->v.state),
                       held && cmd->action == AS_ACT_REVISE ? " (the merchant holds the goods)"
                                                            : "");
    if (cmd->version >= 0 && cmd->version != (int64_t)c->v.version && !as__is_news(cmd->action))
        return as__err(err, AS_ECONFLICT, "case '%s' is at version %u, not %lld", c->id,
                       c->v.version, (long long)cmd->version);
    int rc = action_ranges(c, cmd, err);
    if (rc) return rc;
    as_txn t;
    as__txn_init(&t, rt, c, cmd, err, lenient);
    rc = prepare(&t);
    const as_wf_row *row = NULL;
    if (rc == 0)
        rc = as__workflow_route(c->v.state, cmd->action, c->type, held, as__txn_cond, &t, &row);
    if (rc == AS_EINVALID_STATE)
        as__err(err, rc, "'%s' is not allowed for this case in state '%s'",
                as__action_name(cmd->action), as__state_name(c->v.state));
    int to = rc == 0 && row->to != AS_WF_SAME ? row->to : c->v.state;
    if (rc == 0) {
        switch (row->effect) {
        case AS_WE_HOLD:
            t.nv.flags |= AS_CF_HELD;
            break;
        case AS_WE_REMEDY:
            t.nv.remedy = (int8_t)t.remedy;
            break;
        case AS_WE_REMEDY_HOLD:
            t.nv.remedy = (int8_t)t.remedy;
            t.nv.flags |= AS_CF_HELD;
            break;
        case AS_WE_TYPE_REMEDY:
            t.nv.remedy = (int8_t)as__type_remedy(c->type);
            t.nv.flags &= ~AS_CF_HELD;
            break;
        default:
            break;
        }
        t.nv.state = (uint8_t)to;
        if (cmd->action == AS_ACT_REVISE) {
            rc = as__claim(&t);
        } else if (to != c->v.state) {
            rc = as__txn_deadline(&t);
        } else {
            t.deadline_ms = -1;
        }
    }
    as__account_layers(rt, &t.L);
    char *note;
    if (rc == 0 && note_for(cmd, &note) != 0) rc = as__err(err, AS_ENOMEM, "out of memory");
    if (rc == 0) rc = as__txn_commit(&t, &cmd->who, cmd->action, to, note);
    if (rc) {
        as__txn_abort(&t);
        return rc;
    }
    rt->stats.commands++;
    if (cmd->action == AS_ACT_REVISE) {
        as__count_attempt(rt, c);
        as__decide(rt, c, &t);
    } else if (c->v.state == AS_STATE_REFUNDING && rt->auto_pay && rt->depth == 0) {
        as_cmd pay;
        as_error perr;
        as__cmd_init(&pay, (as_principal){AS_ROLE_PLATFORM, NULL}, AS_ACT_REFUND_SUCCEEDED);
        rt->depth++;
        as__case_apply(rt, c, &pay, &perr, 0);
        rt->depth--;
    }
    return 0;
}

int as__case_act(as_runtime *rt, as_cmd *cmd, as_error *err)
{
    as__fire_due(rt);
    as_case *c = as__case_get(rt, cmd->case_id);
    if (c == NULL)
        return as__err(err, AS_ENOT_FOUND, "unknown case '%s'", cmd->case_id ? cmd->case_id : "");
    if (cmd->shape_err) return as__err(err, cmd->shape_err, "%s", cmd->shape_msg);
    if (cmd->who.role == AS_ROLE_PLATFORM && as__action_role(cmd->action) == AS_ROLE_BUYER)
        return as__err(err, AS_EFORBIDDEN, "the platform may open a case for a buyer, but not '%s'",
                       as__action_name(cmd->action));
    int rc = check_party(c->order, &cmd->who, as__action_role(cmd->action), err);
    if (rc) return rc;
    rc = as__case_apply(rt, c, cmd, err, 0);
    if (rc) rt->stats.refused++;
    return rc;
}
