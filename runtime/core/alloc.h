/* alloc.h -- the one allocator of the library (aftersale.h as_replace_allocator).
 *
 * Every allocation in runtime/ goes through these, so that an embedder's allocator (or a
 * test's fault-injecting one) sees all of them. Each is one indirect call through the table
 * as_replace_allocator filled: no lock, no branch. A block from any of them is freed with
 * as__free and grown with as__realloc, never with the C library's free/realloc. */
#ifndef AS_ALLOC_H
#define AS_ALLOC_H

#include <stddef.h>

#include "aftersale/aftersale.h"

typedef struct as_allocator {
    as_malloc_fn malloc;
    as_realloc_fn realloc;
    as_calloc_fn calloc;
    as_free_fn free;
} as_allocator;

/* The allocator in force; the C library's until as_replace_allocator. */
extern as_allocator as__allocator;

static inline void *as__malloc(size_t n)
{
    return as__allocator.malloc(n);
}

static inline void *as__realloc(void *p, size_t n)
{
    return as__allocator.realloc(p, n);
}

static inline void *as__calloc(size_t count, size_t size)
{
    return as__allocator.calloc(count, size);
}

static inline void as__free(void *p)
{
    as__allocator.free(p);
}

/* strdup and strndup on as__malloc; NULL on failure. */
char *as__strdup(const char *s);
char *as__strndup(const char *s, size_t n);

/* Called by as_runtime_new: from the first runtime on the allocator may not change. Installs
 * the library's allocator into jansson (as as_replace_allocator does) so that a failed
 * allocation of jansson's is counted below. */
void as__allocator_lock(void);

/* How many of jansson's allocations have failed so far (loop thread). jansson reports its
 * own out-of-memory unreliably -- a failed copy in the lexer reads as a syntax error, or is
 * dropped and yields a damaged string -- so a caller tells by this count moving. */
unsigned long as__json_failures(void);

#endif
