/* command.h -- a command in parsed form: who asks what of which case, with the payload's
 * typed fields. Parsing never refuses by itself: a shape error is kept in `shape_err` and
 * reported at its place in the check order of docs/design.md#states-and-actions (after not_found).
 */
#ifndef AS_COMMAND_H
#define AS_COMMAND_H

#include <stdint.h>

#include "limits.h"
#include "model.h"

typedef struct as_principal {
    as_role role;
    const char *id; /* buyer or shop id for buyer:/merchant:, else NULL */
} as_principal;

/* Which optional payload fields were given. */
enum {
    AS_P_REASON = 1 << 0,
    AS_P_EVIDENCE = 1 << 1,
    AS_P_REQUESTED = 1 << 2,
    AS_P_PERMILLE = 1 << 3,
    AS_P_SHIPPING = 1 << 4,
    AS_P_SERIAL = 1 << 5,
    AS_P_AMOUNT = 1 << 6,
    AS_P_RESULT = 1 << 7,
};

typedef struct as_open_item {
    const char *sku;
    int64_t qty;
} as_open_item;

typedef struct as_cmd {
    int action; /* as_action, or -1 for an unknown name */
    as_principal who;
    const char *case_id;
    int64_t version; /* -1 when not given */
    unsigned given;  /* AS_P_* */
    /* payload fields; strings borrowed from the caller's document */
    const char *text;   /* reject / reject_return / refund_failed reason, carrier */
    const char *tracking, *serial;
    int reason;          /* revise/open: as_reason, or -1 for an unknown name */
    int result;          /* inspect: 1 fault, 0 no_fault, -1 anything else */
    int64_t amount;      /* offer */
    int64_t shipping_cost;
    int64_t requested_amount;
    int64_t bad_permille;
    int nevidence;
    /* open only */
    const char *order_id;
    int type; /* as_type, or -1 for an unknown name */
    int nitems;
    /* a system action's provenance (docs/design.md#provenance): the hook whose answer it is and
     * the layer that gave it, the deadline that fired (AS_NONE_U8 when none), the hook's why */
    uint8_t by_hook, by_layer, by_deadline;
    const char *why; /* borrowed, or NULL */
    /* deferred refusals */
    int shape_err; /* AS_EBAD_REQUEST when the shape is wrong */
    char shape_msg[160];
    /* the arrays last: as__cmd_init leaves them alone, nitems / nevidence say what is set */
    const char *evidence[AS_MAX_EVIDENCE];
    as_open_item items[AS_MAX_CASE_ITEMS];
} as_cmd;

void as__cmd_init(as_cmd *cmd, as_principal who, int action);
/* "buyer:B1", "merchant:S1", "platform", "logistics" -> principal with `id` borrowed from
 * `s`. Returns 0, or -1 when the string names no principal. */
int as__principal_parse(const char *s, as_principal *p);

#endif
