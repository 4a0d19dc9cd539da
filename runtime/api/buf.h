/* buf.h -- a growing byte buffer for the protocol text the API writes (HTTP heads, the
 * Prometheus exposition), and integers in decimal without a format string.
 *
 * The writers built on it (head.h, prom.h) append part by part and never format: each part
 * is checked by the writer that knows its grammar. The first failure sticks -- out of memory,
 * or a part a writer refused -- and every later append is then a no-op, so a caller writes a
 * whole text and checks once, at as__buf_take. */
#ifndef AS_API_BUF_H
#define AS_API_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A value on the caller's stack over memory from as_malloc. The fields are read-only for
 * callers: `data` holds `len` bytes (NULL before the first append), `err` is 0 or the first
 * failure's code (AS_ENOMEM, or the refusing writer's). */
typedef struct as_buf {
    char *data;
    size_t len, cap;
    int err;
} as_buf;

/* An empty buffer that takes `hint` bytes at its first append (0: a small default), so that
 * a text of known size costs one allocation. Allocates nothing itself. */
void as__buf_init(as_buf *b, size_t hint);
/* Appends `n` bytes at `p`. Returns 0, or the buffer's error (then nothing is appended). */
int as__buf_put(as_buf *b, const void *p, size_t n);
/* Appends the NUL-terminated `s` (its bytes, not the NUL). */
int as__buf_str(as_buf *b, const char *s);
/* Appends `v` in decimal: digits only, a '-' first when negative, no padding. */
int as__buf_u64(as_buf *b, uint64_t v);
int as__buf_i64(as_buf *b, int64_t v);
/* Records `code` (a negative AS_E* value) as the buffer's error unless it has one; returns
 * the buffer's error. For writers that refuse a part. */
int as__buf_fail(as_buf *b, int code);
/* The text, NUL-terminated, with its length (the NUL not counted) in *len: the caller owns it
 * and frees it with as_free. NULL when the buffer failed (or out of memory). Either way the
 * buffer is empty and free of memory afterwards, as after as__buf_init(b, 0). */
char *as__buf_take(as_buf *b, size_t *len);
/* Drops the text. */
void as__buf_free(as_buf *b);

/* Longest decimal of a 64-bit integer, with a sign and the NUL: "-9223372036854775808". */
enum { AS_DEC_MAX = 21 };
/* Writes `v` in decimal into `out`, NUL-terminated; returns the number of digits (and sign). */
size_t as__dec_u64(uint64_t v, char out[AS_DEC_MAX]);
size_t as__dec_i64(int64_t v, char out[AS_DEC_MAX]);

#endif
