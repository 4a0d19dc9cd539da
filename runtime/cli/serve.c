/* serve.c -- `aftersale serve`: the HTTP JSON API on the embedded SQLite store. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "../api/http.h"
#include "../api/webhook.h"
#include "aftersale/aftersale.h"
#include "cli.h"

typedef struct serve_ctx {
    uv_loop_t *loop;
    uv_signal_t sigterm, sigint;
    as_http *http;
    as_webhooks *hooks; /* NULL without --webhook */
    as_runtime *rt;
    int stopping;
    int http_stopped; /* after a signal: every answer owed given, every connection closed */
} serve_ctx;

/* The runtime's outbox, once durable: to the webhooks, or to the log when there are none. */
static void outbox(void *data, const char *kind, const char *case_id, int64_t amount,
                   const char *key)
{
    serve_ctx *x = data;
    if (x->hooks) {
        as__webhooks_deliver(x->hooks, kind, case_id, amount, key);
        return;
    }
    /* as JSON: an id's bytes cannot start a log line of their own */
    char *line = as__webhooks_body(kind, case_id, amount, key); /* owned here */
    fprintf(stderr, "aftersale serve: outbox %s: no --webhook set\n", line ? line : "(no memory)");
    as_free(line);
}

/* The server has answered what it owed (backtests included) and holds no connection. */
static void stopped(void *ud)
{
    ((serve_ctx *)ud)->http_stopped = 1;
}

static void on_signal(uv_signal_t *s, int signum)
{
    serve_ctx *x = s->data;
    if (x->stopping++) return;
    fprintf(stderr, "aftersale serve: signal %d: finishing in-flight requests\n", signum);
    uv_close((uv_handle_t *)&x->sigterm, NULL);
    uv_close((uv_handle_t *)&x->sigint, NULL);
    as__http_shutdown(x->http, stopped, x);
    if (x->hooks) as__webhooks_stop(x->hooks);
}

/* Everything serve can be told, from --config and then the command line. */
typedef struct serve_opts {
    char listen[300], db[4096], keys[4096], packs[4096];
    char hooks[AS_WEBHOOK_MAX][1024], secrets[AS_WEBHOOK_MAX][4096], webhook_ca[4096];
    int nhooks;
    as_webhook_options wh; /* the numbers; the targets are filled from hooks and secrets */
    as_http_options http;
    int64_t idempotency_ms; /* 0: the runtime's default */
    int virtual_clock;      /* --clock virtual: time moves only on POST /v1/clock/advance */
    int64_t clock_start;    /* --clock-start: the virtual clock's first instant */
    int has_clock_start;
} serve_opts;

static int set_opt(serve_opts *so, const char *name, const char *value)
{
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } strs[] = {{"listen", so->listen, sizeof so->listen},
                {"db", so->db, sizeof so->db},
                {"keys", so->keys, sizeof so->keys},
                {"packs", so->packs, sizeof so->packs}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp(name, strs[i].name) == 0) {
            snprintf(strs[i].dst, strs[i].cap, "%s", value);
            return 0;
        }
    if (strcmp(name, "webhook") == 0) {
        if (so->nhooks == AS_WEBHOOK_MAX) {
            fprintf(stderr, "aftersale serve: too many webhooks (at most %d)\n", AS_WEBHOOK_MAX);
            return -1;
        }
        snprintf(so->hooks[so->nhooks++], sizeof so->hooks[0], "%s", value);
        return 0;
    }
    if (strcmp(name, "webhook_secret_file") == 0) {
        /* the secret of the webhook named just before it */
        if (so->nhooks == 0 || so->secrets[so->nhooks - 1][0]) {
            fprintf(stderr, "aftersale serve: each webhook-secret-file follows its own webhook\n");
            return -1;
        }
        snprintf(so->secrets[so->nhooks - 1], sizeof so->secrets[0], "%s", value);
        return 0;
    }
    if (strcmp(name, "idempotency_retention") == 0) {
        int64_t ms;
        if (as_duration_parse(value, &ms) != 0 || ms <= 0) {
            fprintf(stderr, "aftersale serve: --idempotency-retention wants a duration above 0 "
                            "such as 24h, 90m or 1d12h, not '%s'\n", value);
            return -1;
        }
        so->idempotency_ms = ms;
        return 0;
    }
    if (strcmp(name, "clock") == 0) {
        /* virtual only when asked for by name: a server whose deadlines wait for a client to
         * move time is a test rig, never what a typo or a default gives */
        if (strcmp(value, "real") != 0 && strcmp(value, "virtual") != 0) {
            fprintf(stderr, "aftersale serve: --clock wants real or virtual, not '%s'\n", value);
            return -1;
        }
        so->virtual_clock = strcmp(value, "virtual") == 0;
        return 0;
    }
    if (strcmp(name, "clock_start") == 0) {
        if (as_instant_parse(value, &so->clock_start) != 0) {
            fprintf(stderr, "aftersale serve: --clock-start wants an RFC 3339 UTC instant such "
                            "as 2026-03-01T00:00:00Z, not '%s'\n", value);
            return -1;
        }
        so->has_clock_start = 1;
        return 0;
    }
    if (strcmp(name, "webhook_ca") == 0) {
        snprintf(so->webhook_ca, sizeof so->webhook_ca, "%s", value);
        return 0;
    }
    struct {
        const char *name;
        unsigned *dst;
    } nums[] = {{"idle_ms", &so->http.idle_ms},
                {"request_ms", &so->http.request_ms},
                {"max_conns", &so->http.max_connections},
                {"max_connections", &so->http.max_connections}, /* its older name */
                {"max_conns_per_client", &so->http.max_conns_per_client},
                {"webhook_connect_ms", &so->wh.connect_ms},
                {"webhook_timeout_ms", &so->wh.timeout_ms},
                {"webhook_inflight", &so->wh.max_inflight}};
    char *end;
    unsigned long v = strtoul(value, &end, 10);
    if (*value == '\0' || *end != '\0' || v == 0 || v > 1000000000ul) return -1;
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
        if (strcmp(name, nums[i].name) == 0) return *nums[i].dst = (unsigned)v, 0;
    if (strcmp(name, "max_body") == 0) return so->http.max_body = v, 0;
    if (strcmp(name, "max_header") == 0) return so->http.max_header = v, 0;
    return -1;
}

/* --config FILE: `name = value` lines (# comments), names as the long options with '_'. */
static int read_config(serve_opts *so, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "aftersale serve: cannot read %s\n", path);
        return -1;
    }
    char line[4200];
    int n = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        n++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char name[64], value[4100];
        int got = sscanf(line, " %63[a-z_] = %4099s", name, value);
        if (got <= 0 && strspn(line, " \t\r\n") == strlen(line)) continue;
        if (got != 2 || set_opt(so, name, value) != 0) {
            fprintf(stderr, "aftersale serve: %s:%d: want `name = value` with a known name "
                            "(listen, db, keys, packs, webhook, webhook_secret_file, webhook_ca, "
                            "webhook_connect_ms, webhook_timeout_ms, webhook_inflight, max_body, "
                            "max_header, idle_ms, request_ms, max_conns, max_conns_per_client, "
                            "idempotency_retention, clock, clock_start)\n",
                    path, n);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: aftersale serve [--config FILE] [--listen HOST:PORT] [--db FILE] --keys FILE\n"
               "                       [--packs DIR]\n"
               "                       [--webhook URL --webhook-secret-file FILE]...\n"
               "                       [--webhook-ca FILE] [--webhook-connect-ms MS]\n"
               "                       [--webhook-timeout-ms MS] [--webhook-inflight N]\n"
               "                       [--clock real|virtual [--clock-start INSTANT]]\n"
               "\n"
               "Serves the HTTP JSON API (docs/api.md) on the durable SQLite store. A write is\n"
               "answered once it is on disk. SIGTERM or SIGINT stop accepting, finish what is in\n"
               "flight, commit and exit 0.\n"
               "\n"
               "  --config FILE       `name = value` lines for any option below, named with '_'\n"
               "                      for '-' (max_conns = 512); the command line wins\n"
               "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080)\n"
               "  --db FILE           the database (default aftersale.db, created when missing);\n"
               "                      one server per file, and `aftersale db check|backup|\n"
               "                      export FILE` read it meanwhile (docs/db.md)\n"
               "  --keys FILE         API keys: one `KEY PRINCIPAL` per line, # comments;\n"
               "                      principals platform, merchant:SHOP, buyer:ID, logistics\n"
               "  --packs DIR         the bundled Lua rule packs (default: %s)\n"
               "  --webhook URL       POST each outbox entry (refund instructions) to URL,\n"
               "                      http:// or https://HOST[:PORT]/PATH, with its\n"
               "                      Idempotency-Key, signed; retried with backoff (100 ms\n"
               "                      doubling, at most 1 min) until a 2xx. Up to 8 URLs.\n"
               "  --webhook-secret-file FILE\n"
               "                      the signing secret of the --webhook just before it (the\n"
               "                      file's bytes, 16 to 4096, a trailing newline dropped);\n"
               "                      required for each URL. Each request carries\n"
               "                      X-Aftersale-Timestamp: MS and X-Aftersale-Signature:\n"
               "                      v1=HEX, HEX = HMAC-SHA256(secret, MS + \".\" + body)\n"
               "                      (docs/api.md shows how a receiver checks it)\n"
               "  --webhook-ca FILE   PEM CA certificates to trust for https webhooks\n"
               "                      (default: the system's)\n"
               "  --webhook-connect-ms MS   connect timeout per attempt (default 5000)\n"
               "  --webhook-timeout-ms MS   whole-attempt timeout (default 10000)\n"
               "  --webhook-inflight N      deliveries in flight at once (default 16); the\n"
               "                      others wait their turn, none is dropped\n"
               "  --max-conns N       open connections in all (default 1024; 503 beyond)\n"
               "  --max-conns-per-client N\n"
               "                      open connections from one IPv4 address (default 64)\n"
               "  --max-body BYTES    request body (default 1048576; 413 beyond)\n"
               "  --max-header BYTES  request line and headers (default 16384; 431 beyond)\n"
               "  --request-ms MS     a request must arrive whole within MS of its first byte\n"
               "                      (default 10000; 408)\n"
               "  --idle-ms MS        close a connection with nothing in flight for MS\n"
               "                      (default 30000)\n"
               "  --idempotency-retention DURATION\n"
               "                      how long an Idempotency-Key's first answer is kept\n"
               "                      (default 24h; d, h, m, s: 1d12h, 90m); then it is\n"
               "                      forgotten and the same key runs the request anew\n"
               "  --clock real|virtual\n"
               "                      real (the default): time is the wall clock and deadlines\n"
               "                      fire when due. virtual, for tests only: time starts at the\n"
               "                      wall clock and moves only on POST /v1/clock/advance\n"
               "                      {\"by\":\"48h\"} (platform key), which fires the deadlines\n"
               "                      passed in due order; nothing fires by itself. A restart\n"
               "                      resumes at the last instant the database records if later\n"
               "  --clock-start INSTANT\n"
               "                      a virtual clock's first instant, RFC 3339 UTC\n"
               "                      (2026-03-01T00:00:00Z) instead of the wall clock\n"
               "  -h, --help          this text\n",
            as__cli_packs_dir());
}

int as__cli_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"listen", required_argument, NULL, 'l'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"keys", required_argument, NULL, 'k'},
                                         {"packs", required_argument, NULL, 'p'},
                                         {"webhook", required_argument, NULL, 'w'},
                                         {"webhook-secret-file", required_argument, NULL, 'S'},
                                         {"webhook-ca", required_argument, NULL, 'A'},
                                         {"webhook-connect-ms", required_argument, NULL, 'n'},
                                         {"webhook-timeout-ms", required_argument, NULL, 'T'},
                                         {"webhook-inflight", required_argument, NULL, 'f'},
                                         {"max-conns", required_argument, NULL, 'C'},
                                         {"max-conns-per-client", required_argument, NULL, 'P'},
                                         {"max-body", required_argument, NULL, 'B'},
                                         {"max-header", required_argument, NULL, 'H'},
                                         {"request-ms", required_argument, NULL, 'R'},
                                         {"idle-ms", required_argument, NULL, 'I'},
                                         {"idempotency-retention", required_argument, NULL, 'r'},
                                         {"clock", required_argument, NULL, 'K'},
                                         {"clock-start", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    static serve_opts so; /* large; one per process */
    memset(&so, 0, sizeof so);
    snprintf(so.listen, sizeof so.listen, "127.0.0.1:8080");
    snprintf(so.db, sizeof so.db, "aftersale.db");
    snprintf(so.packs, sizeof so.packs, "%s", as__cli_packs_dir());
    int c;
    /* the config first, whatever its place, so that the command line wins */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') return usage(stdout), 0;
        if (c == '?') return usage(stderr), 2;
        if (c == 'c' && read_config(&so, optarg) != 0) return 2;
    }
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'c') continue;
        /* the long option's own name, '-' as '_', is the config name */
        char name[64] = "";
        for (const struct option *op = opts; op->name && !name[0]; op++)
            if (op->val == c) snprintf(name, sizeof name, "%s", op->name);
        for (char *p = name; *p; p++)
            if (*p == '-') *p = '_';
        if (set_opt(&so, name, optarg) != 0) {
            /* set_opt has said why for the webhook, its secret and its CA; the rest are numbers */
            if (strcmp(name, "webhook") && strcmp(name, "webhook_secret_file") &&
                strcmp(name, "webhook_ca") && strcmp(name, "idempotency_retention") &&
                strcmp(name, "clock") && strcmp(name, "clock_start"))
                fprintf(stderr, "aftersale serve: --%s wants a number from 1 to 1000000000, "
                                "not '%s'\n", name, optarg);
            return 2;
        }
    }
    as_webhook_target targets[AS_WEBHOOK_MAX];
    for (int i = 0; i < so.nhooks; i++) {
        if (so.secrets[i][0] == '\0') {
            fprintf(stderr, "aftersale serve: --webhook %s needs --webhook-secret-file FILE after "
                            "it: every delivery is signed (docs/api.md)\n", so.hooks[i]);
            return 2;
        }
        targets[i] = (as_webhook_target){so.hooks[i], so.secrets[i]};
    }
    if (so.has_clock_start && !so.virtual_clock) {
        fprintf(stderr, "aftersale serve: --clock-start needs --clock virtual (a real clock "
                        "starts where the wall clock is)\n");
        return 2;
    }
    so.wh.targets = targets;
    so.wh.ntargets = so.nhooks;
    so.wh.ca_file = so.webhook_ca[0] ? so.webhook_ca : NULL;
    if (optind != argc || so.keys[0] == '\0') return usage(stderr), 2;
    const char *listen = so.listen, *db = so.db, *keys = so.keys, *packs = so.packs;
    int nhooks = so.nhooks;
    char host[256];
    const char *colon = strrchr(listen, ':');
    int port = colon ? atoi(colon + 1) : 0;
    if (colon == NULL || colon - listen >= (long)sizeof host || port <= 0 || port > 65535) {
        fprintf(stderr, "aftersale serve: --listen wants HOST:PORT, not '%s'\n", listen);
        return 2;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';

    /* a client that goes away must not take the server with it */
    signal(SIGPIPE, SIG_IGN);
    serve_ctx x = {0};
    x.loop = uv_default_loop();
    as_options o = {0};
    o.loop = x.loop;
    o.outbox = outbox;
    o.outbox_data = &x;
    o.idempotency_ms = so.idempotency_ms;
    if (so.virtual_clock) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        o.virtual_clock = 1;
        o.start_ms = so.has_clock_start ? so.clock_start
                                        : (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    as_error err = {0};
    x.rt = as_runtime_new(&o, &err);
    as_http_options ho = so.http;
    ho.host = host;
    ho.port = port;
    ho.db_path = db;
    ho.packs_dir = packs;
    if (x.rt && nhooks && as__webhooks_new(x.loop, x.rt, &so.wh, &x.hooks, &err) == 0)
        ho.webhooks = as__webhooks_stats(x.hooks);
    if (x.rt == NULL || (nhooks && x.hooks == NULL) ||
        as_runtime_load_packs_dir(x.rt, packs, &err) != 0 ||
        as_runtime_attach_store(x.rt, db, &err) != 0 ||
        as__http_new(x.loop, x.rt, &ho, keys, &x.http, &err) != 0) {
        fprintf(stderr, "aftersale serve: %s\n", err.msg);
        as__webhooks_stop(x.hooks);
        as_runtime_free(x.rt);
        uv_run(x.loop, UV_RUN_NOWAIT);
        as__webhooks_free(x.hooks);
        return 1;
    }
    uv_signal_init(x.loop, &x.sigterm);
    uv_signal_init(x.loop, &x.sigint);
    x.sigterm.data = x.sigint.data = &x;
    uv_signal_start(&x.sigterm, on_signal, SIGTERM);
    uv_signal_start(&x.sigint, on_signal, SIGINT);
    fprintf(stderr, "aftersale serve: listening on http://%s:%d (db %s)\n", host, port, db);
    if (so.virtual_clock) {
        char at[32];
        as_instant_format(as_runtime_now(x.rt), at, sizeof at);
        fprintf(stderr, "aftersale serve: virtual clock at %s: it moves only on POST "
                        "/v1/clock/advance\n", at);
    }
    while (!x.stopping || !x.http_stopped || !as_runtime_idle(x.rt)) {
        if (uv_run(x.loop, UV_RUN_ONCE) == 0 && x.stopping) break;
    }
    as_runtime_free(x.rt);
    uv_run(x.loop, UV_RUN_NOWAIT); /* closes: the runtime's timer, deliveries, then their timers */
    uv_run(x.loop, UV_RUN_NOWAIT);
    as__http_free(x.http);
    as__webhooks_free(x.hooks);
    fprintf(stderr, "aftersale serve: stopped\n");
    return 0;
}
