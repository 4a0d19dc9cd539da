/* test_shops.c -- the per-shop figures the runtime keeps between asks (core/shops.c): they
 * follow new events, the moving window and the shop's peers, while only the shops that
 * changed are computed again (docs/rulebook.md#metrics). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/runtime.h"
#include "core/timefmt.h"
#include "unit_common.h"

#define NOW (400 * AS_DAY)
#define WINDOW (30 * AS_DAY)

/* Interned-like strings: the figures compare categories by pointer. */
static const char APPAREL[] = "apparel", ELECTRONICS[] = "electronics";

typedef struct world {
    as_runtime *rt;
    as_order *orders[8]; /* owned */
    int norders;
} world;

static void world_new(world *w)
{
    memset(w, 0, sizeof *w);
    as_options o = {0};
    o.start_ms = NOW;
    as_error err;
    w->rt = as_runtime_new(&o, &err);
    ck_assert_msg(w->rt != NULL, "%s", err.msg);
}

static void world_free(world *w)
{
    as_runtime_free(w->rt);
    for (int i = 0; i < w->norders; i++) free(w->orders[i]);
}

/* A one-line order in `cat` by its own buyer (each order's buyer differs). */
static as_order *order(world *w, const char *cat)
{
    static const char *const buyers[] = {"B0", "B1", "B2", "B3", "B4", "B5", "B6", "B7"};
    as_order *o = calloc(1, sizeof *o + sizeof(as_item));
    ck_assert_ptr_nonnull(o);
    o->id = "O";
    o->shop = "S";
    o->buyer = buyers[w->norders];
    o->nitems = 1;
    o->items[0].sku = "SKU";
    o->items[0].category = cat;
    o->items[0].qty = 1;
    o->items[0].price = 100;
    w->orders[w->norders++] = o;
    return o;
}

static as_shop *shop(world *w, const char *id)
{
    as_shop *s = as__shop_get(w->rt, id, 1);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* `orders` orders paid at `t` in `cat`, `disputes` of them refunded after rule_for_buyer. */
static void trade(world *w, as_shop *s, const char *cat, int orders, int disputes, int64_t t)
{
    as_order *o = order(w, cat);
    for (int i = 0; i < orders; i++) as__shop_event(w->rt, s, AS_EV_ORDER, t, o, 0);
    for (int i = 0; i < disputes; i++) as__shop_event(w->rt, s, AS_EV_REFUND, t, o, 1);
}

static as_metrics figures(world *w, const char *id)
{
    as_metrics m;
    ck_assert_int_eq(as__shop_metrics(w->rt, id, &m), 0);
    return m;
}

START_TEST(shops_unknown_shop_is_zeros)
{
    world w;
    world_new(&w);
    as_metrics m = figures(&w, "nobody");
    ck_assert_int_eq(m.orders, 0);
    ck_assert_int_eq(m.flagged, 0);
    ck_assert_ptr_null(m.main_category);
    world_free(&w);
}
END_TEST

/* An event added after an ask shows in the next ask. */
START_TEST(shops_figures_follow_new_events)
{
    world w;
    world_new(&w);
    as_shop *a = shop(&w, "A");
    trade(&w, a, APPAREL, 10, 0, NOW);
    ck_assert_int_eq(figures(&w, "A").orders, 10);
    ck_assert_int_eq(figures(&w, "A").orders, 10); /* asked again: the same */
    trade(&w, a, APPAREL, 5, 2, NOW);
    as_metrics m = figures(&w, "A");
    ck_assert_int_eq(m.orders, 15);
    ck_assert_int_eq(m.dispute_refunds, 2);
    world_free(&w);
}
END_TEST

/* With no new event, the window moving on changes the figures at its edges: an event leaves
 * at t + 30 days, a later-dated one (an order paid in the future) enters at its t. */
START_TEST(shops_figures_follow_the_window)
{
    world w;
    world_new(&w);
    as_shop *a = shop(&w, "A");
    trade(&w, a, APPAREL, 3, 0, NOW);
    trade(&w, a, APPAREL, 2, 0, NOW + AS_DAY);
    ck_assert_int_eq(figures(&w, "A").orders, 3);
    as_runtime_advance(w.rt, NOW + AS_DAY - 1);
    ck_assert_int_eq(figures(&w, "A").orders, 3);
    as_runtime_advance(w.rt, NOW + AS_DAY);
    ck_assert_int_eq(figures(&w, "A").orders, 5);
    as_runtime_advance(w.rt, NOW + WINDOW - 1);
    ck_assert_int_eq(figures(&w, "A").orders, 5);
    as_runtime_advance(w.rt, NOW + WINDOW);
    ck_assert_int_eq(figures(&w, "A").orders, 2);
    as_runtime_advance(w.rt, NOW + AS_DAY + WINDOW);
    as_metrics m = figures(&w, "A");
    ck_assert_int_eq(m.orders, 0);
    ck_assert_ptr_null(m.main_category);
    world_free(&w);
}
END_TEST

/* A shop's flag is judged among the current figures of its peers: a peer that changed after
 * the last ask is computed again even though only the first shop is asked for. */
START_TEST(shops_flag_follows_peers)
{
    world w;
    world_new(&w);
    as_shop *a = shop(&w, "A"), *b = shop(&w, "B"), *c = shop(&w, "C");
    trade(&w, a, APPAREL, 10, 4, NOW);
    trade(&w, b, APPAREL, 10, 0, NOW);
    trade(&w, c, APPAREL, 10, 0, NOW);
    ck_assert_int_eq(figures(&w, "A").flagged, 1);
    trade(&w, b, APPAREL, 0, 1, NOW);
    trade(&w, c, APPAREL, 0, 1, NOW);
    ck_assert_int_eq(figures(&w, "A").flagged, 1); /* exactly 4x the peers' mean */
    trade(&w, b, APPAREL, 0, 1, NOW);
    ck_assert_int_eq(figures(&w, "A").flagged, 0); /* below 4x now */
    ck_assert_int_eq(figures(&w, "B").flagged, 0);
    world_free(&w);
}
END_TEST

/* A shop whose main category changes leaves its old peers: A, alone in apparel, has no peer
 * and is not flagged however many disputes it has. */
START_TEST(shops_peer_group_follows_main_category)
{
    world w;
    world_new(&w);
    as_shop *a = shop(&w, "A"), *b = shop(&w, "B");
    trade(&w, a, APPAREL, 10, 4, NOW);
    trade(&w, b, APPAREL, 2, 0, NOW);
    ck_assert_int_eq(figures(&w, "A").flagged, 1);
    trade(&w, b, ELECTRONICS, 3, 0, NOW); /* b's lines: 3 electronics against 2 apparel */
    ck_assert_ptr_eq(figures(&w, "B").main_category, ELECTRONICS);
    ck_assert_int_eq(figures(&w, "A").flagged, 0);
    trade(&w, b, APPAREL, 2, 0, NOW); /* back: 4 apparel against 3 */
    ck_assert_int_eq(figures(&w, "A").flagged, 1);
    world_free(&w);
}
END_TEST

static Suite *shops_suite(void)
{
    Suite *s = suite_create("shops");
    TCase *t = tcase_create("figures");
    tcase_add_test(t, shops_unknown_shop_is_zeros);
    tcase_add_test(t, shops_figures_follow_new_events);
    tcase_add_test(t, shops_figures_follow_the_window);
    tcase_add_test(t, shops_flag_follows_peers);
    tcase_add_test(t, shops_peer_group_follows_main_category);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return unit_run(shops_suite(), 0);
}
