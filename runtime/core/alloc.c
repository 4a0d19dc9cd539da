/* alloc.c -- see alloc.h and aftersale.h as_replace_allocator. */
#include "alloc.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

as_allocator as__allocator = {malloc, realloc, calloc, free};

/* Set once a runtime exists: blocks are live from then on (in the runtime, in libuv's
 * handles, in jansson's values, in the Lua states), and one freed by another allocator than
 * the one that made it is undefined behaviour. */
static int locked;

/* jansson inside as__json_parse_begin/end (see alloc.h): the refusals counted, and the blocks
 * taken from the C library instead (owned, C library's memory), to be freed with free().
 * One per thread: as_db_backtest parses on a worker thread while the loop's thread parses
 * requests, and a parse begins, allocates and ends on one thread. */
static _Thread_local struct {
    int on;
    unsigned long refused;
    void **blocks;
    size_t n, cap;
} parse;

/* The C library's blocks held by parses of every thread: while it is 0, as almost always, a
 * free need not look at its thread's list (a thread-local read costs a call in a shared
 * library, on every free jansson makes). Relaxed: a thread frees only its own blocks, and
 * sees its own increments. */
static atomic_size_t c_blocks;

static void *json_malloc(size_t n)
{
    void *p = as__malloc(n);
    if (p != NULL || !parse.on) return p;
    parse.refused++;
    if (parse.n == parse.cap) {
        size_t cap = parse.cap ? parse.cap * 2 : 16;
        void **v = realloc(parse.blocks, cap * sizeof *v);
        if (v == NULL) return NULL;
        parse.blocks = v;
        parse.cap = cap;
    }
    if ((p = malloc(n)) != NULL) {
        parse.blocks[parse.n++] = p;
        atomic_fetch_add_explicit(&c_blocks, 1, memory_order_relaxed);
    }
    return p;
}

static void json_free(void *p)
{
    if (atomic_load_explicit(&c_blocks, memory_order_relaxed) != 0)
        for (size_t i = parse.n; i-- > 0;) /* none but during a refused parse */
            if (parse.blocks[i] == p) {
                parse.blocks[i] = parse.blocks[--parse.n];
                atomic_fetch_sub_explicit(&c_blocks, 1, memory_order_relaxed);
                free(p);
                return;
            }
    as__free(p);
}

void as__json_parse_begin(void)
{
    parse.on = 1;
    parse.refused = 0;
}

unsigned long as__json_parse_end(void)
{
    parse.on = 0;
    return parse.refused;
}

void as__allocator_lock(void)
{
    /* the same allocator jansson had (the C library's, or the replacement installed by
     * as_replace_allocator), seen through the wrapper: no block changes hands. An embedder
     * that gave jansson an allocator of its own keeps it (its values would otherwise be
     * freed by another allocator); the library's parses are then as safe as that one. */
    if (locked) return; /* only read from then on: a worker thread's runtime comes here too */
    json_malloc_t m;
    json_free_t f;
    json_get_alloc_funcs(&m, &f);
    if (m == malloc && f == free) json_set_alloc_funcs(json_malloc, json_free);
    locked = 1;
}

int as_replace_allocator(as_malloc_fn m, as_realloc_fn r, as_calloc_fn c, as_free_fn f)
{
    if (m == NULL || r == NULL || c == NULL || f == NULL) return AS_EBAD_REQUEST;
    if (locked) return AS_EINVALID_STATE;
    if (uv_replace_allocator(m, r, c, f) != 0) return AS_EBAD_REQUEST;
    as__allocator = (as_allocator){m, r, c, f};
    /* jansson has no realloc hook: it only mallocs and frees */
    json_set_alloc_funcs(json_malloc, json_free);
    /* SQLite keeps its own allocator: it frees nothing we allocate and we free nothing it
     * allocates (sqlite3_free for its strings), and its own OOM is reported as an I/O error
     * of the store, which fails the batch like a full disk would. */
    return 0;
}

char *as__strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = as__malloc(len + 1);
    if (d == NULL) return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *as__strdup(const char *s)
{
    return as__strndup(s, (size_t)-1);
}
