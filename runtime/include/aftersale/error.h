/* aftersale/error.h -- the one error list (docs/design.md#error-codes).
 *
 * Every refusal carries one of the contract's codes and a human message. Functions return 0
 * or a negative AS_E* code and fill a caller-owned `as_error` with the message. The name
 * column is exactly the contract's code; `nomem` is the runtime's own (an allocation failed:
 * nothing was changed and the runtime keeps serving). */
#ifndef AFTERSALE_ERROR_H
#define AFTERSALE_ERROR_H

#include "aftersale/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The list is append-only. A code's value is part of the ABI: an embedder or plugin built
 * against this header holds the numbers, and a number anyone kept (a log line, a row) must go
 * on meaning the same code. So a value never changes, a retired code's value is never given to
 * another, and a new code goes at the end with the next value (-82 next).
 * The values run without a gap from AS__ERR_FIRST + 1 to AS__ERR_END - 1, because the
 * library's name and message tables are indexed by them; tests/unit/test_err.c pins each one
 * and fails the build on a gap. */
#define AS_ERRNO_MAP(XX)                                                                           \
    XX(UNAUTHORIZED, unauthorized, -99, "no or unknown API key")                                   \
    XX(NOT_FOUND, not_found, -98, "unknown order or case")                                         \
    XX(BAD_REQUEST, bad_request, -97, "malformed input or value out of range")                     \
    XX(FORBIDDEN, forbidden, -96,                                                                  \
       "the actor is not a party to this case or never takes this action")                         \
    XX(INVALID_STATE, invalid_state, -95, "the action is not allowed in the current state")        \
    XX(CONFLICT, conflict, -94, "stale version")                                                   \
    XX(DUPLICATE_CASE, duplicate_case, -93, "an item already has an open case")                    \
    XX(NOT_ELIGIBLE, not_eligible, -92, "the order, category, type or reason rules it out")        \
    XX(WINDOW_EXPIRED, window_expired, -91, "too late for this reason")                            \
    XX(ATTEMPT_LIMIT, attempt_limit, -90, "too many opens and revisions on one item")              \
    XX(EVIDENCE_REQUIRED, evidence_required, -89, "this reason needs evidence")                    \
    XX(AMOUNT_EXCEEDS_PAID, amount_exceeds_paid, -88,                                              \
       "the requested amount is above what was paid")                                              \
    XX(REMEDY_NOT_ALLOWED, remedy_not_allowed, -87, "this type is not allowed on this day")        \
    XX(WARRANTY_EXPIRED, warranty_expired, -86, "past the warranty")                               \
    XX(RULE_ERROR, rule_error, -85, "a rule threw, returned a wrong type, or ran out of budget")   \
    XX(NOMEM, nomem, -84, "out of memory")                                                         \
    XX(IO, io, -83, "input/output error")

typedef enum {
    AS_OK = 0,
    AS__ERR_FIRST = -100, /* one below the first code */
#define AS__ERR_ENUM(up, low, val, msg) AS_E##up = val,
    AS_ERRNO_MAP(AS__ERR_ENUM)
#undef AS__ERR_ENUM
    AS__ERR_END /* one above the last code */
} as_errno;

#define AS_ERROR_MSG_MAX 256

/* Caller-owned error detail; `code` is 0 or an AS_E* value, `msg` a full sentence. */
typedef struct as_error {
    int code;
    char msg[AS_ERROR_MSG_MAX];
} as_error;

/* "not_found" for AS_ENOT_FOUND; "unknown" for anything else. Static storage. */
AS_EXTERN const char *as_err_name(int code);
/* A generic sentence for the code. Static storage. */
AS_EXTERN const char *as_strerror(int code);
/* The code whose name is `name`, or 0 when there is none. */
AS_EXTERN int as_err_from_name(const char *name);
/* Fills `err` (NULL: nothing) with `code` and the printf-formatted sentence, cut to
 * AS_ERROR_MSG_MAX bytes and made printable (control bytes replaced), as the library fills
 * its own; returns `code`, so that `return as_error_set(err, AS_EIO, ...);` reads well. */
AS_EXTERN int as_error_set(as_error *err, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#ifdef __cplusplus
}
#endif
#endif
