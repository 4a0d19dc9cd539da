/* layers.c -- see layers.h. */
#include "layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "model.h"

void as__layers_init(as_layers *L, as_pack *const *packs, const as_order *o, const as_case *c,
                     const as_case_vals *v, int64_t now_ms)
{
    memset(L, 0, offsetof(as_layers, why));
    L->why[0] = '\0';
    L->packs = packs;
    L->args.order = o;
    L->args.c = c;
    L->args.v = v;
    L->args.now_ms = now_ms;
    memset(L->stood, AS_NONE_U8, sizeof L->stood);
}

void as__layers_clear_notes(as_layers *L)
{
    for (int i = 0; i < L->nnotes; i++) {
        as__free(L->notes[i].text);
        as__free(L->notes[i].where);
    }
    L->nnotes = 0;
}

/* Writes down a dropped answer or a failure of layer l's hook h (`where` its file:line, or
 * ""). A note that cannot be kept for want of memory is lost, not the command. */
static void note(as_layers *L, int l, as_hook h, const char *where, const char *fmt,
                 const char *a, const char *b)
{
    if (L->nnotes == AS_MAX_NOTES) return;
    char buf[512];
    snprintf(buf, sizeof buf, fmt, as__layer_name(l), a, b);
    as_note *n = &L->notes[L->nnotes];
    *n = (as_note){as__strdup(buf), where && *where ? as__strdup(where) : NULL, (uint8_t)l,
                   (uint8_t)h, where != NULL};
    if (n->text == NULL) {
        as__free(n->where);
        return;
    }
    L->nnotes++;
}

int as__answer_text_ok(const char *s, size_t len)
{
    if (len < 1 || len > AS_ANSWER_TEXT_MAX) return 0;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        uint32_t c = *p++;
        int more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (more < 0 || end - p < more) return 0;
        if (more) c &= 0x3Fu >> more;
        for (int i = 0; i < more; i++, p++) {
            if ((*p & 0xC0) != 0x80) return 0;
            c = c << 6 | (*p & 0x3F);
        }
        static const uint32_t least[] = {0, 0x80, 0x800, 0x10000};
        if (c < least[more] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        if (c < 0x20 || (c >= 0x7F && c <= 0x9F)) return 0; /* C0, DEL, C1 */
    }
    return 1;
}

int as__refusal_code_ok(int code)
{
    return code != 0 && strcmp(as_err_name(code), "unknown") != 0 && code != AS_ENOMEM && code != AS_EIO &&
           code != AS_EUNAUTHORIZED;
}

/* Why answer `a` of hook h leaves its documented range (docs/design.md#hooks-and-layers), written
 * into `why`; 0 when it is in range. `cap` tops an amount (docs/rulebook.md#amounts). Only the
 * current state's deadline kind is ever in an answer, so an out-of-range duration is judged alone.
 */
static int out_of_range(as_hook h, int64_t cap, const as_answer *a, char *why, size_t size)
{
    switch (a->kind) {
    case AS_ANS_REFUSAL:
        if (!as__refusal_code_ok(a->code))
            return snprintf(why, size, "a refusal with a code rules may not give"), 1;
        if (!as__answer_text_ok(a->msg, strlen(a->msg)))
            return snprintf(why, size, "a refusal message that is not 1-256 bytes of text"), 1;
        return 0;
    case AS_ANS_REJECT:
        if (!as__answer_text_ok(a->msg, strlen(a->msg)))
            return snprintf(why, size, "a reject reason that is not 1-256 bytes of text"), 1;
        return 0;
    case AS_ANS_INT:
        if (h == AS_HOOK_PRIORITY && (a->i < 1 || a->i > AS_PRIORITY_MAX))
            return snprintf(why, size, "priority %lld outside 1..%d", (long long)a->i, AS_PRIORITY_MAX), 1;
        if (h == AS_HOOK_REFUND_AMOUNT && (a->i < 0 || a->i > cap))
            return snprintf(
                       why, size,
                       "refund_amount %lld outside 0 .. the cap %lld of docs/rulebook.md#amounts",
                       (long long)a->i, (long long)cap),
                   1;
        return 0;
    case AS_ANS_DEADLINES:
        for (int k = 0; k < AS_DL_COUNT; k++)
            if ((a->dl_set >> k & 1u) && (a->dl[k] < 0 || a->dl[k] > AS_DURATION_MAX))
                return snprintf(why, size, "%s %lld ms outside 0 .. 365 days", as__deadline_name(k),
                                (long long)a->dl[k]), 1;
        return 0;
    case AS_ANS_REMEDY:
        if (a->i < 0 || a->i >= AS_REMEDY_COUNT) return snprintf(why, size, "an unknown remedy"), 1;
        return 0;
    default:
        return 0;
    }
}

/* Drops layer l's answer (a merchant's out of bounds, or any layer's while lenient). */
static void drop(as_layers *L, int l, as_hook h, const char *why)
{
    if (l == AS_LAYER_MERCHANT) {
        L->dropped++;
        L->packs[l]->dropped++;
    }
    note(L, l, h, NULL, "%s answer to %s dropped: %s", as__hook_name(h), why);
}

/* Asks layer `l`. Returns 1 with an answer to weigh, 0 to skip the layer (no hook, nil, or a
 * dropped failure or out-of-range answer), AS_ERULE_ERROR, or AS_ENOMEM. `cap` as for
 * out_of_range. */
static int ask(as_layers *L, int l, as_hook h, int64_t cap, as_answer *ans, as_error *err)
{
    as_pack *p = L->packs[l];
    if (!as__pack_has(p, h)) return 0;
    as_error e = {0};
    L->calls++;
    int rc = p->engine->call(p, h, &L->args, ans, &e);
    /* the host's memory ran out, not the rule (its own cap is rule_error): no layer's fault,
     * nothing to drop or count against it, and the command is refused with nomem -- dropping
     * a merchant's answer for it would let the command through with another outcome */
    if (rc == AS_ENOMEM) return as__err(err, AS_ENOMEM, "%s", e.msg);
    if (rc != 0) {
        L->failures[l]++;
        if (l == AS_LAYER_MERCHANT || L->lenient) {
            if (l == AS_LAYER_MERCHANT) L->dropped++, p->dropped++;
            note(L, l, h, ans->where, "%s rule failed and was dropped: %s%s", e.msg, "");
            return 0;
        }
        return as__err(err, AS_ERULE_ERROR, "%s", e.msg);
    }
    char why[160];
    if (!out_of_range(h, cap, ans, why, sizeof why)) return ans->kind != AS_ANS_NIL;
    if (l != AS_LAYER_MERCHANT && !L->lenient)
        return as__err(err, AS_ERULE_ERROR, "%s rule %s@%s: hook %s answered %s", as__layer_name(l),
                       p->name, p->version, as__hook_name(h), why);
    drop(L, l, h, why);
    return 0;
}

static int is_stage2(int code)
{
    return code == AS_EWINDOW_EXPIRED || code == AS_ENOT_ELIGIBLE ||
           code == AS_EREMEDY_NOT_ALLOWED || code == AS_EWARRANTY_EXPIRED;
}

int as__layers_eligibility(as_layers *L, as_error *err)
{
    int verdict = 0;
    char msg[AS_ANSWER_TEXT_MAX + 1] = "";
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_ELIGIBILITY, 0, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        if (l == AS_LAYER_MERCHANT) {
            if (a.kind == AS_ANS_TRUE && verdict != 0 && !is_stage2(verdict)) {
                drop(L, l, AS_HOOK_ELIGIBILITY, "it may not allow what stage 1 or a non-policy rule refused");
                continue;
            }
            if (a.kind == AS_ANS_REFUSAL && verdict == 0) {
                drop(L, l, AS_HOOK_ELIGIBILITY, "it may not refuse what earlier layers allowed");
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
    char why[160];
    if (!as__pack_has(p, AS_HOOK_ORDER_CHECK)) return 0;
    int rc = p->engine->call(p, AS_HOOK_ORDER_CHECK, args, &a, err);
    if (rc != 0) return rc == AS_ENOMEM ? rc : AS_ERULE_ERROR; /* nomem: the host's, see ask() */
    if (out_of_range(AS_HOOK_ORDER_CHECK, 0, &a, why, sizeof why))
        return as__err(err, AS_ERULE_ERROR, "%s@%s: hook order_check answered %s", p->name,
                       p->version, why);
    return a.kind == AS_ANS_REFUSAL ? as__err(err, a.code, "%s", a.msg) : 0;
}

int as__layers_refund_amount(as_layers *L, int64_t cap_fen, int64_t *amount, as_error *err)
{
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_REFUND_AMOUNT, cap_fen, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        if (l == AS_LAYER_MERCHANT && a.i < *amount) {
            drop(L, l, AS_HOOK_REFUND_AMOUNT, "it may raise a refund, never lower it");
            continue;
        }
        /* the layer that changed the amount is the one the history names: a rule that
         * answers what it was given changes nothing */
        if (a.i != *amount) L->stood[AS_HOOK_REFUND_AMOUNT] = (uint8_t)l;
        *amount = a.i;
    }
    return 0;
}

int as__layers_priority(as_layers *L, int *priority, as_error *err)
{
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_PRIORITY, 0, &a, err);
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
        int rc = ask(L, l, AS_HOOK_DEADLINES, 0, &a, err);
        if (rc < 0) return rc;
        if (rc == 0 || !(a.dl_set >> kind & 1u)) continue;
        if (l == AS_LAYER_MERCHANT && *given) {
            int shorter = a.dl[kind] < *ms;
            if (a.dl[kind] != *ms && shorter != as__deadline_is_merchants(kind)) {
                drop(L, l, AS_HOOK_DEADLINES, as__deadline_is_merchants(kind)
                                         ? "it may shorten its own windows, never lengthen them"
                                         : "it may lengthen the buyer's windows, never shorten them");
                continue;
            }
        }
        *ms = a.dl[kind];
        *given = 1;
        L->stood[AS_HOOK_DEADLINES] = (uint8_t)l;
    }
    return 0;
}

int as__layers_decide(as_layers *L, int *decision, char *reason, size_t len, as_error *err)
{
    *decision = 0;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_AUTO_DECIDE, 0, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        if (l == AS_LAYER_MERCHANT && a.kind == AS_ANS_REJECT && *decision == 1) {
            drop(L, l, AS_HOOK_AUTO_DECIDE, "it may not reject what an earlier layer agreed");
            continue;
        }
        *decision = a.kind == AS_ANS_AGREE ? 1 : 2;
        if (*decision == 2) snprintf(reason, len, "%s", a.msg);
        L->stood[AS_HOOK_AUTO_DECIDE] = (uint8_t)l;
        memcpy(L->why, a.why, strlen(a.why) + 1);
    }
    return 0;
}

int as__layers_flag(as_layers *L, as_hook h, int *yes, as_error *err)
{
    *yes = 0;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, h, 0, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        int says = a.kind == AS_ANS_TRUE;
        /* docs/rulebook.md#merchant-bounds: a merchant may skip an inspection the earlier layers
         * asked for, not add one (that would slow the buyer's refund); it may grant an instant
         * refund, not take back one the earlier layers granted. */
        if (l == AS_LAYER_MERCHANT && says != *yes) {
            if (h == AS_HOOK_INSPECTION && says) {
                drop(L, l, h, "it may not add an inspection");
                continue;
            }
            if (h == AS_HOOK_INSTANT_REFUND && !says) {
                drop(L, l, h, "it may not refuse an instant refund earlier layers granted");
                continue;
            }
        }
        *yes = says;
        L->stood[h] = (uint8_t)l;
    }
    return 0;
}

/* The remedy the case asked for (docs/rulebook.md#merchant-bounds), as the engine's default after a
 * fault. */
static int asked_remedy(const as_case *c)
{
    as_remedy r = c ? as__type_remedy(c->type) : AS_REMEDY_NONE;
    return r == AS_REMEDY_NONE ? AS_REMEDY_REFUND : (int)r;
}

int as__layers_remedy(as_layers *L, int fault, int *remedy, as_error *err)
{
    L->args.inspect_fault = fault;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as_answer a;
        int rc = ask(L, l, AS_HOOK_ON_INSPECTION, 0, &a, err);
        if (rc < 0) return rc;
        if (rc == 0) continue;
        /* docs/rulebook.md#merchant-bounds: the merchant may grant the remedy the case asked for
         * where the earlier layers (the bundled default among them) answered reject; it may not
         * reject what they granted, nor grant another remedy. */
        if (l == AS_LAYER_MERCHANT && a.i == AS_REMEDY_REJECT && *remedy != AS_REMEDY_REJECT) {
            drop(L, l, AS_HOOK_ON_INSPECTION, "it may not reject what earlier layers accepted");
            continue;
        }
        if (l == AS_LAYER_MERCHANT && a.i != AS_REMEDY_REJECT && a.i != asked_remedy(L->args.c)) {
            drop(L, l, AS_HOOK_ON_INSPECTION, "it may grant only the remedy the case asked for");
            continue;
        }
        *remedy = (int)a.i;
        L->stood[AS_HOOK_ON_INSPECTION] = (uint8_t)l;
    }
    return 0;
}
