/* backtest.c -- `aftersale backtest`: a shop's recorded cases replayed under a candidate
 * merchant pack, and what changes (docs/design.md#interfaces).
 *
 * The file is read once, read-only (as_db_history: the shop's merchant pack in force, its
 * orders, and every party's command with its time and payload from the commands table).
 * Then two headless runtimes on a virtual clock replay the same events in time order through
 * the public API: the baseline under the store's merchant pack (or none), the candidate under
 * the given file. The system's own actions (deadlines, auto_decide) are not replayed: each
 * runtime derives them again as its clock moves, which is the point. A recorded command that
 * a runtime refuses (the merchant's agree after the candidate auto-agreed) is skipped and
 * counted. Each case is then read back from both and compared. Nothing is written. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A shop with more cases is refused before anything is replayed: two runtimes hold them all. */
#define MAX_CASES 100000L

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aftersale backtest --db FILE --shop SHOP --rules CANDIDATE.lua [--packs DIR]\n"
            "                          [--json]\n"
            "\n"
            "Replays the recorded cases of SHOP from the database file of `aftersale serve` (read\n"
            "only; a server may hold it) on a virtual clock, twice: under the shop's merchant\n"
            "pack in force in the file (or none) and under CANDIDATE.lua. The parties' commands\n"
            "come at their recorded times; deadlines and auto-decisions are derived again; a\n"
            "command the candidate refuses is skipped. Prints each case that ends differently\n"
            "(state, refund, auto-decisions, deadlines fired) and the totals: money refunded\n"
            "(fen, cases refunding or refunded), cases auto-agreed, disputes (escalations),\n"
            "cases compared, commands skipped. At most %ld cases.\n"
            "\n"
            "  --db FILE       the database file\n"
            "  --shop SHOP     the shop whose cases are replayed\n"
            "  --rules FILE    the candidate merchant pack (Lua)\n"
            "  --packs DIR     the bundled rule packs (default: %s)\n"
            "  --json          one JSON document instead of the table\n"
            "  -h, --help      this text\n"
            "\n"
            "Exit status 0 when the report was written, 1 when the file or the candidate could\n"
            "not be read, 2 for a usage error.\n",
            MAX_CASES, as__cli_packs_dir());
}

/* ------------------------------------------------------------------------------------------
 * The recorded history
 * ---------------------------------------------------------------------------------------- */

typedef struct history {
    json_t *rules;    /* {"shop", "version", "source"}, or NULL */
    json_t *orders;   /* of order objects */
    json_t *commands; /* of {"at", "case", "n", "as", "action", "body"} */
} history;

static int take_line(void *ud, const char *kind, const char *text)
{
    history *h = ud;
    json_t *l = json_loads(text, 0, NULL);
    json_t *v = json_incref(json_object_get(l, kind));
    json_decref(l);
    if (v == NULL) return AS_ENOMEM;
    if (strcmp(kind, "rules") == 0) {
        h->rules = v;
        return 0;
    }
    return json_array_append_new(strcmp(kind, "order") == 0 ? h->orders : h->commands, v)
               ? AS_ENOMEM
               : 0;
}

/* One event of the replay: an order's creation or stamp, or a party's command. */
enum { EV_CREATE, EV_SHIP, EV_DELIVER, EV_CONFIRM, EV_COMMAND };

typedef struct event {
    int64_t at;
    int kind;
    size_t seq; /* ties keep the order the events were listed in */
    json_t *obj; /* borrowed from the history */
} event;

static int by_time(const void *a, const void *b)
{
    const event *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static const char *const order_stamps[] = {"paid_at", "shipped_at", "delivered_at", "confirmed_at"};

/* Every event, sorted by time; *n set. NULL on OOM. */
static event *events_of(const history *h, size_t *n)
{
    size_t cap = json_array_size(h->orders) * 4 + json_array_size(h->commands) + 1, k = 0, i;
    event *ev = malloc(cap * sizeof *ev);
    if (ev == NULL) return NULL;
    json_t *o;
    json_array_foreach(h->orders, i, o)
    {
        for (int s = EV_CREATE; s <= EV_CONFIRM; s++) {
            json_t *t = json_object_get(o, order_stamps[s]);
            if (json_is_integer(t))
                ev[k] = (event){json_integer_value(t), s, k, o}, k++;
        }
    }
    json_array_foreach(h->commands, i, o)
        ev[k] = (event){json_integer_value(json_object_get(o, "at")), EV_COMMAND, k, o}, k++;
    qsort(ev, k, sizeof *ev, by_time);
    *n = k;
    return ev;
}

/* ------------------------------------------------------------------------------------------
 * One replay
 * ---------------------------------------------------------------------------------------- */

/* The body of order.create: the recorded order less what later events stamp and count. */
static char *order_body(json_t *o)
{
    json_t *c = json_deep_copy(o);
    json_object_del(c, "shipped_at");
    json_object_del(c, "delivered_at");
    json_object_del(c, "confirmed_at");
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(c, "items"), i, it) json_object_del(it, "attempts");
    char *s = c ? json_dumps(c, JSON_COMPACT) : NULL;
    json_decref(c);
    return s;
}

static int apply(as_runtime *rt, const event *e, as_error *err)
{
    static const char *const stamps[] = {NULL, "ship", "deliver", "confirm"};
    const char *id = json_string_value(json_object_get(e->obj, "id"));
    if (e->kind == EV_CREATE) {
        char *body = order_body(e->obj);
        int rc = body ? as_order_create_json(rt, body, err) : AS_ENOMEM;
        free(body);
        return rc;
    }
    if (e->kind != EV_COMMAND) return as_order_event(rt, id, stamps[e->kind], err);
    const char *as = json_string_value(json_object_get(e->obj, "as"));
    const char *action = json_string_value(json_object_get(e->obj, "action"));
    json_t *body = json_object_get(e->obj, "body");
    char *text = json_object_size(body) ? json_dumps(body, JSON_COMPACT) : NULL;
    int rc;
    if (strcmp(action, "open") == 0)
        rc = text ? as_case_open_json(rt, as, text, err) : AS_ENOMEM;
    else /* the recorded version is not sent: the other rules may have made more entries */
        rc = as_case_act_json(rt, as, json_string_value(json_object_get(e->obj, "case")), action,
                              text, -1, err);
    free(text);
    return rc;
}

typedef struct outcome {
    json_t *state;     /* a string, or null when the case was not opened */
    long long refund;  /* the case's refund_amount */
    long long auto_decisions, auto_agreed, escalated;
    json_t *deadlines; /* the decided_by of each fired deadline, in order */
} outcome;

static void outcome_of(as_runtime *rt, const char *case_id, outcome *out)
{
    char *text = as_case_get_json(rt, case_id);
    json_t *c = text ? json_loads(text, 0, NULL) : NULL;
    as_free(text);
    *out = (outcome){json_null(), 0, 0, 0, 0, json_array()};
    if (c == NULL) return;
    json_decref(out->state);
    out->state = json_incref(json_object_get(c, "state"));
    out->refund = json_integer_value(json_object_get(c, "refund_amount"));
    size_t i;
    json_t *h;
    json_array_foreach(json_object_get(c, "history"), i, h)
    {
        const char *by = json_string_value(json_object_get(h, "decided_by"));
        const char *action = json_string_value(json_object_get(h, "action"));
        int rule = by && strcmp(by, "rule:auto_decide") == 0;
        out->auto_decisions += rule;
        out->auto_agreed += (rule && action && strcmp(action, "agree") == 0) ||
                            (action && strcmp(action, "auto_agree") == 0);
        out->escalated += action && strcmp(action, "escalate") == 0;
        if (by && strncmp(by, "deadline:", 9) == 0)
            json_array_append_new(out->deadlines, json_string(by));
    }
    json_decref(c);
}

/* The money a case gives back: its refund once instructed. */
static long long refunded(const outcome *o)
{
    const char *s = json_string_value(o->state);
    return s && (strcmp(s, "refunding") == 0 || strcmp(s, "refunded") == 0) ? o->refund : 0;
}

typedef struct replay {
    as_runtime *rt;
    long skipped;
} replay;

/* A runtime with the bundled packs and the merchant pack (source or file, or none), replaying
 * every event; 0, or 1 with a sentence on stderr. */
static int run_replay(replay *r, const char *packs, const char *shop, const char *source,
                      const char *path, const event *ev, size_t n)
{
    as_options o = {.start_ms = n ? ev[0].at : 0};
    as_error err = {0};
    r->skipped = 0;
    r->rt = as_runtime_new(&o, &err);
    if (r->rt == NULL || as_runtime_load_packs_dir(r->rt, packs, &err) != 0) {
        fprintf(stderr, "aftersale backtest: cannot start a runtime: %s\n", err.msg);
        return 1;
    }
    if ((source && as_runtime_load_merchant_source(r->rt, shop, source, &err) != 0) ||
        (path && as_runtime_load_merchant(r->rt, shop, path, &err) != 0)) {
        fprintf(stderr, "aftersale backtest: %s: %s\n", path ? path : "the store's merchant pack",
                err.msg);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        as_runtime_advance(r->rt, ev[i].at);
        r->skipped += apply(r->rt, &ev[i], &err) != 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The report
 * ---------------------------------------------------------------------------------------- */

static json_t *outcome_json(const outcome *o)
{
    return json_pack("{s:O, s:I, s:I, s:O}", "state", o->state, "refund_amount",
                     (json_int_t)o->refund, "auto_decisions", (json_int_t)o->auto_decisions,
                     "deadlines", o->deadlines);
}

static json_t *delta_json(long long a, long long b)
{
    return json_pack("{s:I, s:I, s:I}", "baseline", (json_int_t)a, "candidate", (json_int_t)b,
                     "delta", (json_int_t)(b - a));
}

static void print_outcome(const outcome *o)
{
    const char *s = json_string_value(o->state);
    printf("%s %lld fen, %lld auto", s ? s : "(not opened)", o->refund, o->auto_decisions);
    size_t i;
    json_t *d;
    json_array_foreach(o->deadlines, i, d) printf("%s%s", i ? "," : ", ", json_string_value(d));
}

static int report(const char *shop, const history *h, replay r[2], int as_json)
{
    json_t *changed = json_array();
    long long money[2] = {0, 0}, agreed[2] = {0, 0}, disputes[2] = {0, 0}, compared = 0,
              nchanged = 0;
    size_t i;
    json_t *c;
    if (!as_json) printf("case\tbaseline\t->\tcandidate\n");
    json_array_foreach(h->commands, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "action")), "open") != 0) continue;
        const char *id = json_string_value(json_object_get(c, "case"));
        outcome o[2];
        for (int k = 0; k < 2; k++) {
            outcome_of(r[k].rt, id, &o[k]);
            money[k] += refunded(&o[k]);
            agreed[k] += o[k].auto_agreed > 0;
            disputes[k] += o[k].escalated > 0;
        }
        compared++;
        if (!json_equal(o[0].state, o[1].state) || o[0].refund != o[1].refund ||
            o[0].auto_decisions != o[1].auto_decisions ||
            !json_equal(o[0].deadlines, o[1].deadlines)) {
            nchanged++;
            if (as_json) {
                json_array_append_new(changed,
                                      json_pack("{s:s, s:o, s:o}", "case", id, "baseline",
                                                outcome_json(&o[0]), "candidate",
                                                outcome_json(&o[1])));
            } else {
                printf("%s\t", id);
                print_outcome(&o[0]);
                printf("\t->\t");
                print_outcome(&o[1]);
                printf("\n");
            }
        }
        for (int k = 0; k < 2; k++) json_decref(o[k].state), json_decref(o[k].deadlines);
    }
    if (as_json) {
        json_t *doc = json_pack(
            "{s:s, s:O?, s:o, s:{s:o, s:o, s:o, s:I, s:I, s:{s:I, s:I}}}", "shop", shop,
            "baseline_rules", h->rules ? json_object_get(h->rules, "version") : NULL, "changed",
            changed, "totals", "refunded", delta_json(money[0], money[1]), "auto_agreed",
            delta_json(agreed[0], agreed[1]), "disputes", delta_json(disputes[0], disputes[1]),
            "cases", (json_int_t)compared, "changed", (json_int_t)nchanged, "skipped",
            "baseline", (json_int_t)r[0].skipped, "candidate", (json_int_t)r[1].skipped);
        if (doc == NULL || json_dumpf(doc, stdout, JSON_COMPACT) != 0) {
            json_decref(doc);
            return 1;
        }
        json_decref(doc);
        printf("\n");
    } else {
        json_decref(changed);
        printf("refunded %lld -> %lld fen (%+lld), auto-agreed %lld -> %lld (%+lld), disputes "
               "%lld -> %lld (%+lld)\n",
               money[0], money[1], money[1] - money[0], agreed[0], agreed[1],
               agreed[1] - agreed[0], disputes[0], disputes[1], disputes[1] - disputes[0]);
        printf("%lld cases compared, %lld changed; commands skipped: %ld baseline, %ld "
               "candidate\n",
               compared, nchanged, r[0].skipped, r[1].skipped);
    }
    return fflush(stdout) != 0 || ferror(stdout);
}

int as__cli_backtest(int argc, char **argv)
{
    static const struct option longs[] = {
        {"db", required_argument, NULL, 'd'},   {"shop", required_argument, NULL, 's'},
        {"rules", required_argument, NULL, 'r'}, {"packs", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *db = NULL, *shop = NULL, *rules = NULL, *packs = as__cli_packs_dir();
    int as_json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (opt) {
        case 'd': db = optarg; break;
        case 's': shop = optarg; break;
        case 'r': rules = optarg; break;
        case 'p': packs = optarg; break;
        case 'j': as_json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || db == NULL || shop == NULL || rules == NULL) {
        fprintf(stderr, "aftersale backtest: %s\n",
                optind < argc ? "unexpected arguments" : "--db, --shop and --rules are needed");
        usage(stderr);
        return 2;
    }
    history h = {NULL, json_array(), json_array()};
    as_error err = {0};
    int status = 1;
    event *ev = NULL;
    size_t n = 0;
    replay r[2] = {{NULL, 0}, {NULL, 0}};
    if (as_db_history(db, packs, shop, MAX_CASES, take_line, &h, &err) != 0)
        fprintf(stderr, "aftersale backtest: %s\n", err.msg);
    else if ((ev = events_of(&h, &n)) == NULL)
        fprintf(stderr, "aftersale backtest: out of memory\n");
    else if (run_replay(&r[0], packs, shop,
                        h.rules ? json_string_value(json_object_get(h.rules, "source")) : NULL,
                        NULL, ev, n) == 0 &&
             run_replay(&r[1], packs, shop, NULL, rules, ev, n) == 0)
        status = report(shop, &h, r, as_json);
    as_runtime_free(r[0].rt);
    as_runtime_free(r[1].rt);
    free(ev);
    json_decref(h.rules);
    json_decref(h.orders);
    json_decref(h.commands);
    return status;
}
