/* head.h -- an HTTP/1.1 response head (RFC 9112 §4, RFC 9110 §5), written part by part.
 *
 * No format string and nothing unchecked reaches the bytes: the status line comes from a
 * table of the statuses the server answers with their reason phrases, a header's name must be
 * a token and its value may hold no CR, LF or other control byte (HTAB aside), and numbers
 * are written as decimal digits. A refused part is AS_EBAD_REQUEST, recorded in the buffer
 * (buf.h): the head is then not taken, rather than sent with a field missing or split. */
#ifndef AS_API_HEAD_H
#define AS_API_HEAD_H

#include <stdint.h>

#include "buf.h"

/* "HTTP/1.1 404 Not Found\r\n". AS_EBAD_REQUEST for a status not in the table: 200, 201,
 * 400, 401, 403, 404, 405, 408, 409, 413, 422, 431, 500, 503. */
int as__head_status(as_buf *b, int status);
/* "Name: value\r\n": `name` a token (1 or more of A-Z a-z 0-9 ! # $ % & ' * + - . ^ _ ` | ~),
 * `value` any bytes but controls other than HTAB (empty is allowed). */
int as__head_field(as_buf *b, const char *name, const char *value);
/* "Name: 1234\r\n". */
int as__head_field_u64(as_buf *b, const char *name, uint64_t value);
/* The empty line that ends the head. */
int as__head_end(as_buf *b);

#endif
