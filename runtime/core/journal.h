/* journal.h -- store records of orders, cases and history entries (the rows' data), written
 * at the end of a loop turn for what the turn changed, read back at start. */
#ifndef AS_JOURNAL_H
#define AS_JOURNAL_H

#include "wbuf.h"
#include "runtime.h"

/* Appends the order's record. */
void as__journal_order(as_wbuf *b, const as_order *o);
/* Appends the case's record and its history entries not yet written (from saved_hist). */
void as__journal_case(as_wbuf *b, as_case *c);

/* The bytes as__journal_order writes for `o`. */
size_t as__journal_order_size(const as_order *o);
/* At least the bytes as__journal_case will write for `c` once a change gives it the values
 * `v` and `more` history entries whose notes hold `note_bytes` bytes in all: what a change
 * reserves (as__durable_reserve) before it is made. */
size_t as__journal_case_bound(as_case *c, const as_case_vals *v, uint32_t more, size_t note_bytes);

/* Rebuild an order (not yet in the runtime's map) from its record. */
int as__journal_read_order(as_runtime *rt, const void *data, size_t len, as_order **out,
                           as_error *err);
/* Rebuild a case; `pin` finds the pack version a layer pinned (NULL when none). The case is
 * not yet in any map, its deadline not scheduled. */
int as__journal_read_case(as_runtime *rt, const void *data, size_t len,
                          as_pack *(*pin)(void *ctx, int layer, const char *shop,
                                          const char *name, const char *version),
                          void *ctx, as_case **out, as_error *err);
/* Appends history entry `n` (which must be the next one) to `c`. */
int as__journal_read_event(as_runtime *rt, as_case *c, uint32_t n, const void *data, size_t len,
                           as_error *err);

#endif
