/* crash.c -- the crash test of the durable runtime (docs/design.md#time-and-deadlines, docs/design.md#storage-and-durability, docs/pipe.md).
 *
 * usage: crash AFTERSALE_EXE PACKS_DIR [CYCLES]
 *
 * Drives `aftersale pipe --db FILE` on one SQLite file through CYCLES (default 200) crash
 * cycles. Each cycle starts the child on the same file, checks what the previous run left
 * there against a ledger of everything the child acknowledged, submits a seeded random
 * workload (orders created, shipped, delivered; apparel cases opened and driven through
 * agree, ship_return, confirm_return, refund_succeeded, some left in `requested` for the 300
 * ms merchant_response deadline to auto-agree; logistics tracking news; outbox.ack), and kills
 * the child with SIGKILL after a random number of requests, at once, after a short random
 * delay, or between answers. What the child wrote before it died counts as acknowledged:
 * the pipe is drained to EOF after the kill.
 *
 * After each restart it checks (each failure names the cycle, the seed, what was
 * acknowledged and what was found):
 *   - every acknowledged order and case exists (an order through its next event or case, or
 *     when abandoned by a stranger's case.open answering `forbidden`, not `not_found`, every
 *     10th cycle); every acknowledged action is in its case's history and the case's version
 *     is at least the number of its acknowledged commands;
 *   - history that was on disk (stamped before the current run started) reads the same in
 *     every later run: a replay re-stamps or rewrites nothing;
 *   - each history is contiguous (an entry's `from` is the previous entry's `to`), has no
 *     duplicated entry and only the transitions this workload can cause; version equals the
 *     number of history entries (cases.c: open writes entry 1 at version 1, every commit()
 *     appends one entry and adds one to the version; this workload's merchant pack never has
 *     an answer dropped, so no note entries);
 *   - logistics `return_delivered` news (accepted in any state, one history entry each) appear
 *     at least as often as acknowledged and at most as often as distinct keys were sent:
 *     a resent key must not apply twice;
 *   - a resent idempotency key answers as the first time (ok) and leaves the version alone,
 *     also when its first answer was lost in the crash but the command was applied;
 *   - a case enters `refunding` at most once; all its refund outbox lines carry one key and
 *     one amount, equal to the case's refund_amount, and only for a case that is durably
 *     refunding or refunded; an unacknowledged instruction of a refunding case is delivered
 *     again after the restart, an acknowledged one is not;
 *   - deadlines still fire: a case in `requested` whose 300 ms merchant_response fell due
 *     (while the child ran or while it was dead) reaches the next state by `auto_agree`,
 *     never before its due time.
 *
 * At the end the child, given end of input, answers its last writes and exits 0.
 *
 * Ends with the plain line `N passed, M failed` (cycles); exit status 0 only if M == 0.
 * Environment: AFTERSALE_CRASH_SEED=N replays a seed's workload and kill schedule (the
 * outcomes of a kill still depend on timing); AFTERSALE_CRASH_KEEP=1 keeps the temp dir. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "splitmix.h"

#define READ_TIMEOUT_MS 10000   /* a child silent this long with answers owed is hung */
#define DEADLINE_MS 300         /* the merchant pack's merchant_response */
#define DEADLINE_GRACE_MS 3000  /* how late a due deadline may fire (after start, if later) */
#define REDELIVERY_WAIT_MS 2000 /* how long after a restart an outbox line may take */
#define WORK_MAX_MS 3000        /* a cycle's workload is cut short after this */
#define CHUNK 50                /* reads sent before their answers are collected */
#define MAX_ACKED 16

static const char MERCHANT_RULES[] =
    "return { name = \"fast\", version = \"1\", "
    "deadlines = function() return { merchant_response = 300 } end }";

/* ==========================================================================================
 * Time, randomness, failures
 * ======================================================================================== */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* splitmix64: one stream for the kill schedule and one for the workload, both reseeded per
 * cycle from the seed, so a seed replays the same schedule whatever the previous cycles'
 * outcomes were. */
typedef rng rng_t; /* splitmix.h */

static int rng_int(rng_t *r, int lo, int hi) /* inclusive */
{
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static int rng_pct(rng_t *r, int percent)
{
    return (int)(rng_next(r) % 100) < percent;
}

static uint64_t g_seed;
static rng_t g_work; /* the workload's stream */
static int g_ncycles;
static int g_cycle; /* the cycle whose crash is being checked or driven */
static int *g_cycle_fails;
static long g_fail_total;
static char g_dir[PATH_MAX], g_db[PATH_MAX + 16], g_log[PATH_MAX + 16];
static const char *g_exe, *g_packs;

/* What the run exercised, for the last line before the summary. */
static struct {
    long kills, kills_inflight, lost_writes, resent_lost, resent_lost_applied, resent_acked,
        fired_after_restart, redelivered, recovery_kills;
} g_stats;

static void fail(const char *fmt, ...)
{
    g_cycle_fails[g_cycle]++;
    if (++g_fail_total > 300) {
        if (g_fail_total == 301) printf("crash: more failures; not printing them\n");
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("crash: FAIL cycle %d (seed %" PRIu64 "): ", g_cycle, g_seed);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
}

/* ==========================================================================================
 * The model: orders, cases and the ledger of what was acknowledged
 * ======================================================================================== */

enum { S_REQUESTED, S_AWAITING, S_RETURNING, S_REFUNDING, S_REFUNDED, S_COUNT };
static const char *const STATE_NAME[S_COUNT] = {"requested", "awaiting_return", "returning",
                                                "refunding", "refunded"};
static const char *const DEADLINE_OF[S_COUNT] = {"merchant_response", "buyer_ship",
                                                 "merchant_receive", NULL, NULL};

static int state_of(const char *name)
{
    for (int i = 0; name && i < S_COUNT; i++)
        if (strcmp(name, STATE_NAME[i]) == 0) return i;
    return -1;
}

enum { O_CREATING, O_CREATED, O_SHIPPED, O_DELIVERED, O_USED, O_DEAD };

typedef struct {
    char id[16], buyer[24];
    int st, busy;
    int create_acked; /* its order.create was answered ok */
    int credit;       /* buyer_credit, 0 when not given */
} order_t;

typedef struct {
    char action[24], as[48], key[48];
} cmd_t;

enum { OPEN_SENT, OPEN_ACKED, OPEN_UNKNOWN, OPEN_FAILED };
enum { ACK_NONE, ACK_SENT, ACK_DONE, ACK_UNKNOWN };

typedef struct {
    char id[16];
    int order;
    int refund_only; /* refund_only/quality with evidence; else return_refund/no_reason */
    int leave;       /* never agreed by the merchant: its deadline auto-agrees it */
    int open;        /* OPEN_* */
    char open_key[48];
    int st; /* S_*, -1 when unknown (a case.get will tell) */
    int busy;
    cmd_t acked[MAX_ACKED]; /* acknowledged commands, open included, logistics news not */
    int nacked;
    int nlogi_acked, nlogi_sent;
    char logi_key[48]; /* the last acknowledged return_delivered's key */
    int nkeys;
    int has_unknown; /* an action whose answer was lost in a crash */
    cmd_t unknown;
    /* the refund instruction */
    int refund_seen, refund_seen_run;
    char refund_key[96];
    int64_t refund_amount;
    int ack_state, ack_run;
    /* what the last case.get said */
    int present; /* -1 not asked this run, 0 not found, 1 found */
    json_t *last;
    json_t *disk; /* history entries known to be on disk: they never change */
    int64_t version, due, expect_version;
    int late_reported, fired_counted;
    int dirty; /* touched since its last full check */
} case_t;

static order_t *g_orders;
static int g_norders, g_maxorders;
static case_t *g_cases;
static int g_ncases, g_maxcases;

static int index_of(const char *id, char prefix, int n)
{
    if (id == NULL || id[0] != prefix) return -1;
    char *end;
    long i = strtol(id + 1, &end, 10);
    if (*end || i < 0 || i >= n) return -1;
    return (int)i;
}

static void buyer_as(const case_t *c, char *buf, size_t n)
{
    snprintf(buf, n, "buyer:%s", g_orders[c->order].buyer);
}

/* Each acknowledged command adds one history entry and one version (txn.c as__txn_commit()), so
 * a case's version is at least the number of its acknowledged commands. A version seen by
 * case.get is no such bound: reads see changes (a deadline's) before they are durable. */
/* Logistics news is recorded but leaves the version as it was (docs/design.md#states-and-actions). */
static int64_t min_version(const case_t *c)
{
    return c->nacked;
}

/* History entries that are not logistics news: each is one version. */
static size_t versioned_entries(json_t *hist)
{
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(hist, i, e)
    {
        const char *a = json_string_value(json_object_get(e, "action"));
        n += !(a && (strcmp(a, "return_delivered") == 0 || strcmp(a, "delivered") == 0));
    }
    return n;
}

static void record_ack(case_t *c, const char *action, const char *as, const char *key)
{
    if (c->nacked < MAX_ACKED) {
        cmd_t *a = &c->acked[c->nacked++];
        snprintf(a->action, sizeof a->action, "%s", action);
        snprintf(a->as, sizeof a->as, "%s", as);
        snprintf(a->key, sizeof a->key, "%s", key);
    }
}

static int count_acked(const case_t *c, const char *action, const char *as)
{
    int n = 0;
    for (int i = 0; i < c->nacked; i++)
        if (strcmp(c->acked[i].action, action) == 0 && strcmp(c->acked[i].as, as) == 0) n++;
    return n;
}

static const char *acked_list(const case_t *c)
{
    static char buf[600];
    size_t off = 0;
    buf[0] = 0;
    for (int i = 0; i < c->nacked && off < sizeof buf - 80; i++)
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s by %s [%s]", i ? ", " : "",
                                c->acked[i].action, c->acked[i].as, c->acked[i].key);
    if (c->nlogi_acked && off < sizeof buf - 60)
        snprintf(buf + off, sizeof buf - off, ", %d return_delivered", c->nlogi_acked);
    return buf;
}

/* ==========================================================================================
 * Requests and the child process
 * ======================================================================================== */

enum { OP_RULES, OP_CREATE, OP_SHIP, OP_DELIVER, OP_OPEN, OP_ACT, OP_GET, OP_PROBE, OP_ACK };
static const char *const OP_NAME[] = {"rules.load",    "order.create", "order.ship",
                                      "order.deliver", "case.open",    "case.act",
                                      "case.get",      "case.open",    "outbox.ack"};
enum {
    RS_NONE,
    RS_ACKED,
    RS_UNKNOWN
}; /* first sending, resend of an acknowledged key, of a lost one */

typedef struct {
    int op, ent, resend, answered, run;
    char key[48], action[24], as[48];
    int64_t version_before;
} req_t;

static req_t *g_reqs;
static size_t g_nreqs = 1, g_capreqs; /* ids start at 1 */
static size_t g_run_first;            /* the first request id of the current run */
static int g_run;
static int64_t g_run_start;

typedef struct {
    pid_t pid;
    int in, out;
    char *buf;
    size_t len, cap;
    int eof, alive;
} child_t;

static child_t ch = {.pid = -1, .in = -1, .out = -1};

static void dispatch_line(char *line);

static int child_start(void)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0) return -1;
    if (pipe2(out, O_CLOEXEC) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    g_run++;
    int logfd = open(g_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd >= 0) {
        char hdr[80];
        int n = snprintf(hdr, sizeof hdr, "=== run %d (cycle %d)\n", g_run, g_cycle);
        if (write(logfd, hdr, (size_t)n) < 0) {
        }
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (logfd >= 0) dup2(logfd, 2);
        execl(g_exe, g_exe, "pipe", "--db", g_db, "--packs", g_packs, (char *)NULL);
        fprintf(stderr, "crash: cannot exec %s: %s\n", g_exe, strerror(errno));
        _exit(127);
    }
    if (logfd >= 0) close(logfd);
    close(in[0]);
    close(out[1]);
    ch.pid = pid;
    ch.in = in[1];
    ch.out = out[0];
    fcntl(ch.in, F_SETFL, O_NONBLOCK);
    fcntl(ch.out, F_SETFL, O_NONBLOCK);
    ch.len = 0;
    ch.eof = 0;
    ch.alive = 1;
    g_run_start = wall_ms();
    g_run_first = g_nreqs;
    for (int i = 0; i < g_ncases; i++)
        g_cases[i].present = -1;
    return 0;
}

/* Reads what the child wrote, waiting up to timeout_ms for something; dispatches complete
 * lines. 1: read something, 0: timed out, -1: end of output. */
static int pump(int timeout_ms)
{
    if (ch.eof) return -1;
    struct pollfd p = {ch.out, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0) return errno == EINTR ? 1 : -1;
    if (r == 0) return 0;
    for (;;) {
        if (ch.cap - ch.len < 65536) {
            size_t cap = ch.cap ? ch.cap * 2 : 131072;
            char *b = realloc(ch.buf, cap);
            if (b == NULL) abort();
            ch.buf = b;
            ch.cap = cap;
        }
        ssize_t n = read(ch.out, ch.buf + ch.len, ch.cap - ch.len - 1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break; /* EAGAIN: all read */
        if (n == 0) {
            ch.eof = 1;
            break;
        }
        ch.len += (size_t)n;
    }
    size_t start = 0;
    for (size_t i = 0; i < ch.len; i++) {
        if (ch.buf[i] != '\n') continue;
        ch.buf[i] = 0;
        dispatch_line(ch.buf + start);
        start = i + 1;
    }
    memmove(ch.buf, ch.buf + start, ch.len - start);
    ch.len -= start;
    if (ch.eof && ch.len) {
        ch.buf[ch.len] = 0;
        fail("the child's output ends in an unterminated line: %.200s", ch.buf);
        ch.len = 0;
    }
    return ch.eof ? -1 : 1;
}

static int write_all(const char *s, size_t n)
{
    int64_t t0 = 0;
    while (n) {
        ssize_t w = write(ch.in, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {
            /* the child does not read: keep reading its answers meanwhile */
            struct pollfd p = {ch.in, POLLOUT, 0};
            if (poll(&p, 1, 100) == 0 && pump(0) < 0) return -1;
            if (t0 == 0) t0 = mono_ms();
            if (mono_ms() - t0 > READ_TIMEOUT_MS) {
                fail("the child has not read its input for %d s", READ_TIMEOUT_MS / 1000);
                return -1;
            }
            continue;
        }
        if (w < 0) return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sends `body` (stolen) with a new id; returns the id, or 0 when the child is gone. */
static size_t send_req(json_t *body, int op, int ent, const char *key, const char *action,
                       const char *as, int resend)
{
    if (g_nreqs >= g_capreqs) {
        g_capreqs = g_capreqs ? g_capreqs * 2 : 4096;
        g_reqs = realloc(g_reqs, g_capreqs * sizeof *g_reqs);
        if (g_reqs == NULL) abort();
    }
    size_t id = g_nreqs++;
    req_t *r = &g_reqs[id];
    memset(r, 0, sizeof *r);
    r->op = op;
    r->ent = ent;
    r->resend = resend;
    r->run = g_run;
    snprintf(r->key, sizeof r->key, "%s", key ? key : "");
    snprintf(r->action, sizeof r->action, "%s", action ? action : "");
    snprintf(r->as, sizeof r->as, "%s", as ? as : "");
    json_object_set_new(body, "id", json_integer((json_int_t)id));
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    size_t n = strlen(s);
    s = realloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = 0;
    int rc = ch.alive ? write_all(s, n + 1) : -1;
    free(s);
    if (op == OP_OPEN || op == OP_ACT || op == OP_GET) g_cases[ent].busy = 1;
    if (op == OP_CREATE || op == OP_SHIP || op == OP_DELIVER) g_orders[ent].busy = 1;
    return rc == 0 ? id : 0;
}

/* Waits until every request in ids[] is answered. -1 (after reporting) when the child hangs
 * or dies first. */
static int await_reqs(const size_t *ids, int n)
{
    for (int i = 0; i < n; i++) {
        if (ids[i] == 0) return -1;
        while (!g_reqs[ids[i]].answered) {
            int r = pump(READ_TIMEOUT_MS);
            if (r == 0) {
                const req_t *q = &g_reqs[ids[i]];
                fail("no answer within %d s to request %zu (%s %s%s%s): the child hangs",
                     READ_TIMEOUT_MS / 1000, ids[i], OP_NAME[q->op],
                     q->op == OP_OPEN || q->op == OP_ACT || q->op == OP_GET ? g_cases[q->ent].id
                     : q->op == OP_ACK                                      ? q->key
                     : q->op == OP_RULES                                    ? ""
                                                                            : g_orders[q->ent].id,
                     q->action[0] ? " " : "", q->action);
                return -1;
            }
            if (r < 0 && !g_reqs[ids[i]].answered) {
                int st = 0;
                pid_t w = waitpid(ch.pid, &st, WNOHANG);
                fail("the child ended before answering request %zu (%s): %s %d", ids[i],
                     OP_NAME[g_reqs[ids[i]].op],
                     w == ch.pid && WIFSIGNALED(st) ? "killed by signal" : "exit status",
                     w == ch.pid ? (WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st)) : -1);
                return -1;
            }
        }
    }
    return 0;
}

static void after_kill(void);

/* SIGKILL, then reads everything the child wrote before it died (all of it acknowledged),
 * reaps it and marks the requests it never answered as lost. */
static void child_kill(void)
{
    if (ch.pid > 0) {
        kill(ch.pid, SIGKILL);
        int64_t t0 = mono_ms();
        while (!ch.eof && mono_ms() - t0 < READ_TIMEOUT_MS)
            pump(200);
        if (!ch.eof) fail("no end of output %d s after SIGKILL", READ_TIMEOUT_MS / 1000);
        while (waitpid(ch.pid, NULL, 0) < 0 && errno == EINTR) {
        }
    }
    if (ch.in >= 0) close(ch.in);
    if (ch.out >= 0) close(ch.out);
    ch.in = ch.out = -1;
    ch.pid = -1;
    ch.alive = 0;
    after_kill();
}

/* ==========================================================================================
 * Checking a case against the ledger
 * ======================================================================================== */

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int64_t jint(json_t *o, const char *k, int64_t dflt)
{
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

static const char *hist_summary(json_t *hist)
{
    static char buf[1200];
    size_t off = 0;
    buf[0] = 0;
    for (size_t i = 0; i < json_array_size(hist) && off < sizeof buf - 120; i++) {
        json_t *e = json_array_get(hist, i);
        off += (size_t)snprintf(buf + off, sizeof buf - off, "%s%s by %s %s->%s @%" PRId64,
                                i ? "; " : "[", jstr(e, "action"), jstr(e, "actor"),
                                jstr(e, "from"), jstr(e, "to"), jint(e, "at", -1));
    }
    if (off < sizeof buf - 2) snprintf(buf + off, sizeof buf - off, "]");
    return buf;
}

static int count_hist(json_t *hist, const char *action, const char *actor)
{
    int n = 0;
    for (size_t i = 0; i < json_array_size(hist); i++) {
        json_t *e = json_array_get(hist, i);
        if (strcmp(jstr(e, "action"), action) == 0 && strcmp(jstr(e, "actor"), actor) == 0) n++;
    }
    return n;
}

/* Is `e` a step this workload can cause on case c? */
static int transition_ok(const case_t *c, json_t *e)
{
    const char *a = jstr(e, "action"), *who = jstr(e, "actor");
    int from = state_of(jstr(e, "from")), to = state_of(jstr(e, "to"));
    char buyer[48];
    buyer_as(c, buyer, sizeof buyer);
    if (from < 0 || to < 0) return 0;
    if (strcmp(a, "return_delivered") == 0) return strcmp(who, "logistics") == 0 && from == to;
    int agree = (strcmp(a, "agree") == 0 && strcmp(who, "merchant:S1") == 0) ||
                (strcmp(a, "auto_agree") == 0 && strcmp(who, "system") == 0);
    int instant = g_orders[c->order].credit >= 600;
    if (from == S_REQUESTED) return agree && to == (c->refund_only ? S_REFUNDING : S_AWAITING);
    if (from == S_AWAITING)
        return strcmp(a, "ship_return") == 0 && strcmp(who, buyer) == 0 &&
               to == (instant ? S_REFUNDING : S_RETURNING);
    if (from == S_RETURNING)
        return strcmp(a, "confirm_return") == 0 && strcmp(who, "merchant:S1") == 0 &&
               to == S_REFUNDING;
    if (from == S_REFUNDING)
        return strcmp(a, "refund_succeeded") == 0 && strcmp(who, "platform") == 0 &&
               to == S_REFUNDED;
    return 0;
}

static void check_case(case_t *c, json_t *cj)
{
    const char *state = jstr(cj, "state");
    int st = state_of(state);
    int64_t version = jint(cj, "version", -1);
    json_t *hist = json_object_get(cj, "history");
    size_t n = json_array_size(hist);
    const char *hs = hist_summary(hist);
    char buyer[48];
    buyer_as(c, buyer, sizeof buyer);
    int bad = 0;
#define BAD(...) (bad++, fail(__VA_ARGS__))

    if (strcmp(jstr(cj, "id"), c->id) != 0)
        BAD("case.get %s answered case '%s'", c->id, jstr(cj, "id"));
    if (st < 0)
        BAD("case %s is in state '%s', where this workload never leads; history %s", c->id, state,
            hs);
    if (n == 0) BAD("case %s has no history", c->id);
    if (version != (int64_t)versioned_entries(hist))
        BAD("case %s: version %" PRId64 " but %zu history entries other than logistics news "
            "(every applied command adds exactly one entry, and each but news one version); "
            "history %s",
            c->id, version, versioned_entries(hist), hs);
    if (version < min_version(c))
        BAD("case %s: version %" PRId64 " but the acknowledged commands imply at least %" PRId64
            " (acknowledged: %s); history %s",
            c->id, version, min_version(c), acked_list(c), hs);
    int64_t opened = jint(cj, "opened_at", -1);
    if (n > 0) {
        json_t *e0 = json_array_get(hist, 0);
        if (strcmp(jstr(e0, "action"), "open") != 0 || strcmp(jstr(e0, "to"), "requested") ||
            strcmp(jstr(e0, "actor"), buyer) != 0 || jint(e0, "at", -2) != opened)
            BAD("case %s: history does not start with its open by %s at opened_at %" PRId64 ": %s",
                c->id, buyer, opened, hs);
    }
    int into_refunding = 0, logi = 0;
    for (size_t i = 1; i < n; i++) {
        json_t *e = json_array_get(hist, i), *p = json_array_get(hist, i - 1);
        const char *a = jstr(e, "action");
        if (strcmp(jstr(e, "from"), jstr(p, "to")) != 0)
            BAD("case %s: history gap at entry %zu: from '%s' after an entry to '%s'; history %s",
                c->id, i, jstr(e, "from"), jstr(p, "to"), hs);
        if (jint(e, "at", 0) < jint(p, "at", 0))
            BAD("case %s: history entry %zu goes back in time; history %s", c->id, i, hs);
        if (strcmp(a, "return_delivered") != 0 && json_equal(e, p))
            BAD("case %s: history entry %zu duplicates entry %zu; history %s", c->id, i, i - 1, hs);
        else if (!transition_ok(c, e))
            BAD("case %s: history entry %zu (%s by %s, %s -> %s) is no step this workload "
                "causes (a duplicate or a lost step?); history %s",
                c->id, i, a, jstr(e, "actor"), jstr(e, "from"), jstr(e, "to"), hs);
        if (strcmp(a, "auto_agree") == 0 && !c->fired_counted &&
            opened + DEADLINE_MS < g_run_start && jint(e, "at", 0) >= g_run_start) {
            c->fired_counted = 1;
            g_stats.fired_after_restart++;
        }
        if (strcmp(a, "auto_agree") == 0 && jint(e, "at", 0) < opened + DEADLINE_MS)
            BAD("case %s: auto_agree at %" PRId64 ", before its deadline %" PRId64, c->id,
                jint(e, "at", 0), opened + DEADLINE_MS);
        if (strcmp(a, "agree") == 0 && jint(e, "at", 0) >= opened + DEADLINE_MS)
            BAD("case %s: merchant agree applied at %" PRId64 ", when its deadline (due %" PRId64
                ") should already have fired",
                c->id, jint(e, "at", 0), opened + DEADLINE_MS);
        if (strcmp(jstr(e, "to"), "refunding") == 0 && strcmp(jstr(e, "from"), "refunding"))
            into_refunding++;
        if (strcmp(a, "return_delivered") == 0) logi++;
    }
    if (n > 0 && strcmp(jstr(json_array_get(hist, n - 1), "to"), state) != 0)
        BAD("case %s: state '%s' but the last history entry leads to '%s'", c->id, state,
            jstr(json_array_get(hist, n - 1), "to"));
    if (into_refunding > 1)
        BAD("case %s entered refunding %d times (refund instructed more than once); history %s",
            c->id, into_refunding, hs);
    if (logi < c->nlogi_acked || logi > c->nlogi_sent)
        BAD("case %s: %d return_delivered entries, but %d were acknowledged and %d distinct "
            "keys sent (a resent key applied twice, or an acknowledged one lost); history %s",
            c->id, logi, c->nlogi_acked, c->nlogi_sent, hs);
    for (int i = 0; i < c->nacked; i++) {
        const cmd_t *a = &c->acked[i];
        if (count_hist(hist, a->action, a->as) < count_acked(c, a->action, a->as)) {
            BAD("case %s: acknowledged %s by %s (key %s) is not in its history %s", c->id,
                a->action, a->as, a->key, hs);
            break;
        }
    }
    const char *merchant = jstr(json_object_get(cj, "rules"), "merchant");
    if (strcmp(merchant, "fast@1") != 0)
        BAD("case %s pinned merchant rules '%s', not the acknowledged rules.load fast@1", c->id,
            merchant);
    json_t *dl = json_object_get(cj, "deadline");
    int64_t due = 0;
    if (st >= 0) {
        const char *want = DEADLINE_OF[st];
        if (want == NULL && !json_is_null(dl))
            BAD("case %s in %s has a deadline %s", c->id, state, jstr(dl, "kind"));
        if (want && (!json_is_object(dl) || strcmp(jstr(dl, "kind"), want) != 0))
            BAD("case %s in %s has deadline %s, not %s", c->id, state,
                json_is_object(dl) ? jstr(dl, "kind") : "null", want);
        if (st == S_REQUESTED && json_is_object(dl)) {
            due = jint(dl, "due", 0);
            if (due != opened + DEADLINE_MS)
                BAD("case %s: merchant_response due %" PRId64 ", not opened_at + 300 ms = %" PRId64,
                    c->id, due, opened + DEADLINE_MS);
        }
    }
    if (c->refund_seen) {
        if (st != S_REFUNDING && st != S_REFUNDED)
            BAD("case %s: a refund instruction (%s, %" PRId64 " fen) was delivered, but the "
                "case is in '%s': the instruction went out before its change was durable; "
                "history %s",
                c->id, c->refund_key, c->refund_amount, state, hs);
        else if (jint(cj, "refund_amount", -1) != c->refund_amount)
            BAD("case %s: refund instructed for %" PRId64 " fen but the case refunds %" PRId64,
                c->id, c->refund_amount, jint(cj, "refund_amount", -1));
    }
    if (c->expect_version >= 0) {
        if (version != c->expect_version)
            BAD("case %s: resending an acknowledged key changed its version %" PRId64 " -> %" PRId64
                " (applied twice); history %s",
                c->id, c->expect_version, version, hs);
        c->expect_version = -1;
    }
    if (st == S_REQUESTED && due > 0 && !c->late_reported) {
        int64_t from = due > g_run_start ? due : g_run_start;
        if (wall_ms() > from + DEADLINE_GRACE_MS) {
            c->late_reported = 1;
            BAD("case %s: its merchant_response fell due at %" PRId64 "%s but it is still "
                "requested %" PRId64 " ms later: the deadline did not fire",
                c->id, due, due < g_run_start ? " (while the process was dead)" : "",
                wall_ms() - due);
        }
    }
    /* entries stamped before this run started came from the file: from now on every run
     * must show them unchanged (a replay must not re-stamp or rewrite history) */
    size_t nd = json_array_size(c->disk);
    for (size_t i = 0; i < nd; i++) {
        json_t *was = json_array_get(c->disk, i), *now = json_array_get(hist, i);
        if (now == NULL || !json_equal(was, now)) {
            char *a = json_dumps(was, JSON_COMPACT),
                 *b = now ? json_dumps(now, JSON_COMPACT) : NULL;
            BAD("case %s: history entry %zu was on disk as %s and now reads %s; history %s", c->id,
                i, a, b ? b : "(missing)", hs);
            free(a);
            free(b);
            break;
        }
    }
    size_t k = 0;
    while (k < n && jint(json_array_get(hist, k), "at", INT64_MAX) < g_run_start)
        k++;
    if (k > nd && !bad) {
        json_t *disk = json_array();
        for (size_t i = 0; i < k; i++)
            json_array_append(disk, json_array_get(hist, i));
        json_decref(c->disk);
        c->disk = disk;
    }
#undef BAD
    c->st = st;
    c->version = version;
    c->due = st == S_REQUESTED ? due : 0;
    json_decref(c->last);
    c->last = json_incref(cj);
}

/* ==========================================================================================
 * Answers and outbox lines
 * ======================================================================================== */

static int next_state(const case_t *c, const char *action)
{
    if (strcmp(action, "agree") == 0) return c->refund_only ? S_REFUNDING : S_AWAITING;
    if (strcmp(action, "ship_return") == 0)
        return g_orders[c->order].credit >= 600 ? S_REFUNDING : S_RETURNING;
    if (strcmp(action, "confirm_return") == 0) return S_REFUNDING;
    if (strcmp(action, "refund_succeeded") == 0) return S_REFUNDED;
    return c->st; /* return_delivered */
}

static void on_answer(req_t *r, json_t *ans)
{
    int ok = json_is_true(json_object_get(ans, "ok")) ||
             (r->op == OP_GET && json_is_object(json_object_get(ans, "case")));
    const char *code = json_string_value(json_object_get(ans, "error"));
    const char *msg = json_string_value(json_object_get(ans, "message"));
    if (!ok && code == NULL) {
        char *s = json_dumps(ans, JSON_COMPACT);
        fail("answer to %s is neither ok nor an error: %s", OP_NAME[r->op], s);
        free(s);
        code = "?";
    }
    if (!msg) msg = "";
    r->answered = 1;
    if (r->op == OP_RULES) {
        if (!ok) fail("rules.load answered %s: %s", code, msg);
        return;
    }
    if (r->op == OP_CREATE || r->op == OP_SHIP || r->op == OP_DELIVER) {
        order_t *o = &g_orders[r->ent];
        o->busy = 0;
        if (!ok) {
            fail("%s %s answered %s (%s)%s", OP_NAME[r->op], o->id, code, msg,
                 r->op != OP_CREATE ? " though its earlier events were acknowledged" : "");
            o->st = O_DEAD;
            return;
        }
        if (r->op == OP_CREATE) o->create_acked = 1;
        o->st = r->op == OP_CREATE ? O_CREATED : r->op == OP_SHIP ? O_SHIPPED : O_DELIVERED;
        return;
    }
    if (r->op == OP_PROBE) {
        order_t *o = &g_orders[r->ent];
        if (ok || strcmp(code, "forbidden") != 0)
            fail("order %s (order.create acknowledged) probed with a stranger's case.open: "
                 "expected forbidden, got %s%s%s",
                 o->id, ok ? "ok" : code, ok ? "" : ": ", ok ? "" : msg);
        return;
    }
    if (r->op == OP_ACK) {
        case_t *c = &g_cases[r->ent];
        if (ok) {
            c->ack_state = ACK_DONE;
            c->ack_run = g_run;
        } else {
            fail("outbox.ack %s answered %s: %s", r->key, code, msg);
            c->ack_state = ACK_UNKNOWN;
        }
        return;
    }
    case_t *c = &g_cases[r->ent];
    c->busy = 0;
    if (r->op == OP_GET) {
        json_t *cj = json_object_get(ans, "case");
        if (ok || json_is_object(cj)) {
            c->present = 1;
            check_case(c, cj);
        } else if (strcmp(code, "not_found") == 0) {
            c->present = 0;
            c->st = -1;
            if (c->open == OPEN_ACKED)
                fail("case %s: its open was acknowledged but case.get says not_found "
                     "(acknowledged: %s)",
                     c->id, acked_list(c));
        } else {
            fail("case.get %s answered %s: %s", c->id, code, msg);
        }
        return;
    }
    char buyer[48];
    buyer_as(c, buyer, sizeof buyer);
    if (r->op == OP_OPEN) {
        if (r->resend) g_stats.resent_acked += r->resend == RS_ACKED;
        if (r->resend == RS_UNKNOWN) {
            g_stats.resent_lost++;
            g_stats.resent_lost_applied += c->present == 1;
        }
        if (r->resend == RS_ACKED) {
            if (!ok)
                fail("case %s: resending its acknowledged open (key %s) answered %s (%s) "
                     "instead of ok",
                     c->id, r->key, code, msg);
            return;
        }
        if (ok) {
            if (c->open != OPEN_ACKED) {
                record_ack(c, "open", buyer, r->key);
            }
            c->open = OPEN_ACKED;
            c->st = r->resend == RS_UNKNOWN ? -1 : S_REQUESTED;
            c->dirty = 1;
            return;
        }
        if (r->resend == RS_UNKNOWN && c->present == 1)
            fail("case %s exists (its open was applied before the crash) but resending the "
                 "open's key %s answered %s (%s): the key was not durable with the case",
                 c->id, r->key, code, msg);
        else
            fail("case.open %s%s answered %s: %s", c->id,
                 r->resend == RS_UNKNOWN ? " (resent after the crash)" : "", code, msg);
        c->open = OPEN_FAILED; /* reported; not driven or checked any more */
        c->st = -1;
        return;
    }
    /* OP_ACT */
    int logi = strcmp(r->action, "return_delivered") == 0;
    g_stats.resent_acked += r->resend == RS_ACKED;
    if (r->resend == RS_ACKED) {
        if (!ok)
            fail("case %s: resending acknowledged %s (key %s) answered %s (%s) instead of ok",
                 c->id, r->action, r->key, code, msg);
        return;
    }
    if (r->resend == RS_UNKNOWN) {
        int applied = c->present == 1 && count_hist(json_object_get(c->last, "history"), r->action,
                                                    r->as) > count_acked(c, r->action, r->as);
        c->has_unknown = 0;
        c->st = -1;
        g_stats.resent_lost++;
        g_stats.resent_lost_applied += applied;
        if (ok) {
            if (logi)
                c->nlogi_acked++;
            else
                record_ack(c, r->action, r->as, r->key);
        } else if (applied || logi) {
            fail("case %s: %s (key %s) %s before the crash, but resending its key answered "
                 "%s (%s)",
                 c->id, r->action, r->key, logi ? "may have been applied" : "was applied", code,
                 msg);
        } else if (!(strcmp(r->action, "agree") == 0 && strcmp(code, "invalid_state") == 0)) {
            fail("case %s: resending lost %s (key %s) answered %s (%s)", c->id, r->action, r->key,
                 code, msg);
        }
        return;
    }
    if (ok) {
        if (logi) {
            c->nlogi_acked++;
            snprintf(c->logi_key, sizeof c->logi_key, "%s", r->key);
        } else {
            record_ack(c, r->action, r->as, r->key);
        }
        c->st = next_state(c, r->action);
        return;
    }
    c->st = -1;
    /* a merchant agree may lose the race against the 300 ms auto_agree */
    if (!(strcmp(r->action, "agree") == 0 && strcmp(code, "invalid_state") == 0))
        fail("case %s: %s by %s (key %s) answered %s (%s); acknowledged so far: %s", c->id,
             r->action, r->as, r->key, code, msg, acked_list(c));
}

static void on_outbox(json_t *ob)
{
    const char *kind = jstr(ob, "kind"), *key = jstr(ob, "key"), *cid = jstr(ob, "case");
    json_t *amt = json_object_get(ob, "amount");
    if (strcmp(kind, "refund") != 0) return;
    int i = index_of(cid, 'C', g_ncases);
    if (i < 0 || !*key || !json_is_integer(amt)) {
        char *s = json_dumps(ob, JSON_COMPACT);
        fail("malformed or unknown refund outbox line: %s", s);
        free(s);
        return;
    }
    case_t *c = &g_cases[i];
    int64_t amount = (int64_t)json_integer_value(amt);
    if (c->refund_seen && (strcmp(c->refund_key, key) != 0 || c->refund_amount != amount))
        fail("case %s: refund instructed twice: first key %s amount %" PRId64
             ", now key %s amount %" PRId64,
             c->id, c->refund_key, c->refund_amount, key, amount);
    if (c->ack_state == ACK_DONE && c->ack_run < g_run)
        fail("case %s: refund instruction %s delivered again after a restart, though its "
             "outbox.ack was acknowledged",
             c->id, key);
    if (c->refund_seen && c->refund_seen_run != g_run) g_stats.redelivered++;
    if (!c->refund_seen) {
        c->refund_seen = 1;
        snprintf(c->refund_key, sizeof c->refund_key, "%s", key);
        c->refund_amount = amount;
    }
    c->refund_seen_run = g_run;
}

static void dispatch_line(char *line)
{
    if (*line == 0) return;
    json_error_t jerr;
    json_t *j = json_loads(line, 0, &jerr);
    if (j == NULL || !json_is_object(j)) {
        fail("the child wrote a line that is not a JSON object: %.300s", line);
        json_decref(j);
        return;
    }
    json_t *ob = json_object_get(j, "outbox");
    json_t *idj = json_object_get(j, "id");
    if (json_is_object(ob)) {
        on_outbox(ob);
    } else if (json_is_integer(idj)) {
        json_int_t id = json_integer_value(idj);
        if (id < (json_int_t)g_run_first || id >= (json_int_t)g_nreqs)
            fail("answer with an id this run never sent: %.300s", line);
        else if (g_reqs[id].answered)
            fail("request %lld answered twice: %.300s", (long long)id, line);
        else
            on_answer(&g_reqs[id], j);
    } else {
        fail("the child wrote a line that is neither an answer nor an outbox line: %.300s", line);
    }
    json_decref(j);
}

/* The requests of the run that just died and were never answered: their outcome is
 * unknown. */
static void after_kill(void)
{
    int lost = 0;
    for (size_t id = g_run_first; id < g_nreqs; id++) {
        req_t *r = &g_reqs[id];
        if (r->answered) continue;
        if (r->op != OP_GET && r->op != OP_PROBE) lost++;
        r->answered = 1; /* settled: lost */
        switch (r->op) {
        case OP_CREATE:
        case OP_SHIP:
        case OP_DELIVER:
            g_orders[r->ent].st = O_DEAD;
            break;
        case OP_OPEN:
            if (r->resend != RS_ACKED && g_cases[r->ent].open != OPEN_ACKED)
                g_cases[r->ent].open = OPEN_UNKNOWN;
            break;
        case OP_ACT: {
            case_t *c = &g_cases[r->ent];
            if (r->resend == RS_ACKED) break;
            c->has_unknown = 1;
            snprintf(c->unknown.action, sizeof c->unknown.action, "%s", r->action);
            snprintf(c->unknown.as, sizeof c->unknown.as, "%s", r->as);
            snprintf(c->unknown.key, sizeof c->unknown.key, "%s", r->key);
            break;
        }
        case OP_ACK:
            if (g_cases[r->ent].ack_state == ACK_SENT) g_cases[r->ent].ack_state = ACK_UNKNOWN;
            break;
        default:
            break;
        }
    }
    g_stats.kills++;
    g_stats.lost_writes += lost;
    if (lost) g_stats.kills_inflight++;
    for (int i = 0; i < g_norders; i++)
        g_orders[i].busy = 0;
    for (int i = 0; i < g_ncases; i++) {
        g_cases[i].busy = 0;
        g_cases[i].st = -1; /* the next case.get tells */
    }
}

/* ==========================================================================================
 * Requests by kind
 * ======================================================================================== */

static size_t send_rules(void)
{
    return send_req(
        json_pack("{s:s, s:s, s:s}", "op", "rules.load", "shop", "S1", "source", MERCHANT_RULES),
        OP_RULES, 0, NULL, NULL, NULL, RS_NONE);
}

static size_t send_create(void)
{
    if (g_norders == g_maxorders) return 0;
    int i = g_norders++;
    order_t *o = &g_orders[i];
    memset(o, 0, sizeof *o);
    snprintf(o->id, sizeof o->id, "O%d", i);
    snprintf(o->buyer, sizeof o->buyer, "B%d", i);
    o->credit = rng_pct(&g_work, 30) ? 700 : 0;
    o->st = O_CREATING;
    json_t *order =
        json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:i, s:i}], s:i, s:b}", "id", o->id, "shop", "S1",
                  "buyer", o->buyer, "items", "sku", "T1", "category", "apparel", "qty", 1, "price",
                  19900, "shipping_fee", 0, "freight_insurance", 1);
    if (o->credit) json_object_set_new(order, "buyer_credit", json_integer(o->credit));
    return send_req(json_pack("{s:s, s:o}", "op", "order.create", "order", order), OP_CREATE, i,
                    NULL, NULL, NULL, RS_NONE);
}

static size_t send_order_event(int i, int op)
{
    return send_req(json_pack("{s:s, s:s}", "op", op == OP_SHIP ? "order.ship" : "order.deliver",
                              "order", g_orders[i].id),
                    op, i, NULL, NULL, NULL, RS_NONE);
}

static json_t *case_object(const case_t *c)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:i}]}", "id", c->id, "order",
                          g_orders[c->order].id, "type",
                          c->refund_only ? "refund_only" : "return_refund", "reason",
                          c->refund_only ? "quality" : "no_reason", "items", "sku", "T1", "qty", 1);
    if (c->refund_only) json_object_set_new(o, "evidence", json_pack("[s]", "photo1"));
    return o;
}

static size_t send_open(const case_t *c, int resend)
{
    char buyer[48];
    buyer_as(c, buyer, sizeof buyer);
    return send_req(json_pack("{s:s, s:s, s:o, s:s}", "op", "case.open", "as", buyer, "case",
                              case_object(c), "key", c->open_key),
                    OP_OPEN, (int)(c - g_cases), c->open_key, NULL, buyer, resend);
}

static size_t send_new_case(int oi)
{
    if (g_ncases == g_maxcases) return 0;
    int i = g_ncases++;
    case_t *c = &g_cases[i];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "C%d", i);
    c->order = oi;
    c->refund_only = rng_pct(&g_work, 25);
    c->leave = rng_pct(&g_work, 35);
    c->open = OPEN_SENT;
    c->st = -1;
    c->present = -1;
    c->expect_version = -1;
    c->dirty = 1;
    snprintf(c->open_key, sizeof c->open_key, "k:%s:open", c->id);
    g_orders[oi].st = O_USED;
    return send_open(c, RS_NONE);
}

static void actor_for(const case_t *c, const char *action, char *as, size_t n)
{
    if (strcmp(action, "agree") == 0 || strcmp(action, "confirm_return") == 0)
        snprintf(as, n, "merchant:S1");
    else if (strcmp(action, "refund_succeeded") == 0)
        snprintf(as, n, "platform");
    else if (strcmp(action, "return_delivered") == 0)
        snprintf(as, n, "logistics");
    else
        buyer_as(c, as, n);
}

static size_t send_act(case_t *c, const char *action, const char *key, int resend)
{
    char as[48], keybuf[48];
    actor_for(c, action, as, sizeof as);
    if (key == NULL) {
        snprintf(keybuf, sizeof keybuf, "k:%s:%d", c->id, ++c->nkeys);
        key = keybuf;
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:s}", "op", "case.act", "as", as, "case", c->id,
                             "action", action, "key", key);
    if (strcmp(action, "ship_return") == 0) {
        char tracking[32];
        snprintf(tracking, sizeof tracking, "SF%s", c->id + 1);
        json_object_set_new(body, "payload",
                            json_pack("{s:s, s:s}", "carrier", "SF", "tracking", tracking));
    }
    if (strcmp(action, "return_delivered") == 0 && resend == RS_NONE) c->nlogi_sent++;
    c->dirty = 1;
    return send_req(body, OP_ACT, (int)(c - g_cases), key, action, as, resend);
}

static size_t send_get(case_t *c)
{
    return send_req(json_pack("{s:s, s:s}", "op", "case.get", "case", c->id), OP_GET,
                    (int)(c - g_cases), NULL, NULL, NULL, RS_NONE);
}

static size_t send_probe(int oi)
{
    char cid[32];
    snprintf(cid, sizeof cid, "P%d", oi);
    json_t *cobj =
        json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:i}]}", "id", cid, "order", g_orders[oi].id,
                  "type", "return_refund", "reason", "no_reason", "items", "sku", "T1", "qty", 1);
    return send_req(
        json_pack("{s:s, s:s, s:o}", "op", "case.open", "as", "buyer:stranger", "case", cobj),
        OP_PROBE, oi, NULL, NULL, NULL, RS_NONE);
}

static size_t send_outbox_ack(case_t *c)
{
    c->ack_state = ACK_SENT;
    return send_req(json_pack("{s:s, s:s}", "op", "outbox.ack", "key", c->refund_key), OP_ACK,
                    (int)(c - g_cases), c->refund_key, NULL, NULL, RS_NONE);
}

/* Sends one case.get per case in list[] (in chunks, so that neither pipe fills) and waits
 * for the answers. */
static int get_cases(const int *list, int n)
{
    size_t ids[CHUNK];
    for (int i = 0; i < n; i += CHUNK) {
        int m = n - i < CHUNK ? n - i : CHUNK;
        for (int k = 0; k < m; k++)
            ids[k] = send_get(&g_cases[list[i + k]]);
        if (await_reqs(ids, m) != 0) return -1;
    }
    return 0;
}

/* ==========================================================================================
 * After a restart: what the previous run left on disk
 * ======================================================================================== */

static int recover(int full)
{
    int n = 0, *list = calloc((size_t)g_ncases + 1, sizeof *list);
    size_t *ids = malloc(sizeof *ids * (size_t)(g_ncases + g_norders + 1));
    int rc = -1;

    /* 1. every case in play; refunded ones untouched since they were last checked wait for
     * the full sweeps */
    for (int i = 0; i < g_ncases; i++) {
        case_t *c = &g_cases[i];
        if (c->open == OPEN_FAILED) continue;
        int settled = !c->dirty && !c->has_unknown && c->open == OPEN_ACKED && c->last &&
                      strcmp(jstr(c->last, "state"), "refunded") == 0;
        if (full || !settled)
            list[n++] = i;
        else
            c->st = S_REFUNDED;
    }
    if (get_cases(list, n) != 0) goto out;
    for (int k = 0; k < n; k++)
        g_cases[list[k]].dirty = 0;

    /* 2. commands whose answers the crash swallowed: opens always, actions mostly, again
     * with their keys */
    int ni = 0;
    int touched_n = 0, *touched = malloc(sizeof *touched * (size_t)(g_ncases + 1));
    for (int i = 0; i < g_ncases; i++) {
        case_t *c = &g_cases[i];
        if (c->open == OPEN_UNKNOWN) {
            if ((ids[ni++] = send_open(c, RS_UNKNOWN)) == 0) break;
            touched[touched_n++] = i;
        } else if (c->has_unknown) {
            if (rng_pct(&g_work, 75)) {
                if ((ids[ni++] = send_act(c, c->unknown.action, c->unknown.key, RS_UNKNOWN)) == 0)
                    break;
                touched[touched_n++] = i;
            } else {
                c->has_unknown = 0; /* leave it unknown; the case's state says what happened */
            }
        }
    }
    if (await_reqs(ids, ni) != 0) {
        free(touched);
        goto out;
    }

    /* 3. acknowledged keys sent again: the first answer, applied once */
    ni = 0;
    int picks = rng_int(&g_work, 0, 2);
    for (int tries = 0; picks > 0 && tries < 20 && g_ncases > 0; tries++) {
        int i = rng_int(&g_work, 0, g_ncases - 1);
        case_t *c = &g_cases[i];
        if (c->busy || c->open != OPEN_ACKED || c->present != 1 || c->nacked == 0 ||
            c->st <= S_REQUESTED)
            continue; /* only where no deadline can move the version meanwhile */
        const cmd_t *a = &c->acked[rng_int(&g_work, 0, c->nacked - 1)];
        size_t id;
        if (c->logi_key[0] && rng_pct(&g_work, 40)) /* one more history entry if applied twice */
            id = send_act(c, "return_delivered", c->logi_key, RS_ACKED);
        else if (strcmp(a->action, "open") == 0)
            id = send_open(c, RS_ACKED);
        else
            id = send_act(c, a->action, a->key, RS_ACKED);
        if (id == 0) break;
        g_reqs[id].version_before = c->version;
        c->expect_version = c->version;
        ids[ni++] = id;
        touched[touched_n++] = i;
        picks--;
    }
    if (await_reqs(ids, ni) != 0) {
        free(touched);
        goto out;
    }
    int r2 = get_cases(touched, touched_n);
    free(touched);
    if (r2 != 0) goto out;

    /* 4. deadlines that fell due, also while the process was dead, must fire */
    for (;;) {
        n = 0;
        int64_t now = wall_ms();
        for (int i = 0; i < g_ncases; i++) {
            case_t *c = &g_cases[i];
            if (c->st == S_REQUESTED && c->due > 0 && c->due <= now && !c->late_reported)
                list[n++] = i;
        }
        if (n == 0) break;
        pump(50);
        if (get_cases(list, n) != 0) goto out;
    }

    /* 5. refund instructions of refunding cases, never acknowledged: delivered again */
    int64_t t0 = mono_ms();
    for (;;) {
        int missing = -1;
        for (int i = 0; i < g_ncases && missing < 0; i++) {
            case_t *c = &g_cases[i];
            if (c->present == 1 && c->st == S_REFUNDING && c->ack_state == ACK_NONE &&
                c->refund_seen_run != g_run)
                missing = i;
        }
        if (missing < 0) break;
        if (mono_ms() - t0 > REDELIVERY_WAIT_MS) {
            for (int i = 0; i < g_ncases; i++) {
                case_t *c = &g_cases[i];
                if (c->present == 1 && c->st == S_REFUNDING && c->ack_state == ACK_NONE &&
                    c->refund_seen_run != g_run)
                    fail("case %s is refunding and its refund instruction %s was never "
                         "acknowledged, but it was not delivered again within %d ms of the "
                         "restart",
                         c->id, c->refund_seen ? c->refund_key : "(never seen)",
                         REDELIVERY_WAIT_MS);
            }
            break;
        }
        if (pump(50) < 0) {
            fail("the child ended while waiting for outbox redelivery");
            goto out;
        }
    }

    /* 6. full sweeps: orders acknowledged but abandoned still exist */
    if (full) {
        ni = 0;
        for (int i = 0; i < g_norders; i++)
            if (g_orders[i].create_acked && g_orders[i].st == O_DEAD) {
                ids[ni++] = send_probe(i);
                if (ni == CHUNK) {
                    if (await_reqs(ids, ni) != 0) goto out;
                    ni = 0;
                }
            }
        if (await_reqs(ids, ni) != 0) goto out;
    }
    rc = 0;
out:
    free(list);
    free(ids);
    return rc;
}

/* ==========================================================================================
 * A cycle's workload and its kill
 * ======================================================================================== */

typedef struct {
    int op, ent;
    const char *action;
} opd_t;

static int plan_round(opd_t *ops, int max)
{
    int n = 0, pipeline = 0, active = 0;
    int64_t now = wall_ms();
    for (int i = 0; i < g_ncases && n < max; i++) {
        case_t *c = &g_cases[i];
        if (c->refund_seen && (c->ack_state == ACK_NONE || c->ack_state == ACK_UNKNOWN) &&
            c->present != 0 && c->open != OPEN_FAILED && rng_pct(&g_work, 40))
            ops[n++] = (opd_t){OP_ACK, i, NULL};
    }
    for (int i = 0; i < g_norders && n < max; i++) {
        order_t *o = &g_orders[i];
        if (o->busy || o->st == O_DEAD || o->st == O_USED) continue;
        pipeline++;
        if (!rng_pct(&g_work, 85)) continue;
        if (o->st == O_CREATED)
            ops[n++] = (opd_t){OP_SHIP, i, NULL};
        else if (o->st == O_SHIPPED)
            ops[n++] = (opd_t){OP_DELIVER, i, NULL};
        else if (o->st == O_DELIVERED)
            ops[n++] = (opd_t){OP_OPEN, i, NULL};
    }
    for (int i = 0; i < g_ncases && n < max; i++) {
        case_t *c = &g_cases[i];
        if (c->busy || c->open != OPEN_ACKED || c->st == S_REFUNDED) continue;
        active++;
        if (c->st < 0) {
            ops[n++] = (opd_t){OP_GET, i, NULL};
            continue;
        }
        if (rng_pct(&g_work, 8)) {
            ops[n++] = (opd_t){OP_ACT, i, "return_delivered"};
            continue;
        }
        if (!rng_pct(&g_work, 80)) continue;
        switch (c->st) {
        case S_REQUESTED:
            if (!c->leave)
                ops[n++] = (opd_t){OP_ACT, i, "agree"};
            else if (now >= c->due + 30 || (c->due == 0 && rng_pct(&g_work, 20)))
                ops[n++] = (opd_t){OP_GET, i, NULL}; /* has its deadline fired? */
            break;
        case S_AWAITING:
            ops[n++] = (opd_t){OP_ACT, i, "ship_return"};
            break;
        case S_RETURNING:
            ops[n++] = (opd_t){OP_ACT, i, "confirm_return"};
            break;
        case S_REFUNDING:
            if (rng_pct(&g_work, 50)) ops[n++] = (opd_t){OP_ACT, i, "refund_succeeded"};
            break;
        default:
            break;
        }
    }
    if (n < max && pipeline < 3 && active < 12 && rng_pct(&g_work, 85))
        ops[n++] = (opd_t){OP_CREATE, -1, NULL};
    return n;
}

static size_t send_op(const opd_t *op)
{
    switch (op->op) {
    case OP_ACK:
        return send_outbox_ack(&g_cases[op->ent]);
    case OP_SHIP:
    case OP_DELIVER:
        return send_order_event(op->ent, op->op);
    case OP_OPEN:
        return send_new_case(op->ent);
    case OP_GET:
        return send_get(&g_cases[op->ent]);
    case OP_ACT:
        return send_act(&g_cases[op->ent], op->action, NULL, RS_NONE);
    case OP_CREATE:
        return send_create();
    default:
        return 0;
    }
}

enum { KILL_AT_ONCE, KILL_DELAYED, KILL_BETWEEN };

/* Runs cycle c's workload on the live child and kills it. */
static void work(int c, rng_t *sched)
{
    int k = rng_int(sched, 1, 40);
    int mode = rng_int(sched, 0, 9);
    mode = mode < 4 ? KILL_AT_ONCE : mode < 8 ? KILL_DELAYED : KILL_BETWEEN;
    long delay_us = rng_int(sched, 0, 3000);
    int sent = 0;
    int64_t t_end = mono_ms() + WORK_MAX_MS;
    opd_t ops[256];
    size_t ids[256];
    (void)c;
    for (;;) {
        int n = plan_round(ops, 256);
        if (n == 0) {
            if (pump(20) < 0) {
                fail("the child ended on its own during the workload");
                break;
            }
            if (mono_ms() > t_end) break;
            continue;
        }
        int ni = 0, killed = 0;
        for (int i = 0; i < n; i++) {
            size_t id = send_op(&ops[i]);
            if (id == 0) break;
            ids[ni++] = id;
            if (++sent >= k && mode != KILL_BETWEEN) {
                if (mode == KILL_DELAYED) sleep_us(delay_us);
                killed = 1;
                break;
            }
        }
        if (killed) break;
        if (await_reqs(ids, ni) != 0) break;
        if (sent >= k || mono_ms() > t_end) break;
    }
    child_kill();
}

/* The end: every pending deadline fires, a few writes sent just before the end of input are
 * still answered, and the child exits 0 (docs/pipe.md). */
static void finish(void)
{
    int64_t t0 = mono_ms();
    for (int pending = 1; pending && mono_ms() - t0 < 10000;) {
        pending = 0;
        int64_t now = wall_ms();
        for (int i = 0; i < g_ncases; i++) {
            case_t *c = &g_cases[i];
            if (c->st != S_REQUESTED || c->late_reported || c->open != OPEN_ACKED) continue;
            pending++;
            if (c->due <= now) {
                size_t id = send_get(c);
                if (await_reqs(&id, 1) != 0) {
                    child_kill();
                    return;
                }
            }
        }
        if (pending) pump(50);
    }
    size_t ids[8];
    int ni = 0;
    for (int i = 0; i < g_ncases && ni < 8; i++)
        if (g_cases[i].open == OPEN_ACKED && g_cases[i].present == 1)
            ids[ni++] = send_act(&g_cases[i], "return_delivered", NULL, RS_NONE);
    close(ch.in);
    ch.in = -1;
    if (await_reqs(ids, ni) != 0) {
        child_kill();
        return;
    }
    int64_t t1 = mono_ms();
    while (!ch.eof && mono_ms() - t1 < READ_TIMEOUT_MS)
        pump(200);
    if (!ch.eof)
        fail("the child did not close its output within %d s of its end of input",
             READ_TIMEOUT_MS / 1000);
    int st = 0;
    pid_t w;
    t1 = mono_ms();
    while ((w = waitpid(ch.pid, &st, WNOHANG)) == 0 && mono_ms() - t1 < READ_TIMEOUT_MS)
        sleep_us(10000);
    if (w == 0) {
        fail("the child did not exit within %d s of its end of input", READ_TIMEOUT_MS / 1000);
        kill(ch.pid, SIGKILL);
        waitpid(ch.pid, &st, 0);
    } else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fail("the child ended with %s %d at end of input, not exit status 0",
             WIFSIGNALED(st) ? "signal" : "exit status",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }
    close(ch.out);
    ch.out = -1;
    ch.pid = -1;
    ch.alive = 0;
}

/* ==========================================================================================
 * Main
 * ======================================================================================== */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void print_log_tail(void)
{
    FILE *f = fopen(g_log, "r");
    if (f == NULL) return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > 1500 ? size - 1500 : 0, SEEK_SET);
    char line[512];
    int first = size > 1500;
    while (fgets(line, sizeof line, f)) {
        if (first) { /* a partial line */
            first = 0;
            continue;
        }
        printf("crash:   child stderr: %s", line);
        if (line[strlen(line) - 1] != '\n') printf("\n");
    }
    fclose(f);
}

/* meson's timeout sends SIGTERM: take the child and the temp dir along (only
 * async-signal-safe calls). */
static void on_term(int sig)
{
    if (ch.pid > 0) kill(ch.pid, SIGKILL);
    static const char *const names[] = {"crash.db", "crash.db-wal", "crash.db-shm",
                                        "crash.db-journal", "child.log"};
    char path[PATH_MAX + 32];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t n = strlen(g_dir), m = strlen(names[i]);
        memcpy(path, g_dir, n);
        path[n] = '/';
        memcpy(path + n + 1, names[i], m + 1);
        unlink(path);
    }
    rmdir(g_dir);
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s AFTERSALE_EXE PACKS_DIR [CYCLES]\n", argv[0]);
        return 2;
    }
    g_exe = argv[1];
    g_packs = argv[2];
    g_ncycles = argc == 4 ? atoi(argv[3]) : 200;
    if (g_ncycles < 1) {
        fprintf(stderr, "crash: CYCLES must be at least 1\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    const char *seed_env = getenv("AFTERSALE_CRASH_SEED");
    if (seed_env && *seed_env)
        g_seed = strtoull(seed_env, NULL, 10);
    else
        g_seed = ((uint64_t)wall_ms() * 2654435761u) ^ (uint64_t)getpid();
    g_seed %= 1000000000000ull;
    printf("crash: seed %" PRIu64 " (AFTERSALE_CRASH_SEED=%" PRIu64 " replays it), %d cycles\n",
           g_seed, g_seed, g_ncycles);

    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/aftersale-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == NULL) {
        fprintf(stderr, "crash: mkdtemp: %s\n", strerror(errno));
        return 2;
    }
    snprintf(g_db, sizeof g_db, "%s/crash.db", g_dir);
    snprintf(g_log, sizeof g_log, "%s/child.log", g_dir);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);

    g_cycle_fails = calloc((size_t)g_ncycles, sizeof *g_cycle_fails);
    g_maxorders = g_ncycles * 40 + 100;
    g_maxcases = g_ncycles * 40 + 100;
    g_orders = calloc((size_t)g_maxorders, sizeof *g_orders);
    g_cases = calloc((size_t)g_maxcases, sizeof *g_cases);
    int64_t t_start = mono_ms();
    int fatal = 0;

    for (int c = 0; c < g_ncycles && !fatal; c++) {
        rng_t sched = {g_seed * 1000003u + (uint64_t)c * 2 + 1};
        g_work.s = g_seed * 1000003u + (uint64_t)c * 2 + 2;
        int before = c > 0 ? g_cycle_fails[c - 1] : 0;
        if (c == 0) {
            g_cycle = 0;
            size_t id;
            if (child_start() != 0 || (id = send_rules()) == 0 || await_reqs(&id, 1) != 0 ||
                g_cycle_fails[0]) {
                printf("crash: cannot start `%s pipe` and load the merchant rules\n", g_exe);
                print_log_tail();
                fatal = 1;
                break;
            }
        } else {
            g_cycle = c - 1;           /* what follows checks the previous cycle's crash */
            if (rng_pct(&sched, 10)) { /* a crash during recovery */
                if (child_start() == 0) {
                    sleep_us(rng_int(&sched, 0, 15000));
                    child_kill();
                    g_stats.recovery_kills++;
                }
            }
            if (child_start() != 0) {
                fail("cannot start the child: %s", strerror(errno));
                fatal = 1;
                break;
            }
            if (recover(c % 10 == 0) != 0) {
                child_kill();
                if (g_cycle_fails[c - 1] > before) print_log_tail();
                continue;
            }
            if (g_cycle_fails[c - 1] > before) print_log_tail();
        }
        g_cycle = c;
        work(c, &sched);
        if (rng_pct(&sched, 50)) sleep_us(rng_int(&sched, 0, 400) * 1000L); /* dead a while */
        if ((c + 1) % 25 == 0)
            printf("crash: %d/%d cycles, %d orders, %d cases, %.1f s\n", c + 1, g_ncycles,
                   g_norders, g_ncases, (double)(mono_ms() - t_start) / 1000.0);
    }

    if (!fatal) {
        /* the last cycle's crash, then a clean end of input */
        g_cycle = g_ncycles - 1;
        g_work.s = g_seed * 1000003u + 0xFFFFu;
        int before = g_cycle_fails[g_cycle];
        if (child_start() != 0) {
            fail("cannot start the child: %s", strerror(errno));
        } else if (recover(1) == 0) {
            finish();
        } else {
            child_kill();
        }
        if (g_cycle_fails[g_cycle] > before) print_log_tail();
    }
    if (ch.pid > 0) child_kill();

    int passed = 0, failed = 0;
    for (int c = 0; c < g_ncycles; c++) {
        if (fatal || g_cycle_fails[c])
            failed++;
        else
            passed++;
    }
    int acked_cases = 0, refunded = 0, auto_agreed = 0;
    for (int i = 0; i < g_ncases; i++) {
        if (g_cases[i].open == OPEN_ACKED) acked_cases++;
        if (g_cases[i].st == S_REFUNDED) refunded++;
        if (g_cases[i].last &&
            count_hist(json_object_get(g_cases[i].last, "history"), "auto_agree", "system"))
            auto_agreed++;
        json_decref(g_cases[i].last);
        json_decref(g_cases[i].disk);
    }
    printf("crash: %d cycles in %.1f s, %zu requests, %d orders, %d cases (%d refunded, %d "
           "auto-agreed); seed %" PRIu64 "\n",
           g_ncycles, (double)(mono_ms() - t_start) / 1000.0, g_nreqs - 1, g_norders, acked_cases,
           refunded, auto_agreed, g_seed);
    printf("crash: %ld kills (%ld with %ld unanswered writes, %ld during recovery); %ld lost "
           "keys resent (%ld found applied), %ld acknowledged keys resent; %ld deadlines fell "
           "due while dead and fired after the restart; %ld refund instructions delivered "
           "again after a restart\n",
           g_stats.kills, g_stats.kills_inflight, g_stats.lost_writes, g_stats.recovery_kills,
           g_stats.resent_lost, g_stats.resent_lost_applied, g_stats.resent_acked,
           g_stats.fired_after_restart, g_stats.redelivered);
    if (getenv("AFTERSALE_CRASH_KEEP") && *getenv("AFTERSALE_CRASH_KEEP"))
        printf("crash: kept %s\n", g_dir);
    else
        nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", passed, failed);
    free(g_cycle_fails);
    free(g_orders);
    free(g_cases);
    free(g_reqs);
    free(ch.buf);
    return failed == 0 ? 0 : 1;
}
