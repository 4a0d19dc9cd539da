/* deadlines.c -- firing deadlines: due ones before each command, every one on the way when
 * a virtual clock moves, and the one libuv timer that wakes a real-clock runtime (a virtual
 * clock has none, with a loop or without). */
#include "engine.h"

int as__schedule(as_runtime *rt, as_case *c, int64_t due)
{
    return as__sched_add(&rt->sched, &c->deadline, due < 0 ? 0 : due);
}

/* Fires the deadline of `c`, which is due now; `fired` (may be NULL) hears of it once it is
 * applied. The same for every way time passes: the step's due deadlines, a virtual clock's
 * move, a command that meets a deadline due before it. */
static void fire(as_runtime *rt, as_case *c, as_fired_cb fired, void *ud)
{
    as_deadline_kind k = as__state_deadline(c->v.state);
    if (k == AS_DL_NONE) return;
    as_cmd cmd;
    as_error err = {0};
    int action = as__deadline_action(k);
    as__cmd_init(&cmd, (as_principal){AS_ROLE_SYSTEM, NULL}, action);
    cmd.result = 1; /* auto_inspect: docs/rulebook.md#deadlines, result fault */
    /* the entry names the deadline, and the rule that set its duration if one did */
    cmd.by_deadline = (uint8_t)k;
    if (c->deadline_layer != AS_NONE_U8) {
        cmd.by_hook = AS_HOOK_DEADLINES;
        cmd.by_layer = c->deadline_layer;
    }
    rt->stats.deadlines_fired++;
    int64_t at = as__clock_now(&rt->clock);
    if (as__case_apply(rt, c, &cmd, &err, 1) != 0) {
        /* a deadline is never refused; a failure here is the runtime's (out of memory):
         * try again a second later rather than lose it */
        as__schedule(rt, c, at + AS_SECOND);
        return;
    }
    if (fired)
        fired(ud, c->id, as__deadline_name(k), at, as__action_name(action),
              as__state_name(c->v.state));
}

void as__fire_due(as_runtime *rt)
{
    int64_t now = as__clock_now(&rt->clock);
    as_sched_node *n;
    while ((n = as__sched_pop_due(&rt->sched, now)) != NULL)
        fire(rt, as__case_of_node(n), NULL, NULL);
}

void as__advance(as_runtime *rt, int64_t to_ms, as_fired_cb fired, void *ud)
{
    if (!as__clock_is_virtual(&rt->clock)) return;
    as_sched_node *n;
    while ((n = as__sched_peek(&rt->sched)) != NULL && n->due_ms <= to_ms) {
        as__clock_set(&rt->clock, n->due_ms);
        as__sched_remove(&rt->sched, n);
        fire(rt, as__case_of_node(n), fired, ud);
    }
    as__clock_set(&rt->clock, to_ms);
}

static void timer_cb(uv_timer_t *h);

void as__rearm(as_runtime *rt)
{
    as_sched_node *n = as__sched_peek(&rt->sched);
    if (rt->timer == NULL) {
        /* A virtual clock moves only when told, so no timer waits for a deadline; one that is
         * due already (a zero duration, one restored from the store) is fired by the next
         * step, as a real clock's timer with no wait would have it. Headless: a no-op. */
        if (n && n->due_ms <= as__clock_now(&rt->clock)) as__turn_wake(rt);
        return;
    }
    if (n == NULL) {
        uv_timer_stop(rt->timer);
        return;
    }
    int64_t wait = n->due_ms - as__clock_now(&rt->clock);
    uv_timer_start(rt->timer, timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

/* The timer only wakes the loop: the turn's step fires what is due (turn.h). */
static void timer_cb(uv_timer_t *h)
{
    as__turn_wake(h->data);
}
