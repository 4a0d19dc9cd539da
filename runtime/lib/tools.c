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

/* A commands row that does not decode, or names no stored case, is a problem of its own:
 * no restore reads the table, and `backtest` would refuse the file. */
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
    if (rc || n == UINT32_MAX) problem(x, "commands", key, "its data does not decode as a command");
    else if (as__case_get(x->rt, case_id) == NULL)
        problem(x, "commands", key, "its case is not stored, or could not be restored");
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
        if (rc && rc != AS_ENOMEM) cb(ud, "commands", NULL, e.msg);
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
