/* http.c -- the HTTP server: connections, parsing, ordering of responses. See http.h. */
#include "http.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "head.h"
#include "prom.h"
#include "router.h"
#include "webhook.h"

/* ==========================================================================================
 * Keys
 * ======================================================================================== */

/* The keys file into `keys`, a JSON object used as a map: key -> principal string. */
static int load_keys(json_t *keys, const char *path, as_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return as_error_set(err, AS_EIO, "%s: cannot read the keys file", path);
    char line[1024];
    int n = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        n++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char key[512], who[512], extra[8];
        int got = sscanf(line, "%511s %511s %7s", key, who, extra);
        if (got <= 0) continue;
        if (got != 2 || as_principal_parse(who, NULL) == AS_PARTY_NONE)
            rc = as_error_set(err, AS_EBAD_REQUEST, "%s:%d: want `KEY PRINCIPAL` (platform, "
                              "merchant:SHOP, buyer:ID or logistics)", path, n);
        else if (json_object_get(keys, key))
            rc = as_error_set(err, AS_EBAD_REQUEST, "%s:%d: the key is listed twice", path, n);
        else if (json_object_set_new(keys, key, json_string(who)) != 0)
            rc = as_error_set(err, AS_ENOMEM, "out of memory");
    }
    fclose(f);
    return rc;
}

static void read_buffer(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = as_malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

/* ==========================================================================================
 * Server and connections
 * ======================================================================================== */

typedef struct response {
    struct response *next;
    int ready, status;
    uint64_t started; /* uv_hrtime() when the request was complete */
    char *buf; /* owned until written */
    size_t len;
    int close_after;
} response;

/* Back-pressure: a connection whose unsent answers (in libuv's write queue, or ready behind
 * one still waiting for its commit) pass MAX_UNSENT bytes or MAX_QUEUED answers is not read
 * any further until they are down to half of that. */
enum { MAX_UNSENT = 1 << 20, MAX_QUEUED = 256 };
/* Header limits besides the total (as_http_options.max_header): docs/api.md. */
enum { MAX_FIELD = 1 << 10, MAX_VALUE = 8 << 10, MAX_HEADERS = 100 };

/* A request read whole. The parser fills one in the connection; once it is complete it moves
 * into a job (run_request) that the loop turn's step runs, so no rule runs inside libuv's
 * read callback (docs/design.md#the-loop-turn). */
typedef struct request {
    char *url, *body; /* owned, NUL-terminated */
    size_t url_len, body_len;
    char auth[512], idem[512]; /* NUL-terminated; a longer value is cut */
    size_t auth_len, idem_len;
    int has_auth, has_idem;
    int auth_cut; /* the Authorization value was longer than auth: it matches no key */
    int method;   /* enum http_method */
    int ka;       /* the answer keeps the connection open */
} request;

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the request's deadline (408) while one is being read, else idle */
    http_parser parser;
    as_http *srv;
    struct conn *next_conn, *prev_conn;
    response *head, *tail; /* in request order */
    unsigned queued;       /* responses from head to tail */
    int pending;           /* answers still to come from the runtime */
    int closing, handles;  /* handles still open (tcp, timer; and a socket-less one's owner) */
    uint32_t peer;         /* the client's IPv4 address (network order), 0 if unknown */
    int refused;           /* accepted only to be told 503: not counted against its address */
    /* reading */
    int reading;           /* uv_read_start is in force */
    int done;              /* an answer will close the connection: nothing more is run */
    int feeding;           /* inside http_parser_execute (no re-entry from an answer) */
    char *rest;            /* owned: read but not parsed while the answers are backed up */
    size_t rest_off, rest_len;
    uint64_t writes_done, writes_seen; /* queued writes completed; at the last idle check */
    as_http_sink sink;     /* not NULL: no socket, the answers go here (as__http_conn_new) */
    void *sink_ud;
    /* the request being read */
    request rq;
    size_t header_bytes;
    /* headers: only two matter, kept in fixed buffers (no allocation per header) */
    char hfield[24];
    size_t hfield_len, item_len; /* item_len: the current name's or value's length */
    int in_value;               /* the last header callback was a value */
    unsigned nheaders;
    int hwant;                  /* the value being read: -1 ignored, 1 auth, 2 idempotency key */
    int too_big;           /* 413 or 431 once a limit is passed (the parse stops there) */
    int in_request;        /* a request has begun and not yet ended */
    int eof;               /* the client has finished sending */
} conn;

struct as_http {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening;
    as_runtime *rt;
    as_http_options o;
    json_t *keys; /* owned: key -> principal */
    conn *conns;
    unsigned nconns;
    int stopping;
    void (*on_stopped)(void *ud);
    void *stopped_ud;
    uint64_t by_status[6]; /* requests answered, by status class 1xx..5xx (index 1..5) */
    uint64_t latency[12];  /* answers by latency bucket (LATENCY), the last one +Inf */
    uint64_t latency_ns_sum;
    char *ok_body; /* owned: {"ok":true}, by jansson once for every answer that is only that */
    int backtests; /* running on libuv's thread pool (MAX_BACKTESTS) */
};

int as__http_status(int code)
{
    switch (code) {
    case 0: return 200;
    case AS_EBAD_REQUEST: return 400;
    case AS_EUNAUTHORIZED: return 401;
    case AS_EFORBIDDEN: return 403;
    case AS_ENOT_FOUND: return 404;
    case AS_EINVALID_STATE:
    case AS_ECONFLICT:
    case AS_EDUPLICATE_CASE: return 409;
    case AS_ENOT_ELIGIBLE:
    case AS_EWINDOW_EXPIRED:
    case AS_EATTEMPT_LIMIT:
    case AS_EEVIDENCE_REQUIRED:
    case AS_EAMOUNT_EXCEEDS_PAID:
    case AS_EREMEDY_NOT_ALLOWED:
    case AS_EWARRANTY_EXPIRED: return 422;
    case AS_ERULE_ERROR: return 500;
    default: return 503; /* nomem, io: the server cannot take writes now */
    }
}

static void conn_maybe_free(conn *c);

static void on_closed(uv_handle_t *h)
{
    conn *c = h->data;
    c->handles--;
    conn_maybe_free(c);
}

static void conn_close(conn *c)
{
    if (c->closing) return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

static void reset_request(conn *c)
{
    as_free(c->rq.url), as_free(c->rq.body);
    c->rq.url = c->rq.body = NULL;
    c->rq.url_len = c->rq.body_len = c->rq.auth_len = c->rq.idem_len = 0;
    c->rq.has_auth = c->rq.has_idem = c->rq.auth_cut = 0;
    c->hfield_len = c->item_len = c->header_bytes = 0;
    c->nheaders = 0;
    c->hwant = c->in_value = 0;
    c->too_big = 0;
}

/* Once stopping, the server has stopped when no connection is left and no backtest runs on
 * the pool: a backtest's job points to the server, and its client (when still there) is
 * owed its answer. */
static void stopped_if_done(as_http *h)
{
    if (h->stopping && h->nconns == 0 && h->backtests == 0 && h->on_stopped) {
        void (*done)(void *) = h->on_stopped;
        h->on_stopped = NULL; /* once */
        done(h->stopped_ud);
    }
}

static void conn_maybe_free(conn *c)
{
    if (c->handles > 0 || c->pending > 0) return;
    as_http *h = c->srv;
    if (c->prev_conn) c->prev_conn->next_conn = c->next_conn;
    else h->conns = c->next_conn;
    if (c->next_conn) c->next_conn->prev_conn = c->prev_conn;
    h->nconns--;
    for (response *r = c->head, *n; r; r = n) {
        n = r->next;
        as_free(r->buf);
        as_free(r);
    }
    reset_request(c);
    as_free(c->rest);
    as_free(c);
    stopped_if_done(h);
}

static void start_reading(conn *c);
static void stop_reading(conn *c);
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void resume(conn *c);

typedef struct write_req {
    uv_write_t req;
    char *buf;
} write_req;

static void on_written(uv_write_t *w, int status)
{
    write_req *wr = (write_req *)w;
    conn *c = w->handle->data;
    as_free(wr->buf);
    as_free(wr);
    c->writes_done++;
    if (status == 0) resume(c); /* the client reads again: so may we */
}

/* The latency histogram's bucket bounds, and each as its `le` label shows it in seconds. */
static const struct {
    double ms;
    const char *le;
} LATENCY[11] = {{0.5, "0.0005"}, {1, "0.001"},  {2, "0.002"}, {5, "0.005"},
                 {10, "0.01"},    {25, "0.025"}, {50, "0.05"}, {100, "0.1"},
                 {250, "0.25"},   {500, "0.5"},  {1000, "1"}};

static void observe(as_http *h, uint64_t ns)
{
    int b = 0;
    while (b < 11 && (double)ns / 1e6 > LATENCY[b].ms)
        b++;
    h->latency[b]++;
    h->latency_ns_sum += ns;
}

/* Sends r->buf, taking it when it has to wait in libuv's queue. Most answers fit the socket
 * buffer and are written here, with no request to allocate (and no write watcher for libuv to
 * stop, which costs an epoll_ctl). Returns 0, or -1 when the answer cannot go out whole. */
static int send_answer(conn *c, response *r)
{
    if (r->buf == NULL) return -1; /* no memory was left to build it */
    if (c->sink) return c->sink(c->sink_ud, r->buf, r->len), 0;
    uv_buf_t b = uv_buf_init(r->buf, (unsigned)r->len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)r->len) return 0;
    if (n < 0 && n != UV_EAGAIN) return -1;
    write_req *wr = as_malloc(sizeof *wr);
    if (wr == NULL) return -1;
    size_t off = n > 0 ? (size_t)n : 0;
    wr->buf = r->buf;
    b = uv_buf_init(r->buf + off, (unsigned)(r->len - off));
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        as_free(wr);
        return -1;
    }
    r->buf = NULL;
    return 0;
}

/* Writes the ready responses at the head of the queue, in request order. */
static void flush(conn *c)
{
    while (c->head && c->head->ready) {
        response *r = c->head;
        c->head = r->next;
        if (c->head == NULL) c->tail = NULL;
        c->queued--;
        if (r->status >= 100 && r->status < 600) c->srv->by_status[r->status / 100]++;
        observe(c->srv, uv_hrtime() - r->started);
        int close_after = r->close_after;
        /* an answer that cannot go out whole would garble the ones after it: hang up */
        if (!c->closing && send_answer(c, r) != 0) close_after = 1;
        as_free(r->buf);
        as_free(r);
        if (close_after) conn_close(c);
    }
    if (!c->closing && c->head == NULL && c->pending == 0 &&
        (c->srv->stopping || c->eof || c->done))
        conn_close(c);
}

/* Are the answers backed up past 1/div of the bounds (back-pressure)? */
static int backed_up(const conn *c, unsigned div)
{
    if (c->queued > MAX_QUEUED / div) return 1;
    size_t bytes = c->sink ? 0 : c->tcp.write_queue_size;
    for (const response *r = c->head; r && bytes <= MAX_UNSENT / div; r = r->next)
        if (r->ready) bytes += r->len;
    return bytes > MAX_UNSENT / div;
}

/* The answer's bytes. The head is written by head.h from fixed strings and integers only (the
 * status line from its table, the body's length): nothing a client sent reaches it. `body`
 * is JSON built by jansson, or the Prometheus text of prom.h. No memory, or a head the writer
 * refuses: r->buf stays NULL and the connection is hung up (send_answer). */
static void fill_typed(response *r, int status, const char *type, const char *body, size_t blen,
                       int close_after)
{
    r->status = status;
    as_buf b;
    as__buf_init(&b, 128 + blen);
    as__head_status(&b, status);
    as__head_field(&b, "Content-Type", type);
    as__head_field_u64(&b, "Content-Length", blen);
    if (close_after) as__head_field(&b, "Connection", "close");
    as__head_end(&b);
    as__buf_put(&b, body, blen);
    r->buf = as__buf_take(&b, &r->len);
    r->ready = 1;
    r->close_after = close_after;
}

static void fill(response *r, int status, const char *body, int close_after)
{
    fill_typed(r, status, "application/json", body, strlen(body), close_after);
}

/* The error body {"error": name, "message": msg}, by jansson. */
static void fill_status(response *r, int status, const char *name, const char *msg, int close_after)
{
    json_t *j = json_pack("{s:s, s:s}", "error", name, "message", msg ? msg : "");
    char *s = json_dumps(j, JSON_COMPACT);
    fill(r, status, s ? s : "{}", close_after);
    as_free(s);
    json_decref(j);
}

static void fill_error(response *r, int code, const char *msg, int close_after)
{
    fill_status(r, as__http_status(code), as_err_name(code), msg, close_after);
}

static response *enqueue(conn *c)
{
    response *r = as_calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    r->started = uv_hrtime();
    if (c->tail) c->tail->next = r;
    else c->head = r;
    c->tail = r;
    c->queued++;
    return r;
}

/* Answers a transport error (408, 413, 431, 400 malformed HTTP, 503) and ends the connection:
 * nothing the client sends after it is read or run. */
static void refuse(conn *c, int status, const char *name, const char *msg)
{
    c->done = 1;
    stop_reading(c);
    response *r = enqueue(c);
    if (r) fill_status(r, status, name, msg, 1);
    else conn_close(c);
    flush(c);
}

/* ==========================================================================================
 * Routing
 * ======================================================================================== */

typedef struct answer_ctx {
    conn *c;
    response *r;
    int keep_alive;
    int created; /* a write that made something: 201 */
    int read;    /* a read: its text is the body */
} answer_ctx;

/* The runtime's answer to a write (code, sentence) or a read (code, JSON text); called at
 * once or once what it reports is durable. */
static void answered(void *ud, int code, const char *text)
{
    answer_ctx *a = ud;
    conn *c = a->c;
    as_free(a->r->buf);
    a->r->buf = NULL;
    if (code) fill_error(a->r, code, text, !a->keep_alive);
    else if (a->read) fill(a->r, 200, text, !a->keep_alive);
    else fill(a->r, a->created ? 201 : 200, c->srv->ok_body, !a->keep_alive);
    as_free(a);
    c->pending--;
    flush(c);
    resume(c); /* one fewer answer waiting: the connection may be read again */
    conn_maybe_free(c);
}

/* An answer to come from the runtime into `r`: NULL (r filled with 503) when out of memory. */
static answer_ctx *await(conn *c, response *r, int ka, int created, int read)
{
    answer_ctx *a = as_malloc(sizeof *a); /* owned by answered() */
    if (a == NULL) {
        fill_error(r, AS_ENOMEM, "out of memory", 1);
        return NULL;
    }
    *a = (answer_ctx){c, r, ka, created, read};
    r->ready = 0;
    c->pending++;
    return a;
}

/* An answer the runtime gives at once as a string (taken), or NULL with err. */
static void fill_text(response *r, char *text, const as_error *err, int ka)
{
    if (text) fill(r, 200, text, !ka);
    else fill_error(r, err->code ? err->code : AS_ENOMEM, err->msg, !ka);
    as_free(text);
}

/* The value of `name` in the query string `q` ("a=1&b=2"), copied into buf; NULL if absent. */
static const char *query(const char *q, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            const char *v = p + n + 1, *end = strchr(v, '&');
            size_t len = end ? (size_t)(end - v) : strlen(v);
            if (len >= cap) len = cap - 1;
            memcpy(buf, v, len);
            buf[len] = '\0';
            return buf;
        }
        p = strchr(p, '&');
        if (p) p++;
    }
    return NULL;
}

/* One request being routed: what every handler needs. */
typedef struct req {
    conn *c;
    response *r;
    int ka;
    const char *principal; /* the key's */
    const as_route_match *m;
    const request *rq;
} req;

/* GET /v1/cases/{case} */
static void get_case(req *q)
{
    answer_ctx *a = await(q->c, q->r, q->ka, 0, 1);
    if (a) as_case_view(q->c->srv->rt, q->principal, q->m->params[0], answered, a);
}

/* GET /v1/cases?shop=&state=&limit=&cursor=: the worklist, by priority then deadline; the
 * cursor is the position after the last case of the previous page. */
static void list_cases(req *q)
{
    char shopb[256], stateb[64], limitb[32], cursorb[32];
    as_worklist_query wq = {.principal = q->principal};
    const char *qs = q->m->query;
    wq.shop = query(qs, "shop", shopb, sizeof shopb);
    wq.state = query(qs, "state", stateb, sizeof stateb);
    wq.limit = query(qs, "limit", limitb, sizeof limitb) ? atol(limitb) : 50;
    wq.cursor = query(qs, "cursor", cursorb, sizeof cursorb) ? atol(cursorb) : 0;
    if (wq.limit == 0) wq.limit = -1; /* "limit=0" is out of range, not the default */
    answer_ctx *a = await(q->c, q->r, q->ka, 0, 1);
    if (a) as_worklist_read(q->c->srv->rt, &wq, answered, a);
}

/* GET /v1/shops/{shop}/metrics */
static void shop_metrics(req *q)
{
    as_error err = {0};
    fill_text(q->r, as_shop_metrics_read(q->c->srv->rt, q->principal, q->m->params[0], &err),
              &err, q->ka);
}

/* GET /v1/shops/{shop}/rules: the shop's pack versions; .../rules/{version}: one, with its
 * source. */
static void shop_rules(req *q)
{
    as_error err = {0};
    const char *version = q->m->route == AS_ROUTE_SHOP_RULE ? q->m->params[1] : NULL;
    fill_text(q->r, as_shop_rules_read(q->c->srv->rt, q->principal, q->m->params[0], version, &err),
              &err, q->ka);
}

/* GET /v1/rules: what is in force; a merchant sees its own shop's pack only. */
static void list_rules(req *q)
{
    as_error err = {0};
    fill_text(q->r, as_rules_read(q->c->srv->rt, q->principal, &err), &err, q->ka);
}

/* Hands the command to the runtime; `r` is filled when it is durable or refused. */
static void command(req *q, as_op op, const char *target, int created)
{
    conn *c = q->c;
    const request *rq = q->rq;
    as_command cmd = {.op = op,
                      .principal = q->principal,
                      .target = target,
                      .body = rq->body,
                      .body_len = rq->body_len,
                      .key = rq->has_idem ? rq->idem : NULL,
                      .key_len = rq->idem_len};
    answer_ctx *a = await(c, q->r, q->ka, created, 0);
    if (a) as_runtime_command(c->srv->rt, &cmd, answered, a);
}

static void create_order(req *q)
{
    command(q, AS_OP_ORDER_CREATE, NULL, 1);
}

/* POST /v1/orders/{order}/ship, deliver, confirm */
static void ship_order(req *q)
{
    command(q, AS_OP_ORDER_SHIP, q->m->params[0], 0);
}

static void deliver_order(req *q)
{
    command(q, AS_OP_ORDER_DELIVER, q->m->params[0], 0);
}

static void confirm_order(req *q)
{
    command(q, AS_OP_ORDER_CONFIRM, q->m->params[0], 0);
}

static void open_case(req *q)
{
    command(q, AS_OP_CASE_OPEN, NULL, 1);
}

static void act_on_case(req *q)
{
    command(q, AS_OP_CASE_ACT, q->m->params[0], 0);
}

static void upload_rules(req *q)
{
    command(q, AS_OP_RULES_LOAD, q->m->params[0], 0);
}

/* At most this many backtests run at once. Each holds two runtimes with the shop's cases and
 * a thread of libuv's pool (4 threads by default) for up to its 10 s budget: two leave the
 * pool to the store's and the resolver's work, and bound the memory a few merchants can
 * take. */
enum { MAX_BACKTESTS = 2 };

/* A backtest on the pool: the worker fills report or err, the loop answers. */
typedef struct backtest_job {
    uv_work_t work;
    as_http *srv;
    answer_ctx *a;
    char shop[AS_ROUTE_PARAM_MAX + 1];
    char *source; /* owned: a copy of the body (the request's goes when dispatch returns) */
    size_t len;
    char *report; /* owned: as_db_backtest's answer, NULL with err */
    as_error err;
} backtest_job;

/* On a pool thread: only the job's own copies and the server's options, which do not change
 * while it serves; as_db_backtest makes and frees runtimes of its own. */
static void backtest_work(uv_work_t *w)
{
    backtest_job *j = w->data;
    j->report = as_db_backtest(j->srv->o.db_path, j->srv->o.packs_dir, j->shop, j->source,
                               j->len, NULL, &j->err);
}

/* Back on the loop: the answer goes into the request's place, as a read's would. */
static void backtest_done(uv_work_t *w, int status)
{
    backtest_job *j = w->data;
    (void)status; /* never cancelled: the job always ran */
    as_http *h = j->srv;
    h->backtests--;
    int code = j->report ? 0 : j->err.code ? j->err.code : AS_ENOMEM;
    answered(j->a, code, j->report ? j->report : j->err.msg);
    as_free(j->report);
    as_free(j->source);
    as_free(j);
    stopped_if_done(h);
}

/* POST /v1/shops/{shop}/rules/backtest: the body is a candidate merchant pack, taken as PUT
 * .../rules takes one; the shop's recorded cases are replayed under it off the loop, so the
 * server keeps answering meanwhile, and nothing is written. */
static void backtest_rules(req *q)
{
    as_http *h = q->c->srv;
    const char *shop = q->m->params[0], *id;
    as_party p = as_principal_parse(q->principal, &id);
    if (p != AS_PARTY_PLATFORM && !(p == AS_PARTY_MERCHANT && strcmp(id, shop) == 0))
        return fill_error(q->r, AS_EFORBIDDEN, "only the shop's merchant and the platform "
                          "backtest its rules", !q->ka);
    if (h->o.db_path == NULL)
        return fill_error(q->r, AS_EIO, "this server has no database file to replay", !q->ka);
    if (h->backtests >= MAX_BACKTESTS)
        return fill_error(q->r, AS_EIO, "two backtests are running: try again once one has "
                          "answered", !q->ka);
    backtest_job *j = as_calloc(1, sizeof *j); /* owned by backtest_done */
    char *src = j ? as_malloc(q->rq->body_len + 1) : NULL;
    if (src == NULL) {
        as_free(j);
        return fill_error(q->r, AS_ENOMEM, "out of memory", 1);
    }
    if (q->rq->body_len) memcpy(src, q->rq->body, q->rq->body_len);
    src[q->rq->body_len] = '\0';
    *j = (backtest_job){.srv = h, .source = src, .len = q->rq->body_len};
    memcpy(j->shop, shop, sizeof j->shop);
    j->work.data = j;
    if ((j->a = await(q->c, q->r, q->ka, 0, 1)) == NULL) {
        as_free(src);
        as_free(j);
        return;
    }
    if (uv_queue_work(h->loop, &j->work, backtest_work, backtest_done) != 0) {
        answer_ctx *a = j->a;
        as_free(src);
        as_free(j);
        return answered(a, AS_EIO, "the backtest could not be started");
    }
    h->backtests++;
}

/* GET /v1/clock: the runtime's time and which clock it is, for any key (a test suite asks a
 * virtual-clock server where its time stands). */
static void get_clock(req *q)
{
    as_runtime *rt = q->c->srv->rt;
    json_t *j = json_pack("{s:I, s:s}", "now", (json_int_t)as_runtime_now(rt), "clock",
                          as_runtime_clock_virtual(rt) ? "virtual" : "real");
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s) fill(q->r, 200, s, !q->ka);
    else fill_error(q->r, AS_ENOMEM, "out of memory", !q->ka);
    as_free(s);
}

/* POST /v1/clock/advance: the body goes to the runtime as it came, which checks the key's
 * principal and the body, moves a virtual clock and answers what fired once it is durable.
 * It takes no Idempotency-Key: a retry-safe move names its instant with "to". */
static void advance_clock(req *q)
{
    answer_ctx *a = await(q->c, q->r, q->ka, 0, 1);
    if (a)
        as_runtime_clock_request(q->c->srv->rt, q->principal, q->rq->body, q->rq->body_len,
                                 answered, a);
}

/* The handler of each route under /v1/ (router.h); /healthz and /metrics are the server's. */
static void (*const handlers[AS__ROUTE_COUNT])(req *q) = {
    [AS_ROUTE_CASE_GET] = get_case,
    [AS_ROUTE_CASE_LIST] = list_cases,
    [AS_ROUTE_SHOP_METRICS] = shop_metrics,
    [AS_ROUTE_RULES_LIST] = list_rules,
    [AS_ROUTE_SHOP_RULES] = shop_rules,
    [AS_ROUTE_SHOP_RULE] = shop_rules,
    [AS_ROUTE_SHOP_RULES_PUT] = upload_rules,
    [AS_ROUTE_SHOP_RULES_BACKTEST] = backtest_rules,
    [AS_ROUTE_ORDER_CREATE] = create_order,
    [AS_ROUTE_ORDER_SHIP] = ship_order,
    [AS_ROUTE_ORDER_DELIVER] = deliver_order,
    [AS_ROUTE_ORDER_CONFIRM] = confirm_order,
    [AS_ROUTE_CASE_OPEN] = open_case,
    [AS_ROUTE_CASE_ACT] = act_on_case,
    [AS_ROUTE_CLOCK_GET] = get_clock,
    [AS_ROUTE_CLOCK_ADVANCE] = advance_clock,
};

/* Seconds (a JSON real of the runtime's stats) in whole microseconds, rounded. */
static uint64_t micros(double seconds)
{
    return seconds > 0 ? (uint64_t)(seconds * 1e6 + 0.5) : 0;
}

/* A metric of one sample without labels: its TYPE line and the sample. */
static void prom_one(as_buf *b, const char *name, const char *type, uint64_t value)
{
    as__prom_type(b, name, type);
    as__prom_sample(b, name, NULL, 0, value);
}

/* GET /metrics: Prometheus text exposition (prom.h), from the runtime's stats. */
static void prometheus(as_http *h, response *r, int ka)
{
    as_error err = {0};
    char *text = as_runtime_stats_json(h->rt, &err); /* owned here */
    json_t *st = text ? json_loads(text, 0, NULL) : NULL;
    as_free(text);
    if (st == NULL) return fill_error(r, AS_ENOMEM, "out of memory", 1);
#define N(name) ((uint64_t)json_integer_value(json_object_get(st, name)))
    as_buf b;
    as__buf_init(&b, 4096);
    static const char *const classes[] = {"2xx", "3xx", "4xx", "5xx"};
    as__prom_type(&b, "aftersale_http_requests_total", "counter");
    for (int k = 2; k <= 5; k++) {
        as_prom_label l = {"class", classes[k - 2]};
        as__prom_sample(&b, "aftersale_http_requests_total", &l, 1, h->by_status[k]);
    }
    as__prom_type(&b, "aftersale_http_request_duration_seconds", "histogram");
    uint64_t cum = 0;
    for (int i = 0; i < 12; i++) {
        cum += h->latency[i];
        as_prom_label l = {"le", i < 11 ? LATENCY[i].le : "+Inf"};
        as__prom_sample(&b, "aftersale_http_request_duration_seconds_bucket", &l, 1, cum);
    }
    as__prom_sample_seconds(&b, "aftersale_http_request_duration_seconds_sum", NULL, 0,
                            (h->latency_ns_sum + 500) / 1000);
    as__prom_sample(&b, "aftersale_http_request_duration_seconds_count", NULL, 0, cum);
    as__prom_type(&b, "aftersale_transitions_total", "counter");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(st, "transitions"), i, e)
    {
        as_prom_label l[2] = {{"type", json_string_value(json_object_get(e, "type"))},
                              {"state", json_string_value(json_object_get(e, "state"))}};
        as__prom_sample(&b, "aftersale_transitions_total", l, 2,
                        (uint64_t)json_integer_value(json_object_get(e, "count")));
    }
    prom_one(&b, "aftersale_commands_total", "counter", N("commands"));
    prom_one(&b, "aftersale_commands_refused_total", "counter", N("refused"));
    prom_one(&b, "aftersale_deadlines_fired_total", "counter", N("deadlines_fired"));
    as__prom_type(&b, "aftersale_rule_failures_total", "counter");
    const char *layer;
    json_object_foreach(json_object_get(st, "rule_failures"), layer, e)
    {
        as_prom_label l = {"layer", layer};
        as__prom_sample(&b, "aftersale_rule_failures_total", &l, 1,
                        (uint64_t)json_integer_value(e));
    }
    prom_one(&b, "aftersale_pack_load_failures_total", "counter", N("pack_load_failures"));
    prom_one(&b, "aftersale_merchant_packs_failed", "gauge", N("merchant_packs_failed"));
    as__prom_type(&b, "aftersale_commit_seconds", "summary");
    as__prom_sample_seconds(&b, "aftersale_commit_seconds_sum", NULL, 0,
                            micros(json_real_value(json_object_get(st, "commit_seconds_sum"))));
    as__prom_sample(&b, "aftersale_commit_seconds_count", NULL, 0, N("commits"));
    as__prom_type(&b, "aftersale_commit_seconds_max", "gauge");
    as__prom_sample_seconds(&b, "aftersale_commit_seconds_max", NULL, 0,
                            micros(json_real_value(json_object_get(st, "commit_seconds_max"))));
    prom_one(&b, "aftersale_open_cases", "gauge", N("open_cases"));
    prom_one(&b, "aftersale_pending_deadlines", "gauge", N("pending_deadlines"));
    const as_webhook_stats *w = h->o.webhooks;
    as_prom_label delivered = {"result", "delivered"}, failed = {"result", "failed"};
    as__prom_type(&b, "aftersale_webhook_deliveries_total", "counter");
    as__prom_sample(&b, "aftersale_webhook_deliveries_total", &delivered, 1, w ? w->delivered : 0);
    as__prom_sample(&b, "aftersale_webhook_deliveries_total", &failed, 1, w ? w->failed : 0);
    as__prom_type(&b, "aftersale_webhook_backlog", "gauge");
    as__prom_sample_i64(&b, "aftersale_webhook_backlog", NULL, 0, w ? w->backlog : 0);
#undef N
    json_decref(st);
    int oom = b.err == AS_ENOMEM;
    size_t len;
    char *body = as__buf_take(&b, &len);
    /* a part the writer refused (a stats field without its name) is no text to show */
    if (body == NULL)
        return fill_error(r, oom ? AS_ENOMEM : AS_EIO,
                          oom ? "out of memory" : "the metrics cannot be written", 1);
    fill_typed(r, 200, "text/plain; version=0.0.4", body, len, !ka);
    as_free(body);
}

/* 200 {"ok":true}, or 503 once the store failed: the runtime takes no writes and shows
 * nothing the disk may not hold until a restart restores from the file. */
static void healthz(as_http *h, response *r, int ka)
{
    const char *why = as_runtime_store_failure(h->rt);
    if (why == NULL) return fill(r, 200, h->ok_body, !ka);
    json_t *j = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "io", "message", why);
    char *s = json_dumps(j, JSON_COMPACT);
    fill(r, 503, s ? s : "{}", !ka);
    as_free(s);
    json_decref(j);
}

/* Routes the request into `r`, its place in the connection's queue. */
static void dispatch(conn *c, response *r, const request *rq)
{
    as_http *h = c->srv;
    int ka = rq->ka;
    const char *method = http_method_str((enum http_method)rq->method);
    as_route_match m;
    as_route_status st = as__router_match(method, rq->url ? rq->url : "", &m);
    if (st == AS_ROUTE_FOUND && m.route == AS_ROUTE_HEALTHZ) return healthz(h, r, ka);
    if (st == AS_ROUTE_FOUND && m.route == AS_ROUTE_METRICS) return prometheus(h, r, ka);
    if (!m.keyed) return fill_error(r, AS_ENOT_FOUND, "no such endpoint", !ka);
    /* every /v1 call needs a key, before anything more is said about its path */
    json_t *k = NULL;
    if (rq->has_auth && !rq->auth_cut && strncasecmp(rq->auth, "Bearer ", 7) == 0)
        k = json_object_get(h->keys, rq->auth + 7);
    if (k == NULL) return fill_error(r, AS_EUNAUTHORIZED, "a valid bearer key is needed", !ka);
    /* docs/design.md#limits: a path identifier outside the limits is an unknown one, before
     * anything looks it up (or copies it into a request, a log line or an answer) */
    if (st == AS_ROUTE_BAD_ID)
        return fill_error(r, AS_ENOT_FOUND, "unknown identifier (1-64 bytes of A-Z a-z 0-9 . _ : -)", !ka);
    if (st == AS_ROUTE_BAD_METHOD) return fill_status(r, 405, "bad_request", "method not allowed", !ka);
    if (st == AS_ROUTE_NO_ROUTE) return fill_error(r, AS_ENOT_FOUND, "no such endpoint", !ka);
    req q = {c, r, ka, json_string_value(k), &m, rq};
    handlers[m.route](&q);
}

/* A request waiting for the step, with its place in the answers. */
typedef struct request_job {
    conn *c;
    response *r;
    request rq;
} request_job;

/* The step runs the request, whatever became of the connection since: it was read whole, so
 * it is run (as a request is once sent), and its answer goes out if the connection still
 * can. */
static void run_request(void *ud)
{
    request_job *j = ud;
    conn *c = j->c;
    dispatch(c, j->r, &j->rq); /* j->r may be sent and gone once this returns */
    as_free(j->rq.url), as_free(j->rq.body);
    as_free(j);
    c->pending--;
    flush(c);
    resume(c);
    conn_maybe_free(c);
}

/* Queues the request just read for the step (as_runtime_defer), its answer's place taken
 * now so that pipelined answers go out in request order. */
static void queue_request(conn *c)
{
    as_http *h = c->srv;
    response *r = enqueue(c);
    request_job *j = r ? as_malloc(sizeof *j) : NULL; /* owned by run_request */
    if (j == NULL) {
        if (r) fill_error(r, AS_ENOMEM, "out of memory", 1);
        else conn_close(c);
        c->done = 1;
        return;
    }
    c->rq.method = (int)c->parser.method;
    c->rq.ka = http_should_keep_alive(&c->parser) && !h->stopping;
    if (!c->rq.ka) c->done = 1; /* this answer closes: nothing sent after it is run */
    *j = (request_job){c, r, c->rq};
    c->rq.url = c->rq.body = NULL; /* moved into the job */
    r->ready = 0;
    c->pending++;
    if (as_runtime_defer(h->rt, run_request, j) != 0) {
        c->pending--;
        as_free(j->rq.url), as_free(j->rq.body);
        as_free(j);
        fill_error(r, AS_ENOMEM, "out of memory", 1);
        c->done = 1;
    }
}

/* ==========================================================================================
 * Parser callbacks
 * ======================================================================================== */

/* Counts request-line and header bytes against max_header; 0, or -1 (431) to stop the parse. */
static int count_header(conn *c, size_t n, size_t item_max)
{
    c->header_bytes += n;
    c->item_len += n;
    if (c->header_bytes > c->srv->o.max_header || c->item_len > item_max) c->too_big = 431;
    return c->too_big ? -1 : 0;
}

static int append(char **dst, size_t *len, const char *at, size_t n)
{
    char *p = as_realloc(*dst, *len + n + 1);
    if (p == NULL) return -1;
    memcpy(p + *len, at, n);
    *len += n;
    p[*len] = '\0';
    *dst = p;
    return 0;
}

static void on_request_timeout(uv_timer_t *t);
static void on_idle(uv_timer_t *t);

static int on_message_begin(http_parser *p)
{
    conn *c = p->data;
    c->in_request = 1;
    /* from its first byte the request has request_ms to arrive whole, however it trickles */
    uv_timer_start(&c->timer, on_request_timeout, c->srv->o.request_ms, 0);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (count_header(c, n, SIZE_MAX)) return -1;
    return append(&c->rq.url, &c->rq.url_len, at, n);
}

/* Appends to one of the two kept values; 1 when it had to be cut to fit its buffer. */
static int keep_value(char *buf, size_t *len, const char *at, size_t n, size_t cap)
{
    int cut = *len + n >= cap;
    if (cut) n = *len < cap - 1 ? cap - 1 - *len : 0;
    memcpy(buf + *len, at, n);
    *len += n;
    buf[*len] = '\0';
    return cut;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->in_value || c->nheaders == 0) { /* a new header (the previous one is over) */
        c->in_value = 0;
        c->hwant = 0;
        c->hfield_len = c->item_len = 0;
        if (++c->nheaders > MAX_HEADERS) {
            c->too_big = 431;
            return -1;
        }
    }
    if (count_header(c, n, MAX_FIELD)) return -1;
    if (c->hfield_len + n < sizeof c->hfield) {
        memcpy(c->hfield + c->hfield_len, at, n);
        c->hfield_len += n;
    } else {
        c->hfield_len = sizeof c->hfield; /* longer than any name we keep */
    }
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (!c->in_value) { /* the name is complete: is it one we keep? */
        c->in_value = 1;
        c->item_len = 0;
        c->hwant = -1;
        if (c->hfield_len < sizeof c->hfield) {
            c->hfield[c->hfield_len] = '\0';
            if (strcasecmp(c->hfield, "authorization") == 0 && !c->rq.has_auth)
                c->hwant = 1, c->rq.has_auth = 1;
            else if (strcasecmp(c->hfield, "idempotency-key") == 0 && !c->rq.has_idem)
                c->hwant = 2, c->rq.has_idem = 1;
        }
    }
    if (count_header(c, n, MAX_VALUE)) return -1;
    request *q = &c->rq;
    if (c->hwant == 1 && keep_value(q->auth, &q->auth_len, at, n, sizeof q->auth)) q->auth_cut = 1;
    /* a cut key is still past the identifier limit: the runtime refuses it */
    if (c->hwant == 2) keep_value(q->idem, &q->idem_len, at, n, sizeof q->idem);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    conn *c = p->data;
    if (p->content_length != (uint64_t)-1 && p->content_length > c->srv->o.max_body) c->too_big = 413;
    return c->too_big ? -1 : 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    conn *c = p->data;
    if (c->rq.body_len + n > c->srv->o.max_body) { /* chunked, growing past the limit */
        c->too_big = 413;
        return -1;
    }
    return append(&c->rq.body, &c->rq.body_len, at, n);
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    c->in_request = 0;
    uv_timer_start(&c->timer, on_idle, c->srv->o.idle_ms, 0);
    queue_request(c);
    reset_request(c);
    flush(c);
    /* stop after a closing answer (nothing pipelined after it runs), or when the answers back
     * up (the rest waits in c->rest until they drain) */
    if (c->done || c->closing || backed_up(c, 1)) http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* The request did not arrive whole within request_ms of its first byte (a stalled or trickled
 * request): 408, whether or not more bytes come. */
static void on_request_timeout(uv_timer_t *t)
{
    conn *c = t->data;
    if (c->in_request && !c->done && !c->closing)
        refuse(c, 408, "bad_request", "request too slow");
}

/* Nothing in flight for idle_ms: closed. A connection whose queued answers made no progress in
 * that time (a client that reads nothing) is closed too; otherwise it waits another idle_ms. */
static void on_idle(uv_timer_t *t)
{
    conn *c = t->data;
    size_t unsent = c->sink ? 0 : c->tcp.write_queue_size;
    int busy = c->pending > 0 || c->head != NULL || c->rest != NULL || unsent > 0;
    int stuck = unsent > 0 && c->writes_done == c->writes_seen;
    if (!busy || stuck) {
        conn_close(c);
        return;
    }
    c->writes_seen = c->writes_done;
    uv_timer_start(&c->timer, on_idle, c->srv->o.idle_ms, 0);
}

static void start_reading(conn *c)
{
    if (c->reading || c->sink || c->closing) return;
    c->reading = uv_read_start((uv_stream_t *)&c->tcp, read_buffer, read_cb) == 0;
}

static void stop_reading(conn *c)
{
    if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

/* Parses bytes from the client. What follows a closing answer is dropped; what follows a
 * request whose answer backed the connection up is kept in c->rest (taking buf when it is
 * that block) for resume(). `buf` is a heap block owned by the caller, or by c->rest. */
static void feed(conn *c, char *buf, size_t off, size_t n)
{
    c->feeding = 1;
    size_t used = http_parser_execute(&c->parser, &settings, buf + off, n);
    c->feeding = 0;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->done || c->closing) {
        stop_reading(c);
        if (c->rest == buf) c->rest = NULL;
        as_free(buf);
        flush(c);
        return;
    }
    if (e == HPE_PAUSED) {
        stop_reading(c);
        c->rest = buf;
        c->rest_off = off + used;
        c->rest_len = n - used;
        return;
    }
    if (c->rest == buf) c->rest = NULL;
    as_free(buf);
    if (c->too_big) refuse(c, c->too_big, "bad_request", "request too large");
    else if (e != HPE_OK || used != n) refuse(c, 400, "bad_request", "malformed HTTP");
}

/* The answers have drained below half the bounds: parse what was kept, then read again. */
static void resume(conn *c)
{
    if (c->closing || c->done || c->feeding || backed_up(c, 2)) return;
    if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED) http_parser_pause(&c->parser, 0);
    if (c->rest) feed(c, c->rest, c->rest_off, c->rest_len);
    if (c->rest == NULL && !c->done && !c->closing) start_reading(c);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    conn *c = s->data;
    if (n > 0 && !c->done && !c->closing) {
        feed(c, buf->base, 0, (size_t)n);
        return;
    }
    as_free(buf->base);
    if (n < 0) {
        stop_reading(c);
        c->eof = 1;
        flush(c); /* closes once every answer is out */
    }
}

/* Answers the connection 503 and closes it: past the limits it holds nothing else. */
static void turn_away(conn *c, const char *msg)
{
    c->refused = 1;
    c->done = 1;
    response *r = enqueue(c);
    if (r) fill_status(r, 503, "io", msg, 1);
    else conn_close(c);
    flush(c);
}

/* Links a new connection (its handles initialised) into the server. */
static conn *conn_new(as_http *h)
{
    conn *c = as_calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->srv = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next_conn = h->conns;
    if (h->conns) h->conns->prev_conn = c;
    h->conns = c;
    h->nconns++;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_idle, h->o.idle_ms, 0);
    return c;
}

static void on_connection(uv_stream_t *l, int status)
{
    as_http *h = l->data;
    if (status < 0) return;
    conn *c = conn_new(h);
    if (c == NULL) return;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || h->stopping) {
        conn_close(c);
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET)
        c->peer = ((struct sockaddr_in *)&ss)->sin_addr.s_addr;
    unsigned same = 0;
    for (conn *o = h->conns; o; o = o->next_conn) same += o != c && !o->refused && o->peer == c->peer;
    if (h->nconns > h->o.max_connections) return turn_away(c, "too many connections");
    if (same >= h->o.max_conns_per_client)
        return turn_away(c, "too many connections from this address");
    uv_tcp_nodelay(&c->tcp, 1);
    start_reading(c);
}

as_http_conn *as__http_conn_new(as_http *h, as_http_sink sink, void *ud)
{
    conn *c = conn_new(h);
    if (c == NULL) return NULL;
    c->sink = sink;
    c->sink_ud = ud;
    c->handles++; /* the owner's, until as__http_conn_hangup */
    return (as_http_conn *)c;
}

void as__http_conn_feed(as_http_conn *hc, const char *bytes, size_t n)
{
    conn *c = (conn *)hc;
    if (c->done || c->closing || n == 0) return;
    size_t kept = c->rest ? c->rest_len : 0;
    char *buf = as_malloc(kept + n);
    if (buf == NULL) return conn_close(c);
    if (kept) memcpy(buf, c->rest + c->rest_off, kept);
    memcpy(buf + kept, bytes, n);
    as_free(c->rest);
    c->rest = NULL;
    if (HTTP_PARSER_ERRNO(&c->parser) == HPE_PAUSED) {
        /* backed up: kept until resume() */
        c->rest = buf, c->rest_off = 0, c->rest_len = kept + n;
        return;
    }
    feed(c, buf, 0, kept + n);
}

int as__http_conn_open(const as_http_conn *hc)
{
    return !((const conn *)hc)->closing;
}

void as__http_conn_hangup(as_http_conn *hc)
{
    conn *c = (conn *)hc;
    c->eof = 1;
    conn_close(c);
    c->handles--;
    conn_maybe_free(c);
}

/* The server without its listener: options' defaults and the keys. */
static int http_init(uv_loop_t *loop, as_runtime *rt, const as_http_options *o,
                     const char *keys_path, as_http **out, as_error *err)
{
    *out = NULL;
    as_http *h = as_calloc(1, sizeof *h);
    if (h == NULL) return as_error_set(err, AS_ENOMEM, "out of memory");
    h->loop = loop;
    h->rt = rt;
    h->o = *o;
    if (!h->o.host) h->o.host = "127.0.0.1";
    if (!h->o.port) h->o.port = 8080;
    if (!h->o.max_body) h->o.max_body = 1 << 20;
    if (!h->o.max_header) h->o.max_header = 16 << 10;
    if (!h->o.idle_ms) h->o.idle_ms = 30000;
    if (!h->o.request_ms) h->o.request_ms = 10000;
    if (!h->o.max_connections) h->o.max_connections = 1024;
    if (!h->o.max_conns_per_client) h->o.max_conns_per_client = 64;
    h->keys = json_object();
    json_t *ok = json_pack("{s:b}", "ok", 1);
    h->ok_body = ok ? json_dumps(ok, JSON_COMPACT) : NULL;
    json_decref(ok);
    int rc = h->keys && h->ok_body ? load_keys(h->keys, keys_path, err)
                                   : as_error_set(err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__http_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

int as__http_new(uv_loop_t *loop, as_runtime *rt, const as_http_options *o, const char *keys_path,
                 as_http **out, as_error *err)
{
    as_http *h;
    int rc = http_init(loop, rt, o, keys_path, &h, err);
    if (rc) return rc;
    struct sockaddr_in addr;
    if (uv_ip4_addr(h->o.host, h->o.port, &addr) != 0)
        rc = as_error_set(err, AS_EBAD_REQUEST, "'%s' is not an IPv4 address", h->o.host);
    if (rc == 0) {
        uv_tcp_init(loop, &h->listener);
        h->listener.data = h;
        h->listening = 1;
        int e = uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr, 0);
        if (e == 0) e = uv_listen((uv_stream_t *)&h->listener, 511, on_connection);
        if (e != 0) {
            rc = as_error_set(err, AS_EIO, "cannot listen on %s:%d: %s", h->o.host, h->o.port, uv_strerror(e));
            uv_close((uv_handle_t *)&h->listener, NULL);
            uv_run(loop, UV_RUN_NOWAIT); /* the close completes before h goes */
        }
    }
    if (rc) {
        as__http_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

int as__http_new_unbound(uv_loop_t *loop, as_runtime *rt, const as_http_options *o,
                         const char *keys_path, as_http **out, as_error *err)
{
    return http_init(loop, rt, o, keys_path, out, err);
}

void as__http_shutdown(as_http *h, void (*done)(void *ud), void *ud)
{
    h->stopping = 1;
    h->on_stopped = done;
    h->stopped_ud = ud;
    if (h->listening && !uv_is_closing((uv_handle_t *)&h->listener))
        uv_close((uv_handle_t *)&h->listener, NULL);
    for (conn *c = h->conns; c; c = c->next_conn)
        if (c->pending == 0 && c->head == NULL) conn_close(c);
        else resume(c); /* what was kept is answered (closing) rather than left unparsed */
    stopped_if_done(h);
}

void as__http_free(as_http *h)
{
    if (h == NULL) return;
    json_decref(h->keys);
    as_free(h->ok_body);
    as_free(h);
}
