/* fuzz_hook_answer.c -- libFuzzer target: the input bytes are decoded, deterministically, into
 * a merchant rule pack whose hooks answer with generated Lua values -- nested and cyclic
 * tables, tables whose metatables (__index, __len, __pairs, __eq, __gc, ...) error or spin,
 * extreme numbers (math.maxinteger, mininteger, 2^63, NaN, inf, -0.0, 1e308), long strings,
 * strings with NUL or invalid UTF-8, functions, booleans. The bytes are never run as Lua: a
 * small recursive generator writes the source text. The pack is loaded for shop S1 on a fresh
 * runtime (bundled packs below it) and a case is driven through open and the actions after it
 * (agree, ship_return, confirm_return, inspect, refund, timeouts), so every hook's answer is
 * read by the host. Whatever the answers, each call returns and every case stays within the
 * engine's guarantees: refund 0 .. paid + return shipping + the order's shipping fee,
 * priority 0..AS_PRIORITY_MAX, a pending deadline now .. now + 365 days, version <= history,
 * the case renders.
 *
 * clang -fsanitize=fuzzer,address: scripts/fuzz fuzz_hook_answer. Built without libFuzzer it
 * is driven by replay.c over corpus_hook/, so the seeds run in every test build. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/aftersale.h"
#include "core/layers.h"
#include "core/runtime.h"
#include "core/sched.h"
#include "core/timefmt.h"

/* ---- the bytes --------------------------------------------------------------------------- */

typedef struct {
    const uint8_t *p;
    size_t n, at;
} bytes;

static unsigned next(bytes *b)
{
    return b->at < b->n ? b->p[b->at++] : 0;
}

/* ---- the generated source ---------------------------------------------------------------- */

typedef struct {
    char buf[16384];
    size_t len;
} text;

static void put(text *t, const char *s)
{
    size_t l = strlen(s);
    if (t->len + l >= sizeof t->buf) return; /* the generator closes what it opens: see room() */
    memcpy(t->buf + t->len, s, l);
    t->len += l;
    t->buf[t->len] = '\0';
}

/* Space left for more nesting; below it the generator writes leaves only. */
static int room(const text *t)
{
    return t->len + 2048 < sizeof t->buf;
}

static const char *const NUMS[] = {
    "0", "1", "-1", "math.maxinteger", "math.mininteger", "2^63", "-2^63", "(0/0)", "(1/0)",
    "(-1/0)", "-0.0", "1e308", "-1e308", "5e-324", "19900", "39800", "40300", "39799.5",
    "2^53", "(2^53+1)", "0x7fffffffffffffff", "0xffffffffffffffff", "(48*3600*1000)",
    "(365*86400*1000)", "(365*86400*1000+1)", "101", "100", "9007199254740993", "1e15", "3.0",
    "(math.maxinteger+1)", "(math.mininteger//-1)", "math.pi", "(-(0/0))", "math.huge",
};
static const char *const STRS[] = {
    "''", "'agree'", "'reject'", "'refund'", "'exchange'", "'repair'", "'not_eligible'",
    "'window_expired'", "'rule_error'", "'bad_request'", "'\\0'", "'a\\0b'", "'\\xff\\xfe'",
    "'\\xc0\\x80'", "'\\xed\\xa0\\x80'", "'fault'", "'10'", "'0x10'", "'1e3'",
    "'merchant_response'", "string.rep('m', 257)", "string.rep('m', 256)", "'x'",
    "'no_fault'", "'evidence_required'", "'amount_exceeds_paid'", "'\\r\\n'", "'\\u{10FFFF}'",
};
static const char *const KEYS[] = {
    "error", "message", "action", "reason", "merchant_response", "buyer_response",
    "escalation_window", "buyer_ship", "merchant_receive", "inspection", "merchant_ship",
    "repair", "buyer_confirm", "[1]", "[2]", "[0.5]", "['\\0']", "[true]", "[-1]", "bogus",
    "[math.maxinteger]", "[2^53]", "['error\\0']",
};
static const char *const METAS[] = {
    "__index", "__len", "__pairs", "__eq", "__newindex", "__gc", "__tostring", "__name",
    "__lt", "__le", "__concat", "__call", "__metatable", "__close", "__mode", "__unm",
};
static const char *const FIELDS[] = {
    "id", "paid", "refund_amount", "return_shipping", "shipping_fee", "state", "reason",
    "type", "items", "evidence", "requested_amount", "delivered_at", "priority", "opened_at",
    "cases", "bogus", "version", "buyer_credit",
};
static const char *const ARGS[] = {"a", "b", "c", "d"};
static const char *const OPS[] = {"+", "-", "*", "//", "/", "%", "..", "==", "<", "&", "<<"};

#define PICK(b, arr) (arr)[next(b) % (sizeof(arr) / sizeof(arr)[0])]

static void expr(bytes *b, text *t, int depth);

static void table(bytes *b, text *t, int depth)
{
    put(t, "{");
    unsigned n = next(b) % 5;
    for (unsigned i = 0; i < n; i++) {
        put(t, PICK(b, KEYS));
        put(t, " = ");
        expr(b, t, depth + 1);
        put(t, ", ");
    }
    put(t, "}");
}

static void metavalue(bytes *b, text *t, int depth)
{
    switch (next(b) % 6) {
    case 0: put(t, "boom"); break;
    case 1: put(t, "spin"); break;
    case 2: put(t, "function(...) return "); expr(b, t, depth + 1); put(t, " end"); break;
    case 3: table(b, t, depth + 1); break;
    case 4: put(t, PICK(b, STRS)); break;
    default: put(t, "function(s, k) return s[k] end"); break; /* __index recursing on itself */
    }
}

static void expr(bytes *b, text *t, int depth)
{
    unsigned k = next(b);
    if (depth > 5 || !room(t)) k %= 5; /* leaves only */
    char num[64];
    switch (k % 19) {
    case 0: put(t, "nil"); break;
    case 1: put(t, next(b) & 1 ? "true" : "false"); break;
    case 2: put(t, PICK(b, NUMS)); break;
    case 3: put(t, PICK(b, STRS)); break;
    case 4:
        snprintf(num, sizeof num, "%d", (int)(int16_t)(next(b) << 8 | next(b)) * (int)(next(b) % 8 + 1));
        put(t, num);
        break;
    case 5: table(b, t, depth); break;
    case 6: {
        put(t, "setmetatable(");
        table(b, t, depth);
        put(t, ", {");
        unsigned n = next(b) % 4 + 1;
        for (unsigned i = 0; i < n; i++) {
            put(t, PICK(b, METAS));
            put(t, " = ");
            metavalue(b, t, depth);
            put(t, ", ");
        }
        put(t, "})");
        break;
    }
    case 7: put(t, "function(...) return "); expr(b, t, depth + 1); put(t, " end"); break;
    case 8:
        put(t, PICK(b, ARGS));
        put(t, ".");
        put(t, PICK(b, FIELDS));
        break;
    case 9:
        put(t, "(");
        expr(b, t, depth + 1);
        put(t, " ");
        put(t, PICK(b, OPS));
        put(t, " ");
        expr(b, t, depth + 1);
        put(t, ")");
        break;
    case 10: snprintf(num, sizeof num, "deep(%u)", next(b) * 4); put(t, num); break;
    case 11: put(t, "cyc()"); break;
    case 12:
        snprintf(num, sizeof num, "string.rep(%s, %u)", PICK(b, STRS), 1u << (next(b) % 21));
        put(t, num);
        break;
    case 13:
        put(t, "{error = ");
        expr(b, t, depth + 1);
        put(t, ", message = ");
        expr(b, t, depth + 1);
        put(t, "}");
        break;
    case 14:
        put(t, "{");
        put(t, PICK(b, KEYS));
        put(t, " = ");
        expr(b, t, depth + 1);
        put(t, "}");
        break;
    case 15:
        put(t, "{action = ");
        put(t, next(b) & 1 ? "'agree'" : "'reject'");
        put(t, ", reason = ");
        expr(b, t, depth + 1);
        put(t, "}");
        break;
    case 16: put(t, "#"); put(t, PICK(b, ARGS)); put(t, ".items"); break;
    case 17: put(t, "(boom())"); break;
    default: put(t, "(spin())"); break;
    }
}

/* A statement before the answer: reads, writes and iterations of the views. */
static void stmt(bytes *b, text *t)
{
    const char *a = PICK(b, ARGS);
    char s[160];
    switch (next(b) % 8) {
    case 0: snprintf(s, sizeof s, "for k, v in pairs(%s) do end ", a); break;
    case 1: snprintf(s, sizeof s, "%s.%s = 1 ", a, FIELDS[next(b) % 18]); break;
    case 2: snprintf(s, sizeof s, "for i, v in ipairs(%s.items) do local _ = v.sku end ", a); break;
    case 3: snprintf(s, sizeof s, "local _ = tostring(%s) .. #tostring(%s.items) ", a, a); break;
    case 4: snprintf(s, sizeof s, "G = G or {} G[#G + 1] = %s ", a); break; /* a view kept */
    case 5: snprintf(s, sizeof s, "if G then local _ = G[1] and G[1].id end "); break;
    default: s[0] = '\0'; break;
    }
    put(t, s);
}

static const char *const HOOKS[] = {
    "eligibility", "refund_amount", "deadlines", "priority", "auto_decide",
    "inspection", "instant_refund", "on_inspection", "order_check",
};

static void pack(bytes *b, text *t)
{
    t->len = 0;
    t->buf[0] = '\0';
    put(t, "local boom = function() error('boom') end\n"
           "local spin = function() while true do end end\n"
           "local deep = function(n) local t = {} for i = 1, n do t = {t} end return t end\n"
           "local cyc = function() local t = {} t.t = t t[1] = t t.error = t return t end\n"
           "return { name = 'fz', version = '1',\n");
    unsigned present = next(b) | next(b) << 8;
    if (present == 0) present = 0x1ff;
    for (size_t h = 0; h < sizeof HOOKS / sizeof HOOKS[0]; h++) {
        if (!(present >> h & 1u)) continue;
        put(t, HOOKS[h]);
        put(t, " = function(a, b, c, d) ");
        if (next(b) % 3 == 0) stmt(b, t);
        put(t, "return ");
        expr(b, t, 0);
        put(t, " end,\n");
    }
    put(t, "}\n");
}

/* ---- the case ---------------------------------------------------------------------------- */

static const char *const ORDERS[] = {
    "{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"T1\",\"category\":"
    "\"apparel\",\"qty\":2,\"price\":19900}],\"shipping_fee\":500,\"buyer_credit\":800}",
    "{\"id\":\"O2\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"P1\",\"category\":"
    "\"electronics\",\"qty\":1,\"price\":359900,\"serial\":\"490154203237518\"}],"
    "\"shipping_fee\":1000}",
    "{\"id\":\"O3\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"F1\",\"category\":"
    "\"fresh_food\",\"qty\":1,\"price\":16000,\"live\":true}],\"shipping_fee\":300}",
    "{\"id\":\"O4\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"T2\",\"category\":"
    "\"apparel\",\"qty\":1,\"price\":9900}],\"shipping_fee\":800}",
};

/* The case each scenario opens: its order's events, then the open. */
static const struct {
    const char *events[2], *open;
} SCENARIOS[] = {
    {{"ship", "deliver"}, "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":"
                          "\"no_reason\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}"},
    {{"ship", "deliver"}, "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":"
                          "\"quality\",\"evidence\":[\"e1\"],\"items\":[{\"sku\":\"T1\",\"qty\":2}]}"},
    {{"ship", "deliver"}, "{\"id\":\"C1\",\"order\":\"O2\",\"type\":\"repair\",\"reason\":"
                          "\"quality\",\"evidence\":[\"e1\"],\"items\":[{\"sku\":\"P1\",\"qty\":1}]}"},
    {{NULL, NULL}, "{\"id\":\"C1\",\"order\":\"O4\",\"type\":\"refund_only\",\"reason\":"
                   "\"no_reason\",\"items\":[{\"sku\":\"T2\",\"qty\":1}]}"},
    {{"ship", "deliver"}, "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"partial_refund\",\"reason\":"
                          "\"quality\",\"evidence\":[\"e1\"],\"requested_amount\":5000,"
                          "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}"},
    {{"ship", "deliver"}, "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":"
                          "\"size_fit\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}"},
    {{"ship", "deliver"}, "{\"id\":\"C1\",\"order\":\"O3\",\"type\":\"refund_only\",\"reason\":"
                          "\"spoiled\",\"evidence\":[\"e1\"],\"items\":[{\"sku\":\"F1\",\"qty\":1}]}"},
    {{"ship", NULL}, "{\"id\":\"C1\",\"order\":\"O4\",\"type\":\"refund_only\",\"reason\":"
                     "\"not_received\",\"items\":[{\"sku\":\"T2\",\"qty\":1}]}"},
};

#define SHIP "{\"carrier\":\"SF\",\"tracking\":\"SF1\",\"shipping_cost\":1200}"
static const struct {
    const char *who, *action, *payload;
    int64_t advance_ms; /* > 0: advance the clock instead */
} STEPS[] = {
    {"merchant:S1", "agree", NULL, 0},
    {"buyer:B1", "ship_return", SHIP, 0},
    {"merchant:S1", "confirm_return", NULL, 0},
    {"merchant:S1", "inspect", "{\"result\":\"fault\"}", 0},
    {"merchant:S1", "inspect", "{\"result\":\"no_fault\"}", 0},
    {"platform", "refund_succeeded", NULL, 0},
    {"buyer:B1", "revise", "{\"reason\":\"quality\",\"evidence\":[\"e2\"]}", 0},
    {"merchant:S1", "offer", "{\"amount\":100}", 0},
    {"buyer:B1", "accept_offer", NULL, 0},
    {"merchant:S1", "reject", "{\"reason\":\"no\"}", 0},
    {"buyer:B1", "escalate", NULL, 0},
    {"platform", "rule_for_buyer", NULL, 0},
    {"platform", "rule_for_merchant", NULL, 0},
    {"merchant:S1", "ship_replacement", "{\"carrier\":\"SF\",\"tracking\":\"SF2\"}", 0},
    {"merchant:S1", "finish_repair", NULL, 0},
    {"logistics", "return_delivered", NULL, 0},
    {"buyer:B1", "confirm_receipt", NULL, 0},
    {"merchant:S1", "refund_instead", NULL, 0},
    {"platform", "refund_failed", "{\"reason\":\"bank\"}", 0},
    {NULL, NULL, NULL, AS_HOUR},
    {NULL, NULL, NULL, 3 * AS_DAY},
    {NULL, NULL, NULL, 11 * AS_DAY},
    {NULL, NULL, NULL, 40 * AS_DAY},
};
/* The way every case goes when nothing refuses: agree, return, receive, inspect, refund. */
static const int HAPPY[] = {0, 1, 2, 3, 5, 21};

static void check(as_runtime *rt)
{
    int64_t now = as_runtime_now(rt);
    size_t pos = 0;
    as_case *c;
    while ((c = as__strmap_next(&rt->cases, &pos)) != NULL) {
        int64_t cap = as__case_paid(c) + c->v.return_shipping + c->order->shipping_fee;
        if (c->v.refund_amount < 0 || c->v.refund_amount > cap) {
            fprintf(stderr, "fuzz_hook_answer: %s refund %lld outside 0..%lld\n", c->id,
                    (long long)c->v.refund_amount, (long long)cap);
            abort();
        }
        if (c->v.priority < 0 || c->v.priority > AS_PRIORITY_MAX) abort();
        if (as__sched_pending(&c->deadline) &&
            (c->deadline.due_ms < now || c->deadline.due_ms - now > AS_DURATION_MAX)) {
            fprintf(stderr, "fuzz_hook_answer: %s deadline %lld at now %lld\n", c->id,
                    (long long)c->deadline.due_ms, (long long)now);
            abort();
        }
        if (c->v.version > c->nhist) abort();
        char *j = as_case_get_json(rt, c->id);
        if (j == NULL) abort();
        as_free(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bytes b = {data, size, 0};
    unsigned scenario = next(&b) % (sizeof SCENARIOS / sizeof SCENARIOS[0]);
    unsigned nsteps = next(&b) % 8;
    unsigned steps[8];
    for (unsigned i = 0; i < nsteps; i++) steps[i] = next(&b);
    static text src;
    pack(&b, &src);
    if (getenv("FUZZ_HOOK_PRINT")) fprintf(stderr, "%s", src.buf); /* the pack, to read */

    /* a fresh runtime each time: a shop keeps at most AS_MAX_VERSIONS pack versions */
    as_options o = {.start_ms = 1772323200000LL, .auto_pay = (int)(scenario & 1),
                    .lua_instructions = 100000, .lua_memory = 8 << 20};
    as_error err = {0};
    as_runtime *rt = as_runtime_new(&o, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, AS_SOURCE_ROOT "/plugins", &err) != 0) {
        fprintf(stderr, "fuzz_hook_answer: %s\n", err.msg);
        abort();
    }
    int loaded = as_runtime_load_merchant_source(rt, "S1", src.buf, &err);
    if (getenv("FUZZ_HOOK_PRINT")) fprintf(stderr, "load: %d %s\n", loaded, loaded ? err.msg : "");
    if (loaded != 0 && strcmp(as_err_name(loaded), "unknown") == 0) abort();
    for (size_t i = 0; i < sizeof ORDERS / sizeof ORDERS[0]; i++) {
        int rc = as_order_create_json(rt, ORDERS[i], &err); /* order_check may refuse */
        if (rc != 0 && strcmp(as_err_name(rc), "unknown") == 0) abort();
    }
    const char *order = strstr(SCENARIOS[scenario].open, "\"O") + 1;
    char oid[3] = {order[0], order[1], '\0'};
    for (int i = 0; i < 2; i++)
        if (SCENARIOS[scenario].events[i]) as_order_event(rt, oid, SCENARIOS[scenario].events[i], &err);
    as_runtime_advance(rt, as_runtime_now(rt) + AS_HOUR);
    int rc = as_case_open_json(rt, "buyer:B1", SCENARIOS[scenario].open, &err);
    if (rc != 0 && strcmp(as_err_name(rc), "unknown") == 0) abort();
    check(rt);

    unsigned total = (unsigned)(sizeof HAPPY / sizeof HAPPY[0]) + nsteps;
    for (unsigned i = 0; i < total; i++) {
        unsigned s = i < nsteps ? steps[i] % (sizeof STEPS / sizeof STEPS[0])
                                : (unsigned)HAPPY[i - nsteps];
        if (STEPS[s].advance_ms > 0) {
            as_runtime_advance(rt, as_runtime_now(rt) + STEPS[s].advance_ms);
        } else {
            rc = as_case_act_json(rt, STEPS[s].who, "C1", STEPS[s].action, STEPS[s].payload, -1,
                                  &err);
            if (rc != 0 && strcmp(as_err_name(rc), "unknown") == 0) abort();
        }
        check(rt);
    }
    if (getenv("FUZZ_HOOK_PRINT")) {
        char *j = as_case_get_json(rt, "C1");
        fprintf(stderr, "case: %s\n", j ? j : "(not opened)");
        as_free(j);
    }
    as_runtime_free(rt);
    return 0;
}
