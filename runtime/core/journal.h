/* journal.h -- store records of orders, cases and history entries (the rows' data), written
 * at the end of a loop turn for what the turn changed, read back at start. */
#ifndef AS_JOURNAL_H
#define AS_JOURNAL_H

#include "command.h"
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

/* Appends the COMMAND record of a party's command `cmd` on case `case_id`, taken at `at_ms`,
 * whose history entry is entry `n` (store.h). */
void as__journal_command(as_wbuf *b, const char *case_id, uint32_t n, int64_t at_ms,
                         const as_cmd *cmd);
/* The bytes as__journal_command writes for `cmd` on `case_id` (n and at_ms do not change it). */
size_t as__journal_command_size(const char *case_id, const as_cmd *cmd);

/* A command read back: `cmd`'s strings point into `mem` (owned; as__journal_cmd_free). */
typedef struct as_journal_cmd {
    as_cmd cmd; /* case_id is not set: the row's key holds it */
    int64_t at_ms;
    char *mem;
} as_journal_cmd;
/* Decodes a COMMAND row's data into *out: 0, or AS_EIO (a truncated, longer or foreign
 * record; nothing to free) or AS_ENOMEM with a sentence. */
int as__journal_read_command(const void *data, size_t len, as_journal_cmd *out, as_error *err);
void as__journal_cmd_free(as_journal_cmd *j);

#endif
