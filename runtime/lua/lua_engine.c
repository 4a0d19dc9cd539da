/* lua_engine.c -- the Lua rule engine: sandbox, views, hook calls. See lua_engine.h. */
#include "lua_engine.h"

#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/timefmt.h"

typedef struct lua_pack {
    lua_State *L;
    size_t mem_used, mem_cap;
    long allocs, fail_alloc; /* fault injection for OOM sweeps */
    int cap_hit;             /* the last failed allocation was refused by the cap */
    double charged;          /* work done in C for this call, in instruction units */
    long budget;
    int exhausted;             /* the budget of the current call is spent */
    int hook_ref[AS_HOOK_COUNT];
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

/* ------------------------------------------------------------------------------------------
 * Allocation and budget
 * ---------------------------------------------------------------------------------------- */

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lua_pack *lp = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        lp->mem_used -= old;
        return NULL;
    }
    if (nsize > old && lp->mem_used - old + nsize > lp->mem_cap) {
        lp->cap_hit = 1;
        return NULL;
    }
    /* persistent: Lua retries a failed allocation after a full collection, so failing only
     * the n-th would be absorbed */
    if (lp->fail_alloc && ++lp->allocs >= lp->fail_alloc) return NULL;
    void *np = realloc(ptr, nsize);
    if (np == NULL) return NULL;
    lp->mem_used = lp->mem_used - old + nsize;
    return np;
}

static lua_pack *pack_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* Once the budget is spent the hook re-arms itself for every instruction, so a script's
 * pcall that catches the error runs one instruction and meets it again (Redis's
 * luaMaskCountHook). */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_pack *lp = pack_of(L);
    lp->exhausted = 1;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "instruction budget exceeded (%I instructions)", (lua_Integer)lp->budget);
}

static void arm_budget(lua_pack *lp)
{
    lp->exhausted = 0;
    lp->charged = 0;
    lp->cap_hit = 0;
    lua_sethook(lp->L, count_hook, LUA_MASKCOUNT, (int)lp->budget);
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
        if (lua_getfield(L, 2, "__gc") != LUA_TNIL)
            return luaL_error(L, "__gc metamethods are not allowed in rule packs");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the real setmetatable, reachable only here */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Work done inside C library calls never meets the count hook: a pattern can backtrack
 * O(n^(q+1)) steps over an n-byte subject with q quantifiers, and string.rep writes megabytes
 * in one instruction. The wrappers below charge each such call's worst case to the call's
 * budget before doing it, and fail it like the count hook once the charges exceed the
 * budget, so the total work of a hook stays bounded (instructions plus charges, each at most
 * the budget). */
static int charge(lua_State *L, double cost, const char *what)
{
    lua_pack *lp = pack_of(L);
    lp->charged += cost;
    if (lp->charged <= (double)lp->budget) return 0;
    lp->exhausted = 1;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    return luaL_error(L, "instruction budget exceeded by %s", what);
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

/* upvalue 1: the library function; upvalue 2: true for find (its 4th argument can ask for a
 * plain search, linear in the subject) */
static int guarded_match(lua_State *L)
{
    size_t n, plen;
    luaL_checklstring(L, 1, &n);
    const char *pat = luaL_checklstring(L, 2, &plen);
    int plain = lua_toboolean(L, lua_upvalueindex(2)) && lua_toboolean(L, 4);
    charge(L, plain ? (double)n + (double)plen : pattern_cost(pat, plen, n), "a string pattern");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

static int guarded_rep(lua_State *L)
{
    size_t len, seplen = 0;
    luaL_checklstring(L, 1, &len);
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_optlstring(L, 3, "", &seplen);
    double bytes = n > 0 ? (double)n * (double)(len + seplen) : 0;
    if (bytes > (double)pack_of(L)->mem_cap)
        return luaL_error(L, "memory cap exceeded (string.rep of %f bytes)", bytes);
    charge(L, bytes / 16, "string.rep");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int guarded_concat(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    charge(L, (double)lua_rawlen(L, 1), "table.concat");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static void guard(lua_State *L, const char *lib, const char *fn, lua_CFunction g, int is_find)
{
    lua_getglobal(L, lib);
    lua_getfield(L, -1, fn);
    lua_pushboolean(L, is_find);
    lua_pushcclosure(L, g, 2);
    lua_setfield(L, -2, fn);
    lua_pop(L, 1);
}

static void guard_c_calls(lua_State *L)
{
    guard(L, "string", "find", guarded_match, 1);
    guard(L, "string", "match", guarded_match, 0);
    guard(L, "string", "gmatch", guarded_match, 0);
    guard(L, "string", "gsub", guarded_match, 0);
    guard(L, "string", "rep", guarded_rep, 0);
    guard(L, "table", "concat", guarded_concat, 0);
}

static int as_local_day(lua_State *L)
{
    lua_pushinteger(L, as__local_day(luaL_checkinteger(L, 1)));
    return 1;
}

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "rule packs may not write globals (tried to set '%s')",
                      lua_tostring(L, 2) ? lua_tostring(L, 2) : "?");
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
    guard_c_calls(L);
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, sandbox_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_register(L, "pcall", sandbox_pcall);
    lua_register(L, "xpcall", sandbox_xpcall);

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

static void push_opt_time(lua_State *L, int64_t t)
{
    if (t == AS_UNSET)
        lua_pushnil(L);
    else
        lua_pushinteger(L, t);
}

/* Item lists and items are proxies too, handed out on access from a per-pack pool that
 * every call starts afresh, so a hook allocates nothing to read them. A proxy is stamped
 * with its call: one a script kept in an upvalue errs in a later call, or (once the pool
 * hands the same object out again) reads that call's data, never freed memory. A case's
 * items carry their order line's fields. */
typedef struct item_list {
    uint32_t gen;
    const as_order *order;
    const as_case *c; /* NULL: the order's lines */
} item_list;

typedef struct item_ref {
    uint32_t gen;
    const as_item *line;
    int32_t qty;
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
        lua_rawseti(L, -3, ++pool->len);
        pool->used = pool->len;
    }
    lua_remove(L, -2);
    return lua_touserdata(L, -1);
}

static void push_items(lua_State *L, const as_order *o, const as_case *c)
{
    lua_pack *lp = pack_of(L);
    item_list *l = pooled(L, &lp->lists, sizeof *l);
    *l = (item_list){lp->gen, o, c};
}

static int list_len(lua_State *L)
{
    const item_list *l = lua_touserdata(L, 1);
    check_gen(L, l->gen);
    lua_pushinteger(L, l->c ? l->c->nitems : l->order->nitems);
    return 1;
}

static int list_index(lua_State *L)
{
    const item_list *l = lua_touserdata(L, 1);
    check_gen(L, l->gen);
    lua_Integer i = lua_tointeger(L, 2);
    int n = l->c ? l->c->nitems : l->order->nitems;
    if (i < 1 || i > n) return 0;
    lua_pack *lp = pack_of(L);
    item_ref *r = pooled(L, &lp->items, sizeof *r);
    if (l->c) {
        const as_case_item *ci = &l->c->items[i - 1];
        *r = (item_ref){lp->gen, &l->order->items[ci->line], ci->qty};
    } else {
        *r = (item_ref){lp->gen, &l->order->items[i - 1], l->order->items[i - 1].qty};
    }
    return 1;
}

static int item_index(lua_State *L)
{
    const item_ref *r = lua_touserdata(L, 1);
    check_gen(L, r->gen);
    const char *k = lua_tostring(L, 2);
    const as_item *it = r->line;
    if (k == NULL) return 0;
    switch (k[0]) {
    case 'c':
        if (strcmp(k, "category") == 0) return lua_pushstring(L, it->category), 1;
        if (strcmp(k, "custom_made") == 0) return lua_pushboolean(L, it->custom_made), 1;
        break;
    case 'l':
        if (strcmp(k, "live") == 0) return lua_pushboolean(L, it->live), 1;
        break;
    case 'n':
        if (strcmp(k, "no_reason_excluded") == 0)
            return lua_pushboolean(L, it->no_reason_excluded), 1;
        break;
    case 'p':
        if (strcmp(k, "price") == 0) return lua_pushinteger(L, it->price), 1;
        break;
    case 'q':
        if (strcmp(k, "qty") == 0) return lua_pushinteger(L, r->qty), 1;
        break;
    case 's':
        if (strcmp(k, "sku") == 0) return lua_pushstring(L, it->sku), 1;
        if (strcmp(k, "serial") == 0) {
            if (it->serial == NULL) return 0;
            return lua_pushstring(L, it->serial), 1;
        }
        break;
    }
    return 0;
}

static void push_order_cases(lua_State *L, const as_order *o, const as_case *self)
{
    lua_createtable(L, (int)o->ncases, 0);
    int n = 0;
    for (const as_case *c = o->cases; c; c = c->next_in_order) {
        if (c == self) continue;
        lua_createtable(L, 0, 8);
        lua_pushstring(L, c->id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, as__type_name(c->type));
        lua_setfield(L, -2, "type");
        lua_pushstring(L, as__reason_name(c->v.reason));
        lua_setfield(L, -2, "reason");
        lua_pushstring(L, as__state_name(c->v.state));
        lua_setfield(L, -2, "state");
        push_items(L, o, c);
        lua_setfield(L, -2, "items");
        lua_pushinteger(L, c->opened_at);
        lua_setfield(L, -2, "opened_at");
        push_opt_time(L, c->ended_at);
        lua_setfield(L, -2, "ended_at");
        lua_pushinteger(L, c->repair_days);
        lua_setfield(L, -2, "repair_days");
        lua_rawseti(L, -2, ++n);
    }
}

static int order_index(lua_State *L)
{
    const as_order *o = view_args(L)->order;
    size_t len;
    const char *k = lua_tolstring(L, 2, &len);
    if (k == NULL || o == NULL) return 0;
    switch (k[0]) {
    case 'b':
        if (strcmp(k, "buyer") == 0) return lua_pushstring(L, o->buyer), 1;
        if (strcmp(k, "buyer_credit") == 0) {
            if (o->buyer_credit < 0) return 0;
            return lua_pushinteger(L, o->buyer_credit), 1;
        }
        break;
    case 'c':
        if (strcmp(k, "cases") == 0) return push_order_cases(L, o, view_args(L)->c), 1;
        if (strcmp(k, "confirmed_at") == 0) return push_opt_time(L, o->confirmed_at), 1;
        break;
    case 'd':
        if (strcmp(k, "delivered_at") == 0) return push_opt_time(L, o->delivered_at), 1;
        break;
    case 'f':
        if (strcmp(k, "freight_insurance") == 0)
            return lua_pushboolean(L, o->freight_insurance), 1;
        break;
    case 'i':
        if (strcmp(k, "id") == 0) return lua_pushstring(L, o->id), 1;
        if (strcmp(k, "items") == 0) return push_items(L, o, NULL), 1;
        break;
    case 'p':
        if (strcmp(k, "paid_at") == 0) return push_opt_time(L, o->paid_at), 1;
        break;
    case 's':
        if (strcmp(k, "shop") == 0) return lua_pushstring(L, o->shop), 1;
        if (strcmp(k, "shipped_at") == 0) return push_opt_time(L, o->shipped_at), 1;
        if (strcmp(k, "shipping_fee") == 0) return lua_pushinteger(L, o->shipping_fee), 1;
        break;
    }
    return 0;
}

static int case_index(lua_State *L)
{
    const as_hook_args *a = view_args(L);
    const as_case *c = a->c;
    const as_case_vals *v = a->v;
    size_t len;
    const char *k = lua_tolstring(L, 2, &len);
    if (k == NULL || c == NULL) return 0;
    switch (k[0]) {
    case 'b':
        if (strcmp(k, "bad_permille") == 0) {
            if (v->bad_permille < 0) return 0;
            return lua_pushinteger(L, v->bad_permille), 1;
        }
        break;
    case 'c':
        if (strcmp(k, "category") == 0) return lua_pushstring(L, c->category), 1;
        break;
    case 'e':
        if (strcmp(k, "evidence") == 0) {
            int n = as__vals_evidence_count(v);
            lua_createtable(L, n, 0);
            for (int i = 0; i < n; i++) {
                lua_pushstring(L, v->evidence[i]);
                lua_rawseti(L, -2, i + 1);
            }
            return 1;
        }
        break;
    case 'i':
        if (strcmp(k, "id") == 0) return lua_pushstring(L, c->id), 1;
        if (strcmp(k, "items") == 0) return push_items(L, c->order, c), 1;
        break;
    case 'n':
        if (strcmp(k, "needs_inspection") == 0)
            return lua_pushboolean(L, (v->flags & AS_CF_INSPECT) != 0), 1;
        break;
    case 'o':
        if (strcmp(k, "order") == 0) return lua_pushstring(L, c->order->id), 1;
        if (strcmp(k, "opened_at") == 0) return lua_pushinteger(L, c->opened_at), 1;
        break;
    case 'p':
        if (strcmp(k, "paid") == 0) return lua_pushinteger(L, as__case_paid(c)), 1;
        if (strcmp(k, "priority") == 0) {
            if (v->priority == 0) return 0;
            return lua_pushinteger(L, v->priority), 1;
        }
        break;
    case 'r':
        if (strcmp(k, "reason") == 0) return lua_pushstring(L, as__reason_name(v->reason)), 1;
        if (strcmp(k, "refund_amount") == 0) return lua_pushinteger(L, v->refund_amount), 1;
        if (strcmp(k, "requested_amount") == 0) return push_opt_time(L, v->requested_amount), 1;
        if (strcmp(k, "return_shipping") == 0) return lua_pushinteger(L, v->return_shipping), 1;
        if (strcmp(k, "remedy") == 0) {
            if (v->remedy == AS_REMEDY_NONE) return 0;
            return lua_pushstring(L, as__remedy_name(v->remedy)), 1;
        }
        break;
    case 's':
        if (strcmp(k, "state") == 0) return lua_pushstring(L, as__state_name(v->state)), 1;
        if (strcmp(k, "shipping_fee") == 0) return lua_pushinteger(L, as__case_fee(c)), 1;
        break;
    case 't':
        if (strcmp(k, "type") == 0) return lua_pushstring(L, as__type_name(c->type)), 1;
        break;
    case 'v':
        if (strcmp(k, "version") == 0) return lua_pushinteger(L, v->version), 1;
        break;
    }
    return 0;
}

static int view_newindex(lua_State *L)
{
    return luaL_error(L, "case and order views are read-only");
}

/* A sealed metatable for proxies: reads through `index`, writes refused. */
static int make_meta(lua_State *L, const char *tname, lua_CFunction index, lua_CFunction len)
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
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

static int make_view(lua_State *L, const char *tname, lua_CFunction index)
{
    lua_newuserdatauv(L, 0, 0);
    luaL_newmetatable(L, tname);
    lua_pushcfunction(L, index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, view_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
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

/* Validates the pack table at the top of the stack and records its hooks. */
static int read_pack_table(lua_State *L, load_ctx *x, lua_pack *lp)
{
    if (!lua_istable(L, -1))
        return fail(x, AS_EBAD_REQUEST, "%s: a rule pack must return a table%s", "");
    int t = lua_gettop(L);
    const char *name = NULL, *version = NULL;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            return fail(x, AS_EBAD_REQUEST, "%s: the pack table has a non-string key%s", "");
        const char *k = lua_tostring(L, -2);
        int h = hook_from(k);
        if (h >= 0) {
            if (!lua_isfunction(L, -1))
                return fail(x, AS_EBAD_REQUEST, "%s: hook '%s' must be a function", k);
            lua_pushvalue(L, -1);
            lp->hook_ref[h] = luaL_ref(L, LUA_REGISTRYINDEX);
        } else if (strcmp(k, "name") == 0 || strcmp(k, "version") == 0) {
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                return fail(x, AS_EBAD_REQUEST, "%s: '%s' must be a string", k);
        } else if (strcmp(k, "categories") == 0) {
            if (!lua_istable(L, -1))
                return fail(x, AS_EBAD_REQUEST, "%s: '%s' must be a list of strings", k);
        } else {
            return fail(x, AS_EBAD_REQUEST, "%s: unknown field '%s' in the pack table", k);
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, t, "name");
    name = lua_tostring(L, -1);
    lua_getfield(L, t, "version");
    version = lua_tostring(L, -1);
    if (name == NULL || *name == '\0')
        return fail(x, AS_EBAD_REQUEST, "%s: the pack has no name%s", "");
    if (version == NULL || *version == '\0')
        return fail(x, AS_EBAD_REQUEST, "%s: the pack has no version%s", "");
    x->pack = as__pack_new(NULL, name, version);
    if (x->pack == NULL) return fail(x, AS_ENOMEM, "%s: out of memory%s", "");
    lua_pop(L, 2);

    if (lua_getfield(L, t, "categories") == LUA_TTABLE) {
        int n = (int)luaL_len(L, -1);
        if (n > 64) return fail(x, AS_EBAD_REQUEST, "%s: too many categories%s", "");
        const char *cats[64];
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, -1 - i, i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                return fail(x, AS_EBAD_REQUEST, "%s: categories must be strings%s", "");
            cats[i] = lua_tostring(L, -1); /* anchored on the stack until the copy */
        }
        if (as__pack_set_categories(x->pack, cats, n))
            return fail(x, AS_ENOMEM, "%s: out of memory%s", "");
        lua_pop(L, n);
    }
    lua_pop(L, 1);
    for (int h = 0; h < AS_HOOK_COUNT; h++)
        if (lp->hook_ref[h] != LUA_NOREF) x->pack->hooks |= 1u << h;
    return 1;
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
    int st = luaL_loadbufferx(L, x->src, x->len, x->chunkname, "t");
    if (st == LUA_ERRMEM) {
        x->code = lp->cap_hit ? as__err(x->err, AS_ERULE_ERROR, "%s: memory cap exceeded", x->chunkname)
                              : as__err(x->err, AS_ENOMEM, "%s: out of memory", x->chunkname);
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
    lua_sethook(L, NULL, 0, 0);
    read_pack_table(L, x, lp);
    return 0;
}

static void lua_free_impl(as_pack *p)
{
    lua_pack *lp = p->impl;
    if (lp->L) lua_close(lp->L);
    free(lp);
    p->impl = NULL;
}

static size_t lua_memory(const as_pack *p)
{
    return ((const lua_pack *)p->impl)->mem_used;
}

static int lua_call_hook(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans,
                         as_error *err);

static const as_engine lua_engine = {"lua", lua_call_hook, lua_memory, lua_free_impl};

int as__lua_pack_load(const char *source, size_t len, const char *chunkname,
                      const as_lua_limits *limits, as_pack **out, as_error *err)
{
    *out = NULL;
    lua_pack *lp = calloc(1, sizeof *lp);
    if (lp == NULL) return as__err(err, AS_ENOMEM, "%s: out of memory", chunkname);
    lp->mem_cap = limits && limits->memory ? limits->memory : AS_LUA_DEFAULT_MEMORY;
    lp->budget = limits && limits->instructions > 0 ? limits->instructions
                                                     : AS_LUA_DEFAULT_INSTRUCTIONS;
    if (lp->budget > 0x7fffffff) lp->budget = 0x7fffffff;
    lp->fail_alloc = limits ? limits->fail_alloc : 0;
    for (int h = 0; h < AS_HOOK_COUNT; h++) lp->hook_ref[h] = LUA_NOREF;
    lp->L = lua_newstate(counting_alloc, lp);
    if (lp->L == NULL) {
        free(lp);
        return as__err(err, AS_ENOMEM, "%s: out of memory", chunkname);
    }
    load_ctx x = {source, len, chunkname, NULL, err, 0};
    lua_State *L = lp->L;
    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, &x);
    int st = lua_pcall(L, 1, 0, 0);
    lua_sethook(L, NULL, 0, 0);
    if (st != LUA_OK && x.code == 0) {
        int code = AS_ERULE_ERROR;
        const char *m = st == LUA_ERRMEM ? "memory cap exceeded" : lua_tostring(L, -1);
        if (st == LUA_ERRMEM && !lp->cap_hit) {
            code = AS_ENOMEM; /* the system's memory, not the pack's cap */
            m = "out of memory";
        }
        x.code = as__err(err, code, "%s: %s", chunkname, m ? m : "error while loading");
    }
    if (x.code != 0) {
        as__pack_unref(x.pack);
        lua_close(L);
        free(lp);
        return x.code;
    }
    lua_settop(L, 0);
    /* Hook calls make short-lived proxies and tables: the generational collector suits them. */
    lua_gc(L, LUA_GCGEN, 0, 0);
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
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
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
        free(buf);
        return as__err(err, AS_EIO, "%s: read error", path);
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

int as__lua_pack_load_file(const char *path, const as_lua_limits *limits, as_pack **out,
                           as_error *err)
{
    *out = NULL;
    char *buf;
    size_t len;
    int rc = as__read_file(path, &buf, &len, err);
    if (rc) return rc;
    char chunk[512];
    snprintf(chunk, sizeof chunk, "@%s", path);
    rc = as__lua_pack_load(buf, len, chunk, limits, out, err);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * Calling hooks
 * ---------------------------------------------------------------------------------------- */

static int wrong(as_error *err, as_pack *p, as_hook h, const char *what)
{
    return as__err(err, AS_ERULE_ERROR, "%s@%s: hook %s returned %s", p->name, p->version,
                   as__hook_name(h), what);
}

static int read_refusal(lua_State *L, as_pack *p, as_hook h, as_answer *ans, as_error *err)
{
    lua_getfield(L, -1, "error");
    const char *code = lua_tostring(L, -1);
    int c = code ? as_err_from_name(code) : 0;
    if (c == 0 || c == AS_ENOMEM || c == AS_EIO || c == AS_EUNAUTHORIZED)
        return wrong(err, p, h, "a table without a known error code");
    lua_getfield(L, -2, "message");
    const char *m = lua_tostring(L, -1);
    ans->kind = AS_ANS_REFUSAL;
    ans->code = c;
    snprintf(ans->msg, sizeof ans->msg, "%s", m ? m : as_strerror(c));
    return 0;
}

static int read_answer(lua_State *L, as_pack *p, as_hook h, const as_hook_args *a,
                       as_answer *ans, as_error *err)
{
    int t = lua_type(L, -1);
    ans->kind = AS_ANS_NIL;
    if (t == LUA_TNIL) return 0;
    switch (h) {
    case AS_HOOK_ORDER_CHECK:
    case AS_HOOK_ELIGIBILITY:
        if (t == LUA_TBOOLEAN && lua_toboolean(L, -1) && h == AS_HOOK_ELIGIBILITY) {
            ans->kind = AS_ANS_TRUE;
            return 0;
        }
        if (t == LUA_TTABLE) return read_refusal(L, p, h, ans, err);
        return wrong(err, p, h, "neither true, nil nor a refusal");
    case AS_HOOK_REFUND_AMOUNT:
    case AS_HOOK_PRIORITY: {
        int isnum;
        lua_Integer i = lua_tointegerx(L, -1, &isnum);
        if (!isnum || t != LUA_TNUMBER) return wrong(err, p, h, "a non-integer");
        if (i < 0 || (h == AS_HOOK_PRIORITY && i > 100)) return wrong(err, p, h, "a value out of range");
        ans->kind = AS_ANS_INT;
        ans->i = i;
        return 0;
    }
    case AS_HOOK_DEADLINES: {
        if (t != LUA_TTABLE) return wrong(err, p, h, "a non-table");
        ans->kind = AS_ANS_DEADLINES;
        ans->dl_set = 0;
        as_deadline_kind k = as__state_deadline(a->v->state);
        if (k == AS_DL_NONE) return 0;
        if (lua_getfield(L, -1, as__deadline_name(k)) != LUA_TNIL) {
            int isnum;
            lua_Integer ms = lua_tointegerx(L, -1, &isnum);
            if (!isnum || ms < 0) return wrong(err, p, h, "a duration that is not whole ms");
            ans->dl[k] = ms;
            ans->dl_set = 1u << k;
        }
        return 0;
    }
    case AS_HOOK_AUTO_DECIDE: {
        if (t != LUA_TTABLE) return wrong(err, p, h, "a non-table");
        lua_getfield(L, -1, "action");
        const char *act = lua_tostring(L, -1);
        if (act && strcmp(act, "agree") == 0) {
            ans->kind = AS_ANS_AGREE;
        } else if (act && strcmp(act, "reject") == 0) {
            lua_getfield(L, -2, "reason");
            const char *r = lua_tostring(L, -1);
            ans->kind = AS_ANS_REJECT;
            snprintf(ans->msg, sizeof ans->msg, "%s", r ? r : "rule");
        } else {
            return wrong(err, p, h, "an action other than agree or reject");
        }
        return 0;
    }
    case AS_HOOK_ON_INSPECTION: {
        const char *r = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int rem = as__remedy_from(r);
        if (rem < 0) return wrong(err, p, h, "an unknown remedy");
        ans->kind = AS_ANS_REMEDY;
        ans->i = rem;
        return 0;
    }
    case AS_HOOK_INSPECTION:
    case AS_HOOK_INSTANT_REFUND:
        if (t != LUA_TBOOLEAN) return wrong(err, p, h, "a non-boolean");
        ans->kind = lua_toboolean(L, -1) ? AS_ANS_TRUE : AS_ANS_NIL;
        return 0;
    default:
        return wrong(err, p, h, "for an unknown hook");
    }
}

static int lua_call_hook(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans,
                         as_error *err)
{
    lua_pack *lp = p->impl;
    lua_State *L = lp->L;
    ans->kind = AS_ANS_NIL;
    if (lp->hook_ref[h] == LUA_NOREF) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->hook_ref[h]);
    int nargs;
    switch (h) {
    case AS_HOOK_ORDER_CHECK:
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->order_view);
        nargs = 1;
        break;
    case AS_HOOK_ELIGIBILITY:
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->order_view);
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->case_view);
        lua_pushinteger(L, a->now_ms);
        nargs = 3;
        break;
    case AS_HOOK_ON_INSPECTION:
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->case_view);
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->order_view);
        lua_pushstring(L, a->inspect_fault ? "fault" : "no_fault");
        lua_pushinteger(L, a->now_ms);
        nargs = 4;
        break;
    case AS_HOOK_AUTO_DECIDE:
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->case_view);
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->order_view);
        lua_pushinteger(L, a->now_ms);
        nargs = 3;
        break;
    default:
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->case_view);
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->order_view);
        nargs = 2;
        break;
    }
    lp->args = a;
    lp->gen++;
    lp->lists.used = lp->items.used = 0;
    arm_budget(lp);
    int st = lua_pcall(L, nargs, 1, 0);
    int rc = 0;
    if (st != LUA_OK) {
        const char *m = st == LUA_ERRMEM ? "memory cap exceeded" : lua_tostring(L, -1);
        rc = as__err(err, AS_ERULE_ERROR, "%s@%s: hook %s failed: %s", p->name, p->version,
                     as__hook_name(h), m ? m : "error object is not a string");
    } else {
        rc = read_answer(L, p, h, a, ans, err);
    }
    lp->args = NULL;
    lua_settop(L, 0);
    if (rc) p->failures++;
    return rc;
}
