/* webhook.c -- outbox delivery over HTTP(S) with libcurl's multi interface on the libuv loop.
 *
 * Each outbox entry is POSTed to every configured URL that has not acknowledged it: one job
 * per (entry, URL). The body is JSON built by jansson; the request is signed with the URL's
 * secret, HMAC-SHA256 over "<timestamp>.<body>", in the X-Aftersale-Timestamp and
 * X-Aftersale-Signature headers. A job is retried with exponential backoff until a 2xx, then
 * acknowledged to the runtime for its URL (`outbox.ack` with "url", durable), and the entry
 * for every URL once the last of its URLs answered. At most `max_inflight` transfers run at
 * once; the other due jobs wait in a first-in first-out queue, none is dropped.
 *
 * The loop drives curl as in curl's docs/examples/multi-uv.c: curl names the sockets to watch
 * (the socket callback: one uv_poll_t per socket) and when to call it back (the timer
 * callback: one uv_timer_t); both events call curl_multi_socket_action, and then the finished
 * transfers are collected. Name resolution is curl's (threaded), so a host name never blocks
 * the loop. */
#include "webhook.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aftersale/version.h"
#include "buf.h"

#define BACKOFF_FIRST_MS 100u
#define BACKOFF_MAX_MS 60000u

typedef struct target {
    char *url;             /* owned */
    unsigned char *secret; /* owned; wiped when freed */
    size_t secret_len;
} target;

/* One outbox entry, shared by its jobs. */
typedef struct entry {
    char *key;   /* owned */
    char *body;  /* owned: the JSON body, the same for every URL */
    int jobs;    /* live jobs pointing here; the last one frees the entry */
    int unacked; /* URLs still to answer 2xx */
} entry;

typedef struct job {
    as_webhooks *w;
    entry *e;
    int target;
    unsigned attempt;
    struct job *prev, *next;    /* w->live: every job not yet dropped */
    struct job *queued;         /* w->qhead: due, waiting for a transfer slot */
    CURL *easy;                 /* owned while in flight */
    struct curl_slist *headers; /* owned while in flight */
    uv_timer_t retry;           /* the backoff; its close frees the job */
    char error[CURL_ERROR_SIZE];
} job;

/* A socket curl asked us to watch. */
typedef struct sock {
    uv_poll_t poll; /* its close frees the sock */
    curl_socket_t fd;
    as_webhooks *w;
    struct sock *prev, *next; /* w->socks */
} sock;

struct as_webhooks {
    uv_loop_t *loop;
    as_runtime *rt;
    target targets[AS_WEBHOOK_MAX];
    int ntargets;
    unsigned connect_ms, timeout_ms, max_inflight;
    char *ca_file;    /* owned; NULL: the system's CAs */
    EVP_MAC *hmac;    /* owned */
    CURLM *multi;     /* owned until stop */
    uv_timer_t timer; /* curl's timeout; closed by stop */
    job *live;
    job *qhead, *qtail;
    unsigned inflight;
    sock *socks;
    as_webhook_stats stats;
    int stopping;
};

/* ==========================================================================================
 * Setup
 * ======================================================================================== */

/* http or https with a host; curl parses it as it will when sending. */
static int check_url(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0' &&
             (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

static int read_secret(const char *path, target *t, as_error *err)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return as_error_set(err, AS_EBAD_REQUEST, "%s: cannot read the webhook secret",
                       path ? path : "(none)");
    unsigned char *buf = as_malloc(AS_WEBHOOK_SECRET_MAX + 2); /* owned by `t` from here on */
    size_t n = buf ? fread(buf, 1, AS_WEBHOOK_SECRET_MAX + 2, f) : 0;
    fclose(f);
    if (buf == NULL) return as_error_set(err, AS_ENOMEM, "out of memory");
    t->secret = buf;
    if (n && buf[n - 1] == '\n') n--; /* the newline an editor or `echo` adds */
    if (n && buf[n - 1] == '\r') n--;
    t->secret_len = n;
    if (n < AS_WEBHOOK_SECRET_MIN || n > AS_WEBHOOK_SECRET_MAX)
        return as_error_set(err, AS_EBAD_REQUEST,
                       "%s: a webhook secret is %d to %d bytes (a trailing newline not counted)",
                       path, AS_WEBHOOK_SECRET_MIN, AS_WEBHOOK_SECRET_MAX);
    return 0;
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp);
static int timer_cb(CURLM *multi, long timeout_ms, void *userp);

int as__webhooks_new(uv_loop_t *loop, as_runtime *rt, const as_webhook_options *o,
                     as_webhooks **out, as_error *err)
{
    *out = NULL;
    if (o->ntargets < 1 || o->ntargets > AS_WEBHOOK_MAX)
        return as_error_set(err, AS_EBAD_REQUEST, "1 to %d webhooks", AS_WEBHOOK_MAX);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return as_error_set(err, AS_ENOMEM, "libcurl: cannot initialise");
    as_webhooks *w = as_calloc(1, sizeof *w);
    if (w == NULL) {
        curl_global_cleanup();
        return as_error_set(err, AS_ENOMEM, "out of memory");
    }
    w->loop = loop;
    w->rt = rt;
    w->connect_ms = o->connect_ms ? o->connect_ms : 5000;
    w->timeout_ms = o->timeout_ms ? o->timeout_ms : 10000;
    w->max_inflight = o->max_inflight ? o->max_inflight : 16;
    int rc = 0;
    for (int i = 0; rc == 0 && i < o->ntargets; i++) {
        const as_webhook_target *t = &o->targets[i];
        w->ntargets = i + 1;
        if (check_url(t->url) != 0)
            rc = as_error_set(err, AS_EBAD_REQUEST, "'%s' is not an http:// or https:// URL with a host",
                         t->url);
        else if ((w->targets[i].url = as_strdup(t->url)) == NULL)
            rc = as_error_set(err, AS_ENOMEM, "out of memory");
        else
            rc = read_secret(t->secret_file, &w->targets[i], err);
    }
    if (rc == 0 && o->ca_file && (w->ca_file = as_strdup(o->ca_file)) == NULL)
        rc = as_error_set(err, AS_ENOMEM, "out of memory");
    if (rc == 0 && (w->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
        rc = as_error_set(err, AS_ENOMEM, "libcrypto: no HMAC");
    if (rc == 0 && (w->multi = curl_multi_init()) == NULL)
        rc = as_error_set(err, AS_ENOMEM, "libcurl: out of memory");
    if (rc) {
        as__webhooks_free(w);
        return rc;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    uv_timer_init(loop, &w->timer);
    w->timer.data = w;
    *out = w;
    return 0;
}

/* ==========================================================================================
 * curl on the loop
 * ======================================================================================== */

static void collect(as_webhooks *w);

static void poll_cb(uv_poll_t *h, int status, int events)
{
    sock *s = h->data;
    as_webhooks *w = s->w;
    int flags = status < 0 ? CURL_CSELECT_ERR : 0, running;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(w->multi, s->fd, flags, &running);
    collect(w);
}

static void sock_closed(uv_handle_t *h)
{
    as_free(h->data);
}

static void sock_close(sock *s)
{
    as_webhooks *w = s->w;
    if (s->prev)
        s->prev->next = s->next;
    else
        w->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    as_webhooks *w = userp;
    sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(w->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (s == NULL) {
        if ((s = as_calloc(1, sizeof *s)) == NULL) return -1; /* curl fails that transfer */
        if (uv_poll_init_socket(w->loop, &s->poll, fd) != 0) {
            as_free(s);
            return -1;
        }
        s->fd = fd;
        s->w = w;
        s->poll.data = s;
        s->next = w->socks;
        if (w->socks) w->socks->prev = s;
        w->socks = s;
        curl_multi_assign(w->multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    return uv_poll_start(&s->poll, events, poll_cb) == 0 ? 0 : -1;
}

static void timeout_cb(uv_timer_t *t)
{
    as_webhooks *w = t->data;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(w);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    as_webhooks *w = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&w->timer);
    else
        uv_timer_start(&w->timer, timeout_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ==========================================================================================
 * Jobs
 * ======================================================================================== */

static void job_freed(uv_handle_t *h)
{
    job *j = h->data;
    if (--j->e->jobs == 0) {
        as_free(j->e->key);
        as_free(j->e->body);
        as_free(j->e);
    }
    as_free(j);
}

/* Takes `j` off the live list; its timer's close frees it. */
static void drop(job *j)
{
    as_webhooks *w = j->w;
    if (j->prev)
        j->prev->next = j->next;
    else
        w->live = j->next;
    if (j->next) j->next->prev = j->prev;
    w->stats.backlog--;
    uv_close((uv_handle_t *)&j->retry, job_freed);
}

static void enqueue(job *j)
{
    as_webhooks *w = j->w;
    j->queued = NULL;
    if (w->qtail)
        w->qtail->queued = j;
    else
        w->qhead = j;
    w->qtail = j;
}

static void end_transfer(job *j)
{
    curl_multi_remove_handle(j->w->multi, j->easy);
    curl_easy_cleanup(j->easy);
    curl_slist_free_all(j->headers);
    j->easy = NULL;
    j->headers = NULL;
    j->w->inflight--;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "Name: value", the value with every byte outside A-Z a-z 0-9 . _ : - ~ = / percent-encoded:
 * whatever a value holds, it cannot end the header or start another. */
static struct curl_slist *add_header(struct curl_slist *list, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t nn = strlen(name), nv = strlen(value);
    char *line = as_malloc(nn + 2 + 3 * nv + 1); /* owned here; curl copies it */
    if (line == NULL) return NULL;
    memcpy(line, name, nn);
    char *p = line + nn;
    *p++ = ':';
    *p++ = ' ';
    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        if ((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') ||
            strchr("._:-~=/", *v)) {
            *p++ = (char)*v;
        } else {
            *p++ = '%';
            *p++ = hex[*v >> 4];
            *p++ = hex[*v & 15];
        }
    }
    *p = '\0';
    struct curl_slist *l = curl_slist_append(list, line);
    as_free(line);
    if (l == NULL) curl_slist_free_all(list);
    return l;
}

/* "v1=" and the hex HMAC-SHA256 of "<ts>.<body>" under the target's secret. */
static int sign(as_webhooks *w, const target *t, const char *ts, const char *body,
                char out[3 + 2 * 32 + 1])
{
    unsigned char mac[32];
    size_t len = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(w->hmac);
    int ok = c && EVP_MAC_init(c, t->secret, t->secret_len, params) &&
             EVP_MAC_update(c, (const unsigned char *)ts, strlen(ts)) &&
             EVP_MAC_update(c, (const unsigned char *)".", 1) &&
             EVP_MAC_update(c, (const unsigned char *)body, strlen(body)) &&
             EVP_MAC_final(c, mac, &len, sizeof mac) && len == sizeof mac;
    EVP_MAC_CTX_free(c);
    if (!ok) return -1;
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "v1=", 3);
    for (size_t i = 0; i < sizeof mac; i++) {
        out[3 + 2 * i] = hex[mac[i] >> 4];
        out[3 + 2 * i + 1] = hex[mac[i] & 15];
    }
    out[3 + 2 * sizeof mac] = '\0';
    return 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

/* Puts `j` in flight; -1 when it could not be set up (counted as a failed attempt). */
static int start(job *j)
{
    as_webhooks *w = j->w;
    const target *t = &w->targets[j->target];
    char ts[AS_DEC_MAX], sig[3 + 2 * 32 + 1];
    as__dec_i64(wall_ms(), ts); /* the header's value and the signed text: digits only */
    struct curl_slist *h = NULL;
    if (sign(w, t, ts, j->e->body, sig) != 0 ||
        (h = add_header(NULL, "Content-Type", "application/json")) == NULL ||
        (h = add_header(h, "Idempotency-Key", j->e->key)) == NULL ||
        (h = add_header(h, "X-Aftersale-Timestamp", ts)) == NULL ||
        (h = add_header(h, "X-Aftersale-Signature", sig)) == NULL)
        return -1;
    struct curl_slist *more = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    CURL *e = more ? curl_easy_init() : NULL;
    if (e == NULL) {
        curl_slist_free_all(more ? more : h);
        return -1;
    }
    h = more;
    j->error[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->e->body); /* the entry outlives the transfer */
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(j->e->body));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "aftersale/" AS_VERSION_STRING);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)w->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, j);
    if (w->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, w->ca_file);
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        return -1;
    }
    j->easy = e;
    j->headers = h;
    w->inflight++;
    return 0;
}

static void retry_cb(uv_timer_t *t);

static void failed(job *j, const char *why)
{
    as_webhooks *w = j->w;
    w->stats.failed++;
    if (w->stopping) {
        drop(j);
        return;
    }
    unsigned wait = BACKOFF_FIRST_MS << (j->attempt < 10 ? j->attempt : 10);
    if (wait > BACKOFF_MAX_MS) wait = BACKOFF_MAX_MS;
    j->attempt++;
    /* the body, not the raw key: JSON-escaped, an id cannot forge a log line */
    fprintf(stderr, "aftersale serve: webhook %s: %s: %s (attempt %u, again in %u ms)\n",
            w->targets[j->target].url, j->e->body, why, j->attempt, wait);
    uv_timer_start(&j->retry, retry_cb, wait, 0);
}

/* Starts due jobs while there is room. */
static void pump(as_webhooks *w)
{
    while (!w->stopping && w->qhead && w->inflight < w->max_inflight) {
        job *j = w->qhead;
        if ((w->qhead = j->queued) == NULL) w->qtail = NULL;
        if (start(j) != 0) failed(j, "out of memory");
    }
}

static void retry_cb(uv_timer_t *t)
{
    job *j = t->data;
    enqueue(j);
    pump(j->w);
}

/* An acknowledgement waiting for the turn's step: curl's callbacks only queue it. */
typedef struct ack {
    as_runtime *rt;
    char *url; /* NULL: every URL; else points into key's block */
    char key[];
} ack;

static void run_ack(void *ud)
{
    ack *a = ud;
    as_command c = {.op = AS_OP_OUTBOX_ACK, .principal = "platform", .target = a->key,
                    .url = a->url};
    as_runtime_command(a->rt, &c, NULL, NULL);
    as_free(a);
}

/* Tells the runtime: received at this URL, or (the last URL) received everywhere. Without
 * memory for it the entry stays unacknowledged and is sent again after a restart, which the
 * receiver deduplicates by key. */
static void acknowledge(as_webhooks *w, const char *key, const char *url)
{
    size_t kl = strlen(key) + 1, ul = url ? strlen(url) + 1 : 0;
    ack *a = as_malloc(sizeof *a + kl + ul); /* owned by run_ack */
    if (a == NULL) return;
    a->rt = w->rt;
    memcpy(a->key, key, kl);
    a->url = url ? memcpy(a->key + kl, url, ul) : NULL;
    if (as_runtime_defer(w->rt, run_ack, a) != 0) as_free(a);
}

static void collect(as_webhooks *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) continue;
        char *priv = NULL;
        long status = 0;
        CURLcode res = m->data.result; /* read before the handle goes */
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        job *j = (job *)priv;
        end_transfer(j);
        if (res == CURLE_OK && status >= 200 && status < 300) {
            w->stats.delivered++;
            entry *e = j->e;
            acknowledge(w, e->key, --e->unacked ? w->targets[j->target].url : NULL);
            drop(j);
        } else {
            char why[CURL_ERROR_SIZE + 32];
            if (res != CURLE_OK)
                snprintf(why, sizeof why, "%s", j->error[0] ? j->error : curl_easy_strerror(res));
            else
                snprintf(why, sizeof why, "answered %ld", status);
            failed(j, why);
        }
    }
    pump(w);
}

char *as__webhooks_body(const char *kind, const char *case_id, int64_t amount, const char *key)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "key", key, "kind", kind, "case", case_id,
                          "amount", (json_int_t)amount);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return body;
}

void as__webhooks_deliver(as_webhooks *w, const char *kind, const char *case_id, int64_t amount,
                          const char *key)
{
    if (w->stopping) return; /* not acknowledged: delivered again after the next start */
    entry *e = as_calloc(1, sizeof *e);
    if (e) e->body = as__webhooks_body(kind, case_id, amount, key);
    if (e == NULL || e->body == NULL || (e->key = as_strdup(key)) == NULL) {
        fprintf(stderr, "aftersale serve: webhook: cannot build an entry's body (out of "
                        "memory?); it is delivered again after a restart\n");
        if (e) as_free(e->body);
        as_free(e);
        w->stats.failed++;
        return;
    }
    for (int i = 0; i < w->ntargets; i++) {
        if (as_outbox_delivered(w->rt, key, w->targets[i].url)) continue; /* before a restart */
        e->unacked++; /* with or without a job: a URL skipped here keeps the entry undone */
        job *d = as_calloc(1, sizeof *d);
        if (d == NULL) {
            w->stats.failed++;
            continue; /* delivered there after the next start */
        }
        d->w = w;
        d->e = e;
        d->target = i;
        e->jobs++;
        uv_timer_init(w->loop, &d->retry);
        d->retry.data = d;
        d->next = w->live;
        if (w->live) w->live->prev = d;
        w->live = d;
        w->stats.backlog++;
        enqueue(d);
    }
    if (e->jobs == 0) { /* every URL had it before the restart, or no memory for any */
        if (e->unacked == 0) acknowledge(w, key, NULL);
        as_free(e->key);
        as_free(e->body);
        as_free(e);
        return;
    }
    pump(w);
}

const as_webhook_stats *as__webhooks_stats(const as_webhooks *w)
{
    return &w->stats;
}

void as__webhooks_stop(as_webhooks *w)
{
    if (w == NULL || w->stopping) return;
    w->stopping = 1;
    w->qhead = w->qtail = NULL;
    while (w->live) {
        job *j = w->live;
        if (j->easy) end_transfer(j);
        drop(j);
    }
    /* sockets curl still watches (none, normally, once its transfers are gone): ours are
     * closed here, and forgotten by curl first so that its cleanup cannot close them twice */
    while (w->socks) {
        curl_multi_assign(w->multi, w->socks->fd, NULL);
        sock_close(w->socks);
    }
    curl_multi_cleanup(w->multi);
    w->multi = NULL;
    uv_close((uv_handle_t *)&w->timer, NULL);
}

void as__webhooks_free(as_webhooks *w)
{
    if (w == NULL) return;
    curl_multi_cleanup(w->multi); /* NULL after a stop */
    for (int i = 0; i < w->ntargets; i++) {
        as_free(w->targets[i].url);
        if (w->targets[i].secret) OPENSSL_cleanse(w->targets[i].secret, AS_WEBHOOK_SECRET_MAX + 2);
        as_free(w->targets[i].secret);
    }
    as_free(w->ca_file);
    EVP_MAC_free(w->hmac);
    as_free(w);
    curl_global_cleanup();
}
