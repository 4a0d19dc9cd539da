/* strmap.c -- linear probing with tombstones; grows at 3/4 load. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "aftersale/error.h"

static char tomb_marker;
#define TOMB ((void *)&tomb_marker)

uint64_t as__hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a: ids are short, this is fast enough */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ^ (h >> 29);
}

void as__strmap_init(as_strmap *m, as_key_fn key_of)
{
    memset(m, 0, sizeof *m);
    m->key_of = key_of;
}

void as__strmap_free(as_strmap *m)
{
    as__free(m->slots);
    m->slots = NULL;
    m->cap = m->len = m->tombs = 0;
}

static size_t find(const as_strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    for (size_t i = as__hash(key) & mask;; i = (i + 1) & mask) {
        void *o = m->slots[i];
        if (o == NULL) return (size_t)-1;
        if (o != TOMB && strcmp(m->key_of(o), key) == 0) return i;
    }
}

void *as__strmap_get(const as_strmap *m, const char *key)
{
    if (m->len == 0) return NULL;
    size_t i = find(m, key);
    return i == (size_t)-1 ? NULL : m->slots[i];
}

static void insert_raw(void **slots, size_t cap, const char *key, void *obj)
{
    size_t mask = cap - 1;
    size_t i = as__hash(key) & mask;
    while (slots[i] != NULL && slots[i] != TOMB) i = (i + 1) & mask;
    slots[i] = obj;
}

static int rehash(as_strmap *m, size_t cap);

static int grow(as_strmap *m)
{
    size_t cap = m->cap ? m->cap : 8;
    while ((m->len + 1) * 4 > cap * 3) cap *= 2;
    if (cap == m->cap && m->tombs == 0) cap *= 2;
    return rehash(m, cap);
}

static int rehash(as_strmap *m, size_t cap)
{
    void **slots = as__calloc(cap, sizeof *slots);
    if (slots == NULL) return AS_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i] != NULL && m->slots[i] != TOMB)
            insert_raw(slots, cap, m->key_of(m->slots[i]), m->slots[i]);
    as__free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->tombs = 0;
    return 0;
}

int as__strmap_reserve(as_strmap *m, size_t n)
{
    /* put() counts the tombstones too: with room for n only once they are gone, n puts
     * could still grow the map, so rehash (which drops them) then as well */
    if (m->cap && (m->len + m->tombs + n) * 4 <= m->cap * 3) return 0;
    size_t cap = m->cap ? m->cap : 8;
    while ((m->len + n) * 4 > cap * 3) cap *= 2;
    return rehash(m, cap);
}

int as__strmap_put(as_strmap *m, void *obj)
{
    if ((m->len + m->tombs + 1) * 4 > m->cap * 3) {
        int rc = grow(m);
        if (rc) return rc;
    }
    insert_raw(m->slots, m->cap, m->key_of(obj), obj);
    m->len++;
    return 0;
}

void *as__strmap_del(as_strmap *m, const char *key)
{
    if (m->len == 0) return NULL;
    size_t i = find(m, key);
    if (i == (size_t)-1) return NULL;
    void *o = m->slots[i];
    m->slots[i] = TOMB;
    m->len--;
    m->tombs++;
    return o;
}

void *as__strmap_next(const as_strmap *m, size_t *pos)
{
    for (; *pos < m->cap; (*pos)++) {
        void *o = m->slots[*pos];
        if (o != NULL && o != TOMB) {
            (*pos)++;
            return o;
        }
    }
    return NULL;
}
