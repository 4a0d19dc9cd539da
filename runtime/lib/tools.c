/* tools.c -- the library's tools without a server (aftersale.h "Packs and database files"):
 * describing a pack, and checking, copying and exporting a server's SQLite file read-only
 * (docs/db.md). A file is read through the restore a starting server runs, on a runtime of
 * its own with the bundled packs, so a tool refuses exactly what a start would. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/journal.h"
#include "../core/runtime.h"
#include "../lua/lua_engine.h"
#include "../native/native_engine.h"
#include "../request/codec.h"
#include "../store/sqlite_tools.h"

char *as_pack_inspect(const char *path, as_error *err)
{
    as_pack *p;
    size_t len = strlen(path);
    int rc;
    if (len > 3 && strcmp(path + len - 3, ".so") == 0) {
        char *d = as__strdup(path), *b = as__strdup(path); /* owned here: dirname/basename edit */
        rc = d && b ? as__native_pack_load(dirname(d), basename(b), &p, err)
                    : as__err(err, AS_ENOMEM, "out of memory");
        as__free(d);
        as__free(b);
    } else {
        rc = as__lua_pack_load_file(path, NULL, &p, err);
    }
    if (rc) return NULL;
    json_t *cats = json_array(), *hooks = json_array();
    for (char **c = p->categories; *c; c++) json_array_append_new(cats, json_string(*c));
    for (int h = 0; h < AS_HOOK_COUNT; h++)
        if (as__pack_has(p, h)) json_array_append_new(hooks, json_string(as__hook_name(h)));
    json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "name", p->name, "version",
                          p->version, "engine", p->engine->kind, "categories", cats, "hooks",
                          hooks, "memory", (json_int_t)p->engine->memory(p));
    as__pack_unref(p);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s == NULL) as__err(err, AS_ENOMEM, "out of memory");
    return s;
}

/* A runtime to restore a file into: a virtual clock that never moves (no deadline fires),
 * the server's packs loaded first, as at its start. */
static int snapshot_runtime(const char *packs, as_runtime **rt, as_error *err)
{
    as_options o = {0};
    if ((*rt = as_runtime_new(&o, err)) == NULL) return err->code ? err->code : AS_ENOMEM;
    return as_runtime_load_packs_dir(*rt, packs, err);
}

typedef struct check_ctx {
    as_db_problem_cb problem;
    void *ud;
    as_runtime *rt; /* the restored file, for the commands' cases */
} check_ctx;

static void problem(void *ud, const char *table, const char *key, const char *why)
{
    check_ctx *x = ud;
    x->problem(x->ud, table, key, why);
}

static int refused(void *ud, const char *table, const char *key, const char *why)
{
    problem(ud, table, key, why);
    return 0;
}

/* An entry's command that does not decode, or names no stored case, is a problem of its
 * own: no restore reads it, and `backtest` would refuse the file. */
static int check_command(void *ud, const char *case_id, uint32_t n, const void *data,
                         size_t len)
{
    check_ctx *x = ud;
    char key[128];
    snprintf(key, sizeof key, "%.64s#%u", case_id, (unsigned)n);
    as_journal_cmd j;
    as_error e = {0};
    int rc = as__journal_read_command(data, len, &j, &e);
    if (rc == AS_ENOMEM) return rc;
    if (rc == 0) as__journal_cmd_free(&j);
    if (rc || n == UINT32_MAX) problem(x, "events", key, "its command does not decode");
    else if (as__case_get(x->rt, case_id) == NULL)
        problem(x, "events", key, "its command's case is not stored, or could not be restored");
    return 0;
}

int as_db_check(const char *path, const char *packs_dir, as_db_problem_cb cb, void *ud,
                as_db_counts *counts, as_error *err)
{
    check_ctx x = {cb, ud, NULL};
    as_store_counts n = {0};
    as_store *s = NULL;
    as_runtime *rt;
    int rc = snapshot_runtime(packs_dir, &rt, err);
    if (rc == 0) rc = as__store_sqlite_open_readonly(path, &s, err);
    if (rc == 0) rc = as__store_sqlite_check(s, problem, &x, &n, err);
    if (rc == 0 && (rc = as__runtime_restore(rt, s, refused, &x, err)) != AS_ENOMEM) {
        if (rc) cb(ud, "database", NULL, err->msg); /* a table it could not read at all */
        x.rt = rt;
        as_error e = {0};
        rc = as__store_sqlite_commands(s, check_command, &x, &e);
        if (rc && rc != AS_ENOMEM) cb(ud, "events", NULL, e.msg);
        if (rc == AS_ENOMEM) *err = e;
        else rc = 0;
    }
    as_runtime_free(rt);
    if (s) s->engine->close(s);
    *counts = (as_db_counts){n.orders, n.cases, n.events, n.packs, n.outbox, n.idempotency};
    return rc;
}

int as_db_backup(const char *path, const char *dest, int force, int *pages, as_error *err)
{
    as_store *s;
    int rc = as__store_sqlite_open_readonly(path, &s, err);
    if (rc) return rc;
    rc = as__store_sqlite_backup(s, dest, force, pages, err);
    s->engine->close(s);
    return rc;
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(as_order *const *)a)->id, (*(as_order *const *)b)->id);
}

/* Hands `line` the text {KIND: obj} (obj taken): its code, or AS_ENOMEM. */
static int emit(as_db_line_cb line, void *ud, const char *kind, json_t *obj, as_error *err)
{
    json_t *l = obj ? json_pack("{s:o}", kind, obj) : NULL;
    char *text = l ? json_dumps(l, JSON_COMPACT) : NULL; /* owned here */
    json_decref(l);
    if (text == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    int rc = line(ud, kind, text);
    as__free(text);
    return rc ? as__err(err, rc, "the export was stopped") : 0;
}

static int export_all(as_runtime *rt, as_db_line_cb line, void *ud, as_error *err)
{
    as_order **orders = as__malloc((rt->orders.len + 1) * sizeof *orders); /* owned here */
    if (orders == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    size_t n = 0, pos = 0;
    as_order *o;
    while ((o = as__strmap_next(&rt->orders, &pos)) != NULL) orders[n++] = o;
    qsort(orders, n, sizeof *orders, by_id);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = emit(line, ud, "order", as__order_json(orders[i]), err);
        for (as_case *c = orders[i]->cases; rc == 0 && c; c = c->next_in_order)
            rc = emit(line, ud, "case", as__case_json(c), err);
    }
    as__free(orders);
    return rc;
}

int as_db_export(const char *path, const char *packs_dir, as_db_line_cb line, void *ud,
                 as_error *err)
{
    as_store *s = NULL;
    as_runtime *rt;
    int rc = snapshot_runtime(packs_dir, &rt, err);
    if (rc == 0) rc = as__store_sqlite_open_readonly(path, &s, err);
    if (rc == 0) rc = as__runtime_restore(rt, s, NULL, NULL, err);
    if (rc == 0) rc = export_all(rt, line, ud, err);
    as_runtime_free(rt);
    if (s) s->engine->close(s);
    return rc;
}

/* ------------------------------------------------------------------------------------------
 * A shop's recorded history, for `aftersale backtest`
 * ---------------------------------------------------------------------------------------- */

/* A party's command as the body a replay sends: the case object of an open, or the payload
 * of an action, with the keys docs/api.md names for it. NULL on OOM. */
static json_t *command_body(const char *case_id, const as_cmd *c)
{
    json_t *b = json_object(), *ev = NULL;
    if (b == NULL) return NULL;
    int bad = 0;
    if (c->given & AS_P_EVIDENCE) {
        ev = json_array();
        for (int i = 0; ev && i < c->nevidence; i++)
            bad |= json_array_append_new(ev, json_string(c->evidence[i]));
        bad |= json_object_set_new(b, "evidence", ev ? ev : json_null());
    }
    if (c->given & AS_P_REASON)
        bad |= json_object_set_new(b, "reason", json_string(as__reason_name(c->reason)));
    if (c->given & AS_P_REQUESTED)
        bad |= json_object_set_new(b, "requested_amount", json_integer(c->requested_amount));
    if (c->given & AS_P_PERMILLE)
        bad |= json_object_set_new(b, "bad_permille", json_integer(c->bad_permille));
    if (c->given & AS_P_SHIPPING)
        bad |= json_object_set_new(b, "shipping_cost", json_integer(c->shipping_cost));
    if (c->given & AS_P_SERIAL) bad |= json_object_set_new(b, "serial", json_string(c->serial));
    if (c->given & AS_P_AMOUNT) bad |= json_object_set_new(b, "amount", json_integer(c->amount));
    if (c->given & AS_P_RESULT)
        bad |= json_object_set_new(b, "result", json_string(c->result ? "fault" : "no_fault"));
    /* the one text field: a carrier beside a tracking number, else a reason */
    if (c->text)
        bad |= json_object_set_new(b, c->tracking ? "carrier" : "reason", json_string(c->text));
    if (c->tracking) bad |= json_object_set_new(b, "tracking", json_string(c->tracking));
    if (c->action == AS_ACT_OPEN) {
        json_t *items = json_array();
        for (int i = 0; items && i < c->nitems; i++)
            bad |= json_array_append_new(items, json_pack("{s:s, s:I}", "sku", c->items[i].sku,
                                                          "qty", (json_int_t)c->items[i].qty));
        bad |= json_object_set_new(b, "items", items ? items : json_null());
        bad |= json_object_set_new(b, "id", json_string(case_id));
        bad |= json_object_set_new(b, "order", json_string(c->order_id));
        bad |= json_object_set_new(b, "type", json_string(as__type_name(c->type)));
    }
    if (bad) {
        json_decref(b);
        return NULL;
    }
    return b;
}

typedef struct history_ctx {
    as_runtime *rt;
    const char *shop;
    as_db_line_cb line;
    void *ud;
    as_error *err;
} history_ctx;

/* One entry's command of a case of the shop as {"command": {"at", "case", "n", "as", "action",
 * "body"}}; rows of other shops are skipped. */
static int history_command(void *ud, const char *case_id, uint32_t n, const void *data,
                           size_t len)
{
    history_ctx *x = ud;
    as_case *c = as__case_get(x->rt, case_id);
    if (c == NULL || strcmp(c->order->shop, x->shop) != 0) return 0;
    as_journal_cmd j;
    int rc = as__journal_read_command(data, len, &j, x->err);
    if (rc)
        return as__err(x->err, rc, "events %s#%u: its command: %s", case_id, (unsigned)n,
                       x->err->msg);
    char who[AS_MAX_ID + 16];
    snprintf(who, sizeof who, "%s%s%s", as__role_name(j.cmd.who.role), j.cmd.who.id ? ":" : "",
             j.cmd.who.id ? j.cmd.who.id : "");
    json_t *body = command_body(case_id, &j.cmd);
    json_t *o = body ? json_pack("{s:I, s:s, s:I, s:s, s:s, s:o}", "at", (json_int_t)j.at_ms,
                                 "case", case_id, "n", (json_int_t)n, "as", who, "action",
                                 as__action_name(j.cmd.action), "body", body)
                     : NULL;
    as__journal_cmd_free(&j);
    return emit(x->line, x->ud, "command", o, x->err);
}

/* The shop's merchant pack in force, as {"rules": {"shop", "version", "source"}}: a Lua
 * source the store keeps (none for a shop without one). */
static int history_rules(as_runtime *rt, const char *shop, as_db_line_cb line, void *ud,
                         as_error *err)
{
    as_shop *s = as__shop_get(rt, shop, 0);
    for (int i = 0; s && s->merchant && i < s->versions.n; i++) {
        const as_version *v = &s->versions.v[i];
        if (v->pack != s->merchant || v->source == NULL) continue;
        return emit(line, ud, "rules",
                    json_pack("{s:s, s:s, s:s%}", "shop", shop, "version", v->version, "source",
                              v->source, v->len),
                    err);
    }
    return 0;
}

int as_db_history(const char *path, const char *packs_dir, const char *shop, long max_cases,
                  as_db_line_cb line, void *ud, as_error *err)
{
    as_store *s = NULL;
    as_runtime *rt;
    int rc = snapshot_runtime(packs_dir, &rt, err);
    if (rc == 0) rc = as__store_sqlite_open_readonly(path, &s, err);
    if (rc == 0) rc = as__runtime_restore(rt, s, NULL, NULL, err);
    as_order **orders = NULL; /* the shop's, by id; owned here */
    size_t n = 0, pos = 0;
    long cases = 0;
    if (rc == 0 && (orders = as__malloc((rt->orders.len + 1) * sizeof *orders)) == NULL)
        rc = as__err(err, AS_ENOMEM, "out of memory");
    as_order *o;
    while (rc == 0 && (o = as__strmap_next(&rt->orders, &pos)) != NULL) {
        if (strcmp(o->shop, shop) != 0) continue;
        orders[n++] = o;
        for (as_case *c = o->cases; c; c = c->next_in_order) cases++;
    }
    if (rc == 0 && cases > max_cases)
        rc = as__err(err, AS_EBAD_REQUEST, "shop '%s' has %ld cases, more than the %ld a "
                     "backtest takes", shop, cases, max_cases);
    if (rc == 0) {
        qsort(orders, n, sizeof *orders, by_id);
        rc = history_rules(rt, shop, line, ud, err);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) rc = emit(line, ud, "order", as__order_json(orders[i]), err);
    history_ctx x = {rt, shop, line, ud, err};
    if (rc == 0) rc = as__store_sqlite_commands(s, history_command, &x, err);
    as__free(orders);
    as_runtime_free(rt);
    if (s) s->engine->close(s);
    return rc;
}
