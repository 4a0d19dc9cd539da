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
 * the library's allocator into jansson (as as_replace_allocator does), through the wrapper
 * that as__json_parse_begin/end arm. */
void as__allocator_lock(void);

/* Bracket one json_loads (loop thread, not nested). jansson cannot take a failed allocation
 * in its lexer: it drops the byte it could not buffer, and then reads a damaged string,
 * asserts, or writes past a buffer (jansson 2.14 lex_save/lex_scan_string). Inside the
 * bracket a block the allocator refuses is taken from the C library instead, so that the
 * parse ends safely; _end returns how many were refused, and a caller seeing any refuses the
 * document (nomem) and frees it before the next bracket. A json_dumps may be bracketed the
 * same way: its dump leaves a key out of the text past a refused allocation and still
 * returns it (request/clock.c); the text is then freed with jansson's free function. */
void as__json_parse_begin(void);
unsigned long as__json_parse_end(void);

#endif
