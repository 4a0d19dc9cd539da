/* router.c -- the route table matched against a request's method and path. See router.h. */
#include "router.h"

#include <stddef.h>
#include <string.h>

#include <aftersale/aftersale.h>

static const struct {
    const char *method; /* NULL: any */
    const char *path;
} routes[] = {
#define ROUTE_ROW(name, method, path) {method, path},
    AS_ROUTE_MAP(ROUTE_ROW)
#undef ROUTE_ROW
};

/* The longest route: /v1/shops/{shop}/rules/{version}. A path with more segments is none. */
enum { MAX_SEGS = 5 };

typedef struct seg {
    const char *p;
    size_t n;
} seg;

/* Does `path` (a route's) have exactly the segments `s`? Fills m's params when it does. */
static int path_match(const char *path, const seg *s, int n, as_route_match *m)
{
    int k = 0, np = 0;
    for (const char *p = path + 1;; k++) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (k == n) return 0; /* the route is longer */
        if (p[0] == '{') {
            if (np == AS_ROUTE_MAX_PARAMS) return 0; /* a route with more: test_router says so */
            /* the caller checked that every segment is an identifier, so it fits */
            memcpy(m->params[np], s[k].p, s[k].n);
            m->params[np++][s[k].n] = '\0';
        } else if (len != s[k].n || memcmp(p, s[k].p, len) != 0) {
            return 0;
        }
        if (slash == NULL) break;
        p = slash + 1;
    }
    if (k + 1 != n) return 0; /* the path is longer */
    m->nparams = np;
    return 1;
}

as_route_status as__router_match(const char *method, const char *target, as_route_match *m)
{
    memset(m, 0, sizeof *m);
    const char *q = strchr(target, '?');
    const char *end = q ? q : target + strlen(target);
    m->query = q ? q + 1 : "";
    if (target[0] != '/') return AS_ROUTE_NO_ROUTE; /* "*", an absolute URL, nothing */

    seg s[MAX_SEGS];
    int n = 0, ids = 1;
    for (const char *p = target + 1;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        if (n == MAX_SEGS) return AS_ROUTE_NO_ROUTE; /* longer than any route */
        s[n] = (seg){p, (size_t)(stop - p)};
        ids &= s[n].n <= AS_ROUTE_PARAM_MAX && as_id_valid(s[n].p, s[n].n);
        n++;
        if (slash == NULL) break;
        p = slash + 1;
    }
    m->keyed = n >= 2 && s[0].n == 2 && memcmp(s[0].p, "v1", 2) == 0;
    if (!ids) return m->keyed ? AS_ROUTE_BAD_ID : AS_ROUTE_NO_ROUTE;

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (routes[i].method && strcmp(routes[i].method, method) != 0) continue;
        if (path_match(routes[i].path, s, n, m)) {
            m->route = (as_route)i;
            return AS_ROUTE_FOUND;
        }
    }
    /* docs/api.md: GET and POST probe for endpoints (404); other methods are refused (405) */
    if (m->keyed && strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return AS_ROUTE_BAD_METHOD;
    return AS_ROUTE_NO_ROUTE;
}
