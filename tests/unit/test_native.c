/* test_native.c -- native rule plugins: the loader's refusals, a minimal good plugin, and the
 * electronics twin answering exactly as electronics.lua (docs/design.md#plugin-abi "Native plugins",
 * docs/design.md#plugin-abi, docs/design.md#hooks-and-layers, docs/rulebook.md#electronics, native/native_engine.h).
 *
 * The hostile plugins are built by tests/plugins/meson.build into AS_TEST_PLUGIN_DIR;
 * electronics.so by plugins/electronics/meson.build into AS_ELECTRONICS_PLUGIN_DIR. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/error.h"
#include "core/domain.h"
#include "core/pack.h"
#include "core/timefmt.h"
#include "lua/lua_engine.h"
#include "native/native_engine.h"
#include "unit_common.h"

#define H(x) (1u << AS_HOOK_##x)

static int has(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

/* ==========================================================================================
 * Loading: hostile fixtures are refused with bad_request and a sentence naming the problem
 * ======================================================================================== */

static as_pack *load_ok(const char *dir, const char *file)
{
    as_pack *p = (as_pack *)0x1;
    as_error err = {0};
    int rc = as__native_pack_load(dir, file, &p, &err);
    ck_assert_msg(rc == 0, "%s/%s: %d %s", dir, file, rc, err.msg);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(p->refs, 1);
    ck_assert_str_eq(p->engine->kind, "native");
    return p;
}

/* Asserts that loading `file` from `dir` is refused with bad_request, leaves *out NULL, and
 * says `word` (and `word2` when given) in its message. */
static void refused(const char *dir, const char *file, const char *word, const char *word2)
{
    as_pack *p = (as_pack *)0x1;
    as_error err = {0};
    int rc = as__native_pack_load(dir, file, &p, &err);
    ck_assert_msg(rc == AS_EBAD_REQUEST, "%s: rc %d (%s), want bad_request", file, rc, err.msg);
    ck_assert_int_eq(err.code, AS_EBAD_REQUEST);
    ck_assert_ptr_null(p);
    ck_assert_msg(has(err.msg, word), "%s: message \"%s\" does not say \"%s\"", file, err.msg,
                  word);
    if (word2)
        ck_assert_msg(has(err.msg, word2), "%s: message \"%s\" does not say \"%s\"", file, err.msg,
                      word2);
}

/* docs/design.md#plugin-abi: "a mismatch is refused with a clear message"; the message names both ABIs. */
START_TEST(native_refuses_wrong_abi)
{
    refused(AS_TEST_PLUGIN_DIR, "wrong_abi.so", "ABI", "999");
}
END_TEST

/* docs/design.md#plugin-abi: the loader refuses a struct too short for ABI 1 and reads nothing past
 * struct_size (the fixture's struct ends after `version`: ASan flags any read past it). */
START_TEST(native_refuses_short_struct)
{
    refused(AS_TEST_PLUGIN_DIR, "short_struct.so", "short", "bytes");
}
END_TEST

/* A shared object without an exported aftersale_plugin (a near-miss name and a hidden one). */
START_TEST(native_refuses_missing_symbol)
{
    refused(AS_TEST_PLUGIN_DIR, "missing_symbol.so", "aftersale_plugin", "symbol");
}
END_TEST

START_TEST(native_refuses_null_name)
{
    refused(AS_TEST_PLUGIN_DIR, "null_name.so", "name", NULL);
}
END_TEST

START_TEST(native_refuses_no_hooks)
{
    refused(AS_TEST_PLUGIN_DIR, "no_hooks.so", "hooks", NULL);
}
END_TEST

/* init returning non-zero refuses the load; its fini (which aborts) must not run. */
START_TEST(native_refuses_failed_init)
{
    refused(AS_TEST_PLUGIN_DIR, "init_fails.so", "init", NULL);
}
END_TEST

/* A file that is not there, or not a shared object at all, is refused, not a crash. */
START_TEST(native_refuses_unloadable_file)
{
    refused(AS_TEST_PLUGIN_DIR, "no_such_plugin.so", "no_such_plugin.so", NULL);
    refused(AS_SOURCE_ROOT "/plugins/electronics", "electronics.lua", "electronics.lua", NULL);
}
END_TEST

/* docs/design.md#plugin-abi: plugins load "from a configured directory only": a name with '/' or ".." is
 * refused before anything is opened, even when it would reach a valid plugin. */
START_TEST(native_refuses_paths_outside_the_directory)
{
    static const char *const names[] = {
        "../plugins/good.so", /* reaches the real good.so */
        "../../plugins/electronics/electronics.so",
        "sub/good.so",
        "/good.so",
        AS_TEST_PLUGIN_DIR "/good.so", /* an absolute path to a valid plugin */
        "..",
        "..good.so",
        "good.so/..",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        as_pack *p = (as_pack *)0x1;
        as_error err = {0};
        int rc = as__native_pack_load(AS_TEST_PLUGIN_DIR, names[i], &p, &err);
        ck_assert_msg(rc == AS_EBAD_REQUEST, "'%s' gave %d (%s)", names[i], rc, err.msg);
        ck_assert_int_eq(err.code, AS_EBAD_REQUEST);
        ck_assert_ptr_null(p);
        ck_assert_msg(has(err.msg, "directory"), "'%s': \"%s\" does not name the directory",
                      names[i], err.msg);
    }
}
END_TEST

/* ==========================================================================================
 * Hand-built orders and cases
 * ======================================================================================== */

/* 2026-03-01 local (UTC+8) is local day LD0; the unit was delivered at 23:30 local that day,
 * so one hour later is already day 1 (docs/rulebook.md#conventions: days are UTC+8 calendar days). */
#define T0 1772323200000ll /* 2026-03-01T00:00:00Z */
#define LD0 ((T0 + AS_TZ_OFFSET) / AS_DAY)
#define LOCAL(day, ms) ((LD0 + (day)) * AS_DAY - AS_TZ_OFFSET + (ms))
#define DELIVERED LOCAL(0, 23 * AS_HOUR + 30 * AS_MINUTE)

enum { PHONE, CHARGER, TABLET, NLINES };

static as_order *mk_order(void)
{
    as_order *o = calloc(1, sizeof *o + NLINES * sizeof(as_item));
    ck_assert_ptr_nonnull(o);
    o->id = "O1";
    o->shop = "S1";
    o->buyer = "B1";
    o->shipping_fee = 0;
    o->paid_at = T0 - 3 * AS_DAY;
    o->shipped_at = T0 - 2 * AS_DAY;
    o->delivered_at = DELIVERED;
    o->confirmed_at = AS_UNSET;
    o->buyer_credit = -1;
    o->nitems = NLINES;
    o->items[PHONE] = (as_item){.sku = "PHONE",
                                .category = "electronics",
                                .serial = "490154203237518",
                                .price = 399900,
                                .qty = 1};
    o->items[CHARGER] = (as_item){.sku = "CHARGER",
                                  .category = "electronics",
                                  .price = 9900,
                                  .qty = 2,
                                  .no_reason_excluded = true};
    o->items[TABLET] = (as_item){.sku = "TABLET",
                                 .category = "electronics",
                                 .serial = "SN-TAB-1",
                                 .price = 259900,
                                 .qty = 1};
    return o;
}

/* A case on `o` over the given lines (qty 1 each). */
static as_case *mk_case(as_order *o, const char *id, as_type type, as_reason reason, as_state state,
                        const int *lines, int nlines)
{
    as_case *c = calloc(1, sizeof *c + (size_t)nlines * sizeof(as_case_item));
    ck_assert_ptr_nonnull(c);
    as__sched_node_init(&c->deadline);
    c->order = o;
    c->id = id;
    c->category = "electronics";
    c->type = (uint8_t)type;
    c->nitems = (uint8_t)nlines;
    for (int i = 0; i < nlines; i++)
        c->items[i] = (as_case_item){(uint16_t)lines[i], 1};
    c->opened_at = T0;
    c->ended_at = AS_UNSET;
    c->repair_since = AS_UNSET;
    c->v.state = (uint8_t)state;
    c->v.reason = (uint8_t)reason;
    c->v.remedy = AS_REMEDY_NONE;
    c->v.requested_amount = AS_UNSET;
    c->v.bad_permille = -1;
    c->v.version = 1;
    return c;
}

/* A completed (or not) earlier case with repair_days, appended to the order's cases. */
static as_case *add_earlier(as_order *o, const char *id, as_type type,
                            as_state state, int32_t repair_days, const int *lines, int nlines)
{
    as_case *c = mk_case(o, id, type, AS_REASON_QUALITY, state, lines, nlines);
    c->repair_days = repair_days;
    if (as__state_terminal(state)) c->ended_at = T0 + 30 * AS_DAY;
    as__order_add_case(o, c);
    return c;
}

static void free_cases(as_order *o)
{
    for (as_case *c = o->cases, *next; c; c = next) {
        next = c->next_in_order;
        free(c);
    }
    o->cases = o->last_case = NULL;
    o->ncases = 0;
}

/* ==========================================================================================
 * The two electronics packs, called through the same engine vtable
 * ======================================================================================== */

typedef struct twins {
    as_pack *lua, *native;
} twins;

static twins load_twins(void)
{
    twins t = {NULL, NULL};
    as_error err = {0};
    int rc = as__lua_pack_load_file(AS_SOURCE_ROOT "/plugins/electronics/electronics.lua", NULL,
                                    &t.lua, &err);
    ck_assert_msg(rc == 0, "electronics.lua: %d %s", rc, err.msg);
    t.native = load_ok(AS_ELECTRONICS_PLUGIN_DIR, "electronics.so");
    return t;
}

static void free_twins(twins *t)
{
    as__pack_unref(t->lua);
    as__pack_unref(t->native);
}

static const char *kind_name(as_answer_kind k)
{
    static const char *const names[] = {"nil",       "true",  "int",    "refusal",
                                        "deadlines", "agree", "reject", "remedy"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* Calls hook `h` of both packs on `a`; asserts that both succeed with the same answer (kind,
 * code, message, value) and returns the native one. */
static as_answer both(const twins *t, as_hook h, const as_hook_args *a, const char *label)
{
    as_answer al, an;
    as_error el, en;
    memset(&al, 0, sizeof al);
    memset(&an, 0, sizeof an);
    memset(&el, 0, sizeof el);
    memset(&en, 0, sizeof en);
    int rl = t->lua->engine->call(t->lua, h, a, &al, &el);
    int rn = t->native->engine->call(t->native, h, a, &an, &en);
    ck_assert_msg(rl == 0, "%s: lua %s failed: %s", label, as__hook_name(h), el.msg);
    ck_assert_msg(rn == 0, "%s: native %s failed: %s", label, as__hook_name(h), en.msg);
    ck_assert_msg(al.kind == an.kind, "%s: %s answers lua %s, native %s", label, as__hook_name(h),
                  kind_name(al.kind), kind_name(an.kind));
    if (al.kind == AS_ANS_REFUSAL) {
        ck_assert_msg(al.code == an.code, "%s: lua %s, native %s", label, as_err_name(al.code),
                      as_err_name(an.code));
        ck_assert_msg(strcmp(al.msg, an.msg) == 0, "%s: lua \"%s\", native \"%s\"", label, al.msg,
                      an.msg);
    }
    if (al.kind == AS_ANS_REMEDY || al.kind == AS_ANS_INT)
        ck_assert_msg(al.i == an.i, "%s: lua %lld, native %lld", label, (long long)al.i,
                      (long long)an.i);
    return an;
}

/* The answer an eligibility is expected to give: 0 true, -1 nil, else a refusal code. */
#define OK 0
#define NIL -1

static void expect(const as_answer *ans, int want, const char *label)
{
    if (want == OK)
        ck_assert_msg(ans->kind == AS_ANS_TRUE, "%s: %s, want true", label, kind_name(ans->kind));
    else if (want == NIL)
        ck_assert_msg(ans->kind == AS_ANS_NIL, "%s: %s (%s), want nil", label, kind_name(ans->kind),
                      ans->msg);
    else
        ck_assert_msg(ans->kind == AS_ANS_REFUSAL && ans->code == want, "%s: %s %s, want %s", label,
                      kind_name(ans->kind), as_err_name(ans->code), as_err_name(want));
}

/* Asks both packs whether a request of `type`/`reason` on `lines`, opened on local day `day`
 * at `ms` past local midnight, is eligible; asserts they agree and give `want`. */
static void elig(const twins *t, as_order *o, as_type type, as_reason reason, const int *lines,
                 int nlines, int64_t day, int64_t ms, int want)
{
    as_case *req = mk_case(o, "REQ", type, reason, AS_STATE_REQUESTED, lines, nlines);
    as_hook_args a = {.order = o, .c = req, .v = &req->v, .now_ms = LOCAL(day, ms)};
    char label[160];
    snprintf(label, sizeof label, "%s/%s on day %lld +%lldms (%u earlier cases)",
             as__reason_name(reason), as__type_name(type), (long long)day, (long long)ms,
             o->ncases);
    as_answer ans = both(t, AS_HOOK_ELIGIBILITY, &a, label);
    expect(&ans, want, label);
    free(req);
}

static const int phone[] = {PHONE};

/* ==========================================================================================
 * good.so and throws.so
 * ======================================================================================== */

/* Calls hook h of p on a fresh return_refund case C1 of the phone order in `state`, for
 * `reason`, with an answer buffer filled with junk first (nothing of a last answer may show
 * through); returns the call's code. */
static int call_on_case(as_pack *p, as_hook h, as_reason reason, as_state state, as_answer *ans)
{
    as_order *o = mk_order();
    as_case *c = mk_case(o, "C1", AS_TYPE_RETURN_REFUND, reason, state, phone, 1);
    as_hook_args a = {.order = o, .c = c, .v = &c->v, .now_ms = T0};
    as_error err = {0};
    memset(ans, 'x', sizeof *ans);
    int rc = p->engine->call(p, h, &a, ans, &err);
    free(c);
    free(o);
    return rc;
}

/* docs/design.md#hooks-and-layers: a native plugin exposes the same pack as a Lua one: name, version, categories,
 * the hooks it defines; its answers come through the same engine vtable. */
START_TEST(native_loads_good_plugin)
{
    as_pack *p = load_ok(AS_TEST_PLUGIN_DIR, "good.so");
    ck_assert_str_eq(p->name, "good");
    ck_assert_str_eq(p->version, "1.2");
    ck_assert_ptr_nonnull(p->categories);
    ck_assert_str_eq(p->categories[0], "gadgets");
    ck_assert_ptr_null(p->categories[1]);
    ck_assert(as__pack_serves(p, "gadgets"));
    ck_assert(!as__pack_serves(p, "electronics"));
    ck_assert_uint_eq(p->hooks, H(DEADLINES));

    as_answer ans;
    /* good.so's deadlines fails unless it gets the state its init made */
    ck_assert_int_eq(call_on_case(p, AS_HOOK_DEADLINES, AS_REASON_QUALITY, AS_STATE_REQUESTED, &ans), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_DEADLINES);
    ck_assert_uint_eq(ans.dl_set, 1u << AS_DL_MERCHANT_RESPONSE);
    ck_assert_int_eq(ans.dl[AS_DL_MERCHANT_RESPONSE], 5 * AS_HOUR);

    /* Asked in a state without a deadline, the answer names none. */
    ck_assert_int_eq(
        call_on_case(p, AS_HOOK_DEADLINES, AS_REASON_QUALITY, AS_STATE_PLATFORM_REVIEW, &ans), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_DEADLINES);
    ck_assert_uint_eq(ans.dl_set, 0);
    ck_assert_uint_eq(p->failures, 0);
    as__pack_unref(p); /* runs fini, which aborts on a lost state */
}
END_TEST

/* docs/design.md#provenance: a native auto_decide's reason is an agree's why, as a Lua hook's
 * `why`; a reject keeps it as the reason and gives no why. */
START_TEST(native_agree_reason_is_its_why)
{
    as_pack *p = load_ok(AS_TEST_PLUGIN_DIR, "decides.so");
    ck_assert_uint_eq(p->hooks, H(AUTO_DECIDE));
    as_answer ans;
    ck_assert_int_eq(call_on_case(p, AS_HOOK_AUTO_DECIDE, AS_REASON_QUALITY, AS_STATE_REQUESTED, &ans), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_AGREE);
    ck_assert_str_eq(ans.why, "a quality claim: the merchant agrees to all of them");
    ck_assert_int_eq(
        call_on_case(p, AS_HOOK_AUTO_DECIDE, AS_REASON_NO_REASON, AS_STATE_REQUESTED, &ans), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REJECT);
    ck_assert_str_eq(ans.msg, "as_described");
    ck_assert_str_eq(ans.why, "");
    as__pack_unref(p);
}
END_TEST

/* Two versions of one object may be loaded side by side (a case pins the one it opened
 * under); dropping one leaves the other working. */
START_TEST(native_loads_twice_and_unloads_independently)
{
    as_pack *a = load_ok(AS_TEST_PLUGIN_DIR, "good.so");
    as_pack *b = load_ok(AS_TEST_PLUGIN_DIR, "good.so");
    ck_assert_ptr_ne(a, b);
    as__pack_unref(a);

    as_order *o = mk_order();
    as_case *c =
        mk_case(o, "C1", AS_TYPE_EXCHANGE, AS_REASON_QUALITY, AS_STATE_REQUESTED, phone, 1);
    as_hook_args args = {.order = o, .c = c, .v = &c->v, .now_ms = T0};
    as_answer ans;
    as_error err = {0};
    memset(&ans, 0, sizeof ans);
    ck_assert_int_eq(b->engine->call(b, AS_HOOK_DEADLINES, &args, &ans, &err), 0);
    ck_assert_int_eq(ans.dl[AS_DL_MERCHANT_RESPONSE], 5 * AS_HOUR);
    free(c);
    free(o);
    as__pack_unref(b);
}
END_TEST

/* plugin.h: AS_PLUGIN_FAIL "which the host treats like a Lua hook that threw": the call fails
 * with rule_error and counts a failure; the pack's other hooks keep answering. */
START_TEST(native_hook_failure_is_rule_error)
{
    as_pack *p = load_ok(AS_TEST_PLUGIN_DIR, "throws.so");
    ck_assert_str_eq(p->name, "throws");
    ck_assert_ptr_null(p->categories[0]); /* a platform-style plugin */
    ck_assert_uint_eq(p->hooks, H(ELIGIBILITY) | H(DEADLINES));

    as_order *o = mk_order();
    as_case *c =
        mk_case(o, "C1", AS_TYPE_RETURN_REFUND, AS_REASON_NO_REASON, AS_STATE_REQUESTED, phone, 1);
    as_hook_args a = {.order = o, .c = c, .v = &c->v, .now_ms = T0};
    as_answer ans;
    as_error err = {0};
    memset(&ans, 0, sizeof ans);
    ck_assert_int_eq(p->engine->call(p, AS_HOOK_ELIGIBILITY, &a, &ans, &err), AS_ERULE_ERROR);
    ck_assert_int_eq(err.code, AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "throws") && has(err.msg, "eligibility"), "message: %s", err.msg);
    ck_assert_uint_eq(p->failures, 1);

    memset(&ans, 0, sizeof ans);
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(p->engine->call(p, AS_HOOK_DEADLINES, &a, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_DEADLINES);
    ck_assert_uint_eq(ans.dl_set, 1u << AS_DL_MERCHANT_RESPONSE);
    ck_assert_int_eq(ans.dl[AS_DL_MERCHANT_RESPONSE], AS_HOUR);
    ck_assert_uint_eq(p->failures, 1);
    free(c);
    free(o);
    as__pack_unref(p);
}
END_TEST

/* ==========================================================================================
 * electronics.so against electronics.lua (docs/rulebook.md#electronics)
 * ======================================================================================== */

START_TEST(native_electronics_matches_lua_pack_shape)
{
    twins t = load_twins();
    ck_assert_str_eq(t.native->name, t.lua->name);
    ck_assert_str_eq(t.native->name, "electronics");
    ck_assert_str_eq(t.native->version, t.lua->version);
    ck_assert_str_eq(t.native->version, "2");
    ck_assert_str_eq(t.native->categories[0], "electronics");
    ck_assert_ptr_null(t.native->categories[1]);
    ck_assert_uint_eq(t.native->hooks, t.lua->hooks);
    ck_assert_uint_eq(t.native->hooks,
                      H(ORDER_CHECK) | H(ELIGIBILITY) | H(INSPECTION) | H(ON_INSPECTION));
    free_twins(&t);
}
END_TEST

/* docs/rulebook.md#electronics: "an IMEI (15 digits) must pass its Luhn check at order.create (bad_request)";
 * serials that are not 15 digits are not IMEIs and are not checked. */
START_TEST(native_electronics_imei_luhn)
{
    twins t = load_twins();
    static const struct {
        const char *serial;
        int bad;
    } cases[] = {
        {"490154203237518", 0}, /* a valid IMEI */
        {"490154203237519", 1}, /* its check digit off by one */
        {"000000000000000", 0}, /* Luhn sum 0 */
        {"000000000000001", 1},
        {"49015420323751", 0},   /* 14 digits: not an IMEI */
        {"4901542032375180", 0}, /* 16 digits */
        {"49015420323751X", 0},  /* 15 bytes, not all digits */
        {"49015420323751 ", 0},
        {"\xb9"
         "90154203237519",
         0}, /* a non-ASCII byte is not a digit */
        {"", 0},
        {NULL, 0},
    };
    as_order *o = mk_order();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int line = 0; line < NLINES; line++) {
            o->items[PHONE].serial = "490154203237518";
            o->items[TABLET].serial = "SN-TAB-1";
            o->items[CHARGER].serial = NULL;
            o->items[line].serial = cases[i].serial;
            as_hook_args a = {.order = o, .now_ms = T0};
            char label[96];
            snprintf(label, sizeof label, "serial \"%s\" on line %d",
                     cases[i].serial ? cases[i].serial : "(none)", line);
            as_answer ans = both(&t, AS_HOOK_ORDER_CHECK, &a, label);
            expect(&ans, cases[i].bad ? AS_EBAD_REQUEST : NIL, label);
            if (cases[i].bad) ck_assert(has(ans.msg, "Luhn"));
        }
    }
    free(o);
    free_twins(&t);
}
END_TEST

/* docs/rulebook.md#electronics: quality claims by the (UTC+8) day after delivery: 0-7 return_refund, exchange
 * or repair; 8-15 exchange or repair; 16-365 repair; later warranty_expired; another type on
 * a day that does not allow it remedy_not_allowed. Each day is asked at 00:30 local and at
 * 23:59:59.999 local, so an hour after a 23:30 delivery is day 1. */
START_TEST(native_electronics_sanbao_days)
{
    twins t = load_twins();
    as_order *o = mk_order();
    static const int64_t days[] = {0, 1, 7, 8, 15, 16, 200, 365, 366, 1000};
    static const int64_t at[] = {30 * AS_MINUTE, AS_DAY - 1};
    const int NA = AS_EREMEDY_NOT_ALLOWED, EX = AS_EWARRANTY_EXPIRED;
    for (size_t d = 0; d < sizeof days / sizeof days[0]; d++) {
        for (size_t k = 0; k < 2; k++) {
            int64_t day = days[d];
            if (day == 0 && k == 0) continue; /* before the delivery itself */
            for (int ty = 0; ty < AS_TYPE_COUNT; ty++) {
                int want;
                if (day > 365)
                    want = EX;
                else if (day <= 7)
                    want = ty == AS_TYPE_RETURN_REFUND || ty == AS_TYPE_EXCHANGE ||
                                   ty == AS_TYPE_REPAIR
                               ? OK
                               : NA;
                else if (day <= 15)
                    want = ty == AS_TYPE_EXCHANGE || ty == AS_TYPE_REPAIR ? OK : NA;
                else
                    want = ty == AS_TYPE_REPAIR ? OK : NA;
                elig(&t, o, (as_type)ty, AS_REASON_QUALITY, phone, 1, day, at[k], want);
            }
        }
    }
    /* One hour after a 23:30 delivery is day 1, whose answers equal day 0's. */
    elig(&t, o, AS_TYPE_RETURN_REFUND, AS_REASON_QUALITY, phone, 1, 1, 30 * AS_MINUTE, OK);
    free(o);
    free_twins(&t);
}
END_TEST

/* The pack adds nothing to other reasons or to an undelivered order (nil), and refuses a
 * no_reason return of an item bought as no_reason_excluded (not_eligible). */
START_TEST(native_electronics_other_reasons)
{
    twins t = load_twins();
    as_order *o = mk_order();
    static const int charger[] = {CHARGER}, phone_charger[] = {PHONE, CHARGER};
    for (int ty = 0; ty < AS_TYPE_COUNT; ty++) {
        for (int r = 0; r < AS_REASON_COUNT; r++) {
            if (r == AS_REASON_QUALITY) continue;
            int want_ex = r == AS_REASON_NO_REASON ? AS_ENOT_ELIGIBLE : NIL;
            elig(&t, o, (as_type)ty, (as_reason)r, phone, 1, 3, 0, NIL);
            elig(&t, o, (as_type)ty, (as_reason)r, charger, 1, 3, 0, want_ex);
            elig(&t, o, (as_type)ty, (as_reason)r, phone_charger, 2, 3, 0, want_ex);
            elig(&t, o, (as_type)ty, (as_reason)r, phone, 1, 400, 0, NIL);
        }
    }
    /* Before delivery the 三包 days do not apply. */
    o->delivered_at = AS_UNSET;
    for (int ty = 0; ty < AS_TYPE_COUNT; ty++) {
        elig(&t, o, (as_type)ty, AS_REASON_QUALITY, phone, 1, 0, 0, NIL);
        elig(&t, o, (as_type)ty, AS_REASON_QUALITY, phone, 1, 400, 0, NIL);
    }
    free(o);
    free_twins(&t);
}
END_TEST

/* docs/rulebook.md#electronics: "The warranty year is extended by the days the unit spent in repairing in
 * completed repair cases of the same unit": only completed repair cases of the request's SKU
 * count, each with its repair_days. */
START_TEST(native_electronics_warranty_extension)
{
    twins t = load_twins();
    as_order *o = mk_order();
    static const int tablet[] = {TABLET}, charger_phone[] = {CHARGER, PHONE};
    add_earlier(o, "E1", AS_TYPE_REPAIR, AS_STATE_COMPLETED, 10, charger_phone, 2);
    add_earlier(o, "E2", AS_TYPE_REPAIR, AS_STATE_COMPLETED, 100, tablet, 1);
    add_earlier(o, "E3", AS_TYPE_REPAIR, AS_STATE_REPAIRING, 50, phone, 1);
    add_earlier(o, "E4", AS_TYPE_EXCHANGE, AS_STATE_COMPLETED, 70, phone, 1);
    add_earlier(o, "E5", AS_TYPE_REPAIR, AS_STATE_CLOSED, 30, phone, 1);
    const int NA = AS_EREMEDY_NOT_ALLOWED, EX = AS_EWARRANTY_EXPIRED;

    /* Only E1 counts: 365 + 10. */
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, phone, 1, 366, 0, OK);
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, phone, 1, 375, AS_DAY - 1, OK);
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, phone, 1, 376, 0, EX);
    elig(&t, o, AS_TYPE_EXCHANGE, AS_REASON_QUALITY, phone, 1, 370, 0, NA);
    elig(&t, o, AS_TYPE_RETURN_REFUND, AS_REASON_QUALITY, phone, 1, 370, 0, NA);
    elig(&t, o, AS_TYPE_EXCHANGE, AS_REASON_QUALITY, phone, 1, 376, 0, EX);
    /* The tablet has E2's 100 days. */
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, tablet, 1, 465, 0, OK);
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, tablet, 1, 466, 0, EX);
    free_cases(o);

    /* No earlier cases: the plain year. */
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, phone, 1, 366, 0, EX);
    free(o);
    free_twins(&t);
}
END_TEST

/* docs/rulebook.md#electronics: "After two completed repairs of the same unit within warranty, a new quality
 * case may ask for exchange whatever the day, even past the warranty year." */
START_TEST(native_electronics_two_repairs_allow_exchange)
{
    twins t = load_twins();
    as_order *o = mk_order();
    static const int tablet[] = {TABLET};
    const int NA = AS_EREMEDY_NOT_ALLOWED, EX = AS_EWARRANTY_EXPIRED;
    add_earlier(o, "E1", AS_TYPE_REPAIR, AS_STATE_COMPLETED, 3, phone, 1);
    add_earlier(o, "E2", AS_TYPE_REPAIR, AS_STATE_COMPLETED, 2, tablet, 1);
    add_earlier(o, "E3", AS_TYPE_REPAIR, AS_STATE_COMPLETED, 2, tablet, 1);

    /* One phone repair: no exchange on day 16 on. */
    elig(&t, o, AS_TYPE_EXCHANGE, AS_REASON_QUALITY, phone, 1, 16, 0, NA);
    /* Two tablet repairs: exchange on any day, the other types by the (extended) year. */
    elig(&t, o, AS_TYPE_EXCHANGE, AS_REASON_QUALITY, tablet, 1, 16, 0, OK);
    elig(&t, o, AS_TYPE_EXCHANGE, AS_REASON_QUALITY, tablet, 1, 369, 0, OK);
    elig(&t, o, AS_TYPE_EXCHANGE, AS_REASON_QUALITY, tablet, 1, 2000, 0, OK);
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, tablet, 1, 369, 0, OK);
    elig(&t, o, AS_TYPE_REPAIR, AS_REASON_QUALITY, tablet, 1, 370, 0, EX);
    elig(&t, o, AS_TYPE_RETURN_REFUND, AS_REASON_QUALITY, tablet, 1, 200, 0, NA);
    elig(&t, o, AS_TYPE_RETURN_REFUND, AS_REASON_QUALITY, tablet, 1, 2000, 0, EX);
    elig(&t, o, AS_TYPE_REFUND_ONLY, AS_REASON_QUALITY, tablet, 1, 2000, 0, EX);
    /* A second phone repair makes two. */
    add_earlier(o, "E4", AS_TYPE_REPAIR, AS_STATE_COMPLETED, 0, phone, 1);
    elig(&t, o, AS_TYPE_EXCHANGE, AS_REASON_QUALITY, phone, 1, 900, 0, OK);
    free_cases(o);
    free(o);
    free_twins(&t);
}
END_TEST

/* order.cases holds the order's *other* cases (docs/rules.md): the case being opened or
 * revised never counts as its own earlier repair, in either engine. */
START_TEST(native_electronics_request_is_not_an_earlier_case)
{
    twins t = load_twins();
    as_order *o = mk_order();
    add_earlier(o, "E1", AS_TYPE_REPAIR, AS_STATE_COMPLETED, 5, phone, 1);
    as_case *req =
        mk_case(o, "REQ", AS_TYPE_REPAIR, AS_REASON_QUALITY, AS_STATE_COMPLETED, phone, 1);
    req->repair_days = 1000;
    as__order_add_case(o, req);
    for (int ty = AS_TYPE_EXCHANGE; ty <= AS_TYPE_REPAIR; ty++) {
        req->type = (uint8_t)ty;
        as_hook_args a = {.order = o, .c = req, .v = &req->v, .now_ms = LOCAL(371, 0)};
        as_answer ans = both(&t, AS_HOOK_ELIGIBILITY, &a, "request among the order's cases");
        expect(&ans, AS_EWARRANTY_EXPIRED, "request among the order's cases");
        a.now_ms = LOCAL(370, 0);
        ans = both(&t, AS_HOOK_ELIGIBILITY, &a, "request among the order's cases");
        expect(&ans, ty == AS_TYPE_REPAIR ? OK : AS_EREMEDY_NOT_ALLOWED,
               "request among the order's cases");
    }
    free_cases(o);
    free(o);
    free_twins(&t);
}
END_TEST

/* docs/rulebook.md#electronics: "Cases whose reason is quality or whose type is repair go through inspecting
 * ...: result fault → the requested remedy; no_fault → rejected with remedy reject." */
START_TEST(native_electronics_inspection)
{
    twins t = load_twins();
    as_order *o = mk_order();
    static const int remedy_of_type[AS_TYPE_COUNT] = {
        [AS_TYPE_REFUND_ONLY] = AS_REMEDY_REFUND,    [AS_TYPE_RETURN_REFUND] = AS_REMEDY_REFUND,
        [AS_TYPE_EXCHANGE] = AS_REMEDY_EXCHANGE,     [AS_TYPE_REPAIR] = AS_REMEDY_REPAIR,
        [AS_TYPE_PARTIAL_REFUND] = AS_REMEDY_REFUND, [AS_TYPE_RESHIP] = AS_REMEDY_NONE,
    };
    for (int ty = 0; ty < AS_TYPE_COUNT; ty++) {
        for (int r = 0; r < AS_REASON_COUNT; r++) {
            as_case *c = mk_case(o, "C1", (as_type)ty, (as_reason)r, AS_STATE_RETURNING, phone, 1);
            as_hook_args a = {.order = o, .c = c, .v = &c->v, .now_ms = LOCAL(5, 0)};
            char label[96];
            snprintf(label, sizeof label, "%s/%s", as__reason_name(r), as__type_name(ty));

            as_answer ans = both(&t, AS_HOOK_INSPECTION, &a, label);
            int via = r == AS_REASON_QUALITY || ty == AS_TYPE_REPAIR;
            ck_assert_msg(ans.kind == (via ? AS_ANS_TRUE : AS_ANS_NIL), "%s inspection %s", label,
                          kind_name(ans.kind));

            c->v.state = AS_STATE_INSPECTING;
            a.inspect_fault = 0;
            ans = both(&t, AS_HOOK_ON_INSPECTION, &a, label);
            ck_assert_int_eq(ans.kind, AS_ANS_REMEDY);
            ck_assert_int_eq(ans.i, AS_REMEDY_REJECT);

            a.inspect_fault = 1;
            ans = both(&t, AS_HOOK_ON_INSPECTION, &a, label);
            if (remedy_of_type[ty] == AS_REMEDY_NONE) {
                ck_assert_msg(ans.kind == AS_ANS_NIL, "%s: fault gives %s", label,
                              kind_name(ans.kind));
            } else {
                ck_assert_int_eq(ans.kind, AS_ANS_REMEDY);
                ck_assert_int_eq(ans.i, remedy_of_type[ty]);
            }
            free(c);
        }
    }
    free(o);
    free_twins(&t);
}
END_TEST

/* ==========================================================================================
 * Suite
 * ======================================================================================== */

static Suite *native_suite(void)
{
    Suite *s = suite_create("native");
    TCase *tc = tcase_create("load");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, native_refuses_wrong_abi);
    tcase_add_test(tc, native_refuses_short_struct);
    tcase_add_test(tc, native_refuses_missing_symbol);
    tcase_add_test(tc, native_refuses_null_name);
    tcase_add_test(tc, native_refuses_no_hooks);
    tcase_add_test(tc, native_refuses_failed_init);
    tcase_add_test(tc, native_refuses_unloadable_file);
    tcase_add_test(tc, native_refuses_paths_outside_the_directory);
    tcase_add_test(tc, native_loads_good_plugin);
    tcase_add_test(tc, native_agree_reason_is_its_why);
    tcase_add_test(tc, native_loads_twice_and_unloads_independently);
    tcase_add_test(tc, native_hook_failure_is_rule_error);
    suite_add_tcase(s, tc);

    tc = tcase_create("electronics");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, native_electronics_matches_lua_pack_shape);
    tcase_add_test(tc, native_electronics_imei_luhn);
    tcase_add_test(tc, native_electronics_sanbao_days);
    tcase_add_test(tc, native_electronics_other_reasons);
    tcase_add_test(tc, native_electronics_warranty_extension);
    tcase_add_test(tc, native_electronics_two_repairs_allow_exchange);
    tcase_add_test(tc, native_electronics_request_is_not_an_earlier_case);
    tcase_add_test(tc, native_electronics_inspection);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(native_suite(), 0);
}
