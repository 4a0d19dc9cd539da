/* fuzz_http.c -- libFuzzer target: HTTP request bytes into the real server's parser and router
 * (runtime/api/http.c), through a connection with no socket (as__http_conn_new), against an
 * in-memory runtime (no store) holding orders and an open case.
 *
 * Input: the first byte seeds where the rest is split into reads (1 byte to all of it), so
 * every request boundary and limit is met across reads too. Whatever the bytes:
 * - the answers are well-formed HTTP/1.1, back to back: a status line with a known status and
 *   its reason phrase, exactly the headers Content-Type (JSON or the Prometheus text),
 *   Content-Length and, optionally, `Connection: close`; a body of that length, a JSON
 *   object when the type is JSON;
 * - nothing follows an answer with `Connection: close`, and the server has closed the
 *   connection after it; a connection the server closed ends with such an answer;
 * - the runtime stays consistent: every case renders, its version within its history.
 *
 * clang -fsanitize=fuzzer,address (meson -Dfuzz=true): build-fuzz/tests/fuzz/fuzz_http
 * -max_len=65536 tests/fuzz/corpus_http. Built without libFuzzer it is driven by replay.c over
 * the corpus, so the seeds run in every test build (fuzz_http_replay). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "aftersale/aftersale.h"
#include "api/http.h"
#include "core/runtime.h"

static uv_loop_t loop;
static as_runtime *rt;
static as_http *srv;

static void setup(void)
{
    as_options o = {.start_ms = 1772323200000LL, .auto_pay = 1};
    as_error err = {0};
    rt = as_runtime_new(&o, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, AS_SOURCE_ROOT "/plugins", &err) != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
    static const char *const orders[] = {
        "{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"T1\",\"category\":"
        "\"apparel\",\"qty\":2,\"price\":19900}],\"shipping_fee\":500}",
        "{\"id\":\"O2\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"F1\",\"category\":"
        "\"fresh_food\",\"qty\":1,\"price\":16000,\"live\":true}]}",
    };
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) as_order_create_json(rt, orders[i], &err);
    as_order_event(rt, "O1", "deliver", &err);
    as_order_event(rt, "O2", "ship", &err);
    as_case_open_json(rt, "buyer:B1",
                      "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\",\"reason\":"
                      "\"no_reason\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
                      &err);
    char keys[] = "/tmp/fuzz_http_keys.XXXXXX";
    int fd = mkstemp(keys);
    static const char text[] = "k-platform platform\nk-b1 buyer:B1\nk-b2 buyer:B2\n"
                               "k-s1 merchant:S1\nk-log logistics\n";
    if (fd < 0 || write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1)) abort();
    close(fd);
    uv_loop_init(&loop);
    as_http_options ho = {0};
    int rc = as__http_new_unbound(&loop, rt, &ho, keys, &srv, &err);
    unlink(keys);
    if (rc != 0) {
        fprintf(stderr, "fuzz_http: %s\n", err.msg);
        abort();
    }
}

typedef struct out_buf {
    char *buf; /* owned */
    size_t len, cap;
} out_buf;

static void sink(void *ud, const char *bytes, size_t n)
{
    out_buf *o = ud;
    if (o->len + n > o->cap) {
        o->cap = (o->len + n) * 2;
        o->buf = realloc(o->buf, o->cap);
        if (o->buf == NULL) abort();
    }
    memcpy(o->buf + o->len, bytes, n);
    o->len += n;
}

static const struct {
    int status;
    const char *reason;
} STATUSES[] = {{200, "OK"},
                {201, "Created"},
                {400, "Bad Request"},
                {401, "Unauthorized"},
                {403, "Forbidden"},
                {404, "Not Found"},
                {405, "Method Not Allowed"},
                {408, "Request Timeout"},
                {409, "Conflict"},
                {413, "Payload Too Large"},
                {422, "Unprocessable Entity"},
                {431, "Request Header Fields Too Large"},
                {500, "Internal Server Error"},
                {503, "Service Unavailable"}};

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* The line at *p (without its CRLF), advancing *p past it; NULL when no CRLF follows. */
static const char *line(const char **p, const char *end, size_t *n)
{
    const char *s = *p, *cr = memchr(s, '\r', (size_t)(end - s));
    if (cr == NULL || cr + 1 >= end || cr[1] != '\n') return NULL;
    *n = (size_t)(cr - s);
    *p = cr + 2;
    return s;
}

static int is(const char *s, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* Checks one answer at *p; returns whether it carries `Connection: close`. */
static int check_answer(const char **p, const char *end)
{
    size_t n;
    const char *l = line(p, end, &n);
    CHECK(l != NULL && n > 13 && memcmp(l, "HTTP/1.1 ", 9) == 0 && l[12] == ' ');
    int status = atoi(l + 9), known = 0;
    for (size_t i = 0; i < sizeof STATUSES / sizeof STATUSES[0]; i++)
        if (STATUSES[i].status == status) {
            CHECK(is(l + 13, n - 13, STATUSES[i].reason));
            known = 1;
        }
    CHECK(known);
    int json = -1, close_after = 0;
    long long length = -1;
    while ((l = line(p, end, &n)) != NULL && n > 0) {
        if (is(l, n, "Content-Type: application/json")) {
            CHECK(json == -1);
            json = 1;
        } else if (is(l, n, "Content-Type: text/plain; version=0.0.4")) {
            CHECK(json == -1);
            json = 0;
        } else if (is(l, n, "Connection: close")) {
            CHECK(!close_after);
            close_after = 1;
        } else {
            CHECK(n > 16 && memcmp(l, "Content-Length: ", 16) == 0 && length == -1);
            length = 0;
            for (size_t i = 16; i < n; i++) {
                CHECK(l[i] >= '0' && l[i] <= '9' && length < (1LL << 40));
                length = length * 10 + (l[i] - '0');
            }
        }
    }
    CHECK(l != NULL && json != -1 && length >= 0 && length <= end - *p);
    if (json) {
        json_error_t je;
        json_t *j = json_loadb(*p, (size_t)length, 0, &je);
        CHECK(json_is_object(j));
        if (status >= 400) CHECK(json_is_string(json_object_get(j, "error")) &&
                                 json_is_string(json_object_get(j, "message")));
        json_decref(j);
    }
    *p += length;
    return close_after;
}

static void check_answers(const out_buf *o, int open)
{
    const char *p = o->buf, *end = o->buf + o->len;
    int closed = 0;
    while (p < end) {
        CHECK(!closed); /* nothing after a closing answer */
        closed = check_answer(&p, end);
    }
    CHECK(!closed || !open);   /* a closing answer closes */
    CHECK(open || closed);     /* the server hangs up only after one */
}

static void check_runtime(void)
{
    size_t pos = 0;
    as_case *c;
    while ((c = as__strmap_next(&rt->cases, &pos)) != NULL) {
        CHECK(c->v.version <= c->nhist);
        char *j = as_case_get_json(rt, c->id);
        CHECK(j != NULL);
        as_free(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (rt == NULL) setup();
    if (size == 0) return 0;
    uint32_t x = 2463534242u ^ data[0]; /* xorshift32, seeded by the first byte */
    int whole = data[0] == 0;           /* 0: one read */
    data++, size--;
    out_buf o = {0};
    as_http_conn *c = as__http_conn_new(srv, sink, &o);
    CHECK(c != NULL);
    for (size_t off = 0; off < size && as__http_conn_open(c);) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t n = whole ? size - off : 1 + x % (size - off);
        as__http_conn_feed(c, (const char *)data + off, n);
        off += n;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    check_answers(&o, as__http_conn_open(c));
    as__http_conn_hangup(c);
    uv_run(&loop, UV_RUN_NOWAIT); /* the close callbacks: the connection is freed */
    free(o.buf);
    check_runtime();
    return 0;
}
