/* reads.c -- the read API of aftersale.h: cases, orders, the worklist, metrics, rules and
 * counters as JSON, scoped to the principal that asks, each answered once what it shows is
 * durable (durable.c as__read_wait). */
#include <stdio.h>
#include <string.h>

#include "codec.h"

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/workflow.h"

/* A read's answer made now and held until what it shows is durable. */
typedef struct held {
    as_read_cb cb;
    void *ud;
    char *text; /* owned */
} held;

static void held_done(void *ud, int code, const char *msg)
{
    held *h = ud;
    h->cb(h->ud, code, code ? msg : h->text);
    as__free(h->text);
    as__free(h);
}

/* Hands `j` (taken) to cb once `need` (as__read_note) is durable. Returns what cb gets. */
static int answer(as_runtime *rt, json_t *j, int need, as_read_cb cb, void *ud)
{
    as_error err = {0};
    held *h = as__malloc(sizeof *h); /* owned here, then by held_done */
    char *text = j && h ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        as__free(h);
        cb(ud, AS_ENOMEM, "out of memory");
        return AS_ENOMEM;
    }
    *h = (held){cb, ud, text};
    int rc = as__read_wait(rt, need, held_done, h, &err);
    if (rc == 1) return 0;
    held_done(h, rc, err.msg);
    return rc;
}

static int refuse(as_read_cb cb, void *ud, int code, const char *msg)
{
    cb(ud, code, msg);
    return code;
}

/* May `who` see case `cs`? */
static int sees_case(const as_principal *who, const as_case *cs)
{
    switch (who->role) {
    case AS_ROLE_PLATFORM:
    case AS_ROLE_LOGISTICS: return 1;
    case AS_ROLE_BUYER: return strcmp(who->id, cs->order->buyer) == 0;
    case AS_ROLE_MERCHANT: return strcmp(who->id, cs->order->shop) == 0;
    default: return 0;
    }
}

/* The case `id` names as of now (the deadlines due have fired), NULL for none. */
static as_case *case_now(as_runtime *rt, const char *id)
{
    as__fire_due(rt);
    return id ? as__case_get(rt, id) : NULL;
}

int as_case_read(as_runtime *rt, const char *case_id, as_read_cb cb, void *ud)
{
    const as_case *c = case_now(rt, case_id);
    if (c == NULL) return refuse(cb, ud, AS_ENOT_FOUND, "unknown case");
    int need = AS_READ_NOW;
    as__read_note(rt, c, &need);
    return answer(rt, as__case_json(c), need, cb, ud);
}

/* The actions `who` may take on `cs` now (the platform: every party's but logistics'). */
static json_t *actions_for(const as_principal *who, const as_case *cs)
{
    json_t *acts = json_array();
    int held = (cs->v.flags & AS_CF_HELD) != 0;
    for (int a = 0; acts && a < AS_ACT_COUNT; a++) {
        as_role role = as__action_role(a);
        if (a == AS_ACT_OPEN || role == AS_ROLE_SYSTEM) continue;
        if (role != who->role && !(who->role == AS_ROLE_PLATFORM && role != AS_ROLE_LOGISTICS))
            continue;
        if (as__workflow_allows(cs->v.state, a, cs->type, held) &&
            json_array_append_new(acts, json_string(as__action_name(a))) != 0) {
            json_decref(acts);
            return NULL;
        }
    }
    return acts;
}

int as_case_view(as_runtime *rt, const char *principal, const char *case_id, as_read_cb cb,
                 void *ud)
{
    as_principal who;
    if (as__principal_parse(principal, &who) != 0)
        return refuse(cb, ud, AS_EFORBIDDEN, "unknown principal");
    const as_case *cs = case_now(rt, case_id);
    if (cs == NULL) return refuse(cb, ud, AS_ENOT_FOUND, "unknown case");
    if (!sees_case(&who, cs)) return refuse(cb, ud, AS_EFORBIDDEN, "this key cannot see that case");
    json_t *j = as__case_json(cs), *acts = j ? actions_for(&who, cs) : NULL;
    if (acts == NULL) {
        json_decref(j);
        return refuse(cb, ud, AS_ENOMEM, "out of memory");
    }
    /* every entry was decided under the packs the case pinned at its open: say so per entry,
     * so that an entry read alone still names its rules */
    json_t *rules = json_object_get(j, "rules"), *e;
    size_t i;
    json_array_foreach(json_object_get(j, "history"), i, e) json_object_set(e, "rules", rules);
    json_object_set_new(j, "actions", acts);
    int need = AS_READ_NOW;
    as__read_note(rt, cs, &need);
    return answer(rt, j, need, cb, ud);
}

int as_order_read(as_runtime *rt, const char *order_id, as_read_cb cb, void *ud)
{
    as__fire_due(rt);
    const as_order *o = order_id ? as__order_get(rt, order_id) : NULL;
    if (o == NULL) return refuse(cb, ud, AS_ENOT_FOUND, "unknown order");
    int need = AS_READ_NOW;
    as__read_note_order(rt, o, &need);
    return answer(rt, as__order_json(o), need, cb, ud);
}

/* ==========================================================================================
 * The worklist
 * ======================================================================================== */

static json_t *worklist_entry(const as_case *c)
{
    json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", c->id, "order", c->order->id, "state",
                          as__state_name(c->v.state), "type", as__type_name(c->type), "version",
                          (json_int_t)c->v.version);
    if (e == NULL) return NULL;
    json_object_set_new(e, "priority", c->v.priority ? json_integer(c->v.priority) : json_null());
    json_object_set_new(e, "due", as__sched_pending(&c->deadline) ? json_integer(c->deadline.due_ms)
                                                                  : json_null());
    return e;
}

typedef struct page {
    as_runtime *rt;
    const as_principal *who;
    int state;          /* -1: the open cases */
    long skip, limit;   /* cases still to skip, to list */
    json_t *items;
    int need, more, oom;
} page;

static int page_take(void *ud, const as_case *c)
{
    page *p = ud;
    if (!sees_case(p->who, c)) return 0;
    if (p->state >= 0 && c->v.state != p->state) return 0;
    if (p->skip > 0) {
        p->skip--;
        return 0;
    }
    if (p->limit == 0) {
        p->more = 1;
        return 1;
    }
    json_t *e = worklist_entry(c);
    if (e == NULL || json_array_append_new(p->items, e) != 0) {
        p->oom = 1;
        return 1;
    }
    as__read_note(p->rt, c, &p->need);
    p->limit--;
    return 0;
}

int as_worklist_read(as_runtime *rt, const as_worklist_query *q, as_read_cb cb, void *ud)
{
    as_principal who;
    if (as__principal_parse(q->principal, &who) != 0)
        return refuse(cb, ud, AS_EFORBIDDEN, "unknown principal");
    const char *shop = q->shop;
    if (who.role == AS_ROLE_MERCHANT) {
        if (shop && strcmp(shop, who.id) != 0)
            return refuse(cb, ud, AS_EFORBIDDEN, "a merchant key sees its own shop only");
        shop = who.id;
    }
    if (who.role == AS_ROLE_LOGISTICS) return refuse(cb, ud, AS_EFORBIDDEN, "logistics has no worklist");
    int st = q->state ? as__state_from(q->state) : -1;
    long limit = q->limit ? q->limit : 50;
    if ((q->state && st < 0) || limit < 1 || limit > 1000 || q->cursor < 0)
        return refuse(cb, ud, AS_EBAD_REQUEST, "state, limit (1..1000) or cursor out of range");
    as__fire_due(rt);
    page p = {rt, &who, st, q->cursor, limit, json_array(), AS_READ_NOW, 0, 0};
    if (p.items == NULL) return refuse(cb, ud, AS_ENOMEM, "out of memory");
    int closed = st >= 0 && as__state_terminal(st);
    if (as__worklist_each(rt, shop, closed, page_take, &p) != 0 || p.oom) {
        json_decref(p.items);
        return refuse(cb, ud, AS_ENOMEM, "out of memory");
    }
    json_t *j = json_pack("{s:o}", "cases", p.items);
    char next[32];
    snprintf(next, sizeof next, "%ld", q->cursor + limit);
    if (j) json_object_set_new(j, "cursor", p.more ? json_string(next) : json_null());
    return answer(rt, j, p.need, cb, ud);
}

/* ==========================================================================================
 * Metrics, rules, counters: answered at once
 * ======================================================================================== */

static char *dump(json_t *j, as_error *err)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s == NULL) as__err(err, AS_ENOMEM, "out of memory");
    return s;
}

/* The platform, or the shop's own merchant. */
static int owns_shop(const char *principal, const char *shop, const char *what, as_error *err)
{
    as_principal who;
    if (as__principal_parse(principal, &who) == 0 &&
        (who.role == AS_ROLE_PLATFORM ||
         (who.role == AS_ROLE_MERCHANT && shop && strcmp(who.id, shop) == 0)))
        return 0;
    return as__err(err, AS_EFORBIDDEN, "only the platform or the shop sees its %s", what);
}

char *as_shop_metrics_json(as_runtime *rt, const char *shop)
{
    as__fire_due(rt);
    as_metrics m;
    if (as__shop_metrics(rt, shop, &m) != 0) return NULL;
    return dump(as__metrics_json(&m), NULL);
}

char *as_shop_metrics_read(as_runtime *rt, const char *principal, const char *shop,
                           as_error *err)
{
    if (owns_shop(principal, shop, "metrics", err)) return NULL;
    char *s = as_shop_metrics_json(rt, shop);
    if (s == NULL) as__err(err, AS_ENOMEM, "out of memory");
    return s;
}

char *as_shop_rules_read(as_runtime *rt, const char *principal, const char *shop,
                         const char *version, as_error *err)
{
    if (owns_shop(principal, shop, "rules", err)) return NULL;
    json_t *j = version ? as__versions_source_json(rt, shop, version)
                        : as__versions_list_json(rt, shop);
    if (j == NULL) {
        as__err(err, AS_ENOT_FOUND, "the shop has no such rules version");
        return NULL;
    }
    return dump(j, err);
}

static json_t *pack_name(const as_pack *p, int with_engine)
{
    char buf[300];
    if (with_engine) snprintf(buf, sizeof buf, "%s@%s (%s)", p->name, p->version, p->engine->kind);
    else snprintf(buf, sizeof buf, "%s@%s", p->name, p->version);
    return json_string(buf);
}

char *as_rules_read(as_runtime *rt, const char *principal, as_error *err)
{
    as_principal who;
    if (as__principal_parse(principal, &who) != 0 ||
        (who.role != AS_ROLE_PLATFORM && who.role != AS_ROLE_MERCHANT)) {
        as__err(err, AS_EFORBIDDEN, "only the platform and merchants see the rules");
        return NULL;
    }
    json_t *j = json_object(), *cats = json_object(), *merchants = json_object();
    if (rt->platform) json_object_set_new(j, "platform", pack_name(rt->platform, 0));
    for (int i = 0; i < rt->ncats; i++)
        json_object_set_new(cats, rt->cats[i].category, pack_name(rt->cats[i].pack, 1));
    if (who.role == AS_ROLE_MERCHANT) {
        as_shop *s = as__shop_get(rt, who.id, 0);
        if (s && s->merchant) json_object_set_new(merchants, s->id, pack_name(s->merchant, 0));
    } else {
        size_t pos = 0;
        as_shop *s;
        while ((s = as__strmap_next(&rt->shops, &pos)) != NULL)
            if (s->merchant) json_object_set_new(merchants, s->id, pack_name(s->merchant, 0));
    }
    json_object_set_new(j, "categories", cats);
    json_object_set_new(j, "merchants", merchants);
    return dump(j, err);
}

char *as_runtime_stats_json(as_runtime *rt, as_error *err)
{
    const as_stats *st = &rt->stats;
    json_t *tr = json_array(), *fails = json_object();
    for (int t = 0; t < AS_TYPE_COUNT; t++)
        for (int s = 0; s < AS_STATE_COUNT; s++)
            if (st->by_type_state[t][s])
                json_array_append_new(tr, json_pack("{s:s, s:s, s:I}", "type", as__type_name(t),
                                                    "state", as__state_name(s), "count",
                                                    (json_int_t)st->by_type_state[t][s]));
    for (int l = 0; l < AS_LAYER_COUNT; l++)
        json_object_set_new(fails, as__layer_name(l), json_integer((json_int_t)st->rule_failures[l]));
    json_t *j = json_pack(
        "{s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:I, s:f, s:f, s:I, s:I}", "commands",
        (json_int_t)st->commands, "refused", (json_int_t)st->refused, "deadlines_fired",
        (json_int_t)st->deadlines_fired, "transitions", tr, "rule_failures", fails,
        "pack_load_failures", (json_int_t)st->pack_load_failures, "merchant_packs_failed",
        (json_int_t)as__failed_merchant_packs(rt), "commits", (json_int_t)st->commits,
        "commit_seconds_sum", (double)st->commit_ns_sum / 1e9, "commit_seconds_max",
        (double)st->commit_ns_max / 1e9, "open_cases", (json_int_t)as__open_cases(rt),
        "pending_deadlines", (json_int_t)rt->sched.len);
    return dump(j, err);
}

char *as_case_get_json(as_runtime *rt, const char *case_id)
{
    as_case *c = case_now(rt, case_id);
    return c ? dump(as__case_json(c), NULL) : NULL;
}
