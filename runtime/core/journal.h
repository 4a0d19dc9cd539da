/* journal.h -- store records of orders, cases and history entries (the rows' data), written
 * at the end of a loop turn for what the turn changed, read back at start. */
#ifndef AS_JOURNAL_H
#define AS_JOURNAL_H

#include "command.h"
#include "wbuf.h"
#include "runtime.h"

/* The party commands a loop turn took, each waiting to be written with the history entry it
 * made (store.h EVENT: its row carries the command, for `aftersale backtest`). A case's staged
 * commands are chained from its cmd_head (1-based into `v`, 0: none) in entry order. Owned by
 * the durable pipeline (durable.h), emptied when the turn is collected. */
typedef struct as_staged_cmd {
    uint32_t n;    /* the entry it made */
    uint32_t next; /* the case's next staged command, 1-based; 0: the last */
    size_t off, len; /* its encoding in `bytes` */
} as_staged_cmd;
typedef struct as_cmd_stage {
    as_wbuf bytes;
    as_staged_cmd *v; /* owned */
    size_t len, cap;
} as_cmd_stage;

/* Room for one more command of `bytes` (as__cmd_stage_size), so that the as__cmd_stage_put
 * of it cannot fail: 0 or AS_ENOMEM. */
int as__cmd_stage_reserve(as_cmd_stage *s, size_t bytes);
/* Stages the party's command `cmd` on `c`, taken at `at_ms`, which made entry `n`. */
void as__cmd_stage_put(as_cmd_stage *s, as_case *c, uint32_t n, int64_t at_ms, const as_cmd *cmd);
/* The bytes a staged `cmd` adds to its entry's record beyond an entry without one. */
size_t as__cmd_stage_size(const as_cmd *cmd);
/* Empties the stage (the cases' cmd_head are the caller's to clear). */
void as__cmd_stage_reset(as_cmd_stage *s);
void as__cmd_stage_free(as_cmd_stage *s);

/* Appends the order's record. */
void as__journal_order(as_wbuf *b, const as_order *o);
/* Appends the case's record and its history entries not yet written (from saved_hist), each
 * with the command `cmds` holds for it (NULL: none for any). */
void as__journal_case(as_wbuf *b, as_case *c, const as_cmd_stage *cmds);

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

/* A command read back: `cmd`'s strings point into `mem` (owned; as__journal_cmd_free). */
typedef struct as_journal_cmd {
    as_cmd cmd; /* case_id is not set: the row's key holds it */
    int64_t at_ms;
    char *mem;
} as_journal_cmd;
/* Decodes an EVENT row's command (events.cmd) into *out: 0, or AS_EIO (a truncated, longer
 * or foreign record; nothing to free) or AS_ENOMEM with a sentence. */
int as__journal_read_command(const void *data, size_t len, as_journal_cmd *out, as_error *err);
void as__journal_cmd_free(as_journal_cmd *j);

#endif
