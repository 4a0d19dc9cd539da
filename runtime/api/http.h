/* http.h -- `aftersale serve`: the HTTP/1.1 JSON API on libuv (docs/design.md#interfaces).
 *
 * Requests are parsed by http-parser; each connection keeps its responses in request order
 * (pipelining) even though a write is answered only once its group commit is durable. The
 * server turns each request into a runtime request (docs/pipe.md) after checking the caller's
 * key: a key is bound to one principal and can see and act on nothing outside it. */
#ifndef AS_HTTP_H
#define AS_HTTP_H

#include <stddef.h>
#include <uv.h>

#include "aftersale/aftersale.h"

typedef struct as_http as_http;

typedef struct as_http_options {
    const char *host;        /* default 127.0.0.1 */
    int port;                /* default 8080 */
    size_t max_body;         /* bytes; default 1 MiB (413 beyond) */
    size_t max_header;       /* bytes; default 16 KiB (431 beyond) */
    unsigned idle_ms;        /* close a connection idle this long; default 30 s */
    unsigned request_ms;     /* a request must arrive whole within this; default 10 s (408) */
    unsigned max_connections; /* default 1024 (503 beyond) */
    unsigned max_conns_per_client; /* open connections from one IPv4 address; default 64 (503) */
    const struct as_webhook_stats *webhooks; /* shown in /metrics when not NULL */
    /* The runtime's database file and bundled packs, which POST .../rules/backtest replays
     * (as_db_backtest); borrowed for the server's life. NULL db_path: that route answers 503. */
    const char *db_path;
    const char *packs_dir;
} as_http_options;

/* Reads a keys file: one `KEY PRINCIPAL` per line, `#` comments, principals `platform`,
 * `merchant:SHOP`, `buyer:ID`, `logistics`. Returns 0 or AS_EBAD_REQUEST / AS_EIO with the
 * line in the message. */
int as__http_new(uv_loop_t *loop, as_runtime *rt, const as_http_options *o, const char *keys_path,
                 as_http **out, as_error *err);
/* Stops accepting, lets in-flight requests finish, closes idle connections. `done(ud)` runs
 * once, when every connection is closed and no backtest runs on the pool (its answer is
 * owed; its job holds the server). */
void as__http_shutdown(as_http *h, void (*done)(void *ud), void *ud);
void as__http_free(as_http *h);

/* A connection with no socket, for tests and the fuzz target (tests/fuzz/fuzz_http.c): the
 * bytes a client would send go in with as__http_conn_feed, in pieces of any size, and every
 * answer comes out whole, in order, through the sink. The server comes from
 * as__http_new_unbound (no listener); the connection is freed once hung up (or closed by the
 * server) and the loop has run its close callbacks. */
typedef void (*as_http_sink)(void *ud, const char *bytes, size_t n);
typedef struct as_http_conn as_http_conn;
int as__http_new_unbound(uv_loop_t *loop, as_runtime *rt, const as_http_options *o,
                         const char *keys_path, as_http **out, as_error *err);
as_http_conn *as__http_conn_new(as_http *h, as_http_sink sink, void *ud);
void as__http_conn_feed(as_http_conn *c, const char *bytes, size_t n);
/* 1 while the server keeps the connection open (0 once it answered with a close). */
int as__http_conn_open(const as_http_conn *c);
/* The client goes away; the connection must not be used after this. */
void as__http_conn_hangup(as_http_conn *c);

/* HTTP status for an error code (docs/design.md#interfaces and the hosted issue's table). */
int as__http_status(int code);

#endif
