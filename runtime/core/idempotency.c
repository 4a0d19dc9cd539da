/* idempotency.c -- commands under an idempotency key (docs/api.md "Idempotency"): a key's
 * first answer is kept, journaled in the same batch as the change it answers, and given again
 * to a retry once durable; keys older than the retention are forgotten. */
#include <string.h>

#include "durable.h"
#include "err.h"
#include "journal.h"
#include "timefmt.h"

const char *as__idem_key(const void *p)
{
    return ((const idem *)p)->key;
}

/* Retention (docs/api.md "Idempotency"): at most once a second, the keys answered more than
 * the retention time ago are forgotten, and a PRUNE record in this turn's batch forgets them
 * in the store too, with the outbox entries settled since the last prune. Runs as the batch
 * is collected, so the records of a turn never straddle a prune. */
void as__idem_prune(as_runtime *rt)
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

int as__idem_remember(as_runtime *rt, const char *key, int code, const char *msg, int64_t at)
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
        as__durable_wait(rt, cb, ud, rc, seen->msg); /* the first answer, once it is durable */
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
    as__durable_wait(rt, cb, ud, rc, err.msg);
    as__rearm(rt);
    return rc;
}
