/* err.c -- names and messages of the one error list, and the internal setter. */
#include "err.h"

#include <stdio.h>
#include <string.h>

#include "limits.h"

#define ERR_NAME(up, low, val, msg) #low,
static const char *const err_names[] = {AS_ERRNO_MAP(ERR_NAME)};
#undef ERR_NAME
#define ERR_MSG(up, low, val, msg) msg,
static const char *const err_msgs[] = {AS_ERRNO_MAP(ERR_MSG)};
#undef ERR_MSG

static int err_index(int code)
{
    int i = code - AS__ERR_FIRST - 1;
    return i >= 0 && code < AS__ERR_END ? i : -1;
}

const char *as_err_name(int code)
{
    int i = err_index(code);
    return i < 0 ? "unknown" : err_names[i];
}

const char *as_strerror(int code)
{
    if (code == 0) return "success";
    int i = err_index(code);
    return i < 0 ? "unknown error" : err_msgs[i];
}

int as_err_from_name(const char *name)
{
    if (name == NULL) return 0;
    for (int i = 0; i < AS__ERR_END - AS__ERR_FIRST - 1; i++)
        if (strcmp(err_names[i], name) == 0) return AS__ERR_FIRST + 1 + i;
    return 0;
}

static void fill(as_error *err, int code, const char *fmt, va_list ap)
{
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    as__limit_sanitize(err->msg); /* messages quote input and are cut to fit */
}

int as_error_set(as_error *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        fill(err, code, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The library's own name for it: the same function, bound inside the library (hidden), so
 * its calls need no PLT. */
extern __typeof__(as__err) as__err __attribute__((alias("as_error_set")));
