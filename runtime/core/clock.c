/* clock.c -- see clock.h. */
#include "clock.h"

#include <time.h>

void as__clock_init_virtual(as_clock *c, int64_t start_ms)
{
    c->mode = AS_CLOCK_VIRTUAL;
    c->loop = NULL;
    c->offset_ms = 0;
    c->now_ms = start_ms;
}

void as__clock_init_real(as_clock *c, uv_loop_t *loop)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uv_update_time(loop);
    c->mode = AS_CLOCK_REAL;
    c->loop = loop;
    c->offset_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (int64_t)uv_now(loop);
    c->now_ms = 0;
}

int64_t as__clock_now(const as_clock *c)
{
    return c->mode == AS_CLOCK_REAL ? (int64_t)uv_now(c->loop) + c->offset_ms : c->now_ms;
}

int as__clock_set(as_clock *c, int64_t ms)
{
    if (c->mode == AS_CLOCK_REAL) return -1;
    if (ms > c->now_ms) c->now_ms = ms;
    return 0;
}
