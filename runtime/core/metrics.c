/* metrics.c -- see metrics.h. */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "aftersale/error.h"

int as__events_reserve(as_shop_events *e, uint32_t n)
{
    if (e->len + n <= e->cap) return 0;
    uint32_t cap = e->cap ? e->cap : 8;
    while (cap < e->len + n) cap += cap / 2; /* 1.5x: a shop may hold millions */
    as_event *ev = as__realloc(e->ev, cap * sizeof *ev);
    if (ev == NULL) return AS_ENOMEM;
    e->ev = ev;
    e->cap = cap;
    return 0;
}

int as__events_add(as_shop_events *e, as_event_kind k, int64_t t, const as_order *o, int64_t val)
{
    if (as__events_reserve(e, 1) != 0) return AS_ENOMEM;
    if (k == AS_EV_RESPONSE || k == AS_EV_RESOLVED) val /= 1000;
    if (val > INT32_MAX) val = INT32_MAX;
    e->ev[e->len++] = (as_event){t, o, (int32_t)val, (uint8_t)k};
    return 0;
}

void as__events_free(as_shop_events *e)
{
    as__free(e->ev);
    memset(e, 0, sizeof *e);
}

void as__events_prune(as_shop_events *e, int64_t now_ms)
{
    uint32_t i = 0;
    while (i < e->len && e->ev[i].t <= now_ms - AS_METRICS_WINDOW) i++;
    if (i == 0) return;
    memmove(e->ev, e->ev + i, (e->len - i) * sizeof *e->ev);
    e->len -= i;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t distinct(const void **p, size_t n)
{
    if (n == 0) return 0;
    qsort(p, n, sizeof *p, cmp_ptr);
    int64_t d = 1;
    for (size_t i = 1; i < n; i++) d += p[i] != p[i - 1];
    return d;
}

static double ratio(int64_t num, int64_t den)
{
    return den ? (double)num / (double)den : 0.0;
}

typedef struct cat_count {
    const char *cat;
    int64_t n;
} cat_count;

/* The category of most order lines in the window; ties go to the first alphabetically. */
static const char *main_category(const as_event *ev, const as_event *end)
{
    cat_count counts[32];
    int nc = 0;
    for (; ev < end; ev++) {
        if (ev->kind != AS_EV_ORDER) continue;
        for (int i = 0; i < ev->order->nitems; i++) {
            const char *c = ev->order->items[i].category;
            int j = 0;
            while (j < nc && counts[j].cat != c) j++;
            if (j == nc) {
                if (nc == 32) continue;
                counts[nc++] = (cat_count){c, 0};
            }
            counts[j].n++;
        }
    }
    const char *best = NULL;
    int64_t bn = 0;
    for (int j = 0; j < nc; j++)
        if (counts[j].n > bn || (counts[j].n == bn && strcmp(counts[j].cat, best) < 0)) {
            best = counts[j].cat;
            bn = counts[j].n;
        }
    return best;
}

int as__metrics_compute(const as_shop_events *e, int64_t now_ms, as_metrics *m)
{
    memset(m, 0, sizeof *m);
    uint32_t lo = 0;
    while (lo < e->len && e->ev[lo].t <= now_ms - AS_METRICS_WINDOW) lo++;
    uint32_t hi = lo;
    while (hi < e->len && e->ev[hi].t <= now_ms) hi++;
    size_t n = hi - lo;
    const void **buyers = as__malloc((n + 1) * sizeof *buyers);
    const void **case_buyers = as__malloc((n + 1) * sizeof *case_buyers);
    const void **refunded = as__malloc((n + 1) * sizeof *refunded);
    const void **escalated = as__malloc((n + 1) * sizeof *escalated);
    int64_t *resp = as__malloc((n + 1) * sizeof *resp);
    if (!buyers || !case_buyers || !refunded || !escalated || !resp) {
        as__free(buyers), as__free(case_buyers), as__free(refunded), as__free(escalated), as__free(resp);
        return AS_ENOMEM;
    }
    size_t nb = 0, ncb = 0, nr = 0, nesc = 0, nresp = 0, nres = 0;
    int64_t res_total = 0;
    for (uint32_t i = lo; i < hi; i++) {
        const as_event *ev = &e->ev[i];
        switch ((as_event_kind)ev->kind) {
        case AS_EV_ORDER: m->orders++, buyers[nb++] = ev->order->buyer; break;
        case AS_EV_OPEN: m->cases_opened++, case_buyers[ncb++] = ev->order->buyer; break;
        case AS_EV_REFUND:
            m->refunds++;
            m->dispute_refunds += ev->val != 0;
            refunded[nr++] = ev->order;
            break;
        case AS_EV_ESCALATE: escalated[nesc++] = ev->order; break;
        case AS_EV_AUTO_AGREE: m->auto_agreed++; break;
        case AS_EV_RESPONSE: resp[nresp++] = ev->val * 1000ll; break;
        case AS_EV_RESOLVED: nres++, res_total += ev->val * 1000ll; break;
        case AS_EV_RULE_DROPPED: m->rule_drops++; break;
        }
    }
    m->buyers = distinct(buyers, nb);
    m->buyers_with_case = distinct(case_buyers, ncb);
    m->orders_refunded = distinct(refunded, nr);
    m->orders_escalated = distinct(escalated, nesc);
    if (nresp) {
        qsort(resp, nresp, sizeof *resp, cmp_i64);
        m->response_median_ms = resp[(nresp - 1) / 2];
        m->response_p90_ms = resp[(nresp * 9 + 9) / 10 - 1];
    }
    m->resolution_mean_ms = nres ? res_total / (int64_t)nres : 0;
    m->after_sales_rate = ratio(m->buyers_with_case, m->buyers);
    m->refund_rate = ratio(m->orders_refunded, m->orders);
    m->dispute_refund_rate = ratio(m->dispute_refunds, m->orders);
    m->intervention_rate = ratio(m->orders_escalated, m->orders);
    m->main_category = main_category(e->ev + lo, e->ev + hi);
    as__free(buyers), as__free(case_buyers), as__free(refunded), as__free(escalated), as__free(resp);
    return 0;
}

int64_t as__metrics_next_change(const as_shop_events *e, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    for (uint32_t i = 0; i < e->len; i++) {
        int64_t t = e->ev[i].t;
        if (t > now_ms) next = t < next ? t : next; /* enters */
        else if (t > now_ms - AS_METRICS_WINDOW && t + AS_METRICS_WINDOW < next)
            next = t + AS_METRICS_WINDOW; /* leaves */
    }
    return next;
}

int as__metrics_flagged(const as_metrics *m, const as_metrics *const *peers, int n)
{
    if (m->dispute_refunds < 1 || m->main_category == NULL || n == 0) return 0;
    int64_t count_sum = 0;
    double rate_sum = 0;
    for (int j = 0; j < n; j++) {
        count_sum += peers[j]->dispute_refunds;
        rate_sum += peers[j]->dispute_refund_rate;
    }
    /* the rates are ratios of small integers; a relative epsilon keeps an exact 4x
     * (0.6 * 2 against 4 * 0.3) from failing on binary rounding */
    return m->dispute_refunds * n >= 4 * count_sum &&
           m->dispute_refund_rate * n >= 4 * rate_sum * (1 - 1e-12);
}
