/* test_layers.c -- asking the rule layers platform → category → merchant and combining their
 * answers (docs/design.md#hooks-and-layers "How layers combine", docs/rulebook.md#merchant-bounds,
 * core/layers.h). Each layer is a small inline Lua pack. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/error.h"
#include "core/layers.h"
#include "lua/lua_engine.h"
#include "unit_fixtures.h"
#include "unit_common.h"

static const as_pack_limits LIM = {.instructions = 20000, .memory = 1 << 20};

/* A pack whose table holds `fields` (hooks written as Lua). NULL gives no pack. */
static as_pack *mk(const char *name, const char *fields)
{
    if (fields == NULL) return NULL;
    char src[2048];
    snprintf(src, sizeof src, "return { name = '%s', version = '1', %s }", name, fields);
    return fx_load(src, &LIM, 0, NULL);
}

/* Three layers on the fixture case; free with done(). */
typedef struct stack {
    as_pack *packs[AS_LAYER_COUNT];
    fx f;
    as_layers L;
    as_error err;
} stack;

static void setup(stack *s, const char *plat, const char *cat, const char *merch)
{
    memset(s, 0, sizeof *s);
    s->packs[AS_LAYER_PLATFORM] = mk("plat", plat);
    s->packs[AS_LAYER_CATEGORY] = mk("cat", cat);
    s->packs[AS_LAYER_MERCHANT] = mk("merch", merch);
    s->f = fx_new();
    as__layers_init(&s->L, s->packs, s->f.o, s->f.c, &s->f.c->v, s->f.a.now_ms);
}

static void done(stack *s)
{
    as__layers_clear_notes(&s->L);
    ck_assert_int_eq(s->L.nnotes, 0);
    for (int l = 0; l < AS_LAYER_COUNT; l++) as__pack_unref(s->packs[l]);
    fx_free(&s->f);
}

static int note_has(const stack *s, const char *needle)
{
    for (int i = 0; i < s->L.nnotes; i++)
        if (strstr(s->L.notes[i].text, needle)) return 1;
    return 0;
}

#define PRIO(n) "priority = function() return " #n " end"
#define ELIG_TRUE "eligibility = function() return true end"
#define ELIG_NIL "eligibility = function() return nil end"
#define REFUSE(code) "eligibility = function() return { error = '" code "', message = 'by " code "' } end"
#define THROWS(hook) hook " = function() error('" hook " exploded') end"
#define LOOPS(hook) hook " = function() while true do end end"

/* ==========================================================================================
 * The last non-nil answer stands
 * ======================================================================================== */

/* docs/design.md#hooks-and-layers: "a hook's answer is the last non-nil answer in layer order (platform, then
 * category, then merchant)". */
START_TEST(layers_last_non_nil_answer_wins)
{
    static const struct {
        const char *p, *c, *m;
        int want;
    } cases[] = {
        {PRIO(3), NULL, NULL, 3},
        {PRIO(3), PRIO(2), NULL, 2},
        {PRIO(3), PRIO(2), PRIO(1), 1},
        {PRIO(3), PRIO(nil), PRIO(nil), 3},
        {PRIO(nil), PRIO(nil), PRIO(4), 4},
        {PRIO(3), "", PRIO(5), 5}, /* a pack without the hook is no answer */
        {NULL, NULL, NULL, 9},     /* nobody answers: the default stays */
        {PRIO(nil), PRIO(nil), PRIO(nil), 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stack s;
        setup(&s, cases[i].p, cases[i].c, cases[i].m);
        int prio = 9;
        ck_assert_int_eq(as__layers_priority(&s.L, &prio, &s.err), 0);
        ck_assert_msg(prio == cases[i].want, "case %zu: priority %d, want %d", i, prio,
                      cases[i].want);
        ck_assert_int_eq(s.L.nnotes, 0);
        done(&s);
    }
}
END_TEST

/* docs/rulebook.md#eligibility stage 2: "Each layer's eligibility hook answers allowed, a refusal, or nil
 * (keep the answer so far); the last answer stands". */
START_TEST(layers_eligibility_last_answer_stands)
{
    stack s;
    setup(&s, ELIG_TRUE, REFUSE("window_expired"), NULL);
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), AS_EWINDOW_EXPIRED);
    ck_assert_int_eq(s.err.code, AS_EWINDOW_EXPIRED);
    ck_assert_str_eq(s.err.msg, "by window_expired");
    done(&s);

    setup(&s, REFUSE("not_eligible"), ELIG_TRUE, NULL);
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), 0);
    done(&s);

    setup(&s, REFUSE("not_eligible"), ELIG_NIL, NULL);
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), AS_ENOT_ELIGIBLE);
    ck_assert_str_eq(s.err.msg, "by not_eligible");
    done(&s);

    setup(&s, NULL, NULL, NULL);
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), 0);
    done(&s);

    /* a category refusal outside stage 2's list (fresh food's bad_permille: bad_request) */
    setup(&s, ELIG_TRUE, REFUSE("bad_request"), NULL);
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), AS_EBAD_REQUEST);
    done(&s);
}
END_TEST

/* ==========================================================================================
 * Merchant bounds (docs/rulebook.md#merchant-bounds)
 * ======================================================================================== */

/* docs/rulebook.md#merchant-bounds eligibility: "may turn a stage-2 refusal (window_expired, not_eligible,
 * remedy_not_allowed, warranty_expired) into allowed". */
START_TEST(layers_merchant_may_allow_stage2_refusals)
{
    static const char *const codes[] = {REFUSE("window_expired"), REFUSE("not_eligible"),
                                        REFUSE("remedy_not_allowed"),
                                        REFUSE("warranty_expired")};
    for (int i = 0; i < 4; i++) {
        stack s;
        setup(&s, ELIG_TRUE, codes[i], ELIG_TRUE);
        ck_assert_msg(as__layers_eligibility(&s.L, &s.err) == 0, "merchant could not allow %s",
                      codes[i]);
        ck_assert_int_eq(s.L.dropped, 0);
        ck_assert_int_eq(s.L.nnotes, 0);
        done(&s);
    }
}
END_TEST

/* docs/rulebook.md#merchant-bounds eligibility: "may not refuse what earlier layers allowed"; the dropped answer is
 * recorded (docs/design.md#hooks-and-layers). */
START_TEST(layers_merchant_may_not_refuse_what_was_allowed)
{
    static const char *const earlier[][2] = {{ELIG_TRUE, NULL}, {ELIG_TRUE, ELIG_NIL},
                                             {REFUSE("window_expired"), ELIG_TRUE},
                                             {NULL, NULL}};
    for (int i = 0; i < 4; i++) {
        stack s;
        setup(&s, earlier[i][0], earlier[i][1], REFUSE("not_eligible"));
        ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), 0);
        ck_assert_int_eq(s.L.dropped, 1);
        ck_assert_int_eq(s.L.nnotes, 1);
        ck_assert_msg(note_has(&s, "eligibility"), "note: %s", s.L.notes[0].text);
        done(&s);
    }
    /* refusing what was refused already changes nothing: the earlier word stays */
    stack s;
    setup(&s, ELIG_TRUE, REFUSE("window_expired"), REFUSE("not_eligible"));
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), AS_EWINDOW_EXPIRED);
    ck_assert_str_eq(s.err.msg, "by window_expired");
    done(&s);
}
END_TEST

/* docs/rulebook.md#merchant-bounds: "stage 1 of docs/rulebook.md#eligibility is out of its reach" — and so is any refusal that is not stage-2
 * policy (a category's evidence rule, a bad_request). */
START_TEST(layers_merchant_may_not_allow_other_refusals)
{
    static const char *const codes[] = {REFUSE("evidence_required"), REFUSE("bad_request"),
                                        REFUSE("duplicate_case"), REFUSE("amount_exceeds_paid")};
    static const int want[] = {AS_EEVIDENCE_REQUIRED, AS_EBAD_REQUEST, AS_EDUPLICATE_CASE,
                               AS_EAMOUNT_EXCEEDS_PAID};
    for (int i = 0; i < 4; i++) {
        stack s;
        setup(&s, ELIG_TRUE, codes[i], ELIG_TRUE);
        ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), want[i]);
        ck_assert_int_eq(s.L.dropped, 1);
        ck_assert_int_eq(s.L.nnotes, 1);
        done(&s);
    }
}
END_TEST

#define DL(ms) "deadlines = function() return { merchant_response = " ms ", buyer_ship = " ms " } end"

static int64_t deadline(stack *s, as_deadline_kind k, int *given)
{
    int64_t ms = -1;
    ck_assert_int_eq(as__layers_deadline(&s->L, k, &ms, given, &s->err), 0);
    return ms;
}

/* docs/rulebook.md#merchant-bounds deadlines: "may shorten the merchant's own windows (merchant_response, ...)" and
 * never lengthen them. */
START_TEST(layers_merchant_may_shorten_merchant_response_only)
{
    int given;
    stack s;
    setup(&s, DL("48 * as.HOUR"), NULL, DL("24 * as.HOUR"));
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 24 * AS_HOUR);
    ck_assert_int_eq(given, 1);
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);

    setup(&s, DL("48 * as.HOUR"), NULL, DL("72 * as.HOUR"));
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 48 * AS_HOUR);
    ck_assert_int_eq(s.L.dropped, 1);
    ck_assert(note_has(&s, "deadlines"));
    done(&s);

    setup(&s, DL("48 * as.HOUR"), NULL, DL("48 * as.HOUR")); /* the same is no change */
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 48 * AS_HOUR);
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);

    /* the bound is the answer so far: a category's 24h, not the platform's 48h */
    setup(&s, DL("48 * as.HOUR"), DL("24 * as.HOUR"), DL("36 * as.HOUR"));
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 24 * AS_HOUR);
    ck_assert_int_eq(s.L.dropped, 1);
    done(&s);

    /* the category is the platform's own and may lengthen it */
    setup(&s, DL("48 * as.HOUR"), DL("72 * as.HOUR"), NULL);
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 72 * AS_HOUR);
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);
}
END_TEST

/* docs/rulebook.md#merchant-bounds deadlines: "lengthen the buyer's (buyer_ship, ...); never the reverse". */
START_TEST(layers_merchant_may_lengthen_buyer_ship_only)
{
    int given;
    stack s;
    setup(&s, DL("7 * as.DAY"), NULL, DL("10 * as.DAY"));
    s.f.c->v.state = AS_STATE_AWAITING_RETURN; /* the hook reads the current state's kind */
    ck_assert_int_eq(deadline(&s, AS_DL_BUYER_SHIP, &given), 10 * AS_DAY);
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);

    setup(&s, DL("7 * as.DAY"), NULL, DL("3 * as.DAY"));
    s.f.c->v.state = AS_STATE_AWAITING_RETURN;
    ck_assert_int_eq(deadline(&s, AS_DL_BUYER_SHIP, &given), 7 * AS_DAY);
    ck_assert_int_eq(s.L.dropped, 1);
    ck_assert(note_has(&s, "deadlines"));
    done(&s);

    /* no layer sets it: none given */
    setup(&s, NULL, NULL, NULL);
    s.f.c->v.state = AS_STATE_AWAITING_RETURN;
    deadline(&s, AS_DL_BUYER_SHIP, &given);
    ck_assert_int_eq(given, 0);
    done(&s);
}
END_TEST

/* docs/design.md#hooks-and-layers: every number a hook returns is an integer in its documented range (durations
 * 0 .. 365 days, priority 1 .. 100): a merchant's out of range is dropped with a note, a
 * platform's is a rule error; nothing wraps the clock. */
START_TEST(layers_answer_ranges)
{
    int given, prio;
    stack s;
    static const char *const bad_dl[] = {"math.maxinteger", "math.mininteger", "-1",
                                         "365 * as.DAY + 1", "1 << 62"};
    for (size_t i = 0; i < sizeof bad_dl / sizeof bad_dl[0]; i++) {
        char m[160];
        snprintf(m, sizeof m, "deadlines = function() return { buyer_ship = %s } end", bad_dl[i]);
        setup(&s, DL("7 * as.DAY"), NULL, m);
        s.f.c->v.state = AS_STATE_AWAITING_RETURN;
        ck_assert_int_eq(deadline(&s, AS_DL_BUYER_SHIP, &given), 7 * AS_DAY);
        ck_assert_int_eq(s.L.dropped, 1);
        ck_assert(note_has(&s, "outside 0 .. 365 days"));
        done(&s);
    }
    setup(&s, DL("7 * as.DAY"), NULL, "deadlines = function() return { buyer_ship = 365 * as.DAY } end");
    s.f.c->v.state = AS_STATE_AWAITING_RETURN;
    ck_assert_int_eq(deadline(&s, AS_DL_BUYER_SHIP, &given), 365 * AS_DAY); /* the bound itself */
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);

    setup(&s, DL("math.maxinteger"), NULL, NULL);
    s.f.c->v.state = AS_STATE_AWAITING_RETURN;
    int64_t ms = -1;
    ck_assert_int_eq(as__layers_deadline(&s.L, AS_DL_BUYER_SHIP, &ms, &given, &s.err), AS_ERULE_ERROR);
    done(&s);

    static const char *const bad_prio[] = {"0", "101", "-1", "math.maxinteger", "1.5", "0/0"};
    for (size_t i = 0; i < sizeof bad_prio / sizeof bad_prio[0]; i++) {
        char m[96];
        snprintf(m, sizeof m, "priority = function() return %s end", bad_prio[i]);
        setup(&s, PRIO(50), NULL, m);
        prio = -1;
        ck_assert_int_eq(as__layers_priority(&s.L, &prio, &s.err), 0);
        ck_assert_int_eq(prio, 50);
        ck_assert_int_eq(s.L.dropped, 1);
        done(&s);
    }
    setup(&s, PRIO(50), NULL, PRIO(100));
    ck_assert_int_eq(as__layers_priority(&s.L, &prio, &s.err), 0);
    ck_assert_int_eq(prio, 100);
    done(&s);
}
END_TEST

#define AMOUNT(x) "refund_amount = function(case) return " x " end"

static int64_t amount(stack *s, int64_t cap, int64_t start, int want_rc)
{
    int64_t a = start;
    ck_assert_int_eq(as__layers_refund_amount(&s->L, cap, &a, &s->err), want_rc);
    return a;
}

/* docs/rulebook.md#merchant-bounds refund_amount: "may raise the amount up to the cap of docs/rulebook.md#amounts; may not lower it". */
START_TEST(layers_merchant_refund_amount_bounds)
{
    stack s;
    setup(&s, NULL, NULL, AMOUNT("20000"));
    ck_assert_int_eq(amount(&s, 20000, 19900, 0), 20000); /* up to the cap */
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);

    setup(&s, NULL, NULL, AMOUNT("20001"));
    ck_assert_int_eq(amount(&s, 20000, 19900, 0), 19900); /* above the cap: dropped */
    ck_assert_int_eq(s.L.dropped, 1);
    ck_assert(note_has(&s, "refund_amount"));
    done(&s);

    setup(&s, NULL, NULL, AMOUNT("case.paid - 1"));
    ck_assert_int_eq(amount(&s, 20000, 19900, 0), 19900); /* lower: dropped */
    ck_assert_int_eq(s.L.dropped, 1);
    done(&s);

    /* the floor is the answer so far: a category may lower it, the merchant then raise it */
    setup(&s, NULL, AMOUNT("15000"), AMOUNT("16000"));
    ck_assert_int_eq(amount(&s, 20000, 19900, 0), 16000);
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);
    setup(&s, NULL, AMOUNT("15000"), AMOUNT("14999"));
    ck_assert_int_eq(amount(&s, 20000, 19900, 0), 15000);
    ck_assert_int_eq(s.L.dropped, 1);
    done(&s);
}
END_TEST

/* docs/rulebook.md#amounts "never above the cap": a platform or category answer above it is a rule
 * error (docs/design.md#hooks-and-layers: refund_amount → fen; never above the cap). */
START_TEST(layers_platform_amount_above_cap_is_rule_error)
{
    stack s;
    setup(&s, AMOUNT("25000"), NULL, NULL);
    amount(&s, 20000, 19900, AS_ERULE_ERROR);
    ck_assert_int_eq(s.err.code, AS_ERULE_ERROR);
    done(&s);
    setup(&s, NULL, AMOUNT("20001"), NULL);
    amount(&s, 20000, 19900, AS_ERULE_ERROR);
    done(&s);
    /* while a deadline fires (lenient), it is dropped instead */
    setup(&s, AMOUNT("25000"), NULL, NULL);
    s.L.lenient = 1;
    ck_assert_int_eq(amount(&s, 20000, 19900, 0), 19900);
    ck_assert_int_eq(s.L.nnotes, 1);
    done(&s);
}
END_TEST

#define AGREE "auto_decide = function() return { action = 'agree' } end"
#define REJECT "auto_decide = function() return { action = 'reject', reason = 'too_late' } end"

static int decide(stack *s, char *reason)
{
    int d = -1;
    ck_assert_int_eq(as__layers_decide(&s->L, &d, reason, 64, &s->err), 0);
    return d;
}

/* docs/rulebook.md#merchant-bounds auto_decide: "may agree or reject at once ..., but may not reject what an earlier layer
 * agreed". */
START_TEST(layers_merchant_may_not_reject_what_was_agreed)
{
    char reason[64] = "";
    stack s;
    setup(&s, AGREE, NULL, REJECT);
    ck_assert_int_eq(decide(&s, reason), 1);
    ck_assert_int_eq(s.L.dropped, 1);
    ck_assert(note_has(&s, "auto_decide"));
    done(&s);

    setup(&s, NULL, AGREE, REJECT);
    ck_assert_int_eq(decide(&s, reason), 1);
    ck_assert_int_eq(s.L.dropped, 1);
    done(&s);

    setup(&s, NULL, NULL, REJECT); /* nothing agreed: the merchant may reject */
    ck_assert_int_eq(decide(&s, reason), 2);
    ck_assert_str_eq(reason, "too_late");
    ck_assert_int_eq(s.L.dropped, 0);
    done(&s);

    setup(&s, NULL, REJECT, AGREE); /* and may agree where a category rejected */
    ck_assert_int_eq(decide(&s, reason), 1);
    done(&s);

    setup(&s, AGREE, REJECT, NULL); /* the category is not bounded */
    ck_assert_int_eq(decide(&s, reason), 2);
    done(&s);

    setup(&s, NULL, NULL, NULL);
    ck_assert_int_eq(decide(&s, reason), 0);
    done(&s);
}
END_TEST

/* ==========================================================================================
 * Failing hooks (docs/design.md#hooks-and-layers)
 * ======================================================================================== */

/* "A failing merchant hook never blocks a buyer: its answer is dropped, the failure is
 * recorded in the case history and the metrics, and the command goes on with the platform
 * and category answers." */
START_TEST(layers_throwing_merchant_hook_is_dropped_with_note)
{
    stack s;
    setup(&s, PRIO(3), PRIO(2), THROWS("priority"));
    int prio = 0;
    ck_assert_int_eq(as__layers_priority(&s.L, &prio, &s.err), 0);
    ck_assert_int_eq(prio, 2);
    ck_assert_int_eq(s.L.nnotes, 1);
    ck_assert_msg(note_has(&s, "merchant") && note_has(&s, "priority exploded"), "note: %s",
                  s.L.notes[0].text);
    ck_assert_uint_eq(s.L.failures[AS_LAYER_MERCHANT], 1);
    ck_assert_uint_eq(s.L.failures[AS_LAYER_PLATFORM], 0);
    ck_assert_uint_eq(s.L.dropped, 1);
    done(&s);

    /* the same for every hook the engine asks on open */
    setup(&s, ELIG_TRUE, NULL, THROWS("eligibility"));
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), 0);
    ck_assert_int_eq(s.L.nnotes, 1);
    done(&s);

    setup(&s, REFUSE("window_expired"), NULL, THROWS("eligibility"));
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), AS_EWINDOW_EXPIRED);
    ck_assert_int_eq(s.L.nnotes, 1);
    done(&s);

    setup(&s, AMOUNT("19000"), NULL, THROWS("refund_amount"));
    ck_assert_int_eq(amount(&s, 20000, 19900, 0), 19000);
    ck_assert_int_eq(s.L.nnotes, 1);
    done(&s);
}
END_TEST

START_TEST(layers_looping_merchant_hook_is_dropped_with_note)
{
    stack s;
    setup(&s, DL("48 * as.HOUR"), NULL, LOOPS("deadlines"));
    int given;
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 48 * AS_HOUR);
    ck_assert_int_eq(s.L.nnotes, 1);
    ck_assert_msg(note_has(&s, "instruction budget"), "note: %s", s.L.notes[0].text);
    done(&s);
}
END_TEST

/* "When a platform or category hook throws or exceeds a budget, the command is refused with
 * rule_error". */
START_TEST(layers_throwing_platform_hook_is_rule_error)
{
    stack s;
    setup(&s, THROWS("priority"), PRIO(2), PRIO(1));
    int prio = 7;
    ck_assert_int_eq(as__layers_priority(&s.L, &prio, &s.err), AS_ERULE_ERROR);
    ck_assert_int_eq(s.err.code, AS_ERULE_ERROR);
    ck_assert_msg(strstr(s.err.msg, "priority exploded"), "%s", s.err.msg);
    ck_assert_uint_eq(s.L.failures[AS_LAYER_PLATFORM], 1);
    done(&s);

    setup(&s, ELIG_TRUE, THROWS("eligibility"), ELIG_TRUE);
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), AS_ERULE_ERROR);
    ck_assert_uint_eq(s.L.failures[AS_LAYER_CATEGORY], 1);
    done(&s);

    setup(&s, LOOPS("auto_decide"), NULL, NULL);
    char reason[64];
    int d = -1;
    ck_assert_int_eq(as__layers_decide(&s.L, &d, reason, sizeof reason, &s.err), AS_ERULE_ERROR);
    ck_assert_msg(strstr(s.err.msg, "instruction budget"), "%s", s.err.msg);
    done(&s);

    setup(&s, NULL, "eligibility = function() return 42 end", NULL); /* a wrong type */
    ck_assert_int_eq(as__layers_eligibility(&s.L, &s.err), AS_ERULE_ERROR);
    done(&s);
}
END_TEST

/* layers.h: "A failing platform or category hook fails the command with rule_error, except
 * while a deadline fires (lenient): then ... it is dropped and written down as a note"
 * (docs/design.md#check-order: "A deadline is never refused"). */
START_TEST(layers_lenient_mode_drops_platform_failures)
{
    stack s;
    setup(&s, THROWS("deadlines"), DL("24 * as.HOUR"), NULL);
    s.L.lenient = 1;
    int given;
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 24 * AS_HOUR);
    ck_assert_int_eq(s.L.nnotes, 1);
    ck_assert(note_has(&s, "platform"));
    ck_assert_uint_eq(s.L.failures[AS_LAYER_PLATFORM], 1);
    done(&s);

    setup(&s, DL("48 * as.HOUR"), THROWS("deadlines"), NULL);
    s.L.lenient = 1;
    ck_assert_int_eq(deadline(&s, AS_DL_MERCHANT_RESPONSE, &given), 48 * AS_HOUR);
    ck_assert_int_eq(s.L.nnotes, 1);
    ck_assert(note_has(&s, "category"));
    done(&s);

    setup(&s, LOOPS("on_inspection"), NULL, NULL);
    s.L.lenient = 1;
    int remedy = AS_REMEDY_REFUND;
    ck_assert_int_eq(as__layers_remedy(&s.L, 1, &remedy, &s.err), 0);
    ck_assert_int_eq(remedy, AS_REMEDY_REFUND); /* the default stands */
    ck_assert_int_eq(s.L.nnotes, 1);
    done(&s);
}
END_TEST

/* The notes are bounded: a storm of failures cannot grow them without end. */
START_TEST(layers_notes_are_bounded)
{
    stack s;
    setup(&s, NULL, NULL, THROWS("priority"));
    for (int i = 0; i < 3 * AS_MAX_NOTES; i++) {
        int prio = 0;
        ck_assert_int_eq(as__layers_priority(&s.L, &prio, &s.err), 0);
    }
    ck_assert_int_eq(s.L.nnotes, AS_MAX_NOTES);
    ck_assert_uint_eq(s.L.failures[AS_LAYER_MERCHANT], 3 * AS_MAX_NOTES);
    done(&s);
}
END_TEST

/* ==========================================================================================
 * The other hooks
 * ======================================================================================== */

START_TEST(layers_inspection_and_instant_refund_flags)
{
    int yes = -1;
    stack s;
    setup(&s, NULL, "inspection = function() return true end", NULL);
    ck_assert_int_eq(as__layers_flag(&s.L, AS_HOOK_INSPECTION, &yes, &s.err), 0);
    ck_assert_int_eq(yes, 1);
    done(&s);

    /* a merchant may not add an inspection: it would slow the buyer's refund */
    setup(&s, NULL, NULL, "inspection = function() return true end");
    ck_assert_int_eq(as__layers_flag(&s.L, AS_HOOK_INSPECTION, &yes, &s.err), 0);
    ck_assert_int_eq(yes, 0);
    ck_assert_int_eq(s.L.dropped, 1);
    done(&s);

    /* a merchant may grant an instant refund (more generous, docs/rulebook.md#merchant-bounds) */
    setup(&s, "instant_refund = function() return nil end", NULL,
          "instant_refund = function() return true end");
    ck_assert_int_eq(as__layers_flag(&s.L, AS_HOOK_INSTANT_REFUND, &yes, &s.err), 0);
    ck_assert_int_eq(yes, 1);
    done(&s);
}
END_TEST

START_TEST(layers_remedy_after_inspection)
{
    int remedy;
    stack s;
    setup(&s, "on_inspection = function(c, o, r) return 'refund' end",
          "on_inspection = function(c, o, r) if r == 'fault' then return 'exchange' end return 'reject' end",
          NULL);
    remedy = AS_REMEDY_REFUND;
    ck_assert_int_eq(as__layers_remedy(&s.L, 1, &remedy, &s.err), 0);
    ck_assert_int_eq(remedy, AS_REMEDY_EXCHANGE);
    remedy = AS_REMEDY_REFUND;
    ck_assert_int_eq(as__layers_remedy(&s.L, 0, &remedy, &s.err), 0);
    ck_assert_int_eq(remedy, AS_REMEDY_REJECT);
    done(&s);

    /* a merchant may not reject what earlier layers accepted */
    setup(&s, "on_inspection = function() return 'repair' end", NULL,
          "on_inspection = function() return 'reject' end");
    remedy = AS_REMEDY_REFUND;
    ck_assert_int_eq(as__layers_remedy(&s.L, 1, &remedy, &s.err), 0);
    ck_assert_int_eq(remedy, AS_REMEDY_REPAIR);
    ck_assert_int_eq(s.L.dropped, 1);
    done(&s);
}
END_TEST

/* order_check of one pack: nothing, a refusal, or rule_error. */
START_TEST(layers_order_check)
{
    fx f = fx_new();
    as_error err;
    as_pack *ok = mk("p", "order_check = function() return nil end");
    as_pack *no = mk("p", "order_check = function(o) return { error = 'bad_request', message = o.id } end");
    as_pack *bad = mk("p", THROWS("order_check"));
    as_pack *none = mk("p", "");
    ck_assert_int_eq(as__layers_order_check(ok, &f.a, &err), 0);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(as__layers_order_check(no, &f.a, &err), AS_EBAD_REQUEST);
    ck_assert_str_eq(err.msg, "O1");
    ck_assert_int_eq(as__layers_order_check(bad, &f.a, &err), AS_ERULE_ERROR);
    ck_assert_int_eq(as__layers_order_check(none, &f.a, &err), 0);
    ck_assert_int_eq(as__layers_order_check(NULL, &f.a, &err), 0);
    as__pack_unref(ok);
    as__pack_unref(no);
    as__pack_unref(bad);
    as__pack_unref(none);
    fx_free(&f);
}
END_TEST

static Suite *layers_suite(void)
{
    Suite *s = suite_create("layers");
    TCase *combine = tcase_create("combine");
    tcase_set_timeout(combine, 20);
    tcase_add_test(combine, layers_last_non_nil_answer_wins);
    tcase_add_test(combine, layers_eligibility_last_answer_stands);
    tcase_add_test(combine, layers_inspection_and_instant_refund_flags);
    tcase_add_test(combine, layers_remedy_after_inspection);
    tcase_add_test(combine, layers_order_check);
    suite_add_tcase(s, combine);

    TCase *bounds = tcase_create("merchant_bounds");
    tcase_set_timeout(bounds, 20);
    tcase_add_test(bounds, layers_merchant_may_allow_stage2_refusals);
    tcase_add_test(bounds, layers_merchant_may_not_refuse_what_was_allowed);
    tcase_add_test(bounds, layers_merchant_may_not_allow_other_refusals);
    tcase_add_test(bounds, layers_merchant_may_shorten_merchant_response_only);
    tcase_add_test(bounds, layers_merchant_may_lengthen_buyer_ship_only);
    tcase_add_test(bounds, layers_merchant_refund_amount_bounds);
    tcase_add_test(bounds, layers_answer_ranges);
    tcase_add_test(bounds, layers_platform_amount_above_cap_is_rule_error);
    tcase_add_test(bounds, layers_merchant_may_not_reject_what_was_agreed);
    suite_add_tcase(s, bounds);

    TCase *fail = tcase_create("failures");
    tcase_set_timeout(fail, 20);
    tcase_add_test(fail, layers_throwing_merchant_hook_is_dropped_with_note);
    tcase_add_test(fail, layers_looping_merchant_hook_is_dropped_with_note);
    tcase_add_test(fail, layers_throwing_platform_hook_is_rule_error);
    tcase_add_test(fail, layers_lenient_mode_drops_platform_failures);
    tcase_add_test(fail, layers_notes_are_bounded);
    suite_add_tcase(s, fail);
    return s;
}

int main(void)
{
    return unit_run(layers_suite(), 1);
}
