/* webhook.c -- outbox delivery over HTTP: each durable outbox entry is POSTed to every
 * configured URL with its stable key as the Idempotency-Key header, retried with exponential
 * backoff until a 2xx answer, then acknowledged to the runtime (`outbox.ack`, durable).
 * The platform therefore sees each instruction at least once and can deduplicate by key. */
#include "webhook.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/runtime.h"
#include "../core/uvbuf.h"

typedef struct target {
    char host[256];
    int port;
    char path[512];
} target;

typedef struct delivery {
    as_webhooks *w;
    struct delivery *next;
    int target;
    char *key;      /* owned */
    char *request;  /* owned: the whole HTTP request */
    size_t len;
    unsigned attempt;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t retry;
    http_parser parser;
    int status;     /* the answer's status, 0 until known */
    int tcp_open;   /* the tcp handle is initialised and not yet closed */
} delivery;

struct as_webhooks {
    uv_loop_t *loop;
    as_runtime *rt;
    target targets[AS_WEBHOOK_MAX];
    int ntargets;
    delivery *live; /* in flight or waiting to retry */
    as_webhook_stats stats;
    int stopping;
};

static int parse_url(const char *url, target *t)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, strlen(url), 0, &u) != 0) return -1;
    if (!(u.field_set & (1 << UF_SCHEMA)) || !(u.field_set & (1 << UF_HOST))) return -1;
    if (u.field_data[UF_SCHEMA].len != 4 || strncmp(url + u.field_data[UF_SCHEMA].off, "http", 4))
        return -1; /* plain http: webhooks go to the platform's side of the network */
    if (u.field_data[UF_HOST].len >= sizeof t->host) return -1;
    memcpy(t->host, url + u.field_data[UF_HOST].off, u.field_data[UF_HOST].len);
    t->host[u.field_data[UF_HOST].len] = '\0';
    t->port = u.field_set & (1 << UF_PORT) ? u.port : 80;
    struct sockaddr_in probe; /* an address now, not a name that would fail at every retry */
    if (uv_ip4_addr(t->host, t->port, &probe) != 0) return -1;
    if (u.field_set & (1 << UF_PATH)) {
        size_t n = u.field_data[UF_PATH].len;
        if (n >= sizeof t->path) return -1;
        memcpy(t->path, url + u.field_data[UF_PATH].off, n);
        t->path[n] = '\0';
    } else {
        strcpy(t->path, "/");
    }
    return 0;
}

int as__webhooks_new(uv_loop_t *loop, as_runtime *rt, const char *const *urls, int n,
                     as_webhooks **out, as_error *err)
{
    *out = NULL;
    if (n > AS_WEBHOOK_MAX) return as__err(err, AS_EBAD_REQUEST, "at most %d webhooks", AS_WEBHOOK_MAX);
    as_webhooks *w = calloc(1, sizeof *w);
    if (w == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    w->loop = loop;
    w->rt = rt;
    for (int i = 0; i < n; i++) {
        if (parse_url(urls[i], &w->targets[i]) != 0) {
            free(w);
            return as__err(err, AS_EBAD_REQUEST,
                           "'%s' is not an http://IPV4[:PORT]/PATH URL (an address, not a name)",
                           urls[i]);
        }
    }
    w->ntargets = n;
    *out = w;
    return 0;
}

static void start(delivery *d);

static void retry_cb(uv_timer_t *t)
{
    start(t->data);
}

static void free_delivery(uv_handle_t *h)
{
    delivery *d = h->data;
    free(d->key);
    free(d->request);
    free(d);
}

/* Takes `d` off the live list and frees it once its timer has closed. */
static void drop(delivery *d)
{
    as_webhooks *w = d->w;
    delivery **p = &w->live;
    while (*p && *p != d) p = &(*p)->next;
    if (*p) *p = d->next;
    w->stats.backlog--;
    uv_close((uv_handle_t *)&d->retry, free_delivery);
}

static void on_closed(uv_handle_t *h)
{
    delivery *d = h->data;
    as_webhooks *w = d->w;
    d->tcp_open = 0;
    if (d->status >= 200 && d->status < 300) {
        w->stats.delivered++;
        char ack[700];
        snprintf(ack, sizeof ack, "{\"op\":\"outbox.ack\",\"key\":\"%s\"}", d->key);
        as_runtime_submit(w->rt, ack, NULL, NULL);
        drop(d);
        return;
    }
    w->stats.failed++;
    if (w->stopping) {
        drop(d);
        return;
    }
    /* 100 ms, 200 ms, ... up to a minute; after a restart the runtime delivers it again */
    uint64_t wait = 100u << (d->attempt < 10 ? d->attempt : 10);
    if (wait > 60000) wait = 60000;
    d->attempt++;
    d->status = 0;
    uv_timer_start(&d->retry, retry_cb, wait, 0);
}

static void finish(delivery *d)
{
    if (!d->tcp_open || uv_is_closing((uv_handle_t *)&d->tcp)) return;
    uv_close((uv_handle_t *)&d->tcp, on_closed);
}

static int on_headers_complete(http_parser *p)
{
    delivery *d = p->data;
    d->status = (int)p->status_code;
    return 1; /* the status is all we need */
}

static const http_parser_settings parser_settings = {.on_headers_complete = on_headers_complete};

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    delivery *d = s->data;
    if (n > 0) http_parser_execute(&d->parser, &parser_settings, buf->base, (size_t)n);
    free(buf->base);
    if (n < 0 || d->status) finish(d);
}

static void on_write(uv_write_t *req, int status)
{
    delivery *d = req->data;
    if (status < 0) finish(d);
}

static void on_connect(uv_connect_t *c, int status)
{
    delivery *d = c->data;
    if (status < 0) {
        finish(d);
        return;
    }
    uv_buf_t b = uv_buf_init(d->request, (unsigned)d->len);
    d->write.data = d;
    http_parser_init(&d->parser, HTTP_RESPONSE);
    d->parser.data = d;
    if (uv_write(&d->write, (uv_stream_t *)&d->tcp, &b, 1, on_write) != 0 ||
        uv_read_start((uv_stream_t *)&d->tcp, as__read_buffer, read_cb) != 0)
        finish(d);
}

static void start(delivery *d)
{
    const target *t = &d->w->targets[d->target];
    struct sockaddr_in addr;
    uv_tcp_init(d->w->loop, &d->tcp);
    d->tcp_open = 1;
    d->tcp.data = d;
    d->connect.data = d;
    if (uv_ip4_addr(t->host, t->port, &addr) != 0 ||
        uv_tcp_connect(&d->connect, &d->tcp, (const struct sockaddr *)&addr, on_connect) != 0)
        finish(d);
}

void as__webhooks_deliver(as_webhooks *w, const char *kind, const char *case_id,
                          int64_t amount, const char *key)
{
    for (int i = 0; i < w->ntargets && !w->stopping; i++) {
        delivery *d = calloc(1, sizeof *d);
        json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "key", key, "kind", kind, "case", case_id,
                              "amount", (json_int_t)amount);
        char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        const target *t = &w->targets[i];
        size_t cap = (body ? strlen(body) : 0) + strlen(key) + 600;
        if (d == NULL || body == NULL || (d->request = malloc(cap)) == NULL ||
            (d->key = strdup(key)) == NULL) {
            if (d) free(d->request);
            free(d);
            free(body);
            w->stats.failed++;
            continue;
        }
        d->len = (size_t)snprintf(d->request, cap,
                                  "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                                  "Idempotency-Key: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                  t->path, t->host, t->port, key, strlen(body), body);
        free(body);
        d->w = w;
        d->target = i;
        uv_timer_init(w->loop, &d->retry);
        d->retry.data = d;
        d->next = w->live;
        w->live = d;
        w->stats.backlog++;
        start(d);
    }
}

const as_webhook_stats *as__webhooks_stats(const as_webhooks *w)
{
    return &w->stats;
}

void as__webhooks_stop(as_webhooks *w)
{
    w->stopping = 1;
    for (delivery *d = w->live, *next; d; d = next) {
        next = d->next;
        uv_timer_stop(&d->retry);
        if (d->tcp_open) finish(d); /* its close drops it */
        else drop(d);               /* waiting to retry: the runtime redelivers after restart */
    }
}

void as__webhooks_free(as_webhooks *w)
{
    free(w);
}
