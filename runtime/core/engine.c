/* engine.c -- commands against orders and cases, in the check order of
 * docs/design.md#states-and-actions.
 *
 * Every command stages a copy of the case's values (as_case_vals), runs the rule hooks
 * against the staged copy, and commits only when nothing refused, so a refused command
 * changes nothing. Deadlines due at or before a command's instant fire before it (docs/rulebook.md
 * conventions: at t + D the deadline has already fired). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "journal.h"
#include "layers.h"
#include "limits.h"
#include "runtime.h"
#include "timefmt.h"
#include "workflow.h"

/* ==========================================================================================
 * Small helpers
 * ======================================================================================== */

int64_t as__case_paid(const as_case *c)
{
    int64_t sum = 0;
    for (int i = 0; i < c->nitems; i++)
        sum += c->order->items[c->items[i].line].price * c->items[i].qty;
    return sum;
}

int as__vals_evidence_count(const as_case_vals *v)
{
    int n = 0;
    if (v->evidence)
        while (v->evidence[n]) n++;
    return n;
}

char **as__evidence_copy(const char *const *strs, int n)
{
    if (n == 0) return NULL;
    size_t bytes = (size_t)(n + 1) * sizeof(char *);
    for (int i = 0; i < n; i++) bytes += strlen(strs[i]) + 1;
    char **block = as__malloc(bytes);
    if (block == NULL) return NULL;
    char *p = (char *)(block + n + 1);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(strs[i]) + 1;
        memcpy(p, strs[i], len);
        block[i] = p;
        p += len;
    }
    block[n] = NULL;
    return block;
}

as_case *as__case_get(as_runtime *rt, const char *id)
{
    return id ? as__strmap_get(&rt->cases, id) : NULL;
}

as_order *as__order_get(as_runtime *rt, const char *id)
{
    return id ? as__strmap_get(&rt->orders, id) : NULL;
}

static int item_line(const as_order *o, const char *sku)
{
    for (int i = 0; i < o->nitems; i++)
        if (strcmp(o->items[i].sku, sku) == 0) return i;
    return -1;
}

static int case_covers(const as_case *c, int line)
{
    for (int i = 0; i < c->nitems; i++)
        if (c->items[i].line == line) return c->items[i].qty;
    return 0;
}

static int settles(int state)
{
    return state == AS_STATE_REFUNDING || state == AS_STATE_REFUNDED;
}

/* Units of `line` settled by cases other than `self` (docs/rulebook.md#eligibility stage 1 #4). */
static int64_t settled_units(const as_order *o, int line, const as_case *self)
{
    int64_t n = 0;
    for (const as_case *k = o->cases; k; k = k->next_in_order)
        if (k != self && settles(k->v.state)) n += case_covers(k, line);
    return n;
}

int64_t as__case_fee(const as_case *c)
{
    const as_order *o = c->order;
    if (c->type == AS_TYPE_PARTIAL_REFUND || o->shipped_at != AS_UNSET || o->shipping_fee == 0)
        return 0;
    for (int line = 0; line < o->nitems; line++)
        if (settled_units(o, line, c) + case_covers(c, line) < o->items[line].qty) return 0;
    return o->shipping_fee;
}

static int is_fault_evidence_reason(int r)
{
    return r == AS_REASON_QUALITY || r == AS_REASON_NOT_AS_DESCRIBED ||
           r == AS_REASON_WRONG_ITEM || r == AS_REASON_MISSING_ITEM ||
           r == AS_REASON_DAMAGED_IN_TRANSIT || r == AS_REASON_SPOILED;
}

/* The most a refund may be: paid for the case, plus return shipping once known, plus the
 * shipping fee where it goes back with this case (docs/rulebook.md#amounts). */
static int64_t refund_cap(const as_case *c, const as_case_vals *v)
{
    return as__case_paid(c) + v->return_shipping + as__case_fee(c);
}

/* Records a metrics event, in the room the command reserved before its change (change_room). */
static void event(as_runtime *rt, const as_order *o, as_event_kind k, int64_t val)
{
    (void)as__events_add(&o->shop_ref->events, k, as__clock_now(&rt->clock), o, val);
}

/* The most events one transition records: response, auto_agree or escalate, refund,
 * resolved, and one per layer note. */
#define TRANSITION_EVENTS 4

/* ==========================================================================================
 * Orders
 * ======================================================================================== */

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
                return order_field_err(err, "items[].qty", "must be a whole number from 1 to 10000");
            it->qty = (int32_t)json_integer_value(v);
        } else if (strcmp(k, "price") == 0) {
            rc = get_amount(v, "items[].price", &it->price, err);
        } else if (strcmp(k, "live") == 0 || strcmp(k, "custom_made") == 0 ||
                   strcmp(k, "no_reason_excluded") == 0) {
            if (!json_is_boolean(v)) return order_field_err(err, k, "must be true or false");
            bool b = json_is_true(v);
            if (k[0] == 'l') it->live = b;
            else if (k[0] == 'c') it->custom_made = b;
            else it->no_reason_excluded = b;
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
        rc = order_field_err(err, "items", "add up (with the shipping fee) to more than "
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

static const char *order_key(const void *o)
{
    return ((const as_order *)o)->id;
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
        for (int p = 0; p < i; p++) first &= strcmp(o->items[p].category, o->items[i].category) != 0;
        if (!first) continue;
        if ((rc = as__layers_order_check(rt->platform, &args, err)) != 0) break;
        rc = as__layers_order_check(as__category_pack(rt, o->items[i].category), &args, err);
    }
    /* the names are interned only for an order that is accepted; the map takes it last, once
     * its event and its journal record have room, so that it is either all in or not at all */
    if (rc == 0 && (intern_order(rt, o) != 0 ||
                    (o->shop_ref = as__shop_get(rt, o->shop, 1)) == NULL ||
                    as__events_reserve(&o->shop_ref->events, 1) != 0 ||
                    (rt->dur && as__durable_reserve(rt, as__journal_order_size(o)) != 0) ||
                    as__strmap_put(&rt->orders, o) != 0))
        rc = as__err(err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__free(o);
        return rc;
    }
    (void)as__events_add(&o->shop_ref->events, AS_EV_ORDER, o->paid_at, o, 0); /* room above */
    as__touch_order(rt, o);
    rt->stats.commands++;
    return 0;
}

/* ==========================================================================================
 * Deadlines
 * ======================================================================================== */

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


static int schedule(as_runtime *rt, as_case *c, int64_t due)
{
    return as__sched_add(&rt->sched, &c->deadline, due < 0 ? 0 : due);
}

/* ==========================================================================================
 * Transitions
 * ======================================================================================== */

/* One command's working set: the staged values, the layers, lazily asked conditions. */
typedef struct txn {
    as_runtime *rt;
    as_case *c;
    as_cmd *cmd;
    as_case_vals nv;
    as_layers L;
    as_error *err;
    int64_t now;
    int inspect_asked, inspect_yes;
    int remedy;       /* from on_inspection, -1 until asked */
    char **new_evidence; /* owned until commit */
    int64_t deadline_ms; /* -1: no deadline in the new state */
    int decision;        /* auto_decide on open and revise: 0 none, 1 agree, 2 reject */
    char decide_reason[AS_ANSWER_TEXT_MAX + 1];
} txn;

static int cond_fn(void *ctx, as_wf_cond cond)
{
    txn *t = ctx;
    int yes, rc;
    switch (cond) {
    case AS_WC_INSTANT:
        rc = as__layers_flag(&t->L, AS_HOOK_INSTANT_REFUND, &yes, t->err);
        return rc ? rc : yes;
    case AS_WC_INSPECT:
        if (!t->inspect_asked) {
            rc = as__layers_flag(&t->L, AS_HOOK_INSPECTION, &t->inspect_yes, t->err);
            if (rc) return rc;
            t->inspect_asked = 1;
            if (t->inspect_yes) t->nv.flags |= AS_CF_INSPECT;
            else t->nv.flags &= ~AS_CF_INSPECT;
        }
        return t->inspect_yes;
    case AS_WC_SERIAL_MISMATCH: {
        if (t->cmd == NULL || !(t->cmd->given & AS_P_SERIAL)) return 0;
        for (int i = 0; i < t->c->nitems; i++) {
            const char *sold = t->c->order->items[t->c->items[i].line].serial;
            if (sold && strcmp(sold, t->cmd->serial) != 0) return 1;
        }
        return 0;
    }
    case AS_WC_REMEDY_REFUND:
    case AS_WC_REMEDY_EXCHANGE:
    case AS_WC_REMEDY_REPAIR:
    case AS_WC_REMEDY_REJECT:
        if (t->remedy < 0) {
            int fault = t->cmd ? t->cmd->result == 1 : 1;
            int r = fault ? as__type_remedy(t->c->type) : AS_REMEDY_REJECT;
            if (r == AS_REMEDY_NONE) r = AS_REMEDY_REFUND;
            rc = as__layers_remedy(&t->L, fault, &r, t->err);
            if (rc) return rc;
            t->remedy = r;
        }
        return t->remedy == (int)(cond - AS_WC_REMEDY_REFUND);
    default:
        return 1;
    }
}

/* The deadline of the state the staged values are in, from the layers. */
static int ask_deadline(txn *t)
{
    t->deadline_ms = -1;
    as_deadline_kind k = as__state_deadline(t->nv.state);
    if (k == AS_DL_NONE) return 0;
    int64_t ms = 0;
    int given;
    int rc = as__layers_deadline(&t->L, k, &ms, &given, t->err);
    /* the layers keep durations within 365 days; saturating here as well keeps now + ms
     * from overflowing whatever a future bound allows */
    int64_t due;
    if (rc == 0 && given)
        t->deadline_ms = __builtin_add_overflow(t->now, ms, &due) ? INT64_MAX - t->now : ms;
    return rc;
}

/* Room for `n` more history entries: a command makes it before its change, so that
 * appending its entries (hist_append) cannot fail once the change is under way. */
static int hist_reserve(as_case *c, uint32_t n)
{
    if (c->nhist + n <= c->caphist) return 0;
    /* most open cases have one entry; a case that moves on usually makes five or so */
    uint32_t cap = c->caphist == 0 ? 1 : c->caphist == 1 ? 6 : c->caphist * 2;
    while (cap < c->nhist + n) cap *= 2;
    as_hist *h = as__realloc(c->hist, cap * sizeof *h);
    if (h == NULL) return AS_ENOMEM;
    c->hist = h;
    c->caphist = cap;
    return 0;
}

/* Appends an entry in the room hist_reserve made; `note` is taken over. */
static void hist_append(as_case *c, int64_t at, const as_principal *who, int action, int from,
                        int to, char *note)
{
    /* the party's id as the order holds it (interned): the caller's string is only borrowed,
     * and checks 4 made sure the two are equal */
    const char *id = NULL;
    if (who && who->id) id = who->role == AS_ROLE_BUYER ? c->order->buyer : c->order->shop;
    c->hist[c->nhist++] = (as_hist){at, id, note, (uint8_t)action,
                                    (uint8_t)(who ? who->role : AS_ROLE_SYSTEM), (uint8_t)from,
                                    (uint8_t)to, 0};
}

/* Moves the layers' notes (dropped merchant answers, failures) into the case history, in the
 * room change_room reserved. */
static void take_notes(txn *t, const as_principal *who, int action)
{
    int state = t->c->v.state;
    for (int i = 0; i < t->L.nnotes; i++) {
        hist_append(t->c, t->now, who, action, state, state, t->L.notes[i]);
        t->c->hist[t->c->nhist - 1].flags = AS_HF_DROPPED;
        event(t->rt, t->c->order, AS_EV_RULE_DROPPED, 0);
    }
    t->L.nnotes = 0;
}

static void account_layers(as_runtime *rt, const as_layers *L)
{
    rt->stats.hook_calls += L->calls;
    for (int l = 0; l < AS_LAYER_COUNT; l++) rt->stats.rule_failures[l] += L->failures[l];
    rt->stats.merchant_dropped += L->dropped;
}

/* The how-many-th refund instruction of `c` the last history entry gives: each entry into
 * refunding and each refund_failed in it instructs one (commit() below), counted from the
 * history so that the count survives a restart. */
static unsigned refund_attempt(const as_case *c)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < c->nhist; i++) {
        const as_hist *h = &c->hist[i];
        n += h->to == AS_STATE_REFUNDING &&
             (h->from != AS_STATE_REFUNDING || h->action == AS_ACT_REFUND_FAILED);
    }
    return n;
}

/* The key of a side effect for the platform, `CASE:refund:N` (the caller frees it; NULL on
 * OOM): new for each instruction, so that a refund instructed again after refund_failed is
 * one the receiver has not seen, even if it deduplicates by key. */
static char *outbox_key(const as_case *c, const char *kind, unsigned attempt)
{
    size_t cap = strlen(c->id) + strlen(kind) + 16;
    char *key = as__malloc(cap);
    if (key) snprintf(key, cap, "%s:%s:%u", c->id, kind, attempt);
    return key;
}

/* docs/design.md#states-and-actions: logistics news is recorded in any state and starts nothing;
 * the case's version stays, and a version it carries is not checked. */
static int is_news(int action)
{
    return action == AS_ACT_RETURN_DELIVERED || action == AS_ACT_DELIVERED;
}

/* Reserves, before a change of t->c is made, everything the change will need, so that once it
 * is under way nothing can fail (a failure halfway would leave a refused command's traces,
 * or an acknowledged one without its rows): `entries` history entries plus one per layer
 * note, `note_bytes` for the entries' own notes, their metrics events, the deadline's node,
 * and the journal's room for the case with the staged values and for its order. */
static int change_room(txn *t, uint32_t entries, size_t note_bytes)
{
    as_case *c = t->c;
    uint32_t more = entries + (uint32_t)t->L.nnotes;
    for (int i = 0; i < t->L.nnotes; i++) note_bytes += strlen(t->L.notes[i]);
    if (hist_reserve(c, more) != 0 ||
        as__events_reserve(&c->order->shop_ref->events, TRANSITION_EVENTS + (uint32_t)t->L.nnotes) != 0 ||
        as__sched_reserve(&t->rt->sched, 1) != 0 ||
        (t->rt->dur && /* measured only when something is journaled */
         as__durable_reserve(t->rt, as__journal_case_bound(c, &t->nv, more, note_bytes) +
                                        as__journal_order_size(c->order)) != 0))
        return as__err(t->err, AS_ENOMEM, "out of memory");
    return 0;
}

/* Commits the staged transition: values, deadline, history, metrics, effects. Every step that
 * can fail comes first, while the case is as it was; `note` is taken over either way. */
static int commit(txn *t, const as_principal *who, int action, int to, char *note)
{
    as_runtime *rt = t->rt;
    as_case *c = t->c;
    int from = c->v.state;
    t->nv.state = (uint8_t)to;
    if (to == AS_STATE_REFUNDING && from != AS_STATE_REFUNDING) {
        /* docs/rulebook.md#amounts: the fee is judged again as the refund is instructed, by the
         * host alone: added if it holds now, taken back if it no longer does, never twice */
        int64_t fee = as__case_fee(c);
        if (fee && !(t->nv.flags & AS_CF_FEE_ADDED)) {
            t->nv.refund_amount += fee;
            t->nv.flags |= AS_CF_FEE_ADDED;
        } else if (!fee && (t->nv.flags & AS_CF_FEE_ADDED)) {
            int64_t back = c->order->shipping_fee;
            t->nv.refund_amount = t->nv.refund_amount > back ? t->nv.refund_amount - back : 0;
            t->nv.flags &= (uint16_t)~AS_CF_FEE_ADDED;
        }
    }
    if (as__state_terminal(to) && to != AS_STATE_REFUNDED) t->nv.refund_amount = 0;
    /* a refund instruction (when someone takes it): its entry is the history entry appended
     * below, hence + 1; on a durable runtime it goes into the batch now, the last step that
     * can fail */
    int instruct = to == AS_STATE_REFUNDING && (from != AS_STATE_REFUNDING || action == AS_ACT_REFUND_FAILED) &&
                   (rt->dur || rt->outbox.cb);
    char *key = NULL; /* owned here */
    int rc = change_room(t, 1, note ? strlen(note) : 0);
    if (rc == 0 && instruct && (key = outbox_key(c, "refund", refund_attempt(c) + 1)) == NULL)
        rc = as__err(t->err, AS_ENOMEM, "out of memory");
    if (rc == 0 && instruct && rt->dur &&
        as__durable_outbox(rt, key, "refund", c->id, t->nv.refund_amount) != 0)
        rc = as__err(t->err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__free(note);
        as__free(key);
        return rc;
    }
    hist_append(c, t->now, who, action, from, to, note);
    /* the deadline: a new one on entering a state that has one, none in the others */
    if (t->deadline_ms >= 0) {
        (void)schedule(rt, c, t->now + t->deadline_ms); /* its room is reserved */
    } else if (as__state_deadline(to) == AS_DL_NONE || to != from || action == AS_ACT_REVISE) {
        as__sched_remove(&rt->sched, &c->deadline);
    }
    if (t->new_evidence || (t->cmd && t->cmd->action == AS_ACT_REVISE && (t->cmd->given & AS_P_EVIDENCE))) {
        as__free(c->v.evidence);
        t->new_evidence = NULL;
    }
    t->nv.version = c->v.version + !is_news(action);
    c->v = t->nv;
    take_notes(t, who, action);
    as__touch_case(rt, c);

    if (from == AS_STATE_REPAIRING && to != AS_STATE_REPAIRING)
        c->repair_days += (int32_t)((t->now - c->repair_since + AS_DAY - 1) / AS_DAY);
    if (to == AS_STATE_REPAIRING && from != AS_STATE_REPAIRING) c->repair_since = t->now;
    if (who && who->role == AS_ROLE_MERCHANT && !(c->v.flags & AS_CF_RESPONDED)) {
        c->v.flags |= AS_CF_RESPONDED;
        event(rt, c->order, AS_EV_RESPONSE, t->now - c->opened_at);
    }
    if (action == AS_ACT_AUTO_AGREE) {
        c->v.flags |= AS_CF_AUTO_AGREED;
        event(rt, c->order, AS_EV_AUTO_AGREE, 0);
    }
    if (action == AS_ACT_ESCALATE) event(rt, c->order, AS_EV_ESCALATE, 0);
    if (to != from) {
        rt->stats.transitions++;
        rt->stats.by_type_state[c->type][to]++;
    }
    /* delivered now when nothing is durable, else once the batch holding it is on disk */
    if (instruct && !rt->dur)
        rt->outbox.cb(rt->outbox.data, "refund", c->id, c->v.refund_amount, key);
    as__free(key);
    if (to == AS_STATE_REFUNDED && from != to)
        event(rt, c->order, AS_EV_REFUND, (c->v.flags & AS_CF_RULED_BUYER) != 0);
    if (as__state_terminal(to) && !as__state_terminal(from)) {
        c->ended_at = t->now;
        event(rt, c->order, AS_EV_RESOLVED, t->now - c->opened_at);
        for (int l = 0; l < AS_LAYER_COUNT; l++) as__pack_unref(c->rules[l]);
    }
    if (!as__state_terminal(from)) as__worklist_changed(&c->order->shop_ref->cases, c);
    return 0;
}

static void txn_abort(txn *t)
{
    as__free(t->new_evidence);
    t->new_evidence = NULL;
    as__layers_clear_notes(&t->L);
}

static void txn_init(txn *t, as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient)
{
    memset(t, 0, sizeof *t);
    t->rt = rt;
    t->c = c;
    t->cmd = cmd;
    t->err = err;
    t->now = as__clock_now(&rt->clock);
    t->nv = c->v;
    t->remedy = -1;
    t->deadline_ms = -1;
    as__layers_init(&t->L, c->rules, c->order, c, &t->nv, t->now);
    t->L.lenient = lenient;
}

/* ==========================================================================================
 * Claims: what open and revise share (docs/rulebook.md#eligibility)
 * ======================================================================================== */

/* Stage 1, the platform's fixed checks, in order. `self` is the case itself on a revise. */
static int stage1(const as_case *c, const as_case_vals *v, as_error *err)
{
    const as_order *o = c->order;
    if (v->bad_permille != -1 && (v->bad_permille < 1 || v->bad_permille > 1000))
        return as__err(err, AS_EBAD_REQUEST, "bad_permille must be from 1 to 1000");
    int type = c->type;
    if (o->shipped_at == AS_UNSET && type != AS_TYPE_REFUND_ONLY)
        return as__err(err, AS_ENOT_ELIGIBLE,
                       "the order has not shipped: only a refund_only (cancellation) is possible");
    if (o->shipped_at != AS_UNSET && o->delivered_at == AS_UNSET && type != AS_TYPE_REFUND_ONLY &&
        type != AS_TYPE_RETURN_REFUND)
        return as__err(err, AS_ENOT_ELIGIBLE,
                       "the order is on its way: only refund_only or return_refund is possible");
    for (int i = 0; i < c->nitems; i++)
        for (const as_case *other = o->cases; other; other = other->next_in_order) {
            if (other != c && !as__state_terminal(other->v.state) &&
                case_covers(other, c->items[i].line))
                return as__err(err, AS_EDUPLICATE_CASE, "SKU '%s' already has open case '%s'",
                               o->items[c->items[i].line].sku, other->id);
        }
    for (int i = 0; i < c->nitems; i++) {
        int line = c->items[i].line;
        if (c->items[i].qty > o->items[line].qty - settled_units(o, line, c))
            return as__err(err, AS_ENOT_ELIGIBLE, "SKU '%s': no unrefunded units left for %d",
                           o->items[line].sku, c->items[i].qty);
    }
    for (int i = 0; i < c->nitems; i++)
        if (o->items[c->items[i].line].attempts >= 5)
            return as__err(err, AS_EATTEMPT_LIMIT,
                           "SKU '%s' already had 5 opens and revisions",
                           o->items[c->items[i].line].sku);
    if (is_fault_evidence_reason(v->reason) && as__vals_evidence_count(v) == 0)
        return as__err(err, AS_EEVIDENCE_REQUIRED, "reason '%s' needs evidence",
                       as__reason_name(v->reason));
    if (v->requested_amount != AS_UNSET) {
        int64_t cap = as__case_paid(c) + (o->shipped_at == AS_UNSET ? o->shipping_fee : 0);
        if (v->requested_amount > cap)
            return as__err(err, AS_EAMOUNT_EXCEEDS_PAID,
                           "requested %lld fen is above the %lld fen paid for the case",
                           (long long)v->requested_amount, (long long)cap);
    }
    return 0;
}

/* Stage 1, stage 2 and the open hooks before the decision: refund_amount, deadlines,
 * priority. The staged values are in t->nv, in state `requested`. */
static int claim(txn *t)
{
    int rc = stage1(t->c, &t->nv, t->err);
    if (rc) return rc;
    const as_order *o = t->c->order;
    int cancellation = o->shipped_at == AS_UNSET && t->c->type == AS_TYPE_REFUND_ONLY;
    if (!cancellation && (rc = as__layers_eligibility(&t->L, t->err)) != 0) return rc;
    /* docs/rulebook.md#amounts: the fee is judged at open and at each revise, so the hooks after
     * refund_amount (auto_decide, the packs' thresholds) see the refund as it stands */
    int64_t fee = as__case_fee(t->c);
    int64_t amount = as__case_paid(t->c) + fee;
    if (t->c->type == AS_TYPE_PARTIAL_REFUND && t->nv.requested_amount != AS_UNSET)
        amount = t->nv.requested_amount;
    t->nv.refund_amount = amount;
    if (fee) t->nv.flags |= AS_CF_FEE_ADDED;
    else t->nv.flags &= (uint16_t)~AS_CF_FEE_ADDED;
    if ((rc = as__layers_refund_amount(&t->L, refund_cap(t->c, &t->nv), &t->nv.refund_amount,
                                       t->err)) != 0)
        return rc;
    if ((rc = ask_deadline(t)) != 0) return rc;
    int prio = t->nv.priority;
    if ((rc = as__layers_priority(&t->L, &prio, t->err)) != 0) return rc;
    t->nv.priority = (int8_t)prio;
    return as__layers_decide(&t->L, &t->decision, t->decide_reason, sizeof t->decide_reason,
                             t->err);
}

static void count_attempt(as_runtime *rt, as_case *c)
{
    for (int i = 0; i < c->nitems; i++) c->order->items[c->items[i].line].attempts++;
    as__touch_order(rt, c->order);
}

static int apply(as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient);

/* Applies auto_decide's answer, asked last in claim(), as the system's action. */
static void decide(as_runtime *rt, as_case *c, int decision, const char *reason)
{
    if (decision == 0) return;
    as_cmd cmd;
    as_error err = {0};
    as__cmd_init(&cmd, (as_principal){AS_ROLE_SYSTEM, NULL},
                 decision == 1 ? AS_ACT_AGREE : AS_ACT_REJECT);
    cmd.text = reason;
    apply(rt, c, &cmd, &err, 0);
}

/* ==========================================================================================
 * Open
 * ======================================================================================== */

static const char *case_key(const void *c)
{
    return ((const as_case *)c)->id;
}

static int check_party(const as_order *o, const as_principal *who, as_role role, as_error *err)
{
    if (who->role == AS_ROLE_PLATFORM && role == AS_ROLE_BUYER)
        return 0; /* the platform on the buyer's behalf (open only; checked by the caller) */
    if (who->role != role)
        return as__err(err, AS_EFORBIDDEN, "a %s never takes this action (it is the %s's)",
                       as__role_name(who->role), as__role_name(role));
    if (role == AS_ROLE_BUYER && strcmp(who->id, o->buyer) != 0)
        return as__err(err, AS_EFORBIDDEN, "buyer '%s' is not the buyer of order '%s'", who->id,
                       o->id);
    if (role == AS_ROLE_MERCHANT && strcmp(who->id, o->shop) != 0)
        return as__err(err, AS_EFORBIDDEN, "shop '%s' is not the shop of order '%s'", who->id,
                       o->id);
    return 0;
}

static int build_case(as_runtime *rt, as_order *o, as_cmd *cmd, as_case **out, as_error *err)
{
    size_t idlen = strlen(cmd->case_id);
    as_case *c = as__calloc(1, sizeof *c + (size_t)cmd->nitems * sizeof(as_case_item) + idlen + 1);
    if (c == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    char *id = (char *)(c->items + cmd->nitems);
    memcpy(id, cmd->case_id, idlen + 1);
    c->id = id;
    c->order = o;
    c->type = (uint8_t)cmd->type;
    c->nitems = (uint8_t)cmd->nitems;
    c->ended_at = AS_UNSET;
    as__sched_node_init(&c->deadline);
    *out = c;
    for (int i = 0; i < cmd->nitems; i++) {
        int line = item_line(o, cmd->items[i].sku);
        if (line < 0)
            return as__err(err, AS_EBAD_REQUEST, "SKU '%s' is not on order '%s'",
                           cmd->items[i].sku, o->id);
        if (cmd->items[i].qty < 1 || cmd->items[i].qty > o->items[line].qty)
            return as__err(err, AS_EBAD_REQUEST, "SKU '%s': qty %lld is not from 1 to the %d bought",
                           cmd->items[i].sku, (long long)cmd->items[i].qty, o->items[line].qty);
        for (int p = 0; p < i; p++)
            if (c->items[p].line == line)
                return as__err(err, AS_EBAD_REQUEST, "SKU '%s' is listed twice", cmd->items[i].sku);
        if (i > 0 && o->items[line].category != c->category)
            return as__err(err, AS_EBAD_REQUEST, "a case's items must share one category");
        c->items[i].line = (uint16_t)line;
        c->items[i].qty = (int32_t)cmd->items[i].qty;
        c->category = o->items[line].category;
    }
    c->v.state = AS_STATE_REQUESTED;
    c->v.reason = (uint8_t)cmd->reason;
    c->v.remedy = AS_REMEDY_NONE;
    c->v.requested_amount = cmd->given & AS_P_REQUESTED ? cmd->requested_amount : AS_UNSET;
    c->v.bad_permille = cmd->given & AS_P_PERMILLE ? (int32_t)cmd->bad_permille : -1;
    if (cmd->nevidence && (c->v.evidence = as__evidence_copy(cmd->evidence, cmd->nevidence)) == NULL)
        return as__err(err, AS_ENOMEM, "out of memory");
    c->rules[AS_LAYER_PLATFORM] = rt->platform;
    c->rules[AS_LAYER_CATEGORY] = as__category_pack(rt, c->category);
    c->rules[AS_LAYER_MERCHANT] = o->shop_ref->merchant;
    return 0;
}

static void case_free(as_case *c)
{
    if (c == NULL) return;
    for (uint32_t i = 0; i < c->nhist; i++) as__free(c->hist[i].note);
    as__free(c->hist);
    as__free(c->v.evidence);
    as__free(c);
}

static int claim_ranges(const as_cmd *cmd, as_error *err)
{
    if (cmd->type < 0 && cmd->action == AS_ACT_OPEN)
        return as__err(err, AS_EBAD_REQUEST, "unknown case type");
    if ((cmd->given & AS_P_REASON) && cmd->reason < 0)
        return as__err(err, AS_EBAD_REQUEST, "unknown reason");
    if ((cmd->given & AS_P_REQUESTED) && cmd->requested_amount < 0)
        return as__err(err, AS_EBAD_REQUEST, "requested_amount must not be negative");
    if ((cmd->given & AS_P_PERMILLE) && (cmd->bad_permille < 1 || cmd->bad_permille > 1000))
        return as__err(err, AS_EBAD_REQUEST, "bad_permille must be from 1 to 1000");
    return 0;
}


int as__case_open(as_runtime *rt, as_cmd *cmd, as_error *err)
{
    as__fire_due(rt);
    if (cmd->order_id == NULL && cmd->shape_err)
        return as__err(err, cmd->shape_err, "%s", cmd->shape_msg);
    as_order *o = as__order_get(rt, cmd->order_id);
    if (o == NULL) return as__err(err, AS_ENOT_FOUND, "unknown order '%s'", cmd->order_id);
    if (cmd->shape_err) return as__err(err, cmd->shape_err, "%s", cmd->shape_msg);
    if (as__case_get(rt, cmd->case_id))
        return as__err(err, AS_EBAD_REQUEST, "case '%s' already exists", cmd->case_id);
    int rc = check_party(o, &cmd->who, AS_ROLE_BUYER, err);
    if (rc) return rc;
    if ((rc = claim_ranges(cmd, err)) != 0) return rc;
    as_case *c = NULL;
    if ((rc = build_case(rt, o, cmd, &c, err)) != 0) {
        case_free(c);
        return rc;
    }
    txn t;
    txn_init(&t, rt, c, cmd, err, 0);
    c->opened_at = t.now;
    rc = claim(&t);
    account_layers(rt, &t.L);
    /* the map takes the case once everything after it has room: then nothing can fail */
    if (rc == 0 && (change_room(&t, 1, 0) != 0 || as__worklist_reserve(&o->shop_ref->cases) != 0 ||
                    as__strmap_put(&rt->cases, c) != 0 ||
                    (t.deadline_ms >= 0 && schedule(rt, c, t.now + t.deadline_ms) != 0)))
        rc = as__err(err, AS_ENOMEM, "out of memory");
    if (rc) {
        as__strmap_del(&rt->cases, c->id);
        txn_abort(&t);
        case_free(c);
        return rc;
    }
    for (int l = 0; l < AS_LAYER_COUNT; l++) as__pack_ref(c->rules[l]);
    as__order_add_case(o, c);
    c->v = t.nv;
    c->v.version = 1;
    hist_append(c, t.now, &cmd->who, AS_ACT_OPEN, AS_STATE_REQUESTED, AS_STATE_REQUESTED, NULL);
    as__worklist_add(&o->shop_ref->cases, c);
    take_notes(&t, NULL, AS_ACT_OPEN);
    count_attempt(rt, c);
    as__touch_case(rt, c);
    event(rt, o, AS_EV_OPEN, 0);
    rt->stats.transitions++;
    rt->stats.commands++;
    decide(rt, c, t.decision, t.decide_reason);
    return 0;
}

/* ==========================================================================================
 * Actions
 * ======================================================================================== */

static const char *const return_rejections[] = {"tag_removed", "soiled",   "worn", "activated",
                                                "serial_mismatch", "missing_parts", NULL};

/* Check 7 of docs/design.md#states-and-actions: values out of range. */
static int action_ranges(const as_case *c, const as_cmd *cmd, as_error *err)
{
    switch (cmd->action) {
    case AS_ACT_OFFER: {
        int64_t cap = refund_cap(c, &c->v);
        if (cmd->amount < 1 || cmd->amount > cap)
            return as__err(err, AS_EBAD_REQUEST, "an offer must be from 1 to %lld fen",
                           (long long)cap);
        return 0;
    }
    case AS_ACT_INSPECT:
        if (cmd->result < 0)
            return as__err(err, AS_EBAD_REQUEST, "result must be 'fault' or 'no_fault'");
        return 0;
    case AS_ACT_REJECT_RETURN:
        for (const char *const *r = return_rejections; *r; r++)
            if (strcmp(*r, cmd->text) == 0) return 0;
        return as__err(err, AS_EBAD_REQUEST, "'%s' is not a receipt-check reason", cmd->text);
    case AS_ACT_SHIP_RETURN:
        if ((cmd->given & AS_P_SHIPPING) && (cmd->shipping_cost < 0 || cmd->shipping_cost > (int64_t)1e11))
            return as__err(err, AS_EBAD_REQUEST, "shipping_cost must be a non-negative amount");
        return 0;
    case AS_ACT_REVISE: return claim_ranges(cmd, err);
    default: return 0;
    }
}

/* The action's own staged changes before routing. */
static int prepare(txn *t)
{
    as_cmd *cmd = t->cmd;
    switch (cmd->action) {
    case AS_ACT_OFFER: t->nv.offer_amount = cmd->amount; return 0;
    case AS_ACT_ACCEPT_OFFER: t->nv.refund_amount = t->nv.offer_amount; return 0;
    case AS_ACT_ESCALATE: t->nv.flags |= AS_CF_ESCALATED; return 0;
    case AS_ACT_RULE_FOR_BUYER: t->nv.flags |= AS_CF_RULED_BUYER; return 0;
    case AS_ACT_SHIP_RETURN: {
        t->nv.return_shipping = cmd->given & AS_P_SHIPPING ? cmd->shipping_cost : 0;
        int64_t amount = t->nv.refund_amount;
        int rc = as__layers_refund_amount(&t->L, refund_cap(t->c, &t->nv), &amount, t->err);
        if (rc) return rc;
        t->nv.refund_amount = amount;
        rc = cond_fn(t, AS_WC_INSPECT);
        return rc < 0 ? rc : 0; /* rule_error, or the host's nomem as itself */
    }
    case AS_ACT_REVISE:
        if (cmd->given & AS_P_REASON) t->nv.reason = (uint8_t)cmd->reason;
        if (cmd->given & AS_P_REQUESTED) t->nv.requested_amount = cmd->requested_amount;
        if (cmd->given & AS_P_PERMILLE) t->nv.bad_permille = (int32_t)cmd->bad_permille;
        if (cmd->given & AS_P_EVIDENCE) {
            t->new_evidence = as__evidence_copy(cmd->evidence, cmd->nevidence);
            if (cmd->nevidence && t->new_evidence == NULL)
                return as__err(t->err, AS_ENOMEM, "out of memory");
            t->nv.evidence = t->new_evidence;
        }
        return 0;
    default: return 0;
    }
}

/* The history note of the command in *out (owned by the caller; NULL when it has none): 0, or
 * AS_ENOMEM -- an entry without the note it should carry would be a silent change. */
static int note_for(const as_cmd *cmd, char **out)
{
    *out = NULL;
    if (cmd->text == NULL) return 0;
    switch (cmd->action) {
    case AS_ACT_REJECT:
    case AS_ACT_REJECT_RETURN:
    case AS_ACT_REFUND_FAILED:
    case AS_ACT_SHIP_RETURN:
    case AS_ACT_SHIP_REPLACEMENT: {
        /* "reason" or "carrier tracking" */
        size_t a = strlen(cmd->text), b = cmd->tracking ? strlen(cmd->tracking) : 0;
        char *note = as__malloc(a + b + 2);
        if (note == NULL) return AS_ENOMEM;
        memcpy(note, cmd->text, a);
        note[a] = ' ';
        memcpy(note + a + 1, cmd->tracking ? cmd->tracking : "", b);
        note[b ? a + b + 1 : a] = '\0';
        *out = note;
        return 0;
    }
    default: return 0;
    }
}

/* Checks 5-8 and the commit, for a case that exists and a caller already vetted (checks
 * 1-4). `lenient` while a deadline fires. */
static int apply(as_runtime *rt, as_case *c, as_cmd *cmd, as_error *err, int lenient)
{
    int held = (c->v.flags & AS_CF_HELD) != 0;
    if (!as__workflow_allows(c->v.state, cmd->action, c->type, held))
        return as__err(err, AS_EINVALID_STATE, "'%s' is not allowed in state '%s'%s",
                       as__action_name(cmd->action), as__state_name(c->v.state),
                       held && cmd->action == AS_ACT_REVISE ? " (the merchant holds the goods)" : "");
    if (cmd->version >= 0 && cmd->version != (int64_t)c->v.version && !is_news(cmd->action))
        return as__err(err, AS_ECONFLICT, "case '%s' is at version %u, not %lld", c->id,
                       c->v.version, (long long)cmd->version);
    int rc = action_ranges(c, cmd, err);
    if (rc) return rc;
    txn t;
    txn_init(&t, rt, c, cmd, err, lenient);
    rc = prepare(&t);
    const as_wf_row *row = NULL;
    if (rc == 0)
        rc = as__workflow_route(c->v.state, cmd->action, c->type, held, cond_fn, &t, &row);
    if (rc == AS_EINVALID_STATE)
        as__err(err, rc, "'%s' is not allowed for this case in state '%s'",
                as__action_name(cmd->action), as__state_name(c->v.state));
    int to = rc == 0 && row->to != AS_WF_SAME ? row->to : c->v.state;
    if (rc == 0) {
        switch (row->effect) {
        case AS_WE_HOLD: t.nv.flags |= AS_CF_HELD; break;
        case AS_WE_REMEDY: t.nv.remedy = (int8_t)t.remedy; break;
        case AS_WE_REMEDY_HOLD:
            t.nv.remedy = (int8_t)t.remedy;
            t.nv.flags |= AS_CF_HELD;
            break;
        case AS_WE_TYPE_REMEDY:
            t.nv.remedy = (int8_t)as__type_remedy(c->type);
            t.nv.flags &= ~AS_CF_HELD;
            break;
        default: break;
        }
        t.nv.state = (uint8_t)to;
        if (cmd->action == AS_ACT_REVISE) {
            rc = claim(&t);
        } else if (to != c->v.state) {
            rc = ask_deadline(&t);
        } else {
            t.deadline_ms = -1;
        }
    }
    account_layers(rt, &t.L);
    char *note;
    if (rc == 0 && note_for(cmd, &note) != 0) rc = as__err(err, AS_ENOMEM, "out of memory");
    if (rc == 0) rc = commit(&t, &cmd->who, cmd->action, to, note);
    if (rc) {
        txn_abort(&t);
        return rc;
    }
    rt->stats.commands++;
    if (cmd->action == AS_ACT_REVISE) {
        count_attempt(rt, c);
        decide(rt, c, t.decision, t.decide_reason);
    } else if (c->v.state == AS_STATE_REFUNDING && rt->auto_pay && rt->depth == 0) {
        as_cmd pay;
        as_error perr;
        as__cmd_init(&pay, (as_principal){AS_ROLE_PLATFORM, NULL}, AS_ACT_REFUND_SUCCEEDED);
        rt->depth++;
        apply(rt, c, &pay, &perr, 0);
        rt->depth--;
    }
    return 0;
}

int as__case_act(as_runtime *rt, as_cmd *cmd, as_error *err)
{
    as__fire_due(rt);
    as_case *c = as__case_get(rt, cmd->case_id);
    if (c == NULL)
        return as__err(err, AS_ENOT_FOUND, "unknown case '%s'", cmd->case_id ? cmd->case_id : "");
    if (cmd->shape_err) return as__err(err, cmd->shape_err, "%s", cmd->shape_msg);
    if (cmd->who.role == AS_ROLE_PLATFORM && as__action_role(cmd->action) == AS_ROLE_BUYER)
        return as__err(err, AS_EFORBIDDEN, "the platform may open a case for a buyer, but not '%s'",
                       as__action_name(cmd->action));
    int rc = check_party(c->order, &cmd->who, as__action_role(cmd->action), err);
    if (rc) return rc;
    rc = apply(rt, c, cmd, err, 0);
    if (rc) rt->stats.refused++;
    return rc;
}

/* ==========================================================================================
 * Firing deadlines
 * ======================================================================================== */

static void fire(as_runtime *rt, as_case *c)
{
    as_deadline_kind k = as__state_deadline(c->v.state);
    if (k == AS_DL_NONE) return;
    as_cmd cmd;
    as_error err = {0};
    as__cmd_init(&cmd, (as_principal){AS_ROLE_SYSTEM, NULL}, as__deadline_action(k));
    cmd.result = 1; /* auto_inspect: docs/rulebook.md#deadlines, result fault */
    rt->stats.deadlines_fired++;
    if (apply(rt, c, &cmd, &err, 1) != 0) {
        /* a deadline is never refused; a failure here is the runtime's (out of memory):
         * try again a second later rather than lose it */
        schedule(rt, c, as__clock_now(&rt->clock) + AS_SECOND);
    }
}

void as__fire_due(as_runtime *rt)
{
    int64_t now = as__clock_now(&rt->clock);
    as_sched_node *n;
    while ((n = as__sched_pop_due(&rt->sched, now)) != NULL) fire(rt, as__case_of_node(n));
}

void as__advance(as_runtime *rt, int64_t to_ms)
{
    if (!as__clock_is_virtual(&rt->clock)) return;
    as_sched_node *n;
    while ((n = as__sched_peek(&rt->sched)) != NULL && n->due_ms <= to_ms) {
        as__clock_set(&rt->clock, n->due_ms);
        as__sched_remove(&rt->sched, n);
        fire(rt, as__case_of_node(n));
    }
    as__clock_set(&rt->clock, to_ms);
}

/* ==========================================================================================
 * Runtime lifecycle, registry
 * ======================================================================================== */

static const char *ident(const void *s)
{
    return s;
}

static const char *shop_key(const void *s)
{
    return ((const as_shop *)s)->id;
}

const char *as__intern(as_runtime *rt, const char *s)
{
    const char *have = as__strmap_get(&rt->strings, s);
    if (have) return have;
    char *copy = as__strdup(s);
    if (copy == NULL || as__strmap_put(&rt->strings, copy) != 0) {
        as__free(copy);
        return NULL;
    }
    return copy;
}

as_shop *as__shop_get(as_runtime *rt, const char *id, int create)
{
    as_shop *s = as__strmap_get(&rt->shops, id);
    if (s || !create) return s;
    s = as__calloc(1, sizeof *s);
    if (s == NULL || (s->id = as__intern(rt, id)) == NULL || as__strmap_put(&rt->shops, s) != 0) {
        as__free(s);
        return NULL;
    }
    return s;
}

as_pack *as__category_pack(as_runtime *rt, const char *category)
{
    for (int i = 0; i < rt->ncats; i++)
        if (strcmp(rt->cats[i].category, category) == 0) return rt->cats[i].pack;
    return NULL;
}

static void timer_cb(uv_timer_t *h);

void as__rearm(as_runtime *rt)
{
    if (rt->timer == NULL) return;
    as_sched_node *n = as__sched_peek(&rt->sched);
    if (n == NULL) {
        uv_timer_stop(rt->timer);
        return;
    }
    int64_t wait = n->due_ms - as__clock_now(&rt->clock);
    uv_timer_start(rt->timer, timer_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

static void timer_cb(uv_timer_t *h)
{
    as_runtime *rt = h->data;
    as__fire_due(rt);
    as__rearm(rt);
}

as_runtime *as__runtime_new(const as_options *opts, const as_pack_loaders *loaders, as_error *err)
{
    as_options none = {0};
    if (opts == NULL) opts = &none;
    as__allocator_lock(); /* its blocks live from here on */
    as_runtime *rt = as__calloc(1, sizeof *rt);
    if (rt == NULL) {
        as__err(err, AS_ENOMEM, "out of memory");
        return NULL;
    }
    if (opts->loop) {
        rt->timer = as__malloc(sizeof *rt->timer);
        if (rt->timer == NULL) {
            as__free(rt);
            as__err(err, AS_ENOMEM, "out of memory");
            return NULL;
        }
        uv_timer_init(opts->loop, rt->timer);
        rt->timer->data = rt;
        as__clock_init_real(&rt->clock, opts->loop);
    } else {
        as__clock_init_virtual(&rt->clock, opts->start_ms);
    }
    as__sched_init(&rt->sched);
    as__strmap_init(&rt->orders, order_key);
    as__strmap_init(&rt->cases, case_key);
    as__strmap_init(&rt->shops, shop_key);
    as__strmap_init(&rt->strings, ident);
    rt->auto_pay = opts->auto_pay;
    rt->limits.instructions = opts->lua_instructions;
    rt->limits.memory = opts->lua_memory;
    rt->lua_shop_memory = opts->lua_shop_memory ? opts->lua_shop_memory : AS_PACK_SHOP_MEMORY_DEFAULT;
    rt->loaders = *loaders;
    rt->idempotency_ms = opts->idempotency_ms > 0 ? opts->idempotency_ms : AS_IDEMPOTENCY_DEFAULT_MS;
    rt->outbox.cb = opts->outbox;
    rt->outbox.data = opts->outbox_data;
    return rt;
}

static void close_timer(uv_handle_t *h)
{
    as__free(h);
}

void as__runtime_free(as_runtime *rt)
{
    if (rt == NULL) return;
    as__durable_free(rt);
    if (rt->timer) uv_close((uv_handle_t *)rt->timer, close_timer);
    as__sched_free(&rt->sched); /* before the cases that embed its nodes */
    size_t pos = 0;
    as_case *c;
    while ((c = as__strmap_next(&rt->cases, &pos)) != NULL) {
        if (!as__state_terminal(c->v.state))
            for (int l = 0; l < AS_LAYER_COUNT; l++) as__pack_unref(c->rules[l]);
        case_free(c);
    }
    pos = 0;
    as_order *o;
    while ((o = as__strmap_next(&rt->orders, &pos)) != NULL) as__free(o);
    pos = 0;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL) {
        as__pack_unref(s->merchant);
        as__versions_free(&s->versions);
        rt->loaders.group_unref(s->lua_group);
        as__events_free(&s->events);
        as__worklist_free(&s->cases);
        as__free(s);
    }
    pos = 0;
    char *str;
    while ((str = as__strmap_next(&rt->strings, &pos)) != NULL) as__free(str);
    for (int i = 0; i < rt->ncats; i++) as__pack_unref(rt->cats[i].pack);
    as__free(rt->cats);
    as__pack_unref(rt->platform);
    for (int i = 0; i < rt->ninstalled; i++) as__pack_free_shell(rt->installed[i]);
    as__free(rt->installed);
    as__versions_free(&rt->bundled);
    as__strmap_free(&rt->orders);
    as__strmap_free(&rt->cases);
    as__strmap_free(&rt->shops);
    as__strmap_free(&rt->strings);
    as__free(rt);
}

/* Takes `p`'s shell into the runtime's keeping (see pack.h). On failure `p` is freed. */
int as__runtime_keep(as_runtime *rt, as_pack *p, as_error *err)
{
    as_pack **v = as__realloc(rt->installed, (size_t)(rt->ninstalled + 1) * sizeof *v);
    if (v == NULL) {
        as__pack_unref(p);
        return as__err(err, AS_ENOMEM, "out of memory");
    }
    rt->installed = v;
    rt->installed[rt->ninstalled++] = p;
    p->kept = 1;
    return 0;
}

/* Installs `p` (one reference, taken over) as the platform pack or the pack of each of its
 * categories. */
static int install_pack(as_runtime *rt, as_pack *p, as_error *err)
{
    if (as__runtime_keep(rt, p, err)) return AS_ENOMEM;
    if (p->categories[0] == NULL) {
        as__pack_unref(rt->platform);
        rt->platform = p;
        return 0;
    }
    for (char **cat = p->categories; *cat; cat++) {
        const char *name = as__intern(rt, *cat);
        int i = 0;
        while (i < rt->ncats && rt->cats[i].category != name) i++;
        if (i == rt->ncats) {
            as_category_pack *cats = as__realloc(rt->cats, (size_t)(rt->ncats + 1) * sizeof *cats);
            if (name == NULL || cats == NULL) {
                as__pack_unref(p);
                return as__err(err, AS_ENOMEM, "out of memory");
            }
            rt->cats = cats;
            rt->cats[rt->ncats++] = (as_category_pack){name, NULL};
        }
        as__pack_ref(p);
        as__pack_unref(rt->cats[i].pack);
        rt->cats[i].pack = p;
    }
    as__pack_unref(p);
    return 0;
}

int as__install_version(as_runtime *rt, as_pack *p, const char *src, size_t len,
                        const char *sha, as_error *err)
{
    as_version *v;
    int rc = as__versions_bundled(rt, p, src, len, sha, &v, err);
    if (rc) {
        as__pack_unref(p);
        return rc;
    }
    if ((rc = install_pack(rt, p, err)) != 0) return rc;
    v->pack = p; /* kept by the runtime */
    return 0;
}
