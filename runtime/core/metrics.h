/* metrics.h -- per-shop platform metrics of docs/rulebook.md#metrics over a rolling 30-day window
 * of event time. Events are appended as they happen (time never goes back within a runtime) and the
 * figures are computed when asked. */
#ifndef AS_METRICS_H
#define AS_METRICS_H

#include <stdint.h>

#include "domain.h"

#define AS_METRICS_WINDOW (30 * 24 * 3600 * 1000ll)

typedef enum {
    AS_EV_ORDER,         /* an order paid */
    AS_EV_OPEN,          /* a case opened (val: unused) */
    AS_EV_REFUND,        /* a refund completed (val: 1 after rule_for_buyer) */
    AS_EV_ESCALATE,      /* a case escalated */
    AS_EV_AUTO_AGREE,    /* agreed by a merchant_response timeout */
    AS_EV_RESPONSE,      /* the merchant's first action (val: ms since open) */
    AS_EV_RESOLVED,      /* a case ended (val: ms since open) */
    /* (val is given in ms and kept in seconds, rounded down) */
    AS_EV_RULE_DROPPED,  /* a merchant answer dropped (failure or out of bounds) */
} as_event_kind;

/* 24 bytes: a million open cases carry two each. Durations are kept in whole seconds. */
typedef struct as_event {
    int64_t t;
    const as_order *order;
    int32_t val;
    uint8_t kind;
} as_event;

typedef struct as_shop_events {
    as_event *ev; /* owned */
    uint32_t len, cap;
} as_shop_events;

typedef struct as_metrics {
    int64_t orders, cases_opened, refunds, dispute_refunds, auto_agreed, rule_drops;
    int64_t buyers, buyers_with_case, orders_refunded, orders_escalated;
    int64_t response_median_ms, response_p90_ms, resolution_mean_ms;
    /* Ratios of the counts above (not money); a zero denominator gives 0. */
    double after_sales_rate, refund_rate, dispute_refund_rate, intervention_rate;
    const char *main_category; /* interned, or NULL */
    int flagged;
} as_metrics;

int as__events_add(as_shop_events *e, as_event_kind k, int64_t t, const as_order *o, int64_t val);
/* Room for `n` more events, so that as many as__events_add cannot fail; AS_ENOMEM. */
int as__events_reserve(as_shop_events *e, uint32_t n);
void as__events_free(as_shop_events *e);
/* Drops events that can never be in a window again (t <= now - window). */
void as__events_prune(as_shop_events *e, int64_t now_ms);
/* Computes the shop's own figures (everything but `flagged`). Returns 0 or AS_ENOMEM. */
int as__metrics_compute(const as_shop_events *e, int64_t now_ms, as_metrics *m);
/* The first instant after `now_ms` at which the window holds other events than at now_ms (an
 * event leaves it, or a later-dated one enters); INT64_MAX when none will. The figures
 * as__metrics_compute gave at now_ms hold until then unless events are added. */
int64_t as__metrics_next_change(const as_shop_events *e, int64_t now_ms);
/* Whether the shop with figures `m` is flagged among the `n` shops `peers` of its main
 * category (docs/rulebook.md#metrics); `peers` excludes it. */
int as__metrics_flagged(const as_metrics *m, const as_metrics *const *peers, int n);

#endif
