/* clock.c -- moving a virtual clock from outside (docs/design.md#time-and-deadlines):
 * as_runtime_clock_advance, a move run as a command -- answered once what it fired is
 * durable, telling each deadline it fired -- and as_runtime_clock_request, the same from a
 * JSON body, which the HTTP server's POST /v1/clock/advance hands over as it came.
 *
 * Both end in run_move under as__durable_run, the path every command takes: the move's
 * changes are the turn's batch like any command's, and its answer waits for that batch. */
#include <string.h>

#include "codec.h"

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/limits.h"
#include "../core/timefmt.h"

/* The longest move one request may ask for (docs/api.md): a year covers every deadline a
 * pack may give (AS_DURATION_MAX), and keeps one request's work bounded by the cases there
 * are, not by a typo's extra zeros. */
#define MAX_MOVE (365 * AS_DAY)

typedef struct move {
    int64_t to_ms;
    as_fired_cb fired;
    void *ud;
    int64_t *now; /* not NULL: the clock once moved, for the answer */
} move;

static int run_move(as_runtime *rt, void *arg, as_error *err)
{
    const move *m = arg;
    if (!as__clock_is_virtual(&rt->clock))
        return as__err(err, AS_ECONFLICT,
                       "the clock is real and moves by itself; only a virtual clock is moved");
    int64_t now = as__clock_now(&rt->clock);
    if (m->to_ms < now)
        return as__err(err, AS_EBAD_REQUEST, "time never goes back: %lld is before now (%lld)",
                       (long long)m->to_ms, (long long)now);
    if (m->to_ms > AS_MAX_TIME)
        return as__err(err, AS_EBAD_REQUEST, "the clock ends with year 9999 (%lld ms)",
                       (long long)AS_MAX_TIME);
    as__advance(rt, m->to_ms, m->fired, m->ud);
    if (m->now) *m->now = as__clock_now(&rt->clock);
    return 0;
}

int as_runtime_clock_advance(as_runtime *rt, int64_t to_ms, as_fired_cb fired, as_done_cb done,
                             void *ud)
{
    move m = {to_ms, fired, ud, NULL};
    return as__durable_run(rt, NULL, run_move, &m, done, ud);
}

/* ==========================================================================================
 * The request: {"by": DURATION} or {"to": INSTANT}
 * ======================================================================================== */

/* What a request has heard so far, until it is answered. */
typedef struct told {
    as_read_cb cb;
    void *ud;
    json_t *fired; /* owned: {case, deadline, at, action, to} per deadline, in firing order */
    int64_t now;   /* the clock once moved */
    int oom;       /* an entry could not be kept: the list is not whole */
} told;

static void on_fired(void *ud, const char *case_id, const char *deadline, int64_t at_ms,
                     const char *action, const char *state)
{
    told *t = ud;
    if (t->oom) return;
    json_t *e = json_pack("{s:s, s:s, s:I, s:s, s:s}", "case", case_id, "deadline", deadline, "at",
                          (json_int_t)at_ms, "action", action, "to", state);
    if (e == NULL || json_array_append_new(t->fired, e) != 0) t->oom = 1;
}

/* The move is durable (code 0) or was refused: the answer, then `t` is done with. */
static void on_done(void *ud, int code, const char *msg)
{
    told *t = ud;
    char *text = NULL;
    json_free_t text_free;
    json_get_alloc_funcs(NULL, &text_free);
    if (code == 0 && !t->oom) {
        json_t *j = json_pack("{s:I, s:O}", "now", (json_int_t)t->now, "fired", t->fired);
        /* jansson 2.14's dump goes on past a refused allocation and hands back damaged text
         * (a key or a quote left out); inside alloc.h's bracket a refused block comes from
         * the C library instead, so the text is whole. It is freed by jansson's own free,
         * which knows such blocks. */
        as__json_parse_begin();
        text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        (void)as__json_parse_end();
        json_decref(j);
    }
    if (code == 0 && text == NULL) {
        /* The move is applied and durable and cannot be taken back: say so, rather than let
         * a nomem read as "nothing changed" (which every other nomem means). */
        as_error e = {0};
        as__err(&e, AS_ENOMEM,
                "the clock moved to %lld, but the answer could not be written "
                "(out of memory): read the clock and the cases back",
                (long long)t->now);
        t->cb(t->ud, AS_ENOMEM, e.msg);
    } else {
        t->cb(t->ud, code, code ? msg : text);
    }
    if (text) text_free(text);
    json_decref(t->fired);
    as__free(t);
}

/* The instant the body asks for into *to: 0, or AS_EBAD_REQUEST / AS_ENOMEM in err. */
static int parse_target(as_runtime *rt, const char *body, size_t len, int64_t *to, as_error *err)
{
    json_t *doc;
    int rc = as__json_parse(body, len, 0, &doc, err);
    if (rc) return rc;
    if (!json_is_object(doc)) rc = as__err(err, AS_EBAD_REQUEST, "malformed JSON: not an object");
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        if (rc) break;
        if (strcmp(k, "by") != 0 && strcmp(k, "to") != 0)
            rc = as__err(err, AS_EBAD_REQUEST, "unknown key '%.64s' in the clock body", k);
    }
    json_t *by = json_object_get(doc, "by"), *at = json_object_get(doc, "to");
    if (rc == 0 && (by == NULL) == (at == NULL))
        rc = as__err(err, AS_EBAD_REQUEST,
                     "give either 'by' (a duration such as 48h) or 'to' (an instant)");
    int64_t now = as__clock_now(&rt->clock), ms = 0;
    if (rc == 0 && by) {
        /* a string with a NUL inside is not the duration its first part spells */
        if (!json_is_string(by) || strlen(json_string_value(by)) != json_string_length(by) ||
            as__duration_parse(json_string_value(by), &ms) != 0)
            rc = as__err(err, AS_EBAD_REQUEST, "'by' must be a duration such as 48h, 90m or 7d12h");
        else if (ms <= 0 || ms > MAX_MOVE)
            rc = as__err(err, AS_EBAD_REQUEST, "'by' must be above 0 and at most 365d");
        else if (__builtin_add_overflow(now, ms, to))
            rc = as__err(err, AS_EBAD_REQUEST, "the clock ends with year 9999");
    }
    if (rc == 0 && at) {
        if (json_is_integer(at))
            ms = json_integer_value(at);
        else if (!json_is_string(at) || strlen(json_string_value(at)) != json_string_length(at) ||
                 as__instant_parse(json_string_value(at), &ms) != 0)
            rc = as__err(err, AS_EBAD_REQUEST,
                         "'to' must be an instant: ms UTC, or RFC 3339 "
                         "such as 2026-03-01T00:00:00Z");
        /* ms >= now first, so that the unsigned difference is the distance */
        if (rc == 0 && (ms < now || (uint64_t)ms - (uint64_t)now > (uint64_t)MAX_MOVE))
            rc = as__err(err, AS_EBAD_REQUEST, "'to' must be from now (%lld) to 365d later",
                         (long long)now);
        *to = ms;
    }
    json_decref(doc);
    return rc;
}

int as_runtime_clock_request(as_runtime *rt, const char *principal, const char *body, size_t len,
                             as_read_cb cb, void *ud)
{
    as_error err = {0};
    as_principal who;
    int64_t to = 0;
    int rc = 0;
    /* docs/design.md#check-order: who may send it, before anything about the body */
    if (as__principal_parse(principal, &who) != 0 || who.role != AS_ROLE_PLATFORM)
        rc = as__err(&err, AS_EFORBIDDEN, "only the platform moves the clock");
    if (rc == 0) rc = parse_target(rt, body, len, &to, &err);
    told *t = rc ? NULL : as__malloc(sizeof *t); /* owned here, then by on_done */
    json_t *fired = t ? json_array() : NULL;
    if (rc == 0 && fired == NULL) rc = as__err(&err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__free(t);
        cb(ud, rc, err.msg);
        return rc;
    }
    *t = (told){cb, ud, fired, 0, 0};
    move m = {to, on_fired, t, &t->now};
    return as__durable_run(rt, NULL, run_move, &m, on_done, t);
}
