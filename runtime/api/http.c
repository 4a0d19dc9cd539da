/* http.c -- the HTTP server: connections, parsing, ordering of responses. See http.h. */
#include "http.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/runtime.h"
#include "../core/uvbuf.h"
#include "../core/workflow.h"
#include "webhook.h"

/* ==========================================================================================
 * Keys
 * ======================================================================================== */

typedef struct key_entry {
    char *principal; /* owned */
    char key[];
} key_entry;

static const char *key_of(const void *k)
{
    return ((const key_entry *)k)->key;
}

static int load_keys(as_strmap *keys, const char *path, as_error *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return as__err(err, AS_EIO, "%s: cannot read the keys file", path);
    char line[1024];
    int n = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        n++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char key[512], who[512], extra[8];
        int got = sscanf(line, "%511s %511s %7s", key, who, extra);
        if (got <= 0) continue;
        as_principal p;
        if (got != 2 || as__principal_parse(who, &p) != 0) {
            rc = as__err(err, AS_EBAD_REQUEST, "%s:%d: want `KEY PRINCIPAL` (platform, "
                         "merchant:SHOP, buyer:ID or logistics)", path, n);
            break;
        }
        size_t kl = strlen(key);
        key_entry *e = as__malloc(sizeof *e + kl + 1);
        if (e == NULL || (e->principal = as__strdup(who)) == NULL) {
            as__free(e);
            rc = as__err(err, AS_ENOMEM, "out of memory");
            break;
        }
        memcpy(e->key, key, kl + 1);
        if (as__strmap_get(keys, key)) {
            as__free(e->principal);
            as__free(e);
            rc = as__err(err, AS_EBAD_REQUEST, "%s:%d: the key is listed twice", path, n);
        } else if (as__strmap_put(keys, e) != 0) {
            as__free(e->principal);
            as__free(e);
            rc = as__err(err, AS_ENOMEM, "out of memory");
        }
    }
    fclose(f);
    return rc;
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
    char *url, *body;
    size_t url_len, body_len, header_bytes;
    /* headers: only two matter, kept in fixed buffers (no allocation per header) */
    char hfield[24];
    size_t hfield_len, item_len; /* item_len: the current name's or value's length */
    int in_value;               /* the last header callback was a value */
    unsigned nheaders;
    int hwant;                  /* the value being read: -1 ignored, 1 auth, 2 idempotency key */
    char auth[512], idem[512];  /* NUL-terminated; a longer value is cut and marked too long */
    size_t auth_len, idem_len;
    int has_auth, has_idem, idem_too_long;
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
    as_strmap keys;
    conn *conns;
    unsigned nconns;
    int stopping;
    void (*on_stopped)(as_http *);
    uint64_t by_status[6]; /* requests answered, by status class 1xx..5xx (index 1..5) */
    uint64_t latency[12];  /* answers by latency bucket (LATENCY_MS), the last one +Inf */
    uint64_t latency_ns_sum;
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

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    default: return "Service Unavailable";
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
    as__free(c->url), as__free(c->body);
    c->url = c->body = NULL;
    c->url_len = c->body_len = c->hfield_len = c->item_len = c->header_bytes = 0;
    c->auth_len = c->idem_len = 0;
    c->nheaders = 0;
    c->has_auth = c->has_idem = c->idem_too_long = c->hwant = c->in_value = 0;
    c->too_big = 0;
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
        as__free(r->buf);
        as__free(r);
    }
    reset_request(c);
    as__free(c->rest);
    as__free(c);
    if (h->stopping && h->nconns == 0 && h->on_stopped) h->on_stopped(h);
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
    as__free(wr->buf);
    as__free(wr);
    c->writes_done++;
    if (status == 0) resume(c); /* the client reads again: so may we */
}

static const double LATENCY_MS[11] = {0.5, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000};

static void observe(as_http *h, uint64_t ns)
{
    int b = 0;
    while (b < 11 && (double)ns / 1e6 > LATENCY_MS[b]) b++;
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
    write_req *wr = as__malloc(sizeof *wr);
    if (wr == NULL) return -1;
    size_t off = n > 0 ? (size_t)n : 0;
    wr->buf = r->buf;
    b = uv_buf_init(r->buf + off, (unsigned)(r->len - off));
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        as__free(wr);
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
        as__free(r->buf);
        as__free(r);
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

/* The answer's bytes. The head is built from fixed strings and integers only (the status, its
 * fixed reason phrase, the body's length): nothing a client sent reaches it. `body` is JSON
 * built by jansson, or a fixed text. */
static void fill_typed(response *r, int status, const char *type, const char *body, size_t blen,
                       int close_after)
{
    r->status = status;
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                      status, reason_phrase(status), type, blen,
                      close_after ? "Connection: close\r\n" : "");
    r->buf = as__malloc((size_t)hl + blen);
    if (r->buf) {
        memcpy(r->buf, head, (size_t)hl);
        memcpy(r->buf + hl, body, blen);
        r->len = (size_t)hl + blen;
    }
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
    as__free(s);
    json_decref(j);
}

static void fill_error(response *r, int code, const char *msg, int close_after)
{
    fill_status(r, as__http_status(code), as_err_name(code), msg, close_after);
}

static const char OK_BODY[] = "{\"ok\":true}";

static response *enqueue(conn *c)
{
    response *r = as__calloc(1, sizeof *r);
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
    int created;
    int read; /* r holds a read's answer, sent once what it shows is durable */
} answer_ctx;

static void answered(void *ud, int code, const char *msg)
{
    answer_ctx *a = ud;
    conn *c = a->c;
    if (a->read && code == 0) {
        a->r->ready = 1;
    } else {
        as__free(a->r->buf);
        a->r->buf = NULL;
        if (code == 0) fill(a->r, a->created ? 201 : 200, OK_BODY, !a->keep_alive);
        else fill_error(a->r, code, msg, !a->keep_alive);
    }
    as__free(a);
    c->pending--;
    flush(c);
    resume(c); /* one fewer answer waiting: the connection may be read again */
    conn_maybe_free(c);
}

/* `r` holds the answer of a read that showed cases noted in `need`: it waits for their
 * commit (durable.c), and becomes a 503 if the store fails (or has failed) under it. */
static void hold_read(conn *c, response *r, int need, int ka)
{
    if (need == AS_READ_NOW) return;
    as_error err = {0};
    answer_ctx *a = as__malloc(sizeof *a); /* owned by answered() once queued */
    if (a == NULL) {
        as__free(r->buf);
        r->buf = NULL;
        return fill_error(r, AS_ENOMEM, "out of memory", 1);
    }
    *a = (answer_ctx){c, r, ka, 0, 1};
    r->ready = 0;
    c->pending++;
    int rc = as__read_wait(c->srv->rt, need, answered, a, &err);
    if (rc < 0) answered(a, rc, err.msg);
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

/* docs/design.md#limits: an identifier is 1-64 bytes of A-Z a-z 0-9 . _ : -, and not "." or "..".
 */
static int is_identifier(const char *s)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-");
    return n >= 1 && n <= 64 && s[n] == '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Splits "/v1/cases/C1/actions" into segments (in place); *qs is the query. Returns their
 * number, max + 1 when there are more than `max`. *ids is 1 when every segment is an
 * identifier: paths are not percent-decoded, so an escape ('%') makes a segment none, and so
 * does an empty one ("//", a trailing '/'). */
static int split_path(char *path, char **seg, int max, const char **qs, int *ids)
{
    int n = 0;
    char *q = strchr(path, '?');
    *qs = "";
    if (q) {
        *q = '\0';
        *qs = q + 1;
    }
    *ids = path[0] == '/';
    if (!*ids) return 0; /* "*", or an absolute URL: no route */
    for (char *p = path + 1; n <= max; n++) {
        char *slash = strchr(p, '/');
        if (slash) *slash = '\0';
        if (n < max) seg[n] = p;
        if (!is_identifier(p)) *ids = 0;
        if (slash == NULL) return n + 1;
        p = slash + 1;
    }
    return n;
}

/* May `who` see case `cs`? */
static int sees_case(const as_principal *who, const as_case *cs)
{
    switch (who->role) {
    case AS_ROLE_PLATFORM:
    case AS_ROLE_LOGISTICS: return 1;
    case AS_ROLE_BUYER: return strcmp(who->id, cs->order->buyer) == 0;
    case AS_ROLE_MERCHANT: return strcmp(who->id, cs->order->shop) == 0;
    default: return 0;
    }
}

static int worklist_cmp(const void *a, const void *b)
{
    const as_case *x = *(as_case *const *)a, *y = *(as_case *const *)b;
    int px = x->v.priority ? x->v.priority : 100, py = y->v.priority ? y->v.priority : 100;
    if (px != py) return px < py ? -1 : 1;
    int64_t dx = as__sched_pending(&x->deadline) ? x->deadline.due_ms : INT64_MAX;
    int64_t dy = as__sched_pending(&y->deadline) ? y->deadline.due_ms : INT64_MAX;
    if (dx != dy) return dx < dy ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* GET /v1/cases?shop=&state=&limit=&cursor=: the worklist, by priority then deadline; the
 * cursor is the position after the last case of the previous page. */
static void list_cases(conn *cn, const as_principal *who, const char *qs, response *r, int ka)
{
    as_http *h = cn->srv;
    char shopb[256], stateb[64], limitb[32], cursorb[32];
    const char *shop = query(qs, "shop", shopb, sizeof shopb);
    const char *state = query(qs, "state", stateb, sizeof stateb);
    long limit = query(qs, "limit", limitb, sizeof limitb) ? atol(limitb) : 50;
    long cursor = query(qs, "cursor", cursorb, sizeof cursorb) ? atol(cursorb) : 0;
    if (who->role == AS_ROLE_MERCHANT) {
        if (shop && strcmp(shop, who->id) != 0)
            return fill_error(r, AS_EFORBIDDEN, "a merchant key sees its own shop only", !ka);
        shop = who->id;
    }
    if (who->role == AS_ROLE_LOGISTICS) return fill_error(r, AS_EFORBIDDEN, "logistics has no worklist", !ka);
    int st = state ? as__state_from(state) : -1;
    if ((state && st < 0) || limit < 1 || limit > 1000 || cursor < 0)
        return fill_error(r, AS_EBAD_REQUEST, "state, limit (1..1000) or cursor out of range", !ka);
    size_t n = 0, pos = 0;
    as_case **v = as__malloc((h->rt->cases.len + 1) * sizeof *v);
    if (v == NULL) return fill_error(r, AS_ENOMEM, "out of memory", 1);
    as_case *c;
    while ((c = as__strmap_next(&h->rt->cases, &pos)) != NULL) {
        if (!sees_case(who, c) || (shop && strcmp(c->order->shop, shop) != 0)) continue;
        if (st >= 0 ? c->v.state != st : as__state_terminal(c->v.state)) continue;
        v[n++] = c;
    }
    qsort(v, n, sizeof *v, worklist_cmp);
    json_t *items = json_array();
    size_t i;
    int need = AS_READ_NOW;
    for (i = (size_t)cursor; i < n && i < (size_t)(cursor + limit); i++) {
        as__read_note(h->rt, v[i], &need);
        json_t *e = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", v[i]->id, "order", v[i]->order->id,
                              "state", as__state_name(v[i]->v.state), "type",
                              as__type_name(v[i]->type), "version", (json_int_t)v[i]->v.version);
        json_object_set_new(e, "priority", v[i]->v.priority ? json_integer(v[i]->v.priority) : json_null());
        json_object_set_new(e, "due", as__sched_pending(&v[i]->deadline)
                                          ? json_integer(v[i]->deadline.due_ms)
                                          : json_null());
        json_array_append_new(items, e);
    }
    as__free(v);
    json_t *j = json_pack("{s:o}", "cases", items);
    if (i < n) {
        char next[32];
        snprintf(next, sizeof next, "%zu", i);
        json_object_set_new(j, "cursor", json_string(next));
    } else {
        json_object_set_new(j, "cursor", json_null());
    }
    char *s = json_dumps(j, JSON_COMPACT);
    fill(r, 200, s ? s : "{}", !ka);
    as__free(s);
    json_decref(j);
    hold_read(cn, r, need, ka);
}

static void shop_metrics(as_http *h, const as_principal *who, const char *shop, response *r, int ka)
{
    if (who->role != AS_ROLE_PLATFORM && !(who->role == AS_ROLE_MERCHANT && strcmp(who->id, shop) == 0))
        return fill_error(r, AS_EFORBIDDEN, "only the platform or the shop sees its metrics", !ka);
    char *s = as_shop_metrics_json(h->rt, shop);
    if (s == NULL) return fill_error(r, AS_ENOMEM, "out of memory", 1);
    fill(r, 200, s, !ka);
    as_free(s);
}

/* GET /v1/shops/{shop}/rules (`version` NULL): the shop's pack versions;
 * GET /v1/shops/{shop}/rules/{version}: one version with its source. */
static void shop_rules(as_http *h, const as_principal *who, const char *shop, const char *version,
                       response *r, int ka)
{
    if (who->role != AS_ROLE_PLATFORM && !(who->role == AS_ROLE_MERCHANT && strcmp(who->id, shop) == 0))
        return fill_error(r, AS_EFORBIDDEN, "only the platform or the shop sees its rules", !ka);
    json_t *j = version ? as__versions_source_json(h->rt, shop, version)
                        : as__versions_list_json(h->rt, shop);
    if (j == NULL) return fill_error(r, AS_ENOT_FOUND, "the shop has no such rules version", !ka);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (s == NULL) return fill_error(r, AS_ENOMEM, "out of memory", 1);
    fill(r, 200, s, !ka);
    as__free(s);
}

/* GET /v1/rules: what is in force; a merchant sees its own shop's pack only. */
static void list_rules(as_http *h, const as_principal *who, response *r, int ka)
{
    if (who->role != AS_ROLE_PLATFORM && who->role != AS_ROLE_MERCHANT)
        return fill_error(r, AS_EFORBIDDEN, "only the platform and merchants see the rules", !ka);
    json_t *j = json_object(), *cats = json_object(), *merchants = json_object();
    as_runtime *rt = h->rt;
    char buf[300];
    if (rt->platform) {
        snprintf(buf, sizeof buf, "%s@%s", rt->platform->name, rt->platform->version);
        json_object_set_new(j, "platform", json_string(buf));
    }
    for (int i = 0; i < rt->ncats; i++) {
        snprintf(buf, sizeof buf, "%s@%s (%s)", rt->cats[i].pack->name, rt->cats[i].pack->version,
                 rt->cats[i].pack->engine->kind);
        json_object_set_new(cats, rt->cats[i].category, json_string(buf));
    }
    size_t pos = 0;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL)
        if (s->merchant && (who->role == AS_ROLE_PLATFORM || strcmp(who->id, s->id) == 0)) {
            snprintf(buf, sizeof buf, "%s@%s", s->merchant->name, s->merchant->version);
            json_object_set_new(merchants, s->id, json_string(buf));
        }
    json_object_set_new(j, "categories", cats);
    json_object_set_new(j, "merchants", merchants);
    char *out = json_dumps(j, JSON_COMPACT);
    fill(r, 200, out ? out : "{}", !ka);
    as__free(out);
    json_decref(j);
}

/* GET /metrics: Prometheus text exposition. */
static void prometheus(as_http *h, response *r, int ka)
{
    const as_stats *st = &h->rt->stats;
    size_t open_cases = 0, pos = 0;
    const as_case *oc;
    while ((oc = as__strmap_next(&h->rt->cases, &pos)) != NULL)
        open_cases += !as__state_terminal(oc->v.state);
    size_t cap = 16384, len = 0;
    char *body = as__malloc(cap);
    if (body == NULL) return fill_error(r, AS_ENOMEM, "out of memory", 1);
#define OUT(...)                                                                           \
    do {                                                                                   \
        int n_ = snprintf(body + len, cap - len, __VA_ARGS__);                             \
        if (n_ > 0 && (size_t)n_ < cap - len) len += (size_t)n_;                           \
    } while (0)
    OUT("# TYPE aftersale_http_requests_total counter\n");
    for (int k = 2; k <= 5; k++)
        OUT("aftersale_http_requests_total{class=\"%dxx\"} %llu\n", k,
            (unsigned long long)h->by_status[k]);
    OUT("# TYPE aftersale_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b < 12; b++) {
        cum += h->latency[b];
        if (b < 11)
            OUT("aftersale_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                LATENCY_MS[b] / 1000, (unsigned long long)cum);
        else
            OUT("aftersale_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    OUT("aftersale_http_request_duration_seconds_sum %.6f\n", (double)h->latency_ns_sum / 1e9);
    OUT("aftersale_http_request_duration_seconds_count %llu\n", (unsigned long long)cum);
    OUT("# TYPE aftersale_transitions_total counter\n");
    for (int t = 0; t < AS_TYPE_COUNT; t++)
        for (int s2 = 0; s2 < AS_STATE_COUNT; s2++)
            if (st->by_type_state[t][s2])
                OUT("aftersale_transitions_total{type=\"%s\",state=\"%s\"} %llu\n",
                    as__type_name(t), as__state_name(s2),
                    (unsigned long long)st->by_type_state[t][s2]);
    OUT("# TYPE aftersale_commands_total counter\naftersale_commands_total %llu\n",
        (unsigned long long)st->commands);
    OUT("# TYPE aftersale_commands_refused_total counter\naftersale_commands_refused_total %llu\n",
        (unsigned long long)st->refused);
    OUT("# TYPE aftersale_deadlines_fired_total counter\naftersale_deadlines_fired_total %llu\n",
        (unsigned long long)st->deadlines_fired);
    OUT("# TYPE aftersale_rule_failures_total counter\n");
    for (int l = 0; l < AS_LAYER_COUNT; l++)
        OUT("aftersale_rule_failures_total{layer=\"%s\"} %llu\n", as__layer_name(l),
            (unsigned long long)st->rule_failures[l]);
    size_t failed_shops = 0;
    const as_shop *fs;
    pos = 0;
    while ((fs = as__strmap_next(&h->rt->shops, &pos)) != NULL)
        failed_shops += fs->merchant && strcmp(fs->merchant->engine->kind, "failed") == 0;
    OUT("# TYPE aftersale_pack_load_failures_total counter\naftersale_pack_load_failures_total %llu\n"
        "# TYPE aftersale_merchant_packs_failed gauge\naftersale_merchant_packs_failed %zu\n",
        (unsigned long long)st->pack_load_failures, failed_shops);
    OUT("# TYPE aftersale_commit_seconds summary\naftersale_commit_seconds_sum %.6f\n"
        "aftersale_commit_seconds_count %llu\n# TYPE aftersale_commit_seconds_max gauge\n"
        "aftersale_commit_seconds_max %.6f\n",
        (double)st->commit_ns_sum / 1e9, (unsigned long long)st->commits,
        (double)st->commit_ns_max / 1e9);
    OUT("# TYPE aftersale_open_cases gauge\naftersale_open_cases %zu\n", open_cases);
    OUT("# TYPE aftersale_pending_deadlines gauge\naftersale_pending_deadlines %zu\n",
        h->rt->sched.len);
    const as_webhook_stats *w = h->o.webhooks;
    OUT("# TYPE aftersale_webhook_deliveries_total counter\n"
        "aftersale_webhook_deliveries_total{result=\"delivered\"} %llu\n"
        "aftersale_webhook_deliveries_total{result=\"failed\"} %llu\n"
        "# TYPE aftersale_webhook_backlog gauge\naftersale_webhook_backlog %lld\n",
        (unsigned long long)(w ? w->delivered : 0), (unsigned long long)(w ? w->failed : 0),
        (long long)(w ? w->backlog : 0));
#undef OUT
    char head[200];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                      "Content-Length: %zu\r\n%s\r\n",
                      len, ka ? "" : "Connection: close\r\n");
    r->buf = as__malloc((size_t)hl + len);
    if (r->buf) {
        memcpy(r->buf, head, (size_t)hl);
        memcpy(r->buf + hl, body, len);
        r->len = (size_t)hl + len;
    }
    as__free(body);
    r->ready = 1;
    r->status = 200;
    r->close_after = !ka;
}

static void get_case(conn *cn, const as_principal *who, const char *id, response *r, int ka)
{
    as_http *h = cn->srv;
    as_case *cs = as__case_get(h->rt, id);
    if (cs == NULL) return fill_error(r, AS_ENOT_FOUND, "unknown case", !ka);
    if (!sees_case(who, cs)) return fill_error(r, AS_EFORBIDDEN, "this key cannot see that case", !ka);
    json_t *j = as__case_json(cs);
    /* every entry was decided under the packs the case pinned at its open: say so per entry,
     * so that an entry read alone still names its rules */
    json_t *rules = json_object_get(j, "rules"), *e;
    size_t i;
    json_array_foreach(json_object_get(j, "history"), i, e) json_object_set(e, "rules", rules);
    json_t *acts = json_array();
    int held = (cs->v.flags & AS_CF_HELD) != 0;
    for (int a = 0; a < AS_ACT_COUNT; a++) {
        as_role role = as__action_role(a);
        if (a == AS_ACT_OPEN || role == AS_ROLE_SYSTEM) continue;
        if (role != who->role && !(who->role == AS_ROLE_PLATFORM && role != AS_ROLE_LOGISTICS))
            continue;
        if (as__workflow_allows(cs->v.state, a, cs->type, held))
            json_array_append_new(acts, json_string(as__action_name(a)));
    }
    json_object_set_new(j, "actions", acts);
    char *s = json_dumps(j, JSON_COMPACT);
    fill(r, 200, s ? s : "{}", !ka);
    as__free(s);
    json_decref(j);
    int need = AS_READ_NOW;
    as__read_note(h->rt, cs, &need);
    hold_read(cn, r, need, ka);
}

/* Builds the runtime request for a write; returns NULL with *code/msg set on refusal. */
static json_t *write_request(as_http *h, const as_principal *who, const char *principal,
                             char **seg, int nseg, json_t *body, int *code, const char **msg)
{
    *code = AS_EBAD_REQUEST;
    if (nseg == 2 && strcmp(seg[1], "orders") == 0) {
        if (who->role != AS_ROLE_PLATFORM) return *code = AS_EFORBIDDEN, *msg = "only the platform creates orders", NULL;
        return json_pack("{s:s, s:O}", "op", "order.create", "order", body);
    }
    if (nseg == 4 && strcmp(seg[1], "orders") == 0) {
        if (who->role != AS_ROLE_PLATFORM) return *code = AS_EFORBIDDEN, *msg = "only the platform reports order events", NULL;
        static const char *const events[][2] = {
            {"ship", "order.ship"}, {"deliver", "order.deliver"}, {"confirm", "order.confirm"}};
        for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
            if (strcmp(seg[3], events[i][0]) == 0)
                return json_pack("{s:s, s:s}", "op", events[i][1], "order", seg[2]);
        return *code = AS_ENOT_FOUND, *msg = "no such order event", NULL;
    }
    /* "as": the platform acting for a party */
    const char *as = principal;
    json_t *asj = json_object_get(body, "as");
    if (asj) {
        if (!json_is_string(asj)) return *msg = "'as' must be a principal string", NULL;
        if (who->role != AS_ROLE_PLATFORM)
            return *code = AS_EFORBIDDEN, *msg = "only the platform key may act as another party", NULL;
        as = json_string_value(asj);
    }
    if (nseg == 2 && strcmp(seg[1], "cases") == 0) {
        json_t *cs = json_deep_copy(body);
        json_object_del(cs, "as");
        return json_pack("{s:s, s:s, s:o}", "op", "case.open", "as", as, "case", cs);
    }
    if (nseg == 4 && strcmp(seg[1], "cases") == 0 && strcmp(seg[3], "actions") == 0) {
        const char *k;
        json_t *v;
        json_object_foreach(body, k, v) if (strcmp(k, "action") && strcmp(k, "payload") &&
                                            strcmp(k, "version") && strcmp(k, "as"))
            return *msg = "unknown key in the action body", NULL;
        json_t *req = json_pack("{s:s, s:s, s:s}", "op", "case.act", "as", as, "case", seg[2]);
        json_t *a = json_object_get(body, "action");
        json_object_set(req, "action", a ? a : json_null());
        if (json_object_get(body, "payload")) json_object_set(req, "payload", json_object_get(body, "payload"));
        if (json_object_get(body, "version")) json_object_set(req, "version", json_object_get(body, "version"));
        return req;
    }
    *code = AS_ENOT_FOUND;
    *msg = "no such endpoint";
    return NULL;
}

/* Hands a write to the runtime (taking `req`); `r` is filled when it is durable or refused. */
static void submit(conn *c, response *r, json_t *req, int ka, int created)
{
    answer_ctx *a = req ? as__malloc(sizeof *a) : NULL;
    if (a == NULL) {
        json_decref(req);
        fill_error(r, AS_ENOMEM, "out of memory", 1);
        return;
    }
    *a = (answer_ctx){c, r, ka, created, 0};
    c->pending++;
    as__submit_json(c->srv->rt, req, answered, a);
    json_decref(req);
}

/* 200 {"ok":true}, or 503 once the store failed: the runtime takes no writes and shows
 * nothing the disk may not hold until a restart restores from the file. */
static void healthz(as_http *h, response *r, int ka)
{
    const char *why = as_runtime_store_failure(h->rt);
    if (why == NULL) return fill(r, 200, OK_BODY, !ka);
    json_t *j = json_pack("{s:b, s:s, s:s}", "ok", 0, "error", "io", "message", why);
    char *s = json_dumps(j, JSON_COMPACT);
    fill(r, 503, s ? s : "{}", !ka);
    as__free(s);
    json_decref(j);
}

static void dispatch(conn *c)
{
    as_http *h = c->srv;
    int ka = http_should_keep_alive(&c->parser) && !h->stopping;
    if (!ka) c->done = 1; /* this answer closes: nothing sent after it is run */
    response *r = enqueue(c);
    if (r == NULL) {
        conn_close(c);
        return;
    }
    const char *method = http_method_str((enum http_method)c->parser.method);
    enum { MAX_SEG = 5 }; /* the longest route: /v1/shops/{id}/rules/{version} */
    char *seg[MAX_SEG];
    char *path = c->url ? c->url : "";
    const char *qs;
    int ids;
    int nseg = split_path(path, seg, MAX_SEG, &qs, &ids);
    if (nseg == 1 && ids && strcmp(seg[0], "healthz") == 0) return healthz(h, r, ka);
    if (nseg == 1 && ids && strcmp(seg[0], "metrics") == 0) return prometheus(h, r, ka);
    /* every /v1 call needs a key */
    const key_entry *k = NULL;
    if (c->has_auth && strncasecmp(c->auth, "Bearer ", 7) == 0) k = as__strmap_get(&h->keys, c->auth + 7);
    if (nseg < 2 || nseg > MAX_SEG || strcmp(seg[0], "v1") != 0)
        return fill_error(r, AS_ENOT_FOUND, "no such endpoint", !ka);
    if (k == NULL) return fill_error(r, AS_EUNAUTHORIZED, "a valid bearer key is needed", !ka);
    /* docs/design.md#limits: a path identifier outside the limits is an unknown one, before
     * anything looks it up (or copies it into a request, a log line or an answer) */
    if (!ids)
        return fill_error(r, AS_ENOT_FOUND, "unknown identifier (1-64 bytes of A-Z a-z 0-9 . _ : -)", !ka);
    as_principal who;
    as__principal_parse(k->principal, &who);
    if (strcmp(method, "GET") == 0) {
        if (nseg == 3 && strcmp(seg[1], "cases") == 0) return get_case(c, &who, seg[2], r, ka);
        if (nseg == 2 && strcmp(seg[1], "cases") == 0) return list_cases(c, &who, qs, r, ka);
        if (nseg == 4 && strcmp(seg[1], "shops") == 0 && strcmp(seg[3], "metrics") == 0)
            return shop_metrics(h, &who, seg[2], r, ka);
        if (nseg == 2 && strcmp(seg[1], "rules") == 0) return list_rules(h, &who, r, ka);
        if ((nseg == 4 || nseg == 5) && strcmp(seg[1], "shops") == 0 && strcmp(seg[3], "rules") == 0)
            return shop_rules(h, &who, seg[2], nseg == 5 ? seg[4] : NULL, r, ka);
        return fill_error(r, AS_ENOT_FOUND, "no such endpoint", !ka);
    }
    if (strcmp(method, "PUT") == 0 && nseg == 4 && strcmp(seg[1], "shops") == 0 &&
        strcmp(seg[3], "rules") == 0) {
        if (who.role != AS_ROLE_PLATFORM && !(who.role == AS_ROLE_MERCHANT && strcmp(who.id, seg[2]) == 0))
            return fill_error(r, AS_EFORBIDDEN, "only the shop (or the platform) uploads its rules", !ka);
        json_t *src = json_stringn(c->body ? c->body : "", c->body_len);
        if (src == NULL) return fill_error(r, AS_EBAD_REQUEST, "the rules must be UTF-8 text", !ka);
        json_t *req = json_pack("{s:s, s:s, s:o}", "op", "rules.load", "shop", seg[2], "source", src);
        return submit(c, r, req, ka, 0);
    }
    if (strcmp(method, "POST") != 0) return fill_status(r, 405, "bad_request", "method not allowed", !ka);
    /* docs/design.md#states-and-actions: an unknown case is not_found before anything about the
     * body */
    if (nseg == 4 && strcmp(seg[1], "cases") == 0 && strcmp(seg[3], "actions") == 0 &&
        as__case_get(h->rt, seg[2]) == NULL)
        return fill_error(r, AS_ENOT_FOUND, "unknown case", !ka);
    if (c->has_idem && (c->idem_too_long || as__limit_id(c->idem, c->idem_len) != 0))
        return fill_error(r, AS_EBAD_REQUEST, "Idempotency-Key " AS_LIMIT_ID_WHAT, !ka);
    as_error perr = {0};
    json_t *body = NULL;
    int prc = c->body_len ? as__json_parse(c->body, c->body_len, 0, &body, &perr)
                          : (body = json_object()) ? 0 : as__err(&perr, AS_ENOMEM, "out of memory");
    if (prc == 0 && !json_is_object(body))
        prc = as__err(&perr, AS_EBAD_REQUEST, "malformed JSON: not an object");
    if (prc) {
        json_decref(body);
        return fill_error(r, prc, perr.msg, !ka);
    }
    int code;
    const char *msg = "";
    json_t *req = write_request(h, &who, k->principal, seg, nseg, body, &code, &msg);
    json_decref(body);
    if (req == NULL) return fill_error(r, code, msg, !ka);
    if (c->has_idem) {
        char key[600];
        snprintf(key, sizeof key, "%s|%s", k->principal, c->idem); /* keys are per principal */
        json_object_set_new(req, "key", json_string(key));
    }
    submit(c, r, req, ka, nseg == 2);
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
    char *p = as__realloc(*dst, *len + n + 1);
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
    return append(&c->url, &c->url_len, at, n);
}

/* Appends to one of the two kept values; a value too long for its buffer is marked. */
static void keep_value(char *buf, size_t *len, int *too_long, const char *at, size_t n, size_t cap)
{
    if (*len + n >= cap) {
        n = *len < cap - 1 ? cap - 1 - *len : 0;
        if (too_long) *too_long = 1;
    }
    memcpy(buf + *len, at, n);
    *len += n;
    buf[*len] = '\0';
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
            if (strcasecmp(c->hfield, "authorization") == 0 && !c->has_auth)
                c->hwant = 1, c->has_auth = 1;
            else if (strcasecmp(c->hfield, "idempotency-key") == 0 && !c->has_idem)
                c->hwant = 2, c->has_idem = 1;
        }
    }
    if (count_header(c, n, MAX_VALUE)) return -1;
    if (c->hwant == 1) keep_value(c->auth, &c->auth_len, NULL, at, n, sizeof c->auth);
    if (c->hwant == 2) keep_value(c->idem, &c->idem_len, &c->idem_too_long, at, n, sizeof c->idem);
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
    if (c->body_len + n > c->srv->o.max_body) { /* chunked, growing past the limit */
        c->too_big = 413;
        return -1;
    }
    return append(&c->body, &c->body_len, at, n);
}

static int on_message_complete(http_parser *p)
{
    conn *c = p->data;
    c->in_request = 0;
    uv_timer_start(&c->timer, on_idle, c->srv->o.idle_ms, 0);
    dispatch(c);
    reset_request(c);
    if (c->tail && c->tail->ready && c->tail->close_after) c->done = 1;
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
    c->reading = uv_read_start((uv_stream_t *)&c->tcp, as__read_buffer, read_cb) == 0;
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
        as__free(buf);
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
    as__free(buf);
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
    as__free(buf->base);
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
    conn *c = as__calloc(1, sizeof *c);
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
    char *buf = as__malloc(kept + n);
    if (buf == NULL) return conn_close(c);
    if (kept) memcpy(buf, c->rest + c->rest_off, kept);
    memcpy(buf + kept, bytes, n);
    as__free(c->rest);
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
    as_http *h = as__calloc(1, sizeof *h);
    if (h == NULL) return as__err(err, AS_ENOMEM, "out of memory");
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
    as__strmap_init(&h->keys, key_of);
    int rc = load_keys(&h->keys, keys_path, err);
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
        rc = as__err(err, AS_EBAD_REQUEST, "'%s' is not an IPv4 address", h->o.host);
    if (rc == 0) {
        uv_tcp_init(loop, &h->listener);
        h->listener.data = h;
        h->listening = 1;
        int e = uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr, 0);
        if (e == 0) e = uv_listen((uv_stream_t *)&h->listener, 511, on_connection);
        if (e != 0) {
            rc = as__err(err, AS_EIO, "cannot listen on %s:%d: %s", h->o.host, h->o.port, uv_strerror(e));
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

void as__http_shutdown(as_http *h, void (*done)(as_http *h))
{
    h->stopping = 1;
    h->on_stopped = done;
    if (h->listening && !uv_is_closing((uv_handle_t *)&h->listener))
        uv_close((uv_handle_t *)&h->listener, NULL);
    for (conn *c = h->conns; c; c = c->next_conn)
        if (c->pending == 0 && c->head == NULL) conn_close(c);
        else resume(c); /* what was kept is answered (closing) rather than left unparsed */
    if (h->nconns == 0 && done) done(h);
}

void as__http_free(as_http *h)
{
    if (h == NULL) return;
    size_t pos = 0;
    key_entry *e;
    while ((e = as__strmap_next(&h->keys, &pos)) != NULL) {
        as__free(e->principal);
        as__free(e);
    }
    as__strmap_free(&h->keys);
    as__free(h);
}
