/* unit_fixtures.h -- hand-built orders and cases for the suites that call rule hooks directly
 * (test_lua_engine.c, test_layers.c), and orders with every field at its limit for the suites
 * of the codec and the journal (test_codec.c, test_journal.c). Header-only: each suite is its
 * own executable. */
#ifndef AS_UNIT_FIXTURES_H
#define AS_UNIT_FIXTURES_H

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/domain.h"
#include "core/limits.h"
#include "core/pack.h"
#include "core/timefmt.h"
#include "lua/lua_engine.h"

#define FX_T0 1772323200000ll /* 2026-03-01T00:00:00Z */

/* One order, O1 of shop S1 for buyer B1, with two apparel lines:
 *   line 0: T1, qty 2 at 19900 fen
 *   line 1: T2, qty 1 at 5000 fen, serial SN-1, custom_made
 * shipped at T0 + 1d, delivered at T0 + 3d; and one case C1 on it: return_refund, no_reason,
 * T1 x 1, in `requested`, opened at T0 + 4d (the hook's `now`). */
typedef struct fx {
    as_order *o;
    as_case *c;
    as_hook_args a;
} fx;

static inline fx fx_new(void)
{
    fx f;
    memset(&f, 0, sizeof f);
    f.o = calloc(1, sizeof *f.o + 2 * sizeof(as_item));
    ck_assert_ptr_nonnull(f.o);
    as_order *o = f.o;
    o->id = "O1";
    o->shop = "S1";
    o->buyer = "B1";
    o->shipping_fee = 600;
    o->paid_at = FX_T0;
    o->shipped_at = FX_T0 + AS_DAY;
    o->delivered_at = FX_T0 + 3 * AS_DAY;
    o->confirmed_at = AS_UNSET;
    o->buyer_credit = 700;
    o->freight_insurance = true;
    o->nitems = 2;
    o->items[0] = (as_item){.sku = "T1", .category = "apparel", .price = 19900, .qty = 2};
    o->items[1] = (as_item){.sku = "T2", .category = "apparel", .serial = "SN-1", .price = 5000,
                            .qty = 1, .custom_made = true};

    f.c = calloc(1, sizeof *f.c + sizeof(as_case_item));
    ck_assert_ptr_nonnull(f.c);
    as_case *c = f.c;
    as__sched_node_init(&c->deadline);
    c->order = o;
    c->id = "C1";
    c->category = "apparel";
    c->type = AS_TYPE_RETURN_REFUND;
    c->nitems = 1;
    c->items[0] = (as_case_item){.line = 0, .qty = 1};
    c->opened_at = FX_T0 + 4 * AS_DAY;
    c->ended_at = AS_UNSET;
    c->repair_since = AS_UNSET;
    c->v.state = AS_STATE_REQUESTED;
    c->v.reason = AS_REASON_NO_REASON;
    c->v.remedy = AS_REMEDY_NONE;
    c->v.requested_amount = AS_UNSET;
    c->v.bad_permille = -1;
    c->v.refund_amount = 19900;
    c->v.version = 1;

    f.a.order = o;
    f.a.c = c;
    f.a.v = &c->v;
    f.a.now_ms = FX_T0 + 4 * AS_DAY;
    return f;
}

/* Gives the case evidence (an owned block, freed by fx_free). */
static inline void fx_evidence(fx *f, const char *const *strs, int n)
{
    free(f->c->v.evidence);
    f->c->v.evidence = as__evidence_copy(strs, n);
    ck_assert(n == 0 || f->c->v.evidence != NULL);
}

static inline void fx_free(fx *f)
{
    if (f->c) free(f->c->v.evidence);
    free(f->c);
    free(f->o);
    f->c = NULL;
    f->o = NULL;
}

/* Loads a pack from source, asserting the outcome: want_rc 0 gives the pack (one reference,
 * the caller's), otherwise NULL and `err` filled. */
static inline as_pack *fx_load(const char *src, const as_pack_limits *lim, int want_rc,
                               as_error *err)
{
    as_pack *p = (as_pack *)0x1;
    as_error scratch;
    if (err == NULL) err = &scratch;
    memset(err, 0, sizeof *err);
    int rc = as__lua_pack_load(src, strlen(src), "=test", lim, &p, err);
    ck_assert_msg(rc == want_rc, "loading pack gave %d (%s), want %d: %s", rc, err->msg, want_rc,
                  src);
    if (rc == 0) {
        ck_assert_ptr_nonnull(p);
        ck_assert_int_eq(p->refs, 1);
    } else {
        ck_assert_ptr_null(p);
        ck_assert_int_eq(err->code, want_rc);
    }
    return p;
}

/* Calls hook `h` of `p` on the fixture. */
static inline int fx_call(as_pack *p, as_hook h, const fx *f, as_answer *ans, as_error *err)
{
    memset(ans, 0, sizeof *ans);
    memset(err, 0, sizeof *err);
    return p->engine->call(p, h, &f->a, ans, err);
}

/* ------------------------------------------------------------------------------------------
 * Values at their limits (docs/design.md#limits)
 * ---------------------------------------------------------------------------------------- */

/* An identifier of exactly AS_MAX_ID bytes that uses every allowed byte class, starting with
 * `prefix` (so that two differ). */
static inline const char *fx_max_id(char buf[AS_MAX_ID + 1], const char *prefix)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-";
    size_t n = strlen(prefix);
    memcpy(buf, prefix, n);
    for (size_t i = n; i < AS_MAX_ID; i++) buf[i] = alphabet[(i - n) % (sizeof alphabet - 1)];
    buf[AS_MAX_ID] = '\0';
    return buf;
}

/* A text of exactly AS_MAX_TEXT bytes: quotes, a backslash, <>&, then 3-byte UTF-8, with
 * `tag` (a short ASCII word) at its start so that two differ. */
static inline const char *fx_max_text(char buf[AS_MAX_TEXT + 1], const char *tag)
{
    int n = snprintf(buf, AS_MAX_TEXT + 1, "%s\"\\<>&' ", tag);
    while (n + 3 <= AS_MAX_TEXT) {
        memcpy(buf + n, "\xe8\xb4\xa8", 3); /* U+8D28 */
        n += 3;
    }
    while (n < AS_MAX_TEXT) buf[n++] = 'x';
    buf[n] = '\0';
    return buf;
}

/* The body of an order (the keys of POST /v1/orders) with every field at a bound, the
 * caller's reference. `which` 0: 100 lines, ids of 64 bytes, line 0 at the largest price with
 * a serial of 256 bytes and every flag, the other lines at qty 10000 and price 0 with the
 * flags in every combination, times at 0 and at the end of year 9999, buyer_credit 1000,
 * freight insurance. `which` 1: one line, the largest shipping fee, buyer_credit 0, no
 * serial, shipped and delivered not yet. Every line is in `apparel` (a bundled pack). */
static inline json_t *fx_order_at_limits(int which)
{
    char id[AS_MAX_ID + 1], shop[AS_MAX_ID + 1], buyer[AS_MAX_ID + 1], sku[AS_MAX_ID + 1];
    char serial[AS_MAX_TEXT + 1];
    json_t *items = json_array();
    json_t *o;
    if (which == 0) {
        json_array_append_new(
            items, json_pack("{s:s, s:s, s:I, s:I, s:s, s:b, s:b, s:b}", "sku",
                             fx_max_id(sku, "K"), "category", "apparel", "qty", (json_int_t)1,
                             "price", (json_int_t)AS_MAX_MONEY, "serial",
                             fx_max_text(serial, "SN"), "live", 1, "custom_made", 1,
                             "no_reason_excluded", 1));
        for (int i = 1; i < AS_MAX_ORDER_LINES; i++) {
            char s[16];
            snprintf(s, sizeof s, "L%d", i);
            json_array_append_new(
                items, json_pack("{s:s, s:s, s:I, s:I, s:b, s:b, s:b}", "sku", s, "category",
                                 "apparel", "qty", (json_int_t)AS_MAX_QTY, "price",
                                 (json_int_t)0, "live", i & 1, "custom_made", i >> 1 & 1,
                                 "no_reason_excluded", i >> 2 & 1));
        }
        o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:b, s:o}", "id",
                      fx_max_id(id, "O"), "shop", fx_max_id(shop, "S"), "buyer",
                      fx_max_id(buyer, "B"), "shipping_fee", (json_int_t)0, "paid_at",
                      (json_int_t)0, "shipped_at", (json_int_t)AS_MAX_TIME, "delivered_at",
                      (json_int_t)AS_MAX_TIME, "confirmed_at", (json_int_t)AS_MAX_TIME,
                      "buyer_credit", 1000, "freight_insurance", 1, "items", items);
    } else {
        json_array_append_new(items, json_pack("{s:s, s:s, s:I, s:I, s:b, s:b, s:b}", "sku",
                                               "K1", "category", "apparel", "qty", (json_int_t)1,
                                               "price", (json_int_t)0, "live", 0, "custom_made",
                                               0, "no_reason_excluded", 0));
        o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:b, s:o}", "id", "O-fee", "shop", "S1",
                      "buyer", "B1", "shipping_fee", (json_int_t)AS_MAX_MONEY, "paid_at",
                      (json_int_t)AS_MAX_TIME, "buyer_credit", 0, "freight_insurance", 0,
                      "items", items);
    }
    ck_assert_ptr_nonnull(o);
    return o;
}

#endif
