/* limits.h -- the one table of input limits (docs/design.md "Limits"), checked where input
 * enters: the command codec, the order parser, the pipe's requests, pack uploads.
 *
 * Anything outside is bad_request before anything is interned, stored or changed, so every
 * accepted value can be stored and restored, and every identifier can stand in a URL path, an
 * HTTP header, a JSON string or a log line without escaping. The sums and products of money
 * that the rules compute stay far inside int64 at these bounds (AS_MAX_MONEY x 1000 for
 * bad_permille, a line's price x qty). */
#ifndef AS_LIMITS_H
#define AS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "aftersale/error.h"

#define AS_MAX_ID 64                 /* bytes of A-Z a-z 0-9 . _ : - */
#define AS_MAX_TEXT 256              /* bytes of UTF-8 without control characters */
#define AS_MAX_VERSION 32            /* bytes of A-Z a-z 0-9 . _ - */
#define AS_MAX_EVIDENCE 32           /* evidence entries of a case */
#define AS_MAX_ORDER_LINES 100       /* lines of an order */
#define AS_MAX_CASE_ITEMS 100        /* items of a case */
#define AS_MAX_QTY 10000             /* units of one line */
#define AS_MAX_MONEY 10000000000LL   /* fen: an order's total, an amount, a shipping cost */
#define AS_MAX_TIME 253402300799999LL /* ms: the end of year 9999 UTC */
#define AS_MAX_SOURCE (1u << 20)     /* bytes of a merchant pack's source */

/* 0 when s[0..len) is an identifier: 1-AS_MAX_ID bytes of A-Z a-z 0-9 . _ : -, not "." or
 * "..". */
int as__limit_id(const char *s, size_t len);
/* 0 when s[0..len) is 1-AS_MAX_TEXT bytes of well-formed UTF-8 with no control character
 * (C0, DEL, C1). */
int as__limit_text(const char *s, size_t len);
/* 0 when s[0..len) is a pack version: 1-AS_MAX_VERSION bytes of A-Z a-z 0-9 . _ - */
int as__limit_version(const char *s, size_t len);
/* 0 when s[0..len) is well-formed UTF-8 with no NUL byte (pack sources; any length). */
int as__limit_utf8(const char *s, size_t len, int allow_controls);

/* Makes the NUL-terminated `s` (a message that may quote input, cut by a fixed buffer) echo
 * safe in place: each byte of an invalid or truncated UTF-8 sequence and each control
 * character becomes '?'. */
void as__limit_sanitize(char *s);

/* Fills `err` with bad_request naming `field` and what it must be; returns AS_EBAD_REQUEST.
 * `what` is one of the AS_LIMIT_* sentences below. */
int as__limit_err(as_error *err, const char *field, const char *what);

#define AS_LIMIT_ID_WHAT "must be 1-64 bytes of A-Z a-z 0-9 . _ : - (not . or ..)"
#define AS_LIMIT_TEXT_WHAT "must be 1-256 bytes of UTF-8 without control characters"
#define AS_LIMIT_VERSION_WHAT "must be 1-32 bytes of A-Z a-z 0-9 . _ -"
#define AS_LIMIT_MONEY_WHAT "must be at most 10000000000 fen"
#define AS_LIMIT_TIME_WHAT "must be a time in ms from 0 to 253402300799999"

#endif
