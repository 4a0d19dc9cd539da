/* electronics.c -- the native twin of electronics.lua (docs/rulebook.md#electronics, docs/design.md#hooks-and-layers).
 *
 * Same name, version, categories and hooks as the Lua pack, with the same decisions, codes,
 * messages and order of checks, so the two are interchangeable: order_check (an IMEI must pass
 * its Luhn check digit), eligibility (三包 remedies by day, warranty extension by completed
 * repairs, the two-repairs exchange), inspection and on_inspection. Every line below mirrors
 * one of electronics.lua; a change to either file belongs in both.
 *
 * The plugin reads views only through the host API table it is given at init, which it keeps
 * as its hook state. Hooks allocate nothing and answer with string literals. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aftersale/plugin.h"

#define EXPORT __attribute__((visibility("default")))

typedef const struct as_host_api host_api;

/* The refusals, word for word those of electronics.lua. */
static const struct as_refusal BAD_IMEI = {
    "bad_request", "An item's 15-digit serial (IMEI) fails its Luhn check digit."};
static const struct as_refusal EXCLUDED = {
    "not_eligible", "This item was bought as excluded from no-reason returns."};
static const struct as_refusal NOT_ALLOWED_7 = {
    "remedy_not_allowed", "Within 7 days of delivery a quality claim may ask for a return with "
                          "refund, an exchange or a repair."};
static const struct as_refusal NOT_ALLOWED_15 = {
    "remedy_not_allowed",
    "From day 8 to day 15 after delivery a quality claim may ask for an exchange or a repair."};
static const struct as_refusal NOT_ALLOWED_WARRANTY = {
    "remedy_not_allowed", "From day 16 after delivery until the warranty ends a quality claim "
                          "may ask for a repair only."};
static const struct as_refusal EXPIRED = {"warranty_expired",
                                          "The warranty of this unit has expired."};

/* Lua's `a == b` on two optional strings: two nils are equal, a nil equals no string. */
static int eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) return a == b;
    return strcmp(a, b) == 0;
}

static int refuse(struct as_refusal *out, const struct as_refusal *r)
{
    *out = *r;
    return AS_PLUGIN_ANSWER;
}

/* ------------------------------------------------------------------------------------------
 * Lifecycle
 * ---------------------------------------------------------------------------------------- */

/* Keeps the host table as the hook state. Refuses a host that lacks the services used here. */
static int init(const struct as_host_api *host, void **state)
{
    if (host == NULL || host->abi_version != AS_PLUGIN_ABI ||
        host->struct_size < offsetof(struct as_host_api, local_day) + sizeof host->local_day ||
        host->str == NULL || host->num == NULL || host->count == NULL || host->at == NULL ||
        host->local_day == NULL)
        return -1;
    *state = (void *)host;
    return 0;
}

/* ------------------------------------------------------------------------------------------
 * order_check: every 15-digit serial (an IMEI) must pass its Luhn check digit
 * ---------------------------------------------------------------------------------------- */

/* Luhn check of a string of `n` digits. */
static int luhn_ok(const char *s, size_t n)
{
    int sum = 0, dbl = 0;
    for (size_t i = n; i-- > 0;) {
        int d = s[i] - '0';
        if (dbl) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        sum += d;
        dbl = !dbl;
    }
    return sum % 10 == 0;
}

/* Lua's `#s == 15 and not string.find(s, "%D")`: exactly 15 bytes, all ASCII digits. */
static int is_imei(const char *s)
{
    size_t i = 0;
    for (; s[i] != '\0'; i++)
        if (i >= 15 || s[i] < '0' || s[i] > '9') return 0;
    return i == 15;
}

static int order_check(void *state, const as_view *order, struct as_refusal *out)
{
    host_api *h = state;
    int n = h->count(order, AS_L_ITEMS);
    for (int i = 0; i < n; i++) {
        as_view line;
        if (h->at(order, AS_L_ITEMS, i, &line) != 0) return AS_PLUGIN_FAIL;
        const char *serial = h->str(&line, AS_F_SERIAL);
        if (serial != NULL && is_imei(serial) && !luhn_ok(serial, 15))
            return refuse(out, &BAD_IMEI);
    }
    return AS_PLUGIN_NIL;
}

/* ------------------------------------------------------------------------------------------
 * eligibility
 * ---------------------------------------------------------------------------------------- */

/* True when one of the earlier case's items has the SKU of one of the request's items: the
 * same unit (docs/rulebook.md#electronics), as electronics.lua compares it. -1 when a list cannot be read. */
static int same_unit(host_api *h, const as_view *earlier, const as_view *request)
{
    int nc = h->count(earlier, AS_L_ITEMS), nr = h->count(request, AS_L_ITEMS);
    for (int j = 0; j < nc; j++) {
        as_view ci;
        if (h->at(earlier, AS_L_ITEMS, j, &ci) != 0) return -1;
        const char *sku = h->str(&ci, AS_F_SKU);
        for (int k = 0; k < nr; k++) {
            as_view ri;
            if (h->at(request, AS_L_ITEMS, k, &ri) != 0) return -1;
            if (eq(h->str(&ri, AS_F_SKU), sku)) return 1;
        }
    }
    return 0;
}

static int eligibility(void *state, const as_view *order, const as_view *request, int64_t now,
                       struct as_refusal *out)
{
    host_api *h = state;
    const char *reason = h->str(request, AS_F_REASON);

    if (eq(reason, "no_reason")) {
        int n = h->count(request, AS_L_ITEMS); /* each carries its order line's flags */
        for (int i = 0; i < n; i++) {
            as_view it;
            int64_t excluded;
            if (h->at(request, AS_L_ITEMS, i, &it) != 0) return AS_PLUGIN_FAIL;
            if (h->num(&it, AS_F_NO_REASON_EXCLUDED, &excluded) && excluded)
                return refuse(out, &EXCLUDED);
        }
        return AS_PLUGIN_NIL; /* the platform's rules decide */
    }

    if (!eq(reason, "quality")) return AS_PLUGIN_NIL;
    int64_t delivered_at;
    if (!h->num(order, AS_F_DELIVERED_AT, &delivered_at)) return AS_PLUGIN_NIL;

    const char *t = h->str(request, AS_F_TYPE);
    int64_t day = h->local_day(now) - h->local_day(delivered_at);

    if (day <= 7) {
        if (eq(t, "return_refund") || eq(t, "exchange") || eq(t, "repair")) {
            out->code = out->message = NULL;
            return AS_PLUGIN_ANSWER;
        }
        return refuse(out, &NOT_ALLOWED_7);
    }
    if (day <= 15) {
        if (eq(t, "exchange") || eq(t, "repair")) {
            out->code = out->message = NULL;
            return AS_PLUGIN_ANSWER;
        }
        return refuse(out, &NOT_ALLOWED_15);
    }

    /* Day 16 on: the warranty is extended by completed repairs of the same unit, and two
     * completed repairs allow an exchange whatever the day. */
    int64_t repairs = 0, extension = 0;
    int ncases = h->count(order, AS_L_CASES);
    for (int i = 0; i < ncases; i++) {
        as_view c;
        if (h->at(order, AS_L_CASES, i, &c) != 0) return AS_PLUGIN_FAIL;
        if (eq(h->str(&c, AS_F_TYPE), "repair") && eq(h->str(&c, AS_F_STATE), "completed")) {
            int same = same_unit(h, &c, request);
            if (same < 0) return AS_PLUGIN_FAIL;
            if (same) {
                int64_t days;
                repairs++;
                if (h->num(&c, AS_F_REPAIR_DAYS, &days)) extension += days;
            }
        }
    }

    if (eq(t, "exchange") && repairs >= 2) {
        out->code = out->message = NULL;
        return AS_PLUGIN_ANSWER;
    }
    if (day > 365 + extension) return refuse(out, &EXPIRED);
    if (eq(t, "repair")) {
        out->code = out->message = NULL;
        return AS_PLUGIN_ANSWER;
    }
    return refuse(out, &NOT_ALLOWED_WARRANTY);
}

/* ------------------------------------------------------------------------------------------
 * inspection and on_inspection
 * ---------------------------------------------------------------------------------------- */

static int inspection(void *state, const as_view *c, const as_view *order)
{
    host_api *h = state;
    if (eq(h->str(c, AS_F_REASON), "quality") || eq(h->str(c, AS_F_TYPE), "repair"))
        return AS_PLUGIN_ANSWER;
    return AS_PLUGIN_NIL;
}

/* The remedy a fault leads to, by the case's type (electronics.lua's REMEDY), or NULL. */
static const char *remedy_of(const char *type)
{
    static const char *const map[][2] = {
        {"return_refund", "refund"}, {"exchange", "exchange"},     {"repair", "repair"},
        {"refund_only", "refund"},   {"partial_refund", "refund"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (eq(type, map[i][0])) return map[i][1];
    return NULL;
}

static int on_inspection(void *state, const as_view *c, const as_view *order, int fault,
                         int64_t now, const char **remedy)
{
    host_api *h = state;
    if (fault == 0) {
        *remedy = "reject";
        return AS_PLUGIN_ANSWER;
    }
    if (fault == 1) {
        const char *r = remedy_of(h->str(c, AS_F_TYPE));
        if (r == NULL) return AS_PLUGIN_NIL;
        *remedy = r;
        return AS_PLUGIN_ANSWER;
    }
    return AS_PLUGIN_NIL;
}

/* ------------------------------------------------------------------------------------------
 * Registration
 * ---------------------------------------------------------------------------------------- */

static const char *const categories[] = {"electronics", NULL};

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = "electronics",
    .version = "2",
    .categories = categories,
    .init = init,
    .order_check = order_check,
    .eligibility = eligibility,
    .on_inspection = on_inspection,
    .inspection = inspection,
};

EXPORT const struct as_plugin *aftersale_plugin(void);

const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
