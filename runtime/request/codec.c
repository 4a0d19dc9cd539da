/* codec.c -- JSON in and out: command payloads (docs/design.md#states-and-actions table), case and
 * metrics views. The case and order views are fields.h's rows flagged for JSON, in row order.
 *
 * Every key not documented for an action is refused; a value of the wrong JSON type or
 * outside the input limits of limits.h is refused (check 3 of the contract's order).
 * Out-of-range values that depend on the case (an unknown type or reason name, a negative
 * amount) are kept as such and refused later, at check 7. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/fields.h"
#include "../core/limits.h"

static int shape(as_cmd *cmd, const char *fmt, const char *a)
{
    if (cmd->shape_err == 0) {
        cmd->shape_err = AS_EBAD_REQUEST;
        snprintf(cmd->shape_msg, sizeof cmd->shape_msg, fmt, a);
        as__limit_sanitize(cmd->shape_msg);
    }
    return -1;
}

static int get_string(as_cmd *cmd, json_t *v, const char *key, const char **out)
{
    if (!json_is_string(v)) return shape(cmd, "'%s' must be a string", key);
    *out = json_string_value(v);
    return 0;
}

/* A string that is an identifier (limits.h). */
static int get_id(as_cmd *cmd, json_t *v, const char *key, const char **out)
{
    if (get_string(cmd, v, key, out)) return -1;
    if (as__limit_id(*out, json_string_length(v)))
        return shape(cmd, "'%s' " AS_LIMIT_ID_WHAT, key);
    return 0;
}

/* A string that is free text (limits.h): evidence ids, reasons, carrier, tracking, serial. */
static int get_text(as_cmd *cmd, json_t *v, const char *key, const char **out)
{
    if (get_string(cmd, v, key, out)) return -1;
    if (as__limit_text(*out, json_string_length(v)))
        return shape(cmd, "'%s' " AS_LIMIT_TEXT_WHAT, key);
    return 0;
}

static int get_int(as_cmd *cmd, json_t *v, const char *key, int64_t *out)
{
    if (!json_is_integer(v)) return shape(cmd, "'%s' must be an integer", key);
    *out = json_integer_value(v);
    return 0;
}

/* An amount of money: negative ones are kept for check 7, too large ones are the shape's. */
static int get_money(as_cmd *cmd, json_t *v, const char *key, int64_t *out)
{
    if (get_int(cmd, v, key, out)) return -1;
    if (*out > AS_MAX_MONEY) return shape(cmd, "'%s' " AS_LIMIT_MONEY_WHAT, key);
    return 0;
}

static int get_evidence(as_cmd *cmd, json_t *v)
{
    if (!json_is_array(v)) return shape(cmd, "'%s' must be a list of strings", "evidence");
    if (json_array_size(v) > AS_MAX_EVIDENCE)
        return shape(cmd, "'%s' has more than 32 entries", "evidence");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e)) return shape(cmd, "'%s' must be a list of strings", "evidence");
        if (get_text(cmd, e, "evidence[]", &cmd->evidence[i])) return -1;
    }
    cmd->nevidence = (int)json_array_size(v);
    cmd->given |= AS_P_EVIDENCE;
    return 0;
}

/* The fields shared by open and revise. Returns 1 when `key` was one of them. */
static int claim_field(as_cmd *cmd, const char *key, json_t *v)
{
    if (strcmp(key, "reason") == 0) {
        const char *s;
        if (get_string(cmd, v, key, &s) == 0) cmd->reason = as__reason_from(s);
        cmd->given |= AS_P_REASON;
    } else if (strcmp(key, "evidence") == 0) {
        get_evidence(cmd, v);
    } else if (strcmp(key, "requested_amount") == 0) {
        get_money(cmd, v, key, &cmd->requested_amount);
        cmd->given |= AS_P_REQUESTED;
    } else if (strcmp(key, "bad_permille") == 0) {
        get_int(cmd, v, key, &cmd->bad_permille);
        cmd->given |= AS_P_PERMILLE;
    } else {
        return 0;
    }
    return 1;
}

static void parse_items(as_cmd *cmd, json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0) {
        shape(cmd, "'%s' must be a non-empty list of {sku, qty}", "items");
        return;
    }
    if (json_array_size(v) > AS_MAX_CASE_ITEMS) {
        shape(cmd, "'%s' has more than 100 entries", "items");
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(v, i, it)
    {
        if (!json_is_object(it)) {
            shape(cmd, "'%s' must be a non-empty list of {sku, qty}", "items");
            return;
        }
        const char *k;
        json_t *f;
        int have_sku = 0, have_qty = 0;
        json_object_foreach(it, k, f)
        {
            if (strcmp(k, "sku") == 0)
                have_sku = get_id(cmd, f, "items[].sku", &cmd->items[i].sku) == 0;
            else if (strcmp(k, "qty") == 0)
                have_qty = get_int(cmd, f, "items[].qty", &cmd->items[i].qty) == 0;
            else
                shape(cmd, "unknown key '%s' in a case item", k);
        }
        if (!have_sku || !have_qty) shape(cmd, "a case item needs %s", "'sku' and 'qty'");
    }
    cmd->nitems = (int)json_array_size(v);
}

int as__cmd_parse_open(as_cmd *cmd, json_t *obj)
{
    if (!json_is_object(obj)) return shape(cmd, "the %s must be a JSON object", "case");
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        if (claim_field(cmd, key, v)) continue;
        if (strcmp(key, "id") == 0) {
            get_id(cmd, v, key, &cmd->case_id);
        } else if (strcmp(key, "order") == 0) {
            get_string(cmd, v, key, &cmd->order_id); /* a lookup: unknown when outside */
        } else if (strcmp(key, "type") == 0) {
            const char *s;
            if (get_string(cmd, v, key, &s) == 0) cmd->type = as__type_from(s);
        } else if (strcmp(key, "items") == 0) {
            parse_items(cmd, v);
        } else {
            shape(cmd, "unknown key '%s' in the case", key);
        }
    }
    if (cmd->case_id == NULL || cmd->case_id[0] == '\0') shape(cmd, "the case needs an %s", "'id'");
    if (cmd->order_id == NULL) shape(cmd, "the case needs an %s", "'order'");
    if (!json_object_get(obj, "type")) shape(cmd, "the case needs a %s", "'type'");
    if (!(cmd->given & AS_P_REASON)) shape(cmd, "the case needs a %s", "'reason'");
    if (cmd->nitems == 0) shape(cmd, "the case needs %s", "'items'");
    return cmd->shape_err;
}

int as__json_parse(const char *text, size_t len, int with_line, json_t **out, as_error *err)
{
    json_error_t je;
    as__json_parse_begin();
    *out = json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES, &je);
    /* a document parsed while an allocation was refused may hold damaged strings (alloc.h):
     * refused, and freed now, even when jansson returned one */
    if (as__json_parse_end() != 0 ||
        (*out == NULL && json_error_code(&je) == json_error_out_of_memory)) {
        json_decref(*out);
        *out = NULL;
        return as__err(err, AS_ENOMEM, "out of memory");
    }
    if (*out) return 0;
    if (with_line)
        return as__err(err, AS_EBAD_REQUEST, "malformed JSON: %s (line %d)", je.text, je.line);
    return as__err(err, AS_EBAD_REQUEST, "malformed JSON: %s", je.text);
}

/* Which payload keys each action takes (docs/design.md#states-and-actions). */
static int allowed_key(int action, const char *k)
{
    switch (action) {
    case AS_ACT_REVISE:
        return strcmp(k, "reason") == 0 || strcmp(k, "evidence") == 0 ||
               strcmp(k, "requested_amount") == 0 || strcmp(k, "bad_permille") == 0;
    case AS_ACT_SHIP_RETURN:
        return strcmp(k, "carrier") == 0 || strcmp(k, "tracking") == 0 ||
               strcmp(k, "shipping_cost") == 0;
    case AS_ACT_SHIP_REPLACEMENT:
        return strcmp(k, "carrier") == 0 || strcmp(k, "tracking") == 0;
    case AS_ACT_REJECT:
    case AS_ACT_REJECT_RETURN:
    case AS_ACT_REFUND_FAILED:
        return strcmp(k, "reason") == 0;
    case AS_ACT_OFFER: return strcmp(k, "amount") == 0;
    case AS_ACT_CONFIRM_RETURN: return strcmp(k, "serial") == 0;
    case AS_ACT_INSPECT: return strcmp(k, "result") == 0;
    default: return 0;
    }
}

int as__cmd_parse_act(as_cmd *cmd, const char *action, json_t *payload)
{
    cmd->action = as__action_from(action);
    if (cmd->action < 0 || cmd->action == AS_ACT_OPEN ||
        as__action_role(cmd->action) == AS_ROLE_SYSTEM)
        return shape(cmd, "unknown action '%s'", action ? action : "");
    if (payload == NULL || json_is_null(payload)) payload = NULL;
    else if (!json_is_object(payload)) return shape(cmd, "the payload of '%s' must be an object", action);
    const char *key;
    json_t *v;
    json_object_foreach(payload, key, v)
    {
        if (!allowed_key(cmd->action, key)) {
            char m[128];
            snprintf(m, sizeof m, "unknown key '%.40s' for action '%s'", key, action);
            return shape(cmd, "%s", m);
        }
        if (cmd->action == AS_ACT_REVISE) {
            claim_field(cmd, key, v);
        } else if (strcmp(key, "carrier") == 0 || strcmp(key, "reason") == 0) {
            get_text(cmd, v, key, &cmd->text);
        } else if (strcmp(key, "tracking") == 0) {
            get_text(cmd, v, key, &cmd->tracking);
        } else if (strcmp(key, "serial") == 0) {
            if (get_text(cmd, v, key, &cmd->serial) == 0) cmd->given |= AS_P_SERIAL;
        } else if (strcmp(key, "shipping_cost") == 0) {
            if (get_money(cmd, v, key, &cmd->shipping_cost) == 0) cmd->given |= AS_P_SHIPPING;
        } else if (strcmp(key, "amount") == 0) {
            if (get_money(cmd, v, key, &cmd->amount) == 0) cmd->given |= AS_P_AMOUNT;
        } else if (strcmp(key, "result") == 0) {
            const char *s;
            if (get_string(cmd, v, key, &s) == 0) {
                cmd->result = strcmp(s, "fault") == 0 ? 1 : strcmp(s, "no_fault") == 0 ? 0 : -1;
                cmd->given |= AS_P_RESULT;
            }
        }
    }
    switch (cmd->action) {
    case AS_ACT_SHIP_RETURN:
    case AS_ACT_SHIP_REPLACEMENT:
        if (cmd->text == NULL || cmd->tracking == NULL)
            shape(cmd, "'%s' needs 'carrier' and 'tracking'", action);
        break;
    case AS_ACT_REJECT:
    case AS_ACT_REJECT_RETURN:
        if (cmd->text == NULL) shape(cmd, "'%s' needs a 'reason'", action);
        break;
    case AS_ACT_OFFER:
        if (!(cmd->given & AS_P_AMOUNT)) shape(cmd, "'%s' needs an 'amount'", action);
        break;
    case AS_ACT_INSPECT:
        if (!(cmd->given & AS_P_RESULT)) shape(cmd, "'%s' needs a 'result'", action);
        break;
    default: break;
    }
    return cmd->shape_err;
}

/* ------------------------------------------------------------------------------------------
 * Output
 * ---------------------------------------------------------------------------------------- */

static int set_fields(json_t *obj, as_field_view view, unsigned flag, const as_field_ctx *x,
                      int nulls);

/* A list of item views, each an object of the item rows flagged `flag`; NULL on OOM. */
static json_t *items_json(as_field_view view, const as_field_ctx *x, unsigned flag, int nulls)
{
    json_t *a = json_array();
    as_field_ctx e;
    for (int i = 0; a && as__field_item(view, x, i, &e) == 0; i++) {
        json_t *j = json_object();
        if (j == NULL || set_fields(j, AS_FV_ITEM, flag, &e, nulls) != 0 ||
            json_array_append(a, j) != 0) {
            json_decref(a);
            a = NULL;
        }
        json_decref(j);
    }
    return a;
}

static json_t *strs_json(const as_field_value *val)
{
    json_t *a = json_array();
    for (int i = 0; a && i < val->i; i++)
        if (json_array_append_new(a, json_string(val->strs[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    return a;
}

/* A field's value; NULL on OOM. A case's items show only the keys that say what the case
 * covers (AS_FF_CASE_ITEM); an order's lines show all of theirs. No view has a JSON row of
 * kind CASES: an order's cases are read one by one (GET /v1/cases). */
static json_t *value_json(as_field_view view, const as_field_ctx *x, const as_field_value *val,
                          int nulls)
{
    switch (val->kind) {
    case AS_FK_INT: return json_integer(val->i);
    case AS_FK_BOOL: return json_boolean(val->i);
    case AS_FK_STR: return json_string(val->s);
    case AS_FK_STRS: return strs_json(val);
    case AS_FK_ITEMS:
        return items_json(view, x, view == AS_FV_CASE ? AS_FF_CASE_ITEM : AS_FF_JSON, nulls);
    case AS_FK_CASES: break;
    }
    return NULL;
}

/* Sets on `obj`, in row order, the view's fields whose rows are flagged `flag`; an absent one
 * as null when `nulls`, else not at all. -1 on OOM. */
static int set_fields(json_t *obj, as_field_view view, unsigned flag, const as_field_ctx *x,
                      int nulls)
{
    int n;
    const as_field_row *rows = as__field_rows(view, &n);
    for (int r = 0; r < n; r++) {
        as_field_value val;
        json_t *j;
        if (!(rows[r].flags & flag)) continue;
        if (as__field_get(view, rows[r].id, x, &val)) j = value_json(view, x, &val, nulls);
        else if (nulls) j = json_null();
        else continue;
        if (json_object_set_new(obj, rows[r].key, j) != 0) return -1;
    }
    return 0;
}

/* "name@version" of the pack the case pinned in layer l, or NULL when it pinned none. */
static json_t *pack_json(const as_case *c, int l)
{
    const as_pack *p = l < AS_LAYER_COUNT ? c->rules[l] : NULL;
    return p ? json_sprintf("%s@%s", p->name, p->version) : NULL;
}

/* A rule's part in an entry: its hook, layer and pack, into `o`. */
static void set_rule(json_t *o, const as_case *c, int hook, int layer)
{
    if (hook != AS_NONE_U8) json_object_set_new(o, "hook", json_string(as__hook_name(hook)));
    if (layer == AS_NONE_U8) return;
    json_object_set_new(o, "layer", json_string(as__layer_name(layer)));
    json_t *p = pack_json(c, layer);
    if (p) json_object_set_new(o, "pack", p);
}

static const char *const refund_sources[AS_RS_COUNT] = {"default", "requested", "offer", "rule"};

/* One history entry with its provenance (docs/design.md#provenance). */
static json_t *hist_json(const as_case *c, const as_hist *h, int first)
{
    char actor[160];
    if (h->flags & AS_HF_PARTY)
        snprintf(actor, sizeof actor, "%s:%s", as__role_name(h->role),
                 h->role == AS_ROLE_BUYER ? c->order->buyer : c->order->shop);
    else
        snprintf(actor, sizeof actor, "%s", as__role_name(h->role));
    json_t *e = json_pack("{s:I, s:s, s:s, s:s, s:s}", "at", (json_int_t)h->at_ms, "actor", actor,
                          "action", as__action_name(h->action), "from",
                          first ? "" : as__state_name(h->from), "to", as__state_name(h->to));
    if (e == NULL) return NULL;
    if (h->note) json_object_set_new(e, "note", json_string(h->note));
    int hook = as__hist_hook(h->rule), layer = as__hist_layer(h->rule);
    if (h->flags & AS_HF_DROPPED) {
        json_t *d = json_object();
        set_rule(d, c, hook, layer);
        if (h->flags & AS_HF_FAILED) {
            json_object_set_new(d, "failed", json_true());
            if (h->why) json_object_set_new(d, "where", json_string(h->why));
        }
        json_object_set_new(e, "dropped", d);
        return e;
    }
    json_t *by;
    if (h->deadline != AS_NONE_U8)
        by = json_sprintf("deadline:%s", as__deadline_name(h->deadline));
    else if (hook == AS_HOOK_AUTO_DECIDE && h->role == AS_ROLE_SYSTEM)
        by = json_string("rule:auto_decide");
    else
        by = json_string(actor);
    json_object_set_new(e, "decided_by", by);
    set_rule(e, c, hook, layer);
    if (h->why) json_object_set_new(e, "why", json_string(h->why));
    if (h->flags & AS_HF_REFUND) {
        /* the parts the case knows: what was paid for its units, the fee and the return
         * shipping where the entry's flags say they are part of the refund's picture */
        int source = as__hist_refund_source(h->refund_by);
        json_t *r = json_pack(
            "{s:I, s:I, s:I, s:I, s:s}", "amount", (json_int_t)h->refund, "paid",
            (json_int_t)as__case_paid(c), "shipping_fee",
            (json_int_t)(h->flags & AS_HF_FEE ? c->order->shipping_fee : 0), "return_shipping",
            (json_int_t)(h->flags & AS_HF_RETURN_SHIP ? c->v.return_shipping : 0), "source",
            refund_sources[source]);
        if (r && source == AS_RS_RULE)
            set_rule(r, c, AS_HOOK_REFUND_AMOUNT, as__hist_refund_layer(h->refund_by));
        json_object_set_new(e, "refund", r);
    }
    return e;
}

/* The case's schema fields with null for an absent one, then what only the case JSON shows:
 * its pinned rules, its deadline and its history. */
json_t *as__case_json(const as_case *c)
{
    const as_case_vals *v = &c->v;
    json_t *o = json_object();
    if (o == NULL || set_fields(o, AS_FV_CASE, AS_FF_JSON,
                                &(as_field_ctx){.order = c->order, .c = c, .v = v}, 1) != 0) {
        json_decref(o);
        return NULL;
    }
    json_t *rules = json_object();
    for (int l = 0; l < AS_LAYER_COUNT; l++)
        if (c->rules[l]) json_object_set_new(rules, as__layer_name(l), pack_json(c, l));
    json_object_set_new(o, "rules", rules);
    as_deadline_kind k = as__state_deadline(v->state);
    if (as__sched_pending(&c->deadline) && k != AS_DL_NONE)
        json_object_set_new(o, "deadline", json_pack("{s:s, s:I}", "kind", as__deadline_name(k),
                                                     "due", (json_int_t)c->deadline.due_ms));
    else
        json_object_set_new(o, "deadline", json_null());
    json_t *hist = json_array();
    for (uint32_t i = 0; i < c->nhist; i++) json_array_append_new(hist, hist_json(c, &c->hist[i], i == 0));
    json_object_set_new(o, "history", hist);
    return o;
}

json_t *as__order_json(const as_order *o)
{
    json_t *j = json_object();
    if (j == NULL || set_fields(j, AS_FV_ORDER, AS_FF_JSON, &(as_field_ctx){.order = o}, 0) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *as__metrics_json(const as_metrics *m)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:b, s:I, s:I, s:I, s:I, "
                     "s:s?}",
                     "orders", (json_int_t)m->orders, "cases_opened", (json_int_t)m->cases_opened,
                     "refunds", (json_int_t)m->refunds, "dispute_refunds",
                     (json_int_t)m->dispute_refunds, "auto_agreed", (json_int_t)m->auto_agreed,
                     "after_sales_rate", m->after_sales_rate, "refund_rate", m->refund_rate,
                     "dispute_refund_rate", m->dispute_refund_rate, "intervention_rate",
                     m->intervention_rate, "flagged", m->flagged, "response_median_ms",
                     (json_int_t)m->response_median_ms, "response_p90_ms",
                     (json_int_t)m->response_p90_ms, "resolution_mean_ms",
                     (json_int_t)m->resolution_mean_ms, "rule_drops", (json_int_t)m->rule_drops,
                     "main_category", m->main_category);
}
