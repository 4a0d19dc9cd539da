/* wbuf.c -- see wbuf.h. */
#include "wbuf.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "aftersale/error.h"

void as__wbuf_free(as_wbuf *b)
{
    as__free(b->p);
    memset(b, 0, sizeof *b);
}

void as__wbuf_reset(as_wbuf *b)
{
    b->len = 0;
    b->oom = 0;
}

int as__wbuf_reserve(as_wbuf *b, size_t n)
{
    if (b->len + n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    unsigned char *np = as__realloc(b->p, cap);
    if (np == NULL) return AS_ENOMEM;
    b->p = np;
    b->cap = cap;
    return 0;
}

void as__wbuf_grow_put(as_wbuf *b, const void *p, size_t n)
{
    if (b->oom) return;
    if (as__wbuf_reserve(b, n) != 0) {
        b->oom = 1;
        return;
    }
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
}

static const unsigned char *take(as_rbuf *r, size_t n)
{
    if (r->bad || r->len - r->pos < n) {
        r->bad = 1;
        return NULL;
    }
    const unsigned char *p = r->p + r->pos;
    r->pos += n;
    return p;
}

#define READER(name, type)                                                                 \
    type as__rbuf_##name(as_rbuf *r)                                                       \
    {                                                                                      \
        type v = 0;                                                                        \
        const unsigned char *p = take(r, sizeof v);                                        \
        if (p) memcpy(&v, p, sizeof v);                                                    \
        return v;                                                                          \
    }
READER(u8, uint8_t)
READER(u16, uint16_t)
READER(u32, uint32_t)
READER(i64, int64_t)
#undef READER

const char *as__rbuf_str(as_rbuf *r, size_t *len)
{
    uint32_t n = as__rbuf_u32(r);
    *len = 0;
    if (r->bad || n == UINT32_MAX) return NULL;
    const unsigned char *p = take(r, n);
    if (p == NULL) return NULL;
    *len = n;
    return (const char *)p;
}
