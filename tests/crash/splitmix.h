/* splitmix.h -- the seeded random streams of the crash tests (crash.c, powercut.c): splitmix64,
 * so that a seed replays the same schedule. Header-only. */
#ifndef AS_TEST_SPLITMIX_H
#define AS_TEST_SPLITMIX_H

#include <stdint.h>

typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
