/* prom.c -- the Prometheus text exposition writer. See prom.h. */
#include "prom.h"

#include <string.h>

#include <aftersale/aftersale.h>

static int is_alpha_(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A metric name (`colon` 1) or a label name (`colon` 0). */
static int is_name(const char *s, int colon)
{
    const unsigned char *p = (const unsigned char *)s;
    if (!is_alpha_(*p) && !(colon && *p == ':')) return 0;
    for (p++; *p; p++)
        if (!is_alpha_(*p) && !is_digit(*p) && !(colon && *p == ':')) return 0;
    return colon || strncmp(s, "__", 2) != 0;
}

int as__prom_type(as_buf *b, const char *name, const char *type)
{
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    size_t i = 0;
    while (i < sizeof types / sizeof types[0] && strcmp(types[i], type) != 0)
        i++;
    if (!is_name(name, 1) || i == sizeof types / sizeof types[0])
        return as__buf_fail(b, AS_EBAD_REQUEST);
    as__buf_str(b, "# TYPE ");
    as__buf_str(b, name);
    as__buf_put(b, " ", 1);
    as__buf_str(b, type);
    return as__buf_put(b, "\n", 1);
}

/* The value between its quotes, escaped as the format has it. */
static void label_value(as_buf *b, const char *v)
{
    for (const char *run = v;; v++) {
        const char *esc = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        if (esc == NULL && *v != '\0') continue;
        as__buf_put(b, run, (size_t)(v - run));
        if (*v == '\0') return;
        as__buf_put(b, esc, 2);
        run = v + 1;
    }
}

/* "name{...} " : everything of a sample but its value and the newline. */
static int sample_head(as_buf *b, const char *name, const as_prom_label *labels, size_t n)
{
    if (!is_name(name, 1)) return as__buf_fail(b, AS_EBAD_REQUEST);
    for (size_t i = 0; i < n; i++)
        if (labels[i].name == NULL || !is_name(labels[i].name, 0) || labels[i].value == NULL)
            return as__buf_fail(b, AS_EBAD_REQUEST);
    as__buf_str(b, name);
    for (size_t i = 0; i < n; i++) {
        as__buf_put(b, i ? "," : "{", 1);
        as__buf_str(b, labels[i].name);
        as__buf_put(b, "=\"", 2);
        label_value(b, labels[i].value);
        as__buf_put(b, "\"", 1);
    }
    if (n) as__buf_put(b, "}", 1);
    return as__buf_put(b, " ", 1);
}

int as__prom_sample(as_buf *b, const char *name, const as_prom_label *labels, size_t nlabels,
                    uint64_t value)
{
    if (sample_head(b, name, labels, nlabels)) return b->err;
    as__buf_u64(b, value);
    return as__buf_put(b, "\n", 1);
}

int as__prom_sample_i64(as_buf *b, const char *name, const as_prom_label *labels, size_t nlabels,
                        int64_t value)
{
    if (sample_head(b, name, labels, nlabels)) return b->err;
    as__buf_i64(b, value);
    return as__buf_put(b, "\n", 1);
}

int as__prom_sample_seconds(as_buf *b, const char *name, const as_prom_label *labels,
                            size_t nlabels, uint64_t us)
{
    if (sample_head(b, name, labels, nlabels)) return b->err;
    as__buf_u64(b, us / 1000000);
    /* the fraction: six digits, zeros in front, as %.6f would show it */
    char frac[AS_DEC_MAX], pad[6] = {'0', '0', '0', '0', '0', '0'};
    size_t n = as__dec_u64(us % 1000000, frac);
    as__buf_put(b, ".", 1);
    as__buf_put(b, pad, 6 - n);
    as__buf_put(b, frac, n);
    return as__buf_put(b, "\n", 1);
}
