/* orders.c -- orders: parsing one from JSON within the limits, creating it (order_check
 * hooks, interning), and its logistics events (ship, deliver, confirm). */
#include <string.h>

#include "alloc.h"
#include "engine.h"
#include "err.h"
#include "journal.h"
#include "layers.h"
#include "limits.h"
#include "timefmt.h"

static int order_field_err(as_error *err, const char *key, const char *what)
{
    return as__err(err, AS_EBAD_REQUEST, "order: '%s' %s", key, what);
}

static int get_time(json_t *v, const char *k, int64_t *out, as_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > AS_MAX_TIME)
        return order_field_err(err, k, AS_LIMIT_TIME_WHAT);
    *out = json_integer_value(v);
    return 0;
}

static int get_amount(json_t *v, const char *k, int64_t *out, as_error *err)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > AS_MAX_MONEY)
        return order_field_err(err, k, "must be an amount in fen from 0 to 10000000000");
    *out = json_integer_value(v);
    return 0;
}

/* Borrows an identifier (or, `text`, a free text) from the document; interned later, once
 * the whole order has passed, so that a refused order leaves nothing behind. */
static int get_name(json_t *v, const char *k, int text, const char **out, as_error *err)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (s == NULL || (text ? as__limit_text(s, n) : as__limit_id(s, n)))
        return order_field_err(err, k, text ? AS_LIMIT_TEXT_WHAT : AS_LIMIT_ID_WHAT);
    *out = s;
    return 0;
}

static int parse_item(json_t *j, as_item *it, as_error *err)
{
    const char *k;
    json_t *v;
    if (!json_is_object(j)) return order_field_err(err, "items", "must hold objects");
    it->serial = NULL;
    it->qty = -1;
    it->price = -1;
    json_object_foreach(j, k, v)
    {
        int rc = 0;
        if (strcmp(k, "sku") == 0) {
            rc = get_name(v, "items[].sku", 0, &it->sku, err);
        } else if (strcmp(k, "category") == 0) {
            rc = get_name(v, "items[].category", 0, &it->category, err);
        } else if (strcmp(k, "serial") == 0) {
            rc = get_name(v, "items[].serial", 1, &it->serial, err);
        } else if (strcmp(k, "qty") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                json_integer_value(v) > AS_MAX_QTY)
                return order_field_err(err, "items[].qty",
                                       "must be a whole number from 1 to 10000");
            it->qty = (int32_t)json_integer_value(v);
        } else if (strcmp(k, "price") == 0) {
            rc = get_amount(v, "items[].price", &it->price, err);
        } else if (strcmp(k, "live") == 0 || strcmp(k, "custom_made") == 0 ||
                   strcmp(k, "no_reason_excluded") == 0) {
            if (!json_is_boolean(v)) return order_field_err(err, k, "must be true or false");
            bool b = json_is_true(v);
            if (k[0] == 'l')
                it->live = b;
            else if (k[0] == 'c')
                it->custom_made = b;
            else
                it->no_reason_excluded = b;
        } else {
            return as__err(err, AS_EBAD_REQUEST, "order: unknown key '%.64s' in an item", k);
        }
        if (rc) return rc;
    }
    if (it->sku == NULL || it->category == NULL || it->qty < 0 || it->price < 0)
        return as__err(err, AS_EBAD_REQUEST, "order: an item needs sku, category, qty and price");
    return 0;
}

/* bad_request naming the categories the loaded packs serve (docs/design.md, Limits). */
static int unknown_category(as_runtime *rt, const char *cat, as_error *err)
{
    char known[200] = "";
    size_t n = 0;
    for (int i = 0; i < rt->ncats && n + 1 < sizeof known; i++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "",
                              rt->cats[i].category);
    return as__err(err, AS_EBAD_REQUEST, "order: unknown category '%s' (known: %s)", cat,
                   rt->ncats ? known : "none loaded");
}

/* Interns the order's names, borrowed from its document until now. */
static int intern_order(as_runtime *rt, as_order *o)
{
    const char **names[] = {&o->shop, &o->buyer};
    for (size_t i = 0; i < 2; i++)
        if ((*names[i] = as__intern(rt, *names[i])) == NULL) return AS_ENOMEM;
    for (int i = 0; i < o->nitems; i++) {
        as_item *it = &o->items[i];
        if ((it->sku = as__intern(rt, it->sku)) == NULL ||
            (it->category = as__intern(rt, it->category)) == NULL ||
            (it->serial && (it->serial = as__intern(rt, it->serial)) == NULL))
            return AS_ENOMEM;
    }
    return 0;
}

static int parse_order(as_runtime *rt, json_t *j, as_order **out, as_error *err)
{
    if (!json_is_object(j)) return as__err(err, AS_EBAD_REQUEST, "the order must be an object");
    json_t *id = json_object_get(j, "id"), *items = json_object_get(j, "items");
    const char *idstr;
    int rc = get_name(id, "id", 0, &idstr, err);
    if (rc) return rc;
    if (!json_is_array(items) || json_array_size(items) == 0 ||
        json_array_size(items) > AS_MAX_ORDER_LINES)
        return order_field_err(err, "items", "must be a list of 1 to 100 lines");
    size_t nitems = json_array_size(items), idlen = json_string_length(id);
    as_order *o = as__calloc(1, sizeof *o + nitems * sizeof(as_item) + idlen + 1);
    if (o == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    char *idcopy = (char *)(o->items + nitems);
    memcpy(idcopy, idstr, idlen + 1);
    o->id = idcopy;
    o->nitems = (uint16_t)nitems;
    o->paid_at = o->shipped_at = o->delivered_at = o->confirmed_at = AS_UNSET;
    o->buyer_credit = -1;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (rc) break;
        if (strcmp(k, "id") == 0 || strcmp(k, "items") == 0) continue;
        if (strcmp(k, "shop") == 0 || strcmp(k, "buyer") == 0) {
            rc = get_name(v, k, 0, k[0] == 's' ? &o->shop : &o->buyer, err);
        } else if (strcmp(k, "shipping_fee") == 0) {
            rc = get_amount(v, k, &o->shipping_fee, err);
        } else if (strcmp(k, "paid_at") == 0) {
            rc = get_time(v, k, &o->paid_at, err);
        } else if (strcmp(k, "shipped_at") == 0) {
            rc = get_time(v, k, &o->shipped_at, err);
        } else if (strcmp(k, "delivered_at") == 0) {
            rc = get_time(v, k, &o->delivered_at, err);
        } else if (strcmp(k, "confirmed_at") == 0) {
            rc = get_time(v, k, &o->confirmed_at, err);
        } else if (strcmp(k, "freight_insurance") == 0) {
            if (!json_is_boolean(v)) rc = order_field_err(err, k, "must be true or false");
            o->freight_insurance = json_is_true(v);
        } else if (strcmp(k, "buyer_credit") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000)
                rc = order_field_err(err, k, "must be a whole number from 0 to 1000");
            else
                o->buyer_credit = (int16_t)json_integer_value(v);
        } else {
            rc = as__err(err, AS_EBAD_REQUEST, "order: unknown key '%.64s'", k);
        }
    }
    /* each line at most 10^10 x 10^4 and at most 100 lines: the sum cannot overflow */
    int64_t total = o->shipping_fee;
    for (size_t i = 0; rc == 0 && i < nitems; i++) {
        rc = parse_item(json_array_get(items, i), &o->items[i], err);
        for (size_t p = 0; rc == 0 && p < i; p++)
            if (strcmp(o->items[p].sku, o->items[i].sku) == 0)
                rc = as__err(err, AS_EBAD_REQUEST, "order: SKU '%s' is listed twice",
                             o->items[i].sku);
        if (rc == 0 && as__category_pack(rt, o->items[i].category) == NULL)
            rc = unknown_category(rt, o->items[i].category, err);
        if (rc == 0) total += o->items[i].price * o->items[i].qty;
    }
    if (rc == 0 && total > AS_MAX_MONEY)
        rc = order_field_err(err, "items",
                             "add up (with the shipping fee) to more than "
                             "10000000000 fen");
    if (rc == 0 && (o->shop == NULL || o->buyer == NULL))
        rc = as__err(err, AS_EBAD_REQUEST, "order: 'shop' and 'buyer' are required");
    if (rc) {
        as__free(o);
        return rc;
    }
    *out = o;
    return 0;
}

int as__order_create(as_runtime *rt, json_t *j, as_error *err)
{
    as_order *o = NULL;
    int rc = parse_order(rt, j, &o, err);
    if (rc) return rc;
    if (as__order_get(rt, o->id)) {
        rc = as__err(err, AS_EBAD_REQUEST, "order '%s' already exists", o->id);
        as__free(o);
        return rc;
    }
    int64_t now = as__clock_now(&rt->clock);
    if (o->paid_at == AS_UNSET) o->paid_at = now;
    /* order_check, once per category on the order */
    as_hook_args args = {.order = o, .now_ms = now};
    for (int i = 0; i < o->nitems && rc == 0; i++) {
        int first = 1;
        for (int p = 0; p < i; p++)
            first &= strcmp(o->items[p].category, o->items[i].category) != 0;
        if (!first) continue;
        if ((rc = as__layers_order_check(rt->platform, &args, err)) != 0) break;
        rc = as__layers_order_check(as__category_pack(rt, o->items[i].category), &args, err);
    }
    /* the names are interned only for an order that is accepted; the map takes it last, once
     * its event and its journal record have room, so that it is either all in or not at all */
    if (rc == 0 &&
        (intern_order(rt, o) != 0 || (o->shop_ref = as__shop_get(rt, o->shop, 1)) == NULL ||
         as__events_reserve(&o->shop_ref->events, 1) != 0 ||
         (rt->dur && as__durable_reserve(rt, as__journal_order_size(o)) != 0) ||
         as__strmap_put(&rt->orders, o) != 0))
        rc = as__err(err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__free(o);
        return rc;
    }
    as__shop_event(rt, o->shop_ref, AS_EV_ORDER, o->paid_at, o, 0); /* room above */
    as__touch_order(rt, o);
    rt->stats.commands++;
    return 0;
}

int as__order_event(as_runtime *rt, const char *order_id, const char *event_name, as_error *err)
{
    as__fire_due(rt);
    as_order *o = order_id ? as__order_get(rt, order_id) : NULL;
    if (o == NULL) return as__err(err, AS_ENOT_FOUND, "unknown order '%s'", order_id);
    int64_t now = as__clock_now(&rt->clock);
    int64_t *slot, *need = NULL;
    if (strcmp(event_name, "ship") == 0) {
        slot = &o->shipped_at;
    } else if (strcmp(event_name, "deliver") == 0) {
        slot = &o->delivered_at;
        need = &o->shipped_at;
    } else if (strcmp(event_name, "confirm") == 0) {
        slot = &o->confirmed_at;
        need = &o->delivered_at;
    } else {
        return as__err(err, AS_EBAD_REQUEST, "unknown order event '%s'", event_name);
    }
    if (*slot != AS_UNSET)
        return as__err(err, AS_EINVALID_STATE, "order '%s' already had '%s'", order_id, event_name);
    if (need && *need == AS_UNSET && need != &o->shipped_at)
        return as__err(err, AS_EINVALID_STATE, "order '%s' is not delivered yet", order_id);
    if (rt->dur && as__durable_reserve(rt, as__journal_order_size(o)) != 0)
        return as__err(err, AS_ENOMEM, "out of memory");
    if (need && *need == AS_UNSET) o->shipped_at = now; /* delivery implies shipment */
    *slot = now;
    as__touch_order(rt, o);
    rt->stats.commands++;
    return 0;
}
