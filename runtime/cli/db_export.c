/* db_export.c -- `aftersale db export FILE`: the file's orders and cases as JSON lines.
 *
 * The rows go through the restore a starting server runs (as__runtime_restore, with the same
 * bundled packs), and each case is the runtime's own view of it (as_case_get_json; GET
 * /v1/cases/{id} is that plus what the asking key may do next, and each history entry's copy
 * of the case's rules), so a line is what the server would show after a restart (deadlines
 * that fell due meanwhile aside: nothing fires here). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/runtime.h"
#include "../store/store.h"
#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aftersale db export [--packs DIR] FILE\n"
            "\n"
            "Writes the orders and cases of a database file of `aftersale serve` to standard\n"
            "output as JSON lines, one object per line, read-only (a server may hold it):\n"
            "    {\"order\": ORDER}   the keys of POST /v1/orders; each line also has attempts\n"
            "    {\"case\": CASE}     as GET /v1/cases/{id} answers, with its history, less\n"
            "                       `actions` and the history entries' copies of `rules`\n"
            "Orders come by id; each order's line is followed by its cases, oldest first.\n"
            "A row that cannot be restored stops the export (exit 1) naming its table and\n"
            "key; `aftersale db check FILE` lists them all.\n"
            "\n"
            "  --packs DIR  the bundled rule packs a server would start with (default:\n"
            "               %s)\n"
            "  -h, --help   this text\n"
            "\n"
            "Exit status 0 when everything was written, 1 when not, 2 for a usage error.\n",
            as__cli_packs_dir());
}

static int by_id(const void *a, const void *b)
{
    return strcmp((*(as_order *const *)a)->id, (*(as_order *const *)b)->id);
}

/* One line {"KIND": obj} on stdout; takes `obj`. 0, or -1 (out of memory). */
static int line(const char *kind, json_t *obj)
{
    json_t *l = obj ? json_pack("{s:o}", kind, obj) : NULL;
    char *text = l ? json_dumps(l, JSON_COMPACT) : NULL; /* owned here */
    json_decref(l);
    if (text == NULL) return -1;
    puts(text);
    as__free(text);
    return 0;
}

static int write_all(as_runtime *rt, as_error *err)
{
    as_order **orders = as__malloc((rt->orders.len ? rt->orders.len : 1) * sizeof *orders); /* owned */
    if (orders == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    size_t n = 0, pos = 0;
    as_order *o;
    while ((o = as__strmap_next(&rt->orders, &pos)) != NULL)
        orders[n++] = o;
    qsort(orders, n, sizeof *orders, by_id);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = line("order", as__order_json(orders[i]));
        for (as_case *c = orders[i]->cases; rc == 0 && c; c = c->next_in_order)
            rc = line("case", as__case_json(c));
    }
    as__free(orders);
    if (rc) return as__err(err, AS_ENOMEM, "out of memory");
    if (fflush(stdout) != 0 || ferror(stdout))
        return as__err(err, AS_EIO, "cannot write the export: standard output failed");
    return 0;
}

int as__cli_db_export(int argc, char **argv)
{
    const char *packs;
    int status = as__db_options(argc, argv, usage, &packs);
    if (status >= 0) return status;
    as_store *s = NULL;
    as_runtime *rt;
    as_error err = {0};
    int rc = as__db_runtime(packs, &rt, &err);
    if (rc == 0) rc = as__store_sqlite_open_readonly(argv[optind], &s, &err);
    if (rc == 0) rc = as__runtime_restore(rt, s, NULL, NULL, &err);
    if (rc == 0) rc = write_all(rt, &err);
    as_runtime_free(rt);
    if (s) s->engine->close(s);
    if (rc) {
        fprintf(stderr, "aftersale db export: %s\n", err.msg);
        return 1;
    }
    return 0;
}
