/* unit_fixtures.h -- hand-built orders and cases for the suites that call rule hooks directly
 * (test_lua_engine.c, test_layers.c). Header-only: each suite is its own executable. */
#ifndef AS_UNIT_FIXTURES_H
#define AS_UNIT_FIXTURES_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/domain.h"
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

#endif
