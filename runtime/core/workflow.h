/* workflow.h -- the base workflow as data: rows of (from-state, action, condition, to-state)
 * exactly as docs/rulebook.md#where-agreement-leads reads; the acting role is the action's
 * (model.h). The rows are compiled once into a [state][action] index, so a lookup is two array
 * reads and a short scan of the rows for that pair, first matching condition wins. */
#ifndef AS_WORKFLOW_H
#define AS_WORKFLOW_H

#include <stdint.h>

#include "model.h"

#define AS_WF_ANY 0xff  /* from: any state */
#define AS_WF_SAME 0xff /* to: stay (tracking news, a failed payment) */

/* Conditions. The structural ones are decided from the case alone; the others come from the
 * rule hooks and are asked only when the row is reached. */
typedef enum {
    AS_WC_ALWAYS,
    AS_WC_HELD,            /* the merchant holds the returned goods (structural) */
    AS_WC_NOT_HELD,        /* structural */
    AS_WC_INSTANT,         /* instant_refund hook */
    AS_WC_INSPECT,         /* inspection hook */
    AS_WC_SERIAL_MISMATCH, /* confirm_return with another serial than sold */
    AS_WC_REMEDY_REFUND,   /* on_inspection's answer */
    AS_WC_REMEDY_EXCHANGE,
    AS_WC_REMEDY_REPAIR,
    AS_WC_REMEDY_REJECT,
} as_wf_cond;

/* What a row does besides moving the state. */
typedef enum {
    AS_WE_NONE,
    AS_WE_HOLD,        /* rejected at receipt: the merchant now holds the goods */
    AS_WE_REMEDY,      /* remedy := the inspection's answer */
    AS_WE_TYPE_REMEDY, /* remedy := the type's own (a ruling after receipt) */
    AS_WE_REMEDY_HOLD, /* remedy := the inspection's answer; the merchant keeps the goods */
} as_wf_effect;

#define AS_T(x) (1u << AS_TYPE_##x)
#define AS_T_ANY 0u

typedef struct as_wf_row {
    uint8_t from, action, cond, to, effect;
    uint8_t types; /* mask of case types this row serves; 0 = all */
} as_wf_row;

/* Decides a condition for the row being tried: 1 true, 0 false, or a negative error code. */
typedef int (*as_wf_cond_fn)(void *ctx, as_wf_cond cond);

/* True when some row takes `action` in `state` for `type`, judging only the structural
 * conditions (`held`): otherwise the action is invalid_state. */
int as__workflow_allows(int state, int action, int type, int held);
/* Finds the row that applies, asking `cond` for hook conditions in row order. Returns 0 with
 * *row set, AS_EINVALID_STATE when no row matches, or cond's error. */
int as__workflow_route(int state, int action, int type, int held, as_wf_cond_fn cond,
                       void *ctx, const as_wf_row **row);
/* All rows, for tests and documentation. */
const as_wf_row *as__workflow_rows(int *n);

#endif
