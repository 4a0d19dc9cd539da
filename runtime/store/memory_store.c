/* memory_store.c -- the memory engine: the store interface with nothing on disk. It keeps
 * the committed rows in this process, so a runtime freed and made anew on the same store
 * restores exactly like one on SQLite: tests use it to restart without a file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/strmap.h"
#include "stores.h"
#include "../core/wbuf.h"

typedef struct row {
    char *key;   /* owned */
    char *a, *b; /* owned: order id / outbox kind+case / message / pack name+version */
    char *c;     /* owned: a pack's sha256 */
    void *data;  /* owned */
    size_t len;
    int64_t n;   /* due, amount, code, a pack's uploaded_at */
    int64_t at;  /* an idempotency key's time */
    int flag;    /* outbox acked (for every URL), pack current */
    struct row *acks; /* owned: outbox: the URLs that acknowledged it (`key` the URL), linked
                       * by `acks` */
} row;

typedef struct rows {
    row **v;
    size_t len, cap;
} rows;

typedef struct memory_store {
    as_store base;
    rows orders, cases, events, outbox, idem, packs; /* in first-write order */
    as_strmap by_order, by_case, by_outbox, by_idem;
} memory_store;

static const char *row_key(const void *r)
{
    return ((const row *)r)->key;
}

static void row_free(row *r)
{
    while (r) {
        row *next = r->acks;
        as__free(r->key), as__free(r->a), as__free(r->b), as__free(r->c), as__free(r->data);
        as__free(r);
        r = next;
    }
}

static char *dup_n(const char *p, size_t n)
{
    char *s = as__malloc(n + 1);
    if (s) {
        memcpy(s, p ? p : "", n);
        s[n] = '\0';
    }
    return s;
}

static char *take_str(as_rbuf *r)
{
    size_t n;
    const char *p = as__rbuf_str(r, &n);
    return p ? dup_n(p, n) : NULL;
}

static void *take_bytes(as_rbuf *r, size_t *len)
{
    const char *p = as__rbuf_str(r, len);
    return dup_n(p, *len);
}

static int append(rows *v, row *r)
{
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        row **nv = as__realloc(v->v, cap * sizeof *nv);
        if (nv == NULL) return AS_ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->len++] = r;
    return 0;
}

/* Inserts `r` or, when its key is there, replaces that row's contents in place. */
static int upsert(rows *v, as_strmap *m, row *r)
{
    row *old = as__strmap_get(m, r->key);
    if (old == NULL) return append(v, r) || as__strmap_put(m, r) ? AS_ENOMEM : 0;
    row tmp = *old;
    *old = *r;
    old->key = tmp.key;
    as__free(r->key); /* the row's fields are old's now: free only the duplicate key and the shell */
    as__free(r);
    as__free(tmp.a), as__free(tmp.b), as__free(tmp.data);
    return 0;
}

static int idem_expired(const row *r, int64_t before)
{
    return r->at < before;
}

static int outbox_settled(const row *r, int64_t before)
{
    (void)before;
    return r->flag;
}

/* Drops the rows `gone` picks from `v` and its index, keeping the others in order. */
static void prune(rows *v, as_strmap *m, int (*gone)(const row *, int64_t), int64_t before)
{
    size_t kept = 0;
    for (size_t i = 0; i < v->len; i++) {
        row *r = v->v[i];
        if (gone(r, before)) {
            as__strmap_del(m, r->key);
            row_free(r);
        } else {
            v->v[kept++] = r;
        }
    }
    v->len = kept;
}

static void need(as_rbuf *r);
static void skip(as_rbuf *r);

static int apply_record(memory_store *s, int kind, as_rbuf *r)
{
    row *w = as__calloc(1, sizeof *w);
    if (w == NULL) return AS_ENOMEM;
    switch (kind) {
    case AS_REC_ORDER:
        w->key = take_str(r);
        w->data = take_bytes(r, &w->len);
        return r->bad ? (row_free(w), AS_EIO) : upsert(&s->orders, &s->by_order, w);
    case AS_REC_CASE:
        w->key = take_str(r);
        w->a = take_str(r);
        w->n = as__rbuf_i64(r);
        w->data = take_bytes(r, &w->len);
        return r->bad ? (row_free(w), AS_EIO) : upsert(&s->cases, &s->by_case, w);
    case AS_REC_EVENT:
        w->key = take_str(r);
        w->n = as__rbuf_u32(r);
        w->data = take_bytes(r, &w->len);
        skip(r); /* the command: kept by the SQLite engine for `backtest` only, no load reads it */
        return r->bad ? (row_free(w), AS_EIO) : append(&s->events, w);
    case AS_REC_OUTBOX:
        w->key = take_str(r);
        w->a = take_str(r);
        w->b = take_str(r);
        w->n = as__rbuf_i64(r);
        if (r->bad) return row_free(w), AS_EIO;
        /* a key names one instruction: the same key again changes nothing */
        if (as__strmap_get(&s->by_outbox, w->key)) return row_free(w), 0;
        return append(&s->outbox, w) || as__strmap_put(&s->by_outbox, w) ? AS_ENOMEM : 0;
    case AS_REC_OUTBOX_ACK: {
        size_t kn, un;
        const char *key = as__rbuf_str(r, &kn), *url = as__rbuf_str(r, &un);
        char *k = key ? dup_n(key, kn) : NULL;
        w->key = url ? dup_n(url, un) : NULL; /* the URL; none: every URL */
        if (r->bad || key == NULL) return as__free(k), row_free(w), AS_EIO;
        if (k == NULL || (url && w->key == NULL)) return as__free(k), row_free(w), AS_ENOMEM;
        row *o = as__strmap_get(&s->by_outbox, k);
        as__free(k);
        if (o == NULL) return row_free(w), 0; /* an unknown key: nothing to acknowledge */
        if (url == NULL) {
            o->flag = 1;
            return row_free(w), 0;
        }
        for (row *a = o->acks; a; a = a->acks)
            if (strcmp(a->key, w->key) == 0) return row_free(w), 0;
        w->acks = o->acks;
        o->acks = w;
        return 0;
    }
    case AS_REC_IDEM:
        w->key = take_str(r);
        w->n = (int32_t)as__rbuf_u32(r);
        w->a = take_str(r);
        w->at = as__rbuf_i64(r);
        if (r->bad) return row_free(w), AS_EIO;
        if (as__strmap_get(&s->by_idem, w->key)) return row_free(w), 0;
        return append(&s->idem, w) || as__strmap_put(&s->by_idem, w) ? AS_ENOMEM : 0;
    case AS_REC_PRUNE: {
        int64_t before = as__rbuf_i64(r);
        row_free(w);
        prune(&s->idem, &s->by_idem, idem_expired, before);
        prune(&s->outbox, &s->by_outbox, outbox_settled, before);
        return 0;
    }
    case AS_REC_PACK_PRUNE:
        w->key = take_str(r); /* shop */
        w->a = take_str(r);   /* name */
        w->b = take_str(r);   /* version */
        if (r->bad || w->key == NULL || w->a == NULL || w->b == NULL) return row_free(w), AS_EIO;
        for (size_t i = 0; i < s->packs.len; i++) {
            row *p = s->packs.v[i];
            if (!p->flag && strcmp(p->key, w->key) == 0 && strcmp(p->a, w->a) == 0 &&
                strcmp(p->b, w->b) == 0) {
                as__free(p->data);
                p->data = NULL;
                p->len = 0;
            }
        }
        return row_free(w), 0;
    case AS_REC_PACK:
        w->key = take_str(r); /* shop */
        w->a = take_str(r);   /* name */
        w->b = take_str(r);   /* version */
        w->data = take_bytes(r, &w->len);
        w->flag = as__rbuf_u8(r);
        w->c = take_str(r);
        w->n = as__rbuf_i64(r);
        if (r->bad) return row_free(w), AS_EIO;
        for (size_t i = 0; w->flag && i < s->packs.len; i++)
            if (strcmp(s->packs.v[i]->key, w->key) == 0) s->packs.v[i]->flag = 0;
        for (size_t i = 0; i < s->packs.len; i++) {
            row *p = s->packs.v[i];
            if (strcmp(p->key, w->key) == 0 && strcmp(p->a, w->a) == 0 && strcmp(p->b, w->b) == 0) {
                s->packs.v[i] = w; /* (shop, name, version) names one row */
                row_free(p);
                return 0;
            }
        }
        return append(&s->packs, w);
    default:
        row_free(w);
        return AS_EIO;
    }
}

/* A string field that must be there (a key). */
static void need(as_rbuf *r)
{
    size_t n;
    if (as__rbuf_str(r, &n) == NULL) r->bad = 1;
}

static void skip(as_rbuf *r)
{
    size_t n;
    as__rbuf_str(r, &n);
}

/* A batch is applied whole or (on a bad record) not at all: it is decoded once, without
 * applying, to check every record first. */
static int memory_commit(as_store *base, const unsigned char *batch, size_t len, as_error *err)
{
    memory_store *s = (memory_store *)base;
    as_rbuf check = {batch, len, 0, 0};
    while (check.pos < check.len && !check.bad) {
        switch (as__rbuf_u8(&check)) {
        case AS_REC_ORDER: need(&check), skip(&check); break;
        case AS_REC_CASE: need(&check), need(&check), as__rbuf_i64(&check), skip(&check); break;
        case AS_REC_EVENT: need(&check), as__rbuf_u32(&check), skip(&check), skip(&check); break;
        case AS_REC_OUTBOX: need(&check), need(&check), need(&check), as__rbuf_i64(&check); break;
        case AS_REC_OUTBOX_ACK: need(&check), skip(&check); break;
        /* an idempotency key's message and a pack's source are never absent (the writer
         * always has one; SQLite's NOT NULL refuses them): an absent one reached v_idem's
         * strdup(NULL) at restore (found by fuzz_record) */
        case AS_REC_IDEM: need(&check), as__rbuf_u32(&check), need(&check), as__rbuf_i64(&check); break;
        case AS_REC_PRUNE: as__rbuf_i64(&check); break;
        case AS_REC_PACK_PRUNE: need(&check), need(&check), need(&check); break;
        case AS_REC_PACK:
            need(&check), need(&check), need(&check), need(&check);
            as__rbuf_u8(&check), need(&check), as__rbuf_i64(&check);
            break;
        default: check.bad = 1;
        }
    }
    if (check.bad) return as__err(err, AS_EIO, "store: a malformed batch record");
    as_rbuf r = {batch, len, 0, 0};
    while (r.pos < r.len) {
        int rc = apply_record(s, as__rbuf_u8(&r), &r);
        if (rc) return as__err(err, rc, "store: out of memory while committing");
    }
    return 0;
}

/* A row's answer from the visitor: 0 goes on; a refusal goes to v->refused, or stops the
 * load with a sentence naming the row by its table and key (store.h). */
static int answered(const as_store_visitor *v, int rc, const char *table, const char *key,
                    as_error *err)
{
    if (rc == 0) return 0;
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->code ? err->msg : "refused by the runtime");
    if (rc == AS_ENOMEM) return as__err(err, rc, "out of memory restoring %s %s", table, key);
    if (v->refused) {
        *err = (as_error){0};
        return v->refused(v->ud, table, key, why);
    }
    return as__err(err, rc, "store: %s %s could not be restored: %s", table, key, why);
}

static int memory_load(as_store *base, const as_store_visitor *v, as_error *err)
{
    memory_store *s = (memory_store *)base;
    char key[512];
    int rc = v->reserve(v->ud, s->orders.len, s->cases.len);
    for (size_t i = 0; rc == 0 && i < s->packs.len; i++) {
        row *p = s->packs.v[i];
        char *src = dup_n(p->data, p->len);
        rc = src ? v->pack(v->ud, p->key, p->a, p->b, src, p->len, p->flag, p->c, p->n) : AS_ENOMEM;
        as__free(src);
        snprintf(key, sizeof key, "%s/%s@%s", p->key[0] ? p->key : "(platform)", p->a, p->b);
        rc = answered(v, rc, "packs", key, err);
    }
    for (size_t i = 0; rc == 0 && i < s->orders.len; i++)
        rc = answered(v, v->order(v->ud, s->orders.v[i]->data, s->orders.v[i]->len), "orders",
                      s->orders.v[i]->key, err);
    for (size_t i = 0; rc == 0 && i < s->cases.len; i++) {
        row *c = s->cases.v[i];
        rc = answered(v, v->a_case(v->ud, c->data, c->len, c->n), "cases", c->key, err);
    }
    for (size_t i = 0; rc == 0 && i < s->events.len; i++) {
        row *e = s->events.v[i];
        snprintf(key, sizeof key, "%s#%lld", e->key, (long long)e->n);
        rc = answered(v, v->event(v->ud, e->key, (uint32_t)e->n, e->data, e->len), "events", key,
                      err);
    }
    for (size_t i = 0; rc == 0 && v->outbox && i < s->outbox.len; i++) {
        row *o = s->outbox.v[i];
        if (!o->flag)
            rc = answered(v, v->outbox(v->ud, o->key, o->a, o->b, o->n), "outbox", o->key, err);
    }
    for (size_t i = 0; rc == 0 && v->outbox_ack && i < s->outbox.len; i++)
        for (row *a = s->outbox.v[i]->acks; rc == 0 && !s->outbox.v[i]->flag && a; a = a->acks) {
            snprintf(key, sizeof key, "%s %s", s->outbox.v[i]->key, a->key);
            rc = answered(v, v->outbox_ack(v->ud, s->outbox.v[i]->key, a->key), "outbox_acks", key,
                          err);
        }
    for (size_t i = 0; rc == 0 && v->idem && i < s->idem.len; i++)
        rc = answered(v, v->idem(v->ud, s->idem.v[i]->key, (int)s->idem.v[i]->n, s->idem.v[i]->a,
                                 s->idem.v[i]->at),
                      "idempotency", s->idem.v[i]->key, err);
    return rc;
}

/* The memory engine's rows outlive a runtime: close() frees nothing but the runtime's hold;
 * as__store_memory_free frees the rows. */
static void memory_close(as_store *base)
{
    (void)base;
}

static const as_store_engine memory_engine = {"memory", memory_commit, NULL, memory_load,
                                              memory_close};

as_store *as__store_memory_new(void)
{
    memory_store *s = as__calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->base.engine = &memory_engine;
    as__strmap_init(&s->by_order, row_key);
    as__strmap_init(&s->by_case, row_key);
    as__strmap_init(&s->by_outbox, row_key);
    as__strmap_init(&s->by_idem, row_key);
    return &s->base;
}

void as__store_memory_free(as_store *base)
{
    memory_store *s = (memory_store *)base;
    if (s == NULL) return;
    rows *all[] = {&s->orders, &s->cases, &s->events, &s->outbox, &s->idem, &s->packs};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        for (size_t i = 0; i < all[k]->len; i++) row_free(all[k]->v[i]);
        as__free(all[k]->v);
    }
    as__strmap_free(&s->by_order);
    as__strmap_free(&s->by_case);
    as__strmap_free(&s->by_outbox);
    as__strmap_free(&s->by_idem);
    as__free(s);
}
