/* restore.c -- rebuilding a runtime from its store's rows: orders, cases with their pinned
 * pack versions and deadlines, histories, pack versions, and for a runtime that goes on the
 * outbox entries to deliver again and the idempotency keys; then the metrics events, which
 * follow from the orders and histories. */
#include <stdlib.h>
#include <string.h>

#include "durable.h"
#include "err.h"
#include "journal.h"

typedef struct restore {
    as_runtime *rt;
    as_error *err;
    as_restore_refused_fn refused; /* NULL: the first row refused stops the restore */
    void *refused_ud;
    as_pack *last_pin[AS_LAYER_COUNT]; /* most cases pin what the case before pinned */
    VEC(as_pack *) held; /* versions loaded for pins; released once the cases hold theirs */
    as_deliveries *redeliver; /* NULL: a snapshot */
} restore;

static int v_pack(void *ud, const char *shop, const char *name, const char *version,
                  const char *source, size_t len, int current, const char *sha256,
                  int64_t uploaded_at)
{
    restore *x = ud;
    return as__versions_restore(x->rt, shop, name, version, source, len, current, sha256,
                                uploaded_at, x->err);
}

static int v_reserve(void *ud, size_t orders, size_t cases)
{
    restore *x = ud;
    if (as__strmap_reserve(&x->rt->orders, orders) || as__strmap_reserve(&x->rt->cases, cases))
        return AS_ENOMEM;
    return 0;
}

static int v_order(void *ud, const void *data, size_t len)
{
    restore *x = ud;
    as_order *o;
    int rc = as__journal_read_order(x->rt, data, len, &o, x->err);
    if (rc) return rc;
    if ((o->shop_ref = as__shop_get(x->rt, o->shop, 1)) == NULL ||
        as__strmap_put(&x->rt->orders, o) != 0) {
        as__free(o);
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    return 0;
}

static as_pack *pin(void *ctx, int layer, const char *shop, const char *name, const char *version)
{
    restore *x = ctx;
    as_pack *p = x->last_pin[layer];
    if (p && strcmp(p->name, name) == 0 && strcmp(p->version, version) == 0 &&
        (layer != AS_LAYER_MERCHANT || strcmp(p->owner, shop) == 0))
        return p;
    int fresh;
    p = as__versions_pin(x->rt, layer, shop, name, version, &fresh, x->err);
    if (p && fresh && PUSH(x->held, p)) {
        as__pack_unref(p);
        as__err(x->err, AS_ENOMEM, "out of memory");
        return NULL;
    }
    return x->last_pin[layer] = p;
}

static int v_case(void *ud, const void *data, size_t len, int64_t due)
{
    restore *x = ud;
    as_case *c;
    int rc = as__journal_read_case(x->rt, data, len, pin, x, &c, x->err);
    if (rc) return rc;
    if (as__worklist_reserve(&c->order->shop_ref->cases) != 0 ||
        as__strmap_put(&x->rt->cases, c) != 0 ||
        (due != INT64_MIN && as__sched_add(&x->rt->sched, &c->deadline, due) != 0)) {
        as__strmap_del(&x->rt->cases, c->id);
        as__free(c->v.evidence);
        as__free(c);
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    if (!as__state_terminal(c->v.state))
        for (int l = 0; l < AS_LAYER_COUNT; l++) as__pack_ref(c->rules[l]);
    as__order_add_case(c->order, c);
    as__worklist_add(&c->order->shop_ref->cases, c);
    return 0;
}

static int v_event(void *ud, const char *case_id, uint32_t n, const void *data, size_t len)
{
    restore *x = ud;
    as_case *c = as__case_get(x->rt, case_id);
    if (c == NULL)
        return as__err(x->err, AS_EIO, "its case '%s' is not stored, or could not be restored",
                       case_id);
    return as__journal_read_event(x->rt, c, n, data, len, x->err);
}

static int v_outbox(void *ud, const char *key, const char *kind, const char *case_id,
                    int64_t amount)
{
    restore *x = ud;
    delivery d;
    if (as__delivery_make(&d, key, kind, case_id, amount) != 0 || PUSH(*x->redeliver, d)) {
        as__free(d.key);
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    return 0;
}

static int v_outbox_ack(void *ud, const char *key, const char *url)
{
    restore *x = ud;
    as_strmap *m = &x->rt->dur->acked;
    acked *a = as__strmap_get(m, key);
    size_t n = strlen(key);
    if (a == NULL && (a = as__calloc(1, sizeof *a + n + 1)) != NULL) {
        memcpy(a->key, key, n + 1);
        if (as__strmap_put(m, a) != 0) {
            as__free(a);
            a = NULL;
        }
    }
    char **urls = a ? as__realloc(a->urls, (a->n + 1) * sizeof *urls) : NULL;
    if (urls) a->urls = urls;
    if (urls == NULL || (urls[a->n] = as__strdup(url)) == NULL)
        return as__err(x->err, AS_ENOMEM, "out of memory");
    a->n++;
    return 0;
}

static int v_idem(void *ud, const char *key, int code, const char *message, int64_t at)
{
    restore *x = ud;
    if (as__idem_remember(x->rt, key, code, message, at) != 0) return as__err(x->err, AS_ENOMEM, "out of memory");
    return 0;
}

static int v_refused(void *ud, const char *table, const char *key, const char *why)
{
    restore *x = ud;
    return x->refused(x->refused_ud, table, key, why);
}

static int cmp_event(const void *a, const void *b)
{
    const as_event *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* The metrics events (docs/rulebook.md#metrics) follow from the orders and the histories. */
static void rebuild_metrics(as_runtime *rt)
{
    size_t pos = 0;
    as_order *o;
    while ((o = as__strmap_next(&rt->orders, &pos)) != NULL) {
        as__shop_event(rt, o->shop_ref, AS_EV_ORDER, o->paid_at, o, 0);
        for (as_case *c = o->cases; c; c = c->next_in_order) {
            as_shop *s = o->shop_ref;
            as__shop_event(rt, s, AS_EV_OPEN, c->opened_at, o, 0);
            int responded = 0, ruled = 0;
            for (uint32_t i = 0; i < c->nhist; i++) {
                const as_hist *h = &c->hist[i];
                if (h->role == AS_ROLE_MERCHANT && !responded++)
                    as__shop_event(rt, s, AS_EV_RESPONSE, h->at_ms, o, h->at_ms - c->opened_at);
                if (h->action == AS_ACT_AUTO_AGREE) as__shop_event(rt, s, AS_EV_AUTO_AGREE, h->at_ms, o, 0);
                if (h->flags & AS_HF_DROPPED) as__shop_event(rt, s, AS_EV_RULE_DROPPED, h->at_ms, o, 0);
                if (h->action == AS_ACT_ESCALATE) as__shop_event(rt, s, AS_EV_ESCALATE, h->at_ms, o, 0);
                if (h->action == AS_ACT_RULE_FOR_BUYER) ruled = 1;
                if (h->to == AS_STATE_REFUNDED && h->from != AS_STATE_REFUNDED && i > 0)
                    as__shop_event(rt, s, AS_EV_REFUND, h->at_ms, o, ruled);
                if (as__state_terminal(h->to) && i > 0 && !as__state_terminal(h->from))
                    as__shop_event(rt, s, AS_EV_RESOLVED, h->at_ms, o, h->at_ms - c->opened_at);
            }
        }
    }
    pos = 0;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL)
        if (s->events.len) /* a shop known only by its rules has no events (and no array) */
            qsort(s->events.ev, s->events.len, sizeof *s->events.ev, cmp_event);
}

int as__durable_restore(as_runtime *rt, as_store *store, as_deliveries *redeliver,
                        as_restore_refused_fn refused, void *ud, as_error *err)
{
    restore x = {.rt = rt, .err = err, .refused = refused, .refused_ud = ud, .redeliver = redeliver};
    int live = redeliver != NULL;
    as_store_visitor v = {&x,
                          v_reserve,
                          v_pack,
                          v_order,
                          v_case,
                          v_event,
                          live ? v_outbox : NULL,
                          live ? v_idem : NULL,
                          live ? v_outbox_ack : NULL,
                          refused ? v_refused : NULL};
    int rc = store->engine->load(store, &v, err);
    for (size_t i = 0; i < x.held.len; i++) as__pack_unref(x.held.v[i]);
    as__free(x.held.v);
    if (rc == 0) rebuild_metrics(rt);
    return rc;
}

int as__runtime_restore(as_runtime *rt, as_store *store, as_restore_refused_fn refused,
                        void *ud, as_error *err)
{
    if (rt->dur || rt->orders.len || rt->cases.len)
        return as__err(err, AS_EBAD_REQUEST, "restore into a new runtime without a store");
    return as__durable_restore(rt, store, NULL, refused, ud, err);
}
