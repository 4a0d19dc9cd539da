/* txn.c -- one command's transaction: the staged values, the conditions the workflow asks,
 * the deadline of the new state, and the commit, whose side effects run as the ordered steps
 * of commit_steps[] once everything that can fail has succeeded. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "durable.h"
#include "engine.h"
#include "err.h"
#include "journal.h"
#include "workflow.h"

int as__txn_cond(void *ctx, as_wf_cond cond)
{
    as_txn *t = ctx;
    int yes, rc;
    switch (cond) {
    case AS_WC_INSTANT:
        rc = as__layers_flag(&t->L, AS_HOOK_INSTANT_REFUND, &yes, t->err);
        return rc ? rc : yes;
    case AS_WC_INSPECT:
        if (!t->inspect_asked) {
            rc = as__layers_flag(&t->L, AS_HOOK_INSPECTION, &t->inspect_yes, t->err);
            if (rc) return rc;
            t->inspect_asked = 1;
            if (t->inspect_yes)
                t->nv.flags |= AS_CF_INSPECT;
            else
                t->nv.flags &= ~AS_CF_INSPECT;
        }
        return t->inspect_yes;
    case AS_WC_SERIAL_MISMATCH: {
        if (t->cmd == NULL || !(t->cmd->given & AS_P_SERIAL)) return 0;
        for (int i = 0; i < t->c->nitems; i++) {
            const char *sold = t->c->order->items[t->c->items[i].line].serial;
            if (sold && strcmp(sold, t->cmd->serial) != 0) return 1;
        }
        return 0;
    }
    case AS_WC_REMEDY_REFUND:
    case AS_WC_REMEDY_EXCHANGE:
    case AS_WC_REMEDY_REPAIR:
    case AS_WC_REMEDY_REJECT:
        if (t->remedy < 0) {
            int fault = t->cmd ? t->cmd->result == 1 : 1;
            int r = fault ? as__type_remedy(t->c->type) : AS_REMEDY_REJECT;
            if (r == AS_REMEDY_NONE) r = AS_REMEDY_REFUND;
            rc = as__layers_remedy(&t->L, fault, &r, t->err);
            if (rc) return rc;
            t->remedy = r;
        }
        return t->remedy == (int)(cond - AS_WC_REMEDY_REFUND);
    default:
        return 1;
    }
}

void as__txn_refund_by_rule(as_txn *t)
{
    if (t->L.stood[AS_HOOK_REFUND_AMOUNT] == AS_NONE_U8) return;
    t->refund_source = AS_RS_RULE;
    t->refund_layer = t->L.stood[AS_HOOK_REFUND_AMOUNT];
}

/* The deadline of the state the staged values are in, from the layers. */
int as__txn_deadline(as_txn *t)
{
    t->deadline_ms = -1;
    as_deadline_kind k = as__state_deadline(t->nv.state);
    if (k == AS_DL_NONE) return 0;
    int64_t ms = 0;
    int given;
    int rc = as__layers_deadline(&t->L, k, &ms, &given, t->err);
    /* the layers keep durations within 365 days; saturating here as well keeps now + ms
     * from overflowing whatever a future bound allows */
    int64_t due;
    if (rc == 0 && given) {
        t->deadline_ms = __builtin_add_overflow(t->now, ms, &due) ? INT64_MAX - t->now : ms;
        t->deadline_layer = t->L.stood[AS_HOOK_DEADLINES];
    }
    return rc;
}

/* Room for `n` more history entries: a command makes it before its change, so that
 * appending its entries (hist_append) cannot fail once the change is under way. */
static int hist_reserve(as_case *c, uint32_t n)
{
    if (c->nhist + n <= c->caphist) return 0;
    /* most open cases have one entry; a case that moves on usually makes five or so */
    uint32_t cap = c->caphist == 0 ? 1 : c->caphist == 1 ? 6 : c->caphist * 2;
    while (cap < c->nhist + n)
        cap *= 2;
    as_hist *h = as__realloc(c->hist, cap * sizeof *h);
    if (h == NULL) return AS_ENOMEM;
    c->hist = h;
    c->caphist = cap;
    return 0;
}

/* The hooks whose answer routes a party's command, in the order an entry names them. */
static const as_hook route_hooks[] = {AS_HOOK_ON_INSPECTION, AS_HOOK_INSTANT_REFUND,
                                      AS_HOOK_INSPECTION};

/* An entry's rule and deadline: the decision or deadline the command carries, else the hook
 * whose answer routed it, else none. */
static void provenance(const as_txn *t, as_hist *h)
{
    const as_cmd *cmd = t->cmd;
    h->rule = as__hist_rule(AS_NONE_U8, AS_NONE_U8);
    h->deadline = AS_NONE_U8;
    if (cmd && (cmd->by_hook != AS_NONE_U8 || cmd->by_deadline != AS_NONE_U8)) {
        h->rule = as__hist_rule(cmd->by_hook, cmd->by_layer);
        h->deadline = cmd->by_deadline;
        return;
    }
    for (size_t i = 0; i < sizeof route_hooks / sizeof *route_hooks; i++)
        if (t->L.stood[route_hooks[i]] != AS_NONE_U8) {
            h->rule = as__hist_rule(route_hooks[i], t->L.stood[route_hooks[i]]);
            return;
        }
}

/* 1 when the entry shows the refund: the command computed it, moved it, or instructs it. A
 * case that ends without a refund shows none. */
static int shows_refund(const as_txn *t, int action, int from, int to)
{
    if (as__state_terminal(to) && to != AS_STATE_REFUNDED) return 0;
    return action == AS_ACT_OPEN || action == AS_ACT_REVISE || action == AS_ACT_ACCEPT_OFFER ||
           t->nv.refund_amount != t->c->v.refund_amount ||
           (to == AS_STATE_REFUNDING && from != AS_STATE_REFUNDING);
}

void as__hist_append(const as_txn *t, const as_principal *who, int action, int from, int to,
                     char *note, char *why)
{
    as_case *c = t->c;
    as_hist *h = &c->hist[c->nhist++];
    *h = (as_hist){.at_ms = t->now,
                   .note = note,
                   .why = why,
                   .action = (uint8_t)action,
                   .role = (uint8_t)(who ? who->role : AS_ROLE_SYSTEM),
                   .from = (uint8_t)from,
                   .to = (uint8_t)to,
                   .flags = who && who->id ? AS_HF_PARTY : 0,
                   .refund_by = as__hist_refund_by(AS_RS_DEFAULT, AS_NONE_U8)};
    provenance(t, h);
    if (!shows_refund(t, action, from, to)) return;
    h->flags |= AS_HF_REFUND | (t->nv.flags & AS_CF_FEE_ADDED ? AS_HF_FEE : 0) |
                (t->nv.return_shipping ? AS_HF_RETURN_SHIP : 0);
    h->refund = t->nv.refund_amount;
    h->refund_by = as__hist_refund_by(t->refund_source, t->refund_layer);
}

/* Moves the layers' notes (dropped merchant answers, failures) into the case history, in the
 * room change_room reserved; each names the hook and layer it drops. */
void as__txn_notes(as_txn *t, const as_principal *who, int action)
{
    int state = t->c->v.state;
    for (int i = 0; i < t->L.nnotes; i++) {
        const as_note *n = &t->L.notes[i];
        /* a failed hook's file:line takes the place of a why, which a drop never has */
        as__hist_append(t, who, action, state, state, n->text, n->where);
        as_hist *h = &t->c->hist[t->c->nhist - 1];
        h->flags = (uint8_t)((h->flags & AS_HF_PARTY) | AS_HF_DROPPED | (n->failed ? AS_HF_FAILED : 0));
        h->rule = as__hist_rule(n->hook, n->layer);
        h->deadline = AS_NONE_U8;
        as__event(t->rt, t->c->order, AS_EV_RULE_DROPPED, 0);
    }
    t->L.nnotes = 0;
}

void as__account_layers(as_runtime *rt, const as_layers *L)
{
    rt->stats.hook_calls += L->calls;
    for (int l = 0; l < AS_LAYER_COUNT; l++)
        rt->stats.rule_failures[l] += L->failures[l];
    rt->stats.merchant_dropped += L->dropped;
}

/* The how-many-th refund instruction of `c` the last history entry gives: each entry into
 * refunding and each refund_failed in it instructs one (as__txn_commit() below), counted from the
 * history so that the count survives a restart. */
static unsigned refund_attempt(const as_case *c)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < c->nhist; i++) {
        const as_hist *h = &c->hist[i];
        n += h->to == AS_STATE_REFUNDING &&
             (h->from != AS_STATE_REFUNDING || h->action == AS_ACT_REFUND_FAILED);
    }
    return n;
}

/* The key of a side effect for the platform, `CASE:refund:N` (the caller frees it; NULL on
 * OOM): new for each instruction, so that a refund instructed again after refund_failed is
 * one the receiver has not seen, even if it deduplicates by key. */
static char *outbox_key(const as_case *c, const char *kind, unsigned attempt)
{
    size_t cap = strlen(c->id) + strlen(kind) + 16;
    char *key = as__malloc(cap);
    if (key) snprintf(key, cap, "%s:%s:%u", c->id, kind, attempt);
    return key;
}

/* docs/design.md#states-and-actions: logistics news is recorded in any state and starts nothing;
 * the case's version stays, and a version it carries is not checked. */
int as__is_news(int action)
{
    return action == AS_ACT_RETURN_DELIVERED || action == AS_ACT_DELIVERED;
}

/* Reserves, before a change of t->c is made, everything the change will need, so that once it
 * is under way nothing can fail (a failure halfway would leave a refused command's traces,
 * or an acknowledged one without its rows): `entries` history entries plus one per layer
 * note, `note_bytes` for the entries' own notes, their metrics events, the deadline's node,
 * and the journal's room for the case with the staged values, for its order and for the
 * party's command (as__txn_command writes it). */
int as__txn_logged(const as_txn *t)
{
    return t->rt->dur && t->cmd && t->cmd->who.role != AS_ROLE_SYSTEM && t->rt->depth == 0;
}

int as__txn_room(as_txn *t, uint32_t entries, size_t note_bytes)
{
    as_case *c = t->c;
    int logged = as__txn_logged(t);
    size_t command = logged ? as__cmd_stage_size(t->cmd) : 0;
    uint32_t more = entries + (uint32_t)t->L.nnotes;
    for (int i = 0; i < t->L.nnotes; i++)
        note_bytes += strlen(t->L.notes[i].text) +
                      (t->L.notes[i].where ? strlen(t->L.notes[i].where) : 0);
    if (hist_reserve(c, more) != 0 ||
        as__events_reserve(&c->order->shop_ref->events,
                           AS_TRANSITION_EVENTS + (uint32_t)t->L.nnotes) != 0 ||
        as__sched_reserve(&t->rt->sched, 1) != 0 ||
        (logged && as__cmd_stage_reserve(&t->rt->dur->cmds, command) != 0) ||
        (t->rt->dur && /* measured only when something is journaled */
         as__durable_reserve(t->rt, as__journal_case_bound(c, &t->nv, more, note_bytes) +
                                        as__journal_order_size(c->order) + command) != 0))
        return as__err(t->err, AS_ENOMEM, "out of memory");
    return 0;
}

/* One commit as its steps see it. */
typedef struct change {
    as_txn *t;
    const as_principal *who;
    int action, from, to;
    char *note;      /* the history entry's note, taken by step_history */
    char *why;          /* the entry's why, taken by step_history */
    int instruct;    /* a refund instruction goes out with this change */
    const char *key; /* its outbox key, when instruct */
} change;

/* docs/rulebook.md#amounts: the fee is judged again as the refund is instructed, by the host
 * alone: added if it holds now, taken back if it no longer does, never twice. A terminal
 * state other than refunded refunds nothing. */
static void stage_amount(as_txn *t, int from, int to)
{
    if (to == AS_STATE_REFUNDING && from != AS_STATE_REFUNDING) {
        int64_t fee = as__case_fee(t->c);
        if (fee && !(t->nv.flags & AS_CF_FEE_ADDED)) {
            t->nv.refund_amount += fee;
            t->nv.flags |= AS_CF_FEE_ADDED;
        } else if (!fee && (t->nv.flags & AS_CF_FEE_ADDED)) {
            int64_t back = t->c->order->shipping_fee;
            t->nv.refund_amount = t->nv.refund_amount > back ? t->nv.refund_amount - back : 0;
            t->nv.flags &= (uint16_t)~AS_CF_FEE_ADDED;
        }
    }
    if (as__state_terminal(to) && to != AS_STATE_REFUNDED) t->nv.refund_amount = 0;
}

void as__txn_command(const as_txn *t)
{
    if (!as__txn_logged(t)) return;
    as__cmd_stage_put(&t->rt->dur->cmds, t->c, t->c->nhist, t->now, t->cmd);
}

/* Before step_history, so that the command names the entry it makes. */
static void step_command(change *x)
{
    as__txn_command(x->t);
}

static void step_history(change *x)
{
    as__hist_append(x->t, x->who, x->action, x->from, x->to, x->note, x->why);
    x->note = NULL;
    x->why = NULL;
}

/* A new deadline on entering a state that has one, none in the others. */
static void step_deadline(change *x)
{
    as_txn *t = x->t;
    if (t->deadline_ms >= 0) {
        (void)as__schedule(t->rt, t->c, t->now + t->deadline_ms); /* its room is reserved */
        t->c->deadline_layer = t->deadline_layer;
    }
    else if (as__state_deadline(x->to) == AS_DL_NONE || x->to != x->from ||
             x->action == AS_ACT_REVISE)
        as__sched_remove(&t->rt->sched, &t->c->deadline);
}

/* The staged values become the case's, the evidence they replace freed, the version bumped
 * unless this is logistics news. */
static void step_values(change *x)
{
    as_txn *t = x->t;
    as_case *c = t->c;
    if (t->new_evidence ||
        (t->cmd && t->cmd->action == AS_ACT_REVISE && (t->cmd->given & AS_P_EVIDENCE))) {
        as__free(c->v.evidence);
        t->new_evidence = NULL;
    }
    t->nv.version = c->v.version + !as__is_news(x->action);
    c->v = t->nv;
    c->refund_source = t->refund_source;
    c->refund_layer = t->refund_layer;
}

static void step_notes(change *x)
{
    as__txn_notes(x->t, x->who, x->action);
}

static void step_journal(change *x)
{
    as__touch_case(x->t->rt, x->t->c);
}

/* Days in repair, counted per started day, for the repair limit (docs/rulebook.md#electronics). */
static void step_repair_days(change *x)
{
    as_case *c = x->t->c;
    if (x->from == AS_STATE_REPAIRING && x->to != AS_STATE_REPAIRING)
        c->repair_days += (int32_t)((x->t->now - c->repair_since + AS_DAY - 1) / AS_DAY);
    if (x->to == AS_STATE_REPAIRING && x->from != AS_STATE_REPAIRING) c->repair_since = x->t->now;
}

static void step_response(change *x)
{
    as_case *c = x->t->c;
    if (x->who && x->who->role == AS_ROLE_MERCHANT && !(c->v.flags & AS_CF_RESPONDED)) {
        c->v.flags |= AS_CF_RESPONDED;
        as__event(x->t->rt, c->order, AS_EV_RESPONSE, x->t->now - c->opened_at);
    }
}

static void step_system_events(change *x)
{
    as_case *c = x->t->c;
    if (x->action == AS_ACT_AUTO_AGREE) {
        c->v.flags |= AS_CF_AUTO_AGREED;
        as__event(x->t->rt, c->order, AS_EV_AUTO_AGREE, 0);
    }
    if (x->action == AS_ACT_ESCALATE) as__event(x->t->rt, c->order, AS_EV_ESCALATE, 0);
}

static void step_counters(change *x)
{
    if (x->to == x->from) return;
    x->t->rt->stats.transitions++;
    x->t->rt->stats.by_type_state[x->t->c->type][x->to]++;
}

/* Delivered now when nothing is durable, else once the batch holding it is on disk. */
static void step_instruct(change *x)
{
    as_runtime *rt = x->t->rt;
    as_case *c = x->t->c;
    if (x->instruct && !rt->dur)
        rt->outbox.cb(rt->outbox.data, "refund", c->id, c->v.refund_amount, x->key);
}

static void step_refunded(change *x)
{
    as_case *c = x->t->c;
    if (x->to == AS_STATE_REFUNDED && x->from != x->to)
        as__event(x->t->rt, c->order, AS_EV_REFUND, (c->v.flags & AS_CF_RULED_BUYER) != 0);
}

/* An ended case lets go of its pinned pack versions. */
static void step_resolved(change *x)
{
    as_case *c = x->t->c;
    if (!as__state_terminal(x->to) || as__state_terminal(x->from)) return;
    c->ended_at = x->t->now;
    as__event(x->t->rt, c->order, AS_EV_RESOLVED, x->t->now - c->opened_at);
    for (int l = 0; l < AS_LAYER_COUNT; l++)
        as__pack_unref(c->rules[l]);
}

static void step_worklist(change *x)
{
    if (!as__state_terminal(x->from))
        as__worklist_changed(&x->t->c->order->shop_ref->cases, x->t->c);
}

/* The side effects of a commit, in the order they run: a party's command before its history
 * entry (the command names that entry's index), the history entry before the values (it
 * records the old state), the values before the notes (which record the new one) and
 * before every step that reads c->v, the resolution before the worklist (which moves an
 * ended case to the closed list). None can fail: their room was reserved. */
static void (*const commit_steps[])(change *) = {
    step_command,       step_history,  step_deadline, step_values,   step_notes,
    step_journal,       step_repair_days, step_response, step_system_events,
    step_counters,      step_instruct, step_refunded, step_resolved, step_worklist,
};

/* Commits the staged transition. Everything that can fail comes first, while the case is as
 * it was: the room (as__txn_room), the outbox key and, on a durable runtime, the refund
 * instruction's row in the batch; then commit_steps[] run. `note` is taken over either way. */
int as__txn_commit(as_txn *t, const as_principal *who, int action, int to, char *note)
{
    as_runtime *rt = t->rt;
    as_case *c = t->c;
    change x = {t, who, action, c->v.state, to, note, NULL, 0, NULL};
    t->nv.state = (uint8_t)to;
    stage_amount(t, x.from, to);
    /* a refund instruction (when someone takes it): its entry is the history entry appended
     * by step_history, hence + 1 */
    x.instruct = to == AS_STATE_REFUNDING &&
                 (x.from != AS_STATE_REFUNDING || action == AS_ACT_REFUND_FAILED) &&
                 (rt->dur || rt->outbox.cb);
    char *key = NULL; /* owned here */
    int rc = as__txn_room(t, 1, note ? strlen(note) : 0);
    const char *why = t->cmd ? t->cmd->why : NULL;
    if (rc == 0 && why && *why && (x.why = as__strdup(why)) == NULL)
        rc = as__err(t->err, AS_ENOMEM, "out of memory");
    if (rc == 0 && x.instruct && (key = outbox_key(c, "refund", refund_attempt(c) + 1)) == NULL)
        rc = as__err(t->err, AS_ENOMEM, "out of memory");
    if (rc == 0 && x.instruct && rt->dur &&
        as__durable_outbox(rt, key, "refund", c->id, t->nv.refund_amount) != 0)
        rc = as__err(t->err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__free(note);
        as__free(x.why);
        as__free(key);
        return rc;
    }
    x.key = key;
    for (size_t i = 0; i < sizeof commit_steps / sizeof commit_steps[0]; i++)
        commit_steps[i](&x);
    as__free(key);
    return 0;
}

void as__txn_abort(as_txn *t)
{
    as__free(t->new_evidence);
    t->new_evidence = NULL;
    as__layers_clear_notes(&t->L);
}

void as__txn_init(as_txn *t, as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient)
{
    memset(t, 0, offsetof(as_txn, L));
    t->decide_reason[0] = '\0';
    t->rt = rt;
    t->c = c;
    t->cmd = cmd;
    t->err = err;
    t->now = as__clock_now(&rt->clock);
    t->nv = c->v;
    t->remedy = -1;
    t->deadline_ms = -1;
    t->deadline_layer = AS_NONE_U8;
    t->refund_source = c->refund_source;
    t->refund_layer = c->refund_layer;
    as__layers_init(&t->L, c->rules, c->order, c, &t->nv, t->now);
    t->L.lenient = lenient;
}
