/* strmap.h -- an open-addressing hash table of objects that carry their own string key.
 *
 * The table stores only the object pointers (8 bytes a slot) and asks `key_of` for an
 * object's key, so a million cases cost a few megabytes of index. It never owns the objects. */
#ifndef AS_STRMAP_H
#define AS_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef const char *(*as_key_fn)(const void *obj);

typedef struct as_strmap {
    void **slots;
    size_t cap; /* power of two, or 0 */
    size_t len;
    size_t tombs;
    as_key_fn key_of;
} as_strmap;

void as__strmap_init(as_strmap *m, as_key_fn key_of);
/* Frees the index only; the objects stay the caller's. */
void as__strmap_free(as_strmap *m);
void *as__strmap_get(const as_strmap *m, const char *key);
/* Sizes the table for `n` objects at once (a restore knows how many are coming). */
int as__strmap_reserve(as_strmap *m, size_t n);
/* Inserts `obj` (its key must not be present). Returns 0 or AS_ENOMEM. */
int as__strmap_put(as_strmap *m, void *obj);
/* Removes the object with `key`; returns it, or NULL when absent. */
void *as__strmap_del(as_strmap *m, const char *key);
/* Iterates: `*pos` starts at 0; returns the next object or NULL at the end. */
void *as__strmap_next(const as_strmap *m, size_t *pos);

uint64_t as__hash(const char *s);

#endif
