/* explain.c -- a case history as lines a person reads (docs/design.md#provenance): what
 * `aftersale run --explain` and `test -v` print after each step, and what a failed
 * expectation prints under itself. Built from the case JSON alone, as any client would. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

/* "+2d3h", "+90s", "+0s": an offset from the scenario's start in its own units. */
static void put_offset(FILE *f, int64_t ms)
{
    static const struct {
        char unit;
        int64_t ms;
    } units[] = {{'d', 86400000}, {'h', 3600000}, {'m', 60000}, {'s', 1000}};
    int64_t left = ms < 0 ? 0 : ms / 1000 * 1000;
    fputc('+', f);
    if (left == 0) fputs("0s", f);
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (left >= units[i].ms) {
            fprintf(f, "%" PRId64 "%c", left / units[i].ms, units[i].unit);
            left %= units[i].ms;
        }
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* " [layer pack hook]" of a rule's part, or nothing when no rule had one. */
static void put_rule(FILE *f, json_t *o)
{
    if (!json_object_get(o, "hook") && !json_object_get(o, "layer")) return;
    fprintf(f, " [%s%s%s%s%s]", str(o, "layer"), json_object_get(o, "pack") ? " " : "",
            str(o, "pack"), json_object_get(o, "hook") ? " " : "", str(o, "hook"));
}

void as__explain_entry(FILE *f, const char *case_id, int64_t start_ms, json_t *e)
{
    fprintf(f, "  %s ", case_id);
    put_offset(f, json_integer_value(json_object_get(e, "at")) - start_ms);
    json_t *d = json_object_get(e, "dropped");
    if (d) {
        fputs(json_is_true(json_object_get(d, "failed")) ? " failed, answer dropped" : " answer dropped", f);
        put_rule(f, d);
        fprintf(f, ": %s", str(e, "note"));
        if (json_object_get(d, "where")) fprintf(f, " (at %s)", str(d, "where"));
        fputc('\n', f);
        return;
    }
    const char *from = str(e, "from");
    fprintf(f, " %s %s %s -> %s, decided by %s", str(e, "actor"), str(e, "action"),
            *from ? from : "(new)", str(e, "to"), str(e, "decided_by"));
    put_rule(f, e);
    if (json_object_get(e, "why")) fprintf(f, ", why: \"%s\"", str(e, "why"));
    if (json_object_get(e, "note")) fprintf(f, ", note: \"%s\"", str(e, "note"));
    json_t *r = json_object_get(e, "refund");
    if (r) {
        fprintf(f, ", refund %" JSON_INTEGER_FORMAT " fen (%s",
                json_integer_value(json_object_get(r, "amount")), str(r, "source"));
        put_rule(f, r);
        fprintf(f,
                "; paid %" JSON_INTEGER_FORMAT ", shipping fee %" JSON_INTEGER_FORMAT
                ", buyer's return shipping %" JSON_INTEGER_FORMAT ")",
                json_integer_value(json_object_get(r, "paid")),
                json_integer_value(json_object_get(r, "shipping_fee")),
                json_integer_value(json_object_get(r, "return_shipping")));
    }
    fputc('\n', f);
}

size_t as__explain_history(FILE *f, const char *case_id, int64_t start_ms, json_t *history,
                           size_t from)
{
    size_t n = json_array_size(history);
    for (size_t i = from; i < n; i++) as__explain_entry(f, case_id, start_ms, json_array_get(history, i));
    return n;
}
