/* engine.c -- the engine benchmark (a benchmark, not a test: it asserts nothing).
 *
 * Prints `key value unit` lines:
 *   engine.transitions_per_sec  return-and-refund cases (open, agree, ship_return,
 *                               confirm_return, paid) through the engine with the bundled
 *                               Lua packs in force, virtual clock, one core
 *   engine.lua_hook_ns          one Lua hook call (the platform pack's deadlines hook)
 *   rules.lua_hook_ns           electronics' inspection hook, Lua pack
 *   rules.native_hook_ns        the same hook, native plugin
 *   engine.transitions_per_sec_3_layers  the first workload with a merchant pack in force
 *                               for every shop (bench/merchant.lua, constant tables)
 *   engine.transitions_per_sec_3_layers_alloc  the same with bench/merchant_alloc.lua,
 *                               which builds a fresh table per call
 *   engine.bytes_per_open_case  heap bytes per open case with its pending deadline, its
 *                               order included, at 1,000,000 open cases
 *   rules.hostile_hook_worst_ms the slowest single call, at the default budget, of merchant
 *                               deadlines hooks written to run as long as they can (loops,
 *                               long-string library calls, allocation, metamethod answers)
 * With BENCH_ONLY=transitions in the environment only the three transitions_per_sec figures
 * are measured (a few seconds: for many short paired runs of two builds).
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/layers.h"
#include "core/runtime.h"
#include "core/timefmt.h"

/* Shops in the workload; in the 3-layer run each has its own merchant pack (its own
 * lua_State), so every case meets a merchant layer. */
#define SHOPS 100

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const as_error *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err->msg);
    exit(1);
}

static as_runtime *runtime(const char *packs)
{
    as_options o = {.start_ms = 1772323200000LL, .auto_pay = 1};
    as_error err = {0};
    as_runtime *rt = as_runtime_new(&o, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, packs, &err)) die("runtime", &err);
    return rt;
}

static void make_order(as_runtime *rt, long i, int delivered)
{
    char json[256];
    as_error err = {0};
    snprintf(json, sizeof json,
             "{\"id\":\"O%ld\",\"shop\":\"S%ld\",\"buyer\":\"B%ld\",\"items\":[{\"sku\":\"T1\","
             "\"category\":\"apparel\",\"qty\":1,\"price\":19900}],\"shipping_fee\":0}",
             i, i % SHOPS, i % 100000);
    if (as_order_create_json(rt, json, &err)) die("order", &err);
    snprintf(json, sizeof json, "O%ld", i);
    if (delivered && as_order_event(rt, json, "deliver", &err)) die("deliver", &err);
}

/* The ids of synthetic case i, formatted before the clock starts. */
typedef struct ids {
    char c[24], o[24], buyer[24], shop[24];
} ids;

static ids *make_ids(long n)
{
    ids *v = malloc((size_t)n * sizeof *v);
    if (v == NULL) exit(1);
    for (long i = 0; i < n; i++) {
        snprintf(v[i].c, sizeof v[i].c, "C%ld", i);
        snprintf(v[i].o, sizeof v[i].o, "O%ld", i);
        snprintf(v[i].buyer, sizeof v[i].buyer, "B%ld", i % 100000);
        snprintf(v[i].shop, sizeof v[i].shop, "S%ld", i % SHOPS);
    }
    return v;
}

static void open_case(as_runtime *rt, const ids *id)
{
    as_cmd cmd;
    as_error err = {0};
    as__cmd_init(&cmd, (as_principal){AS_ROLE_BUYER, id->buyer}, AS_ACT_OPEN);
    cmd.case_id = id->c;
    cmd.order_id = id->o;
    cmd.type = AS_TYPE_RETURN_REFUND;
    cmd.reason = AS_REASON_NO_REASON;
    cmd.given = AS_P_REASON;
    cmd.nitems = 1;
    cmd.items[0] = (as_open_item){"T1", 1};
    if (as__case_open(rt, &cmd, &err)) die("open", &err);
}

static void act(as_runtime *rt, const ids *id, as_role role, as_action a)
{
    as_cmd cmd;
    as_error err = {0};
    as__cmd_init(&cmd, (as_principal){role, role == AS_ROLE_BUYER ? id->buyer : id->shop}, (int)a);
    cmd.case_id = id->c;
    if (a == AS_ACT_SHIP_RETURN) {
        cmd.text = "SF";
        cmd.tracking = "SF1";
    }
    if (as__case_act(rt, &cmd, &err)) die(as__action_name(a), &err);
}

/* One round: n return-and-refund cases on a fresh runtime. Returns transitions per second and
 * sets *calls_per to hook calls per transition. */
static double transitions_round(const char *packs, long n, const char *merchant,
                                double *calls_per)
{
    as_runtime *rt = runtime(packs);
    as_error err = {0};
    for (long s = 0; merchant && s < SHOPS; s++) {
        char shop[24];
        snprintf(shop, sizeof shop, "S%ld", s);
        if (as_runtime_load_merchant(rt, shop, merchant, &err)) die("merchant", &err);
    }
    ids *id = make_ids(n);
    for (long i = 0; i < n; i++) make_order(rt, i, 1);
    as_runtime_advance(rt, as_runtime_now(rt) + AS_HOUR);
    uint64_t t0 = rt->stats.transitions, h0 = rt->stats.hook_calls;
    double start = now_s();
    for (long i = 0; i < n; i++) {
        open_case(rt, &id[i]);
        act(rt, &id[i], AS_ROLE_MERCHANT, AS_ACT_AGREE);
        act(rt, &id[i], AS_ROLE_BUYER, AS_ACT_SHIP_RETURN);
        act(rt, &id[i], AS_ROLE_MERCHANT, AS_ACT_CONFIRM_RETURN);
    }
    double secs = now_s() - start;
    uint64_t tr = rt->stats.transitions - t0;
    *calls_per = (double)(rt->stats.hook_calls - h0) / tr;
    free(id);
    as_runtime_free(rt);
    return tr / secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of three rounds: one round is at the mercy of whatever else the machine does. */
static void bench_transitions(const char *packs, long n, const char *merchant, const char *suffix)
{
    double rate[3], calls = 0;
    for (int r = 0; r < 3; r++) rate[r] = transitions_round(packs, n, merchant, &calls);
    qsort(rate, 3, sizeof rate[0], cmp_double);
    printf("engine.transitions_per_sec%s %.0f transitions/s\n", suffix, rate[1]);
    printf("# median of 3 rounds of %ld cases; slowest %.0f, fastest %.0f\n", n, rate[0], rate[2]);
    printf("engine.hook_calls_per_transition%s %.2f calls\n", suffix, calls);
}

/* ns per call of hook `h` of `p`, on a delivered electronics order's quality case. */
static double hook_ns(as_runtime *rt, as_pack *p, as_hook h, long n)
{
    as_case *c = as__case_get(rt, "C1");
    as_hook_args a = {.order = c->order, .c = c, .v = &c->v, .now_ms = as_runtime_now(rt)};
    as_answer ans;
    as_error err;
    double start = now_s();
    for (long i = 0; i < n; i++)
        if (p->engine->call(p, h, &a, &ans, &err)) die("hook", &err);
    return (now_s() - start) * 1e9 / n;
}

/* A runtime holding one delivered electronics order O1 (shop S1) and its quality case C1. */
static as_runtime *quality_case(const char *packs)
{
    as_runtime *rt = runtime(packs);
    as_error err = {0};
    if (as_order_create_json(rt,
                             "{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":"
                             "\"P\",\"category\":\"electronics\",\"qty\":1,\"price\":359900}]}",
                             &err) ||
        as_order_event(rt, "O1", "deliver", &err) ||
        as_case_open_json(rt, "buyer:B1",
                          "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":"
                          "\"quality\",\"items\":[{\"sku\":\"P\",\"qty\":1}],\"evidence\":[\"p\"]}",
                          &err))
        die("setup", &err);
    return rt;
}

static void bench_hooks(const char *packs, const char *plugins, long n)
{
    as_runtime *rt = quality_case(packs);
    as_error err = {0};
    printf("engine.lua_hook_ns %.0f ns/call\n", hook_ns(rt, rt->platform, AS_HOOK_DEADLINES, n));
    printf("rules.lua_hook_ns %.0f ns/call\n",
           hook_ns(rt, as__category_pack(rt, "electronics"), AS_HOOK_INSPECTION, n));
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/electronics", plugins);
    if (as_runtime_load_native(rt, dir, "electronics.so", &err)) die("native", &err);
    printf("rules.native_hook_ns %.1f ns/call\n",
           hook_ns(rt, as__category_pack(rt, "electronics"), AS_HOOK_INSPECTION, n * 10));
    as_runtime_free(rt);
}

/* Hooks written to run as long as the sandbox lets them: each is a merchant's deadlines hook.
 * The budget must end every one of them; the figure is the worst wall time of one call. */
static const struct {
    const char *name, *body;
} hostile[] = {
    {"loop", "while true do end"},
    {"utf8_len", "local s = string.rep('a', 1 << 20) while true do utf8.len(s) end"},
    {"string_rep", "local s = 'x' while true do s = s .. string.rep(s, 2) end"},
    {"table_move", "return table.move({}, 1, 1 << 62, 1, {})"},
    {"table_concat", "local t = {} for i = 1, 1e9 do t[i] = 'abcdefgh' end"},
    {"sort", "local t = {} for i = 1, 3e5 do t[i] = -i end table.sort(t, function(a, b) "
             "return a > b end) while true do table.sort(t) end"},
    {"find", "local s = string.rep('a', 60000) while true do s:find('.-.-.-.-b') end"},
    {"format", "local s = string.rep('%5d', 9000) while true do s:format(table.unpack({}, 1, 9000)) end"},
    {"recursion", "local function f() return f() + 1 end return f()"},
    {"metatable_answer", "return setmetatable({}, {__index = function() while true do end end,"
                         " __pairs = function() while true do end end})"},
    {"gsub", "local s = string.rep('a', 60000) while true do s = s:gsub('a', 'aa') end"},
};

static double hostile_worst_ms(const char *packs, const char **worst_name)
{
    as_runtime *rt = quality_case(packs);
    as_error err = {0};
    as_case *c = as__case_get(rt, "C1");
    as_hook_args a = {.order = c->order, .c = c, .v = &c->v, .now_ms = as_runtime_now(rt)};
    double slowest = 0;
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        char src[1024];
        snprintf(src, sizeof src,
                 "return { name = 'hostile', version = '%zu', deadlines = function(case, order) %s "
                 "end }",
                 i + 1, hostile[i].body);
        if (as_runtime_load_merchant_source(rt, "S1", src, &err))
            die(hostile[i].name, &err);
        as_pack *p = as__shop_get(rt, "S1", 0)->merchant;
        for (int r = 0; r < 3; r++) {
            as_answer ans;
            double start = now_s();
            p->engine->call(p, AS_HOOK_DEADLINES, &a, &ans, &err); /* fails or answers nothing */
            double ms = (now_s() - start) * 1e3;
            if (ms > slowest) slowest = ms, *worst_name = hostile[i].name;
        }
    }
    as_runtime_free(rt);
    return slowest;
}

static void bench_memory(const char *packs, long n)
{
    as_runtime *rt = runtime(packs);
    ids *id = make_ids(n);
    make_order(rt, -1, 1); /* warm the interned strings and packs */
    struct mallinfo2 before = mallinfo2();
    for (long i = 0; i < n; i++) {
        make_order(rt, i, 1);
        open_case(rt, &id[i]);
    }
    struct mallinfo2 after = mallinfo2();
    if (rt->sched.len < (size_t)n) {
        fprintf(stderr, "bench: only %zu deadlines pending\n", rt->sched.len);
        exit(1);
    }
    /* arena bytes in use plus mmapped blocks (the big index arrays may be either) */
    double used = (double)(after.uordblks + after.hblkhd) - (double)(before.uordblks + before.hblkhd);
    printf("engine.bytes_per_open_case %.0f bytes\n", used / n);
    free(id);
    as_runtime_free(rt);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: bench_engine PACKS_DIR PLUGINS_DIR BENCH_DIR [CASES [OPEN_CASES]]\n");
        return 2;
    }
    const char *packs = argv[1], *plugins = argv[2];
    char merchant[4096], naive[4096];
    snprintf(merchant, sizeof merchant, "%s/merchant.lua", argv[3]);
    snprintf(naive, sizeof naive, "%s/merchant_alloc.lua", argv[3]);
    long n = argc > 4 ? atol(argv[4]) : 200000;
    long mem_n = argc > 5 ? atol(argv[5]) : 1000000;
    /* BENCH_ONLY=transitions: the three transition figures alone, for many short paired
     * runs of two builds */
    const char *only = getenv("BENCH_ONLY");
    int all = only == NULL || strcmp(only, "transitions") != 0;
    if (all) bench_hooks(packs, plugins, 5 * n);
    bench_transitions(packs, n, NULL, "");
    bench_transitions(packs, n, merchant, "_3_layers");
    bench_transitions(packs, n, naive, "_3_layers_alloc");
    if (!all) return 0;
    bench_memory(packs, mem_n);
    const char *worst = "";
    double ms = hostile_worst_ms(packs, &worst);
    printf("rules.hostile_hook_worst_ms %.1f ms\n", ms);
    printf("# the slowest of %zu hostile hooks, 3 calls each: %s\n",
           sizeof hostile / sizeof hostile[0], worst);
    return 0;
}
