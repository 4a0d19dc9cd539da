/* soak.c -- the retention soak (a benchmark, not a test).
 *
 * Runs COMMANDS keyed commands through a durable runtime on a SQLite file, as a busy platform
 * would: each case is an order created and delivered, a refund_only case opened and agreed
 * (a refund instruction in the outbox), the instruction acknowledged, the refund reported
 * succeeded -- six commands, each with an idempotency key of its own. At every quarter it
 * prints what the file and the process hold:
 *   soak.<n>.db_bytes          the database and its log
 *   soak.<n>.idempotency_rows  keys remembered in the file (retention: flat)
 *   soak.<n>.outbox_rows       outbox entries in the file (settled and pruned: flat)
 *   soak.<n>.rss_kib           the process's resident memory
 *   soak.<n>.cases             cases held (the business data, which is kept)
 * With CASES, the workload runs through CASES cases only; every command after that is a
 * keyed retry of a settled case's `agree` (refused invalid_state, and remembered under its
 * key like any outcome): the business data stays fixed, so everything the soak prints must
 * stay flat.
 * Usage: bench_soak PACKS_DIR WORK_DIR [COMMANDS [RETENTION_MS [CASES]]] */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "core/runtime.h"

enum { STEPS = 6, CHUNK = 2000 };

typedef struct soak {
    as_runtime *rt;
    long next, acked, failed, commands;
} soak;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "soak: %s: %s\n", what, msg);
    exit(1);
}

static long cases_max; /* 0: every command is part of a new case's flow */

static void done_cb(void *ud, int code, const char *msg)
{
    soak *s = ud;
    if (code && s->failed++ == 0 && cases_max == 0) fprintf(stderr, "soak: refused: %s %s\n", as_err_name(code), msg);
    s->acked++;
}

/* Command `k` of the workload: case k / STEPS, step k % STEPS. New JSON. */
static json_t *command(long k)
{
    long i = k / STEPS;
    if (cases_max && i >= cases_max) { /* a retry: case k % cases_max, a fresh key */
        char cid[32], who[40], key[32];
        snprintf(cid, sizeof cid, "C%ld", k % cases_max);
        snprintf(who, sizeof who, "merchant:S%ld", (k % cases_max) % 100);
        snprintf(key, sizeof key, "k%ld", k);
        return json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "case.act", "as", who, "case", cid,
                         "action", "agree", "key", key);
    }
    char order[32], cid[32], shop[16], buyer[24], who[40], ack[48], key[32];
    snprintf(order, sizeof order, "O%ld", i);
    snprintf(cid, sizeof cid, "C%ld", i);
    snprintf(shop, sizeof shop, "S%ld", i % 100);
    snprintf(buyer, sizeof buyer, "B%ld", i % 100000);
    snprintf(key, sizeof key, "k%ld", k);
    json_t *j;
    switch (k % STEPS) {
    case 0:
        j = json_pack("{s:s, s:{s:s, s:s, s:s, s:[{s:s, s:s, s:i, s:i}]}}", "op", "order.create",
                      "order", "id", order, "shop", shop, "buyer", buyer, "items", "sku", "T1",
                      "category", "apparel", "qty", 1, "price", 19900);
        break;
    case 1: j = json_pack("{s:s, s:s}", "op", "order.deliver", "order", order); break;
    case 2:
        snprintf(who, sizeof who, "buyer:%s", buyer);
        j = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s, s:[{s:s, s:i}]}}", "op", "case.open",
                      "as", who, "case", "id", cid, "order", order, "type", "refund_only",
                      "reason", "not_received", "items", "sku", "T1", "qty", 1);
        break;
    case 3:
        snprintf(who, sizeof who, "merchant:%s", shop);
        j = json_pack("{s:s, s:s, s:s, s:s}", "op", "case.act", "as", who, "case", cid, "action",
                      "agree");
        break;
    case 4:
        snprintf(ack, sizeof ack, "%s:refund:1", cid);
        j = json_pack("{s:s, s:s}", "op", "outbox.ack", "key", ack);
        return j; /* an acknowledgement's key names the entry */
    default:
        j = json_pack("{s:s, s:s, s:s, s:s}", "op", "case.act", "as", "platform", "case", cid,
                      "action", "refund_succeeded");
    }
    json_object_set_new(j, "key", json_string(key));
    return j;
}

/* One turn: the six steps of the next CHUNK cases, in order (each command is applied as it
 * is submitted, so a case's later steps see its earlier ones). */
static void idle_cb(uv_idle_t *h)
{
    soak *s = h->data;
    long first = s->next / STEPS;
    for (int step = 0; step < STEPS; step++) {
        for (long c = 0; c < CHUNK; c++) {
            long k = (first + c) * STEPS + step;
            if (k >= s->commands) break;
            json_t *j = command(k);
            char *text = json_dumps(j, JSON_COMPACT);
            as_runtime_submit(s->rt, text, done_cb, s);
            free(text);
            json_decref(j);
        }
    }
    s->next += (long)CHUNK * STEPS;
    if (s->next >= s->commands) uv_idle_stop(h);
}

static long long file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static long long rows(const char *db, const char *table)
{
    sqlite3 *c;
    sqlite3_stmt *st;
    long long n = -1;
    char q[64];
    snprintf(q, sizeof q, "SELECT count(*) FROM %s", table); /* a fixed table name */
    if (sqlite3_open_v2(db, &c, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(c, q, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(c);
    return n;
}

static long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void report(const char *db, long done, const as_runtime *rt)
{
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", db);
    printf("soak.%ld.db_bytes %lld bytes\n", done, file_bytes(db) + file_bytes(wal));
    printf("soak.%ld.idempotency_rows %lld rows\n", done, rows(db, "idempotency"));
    printf("soak.%ld.outbox_rows %lld rows\n", done, rows(db, "outbox"));
    printf("soak.%ld.rss_kib %ld KiB\n", done, rss_kib());
    printf("soak.%ld.cases %zu cases\n", done, rt->cases.len);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_soak PACKS_DIR WORK_DIR [COMMANDS [RETENTION_MS]]\n");
        return 2;
    }
    const char *packs = argv[1];
    long commands = argc > 3 ? atol(argv[3]) : 1000000;
    long retention = argc > 4 ? atol(argv[4]) : 2000;
    cases_max = argc > 5 ? atol(argv[5]) : 0;
    char db[4096];
    snprintf(db, sizeof db, "%s/bench-soak.db", argv[2]);
    unlink(db);
    uv_loop_t loop;
    uv_loop_init(&loop);
    as_options o = {0};
    o.loop = &loop;
    o.idempotency_ms = retention;
    as_error err = {0};
    as_runtime *rt = as_runtime_new(&o, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, packs, &err) != 0 ||
        as_runtime_attach_store(rt, db, &err) != 0)
        die("runtime", err.msg);
    printf("# soak: %ld commands, idempotency retention %ld ms, %s\n", commands, retention,
           cases_max ? "a fixed set of cases, then keyed retries" : "a new case every six");
    soak s = {.rt = rt, .commands = commands};
    uv_idle_t idle;
    uv_idle_init(&loop, &idle);
    idle.data = &s;
    long quarter = commands / 4, mark = quarter;
    uv_idle_start(&idle, idle_cb);
    while (s.acked < commands) {
        uv_run(&loop, UV_RUN_ONCE);
        if (quarter > 0 && s.acked >= mark && mark <= commands) {
            report(db, mark, rt);
            mark += quarter;
        }
    }
    if (s.failed && cases_max == 0) die("workload", "some commands were refused");
    uv_close((uv_handle_t *)&idle, NULL);
    while (!as_runtime_idle(rt)) uv_run(&loop, UV_RUN_ONCE);
    as_runtime_free(rt);
    uv_run(&loop, UV_RUN_NOWAIT);
    return 0;
}
