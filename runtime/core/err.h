/* err.h -- internal helper to fill an as_error. */
#ifndef AS_ERR_H
#define AS_ERR_H

#include <stdarg.h>

#include "aftersale/error.h"

/* Sets `err` (when not NULL) to `code` and the formatted sentence; returns `code`. */
int as__err(as_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
