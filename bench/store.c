/* store.c -- the durable store benchmark (a benchmark, not a test).
 *
 * Prints `key value unit` lines:
 *   store.fsync_per_sec               the disk's raw rate: 4 KiB write + fdatasync, one file
 *   store.durable_transitions_per_sec return-and-refund cases submitted as JSON requests to a
 *                                     runtime on a SQLite file, counted when acknowledged,
 *                                     i.e. after their group commit is on disk
 *   store.recovery_seconds_1m         attaching a fresh runtime to a file holding 1,000,000
 *                                     open cases with their pending deadlines
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "core/runtime.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench: %s: %s\n", what, msg);
    exit(1);
}

static void fsync_rate(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/fsync.bin", dir);
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    if (fd < 0) die("fsync", path);
    char block[4096];
    memset(block, 'x', sizeof block);
    long n = 0;
    double start = now_s(), secs;
    do {
        if (pwrite(fd, block, sizeof block, (off_t)(n % 256) * 4096) != (ssize_t)sizeof block ||
            fdatasync(fd) != 0)
            die("fsync", "write failed");
        n++;
    } while ((secs = now_s() - start) < 1.0);
    close(fd);
    unlink(path);
    printf("store.fsync_per_sec %.0f fsyncs/s\n", n / secs);
}

/* ------------------------------------------------------------------------------------------
 * Durable transitions: a driver feeds CHUNK requests per loop turn, as a busy server would
 * ---------------------------------------------------------------------------------------- */

#define CHUNK 2000

typedef struct drive {
    as_runtime *rt;
    uv_loop_t *loop;
    uv_idle_t idle;
    long n, next, acked, failed;
    int step; /* 0 orders, 1 open, 2 agree, 3 ship, 4 confirm, 5 pay */
    const char *prefix;
} drive;

static void done_cb(void *ud, int code, const char *msg)
{
    drive *d = ud;
    if (code) {
        if (d->failed++ == 0) fprintf(stderr, "bench: refused: %s %s\n", as_err_name(code), msg);
    }
    d->acked++;
}

static void request(drive *d, long i, char *buf, size_t len)
{
    const char *p = d->prefix;
    switch (d->step) {
    case 0:
        snprintf(buf, len,
                 "{\"op\":\"order.create\",\"order\":{\"id\":\"%sO%ld\",\"shop\":\"S%ld\","
                 "\"buyer\":\"B%ld\",\"items\":[{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":1,"
                 "\"price\":19900}]}}",
                 p, i, i % 100, i % 100000);
        break;
    case 1:
        snprintf(buf, len, "{\"op\":\"order.deliver\",\"order\":\"%sO%ld\"}", p, i);
        break;
    case 2:
        snprintf(buf, len,
                 "{\"op\":\"case.open\",\"as\":\"buyer:B%ld\",\"case\":{\"id\":\"%sC%ld\",\"order\":"
                 "\"%sO%ld\",\"type\":\"return_refund\",\"reason\":\"no_reason\",\"items\":[{\"sku\":"
                 "\"T1\",\"qty\":1}]}}",
                 i % 100000, p, i, p, i);
        break;
    case 3:
        snprintf(buf, len,
                 "{\"op\":\"case.act\",\"as\":\"merchant:S%ld\",\"case\":\"%sC%ld\",\"action\":\"agree\"}",
                 i % 100, p, i);
        break;
    case 4:
        snprintf(buf, len,
                 "{\"op\":\"case.act\",\"as\":\"buyer:B%ld\",\"case\":\"%sC%ld\",\"action\":"
                 "\"ship_return\",\"payload\":{\"carrier\":\"SF\",\"tracking\":\"SF1\"}}",
                 i % 100000, p, i);
        break;
    case 5:
        snprintf(buf, len,
                 "{\"op\":\"case.act\",\"as\":\"merchant:S%ld\",\"case\":\"%sC%ld\",\"action\":"
                 "\"confirm_return\"}",
                 i % 100, p, i);
        break;
    default:
        snprintf(buf, len,
                 "{\"op\":\"case.act\",\"as\":\"platform\",\"case\":\"%sC%ld\",\"action\":"
                 "\"refund_succeeded\"}",
                 p, i);
    }
}

static void idle_cb(uv_idle_t *h)
{
    drive *d = h->data;
    char buf[512];
    for (int k = 0; k < CHUNK && d->next < d->n; k++, d->next++) {
        request(d, d->next, buf, sizeof buf);
        as_runtime_submit(d->rt, buf, done_cb, d);
    }
    if (d->next == d->n) uv_idle_stop(h);
}

/* Submits steps [from, to] for n cases; returns seconds until the last is acknowledged. */
static double run_steps(as_runtime *rt, uv_loop_t *loop, long n, int from, int to,
                        const char *prefix, long *transitions)
{
    drive d = {.rt = rt, .loop = loop, .n = n, .prefix = prefix};
    uint64_t t0 = rt->stats.transitions;
    double start = now_s();
    for (d.step = from; d.step <= to; d.step++) {
        d.next = d.acked = 0;
        uv_idle_init(loop, &d.idle);
        d.idle.data = &d;
        uv_idle_start(&d.idle, idle_cb);
        while (d.acked < n) uv_run(loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&d.idle, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    if (d.failed) die("durable", "some requests were refused");
    *transitions = (long)(rt->stats.transitions - t0);
    return now_s() - start;
}

static as_runtime *open_rt(uv_loop_t *loop, const char *packs, const char *db)
{
    as_options o = {0};
    o.loop = loop;
    as_error err = {0};
    as_runtime *rt = as_runtime_new(&o, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, packs, &err) != 0) die("runtime", err.msg);
    double start = now_s();
    if (as_runtime_attach_store(rt, db, &err) != 0) die("attach", err.msg);
    if (getenv("BENCH_VERBOSE"))
        fprintf(stderr, "bench: attach took %.2f s\n", now_s() - start);
    return rt;
}

static void close_rt(as_runtime *rt, uv_loop_t *loop)
{
    while (!as_runtime_idle(rt)) uv_run(loop, UV_RUN_ONCE);
    as_runtime_free(rt);
    uv_run(loop, UV_RUN_NOWAIT);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_store PACKS_DIR WORK_DIR [CASES [OPEN_CASES]]\n");
        return 2;
    }
    const char *packs = argv[1], *dir = argv[2];
    long n = argc > 3 ? atol(argv[3]) : 100000;
    long open_n = argc > 4 ? atol(argv[4]) : 1000000;
    char db[4096];
    fsync_rate(dir);

    uv_loop_t loop;
    uv_loop_init(&loop);
    snprintf(db, sizeof db, "%s/bench-durable.db", dir);
    unlink(db);
    as_runtime *rt = open_rt(&loop, packs, db);
    long tr;
    run_steps(rt, &loop, n, 0, 1, "", &tr); /* orders, delivered: not timed */
    double secs = run_steps(rt, &loop, n, 2, 6, "", &tr);
    printf("store.durable_transitions_per_sec %.0f transitions/s\n", tr / secs);
    close_rt(rt, &loop);

    /* 1M open cases, each with its pending merchant_response deadline */
    snprintf(db, sizeof db, "%s/bench-recovery.db", dir);
    unlink(db);
    rt = open_rt(&loop, packs, db);
    run_steps(rt, &loop, open_n, 0, 2, "", &tr);
    size_t pending = rt->sched.len;
    close_rt(rt, &loop);
    double start = now_s();
    rt = open_rt(&loop, packs, db);
    double rec = now_s() - start;
    if (rt->sched.len != pending || rt->cases.len != (size_t)open_n)
        die("recovery", "the restored runtime lacks cases or deadlines");
    printf("store.recovery_seconds_1m %.2f s\n", rec * 1000000.0 / (double)open_n);
    printf("# recovered %zu open cases and %zu pending deadlines in %.2f s\n", rt->cases.len,
           rt->sched.len, rec);
    close_rt(rt, &loop);
    uv_loop_close(&loop);
    unlink(db);
    snprintf(db, sizeof db, "%s/bench-durable.db", dir);
    unlink(db);
    return 0;
}
