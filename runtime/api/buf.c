/* buf.c -- the growing byte buffer and decimal integers. See buf.h. */
#include "buf.h"

#include <string.h>

#include <aftersale/aftersale.h>

enum { DEFAULT_CAP = 256 };

void as__buf_init(as_buf *b, size_t hint)
{
    *b = (as_buf){.cap = hint};
}

/* Room for `n` more bytes and a NUL, doubling; 0 or AS_ENOMEM (recorded). Before the first
 * allocation `cap` holds the hint. */
static int reserve(as_buf *b, size_t n)
{
    if (n > SIZE_MAX - b->len - 1) return as__buf_fail(b, AS_ENOMEM);
    size_t need = b->len + n + 1;
    if (b->data && need <= b->cap) return 0;
    size_t cap = b->data ? b->cap : (b->cap ? b->cap + 1 : DEFAULT_CAP);
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = as_realloc(b->data, cap);
    if (p == NULL) return as__buf_fail(b, AS_ENOMEM);
    b->data = p;
    b->cap = cap;
    return 0;
}

int as__buf_put(as_buf *b, const void *p, size_t n)
{
    if (b->err || reserve(b, n)) return b->err;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int as__buf_str(as_buf *b, const char *s)
{
    return as__buf_put(b, s, strlen(s));
}

int as__buf_u64(as_buf *b, uint64_t v)
{
    char d[AS_DEC_MAX];
    return as__buf_put(b, d, as__dec_u64(v, d));
}

int as__buf_i64(as_buf *b, int64_t v)
{
    char d[AS_DEC_MAX];
    return as__buf_put(b, d, as__dec_i64(v, d));
}

int as__buf_fail(as_buf *b, int code)
{
    if (b->err == 0) b->err = code;
    return b->err;
}

char *as__buf_take(as_buf *b, size_t *len)
{
    char *out = NULL;
    *len = 0;
    if (b->err == 0 && reserve(b, 0) == 0) {
        b->data[b->len] = '\0';
        out = b->data;
        *len = b->len;
        b->data = NULL;
    }
    as__buf_free(b);
    return out;
}

void as__buf_free(as_buf *b)
{
    as_free(b->data);
    as__buf_init(b, 0);
}

/* The digits of `v` at `out`, NUL-terminated (at most 20 and the NUL); their number. */
static size_t digits(uint64_t v, char *out)
{
    char rev[20];
    size_t n = 0;
    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
    return n;
}

size_t as__dec_u64(uint64_t v, char out[AS_DEC_MAX])
{
    return digits(v, out);
}

size_t as__dec_i64(int64_t v, char out[AS_DEC_MAX])
{
    if (v >= 0) return digits((uint64_t)v, out);
    out[0] = '-';
    /* the magnitude in unsigned arithmetic: -INT64_MIN does not fit an int64_t */
    return 1 + digits(0 - (uint64_t)v, out + 1);
}
