/* test_alloc.c -- the one replaceable allocator (aftersale.h as_replace_allocator, core/alloc.h)
 * and what it proves: issue 11 item 4, "no acknowledgement without the journal".
 *
 * The sweep installs a counting allocator that refuses the n-th allocation of the loop thread,
 * and runs every kind of command of a return-and-refund flow (and a reject-revise-escalate
 * one) on a durable runtime over a memory store, for n = 1, 2, ... until the command runs
 * without reaching n. Each answer must be one of:
 *   0: the command's rows are in the store -- a runtime restored from the store's rows sees
 *      exactly what the live one holds;
 *   nomem: nothing changed -- the orders, cases, metrics and merchant rules in memory equal
 *      the snapshot taken before, and the store's rows are the same bytes.
 * Only the loop thread's allocations are refused: the store's writer thread stands in for
 * the disk (SQLite keeps its own allocator; its failures are I/O errors of the store). */
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aftersale/aftersale.h"
#include "core/alloc.h"
#include "core/runtime.h"
#include "store/stores.h"
#include "unit_common.h"

/* ==========================================================================================
 * The counting allocator
 * ======================================================================================== */

static struct {
    pthread_t loop_thread;
    atomic_long count; /* allocations of the loop thread since armed */
    long fail_at;      /* 0: refuse none */
    int sticky;        /* 1: refuse every allocation from the fail_at-th on */
    int armed;
    atomic_long total; /* every allocation, armed or not (alloc_every_allocation_is_ours) */
} fault;

static int refuse(size_t n)
{
    atomic_fetch_add(&fault.total, 1);
    if (!fault.armed || n == 0 || !pthread_equal(pthread_self(), fault.loop_thread)) return 0;
    long k = atomic_fetch_add(&fault.count, 1) + 1;
    return k == fault.fail_at || (fault.sticky && k > fault.fail_at);
}

static void *t_malloc(size_t n)
{
    return refuse(n) ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n)
{
    return refuse(n) ? NULL : realloc(p, n);
}

static void *t_calloc(size_t k, size_t n)
{
    return refuse(k * n) ? NULL : calloc(k, n);
}

static void t_free(void *p)
{
    free(p);
}

/* Installs the counting allocator; under CK_FORK=no a test before may have done it already. */
static void install(void)
{
    fault.loop_thread = pthread_self();
    int rc = as_replace_allocator(t_malloc, t_realloc, t_calloc, t_free);
    ck_assert(rc == 0 || (rc == AS_EINVALID_STATE && as__allocator.malloc == t_malloc));
}

static void arm(long n)
{
    atomic_store(&fault.count, 0);
    fault.fail_at = n;
    fault.armed = 1;
}

/* Disarms; 1 when the armed allocation was reached. */
static int disarm(void)
{
    fault.armed = 0;
    return atomic_load(&fault.count) >= fault.fail_at;
}

/* ==========================================================================================
 * A durable runtime on a memory store
 * ======================================================================================== */

typedef struct W {
    uv_loop_t loop;
    uv_idle_t spin; /* keeps the loop from sleeping while pump() waits for the writer */
    as_runtime *rt;
    as_store *mem; /* owned */
    int answered, code;
    char msg[AS_ERROR_MSG_MAX];
} W;

static void on_outbox(void *data, const char *kind, const char *case_id, int64_t amount,
                      const char *key)
{
    (void)data, (void)kind, (void)case_id, (void)amount, (void)key;
}

static void spin_cb(uv_idle_t *h)
{
    (void)h;
}

/* 0: the runtimes rt_open makes run on the loop's real clock; else on a virtual clock on the
 * loop starting here (alloc_oom_sweep_clock_move), restored ones too. */
static int64_t virtual_start;

static void rt_open(W *w)
{
    ck_assert_int_eq(uv_loop_init(&w->loop), 0);
    ck_assert_int_eq(uv_idle_init(&w->loop, &w->spin), 0);
    as_options o = {0};
    o.loop = &w->loop;
    o.outbox = on_outbox;
    o.lua_memory = 8 << 20;
    o.virtual_clock = virtual_start != 0;
    o.start_ms = virtual_start;
    as_error err;
    w->rt = unit_runtime(&o, &err);
    ck_assert_msg(as__durable_attach(w->rt, w->mem, &err) == 0, "attach: %s", err.msg);
}

static void pump(W *w)
{
    uint64_t t0 = uv_hrtime();
    uv_idle_start(&w->spin, spin_cb);
    while (!as_runtime_idle(w->rt)) {
        uv_run(&w->loop, UV_RUN_ONCE);
        ck_assert_msg(uv_hrtime() - t0 < 20000000000ull, "not idle in 20 s");
    }
    uv_idle_stop(&w->spin);
}

static void rt_close(W *w)
{
    pump(w);
    as_runtime_free(w->rt);
    w->rt = NULL;
    uv_close((uv_handle_t *)&w->spin, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&w->loop), 0);
}

static void done_cb(void *ud, int code, const char *message)
{
    W *w = ud;
    w->answered++;
    w->code = code;
    snprintf(w->msg, sizeof w->msg, "%s", message ? message : "(null)");
}

/* Submits and runs the loop until the answer is durable; returns the answered code. */
static int run(W *w, const char *req)
{
    w->answered = 0;
    int rc = as_runtime_submit(w->rt, req, done_cb, w);
    pump(w);
    ck_assert_msg(w->answered == 1, "%s: answered %d times", req, w->answered);
    ck_assert_msg(w->code == rc, "%s: returned %s, answered %s", req, as_err_name(rc),
                  as_err_name(w->code));
    return w->code;
}

/* ------------------------------------------------------------------------------------------
 * What a command may change, as text
 * ---------------------------------------------------------------------------------------- */

typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        ck_assert_ptr_nonnull(t->p);
    }
    va_start(ap, fmt);
    vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

static const char *const shops[] = {"S1", NULL};

/* The runtime's orders, cases, shop metrics events and merchant rules in force, in a fixed
 * order; with `metrics`, the metrics as of now as well (a restored runtime's clock is its own,
 * so that its window may end a millisecond apart: it is compared by its events only). */
static char *world(as_runtime *rt, int metrics)
{
    text t = {0};
    put(&t, "orders %zu cases %zu\n", rt->orders.len, rt->cases.len);
    static const char *const orders[] = {"O1", NULL};
    for (const char *const *id = orders; *id; id++) {
        const as_order *o = as__order_get(rt, *id);
        if (o == NULL) {
            put(&t, "%s -\n", *id);
            continue;
        }
        put(&t, "%s %lld %lld %lld %lld", o->id, (long long)o->paid_at, (long long)o->shipped_at,
            (long long)o->delivered_at, (long long)o->confirmed_at);
        for (int i = 0; i < o->nitems; i++) put(&t, " %s:%d", o->items[i].sku, o->items[i].attempts);
        put(&t, "\n");
    }
    static const char *const cases[] = {"C1", "C2", "C3", NULL};
    for (const char *const *id = cases; *id; id++) {
        char *s = as_case_get_json(rt, *id);
        put(&t, "%s %s\n", *id, s ? s : "-");
        as_free(s);
    }
    for (const char *const *shop = shops; *shop; shop++) {
        as_shop *s = as__shop_get(rt, *shop, 0);
        int kinds[AS_EV_RULE_DROPPED + 1] = {0};
        for (uint32_t i = 0; s && i < s->events.len; i++) kinds[s->events.ev[i].kind]++;
        put(&t, "%s events", *shop);
        for (int k = 0; k <= AS_EV_RULE_DROPPED; k++) put(&t, " %d", kinds[k]);
        put(&t, " merchant %s\n", s && s->merchant ? s->merchant->version : "-");
        char *m = metrics ? as_shop_metrics_json(rt, *shop) : NULL;
        if (metrics) ck_assert_ptr_nonnull(m);
        if (m) put(&t, "%s metrics %s\n", *shop, m);
        as_free(m);
    }
    return t.p;
}

/* The store's rows, every byte of them, through the engine's own load(). */
static int r_reserve(void *ud, size_t orders, size_t cases)
{
    put(ud, "reserve %zu %zu\n", orders, cases);
    return 0;
}

static void put_bytes(text *t, const void *data, size_t len)
{
    for (size_t i = 0; i < len; i++) put(t, "%02x", ((const unsigned char *)data)[i]);
    put(t, "\n");
}

static int r_pack(void *ud, const char *shop, const char *name, const char *version,
                  const char *source, size_t len, int current, const char *sha256,
                  int64_t uploaded_at)
{
    put(ud, "pack %s %s %s %zu %d %s %lld\n", shop, name, version, len, current, sha256,
        (long long)uploaded_at);
    (void)source;
    return 0;
}

static int r_order(void *ud, const void *data, size_t len)
{
    put(ud, "order ");
    put_bytes(ud, data, len);
    return 0;
}

static int r_case(void *ud, const void *data, size_t len, int64_t due)
{
    put(ud, "case %lld ", (long long)due);
    put_bytes(ud, data, len);
    return 0;
}

static int r_event(void *ud, const char *case_id, uint32_t n, const void *data, size_t len)
{
    put(ud, "event %s %u ", case_id, n);
    put_bytes(ud, data, len);
    return 0;
}

static int r_outbox(void *ud, const char *key, const char *kind, const char *case_id,
                    int64_t amount)
{
    put(ud, "outbox %s %s %s %lld\n", key, kind, case_id, (long long)amount);
    return 0;
}

static int r_idem(void *ud, const char *key, int code, const char *message, int64_t at)
{
    (void)at; /* the time of an answer differs between runs */
    put(ud, "idem %s %d %s\n", key, code, message);
    return 0;
}

static int r_ack(void *ud, const char *key, const char *url)
{
    put(ud, "ack %s %s\n", key, url);
    return 0;
}

static char *rows(as_store *s)
{
    text t = {0};
    put(&t, "rows\n");
    as_store_visitor v = {&t, r_reserve, r_pack, r_order, r_case,
                          r_event, r_outbox, r_idem, r_ack, NULL};
    as_error err = {0};
    ck_assert_msg(s->engine->load(s, &v, &err) == 0, "load: %s", err.msg);
    return t.p;
}

/* ==========================================================================================
 * The flow
 * ======================================================================================== */

#define MERCHANT_RULES                                                                     \
    "return { name = \\\"s1-returns\\\", version = \\\"%d\\\","                            \
    "  eligibility = function(order, request, now) return true end,"                       \
    "  deadlines = function(case, order) return { merchant_response = 24 * as.HOUR } end }"

/* One command of the sweep: its request, a printf format given the step's number (the
 * merchant rules' version); each is answered 0 when memory does not run out. */
typedef struct step {
    const char *req;
} step;

static const step flow[] = {
    {"{\"op\":\"order.create\",\"key\":\"k-order\",\"order\":{\"id\":\"O1\",\"shop\":\"S1\","
     "\"buyer\":\"B1\",\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":1,"
     "\"price\":19900},{\"sku\":\"T2\",\"category\":\"apparel\",\"qty\":2,\"price\":5000},"
     "{\"sku\":\"T3\",\"category\":\"apparel\",\"qty\":1,\"price\":8000}],"
     "\"shipping_fee\":1000}}"},
    {"{\"op\":\"rules.load\",\"shop\":\"S1\",\"source\":\"" MERCHANT_RULES "\"}"},
    {"{\"op\":\"order.ship\",\"order\":\"O1\"}"},
    {"{\"op\":\"order.deliver\",\"order\":\"O1\"}"},
    /* return and refund */
    {"{\"op\":\"case.open\",\"as\":\"buyer:B1\",\"key\":\"k-open\",\"case\":{\"id\":\"C1\","
     "\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
     "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}}"},
    {"{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\",\"action\":\"agree\"}"},
    {"{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C1\",\"action\":\"ship_return\","
     "\"payload\":{\"carrier\":\"SF\",\"tracking\":\"SF1\",\"shipping_cost\":800}}"},
    {"{\"op\":\"case.act\",\"as\":\"logistics\",\"case\":\"C1\",\"action\":\"return_delivered\"}"},
    {"{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\",\"action\":\"confirm_return\"}"},
    {"{\"op\":\"case.act\",\"as\":\"platform\",\"case\":\"C1\",\"action\":\"refund_failed\","
     "\"payload\":{\"reason\":\"card expired\"}}"},
    {"{\"op\":\"outbox.ack\",\"key\":\"C1:refund:1\"}"},
    {"{\"op\":\"case.act\",\"as\":\"platform\",\"case\":\"C1\",\"action\":\"refund_succeeded\"}"},
    /* reject, revise with evidence, reject, escalate, a ruling */
    {"{\"op\":\"case.open\",\"as\":\"buyer:B1\",\"case\":{\"id\":\"C2\",\"order\":\"O1\","
     "\"type\":\"refund_only\",\"reason\":\"quality\",\"evidence\":[\"photo-1\",\"photo-2\"],"
     "\"items\":[{\"sku\":\"T2\",\"qty\":2}]}}"},
    {"{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C2\",\"action\":\"reject\","
     "\"payload\":{\"reason\":\"looks fine\"}}"},
    {"{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C2\",\"action\":\"revise\","
     "\"payload\":{\"evidence\":[\"photo-3\",\"video-1\"],\"requested_amount\":9000}}"},
    {"{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C2\",\"action\":\"reject\","
     "\"payload\":{\"reason\":\"still fine\"}}"},
    {"{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C2\",\"action\":\"escalate\"}"},
    {"{\"op\":\"case.act\",\"as\":\"platform\",\"case\":\"C2\",\"action\":\"rule_for_buyer\"}"},
    /* a partial refund by offer, then the order confirmed */
    {"{\"op\":\"case.open\",\"as\":\"buyer:B1\",\"case\":{\"id\":\"C3\",\"order\":\"O1\","
     "\"type\":\"partial_refund\",\"reason\":\"not_as_described\",\"evidence\":[\"photo-4\"],"
     "\"requested_amount\":3000,\"items\":[{\"sku\":\"T3\",\"qty\":1}]}}"},
    {"{\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C3\",\"action\":\"offer\","
     "\"payload\":{\"amount\":2000}}"},
    {"{\"op\":\"case.act\",\"as\":\"buyer:B1\",\"case\":\"C3\",\"action\":\"accept_offer\"}"},
    {"{\"op\":\"case.act\",\"as\":\"platform\",\"case\":\"C3\",\"action\":\"refund_succeeded\"}"},
    {"{\"op\":\"order.confirm\",\"order\":\"O1\"}"},
};
#define NFLOW ((int)(sizeof flow / sizeof flow[0]))

static void request(char *buf, size_t cap, int k)
{
    snprintf(buf, cap, flow[k].req, k);
}

/* A fresh runtime on a fresh store that has run the flow's first `k` commands. */
static void replay(W *w, int k)
{
    memset(w, 0, sizeof *w);
    w->mem = as__store_memory_new();
    ck_assert_ptr_nonnull(w->mem);
    rt_open(w);
    pump(w); /* the bundled packs' rows, journaled by the attach */
    for (int i = 0; i < k; i++) {
        char req[2048];
        request(req, sizeof req, i);
        ck_assert_msg(run(w, req) == 0, "step %d: %s: %s", i, as_err_name(w->code), w->msg);
    }
}

static void discard(W *w)
{
    rt_close(w);
    as__store_memory_free(w->mem);
    w->mem = NULL;
}

/* What a runtime restored from `w`'s store holds. */
static char *restored(W *w)
{
    W r = {.mem = w->mem};
    rt_open(&r);
    pump(&r);
    char *s = world(r.rt, 0);
    rt_close(&r);
    return s;
}

/* `s` with every run of 10 or more digits (the instants) as "T", in place: two runs of one
 * command at different times compare equal when they did the same. */
static char *timeless(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        size_t n = strspn(r, "0123456789");
        if (n >= 10) *w++ = 'T', r += n;
        else if (n) memmove(w, r, n), w += n, r += n;
        else *w++ = *r++;
    }
    *w = '\0';
    return s;
}

static void same(const char *what, int k, long n, const char *want, const char *got)
{
    ck_assert_msg(strcmp(want, got) == 0, "step %d, allocation %ld: %s differs:\nwant %s\ngot  %s",
                  k, n, what, want, got);
}

/* issue 11 item 4: each allocation of each command either succeeds or the command is refused
 * with nomem and changes nothing; a command answered 0 has its rows in the store. Run twice:
 * refusing the n-th allocation only (most of Lua's are then absorbed: it collects and tries
 * again), and refusing every one from the n-th on (memory that stays exhausted). */
START_TEST(alloc_oom_sweep_every_command)
{
    install();
    fault.sticky = _i;
    long points = 0;
    int nomem = 0, absorbed = 0;
    W w;
    replay(&w, 0);
    for (int k = 0; k < NFLOW; k++) {
        char req[2048];
        request(req, sizeof req, k);
        /* what the command did each time a failure was absorbed (owned), and at which n */
        char *took[512];
        long took_n[512];
        int ntook = 0;
        for (long n = 1;; n++) {
            char *before = world(w.rt, 1), *stored = rows(w.mem);
            arm(n);
            int rc = run(&w, req);
            int hit = disarm();
            points += hit;
            if (rc == 0) {
                /* durable: what the store holds restores to what memory holds */
                char *now = world(w.rt, 0), *back = restored(&w);
                same("the restored runtime", k, n, now, back);
                free(back);
                if (hit) {
                    ck_assert_int_lt(ntook, 512);
                    took_n[ntook] = n;
                    took[ntook++] = timeless(now);
                } else {
                    /* a failure absorbed on the way changed nothing about the outcome */
                    timeless(now);
                    for (int i = 0; i < ntook; i++) {
                        same("the outcome with an absorbed failure", k, took_n[i], now, took[i]);
                        free(took[i]);
                    }
                    free(now);
                }
            } else {
                ck_assert_msg(hit && rc == AS_ENOMEM,
                              "step %d (%s), allocation %ld: answered %s: %s", k, req, n,
                              as_err_name(rc), w.msg);
                char *after = world(w.rt, 1), *rows_after = rows(w.mem);
                same("memory after a refusal", k, n, before, after);
                same("the store after a refusal", k, n, stored, rows_after);
                free(after), free(rows_after);
                nomem++;
            }
            free(before), free(stored);
            if (rc == 0 && !hit) break;
            if (rc == 0) { /* the failure was absorbed (Lua retries after a collection) */
                absorbed++;
                discard(&w);
                replay(&w, k);
            }
        }
    }
    discard(&w);
    printf("alloc sweep (%s): %d commands, %ld (command, allocation) points: %d refused with "
           "nomem, %d absorbed\n", _i ? "from the n-th on" : "the n-th only", NFLOW, points,
           nomem, absorbed);
}
END_TEST

/* Two commands in one loop turn share a batch: each is reserved for on its own, and each is
 * answered 0 with its rows or nomem without a trace, whatever the other's fate. Here the
 * buyer ships C1's return while opening C2 (flow steps 6 and 12, after steps 0-5). */
START_TEST(alloc_oom_sweep_one_turn)
{
    enum { BASE = 6, A = 6, B = 12 };
    install();
    fault.sticky = _i;
    char ra[2048], rb[2048];
    request(ra, sizeof ra, A);
    request(rb, sizeof rb, B);
    /* what memory holds, timeless, after neither, A only, B only, both */
    char *want[4];
    for (int m = 0; m < 4; m++) {
        W w;
        replay(&w, BASE);
        if (m & 1) ck_assert_int_eq(run(&w, ra), 0);
        if (m & 2) ck_assert_int_eq(run(&w, rb), 0);
        want[m] = timeless(world(w.rt, 0));
        discard(&w);
    }
    long points = 0;
    W w;
    replay(&w, BASE);
    for (long n = 1;; n++) {
        char *before = world(w.rt, 1), *stored = rows(w.mem);
        W a = {0}, b = {0}; /* the two answers (done_cb's fields only) */
        arm(n);
        int rca = as_runtime_submit(w.rt, ra, done_cb, &a);
        int rcb = as_runtime_submit(w.rt, rb, done_cb, &b);
        pump(&w);
        int hit = disarm();
        points += hit;
        ck_assert_msg(a.answered == 1 && b.answered == 1 && a.code == rca && b.code == rcb,
                      "allocation %ld: answered %d and %d times", n, a.answered, b.answered);
        ck_assert_msg((rca == 0 || (hit && rca == AS_ENOMEM)) && (rcb == 0 || (hit && rcb == AS_ENOMEM)),
                      "allocation %ld: answered %s and %s", n, as_err_name(rca), as_err_name(rcb));
        char *now = world(w.rt, 0), *back = restored(&w);
        same("the restored runtime", BASE, n, now, back);
        same("what the answers say", BASE, n, want[(rca == 0) | (rcb == 0) << 1], timeless(now));
        if (rca && rcb) {
            char *after = world(w.rt, 1), *rows_after = rows(w.mem);
            same("memory after two refusals", BASE, n, before, after);
            same("the store after two refusals", BASE, n, stored, rows_after);
            free(after), free(rows_after);
        }
        free(before), free(stored), free(now), free(back);
        if (!hit) break;
        if (rca == 0 || rcb == 0) {
            discard(&w);
            replay(&w, BASE);
        }
    }
    discard(&w);
    for (int m = 0; m < 4; m++) free(want[m]);
    printf("alloc sweep of one turn (%s): 2 commands, %ld allocation points\n",
           _i ? "from the n-th on" : "the n-th only", points);
}
END_TEST


/* aftersale.h as_runtime_clock_request on a durable virtual clock: each allocation of a move
 * either succeeds or the move is refused with nomem and nothing changed -- but for a nomem
 * met writing the answer once the move is made, whose sentence says so; a deadline that could
 * not fire is not reported (it is tried again a second later, past this move's end); and
 * whatever was answered, the store restores to what memory holds. C1 (flow steps 0-4) waits
 * for merchant_response, 24 h after its open by S1's rules; the move goes exactly there. */
START_TEST(alloc_oom_sweep_clock_move)
{
    enum { BASE = 5 };
    const int64_t t0 = 1772323200000ll, due = t0 + 24 * 3600 * 1000ll;
    static const char body[] = "{\"to\":1772409600000}";
    static const char fired[] =
        "{\"now\":1772409600000,\"fired\":[{\"case\":\"C1\",\"deadline\":\"merchant_response\","
        "\"at\":1772409600000,\"action\":\"auto_agree\",\"to\":\"awaiting_return\"}]}";
    static const char none[] = "{\"now\":1772409600000,\"fired\":[]}";
    install();
    fault.sticky = _i;
    virtual_start = t0;
    long points = 0;
    int nomem = 0, moved_nomem = 0, unfired = 0;
    W w;
    replay(&w, BASE);
    for (long n = 1;; n++) {
        ck_assert_int_eq(as_runtime_now(w.rt), t0);
        char *before = world(w.rt, 0), *stored = rows(w.mem);
        unit_reply r = {0};
        arm(n);
        int rc =
            as_runtime_clock_request(w.rt, "platform", body, sizeof body - 1, unit_reply_cb, &r);
        pump(&w);
        int hit = disarm();
        points += hit;
        int moved = as_runtime_now(w.rt) != t0;
        /* returned 0 once the move is made; its answer may still be the nomem of writing it */
        ck_assert_msg(r.calls == 1 && (r.code == rc || (rc == 0 && moved)),
                      "allocation %ld: answered %d times, %s then %s", n, r.calls, as_err_name(rc),
                      as_err_name(r.code));
        rc = r.code;
        char *c1 = as_case_get_json(w.rt, "C1");
        ck_assert_ptr_nonnull(c1);
        int agreed = strstr(c1, "\"state\":\"awaiting_return\"") != NULL;
        as_free(c1);
        if (rc == 0) {
            ck_assert_int_eq(as_runtime_now(w.rt), due);
            /* what the answer lists is what happened */
            ck_assert_str_eq(r.text, agreed ? fired : none);
            ck_assert(hit || agreed);
            unfired += !agreed;
        } else {
            ck_assert_msg(hit && rc == AS_ENOMEM, "allocation %ld: answered %s: %s", n,
                          as_err_name(rc), r.text);
            if (moved) {
                ck_assert_msg(strstr(r.text, "the clock moved") != NULL, "%s", r.text);
                moved_nomem++;
            } else {
                char *after = world(w.rt, 0), *rows_after = rows(w.mem);
                same("memory after a refused move", BASE, n, before, after);
                same("the store after a refused move", BASE, n, stored, rows_after);
                free(after), free(rows_after);
                nomem++;
            }
        }
        char *now = world(w.rt, 0), *back = restored(&w);
        /* A deadline that could not fire is tried again a second later; that retry is the
         * scheduler's, in memory, and the file keeps the due time it had (a restart fires
         * it then, at once) -- the one difference allowed between the two. */
        char *retry = strstr(now, "\"due\":1772409601000");
        if (moved && !agreed && retry) memcpy(retry, "\"due\":1772409600000", 19);
        same("the restored runtime", BASE, n, now, back);
        free(now), free(back), free(before), free(stored);
        unit_reply_clear(&r);
        if (!hit) break;
        if (moved) {
            discard(&w);
            replay(&w, BASE);
        }
    }
    discard(&w);
    virtual_start = 0;
    printf("alloc sweep of a clock move (%s): %ld allocation points: %d refused with nomem, "
           "%d nomem after the move, %d deadlines not fired\n",
           _i ? "from the n-th on" : "the n-th only", points, nomem, moved_nomem, unfired);
}
END_TEST

/* ==========================================================================================
 * The API
 * ======================================================================================== */

/* aftersale.h: every allocation of the library goes through the replaced allocator, libuv's
 * and jansson's included; as_free frees what it hands out. */
START_TEST(alloc_every_allocation_is_ours)
{
    install();
    W w;
    replay(&w, 5);
    long before = atomic_load(&fault.total);
    char *s = as_case_get_json(w.rt, "C1");
    ck_assert_ptr_nonnull(s);
    ck_assert_int_gt(atomic_load(&fault.total), before); /* jansson's values and text */
    as_free(s);
    discard(&w);
}
END_TEST

/* aftersale.h: refused with AS_EINVALID_STATE once a runtime exists; AS_EBAD_REQUEST for a
 * NULL function. */
START_TEST(alloc_replace_refused_after_first_runtime)
{
    ck_assert_int_eq(as_replace_allocator(NULL, realloc, calloc, free), AS_EBAD_REQUEST);
    install();
    as_error err = {0};
    as_runtime *rt = as_runtime_new(NULL, &err);
    ck_assert_ptr_nonnull(rt);
    ck_assert_int_eq(as_replace_allocator(malloc, realloc, calloc, free), AS_EINVALID_STATE);
    as_runtime_free(rt);
    ck_assert_int_eq(as_replace_allocator(malloc, realloc, calloc, free), AS_EINVALID_STATE);
}
END_TEST

static Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *api = tcase_create("api");
    tcase_add_test(api, alloc_replace_refused_after_first_runtime);
    tcase_add_test(api, alloc_every_allocation_is_ours);
    suite_add_tcase(s, api);
    TCase *sweep = tcase_create("sweep");
    tcase_set_timeout(sweep, 110);
    tcase_add_loop_test(sweep, alloc_oom_sweep_every_command, 0, 2);
    tcase_add_loop_test(sweep, alloc_oom_sweep_one_turn, 0, 2);
    tcase_add_loop_test(sweep, alloc_oom_sweep_clock_move, 0, 2);
    suite_add_tcase(s, sweep);
    return s;
}

int main(void)
{
    return unit_run(alloc_suite(), 0);
}
