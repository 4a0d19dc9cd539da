/* powercut.c -- power cuts under the group commit (docs/design.md#storage-and-durability): what was acknowledged
 * survives a cut at any moment, whatever the disk kept of the writes nobody synced.
 *
 * usage: powercut PACKS_DIR [CUTS]
 *
 * The model is SQLite's own crash-test VFS (test6.c): a shim VFS, registered as the default,
 * stands between SQLite and the unix VFS and keeps, per file, every write made since the
 * file's last xSync in memory (reads see them); xSync is what moves them to the real file,
 * which plays the disk. At a cut the shim freezes: from then on nothing more reaches the
 * real files (writes stay in memory, syncs do nothing, truncates and deletes are swallowed),
 * so the process can close its runtime as a dead one never would, and nothing of that
 * reaches the disk. Then each write still pending at the cut is independently kept, dropped
 * or torn (some of its 512-byte sectors written, some not, some with garbage) into the real
 * file, and the file is opened by a fresh runtime on the plain unix VFS.
 *
 * Each cut runs the real thing: an aftersale runtime on a libuv loop, attached to the file
 * with as_runtime_attach_store (the SQLite engine, its writer and syncer threads, sync()
 * through SQLite's xSync of the log -- see sqlite_store.c for why it goes through the VFS),
 * fed random commands through as_runtime_submit: orders created, shipped, delivered; cases
 * opened and driven through agree, ship_return, confirm_return, refund_succeeded. A second
 * connection checkpoints now and then, so that cuts also land in a checkpoint's writes to
 * the main file. The shim freezes at a random write or sync (counted from the open on), so
 * the cut lands anywhere: inside a transaction, between a commit and its sync, in a
 * checkpoint, in the open itself. A command counts as acknowledged when it was answered 0
 * before the freeze.
 *
 * After each cut: the file opens (as_runtime_attach_store, which refuses a damaged file),
 * PRAGMA quick_check says ok, every acknowledged order is there at least as far as it was
 * acknowledged, and every case reads (as_case_get_json) as one of the states it passed
 * through in memory, at or after its last acknowledged one: nothing acknowledged is lost and
 * nothing is made up. What was found becomes the ledger the next cut starts from. A file
 * lives through FILE_CUTS cuts (its recovered state recovered again), then a new one starts.
 *
 * Ends with "powercut: N cuts, C commands, A acknowledged, L lost (...)"; exit status 0 only
 * when nothing was lost or damaged. Environment: POWERCUT_CUTS=N overrides CUTS (a long
 * run), POWERCUT_SEED=N replays a seed (printed first): the workload, the freeze point and
 * the keep/drop/tear choices follow from it; which writes were still pending at the freeze
 * also depends on how the store's threads ran. */
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "aftersale/aftersale.h"
#include "core/runtime.h"
#include "splitmix.h"

#define FILE_CUTS 50     /* cuts one database file lives through */
#define FREEZE_MAX 600   /* the freeze comes at a write or sync in 1..FREEZE_MAX */
#define MAX_COMMANDS 400 /* per cut, in case the freeze is late */
#define SECTOR 512       /* what a torn write keeps or loses at a time */

/* ==========================================================================================
 * Randomness: one stream per cut, from the seed (splitmix64)
 * ======================================================================================== */

/* rng and rng_next: splitmix.h */

/* 0..n-1 */
static unsigned rng_below(rng *r, unsigned n)
{
    return (unsigned)(rng_next(r) % n);
}

/* ==========================================================================================
 * The shim VFS
 * ======================================================================================== */

/* One write no xSync has flushed yet. */
typedef struct pending {
    struct pending *next;
    sqlite3_int64 off;
    int len;
    int after_cut; /* made after the freeze: never reaches the disk */
    unsigned char data[];
} pending;

/* One file by name. Its pending writes outlive its handles, as a page cache outlives a
 * close(): a file closed unsynced is still not on disk. */
typedef struct node {
    struct node *next;
    char *path;           /* owned */
    pending *head, *tail; /* owned, in write order */
} node;

typedef struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* the unix VFS's file, in the same allocation right after this */
    node *n;            /* NULL for a file without a name (a temp file): passed through */
} shim_file;

static struct {
    sqlite3_vfs vfs;
    sqlite3_vfs *unix_vfs;
    pthread_mutex_t mu;  /* guards the rest: the writer, the syncer and the loop all call in */
    node *nodes;         /* owned */
    long ops, freeze_at; /* writes, syncs, truncates and deletes so far; the one that freezes */
    int frozen;
    long kept, dropped, torn; /* what the cuts did with pending writes */
} shim = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Counts one operation that would change the disk; 1 when it comes at or after the freeze. */
static int shim_op_frozen(void)
{
    if (!shim.frozen && ++shim.ops >= shim.freeze_at) shim.frozen = 1;
    return shim.frozen;
}

static node *node_get(const char *path)
{
    for (node *n = shim.nodes; n; n = n->next)
        if (strcmp(n->path, path) == 0) return n;
    node *n = calloc(1, sizeof *n);
    if (n == NULL || (n->path = strdup(path)) == NULL) {
        free(n);
        return NULL;
    }
    n->next = shim.nodes;
    shim.nodes = n;
    return n;
}

static void node_forget(node *n)
{
    for (pending *p = n->head, *next; p; p = next) {
        next = p->next;
        free(p);
    }
    n->head = n->tail = NULL;
}

/* The file as the process sees it: the real file's size or the end of a pending write. */
static int logical_size(shim_file *f, sqlite3_int64 *size)
{
    int rc = f->real->pMethods->xFileSize(f->real, size);
    for (pending *p = f->n ? f->n->head : NULL; rc == SQLITE_OK && p; p = p->next)
        if (p->off + p->len > *size) *size = p->off + p->len;
    return rc;
}

static int shim_close(sqlite3_file *file)
{
    shim_file *f = (shim_file *)file;
    return f->real->pMethods->xClose(f->real);
}

static int shim_read(sqlite3_file *file, void *buf, int amt, sqlite3_int64 off)
{
    shim_file *f = (shim_file *)file;
    pthread_mutex_lock(&shim.mu);
    memset(buf, 0, (size_t)amt);
    int rc = f->real->pMethods->xRead(f->real, buf, amt, off);
    sqlite3_int64 size = 0;
    if (rc == SQLITE_OK || rc == SQLITE_IOERR_SHORT_READ) {
        for (pending *p = f->n ? f->n->head : NULL; p; p = p->next) {
            sqlite3_int64 lo = p->off > off ? p->off : off;
            sqlite3_int64 hi = p->off + p->len < off + amt ? p->off + p->len : off + amt;
            if (lo < hi)
                memcpy((char *)buf + (lo - off), p->data + (lo - p->off), (size_t)(hi - lo));
        }
        rc = logical_size(f, &size);
        if (rc == SQLITE_OK && off + amt > size) rc = SQLITE_IOERR_SHORT_READ;
    }
    pthread_mutex_unlock(&shim.mu);
    return rc;
}

static int shim_write(sqlite3_file *file, const void *buf, int amt, sqlite3_int64 off)
{
    shim_file *f = (shim_file *)file;
    if (f->n == NULL) return f->real->pMethods->xWrite(f->real, buf, amt, off);
    pending *p = malloc(sizeof *p + (size_t)amt); /* owned by the node's list */
    if (p == NULL) return SQLITE_NOMEM;
    p->next = NULL;
    p->off = off;
    p->len = amt;
    memcpy(p->data, buf, (size_t)amt);
    pthread_mutex_lock(&shim.mu);
    p->after_cut = shim_op_frozen();
    if (f->n->tail)
        f->n->tail->next = p;
    else
        f->n->head = p;
    f->n->tail = p;
    pthread_mutex_unlock(&shim.mu);
    return SQLITE_OK;
}

/* What the disk does at an fsync: the pending writes reach the real file. The real file is
 * not synced itself: it stands for the disk, and the test never cuts the machine's power. */
static int shim_sync(sqlite3_file *file, int flags)
{
    shim_file *f = (shim_file *)file;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&shim.mu);
    if (f->n && !shim_op_frozen()) {
        for (pending *p = f->n->head; p && rc == SQLITE_OK; p = p->next)
            rc = f->real->pMethods->xWrite(f->real, p->data, p->len, p->off);
        node_forget(f->n);
    }
    pthread_mutex_unlock(&shim.mu);
    return rc;
}

/* A truncate reaches the disk at once, and cuts the pending writes past the new end. SQLite
 * truncates the main file only at a checkpoint's end, just before syncing it, and never the
 * log while journal_size_limit is unset, so this is no kinder to it than a real disk. */
static int shim_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    shim_file *f = (shim_file *)file;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&shim.mu);
    if (f->n == NULL || !shim_op_frozen()) {
        for (pending *p = f->n ? f->n->head : NULL; p; p = p->next)
            if (p->off + p->len > size) p->len = p->off >= size ? 0 : (int)(size - p->off);
        rc = f->real->pMethods->xTruncate(f->real, size);
    }
    pthread_mutex_unlock(&shim.mu);
    return rc;
}

static int shim_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    shim_file *f = (shim_file *)file;
    pthread_mutex_lock(&shim.mu);
    int rc = logical_size(f, size);
    pthread_mutex_unlock(&shim.mu);
    return rc;
}

/* The rest is the unix VFS's own: locks, file controls, the -shm (which SQLite rebuilds from
 * the log when the first connection opens the file after a crash). */
#define REAL(file) (((shim_file *)(file))->real)
static int shim_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int shim_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int shim_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int shim_fcntl(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int shim_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int shim_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **out)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, out);
}
static int shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int shim_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

/* Version 2: no xFetch, so SQLite never maps the real file and reads past the shim. */
static const sqlite3_io_methods shim_io = {
    .iVersion = 2,
    .xClose = shim_close,
    .xRead = shim_read,
    .xWrite = shim_write,
    .xTruncate = shim_truncate,
    .xSync = shim_sync,
    .xFileSize = shim_file_size,
    .xLock = shim_lock,
    .xUnlock = shim_unlock,
    .xCheckReservedLock = shim_reserved,
    .xFileControl = shim_fcntl,
    .xSectorSize = shim_sector,
    .xDeviceCharacteristics = shim_device,
    .xShmMap = shim_shm_map,
    .xShmLock = shim_shm_lock,
    .xShmBarrier = shim_shm_barrier,
    .xShmUnmap = shim_shm_unmap,
};

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
                     int *out_flags)
{
    shim_file *f = (shim_file *)file;
    f->real = (sqlite3_file *)(f + 1);
    f->n = NULL;
    int rc = shim.unix_vfs->xOpen(shim.unix_vfs, name, f->real, flags, out_flags);
    if (rc == SQLITE_OK && name) {
        pthread_mutex_lock(&shim.mu);
        if ((f->n = node_get(name)) == NULL) rc = SQLITE_NOMEM;
        pthread_mutex_unlock(&shim.mu);
    }
    if (rc != SQLITE_OK && f->real->pMethods) f->real->pMethods->xClose(f->real);
    file->pMethods = rc == SQLITE_OK ? &shim_io : NULL;
    return rc;
}

/* A delete reaches the disk at once, with whatever was pending for the file. */
static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    int rc = SQLITE_OK;
    pthread_mutex_lock(&shim.mu);
    if (!shim_op_frozen()) {
        for (node *n = shim.nodes; n; n = n->next)
            if (strcmp(n->path, name) == 0) node_forget(n);
        rc = shim.unix_vfs->xDelete(shim.unix_vfs, name, sync_dir);
    }
    pthread_mutex_unlock(&shim.mu);
    return rc;
}

static void shim_init(void)
{
    shim.unix_vfs = sqlite3_vfs_find("unix");
    shim.vfs = *shim.unix_vfs; /* names, randomness, time: the unix VFS's */
    shim.vfs.pNext = NULL;
    shim.vfs.zName = "powercut";
    shim.vfs.szOsFile = (int)sizeof(shim_file) + shim.unix_vfs->szOsFile;
    shim.vfs.xOpen = shim_open;
    shim.vfs.xDelete = shim_delete;
}

/* Makes the shim the default VFS, to freeze at its `freeze_at`-th operation. */
static void shim_arm(long freeze_at)
{
    pthread_mutex_lock(&shim.mu);
    shim.ops = 0;
    shim.freeze_at = freeze_at;
    shim.frozen = 0;
    pthread_mutex_unlock(&shim.mu);
    sqlite3_vfs_register(&shim.vfs, 1);
}

static void shim_freeze(void)
{
    pthread_mutex_lock(&shim.mu);
    shim.frozen = 1;
    pthread_mutex_unlock(&shim.mu);
}

static int shim_frozen(void)
{
    pthread_mutex_lock(&shim.mu);
    int f = shim.frozen;
    pthread_mutex_unlock(&shim.mu);
    return f;
}

/* Writes what the disk kept of `p` into `fd`: all of it, none, or some of its sectors. */
static void cut_one(int fd, const pending *p, rng *r)
{
    unsigned fate = rng_below(r, 10); /* 0-3 kept, 4-6 dropped, 7-9 torn */
    if (fate >= 4 && fate <= 6) {
        shim.dropped++;
        return;
    }
    if (fate < 4) {
        shim.kept++;
        if (pwrite(fd, p->data, (size_t)p->len, p->off) != p->len) perror("powercut: pwrite");
        return;
    }
    shim.torn++;
    for (sqlite3_int64 at = p->off, end = p->off + p->len; at < end;) {
        sqlite3_int64 next = (at / SECTOR + 1) * SECTOR;
        if (next > end) next = end;
        unsigned what = rng_below(r, 4); /* 0-1 lost, 2 written, 3 garbage */
        if (what >= 2) {
            unsigned char sector[SECTOR];
            const unsigned char *src = p->data + (at - p->off);
            if (what == 3) {
                for (sqlite3_int64 i = 0; i < next - at; i++)
                    sector[i] = (unsigned char)rng_next(r);
                src = sector;
            }
            if (pwrite(fd, src, (size_t)(next - at), at) != next - at) perror("powercut: pwrite");
        }
        at = next;
    }
}

/* The power cut itself, once every handle is closed: the pending writes made before the
 * freeze are kept, dropped or torn into the real files; the shim stops being the default. */
static void shim_cut(rng *r)
{
    sqlite3_vfs_unregister(&shim.vfs);
    pthread_mutex_lock(&shim.mu);
    for (node *n = shim.nodes, *next; n; n = next) {
        next = n->next;
        int fd = n->head ? open(n->path, O_WRONLY | O_CLOEXEC) : -1;
        for (pending *p = n->head; fd >= 0 && p; p = p->next)
            if (!p->after_cut && p->len > 0) cut_one(fd, p, r);
        if (fd >= 0) close(fd);
        node_forget(n);
        free(n->path);
        free(n);
    }
    shim.nodes = NULL;
    pthread_mutex_unlock(&shim.mu);
}

/* ==========================================================================================
 * The ledger: what the runtime did in memory, and what of it was acknowledged
 * ======================================================================================== */

enum { ST_REQUESTED, ST_AWAITING, ST_RETURNING, ST_REFUNDING, ST_REFUNDED, ST_COUNT };
static const char *const STATE[ST_COUNT] = {"requested", "awaiting_return", "returning",
                                            "refunding", "refunded"};
/* the command that moves a case on from each state */
static const struct {
    const char *action, *who; /* who NULL: the order's buyer */
} NEXT[ST_COUNT] = {
    [ST_REQUESTED] = {"agree", "merchant:S1"},
    [ST_AWAITING] = {"ship_return", NULL},
    [ST_RETURNING] = {"confirm_return", "merchant:S1"},
    [ST_REFUNDING] = {"refund_succeeded", "platform"},
};

typedef struct point {
    int64_t version;
    int state;
} point;

typedef struct lcase {
    char id[16];
    int order;
    point *seen; /* owned: the states it passed through in memory, oldest first */
    size_t n, cap;
    size_t acked; /* seen[0..acked-1] were acknowledged (or found after a cut) */
} lcase;

typedef struct lorder {
    char id[16];
    int stage, acked; /* 1 created, 2 shipped, 3 delivered: as far as memory, the answers went */
    size_t the_case;  /* 1 + the index of its case in the ledger, 0 none (one item: one case) */
} lorder;

/* An answer owed: which ledger entry it acknowledges, and how far. */
typedef struct ticket {
    int is_case, index;
    size_t upto; /* a case: seen[upto-1]; an order: its stage */
} ticket;

static struct {
    lorder *orders;
    lcase *cases;
    size_t norders, ncases, cap_orders, cap_cases; /* both arrays owned */
    ticket tickets[MAX_COMMANDS];
    int ntickets;
    long commands, acknowledged, lost, damaged;
    int order_seq, case_seq;
} L;

static void *grow(void *v, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return v;
    size_t n = *cap ? *cap * 2 : 64;
    void *nv = realloc(v, n * size);
    if (nv == NULL) {
        fprintf(stderr, "powercut: out of memory\n");
        exit(2);
    }
    *cap = n;
    return nv;
}

static void on_answer(void *ud, int code, const char *message)
{
    ticket *t = ud;
    (void)message;
    if (code != 0 || shim_frozen()) return; /* answered after the cut: proves nothing */
    L.acknowledged++;
    if (t->is_case) {
        lcase *c = &L.cases[t->index];
        if (t->upto > c->acked) c->acked = t->upto;
    } else if ((int)t->upto > L.orders[t->index].acked) {
        L.orders[t->index].acked = (int)t->upto;
    }
}

/* ==========================================================================================
 * A runtime on its own loop
 * ======================================================================================== */

typedef struct proc {
    uv_loop_t loop;
    uv_idle_t spin; /* keeps uv_run from sleeping while answers are owed */
    as_runtime *rt;
} proc;

static void spin_cb(uv_idle_t *h)
{
    (void)h;
}

static const char *g_packs;
static uint64_t g_seed;
static int g_cut;

static int proc_start(proc *p, const char *db, as_error *err)
{
    memset(p, 0, sizeof *p);
    uv_loop_init(&p->loop);
    uv_idle_init(&p->loop, &p->spin);
    uv_idle_start(&p->spin, spin_cb);
    as_options o = {0};
    o.loop = &p->loop;
    o.lua_memory = 8 << 20;
    if ((p->rt = as_runtime_new(&o, err)) == NULL) return -1;
    int rc = as_runtime_load_packs_dir(p->rt, g_packs, err);
    return rc ? rc : as_runtime_attach_store(p->rt, db, err);
}

static void proc_stop(proc *p)
{
    as_runtime_free(p->rt); /* lets what is in flight land first (durable.c) */
    p->rt = NULL;
    uv_close((uv_handle_t *)&p->spin, NULL);
    uv_run(&p->loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&p->loop) != 0) fprintf(stderr, "powercut: a handle was left open\n");
}

static int case_state(const char *name)
{
    for (int s = 0; s < ST_COUNT; s++)
        if (strcmp(STATE[s], name) == 0) return s;
    return -1;
}

/* The case as the runtime holds it now; 0 when it is unknown. */
static int read_case(as_runtime *rt, const char *id, point *out)
{
    char *text = as_case_get_json(rt, id);
    if (text == NULL) return 0;
    json_t *j = json_loads(text, 0, NULL);
    as_free(text);
    out->version = json_integer_value(json_object_get(j, "version"));
    const char *st = json_string_value(json_object_get(j, "state"));
    out->state = st ? case_state(st) : -1;
    json_decref(j);
    return 1;
}

static int order_stage(as_runtime *rt, const char *id)
{
    const as_order *o = as__order_get(rt, id);
    return o == NULL ? 0 : 1 + (o->shipped_at != AS_UNSET) + (o->delivered_at != AS_UNSET);
}

/* ==========================================================================================
 * The workload
 * ======================================================================================== */

/* Submits `req` (freed here) and, when it applied, notes what its answer will acknowledge. */
static void submit(proc *p, json_t *req, int is_case, int index)
{
    char *text = json_dumps(req, JSON_COMPACT); /* owned here */
    json_decref(req);
    ticket *t = &L.tickets[L.ntickets++];
    *t = (ticket){is_case, index, 0};
    L.commands++;
    int rc = as_runtime_submit(p->rt, text, on_answer, t);
    free(text);
    if (rc != 0) return;
    if (!is_case) {
        lorder *o = &L.orders[index];
        t->upto = (size_t)(o->stage = order_stage(p->rt, o->id));
        return;
    }
    lcase *c = &L.cases[index];
    point now;
    if (!read_case(p->rt, c->id, &now)) return;
    c->seen = grow(c->seen, &c->cap, c->n + 1, sizeof *c->seen);
    c->seen[c->n++] = now;
    t->upto = c->n;
}

static void new_order(proc *p)
{
    L.orders = grow(L.orders, &L.cap_orders, L.norders + 1, sizeof *L.orders);
    lorder *o = &L.orders[L.norders];
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "O%d", ++L.order_seq);
    char buyer[16];
    snprintf(buyer, sizeof buyer, "B%d", L.order_seq);
    json_t *order =
        json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:i, s:i}], s:i, s:b}", "id", o->id, "shop", "S1",
                  "buyer", buyer, "items", "sku", "T1", "category", "apparel", "qty", 1, "price",
                  19900, "shipping_fee", 0, "freight_insurance", 1);
    submit(p, json_pack("{s:s, s:o}", "op", "order.create", "order", order), 0, (int)L.norders++);
}

static void buyer_of(const lorder *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "buyer:B%s", o->id + 1);
}

/* One random command on the ledger's orders and cases. */
static void one_command(proc *p, rng *r)
{
    unsigned pick = rng_below(r, 100);
    if (pick < 15 || L.norders == 0) {
        new_order(p);
        return;
    }
    if (pick < 45) {
        int i = (int)rng_below(r, (unsigned)L.norders);
        lorder *o = &L.orders[i];
        char who[24];
        if (o->stage == 1 || o->stage == 2) {
            submit(p,
                   json_pack("{s:s, s:s}", "op", o->stage == 1 ? "order.ship" : "order.deliver",
                             "order", o->id),
                   0, i);
        } else if (o->stage == 3 && !o->the_case) {
            L.cases = grow(L.cases, &L.cap_cases, L.ncases + 1, sizeof *L.cases);
            lcase *c = &L.cases[L.ncases];
            memset(c, 0, sizeof *c);
            snprintf(c->id, sizeof c->id, "C%d", ++L.case_seq);
            c->order = i;
            o->the_case = L.ncases + 1;
            buyer_of(o, who, sizeof who);
            json_t *cs = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:i}]}", "id", c->id, "order",
                                   o->id, "type", "return_refund", "reason", "no_reason", "items",
                                   "sku", "T1", "qty", 1);
            submit(p, json_pack("{s:s, s:s, s:o}", "op", "case.open", "as", who, "case", cs), 1,
                   (int)L.ncases++);
        }
        return;
    }
    if (L.ncases == 0) return;
    int i = (int)rng_below(r, (unsigned)L.ncases);
    lcase *c = &L.cases[i];
    if (c->n == 0) return; /* its open was refused */
    int st = c->seen[c->n - 1].state;
    if (st < 0 || NEXT[st].action == NULL) return;
    char who[24];
    if (NEXT[st].who)
        snprintf(who, sizeof who, "%s", NEXT[st].who);
    else
        buyer_of(&L.orders[c->order], who, sizeof who);
    json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "op", "case.act", "as", who, "case", c->id,
                            "action", NEXT[st].action);
    if (st == ST_AWAITING)
        json_object_set_new(req, "payload",
                            json_pack("{s:s, s:s}", "carrier", "SF", "tracking", c->id));
    submit(p, req, 1, i);
}

/* Runs commands until the shim freezes (or MAX_COMMANDS): a few per loop turn, a turn or
 * a few between them, so that batches queue behind the writer and the syncer; now and then
 * a second connection checkpoints. */
static void workload(proc *p, sqlite3 *ckpt, rng *r)
{
    while (!shim_frozen() && L.ntickets + 4 <= MAX_COMMANDS) {
        for (unsigned k = 1 + rng_below(r, 4); k > 0; k--)
            one_command(p, r);
        uv_run(&p->loop, UV_RUN_NOWAIT); /* the turn ends: its batch goes to the writer */
        if (rng_below(r, 2)) /* a client waiting for its answers; else more come at once */
            while (!shim_frozen() && !as_runtime_idle(p->rt))
                uv_run(&p->loop, UV_RUN_ONCE);
        if (ckpt && rng_below(r, 8) == 0)
            sqlite3_exec(ckpt, "PRAGMA wal_checkpoint(PASSIVE)", NULL, NULL, NULL);
    }
    shim_freeze();
}

/* ==========================================================================================
 * After a cut
 * ======================================================================================== */

static void lost(const char *what, const char *id, const char *detail)
{
    fprintf(stderr, "powercut: cut %d (POWERCUT_SEED=%" PRIu64 "): %s %s: %s\n", g_cut, g_seed,
            what, id, detail);
    L.lost++;
}

static int quick_check_ok(const char *db)
{
    sqlite3 *h;
    sqlite3_stmt *st;
    int ok = 0;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK) {
        const unsigned char *says =
            sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        ok = says && strcmp((const char *)says, "ok") == 0 && sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return ok;
}

/* Checks every ledger entry against what the restarted runtime holds, and makes that the
 * ledger. */
static void verify(as_runtime *rt)
{
    char detail[160];
    for (size_t i = 0; i < L.norders; i++) {
        lorder *o = &L.orders[i];
        int got = order_stage(rt, o->id);
        if (got < o->acked || got > o->stage) {
            snprintf(detail, sizeof detail, "found at stage %d, acknowledged %d, reached %d", got,
                     o->acked, o->stage);
            lost("order", o->id, detail);
        }
        o->stage = o->acked = got;
    }
    for (size_t i = 0; i < L.ncases; i++) {
        lcase *c = &L.cases[i];
        point now;
        size_t k = c->n;
        if (!read_case(rt, c->id, &now)) {
            if (c->acked) lost("case", c->id, "gone, though its open was acknowledged");
            c->n = c->acked = 0;
            if (L.orders[c->order].the_case == i + 1) L.orders[c->order].the_case = 0;
            continue;
        }
        for (k = c->acked ? c->acked - 1 : 0; k < c->n; k++)
            if (c->seen[k].version == now.version && c->seen[k].state == now.state) break;
        if (k == c->n) {
            snprintf(detail, sizeof detail,
                     "found %s at version %" PRId64 ", acknowledged up to version %" PRId64
                     ", reached %" PRId64,
                     now.state >= 0 ? STATE[now.state] : "?", now.version,
                     c->acked ? c->seen[c->acked - 1].version : 0,
                     c->n ? c->seen[c->n - 1].version : 0);
            lost("case", c->id, detail);
            c->seen = grow(c->seen, &c->cap, 1, sizeof *c->seen);
            c->seen[0] = now;
            k = 0;
        }
        c->n = c->acked = k + 1;
    }
}

static void reset_ledger(void)
{
    for (size_t i = 0; i < L.ncases; i++)
        free(L.cases[i].seen);
    L.norders = L.ncases = 0;
}

/* One cut: run until the freeze, close, cut, reopen plainly and check. */
static void one_cut(const char *db, rng *r)
{
    proc p;
    as_error err = {0};
    L.ntickets = 0;
    shim_arm(1 + (long)rng_below(r, FREEZE_MAX));
    if (proc_start(&p, db, &err) == 0) {
        sqlite3 *ckpt = NULL;
        if (sqlite3_open_v2(db, &ckpt, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
            sqlite3_close(ckpt);
            ckpt = NULL;
        }
        workload(&p, ckpt, r);
        sqlite3_close(ckpt);
    } else if (!shim_frozen()) {
        fprintf(stderr, "powercut: cut %d: opening %s before the cut: %s\n", g_cut, db, err.msg);
        L.damaged++;
    }
    shim_freeze();
    if (p.rt) proc_stop(&p);
    shim_cut(r);

    memset(&err, 0, sizeof err);
    if (proc_start(&p, db, &err) != 0) {
        fprintf(stderr, "powercut: cut %d (POWERCUT_SEED=%" PRIu64 "): %s does not open: %s\n",
                g_cut, g_seed, db, err.msg);
        L.damaged++;
    } else if (!quick_check_ok(db)) {
        fprintf(stderr, "powercut: cut %d (POWERCUT_SEED=%" PRIu64 "): quick_check failed\n", g_cut,
                g_seed);
        L.damaged++;
    } else {
        verify(p.rt);
    }
    if (p.rt) proc_stop(&p);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: powercut PACKS_DIR [CUTS]\n");
        return 2;
    }
    g_packs = argv[1];
    const char *env = getenv("POWERCUT_CUTS");
    int cuts = env ? atoi(env) : argc > 2 ? atoi(argv[2]) : 200;
    env = getenv("POWERCUT_SEED");
    g_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    printf("powercut: seed %" PRIu64 " (POWERCUT_SEED=%" PRIu64 " replays it)\n", g_seed, g_seed);
    fflush(stdout);
    shim_init();

    char dir[] = "/tmp/as-powercut-XXXXXX", db[64];
    if (mkdtemp(dir) == NULL) {
        perror("powercut: mkdtemp");
        return 2;
    }
    for (g_cut = 0; g_cut < cuts; g_cut++) {
        if (g_cut % FILE_CUTS == 0) { /* a new file, a new ledger */
            reset_ledger();
            snprintf(db, sizeof db, "%s/pc%d.db", dir, g_cut / FILE_CUTS);
        }
        long damaged = L.damaged;
        rng r = {g_seed + (uint64_t)g_cut * 0x100000001b3ull};
        one_cut(db, &r);
        if (L.damaged != damaged) g_cut += FILE_CUTS - 1 - g_cut % FILE_CUTS; /* next file */
    }
    reset_ledger();
    free(L.orders);
    free(L.cases);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("powercut: %d cuts, %ld commands, %ld acknowledged, %ld lost, %ld damaged "
           "(pending writes at the cuts: %ld kept, %ld dropped, %ld torn)\n",
           cuts, L.commands, L.acknowledged, L.lost, L.damaged, shim.kept, shim.dropped, shim.torn);
    return L.lost || L.damaged ? 1 : 0;
}
