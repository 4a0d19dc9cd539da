/* test_lua_engine.c -- Lua rule packs: loading, the views a hook sees, answers, and the sandbox
 * (docs/design.md#hooks-and-layers, docs/rules.md#the-sandbox, lua/lua_engine.h). Hostile packs are written inline. */
#include <check.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/error.h"
#include "core/layers.h"
#include "core/pack.h"
#include "lua/lua_engine.h"
#include "unit_fixtures.h"
#include "unit_common.h"

/* Small limits keep hostile packs fast. */
static const as_pack_limits SMALL = {.instructions = 20000, .memory = 1 << 20}; /* 1 MiB */
/* memory first; the CPU-time backstop out of the way of sanitizer builds */
static const as_pack_limits MEMTEST = {.instructions = 5000000, .memory = 1 << 20, .cpu_ms = 60000};
static const as_pack_limits BUNDLED = {.instructions = 200000, .memory = 8 << 20};

/* A pack with one hook: PACK1("eligibility", "order, request, now", "return true"). */
#define PACK1(hook, params, body)                                                          \
    "return { name = 'p', version = '1', " hook " = function(" params ") " body " end }"

#define ELIG(body) PACK1("eligibility", "order, request, now", body)

static int has(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

/* ==========================================================================================
 * The bundled packs
 * ======================================================================================== */

static as_pack *load_bundled(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/plugins/%s/%s.lua", AS_SOURCE_ROOT, name, name);
    as_pack *p = NULL;
    as_error err = {0};
    int rc = as__lua_pack_load_file(path, &BUNDLED, &p, &err);
    ck_assert_msg(rc == 0, "%s: %d %s", path, rc, err.msg);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->engine->kind, "lua");
    return p;
}

#define H(x) (1u << AS_HOOK_##x)

/* docs/design.md#hooks-and-layers: "Lua packs are files returning a table {name, version, categories, hooks…}";
 * categories name the categories a category pack serves, the platform pack has none. */
START_TEST(lua_engine_loads_bundled_packs)
{
    static const struct {
        const char *file, *category, *version;
        uint32_t hooks;
    } want[] = {
        {"platform", NULL, "3",
         H(ELIGIBILITY) | H(DEADLINES) | H(REFUND_AMOUNT) | H(PRIORITY) | H(INSTANT_REFUND) |
             H(ON_INSPECTION)},
        {"apparel", "apparel", "2", H(ELIGIBILITY)},
        {"electronics", "electronics", "2",
         H(ORDER_CHECK) | H(ELIGIBILITY) | H(INSPECTION) | H(ON_INSPECTION)},
        {"fresh_food", "fresh_food", "4",
         H(ELIGIBILITY) | H(DEADLINES) | H(REFUND_AMOUNT) | H(AUTO_DECIDE)},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        as_pack *p = load_bundled(want[i].file);
        ck_assert_str_eq(p->name, want[i].file);
        ck_assert_str_eq(p->version, want[i].version);
        ck_assert_msg(p->hooks == want[i].hooks, "%s hooks 0x%x, want 0x%x", want[i].file,
                      p->hooks, want[i].hooks);
        if (want[i].category) {
            ck_assert_str_eq(p->categories[0], want[i].category);
            ck_assert_ptr_null(p->categories[1]);
            ck_assert(as__pack_serves(p, want[i].category));
            ck_assert(!as__pack_serves(p, "toys"));
        } else {
            ck_assert_ptr_null(p->categories[0]);
        }
        ck_assert_uint_gt(p->engine->memory(p), 0);
        ck_assert_uint_lt(p->engine->memory(p), BUNDLED.memory);
        as__pack_unref(p);
    }
}
END_TEST

/* docs/rulebook.md#deadlines defaults and docs/rulebook.md#priority priority through the platform pack's own hooks. */
START_TEST(lua_engine_platform_pack_answers)
{
    as_pack *p = load_bundled("platform");
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_DEADLINES, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_DEADLINES);
    ck_assert_uint_eq(ans.dl_set, 1u << AS_DL_MERCHANT_RESPONSE);
    ck_assert_int_eq(ans.dl[AS_DL_MERCHANT_RESPONSE], 48 * AS_HOUR);
    f.c->v.state = AS_STATE_AWAITING_RETURN;
    ck_assert_int_eq(fx_call(p, AS_HOOK_DEADLINES, &f, &ans, &err), 0);
    ck_assert_uint_eq(ans.dl_set, 1u << AS_DL_BUYER_SHIP);
    ck_assert_int_eq(ans.dl[AS_DL_BUYER_SHIP], 7 * AS_DAY);
    f.c->v.state = AS_STATE_REPAIRING;
    ck_assert_int_eq(fx_call(p, AS_HOOK_DEADLINES, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.dl[AS_DL_REPAIR], 30 * AS_DAY);
    f.c->v.state = AS_STATE_PLATFORM_REVIEW; /* no deadline: an empty answer */
    ck_assert_int_eq(fx_call(p, AS_HOOK_DEADLINES, &f, &ans, &err), 0);
    ck_assert_uint_eq(ans.dl_set, 0);
    f.c->v.state = AS_STATE_REQUESTED;

    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_INT);
    ck_assert_int_eq(ans.i, 4); /* no_reason */
    f.c->v.reason = AS_REASON_QUALITY;
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.i, 1);
    f.c->v.reason = AS_REASON_MISSING_ITEM;
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.i, 2);

    /* docs/rulebook.md#amounts: paid for the case (19900) */
    ck_assert_int_eq(fx_call(p, AS_HOOK_REFUND_AMOUNT, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_INT);
    ck_assert_int_eq(ans.i, 19900);

    /* docs/rulebook.md#eligibility stage 2 #3: no_reason on day 8 after delivery is window_expired */
    f.c->v.reason = AS_REASON_NO_REASON;
    f.a.now_ms = f.o->delivered_at + 7 * AS_DAY;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_TRUE);
    f.a.now_ms = f.o->delivered_at + 9 * AS_DAY;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    ck_assert_int_eq(ans.code, AS_EWINDOW_EXPIRED);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/rulebook.md#electronics: an IMEI (15 digits) must pass its Luhn check at order.create. */
START_TEST(lua_engine_electronics_imei_check)
{
    as_pack *p = load_bundled("electronics");
    fx f = fx_new();
    as_answer ans;
    as_error err;
    f.o->items[1].serial = "490154203237518"; /* a valid IMEI */
    ck_assert_int_eq(fx_call(p, AS_HOOK_ORDER_CHECK, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_NIL);
    f.o->items[1].serial = "490154203237519";
    ck_assert_int_eq(fx_call(p, AS_HOOK_ORDER_CHECK, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    ck_assert_int_eq(ans.code, AS_EBAD_REQUEST);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* ==========================================================================================
 * Loading: what is not a pack
 * ======================================================================================== */

/* docs/design.md#hooks-and-layers: the pack table holds name, version, categories and hooks — nothing else. */
START_TEST(lua_engine_unknown_field_is_bad_request)
{
    as_error err;
    fx_load("return { name = 'p', version = '1', eligibilty = function() end }", &SMALL,
            AS_EBAD_REQUEST, &err);
    ck_assert_msg(has(err.msg, "eligibilty"), "message does not name the field: %s", err.msg);
    fx_load("return { name = 'p', version = '1', author = 'me' }", &SMALL, AS_EBAD_REQUEST, &err);
    ck_assert_msg(has(err.msg, "author"), "%s", err.msg);
    fx_load("return { name = 'p', version = '1', [1] = 'x' }", &SMALL, AS_EBAD_REQUEST, &err);
}
END_TEST

START_TEST(lua_engine_malformed_packs_are_bad_request)
{
    static const char *const bad[] = {
        "return 42",                                                   /* not a table */
        "return nil",
        "return { version = '1' }",                                    /* no name */
        "return { name = 'p' }",                                       /* no version */
        "return { name = '', version = '1' }",
        "return { name = 'p', version = '1', eligibility = 5 }",       /* hook not a function */
        "return { name = 'p', version = '1', name2 = 1 }",
        "return { name = {}, version = '1' }",
        "return { name = 'p', version = '1', categories = 'apparel' }", /* not a list */
        "return { name = 'p', version = '1', categories = { 1, 2 } }",  /* not strings */
        "return { name = 'p', version = '1' ",                          /* syntax error */
        "",                                                             /* returns nothing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        as_error err;
        fx_load(bad[i], &SMALL, AS_EBAD_REQUEST, &err);
        ck_assert_uint_gt(strlen(err.msg), 0);
    }
}
END_TEST

/* A chunk that throws or runs away while loading is the rule's failure, not the input's. */
START_TEST(lua_engine_failing_chunk_is_rule_error)
{
    as_error err;
    fx_load("error('boom') return { name = 'p', version = '1' }", &SMALL, AS_ERULE_ERROR, &err);
    ck_assert_msg(has(err.msg, "boom"), "%s", err.msg);
    fx_load("while true do end", &SMALL, AS_ERULE_ERROR, &err);
    ck_assert_msg(has(err.msg, "instruction budget"), "%s", err.msg);
}
END_TEST

typedef struct bytes {
    char *p;
    size_t len;
} bytes;

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    (void)L;
    bytes *b = ud;
    char *np = realloc(b->p, b->len + sz);
    if (np == NULL) return 1;
    memcpy(np + b->len, p, sz);
    b->p = np;
    b->len += sz;
    return 0;
}

/* docs/rules.md#the-sandbox: "load source with mode "t" (no bytecode)"; docs/rules.md#the-sandbox. A real
 * binary chunk of a valid pack, and a bare signature, are both refused as bad_request. */
START_TEST(lua_engine_binary_chunk_refused)
{
    lua_State *L = luaL_newstate();
    ck_assert_ptr_nonnull(L);
    ck_assert_int_eq(luaL_loadstring(L, "return { name = 'p', version = '1' }"), LUA_OK);
    bytes bin = {NULL, 0};
    ck_assert_int_eq(lua_dump(L, dump_writer, &bin, 0), 0);
    lua_close(L);
    ck_assert_uint_gt(bin.len, 4);
    ck_assert(memcmp(bin.p, "\x1bLua", 4) == 0);

    as_pack *p = (as_pack *)0x1;
    as_error err = {0};
    ck_assert_int_eq(as__lua_pack_load(bin.p, bin.len, "=bin", &SMALL, &p, &err), AS_EBAD_REQUEST);
    free(bin.p);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err.code, AS_EBAD_REQUEST);
    ck_assert_msg(has(err.msg, "binary"), "%s", err.msg);

    static const char sig[] = "\x1bLua\x54\x00garbage";
    p = (as_pack *)0x1;
    ck_assert_int_eq(as__lua_pack_load(sig, sizeof sig - 1, "=sig", &SMALL, &p, &err),
                     AS_EBAD_REQUEST);
    ck_assert_ptr_null(p);
}
END_TEST

START_TEST(lua_engine_missing_file_is_io)
{
    as_pack *p = (as_pack *)0x1;
    as_error err = {0};
    ck_assert_int_eq(as__lua_pack_load_file(AS_SOURCE_ROOT "/plugins/none/none.lua", &SMALL, &p,
                                            &err),
                     AS_EIO);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(err.code, AS_EIO);
}
END_TEST

/* ==========================================================================================
 * Views and answers
 * ======================================================================================== */

/* docs/rules.md "What a hook sees": the order and case fields with the names of docs/design.md#domain-model,
 * a case item carrying its order line's fields, and `now` in ms. */
START_TEST(lua_engine_views_read_the_case)
{
    as_pack *p = fx_load(
        ELIG("local it = request.items[1] "
             "return { error = 'bad_request', message = table.concat({ "
             "order.id, order.shop, order.buyer, tostring(order.shipping_fee), "
             "tostring(order.delivered_at - order.shipped_at), tostring(order.confirmed_at), "
             "tostring(order.buyer_credit), tostring(#order.items), order.items[2].serial, "
             "tostring(order.items[2].custom_made), request.id, request.order, request.category, "
             "request.type, request.reason, request.state, tostring(#request.items), it.sku, "
             "tostring(it.qty), tostring(it.price), tostring(request.paid), "
             "tostring(request.requested_amount), tostring(request.bad_permille), "
             "tostring(#request.evidence), tostring(now - request.opened_at), "
             "tostring(request.nosuchfield) }, '|') }"),
        &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    ck_assert_str_eq(ans.msg, "O1|S1|B1|600|172800000|nil|700|2|SN-1|true|C1|O1|apparel|"
                              "return_refund|no_reason|requested|1|T1|1|19900|19900|nil|nil|0|0|nil");
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/rules.md: "Hooks get read-only views; ... writing one raises an error." */
START_TEST(lua_engine_views_are_read_only)
{
    static const char *const writes[] = {
        ELIG("request.reason = 'quality' return true"),
        ELIG("order.buyer_credit = 1000 return true"),
        ELIG("request.items[1].qty = 2 return true"),
        ELIG("order.items[1] = {} return true"),
        ELIG("setmetatable(request, {}) return true"),
    };
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        as_pack *p = fx_load(writes[i], &SMALL, 0, NULL);
        fx f = fx_new();
        as_answer ans;
        as_error err;
        ck_assert_msg(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err) == AS_ERULE_ERROR,
                      "write %zu was not refused", i);
        ck_assert_int_eq(f.c->v.reason, AS_REASON_NO_REASON);
        ck_assert_int_eq(f.o->buyer_credit, 700);
        ck_assert_int_eq(f.c->items[0].qty, 1);
        fx_free(&f);
        as__pack_unref(p);
    }
}
END_TEST

/* docs/rules.md: item views are "valid only during the hook call that read them". */
START_TEST(lua_engine_view_kept_past_its_call_fails)
{
    as_pack *p = fx_load("local keep = {} "
                         "return { name = 'p', version = '1', "
                         "eligibility = function(order, request, now) keep.items = request.items "
                         "keep.item = request.items[1] return true end, "
                         "priority = function(case, order) return #keep.items end, "
                         "refund_amount = function(case, order) return keep.item.price end }",
                         &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "outside"), "%s", err.msg);
    ck_assert_int_eq(fx_call(p, AS_HOOK_REFUND_AMOUNT, &f, &ans, &err), AS_ERULE_ERROR);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/design.md#hooks-and-layers hooks: the documented answers, each in its own shape. */
START_TEST(lua_engine_answers_of_each_hook)
{
    as_pack *p = fx_load(
        "return { name = 'p', version = '7',"
        " eligibility = function() return { error = 'window_expired', message = 'late' } end,"
        " refund_amount = function(case) return case.paid - 100 end,"
        " priority = function() return 3 end,"
        " deadlines = function() return { merchant_response = 5 * as.HOUR, buyer_ship = 1 } end,"
        " auto_decide = function() return { action = 'reject', reason = 'as_described' } end,"
        " on_inspection = function(case, order, result) if result == 'fault' then return 'exchange' end return 'reject' end,"
        " inspection = function() return true end,"
        " instant_refund = function() return false end,"
        " order_check = function() return { error = 'bad_request', message = 'imei' } end }",
        &SMALL, 0, NULL);
    ck_assert_str_eq(p->version, "7");
    ck_assert_uint_eq(p->hooks, (1u << AS_HOOK_COUNT) - 1);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    ck_assert_int_eq(ans.code, AS_EWINDOW_EXPIRED);
    ck_assert_str_eq(ans.msg, "late");
    ck_assert_int_eq(fx_call(p, AS_HOOK_REFUND_AMOUNT, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_INT);
    ck_assert_int_eq(ans.i, 19800);
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.i, 3);
    /* only the current state's deadline is read (requested: merchant_response) */
    ck_assert_int_eq(fx_call(p, AS_HOOK_DEADLINES, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_DEADLINES);
    ck_assert_uint_eq(ans.dl_set, 1u << AS_DL_MERCHANT_RESPONSE);
    ck_assert_int_eq(ans.dl[AS_DL_MERCHANT_RESPONSE], 5 * AS_HOUR);
    ck_assert_int_eq(fx_call(p, AS_HOOK_AUTO_DECIDE, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REJECT);
    ck_assert_str_eq(ans.msg, "as_described");
    f.a.inspect_fault = 1;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ON_INSPECTION, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REMEDY);
    ck_assert_int_eq(ans.i, AS_REMEDY_EXCHANGE);
    f.a.inspect_fault = 0;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ON_INSPECTION, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.i, AS_REMEDY_REJECT);
    ck_assert_int_eq(fx_call(p, AS_HOOK_INSPECTION, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_TRUE);
    ck_assert_int_eq(fx_call(p, AS_HOOK_INSTANT_REFUND, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_FALSE); /* false is "no" */
    ck_assert_int_eq(fx_call(p, AS_HOOK_ORDER_CHECK, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    ck_assert_int_eq(ans.code, AS_EBAD_REQUEST);
    ck_assert_uint_eq(p->failures, 0);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* A hook a pack does not define answers nil without running anything. */
START_TEST(lua_engine_absent_hook_is_nil)
{
    as_pack *p = fx_load(ELIG("return true"), &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert(!as__pack_has(p, AS_HOOK_PRIORITY));
    ans.kind = AS_ANS_INT;
    ck_assert_int_eq(p->engine->call(p, AS_HOOK_PRIORITY, &f.a, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_NIL);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/design.md#error-codes rule_error: "a platform or category rule threw, returned a wrong type, or ran
 * out of budget". */
START_TEST(lua_engine_wrong_return_types_are_rule_error)
{
    static const struct {
        as_hook h;
        const char *src;
    } bad[] = {
        {AS_HOOK_ELIGIBILITY, ELIG("return 42")},
        {AS_HOOK_ELIGIBILITY, ELIG("return false")},
        {AS_HOOK_ELIGIBILITY, ELIG("return 'yes'")},
        {AS_HOOK_ELIGIBILITY, ELIG("return { error = 'nope' }")},
        {AS_HOOK_ELIGIBILITY, ELIG("return { message = 'no code' }")},
        {AS_HOOK_ELIGIBILITY, ELIG("return { error = 'nomem' }")},        /* runtime's own */
        {AS_HOOK_ELIGIBILITY, ELIG("return { error = 'unauthorized' }")}, /* HTTP only */
        {AS_HOOK_ORDER_CHECK, PACK1("order_check", "order", "return true")},
        {AS_HOOK_REFUND_AMOUNT, PACK1("refund_amount", "c, o", "return '100'")},
        {AS_HOOK_REFUND_AMOUNT, PACK1("refund_amount", "c, o", "return 1.5")},
        {AS_HOOK_REFUND_AMOUNT, PACK1("refund_amount", "c, o", "return {}")},
        {AS_HOOK_PRIORITY, PACK1("priority", "c, o", "return true")},
        {AS_HOOK_DEADLINES, PACK1("deadlines", "c, o", "return 5")},
        {AS_HOOK_DEADLINES, PACK1("deadlines", "c, o", "return { merchant_response = '48h' }")},
        {AS_HOOK_DEADLINES, PACK1("deadlines", "c, o", "return { merchant_response = 0.5 }")},
        {AS_HOOK_AUTO_DECIDE, PACK1("auto_decide", "c, o, now", "return 'agree'")},
        {AS_HOOK_AUTO_DECIDE, PACK1("auto_decide", "c, o, now", "return { action = 'maybe' }")},
        {AS_HOOK_AUTO_DECIDE, PACK1("auto_decide", "c, o, now", "return {}")},
        {AS_HOOK_ON_INSPECTION, PACK1("on_inspection", "c, o, r, now", "return 'fix'")},
        {AS_HOOK_ON_INSPECTION, PACK1("on_inspection", "c, o, r, now", "return 1")},
        {AS_HOOK_INSPECTION, PACK1("inspection", "c, o", "return 1")},
        {AS_HOOK_INSTANT_REFUND, PACK1("instant_refund", "c, o", "return 'yes'")},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        as_pack *p = fx_load(bad[i].src, &SMALL, 0, NULL);
        fx f = fx_new();
        as_answer ans;
        as_error err;
        int rc = fx_call(p, bad[i].h, &f, &ans, &err);
        ck_assert_msg(rc == AS_ERULE_ERROR, "%s: rc %d (answer kind %d), want rule_error",
                      bad[i].src, rc, ans.kind);
        ck_assert_int_eq(err.code, AS_ERULE_ERROR);
        ck_assert_msg(has(err.msg, as__hook_name(bad[i].h)), "message names no hook: %s",
                      err.msg);
        ck_assert_uint_eq(p->failures, 1);
        fx_free(&f);
        as__pack_unref(p);
    }
}
END_TEST

START_TEST(lua_engine_throw_is_rule_error_with_message)
{
    as_pack *p = fx_load(ELIG("error('no such rule')"), &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "no such rule"), "%s", err.msg);
    ck_assert_msg(has(err.msg, "eligibility"), "%s", err.msg);
    /* a non-string error object */
    as_pack *q = fx_load(ELIG("error({})"), &SMALL, 0, NULL);
    ck_assert_int_eq(fx_call(q, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    fx_free(&f);
    as__pack_unref(p);
    as__pack_unref(q);
}
END_TEST

/* ==========================================================================================
 * The sandbox: budget (docs/rules.md#the-sandbox, docs/design.md#hooks-and-layers "no way around them")
 * ======================================================================================== */

static void expect_budget(const char *src, as_hook h)
{
    as_pack *p = fx_load(src, &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    int rc = fx_call(p, h, &f, &ans, &err);
    ck_assert_msg(rc == AS_ERULE_ERROR, "%s: rc %d, want rule_error", src, rc);
    ck_assert_msg(has(err.msg, "instruction budget"), "%s: %s", src, err.msg);
    fx_free(&f);
    as__pack_unref(p);
}

START_TEST(lua_engine_loop_forever_exhausts_budget)
{
    as_pack *p = fx_load("return { name = 'p', version = '1',"
                         " eligibility = function() while true do end end,"
                         " priority = function() local n = 0 for i = 1, 1000 do n = n + 1 end"
                         "   return n // 100 end }",
                         &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "instruction budget"), "%s", err.msg);
    ck_assert_uint_eq(p->failures, 1);
    /* the next call has a fresh budget: a bounded loop well under it runs */
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.i, 10);
    /* and the runaway fails again, every time */
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_uint_eq(p->failures, 2);
    fx_free(&f);
    as__pack_unref(p);
    expect_budget(PACK1("deadlines", "c, o", "local t = {} while true do t[1] = 1 end"),
                  AS_HOOK_DEADLINES);
    expect_budget(PACK1("priority", "c, o", "local function f() return f() end return f()"),
                  AS_HOOK_PRIORITY);
}
END_TEST

/* docs/rules.md#the-sandbox: "pcall inside the script cannot swallow it". */
START_TEST(lua_engine_loop_inside_pcall_still_fails)
{
    expect_budget(ELIG("pcall(function() while true do end end) return true"),
                  AS_HOOK_ELIGIBILITY);
    expect_budget(ELIG("while true do pcall(function() while true do end end) end"),
                  AS_HOOK_ELIGIBILITY);
    expect_budget(ELIG("local ok = pcall(pcall, function() while true do end end) return true"),
                  AS_HOOK_ELIGIBILITY);
    expect_budget(ELIG("while true do pcall(error, 'x') end"), AS_HOOK_ELIGIBILITY);
    /* pcall itself still works for ordinary errors */
    as_pack *p = fx_load(ELIG("local ok, e = pcall(error, 'x') "
                              "if ok == false and e == 'x' then return true end return 1"),
                         &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_TRUE);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/rules.md#the-sandbox: "Lua 5.4 runs an xpcall message handler after a hook error ... with hooks off:
 * close those doors too". */
START_TEST(lua_engine_xpcall_handler_loop_still_fails)
{
    expect_budget(ELIG("xpcall(function() error('boom') end, function(e) while true do end end) "
                       "return true"),
                  AS_HOOK_ELIGIBILITY);
    expect_budget(ELIG("xpcall(function() while true do end end, function(e) while true do end "
                       "end) return true"),
                  AS_HOOK_ELIGIBILITY);
    expect_budget(ELIG("xpcall(function() while true do end end, function(e) return e end) "
                       "return true"),
                  AS_HOOK_ELIGIBILITY);
    /* xpcall still works for ordinary errors, passing arguments through */
    as_pack *p = fx_load(ELIG("local ok, v = xpcall(function(a, b) error(a .. b) end, "
                              "function(e) return 'handled' end, 'x', 'y') "
                              "local ok2, s = xpcall(function(a, b) return a + b end, print or "
                              "tostring, 2, 3) "
                              "if ok == false and v == 'handled' and ok2 and s == 5 then return "
                              "true end return 1"),
                         &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_TRUE);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* ==========================================================================================
 * The sandbox: memory (docs/rules.md#the-sandbox: LUA_ERRMEM is reported as "memory cap exceeded")
 * ======================================================================================== */

static void expect_memory_cap(const char *body)
{
    char src[1024];
    snprintf(src, sizeof src, ELIG("%s"), body);
    as_pack *p = fx_load(src, &MEMTEST, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    int rc = fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err);
    ck_assert_msg(rc == AS_ERULE_ERROR, "%s: rc %d, want rule_error", body, rc);
    ck_assert_msg(has(err.msg, "memory cap"), "%s: %s", body, err.msg);
    ck_assert_uint_le(p->engine->memory(p), MEMTEST.memory);
    fx_free(&f);
    as__pack_unref(p);
}

START_TEST(lua_engine_memory_bomb_hits_cap)
{
    expect_memory_cap("local s = 'x' while true do s = s .. s end");
    expect_memory_cap("local t, i = {}, 0 while true do i = i + 1 t[i] = { i, i, i } end");
    expect_memory_cap("local t = {} for i = 1, 1e9 do t[i] = tostring(i) .. 'padding' end");
    expect_memory_cap("return string.rep('x', 1 << 30)");
    expect_memory_cap("local t = {} t[1] = string.rep('y', 600000) t[2] = t[1] .. 'z' "
                      "return true");
}
END_TEST

/* After a memory failure the state is still usable: the garbage is collectable. */
START_TEST(lua_engine_memory_recovers_after_bomb)
{
    as_pack *p = fx_load("return { name = 'p', version = '1',"
                         " eligibility = function() local s = 'x' while true do s = s .. s end end,"
                         " priority = function() local t = {} for i = 1, 100 do t[i] = i end"
                         "   return #t end }",
                         &MEMTEST, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    for (int round = 0; round < 3; round++) {
        ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
        ck_assert_msg(has(err.msg, "memory cap"), "%s", err.msg);
        ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
        ck_assert_int_eq(ans.i, 100);
    }
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* A pack too big for its cap fails to load as rule_error (not bad input, not our OOM). */
START_TEST(lua_engine_memory_cap_at_load)
{
    as_pack_limits tiny = {.instructions = 1000000, .memory = 256 << 10};
    as_error err;
    fx_load("local big = string.rep('x', 1 << 20) return { name = 'p', version = '1' }", &tiny,
            AS_ERULE_ERROR, &err);
    ck_assert_msg(has(err.msg, "memory cap"), "%s", err.msg);
}
END_TEST

/* ==========================================================================================
 * The sandbox: what is not there, and what may not be written
 * ======================================================================================== */

/* docs/design.md#hooks-and-layers: "only base (without load, dofile, loadfile), string (without dump), table,
 * math, utf8; no io, os, package, debug, require". lua_engine.h also removes collectgarbage
 * and print. */
START_TEST(lua_engine_sandbox_globals_are_nil)
{
    as_pack *p = fx_load(
        ELIG("for _, n in ipairs({ 'io', 'os', 'require', 'load', 'loadfile', 'dofile', "
             "'collectgarbage', 'package', 'debug', 'print', 'coroutine', 'loadstring', "
             "'module' }) do "
             "  if _ENV[n] ~= nil then return { error = 'bad_request', message = n } end "
             "  if _G ~= nil and _G[n] ~= nil then return { error = 'bad_request', message = '_G.' .. n } end "
             "end "
             "if string.dump ~= nil then return { error = 'bad_request', message = 'string.dump' } end "
             "if ('').dump ~= nil then return { error = 'bad_request', message = '(\"\").dump' } end "
             "return true"),
        &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_msg(ans.kind == AS_ANS_TRUE, "'%s' is reachable in the sandbox", ans.msg);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* The libraries that are documented are there, and `as` is the host's only helper. */
START_TEST(lua_engine_sandbox_has_documented_libraries)
{
    as_pack *p = fx_load(
        ELIG("if type(string.format) ~= 'function' or type(table.concat) ~= 'function' "
             "or type(math.floor) ~= 'function' or type(utf8.char) ~= 'function' "
             "or type(pairs) ~= 'function' or type(tostring) ~= 'function' then "
             "  return { error = 'bad_request', message = 'a library is missing' } end "
             "if as.HOUR ~= 3600000 or as.DAY ~= 86400000 then "
             "  return { error = 'bad_request', message = 'as.HOUR/as.DAY' } end "
             "if as.local_day(0) ~= 0 or as.local_day(16 * as.HOUR) ~= 1 "
             "   or as.local_day(-8 * as.HOUR - 1) ~= -1 or as.local_day(now) ~= (now + 8 * as.HOUR) // as.DAY then "
             "  return { error = 'bad_request', message = 'as.local_day' } end "
             "return true"),
        &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_msg(ans.kind == AS_ANS_TRUE, "%s", ans.msg);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* lua_engine.h: "source loaded as text only into a read-only global environment". */
START_TEST(lua_engine_writing_a_global_fails)
{
    as_pack *p = fx_load(ELIG("counter = 1 return true"), &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "global"), "%s", err.msg);
    fx_free(&f);
    as__pack_unref(p);
    /* at load time too */
    as_error lerr;
    fx_load("shared = {} return { name = 'p', version = '1' }", &SMALL, AS_ERULE_ERROR, &lerr);
    ck_assert_msg(has(lerr.msg, "global"), "%s", lerr.msg);
}
END_TEST

/* The same write through _G: the global table must not be a way around the read-only _ENV
 * (a hook's state would then outlive its call, and hooks are pure: docs/design.md#hooks-and-layers). */
START_TEST(lua_engine_writing_a_global_through_G_fails)
{
    as_pack *p = fx_load("return { name = 'p', version = '1',"
                         " eligibility = function() _G.counter = (_G.counter or 0) + 1 return true end,"
                         " priority = function() return counter end }",
                         &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    int rc = fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err);
    ck_assert_msg(rc == AS_ERULE_ERROR, "_G.counter = ... was allowed (rc %d)", rc);
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
    ck_assert_msg(ans.kind == AS_ANS_NIL, "a global written in one call was seen by the next");
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

START_TEST(lua_engine_rawset_on_env_fails)
{
    as_pack *p = fx_load("return { name = 'p', version = '1',"
                         " eligibility = function() rawset(_ENV, 'counter', 5) return true end,"
                         " priority = function() return counter end }",
                         &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    int rc = fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err);
    ck_assert_msg(rc == AS_ERULE_ERROR, "rawset(_ENV, ...) was allowed (rc %d)", rc);
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), 0);
    ck_assert_msg(ans.kind == AS_ANS_NIL, "a global written in one call was seen by the next");
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/rules.md#the-sandbox: "a setmetatable that refuses __gc" (a finalizer runs outside any budget). */
START_TEST(lua_engine_setmetatable_with_gc_refused)
{
    as_pack *p = fx_load(ELIG("setmetatable({}, { __gc = function() end }) return true"), &SMALL,
                         0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "__gc"), "%s", err.msg);
    as__pack_unref(p);
    /* at load time too */
    as_error lerr;
    fx_load("local x = setmetatable({}, { __gc = function() while true do end end }) "
            "return { name = 'p', version = '1' }",
            &SMALL, AS_ERULE_ERROR, &lerr);
    /* other metatables are fine */
    p = fx_load(ELIG("local t = setmetatable({}, { __index = function() return 7 end }) "
                     "if t.x == 7 then return true end return 1"),
                &SMALL, 0, NULL);
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_TRUE);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* The unchecked setmetatable the sandbox keeps for itself must not be reachable from a pack:
 * Lua source can spell any key, "\1setmetatable" included. */
START_TEST(lua_engine_raw_setmetatable_unreachable)
{
    as_pack *p = fx_load(ELIG("local raw = _ENV['\\1setmetatable'] or (_G and _G['\\1setmetatable']) "
                              "if raw ~= nil then raw({}, { __gc = function() end }) "
                              "  return { error = 'bad_request', message = 'raw setmetatable reachable' } end "
                              "return true"),
                         &SMALL, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    int rc = fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err);
    ck_assert_msg(rc == AS_ERULE_ERROR || (rc == 0 && ans.kind == AS_ANS_TRUE),
                  "a __gc finalizer was installed through the raw setmetatable (rc %d, %s)", rc,
                  ans.msg);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* ==========================================================================================
 * The sandbox: long-running C calls (docs/design.md#hooks-and-layers: "no way around them: ... not a library
 * call that runs long in C (a pathological string pattern, a huge string.rep)")
 * ======================================================================================== */

/* A backtracking pattern runs in C, where no count hook fires: it needs a budget of its own
 * (docs/rules.md#the-sandbox "pattern functions with a budget of their own"). The TCase timeout is the
 * failure signal when it has none. */
START_TEST(lua_engine_pathological_pattern_is_bounded)
{
    expect_budget(ELIG("local s = string.rep('a', 60) "
                       "string.find(s, string.rep('a*', 30) .. 'b') return true"),
                  AS_HOOK_ELIGIBILITY);
}
END_TEST

/* The cost of a match grows with the pattern's length too, not only its quantifiers: a
 * quantifier-free pattern of m bytes tried at each of n positions is n * m steps in C. */
START_TEST(lua_engine_long_pattern_is_bounded)
{
    as_pack_limits lim = {.instructions = 1000000, .memory = 8 << 20};
    as_pack *p = fx_load(ELIG("local s = string.rep('a', 500000) "
                              "local pat = string.rep('a', 200000) .. '.b' "
                              "string.find(s, pat) return true"),
                         &lim, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* Each string.rep call is one instruction but megabytes of work in C: a loop of them within
 * the instruction budget and under the memory cap must still end in bounded time. */
START_TEST(lua_engine_huge_string_rep_loop_is_bounded)
{
    as_pack_limits lim = {.instructions = 100000, .memory = 64 << 20};
    as_pack *p = fx_load(ELIG("for i = 1, 1e9 do local s = string.rep('x', 16 << 20) end "
                              "return true"),
                         &lim, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* ==========================================================================================
 * Reference counting (pack.h)
 * ======================================================================================== */

START_TEST(lua_engine_pack_refcount)
{
    as_pack *p = fx_load(ELIG("return true"), &SMALL, 0, NULL);
    as__pack_ref(p);
    ck_assert_int_eq(p->refs, 2);
    as__pack_unref(p);
    ck_assert_int_eq(p->refs, 1);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0); /* still alive */
    fx_free(&f);
    as__pack_unref(p); /* freed: ASan/LSan check the lua_State went with it */
    as__pack_unref(NULL);
}
END_TEST

/* As SQLite's *fault.test do: fail the n-th and every later allocation of a pack's
 * state, for every n, while loading the bundled platform pack. Each load either succeeds or
 * is refused with nomem, leaves nothing behind (the sanitizer build checks for leaks), and
 * the pack that finally loads (n past the last allocation) is the same pack. */
START_TEST(lua_engine_oom_sweep_during_load)
{
    as_pack_limits clean = {.instructions = 1000000, .memory = 8 << 20};
    as_pack *ref = NULL;
    as_error err = {0};
    ck_assert_int_eq(as__lua_pack_load_file(AS_SOURCE_ROOT "/plugins/platform/platform.lua",
                                            &clean, &ref, &err), 0);
    long n;
    int loaded = 0;
    for (n = 1; n < 100000 && !loaded; n++) {
        as_pack_limits lim = clean;
        lim.fail_alloc = n;
        as_pack *p = NULL;
        memset(&err, 0, sizeof err);
        int rc = as__lua_pack_load_file(AS_SOURCE_ROOT "/plugins/platform/platform.lua", &lim,
                                        &p, &err);
        if (rc == 0) {
            ck_assert_ptr_nonnull(p);
            ck_assert_str_eq(p->name, ref->name);
            ck_assert_str_eq(p->version, ref->version);
            ck_assert_uint_eq(p->hooks, ref->hooks);
            as__pack_unref(p);
            loaded = 1;
        } else {
            ck_assert_msg(rc == AS_ENOMEM, "allocation %ld failed: %s (%s), want nomem", n,
                          as_err_name(rc), err.msg);
            ck_assert_ptr_null(p);
            ck_assert_msg(err.msg[0] != '\0', "allocation %ld: no message", n);
        }
    }
    ck_assert_msg(loaded, "the pack never loaded in %ld tries", n);
    ck_assert_int_gt(n, 300); /* the sweep really went through the loader's allocations */
    as__pack_unref(ref);
}
END_TEST


/* ==========================================================================================
 * Host reads of pack values (docs/design.md#hooks-and-layers): raw, protected, charged, converted exactly
 * ======================================================================================== */

/* Metamethods that would raise if the host ran them. */
#define RAISING_MT                                                                          \
    "local MT = { __index = function() error('metamethod ran') end,"                        \
    " __len = function() error('metamethod ran') end, __eq = function() error('metamethod ran') end," \
    " __tostring = function() error('metamethod ran') end, __call = function() error('metamethod ran') end," \
    " __concat = function() error('metamethod ran') end, __lt = function() error('metamethod ran') end } "

/* Loads `src` under SMALL, calls hook h once; returns the call's code. */
static int call_once(const char *src, as_hook h, as_answer *ans, as_error *err)
{
    as_pack *p = fx_load(src, &SMALL, 0, NULL);
    fx f = fx_new();
    memset(err, 0, sizeof *err);
    int rc = fx_call(p, h, &f, ans, err);
    fx_free(&f);
    as__pack_unref(p);
    return rc;
}

static const char *const HOOK_PARAMS[AS_HOOK_COUNT] = {
    [AS_HOOK_ORDER_CHECK] = "o", [AS_HOOK_ELIGIBILITY] = "o, r, now",
    [AS_HOOK_REFUND_AMOUNT] = "c, o", [AS_HOOK_DEADLINES] = "c, o", [AS_HOOK_PRIORITY] = "c, o",
    [AS_HOOK_AUTO_DECIDE] = "c, o, now", [AS_HOOK_ON_INSPECTION] = "c, o, r, now",
    [AS_HOOK_INSPECTION] = "c, o", [AS_HOOK_INSTANT_REFUND] = "c, o",
};

/* Issue 10: an answer with a metatable aborted the process (the host read it with
 * lua_getfield outside protection). Every hook, every shape: the call returns, and no
 * metamethod of the answer ever runs. */
START_TEST(lua_engine_answers_with_metatables_never_run_them)
{
    static const char *const answers[] = {
        "setmetatable({}, MT)",
        "setmetatable({ error = 'not_eligible' }, MT)",
        "setmetatable({ action = 'reject' }, MT)",
        "setmetatable({ merchant_response = 5 }, MT)",
        "{ error = setmetatable({}, MT) }",
        "{ error = 'not_eligible', message = setmetatable({}, MT) }",
        "{ action = setmetatable({}, MT) }",
        "{ action = 'reject', reason = setmetatable({}, MT) }",
        "{ merchant_response = setmetatable({}, MT) }",
        "setmetatable({}, { __index = function() return 'agree' end })",
    };
    for (int h = 0; h < AS_HOOK_COUNT; h++)
        for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
            char src[2048];
            snprintf(src, sizeof src,
                     RAISING_MT "return { name = 'p', version = '1', %s = function(%s) return %s end }",
                     as__hook_name(h), HOOK_PARAMS[h], answers[i]);
            as_answer ans;
            as_error err;
            int rc = call_once(src, h, &ans, &err);
            ck_assert_msg(rc == 0 || rc == AS_ERULE_ERROR, "%s: rc %d", src, rc);
            ck_assert_msg(!has(err.msg, "metamethod ran"), "%s: the host ran a metamethod: %s",
                          src, err.msg);
            if (rc) ck_assert_int_eq(ans.kind, AS_ANS_NIL);
        }
    as_answer ans;
    as_error err;
    /* raw reads: a refusal's code is there, its message is not (the default sentence) */
    ck_assert_int_eq(call_once(RAISING_MT "return { name = 'p', version = '1', eligibility = "
                               "function() return setmetatable({ error = 'not_eligible' }, MT) end }",
                               AS_HOOK_ELIGIBILITY, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    ck_assert_int_eq(ans.code, AS_ENOT_ELIGIBLE);
    ck_assert_str_eq(ans.msg, as_strerror(AS_ENOT_ELIGIBLE));
    /* an action only an __index would give is no action */
    ck_assert_int_eq(call_once(PACK1("auto_decide", "c, o, now", "return setmetatable({}, "
                                     "{ __index = function() return 'agree' end })"),
                               AS_HOOK_AUTO_DECIDE, &ans, &err), AS_ERULE_ERROR);
    /* a duration only an __index would give is none */
    ck_assert_int_eq(call_once(PACK1("deadlines", "c, o", "return setmetatable({}, "
                                     "{ __index = function() return 5 end })"),
                               AS_HOOK_DEADLINES, &ans, &err), 0);
    ck_assert_uint_eq(ans.dl_set, 0);
}
END_TEST

/* docs/design.md#hooks-and-layers: "An integer is a Lua integer or a float with an exact integer value"; a
 * string is never coerced. Ranges are the layers' (test_layers.c). */
START_TEST(lua_engine_numbers_convert_exactly)
{
    static const struct {
        const char *v;
        int ok;
        int64_t want;
    } nums[] = {
        {"100", 1, 100},
        {"100.0", 1, 100},
        {"-0.0", 1, 0},
        {"math.maxinteger", 1, INT64_MAX},
        {"math.mininteger", 1, INT64_MIN},
        {"-2^63", 1, INT64_MIN},
        {"2^53", 1, 9007199254740992ll},
        {"1.5", 0, 0},
        {"0/0", 0, 0},
        {"1/0", 0, 0},
        {"-1/0", 0, 0},
        {"2^63", 0, 0},
        {"1e300", 0, 0},
        {"'12'", 0, 0},
        {"'0x10'", 0, 0},
        {"true", 0, 0},
    };
    static const as_hook hooks[] = {AS_HOOK_REFUND_AMOUNT, AS_HOOK_PRIORITY, AS_HOOK_DEADLINES};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        for (size_t k = 0; k < sizeof hooks / sizeof hooks[0]; k++) {
            char body[256], src[1024];
            if (hooks[k] == AS_HOOK_DEADLINES)
                snprintf(body, sizeof body, "return { merchant_response = %s }", nums[i].v);
            else
                snprintf(body, sizeof body, "return %s", nums[i].v);
            snprintf(src, sizeof src, "return { name = 'p', version = '1', %s = function(c, o) %s end }",
                     as__hook_name(hooks[k]), body);
            as_answer ans;
            as_error err;
            int rc = call_once(src, hooks[k], &ans, &err);
            ck_assert_msg(rc == (nums[i].ok ? 0 : AS_ERULE_ERROR), "%s: rc %d (%s)", src, rc, err.msg);
            if (!nums[i].ok) continue;
            int64_t got = hooks[k] == AS_HOOK_DEADLINES ? ans.dl[AS_DL_MERCHANT_RESPONSE] : ans.i;
            ck_assert_msg(got == nums[i].want, "%s: %lld", src, (long long)got);
        }
}
END_TEST

/* docs/design.md#provenance: a failed hook's history entry names the file:line it raised at,
 * found where the error happened (not parsed from its message): a throw, a runtime error in a
 * function it called, an error object that is not a string, a spent budget; a wrong answer
 * (no raise) names none. */
START_TEST(lua_engine_failure_names_its_line)
{
    static const struct {
        const char *src;
        const char *where;
    } cases[] = {
        {"return { name = 'p', version = '1',\n priority = function(c, o)\n error('boom') end }",
         "test:3"},
        {"local function deep(t) return t.x.y end\n"
         "return { name = 'p', version = '1', priority = function(c, o)\n return deep({}) end }",
         "test:1"},
        {"return { name = 'p', version = '1', priority = function(c, o)\n\n error({}) end }",
         "test:3"},
        {"return { name = 'p', version = '1', priority = function(c, o)\n while true do end end }",
         "test:2"},
        {"return { name = 'p', version = '1', priority = function(c, o) return 'high' end }", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        as_pack *p = fx_load(cases[i].src, &SMALL, 0, NULL);
        fx f = fx_new();
        as_answer ans;
        as_error err = {0};
        memset(&ans, 'x', sizeof ans);
        ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), AS_ERULE_ERROR);
        ck_assert_msg(strcmp(ans.where, cases[i].where) == 0, "%s: where '%s', want '%s' (%s)",
                      cases[i].src, ans.where, cases[i].where, err.msg);
        fx_free(&f);
        as__pack_unref(p);
    }
    /* a chunk named by a long non-ASCII path, which Lua cuts to its last bytes: the file:line
     * is still text the history can store (docs/design.md#limits) */
    const char *src = "return { name = 'p', version = '1', priority = function(c, o) error('x') end }";
    as_pack *p = (as_pack *)0x1;
    as_error err = {0};
    char chunk[200] = "@";
    for (int i = 0; i < 40; i++) strcat(chunk, "\xe4\xb8\xad"); /* 中 x 40, 120 bytes */
    ck_assert_int_eq(as__lua_pack_load(src, strlen(src), chunk, &SMALL, &p, &err), 0);
    fx f = fx_new();
    as_answer ans;
    ck_assert_int_eq(fx_call(p, AS_HOOK_PRIORITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(as__answer_text_ok(ans.where, strlen(ans.where)), "where '%s'", ans.where);
    ck_assert_msg(strstr(ans.where, ":1") != NULL, "where '%s'", ans.where);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/design.md#limits text for a refusal's message and a reject reason: 1-256 bytes of UTF-8, no
 * control characters, copied whole or refused (never cut). */
START_TEST(lua_engine_text_answers_are_text)
{
    static const struct {
        const char *v;
        int ok;
    } texts[] = {
        {"'late'", 1},
        {"'\xe4\xb8\xad\xe6\x96\x87'", 1},
        {"string.rep('x', 256)", 1},
        {"string.rep('x', 257)", 0},
        {"''", 0},
        {"'a\\0b'", 0},
        {"'line\\nbreak'", 0},
        {"'\\x7f'", 0},
        {"'\\xc2\\x85'", 0}, /* U+0085, a C1 control */
        {"'\\xff'", 0},
        {"'\\xc0\\xaf'", 0}, /* overlong */
        {"'\\xed\\xa0\\x80'", 0}, /* a surrogate */
        {"12", 0},
    };
    as_answer ans;
    as_error err;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char src[1024];
        snprintf(src, sizeof src, ELIG("return { error = 'not_eligible', message = %s }"), texts[i].v);
        int rc = call_once(src, AS_HOOK_ELIGIBILITY, &ans, &err);
        ck_assert_msg(rc == (texts[i].ok ? 0 : AS_ERULE_ERROR), "%s: rc %d (%s)", src, rc, err.msg);
        snprintf(src, sizeof src, PACK1("auto_decide", "c, o, now", "return { action = 'reject', reason = %s }"),
                 texts[i].v);
        rc = call_once(src, AS_HOOK_AUTO_DECIDE, &ans, &err);
        ck_assert_msg(rc == (texts[i].ok ? 0 : AS_ERULE_ERROR), "%s: rc %d (%s)", src, rc, err.msg);
        if (rc == 0) ck_assert(strlen(ans.msg) >= 4);
        /* a why (docs/design.md#provenance), on an agree and on a reject: the same text */
        snprintf(src, sizeof src, PACK1("auto_decide", "c, o, now", "return { action = 'agree', why = %s }"),
                 texts[i].v);
        rc = call_once(src, AS_HOOK_AUTO_DECIDE, &ans, &err);
        ck_assert_msg(rc == (texts[i].ok ? 0 : AS_ERULE_ERROR), "%s: rc %d (%s)", src, rc, err.msg);
        if (rc == 0) ck_assert(ans.kind == AS_ANS_AGREE && strlen(ans.why) >= 4);
        if (rc != 0) ck_assert_msg(has(err.msg, "a why that is not 1-256 bytes of text"), "%s", err.msg);
        snprintf(src, sizeof src, PACK1("auto_decide", "c, o, now", "return { action = 'reject', reason = 'late', why = %s }"),
                 texts[i].v);
        rc = call_once(src, AS_HOOK_AUTO_DECIDE, &ans, &err);
        ck_assert_msg(rc == (texts[i].ok ? 0 : AS_ERULE_ERROR), "%s: rc %d (%s)", src, rc, err.msg);
        if (rc == 0) ck_assert(ans.kind == AS_ANS_REJECT && strcmp(ans.msg, "late") == 0);
    }
    /* no why: "" (an answer never carries the last call's) */
    ck_assert_int_eq(call_once(PACK1("auto_decide", "c, o, now", "return { action = 'agree' }"),
                               AS_HOOK_AUTO_DECIDE, &ans, &err), 0);
    ck_assert_str_eq(ans.why, "");
    ck_assert_int_eq(call_once(ELIG("return { error = 'io' }"), AS_HOOK_ELIGIBILITY, &ans, &err),
                     AS_ERULE_ERROR);
    ck_assert_int_eq(call_once(PACK1("auto_decide", "c, o, now", "return { action = 'reject', reason = string.rep('y', 256) }"),
                               AS_HOOK_AUTO_DECIDE, &ans, &err), 0);
    ck_assert_uint_eq(strlen(ans.msg), 256);
}
END_TEST

/* Issue 10: "a metamethod on the pack table hangs loading with no budget". The pack table
 * and its categories are read raw, under the chunk's budget. */
START_TEST(lua_engine_pack_table_read_raw_under_budget)
{
    as_error err;
    as_pack *p = fx_load("return setmetatable({ name = 'p', version = '1', categories = "
                         "setmetatable({ 'toys' }, { __len = function() while true do end end,"
                         " __index = function() while true do end end }) },"
                         " { __index = function() while true do end end, __pairs = function() "
                         "while true do end end, __len = function() while true do end end })",
                         &SMALL, 0, NULL);
    ck_assert_str_eq(p->name, "p");
    ck_assert(as__pack_serves(p, "toys"));
    as__pack_unref(p);
    /* a name only an __index gives is no name */
    fx_load("return setmetatable({ version = '1' }, { __index = function(t, k) return 'p' end })",
            &SMALL, AS_EBAD_REQUEST, &err);
    ck_assert_msg(has(err.msg, "no name"), "%s", err.msg);
    /* the chunk itself is under the budget, as before */
    fx_load("while true do end", &SMALL, AS_ERULE_ERROR, &err);
    ck_assert_msg(has(err.msg, "instruction budget"), "%s", err.msg);
}
END_TEST

/* Each library call whose work grows with its input is charged: the call returns within the
 * budget and says so, or refuses a result above the caps. */
START_TEST(lua_engine_library_calls_are_charged)
{
    static const char *const bodies[] = {
        "table.move({}, 1, 1 << 62, 1, {})",
        "table.move({}, math.mininteger + 2, math.maxinteger - 2, 1, {})",
        "table.concat({}, '', 1, 1 << 40)",
        "table.concat(setmetatable({}, { __index = function() return 'x' end }), '', 1, 1 << 40)",
        "table.insert(setmetatable({}, { __len = function() return 1 << 62 end }), 1, 'x')",
        "table.remove(setmetatable({}, { __len = function() return 1 << 62 end }), 1)",
        "table.unpack({}, 1, 1 << 40)",
        "table.unpack({}, 1, 5000)",
        "table.sort(setmetatable({}, { __len = function() return 1 << 40 end }))",
        "string.rep('', 1 << 62)",
        "string.rep('x', 1 << 20)",
        "local s = string.rep('x', 60000) .. string.rep('y', 6000)",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do utf8.len(s) end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do s:upper() end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do s:lower() end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do s:reverse() end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do s:sub(2) end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do s:byte(1, 4000) end",
        "local s = string.rep('x', 60000) local t = { s:byte(1, -1) }",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do string.format('%s', s) end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do string.format('%q', s) end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do string.pack('s4', s) end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do string.unpack('c60000', s) end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do s:find('y', 1, true) end",
        "local s = string.rep('x', 60000) for i = 1, 1e9 do tonumber(s) end",
        "local s = string.rep('7', 60000) for i = 1, 1e9 do utf8.offset(s, 60000) end",
        "local s = 'a' .. string.rep('\\x80', 60000) local f = utf8.codes(s) "
        "for i = 1, 1e9 do f(s, 1) end",
        "local s = string.rep('x', 4000) for i = 1, 1e9 do utf8.codepoint(s, 1, -1) end",
        "local t = {} for i = 1, 1e9 do t[i % 64] = string.rep('z', 1000) end",
        "local a = string.rep('x', 60000) for i = 1, 1e9 do local b = a .. i end",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char src[1024];
        snprintf(src, sizeof src, ELIG("%s return true"), bodies[i]);
        as_pack_limits lim = {.instructions = 200000, .memory = 8 << 20, .cpu_ms = 60000};
        as_pack *p = fx_load(src, &lim, 0, NULL);
        fx f = fx_new();
        as_answer ans;
        as_error err;
        int rc = fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err);
        ck_assert_msg(rc == AS_ERULE_ERROR, "%s: rc %d", bodies[i], rc);
        ck_assert_msg(has(err.msg, "budget") || has(err.msg, "cap") || has(err.msg, "too many results"),
                      "%s: %s", bodies[i], err.msg);
        fx_free(&f);
        as__pack_unref(p);
    }
}
END_TEST

/* The thread CPU time of a call is the backstop for work inside one instruction no charge
 * sees (comparisons of long strings): with a 5 ms limit and a budget that would last
 * seconds, the limit ends the call. */
START_TEST(lua_engine_cpu_time_backstop)
{
    as_pack_limits lim = {.instructions = 0x7fffffff, .memory = 8 << 20, .cpu_ms = 5};
    as_pack *p = fx_load(ELIG("local a = string.rep('x', 65000) local b = a .. 'y' "
                              "while true do local _ = a < b end"),
                         &lim, 0, NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "time limit"), "%s", err.msg);
    /* and a pcall cannot swallow it */
    as__pack_unref(p);
    p = fx_load(ELIG("local a = string.rep('x', 65000) local b = a .. 'y' "
                     "while true do pcall(function() while true do local _ = a < b end end) end"),
                &lim, 0, NULL);
    ck_assert_int_eq(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "time limit"), "%s", err.msg);
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* docs/design.md#hooks-and-layers: no host address reaches a pack. */
START_TEST(lua_engine_no_addresses)
{
    as_answer ans;
    as_error err;
    ck_assert_int_eq(call_once(ELIG("return { error = 'not_eligible', message = tostring({}) .. '|' "
                                    ".. tostring(tostring) .. '|' .. tostring(request) .. '|' .. "
                                    "string.format('%s', {}) .. '|' .. tostring(setmetatable({}, "
                                    "{ __tostring = function() return 'mine' end })) .. '|' .. "
                                    "tostring(12) .. '|' .. tostring(nil) }"),
                               AS_HOOK_ELIGIBILITY, &ans, &err), 0);
    ck_assert_str_eq(ans.msg, "table|function|userdata|table|mine|12|nil");
    ck_assert_int_eq(call_once(ELIG("return string.format('%p', {})"), AS_HOOK_ELIGIBILITY, &ans, &err),
                     AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "%p"), "%s", err.msg);
    ck_assert_int_eq(call_once(ELIG("return string.format('%5p', print)"), AS_HOOK_ELIGIBILITY, &ans, &err),
                     AS_ERULE_ERROR);
}
END_TEST

/* docs/design.md#hooks-and-layers: no math.random; a pack that reaches for it is told why. */
START_TEST(lua_engine_no_math_random)
{
    as_answer ans;
    as_error err;
    ck_assert_int_eq(call_once(ELIG("return math.random(6)"), AS_HOOK_ELIGIBILITY, &ans, &err),
                     AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "deterministic"), "%s", err.msg);
    ck_assert_int_eq(call_once(ELIG("math.randomseed(1) return true"), AS_HOOK_ELIGIBILITY, &ans, &err),
                     AS_ERULE_ERROR);
    fx_load("local r = math.random() return { name = 'p', version = '1' }", &SMALL, AS_ERULE_ERROR, &err);
    ck_assert_msg(has(err.msg, "math.random is not available"), "%s", err.msg);
    /* the rest of math is there */
    ck_assert_int_eq(call_once(ELIG("if math.floor(2.5) == 2 and math.max(1, 3) == 3 and "
                                    "math.nope == nil then return true end"),
                               AS_HOOK_ELIGIBILITY, &ans, &err), 0);
    ck_assert_int_eq(ans.kind, AS_ANS_TRUE);
}
END_TEST

/* A shop's merchant packs share one memory budget (as_pack_limits.group). */
START_TEST(lua_engine_memory_group_is_shared)
{
    as_pack_group *g = as__lua_group_new(1 << 20);
    ck_assert_ptr_nonnull(g);
    as_pack_limits lim = {.instructions = 5000000, .memory = 8 << 20, .cpu_ms = 60000, .group = g};
    /* each state keeps 600 KiB between calls in an upvalue: one fits, two do not */
    const char *keep = "local kept return { name = 'p', version = '1', eligibility = function() "
                       "kept = {} for i = 1, 600 do kept[i] = string.rep('x', 1000 + i) end return true end }";
    as_pack *a = fx_load(keep, &lim, 0, NULL);
    as_pack *b = fx_load(keep, &lim, 0, NULL);
    size_t base = as__lua_group_used(g);
    ck_assert_uint_gt(base, 0);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_int_eq(fx_call(a, AS_HOOK_ELIGIBILITY, &f, &ans, &err), 0);
    ck_assert_int_eq(fx_call(b, AS_HOOK_ELIGIBILITY, &f, &ans, &err), AS_ERULE_ERROR);
    ck_assert_msg(has(err.msg, "shop's rule packs"), "%s", err.msg);
    ck_assert_uint_le(as__lua_group_used(g), 1 << 20);
    as__pack_unref(a);
    as__pack_unref(b);
    ck_assert_uint_eq(as__lua_group_used(g), 0);
    as__lua_group_unref(g);
    fx_free(&f);
}
END_TEST

static Suite *lua_engine_suite(void)
{
    Suite *s = suite_create("lua_engine");
    TCase *load = tcase_create("load");
    tcase_set_timeout(load, 20);
    tcase_add_test(load, lua_engine_loads_bundled_packs);
    tcase_add_test(load, lua_engine_platform_pack_answers);
    tcase_add_test(load, lua_engine_electronics_imei_check);
    tcase_add_test(load, lua_engine_unknown_field_is_bad_request);
    tcase_add_test(load, lua_engine_malformed_packs_are_bad_request);
    tcase_add_test(load, lua_engine_failing_chunk_is_rule_error);
    tcase_add_test(load, lua_engine_binary_chunk_refused);
    tcase_add_test(load, lua_engine_missing_file_is_io);
    tcase_add_test(load, lua_engine_oom_sweep_during_load);
    tcase_add_test(load, lua_engine_pack_refcount);
    tcase_add_test(load, lua_engine_pack_table_read_raw_under_budget);
    suite_add_tcase(s, load);

    TCase *calls = tcase_create("calls");
    tcase_set_timeout(calls, 20);
    tcase_add_test(calls, lua_engine_views_read_the_case);
    tcase_add_test(calls, lua_engine_views_are_read_only);
    tcase_add_test(calls, lua_engine_view_kept_past_its_call_fails);
    tcase_add_test(calls, lua_engine_answers_of_each_hook);
    tcase_add_test(calls, lua_engine_absent_hook_is_nil);
    tcase_add_test(calls, lua_engine_wrong_return_types_are_rule_error);
    tcase_add_test(calls, lua_engine_throw_is_rule_error_with_message);
    tcase_add_test(calls, lua_engine_answers_with_metatables_never_run_them);
    tcase_add_test(calls, lua_engine_numbers_convert_exactly);
    tcase_add_test(calls, lua_engine_text_answers_are_text);
    tcase_add_test(calls, lua_engine_failure_names_its_line);
    tcase_add_test(calls, lua_engine_no_addresses);
    tcase_add_test(calls, lua_engine_no_math_random);
    tcase_add_test(calls, lua_engine_memory_group_is_shared);
    suite_add_tcase(s, calls);

    TCase *sandbox = tcase_create("sandbox");
    tcase_set_timeout(sandbox, 30);
    tcase_add_test(sandbox, lua_engine_loop_forever_exhausts_budget);
    tcase_add_test(sandbox, lua_engine_loop_inside_pcall_still_fails);
    tcase_add_test(sandbox, lua_engine_xpcall_handler_loop_still_fails);
    tcase_add_test(sandbox, lua_engine_memory_bomb_hits_cap);
    tcase_add_test(sandbox, lua_engine_memory_recovers_after_bomb);
    tcase_add_test(sandbox, lua_engine_memory_cap_at_load);
    tcase_add_test(sandbox, lua_engine_sandbox_globals_are_nil);
    tcase_add_test(sandbox, lua_engine_sandbox_has_documented_libraries);
    tcase_add_test(sandbox, lua_engine_writing_a_global_fails);
    tcase_add_test(sandbox, lua_engine_writing_a_global_through_G_fails);
    tcase_add_test(sandbox, lua_engine_rawset_on_env_fails);
    tcase_add_test(sandbox, lua_engine_setmetatable_with_gc_refused);
    tcase_add_test(sandbox, lua_engine_raw_setmetatable_unreachable);
    suite_add_tcase(s, sandbox);

    /* These fail by timing out when a C call escapes the budget. */
    TCase *ccalls = tcase_create("c_calls");
    tcase_set_timeout(ccalls, 8);
    tcase_add_test(ccalls, lua_engine_pathological_pattern_is_bounded);
    tcase_add_test(ccalls, lua_engine_long_pattern_is_bounded);
    tcase_add_test(ccalls, lua_engine_huge_string_rep_loop_is_bounded);
    tcase_add_test(ccalls, lua_engine_library_calls_are_charged);
    tcase_add_test(ccalls, lua_engine_cpu_time_backstop);
    suite_add_tcase(s, ccalls);
    return s;
}

int main(void)
{
    return unit_run(lua_engine_suite(), 1);
}
