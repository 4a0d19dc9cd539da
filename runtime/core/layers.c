/* layers.c -- see layers.h. */
#include "layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

void as__layers_init(as_layers *L, as_pack *const *packs, const as_order *o, const as_case *c,
                     const as_case_vals *v, int64_t now_ms)
{
    memset(L, 0, sizeof *L);
    L->packs = packs;
    L->args.order = o;
    L->args.c = c;
    L->args.v = v;
    L->args.now_ms = now_ms;
}

void as__layers_clear_notes(as_layers *L)
{
    for (int i = 0; i < L->nnotes; i++) free(L->notes[i]);
    L->nnotes = 0;
}

static void note(as_layers *L, const char *fmt, const char *a, const char *b, const char *c)
{
    if (L->nnotes == AS_MAX_NOTES) return;
    char buf[512];
    snprintf(buf, sizeof buf, fmt, a, b, c);
    L->notes[L->nnotes] = strdup(buf);
    if (L->notes[L->nnotes]) L->nnotes++;
}

/* Asks layer `l`. Returns 1 with an answer to weigh, 0 to skip the layer (no hook, nil, or a
 * dropped failure), or AS_ERULE_ERROR. */
static int ask(as_layers *L, int l, as_hook h, as_answer *ans, as_error *err)
{
    as_pack *p = L->packs[l];
    if (!as__pack_has(p, h)) return 0;
    as_error e = {0};
    L->calls++;
    if (p->engine->call(p, h, &L->args, ans, &e) != 0) {
        L->failures[l]++;
        if (l == AS_LAYER_MERCHANT || L->lenient) {
            if (l == AS_LAYER_MERCHANT) L->dropped++, p->dropped++;
            note(L, "%s rule failed and was dropped: %s%s", as__layer_name(l), e.msg, "");
            return 0;
        }
        return as__err(err, AS_ERULE_ERROR, "%s", e.msg);
    }
    return ans->kind != AS_ANS_NIL;
}

/* Drops layer l's answer (a merchant's out of bounds, or any layer's while lenient). */
static void drop(as_layers *L, int l, const char *hook, const char *why)
{
    if (l == AS_LAYER_MERCHANT) {
        L->dropped++;
        L->packs[l]->dropped++;
    }
    note(L, "%s answer to %s dropped: %s", as__layer_name(l), hook, why);
}

static int is_stage2(int code)
{
    return code == AS_EWINDOW_EXPIRED || code == AS_ENOT_ELIGIBLE ||
           code == AS_EREMEDY_NOT_ALLOWED || code == AS_EWARRANTY_EXPIRED;
}

int as__layers_eligibility(as_layers *L, as_error *err)
{
    int verdict = 0;
    char msg[160] = "";
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_ELIGIBILITY, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        if (l == AS_LAYER_MERCHANT) {
            if (a.kind == AS_ANS_TRUE && verdict != 0 && !is_stage2(verdict)) {
                drop(L, l, "eligibility", "it may not allow what stage 1 or a non-policy rule refused");
                continue;
            }
            if (a.kind == AS_ANS_REFUSAL && verdict == 0) {
                drop(L, l, "eligibility", "it may not refuse what earlier layers allowed");
                continue;
            }
            if (a.kind == AS_ANS_REFUSAL) continue; /* refused either way: keep the earlier word */
        }
        if (a.kind == AS_ANS_TRUE) {
            verdict = 0;
        } else {
            verdict = a.code;
            snprintf(msg, sizeof msg, "%s", a.msg);
        }
    }
    return verdict ? as__err(err, verdict, "%s", msg) : 0;
}

int as__layers_order_check(as_pack *p, const as_hook_args *args, as_error *err)
{
    as_answer a;
    if (!as__pack_has(p, AS_HOOK_ORDER_CHECK)) return 0;
    if (p->engine->call(p, AS_HOOK_ORDER_CHECK, args, &a, err) != 0) return AS_ERULE_ERROR;
    return a.kind == AS_ANS_REFUSAL ? as__err(err, a.code, "%s", a.msg) : 0;
}

int as__layers_refund_amount(as_layers *L, int64_t cap_fen, int64_t *amount, as_error *err)
{
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_REFUND_AMOUNT, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        if (a.i > cap_fen) {
            if (l != AS_LAYER_MERCHANT && !L->lenient)
                return as__err(err, AS_ERULE_ERROR,
                               "%s rule refund_amount %lld is above the cap %lld",
                               as__layer_name(l), (long long)a.i, (long long)cap_fen);
            drop(L, l, "refund_amount", "above the cap of RULES.md §1.4");
            continue;
        }
        if (l == AS_LAYER_MERCHANT && a.i < *amount) {
            drop(L, l, "refund_amount", "it may raise a refund, never lower it");
            continue;
        }
        *amount = a.i;
    }
    return 0;
}

int as__layers_priority(as_layers *L, int *priority, as_error *err)
{
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_PRIORITY, &a, err);
        if (rc < 0) return rc;
        if (rc) *priority = (int)a.i;
    }
    return 0;
}

int as__layers_deadline(as_layers *L, as_deadline_kind kind, int64_t *ms, int *given,
                        as_error *err)
{
    *given = 0;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_DEADLINES, &a, err);
        if (rc < 0) return rc;
        if (rc == 0 || !(a.dl_set >> kind & 1u)) continue;
        if (l == AS_LAYER_MERCHANT && *given) {
            int shorter = a.dl[kind] < *ms;
            if (a.dl[kind] != *ms && shorter != as__deadline_is_merchants(kind)) {
                drop(L, l, "deadlines", as__deadline_is_merchants(kind)
                                         ? "it may shorten its own windows, never lengthen them"
                                         : "it may lengthen the buyer's windows, never shorten them");
                continue;
            }
        }
        *ms = a.dl[kind];
        *given = 1;
    }
    return 0;
}

int as__layers_decide(as_layers *L, int *decision, char *reason, size_t len, as_error *err)
{
    *decision = 0;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_AUTO_DECIDE, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        if (l == AS_LAYER_MERCHANT && a.kind == AS_ANS_REJECT && *decision == 1) {
            drop(L, l, "auto_decide", "it may not reject what an earlier layer agreed");
            continue;
        }
        *decision = a.kind == AS_ANS_AGREE ? 1 : 2;
        if (*decision == 2) snprintf(reason, len, "%s", a.msg);
    }
    return 0;
}

int as__layers_flag(as_layers *L, as_hook h, int *yes, as_error *err)
{
    *yes = 0;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, h, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        /* A merchant may grant an instant refund; it may not add an inspection the earlier
         * layers did not ask for (that would slow the buyer's refund). */
        if (l == AS_LAYER_MERCHANT && h == AS_HOOK_INSPECTION && !*yes) {
            drop(L, l, "inspection", "it may not add an inspection");
            continue;
        }
        *yes = 1;
    }
    return 0;
}

int as__layers_remedy(as_layers *L, int fault, int *remedy, as_error *err)
{
    L->args.inspect_fault = fault;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_ON_INSPECTION, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        if (l == AS_LAYER_MERCHANT && a.i == AS_REMEDY_REJECT && *remedy != AS_REMEDY_REJECT) {
            drop(L, l, "on_inspection", "it may not reject what earlier layers accepted");
            continue;
        }
        *remedy = (int)a.i;
    }
    return 0;
}
