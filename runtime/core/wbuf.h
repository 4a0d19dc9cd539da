/* wbuf.h -- the byte records the journal writes and the store keeps: fixed-width integers in
 * host order and length-prefixed strings. Not an interchange format: only this build reads
 * what it wrote (the schema version in the database says which layout a file holds). */
#ifndef AS_WBUF_H
#define AS_WBUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct as_wbuf {
    unsigned char *p; /* owned */
    size_t len, cap;
    int oom;     /* an append failed: the buffer is incomplete */
    int measure; /* set by the owner: appends only count their bytes in `len` (p stays NULL),
                  * to learn what room a record needs before writing it */
} as_wbuf;

void as__wbuf_free(as_wbuf *b);
/* Makes room for `n` more bytes, so that appends up to that many cannot fail; AS_ENOMEM. */
int as__wbuf_reserve(as_wbuf *b, size_t n);
void as__wbuf_reset(as_wbuf *b);
/* The appends are inline: the journal makes several a field, for every change, once to
 * measure and once to write. `n - 1 <`: an empty append takes the slow path (never a
 * memcpy to a NULL buffer). */
void as__wbuf_grow_put(as_wbuf *b, const void *p, size_t n); /* the rest: grows, or oom */
static inline void as__wbuf_bytes(as_wbuf *b, const void *p, size_t n)
{
    if (b->measure) b->len += n;
    else if (!b->oom && n - 1 < b->cap - b->len) memcpy(b->p + b->len, p, n), b->len += n;
    else as__wbuf_grow_put(b, p, n);
}
static inline void as__wbuf_u8(as_wbuf *b, uint8_t v)
{
    as__wbuf_bytes(b, &v, 1);
}
static inline void as__wbuf_u16(as_wbuf *b, uint16_t v)
{
    as__wbuf_bytes(b, &v, 2);
}
static inline void as__wbuf_u32(as_wbuf *b, uint32_t v)
{
    as__wbuf_bytes(b, &v, 4);
}
static inline void as__wbuf_i64(as_wbuf *b, int64_t v)
{
    as__wbuf_bytes(b, &v, 8);
}
/* NULL is written as an absent string, told apart from "". */
static inline void as__wbuf_str(as_wbuf *b, const char *s)
{
    if (s == NULL) {
        as__wbuf_u32(b, UINT32_MAX);
        return;
    }
    size_t n = strlen(s);
    as__wbuf_u32(b, (uint32_t)n);
    as__wbuf_bytes(b, s, n);
}

/* Reading: a cursor over bytes it does not own. Every read past the end sets `bad` and yields
 * zeros, so a truncated or foreign record is detected once at the end. */
typedef struct as_rbuf {
    const unsigned char *p;
    size_t len, pos;
    int bad;
} as_rbuf;

uint8_t as__rbuf_u8(as_rbuf *r);
uint16_t as__rbuf_u16(as_rbuf *r);
uint32_t as__rbuf_u32(as_rbuf *r);
int64_t as__rbuf_i64(as_rbuf *r);
/* Points into the buffer (not NUL-terminated in general): *len is set; NULL when absent. */
const char *as__rbuf_str(as_rbuf *r, size_t *len);

#endif
