/* router.h -- the HTTP API's routes (docs/api.md#endpoints).
 *
 * One job: a request's method and target ("/v1/cases/C1/actions?x=1") to the route that
 * serves it and the route's path parameters, or to why none does -- no such endpoint (404),
 * a path segment that is not an identifier (404), a method not allowed (405). It reads no
 * headers, checks no key and calls no handler: the server does those, in the order of
 * docs/api.md (the /v1/ answers below are given only to a caller with a valid key). It
 * allocates nothing and keeps no state. */
#ifndef AS_ROUTER_H
#define AS_ROUTER_H

/* The routes: name, method (NULL: any method), path. A `{name}` segment is a path parameter:
 * any identifier (docs/design.md#limits), handed over in order. The first route whose path
 * and method match serves the request. */
#define AS_ROUTE_MAP(XX)                                                                           \
    XX(HEALTHZ, NULL, "/healthz")                                                                  \
    XX(METRICS, NULL, "/metrics")                                                                  \
    XX(CASE_GET, "GET", "/v1/cases/{case}")                                                        \
    XX(CASE_LIST, "GET", "/v1/cases")                                                              \
    XX(SHOP_METRICS, "GET", "/v1/shops/{shop}/metrics")                                            \
    XX(RULES_LIST, "GET", "/v1/rules")                                                             \
    XX(SHOP_RULES, "GET", "/v1/shops/{shop}/rules")                                                \
    XX(SHOP_RULE, "GET", "/v1/shops/{shop}/rules/{version}")                                       \
    XX(SHOP_RULES_PUT, "PUT", "/v1/shops/{shop}/rules")                                            \
    XX(SHOP_RULES_BACKTEST, "POST", "/v1/shops/{shop}/rules/backtest")                             \
    XX(ORDER_CREATE, "POST", "/v1/orders")                                                         \
    XX(ORDER_SHIP, "POST", "/v1/orders/{order}/ship")                                              \
    XX(ORDER_DELIVER, "POST", "/v1/orders/{order}/deliver")                                        \
    XX(ORDER_CONFIRM, "POST", "/v1/orders/{order}/confirm")                                        \
    XX(CASE_OPEN, "POST", "/v1/cases")                                                             \
    XX(CASE_ACT, "POST", "/v1/cases/{case}/actions")                                               \
    XX(CLOCK_GET, "GET", "/v1/clock")                                                              \
    XX(CLOCK_ADVANCE, "POST", "/v1/clock/advance")

typedef enum as_route {
#define AS__ROUTE_ENUM(name, method, path) AS_ROUTE_##name,
    AS_ROUTE_MAP(AS__ROUTE_ENUM)
#undef AS__ROUTE_ENUM
    AS__ROUTE_COUNT
} as_route;

/* What as__router_match found. */
typedef enum as_route_status {
    AS_ROUTE_FOUND = 0,  /* `route` and `params` are set */
    AS_ROUTE_NO_ROUTE,   /* 404: no route has this path (or this GET or POST on it) */
    AS_ROUTE_BAD_ID,     /* 404: a /v1/ path with a segment that is not an identifier */
    AS_ROUTE_BAD_METHOD, /* 405: a /v1/ path, a method other than GET and POST, no route */
} as_route_status;

enum {
    AS_ROUTE_MAX_PARAMS = 2, /* the most `{}` segments of a route */
    AS_ROUTE_PARAM_MAX = 64, /* bytes: the longest identifier (docs/design.md#limits) */
};

typedef struct as_route_match {
    as_route route;
    /* The request lies under /v1/ (2 to 5 segments, the first "v1"): the server asks for a
     * valid key before it says anything more about it, even that there is no such route. */
    int keyed;
    int nparams;
    char params[AS_ROUTE_MAX_PARAMS][AS_ROUTE_PARAM_MAX + 1]; /* NUL-terminated */
    /* What follows the first '?' ("" when none), not decoded; points into `target`. */
    const char *query;
} as_route_match;

/* Matches `method` ("GET", as http_method_str spells it) and `target`, the request-target of
 * the request line (NUL-terminated), and fills `m`. Paths are compared byte for byte, not
 * percent-decoded: an escape, an empty segment ("//", a trailing '/') or a segment longer
 * than an identifier makes a /v1/ path AS_ROUTE_BAD_ID, and any other path no route. A
 * target that is not a path ("*", an absolute URL) has no route.
 *
 * docs/api.md's rule for what no route serves: on a /v1/ path a GET or a POST is an unknown
 * endpoint (404) and any other method is not allowed (405), whether or not another method
 * has a route on the path; any path outside /v1/ is 404. Returns the status; `m->route` and
 * `m->params` mean something only when it is AS_ROUTE_FOUND, `m->keyed` and `m->query`
 * always. `m->query` stays valid as long as `target`. */
as_route_status as__router_match(const char *method, const char *target, as_route_match *m);

#endif
