/* sched.c -- a binary min-heap with back-indices so that removal is O(log n). */
#include "sched.h"

#include <stdlib.h>

#include "alloc.h"
#include "aftersale/error.h"

void as__sched_init(as_sched *s)
{
    s->heap = NULL;
    s->len = s->cap = 0;
    s->next_seq = 0;
}

void as__sched_free(as_sched *s)
{
    for (size_t i = 0; i < s->len; i++) s->heap[i]->index = AS_SCHED_NONE;
    as__free(s->heap);
    as__sched_init(s);
}

void as__sched_node_init(as_sched_node *n)
{
    n->due_ms = 0;
    n->seq = 0;
    n->index = AS_SCHED_NONE;
}

static int before(const as_sched_node *a, const as_sched_node *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void place(as_sched *s, size_t i, as_sched_node *n)
{
    s->heap[i] = n;
    n->index = (uint32_t)i;
}

static void sift_up(as_sched *s, size_t i)
{
    as_sched_node *n = s->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(n, s->heap[p])) break;
        place(s, i, s->heap[p]);
        i = p;
    }
    place(s, i, n);
}

static void sift_down(as_sched *s, size_t i)
{
    as_sched_node *n = s->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->len) break;
        if (c + 1 < s->len && before(s->heap[c + 1], s->heap[c])) c++;
        if (!before(s->heap[c], n)) break;
        place(s, i, s->heap[c]);
        i = c;
    }
    place(s, i, n);
}

int as__sched_reserve(as_sched *s, size_t n)
{
    if (s->len + n <= s->cap) return 0;
    size_t cap = s->cap ? s->cap : 64;
    while (cap < s->len + n) cap *= 2;
    as_sched_node **heap = as__realloc(s->heap, cap * sizeof *heap);
    if (heap == NULL) return AS_ENOMEM;
    s->heap = heap;
    s->cap = cap;
    return 0;
}

int as__sched_add(as_sched *s, as_sched_node *n, int64_t due_ms)
{
    if (as__sched_pending(n)) as__sched_remove(s, n);
    if (as__sched_reserve(s, 1) != 0) return AS_ENOMEM;
    n->due_ms = due_ms;
    n->seq = s->next_seq++;
    place(s, s->len++, n);
    sift_up(s, s->len - 1);
    return 0;
}

void as__sched_remove(as_sched *s, as_sched_node *n)
{
    size_t i = n->index;
    if (i == AS_SCHED_NONE) return;
    n->index = AS_SCHED_NONE;
    as_sched_node *last = s->heap[--s->len];
    if (i == s->len) return;
    place(s, i, last);
    if (i > 0 && before(last, s->heap[(i - 1) / 2]))
        sift_up(s, i);
    else
        sift_down(s, i);
}

as_sched_node *as__sched_peek(const as_sched *s)
{
    return s->len ? s->heap[0] : NULL;
}

as_sched_node *as__sched_pop_due(as_sched *s, int64_t now_ms)
{
    as_sched_node *n = as__sched_peek(s);
    if (n == NULL || n->due_ms > now_ms) return NULL;
    as__sched_remove(s, n);
    return n;
}
