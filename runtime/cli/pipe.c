/* pipe.c -- `aftersale pipe`: a durable runtime over standard input and output, one JSON
 * request per line in, one JSON answer per line out (docs/pipe.md). Writes are answered
 * after their group commit is on disk. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/runtime.h"
#include "../core/uvbuf.h"
#include "aftersale/aftersale.h"
#include "cli.h"

typedef struct pipe_ctx {
    uv_loop_t *loop;
    uv_pipe_t in;
    uv_check_t finish; /* re-checks, every loop turn, whether input ended and all is durable */
    as_runtime *rt;
    char *line; /* owned: the partial line read so far */
    size_t len, cap;
    int eof;
    long waiting; /* submitted, not yet answered */
} pipe_ctx;

static void emit(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        as__free(s);
    }
    json_decref(j);
}

static void answer(json_t *id, int code, const char *msg)
{
    json_t *a = json_object();
    json_object_set(a, "id", id ? id : json_null());
    if (code == 0) {
        json_object_set_new(a, "ok", json_true());
    } else {
        json_object_set_new(a, "error", json_string(as_err_name(code)));
        json_object_set_new(a, "message", json_string(msg ? msg : ""));
    }
    emit(a);
}

static void outbox_line(void *data, const char *kind, const char *case_id, int64_t amount,
                        const char *key)
{
    (void)data;
    emit(json_pack("{s:{s:s, s:s, s:s, s:I}}", "outbox", "key", key, "kind", kind, "case",
                   case_id, "amount", (json_int_t)amount));
}

typedef struct pending {
    pipe_ctx *ctx;
    json_t *id;
} pending;

static void maybe_finish(pipe_ctx *x);

static void done_cb(void *ud, int code, const char *message)
{
    pending *p = ud;
    answer(p->id, code, message);
    json_decref(p->id);
    p->ctx->waiting--;
    pipe_ctx *x = p->ctx;
    as__free(p);
    maybe_finish(x);
}

/* A read's answer once what it shows is durable: {"id", NAME: value} (value taken). */
static void emit_read(pending *p, const char *name, json_t *value)
{
    json_t *a = json_object();
    json_object_set(a, "id", p->id ? p->id : json_null());
    json_object_set_new(a, name, value);
    emit(a);
    json_decref(p->id);
    p->ctx->waiting--;
    pipe_ctx *x = p->ctx;
    as__free(p);
    maybe_finish(x);
}

static void case_read_cb(void *ud, int code, const char *text)
{
    json_t *c = NULL;
    if (code == 0 && (code = as__json_parse(text, strlen(text), 0, &c, NULL)) != 0)
        text = "out of memory"; /* our own text: only memory can fail */
    if (code) return done_cb(ud, code, text);
    emit_read(ud, "case", c);
}

/* order.get: the order's JSON, made now, held in `p` until what it shows is durable. */
typedef struct order_read {
    pending *p;
    json_t *order; /* owned */
} order_read;

static void order_read_cb(void *ud, int code, const char *msg)
{
    order_read *r = ud;
    pending *p = r->p;
    json_t *o = r->order;
    as__free(r);
    if (code) {
        json_decref(o);
        return done_cb(p, code, msg);
    }
    emit_read(p, "order", o);
}

static void order_get(pipe_ctx *x, pending *p, const char *oid)
{
    as_order *o = oid ? as__order_get(x->rt, oid) : NULL;
    if (o == NULL) return done_cb(p, AS_ENOT_FOUND, "unknown order");
    order_read *r = as__malloc(sizeof *r); /* owned by order_read_cb */
    json_t *j = r ? as__order_json(o) : NULL;
    if (j == NULL) {
        as__free(r);
        return done_cb(p, AS_ENOMEM, "out of memory");
    }
    *r = (order_read){p, j};
    int need = AS_READ_NOW;
    as__read_note_order(x->rt, o, &need);
    as_error err = {0};
    int rc = as__read_wait(x->rt, need, order_read_cb, r, &err);
    if (rc == 0) order_read_cb(r, 0, "");
    else if (rc < 0) order_read_cb(r, rc, err.msg);
}

static void handle_line(pipe_ctx *x, const char *line)
{
    json_t *req;
    as_error err = {0};
    int rc = as__json_parse(line, strlen(line), 0, &req, &err);
    if (rc == 0 && !json_is_object(req))
        rc = as__err(&err, AS_EBAD_REQUEST, "malformed JSON: not an object");
    if (rc) {
        answer(NULL, rc, err.msg);
        json_decref(req);
        return;
    }
    json_t *id = json_object_get(req, "id");
    const char *op = json_string_value(json_object_get(req, "op"));
    pending *p = as__malloc(sizeof *p); /* owned by done_cb / case_read_cb */
    if (p == NULL) {
        answer(id, AS_ENOMEM, "out of memory");
        json_decref(req);
        return;
    }
    p->ctx = x;
    p->id = json_incref(id);
    x->waiting++;
    if (op && strcmp(op, "case.get") == 0) {
        /* answered once what it shows is durable, like every read (docs/pipe.md) */
        const char *cid = json_string_value(json_object_get(req, "case"));
        as_case_read(x->rt, cid ? cid : "", case_read_cb, p);
        json_decref(req);
        return;
    }
    if (op && strcmp(op, "order.get") == 0) {
        order_get(x, p, json_string_value(json_object_get(req, "order")));
        json_decref(req);
        return;
    }
    as__submit_json(x->rt, req, done_cb, p);
    json_decref(req);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pipe_ctx *x = s->data;
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            if (x->len) {
                x->line[x->len] = '\0';
                handle_line(x, x->line);
            }
            x->len = 0;
            continue;
        }
        if (x->len + 2 > x->cap) {
            size_t cap = x->cap ? x->cap * 2 : 4096;
            char *nl = as__realloc(x->line, cap);
            if (nl == NULL) continue;
            x->line = nl;
            x->cap = cap;
        }
        x->line[x->len++] = ch;
    }
    as__free(buf->base);
    if (n < 0) {
        if (x->len) {
            x->line[x->len] = '\0';
            handle_line(x, x->line);
            x->len = 0;
        }
        uv_read_stop(s);
        x->eof = 1;
        maybe_finish(x);
    }
}

/* At end of input, once every write is durable and answered: close down. */
static void maybe_finish(pipe_ctx *x)
{
    if (!x->eof || x->waiting > 0 || !as_runtime_idle(x->rt)) return;
    uv_stop(x->loop);
}

static void finish_cb(uv_check_t *h)
{
    maybe_finish(h->data);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: aftersale pipe [--db FILE] [--packs DIR]\n"
               "\n"
               "Runs a durable runtime on the SQLite file FILE (default aftersale.db, created\n"
               "when missing) and answers one JSON request per line of standard input with one\n"
               "JSON line on standard output; writes are answered once they are on disk.\n"
               "The protocol is docs/pipe.md. Exits 0 at end of input when all is answered.\n"
               "\n"
               "  --db FILE     the database (default aftersale.db)\n"
               "  --packs DIR   the bundled Lua rule packs (default: %s)\n"
               "  -h, --help    this text\n",
            as__cli_packs_dir());
}

int as__cli_pipe(int argc, char **argv)
{
    static const struct option opts[] = {{"db", required_argument, NULL, 'd'},
                                         {"packs", required_argument, NULL, 'p'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *db = "aftersale.db", *packs = as__cli_packs_dir();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd') db = optarg;
        else if (c == 'p') packs = optarg;
        else if (c == 'h') return usage(stdout), 0;
        else return usage(stderr), 2;
    }
    if (optind != argc) return usage(stderr), 2;
    pipe_ctx x = {0};
    x.loop = uv_default_loop();
    as_options o = {0};
    o.loop = x.loop;
    o.outbox = outbox_line;
    as_error err = {0};
    x.rt = as_runtime_new(&o, &err);
    if (x.rt == NULL || as_runtime_load_packs_dir(x.rt, packs, &err) != 0 ||
        as_runtime_attach_store(x.rt, db, &err) != 0) {
        fprintf(stderr, "aftersale pipe: %s\n", err.msg);
        as_runtime_free(x.rt);
        uv_run(x.loop, UV_RUN_NOWAIT);
        return 1;
    }
    uv_pipe_init(x.loop, &x.in, 0);
    /* libuv polls streams only: a regular file or /dev/null on stdin would abort inside it */
    uv_handle_type in = uv_guess_handle(0);
    if ((in != UV_NAMED_PIPE && in != UV_TTY) || uv_pipe_open(&x.in, 0) != 0) {
        fprintf(stderr, "aftersale pipe: standard input must be a pipe or a terminal (for a "
                        "file: cat FILE | aftersale pipe)\n");
        as_runtime_free(x.rt);
        uv_run(x.loop, UV_RUN_NOWAIT);
        return 1;
    }
    x.in.data = &x;
    uv_read_start((uv_stream_t *)&x.in, as__read_buffer, read_cb);
    uv_check_init(x.loop, &x.finish);
    x.finish.data = &x;
    uv_check_start(&x.finish, finish_cb);
    uv_run(x.loop, UV_RUN_DEFAULT);
    as_runtime_free(x.rt);
    uv_close((uv_handle_t *)&x.in, NULL);
    uv_close((uv_handle_t *)&x.finish, NULL);
    uv_run(x.loop, UV_RUN_NOWAIT);
    as__free(x.line);
    return 0;
}
