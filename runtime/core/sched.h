/* sched.h -- deadlines as data: one min-heap of intrusive nodes ordered by (due_ms, seq).
 *
 * A case embeds its node; the heap holds pointers. Equal due times fire in insertion order.
 * The scheduler knows no clock: callers pass `now`, so the real and the virtual clock drive
 * it the same way, and collecting an expired node is separate from firing it. */
#ifndef AS_SCHED_H
#define AS_SCHED_H

#include <stddef.h>
#include <stdint.h>

#define AS_SCHED_NONE UINT32_MAX

typedef struct as_sched_node {
    int64_t due_ms;
    uint64_t seq;
    uint32_t index; /* position in the heap, AS_SCHED_NONE while not scheduled */
} as_sched_node;

typedef struct as_sched {
    as_sched_node **heap;
    size_t len, cap;
    uint64_t next_seq;
} as_sched;

void as__sched_init(as_sched *s);
void as__sched_free(as_sched *s);
void as__sched_node_init(as_sched_node *n);
/* Schedules `n` at `due_ms` (rescheduling it when already in). Returns 0 or AS_ENOMEM. */
int as__sched_add(as_sched *s, as_sched_node *n, int64_t due_ms);
/* Room for `n` more nodes, so that as many as__sched_add cannot fail; AS_ENOMEM. */
int as__sched_reserve(as_sched *s, size_t n);
/* Unschedules `n`; a no-op when it is not scheduled. */
void as__sched_remove(as_sched *s, as_sched_node *n);
/* The earliest node, or NULL when empty. */
as_sched_node *as__sched_peek(const as_sched *s);
/* Removes and returns the earliest node whose due_ms <= now_ms, or NULL. */
as_sched_node *as__sched_pop_due(as_sched *s, int64_t now_ms);
static inline int as__sched_pending(const as_sched_node *n)
{
    return n->index != AS_SCHED_NONE;
}

#endif
