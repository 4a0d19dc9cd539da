/* test_durable.c -- durable runtimes (docs/design.md#time-and-deadlines, docs/design.md#storage-and-durability, aftersale.h "Durable runtimes",
 * docs/pipe.md): requests through as_runtime_submit on a real libuv loop with the bundled packs
 * and a SQLite file, answered once their group commit is on disk, and restored whole by a
 * second runtime on the same file.
 *
 * Each "restart" frees the runtime, closes its loop (uv_loop_close must return 0: nothing
 * leaked) and builds a new runtime on a new loop, as a new process would. */
#include <check.h>
#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "aftersale/aftersale.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/runtime.h"
#include "store/stores.h"
#include "core/timefmt.h"
#include "unit_common.h"
#include "unit_scratch.h"

/* ==========================================================================================
 * Clocks (the scratch files, root_make/root_remove, exists and sql_int are unit_scratch.h's)
 * ======================================================================================== */

static int64_t mono_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000);
}

static void sleep_until_wall(int64_t t_ms)
{
    int64_t now;
    while ((now = wall_ms()) < t_ms) usleep((useconds_t)((t_ms - now) * 1000));
}

/* ==========================================================================================
 * A durable runtime on its own loop
 * ======================================================================================== */

typedef struct delivery {
    char key[64], kind[16], case_id[32];
    int64_t amount;
    int acked_a, acked_b; /* as__outbox_acked for URL_A, URL_B when it was delivered */
} delivery;

#define URL_A "http://a.example/hook"
#define URL_B "https://b.example/hook"

typedef struct D {
    uv_loop_t loop;
    uv_idle_t spin; /* active only inside pump(): see there */
    as_runtime *rt;
    as_error err;
    char db[256];
    as_store *mem; /* when set, the engine restarts on these rows instead of the file */
    delivery out[16];
    int nout;
    int64_t idempotency_ms; /* as_options.idempotency_ms of the runtimes started */
} D;

static void on_outbox(void *data, const char *kind, const char *case_id, int64_t amount,
                      const char *key)
{
    D *d = data;
    ck_assert_int_lt(d->nout, 16);
    delivery *o = &d->out[d->nout++];
    snprintf(o->key, sizeof o->key, "%s", key);
    snprintf(o->kind, sizeof o->kind, "%s", kind);
    snprintf(o->case_id, sizeof o->case_id, "%s", case_id);
    o->amount = amount;
    o->acked_a = as__outbox_acked(d->rt, key, URL_A);
    o->acked_b = as__outbox_acked(d->rt, key, URL_B);
}

static void d_init(D *d, const char *dbname)
{
    memset(d, 0, sizeof *d);
    snprintf(d->db, sizeof d->db, "%s/%s", root, dbname);
    unlink(d->db);
}

/* A runtime with the bundled packs on a new loop, not yet durable. */
static void rt_new(D *d)
{
    ck_assert_ptr_null(d->rt);
    ck_assert_int_eq(uv_loop_init(&d->loop), 0);
    ck_assert_int_eq(uv_idle_init(&d->loop, &d->spin), 0);
    as_options o = {0};
    o.loop = &d->loop;
    o.outbox = on_outbox;
    o.outbox_data = d;
    o.lua_memory = 8 << 20;
    o.idempotency_ms = d->idempotency_ms;
    d->rt = unit_runtime(&o, &d->err);
}

/* ... and attached to the test's file: a (re)started process. */
static void rt_start(D *d)
{
    rt_new(d);
    int rc = d->mem ? as__durable_attach(d->rt, d->mem, &d->err)
                    : as_runtime_attach_store(d->rt, d->db, &d->err);
    ck_assert_msg(rc == 0, "attach %s: %s (%s)", d->db, as_err_name(rc), d->err.msg);
}

static void spin_cb(uv_idle_t *h)
{
    (void)h;
}

/* A one-shot timer that only wakes the loop. */
static void guard_cb(uv_timer_t *h)
{
    (void)h;
}

/* Runs the loop until nothing submitted waits for the disk, with the recipe of aftersale.h's
 * embedders (`while (!as_runtime_idle(rt)) uv_run(loop, UV_RUN_ONCE)`), bounded in time.
 * An active idle handle keeps the loop alive and its poll phase from sleeping; without it the
 * recipe does not finish for work submitted outside a loop callback (see the tests under
 * "wakeup" below). */
static void pump(D *d)
{
    int64_t t0 = mono_ms();
    uv_idle_start(&d->spin, spin_cb);
    while (!as_runtime_idle(d->rt)) {
        uv_run(&d->loop, UV_RUN_ONCE);
        ck_assert_msg(mono_ms() - t0 < 20000, "the runtime did not become idle in 20 s");
    }
    uv_idle_stop(&d->spin);
}

/* Stops the process: waits for what is in flight, frees the runtime, closes the loop. */
static void rt_stop(D *d)
{
    pump(d);
    as_runtime_free(d->rt);
    d->rt = NULL;
    uv_close((uv_handle_t *)&d->spin, NULL);
    uv_run(&d->loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&d->loop), 0);
}

/* ------------------------------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------------------------- */

typedef struct ans {
    int called;
    int code;
    char msg[AS_ERROR_MSG_MAX];
    /* when set: a query run on a connection of its own as the answer comes, its result kept */
    const char *db, *probe;
    long long probed;
} ans;

static void done_cb(void *ud, int code, const char *message)
{
    ans *a = ud;
    a->called++;
    a->code = code;
    ck_assert_ptr_nonnull(message);
    snprintf(a->msg, sizeof a->msg, "%s", message);
    if (a->probe) a->probed = sql_int(a->db, a->probe);
}

static int vsubmit(D *d, ans *a, const char *fmt, va_list ap)
{
    char buf[2048];
    vsnprintf(buf, sizeof buf, fmt, ap);
    return as_runtime_submit(d->rt, buf, done_cb, a);
}

/* Submits a request and returns the code as_runtime_submit returned. */
static int submit(D *d, ans *a, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int submit(D *d, ans *a, const char *fmt, ...)
{
    memset(a, 0, sizeof *a);
    va_list ap;
    va_start(ap, fmt);
    int rc = vsubmit(d, a, fmt, ap);
    va_end(ap);
    return rc;
}

/* Submits, runs the loop until it is durable, and returns the answered code. */
static int run(D *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(D *d, const char *fmt, ...)
{
    ans a;
    memset(&a, 0, sizeof a);
    va_list ap;
    va_start(ap, fmt);
    int rc = vsubmit(d, &a, fmt, ap);
    va_end(ap);
    pump(d);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(a.code, rc);
    return a.code;
}

#define OK(d, ...)                                                                         \
    do {                                                                                   \
        int rc_ = run((d), __VA_ARGS__);                                                   \
        ck_assert_msg(rc_ == 0, "line %d: refused with %s", __LINE__, as_err_name(rc_));   \
    } while (0)

#define ORDER(id, shop, buyer, fee)                                                        \
    "{\"op\":\"order.create\",\"order\":{\"id\":\"" id "\",\"shop\":\"" shop "\","         \
    "\"buyer\":\"" buyer "\",\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\","         \
    "\"qty\":1,\"price\":19900},{\"sku\":\"T2\",\"category\":\"apparel\",\"qty\":2,"       \
    "\"price\":5000}],\"shipping_fee\":" fee "}}"
#define OPEN(who, id, order, type, reason, sku)                                            \
    "{\"op\":\"case.open\",\"as\":\"" who "\",\"case\":{\"id\":\"" id "\",\"order\":\""    \
    order "\",\"type\":\"" type "\",\"reason\":\"" reason "\",\"items\":[{\"sku\":\"" sku  \
    "\",\"qty\":1}]}}"
#define ACT(who, id, action)                                                               \
    "{\"op\":\"case.act\",\"as\":\"" who "\",\"case\":\"" id "\",\"action\":\"" action "\"}"

/* Order `id` of shop/buyer, shipped and delivered now. */
static void delivered_order(D *d, const char *id, const char *shop, const char *buyer)
{
    char req[512];
    snprintf(req, sizeof req,
             "{\"op\":\"order.create\",\"order\":{\"id\":\"%s\",\"shop\":\"%s\",\"buyer\":\"%s\","
             "\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":1,\"price\":19900},"
             "{\"sku\":\"T2\",\"category\":\"apparel\",\"qty\":2,\"price\":5000}],"
             "\"shipping_fee\":0}}",
             id, shop, buyer);
    OK(d, "%s", req);
    OK(d, "{\"op\":\"order.ship\",\"order\":\"%s\"}", id);
    OK(d, "{\"op\":\"order.deliver\",\"order\":\"%s\"}", id);
}

/* ------------------------------------------------------------------------------------------
 * Looking at cases
 * ---------------------------------------------------------------------------------------- */

static char *case_text(D *d, const char *id)
{
    char *s = as_case_get_json(d->rt, id);
    ck_assert_msg(s != NULL, "case %s is unknown", id);
    return s;
}

static json_t *case_obj(D *d, const char *id)
{
    char *s = case_text(d, id);
    json_error_t je;
    json_t *j = json_loads(s, 0, &je);
    ck_assert_msg(j != NULL, "case %s: %s", id, je.text);
    as_free(s);
    return j;
}

static void assert_state(D *d, const char *id, const char *state)
{
    json_t *j = case_obj(d, id);
    const char *got = json_string_value(json_object_get(j, "state"));
    ck_assert_msg(got && strcmp(got, state) == 0, "case %s is %s, want %s", id, got, state);
    json_decref(j);
}

static json_int_t case_int(D *d, const char *id, const char *key)
{
    json_t *j = case_obj(d, id);
    json_t *v = json_object_get(j, key);
    ck_assert_msg(json_is_integer(v), "case %s has no integer %s", id, key);
    json_int_t x = json_integer_value(v);
    json_decref(j);
    return x;
}

/* "name@version" the case pinned for `layer`, copied to buf ("" when none). */
static const char *case_pin(D *d, const char *id, const char *layer, char *buf, size_t cap)
{
    json_t *j = case_obj(d, id);
    const char *p = json_string_value(json_object_get(json_object_get(j, "rules"), layer));
    snprintf(buf, cap, "%s", p ? p : "");
    json_decref(j);
    return buf;
}

/* The pending deadline's due minus the time of the case's last history entry: the duration
 * the rules gave the deadline the case just entered. */
static int64_t deadline_span(D *d, const char *id, const char *kind)
{
    json_t *j = case_obj(d, id);
    json_t *dl = json_object_get(j, "deadline");
    ck_assert_msg(json_is_object(dl), "case %s has no deadline", id);
    ck_assert_str_eq(json_string_value(json_object_get(dl, "kind")), kind);
    json_t *h = json_object_get(j, "history");
    json_t *last = json_array_get(h, json_array_size(h) - 1);
    int64_t span = json_integer_value(json_object_get(dl, "due")) -
                   json_integer_value(json_object_get(last, "at"));
    json_decref(j);
    return span;
}

static as_case *case_ptr(D *d, const char *id)
{
    as_case *c = as__case_get(d->rt, id);
    ck_assert_msg(c != NULL, "case %s is unknown", id);
    return c;
}

/* Loads merchant rules from source text, then makes them durable. */
static void merchant_rules(D *d, const char *shop, const char *src)
{
    memset(&d->err, 0, sizeof d->err);
    int rc = as_runtime_load_merchant_source(d->rt, shop, src, &d->err);
    ck_assert_msg(rc == 0, "merchant rules of %s: %s", shop, d->err.msg);
    pump(d);
}

/* ==========================================================================================
 * Answers come after the commit
 * ======================================================================================== */

/* aftersale.h: as_runtime_submit "calls `done` once its outcome is durable"; docs/design.md#storage-and-durability:
 * "A state change is acknowledged only after it is durable". Each answer here looks at the file
 * through a connection of its own, at the moment it is given. */
START_TEST(durable_answer_comes_after_commit)
{
    D d;
    d_init(&d, "answers.db");
    rt_start(&d);

    ans a;
    ck_assert_int_eq(submit(&d, &a, ORDER("O1", "S1", "B1", "0")), 0);
    a.db = d.db;
    a.probe = "SELECT count(*) FROM orders WHERE id = 'O1'";
    ck_assert_int_eq(a.called, 0); /* not inside as_runtime_submit */
    ck_assert(!as_runtime_idle(d.rt));
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM orders"), 0);
    pump(&d);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(a.code, 0);
    ck_assert_str_eq(a.msg, "");
    ck_assert_int_eq(a.probed, 1); /* on disk when answered */

    OK(&d, "{\"op\":\"order.ship\",\"order\":\"O1\"}");
    OK(&d, "{\"op\":\"order.deliver\",\"order\":\"O1\"}");

    /* three commands in one turn: one batch, each answered once it is on disk */
    ans o, g, s;
    ck_assert_int_eq(submit(&d, &o, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason",
                                         "T1")),
                     0);
    ck_assert_int_eq(submit(&d, &g, ACT("merchant:S1", "C1", "agree")), 0);
    ck_assert_int_eq(submit(&d, &s, "{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C1\","
                                    "\"action\":\"ship_return\",\"payload\":{\"carrier\":\"SF\","
                                    "\"tracking\":\"SF1\"},\"version\":2}"),
                     0);
    o.db = g.db = s.db = d.db;
    o.probe = "SELECT count(*) FROM cases WHERE id = 'C1'";
    g.probe = s.probe = "SELECT count(*) FROM events WHERE case_id = 'C1'";
    ck_assert_int_eq(o.called + g.called + s.called, 0);
    /* the in-memory truth is already ahead of the disk */
    assert_state(&d, "C1", "returning");
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM cases"), 0);
    pump(&d);
    ck_assert_int_eq(o.called, 1);
    ck_assert_int_eq(g.called, 1);
    ck_assert_int_eq(s.called, 1);
    ck_assert_int_eq(o.code, 0);
    ck_assert_int_eq(g.code, 0);
    ck_assert_int_eq(s.code, 0);
    ck_assert_int_eq(o.probed, 1);
    ck_assert_int_eq(g.probed, 3); /* open, agree, ship_return */
    ck_assert_int_eq(s.probed, 3);
    ck_assert(as_runtime_idle(d.rt));
    rt_stop(&d);
}
END_TEST

/* durable.c retention: a key is answered with its first outcome for as_options
 * .idempotency_ms; then the writer forgets it (memory and file, checked at most once a
 * second), and the same key runs the request anew, also after a restart. */
START_TEST(durable_idempotency_key_forgotten_after_retention)
{
    D d;
    d_init(&d, "retention.db");
    d.idempotency_ms = 300;
    rt_start(&d);
#define KEYED(key, id) "{\"op\":\"order.create\",\"key\":\"" key "\",\"order\":{\"id\":\"" id \
                       "\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"T1\"," \
                       "\"category\":\"apparel\",\"qty\":1,\"price\":100}],\"shipping_fee\":0}}"
    OK(&d, KEYED("K1", "O1"));
    OK(&d, KEYED("K1", "O1")); /* within the retention: the first answer */
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM idempotency WHERE key = 'K1'"), 1);
    sleep_until_wall(wall_ms() + 1200);
    uv_run(&d.loop, UV_RUN_NOWAIT); /* the runtime's time is the loop's: let it see the wait */
    OK(&d, KEYED("K2", "O2")); /* a later batch: K1 is pruned with it */
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM idempotency WHERE key = 'K1'"), 0);
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM idempotency WHERE key = 'K2'"), 1);
    ck_assert_int_eq(run(&d, KEYED("K1", "O1")), AS_EBAD_REQUEST); /* run anew: O1 exists */
    rt_stop(&d);
    d.idempotency_ms = 0; /* the default (24 h): K2 comes back from the file */
    rt_start(&d);
    OK(&d, KEYED("K2", "O2"));
    rt_stop(&d);
#undef KEYED
}
END_TEST

/* docs/design.md#error-codes codes through the request format of docs/pipe.md; a refusal changes nothing. */
START_TEST(durable_refusals_get_their_code)
{
    D d;
    d_init(&d, "refusals.db");
    rt_start(&d);
    delivered_order(&d, "O1", "S1", "B1");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    char *before = case_text(&d, "C1");
    long long events = sql_int(d.db, "SELECT count(*) FROM events");

    static const struct {
        const char *req;
        int code;
    } cases[] = {
        {"{\"op\":\"case.act\"", AS_EBAD_REQUEST}, /* malformed JSON */
        {"", AS_EBAD_REQUEST},
        {"[1, 2]", AS_EBAD_REQUEST}, /* not an object */
        {"{\"op\":\"order.ship\",\"order\":\"O1\",\"order\":\"O2\"}", AS_EBAD_REQUEST},
        {"{\"order\":\"O1\"}", AS_EBAD_REQUEST}, /* no op */
        {"{\"op\":\"case.explode\"}", AS_EBAD_REQUEST},
        {"{\"op\":\"order.ship\",\"order\":\"O9\"}", AS_ENOT_FOUND},
        {ACT("merchant:S1", "C9", "agree"), AS_ENOT_FOUND},
        {ACT("merchant:S1", "C1", "dance"), AS_EBAD_REQUEST},
        {ACT("merchant:S2", "C1", "agree"), AS_EFORBIDDEN},
        {ACT("buyer:B1", "C1", "agree"), AS_EFORBIDDEN},
        {ACT("buyer:B1", "C1", "confirm_receipt"), AS_EINVALID_STATE},
        {"{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\",\"action\":\"agree\","
         "\"version\":7}",
         AS_ECONFLICT},
        {"{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\",\"action\":\"agree\","
         "\"version\":\"1\"}",
         AS_EBAD_REQUEST},
        {OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T2"), AS_EBAD_REQUEST},
        {OPEN("buyer:B1", "C2", "O1", "return_refund", "no_reason", "T1"), AS_EDUPLICATE_CASE},
        {OPEN("buyer:B1", "C2", "O9", "return_refund", "no_reason", "T1"), AS_ENOT_FOUND},
        {"{\"op\":\"rules.load\",\"shop\":\"S1\"}", AS_EBAD_REQUEST},
        {"{\"op\":\"outbox.ack\"}", AS_EBAD_REQUEST},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ans a;
        int rc = submit(&d, &a, "%s", cases[i].req);
        ck_assert_msg(rc == cases[i].code, "%s: returned %s, want %s", cases[i].req,
                      as_err_name(rc), as_err_name(cases[i].code));
        pump(&d);
        ck_assert_msg(a.called == 1, "%s: answered %d times", cases[i].req, a.called);
        ck_assert_msg(a.code == cases[i].code, "%s: answered %s, want %s", cases[i].req,
                      as_err_name(a.code), as_err_name(cases[i].code));
        ck_assert_msg(a.msg[0] != '\0', "%s: no message", cases[i].req);
        char *after = case_text(&d, "C1");
        ck_assert_str_eq(before, after);
        as_free(after);
    }
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM events"), events);
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM cases"), 1);
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM orders"), 1);

    /* malformed JSON says so */
    ans a;
    submit(&d, &a, "{nope");
    pump(&d);
    ck_assert_int_eq(a.code, AS_EBAD_REQUEST);
    ck_assert_msg(strstr(a.msg, "malformed JSON") != NULL, "message: %s", a.msg);
    as_free(before);
    rt_stop(&d);
}
END_TEST

/* ==========================================================================================
 * Restart
 * ======================================================================================== */

/* aftersale.h: attach "restores what the file holds: orders, cases, histories, pinned ...
 * versions, pending deadlines". The restored case is the same case, field for field. */
START_TEST(durable_restart_restores_cases_exactly)
{
    D d;
    d_init(&d, "restore.db");
    rt_start(&d);
    delivered_order(&d, "O1", "S1", "B1");
    delivered_order(&d, "O2", "S1", "B2");
    /* C1: agreed and shipped back (returning, merchant_receive pending) */
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    OK(&d, ACT("merchant:S1", "C1", "agree"));
    OK(&d, "{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C1\",\"action\":\"ship_return\","
           "\"payload\":{\"carrier\":\"SF\",\"tracking\":\"SF1\",\"shipping_cost\":1200}}");
    OK(&d, ACT("logistics", "C1", "return_delivered"));
    /* C2: a partial refund with evidence, countered (negotiating) */
    OK(&d, "{\"op\":\"case.open\",\"as\":\"buyer:B1\",\"case\":{\"id\":\"C2\",\"order\":\"O1\","
           "\"type\":\"partial_refund\",\"reason\":\"quality\",\"items\":[{\"sku\":\"T2\",\"qty\":2}],"
           "\"evidence\":[\"photo-1\",\"photo-2\"],\"requested_amount\":6000}}");
    OK(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C2\",\"action\":\"offer\","
           "\"payload\":{\"amount\":3000}}");
    /* C3: withdrawn (closed, terminal) */
    OK(&d, OPEN("buyer:B2", "C3", "O2", "exchange", "size_fit", "T1"));
    OK(&d, ACT("buyer:B2", "C3", "withdraw"));
    /* C4: rejected, then revised with evidence, back in requested */
    OK(&d, OPEN("buyer:B2", "C4", "O2", "return_refund", "no_reason", "T2"));
    OK(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C4\",\"action\":\"reject\","
           "\"payload\":{\"reason\":\"as_described\"}}");
    OK(&d, "{\"op\":\"case.act\",\"as\":\"buyer:B2\",\"case\":\"C4\",\"action\":\"revise\","
           "\"payload\":{\"reason\":\"quality\",\"evidence\":[\"p\"]}}");

    static const char *const ids[] = {"C1", "C2", "C3", "C4"};
    char *before[4];
    for (int i = 0; i < 4; i++) before[i] = case_text(&d, ids[i]);
    ck_assert(strstr(before[0], "\"state\":\"returning\"") != NULL);
    ck_assert(strstr(before[0], "\"kind\":\"merchant_receive\"") != NULL);
    ck_assert(strstr(before[1], "\"state\":\"negotiating\"") != NULL);
    ck_assert(strstr(before[2], "\"state\":\"closed\"") != NULL);
    ck_assert(strstr(before[3], "\"state\":\"requested\"") != NULL);
    ck_assert(strstr(before[3], "\"version\":3") != NULL);
    rt_stop(&d);

    rt_start(&d);
    for (int i = 0; i < 4; i++) {
        char *after = case_text(&d, ids[i]);
        ck_assert_str_eq(before[i], after);
        as_free(after);
    }
    /* the restored cases go on: the versions and the order's settled units are the old ones */
    OK(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\",\"action\":"
           "\"confirm_return\",\"version\":%lld}",
       (long long)case_int(&d, "C1", "version"));
    assert_state(&d, "C1", "refunding");
    OK(&d, ACT("platform", "C1", "refund_succeeded"));
    assert_state(&d, "C1", "refunded");
    ck_assert_int_eq(run(&d, OPEN("buyer:B1", "C5", "O1", "return_refund", "no_reason", "T1")),
                     AS_ENOT_ELIGIBLE); /* T1's only unit is refunded */
    ck_assert_int_eq(run(&d, OPEN("buyer:B2", "C5", "O2", "return_refund", "no_reason", "T2")),
                     AS_EDUPLICATE_CASE); /* C4 is open on T2 */
    OK(&d, "{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C2\",\"action\":\"accept_offer\","
           "\"version\":2}");
    ck_assert_int_eq(case_int(&d, "C2", "refund_amount"), 3000);
    char *c1 = case_text(&d, "C1");
    rt_stop(&d);

    /* and what the second runtime did is restored by a third */
    rt_start(&d);
    char *again = case_text(&d, "C1");
    ck_assert_str_eq(c1, again);
    assert_state(&d, "C2", "refunding");
    as_free(again);
    as_free(c1);
    rt_stop(&d);
    for (int i = 0; i < 4; i++) as_free(before[i]);
}
END_TEST

typedef struct heard {
    char line[8][160];
    int n;
} heard;

static int heard_refused(void *ud, const char *table, const char *key, const char *why)
{
    heard *h = ud;
    ck_assert_int_lt(h->n, 8);
    snprintf(h->line[h->n++], sizeof h->line[0], "%s %s: %s", table, key, why);
    return 0;
}

/* A snapshot of `path` (as__runtime_restore) on a virtual clock; the store is closed. */
static as_runtime *snapshot(const char *path, heard *h, int want_rc)
{
    as_store *s;
    as_error err = {0};
    ck_assert_int_eq(as__store_sqlite_open_readonly(path, &s, &err), 0);
    as_options o = {0};
    as_runtime *rt = as_runtime_new(&o, &err);
    ck_assert_ptr_nonnull(rt);
    int rc = as__runtime_restore(rt, s, h ? heard_refused : NULL, h, &err);
    ck_assert_msg(rc == want_rc, "restore: %d (%s), want %d", rc, err.msg, want_rc);
    if (rc) ck_assert_msg(strstr(err.msg, "cases C1 could not be restored") &&
                              strstr(err.msg, "`aftersale db check "),
                          "%s", err.msg);
    s->engine->close(s);
    return rt;
}

/* runtime.h: as__runtime_restore is a snapshot of the file, the cases a restart would restore,
 * read while the writer holds the file; with `refused` it hears of every row that cannot be
 * restored and restores the rest; without, the first such row stops it, named. */
START_TEST(durable_snapshot_restores_what_a_restart_would)
{
    D d;
    d_init(&d, "snapshot.db");
    rt_start(&d);
    delivered_order(&d, "O1", "S1", "B1");
    delivered_order(&d, "O2", "S1", "B2");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    OK(&d, ACT("merchant:S1", "C1", "agree"));
    OK(&d, OPEN("buyer:B2", "C2", "O2", "exchange", "size_fit", "T1"));
    char *c1 = case_text(&d, "C1"), *c2 = case_text(&d, "C2");
    as_runtime *snap = snapshot(d.db, NULL, 0); /* the writer still holds the file */
    char *got1 = as_case_get_json(snap, "C1"), *got2 = as_case_get_json(snap, "C2");
    ck_assert_str_eq(got1, c1);
    ck_assert_str_eq(got2, c2);
    as_free(got1), as_free(got2);
    as_runtime_free(snap);
    OK(&d, ACT("merchant:S1", "C2", "agree")); /* and the writer goes on */
    as_free(c2);
    c2 = case_text(&d, "C2");
    rt_stop(&d);

    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open_v2(d.db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "UPDATE cases SET data = x'00' WHERE id = 'C1'", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    heard h = {0};
    snap = snapshot(d.db, &h, 0);
    ck_assert_int_eq(h.n, 3);
    ck_assert_str_eq(h.line[0], "cases C1: its data does not decode as a case");
    ck_assert_str_eq(h.line[1], "events C1#0: its case 'C1' is not stored, or could not be "
                                "restored");
    ck_assert_str_eq(h.line[2], "events C1#1: its case 'C1' is not stored, or could not be "
                                "restored");
    ck_assert_ptr_null(as_case_get_json(snap, "C1"));
    got2 = as_case_get_json(snap, "C2");
    ck_assert_str_eq(got2, c2);
    as_free(got2);
    as_runtime_free(snap);
    as_runtime_free(snapshot(d.db, NULL, AS_EIO));
    as_free(c1), as_free(c2);
}
END_TEST

/* docs/rulebook.md#metrics: the metrics follow from the orders and the histories; a restart must not change a
 * shop's figures, including the merchant answers dropped (docs/design.md#hooks-and-layers: "the failure is recorded
 * in the case history and the metrics"). */
START_TEST(durable_restart_keeps_shop_metrics)
{
    D d;
    d_init(&d, "metrics.db");
    rt_start(&d);
    /* S1 tries to give itself 72h to answer: out of bounds, dropped and recorded */
    merchant_rules(&d, "S1",
                   "return { name = 'slow', version = '1',"
                   "  deadlines = function(case, order) return { merchant_response = 72 * as.HOUR } end }");
    delivered_order(&d, "O1", "S1", "B1");
    delivered_order(&d, "O2", "S1", "B2");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    OK(&d, ACT("merchant:S1", "C1", "agree"));
    OK(&d, OPEN("buyer:B2", "C2", "O2", "exchange", "size_fit", "T1"));
    char *c1 = case_text(&d, "C1");
    ck_assert_msg(strstr(c1, "\"note\"") != NULL, "the dropped answer is not in the history: %s",
                  c1);
    char *m = as_shop_metrics_json(d.rt, "S1");
    ck_assert_ptr_nonnull(m);
    ck_assert_msg(strstr(m, "\"rule_drops\":0") == NULL, "no drop counted: %s", m);
    ck_assert(strstr(m, "\"cases_opened\":2") != NULL);
    rt_stop(&d);

    rt_start(&d);
    char *c1b = case_text(&d, "C1");
    ck_assert_str_eq(c1, c1b);
    char *m2 = as_shop_metrics_json(d.rt, "S1");
    ck_assert_ptr_nonnull(m2);
    ck_assert_str_eq(m, m2);
    as_free(c1);
    as_free(c1b);
    as_free(m);
    as_free(m2);
    rt_stop(&d);
}
END_TEST

/* docs/api.md#idempotency: "the same key twice returns the first result and applies once"; docs/pipe.md:
 * "also across restarts". */
START_TEST(durable_idempotency_key_answers_first_outcome_after_restart)
{
    D d;
    d_init(&d, "idem.db");
    rt_start(&d);
    delivered_order(&d, "O1", "S1", "B1");
    delivered_order(&d, "O2", "S1", "B2");
#define OPEN_K "{\"op\":\"case.open\",\"key\":\"k-open\",\"as\":\"buyer:B1\",\"case\":{\"id\":" \
               "\"C1\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"no_reason\","  \
               "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}}"
#define AGREE_K "{\"op\":\"case.act\",\"key\":\"k-agree\",\"as\":\"merchant:S1\",\"case\":"    \
                "\"C1\",\"action\":\"agree\"}"
#define WITHDRAW_K "{\"op\":\"case.act\",\"key\":\"k-withdraw\",\"as\":\"buyer:B2\",\"case\":" \
                   "\"C9\",\"action\":\"withdraw\"}"
    OK(&d, OPEN_K);
    OK(&d, AGREE_K);
    ans w;
    ck_assert_int_eq(submit(&d, &w, WITHDRAW_K), AS_ENOT_FOUND);
    pump(&d);
    ck_assert_int_eq(w.code, AS_ENOT_FOUND);
    char first_msg[AS_ERROR_MSG_MAX];
    snprintf(first_msg, sizeof first_msg, "%s", w.msg);

    /* the same key in the same runtime: the first outcome, answered once durable */
    ans again;
    ck_assert_int_eq(submit(&d, &again, AGREE_K), 0);
    ck_assert_int_eq(again.called, 0);
    pump(&d);
    ck_assert_int_eq(again.called, 1);
    ck_assert_int_eq(again.code, 0);
    ck_assert_int_eq(case_int(&d, "C1", "version"), 2);
    char *before = case_text(&d, "C1");
    rt_stop(&d);

    rt_start(&d);
    /* applied already: answered 0, not invalid_state; not applied twice */
    ans a;
    ck_assert_int_eq(submit(&d, &a, AGREE_K), 0);
    pump(&d);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(a.code, 0);
    ans o;
    ck_assert_int_eq(submit(&d, &o, OPEN_K), 0); /* not "C1 already exists" */
    pump(&d);
    ck_assert_int_eq(o.code, 0);
    char *after = case_text(&d, "C1");
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(case_int(&d, "C1", "version"), 2);

    /* a refusal is remembered too: once C9 exists the key still answers not_found, with the
     * first message, and C9 is not withdrawn */
    OK(&d, OPEN("buyer:B2", "C9", "O2", "return_refund", "no_reason", "T1"));
    ck_assert_int_eq(submit(&d, &w, WITHDRAW_K), AS_ENOT_FOUND);
    pump(&d);
    ck_assert_int_eq(w.code, AS_ENOT_FOUND);
    ck_assert_str_eq(w.msg, first_msg);
    assert_state(&d, "C9", "requested");

    /* a new key is a new command */
    ck_assert_int_eq(run(&d, "{\"op\":\"case.act\",\"key\":\"k-agree-2\",\"as\":\"merchant:S1\","
                             "\"case\":\"C1\",\"action\":\"agree\"}"),
                     AS_EINVALID_STATE);
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM idempotency"), 4);
    as_free(before);
    as_free(after);
    rt_stop(&d);
#undef OPEN_K
#undef AGREE_K
#undef WITHDRAW_K
}
END_TEST

/* docs/design.md#storage-and-durability: side effects "are delivered at least once with an idempotency key"; aftersale.h:
 * undelivered outbox entries "are delivered again"; docs/pipe.md: "again after a restart until
 * acknowledged with outbox.ack". */
START_TEST(durable_outbox_redelivered_until_acknowledged)
{
    D d;
    d_init(&d, "outbox.db");
    rt_start(&d);
    /* not shipped: a refund_only is a cancellation, and the fee goes back with the last item
     * (docs/rulebook.md#eligibility, docs/rulebook.md#amounts) */
    OK(&d, "{\"op\":\"order.create\",\"order\":{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\","
           "\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":1,\"price\":19900}],"
           "\"shipping_fee\":600}}");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "refund_only", "no_reason", "T1"));
    ck_assert_int_eq(d.nout, 0);
    ans a;
    ck_assert_int_eq(submit(&d, &a, ACT("merchant:S1", "C1", "agree")), 0);
    assert_state(&d, "C1", "refunding");
    ck_assert_int_eq(d.nout, 0); /* delivered only once durable */
    pump(&d);
    ck_assert_int_eq(a.code, 0);
    ck_assert_int_eq(d.nout, 1);
    ck_assert_str_eq(d.out[0].key, "C1:refund:1");
    ck_assert_str_eq(d.out[0].kind, "refund");
    ck_assert_str_eq(d.out[0].case_id, "C1");
    ck_assert_int_eq(d.out[0].amount, 20500);
    ck_assert_int_eq(case_int(&d, "C1", "refund_amount"), 20500);
    rt_stop(&d);

    /* not acknowledged: delivered again by the restart, with the same key */
    d.nout = 0;
    rt_start(&d);
    pump(&d);
    ck_assert_int_eq(d.nout, 1);
    ck_assert_str_eq(d.out[0].key, "C1:refund:1");
    ck_assert_str_eq(d.out[0].kind, "refund");
    ck_assert_str_eq(d.out[0].case_id, "C1");
    ck_assert_int_eq(d.out[0].amount, 20500);
    rt_stop(&d);

    d.nout = 0;
    rt_start(&d);
    ck_assert_int_eq(d.nout, 1);
    OK(&d, "{\"op\":\"outbox.ack\",\"key\":\"C1:refund:1\"}");
    /* done for every URL: settled, and pruned with the batch */
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM outbox WHERE key = 'C1:refund:1'"), 0);
    rt_stop(&d);

    /* acknowledged: not again */
    d.nout = 0;
    rt_start(&d);
    pump(&d);
    ck_assert_int_eq(d.nout, 0);
    assert_state(&d, "C1", "refunding");
    rt_stop(&d);
}
END_TEST

/* Issue 10 (4): "A refund instructed again after refund_failed is a new instruction with its
 * own key, so a receiver that deduplicates by key does retry" (docs/rulebook.md#where-agreement-leads still says "the
 * same idempotency key": superseded). The new instruction is a side effect of its own:
 * delivered at least once, again after a restart until acknowledged, while the first one,
 * acknowledged, is not. */
START_TEST(durable_refund_reinstructed_after_ack_is_redelivered)
{
    D d;
    d_init(&d, "reinstruct.db");
    rt_start(&d);
    OK(&d, "{\"op\":\"order.create\",\"order\":{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\","
           "\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":1,\"price\":19900}],"
           "\"shipping_fee\":0}}");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "refund_only", "no_reason", "T1"));
    OK(&d, ACT("merchant:S1", "C1", "agree"));
    ck_assert_int_eq(d.nout, 1);
    OK(&d, "{\"op\":\"outbox.ack\",\"key\":\"C1:refund:1\"}");
    OK(&d, ACT("platform", "C1", "refund_failed"));
    assert_state(&d, "C1", "refunding");
    ck_assert_int_eq(d.nout, 2); /* instructed again, live, under a key of its own */
    ck_assert_str_eq(d.out[1].key, "C1:refund:2");
    rt_stop(&d);

    /* the second instruction was never acknowledged */
    d.nout = 0;
    rt_start(&d);
    pump(&d);
    ck_assert_msg(d.nout == 1,
                  "the refund instructed again after refund_failed was delivered %d times after "
                  "the restart, want 1 (it was not acknowledged)",
                  d.nout);
    ck_assert_str_eq(d.out[0].key, "C1:refund:2");
    ck_assert_int_eq(d.out[0].amount, 19900);
    /* the count is the history's: the next refund_failed after the restart is the third */
    OK(&d, ACT("platform", "C1", "refund_failed"));
    ck_assert_int_eq(d.nout, 2);
    ck_assert_str_eq(d.out[1].key, "C1:refund:3");
    rt_stop(&d);
}
END_TEST

enum { ENG_SQLITE, ENG_MEMORY, ENG_COUNT };

/* docs/pipe.md: `outbox.ack` with a "url" acknowledges the entry for that URL only, durably;
 * after a restart the entry comes back, and its deliverer learns (as__outbox_acked) which URLs
 * have it. Without "url" it is done for every URL and comes back no more. On both engines. */
START_TEST(durable_outbox_ack_per_url_survives_restart)
{
    D d;
    d_init(&d, "acks.db");
    if (_i == ENG_MEMORY) d.mem = as__store_memory_new();
    rt_start(&d);
    OK(&d, "{\"op\":\"order.create\",\"order\":{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\","
           "\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":1,\"price\":19900}],"
           "\"shipping_fee\":0}}");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "refund_only", "no_reason", "T1"));
    OK(&d, ACT("merchant:S1", "C1", "agree"));
    ck_assert_int_eq(d.nout, 1);
    ck_assert_str_eq(d.out[0].key, "C1:refund:1");
    ck_assert_int_eq(d.out[0].acked_a + d.out[0].acked_b, 0);
    ck_assert_int_eq(run(&d, "{\"op\":\"outbox.ack\",\"key\":\"C1:refund:1\",\"url\":7}"),
                     AS_EBAD_REQUEST);
    OK(&d, "{\"op\":\"outbox.ack\",\"key\":\"C1:refund:1\",\"url\":\"" URL_A "\"}");
    rt_stop(&d);

    /* acknowledged at A only: back, with A marked */
    d.nout = 0;
    rt_start(&d);
    pump(&d);
    ck_assert_int_eq(d.nout, 1);
    ck_assert_str_eq(d.out[0].key, "C1:refund:1");
    ck_assert_int_eq(d.out[0].acked_a, 1);
    ck_assert_int_eq(d.out[0].acked_b, 0);
    ck_assert_int_eq(as__outbox_acked(d.rt, "C1:refund:1", "http://other/"), 0);
    ck_assert_int_eq(as__outbox_acked(d.rt, "C9:refund:1", URL_A), 0);
    /* the same key acknowledged again, for B: applied, not answered as a replay of the
     * first acknowledgement (an ack's "key" is the entry's, not an idempotency key) */
    OK(&d, "{\"op\":\"outbox.ack\",\"key\":\"C1:refund:1\",\"url\":\"" URL_B "\"}");
    rt_stop(&d);

    d.nout = 0;
    rt_start(&d);
    pump(&d);
    ck_assert_int_eq(d.nout, 1); /* A and B have it, but nobody said "every URL" */
    ck_assert_int_eq(d.out[0].acked_a, 1);
    ck_assert_int_eq(d.out[0].acked_b, 1);
    OK(&d, "{\"op\":\"outbox.ack\",\"key\":\"C1:refund:1\"}");
    ck_assert_int_eq(as__outbox_acked(d.rt, "C1:refund:1", URL_A), 0); /* done: forgotten */
    rt_stop(&d);

    d.nout = 0;
    rt_start(&d);
    pump(&d);
    ck_assert_int_eq(d.nout, 0);
    rt_stop(&d);
    if (_i == ENG_SQLITE) {
        /* done for every URL: the entry and its acknowledgements are pruned */
        ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM outbox_acks"), 0);
        ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM outbox"), 0);
        ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM idempotency"), 0);
    }
    as__store_memory_free(d.mem);
}
END_TEST

/* docs/design.md#pack-versions: "a case records the versions in force when it opened and keeps them until it
 * ends, even when a new version is loaded"; aftersale.h: merchant source is "stored with its
 * version so that cases pinning it survive a restart". */
START_TEST(durable_merchant_pack_pin_survives_restart)
{
    static const char *const v1 =
        "return { name = 's1-rules', version = '1',"
        "  deadlines = function(case, order) return { escalation_window = 8 * as.DAY } end }";
    static const char *const v2 =
        "return { name = 's1-rules', version = '2',"
        "  deadlines = function(case, order) return { escalation_window = 9 * as.DAY } end }";
    D d;
    char pin[128];
    d_init(&d, "pins.db");
    rt_start(&d);
    merchant_rules(&d, "S1", v1);
    delivered_order(&d, "O1", "S1", "B1");
    delivered_order(&d, "O2", "S1", "B2");
    delivered_order(&d, "O3", "S1", "B3");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    merchant_rules(&d, "S1", v2);
    OK(&d, OPEN("buyer:B2", "C2", "O2", "return_refund", "no_reason", "T1"));
    ck_assert_str_eq(case_pin(&d, "C1", "merchant", pin, sizeof pin), "s1-rules@1");
    ck_assert_str_eq(case_pin(&d, "C2", "merchant", pin, sizeof pin), "s1-rules@2");
    char *c1 = case_text(&d, "C1");
    rt_stop(&d);

    rt_start(&d);
    char *c1b = case_text(&d, "C1");
    ck_assert_str_eq(c1, c1b);
    ck_assert_str_eq(case_pin(&d, "C1", "merchant", pin, sizeof pin), "s1-rules@1");
    ck_assert_str_eq(case_pin(&d, "C2", "merchant", pin, sizeof pin), "s1-rules@2");
    /* the pinned versions' code runs: v1 gives 8 days to escalate, v2 9 */
    OK(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\",\"action\":\"reject\","
           "\"payload\":{\"reason\":\"as_described\"}}");
    OK(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C2\",\"action\":\"reject\","
           "\"payload\":{\"reason\":\"as_described\"}}");
    ck_assert_int_eq(deadline_span(&d, "C1", "escalation_window"), 8 * AS_DAY);
    ck_assert_int_eq(deadline_span(&d, "C2", "escalation_window"), 9 * AS_DAY);
    /* and the version in force for new cases is still the newest */
    OK(&d, OPEN("buyer:B3", "C3", "O3", "return_refund", "no_reason", "T1"));
    ck_assert_str_eq(case_pin(&d, "C3", "merchant", pin, sizeof pin), "s1-rules@2");
    as_free(c1);
    as_free(c1b);
    rt_stop(&d);
}
END_TEST

/* Two shops may well name their packs alike: a restart must pin each case to its own shop's
 * rules, not to whichever shop's pack of that name@version was loaded last. */
START_TEST(durable_same_named_packs_of_two_shops_stay_apart)
{
    D d;
    d_init(&d, "twoshops.db");
    rt_start(&d);
    merchant_rules(&d, "S1",
                   "return { name = 'house-rules', version = '1',"
                   "  deadlines = function(c, o) return { escalation_window = 8 * as.DAY } end }");
    merchant_rules(&d, "S2",
                   "return { name = 'house-rules', version = '1',"
                   "  deadlines = function(c, o) return { escalation_window = 9 * as.DAY } end }");
    delivered_order(&d, "O1", "S1", "B1");
    delivered_order(&d, "O2", "S2", "B2");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    OK(&d, OPEN("buyer:B2", "C2", "O2", "return_refund", "no_reason", "T1"));
    rt_stop(&d);

    rt_start(&d);
    OK(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\",\"action\":\"reject\","
           "\"payload\":{\"reason\":\"as_described\"}}");
    OK(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S2\",\"case\":\"C2\",\"action\":\"reject\","
           "\"payload\":{\"reason\":\"as_described\"}}");
    int64_t s1 = deadline_span(&d, "C1", "escalation_window");
    int64_t s2 = deadline_span(&d, "C2", "escalation_window");
    ck_assert_msg(s1 == 8 * AS_DAY && s2 == 9 * AS_DAY,
                  "after the restart S1's case got %lld days and S2's %lld, want 8 and 9: a case "
                  "runs another shop's rules",
                  (long long)(s1 / AS_DAY), (long long)(s2 / AS_DAY));
    rt_stop(&d);
}
END_TEST

/* aftersale.h: attach restores "pinned merchant pack versions" -- also of rules a durable
 * runtime loaded from a file (as_runtime_load_merchant). */
START_TEST(durable_merchant_pack_from_file_pin_survives_restart)
{
    D d;
    char pin[128], lua[300];
    d_init(&d, "filepack.db");
    snprintf(lua, sizeof lua, "%s/m.lua", root);
    FILE *f = fopen(lua, "w");
    ck_assert_ptr_nonnull(f);
    fputs("return { name = 'from-file', version = '3',"
          "  deadlines = function(c, o) return { escalation_window = 8 * as.DAY } end }",
          f);
    fclose(f);
    rt_start(&d);
    ck_assert_int_eq(as_runtime_load_merchant(d.rt, "S1", lua, &d.err), 0);
    pump(&d);
    delivered_order(&d, "O1", "S1", "B1");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    ck_assert_str_eq(case_pin(&d, "C1", "merchant", pin, sizeof pin), "from-file@3");
    char *before = case_text(&d, "C1");
    rt_stop(&d);
    unlink(lua);

    rt_start(&d);
    ck_assert_msg(strcmp(case_pin(&d, "C1", "merchant", pin, sizeof pin), "from-file@3") == 0,
                  "after the restart C1 pins merchant rules \"%s\", want \"from-file@3\"", pin);
    char *after = case_text(&d, "C1");
    ck_assert_str_eq(before, after);
    as_free(before);
    as_free(after);
    rt_stop(&d);
}
END_TEST

/* ==========================================================================================
 * Deadlines across a restart (docs/design.md#time-and-deadlines: "after a restart, those that passed while down fire
 * at once, in due-time order")
 * ======================================================================================== */

#define FAST_MERCHANT(name, ms)                                                            \
    "return { name = '" name "', version = '1',"                                           \
    "  deadlines = function(case, order) return { merchant_response = " #ms " } end }"

START_TEST(durable_deadline_due_while_down_fires_after_restart)
{
    D d;
    d_init(&d, "down.db");
    rt_start(&d);
    /* the merchant answers within 300 ms: shorter than the platform's 48h, kept
     * (docs/rulebook.md#merchant-bounds) */
    merchant_rules(&d, "S1", FAST_MERCHANT("quick", 300));
    delivered_order(&d, "O1", "S1", "B1");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    json_t *j = case_obj(&d, "C1");
    json_t *dl = json_object_get(j, "deadline");
    ck_assert_str_eq(json_string_value(json_object_get(dl, "kind")), "merchant_response");
    int64_t due = json_integer_value(json_object_get(dl, "due"));
    ck_assert_int_eq(due - json_integer_value(json_object_get(j, "opened_at")), 300);
    json_decref(j);
    ck_assert_msg(wall_ms() < due - 50, "too slow a disk for this test: the open took until %lld "
                  "ms before its deadline", (long long)(due - wall_ms()));
    ck_assert_int_eq(case_ptr(&d, "C1")->v.state, AS_STATE_REQUESTED);
    rt_stop(&d);

    /* nothing runs while the deadline passes */
    sleep_until_wall(due + 100);

    rt_start(&d);
    int64_t t0 = mono_ms();
    uv_idle_start(&d.spin, spin_cb);
    while (case_ptr(&d, "C1")->v.state != AS_STATE_AWAITING_RETURN) {
        uv_run(&d.loop, UV_RUN_ONCE);
        ck_assert_msg(mono_ms() - t0 < 5000, "the overdue deadline did not fire within 5 s");
    }
    uv_idle_stop(&d.spin);
    ck_assert_int_lt(mono_ms() - t0, 1000);
    pump(&d);
    json_t *c = case_obj(&d, "C1");
    json_t *h = json_object_get(c, "history");
    json_t *last = json_array_get(h, json_array_size(h) - 1);
    ck_assert_str_eq(json_string_value(json_object_get(last, "action")), "auto_agree");
    ck_assert_str_eq(json_string_value(json_object_get(last, "actor")), "system");
    ck_assert_int_ge(json_integer_value(json_object_get(last, "at")), due);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(c, "deadline"), "kind")),
                     "buyer_ship");
    json_decref(c);
    char *fired = case_text(&d, "C1");
    rt_stop(&d);

    /* the firing itself is durable */
    rt_start(&d);
    char *again = case_text(&d, "C1");
    ck_assert_str_eq(fired, again);
    as_free(fired);
    as_free(again);
    rt_stop(&d);
}
END_TEST

START_TEST(durable_overdue_deadlines_fire_in_due_order)
{
    D d;
    d_init(&d, "order.db");
    rt_start(&d);
    /* CA opens first but is due last; refund_only cancellations: agreement instructs a refund,
     * and the outbox shows the order the deadlines fired in */
    merchant_rules(&d, "S1", FAST_MERCHANT("slower", 600));
    merchant_rules(&d, "S2", FAST_MERCHANT("faster", 200));
    OK(&d, ORDER("O1", "S1", "B1", "0"));
    OK(&d, ORDER("O2", "S2", "B2", "0"));
    OK(&d, OPEN("buyer:B1", "CA", "O1", "refund_only", "no_reason", "T1"));
    OK(&d, OPEN("buyer:B2", "CB", "O2", "refund_only", "no_reason", "T1"));
    as_case *ca = case_ptr(&d, "CA"), *cb = case_ptr(&d, "CB");
    ck_assert_msg(cb->deadline.due_ms < ca->deadline.due_ms, "CB is due %lld ms after CA",
                  (long long)(cb->deadline.due_ms - ca->deadline.due_ms));
    int64_t last_due = ca->deadline.due_ms;
    ck_assert_msg(wall_ms() < cb->deadline.due_ms - 30, "too slow a disk for this test");
    ck_assert_int_eq(d.nout, 0);
    rt_stop(&d);

    sleep_until_wall(last_due + 100);
    rt_start(&d);
    int64_t t0 = mono_ms();
    uv_idle_start(&d.spin, spin_cb);
    while (d.nout < 2) {
        uv_run(&d.loop, UV_RUN_ONCE);
        ck_assert_msg(mono_ms() - t0 < 5000, "%d refunds instructed within 5 s, want 2", d.nout);
    }
    uv_idle_stop(&d.spin);
    pump(&d);
    ck_assert_int_eq(d.nout, 2);
    ck_assert_str_eq(d.out[0].case_id, "CB");
    ck_assert_str_eq(d.out[1].case_id, "CA");
    assert_state(&d, "CA", "refunding");
    assert_state(&d, "CB", "refunding");
    rt_stop(&d);
}
END_TEST

/* ==========================================================================================
 * Attaching
 * ======================================================================================== */

/* Removes `path` and its SQLite side files; returns whether `path` existed. */
static int remove_db(const char *path)
{
    char side[400];
    int was = exists(path);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    return was;
}

/* aftersale.h: attach "Needs a loop (as_options.loop ...), the bundled packs already loaded,
 * and no command run yet", and "a refused call changes nothing" -- no file is created for a
 * refused attach. */
START_TEST(durable_attach_refused_twice_or_after_commands)
{
    D d;
    char other[300];
    int created[3] = {0, 0, 0};
    d_init(&d, "attach.db");
    snprintf(other, sizeof other, "%s/other.db", root);

    /* twice: refused, and the first store goes on working */
    rt_start(&d);
    memset(&d.err, 0, sizeof d.err);
    ck_assert_int_eq(as_runtime_attach_store(d.rt, d.db, &d.err), AS_EBAD_REQUEST);
    ck_assert_int_eq(d.err.code, AS_EBAD_REQUEST);
    ck_assert_str_ne(d.err.msg, "");
    memset(&d.err, 0, sizeof d.err);
    ck_assert_int_eq(as_runtime_attach_store(d.rt, other, &d.err), AS_EBAD_REQUEST);
    ck_assert_str_ne(d.err.msg, "");
    created[0] = remove_db(other);
    OK(&d, ORDER("O1", "S1", "B1", "0"));
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM orders"), 1);
    rt_stop(&d);

    /* after a command: refused */
    rt_new(&d);
    ck_assert_int_eq(as_order_create_json(d.rt,
                                          "{\"id\":\"OX\",\"shop\":\"S1\",\"buyer\":\"B1\","
                                          "\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\","
                                          "\"qty\":1,\"price\":100}],\"shipping_fee\":0}",
                                          &d.err),
                     0);
    memset(&d.err, 0, sizeof d.err);
    ck_assert_int_eq(as_runtime_attach_store(d.rt, other, &d.err), AS_EBAD_REQUEST);
    ck_assert_int_eq(d.err.code, AS_EBAD_REQUEST);
    ck_assert_str_ne(d.err.msg, "");
    created[1] = remove_db(other);
    /* still not durable: a request is answered at once */
    ans a;
    ck_assert_int_eq(submit(&d, &a, "{\"op\":\"order.ship\",\"order\":\"OX\"}"), 0);
    ck_assert_int_eq(a.called, 1);
    ck_assert(as_runtime_idle(d.rt));
    as_runtime_free(d.rt);
    d.rt = NULL;
    uv_close((uv_handle_t *)&d.spin, NULL);
    uv_run(&d.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&d.loop), 0);

    /* headless (a virtual clock without a loop): refused */
    as_options o = {0};
    o.start_ms = 1772323200000ll;
    as_runtime *v = as_runtime_new(&o, &d.err);
    ck_assert_ptr_nonnull(v);
    memset(&d.err, 0, sizeof d.err);
    ck_assert_int_eq(as_runtime_attach_store(v, other, &d.err), AS_EBAD_REQUEST);
    ck_assert_str_ne(d.err.msg, "");
    created[2] = remove_db(other);
    as_runtime_free(v);

    /* the original file still opens, with its order and without the other runtime's */
    rt_start(&d);
    ck_assert_int_eq(run(&d, "{\"op\":\"order.ship\",\"order\":\"O1\"}"), 0);
    ck_assert_int_eq(run(&d, "{\"op\":\"order.ship\",\"order\":\"OX\"}"), AS_ENOT_FOUND);
    rt_stop(&d);

    ck_assert_msg(!created[0] && !created[1] && !created[2],
                  "a refused attach created the database file (already attached: %d, after a "
                  "command: %d, virtual clock: %d)",
                  created[0], created[1], created[2]);
}
END_TEST

/* A file that is not aftersale's is refused by attach too, with AS_EIO, and left alone. */
START_TEST(durable_attach_refuses_foreign_file)
{
    D d;
    d_init(&d, "foreign.db");
    FILE *f = fopen(d.db, "w");
    ck_assert_ptr_nonnull(f);
    fputs("id,amount\n1,100\n", f);
    fclose(f);
    rt_new(&d);
    memset(&d.err, 0, sizeof d.err);
    ck_assert_int_eq(as_runtime_attach_store(d.rt, d.db, &d.err), AS_EIO);
    ck_assert_int_eq(d.err.code, AS_EIO);
    ck_assert_str_ne(d.err.msg, "");
    /* the runtime is not durable: a request is answered at once */
    ans a;
    ck_assert_int_eq(submit(&d, &a, ORDER("O1", "S1", "B1", "0")), 0);
    ck_assert_int_eq(a.called, 1);
    as_runtime_free(d.rt);
    d.rt = NULL;
    uv_close((uv_handle_t *)&d.spin, NULL);
    uv_run(&d.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&d.loop), 0);
    f = fopen(d.db, "r");
    char line[64] = "";
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_str_eq(line, "id,amount\n");
}
END_TEST

/* ==========================================================================================
 * Wakeup: work submitted outside a loop callback must still reach the disk
 * ======================================================================================== */

/* An embedder submits, then runs its loop. The loop must turn until the answer is given: the
 * batch waiting for its commit has to keep the loop alive (otherwise uv_run returns at once and
 * `done` is never called). */
START_TEST(durable_pending_batch_keeps_loop_running)
{
    D d;
    d_init(&d, "alive.db");
    rt_start(&d);
    ans a;
    ck_assert_int_eq(submit(&d, &a, ORDER("O1", "S1", "B1", "0")), 0);
    int64_t t0 = mono_ms();
    int turns = 0;
    while (!as_runtime_idle(d.rt) && mono_ms() - t0 < 3000) {
        uv_run(&d.loop, UV_RUN_ONCE);
        turns++;
    }
    ck_assert_msg(a.called == 1,
                  "after %d loop turns (%lld ms) of `while (!as_runtime_idle(rt)) "
                  "uv_run(loop, UV_RUN_ONCE)` the request was not answered: the pending batch "
                  "does not keep the loop alive",
                  turns, (long long)(mono_ms() - t0));
    ck_assert_int_eq(a.code, 0);
    rt_stop(&d);
}
END_TEST

/* With a deadline pending days ahead the loop's poll phase may sleep until then; a request
 * submitted outside a loop callback must not wait for that to be committed and answered. */
START_TEST(durable_submit_answered_promptly_with_far_deadline_pending)
{
    D d;
    d_init(&d, "prompt.db");
    rt_start(&d);
    delivered_order(&d, "O1", "S1", "B1");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1")); /* 48h pending */
    ans a;
    ck_assert_int_eq(submit(&d, &a, ACT("merchant:S1", "C1", "agree")), 0);
    uv_timer_t guard; /* wakes the loop after 2 s at the latest */
    uv_timer_init(&d.loop, &guard);
    uv_timer_start(&guard, guard_cb, 2000, 0);
    int64_t t0 = mono_ms();
    while (!a.called && mono_ms() - t0 < 5000) uv_run(&d.loop, UV_RUN_ONCE);
    int64_t took = mono_ms() - t0;
    uv_close((uv_handle_t *)&guard, NULL);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(a.code, 0);
    ck_assert_msg(took < 1000,
                  "the answer took %lld ms: the commit waited for the next timer instead of "
                  "the end of the loop turn",
                  (long long)took);
    rt_stop(&d);
}
END_TEST

/* A deadline that fires on a quiet loop (no I/O, no requests) changes a case; that change must
 * reach the disk without waiting for some later, unrelated wakeup. */
START_TEST(durable_fired_deadline_committed_on_quiet_loop)
{
    D d;
    d_init(&d, "quiet.db");
    rt_start(&d);
    merchant_rules(&d, "S1", FAST_MERCHANT("quick", 200));
    delivered_order(&d, "O1", "S1", "B1");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    uv_timer_t guard; /* wakes the loop after 3 s at the latest */
    uv_timer_init(&d.loop, &guard);
    uv_timer_start(&guard, guard_cb, 3000, 0);
    int64_t t0 = mono_ms();
    as_case *c = case_ptr(&d, "C1");
    while ((c->v.state != AS_STATE_AWAITING_RETURN || !as_runtime_idle(d.rt)) &&
           mono_ms() - t0 < 6000)
        uv_run(&d.loop, UV_RUN_ONCE);
    int64_t took = mono_ms() - t0;
    uv_close((uv_handle_t *)&guard, NULL);
    ck_assert_int_eq(c->v.state, AS_STATE_AWAITING_RETURN);
    ck_assert(as_runtime_idle(d.rt));
    ck_assert_int_eq(sql_int(d.db, "SELECT count(*) FROM events WHERE case_id = 'C1'"), 2);
    ck_assert_msg(took < 1500,
                  "the auto_agree fired at 200 ms reached the disk only after %lld ms: it waited "
                  "for the next timer",
                  (long long)took);
    rt_stop(&d);
}
END_TEST


/* ------------------------------------------------------------------------------------------
 * The writer and the syncer (durable.c): a store around the memory engine whose sync waits
 * for the test's word and can be told to fail, to see the stages from outside.
 * ---------------------------------------------------------------------------------------- */

typedef struct gated {
    as_store base;
    as_store *inner; /* owned: a memory store */
    uv_mutex_t mu;
    uv_cond_t cv;
    int commits, syncs_entered, syncs_done;
    int open;      /* syncs may proceed */
    int fail_next; /* the next sync fails */
} gated;

static int gated_commit(as_store *s, const unsigned char *p, size_t n, as_error *err)
{
    gated *g = (gated *)s;
    int rc = g->inner->engine->commit(g->inner, p, n, err);
    uv_mutex_lock(&g->mu);
    g->commits++;
    uv_cond_broadcast(&g->cv);
    uv_mutex_unlock(&g->mu);
    return rc;
}

static int gated_sync(as_store *s, as_error *err)
{
    gated *g = (gated *)s;
    uv_mutex_lock(&g->mu);
    g->syncs_entered++;
    uv_cond_broadcast(&g->cv);
    while (!g->open) uv_cond_wait(&g->cv, &g->mu);
    int fail = g->fail_next;
    g->fail_next = 0;
    g->syncs_done++;
    uv_mutex_unlock(&g->mu);
    return fail ? as__err(err, AS_EIO, "the disk said no") : 0;
}

static int gated_load(as_store *s, const as_store_visitor *v, as_error *err)
{
    gated *g = (gated *)s;
    return g->inner->engine->load(g->inner, v, err);
}

static void gated_close(as_store *s)
{
    (void)s; /* the test owns the gated store and frees it after the runtime */
}

static const as_store_engine gated_engine = {"gated", gated_commit, gated_sync, gated_load,
                                             gated_close};

static void gated_start(D *d, gated *g)
{
    memset(g, 0, sizeof *g);
    g->base.engine = &gated_engine;
    g->inner = as__store_memory_new();
    ck_assert_ptr_nonnull(g->inner);
    uv_mutex_init(&g->mu);
    uv_cond_init(&g->cv);
    memset(d, 0, sizeof *d);
    rt_new(d);
    ck_assert_int_eq(as__durable_attach(d->rt, &g->base, &d->err), 0);
}

static void gated_free(gated *g)
{
    g->inner->engine->close(g->inner);
    as__store_memory_free(g->inner);
    uv_cond_destroy(&g->cv);
    uv_mutex_destroy(&g->mu);
}

static int gated_count(gated *g, const int *field)
{
    uv_mutex_lock(&g->mu);
    int v = *field;
    uv_mutex_unlock(&g->mu);
    return v;
}

/* Turns the loop (without sleeping in it) until `*field` of the store reaches `want`. */
static void turn_until(D *d, gated *g, const int *field, int want)
{
    int64_t t0 = mono_ms();
    while (gated_count(g, field) < want) {
        uv_run(&d->loop, UV_RUN_NOWAIT);
        ck_assert_msg(mono_ms() - t0 < 3000, "the store did not get there in 3 s");
        usleep(1000);
    }
}

static void gate(gated *g, int open, int fail_next)
{
    uv_mutex_lock(&g->mu);
    g->open = open;
    g->fail_next = fail_next;
    uv_cond_broadcast(&g->cv);
    uv_mutex_unlock(&g->mu);
}

/* A command is answered only when the sync after its commit has landed; while one batch
 * syncs the next one's transaction is written (the stages overlap), and one sync covers
 * every batch written before it began. */
START_TEST(durable_answer_waits_for_sync_while_next_batch_is_written)
{
    D d;
    gated g;
    gated_start(&d, &g);
    ans a, b, c;
    ck_assert_int_eq(submit(&d, &a, ORDER("O1", "S1", "B1", "0")), 0);
    turn_until(&d, &g, &g.syncs_entered, 1); /* a is written, its sync waits at the gate */
    ck_assert_int_eq(gated_count(&g, &g.commits), 1);
    ck_assert_int_eq(submit(&d, &b, ORDER("O2", "S1", "B1", "0")), 0);
    turn_until(&d, &g, &g.commits, 2); /* b is written while a's sync has not landed */
    ck_assert_int_eq(submit(&d, &c, ORDER("O3", "S1", "B1", "0")), 0);
    turn_until(&d, &g, &g.commits, 3);
    for (int i = 0; i < 20; i++) uv_run(&d.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(a.called + b.called + c.called, 0); /* nothing durable yet */
    ck_assert(!as_runtime_idle(d.rt));
    gate(&g, 1, 0);
    pump(&d);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(b.called, 1);
    ck_assert_int_eq(c.called, 1);
    ck_assert_int_eq(a.code + b.code + c.code, 0);
    /* a's sync, then one for b and c, written while it waited */
    ck_assert_int_eq(gated_count(&g, &g.syncs_done), 2);
    rt_stop(&d);
    gated_free(&g);
}
END_TEST

/* A failed sync fails its batch, and every batch after it even when a later sync succeeds
 * (after a failed fsync the kernel may have dropped the pages it could not write); from then
 * on writes are refused and reads still answer. */
START_TEST(durable_failed_sync_fails_its_batch_and_every_later_one)
{
    D d;
    gated g;
    gated_start(&d, &g);
    gate(&g, 1, 0);
    OK(&d, ORDER("O0", "S1", "B1", "0"));
    gate(&g, 0, 1); /* closed, and the next sync fails */
    ans a, b;
    ck_assert_int_eq(submit(&d, &a, ORDER("O1", "S1", "B1", "0")), 0);
    turn_until(&d, &g, &g.syncs_entered, 2);
    ck_assert_int_eq(submit(&d, &b, ORDER("O2", "S1", "B1", "0")), 0);
    turn_until(&d, &g, &g.commits, 3);
    gate(&g, 1, 1); /* a's sync fails; b's, after it, succeeds */
    pump(&d);
    ck_assert_int_eq(gated_count(&g, &g.syncs_done), 3);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(b.called, 1);
    ck_assert_int_eq(a.code, AS_EIO);
    ck_assert_int_eq(b.code, AS_EIO);
    ck_assert_str_eq(a.msg, "the disk said no");
    ck_assert_str_eq(b.msg, "the disk said no");
    ck_assert_int_eq(run(&d, ORDER("O3", "S1", "B1", "0")), AS_EIO);
    ck_assert_int_eq(gated_count(&g, &g.commits), 3); /* the refused write reached nothing */
    rt_stop(&d);
    gated_free(&g);
}
END_TEST

/* A read through as_case_read, kept as it is answered. */
typedef struct rd {
    int called, code;
    char *text; /* owned */
} rd;

static void read_cb(void *ud, int code, const char *text)
{
    rd *r = ud;
    r->called++;
    r->code = code;
    ck_assert_ptr_nonnull(text);
    free(r->text);
    r->text = strdup(text);
}

static void read_case(D *d, rd *r, const char *id)
{
    memset(r, 0, sizeof *r);
    as_case_read(d->rt, id, read_cb, r);
}

/* The gated store with a delivered order O1 and cases C1 and C2 of it, all durable. */
static void gated_with_cases(D *d, gated *g)
{
    gated_start(d, g);
    gate(g, 1, 0);
    delivered_order(d, "O1", "S1", "B1");
    OK(d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    OK(d, OPEN("buyer:B1", "C2", "O1", "return_refund", "no_reason", "T2"));
}

/* durable.c "reads see only what is durable": a read of a case changed in this turn, or
 * whose batch is still being synced, is answered after that commit, with what it showed
 * when read; a read of a case whose last change is durable is answered at once. */
START_TEST(durable_read_waits_for_the_commit_of_what_it_shows)
{
    D d;
    gated g;
    gated_with_cases(&d, &g);
    gate(&g, 0, 0);
    int synced = gated_count(&g, &g.syncs_entered);
    ans a;
    ck_assert_int_eq(submit(&d, &a, ACT("merchant:S1", "C1", "agree")), 0);
    rd now, other;
    read_case(&d, &now, "C1"); /* changed in this turn, not even handed to the writer */
    read_case(&d, &other, "C2");
    ck_assert_int_eq(other.called, 1);
    ck_assert_int_eq(other.code, 0);
    ck_assert_ptr_nonnull(strstr(other.text, "\"state\":\"requested\""));
    ck_assert_int_eq(now.called, 0);
    turn_until(&d, &g, &g.syncs_entered, synced + 1); /* a's batch written, its sync at the gate */
    rd flight;
    read_case(&d, &flight, "C1"); /* not dirty now, but its batch is in flight */
    for (int i = 0; i < 20; i++) uv_run(&d.loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(a.called + now.called + flight.called, 0);
    gate(&g, 1, 0);
    pump(&d);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(now.called, 1);
    ck_assert_int_eq(flight.called, 1);
    ck_assert_int_eq(now.code + flight.code, 0);
    ck_assert_ptr_nonnull(strstr(now.text, "\"state\":\"awaiting_return\""));
    ck_assert_str_eq(now.text, flight.text);
    rd unknown;
    read_case(&d, &unknown, "C9");
    ck_assert_int_eq(unknown.called, 1);
    ck_assert_int_eq(unknown.code, AS_ENOT_FOUND);
    free(now.text), free(other.text), free(flight.text), free(unknown.text);
    ck_assert_ptr_null(as_runtime_store_failure(d.rt));
    rt_stop(&d);
    gated_free(&g);
}
END_TEST

/* When the store fails, a read of a case whose change failed with it is refused (what memory
 * holds may not be on disk), a case untouched since its last durable commit is still read,
 * writes are refused, and as_runtime_store_failure says why. */
START_TEST(durable_read_of_a_failed_change_is_refused)
{
    D d;
    gated g;
    gated_with_cases(&d, &g);
    gate(&g, 0, 1);
    ans a;
    ck_assert_int_eq(submit(&d, &a, ACT("merchant:S1", "C1", "agree")), 0);
    rd waiting;
    read_case(&d, &waiting, "C1");
    gate(&g, 1, 1);
    pump(&d);
    ck_assert_int_eq(a.code, AS_EIO);
    ck_assert_int_eq(waiting.called, 1);
    ck_assert_int_eq(waiting.code, AS_EIO);
    rd after, other;
    read_case(&d, &after, "C1");
    ck_assert_int_eq(after.called, 1);
    ck_assert_int_eq(after.code, AS_EIO);
    ck_assert_ptr_nonnull(strstr(after.text, "the disk said no"));
    read_case(&d, &other, "C2");
    ck_assert_int_eq(other.code, 0);
    ck_assert_ptr_nonnull(strstr(other.text, "\"state\":\"requested\""));
    const char *why = as_runtime_store_failure(d.rt);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(why, "the disk said no");
    ck_assert_int_eq(run(&d, ACT("merchant:S1", "C2", "agree")), AS_EIO);
    free(waiting.text), free(after.text), free(other.text);
    rt_stop(&d);
    gated_free(&g);
}
END_TEST

/* `from` byte for byte into `to`, as it is on disk now. */
static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    ck_assert(in != NULL && out != NULL);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

/* sqlite_store.c: a write-ahead log removed under a running runtime. The next command's
 * sync notices, copies the log into the main file and fails: that command is answered `io`
 * with the store's sentence, and every write after it is refused. The main file alone (a
 * copy taken then, without its log and -shm: what a kill -9 would leave) restores everything
 * committed before the failure, the acknowledged commands among it. */
START_TEST(durable_removed_log_refuses_writes_and_keeps_what_was_acknowledged)
{
    D d, e;
    d_init(&d, "gone.db");
    rt_start(&d);
    delivered_order(&d, "O1", "S1", "B1");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    char wal[300], want[700];
    snprintf(wal, sizeof wal, "%s-wal", d.db);
    ck_assert_int_eq(unlink(wal), 0);
    ans a;
    ck_assert_int_eq(submit(&d, &a, ACT("merchant:S1", "C1", "agree")), 0); /* in memory */
    pump(&d);
    ck_assert_int_eq(a.called, 1);
    ck_assert_int_eq(a.code, AS_EIO);
    snprintf(want, sizeof want, /* root is absolute, as SQLite's names of the files are */
             "the write-ahead log %s was removed; what was acknowledged is in %s; restart to go on",
             wal, d.db);
    ck_assert_str_eq(a.msg, want);
    ck_assert_int_eq(run(&d, ORDER("O2", "S1", "B2", "0")), AS_EIO);

    d_init(&e, "gone-copy.db");
    copy_file(d.db, e.db);
    rt_stop(&d);
    rt_start(&e);
    /* the agree too: committed before the sync that failed, it was in the log that the
     * checkpoint copied (an `io` answer says "not known to be durable", not "not applied") */
    assert_state(&e, "C1", "awaiting_return");
    ck_assert_int_eq(case_int(&e, "C1", "version"), 2);
    OK(&e, ORDER("O3", "S1", "B3", "0")); /* the restart goes on */
    rt_stop(&e);
}
END_TEST


/* ------------------------------------------------------------------------------------------
 * The command log (store.h EVENT's command): each party's command in the row of the entry it
 * made
 * ---------------------------------------------------------------------------------------- */

/* The commands the file's events rows hold, in (case, n) order, decoded: at most `cap` into `out` (each
 * freed by the caller with as__journal_cmd_free); returns how many rows there are. */
static int stored_commands(D *d, const char *case_id, uint32_t *ns, as_journal_cmd *out, int cap)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_open_v2(d->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT n, cmd FROM events WHERE case_id = ?1"
                                            " AND cmd IS NOT NULL ORDER BY n", -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
    int k = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        ck_assert_int_lt(k, cap);
        ns[k] = (uint32_t)sqlite3_column_int64(st, 0);
        as_error err = {0};
        ck_assert_msg(as__journal_read_command(sqlite3_column_blob(st, 1),
                                               (size_t)sqlite3_column_bytes(st, 1), &out[k],
                                               &err) == 0, "row %d: %s", k, err.msg);
        k++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return k;
}

/* The action of history entry n of case `id`. */
static char *entry_action(D *d, const char *id, uint32_t n)
{
    json_t *j = case_obj(d, id);
    json_t *h = json_array_get(json_object_get(j, "history"), n);
    ck_assert_ptr_nonnull(h);
    char *a = strdup(json_string_value(json_object_get(h, "action")));
    json_decref(j);
    return a;
}

START_TEST(durable_party_commands_logged_with_their_entry)
{
    D d;
    d_init(&d, "commands.db");
    rt_start(&d);
    delivered_order(&d, "O1", "S1", "B1");
    OK(&d, OPEN("buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    /* refused: no row */
    ck_assert_int_eq(run(&d, "{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\","
                             "\"action\":\"offer\",\"payload\":{\"amount\":100}}"),
                     AS_EINVALID_STATE);
    OK(&d, ACT("merchant:S1", "C1", "agree"));
    OK(&d, "{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C1\",\"action\":\"ship_return\","
           "\"payload\":{\"carrier\":\"SF\",\"tracking\":\"SF1\",\"shipping_cost\":1200}}");
    rt_stop(&d);
    rt_start(&d); /* the file restores with the table beside it, and goes on logging */
    OK(&d, ACT("logistics", "C1", "return_delivered"));
    as_journal_cmd j[8];
    uint32_t ns[8];
    int k = stored_commands(&d, "C1", ns, j, 8);
    ck_assert_int_eq(k, 4);
    static const char *const want[] = {"open", "agree", "ship_return", "return_delivered"};
    for (int i = 0; i < k; i++) {
        char *a = entry_action(&d, "C1", ns[i]);
        ck_assert_str_eq(a, want[i]);
        ck_assert_str_eq(as__action_name(j[i].cmd.action), want[i]);
        free(a);
    }
    ck_assert_uint_eq(ns[0], 0);
    ck_assert_int_eq(j[0].cmd.who.role, AS_ROLE_BUYER);
    ck_assert_str_eq(j[0].cmd.who.id, "B1");
    ck_assert_str_eq(j[0].cmd.order_id, "O1");
    ck_assert_int_eq(j[0].cmd.nitems, 1);
    ck_assert_str_eq(j[0].cmd.items[0].sku, "T1");
    ck_assert_str_eq(j[1].cmd.who.id, "S1");
    ck_assert_str_eq(j[2].cmd.text, "SF");
    ck_assert_str_eq(j[2].cmd.tracking, "SF1");
    ck_assert_int_eq(j[2].cmd.shipping_cost, 1200);
    ck_assert_int_eq(j[3].cmd.who.role, AS_ROLE_LOGISTICS);
    ck_assert_ptr_null(j[3].cmd.who.id);
    for (int i = 1; i < k; i++) ck_assert_int_ge(j[i].at_ms, j[i - 1].at_ms);
    for (int i = 0; i < k; i++) as__journal_cmd_free(&j[i]);
    rt_stop(&d);
}
END_TEST

static Suite *durable_suite(void)
{
    Suite *s = suite_create("durable");

    TCase *answers = tcase_create("answers");
    tcase_add_unchecked_fixture(answers, root_make, root_remove);
    tcase_set_timeout(answers, 60);
    tcase_add_test(answers, durable_answer_comes_after_commit);
    tcase_add_test(answers, durable_refusals_get_their_code);
    suite_add_tcase(s, answers);

    TCase *restart = tcase_create("restart");
    tcase_add_unchecked_fixture(restart, root_make, root_remove);
    tcase_set_timeout(restart, 60);
    tcase_add_test(restart, durable_restart_restores_cases_exactly);
    tcase_add_test(restart, durable_party_commands_logged_with_their_entry);
    tcase_add_test(restart, durable_snapshot_restores_what_a_restart_would);
    tcase_add_test(restart, durable_restart_keeps_shop_metrics);
    tcase_add_test(restart, durable_idempotency_key_answers_first_outcome_after_restart);
    tcase_add_test(restart, durable_idempotency_key_forgotten_after_retention);
    tcase_add_test(restart, durable_outbox_redelivered_until_acknowledged);
    tcase_add_test(restart, durable_refund_reinstructed_after_ack_is_redelivered);
    tcase_add_loop_test(restart, durable_outbox_ack_per_url_survives_restart, 0, ENG_COUNT);
    tcase_add_test(restart, durable_merchant_pack_pin_survives_restart);
    tcase_add_test(restart, durable_same_named_packs_of_two_shops_stay_apart);
    tcase_add_test(restart, durable_merchant_pack_from_file_pin_survives_restart);
    tcase_add_test(restart, durable_removed_log_refuses_writes_and_keeps_what_was_acknowledged);
    suite_add_tcase(s, restart);

    TCase *deadlines = tcase_create("deadlines");
    tcase_add_unchecked_fixture(deadlines, root_make, root_remove);
    tcase_set_timeout(deadlines, 60);
    tcase_add_test(deadlines, durable_deadline_due_while_down_fires_after_restart);
    tcase_add_test(deadlines, durable_overdue_deadlines_fire_in_due_order);
    suite_add_tcase(s, deadlines);

    TCase *attach = tcase_create("attach");
    tcase_add_unchecked_fixture(attach, root_make, root_remove);
    tcase_set_timeout(attach, 60);
    tcase_add_test(attach, durable_attach_refused_twice_or_after_commands);
    tcase_add_test(attach, durable_attach_refuses_foreign_file);
    suite_add_tcase(s, attach);

    TCase *wakeup = tcase_create("wakeup");
    tcase_add_unchecked_fixture(wakeup, root_make, root_remove);
    tcase_set_timeout(wakeup, 60);
    tcase_add_test(wakeup, durable_pending_batch_keeps_loop_running);
    tcase_add_test(wakeup, durable_submit_answered_promptly_with_far_deadline_pending);
    tcase_add_test(wakeup, durable_fired_deadline_committed_on_quiet_loop);

    TCase *stages = tcase_create("stages");
    tcase_add_test(stages, durable_answer_waits_for_sync_while_next_batch_is_written);
    tcase_add_test(stages, durable_failed_sync_fails_its_batch_and_every_later_one);
    tcase_add_test(stages, durable_read_waits_for_the_commit_of_what_it_shows);
    tcase_add_test(stages, durable_read_of_a_failed_change_is_refused);
    suite_add_tcase(s, stages);
    suite_add_tcase(s, wakeup);
    return s;
}

int main(void)
{
    return unit_run(durable_suite(), 1);
}
