/* shops.c -- what the runtime answers per shop: its worklist (worklist.h), its metrics among
 * its peers (metrics.h), and counts over the shops for monitoring. */
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

int as__shop_metrics(as_runtime *rt, const char *shop, as_metrics *out)
{
    int64_t now = as__clock_now(&rt->clock);
    size_t n = rt->shops.len, i = 0, pos = 0;
    as_metrics *all = as__calloc(n + 1, sizeof *all);    /* owned here */
    as_metrics **ptrs = as__calloc(n + 1, sizeof *ptrs); /* owned here */
    int rc = all && ptrs ? 0 : AS_ENOMEM;
    as_metrics *mine = NULL;
    as_shop *s;
    while (rc == 0 && (s = as__strmap_next(&rt->shops, &pos)) != NULL) {
        rc = as__metrics_compute(&s->events, now, &all[i]);
        if (strcmp(s->id, shop) == 0) mine = &all[i];
        ptrs[i] = &all[i];
        i++;
    }
    if (rc == 0) {
        as__metrics_flag(ptrs, (int)i);
        if (mine) *out = *mine;
        else memset(out, 0, sizeof *out);
    }
    as__free(all);
    as__free(ptrs);
    return rc;
}
