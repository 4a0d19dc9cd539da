/* lua_engine.c -- the Lua rule engine: sandbox, views, hook calls. See lua_engine.h. */
#include "lua_engine.h"

#include <errno.h>
#include <limits.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/fields.h"
#include "../core/layers.h"
#include "../core/timefmt.h"

struct as_pack_group {
    size_t used, cap;
    int refs;
};

/* Why a call's budget is spent. */
enum { SPENT_NO, SPENT_BUDGET, SPENT_TIME };

/* The strings the host reads a hook's answer by, or passes to a hook, made once at load so
 * that calling a hook and reading its answer never allocate and so never raise: the answer is
 * read raw where it lies, with no second protected call. Deadline names follow KEY_DL. */
enum { KEY_ERROR, KEY_MESSAGE, KEY_ACTION, KEY_REASON, KEY_WHY, KEY_FAULT, KEY_NO_FAULT, KEY_DL,
       KEY_COUNT = KEY_DL + AS_DL_COUNT };
static const char *const key_names[KEY_DL] = {"error", "message", "action", "reason", "why",
                                              "fault", "no_fault"};

typedef struct lua_pack {
    lua_State *L;
    size_t mem_used, mem_cap;
    as_pack_group *group;     /* one reference, or NULL */
    long allocs, fail_alloc; /* fault injection for OOM sweeps */
    char where[AS_WHERE_MAX]; /* where_handler's file:line of the last call's error */
    int cap_hit;             /* 1: the last failed allocation was refused by the state's cap,
                              * 2: by the shop's, 3: it was a string above the string cap */
    int armed;               /* a call (or the chunk at load) runs under the budget */
    double charged;          /* work done in C and bytes allocated, in instruction units */
    long counted;            /* instructions counted by the hook in this call */
    int period;              /* the count hook's current period */
    long budget;
    long cpu_ns;             /* the CPU-time backstop per call */
    int64_t cpu_start;       /* thread CPU time at the hook's first firing in this call, or -1 */
    int exhausted;           /* SPENT_*: why the current call must end */
    int hook_ref[AS_HOOK_COUNT];
    int key_ref[KEY_COUNT]; /* the answer keys and argument strings, made at load */
    const as_hook_args *args;  /* the call in progress; NULL outside calls */
    uint32_t gen;              /* counts calls: an item proxy is valid in its own call only */
    int case_view, order_view; /* registry refs of the two view userdata */
    struct proxy_pool {
        int table, meta; /* registry refs: the pooled userdata, their metatable */
        int used, len;   /* handed out in this call, made so far */
    } lists, items;
} lua_pack;

static const char VIEW_CASE[] = "aftersale.case";
static const char VIEW_ORDER[] = "aftersale.order";
static const char VIEW_LIST[] = "aftersale.items";
static const char VIEW_ITEM[] = "aftersale.item";

/* Allocated bytes per instruction of budget, and bytes read by a C call per instruction. */
#define ALLOC_BYTES_PER_UNIT 16.0
#define READ_BYTES_PER_UNIT 8.0

/* ------------------------------------------------------------------------------------------
 * Memory groups
 * ---------------------------------------------------------------------------------------- */

as_pack_group *as__lua_group_new(size_t cap)
{
    as_pack_group *g = as__calloc(1, sizeof *g);
    if (g == NULL) return NULL;
    g->cap = cap;
    g->refs = 1;
    return g;
}

void as__lua_group_unref(as_pack_group *g)
{
    if (g && --g->refs == 0) as__free(g);
}

size_t as__lua_group_used(const as_pack_group *g)
{
    return g->used;
}

/* ------------------------------------------------------------------------------------------
 * Allocation and budget
 * ---------------------------------------------------------------------------------------- */

static void count_hook(lua_State *L, lua_Debug *ar);

/* Makes the next instruction meet the count hook, which ends the call (the allocator cannot
 * raise an error itself). */
static void stop_soon(lua_pack *lp)
{
    lua_sethook(lp->L, count_hook, LUA_MASKCOUNT, 1);
}

static int over_budget(const lua_pack *lp)
{
    return (double)lp->counted + lp->charged > (double)lp->budget;
}

/* Every byte a call allocates is charged (strings, tables, the host's views for the pack),
 * which covers concatenation and the collector's work; a refused allocation is charged the
 * full collection Lua runs before it gives up. A new string (Lua passes the object type in
 * osize when ptr is NULL) is refused above the string cap. */
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lua_pack *lp = ud;
    as_pack_group *g = lp->group;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        as__free(ptr);
        lp->mem_used -= old;
        if (g) g->used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        int refused = ptr == NULL && osize == LUA_TSTRING && nsize > AS_LUA_STRING_MAX + 64 ? 3
                      : lp->mem_used + grow > lp->mem_cap                                 ? 1
                      : g && g->used + grow > g->cap                                       ? 2
                                                                                           : 0;
        if (refused) {
            lp->cap_hit = refused;
            if (lp->armed) {
                lp->charged += (double)lp->mem_used / ALLOC_BYTES_PER_UNIT;
                if (over_budget(lp)) stop_soon(lp);
            }
            return NULL;
        }
        if (lp->armed) {
            lp->charged += (double)grow / ALLOC_BYTES_PER_UNIT;
            if (over_budget(lp)) stop_soon(lp);
        }
    }
    /* persistent: Lua retries a failed allocation after a full collection, so failing only
     * the n-th would be absorbed */
    if (lp->fail_alloc && ++lp->allocs >= lp->fail_alloc) return NULL;
    void *np = as__realloc(ptr, nsize);
    /* Lua assumes a shrinking allocation never fails (lua_Alloc, manual 4.6); the block it
     * has is big enough, so keep it. A failed growth leaves cap_hit 0: the host's memory. */
    if (np == NULL && nsize <= old) np = ptr;
    if (np == NULL) return NULL;
    lp->mem_used = lp->mem_used - old + nsize;
    if (g) g->used = g->used - old + nsize;
    return np;
}

static lua_pack *pack_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Raises the error that ends a call whose budget is spent. */
static int spent_error(lua_State *L, lua_pack *lp)
{
    if (lp->exhausted == SPENT_TIME)
        return luaL_error(L, "time limit exceeded (%I ms of CPU in one call)",
                          (lua_Integer)(lp->cpu_ns / 1000000));
    return luaL_error(L, "instruction budget exceeded (%I instructions)", (lua_Integer)lp->budget);
}

/* Runs every `period` instructions and counts them; the period shrinks near the end so the
 * budget holds to the instruction. The thread's CPU time is the backstop for work inside one
 * instruction that no charge sees; it is read from the first firing on, so short calls never
 * pay for the clock. Once the budget is spent the hook re-arms itself for every instruction,
 * so a script's pcall that catches the error runs one instruction and meets it again
 * (Redis's luaMaskCountHook). */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_pack *lp = pack_of(L);
    if (lp->exhausted == SPENT_NO) {
        lp->counted += lp->period;
        int64_t now = thread_cpu_ns();
        if (lp->cpu_start < 0) lp->cpu_start = now;
        if (over_budget(lp))
            lp->exhausted = SPENT_BUDGET;
        else if (now - lp->cpu_start > lp->cpu_ns)
            lp->exhausted = SPENT_TIME;
        if (lp->exhausted == SPENT_NO) {
            double left = (double)lp->budget - (double)lp->counted - lp->charged;
            int period = left < AS_LUA_HOOK_PERIOD ? (int)left + 1 : AS_LUA_HOOK_PERIOD;
            if (period != lp->period) {
                lp->period = period;
                lua_sethook(L, count_hook, LUA_MASKCOUNT, period);
            }
            return;
        }
    }
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    lp->period = 1;
    spent_error(L, lp);
}

static void arm_budget(lua_pack *lp)
{
    lp->exhausted = SPENT_NO;
    lp->charged = 0;
    lp->counted = 0;
    lp->cap_hit = 0;
    lp->cpu_start = -1;
    lp->armed = 1;
    lp->period = lp->budget < AS_LUA_HOOK_PERIOD ? (int)lp->budget : AS_LUA_HOOK_PERIOD;
    lua_sethook(lp->L, count_hook, LUA_MASKCOUNT, lp->period);
}

static void disarm_budget(lua_pack *lp)
{
    lp->armed = 0;
    lua_sethook(lp->L, NULL, 0, 0);
}

/* ------------------------------------------------------------------------------------------
 * Sandboxed library
 * ---------------------------------------------------------------------------------------- */

/* pcall and xpcall that cannot swallow a spent budget. xpcall's handler runs after the
 * unwinding, as an ordinary call inside the budget, not as a message handler (which Lua runs
 * with hooks off). */
static int sandbox_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    int st = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    if (pack_of(L)->exhausted) return lua_error(L);
    lua_pushboolean(L, st == LUA_OK);
    lua_insert(L, 1);
    return lua_gettop(L);
}

static int sandbox_xpcall(lua_State *L)
{
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_remove(L, 2);
    lua_insert(L, 1); /* h, f, args... */
    int st = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
    if (pack_of(L)->exhausted) return lua_error(L);
    if (st == LUA_OK) {
        lua_pushboolean(L, 1);
        lua_replace(L, 1); /* true, results... */
        return lua_gettop(L);
    }
    lua_call(L, 1, 1); /* h(err), inside the budget */
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

static int sandbox_setmetatable(lua_State *L)
{
    if (lua_istable(L, 2)) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in rule packs");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the real setmetatable, reachable only here */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* tostring that never shows an address (docs/design.md#hooks-and-layers): a table, function or
 * userdata prints as its type name unless its metatable has __tostring. */
static int sandbox_tostring(lua_State *L)
{
    luaL_checkany(L, 1);
    int t = lua_type(L, 1);
    if (t == LUA_TNUMBER || t == LUA_TSTRING || t == LUA_TBOOLEAN || t == LUA_TNIL) {
        luaL_tolstring(L, 1, NULL);
        return 1;
    }
    if (luaL_getmetafield(L, 1, "__tostring") != LUA_TNIL) {
        lua_pushvalue(L, 1);
        lua_call(L, 1, 1);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            return luaL_error(L, "'__tostring' must return a string");
        return 1;
    }
    lua_pushstring(L, lua_typename(L, t));
    return 1;
}

/* Work done inside C library calls never meets the count hook: a pattern can backtrack
 * O(n^(q+1)) steps over an n-byte subject with q quantifiers, string.rep writes megabytes
 * in one instruction, table.move loops over any range it is given. Each such function is
 * wrapped: its worst case is charged to the call's budget before it runs, and the call fails
 * like the count hook once instructions plus charges pass the budget. */
static int charge(lua_State *L, double cost, const char *what)
{
    lua_pack *lp = pack_of(L);
    lp->charged += cost;
    if (!over_budget(lp)) return 0;
    lp->exhausted = SPENT_BUDGET;
    stop_soon(lp);
    return luaL_error(L, "instruction budget exceeded by %s", what);
}

/* The length of argument i when it is a string (no conversion), else 0. */
static double arg_len(lua_State *L, int i)
{
    return lua_type(L, i) == LUA_TSTRING ? (double)lua_rawlen(L, i) : 0;
}

static double all_bytes(lua_State *L)
{
    double n = 0;
    for (int i = 1, top = lua_gettop(L); i <= top; i++) n += arg_len(L, i);
    return n / READ_BYTES_PER_UNIT + 1;
}

static double arg_count(lua_State *L)
{
    return (double)lua_gettop(L) + 1;
}

/* An optional integer argument as a double (Lua's own check reports a bad one). */
static double opt_num(lua_State *L, int i, double def)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, i, &ok);
    return ok ? (double)v : def;
}

static double pattern_cost(const char *p, size_t plen, size_t n)
{
    int q = 0;
    for (size_t i = 0; i < plen; i++) {
        if (p[i] == '%') {
            i++;
            if (i < plen && (p[i] == 'b' || p[i] == 'f')) q++;
        } else if (p[i] == '*' || p[i] == '+' || p[i] == '-' || p[i] == '?') {
            q++;
        }
    }
    double base = (double)n + 1, cost = base * ((double)plen + 1);
    for (int i = 0; i < q && cost < 1e18; i++) cost *= base;
    return cost;
}

static double match_cost(lua_State *L, int find)
{
    size_t n, plen;
    luaL_checklstring(L, 1, &n);
    const char *pat = luaL_checklstring(L, 2, &plen);
    if (find && lua_toboolean(L, 4)) return (double)n + (double)plen; /* a plain search */
    return pattern_cost(pat, plen, n);
}

static double find_cost(lua_State *L)
{
    return match_cost(L, 1);
}

static double pattern_arg_cost(lua_State *L)
{
    return match_cost(L, 0);
}

static double rep_cost(lua_State *L)
{
    size_t len, seplen = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);
    double bytes = n > 0 ? (double)n * (double)(len + seplen) : 0;
    if (bytes > AS_LUA_STRING_MAX)
        luaL_error(L, "memory cap exceeded (string.rep of %f bytes; a string is at most %d)",
                   bytes, AS_LUA_STRING_MAX);
    return (bytes + (n > 0 ? (double)n : 0)) / ALLOC_BYTES_PER_UNIT;
}

/* The elements i..j of a sequence of n (Lua's relative positions), for sub, byte and
 * utf8.codepoint; more than AS_LUA_MAX_RESULTS values at once is refused for the latter two. */
static double span(lua_State *L, double def_j)
{
    double n = arg_len(L, 1);
    double i = opt_num(L, 2, 1), j = opt_num(L, 3, def_j == 0 ? i : def_j);
    if (i < 0) i = n + i + 1;
    if (j < 0) j = n + j + 1;
    if (i < 1) i = 1;
    if (j > n) j = n;
    return j >= i ? j - i + 1 : 0;
}

static double results(lua_State *L, double n)
{
    if (n > AS_LUA_MAX_RESULTS)
        luaL_error(L, "too many results (%f; a call returns at most %d values)", n,
                   AS_LUA_MAX_RESULTS);
    return n + 1;
}

static double sub_cost(lua_State *L)
{
    return span(L, -1) / READ_BYTES_PER_UNIT + 1;
}

static double byte_cost(lua_State *L)
{
    return results(L, span(L, 0));
}

/* utf8.codepoint(s, i, j): j defaults to i, as for string.byte */
static double codepoint_cost(lua_State *L)
{
    return results(L, span(L, 0));
}

/* A sequence's length as the library sees it (__len included: Lua code under the budget). */
static double seq_len(lua_State *L, int i)
{
    return lua_type(L, i) == LUA_TTABLE ? (double)luaL_len(L, i) : 0;
}

static double concat_cost(lua_State *L)
{
    double i = opt_num(L, 3, 1), j = lua_isnoneornil(L, 4) ? seq_len(L, 1) : opt_num(L, 4, 0);
    return (j >= i ? j - i + 1 : 0) + arg_len(L, 2) / READ_BYTES_PER_UNIT + 1;
}

static double insert_cost(lua_State *L)
{
    if (lua_gettop(L) != 3) return 2;
    double e = seq_len(L, 1) + 1, pos = opt_num(L, 2, e);
    return (e >= pos ? e - pos : 0) + 2;
}

static double remove_cost(lua_State *L)
{
    double size = seq_len(L, 1), pos = opt_num(L, 2, size);
    return (size >= pos ? size - pos : 0) + 2;
}

static double move_cost(lua_State *L)
{
    double f = opt_num(L, 2, 0), e = opt_num(L, 3, 0);
    return (e >= f ? e - f + 1 : 0) + 1;
}

static double sort_cost(lua_State *L)
{
    double n = seq_len(L, 1);
    return n > 1 ? n * (log2(n) + 1) : 1;
}

static double unpack_cost(lua_State *L)
{
    double i = opt_num(L, 2, 1), j = lua_isnoneornil(L, 3) ? seq_len(L, 1) : opt_num(L, 3, 0);
    return results(L, j >= i ? j - i + 1 : 0);
}

/* utf8.codes' iterator skips the continuation bytes after position i: an O(n) step when a
 * script calls it by hand at the start of a run of them. */
static double codes_step_cost(lua_State *L)
{
    size_t n;
    const char *s = lua_tolstring(L, 1, &n);
    lua_Integer i = lua_tointegerx(L, 2, NULL);
    size_t k = i > 0 && (size_t)i < n ? (size_t)i : n, run = 0;
    while (s && k + run < n && ((unsigned char)s[k + run] & 0xC0) == 0x80) run++;
    return (double)run / READ_BYTES_PER_UNIT + 1;
}

typedef struct charged_fn {
    const char *lib, *name;
    double (*cost)(lua_State *L);
} charged_fn;

/* upvalue 1: the library function; upvalue 2: its charged_fn */
static int charged_call(lua_State *L)
{
    const charged_fn *c = lua_touserdata(L, lua_upvalueindex(2));
    charge(L, c->cost(L), c->name);
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

static const charged_fn codes_step = {"utf8", "utf8.codes", codes_step_cost};

/* Pushes a charged closure of the C function at `idx`. */
static void push_charged(lua_State *L, int idx, const charged_fn *c)
{
    lua_pushvalue(L, idx);
    lua_pushlightuserdata(L, (void *)c);
    lua_pushcclosure(L, charged_call, 2);
}

/* utf8.codes, whose iterator is charged per step */
static int charged_codes(lua_State *L)
{
    int n = lua_tocfunction(L, lua_upvalueindex(1))(L);
    push_charged(L, -n, &codes_step);
    lua_replace(L, -n - 1);
    return n;
}

/* string.format without %p (an address) and with %s of a table, function or userdata as
 * sandbox_tostring prints it; charged for its arguments' bytes and each conversion. */
static int sandbox_format(lua_State *L)
{
    size_t flen;
    const char *f = luaL_checklstring(L, 1, &flen);
    double cost = (double)flen;
    static const char flags[] = "-+ #0123456789.";
    int arg = 1;
    for (size_t i = 0; i < flen; i++) {
        if (f[i] != '%') continue;
        if (++i < flen && f[i] == '%') continue;
        while (i < flen && memchr(flags, f[i], sizeof flags - 1)) i++;
        if (i == flen) break; /* the library reports the incomplete conversion */
        if (f[i] == 'p') return luaL_error(L, "string.format: '%%p' is not allowed in rule packs");
        if (++arg > lua_gettop(L)) break;
        int t = lua_type(L, arg);
        if (f[i] == 's' && t != LUA_TSTRING && t != LUA_TNUMBER) {
            lua_pushcfunction(L, sandbox_tostring);
            lua_pushvalue(L, arg);
            lua_call(L, 1, 1);
            lua_replace(L, arg);
        }
        cost += 64 + arg_len(L, arg);
    }
    charge(L, cost / READ_BYTES_PER_UNIT, "string.format");
    return lua_tocfunction(L, lua_upvalueindex(1))(L);
}

static const charged_fn charged_fns[] = {
    {"string", "find", find_cost},
    {"string", "match", pattern_arg_cost},
    {"string", "gmatch", pattern_arg_cost},
    {"string", "gsub", pattern_arg_cost},
    {"string", "rep", rep_cost},
    {"string", "sub", sub_cost},
    {"string", "byte", byte_cost},
    {"string", "char", arg_count},
    {"string", "upper", all_bytes},
    {"string", "lower", all_bytes},
    {"string", "reverse", all_bytes},
    {"string", "pack", all_bytes},
    {"string", "unpack", all_bytes},
    {"string", "packsize", all_bytes},
    {"table", "concat", concat_cost},
    {"table", "insert", insert_cost},
    {"table", "remove", remove_cost},
    {"table", "move", move_cost},
    {"table", "sort", sort_cost},
    {"table", "unpack", unpack_cost},
    {"table", "pack", arg_count},
    {"utf8", "char", arg_count},
    {"utf8", "codepoint", codepoint_cost},
    {"utf8", "len", all_bytes},
    {"utf8", "offset", all_bytes},
    {LUA_GNAME, "tonumber", all_bytes},
    {LUA_GNAME, "select", arg_count},
    {NULL, NULL, NULL},
};

/* Replaces lib.fn (the global table for LUA_GNAME) by `wrap` with upvalues (fn, spec). */
static void wrap_fn(lua_State *L, const char *lib, const char *fn, lua_CFunction wrap,
                    const charged_fn *spec)
{
    if (strcmp(lib, LUA_GNAME) == 0)
        lua_pushglobaltable(L);
    else
        lua_getglobal(L, lib);
    lua_getfield(L, -1, fn);
    lua_pushlightuserdata(L, (void *)spec);
    lua_pushcclosure(L, wrap, 2);
    lua_setfield(L, -2, fn);
    lua_pop(L, 1);
}

static void charge_c_calls(lua_State *L)
{
    for (const charged_fn *c = charged_fns; c->lib; c++) wrap_fn(L, c->lib, c->name, charged_call, c);
    wrap_fn(L, "string", "format", sandbox_format, NULL);
    wrap_fn(L, "utf8", "codes", charged_codes, NULL);
}

static int as_local_day(lua_State *L)
{
    lua_pushinteger(L, as__local_day(luaL_checkinteger(L, 1)));
    return 1;
}

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "rule packs may not write globals (tried to set '%s')",
                      lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "?");
}

static int math_index(lua_State *L)
{
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
    if (strcmp(k, "random") == 0 || strcmp(k, "randomseed") == 0)
        return luaL_error(L,
                          "math.%s is not available: rule packs are deterministic "
                          "(docs/design.md#hooks-and-layers)",
                          k);
    return 0;
}

/* Lua calls this on an error outside any protected call, then aborts the process. Every
 * call into a pack state is protected, so this only records the broken promise. */
static int at_panic(lua_State *L)
{
    const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    fprintf(stderr, "aftersale: unprotected error in a rule pack state: %s\n", m);
    return 0;
}

/* Opens the chosen libraries (a copied linit.c table), removes the doors, and seals _G
 * behind a read-only proxy that becomes the chunk's _ENV. Runs in protected mode. */
static int open_sandbox(lua_State *L)
{
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},       {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_STRLIBNAME, luaopen_string}, {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8},  {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->func; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    /* rawset would write into the read-only _ENV proxy itself */
    static const char *const removed[] = {"load", "loadfile", "dofile", "collectgarbage", "print",
                                          "require", "rawset", NULL};
    for (const char *const *r = removed; *r; r++) {
        lua_pushnil(L);
        lua_setglobal(L, *r);
    }
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    /* math.random and randomseed would make answers differ between runs: gone, and a pack
     * that still reaches for them learns why */
    lua_getglobal(L, "math");
    lua_pushnil(L);
    lua_setfield(L, -2, "random");
    lua_pushnil(L);
    lua_setfield(L, -2, "randomseed");
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, math_index);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    charge_c_calls(L);
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, sandbox_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_register(L, "pcall", sandbox_pcall);
    lua_register(L, "xpcall", sandbox_xpcall);
    lua_register(L, "tostring", sandbox_tostring);

    lua_createtable(L, 0, 3);
    lua_pushinteger(L, AS_HOUR);
    lua_setfield(L, -2, "HOUR");
    lua_pushinteger(L, AS_DAY);
    lua_setfield(L, -2, "DAY");
    lua_pushcfunction(L, as_local_day);
    lua_setfield(L, -2, "local_day");
    lua_setglobal(L, "as");

    /* _ENV proxy: reads fall through to _G, writes fail, the metatable is hidden. */
    lua_newtable(L);
    lua_createtable(L, 0, 3);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    /* _G names the proxy too, so `_G.x = 1` meets the same refusal */
    lua_pushvalue(L, -1);
    lua_setglobal(L, LUA_GNAME);
    /* the strings' metatable would hand out the real string table */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    return 1;
}

/* ------------------------------------------------------------------------------------------
 * Views: read-only userdata whose __index reads the C structs of the call in progress
 * ---------------------------------------------------------------------------------------- */

static const as_hook_args *view_args(lua_State *L)
{
    const as_hook_args *a = pack_of(L)->args;
    if (a == NULL) luaL_error(L, "a case or order view was used outside its hook call");
    return a;
}

/* Item lists and items are proxies too, handed out on access from a per-pack pool that
 * every call starts afresh, so a hook allocates nothing to read them. A proxy is stamped
 * with its call: one a script kept in an upvalue errs in a later call, or (once the pool
 * hands the same object out again) reads that call's data, never freed memory. A case's
 * items carry their order line's fields. */
typedef struct item_list {
    uint32_t gen;
    as_field_view view; /* AS_FV_ORDER: the order's lines; AS_FV_CASE: the case's items */
    as_field_ctx x;
} item_list;

typedef struct item_ref {
    uint32_t gen;
    as_field_ctx x;
} item_ref;

static void check_gen(lua_State *L, uint32_t gen)
{
    lua_pack *lp = pack_of(L);
    if (lp->args == NULL || gen != lp->gen)
        luaL_error(L, "an item view was used outside its hook call");
}

/* Pushes the pool's next proxy (making one when all are in use) and returns it. */
static void *pooled(lua_State *L, struct proxy_pool *pool, size_t size)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, pool->table);
    if (pool->used < pool->len) {
        lua_rawgeti(L, -1, ++pool->used);
    } else {
        lua_newuserdatauv(L, size, 0);
        lua_rawgeti(L, LUA_REGISTRYINDEX, pool->meta);
        lua_setmetatable(L, -2);
        lua_pushvalue(L, -1);
        /* counted once stored: a rawseti that raises (out of memory) must not leave a hole
         * that the next call would take for a proxy */
        lua_rawseti(L, -3, (lua_Integer)pool->len + 1);
        pool->used = ++pool->len;
    }
    lua_remove(L, -2);
    return lua_touserdata(L, -1);
}

static void push_items(lua_State *L, as_field_view view, const as_field_ctx *x)
{
    lua_pack *lp = pack_of(L);
    item_list *l = pooled(L, &lp->lists, sizeof *l);
    *l = (item_list){lp->gen, view, *x};
}

static int list_len(lua_State *L)
{
    const item_list *l = lua_touserdata(L, 1);
    check_gen(L, l->gen);
    as_field_value n = {0};
    as__field_get(l->view, AS__F_ITEMS, &l->x, &n);
    lua_pushinteger(L, n.i);
    return 1;
}

static int list_index(lua_State *L)
{
    const item_list *l = lua_touserdata(L, 1);
    check_gen(L, l->gen);
    lua_Integer i = lua_tointeger(L, 2);
    as_field_ctx e;
    if (i < 1 || i > INT_MAX || as__field_item(l->view, &l->x, (int)(i - 1), &e) != 0) return 0;
    lua_pack *lp = pack_of(L);
    item_ref *r = pooled(L, &lp->items, sizeof *r);
    *r = (item_ref){lp->gen, e};
    return 1;
}

static void push_field(lua_State *L, as_field_view view, const as_field_ctx *x,
                       const as_field_value *val);

/* The order's other cases, each a table of the case rows flagged AS_FF_EARLIER. */
static void push_order_cases(lua_State *L, const as_field_ctx *x, int n)
{
    int nrows, nkeys = 0;
    const as_field_row *rows = as__field_rows(AS_FV_CASE, &nrows);
    for (int r = 0; r < nrows; r++) nkeys += (rows[r].flags & AS_FF_EARLIER) != 0;
    lua_createtable(L, n, 0);
    int i = 0;
    for (const as_case *k = NULL; (k = as__field_next_case(x->order, x->c, k)) != NULL;) {
        as_field_ctx kx = {.order = x->order, .c = k, .v = &k->v};
        lua_createtable(L, 0, nkeys);
        for (int r = 0; r < nrows; r++) {
            as_field_value val;
            if (!(rows[r].flags & AS_FF_EARLIER) || !as__field_get(AS_FV_CASE, rows[r].id, &kx, &val))
                continue;
            push_field(L, AS_FV_CASE, &kx, &val);
            lua_setfield(L, -2, rows[r].key);
        }
        lua_rawseti(L, -2, ++i);
    }
}

static void push_field(lua_State *L, as_field_view view, const as_field_ctx *x,
                       const as_field_value *val)
{
    switch (val->kind) {
    case AS_FK_INT: lua_pushinteger(L, val->i); break;
    case AS_FK_BOOL: lua_pushboolean(L, (int)val->i); break;
    case AS_FK_STR: lua_pushstring(L, val->s); break;
    case AS_FK_ITEMS: push_items(L, view, x); break;
    case AS_FK_STRS:
        lua_createtable(L, (int)val->i, 0);
        for (int i = 0; i < val->i; i++) {
            lua_pushstring(L, val->strs[i]);
            lua_rawseti(L, -2, i + 1);
        }
        break;
    case AS_FK_CASES: push_order_cases(L, x, (int)val->i); break;
    }
}

/* A view's __index: the schema's row of the key, if the Lua view has it, read and pushed;
 * nothing (nil) for an unknown key or an absent value. */
static int index_view(lua_State *L, as_field_view view, const as_field_ctx *x)
{
    size_t len;
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
    const as_field_row *row = k ? as__field_find(view, k, len) : NULL;
    as_field_value val;
    if (row == NULL || !(row->flags & AS_FF_LUA) || !as__field_get(view, row->id, x, &val))
        return 0;
    switch (val.kind) { /* the scalars here, the lists in push_field */
    case AS_FK_INT: lua_pushinteger(L, val.i); break;
    case AS_FK_STR: lua_pushstring(L, val.s); break;
    default: push_field(L, view, x, &val); break;
    }
    return 1;
}

static int item_index(lua_State *L)
{
    const item_ref *r = lua_touserdata(L, 1);
    check_gen(L, r->gen);
    return index_view(L, AS_FV_ITEM, &r->x);
}

static int order_index(lua_State *L)
{
    const as_hook_args *a = view_args(L);
    if (a->order == NULL) return 0;
    return index_view(L, AS_FV_ORDER, &(as_field_ctx){.order = a->order, .c = a->c});
}

static int case_index(lua_State *L)
{
    const as_hook_args *a = view_args(L);
    if (a->c == NULL) return 0;
    return index_view(L, AS_FV_CASE, &(as_field_ctx){.order = a->c->order, .c = a->c, .v = a->v});
}

static int view_newindex(lua_State *L)
{
    return luaL_error(L, "case and order views are read-only");
}

/* Pushes a sealed metatable for proxies: reads through `index`, writes refused. */
static void push_meta(lua_State *L, const char *tname, lua_CFunction index, lua_CFunction len)
{
    luaL_newmetatable(L, tname);
    lua_pushcfunction(L, index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, view_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    if (len) {
        lua_pushcfunction(L, len);
        lua_setfield(L, -2, "__len");
    }
}

/* The metatable above, kept in the registry; returns its reference. */
static int make_meta(lua_State *L, const char *tname, lua_CFunction index, lua_CFunction len)
{
    push_meta(L, tname, index, len);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A view: an empty userdata under that metatable, kept in the registry. */
static int make_view(lua_State *L, const char *tname, lua_CFunction index)
{
    lua_newuserdatauv(L, 0, 0);
    push_meta(L, tname, index, NULL);
    lua_setmetatable(L, -2);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ------------------------------------------------------------------------------------------
 * Loading a pack
 * ---------------------------------------------------------------------------------------- */

static int hook_from(const char *k)
{
    for (int h = 0; h < AS_HOOK_COUNT; h++)
        if (strcmp(as__hook_name(h), k) == 0) return h;
    return -1;
}

/* t[k] without metamethods: the host never runs pack code by reading a pack's value. */
static int raw_field(lua_State *L, int t, const char *k)
{
    lua_pushstring(L, k);
    return lua_rawget(L, t);
}

typedef struct load_ctx {
    const char *src;
    size_t len;
    const char *chunkname;
    as_pack *pack;
    as_error *err;
    int code;
} load_ctx;

static int fail(load_ctx *x, int code, const char *fmt, const char *a)
{
    x->code = as__err(x->err, code, fmt, x->chunkname, a);
    return 0;
}

/* Validates the pack table at the top of the stack and records its hooks. Runs under the
 * chunk's budget and reads raw, so a metatable on the pack table runs nothing. */
static int read_pack_table(lua_State *L, load_ctx *x, lua_pack *lp)
{
    if (lua_type(L, -1) != LUA_TTABLE)
        return fail(x, AS_EBAD_REQUEST, "%s: a rule pack must return a table%s", "");
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return fail(x, AS_EBAD_REQUEST, "%s: the pack table has a non-string key%s", "");
        const char *k = lua_tostring(L, -2);
        int h = hook_from(k);
        if (h >= 0) {
            if (lua_type(L, -1) != LUA_TFUNCTION)
                return fail(x, AS_EBAD_REQUEST, "%s: hook '%s' must be a function", k);
            lua_pushvalue(L, -1);
            lp->hook_ref[h] = luaL_ref(L, LUA_REGISTRYINDEX);
        } else if (strcmp(k, "name") == 0 || strcmp(k, "version") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                return fail(x, AS_EBAD_REQUEST, "%s: '%s' must be a string", k);
        } else if (strcmp(k, "categories") == 0) {
            if (lua_type(L, -1) != LUA_TTABLE)
                return fail(x, AS_EBAD_REQUEST, "%s: '%s' must be a list of strings", k);
        } else {
            return fail(x, AS_EBAD_REQUEST, "%s: unknown field '%s' in the pack table", k);
        }
        lua_pop(L, 1);
    }
    raw_field(L, t, "name");
    const char *name = lua_tostring(L, -1);
    raw_field(L, t, "version");
    const char *version = lua_tostring(L, -1);
    if (name == NULL || *name == '\0')
        return fail(x, AS_EBAD_REQUEST, "%s: the pack has no name%s", "");
    if (version == NULL || *version == '\0')
        return fail(x, AS_EBAD_REQUEST, "%s: the pack has no version%s", "");
    x->pack = as__pack_new(NULL, name, version);
    if (x->pack == NULL) return fail(x, AS_ENOMEM, "%s: out of memory%s", "");
    lua_pop(L, 2);

    if (raw_field(L, t, "categories") == LUA_TTABLE) {
        lua_Unsigned n = lua_rawlen(L, -1);
        if (n > 64) return fail(x, AS_EBAD_REQUEST, "%s: too many categories%s", "");
        const char *cats[64];
        for (int i = 0; i < (int)n; i++) {
            lua_rawgeti(L, -1 - i, i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                return fail(x, AS_EBAD_REQUEST, "%s: categories must be strings%s", "");
            cats[i] = lua_tostring(L, -1); /* anchored on the stack until the copy */
        }
        if (as__pack_set_categories(x->pack, cats, (int)n))
            return fail(x, AS_ENOMEM, "%s: out of memory%s", "");
        lua_pop(L, (int)n);
    }
    lua_pop(L, 1);
    for (int h = 0; h < AS_HOOK_COUNT; h++)
        if (lp->hook_ref[h] != LUA_NOREF) x->pack->hooks |= 1u << h;
    return 1;
}

/* What a failed protected call into the state says, as an as_error code and a sentence.
 * Never converts the error object (which could allocate outside protection). */
static int failure(lua_pack *lp, lua_State *L, int st, char *buf, size_t size)
{
    const char *m;
    int code = AS_ERULE_ERROR;
    char spent[96];
    if (lp->exhausted && lua_type(L, -1) == LUA_TSTRING) {
        m = lua_tostring(L, -1); /* the count hook's or a charge's own words */
    } else if (lp->exhausted == SPENT_TIME) {
        snprintf(spent, sizeof spent, "time limit exceeded (%ld ms of CPU in one call)",
                 lp->cpu_ns / 1000000);
        m = spent;
    } else if (lp->exhausted) {
        snprintf(spent, sizeof spent, "instruction budget exceeded (%ld instructions)", lp->budget);
        m = spent;
    } else if (st == LUA_ERRMEM) {
        m = lp->cap_hit == 3   ? "memory cap exceeded (a string is at most 65536 bytes)"
            : lp->cap_hit == 2 ? "memory cap exceeded (the shop's rule packs together)"
            : lp->cap_hit      ? "memory cap exceeded"
                               : "out of memory";
        if (!lp->cap_hit) code = AS_ENOMEM; /* the system's memory, not the pack's cap */
    } else {
        m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string";
    }
    /* the pack's own words go into histories and logs: no control characters */
    size_t i = 0;
    for (; m[i] && i + 1 < size; i++) buf[i] = (unsigned char)m[i] < 0x20 || m[i] == 0x7f ? '?' : m[i];
    buf[i] = '\0';
    return code;
}

static int load_protected(lua_State *L)
{
    load_ctx *x = lua_touserdata(L, 1);
    lua_pack *lp = pack_of(L);
    lua_settop(L, 0);
    open_sandbox(L); /* leaves the _ENV proxy */
    int env = lua_gettop(L);
    lp->case_view = make_view(L, VIEW_CASE, case_index);
    lp->order_view = make_view(L, VIEW_ORDER, order_index);
    lp->lists.meta = make_meta(L, VIEW_LIST, list_index, list_len);
    lp->items.meta = make_meta(L, VIEW_ITEM, item_index, NULL);
    lua_newtable(L);
    lp->lists.table = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    lp->items.table = luaL_ref(L, LUA_REGISTRYINDEX);
    for (int k = 0; k < KEY_COUNT; k++) {
        lua_pushstring(L, k < KEY_DL ? key_names[k] : as__deadline_name(k - KEY_DL));
        lp->key_ref[k] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    int st = luaL_loadbufferx(L, x->src, x->len, x->chunkname, "t");
    if (st == LUA_ERRMEM) {
        char m[200];
        int code = failure(lp, L, st, m, sizeof m);
        x->code = as__err(x->err, code, "%s: %s", x->chunkname, m);
        return 0;
    }
    if (st != LUA_OK) {
        x->code = as__err(x->err, AS_EBAD_REQUEST, "%s", lua_tostring(L, -1));
        return 0;
    }
    lua_pushvalue(L, env);
    lua_setupvalue(L, -2, 1); /* the chunk's _ENV */
    arm_budget(lp);
    lua_call(L, 0, 1);
    if (read_pack_table(L, x, lp)) {
        disarm_budget(lp);
        /* Hook calls make short-lived proxies and tables: the generational collector suits
         * them. */
        lua_gc(L, LUA_GCGEN, 0, 0);
    }
    return 0;
}

static void lua_free_impl(as_pack *p)
{
    lua_pack *lp = p->impl;
    if (lp->L) lua_close(lp->L);
    as__lua_group_unref(lp->group);
    as__free(lp);
    p->impl = NULL;
}

static size_t lua_memory(const as_pack *p)
{
    return ((const lua_pack *)p->impl)->mem_used;
}

static int lua_call_hook(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans,
                         as_error *err);

static const as_engine lua_engine = {"lua", lua_call_hook, lua_memory, lua_free_impl};

static int where_handler(lua_State *L);

int as__lua_pack_load(const char *source, size_t len, const char *chunkname,
                      const as_pack_limits *limits, as_pack **out, as_error *err)
{
    *out = NULL;
    lua_pack *lp = as__calloc(1, sizeof *lp);
    if (lp == NULL) return as__err(err, AS_ENOMEM, "%s: out of memory", chunkname);
    lp->mem_cap = limits && limits->memory ? limits->memory : AS_LUA_DEFAULT_MEMORY;
    lp->budget = limits && limits->instructions > 0 ? limits->instructions
                                                     : AS_LUA_DEFAULT_INSTRUCTIONS;
    if (lp->budget > 0x7fffffff) lp->budget = 0x7fffffff;
    lp->cpu_ns = (limits && limits->cpu_ms > 0 ? limits->cpu_ms : AS_LUA_DEFAULT_CPU_MS) * 1000000;
    lp->fail_alloc = limits ? limits->fail_alloc : 0;
    lp->group = limits ? limits->group : NULL;
    if (lp->group) lp->group->refs++;
    for (int h = 0; h < AS_HOOK_COUNT; h++) lp->hook_ref[h] = LUA_NOREF;
    lp->L = lua_newstate(counting_alloc, lp);
    if (lp->L == NULL) {
        int code = lp->cap_hit ? AS_ERULE_ERROR : AS_ENOMEM;
        as__lua_group_unref(lp->group);
        as__free(lp);
        return as__err(err, code, "%s: %s", chunkname, code == AS_ENOMEM ? "out of memory" : "memory cap exceeded");
    }
    lua_State *L = lp->L;
    lua_atpanic(L, at_panic);
    load_ctx x = {source, len, chunkname, NULL, err, 0};
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, &x);
    int st = lua_pcall(L, 1, 0, 0);
    disarm_budget(lp);
    if (st != LUA_OK && x.code == 0) {
        char m[200];
        int code = failure(lp, L, st, m, sizeof m);
        x.code = as__err(err, code, "%s: %s", chunkname, m);
    }
    if (x.code != 0) {
        as__pack_unref(x.pack);
        lua_close(L);
        as__lua_group_unref(lp->group);
        as__free(lp);
        return x.code;
    }
    /* between calls the stack holds the message handler alone, at 1: a call pushes nothing
     * for it (each push is work on every hook call) */
    lua_settop(L, 0);
    lua_pushcfunction(L, where_handler); /* a light C function: no allocation */
    x.pack->engine = &lua_engine;
    x.pack->impl = lp;
    *out = x.pack;
    return 0;
}

int as__read_file(const char *path, char **out, size_t *outlen, as_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) return as__err(err, AS_EIO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 1 >= cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = as__realloc(buf, cap);
            if (nb == NULL) {
                as__free(buf);
                fclose(f);
                return as__err(err, AS_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        as__free(buf);
        return as__err(err, AS_EIO, "%s: read error", path);
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

int as__read_source(const char *path, char **src, size_t *len, char chunk[AS_CHUNK_MAX],
                    as_error *err)
{
    int rc = as__read_file(path, src, len, err);
    if (rc == 0) snprintf(chunk, AS_CHUNK_MAX, "@%s", path);
    return rc;
}

int as__lua_pack_load_file(const char *path, const as_pack_limits *limits, as_pack **out,
                           as_error *err)
{
    *out = NULL;
    char *buf, chunk[AS_CHUNK_MAX];
    size_t len;
    int rc = as__read_source(path, &buf, &len, chunk, err);
    if (rc) return rc;
    rc = as__lua_pack_load(buf, len, chunk, limits, out, err);
    as__free(buf);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Calling hooks: the call and the reading of its answer run in one protected call, under
 * the budget; the answer is read raw and converted only when it is exactly what the hook
 * documents (docs/design.md#hooks-and-layers). Ranges are the layers' (layers.c), the same for
 * every engine.
 * ---------------------------------------------------------------------------------------- */

typedef struct call_ctx {
    as_pack *p;
    as_hook h;
    const as_hook_args *a;
    as_answer *ans;
    as_error *err;
    int rc;
} call_ctx;

/* t[key] of an answer, raw and without allocating (the key is made at load). */
static int answer_field(lua_State *L, const call_ctx *x, int t, int key)
{
    const lua_pack *lp = x->p->impl;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->key_ref[key]);
    return lua_rawget(L, t);
}

static int wrong(call_ctx *x, const char *what)
{
    return as__err(x->err, AS_ERULE_ERROR, "%s@%s: hook %s returned %s", x->p->name,
                   x->p->version, as__hook_name(x->h), what);
}

/* A Lua integer, or a float with an exact integer value in int64 range. */
static int get_int(lua_State *L, int idx, int64_t *out)
{
    if (lua_type(L, idx) != LUA_TNUMBER) return 0;
    if (lua_isinteger(L, idx)) {
        *out = lua_tointeger(L, idx);
        return 1;
    }
    double d = lua_tonumber(L, idx);
    if (!(d >= -0x1p63 && d < 0x1p63) || d != floor(d)) return 0; /* NaN fails too */
    *out = (int64_t)d;
    return 1;
}

/* A text answer: a Lua string (never a number) of docs/design.md#limits's text, copied whole into
 * buf, which holds AS_ANSWER_TEXT_MAX + 1 bytes. */
static int get_text(lua_State *L, int idx, char *buf)
{
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    const char *s = lua_tolstring(L, idx, &len);
    if (!as__answer_text_ok(s, len)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 1;
}

static int read_refusal(lua_State *L, call_ctx *x)
{
    int t = lua_gettop(L);
    if (answer_field(L, x, t, KEY_ERROR) != LUA_TSTRING)
        return wrong(x, "a refusal without an error code");
    int c = as_err_from_name(lua_tostring(L, -1));
    if (!as__refusal_code_ok(c)) return wrong(x, "a refusal with an error code rules may not give");
    x->ans->code = c;
    int mt = answer_field(L, x, t, KEY_MESSAGE);
    if (mt == LUA_TNIL)
        snprintf(x->ans->msg, sizeof x->ans->msg, "%s", as_strerror(c));
    else if (!get_text(L, -1, x->ans->msg))
        return wrong(x, "a refusal message that is not 1-256 bytes of text");
    x->ans->kind = AS_ANS_REFUSAL;
    return 0;
}

static int read_answer(lua_State *L, call_ctx *x)
{
    as_answer *ans = x->ans;
    int t = lua_type(L, -1), top = lua_gettop(L);
    ans->kind = AS_ANS_NIL;
    if (t == LUA_TNIL) return 0;
    switch (x->h) {
    case AS_HOOK_ORDER_CHECK:
    case AS_HOOK_ELIGIBILITY:
        if (t == LUA_TBOOLEAN && lua_toboolean(L, -1) && x->h == AS_HOOK_ELIGIBILITY) {
            ans->kind = AS_ANS_TRUE;
            return 0;
        }
        if (t == LUA_TTABLE) return read_refusal(L, x);
        return wrong(x, "neither true, nil nor a refusal");
    case AS_HOOK_REFUND_AMOUNT:
    case AS_HOOK_PRIORITY:
        if (!get_int(L, -1, &ans->i)) return wrong(x, "a value that is not an integer");
        ans->kind = AS_ANS_INT;
        return 0;
    case AS_HOOK_DEADLINES: {
        if (t != LUA_TTABLE) return wrong(x, "a non-table");
        ans->kind = AS_ANS_DEADLINES;
        ans->dl_set = 0;
        as_deadline_kind k = as__state_deadline(x->a->v->state);
        if (k == AS_DL_NONE || answer_field(L, x, top, KEY_DL + (int)k) == LUA_TNIL) return 0;
        if (!get_int(L, -1, &ans->dl[k])) return wrong(x, "a duration that is not whole ms");
        ans->dl_set = 1u << k;
        return 0;
    }
    case AS_HOOK_AUTO_DECIDE: {
        if (t != LUA_TTABLE) return wrong(x, "a non-table");
        const char *act = answer_field(L, x, top, KEY_ACTION) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(act, "agree") == 0) {
            ans->kind = AS_ANS_AGREE;
        } else if (strcmp(act, "reject") == 0) {
            if (answer_field(L, x, top, KEY_REASON) == LUA_TNIL)
                snprintf(ans->msg, sizeof ans->msg, "rule");
            else if (!get_text(L, -1, ans->msg))
                return wrong(x, "a reject reason that is not 1-256 bytes of text");
            ans->kind = AS_ANS_REJECT;
        } else {
            return wrong(x, "an action other than agree or reject");
        }
        if (answer_field(L, x, top, KEY_WHY) != LUA_TNIL && !get_text(L, -1, ans->why))
            return wrong(x, "a why that is not 1-256 bytes of text");
        return 0;
    }
    case AS_HOOK_ON_INSPECTION: {
        int rem = t == LUA_TSTRING ? as__remedy_from(lua_tostring(L, -1)) : -1;
        if (rem < 0) return wrong(x, "an unknown remedy");
        ans->kind = AS_ANS_REMEDY;
        ans->i = rem;
        return 0;
    }
    case AS_HOOK_INSPECTION:
    case AS_HOOK_INSTANT_REFUND:
        if (t != LUA_TBOOLEAN) return wrong(x, "a non-boolean");
        ans->kind = lua_toboolean(L, -1) ? AS_ANS_TRUE : AS_ANS_FALSE;
        return 0;
    default:
        return wrong(x, "for an unknown hook");
    }
}

/* Each hook's arguments in order, one letter each: o the order view, c the case view, f the
 * inspection's finding ("fault" or "no_fault"), n the time now (docs/design.md#hooks-and-layers). */
static const char *const hook_args[AS_HOOK_COUNT] = {
    [AS_HOOK_ORDER_CHECK] = "o",
    [AS_HOOK_ELIGIBILITY] = "ocn",
    [AS_HOOK_REFUND_AMOUNT] = "co",
    [AS_HOOK_DEADLINES] = "co",
    [AS_HOOK_PRIORITY] = "co",
    [AS_HOOK_AUTO_DECIDE] = "con",
    [AS_HOOK_ON_INSPECTION] = "cofn",
    [AS_HOOK_INSPECTION] = "co",
    [AS_HOOK_INSTANT_REFUND] = "co",
};

/* The message handler of a hook call: runs where the error was raised, before the stack
 * unwinds, and writes down the file:line of the innermost Lua function there (for a budget
 * spent, the line that was running). It only reads debug information, which allocates
 * nothing, and leaves the error object as it is. */
static int where_handler(lua_State *L)
{
    lua_pack *lp = pack_of(L);
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
        snprintf(lp->where, sizeof lp->where, "%s:%d", ar.short_src, ar.currentline);
        /* it goes into a history row, which is read back as text (docs/design.md#limits): no
         * control characters, and ASCII only, since Lua cuts a long path to its last bytes and
         * may cut a UTF-8 character in two */
        for (char *p = lp->where; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
        break;
    }
    return 1;
}

/* Pushes the hook and its arguments, none allocating; returns the number of arguments. */
static int push_call(lua_State *L, const call_ctx *x)
{
    lua_pack *lp = x->p->impl;
    const as_hook_args *a = x->a;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->hook_ref[x->h]);
    const char *args = hook_args[x->h];
    for (const char *k = args; *k; k++) {
        switch (*k) {
        case 'o': lua_rawgeti(L, LUA_REGISTRYINDEX, lp->order_view); break;
        case 'c': lua_rawgeti(L, LUA_REGISTRYINDEX, lp->case_view); break;
        case 'f':
            lua_rawgeti(L, LUA_REGISTRYINDEX,
                        lp->key_ref[a->inspect_fault ? KEY_FAULT : KEY_NO_FAULT]);
            break;
        default: lua_pushinteger(L, a->now_ms); break;
        }
    }
    return (int)strlen(args);
}

static int lua_call_hook(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans,
                         as_error *err)
{
    lua_pack *lp = p->impl;
    lua_State *L = lp->L;
    ans->kind = AS_ANS_NIL;
    ans->why[0] = ans->where[0] = '\0';
    if (lp->hook_ref[h] == LUA_NOREF) return 0;
    call_ctx x = {p, h, a, ans, err, 0};
    lp->args = a;
    lp->gen++;
    lp->lists.used = lp->items.used = 0;
    arm_budget(lp);
    /* Neither the push nor the answer's raw read allocates or runs pack code, so neither can
     * raise outside the protected call (lua_atpanic is never reached). */
    lp->where[0] = '\0';
    int st = lua_pcall(L, push_call(L, &x), 1, 1); /* where_handler, at 1 since the load */
    if (st == LUA_OK) x.rc = read_answer(L, &x);
    disarm_budget(lp);
    int rc = x.rc;
    if (st != LUA_OK) {
        char m[200];
        /* the host's memory running out is nomem, as at load: the pack did nothing wrong */
        int code = failure(lp, L, st, m, sizeof m);
        rc = as__err(err, code, "%s@%s: hook %s failed: %s", p->name, p->version,
                     as__hook_name(h), m);
        memcpy(ans->where, lp->where, sizeof ans->where);
    }
    if (rc) ans->kind = AS_ANS_NIL;
    lp->args = NULL;
    lua_settop(L, 1);
    if (rc && rc != AS_ENOMEM) p->failures++;
    return rc;
}
