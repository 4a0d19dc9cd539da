/* db_scenario.c -- `aftersale db export --scenario --shop SHOP FILE`: a shop's recorded
 * history as a scenario file (docs/design.md#scenario-files), so that a merchant can keep
 * real cases as tests of its pack.
 *
 * The parties' commands and the orders' logistics come from the command log at their
 * recorded times (as_db_history); each case's state and refund as the file holds them become
 * the expectations at the last instant the history records, by when every deadline the server
 * fired had fired. Scenario times are whole seconds (the format has no smaller unit): a
 * command within a second of a deadline may replay on the other side of it, and the
 * expectation then says so. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define SECOND 1000

typedef struct event {
    int64_t at;   /* ms, as recorded */
    size_t seq;   /* the order it was read in: ties keep it */
    json_t *step; /* owned: the step without its "at" */
} event;

typedef struct collected {
    const char *shop;
    event *ev; /* owned */
    size_t n, cap;
    json_t *cases;  /* {id: {"state", "refund_amount"}} of the shop's cases */
    json_t *orders; /* the shop's order ids */
    int64_t first, last;
} collected;

static int push(collected *c, int64_t at, json_t *step)
{
    if (step == NULL) return AS_ENOMEM;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        event *ev = as_realloc(c->ev, cap * sizeof *ev);
        if (ev == NULL) {
            json_decref(step);
            return AS_ENOMEM;
        }
        c->ev = ev, c->cap = cap;
    }
    c->ev[c->n] = (event){at, c->n, step};
    c->n++;
    if (at < c->first) c->first = at;
    if (at > c->last) c->last = at;
    return 0;
}

static int64_t instant(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : -1;
}

/* An order: created at its paid_at with what the platform sent, then shipped, delivered
 * and confirmed at their own times by the steps that stamp them. */
static int add_order(collected *c, json_t *order)
{
    const char *id = json_string_value(json_object_get(order, "id"));
    json_t *body = json_deep_copy(order);
    if (id == NULL || body == NULL) return json_decref(body), AS_EIO;
    json_object_set_new(c->orders, id, json_true());
    static const char *const drop[] = {"shipped_at", "delivered_at", "confirmed_at"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) json_object_del(body, drop[i]);
    size_t k;
    json_t *item;
    json_array_foreach(json_object_get(body, "items"), k, item) json_object_del(item, "attempts");
    int64_t paid = instant(order, "paid_at");
    int rc = push(c, paid, json_pack("{s:s, s:o}", "do", "order.create", "order", body));
    static const char *const stamps[][2] = {
        {"shipped_at", "order.ship"}, {"delivered_at", "order.deliver"}, {"confirmed_at", "order.confirm"}};
    for (size_t i = 0; rc == 0 && i < sizeof stamps / sizeof *stamps; i++) {
        int64_t t = instant(order, stamps[i][0]);
        if (t >= 0) rc = push(c, t, json_pack("{s:s, s:s}", "do", stamps[i][1], "order", id));
    }
    return rc;
}

/* A party's command: an open with its case object, an action with its payload. */
static int add_command(collected *c, json_t *cmd)
{
    const char *action = json_string_value(json_object_get(cmd, "action"));
    json_t *body = json_object_get(cmd, "body");
    const char *as = json_string_value(json_object_get(cmd, "as"));
    const char *id = json_string_value(json_object_get(cmd, "case"));
    if (action == NULL || as == NULL || id == NULL) return AS_EIO;
    json_t *step;
    if (strcmp(action, "open") == 0) {
        step = json_pack("{s:s, s:s, s:O}", "do", "case.open", "as", as, "case", body);
    } else {
        step = json_pack("{s:s, s:s, s:s, s:s}", "do", "case.act", "as", as, "case", id,
                         "action", action);
        if (step && json_object_size(body)) json_object_set(step, "payload", body);
    }
    return push(c, instant(cmd, "at"), step);
}

static int history_line(void *ud, const char *kind, const char *text)
{
    collected *c = ud;
    json_t *j = json_loads(text, 0, NULL);
    if (j == NULL) return AS_ENOMEM;
    int rc = 0;
    if (strcmp(kind, "order") == 0) rc = add_order(c, json_object_get(j, "order"));
    else if (strcmp(kind, "command") == 0) rc = add_command(c, json_object_get(j, "command"));
    json_decref(j);
    return rc;
}

/* The cases of the shop's orders as the file holds them, and the last instant their
 * histories record. */
static int case_line(void *ud, const char *kind, const char *text)
{
    collected *c = ud;
    if (strcmp(kind, "case") != 0) return 0;
    json_t *j = json_loads(text, 0, NULL);
    json_t *k = json_object_get(j, "case");
    if (j == NULL) return AS_ENOMEM;
    const char *id = json_string_value(json_object_get(k, "id"));
    if (id && json_object_get(c->orders, json_string_value(json_object_get(k, "order")))) {
        json_object_set_new(c->cases, id,
                            json_pack("{s:O, s:O}", "state", json_object_get(k, "state"),
                                      "refund_amount", json_object_get(k, "refund_amount")));
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(k, "history"), i, e)
        {
            int64_t at = instant(e, "at");
            if (at > c->last) c->last = at;
        }
    }
    json_decref(j);
    return 0;
}

static int by_time(const void *a, const void *b)
{
    const event *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* `ms` from the start as the scenario format writes it: "1d2h3m4s", "0s". */
static json_t *offset(int64_t ms)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'d', 86400000}, {'h', 3600000}, {'m', 60000}, {'s', SECOND}};
    char buf[64];
    size_t len = 0;
    int64_t left = ms;
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (left >= units[i].ms) {
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%lld%c",
                                    (long long)(left / units[i].ms), units[i].unit);
            left %= units[i].ms;
        }
    return json_string(len ? buf : "0s");
}

/* The scenario document (owned by the caller), or NULL with *rc set. */
static json_t *scenario(collected *c, const char *file, int *rc)
{
    int64_t start = c->first / SECOND * SECOND;
    qsort(c->ev, c->n, sizeof *c->ev, by_time);
    char at[40], name[600];
    as_instant_format(start, at, sizeof at);
    snprintf(name, sizeof name,
             "design.md#scenario-files: the recorded cases of shop %s, exported from %s", c->shop,
             file);
    json_t *steps = json_array();
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o}", "name", name, "start", at, "payments", "manual",
                            "steps", steps);
    *rc = doc ? 0 : AS_ENOMEM;
    for (size_t i = 0; *rc == 0 && i < c->n; i++) {
        /* whole seconds, never earlier than the instant recorded */
        int64_t off = (c->ev[i].at - start + SECOND - 1) / SECOND * SECOND;
        json_object_set_new(c->ev[i].step, "at", offset(off));
        if (json_array_append(steps, c->ev[i].step)) *rc = AS_ENOMEM;
    }
    const char *id;
    json_t *want;
    json_t *end = offset((c->last - start + SECOND - 1) / SECOND * SECOND);
    json_object_foreach(c->cases, id, want)
    {
        json_t *ex = json_deep_copy(want);
        if (*rc == 0 && ex) json_object_set_new(ex, "case", json_string(id));
        if (*rc == 0 &&
            (ex == NULL || json_array_append_new(steps, json_pack("{s:O, s:o}", "at", end, "expect", ex))))
            *rc = AS_ENOMEM;
    }
    json_decref(end);
    if (*rc) json_decref(doc), doc = NULL;
    return doc;
}

int as__db_scenario(const char *file, const char *packs, const char *shop)
{
    collected c = {shop, NULL, 0, 0, json_object(), json_object(), INT64_MAX, INT64_MIN};
    as_error err = {0};
    int rc = c.cases && c.orders ? 0 : AS_ENOMEM;
    if (rc == 0) rc = as_db_history(file, packs, shop, AS_DB_SCENARIO_MAX_CASES, history_line, &c, &err);
    if (rc == 0) rc = as_db_export(file, packs, case_line, &c, &err);
    json_t *doc = NULL;
    if (rc == 0 && c.n == 0)
        rc = AS_ENOT_FOUND,
        snprintf(err.msg, sizeof err.msg, "shop '%s' has no recorded orders in %s", shop, file);
    if (rc == 0 && (doc = scenario(&c, file, &rc)) == NULL)
        snprintf(err.msg, sizeof err.msg, "out of memory");
    if (doc && (json_dumpf(doc, stdout, JSON_INDENT(1)) != 0 ||
                fputc('\n', stdout) == EOF || fflush(stdout) != 0))
        rc = AS_EIO, snprintf(err.msg, sizeof err.msg, "cannot write the scenario: standard output failed");
    if (rc && err.msg[0] == '\0') snprintf(err.msg, sizeof err.msg, "%s", as_strerror(rc));
    if (rc) fprintf(stderr, "aftersale db export: %s\n", err.msg);
    json_decref(doc);
    for (size_t i = 0; i < c.n; i++) json_decref(c.ev[i].step);
    as_free(c.ev);
    json_decref(c.cases);
    json_decref(c.orders);
    return rc ? 1 : 0;
}
