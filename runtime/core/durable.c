/* durable.c -- acknowledged means on disk (docs/design.md#storage-and-durability, STYLE.md 5).
 *
 * Commands run on the loop thread against the in-memory state and mark what they changed.
 * The step that closes the loop turn (turn.c) ends here: the changed orders and cases (and
 * the turn's history entries, outbox entries, idempotency keys) become one batch, handed to two threads of the
 * store's own: the writer commits each batch as one transaction, the syncer (for an engine
 * with a `sync`) makes everything written so far durable, one fsync for as many batches as
 * were written while the last one ran. The stages overlap: batch N+1's transaction is written
 * while batch N's fsync runs, and the loop meanwhile takes commands into batch N+2. When a
 * batch is durable the syncer wakes the loop, which answers its commands and delivers its
 * outbox entries. The threads hand batches to each other directly, without a trip through
 * the loop, which keeps the time from a command to its answer short.
 * At start the store's rows rebuild the runtime: orders, cases, histories, pinned pack
 * versions, pending deadlines (those that fell due while down fire at once, in due order),
 * undelivered outbox entries and idempotency keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable.h"
#include "err.h"
#include "journal.h"
#include "limits.h"
#include "runtime.h"
#include "timefmt.h"

int as__delivery_make(delivery *d, const char *key, const char *kind, const char *case_id,
                      int64_t amount)
{
    size_t k = strlen(key) + 1, n = strlen(kind) + 1, c = strlen(case_id) + 1;
    if ((d->key = as__malloc(k + n + c)) == NULL) return AS_ENOMEM;
    d->kind = memcpy(d->key + k, kind, n);
    d->case_id = memcpy(d->key + k + n, case_id, c);
    memcpy(d->key, key, k);
    d->amount = amount;
    return 0;
}

static const char *acked_key(const void *p)
{
    return ((const acked *)p)->key;
}

static void acked_free(acked *a)
{
    if (a == NULL) return;
    for (size_t i = 0; i < a->n; i++) as__free(a->urls[i]);
    as__free(a->urls);
    as__free(a);
}

int as__outbox_acked(const as_runtime *rt, const char *key, const char *url)
{
    const acked *a = rt->dur ? as__strmap_get(&rt->dur->acked, key) : NULL;
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(a->urls[i], url) == 0) return 1;
    return 0;
}

/* ==========================================================================================
 * Marking, batching
 * ======================================================================================== */

int as__durable_reserve(as_runtime *rt, size_t bytes)
{
    struct as_durable *d = rt->dur;
    if (d == NULL) return 0;
    if (as__wbuf_reserve(&d->next.rec, d->owed + bytes) || ROOM(d->dirty_cases) ||
        ROOM(d->dirty_orders) || ROOM(d->next.waiting) ||
        (d->spare == NULL && (d->spare = as__calloc(1, sizeof *d->spare)) == NULL))
        return AS_ENOMEM;
    d->owed += bytes;
    return 0;
}

/* A change that was not reserved and could not be marked fails its batch: it is never
 * answered durable without its rows (the batch's commands are answered with an error). */
void as__durable_touch_case(as_runtime *rt, as_case *c)
{
    as__turn_wake(rt);
    if (PUSH(rt->dur->dirty_cases, c) == 0) c->dirty = 1;
    else rt->dur->next.rec.oom = 1;
}

void as__durable_touch_order(as_runtime *rt, as_order *o)
{
    as__turn_wake(rt);
    if (PUSH(rt->dur->dirty_orders, o) == 0) o->dirty = 1;
    else rt->dur->next.rec.oom = 1;
}

/* Appends the record `put` writes (called once to measure it, once to write it) after making
 * room for it on top of what collect() is owed: a failure leaves the batch as it was. */
int as__durable_put(struct as_durable *d, void (*put)(as_wbuf *b, const void *arg),
                      const void *arg)
{
    as_wbuf m = {.measure = 1};
    put(&m, arg);
    if (as__wbuf_reserve(&d->next.rec, d->owed + m.len) != 0) return AS_ENOMEM;
    put(&d->next.rec, arg);
    return 0;
}

static void put_outbox(as_wbuf *b, const void *arg)
{
    const delivery *o = arg;
    as__wbuf_u8(b, AS_REC_OUTBOX);
    as__wbuf_str(b, o->key);
    as__wbuf_str(b, o->kind);
    as__wbuf_str(b, o->case_id);
    as__wbuf_i64(b, o->amount);
}

int as__durable_outbox(as_runtime *rt, const char *key, const char *kind, const char *case_id,
                       int64_t amount)
{
    struct as_durable *d = rt->dur;
    delivery o;
    if (as__delivery_make(&o, key, kind, case_id, amount) != 0 || ROOM(d->next.out) ||
        as__durable_put(d, put_outbox, &o) != 0) {
        as__free(o.key);
        return AS_ENOMEM;
    }
    PUSH(d->next.out, o);
    as__turn_wake(rt);
    return 0;
}

/* Journals what the turn changed into the next batch, in the room the changes reserved. */
static void collect(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    as__idem_prune(rt);
    for (size_t i = 0; i < d->dirty_orders.len; i++) {
        as__journal_order(&d->next.rec, d->dirty_orders.v[i]);
        d->dirty_orders.v[i]->dirty = 0;
    }
    for (size_t i = 0; i < d->dirty_cases.len; i++) {
        as_case *c = d->dirty_cases.v[i];
        as__journal_case(&d->next.rec, c, &d->cmds);
        c->cmd_head = 0;
        c->seq = (uint32_t)(d->handed + 1); /* the seq hand_over gives this batch */
        c->saved_hist = c->nhist;
        c->dirty = 0;
    }
    d->dirty_orders.len = d->dirty_cases.len = 0;
    as__cmd_stage_reset(&d->cmds);
    d->owed = 0;
}

static void answer_all(batch *b, int code, const char *why)
{
    for (size_t i = 0; i < b->waiting.len; i++) {
        done *w = &b->waiting.v[i];
        int c = code ? code : w->code;
        if (w->cb) w->cb(w->ud, c, code ? why : w->msg);
    }
    b->waiting.len = 0;
}

static void deliver_all(as_runtime *rt, batch *b)
{
    for (size_t i = 0; i < b->out.len; i++) {
        delivery *o = &b->out.v[i];
        if (rt->outbox.cb) rt->outbox.cb(rt->outbox.data, o->kind, o->case_id, o->amount, o->key);
        as__free(o->key);
    }
    b->out.len = 0;
}

/* Answers the commands of a batch that is durable (e NULL) or that failed with `e`. */
static void finish(as_runtime *rt, batch *b, const as_error *e)
{
    struct as_durable *d = rt->dur;
    uint64_t took = uv_hrtime() - b->started;
    rt->stats.commits++;
    rt->stats.commit_ns_sum += took;
    if (took > rt->stats.commit_ns_max) rt->stats.commit_ns_max = took;
    if (e) {
        if (!d->failed) {
            fprintf(stderr, "aftersale: commit failed, refusing writes from now on: %s\n", e->msg);
            d->failure = *e;
        }
        d->failed = 1;
        answer_all(b, AS_EIO, e->msg);
        for (size_t i = 0; i < b->out.len; i++) as__free(b->out.v[i].key);
        b->out.len = 0;
    } else {
        d->durable_seq = b->seq;
        answer_all(b, 0, NULL);
        deliver_all(rt, b);
    }
    as__wbuf_reset(&b->rec);
}

/* ------------------------------------------------------------------------------------------
 * The writer and the syncer
 * ---------------------------------------------------------------------------------------- */

/* Every batch handed over and not yet written goes into one transaction: while one commit
 * ran, the loop may have handed several. */
static void writer_main(void *arg)
{
    struct as_durable *d = arg;
    as_wbuf txn = {0}; /* owned; the records of the batches of one transaction */
    uv_mutex_lock(&d->mu);
    for (;;) {
        batch *b = d->head;
        while (b && b->seq <= d->written) b = b->link;
        if (b == NULL) {
            if (d->stop) break;
            uv_cond_wait(&d->wake_writer, &d->mu);
            continue;
        }
        batch *first = b;
        while (b->link) b = b->link;
        uint64_t upto = b->seq;
        int skip = d->write_failed != 0; /* nothing after a failed write reaches the disk */
        uv_mutex_unlock(&d->mu);
        /* one batch is committed from its own buffer; several are copied into one */
        int incomplete = 0;
        as__wbuf_reset(&txn);
        for (b = first; b; b = b->seq < upto ? b->link : NULL) {
            if (b->rec.len && first->seq != upto) as__wbuf_bytes(&txn, b->rec.p, b->rec.len);
            incomplete |= b->rec.oom;
        }
        as_error e = {0};
        if (skip)
            ;
        else if (incomplete)
            as__err(&e, AS_ENOMEM, "out of memory while journaling the batch");
        else if (first->seq == upto && first->rec.len)
            d->store->engine->commit(d->store, first->rec.p, first->rec.len, &e);
        else if (!txn.oom && txn.len)
            d->store->engine->commit(d->store, txn.p, txn.len, &e);
        else if (txn.oom) /* no room to group them: one transaction each, all the same */
            for (b = first; b && e.code == 0; b = b->seq < upto ? b->link : NULL)
                if (b->rec.len) d->store->engine->commit(d->store, b->rec.p, b->rec.len, &e);
        uv_mutex_lock(&d->mu);
        if (e.code && d->write_failed == 0) {
            d->write_failed = first->seq;
            d->write_err = e;
        }
        d->written = upto;
        if (d->store->engine->sync) {
            uv_cond_signal(&d->wake_syncer);
        } else {
            d->synced = d->written;
            uv_async_send(d->landed);
        }
    }
    uv_mutex_unlock(&d->mu);
    as__wbuf_free(&txn);
}

static void syncer_main(void *arg)
{
    struct as_durable *d = arg;
    uv_mutex_lock(&d->mu);
    for (;;) {
        if (d->synced == d->written) {
            if (d->stop) break;
            uv_cond_wait(&d->wake_syncer, &d->mu);
            continue;
        }
        uint64_t upto = d->written;
        uv_mutex_unlock(&d->mu);
        as_error e = {0};
        d->store->engine->sync(d->store, &e);
        uv_mutex_lock(&d->mu);
        if (e.code && d->sync_failed == 0) {
            d->sync_failed = d->synced + 1;
            d->sync_err = e;
        }
        d->synced = upto;
        uv_async_send(d->landed);
    }
    uv_mutex_unlock(&d->mu);
}

/* On the loop: answers the batches that are durable now, oldest first. */
static void landed_cb(uv_async_t *h)
{
    struct as_durable *d = h->data;
    uv_mutex_lock(&d->mu);
    batch *first = d->head, *last = NULL;
    for (batch *b = d->head; b && b->seq <= d->synced; b = b->link) last = b;
    if (last) {
        d->head = last->link;
        if (d->head == NULL) d->tail = NULL;
        last->link = NULL;
    }
    uint64_t write_failed = d->write_failed, sync_failed = d->sync_failed;
    as_error write_err = d->write_err, sync_err = d->sync_err;
    uv_mutex_unlock(&d->mu);
    if (last && last->seq == d->handed) uv_unref((uv_handle_t *)d->landed);
    for (batch *b = last ? first : NULL, *n; b; b = n) {
        n = b->link;
        d->answered = b->seq;
        finish(d->rt, b,
               write_failed && b->seq >= write_failed ? &write_err
               : sync_failed && b->seq >= sync_failed ? &sync_err
                                                      : NULL);
        b->link = d->spare;
        d->spare = b;
    }
}

/* At the end of the turn's step (turn.c): what the turn changed goes to the writer as one
 * batch. */
void as__durable_hand_over(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    if (d == NULL) return;
    collect(rt);
    if (d->next.rec.len == 0 && d->next.waiting.len == 0 && !d->next.rec.oom) return;
    d->next.started = uv_hrtime();
    batch *b = d->spare;
    if (b) d->spare = b->link;
    else if ((b = as__calloc(1, sizeof *b)) == NULL) {
        as_error e;
        as__err(&e, AS_ENOMEM, "out of memory while handing a batch to the writer");
        finish(rt, &d->next, &e);
        return;
    }
    batch t = *b;
    *b = d->next;
    d->next = t;
    b->link = NULL;
    b->seq = ++d->handed;
    uv_mutex_lock(&d->mu);
    if (d->tail) d->tail->link = b;
    else d->head = b;
    d->tail = b;
    uv_cond_signal(&d->wake_writer);
    uv_mutex_unlock(&d->mu);
    uv_ref((uv_handle_t *)d->landed);
}

/* Queues `cb` to be answered once what this turn changed is durable, in the slot the
 * request reserved (as__submit_json). */
void as__durable_wait(as_runtime *rt, as_done_cb cb, void *ud, int code, const char *msg)
{
    done w = {cb, ud, code, ""};
    if (code && msg) snprintf(w.msg, sizeof w.msg, "%s", msg);
    as__turn_wake(rt);
    if (PUSH(rt->dur->next.waiting, w) != 0 && cb) cb(ud, AS_ENOMEM, "out of memory");
}

/* ==========================================================================================
 * Reads see only what is durable
 * ======================================================================================== */

/* A case shows more than the disk holds while it is changed in this turn or its last batch
 * is in flight (or failed): seq in (durable_seq, handed]. A case keeps 32 bits of the seq;
 * the window is always far narrower than 2^32, so the comparison is exact for a case in
 * it, and an old seq that aliases into it costs one needless wait, never a wrong answer. */
void as__read_note(const as_runtime *rt, const as_case *c, int *need)
{
    const struct as_durable *d = rt->dur;
    if (d == NULL || *need == AS_READ_TURN) return;
    if (c->dirty) *need = AS_READ_TURN;
    else if ((uint32_t)(c->seq - (uint32_t)(d->durable_seq + 1)) < d->handed - d->durable_seq)
        *need = AS_READ_IN_FLIGHT;
}

/* An order keeps no seq (it changes rarely, and its memory is per order): any batch in
 * flight may hold its last change. */
void as__read_note_order(const as_runtime *rt, const as_order *o, int *need)
{
    const struct as_durable *d = rt->dur;
    if (d == NULL || *need == AS_READ_TURN) return;
    if (o->dirty) *need = AS_READ_TURN;
    else if (d->handed != d->durable_seq) *need = AS_READ_IN_FLIGHT;
}

int as__read_wait(as_runtime *rt, int need, as_done_cb cb, void *ud, as_error *err)
{
    struct as_durable *d = rt->dur;
    if (need == AS_READ_NOW) return 0;
    if (d->failed)
        return as__err(err, AS_EIO, "the store failed (%s): what this shows may not be on disk; "
                       "restart to restore what is", d->failure.msg);
    /* batches are answered in order: a later one covers every one before it. The batches
     * landed_cb is answering have left the list (a read made from one of their answers
     * finds none there): this turn's batch covers them. */
    if (need == AS_READ_TURN || d->tail == NULL) {
        as__durable_wait(rt, cb, ud, 0, NULL);
        return 1;
    }
    done w = {cb, ud, 0, ""};
    if (PUSH(d->tail->waiting, w) != 0) return as__err(err, AS_ENOMEM, "out of memory");
    return 1;
}

/* ==========================================================================================
 * Commands under an idempotency key, answered once durable
 * ======================================================================================== */

static void put_ack(as_wbuf *b, const void *arg)
{
    const char *const *a = arg; /* key, url */
    as__wbuf_u8(b, AS_REC_OUTBOX_ACK);
    as__wbuf_str(b, a[0]);
    as__wbuf_str(b, a[1]);
}

const char *as__store_failure(const as_runtime *rt)
{
    return rt->dur && rt->dur->failed ? rt->dur->failure.msg : NULL;
}

int as__outbox_ack(as_runtime *rt, const char *key, const char *url, as_error *err)
{
    if (rt->dur == NULL) return 0;
    const char *a[2] = {key, url}; /* url NULL: every URL */
    if (as__durable_put(rt->dur, put_ack, a) != 0) return as__err(err, AS_ENOMEM, "out of memory");
    as__turn_wake(rt);
    if (url == NULL) {
        acked_free(as__strmap_del(&rt->dur->acked, key));
        rt->dur->settled++;
    }
    return 0;
}

typedef struct pack_rec {
    const char *shop;
    const as_version *v;
    int current;
} pack_rec;

static void put_pack(as_wbuf *b, const void *arg)
{
    const char *shop = ((const pack_rec *)arg)->shop;
    const as_version *v = ((const pack_rec *)arg)->v;
    int current = ((const pack_rec *)arg)->current;
    as__wbuf_u8(b, AS_REC_PACK);
    as__wbuf_str(b, shop);
    as__wbuf_str(b, v->name);
    as__wbuf_str(b, v->version);
    as__wbuf_bytes(b, &(uint32_t){(uint32_t)v->len}, 4);
    as__wbuf_bytes(b, v->source, v->len);
    as__wbuf_u8(b, (uint8_t)current);
    as__wbuf_str(b, v->sha256);
    as__wbuf_i64(b, v->uploaded_at);
}

size_t as__durable_pack_size(const char *shop, const as_version *v)
{
    as_wbuf m = {.measure = 1};
    put_pack(&m, &(pack_rec){shop, v, 1});
    return m.len;
}

void as__durable_pack(as_runtime *rt, const char *shop, const as_version *v, int current)
{
    if (rt->dur == NULL) return;
    as__turn_wake(rt);
    put_pack(&rt->dur->next.rec, &(pack_rec){shop, v, current});
}

static void put_pack_prune(as_wbuf *b, const void *arg)
{
    const pack_rec *r = arg;
    as__wbuf_u8(b, AS_REC_PACK_PRUNE);
    as__wbuf_str(b, r->shop);
    as__wbuf_str(b, r->v->name);
    as__wbuf_str(b, r->v->version);
}

int as__durable_pack_prune(as_runtime *rt, const char *shop, const as_version *v)
{
    if (rt->dur == NULL) return 0;
    if (as__durable_put(rt->dur, put_pack_prune, &(pack_rec){shop, v, 0}) != 0) return AS_ENOMEM;
    as__turn_wake(rt);
    return 0;
}

int as__runtime_idle(const as_runtime *rt)
{
    const struct as_durable *d = rt->dur;
    return d == NULL || (d->handed == d->answered && d->next.waiting.len == 0 && d->next.rec.len == 0 &&
                         d->dirty_cases.len == 0 && d->dirty_orders.len == 0);
}

/* A refused attach touches nothing: not even the file. */
int as__durable_attach_refused(const as_runtime *rt, as_error *err)
{
    if (rt->loop == NULL)
        return as__err(err, AS_EBAD_REQUEST, "a durable runtime needs a loop (as_options.loop)");
    if (rt->dur) return as__err(err, AS_EBAD_REQUEST, "the runtime already has a store");
    if (rt->orders.len || rt->cases.len)
        return as__err(err, AS_EBAD_REQUEST, "attach the store before the first command");
    return 0;
}

static int start_threads(struct as_durable *d, as_error *err)
{
    if ((d->landed = as__malloc(sizeof *d->landed)) == NULL ||
        uv_async_init(d->loop, d->landed, landed_cb) != 0) {
        as__free(d->landed);
        d->landed = NULL;
        return as__err(err, AS_ENOMEM, "out of memory");
    }
    d->landed->data = d;
    uv_unref((uv_handle_t *)d->landed);
    if (uv_thread_create(&d->writer, writer_main, d) != 0)
        return as__err(err, AS_ENOMEM, "cannot start the store's writer thread");
    d->threads = 1;
    if (d->store->engine->sync == NULL) return 0;
    if (uv_thread_create(&d->syncer, syncer_main, d) != 0)
        return as__err(err, AS_ENOMEM, "cannot start the store's syncer thread");
    d->threads = 2;
    return 0;
}

/* The last instant the restored file records: every history entry (the runtime stamps them)
 * and the idempotency keys' answers. Orders' times are left out, since the platform may set
 * them to any instant when it creates an order. */
static int64_t last_recorded(as_runtime *rt)
{
    int64_t last = INT64_MIN;
    size_t pos = 0;
    as_case *c;
    while ((c = as__strmap_next(&rt->cases, &pos)) != NULL) {
        if (c->opened_at > last) last = c->opened_at;
        for (uint32_t i = 0; i < c->nhist; i++)
            if (c->hist[i].at_ms > last) last = c->hist[i].at_ms;
    }
    const idem *e = rt->dur->newest; /* the keys are listed by time: the newest is the last */
    if (e && e->at > last) last = e->at;
    return last;
}

int as__durable_attach(as_runtime *rt, as_store *store, as_error *err)
{
    int refused = as__durable_attach_refused(rt, err);
    struct as_durable *d = refused ? NULL : as__calloc(1, sizeof *d);
    if (d == NULL) {
        store->engine->close(store); /* the store is ours from the call on */
        return refused ? refused : as__err(err, AS_ENOMEM, "out of memory");
    }
    as__strmap_init(&d->idem, as__idem_key);
    as__strmap_init(&d->acked, acked_key);
    uv_mutex_init(&d->mu);
    uv_cond_init(&d->wake_writer);
    uv_cond_init(&d->wake_syncer);
    d->rt = rt;
    d->store = store;
    d->loop = rt->loop;
    rt->dur = d;
    as_deliveries redeliver = {0}; /* owned here until handed to the batch */
    int rc = as__durable_restore(rt, store, &redeliver, NULL, NULL, err);
    if (rc == 0) {
        as__versions_store_bundled(rt);
        /* The file keeps no clock. A virtual clock that starts (at the wall clock, or where
         * its owner said) before what the file already records would run time backwards
         * under the restored cases -- a merchant answering before the case was opened -- so
         * it resumes at the last recorded instant instead (as__clock_set never goes back). */
        if (as__clock_is_virtual(&rt->clock)) as__clock_set(&rt->clock, last_recorded(rt));
    }
    if (rc == 0) rc = start_threads(d, err);
    if (rc == 0) {
        for (size_t i = 0; i < redeliver.len; i++)
            PUSH(d->next.out, redeliver.v[i]);
        deliver_all(rt, &d->next);
        as__rearm(rt); /* deadlines that fell due while down fire at once, in due order */
    } else {
        for (size_t i = 0; i < redeliver.len; i++) as__free(redeliver.v[i].key);
    }
    as__free(redeliver.v);
    return rc;
}

static void free_batch(batch *b)
{
    answer_all(b, AS_EIO, "the runtime closed before this was durable");
    for (size_t i = 0; i < b->out.len; i++) as__free(b->out.v[i].key);
    as__free(b->waiting.v);
    as__free(b->out.v);
    as__wbuf_free(&b->rec);
}

static void close_free(uv_handle_t *h)
{
    as__free(h);
}

void as__durable_free(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    if (d == NULL) return;
    /* the writer and the syncer hold the store: let what is in flight land, then stop them */
    while (d->answered != d->handed) uv_run(d->loop, UV_RUN_ONCE);
    uv_mutex_lock(&d->mu);
    d->stop = 1;
    uv_cond_signal(&d->wake_writer);
    uv_cond_signal(&d->wake_syncer);
    uv_mutex_unlock(&d->mu);
    if (d->threads >= 1) uv_thread_join(&d->writer);
    if (d->threads >= 2) uv_thread_join(&d->syncer);
    uv_cond_destroy(&d->wake_syncer);
    uv_cond_destroy(&d->wake_writer);
    uv_mutex_destroy(&d->mu);
    if (d->landed) uv_close((uv_handle_t *)d->landed, close_free);
    free_batch(&d->next);
    for (batch *b = d->spare, *n; b; b = n) {
        n = b->link;
        free_batch(b);
        as__free(b);
    }
    as__free(d->dirty_cases.v);
    as__free(d->dirty_orders.v);
    as__cmd_stage_free(&d->cmds);
    size_t pos = 0;
    idem *e;
    while ((e = as__strmap_next(&d->idem, &pos)) != NULL) {
        as__free(e->msg);
        as__free(e);
    }
    as__strmap_free(&d->idem);
    pos = 0;
    acked *a;
    while ((a = as__strmap_next(&d->acked, &pos)) != NULL) acked_free(a);
    as__strmap_free(&d->acked);
    d->store->engine->close(d->store);
    as__free(d);
    rt->dur = NULL;
}
