/* run.c -- `aftersale run SCENARIO...`: the headless scenario runner
 * (docs/design.md#scenario-files).
 *
 * A scenario file is read and validated whole before it runs, so a malformed file never
 * half-runs: it is reported with the step that is wrong and the exit status becomes 2. Each
 * scenario gets a fresh runtime on a virtual clock with the bundled packs. */
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/aftersale.h"
#include "cli.h"

typedef struct step {
    int index; /* 1-based position in the file */
    int64_t at_ms;
    const char *at_text;
    json_t *j; /* borrowed from the document */
} step;

typedef struct scenario {
    const char *file;
    char dir[4096];
    json_t *doc;
    int64_t start_ms;
    int manual_pay;
    step *steps;
    size_t nsteps;
    const char **cases; /* the ids its steps open, for --explain; borrowed from doc */
    size_t ncases;
    int failures;
} scenario;

static int parse_error(const scenario *s, int idx, const char *fmt, const char *a)
{
    fprintf(stderr, "%s: ", s->file);
    if (idx > 0) fprintf(stderr, "step %d: ", idx);
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    return -1;
}

static int only_keys(const scenario *s, int idx, json_t *obj, const char *const *keys)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        const char *const *p = keys;
        while (*p && strcmp(*p, k) != 0) p++;
        if (*p == NULL) return parse_error(s, idx, "unknown field '%s'", k);
    }
    return 0;
}

static const char *const step_keys_order_create[] = {"at", "do", "order", "expect_error", NULL};
static const char *const step_keys_order_event[] = {"at", "do", "order", "expect_error", NULL};
static const char *const step_keys_open[] = {"at", "do", "as", "case", "expect_error", NULL};
static const char *const step_keys_act[] = {"at",      "do",      "as",           "case", "action",
                                            "payload", "version", "expect_error", NULL};
static const char *const step_keys_load[] = {"at", "do", "shop", "path", "expect_error", NULL};
static const char *const step_keys_expect[] = {"at", "expect", NULL};
static const char *const expect_case_keys[] = {"case",     "state",    "refund_amount", "deadline",
                                               "remedy",   "priority", "history",       NULL};
/* what an expected history entry may name (docs/design.md#provenance) */
static const char *const expect_entry_keys[] = {
    "actor", "action", "from", "to", "note", "decided_by", "hook", "layer", "pack", "why",
    "refund", "dropped", NULL};
static const char *const expect_refund_keys[] = {"amount", "paid", "shipping_fee",
                                                 "return_shipping", "source", "hook", "layer",
                                                 "pack", NULL};
static const char *const expect_dropped_keys[] = {"hook", "layer", "pack", "failed", "where",
                                                  NULL};
static const char *const expect_metric_keys[] = {
    "shop",        "orders",           "cases_opened",        "refunds",
    "dispute_refunds", "auto_agreed",  "after_sales_rate",    "refund_rate",
    "dispute_refund_rate", "intervention_rate", "flagged", NULL};

static int need_string(const scenario *s, int idx, json_t *obj, const char *key)
{
    if (!json_is_string(json_object_get(obj, key)))
        return parse_error(s, idx, "'%s' must be a string", key);
    return 0;
}

/* `"history": [{entry}, ...]`: entries to find in the case's history, in that order. */
static int validate_history(const scenario *s, int idx, json_t *h)
{
    if (h == NULL) return 0;
    if (!json_is_array(h)) return parse_error(s, idx, "'%s' must be a list of entries", "history");
    size_t i;
    json_t *e;
    json_array_foreach(h, i, e)
    {
        if (!json_is_object(e))
            return parse_error(s, idx, "'%s' must be a list of entries", "history");
        if (only_keys(s, idx, e, expect_entry_keys)) return -1;
        json_t *r = json_object_get(e, "refund"), *d = json_object_get(e, "dropped");
        if (r && (!json_is_object(r) || only_keys(s, idx, r, expect_refund_keys)))
            return json_is_object(r) ? -1 : parse_error(s, idx, "'%s' must be an object", "refund");
        if (d && (!json_is_object(d) || only_keys(s, idx, d, expect_dropped_keys)))
            return json_is_object(d) ? -1 : parse_error(s, idx, "'%s' must be an object", "dropped");
    }
    return 0;
}

static int validate_step(const scenario *s, int idx, json_t *st)
{
    if (!json_is_object(st)) return parse_error(s, idx, "a step must be an object%s", "");
    json_t *doj = json_object_get(st, "do");
    json_t *ex = json_object_get(st, "expect");
    if (json_object_get(st, "expect_error") && !json_is_string(json_object_get(st, "expect_error")))
        return parse_error(s, idx, "'%s' must be an error code", "expect_error");
    if (json_is_string(json_object_get(st, "expect_error")) &&
        as_err_from_name(json_string_value(json_object_get(st, "expect_error"))) == 0)
        return parse_error(s, idx, "'%s' is not an error code of docs/design.md#states-and-actions",
                           json_string_value(json_object_get(st, "expect_error")));
    if (doj == NULL) {
        if (!json_is_object(ex)) return parse_error(s, idx, "a step needs 'do' or 'expect'%s", "");
        if (only_keys(s, idx, st, step_keys_expect)) return -1;
        if (json_object_get(ex, "metrics")) {
            json_t *m = json_object_get(ex, "metrics");
            if (json_object_size(ex) != 1 || !json_is_object(m))
                return parse_error(s, idx, "'%s' must be the only expectation", "metrics");
            if (only_keys(s, idx, m, expect_metric_keys) || need_string(s, idx, m, "shop"))
                return -1;
            return 0;
        }
        if (only_keys(s, idx, ex, expect_case_keys) || need_string(s, idx, ex, "case")) return -1;
        return validate_history(s, idx, json_object_get(ex, "history"));
    }
    if (!json_is_string(doj)) return parse_error(s, idx, "'%s' must be a string", "do");
    const char *d = json_string_value(doj);
    if (strcmp(d, "order.create") == 0) {
        if (!json_is_object(json_object_get(st, "order")))
            return parse_error(s, idx, "'%s' must be an object", "order");
        return only_keys(s, idx, st, step_keys_order_create);
    }
    if (strcmp(d, "order.ship") == 0 || strcmp(d, "order.deliver") == 0 ||
        strcmp(d, "order.confirm") == 0)
        return only_keys(s, idx, st, step_keys_order_event) || need_string(s, idx, st, "order");
    if (strcmp(d, "case.open") == 0) {
        if (only_keys(s, idx, st, step_keys_open) || need_string(s, idx, st, "as")) return -1;
        if (json_object_get(st, "case") == NULL)
            return parse_error(s, idx, "'%s' is missing", "case");
        return 0;
    }
    if (strcmp(d, "case.act") == 0) {
        if (only_keys(s, idx, st, step_keys_act) || need_string(s, idx, st, "as") ||
            need_string(s, idx, st, "case") || need_string(s, idx, st, "action"))
            return -1;
        json_t *ver = json_object_get(st, "version");
        if (ver && !json_is_integer(ver))
            return parse_error(s, idx, "'%s' must be an integer", "version");
        return 0;
    }
    if (strcmp(d, "rules.load") == 0)
        return only_keys(s, idx, st, step_keys_load) || need_string(s, idx, st, "shop") ||
               need_string(s, idx, st, "path");
    return parse_error(s, idx, "unknown 'do': '%s'", d);
}

static int cmp_step(const void *a, const void *b)
{
    const step *x = a, *y = b;
    if (x->at_ms != y->at_ms) return x->at_ms < y->at_ms ? -1 : 1;
    return x->index - y->index; /* ties in file order */
}

static int load_scenario(scenario *s, const char *file)
{
    memset(s, 0, sizeof *s);
    s->file = file;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", file);
    snprintf(s->dir, sizeof s->dir, "%s", dirname(tmp));
    json_error_t je;
    s->doc = json_load_file(file, JSON_REJECT_DUPLICATES, &je);
    if (s->doc == NULL) {
        fprintf(stderr, "%s: cannot read or parse: %s (line %d, column %d)\n", file, je.text,
                je.line, je.column);
        return -1;
    }
    if (!json_is_object(s->doc)) return parse_error(s, 0, "a scenario must be a JSON object%s", "");
    static const char *const top[] = {"name", "start", "steps", "merchant_rules",
                                      "payments", "packs", "description", NULL};
    if (only_keys(s, 0, s->doc, top)) return -1;
    if (as_instant_parse(json_string_value(json_object_get(s->doc, "start")), &s->start_ms))
        return parse_error(s, 0, "'start' must be an instant like %s", "2026-03-01T00:00:00Z");
    json_t *pay = json_object_get(s->doc, "payments");
    if (pay) {
        const char *p = json_string_value(pay);
        if (p == NULL || (strcmp(p, "manual") != 0 && strcmp(p, "auto") != 0))
            return parse_error(s, 0, "'payments' must be \"manual\" or \"auto\"%s", "");
        s->manual_pay = strcmp(p, "manual") == 0;
    }
    json_t *mr = json_object_get(s->doc, "merchant_rules");
    if (mr) {
        const char *k;
        json_t *v;
        if (!json_is_object(mr)) return parse_error(s, 0, "'%s' must be an object", "merchant_rules");
        json_object_foreach(mr, k, v) if (!json_is_string(v))
            return parse_error(s, 0, "merchant_rules: the path for '%s' must be a string", k);
    }
    json_t *packs = json_object_get(s->doc, "packs");
    if (packs) {
        const char *k;
        json_t *v;
        if (!json_is_object(packs)) return parse_error(s, 0, "'%s' must be an object", "packs");
        json_object_foreach(packs, k, v)
        {
            const char *impl = json_string_value(v);
            if (impl == NULL || (strcmp(impl, "lua") != 0 && strcmp(impl, "native") != 0))
                return parse_error(s, 0, "packs: '%s' must be \"lua\" or \"native\"", k);
        }
    }
    json_t *steps = json_object_get(s->doc, "steps");
    if (!json_is_array(steps)) return parse_error(s, 0, "'steps' must be a list%s", "");
    s->nsteps = json_array_size(steps);
    s->steps = as_calloc(s->nsteps + 1, sizeof *s->steps);
    s->cases = as_calloc(s->nsteps + 1, sizeof *s->cases);
    if (s->steps == NULL || s->cases == NULL) return parse_error(s, 0, "out of memory%s", "");
    for (size_t i = 0; i < s->nsteps; i++) {
        json_t *st = json_array_get(steps, i);
        step *p = &s->steps[i];
        p->index = (int)i + 1;
        p->j = st;
        if (validate_step(s, p->index, st)) return -1;
        const char *opened = json_string_value(json_object_get(json_object_get(st, "case"), "id"));
        const char *d = json_string_value(json_object_get(st, "do"));
        if (opened && d && strcmp(d, "case.open") == 0)
            s->cases[s->ncases++] = opened;
        p->at_text = json_string_value(json_object_get(st, "at"));
        if (as_duration_parse(p->at_text, &p->at_ms))
            return parse_error(s, p->index, "bad duration '%s' in 'at' (like 90s, 48h, 7d12h)",
                               p->at_text ? p->at_text : "(missing)");
    }
    qsort(s->steps, s->nsteps, sizeof *s->steps, cmp_step);
    return 0;
}

static void fail(scenario *s, const step *st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(scenario *s, const step *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: step %d (at %s): ", s->file, st->index, st->at_text);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    s->failures++;
}

static void rel_path(const scenario *s, const char *p, char *out, size_t len)
{
    if (p[0] == '/')
        snprintf(out, len, "%s", p);
    else
        snprintf(out, len, "%s/%s", s->dir, p);
}

/* Runs a command step; returns the error code (0 on success). */
static int do_step(as_runtime *rt, const scenario *s, json_t *st, as_error *err)
{
    const char *d = json_string_value(json_object_get(st, "do"));
    if (strcmp(d, "order.create") == 0) {
        char *text = json_dumps(json_object_get(st, "order"), JSON_COMPACT);
        int rc = as_order_create_json(rt, text, err);
        as_free(text);
        return rc;
    }
    if (strncmp(d, "order.", 6) == 0)
        return as_order_event(rt, json_string_value(json_object_get(st, "order")), d + 6, err);
    if (strcmp(d, "case.open") == 0) {
        char *text = json_dumps(json_object_get(st, "case"), JSON_COMPACT | JSON_ENCODE_ANY);
        int rc = as_case_open_json(rt, json_string_value(json_object_get(st, "as")), text, err);
        as_free(text);
        return rc;
    }
    if (strcmp(d, "case.act") == 0) {
        json_t *payload = json_object_get(st, "payload");
        char *text = payload ? json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_t *ver = json_object_get(st, "version");
        int rc = as_case_act_json(rt, json_string_value(json_object_get(st, "as")),
                                  json_string_value(json_object_get(st, "case")),
                                  json_string_value(json_object_get(st, "action")), text,
                                  ver ? json_integer_value(ver) : -1, err);
        as_free(text);
        return rc;
    }
    char path[8400];
    rel_path(s, json_string_value(json_object_get(st, "path")), path, sizeof path);
    return as_runtime_load_merchant(rt, json_string_value(json_object_get(st, "shop")), path, err);
}

static int same_json(json_t *want, json_t *got)
{
    if (json_is_number(want) && json_is_number(got))
        return llround(json_number_value(want) * 10000) == llround(json_number_value(got) * 10000);
    return json_equal(want, got);
}

/* 1 when every key of `want` is in `got` with the same value, objects compared the same way. */
static int subset(json_t *want, json_t *got)
{
    if (!json_is_object(want)) return got && same_json(want, got);
    if (!json_is_object(got)) return 0;
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v) if (!subset(v, json_object_get(got, k))) return 0;
    return 1;
}

/* The expected entries, each matched by a later entry of the history than the one before. */
static void check_history(scenario *s, const step *st, const char *id, json_t *want, json_t *got)
{
    size_t i, at = 0, n = json_array_size(got);
    json_t *w;
    json_array_foreach(want, i, w)
    {
        while (at < n && !subset(w, json_array_get(got, at))) at++;
        if (at < n) {
            at++;
            continue;
        }
        char *t = json_dumps(w, JSON_COMPACT);
        fail(s, st, "case %s: expected a history entry %s after the ones matched before it, found "
                    "none", id, t);
        as_free(t);
        return;
    }
}

static void check_fields(scenario *s, const step *st, const char *what, json_t *want, json_t *got,
                         const char *skip)
{
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v)
    {
        if (strcmp(k, skip) == 0 || strcmp(k, "history") == 0) continue;
        json_t *g = json_object_get(got, k);
        if (strcmp(k, "deadline") == 0 && json_is_object(g)) g = json_object_get(g, "kind");
        if (g == NULL) g = json_null();
        if (!same_json(v, g)) {
            char *w = json_dumps(v, JSON_ENCODE_ANY), *f = json_dumps(g, JSON_ENCODE_ANY);
            fail(s, st, "%s: expected %s %s, found %s", what, k, w, f);
            as_free(w);
            as_free(f);
        }
    }
}

static void check_expect(as_runtime *rt, scenario *s, const step *st)
{
    json_t *ex = json_object_get(st->j, "expect");
    json_t *m = json_object_get(ex, "metrics");
    if (m) {
        const char *shop = json_string_value(json_object_get(m, "shop"));
        char *text = as_shop_metrics_json(rt, shop);
        json_t *got = text ? json_loads(text, 0, NULL) : NULL;
        char what[300];
        snprintf(what, sizeof what, "shop %s metrics", shop);
        if (got == NULL) fail(s, st, "%s: could not be computed", what);
        else check_fields(s, st, what, m, got, "shop");
        json_decref(got);
        as_free(text);
        return;
    }
    const char *id = json_string_value(json_object_get(ex, "case"));
    char *text = as_case_get_json(rt, id);
    if (text == NULL) {
        fail(s, st, "expected case %s, found no such case", id);
        return;
    }
    json_t *got = json_loads(text, 0, NULL);
    char what[300];
    snprintf(what, sizeof what, "case %s", id);
    int before = s->failures;
    check_fields(s, st, what, ex, got, "case");
    if (json_object_get(ex, "history"))
        check_history(s, st, id, json_object_get(ex, "history"), json_object_get(got, "history"));
    /* what was found is shown with the decisions that led to it */
    if (s->failures > before) {
        printf("  the history of %s:\n", id);
        as__explain_history(stdout, id, s->start_ms, json_object_get(got, "history"), 0);
    }
    json_decref(got);
    as_free(text);
}

/* --explain: the entries each case gained since the last step (a deadline's included), under
 * the step that led to them. `shown` holds, per case of the scenario, how many were printed. */
static void explain_step(as_runtime *rt, const scenario *s, const step *st, size_t *shown)
{
    int header = 0;
    for (size_t i = 0; i < s->ncases; i++) {
        char *text = as_case_get_json(rt, s->cases[i]);
        json_t *c = text ? json_loads(text, 0, NULL) : NULL;
        json_t *h = json_object_get(c, "history");
        if (json_array_size(h) > shown[i] && !header++)
            printf("%s: step %d (at %s)\n", s->file, st->index, st->at_text);
        if (h) shown[i] = as__explain_history(stdout, s->cases[i], s->start_ms, h, shown[i]);
        json_decref(c);
        as_free(text);
    }
}

/* A category's native plugin from <plugins>/<category>/<category>.so, in place of its Lua
 * pack. */
static int load_native(as_runtime *rt, const char *cat, const char *plugins, as_error *err)
{
    char dir[4096], file[512];
    snprintf(dir, sizeof dir, "%s/%s", plugins, cat);
    snprintf(file, sizeof file, "%s.so", cat);
    return as_runtime_load_native(rt, dir, file, err);
}

/* `"packs": {"electronics": "native"}` in the scenario, or --native on the command line. */
static int load_natives(as_runtime *rt, const scenario *s, const as_run_opts *ro, as_error *err)
{
    for (int i = 0; i < ro->nnative; i++)
        if (load_native(rt, ro->native[i], ro->plugins, err) != 0) return -1;
    const char *cat;
    json_t *v;
    json_object_foreach(json_object_get(s->doc, "packs"), cat, v)
    {
        if (strcmp(json_string_value(v), "native") != 0) continue;
        if (load_native(rt, cat, ro->plugins, err) != 0) return -1;
    }
    return 0;
}

static int run_scenario(scenario *s, const as_run_opts *ro)
{
    const char *packs_dir = ro->packs;
    as_options opts = {.start_ms = s->start_ms,
                       .auto_pay = !s->manual_pay,
                       .lua_instructions = ro->lua_instructions,
                       .lua_memory = ro->lua_memory};
    as_error err = {0};
    as_runtime *rt = as_runtime_new(&opts, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, packs_dir, &err) != 0 ||
        load_natives(rt, s, ro, &err) != 0) {
        fprintf(stderr, "%s: cannot start a runtime: %s\n", s->file, err.msg);
        as_runtime_free(rt);
        return -1;
    }
    json_t *mr = json_object_get(s->doc, "merchant_rules");
    const char *shop;
    json_t *v;
    json_object_foreach(mr, shop, v)
    {
        char path[8400];
        rel_path(s, json_string_value(v), path, sizeof path);
        if (as_runtime_load_merchant(rt, shop, path, &err) != 0) {
            fprintf(stderr, "%s: merchant_rules: %s\n", s->file, err.msg);
            as_runtime_free(rt);
            return -1;
        }
    }
    size_t *shown = ro->explain ? as_calloc(s->ncases + 1, sizeof *shown) : NULL; /* owned */
    if (ro->explain && shown == NULL) {
        fprintf(stderr, "%s: out of memory\n", s->file);
        as_runtime_free(rt);
        return -1;
    }
    for (size_t i = 0; i < s->nsteps; i++) {
        const step *st = &s->steps[i];
        as_runtime_advance(rt, s->start_ms + st->at_ms);
        if (json_object_get(st->j, "do") == NULL) {
            if (shown) explain_step(rt, s, st, shown);
            check_expect(rt, s, st);
            continue;
        }
        memset(&err, 0, sizeof err);
        int rc = do_step(rt, s, st->j, &err);
        const char *want = json_string_value(json_object_get(st->j, "expect_error"));
        const char *d = json_string_value(json_object_get(st->j, "do"));
        if (want == NULL && rc != 0)
            fail(s, st, "%s: expected success, got %s: %s", d, as_err_name(rc), err.msg);
        else if (want && rc == 0)
            fail(s, st, "%s: expected error %s, but the command succeeded", d, want);
        else if (want && strcmp(want, as_err_name(rc)) != 0)
            fail(s, st, "%s: expected error %s, got %s: %s", d, want, as_err_name(rc), err.msg);
        if (shown) explain_step(rt, s, st, shown);
    }
    as_free(shown);
    as_runtime_free(rt);
    return 0;
}

int as__run_files(char **files, int n, const as_run_opts *ro)
{
    int passed = 0, failed = 0, broken = 0;
    for (int i = 0; i < n; i++) {
        scenario s;
        if (load_scenario(&s, files[i]) != 0 || run_scenario(&s, ro) != 0) {
            broken++;
        } else if (s.failures) {
            failed++;
        } else {
            passed++;
        }
        as_free(s.steps);
        as_free(s.cases);
        json_decref(s.doc);
    }
    printf("%d passed, %d failed\n", passed, failed + broken);
    return broken ? 2 : failed ? 1 : 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aftersale run [OPTIONS] SCENARIO...\n"
            "\n"
            "Runs scenario files (docs/design.md#scenario-files) headless on a virtual\n"
            "clock with the bundled rule packs, prints one line per failed expectation\n"
            "and the summary line 'N passed, M failed'.\n"
            "\n"
            "  --packs DIR     the bundled Lua rule packs (default: %s)\n"
            "  --plugins DIR   native plugins, DIR/<category>/<category>.so, for a\n"
            "                  scenario's \"packs\": {\"<category>\": \"native\"}\n"
            "                  (default: %s)\n"
            "%s"
            "  -h, --help      this text\n"
            "\n"
            "Exit status: 0 all passed, 1 some failed, 2 a file could not be read or parsed.\n",
            as__cli_packs_dir(), as__cli_plugin_dir(), AS_RUN_OPTIONS_HELP);
}

int as__cli_run(int argc, char **argv)
{
    as_run_opts ro;
    int rc = as__run_opts_parse(&ro, argc, argv, usage);
    if (rc >= 0) return rc;
    return as__run_files(argv + optind, argc - optind, &ro);
}

int as__run_opts_parse(as_run_opts *ro, int argc, char **argv, void (*help)(FILE *))
{
    static const struct option opts[] = {
        {"packs", required_argument, NULL, 'p'},
        {"plugins", required_argument, NULL, 'l'},
        {"lua-instructions", required_argument, NULL, 'i'},
        {"lua-memory", required_argument, NULL, 'm'},
        {"native", required_argument, NULL, 'n'},
        {"explain", no_argument, NULL, 'v'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {0, 0, 0, 0}};
    *ro = (as_run_opts){.packs = as__cli_packs_dir(), .plugins = as__cli_plugin_dir()};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'p': ro->packs = optarg; break;
        case 'l': ro->plugins = optarg; break;
        case 'n':
            if (ro->nnative == AS_RUN_MAX_NATIVE) {
                fprintf(stderr, "aftersale: too many --native options\n");
                return 2;
            }
            ro->native[ro->nnative++] = optarg;
            break;
        case 'i':
        case 'm': {
            long long v = strtoll(optarg, &end, 10);
            if (end == optarg || *end != '\0' || v <= 0) {
                fprintf(stderr, "aftersale: --%s takes a positive whole number\n",
                        c == 'i' ? "lua-instructions" : "lua-memory");
                return 2;
            }
            if (c == 'i') ro->lua_instructions = (long)v;
            else ro->lua_memory = (size_t)v;
            break;
        }
        case 'v': ro->explain = 1; break;
        case 'h': help(stdout); return 0;
        default: help(stderr); return 2;
        }
    }
    if (optind >= argc) {
        help(stderr);
        return 2;
    }
    return -1;
}
