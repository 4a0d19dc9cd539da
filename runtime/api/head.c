/* head.c -- the HTTP/1.1 response head writer. See head.h. */
#include "head.h"

#include <stddef.h>
#include <string.h>

#include <aftersale/aftersale.h>

/* Each status with its line, so that no number is formatted at all. */
static const struct {
    int status;
    const char *line;
} statuses[] = {
    {200, "HTTP/1.1 200 OK\r\n"},
    {201, "HTTP/1.1 201 Created\r\n"},
    {400, "HTTP/1.1 400 Bad Request\r\n"},
    {401, "HTTP/1.1 401 Unauthorized\r\n"},
    {403, "HTTP/1.1 403 Forbidden\r\n"},
    {404, "HTTP/1.1 404 Not Found\r\n"},
    {405, "HTTP/1.1 405 Method Not Allowed\r\n"},
    {408, "HTTP/1.1 408 Request Timeout\r\n"},
    {409, "HTTP/1.1 409 Conflict\r\n"},
    {413, "HTTP/1.1 413 Payload Too Large\r\n"},
    {422, "HTTP/1.1 422 Unprocessable Entity\r\n"},
    {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n"},
    {500, "HTTP/1.1 500 Internal Server Error\r\n"},
    {503, "HTTP/1.1 503 Service Unavailable\r\n"},
};

int as__head_status(as_buf *b, int status)
{
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        if (statuses[i].status == status) return as__buf_str(b, statuses[i].line);
    return as__buf_fail(b, AS_EBAD_REQUEST);
}

/* RFC 9110 §5.6.2: token = 1*tchar. */
static int is_token(const char *s)
{
    if (*s == '\0') return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int alnum =
            (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
        if (!alnum && strchr("!#$%&'*+-.^_`|~", *p) == NULL) return 0;
    }
    return 1;
}

/* RFC 9110 §5.5: a field value is visible bytes, obs-text, SP and HTAB. A CR or LF would end
 * the field and let the value write fields (or a body) of its own. */
static int is_field_value(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return 0;
    return 1;
}

/* "Name: " after checking the name. */
static int field_name(as_buf *b, const char *name)
{
    if (!is_token(name)) return as__buf_fail(b, AS_EBAD_REQUEST);
    as__buf_str(b, name);
    return as__buf_put(b, ": ", 2);
}

int as__head_field(as_buf *b, const char *name, const char *value)
{
    if (field_name(b, name)) return b->err;
    if (!is_field_value(value)) return as__buf_fail(b, AS_EBAD_REQUEST);
    as__buf_str(b, value);
    return as__buf_put(b, "\r\n", 2);
}

int as__head_field_u64(as_buf *b, const char *name, uint64_t value)
{
    if (field_name(b, name)) return b->err;
    as__buf_u64(b, value);
    return as__buf_put(b, "\r\n", 2);
}

int as__head_end(as_buf *b)
{
    return as__buf_put(b, "\r\n", 2);
}
