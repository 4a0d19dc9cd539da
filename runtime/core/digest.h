/* digest.h -- SHA-256 of pack sources (libcrypto), as the lowercase hex that pins carry. */
#ifndef AS_DIGEST_H
#define AS_DIGEST_H

#include <stddef.h>

#define AS_SHA256_HEX 65 /* 64 hex digits and a NUL */

/* Writes the SHA-256 of data[0..len) as hex into `out`. Returns 0, or -1 when libcrypto
 * fails (out of memory), with `out` the empty string. */
int as__sha256_hex(const void *data, size_t len, char out[AS_SHA256_HEX]);

#endif
