/* backtest.c -- a shop's recorded cases replayed under a candidate merchant pack, and what
 * changes (aftersale.h as_db_backtest, docs/design.md#interfaces).
 *
 * The file is read once, read-only (as_db_history: the shop's merchant pack in force, its
 * orders, and every party's command with its time and payload from its history entry).
 * Then two headless runtimes on a virtual clock replay the same events in time order through
 * the public API: the baseline under the store's merchant pack (or none), the candidate under
 * the given source. The system's own actions (deadlines, auto_decide) are not replayed: each
 * runtime derives them again as its clock moves, which is the point. A recorded command that
 * a runtime refuses (the merchant's agree after the candidate auto-agreed) is skipped and
 * counted. Each case is then read back from both and compared. Nothing is written.
 *
 * Everything here is on the caller's thread and on objects of its own (the file's read-only
 * handle, the runtimes), so that a server can run it on a worker thread. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/runtime.h"

/* A shop with more cases is refused before anything is replayed: two runtimes hold them all. */
#define DEFAULT_MAX_CASES 100000L
#define DEFAULT_BUDGET_MS 10000

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
    size_t seq;  /* ties keep the order the events were listed in */
    json_t *obj; /* borrowed from the history */
} event;

static int by_time(const void *a, const void *b)
{
    const event *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static const char *const order_stamps[] = {"paid_at", "shipped_at", "delivered_at", "confirmed_at"};

/* Every event, sorted by time; *n set. NULL on OOM. Owned by the caller (as__free). */
static event *events_of(const history *h, size_t *n)
{
    size_t cap = json_array_size(h->orders) * 4 + json_array_size(h->commands) + 1, k = 0, i;
    event *ev = as__malloc(cap * sizeof *ev);
    if (ev == NULL) return NULL;
    json_t *o;
    json_array_foreach(h->orders, i, o)
    {
        for (int s = EV_CREATE; s <= EV_CONFIRM; s++) {
            json_t *t = json_object_get(o, order_stamps[s]);
            if (json_is_integer(t)) ev[k] = (event){json_integer_value(t), s, k, o}, k++;
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
        as__free(body);
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
    as__free(text);
    return rc;
}

typedef struct replay {
    as_runtime *rt;
    long skipped;
} replay;

/* A runtime with the bundled packs and, when `source` is not NULL, the shop's merchant pack
 * from it, loaded as PUT /v1/shops/{shop}/rules loads one (its bounds and checks). */
static int replay_start(replay *r, const char *packs, const char *shop, const char *source,
                        size_t len, int64_t start_ms, as_error *err)
{
    as_options o = {.start_ms = start_ms};
    r->skipped = 0;
    if ((r->rt = as_runtime_new(&o, err)) == NULL) return err->code ? err->code : AS_ENOMEM;
    int rc = as_runtime_load_packs_dir(r->rt, packs, err);
    if (rc == 0 && source) rc = as__merchant_upload(r->rt, shop, source, len, err);
    return rc;
}

/* Replays every event; AS_EBAD_REQUEST once uv_hrtime() passes `deadline_ns`. */
static int replay_run(replay *r, const event *ev, size_t n, uint64_t deadline_ns, as_error *err)
{
    as_error e = {0};
    for (size_t i = 0; i < n; i++) {
        if (uv_hrtime() > deadline_ns)
            return as__err(err, AS_EBAD_REQUEST, "the backtest passed its time budget after %zu "
                           "of %zu events: replay fewer cases", i, n);
        as_runtime_advance(r->rt, ev[i].at);
        r->skipped += apply(r->rt, &ev[i], &e) != 0;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * The report
 * ---------------------------------------------------------------------------------------- */

typedef struct outcome {
    json_t *state;    /* a string, or null when the case was not opened */
    long long refund; /* the case's refund_amount */
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

/* The report document of aftersale.h as_db_backtest; NULL on OOM. */
static json_t *report(const char *shop, const history *h, const replay r[2])
{
    json_t *changed = json_array();
    long long money[2] = {0, 0}, agreed[2] = {0, 0}, disputes[2] = {0, 0}, compared = 0;
    size_t i;
    json_t *c;
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
            !json_equal(o[0].deadlines, o[1].deadlines))
            json_array_append_new(changed, json_pack("{s:s, s:o, s:o}", "case", id, "baseline",
                                                     outcome_json(&o[0]), "candidate",
                                                     outcome_json(&o[1])));
        for (int k = 0; k < 2; k++) json_decref(o[k].state), json_decref(o[k].deadlines);
    }
    return json_pack("{s:s, s:O?, s:o, s:{s:o, s:o, s:o, s:I, s:I, s:{s:I, s:I}}}", "shop", shop,
                     "baseline_rules", h->rules ? json_object_get(h->rules, "version") : NULL,
                     "changed", changed, "totals", "refunded", delta_json(money[0], money[1]),
                     "auto_agreed", delta_json(agreed[0], agreed[1]), "disputes",
                     delta_json(disputes[0], disputes[1]), "cases", (json_int_t)compared,
                     "changed", (json_int_t)json_array_size(changed), "skipped", "baseline",
                     (json_int_t)r[0].skipped, "candidate", (json_int_t)r[1].skipped);
}

char *as_db_backtest(const char *db_path, const char *packs_dir, const char *shop,
                     const char *source, size_t len, const as_backtest_limits *lim,
                     as_error *err)
{
    as_error local = {0};
    if (err == NULL) err = &local; /* the steps below read the code back */
    as_backtest_limits l = lim ? *lim : (as_backtest_limits){0};
    for (size_t i = 0; i < sizeof l.reserved / sizeof l.reserved[0]; i++)
        if (l.reserved[i]) return as__err(err, AS_EBAD_REQUEST, "reserved words must be 0"), NULL;
    if (l.max_cases < 0 || l.budget_ms < 0) {
        as__err(err, AS_EBAD_REQUEST, "negative backtest limits");
        return NULL;
    }
    long max_cases = l.max_cases ? l.max_cases : DEFAULT_MAX_CASES;
    int64_t budget_ms = l.budget_ms ? l.budget_ms : DEFAULT_BUDGET_MS;
    uint64_t deadline_ns = uv_hrtime() + (uint64_t)budget_ms * 1000000u;
    history h = {NULL, json_array(), json_array()};
    replay r[2] = {{NULL, 0}, {NULL, 0}};
    event *ev = NULL;
    size_t n = 0;
    json_t *doc = NULL;
    as_error e = {0};
    /* the candidate first: a source that does not load is told before the file is read */
    int rc = h.orders && h.commands ? replay_start(&r[1], packs_dir, shop, source, len, 0, err)
                                    : as__err(err, AS_ENOMEM, "out of memory");
    if (rc == 0) rc = as_db_history(db_path, packs_dir, shop, max_cases, take_line, &h, err);
    if (rc == 0 && (ev = events_of(&h, &n)) == NULL) rc = as__err(err, AS_ENOMEM, "out of memory");
    /* the candidate's clock starts where the history does, as the baseline's */
    if (rc == 0 && n) as_runtime_advance(r[1].rt, ev[0].at);
    json_t *in_force = h.rules ? json_object_get(h.rules, "source") : NULL;
    if (rc == 0 &&
        (rc = replay_start(&r[0], packs_dir, shop, json_string_value(in_force),
                           json_string_length(in_force), n ? ev[0].at : 0, &e)) != 0)
        /* the server starts all the same with such a pack (marked failed): the file's fault */
        rc = as__err(err, rc == AS_ENOMEM ? rc : AS_EIO,
                     "the merchant pack in force in the file does not load: %s", e.msg);
    if (rc == 0) rc = replay_run(&r[0], ev, n, deadline_ns, err);
    if (rc == 0) rc = replay_run(&r[1], ev, n, deadline_ns, err);
    if (rc == 0 && (doc = report(shop, &h, r)) == NULL) as__err(err, AS_ENOMEM, "out of memory");
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (doc && text == NULL) as__err(err, AS_ENOMEM, "out of memory");
    json_decref(doc);
    as_runtime_free(r[0].rt);
    as_runtime_free(r[1].rt);
    as__free(ev);
    json_decref(h.rules);
    json_decref(h.orders);
    json_decref(h.commands);
    return text;
}
