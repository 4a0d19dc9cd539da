/* facts.c -- what a case and its order say about money and units: paid, settled, the
 * shipping fee, the refund cap (docs/rulebook.md#amounts, #eligibility). Pure reads. */
#include <string.h>

#include "alloc.h"
#include "engine.h"

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
        while (v->evidence[n])
            n++;
    return n;
}

char **as__evidence_copy(const char *const *strs, int n)
{
    if (n == 0) return NULL;
    size_t bytes = (size_t)(n + 1) * sizeof(char *);
    for (int i = 0; i < n; i++)
        bytes += strlen(strs[i]) + 1;
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

int as__item_line(const as_order *o, const char *sku)
{
    for (int i = 0; i < o->nitems; i++)
        if (strcmp(o->items[i].sku, sku) == 0) return i;
    return -1;
}

int as__case_covers(const as_case *c, int line)
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
int64_t as__settled_units(const as_order *o, int line, const as_case *self)
{
    int64_t n = 0;
    for (const as_case *k = o->cases; k; k = k->next_in_order)
        if (k != self && settles(k->v.state)) n += as__case_covers(k, line);
    return n;
}

int64_t as__case_fee(const as_case *c)
{
    const as_order *o = c->order;
    if (c->type == AS_TYPE_PARTIAL_REFUND || o->shipped_at != AS_UNSET || o->shipping_fee == 0)
        return 0;
    for (int line = 0; line < o->nitems; line++)
        if (as__settled_units(o, line, c) + as__case_covers(c, line) < o->items[line].qty) return 0;
    return o->shipping_fee;
}

int as__fault_evidence_reason(int r)
{
    return r == AS_REASON_QUALITY || r == AS_REASON_NOT_AS_DESCRIBED || r == AS_REASON_WRONG_ITEM ||
           r == AS_REASON_MISSING_ITEM || r == AS_REASON_DAMAGED_IN_TRANSIT ||
           r == AS_REASON_SPOILED;
}

/* The most a refund may be: paid for the case, plus return shipping once known, plus the
 * shipping fee where it goes back with this case (docs/rulebook.md#amounts). */
int64_t as__refund_cap(const as_case *c, const as_case_vals *v)
{
    return as__case_paid(c) + v->return_shipping + as__case_fee(c);
}

/* Records a metrics event, in the room the command reserved before its change (as__txn_room). */
void as__event(as_runtime *rt, const as_order *o, as_event_kind k, int64_t val)
{
    as__shop_event(rt, o->shop_ref, k, as__clock_now(&rt->clock), o, val);
}
