/* durable.h -- the durable pipeline's state, shared by its three files and internal to them:
 * durable.c (marking, the turn's batch, the writer and syncer threads, answering), idempotency.c
 * (commands under a key, the retention) and restore.c (rebuilding a runtime from the store).
 * The rest of core sees only runtime.h's as__durable_* calls. */
#ifndef AS_DURABLE_H
#define AS_DURABLE_H

#include <uv.h>

#include "alloc.h"
#include "journal.h"
#include "runtime.h"
#include "store.h"
#include "strmap.h"
#include "wbuf.h"

#define VEC(T)                                                                             \
    struct {                                                                               \
        T *v;                                                                              \
        size_t len, cap;                                                                   \
    }

static inline int as__vec_grow(void **v, size_t *cap, size_t len, size_t size)
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
    (as__vec_grow((void **)&(vec).v, &(vec).cap, (vec).len, sizeof *(vec).v) ? AS_ENOMEM           \
                                                                       : ((vec).v[(vec).len++] = (x), 0))
/* Room for one more PUSH that then cannot fail. */
#define ROOM(vec) as__vec_grow((void **)&(vec).v, &(vec).cap, (vec).len, sizeof *(vec).v)

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

/* Fills `d` with copies of the strings (one block, d->key owns it): 0 or AS_ENOMEM. */
int as__delivery_make(delivery *d, const char *key, const char *kind, const char *case_id,
                      int64_t amount);
typedef VEC(delivery) as_deliveries;

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
    as_cmd_stage cmds; /* loop only: the turn's party commands, written with their entries */
    as_strmap idem;
    idem *oldest, *newest; /* the keys of `idem` by `at`, linked by `newer` */
    int64_t pruned_at;     /* when the last PRUNE record was journaled */
    int settled;           /* outbox entries done for every URL since then */
    as_strmap acked; /* of acked, owned: filled by the restore */
};

/* durable.c */
/* Appends the record `put` writes (called once to measure it, once to write it) to the turn's
 * batch, after making room on top of what is owed: 0, or AS_ENOMEM with the batch as it was. */
int as__durable_put(struct as_durable *d, void (*put)(as_wbuf *b, const void *arg),
                    const void *arg);
/* Queues `cb` to be answered with `code` and `msg` once this turn's batch is durable. */
void as__durable_wait(as_runtime *rt, as_done_cb cb, void *ud, int code, const char *msg);

/* idempotency.c */
const char *as__idem_key(const void *idem);
/* Keeps `key`'s first answer, given at `at`: 0 or AS_ENOMEM. */
int as__idem_remember(as_runtime *rt, const char *key, int code, const char *msg, int64_t at);
/* Forgets the keys past the retention (at most once a second), journaling a PRUNE record. */
void as__idem_prune(as_runtime *rt);

/* restore.c */
/* Hands the store's rows to `rt`. `redeliver` NULL: a snapshot (no outbox, no idempotency
 * keys); else a runtime that goes on, and the outbox entries still to deliver are added to
 * it. `refused` as as__runtime_restore's. */
int as__durable_restore(as_runtime *rt, as_store *store, as_deliveries *redeliver,
                        as_restore_refused_fn refused, void *ud, as_error *err);

#endif
