/* pipe.c -- `aftersale pipe`: a durable runtime over standard input and output, one JSON
 * request per line in, one JSON answer per line out (docs/pipe.md). Writes are answered
 * after their group commit is on disk. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

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

static void put_line(const char *s)
{
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void outbox_line(void *data, const char *kind, const char *case_id, int64_t amount,
                        const char *key)
{
    (void)data;
    json_t *j = json_pack("{s:{s:s, s:s, s:s, s:I}}", "outbox", "key", key, "kind", kind, "case",
                          case_id, "amount", (json_int_t)amount);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (s) put_line(s);
    as_free(s);
    json_decref(j);
}

static void maybe_finish(pipe_ctx *x);

/* The runtime's answer line (docs/pipe.md), once what it reports is durable. */
static void answered(void *ud, int code, const char *line)
{
    pipe_ctx *x = ud;
    (void)code;
    put_line(line);
    x->waiting--;
    maybe_finish(x);
}

/* A line read, waiting for the turn's step (as_runtime_defer): the read callback only
 * queues it. */
typedef struct queued_line {
    pipe_ctx *x;
    size_t len;
    char text[];
} queued_line;

static void run_line(void *ud)
{
    queued_line *q = ud;
    as_runtime_request(q->x->rt, q->text, q->len, answered, q->x);
    as_free(q);
}

static void handle_line(pipe_ctx *x, const char *line, size_t len)
{
    queued_line *q = as_malloc(sizeof *q + len + 1); /* owned by run_line */
    if (q) {
        *q = (queued_line){x, len};
        memcpy(q->text, line, len + 1);
    }
    x->waiting++;
    if (q == NULL || as_runtime_defer(x->rt, run_line, q) != 0) {
        as_free(q);
        /* the request layer's own answer when nothing more can be allocated */
        answered(x, AS_ENOMEM, "{\"id\":null,\"error\":\"nomem\",\"message\":\"out of memory\"}");
    }
}

static void read_buffer(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = as_malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    pipe_ctx *x = s->data;
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            if (x->len) {
                x->line[x->len] = '\0';
                handle_line(x, x->line, x->len);
            }
            x->len = 0;
            continue;
        }
        if (x->len + 2 > x->cap) {
            size_t cap = x->cap ? x->cap * 2 : 4096;
            char *nl = as_realloc(x->line, cap);
            if (nl == NULL) continue;
            x->line = nl;
            x->cap = cap;
        }
        x->line[x->len++] = ch;
    }
    as_free(buf->base);
    if (n < 0) {
        if (x->len) {
            x->line[x->len] = '\0';
            handle_line(x, x->line, x->len);
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
    uv_read_start((uv_stream_t *)&x.in, read_buffer, read_cb);
    uv_check_init(x.loop, &x.finish);
    x.finish.data = &x;
    uv_check_start(&x.finish, finish_cb);
    uv_run(x.loop, UV_RUN_DEFAULT);
    as_runtime_free(x.rt);
    uv_close((uv_handle_t *)&x.in, NULL);
    uv_close((uv_handle_t *)&x.finish, NULL);
    uv_run(x.loop, UV_RUN_NOWAIT);
    as_free(x.line);
    return 0;
}
