/* prom.h -- the Prometheus text exposition format, version 0.0.4, written part by part: the
 * text of GET /metrics (docs/api.md).
 *
 * A metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*, a label name [a-zA-Z_][a-zA-Z0-9_]*
 * (not starting "__", which Prometheus keeps for itself); a label value is written between
 * double quotes with backslash, double quote and newline escaped (\\, \", \n), so whatever it
 * holds it stays one value on one line. Values are integers written as digits, or seconds
 * from a whole number of microseconds. A refused part is AS_EBAD_REQUEST, recorded in the
 * buffer (buf.h). */
#ifndef AS_API_PROM_H
#define AS_API_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct as_prom_label {
    const char *name;
    const char *value;
} as_prom_label;

/* "# TYPE name type\n"; `type` one of counter, gauge, histogram, summary, untyped. */
int as__prom_type(as_buf *b, const char *name, const char *type);
/* "name{l1=\"v1\",l2=\"v2\"} 42\n" with the `nlabels` labels in order ("name 42\n" when
 * there are none). */
int as__prom_sample(as_buf *b, const char *name, const as_prom_label *labels, size_t nlabels,
                    uint64_t value);
/* The same with a value that may be negative ("-3"). */
int as__prom_sample_i64(as_buf *b, const char *name, const as_prom_label *labels, size_t nlabels,
                        int64_t value);
/* The same with `us` microseconds written as seconds with six decimals ("1.000250"). */
int as__prom_sample_seconds(as_buf *b, const char *name, const as_prom_label *labels,
                            size_t nlabels, uint64_t us);

#endif
