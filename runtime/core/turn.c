/* turn.c -- the loop turn: queued work runs in one step in the check phase. See turn.h. */
#include "turn.h"

#include "alloc.h"
#include "err.h"
#include "runtime.h"

struct as_turn_job {
    void (*fn)(void *ud);
    void *ud;
    as_turn_job *next;
};

/* The step: deadlines due first (the timer only woke the loop), then every queued function,
 * then the commit of everything they changed, then the timer pointed at the next deadline. */
static void step_cb(uv_check_t *h)
{
    as_runtime *rt = h->data;
    as_turn *t = &rt->turn;
    t->stepping = 1;
    as__fire_due(rt);
    as_turn_job *j;
    while ((j = t->head) != NULL) {
        t->head = j->next;
        if (t->head == NULL) t->tail = NULL;
        void (*fn)(void *) = j->fn;
        void *ud = j->ud;
        j->next = t->spare;
        t->spare = j;
        fn(ud);
    }
    t->stepping = 0;
    uv_idle_stop(t->idle);
    as__durable_hand_over(rt);
    as__rearm(rt);
}

static void idle_cb(uv_idle_t *h)
{
    (void)h;
}

static void close_free(uv_handle_t *h)
{
    as__free(h);
}

int as__turn_init(as_runtime *rt, uv_loop_t *loop)
{
    as_turn *t = &rt->turn;
    if (loop == NULL) return 0;
    t->check = as__malloc(sizeof *t->check);
    t->idle = as__malloc(sizeof *t->idle);
    if (t->check == NULL || t->idle == NULL) {
        as__free(t->check);
        as__free(t->idle);
        t->check = NULL;
        t->idle = NULL;
        return AS_ENOMEM;
    }
    uv_check_init(loop, t->check);
    t->check->data = rt;
    uv_check_start(t->check, step_cb);
    uv_unref((uv_handle_t *)t->check); /* the step alone keeps no loop alive */
    uv_idle_init(loop, t->idle);
    return 0;
}

void as__turn_close(as_runtime *rt)
{
    as_turn *t = &rt->turn;
    if (t->check == NULL) return;
    if (t->head) step_cb(t->check);
    for (as_turn_job *j = t->spare, *n; j; j = n) {
        n = j->next;
        as__free(j);
    }
    t->spare = NULL;
    uv_close((uv_handle_t *)t->check, close_free);
    uv_close((uv_handle_t *)t->idle, close_free);
    t->check = NULL;
    t->idle = NULL;
}

void as__turn_wake(as_runtime *rt)
{
    if (rt->turn.idle) uv_idle_start(rt->turn.idle, idle_cb);
}

int as__turn_defer(as_runtime *rt, void (*fn)(void *ud), void *ud)
{
    as_turn *t = &rt->turn;
    if (t->check == NULL) {
        fn(ud);
        return 0;
    }
    as_turn_job *j = t->spare;
    if (j) t->spare = j->next;
    else if ((j = as__malloc(sizeof *j)) == NULL) return AS_ENOMEM;
    *j = (as_turn_job){fn, ud, NULL};
    if (t->tail) t->tail->next = j;
    else t->head = j;
    t->tail = j;
    as__turn_wake(rt);
    return 0;
}
