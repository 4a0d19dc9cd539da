/* limits.c -- the checks behind limits.h. */
#include "limits.h"

#include <string.h>

#include "err.h"

static int id_byte(unsigned char c, int colon)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || (colon && c == ':');
}

static int token(const char *s, size_t len, size_t max, int colon)
{
    if (s == NULL || len == 0 || len > max) return -1;
    for (size_t i = 0; i < len; i++)
        if (!id_byte((unsigned char)s[i], colon)) return -1;
    return 0;
}

int as__limit_id(const char *s, size_t len)
{
    if (token(s, len, AS_MAX_ID, 1)) return -1;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return -1;
    return 0;
}

int as__limit_version(const char *s, size_t len)
{
    return token(s, len, AS_MAX_VERSION, 0);
}

/* One UTF-8 sequence at s[0..len): its length, or 0 when it is not well-formed (overlong,
 * surrogate, above U+10FFFF, truncated). *cp receives the code point. */
static size_t utf8_seq(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) return *cp = c, 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, v = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) n = 3, v = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return n;
}

int as__limit_utf8(const char *s, size_t len, int allow_controls)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0 || cp == 0) return -1;
        if (!allow_controls && (cp < 0x20 || (cp >= 0x7f && cp < 0xa0))) return -1;
        i += n;
    }
    return 0;
}

void as__limit_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_seq(p + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) {
            p[i++] = '?';
            continue;
        }
        i += n;
    }
}

int as__limit_text(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > AS_MAX_TEXT) return -1;
    return as__limit_utf8(s, len, 0);
}

int as__limit_err(as_error *err, const char *field, const char *what)
{
    return as__err(err, AS_EBAD_REQUEST, "'%s' %s", field, what);
}
