/* durable.c -- acknowledged means on disk (DESIGN.md §5, STYLE.md 5).
 *
 * Commands run on the loop thread against the in-memory state and mark what they changed.
 * A uv_check handle closes the loop turn: the changed orders and cases (and the turn's history
 * entries, outbox entries, idempotency keys) become one batch. A batch goes through two
 * stages on libuv pool threads: `commit` writes it as one transaction, then (for an engine
 * with a `sync`) the sync makes it durable. The stages overlap: batch N+1's transaction is
 * written while batch N's fsync runs, and the loop meanwhile takes commands into batch N+2.
 * When a batch is durable its commands are answered and its outbox entries delivered.
 * At start the store's rows rebuild the runtime: orders, cases, histories, pinned pack
 * versions, pending deadlines (those that fell due while down fire at once, in due order),
 * undelivered outbox entries and idempotency keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "err.h"
#include "journal.h"
#include "runtime.h"
#include "timefmt.h"

typedef struct done {
    as_done_cb cb;
    void *ud;
    int code;
    char *msg; /* owned */
} done;

typedef struct delivery {
    char *key, *kind, *case_id; /* owned */
    int64_t amount;
} delivery;

#define VEC(T)                                                                             \
    struct {                                                                               \
        T *v;                                                                              \
        size_t len, cap;                                                                   \
    }

static int grow(void **v, size_t *cap, size_t len, size_t size)
{
    if (len < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *nv = realloc(*v, ncap * size);
    if (nv == NULL) return AS_ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}
#define PUSH(vec, x)                                                                       \
    (grow((void **)&(vec).v, &(vec).cap, (vec).len, sizeof *(vec).v) ? AS_ENOMEM           \
                                                                       : ((vec).v[(vec).len++] = (x), 0))

/* One batch: its records, who waits for it, what it delivers. */
typedef struct batch {
    as_wbuf rec;
    VEC(done) waiting;
    VEC(delivery) out;
    uint64_t started; /* uv_hrtime() when it was handed to the writer */
} batch;

typedef struct idem {
    int code;
    char *msg; /* owned */
    char key[];
} idem;

struct as_durable {
    as_runtime *rt;
    as_store *store;
    uv_loop_t *loop;
    uv_check_t *check; /* owned; freed by its close callback */
    uv_idle_t *kick;   /* owned; active while a batch waits to be handed to the writer */
    uv_work_t write_work, sync_work;
    /* next: this turn's changes; wr: being written (writing) or written and waiting for the
     * syncer (written); sy: being synced (syncing) */
    batch next, wr, sy;
    int writing, written, syncing;
    as_error write_err, sync_err;
    int failed;      /* a commit or sync failed: memory is ahead of the disk, writes are refused */
    int sync_failed; /* a sync failed: no later sync proves anything (the kernel may have
                      * dropped the pages it could not write), so later batches fail too */
    VEC(as_case *) dirty_cases;
    VEC(as_order *) dirty_orders;
    as_strmap idem;
};

static const char *idem_key(const void *p)
{
    return ((const idem *)p)->key;
}

/* ==========================================================================================
 * Marking, batching
 * ======================================================================================== */

static void kick_cb(uv_idle_t *h)
{
    (void)h;
}

/* Work is waiting for the end of the turn: keep the loop alive and its poll from sleeping
 * until the check phase has handed it to the writer. */
static void kick(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    if (d && d->kick && !d->writing && !d->written) uv_idle_start(d->kick, kick_cb);
}

void as__durable_touch_case(as_runtime *rt, as_case *c)
{
    kick(rt);
    if (PUSH(rt->dur->dirty_cases, c) == 0) c->dirty = 1;
}

void as__durable_touch_order(as_runtime *rt, as_order *o)
{
    kick(rt);
    if (PUSH(rt->dur->dirty_orders, o) == 0) o->dirty = 1;
}

void as__durable_outbox(as_runtime *rt, const char *key, const char *kind, const char *case_id,
                        int64_t amount)
{
    batch *b = &rt->dur->next;
    kick(rt);
    as__wbuf_u8(&b->rec, AS_REC_OUTBOX);
    as__wbuf_str(&b->rec, key);
    as__wbuf_str(&b->rec, kind);
    as__wbuf_str(&b->rec, case_id);
    as__wbuf_i64(&b->rec, amount);
    delivery d = {strdup(key), strdup(kind), strdup(case_id), amount};
    if (!d.key || !d.kind || !d.case_id || PUSH(b->out, d)) {
        free(d.key), free(d.kind), free(d.case_id);
        b->rec.oom = 1;
    }
}

/* Journals what the turn changed into the next batch. */
static void collect(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    for (size_t i = 0; i < d->dirty_orders.len; i++) {
        as__journal_order(&d->next.rec, d->dirty_orders.v[i]);
        d->dirty_orders.v[i]->dirty = 0;
    }
    for (size_t i = 0; i < d->dirty_cases.len; i++) {
        as_case *c = d->dirty_cases.v[i];
        as__journal_case(&d->next.rec, c);
        c->saved_hist = c->nhist;
        c->dirty = 0;
    }
    d->dirty_orders.len = d->dirty_cases.len = 0;
}

static void answer_all(batch *b, int code, const char *why)
{
    for (size_t i = 0; i < b->waiting.len; i++) {
        done *w = &b->waiting.v[i];
        int c = code ? code : w->code;
        if (w->cb) w->cb(w->ud, c, code ? why : (w->msg ? w->msg : ""));
        free(w->msg);
    }
    b->waiting.len = 0;
}

static void deliver_all(as_runtime *rt, batch *b)
{
    for (size_t i = 0; i < b->out.len; i++) {
        delivery *o = &b->out.v[i];
        if (rt->outbox.cb) rt->outbox.cb(rt->outbox.data, o->kind, o->case_id, o->amount, o->key);
        free(o->key), free(o->kind), free(o->case_id);
    }
    b->out.len = 0;
}

static void write_cb(uv_work_t *w)
{
    struct as_durable *d = w->data;
    memset(&d->write_err, 0, sizeof d->write_err);
    if (d->wr.rec.oom)
        as__err(&d->write_err, AS_ENOMEM, "out of memory while journaling the batch");
    else if (d->wr.rec.len)
        d->store->engine->commit(d->store, d->wr.rec.p, d->wr.rec.len, &d->write_err);
}

static void sync_cb(uv_work_t *w)
{
    struct as_durable *d = w->data;
    memset(&d->sync_err, 0, sizeof d->sync_err);
    d->store->engine->sync(d->store, &d->sync_err);
}

/* Answers the commands of a batch that is durable, or that failed with `e`. */
static void finish(as_runtime *rt, batch *b, as_error *e, int status)
{
    struct as_durable *d = rt->dur;
    uint64_t took = uv_hrtime() - b->started;
    rt->stats.commits++;
    rt->stats.commit_ns_sum += took;
    if (took > rt->stats.commit_ns_max) rt->stats.commit_ns_max = took;
    if (status != 0 && e->code == 0) as__err(e, AS_EIO, "the commit was cancelled");
    if (e->code) {
        if (!d->failed)
            fprintf(stderr, "aftersale: commit failed, refusing writes from now on: %s\n", e->msg);
        d->failed = 1;
        answer_all(b, AS_EIO, e->msg);
        for (size_t i = 0; i < b->out.len; i++)
            free(b->out.v[i].key), free(b->out.v[i].kind), free(b->out.v[i].case_id);
        b->out.len = 0;
    } else {
        answer_all(b, 0, NULL);
        deliver_all(rt, b);
    }
    as__wbuf_reset(&b->rec);
}

static void pump(as_runtime *rt);

static void after_write(uv_work_t *w, int status)
{
    as_runtime *rt = ((struct as_durable *)w->data)->rt;
    struct as_durable *d = rt->dur;
    d->writing = 0;
    if (status != 0 || d->write_err.code || d->store->engine->sync == NULL)
        finish(rt, &d->wr, &d->write_err, status);
    else
        d->written = 1;
    pump(rt);
}

static void after_sync(uv_work_t *w, int status)
{
    as_runtime *rt = ((struct as_durable *)w->data)->rt;
    struct as_durable *d = rt->dur;
    d->syncing = 0;
    if (d->sync_err.code) d->sync_failed = 1;
    else if (d->sync_failed)
        as__err(&d->sync_err, AS_EIO, "an earlier sync of the store failed");
    finish(rt, &d->sy, &d->sync_err, status);
    pump(rt);
}

/* Runs `work` on the pool, or here when the pool refuses it rather than lose the batch. */
static void queue(struct as_durable *d, uv_work_t *w, uv_work_cb work, uv_after_work_cb after)
{
    w->data = d;
    if (uv_queue_work(d->loop, w, work, after) != 0) {
        work(w);
        after(w, 0);
    }
}

static void swap(batch *a, batch *b)
{
    batch t = *a;
    *a = *b;
    *b = t;
}

/* Moves the batches along: a written one to the syncer, this turn's to the writer. */
static void pump(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    collect(rt);
    if (d->kick) uv_idle_stop(d->kick);
    if (d->written && !d->syncing) {
        swap(&d->wr, &d->sy);
        d->written = 0;
        d->syncing = 1;
        queue(d, &d->sync_work, sync_cb, after_sync);
    }
    if (d->writing || d->written ||
        (d->next.rec.len == 0 && d->next.waiting.len == 0 && !d->next.rec.oom))
        return;
    swap(&d->next, &d->wr);
    d->writing = 1;
    d->wr.started = uv_hrtime();
    queue(d, &d->write_work, write_cb, after_write);
}

static void check_cb(uv_check_t *h)
{
    pump(h->data);
}

/* Queues `cb` to be answered once what this turn changed is durable. */
static void wait_durable(as_runtime *rt, as_done_cb cb, void *ud, int code, const char *msg)
{
    done w = {cb, ud, code, code && msg ? strdup(msg) : NULL};
    kick(rt);
    if (PUSH(rt->dur->next.waiting, w) != 0) {
        free(w.msg);
        if (cb) cb(ud, AS_ENOMEM, "out of memory");
    }
}

/* ==========================================================================================
 * Requests (docs/pipe.md)
 * ======================================================================================== */

static int run_request(as_runtime *rt, json_t *req, as_error *err)
{
    const char *op = json_string_value(json_object_get(req, "op"));
    if (op == NULL) return as__err(err, AS_EBAD_REQUEST, "a request needs an 'op'");
    if (strcmp(op, "order.create") == 0) {
        as__fire_due(rt);
        return as__order_create(rt, json_object_get(req, "order"), err);
    }
    if (strncmp(op, "order.", 6) == 0) {
        const char *id = json_string_value(json_object_get(req, "order"));
        if (id == NULL) return as__err(err, AS_EBAD_REQUEST, "'%s' needs an 'order' id", op);
        return as_order_event(rt, id, op + 6, err);
    }
    const char *who = json_string_value(json_object_get(req, "as"));
    as_principal p;
    if ((strcmp(op, "case.open") == 0 || strcmp(op, "case.act") == 0) &&
        as__principal_parse(who, &p) != 0)
        return as__err(err, AS_EFORBIDDEN, "unknown principal '%s'", who ? who : "");
    if (strcmp(op, "case.open") == 0) {
        as_cmd cmd;
        as__cmd_init(&cmd, p, AS_ACT_OPEN);
        as__cmd_parse_open(&cmd, json_object_get(req, "case"));
        return as__case_open(rt, &cmd, err);
    }
    if (strcmp(op, "case.act") == 0) {
        as_cmd cmd;
        as__cmd_init(&cmd, p, -1);
        cmd.case_id = json_string_value(json_object_get(req, "case"));
        as__cmd_parse_act(&cmd, json_string_value(json_object_get(req, "action")),
                          json_object_get(req, "payload"));
        json_t *ver = json_object_get(req, "version");
        if (ver && !json_is_integer(ver) && cmd.shape_err == 0) {
            cmd.shape_err = AS_EBAD_REQUEST;
            snprintf(cmd.shape_msg, sizeof cmd.shape_msg, "'version' must be an integer");
        }
        if (ver && json_is_integer(ver)) cmd.version = json_integer_value(ver);
        return as__case_act(rt, &cmd, err);
    }
    if (strcmp(op, "rules.load") == 0) {
        const char *shop = json_string_value(json_object_get(req, "shop"));
        const char *src = json_string_value(json_object_get(req, "source"));
        if (shop == NULL || src == NULL)
            return as__err(err, AS_EBAD_REQUEST, "'rules.load' needs 'shop' and 'source'");
        return as_runtime_load_merchant_source(rt, shop, src, err);
    }
    if (strcmp(op, "outbox.ack") == 0) {
        const char *key = json_string_value(json_object_get(req, "key"));
        if (key == NULL) return as__err(err, AS_EBAD_REQUEST, "'outbox.ack' needs a 'key'");
        if (rt->dur) {
            as__wbuf_u8(&rt->dur->next.rec, AS_REC_OUTBOX_ACK);
            as__wbuf_str(&rt->dur->next.rec, key);
        }
        return 0;
    }
    return as__err(err, AS_EBAD_REQUEST, "unknown op '%s'", op);
}

static int remember(as_runtime *rt, const char *key, int code, const char *msg)
{
    size_t n = strlen(key);
    idem *e = malloc(sizeof *e + n + 1);
    if (e == NULL || (e->msg = strdup(msg)) == NULL) {
        free(e);
        return AS_ENOMEM;
    }
    memcpy(e->key, key, n + 1);
    e->code = code;
    if (as__strmap_put(&rt->dur->idem, e) != 0) {
        free(e->msg);
        free(e);
        return AS_ENOMEM;
    }
    return 0;
}

int as_runtime_submit(as_runtime *rt, const char *request_json, as_done_cb cb, void *ud)
{
    json_error_t je;
    json_t *req = json_loads(request_json ? request_json : "", JSON_REJECT_DUPLICATES, &je);
    if (req == NULL || !json_is_object(req)) {
        as_error err = {0};
        int rc = as__err(&err, AS_EBAD_REQUEST, "malformed JSON: %s", req ? "not an object" : je.text);
        json_decref(req);
        if (cb) cb(ud, rc, err.msg);
        return rc;
    }
    int rc = as__submit_json(rt, req, cb, ud);
    json_decref(req);
    return rc;
}

int as__submit_json(as_runtime *rt, json_t *req, as_done_cb cb, void *ud)
{
    as_error err = {0};
    int rc;
    const char *key = json_string_value(json_object_get(req, "key"));
    if (rt->dur == NULL) {
        rc = run_request(rt, req, &err);
        as__rearm(rt);
        if (cb) cb(ud, rc, err.msg);
        return rc;
    }
    if (rt->dur->failed) {
        rc = as__err(&err, AS_EIO, "the store failed earlier; no write is accepted");
        if (cb) cb(ud, rc, err.msg);
        return rc;
    }
    idem *seen = key ? as__strmap_get(&rt->dur->idem, key) : NULL;
    if (seen) {
        rc = seen->code;
        wait_durable(rt, cb, ud, rc, seen->msg); /* the first answer, once it is durable */
        return rc;
    }
    rc = run_request(rt, req, &err);
    if (key && remember(rt, key, rc, err.msg) == 0) {
        as__wbuf_u8(&rt->dur->next.rec, AS_REC_IDEM);
        as__wbuf_str(&rt->dur->next.rec, key);
        as__wbuf_u32(&rt->dur->next.rec, (uint32_t)rc);
        as__wbuf_str(&rt->dur->next.rec, err.msg);
    }
    wait_durable(rt, cb, ud, rc, err.msg);
    as__rearm(rt);
    return rc;
}

int as__merchant_install(as_runtime *rt, const char *shop, const char *src, size_t len,
                         const char *chunk, as_error *err)
{
    as_pack *p;
    int rc = as__lua_pack_load(src, len, chunk, &rt->limits, &p, err);
    if (rc) return rc;
    if (p->categories[0] != NULL) {
        as__pack_unref(p);
        return as__err(err, AS_EBAD_REQUEST, "%s: a merchant pack names no categories", chunk + 1);
    }
    as_shop *s = as__shop_get(rt, shop, 1);
    if (s == NULL) {
        as__pack_unref(p);
        return as__err(err, AS_ENOMEM, "out of memory");
    }
    p->owner = s->id;
    if (as__runtime_keep(rt, p, err)) return AS_ENOMEM;
    as__pack_unref(s->merchant);
    s->merchant = p;
    if (rt->dur) {
        as_wbuf *b = &rt->dur->next.rec;
        kick(rt);
        as__wbuf_u8(b, AS_REC_PACK);
        as__wbuf_str(b, shop);
        as__wbuf_str(b, p->name);
        as__wbuf_str(b, p->version);
        as__wbuf_bytes(b, &(uint32_t){(uint32_t)len}, 4);
        as__wbuf_bytes(b, src, len);
        as__wbuf_u8(b, 1);
    }
    return 0;
}

int as_runtime_load_merchant_source(as_runtime *rt, const char *shop, const char *source,
                                    as_error *err)
{
    char chunk[300];
    snprintf(chunk, sizeof chunk, "=merchant rules of %s", shop);
    return as__merchant_install(rt, shop, source, strlen(source), chunk, err);
}

int as_runtime_idle(const as_runtime *rt)
{
    const struct as_durable *d = rt->dur;
    return d == NULL || (!d->writing && !d->written && !d->syncing && d->next.waiting.len == 0 && d->next.rec.len == 0 &&
                         d->dirty_cases.len == 0 && d->dirty_orders.len == 0);
}

/* ==========================================================================================
 * Recovery
 * ======================================================================================== */

typedef struct restore {
    as_runtime *rt;
    as_error *err;
    as_pack *last_pin[AS_LAYER_COUNT]; /* most cases pin what the case before pinned */
    VEC(as_pack *) held; /* versions loaded for pins; released once the cases hold theirs */
    VEC(delivery) redeliver;
} restore;

static int v_pack(void *ud, const char *shop, const char *name, const char *version,
                  const char *source, int current)
{
    restore *x = ud;
    as_pack *p;
    char chunk[300];
    snprintf(chunk, sizeof chunk, "=merchant rules of %s", shop);
    int rc = as__lua_pack_load(source, strlen(source), chunk, &x->rt->limits, &p, x->err);
    if (rc) return rc;
    as_shop *s = as__shop_get(x->rt, shop, 1);
    if (s == NULL) {
        as__pack_unref(p);
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    p->owner = s->id;
    if (as__runtime_keep(x->rt, p, x->err)) return AS_ENOMEM;
    if (current) {
        as__pack_unref(s->merchant);
        s->merchant = p;
    } else if (PUSH(x->held, p)) {
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    (void)name;
    return 0;
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
        free(o);
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    return 0;
}

/* The loaded version a case pinned: the exact name@version, else (a bundled pack upgraded
 * since) the version in force for that layer. */
static as_pack *find_pin(as_runtime *rt, int layer, const char *shop, const char *name,
                         const char *version)
{
    for (int i = rt->ninstalled - 1; i >= 0; i--) {
        as_pack *p = rt->installed[i];
        if (strcmp(p->name, name) == 0 && strcmp(p->version, version) == 0 && as__pack_loaded(p) &&
            (layer != AS_LAYER_MERCHANT || (p->owner && strcmp(p->owner, shop) == 0)))
            return p;
    }
    if (layer == AS_LAYER_PLATFORM) return rt->platform;
    if (layer == AS_LAYER_CATEGORY) {
        for (int i = 0; i < rt->ncats; i++)
            if (strcmp(rt->cats[i].pack->name, name) == 0) return rt->cats[i].pack;
    }
    return NULL;
}

static as_pack *pin(void *ctx, int layer, const char *shop, const char *name, const char *version)
{
    restore *x = ctx;
    as_pack *p = x->last_pin[layer];
    if (p && strcmp(p->name, name) == 0 && strcmp(p->version, version) == 0 &&
        (layer != AS_LAYER_MERCHANT || strcmp(p->owner, shop) == 0))
        return p;
    return x->last_pin[layer] = find_pin(x->rt, layer, shop, name, version);
}

static int v_case(void *ud, const void *data, size_t len, int64_t due)
{
    restore *x = ud;
    as_case *c;
    int rc = as__journal_read_case(x->rt, data, len, pin, x, &c, x->err);
    if (rc) return rc;
    if (as__strmap_put(&x->rt->cases, c) != 0 ||
        (due != INT64_MIN && as__sched_add(&x->rt->sched, &c->deadline, due) != 0)) {
        as__strmap_del(&x->rt->cases, c->id);
        free(c->v.evidence);
        free(c);
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    if (!as__state_terminal(c->v.state))
        for (int l = 0; l < AS_LAYER_COUNT; l++) as__pack_ref(c->rules[l]);
    as__order_add_case(c->order, c);
    return 0;
}

static int v_event(void *ud, const char *case_id, uint32_t n, const void *data, size_t len)
{
    restore *x = ud;
    as_case *c = as__case_get(x->rt, case_id);
    if (c == NULL) return as__err(x->err, AS_EIO, "store: history of unknown case '%s'", case_id);
    return as__journal_read_event(x->rt, c, n, data, len, x->err);
}

static int v_outbox(void *ud, const char *key, const char *kind, const char *case_id,
                    int64_t amount)
{
    restore *x = ud;
    delivery d = {strdup(key), strdup(kind), strdup(case_id), amount};
    if (!d.key || !d.kind || !d.case_id || PUSH(x->redeliver, d)) {
        free(d.key), free(d.kind), free(d.case_id);
        return as__err(x->err, AS_ENOMEM, "out of memory");
    }
    return 0;
}

static int v_idem(void *ud, const char *key, int code, const char *message)
{
    restore *x = ud;
    if (remember(x->rt, key, code, message) != 0) return as__err(x->err, AS_ENOMEM, "out of memory");
    return 0;
}

static int cmp_event(const void *a, const void *b)
{
    const as_event *x = a, *y = b;
    return x->t < y->t ? -1 : x->t > y->t;
}

/* The metrics events (RULES.md §5) follow from the orders and the histories. */
static void rebuild_metrics(as_runtime *rt)
{
    size_t pos = 0;
    as_order *o;
    while ((o = as__strmap_next(&rt->orders, &pos)) != NULL) {
        as__events_add(&o->shop_ref->events, AS_EV_ORDER, o->paid_at, o, 0);
        for (as_case *c = o->cases; c; c = c->next_in_order) {
            as_shop_events *e = &o->shop_ref->events;
            as__events_add(e, AS_EV_OPEN, c->opened_at, o, 0);
            int responded = 0, ruled = 0;
            for (uint32_t i = 0; i < c->nhist; i++) {
                const as_hist *h = &c->hist[i];
                if (h->role == AS_ROLE_MERCHANT && !responded++)
                    as__events_add(e, AS_EV_RESPONSE, h->at_ms, o, h->at_ms - c->opened_at);
                if (h->action == AS_ACT_AUTO_AGREE) as__events_add(e, AS_EV_AUTO_AGREE, h->at_ms, o, 0);
                if (h->flags & AS_HF_DROPPED) as__events_add(e, AS_EV_RULE_DROPPED, h->at_ms, o, 0);
                if (h->action == AS_ACT_ESCALATE) as__events_add(e, AS_EV_ESCALATE, h->at_ms, o, 0);
                if (h->action == AS_ACT_RULE_FOR_BUYER) ruled = 1;
                if (h->to == AS_STATE_REFUNDED && h->from != AS_STATE_REFUNDED && i > 0)
                    as__events_add(e, AS_EV_REFUND, h->at_ms, o, ruled);
                if (as__state_terminal(h->to) && i > 0 && !as__state_terminal(h->from))
                    as__events_add(e, AS_EV_RESOLVED, h->at_ms, o, h->at_ms - c->opened_at);
            }
        }
    }
    pos = 0;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL)
        qsort(s->events.ev, s->events.len, sizeof *s->events.ev, cmp_event);
}

/* A refused attach touches nothing: not even the file. */
static int attach_refused(const as_runtime *rt, as_error *err)
{
    if (rt->timer == NULL)
        return as__err(err, AS_EBAD_REQUEST, "a durable runtime needs a real clock (a loop)");
    if (rt->dur) return as__err(err, AS_EBAD_REQUEST, "the runtime already has a store");
    if (rt->orders.len || rt->cases.len)
        return as__err(err, AS_EBAD_REQUEST, "attach the store before the first command");
    return 0;
}

int as_runtime_attach_store(as_runtime *rt, const char *db_path, as_error *err)
{
    as_store *s;
    int rc = attach_refused(rt, err);
    if (rc) return rc;
    rc = as__store_sqlite_open(db_path, &s, err);
    if (rc) return rc;
    return as__durable_attach(rt, s, err);
}

int as__durable_attach(as_runtime *rt, as_store *store, as_error *err)
{
    int refused = attach_refused(rt, err);
    struct as_durable *d = refused ? NULL : calloc(1, sizeof *d);
    if (d == NULL) {
        store->engine->close(store); /* the store is ours from the call on */
        return refused ? refused : as__err(err, AS_ENOMEM, "out of memory");
    }
    as__strmap_init(&d->idem, idem_key);
    d->rt = rt;
    d->store = store;
    d->loop = rt->timer->loop;
    int rc;
    rt->dur = d;
    restore x = {.rt = rt, .err = err};
    as_store_visitor v = {&x, v_reserve, v_pack, v_order, v_case, v_event, v_outbox, v_idem};
    rc = d->store->engine->load(d->store, &v, err);
    for (size_t i = 0; i < x.held.len; i++) as__pack_unref(x.held.v[i]);
    free(x.held.v);
    if (rc == 0) {
        rebuild_metrics(rt);
        if ((d->check = malloc(sizeof *d->check)) == NULL) {
            rc = as__err(err, AS_ENOMEM, "out of memory");
        } else {
            uv_check_init(d->loop, d->check);
            d->check->data = rt;
            uv_check_start(d->check, check_cb);
            uv_unref((uv_handle_t *)d->check);
            if ((d->kick = malloc(sizeof *d->kick)) != NULL) uv_idle_init(d->loop, d->kick);
        }
    }
    if (rc == 0) {
        for (size_t i = 0; i < x.redeliver.len; i++)
            PUSH(d->wr.out, x.redeliver.v[i]);
        deliver_all(rt, &d->wr);
        as__rearm(rt); /* deadlines that fell due while down fire at once, in due order */
    } else {
        for (size_t i = 0; i < x.redeliver.len; i++)
            free(x.redeliver.v[i].key), free(x.redeliver.v[i].kind), free(x.redeliver.v[i].case_id);
    }
    free(x.redeliver.v);
    return rc;
}

static void free_batch(batch *b)
{
    answer_all(b, AS_EIO, "the runtime closed before this was durable");
    for (size_t i = 0; i < b->out.len; i++)
        free(b->out.v[i].key), free(b->out.v[i].kind), free(b->out.v[i].case_id);
    free(b->waiting.v);
    free(b->out.v);
    as__wbuf_free(&b->rec);
}

static void close_free(uv_handle_t *h)
{
    free(h);
}

void as__durable_free(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    if (d == NULL) return;
    /* the writer may hold the store: let the commit in flight land first */
    while (d->writing || d->written || d->syncing) uv_run(d->loop, UV_RUN_ONCE);
    if (d->check) uv_close((uv_handle_t *)d->check, close_free);
    if (d->kick) uv_close((uv_handle_t *)d->kick, close_free);
    free_batch(&d->next);
    free_batch(&d->wr);
    free_batch(&d->sy);
    free(d->dirty_cases.v);
    free(d->dirty_orders.v);
    size_t pos = 0;
    idem *e;
    while ((e = as__strmap_next(&d->idem, &pos)) != NULL) {
        free(e->msg);
        free(e);
    }
    as__strmap_free(&d->idem);
    d->store->engine->close(d->store);
    free(d);
    rt->dur = NULL;
}
