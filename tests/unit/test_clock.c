/* test_clock.c -- the two clocks behind one interface (docs/design.md#time-and-deadlines). */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/clock.h"
#include "unit_common.h"
#include "unit_scratch.h"

/* docs/design.md#time-and-deadlines: the virtual clock is a number the headless runner moves
 * forward. */
START_TEST(clock_virtual_starts_where_told)
{
    as_clock c;
    as__clock_init_virtual(&c, 1772323200000ll);
    ck_assert(as__clock_is_virtual(&c));
    ck_assert_int_eq(as__clock_now(&c), 1772323200000ll);
    ck_assert_int_eq(as__clock_set(&c, 1772323200000ll + 1), 0);
    ck_assert_int_eq(as__clock_now(&c), 1772323200000ll + 1);
}
END_TEST

/* clock.h: "time never goes back (an earlier `ms` is ignored)". */
START_TEST(clock_virtual_never_goes_back)
{
    as_clock c;
    as__clock_init_virtual(&c, 5000);
    ck_assert_int_eq(as__clock_set(&c, 9000), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, 8999), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, 0), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, INT64_MIN), 0);
    ck_assert_int_eq(as__clock_now(&c), 9000);
    ck_assert_int_eq(as__clock_set(&c, 9000), 0); /* the same instant is fine */
    ck_assert_int_eq(as__clock_now(&c), 9000);
    int64_t last = as__clock_now(&c);
    for (int64_t t = 20000; t > 0; t -= 777) {
        as__clock_set(&c, t);
        ck_assert_int_ge(as__clock_now(&c), last);
        last = as__clock_now(&c);
    }
    ck_assert_int_eq(last, 20000);
}
END_TEST

/* A negative start (before the epoch) is still a point in time the clock can hold. */
START_TEST(clock_virtual_negative_start)
{
    as_clock c;
    as__clock_init_virtual(&c, -86400000);
    ck_assert_int_eq(as__clock_now(&c), -86400000);
    as__clock_set(&c, -1);
    ck_assert_int_eq(as__clock_now(&c), -1);
}
END_TEST

static void on_timer(uv_timer_t *t)
{
    (void)t;
}

/* docs/design.md#time-and-deadlines: the real clock is libuv's loop time shifted to wall-clock ms
 * UTC. The bounds are generous on purpose: this checks the shift, not the machine's speed. */
START_TEST(clock_real_tracks_wall_time)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    as_clock c;
    as__clock_init_real(&c, &loop);
    ck_assert(!as__clock_is_virtual(&c));
    int64_t before = wall_ms();
    int64_t now = as__clock_now(&c);
    ck_assert_msg(now > before - 2000 && now < before + 2000, "real clock %lld, wall %lld",
                  (long long)now, (long long)before);

    /* run the loop through a short timer: loop time moves on, the clock follows the wall */
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, on_timer, 30, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    int64_t later = as__clock_now(&c);
    int64_t wall = wall_ms();
    ck_assert_int_ge(later, now); /* never back */
    ck_assert_msg(later > wall - 2000 && later < wall + 2000, "real clock %lld, wall %lld",
                  (long long)later, (long long)wall);

    /* as__clock_set is the virtual clock's only: refused, and time is unchanged */
    ck_assert_int_eq(as__clock_set(&c, later + 86400000), -1);
    ck_assert_int_lt(as__clock_now(&c), later + 86400000);

    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* clock.h: which clock it is, is its mode, not whether there is a loop. */
START_TEST(clock_mode_is_not_the_loop)
{
    as_clock c;
    as__clock_init_virtual(&c, 42);
    ck_assert_int_eq(c.mode, AS_CLOCK_VIRTUAL);
    ck_assert_ptr_null(c.loop);
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    as__clock_init_real(&c, &loop);
    ck_assert_int_eq(c.mode, AS_CLOCK_REAL);
    ck_assert(!as__clock_is_virtual(&c));
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* ==========================================================================================
 * A virtual clock on a loop (as_options.virtual_clock, `aftersale serve --clock virtual`)
 * ======================================================================================== */

#define T0 1772323200000ll /* 2026-03-01T00:00:00Z */
#define HOUR (3600 * 1000ll)

/* What as_fired_cb heard, and as_done_cb after it. */
typedef struct heard {
    int n;
    char case_id[8][32], deadline[8][32], action[8][32], state[8][32];
    int64_t at[8];
    unit_reply done;
} heard;

static void on_fired(void *ud, const char *case_id, const char *deadline, int64_t at_ms,
                     const char *action, const char *state)
{
    heard *h = ud;
    ck_assert_int_lt(h->n, 8);
    snprintf(h->case_id[h->n], 32, "%s", case_id);
    snprintf(h->deadline[h->n], 32, "%s", deadline);
    snprintf(h->action[h->n], 32, "%s", action);
    snprintf(h->state[h->n], 32, "%s", state);
    h->at[h->n++] = at_ms;
}

static void on_done(void *ud, int code, const char *msg)
{
    unit_reply_cb(&((heard *)ud)->done, code, msg);
}

#define ORDER_JSON(id)                                                                             \
    "{\"id\":\"" id "\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"T1\","              \
    "\"category\":\"apparel\",\"qty\":1,\"price\":19900}],\"shipping_fee\":0}"
#define CASE_JSON(id, order)                                                                       \
    "{\"id\":\"" id "\",\"order\":\"" order "\",\"type\":\"return_refund\",\"reason\":"            \
    "\"no_reason\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}"

/* A delivered order and a case opened on it now: its merchant_response is due in 48 h. */
static void open_one(as_runtime *rt, const char *order_json, const char *order,
                     const char *case_json)
{
    as_error err = {0};
    ck_assert_msg(as_order_create_json(rt, order_json, &err) == 0, "%s", err.msg);
    ck_assert_msg(as_order_event(rt, order, "deliver", &err) == 0, "%s", err.msg);
    ck_assert_msg(as_case_open_json(rt, "buyer:B1", case_json, &err) == 0, "%s", err.msg);
}

static const char *state_of(as_runtime *rt, const char *case_id, char *buf, size_t cap)
{
    char *j = as_case_get_json(rt, case_id);
    ck_assert_ptr_nonnull(j);
    const char *p = strstr(j, "\"state\":\"");
    ck_assert_ptr_nonnull(p);
    p += 9;
    size_t n = strcspn(p, "\"");
    snprintf(buf, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    as_free(j);
    return buf;
}

static void wake_cb(uv_timer_t *t)
{
    (void)t;
}

/* aftersale.h as_options.virtual_clock: "no libuv timer fires a deadline, and a deadline
 * fires only when a move passes its instant". The loop turns (a timer of the test's own runs
 * out) and time does not move; nothing of the runtime's keeps the loop alive, while a real
 * clock's runtime has its one timer armed for the same pending deadline. */
START_TEST(clock_virtual_on_a_loop_moves_only_when_told)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    as_options o = {0};
    o.loop = &loop;
    o.virtual_clock = 1;
    o.start_ms = T0;
    as_runtime *rt = unit_runtime(&o, NULL);
    ck_assert_int_eq(as_runtime_clock_virtual(rt), 1);
    ck_assert_int_eq(as_runtime_now(rt), T0);
    open_one(rt, ORDER_JSON("O1"), "O1", CASE_JSON("C1", "O1"));
    open_one(rt, ORDER_JSON("O2"), "O2", CASE_JSON("C2", "O2"));
    ck_assert_int_eq(uv_loop_alive(&loop), 0); /* no timer waits for the deadline */
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, wake_cb, 30, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(as_runtime_now(rt), T0);
    char st[32];
    ck_assert_str_eq(state_of(rt, "C1", st, sizeof st), "requested");

    /* short of the deadline: nothing fires, the clock moves */
    heard h = {0};
    ck_assert_int_eq(as_runtime_clock_advance(rt, T0 + 47 * HOUR, on_fired, on_done, &h), 0);
    ck_assert_int_eq(h.n, 0);
    ck_assert_int_eq(h.done.calls, 1);
    ck_assert_int_eq(h.done.code, 0);
    ck_assert_int_eq(as_runtime_now(rt), T0 + 47 * HOUR);
    ck_assert_str_eq(state_of(rt, "C1", st, sizeof st), "requested");

    /* past it: both fire, in due order (C1 was opened first), each at its own instant */
    unit_reply_clear(&h.done);
    h = (heard){0};
    ck_assert_int_eq(as_runtime_clock_advance(rt, T0 + 49 * HOUR, on_fired, on_done, &h), 0);
    ck_assert_int_eq(h.n, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_str_eq(h.case_id[i], i == 0 ? "C1" : "C2");
        ck_assert_str_eq(h.deadline[i], "merchant_response");
        ck_assert_int_eq(h.at[i], T0 + 48 * HOUR);
        ck_assert_str_eq(h.action[i], "auto_agree");
        ck_assert_str_eq(h.state[i], "awaiting_return");
    }
    ck_assert_int_eq(h.done.calls, 1);
    ck_assert_int_eq(as_runtime_now(rt), T0 + 49 * HOUR);
    ck_assert_str_eq(state_of(rt, "C2", st, sizeof st), "awaiting_return");

    /* never back, and past the end of year 9999 neither: refused, time unchanged */
    unit_reply_clear(&h.done);
    h = (heard){0};
    ck_assert_int_eq(as_runtime_clock_advance(rt, T0, on_fired, on_done, &h), AS_EBAD_REQUEST);
    ck_assert_int_eq(h.done.code, AS_EBAD_REQUEST);
    ck_assert_int_eq(as_runtime_clock_advance(rt, 253402300800000ll, NULL, NULL, NULL),
                     AS_EBAD_REQUEST);
    ck_assert_int_eq(as_runtime_now(rt), T0 + 49 * HOUR);
    unit_reply_clear(&h.done);

    as_runtime_free(rt);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* The same runtime on the loop's real clock: its timer is armed for the pending deadline,
 * and a move is refused with conflict, nothing fired. */
START_TEST(clock_real_on_a_loop_refuses_a_move)
{
    uv_loop_t loop;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    as_options o = {0};
    o.loop = &loop;
    as_runtime *rt = unit_runtime(&o, NULL);
    ck_assert_int_eq(as_runtime_clock_virtual(rt), 0);
    open_one(rt, ORDER_JSON("O1"), "O1", CASE_JSON("C1", "O1"));
    ck_assert_int_eq(uv_loop_alive(&loop), 1); /* the one timer, for merchant_response */
    heard h = {0};
    int64_t now = as_runtime_now(rt);
    ck_assert_int_eq(as_runtime_clock_advance(rt, now + 49 * HOUR, on_fired, on_done, &h),
                     AS_ECONFLICT);
    ck_assert_int_eq(h.n, 0);
    ck_assert_int_eq(h.done.calls, 1);
    ck_assert_int_eq(h.done.code, AS_ECONFLICT);
    ck_assert_int_lt(as_runtime_now(rt), now + HOUR);
    char st[32];
    ck_assert_str_eq(state_of(rt, "C1", st, sizeof st), "requested");
    unit_reply_clear(&h.done);
    as_runtime_free(rt);
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* aftersale.h: virtual_clock "Any other value: AS_EBAD_REQUEST"; without a loop 1 is simply
 * the headless virtual clock. */
START_TEST(clock_virtual_option_checked)
{
    as_options o = {0};
    as_error err = {0};
    o.virtual_clock = 2;
    ck_assert_ptr_null(as_runtime_new(&o, &err));
    ck_assert_int_eq(err.code, AS_EBAD_REQUEST);
    o.virtual_clock = -1;
    ck_assert_ptr_null(as_runtime_new(&o, &err));
    o.virtual_clock = 1;
    o.start_ms = T0;
    as_runtime *rt = as_runtime_new(&o, &err);
    ck_assert_ptr_nonnull(rt);
    ck_assert_int_eq(as_runtime_clock_virtual(rt), 1);
    ck_assert_int_eq(as_runtime_now(rt), T0);
    as_runtime_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Durable: as_runtime_clock_request from the step, answered once on disk, resumed on restart
 * ---------------------------------------------------------------------------------------- */

typedef struct V {
    uv_loop_t loop;
    uv_idle_t spin;
    as_runtime *rt;
    char db[128];
    const char *principal, *body; /* the request the step runs */
    unit_reply reply;
} V;

static void spin_cb(uv_idle_t *h)
{
    (void)h;
}

static void v_start(V *v, int64_t start_ms)
{
    ck_assert_int_eq(uv_loop_init(&v->loop), 0);
    ck_assert_int_eq(uv_idle_init(&v->loop, &v->spin), 0);
    as_options o = {0};
    o.loop = &v->loop;
    o.virtual_clock = 1;
    o.start_ms = start_ms;
    as_error err = {0};
    v->rt = unit_runtime(&o, &err);
    ck_assert_msg(as_runtime_attach_store(v->rt, v->db, &err) == 0, "attach: %s", err.msg);
}

/* Turns the loop until `done` holds (or nothing waits for the disk), bounded in time. */
static void v_pump(V *v, const int *calls)
{
    uint64_t t0 = uv_hrtime();
    uv_idle_start(&v->spin, spin_cb);
    while (calls ? *calls == 0 : !as_runtime_idle(v->rt)) {
        uv_run(&v->loop, UV_RUN_ONCE);
        ck_assert_msg(uv_hrtime() - t0 < 20000000000ull, "no answer in 20 s");
    }
    uv_idle_stop(&v->spin);
}

static void v_stop(V *v)
{
    v_pump(v, NULL);
    as_runtime_free(v->rt);
    uv_close((uv_handle_t *)&v->spin, NULL);
    uv_run(&v->loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(uv_loop_close(&v->loop), 0);
}

/* The request, run in the loop turn's step as the HTTP server runs it. */
static void step_request(void *ud)
{
    V *v = ud;
    as_runtime_clock_request(v->rt, v->principal, v->body, strlen(v->body), unit_reply_cb,
                             &v->reply);
}

static void v_request(V *v, const char *principal, const char *body)
{
    unit_reply_clear(&v->reply);
    v->principal = principal;
    v->body = body;
    ck_assert_int_eq(as_runtime_defer(v->rt, step_request, v), 0);
    ck_assert_int_eq(v->reply.calls, 0); /* queued for the step, not run at once */
    v_pump(v, &v->reply.calls);
    ck_assert_int_eq(v->reply.calls, 1);
}

/* docs/api.md POST /v1/clock/advance, through the runtime: the answer lists what fired and
 * comes once it is durable; refusals change nothing; a restart on the file finds the case
 * moved and resumes the clock at the last recorded instant, not at an earlier start. */
START_TEST(clock_virtual_durable_request_and_restart)
{
    V v = {0};
    snprintf(v.db, sizeof v.db, "%s/clock.db", root);
    v_start(&v, T0);
    open_one(v.rt, ORDER_JSON("O1"), "O1", CASE_JSON("C1", "O1"));
    v_pump(&v, NULL);

    v_request(&v, "merchant:S1", "{\"by\":\"48h\"}");
    ck_assert_int_eq(v.reply.code, AS_EFORBIDDEN);
    static const char *const bad[] = {"{\"by\":\"0s\"}",
                                      "{\"by\":\"-1h\"}",
                                      "{\"by\":\"366d\"}",
                                      "{\"by\":\"soon\"}",
                                      "{\"by\":48}",
                                      "{\"by\":\"1h\",\"x\":1}",
                                      "{}",
                                      "[]",
                                      "{\"by\":\"1h\",\"to\":1}",
                                      "{\"to\":0}",
                                      "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v_request(&v, "platform", bad[i]);
        ck_assert_msg(v.reply.code == AS_EBAD_REQUEST, "%s: %d %s", bad[i], v.reply.code,
                      v.reply.text);
        ck_assert_int_eq(as_runtime_now(v.rt), T0);
    }

    v_request(&v, "platform", "{\"by\":\"48h\"}");
    ck_assert_msg(v.reply.code == 0, "%s", v.reply.text);
    ck_assert_str_eq(v.reply.text,
                     "{\"now\":1772496000000,\"fired\":[{\"case\":\"C1\",\"deadline\":"
                     "\"merchant_response\",\"at\":1772496000000,\"action\":\"auto_agree\","
                     "\"to\":\"awaiting_return\"}]}");
    ck_assert(as_runtime_idle(v.rt)); /* answered: on disk */
    v_request(&v, "platform", "{\"to\":\"2026-03-03T01:00:00Z\"}");
    ck_assert_str_eq(v.reply.text, "{\"now\":1772499600000,\"fired\":[]}");
    unit_reply_clear(&v.reply);
    v_stop(&v);

    v_start(&v, T0); /* told to start before what the file records */
    ck_assert_int_eq(as_runtime_now(v.rt), T0 + 48 * HOUR);
    char st[32];
    ck_assert_str_eq(state_of(v.rt, "C1", st, sizeof st), "awaiting_return");
    v_stop(&v);
}
END_TEST

static Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");
    TCase *v = tcase_create("virtual");
    tcase_set_timeout(v, 10);
    tcase_add_test(v, clock_virtual_starts_where_told);
    tcase_add_test(v, clock_virtual_never_goes_back);
    tcase_add_test(v, clock_virtual_negative_start);
    suite_add_tcase(s, v);

    tcase_add_test(v, clock_mode_is_not_the_loop);
    tcase_add_test(v, clock_virtual_option_checked);

    TCase *r = tcase_create("real");
    tcase_set_timeout(r, 20);
    tcase_add_test(r, clock_real_tracks_wall_time);
    suite_add_tcase(s, r);

    TCase *l = tcase_create("virtual_on_a_loop");
    tcase_set_timeout(l, 60);
    tcase_add_unchecked_fixture(l, root_make, root_remove);
    tcase_add_test(l, clock_virtual_on_a_loop_moves_only_when_told);
    tcase_add_test(l, clock_real_on_a_loop_refuses_a_move);
    tcase_add_test(l, clock_virtual_durable_request_and_restart);
    suite_add_tcase(s, l);
    return s;
}

int main(void)
{
    return unit_run(clock_suite(), 1);
}
