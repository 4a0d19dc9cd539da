/* clock.h -- one clock interface, two clocks (docs/design.md#time-and-deadlines).
 *
 * The real clock is libuv's loop time shifted to wall-clock ms UTC; the virtual clock is a
 * number that moves only when told (the headless runner jumps it to the next deadline, a
 * virtual-clock server moves it on POST /v1/clock/advance). Which one a clock is, is its
 * mode, not whether the runtime has a loop: a runtime may serve I/O on a loop and still run
 * on virtual time. Everything else in the runtime reads time only through as__clock_now(). */
#ifndef AS_CLOCK_H
#define AS_CLOCK_H

#include <stdint.h>
#include <uv.h>

typedef enum as_clock_mode {
    AS_CLOCK_VIRTUAL = 0, /* the zero clock: a number moved by as__clock_set */
    AS_CLOCK_REAL = 1,    /* libuv's loop time, shifted to the wall clock */
} as_clock_mode;

typedef struct as_clock {
    as_clock_mode mode;
    uv_loop_t *loop;   /* real: the loop whose time it reads; NULL on a virtual clock */
    int64_t offset_ms; /* real: wall time minus loop time at init */
    int64_t now_ms;    /* virtual: the current instant */
} as_clock;

void as__clock_init_virtual(as_clock *c, int64_t start_ms);
/* Borrows `loop`, which must outlive the clock. */
void as__clock_init_real(as_clock *c, uv_loop_t *loop);
int64_t as__clock_now(const as_clock *c);
/* Virtual clock only: moves time to `ms`; time never goes back (an earlier `ms` is ignored).
 * Returns 0, or -1 on a real clock. */
int as__clock_set(as_clock *c, int64_t ms);
static inline int as__clock_is_virtual(const as_clock *c)
{
    return c->mode == AS_CLOCK_VIRTUAL;
}

#endif
