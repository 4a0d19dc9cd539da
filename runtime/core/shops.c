/* shops.c -- what the runtime answers per shop: its worklist (worklist.h), its metrics among
 * its peers (metrics.h), and counts over the shops for monitoring. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alloc.h"
#include "runtime.h"

typedef struct cursor {
    as_shop *shop;
    uint32_t at;
} cursor;

/* Collects a shop's list head by head: `fn` over the merged order of every shop's list. */
static int merge(as_runtime *rt, int closed, int (*fn)(void *ud, const as_case *c), void *ud)
{
    size_t n = 0, pos = 0;
    cursor *cur = as__malloc((rt->shops.len + 1) * sizeof *cur); /* owned here */
    if (cur == NULL) return AS_ENOMEM;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL) {
        as_worklist *l = closed ? &s->cases.closed : &s->cases.open;
        if (l->len == 0) continue;
        as__worklist_walk(&s->cases, closed, NULL, NULL); /* sorts it */
        cur[n++] = (cursor){s, 0};
    }
    for (;;) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            as_worklist *l = closed ? &cur[i].shop->cases.closed : &cur[i].shop->cases.open;
            if (cur[i].at == l->len) continue;
            if (best == n) best = i;
            else {
                as_worklist *b = closed ? &cur[best].shop->cases.closed : &cur[best].shop->cases.open;
                if (as__worklist_cmp(l->v[cur[i].at], b->v[cur[best].at]) < 0) best = i;
            }
        }
        if (best == n) break;
        as_worklist *b = closed ? &cur[best].shop->cases.closed : &cur[best].shop->cases.open;
        if (fn(ud, b->v[cur[best].at++])) break;
    }
    as__free(cur);
    return 0;
}

int as__worklist_each(as_runtime *rt, const char *shop, int closed,
                      int (*fn)(void *ud, const as_case *c), void *ud)
{
    if (shop == NULL) return merge(rt, closed, fn, ud);
    as_shop *s = as__shop_get(rt, shop, 0);
    if (s) as__worklist_walk(&s->cases, closed, fn, ud);
    return 0;
}

size_t as__open_cases(as_runtime *rt)
{
    size_t n = 0, pos = 0;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL) n += s->cases.open.len;
    return n;
}

size_t as__failed_merchant_packs(as_runtime *rt)
{
    size_t n = 0, pos = 0;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL)
        n += s->merchant && strcmp(s->merchant->engine->kind, "failed") == 0;
    return n;
}

static void mark_stale(as_runtime *rt, as_shop *s)
{
    if (s->fig_stale) return;
    s->fig_stale = 1;
    s->fig_next = rt->fig_stale;
    rt->fig_stale = s;
}

void as__shop_event(as_runtime *rt, as_shop *s, as_event_kind k, int64_t t, const as_order *o,
                    int64_t val)
{
    (void)as__events_add(&s->events, k, t, o, val); /* its room is reserved */
    mark_stale(rt, s);
}

static as_peer_group *peer_group(as_runtime *rt, const char *category)
{
    for (int i = 0; i < rt->npeers; i++)
        if (rt->peers[i].category == category) return &rt->peers[i];
    return NULL;
}

static void peer_unlink(as_runtime *rt, as_shop *s)
{
    as_peer_group *g = peer_group(rt, s->fig.main_category);
    if (g == NULL) return;
    if (s->peer_prev) s->peer_prev->peer_next = s->peer_next;
    else g->first = s->peer_next;
    if (s->peer_next) s->peer_next->peer_prev = s->peer_prev;
    s->peer_next = s->peer_prev = NULL;
}

/* Computes s's figures again and files it under its main category; AS_ENOMEM leaves it as it
 * was (and stale). */
static int recompute(as_runtime *rt, as_shop *s, int64_t now)
{
    as_metrics m;
    int rc = as__metrics_compute(&s->events, now, &m);
    as_peer_group *g = rc == 0 && m.main_category ? peer_group(rt, m.main_category) : NULL;
    if (rc == 0 && m.main_category && g == NULL) {
        as_peer_group *v = as__realloc(rt->peers, (size_t)(rt->npeers + 1) * sizeof *v);
        if (v == NULL) return AS_ENOMEM;
        rt->peers = v;
        g = &v[rt->npeers++];
        *g = (as_peer_group){m.main_category, NULL};
    }
    if (rc == 0 && as__sched_reserve(&rt->fig_due, 1) != 0) rc = AS_ENOMEM;
    if (rc) return rc;
    if (m.main_category != s->fig.main_category) {
        peer_unlink(rt, s);
        if (g) {
            s->peer_next = g->first;
            if (g->first) g->first->peer_prev = s;
            g->first = s;
        }
    }
    s->fig = m;
    int64_t next = as__metrics_next_change(&s->events, now);
    as__sched_remove(&rt->fig_due, &s->fig_due);
    if (next != INT64_MAX) (void)as__sched_add(&rt->fig_due, &s->fig_due, next); /* reserved */
    return 0;
}

/* Brings every shop's figures to `now`: those whose window moved, then those with events
 * added, each computed once. */
static int refresh(as_runtime *rt, int64_t now)
{
    as_sched_node *n;
    while ((n = as__sched_pop_due(&rt->fig_due, now)) != NULL)
        mark_stale(rt, (as_shop *)((char *)n - offsetof(as_shop, fig_due)));
    as_shop *s;
    while ((s = rt->fig_stale) != NULL) {
        int rc = recompute(rt, s, now);
        if (rc) return rc;
        rt->fig_stale = s->fig_next;
        s->fig_stale = 0;
    }
    return 0;
}

int as__shop_metrics(as_runtime *rt, const char *shop, as_metrics *out)
{
    memset(out, 0, sizeof *out);
    as_shop *s = as__shop_get(rt, shop, 0);
    if (s == NULL) return 0;
    int rc = refresh(rt, as__clock_now(&rt->clock));
    if (rc) return rc;
    *out = s->fig;
    as_peer_group *g = s->fig.main_category ? peer_group(rt, s->fig.main_category) : NULL;
    size_t np = 0;
    for (as_shop *p = g ? g->first : NULL; p; p = p->peer_next) np += p != s;
    const as_metrics **peers = as__malloc((np + 1) * sizeof *peers); /* owned here */
    if (peers == NULL) return AS_ENOMEM;
    np = 0;
    for (as_shop *p = g ? g->first : NULL; p; p = p->peer_next)
        if (p != s) peers[np++] = &p->fig;
    out->flagged = as__metrics_flagged(out, peers, (int)np);
    as__free(peers);
    return 0;
}

void as__shop_metrics_free(as_runtime *rt)
{
    as__sched_free(&rt->fig_due);
    as__free(rt->peers);
    rt->peers = NULL;
    rt->npeers = 0;
}
