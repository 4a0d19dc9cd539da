/* turn.h -- the loop turn of a real-clock runtime (docs/design.md#the-loop-turn).
 *
 * libuv's callbacks -- a socket read, the deadline timer, the store's word that a batch is
 * durable -- only queue work. The runtime's uv_check handle then runs one step per turn: the
 * deadlines due, the queued functions in the order they were queued (and any they queue),
 * then the turn's group commit. Rules therefore run only inside the step, never inside a raw
 * I/O callback, and one turn's commands share one commit. A headless runtime (no loop) has
 * no step: queued work runs at once. A virtual clock on a loop has the step like a real one. */
#ifndef AS_TURN_H
#define AS_TURN_H

#include <uv.h>

typedef struct as_runtime as_runtime;
typedef struct as_turn_job as_turn_job;

typedef struct as_turn {
    uv_check_t *check; /* owned, freed by its close callback; NULL without a loop */
    uv_idle_t *idle;   /* owned; active while work waits for the step, so poll does not sleep */
    as_turn_job *head, *tail; /* queued, oldest first; owned */
    as_turn_job *spare;       /* free nodes kept for the next jobs; owned */
    int stepping;             /* inside the step */
} as_turn;

/* Sets up the step on `loop` (NULL: headless, nothing to set up). 0 or AS_ENOMEM. */
int as__turn_init(as_runtime *rt, uv_loop_t *loop);
/* Runs what is still queued (as a last step), then closes the handles. */
void as__turn_close(as_runtime *rt);
/* Work waits for this turn's step (a change to commit, a deadline due): keeps the loop's
 * poll from sleeping until the step has run. */
void as__turn_wake(as_runtime *rt);
/* Queues fn(ud) for this turn's step; runs it now without a loop. 0 or AS_ENOMEM (fn is not
 * called). */
int as__turn_defer(as_runtime *rt, void (*fn)(void *ud), void *ud);

#endif
