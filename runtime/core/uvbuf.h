/* uvbuf.h -- the read buffer every libuv stream of the runtime uses: a fresh heap block per
 * read, freed by the read callback. */
#ifndef AS_UVBUF_H
#define AS_UVBUF_H

#include <stdlib.h>
#include <uv.h>

#include "alloc.h"

static inline void as__read_buffer(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = as__malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

#endif
