/* aftersale/version.h -- version and export macro of every public header. */
#ifndef AFTERSALE_VERSION_H
#define AFTERSALE_VERSION_H

#define AS_VERSION_MAJOR 0
#define AS_VERSION_MINOR 1
#define AS_VERSION_PATCH 0
#define AS_VERSION_STRING "0.1.0"

/* The library is built with hidden visibility; only AS_EXTERN symbols are its API. */
#if defined(__GNUC__)
#define AS_EXTERN __attribute__((visibility("default")))
#else
#define AS_EXTERN
#endif

#endif
