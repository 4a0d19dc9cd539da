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

#include "alloc.h"
#include "store.h"
#include "err.h"
#include "journal.h"
#include "limits.h"
#include "runtime.h"
#include "timefmt.h"

typedef struct done {
    as_done_cb cb;
    void *ud;
    int code;
    char msg[AS_ERROR_MSG_MAX]; /* inline: queuing an answer allocates nothing but its slot */
} done;

typedef struct delivery {
    char *key; /* owned: one block holding the key, then kind and case_id */
    const char *kind, *case_id;
    int64_t amount;
} delivery;

static int delivery_make(delivery *d, const char *key, const char *kind, const char *case_id,
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

#define VEC(T)                                                                             \
    struct {                                                                               \
        T *v;                                                                              \
        size_t len, cap;                                                                   \
    }

static int grow(void **v, size_t *cap, size_t len, size_t size)
{
    if (len < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *nv = as__realloc(*v, ncap * size);
    if (nv == NULL) return AS_ENOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}
#define PUSH(vec, x)                                                                       \
    (grow((void **)&(vec).v, &(vec).cap, (vec).len, sizeof *(vec).v) ? AS_ENOMEM           \
                                                                       : ((vec).v[(vec).len++] = (x), 0))
/* Room for one more PUSH that then cannot fail. */
#define ROOM(vec) grow((void **)&(vec).v, &(vec).cap, (vec).len, sizeof *(vec).v)

/* One batch: its records, who waits for it, what it delivers. Once handed over, its records
 * are read by the writer and not written by anyone; `waiting` and `out` stay the loop's. */
typedef struct batch {
    as_wbuf rec;
    VEC(done) waiting;
    VEC(delivery) out;
    uint64_t started; /* uv_hrtime() when it was handed to the writer */
    uint64_t seq;     /* 1, 2, ... in the order handed over */
    struct batch *link;
} batch;

/* An idempotency key's first answer; the keys are listed oldest first for the prune. */
typedef struct idem {
    int code;
    char *msg; /* owned */
    int64_t at; /* when it was first answered */
    struct idem *newer;
    char key[];
} idem;

/* The URLs that acknowledged an outbox entry before the restart (the store's per-URL
 * acknowledgements), so that its deliverer sends it again only where it was not received;
 * dropped once the entry is acknowledged for every URL. */
typedef struct acked {
    char **urls; /* owned, and each of them */
    size_t n;
    char key[];
} acked;

struct as_durable {
    as_runtime *rt;
    as_store *store;
    uv_loop_t *loop;
    uv_async_t *landed; /* owned; the syncer's word that batches are durable; referenced
                         * while batches are in flight, so the loop waits for them */
    batch next;         /* this turn's changes */
    batch *spare;       /* answered batches kept for their buffers; owned, loop only */
    uint64_t handed, answered; /* loop only: seq of the last batch handed over, answered */
    uint64_t durable_seq;      /* loop only: seq of the last batch answered as durable */
    int failed; /* loop only: a commit or sync failed: memory is ahead of the disk, writes
                 * are refused */
    as_error failure; /* loop only: the first failure, for /healthz */
    int threads; /* 1: the writer runs, 2: the syncer too */
    uv_thread_t writer, syncer;
    uv_mutex_t mu; /* guards the rest of this block */
    uv_cond_t wake_writer, wake_syncer;
    batch *head, *tail; /* handed batches not yet answered, oldest first; owned */
    uint64_t written, synced; /* seq of the last batch written, made durable */
    /* the first seq a failed write, a failed sync, condemned (0: none). After a failed sync no
     * later sync proves anything (the kernel may have dropped the pages it could not write),
     * so every batch from there on fails too. */
    uint64_t write_failed, sync_failed;
    as_error write_err, sync_err;
    int stop;
    VEC(as_case *) dirty_cases;
    VEC(as_order *) dirty_orders;
    /* loop only: record bytes promised by as__durable_reserve since the last collect(); the
     * turn's buffer has room for them on top of what it holds */
    size_t owed;
    as_strmap idem;
    idem *oldest, *newest; /* the keys of `idem` by `at`, linked by `newer` */
    int64_t pruned_at;     /* when the last PRUNE record was journaled */
    int settled;           /* outbox entries done for every URL since then */
    as_strmap acked; /* of acked, owned: filled by the restore */
};

static const char *idem_key(const void *p)
{
    return ((const idem *)p)->key;
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
static int put_record(struct as_durable *d, void (*put)(as_wbuf *b, const void *arg),
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
    if (delivery_make(&o, key, kind, case_id, amount) != 0 || ROOM(d->next.out) ||
        put_record(d, put_outbox, &o) != 0) {
        as__free(o.key);
        return AS_ENOMEM;
    }
    PUSH(d->next.out, o);
    as__turn_wake(rt);
    return 0;
}

/* Retention (docs/api.md "Idempotency"): at most once a second, the keys answered more than
 * the retention time ago are forgotten, and a PRUNE record in this turn's batch forgets them
 * in the store too, with the outbox entries settled since the last prune. Runs as the batch
 * is collected, so the records of a turn never straddle a prune. */
static void prune_expired(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    int64_t now = as__clock_now(&rt->clock);
    if (now - d->pruned_at < AS_SECOND) return;
    int64_t before = now - rt->idempotency_ms;
    if (!d->settled && !(d->oldest && d->oldest->at < before)) return;
    /* beyond what the turn's changes were promised; without room, the prune waits */
    if (as__wbuf_reserve(&d->next.rec, d->owed + 16) != 0) return;
    while (d->oldest && d->oldest->at < before) {
        idem *e = d->oldest;
        d->oldest = e->newer;
        as__strmap_del(&d->idem, e->key);
        as__free(e->msg);
        as__free(e);
    }
    if (d->oldest == NULL) d->newest = NULL;
    as__wbuf_u8(&d->next.rec, AS_REC_PRUNE);
    as__wbuf_i64(&d->next.rec, before);
    d->pruned_at = now;
    d->settled = 0;
}

/* Journals what the turn changed into the next batch, in the room the changes reserved. */
static void collect(as_runtime *rt)
{
    struct as_durable *d = rt->dur;
    prune_expired(rt);
    for (size_t i = 0; i < d->dirty_orders.len; i++) {
        as__journal_order(&d->next.rec, d->dirty_orders.v[i]);
        d->dirty_orders.v[i]->dirty = 0;
    }
    for (size_t i = 0; i < d->dirty_cases.len; i++) {
        as_case *c = d->dirty_cases.v[i];
        as__journal_case(&d->next.rec, c);
        c->seq = (uint32_t)(d->handed + 1); /* the seq hand_over gives this batch */
        c->saved_hist = c->nhist;
        c->dirty = 0;
    }
    d->dirty_orders.len = d->dirty_cases.len = 0;
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
static void wait_durable(as_runtime *rt, as_done_cb cb, void *ud, int code, const char *msg)
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
        wait_durable(rt, cb, ud, 0, NULL);
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
    if (put_record(rt->dur, put_ack, a) != 0) return as__err(err, AS_ENOMEM, "out of memory");
    as__turn_wake(rt);
    if (url == NULL) {
        acked_free(as__strmap_del(&rt->dur->acked, key));
        rt->dur->settled++;
    }
    return 0;
}

static idem *idem_new(const char *key)
{
    size_t n = strlen(key);
    idem *e = as__malloc(sizeof *e + n + 1); /* owned by the caller, then by d->idem */
    if (e) memcpy(e->key, key, n + 1);
    return e;
}

/* Puts `e` (taken over on success) in the map with its outcome, answered at `at`; a success
 * keeps no message. The keys come oldest first (in answer order, or from the store ordered
 * by time), which is the order the retention prunes them in. */
static int idem_keep(as_runtime *rt, idem *e, int code, const char *msg, int64_t at)
{
    struct as_durable *d = rt->dur;
    e->code = code;
    e->msg = NULL;
    e->at = at;
    e->newer = NULL;
    if ((code && msg && msg[0] && (e->msg = as__strdup(msg)) == NULL) ||
        as__strmap_put(&d->idem, e) != 0) {
        as__free(e->msg);
        return AS_ENOMEM;
    }
    if (d->newest) d->newest->newer = e;
    else d->oldest = e;
    d->newest = e;
    return 0;
}

static int remember(as_runtime *rt, const char *key, int code, const char *msg, int64_t at)
{
    idem *e = idem_new(key);
    int rc = e ? idem_keep(rt, e, code, msg, at) : AS_ENOMEM;
    if (rc) as__free(e);
    return rc;
}

typedef struct idem_rec {
    const char *key;
    int code;
    const char *msg;
    int64_t at;
} idem_rec;

static void put_idem(as_wbuf *b, const void *arg)
{
    const idem_rec *r = arg;
    as__wbuf_u8(b, AS_REC_IDEM);
    as__wbuf_str(b, r->key);
    as__wbuf_u32(b, (uint32_t)r->code);
    as__wbuf_str(b, r->msg);
    as__wbuf_i64(b, r->at);
}

/* What the key's record of a request may take: its message is not known before it runs. */
static size_t idem_bound(const char *key)
{
    as_wbuf m = {.measure = 1};
    put_idem(&m, &(idem_rec){key, 0, "", 0});
    return m.len + AS_ERROR_MSG_MAX;
}

int as__durable_run(as_runtime *rt, const char *key, as_run_fn run, void *arg, as_done_cb cb,
                    void *ud)
{
    as_error err = {0};
    int rc;
    if (rt->dur == NULL) {
        rc = run(rt, arg, &err);
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
    /* The answer's slot, and the key's entry and record, are reserved before the request
     * runs: once it has changed something, remembering and answering it cannot fail. */
    idem *fresh = NULL;
    if (as__durable_reserve(rt, key && !seen ? idem_bound(key) : 0) != 0 ||
        (key && !seen &&
         ((fresh = idem_new(key)) == NULL || as__strmap_reserve(&rt->dur->idem, 1) != 0))) {
        as__free(fresh);
        rc = as__err(&err, AS_ENOMEM, "out of memory");
        if (cb) cb(ud, rc, err.msg);
        return rc;
    }
    if (seen) {
        rc = seen->code;
        wait_durable(rt, cb, ud, rc, seen->msg); /* the first answer, once it is durable */
        return rc;
    }
    rc = run(rt, arg, &err);
    /* A nomem refusal changed nothing and is no outcome of the request: the key stays
     * unused, so that the caller's retry runs it instead of hearing nomem forever. A refusal
     * whose message cannot be kept is not remembered either: it changed nothing. */
    int64_t now = as__clock_now(&rt->clock);
    if (fresh && rc != AS_ENOMEM && idem_keep(rt, fresh, rc, err.msg, now) == 0)
        put_idem(&rt->dur->next.rec, &(idem_rec){key, rc, err.msg, now});
    else
        as__free(fresh);
    wait_durable(rt, cb, ud, rc, err.msg);
    as__rearm(rt);
    return rc;
}

int as__merchant_limits(as_runtime *rt, const char *shop, as_pack_limits *lim, as_error *err)
{
    as_shop *s = as__shop_get(rt, shop, 1);
    if (s && s->lua_group == NULL) s->lua_group = rt->loaders.group_new(rt->lua_shop_memory);
    if (s == NULL || s->lua_group == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    *lim = rt->limits;
    lim->group = s->lua_group;
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
    if (put_record(rt->dur, put_pack_prune, &(pack_rec){shop, v, 0}) != 0) return AS_ENOMEM;
    as__turn_wake(rt);
    return 0;
}

int as__merchant_upload(as_runtime *rt, const char *shop, const char *src, size_t len,
                        as_error *err)
{
    if (as__limit_id(shop, strlen(shop))) return as__limit_err(err, "shop", AS_LIMIT_ID_WHAT);
    if (len > AS_MAX_SOURCE)
        return as__err(err, AS_EBAD_REQUEST, "the rules of %s are longer than 1 MiB", shop);
    if (as__limit_utf8(src, len, 1))
        return as__err(err, AS_EBAD_REQUEST, "the rules of %s are not UTF-8 text without NUL bytes",
                       shop);
    char chunk[300];
    snprintf(chunk, sizeof chunk, "=merchant rules of %s", shop);
    return as__merchant_install(rt, shop, src, len, chunk, err);
}

int as__runtime_idle(const as_runtime *rt)
{
    const struct as_durable *d = rt->dur;
    return d == NULL || (d->handed == d->answered && d->next.waiting.len == 0 && d->next.rec.len == 0 &&
                         d->dirty_cases.len == 0 && d->dirty_orders.len == 0);
}

/* ==========================================================================================
 * Recovery
 * ======================================================================================== */

typedef struct restore {
    as_runtime *rt;
    as_error *err;
    as_restore_refused_fn refused; /* NULL: the first row refused stops the restore */
    void *refused_ud;
    as_pack *last_pin[AS_LAYER_COUNT]; /* most cases pin what the case before pinned */
    VEC(as_pack *) held; /* versions loaded for pins; released once the cases hold theirs */
    VEC(delivery) redeliver;
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
    if (delivery_make(&d, key, kind, case_id, amount) != 0 || PUSH(x->redeliver, d)) {
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
    if (remember(x->rt, key, code, message, at) != 0) return as__err(x->err, AS_ENOMEM, "out of memory");
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

/* Hands the store's rows to the runtime of `x`; `live`: with the outbox and idempotency keys,
 * for a runtime that will go on (durable), else a snapshot. */
static int restore_rows(restore *x, as_store *store, int live)
{
    as_store_visitor v = {x,
                          v_reserve,
                          v_pack,
                          v_order,
                          v_case,
                          v_event,
                          live ? v_outbox : NULL,
                          live ? v_idem : NULL,
                          live ? v_outbox_ack : NULL,
                          x->refused ? v_refused : NULL};
    int rc = store->engine->load(store, &v, x->err);
    for (size_t i = 0; i < x->held.len; i++) as__pack_unref(x->held.v[i]);
    as__free(x->held.v);
    x->held.v = NULL;
    x->held.len = x->held.cap = 0;
    if (rc == 0) rebuild_metrics(x->rt);
    return rc;
}

int as__runtime_restore(as_runtime *rt, as_store *store, as_restore_refused_fn refused,
                        void *ud, as_error *err)
{
    if (rt->dur || rt->orders.len || rt->cases.len)
        return as__err(err, AS_EBAD_REQUEST, "restore into a new runtime without a store");
    restore x = {.rt = rt, .err = err, .refused = refused, .refused_ud = ud};
    return restore_rows(&x, store, 0);
}

/* A refused attach touches nothing: not even the file. */
int as__durable_attach_refused(const as_runtime *rt, as_error *err)
{
    if (rt->timer == NULL)
        return as__err(err, AS_EBAD_REQUEST, "a durable runtime needs a real clock (a loop)");
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

int as__durable_attach(as_runtime *rt, as_store *store, as_error *err)
{
    int refused = as__durable_attach_refused(rt, err);
    struct as_durable *d = refused ? NULL : as__calloc(1, sizeof *d);
    if (d == NULL) {
        store->engine->close(store); /* the store is ours from the call on */
        return refused ? refused : as__err(err, AS_ENOMEM, "out of memory");
    }
    as__strmap_init(&d->idem, idem_key);
    as__strmap_init(&d->acked, acked_key);
    uv_mutex_init(&d->mu);
    uv_cond_init(&d->wake_writer);
    uv_cond_init(&d->wake_syncer);
    d->rt = rt;
    d->store = store;
    d->loop = rt->timer->loop;
    rt->dur = d;
    restore x = {.rt = rt, .err = err};
    int rc = restore_rows(&x, store, 1);
    if (rc == 0) {
        as__versions_store_bundled(rt);
    }
    if (rc == 0) rc = start_threads(d, err);
    if (rc == 0) {
        for (size_t i = 0; i < x.redeliver.len; i++)
            PUSH(d->next.out, x.redeliver.v[i]);
        deliver_all(rt, &d->next);
        as__rearm(rt); /* deadlines that fell due while down fire at once, in due order */
    } else {
        for (size_t i = 0; i < x.redeliver.len; i++) as__free(x.redeliver.v[i].key);
    }
    as__free(x.redeliver.v);
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
