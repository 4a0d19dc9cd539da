/* test_metrics.c -- per-shop platform metrics over a rolling 30-day window (docs/rulebook.md#metrics,
 * core/metrics.h). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "core/timefmt.h"
#include "unit_common.h"

#define NOW (400 * AS_DAY)
#define WINDOW (30 * AS_DAY)

/* Interned strings: the runtime compares buyers and categories by pointer. */
static const char BUYER_A[] = "B-A", BUYER_B[] = "B-B", BUYER_C[] = "B-C";
static const char APPAREL[] = "apparel", ELECTRONICS[] = "electronics", FRESH[] = "fresh_food";

/* An order with one line per category given (NULL-terminated), allocated like the runtime's. */
static as_order *order_new(const char *buyer, const char *const *cats)
{
    int n = 0;
    while (cats[n]) n++;
    as_order *o = calloc(1, sizeof *o + (size_t)n * sizeof(as_item) + 8);
    ck_assert_ptr_nonnull(o);
    o->id = "O";
    o->shop = "S";
    o->buyer = buyer;
    o->nitems = (uint16_t)n;
    for (int i = 0; i < n; i++) {
        o->items[i].sku = "SKU";
        o->items[i].category = cats[i];
        o->items[i].qty = 1;
        o->items[i].price = 100;
    }
    return o;
}

static as_order *order1(const char *buyer, const char *cat)
{
    const char *cats[] = {cat, NULL};
    return order_new(buyer, cats);
}

static void add(as_shop_events *e, as_event_kind k, int64_t t, const as_order *o, int64_t val)
{
    ck_assert_int_eq(as__events_add(e, k, t, o, val), 0);
}

/* ------------------------------------------------------------------------------------------
 * The window
 * ---------------------------------------------------------------------------------------- */

/* docs/rulebook.md#metrics: "The window holds the events at t with now − 30 days < t ≤ now". */
START_TEST(metrics_window_edges)
{
    as_order *o = order1(BUYER_A, APPAREL);
    as_shop_events e = {0};
    add(&e, AS_EV_ORDER, NOW - WINDOW - 1, o, 0); /* out */
    add(&e, AS_EV_ORDER, NOW - WINDOW, o, 0);     /* out: the edge is exclusive */
    add(&e, AS_EV_ORDER, NOW - WINDOW + 1, o, 0); /* in */
    add(&e, AS_EV_ORDER, NOW - AS_DAY, o, 0);     /* in */
    add(&e, AS_EV_ORDER, NOW, o, 0);              /* in: now is inclusive */
    add(&e, AS_EV_ORDER, NOW + 1, o, 0);          /* the future is not in it */
    as_metrics m;
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_int_eq(m.orders, 3);
    /* one ms later the oldest in-window event sits on the edge and drops out, while the
     * one at now + 1 comes in */
    ck_assert_int_eq(as__metrics_compute(&e, NOW + 1, &m), 0);
    ck_assert_int_eq(m.orders, 3);
    /* when now - 30d reaches the event of a day ago, it is out */
    ck_assert_int_eq(as__metrics_compute(&e, NOW - AS_DAY + WINDOW, &m), 0);
    ck_assert_int_eq(m.orders, 2);
    ck_assert_int_eq(as__metrics_compute(&e, NOW - AS_DAY + WINDOW - 1, &m), 0);
    ck_assert_int_eq(m.orders, 3);
    as__events_free(&e);
    free(o);
}
END_TEST

/* docs/rulebook.md#metrics: "each count is over its own events in the window". */
START_TEST(metrics_each_count_over_its_own_events)
{
    as_order *o1 = order1(BUYER_A, APPAREL), *o2 = order1(BUYER_B, APPAREL);
    as_shop_events e = {0};
    add(&e, AS_EV_ORDER, NOW - 40 * AS_DAY, o1, 0); /* out of the window */
    add(&e, AS_EV_OPEN, NOW - 40 * AS_DAY, o1, 0);
    add(&e, AS_EV_ORDER, NOW - 10 * AS_DAY, o2, 0);
    add(&e, AS_EV_OPEN, NOW - 5 * AS_DAY, o1, 0);
    add(&e, AS_EV_OPEN, NOW - 5 * AS_DAY, o2, 0);
    add(&e, AS_EV_REFUND, NOW - 4 * AS_DAY, o1, 0);
    add(&e, AS_EV_REFUND, NOW - 3 * AS_DAY, o2, 1);
    add(&e, AS_EV_AUTO_AGREE, NOW - 3 * AS_DAY, o2, 0);
    add(&e, AS_EV_AUTO_AGREE, NOW - 2 * AS_DAY, o1, 0);
    add(&e, AS_EV_RULE_DROPPED, NOW - 2 * AS_DAY, o1, 0);
    as_metrics m;
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_int_eq(m.orders, 1);
    ck_assert_int_eq(m.cases_opened, 2);
    ck_assert_int_eq(m.refunds, 2);
    ck_assert_int_eq(m.dispute_refunds, 1);
    ck_assert_int_eq(m.auto_agreed, 2);
    ck_assert_int_eq(m.rule_drops, 1);
    /* so a rate can exceed 1 when orders left the window before their refunds */
    ck_assert_int_eq(m.orders_refunded, 2);
    ck_assert(m.refund_rate == 2.0);
    ck_assert(m.dispute_refund_rate == 1.0);
    as__events_free(&e);
    free(o1);
    free(o2);
}
END_TEST

/* docs/rulebook.md#metrics: after-sales rate = distinct buyers with a case opened / distinct buyers with an
 * order; refund rate = orders with a completed refund / orders paid. */
START_TEST(metrics_distinct_buyers_and_orders)
{
    as_order *a1 = order1(BUYER_A, APPAREL), *a2 = order1(BUYER_A, APPAREL);
    as_order *b1 = order1(BUYER_B, APPAREL), *c1 = order1(BUYER_C, APPAREL);
    as_shop_events e = {0};
    int64_t t = NOW - 20 * AS_DAY;
    add(&e, AS_EV_ORDER, t, a1, 0);
    add(&e, AS_EV_ORDER, t, a2, 0);
    add(&e, AS_EV_ORDER, t, b1, 0);
    add(&e, AS_EV_ORDER, t, c1, 0);
    add(&e, AS_EV_OPEN, t + 1, a1, 0);
    add(&e, AS_EV_OPEN, t + 2, a2, 0); /* buyer A again */
    add(&e, AS_EV_OPEN, t + 3, a1, 0); /* a second case on a1 */
    add(&e, AS_EV_REFUND, t + 4, a1, 0);
    add(&e, AS_EV_REFUND, t + 5, a1, 0); /* two refunds of one order */
    add(&e, AS_EV_ESCALATE, t + 6, b1, 0);
    add(&e, AS_EV_ESCALATE, t + 7, b1, 0);
    add(&e, AS_EV_ESCALATE, t + 8, c1, 0);
    as_metrics m;
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_int_eq(m.orders, 4);
    ck_assert_int_eq(m.buyers, 3);
    ck_assert_int_eq(m.cases_opened, 3);
    ck_assert_int_eq(m.buyers_with_case, 1);
    ck_assert(m.after_sales_rate == 1.0 / 3.0);
    ck_assert_int_eq(m.refunds, 2);
    ck_assert_int_eq(m.orders_refunded, 1);
    ck_assert(m.refund_rate == 0.25);
    ck_assert_int_eq(m.orders_escalated, 2);
    ck_assert(m.intervention_rate == 0.5);
    ck_assert_int_eq(m.dispute_refunds, 0);
    ck_assert(m.dispute_refund_rate == 0.0);
    as__events_free(&e);
    free(a1), free(a2), free(b1), free(c1);
}
END_TEST

/* docs/rulebook.md#metrics: "a rate whose denominator is 0 is 0". */
START_TEST(metrics_zero_denominators)
{
    as_order *o = order1(BUYER_A, APPAREL);
    as_shop_events e = {0};
    as_metrics m;
    /* nothing at all */
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_int_eq(m.orders, 0);
    ck_assert(m.after_sales_rate == 0.0 && m.refund_rate == 0.0);
    ck_assert(m.dispute_refund_rate == 0.0 && m.intervention_rate == 0.0);
    ck_assert_ptr_null(m.main_category);
    ck_assert_int_eq(m.response_median_ms, 0);
    ck_assert_int_eq(m.response_p90_ms, 0);
    ck_assert_int_eq(m.resolution_mean_ms, 0);
    /* cases, refunds and escalations, but their orders are out of the window */
    add(&e, AS_EV_ORDER, NOW - 31 * AS_DAY, o, 0);
    add(&e, AS_EV_OPEN, NOW - 2 * AS_DAY, o, 0);
    add(&e, AS_EV_ESCALATE, NOW - 2 * AS_DAY, o, 0);
    add(&e, AS_EV_REFUND, NOW - AS_DAY, o, 1);
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_int_eq(m.orders, 0);
    ck_assert_int_eq(m.buyers, 0);
    ck_assert_int_eq(m.cases_opened, 1);
    ck_assert_int_eq(m.refunds, 1);
    ck_assert_int_eq(m.dispute_refunds, 1);
    ck_assert(m.after_sales_rate == 0.0);
    ck_assert(m.refund_rate == 0.0);
    ck_assert(m.dispute_refund_rate == 0.0);
    ck_assert(m.intervention_rate == 0.0);
    ck_assert_ptr_null(m.main_category); /* no order line in the window */
    as__events_free(&e);
    free(o);
}
END_TEST

/* docs/rulebook.md#metrics: merchant response time (open → first merchant action): median, p90; mean time
 * to resolution. With 1..10 s every common definition gives median 5 s and p90 9 s. (Whole
 * seconds: metrics.h keeps durations at that resolution.) */
START_TEST(metrics_response_median_and_p90)
{
    as_order *o = order1(BUYER_A, APPAREL);
    as_shop_events e = {0};
    static const int64_t vals[] = {7000, 3000, 10000, 1000, 9000, 2000, 8000, 4000, 6000, 5000};
    for (int i = 0; i < 10; i++) add(&e, AS_EV_RESPONSE, NOW - 100 + i, o, vals[i]);
    add(&e, AS_EV_RESOLVED, NOW - 10, o, 1000);
    add(&e, AS_EV_RESOLVED, NOW - 9, o, 2000);
    add(&e, AS_EV_RESOLVED, NOW - 8, o, 4000);
    as_metrics m;
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_int_eq(m.response_median_ms, 5000);
    ck_assert_int_eq(m.response_p90_ms, 9000);
    ck_assert_int_eq(m.resolution_mean_ms, 7000 / 3);
    as__events_free(&e);

    /* odd count: the middle one; p90 of five is the largest (nearest rank) */
    as_shop_events f = {0};
    static const int64_t five[] = {50000, 10000, 40000, 20000, 30000};
    for (int i = 0; i < 5; i++) add(&f, AS_EV_RESPONSE, NOW - 10 + i, o, five[i]);
    ck_assert_int_eq(as__metrics_compute(&f, NOW, &m), 0);
    ck_assert_int_eq(m.response_median_ms, 30000);
    ck_assert_int_eq(m.response_p90_ms, 50000);
    as__events_free(&f);

    /* one value is its own median and p90 */
    as_shop_events g = {0};
    add(&g, AS_EV_RESPONSE, NOW, o, 42000);
    ck_assert_int_eq(as__metrics_compute(&g, NOW, &m), 0);
    ck_assert_int_eq(m.response_median_ms, 42000);
    ck_assert_int_eq(m.response_p90_ms, 42000);
    as__events_free(&g);
    free(o);
}
END_TEST

/* docs/rulebook.md#metrics: "a shop's main category is the category of most of its order lines in the
 * window (ties: the first alphabetically)". */
START_TEST(metrics_main_category_ties_alphabetical)
{
    const char *ef[] = {FRESH, ELECTRONICS, NULL};
    const char *fa[] = {FRESH, APPAREL, NULL};
    as_order *o1 = order_new(BUYER_A, ef), *o2 = order_new(BUYER_A, fa);
    as_order *e1 = order1(BUYER_B, ELECTRONICS), *a1 = order1(BUYER_B, APPAREL);
    as_metrics m;

    /* fresh_food 2 lines, electronics 1, apparel 1: most lines win over the alphabet */
    as_shop_events e = {0};
    add(&e, AS_EV_ORDER, NOW - 3, o1, 0);
    add(&e, AS_EV_ORDER, NOW - 2, o2, 0);
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_ptr_eq(m.main_category, FRESH);
    /* electronics 2, fresh_food 2, apparel 1: the tie goes to electronics, seen second */
    add(&e, AS_EV_ORDER, NOW - 1, e1, 0);
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_ptr_eq(m.main_category, ELECTRONICS);
    /* apparel 2 too: a three-way tie goes to apparel */
    add(&e, AS_EV_ORDER, NOW, a1, 0);
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &m), 0);
    ck_assert_ptr_eq(m.main_category, APPAREL);
    as__events_free(&e);

    /* lines outside the window do not count */
    as_shop_events f = {0};
    add(&f, AS_EV_ORDER, NOW - 40 * AS_DAY, a1, 0);
    add(&f, AS_EV_ORDER, NOW - 40 * AS_DAY, a1, 0);
    add(&f, AS_EV_ORDER, NOW - 1, e1, 0);
    ck_assert_int_eq(as__metrics_compute(&f, NOW, &m), 0);
    ck_assert_ptr_eq(m.main_category, ELECTRONICS);
    as__events_free(&f);
    free(o1), free(o2), free(e1), free(a1);
}
END_TEST

/* as__events_prune drops only what can never be in a window again, and the figures stay. */
START_TEST(metrics_prune_keeps_the_window)
{
    as_order *o = order1(BUYER_A, APPAREL);
    as_shop_events e = {0};
    for (int i = 0; i < 100; i++) add(&e, AS_EV_ORDER, NOW - 60 * AS_DAY + i * AS_DAY, o, 0);
    as_metrics before, after;
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &before), 0);
    as__events_prune(&e, NOW);
    ck_assert_int_eq(as__metrics_compute(&e, NOW, &after), 0);
    ck_assert_int_eq(before.orders, 30); /* days -29 .. 0 */
    ck_assert_int_eq(after.orders, 30);
    ck_assert_uint_eq(e.len, 100 - 31); /* day -30 (on the edge) and older are gone */
    ck_assert_int_eq(e.ev[0].t, NOW - 29 * AS_DAY);
    as__events_free(&e);
    ck_assert_ptr_null(e.ev);
    ck_assert_uint_eq(e.len, 0);
    free(o);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Flagging (docs/rulebook.md#metrics: "flagged when both its dispute refund count and rate are ≥ 4× the
 * mean of its peers' (and it has at least one peer)")
 * ---------------------------------------------------------------------------------------- */

static as_metrics figures(const char *cat, int64_t disputes, int64_t orders)
{
    as_metrics m;
    memset(&m, 0, sizeof m);
    m.main_category = cat;
    m.orders = orders;
    m.dispute_refunds = disputes;
    m.dispute_refund_rate = orders ? (double)disputes / (double)orders : 0.0;
    m.flagged = -1; /* must be overwritten */
    return m;
}

/* Flags each of `n` shops among the others of its main category, as shops.c does. */
static void flag(as_metrics *ms, int n)
{
    int flagged[8];
    for (int i = 0; i < n; i++) {
        const as_metrics *peers[8];
        int np = 0;
        for (int j = 0; j < n; j++)
            if (j != i && ms[j].main_category == ms[i].main_category) peers[np++] = &ms[j];
        flagged[i] = as__metrics_flagged(&ms[i], peers, np);
    }
    for (int i = 0; i < n; i++) ms[i].flagged = flagged[i];
}

START_TEST(metrics_flagged_at_exactly_4x)
{
    as_metrics ms[2] = {figures(APPAREL, 4, 10), figures(APPAREL, 1, 10)};
    flag(ms, 2);
    ck_assert_int_eq(ms[0].flagged, 1);
    ck_assert_int_eq(ms[1].flagged, 0);
}
END_TEST

START_TEST(metrics_not_flagged_below_4x)
{
    /* count just below 4x (rate well above) */
    as_metrics a[2] = {figures(APPAREL, 3, 1), figures(APPAREL, 1, 10)};
    flag(a, 2);
    ck_assert_int_eq(a[0].flagged, 0);
    /* count at 4x, rate below */
    as_metrics b[2] = {figures(APPAREL, 4, 11), figures(APPAREL, 1, 10)};
    flag(b, 2);
    ck_assert_int_eq(b[0].flagged, 0);
    /* both well above: flagged */
    as_metrics c[2] = {figures(APPAREL, 9, 10), figures(APPAREL, 1, 10)};
    flag(c, 2);
    ck_assert_int_eq(c[0].flagged, 1);
}
END_TEST

/* The mean of two peers: (1/5 + 1/10) / 2 = 0.15 and (1 + 1) / 2 = 1, so 6 dispute refunds
 * over 10 orders (rate 0.6) are exactly 4x on both and must be flagged. (Floating point
 * comparison of 0.6 * 2 against 4 * (0.2 + 0.1) gets this wrong.) */
START_TEST(metrics_flagged_at_exactly_4x_of_two_peers_mean)
{
    as_metrics ms[3] = {figures(APPAREL, 6, 10), figures(APPAREL, 1, 5), figures(APPAREL, 1, 10)};
    flag(ms, 3);
    ck_assert_msg(ms[0].flagged == 1, "6/10 against peers 1/5 and 1/10 is exactly 4x the mean");
    as_metrics below[3] = {figures(APPAREL, 5, 10), figures(APPAREL, 1, 5),
                           figures(APPAREL, 1, 10)};
    flag(below, 3);
    ck_assert_int_eq(below[0].flagged, 0);
}
END_TEST

/* "(and it has at least one peer)"; peers are the shops with the same main category. */
START_TEST(metrics_no_flag_without_peers)
{
    as_metrics alone[1] = {figures(APPAREL, 50, 10)};
    flag(alone, 1);
    ck_assert_int_eq(alone[0].flagged, 0);
    as_metrics other_cat[2] = {figures(APPAREL, 50, 10), figures(ELECTRONICS, 0, 10)};
    flag(other_cat, 2);
    ck_assert_int_eq(other_cat[0].flagged, 0);
    ck_assert_int_eq(other_cat[1].flagged, 0);
    /* a shop with no order lines has no main category and no peers */
    as_metrics nocat[2] = {figures(NULL, 5, 0), figures(NULL, 0, 0)};
    flag(nocat, 2);
    ck_assert_int_eq(nocat[0].flagged, 0);
}
END_TEST

/* "A shop with at least one dispute refund": peers at zero make any dispute refund 4x their
 * mean, but zero dispute refunds are never flagged. */
START_TEST(metrics_flag_needs_a_dispute_refund)
{
    as_metrics ms[3] = {figures(APPAREL, 1, 100), figures(APPAREL, 0, 10), figures(APPAREL, 0, 0)};
    flag(ms, 3);
    ck_assert_int_eq(ms[0].flagged, 1);
    ck_assert_int_eq(ms[1].flagged, 0);
    ck_assert_int_eq(ms[2].flagged, 0);
}
END_TEST

/* The whole path: events of three shops → compute → flag. */
START_TEST(metrics_compute_then_flag)
{
    as_order *o = order1(BUYER_A, APPAREL);
    as_shop_events e[3] = {{0}, {0}, {0}};
    int disputes[3] = {4, 1, 1};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 10; i++) add(&e[s], AS_EV_ORDER, NOW - 20 * AS_DAY + i, o, 0);
        for (int i = 0; i < disputes[s]; i++) add(&e[s], AS_EV_REFUND, NOW - AS_DAY + i, o, 1);
        add(&e[s], AS_EV_REFUND, NOW - 10, o, 0); /* not a dispute refund */
    }
    as_metrics m[3];
    for (int s = 0; s < 3; s++) ck_assert_int_eq(as__metrics_compute(&e[s], NOW, &m[s]), 0);
    ck_assert_int_eq(m[0].dispute_refunds, 4);
    ck_assert_int_eq(m[0].refunds, 5);
    ck_assert(m[0].dispute_refund_rate == 0.4);
    flag(m, 3);
    ck_assert_int_eq(m[0].flagged, 1);
    ck_assert_int_eq(m[1].flagged, 0);
    ck_assert_int_eq(m[2].flagged, 0);
    for (int s = 0; s < 3; s++) as__events_free(&e[s]);
    free(o);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *w = tcase_create("window");
    tcase_set_timeout(w, 10);
    tcase_add_test(w, metrics_window_edges);
    tcase_add_test(w, metrics_each_count_over_its_own_events);
    tcase_add_test(w, metrics_distinct_buyers_and_orders);
    tcase_add_test(w, metrics_zero_denominators);
    tcase_add_test(w, metrics_response_median_and_p90);
    tcase_add_test(w, metrics_main_category_ties_alphabetical);
    tcase_add_test(w, metrics_prune_keeps_the_window);
    suite_add_tcase(s, w);

    TCase *f = tcase_create("flag");
    tcase_set_timeout(f, 10);
    tcase_add_test(f, metrics_flagged_at_exactly_4x);
    tcase_add_test(f, metrics_not_flagged_below_4x);
    tcase_add_test(f, metrics_flagged_at_exactly_4x_of_two_peers_mean);
    tcase_add_test(f, metrics_no_flag_without_peers);
    tcase_add_test(f, metrics_flag_needs_a_dispute_refund);
    tcase_add_test(f, metrics_compute_then_flag);
    suite_add_tcase(s, f);
    return s;
}

int main(void)
{
    return unit_run(metrics_suite(), 1);
}
