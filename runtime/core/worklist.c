/* worklist.c -- see worklist.h. */
#include "worklist.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "aftersale/error.h"
#include "model.h"

static int grow(as_worklist *l, uint32_t need)
{
    if (need <= l->cap) return 0;
    uint32_t cap = l->cap ? l->cap : 16;
    while (cap < need) cap += cap / 2;
    as_case **v = as__realloc(l->v, (size_t)cap * sizeof *v);
    if (v == NULL) return AS_ENOMEM;
    l->v = v;
    l->cap = cap;
    return 0;
}

int as__worklist_reserve(as_shop_cases *w)
{
    /* the closed list may come to hold every case the shop has */
    uint32_t all = w->open.len + w->closed.len + 1;
    return grow(&w->open, w->open.len + 1) || grow(&w->closed, all) ? AS_ENOMEM : 0;
}

static void push(as_worklist *l, as_case *c)
{
    c->wl_pos = l->len;
    l->v[l->len++] = c;
    l->sorted = 0;
}

void as__worklist_add(as_shop_cases *w, as_case *c)
{
    push(as__state_terminal(c->v.state) ? &w->closed : &w->open, c);
}

void as__worklist_changed(as_shop_cases *w, as_case *c)
{
    as_worklist *o = &w->open;
    o->sorted = 0;
    if (!as__state_terminal(c->v.state)) return;
    uint32_t i = c->wl_pos; /* swap the last open case into its slot */
    o->v[i] = o->v[--o->len];
    o->v[i]->wl_pos = i;
    push(&w->closed, c);
}

static int64_t due_of(const as_case *c)
{
    return as__sched_pending(&c->deadline) ? c->deadline.due_ms : INT64_MAX;
}

int as__worklist_cmp(const as_case *x, const as_case *y)
{
    int px = x->v.priority ? x->v.priority : 100, py = y->v.priority ? y->v.priority : 100;
    if (px != py) return px < py ? -1 : 1;
    int64_t dx = due_of(x), dy = due_of(y);
    if (dx != dy) return dx < dy ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp(const void *a, const void *b)
{
    return as__worklist_cmp(*(as_case *const *)a, *(as_case *const *)b);
}

void as__worklist_walk(as_shop_cases *w, int closed, int (*fn)(void *ud, const as_case *c),
                       void *ud)
{
    as_worklist *l = closed ? &w->closed : &w->open;
    if (!l->sorted) {
        qsort(l->v, l->len, sizeof *l->v, cmp);
        for (uint32_t i = 0; i < l->len; i++) l->v[i]->wl_pos = i;
        l->sorted = 1;
    }
    for (uint32_t i = 0; fn && i < l->len; i++)
        if (fn(ud, l->v[i])) return;
}

void as__worklist_free(as_shop_cases *w)
{
    as__free(w->open.v);
    as__free(w->closed.v);
    memset(w, 0, sizeof *w);
}
