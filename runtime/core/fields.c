/* fields.c -- the getters, row tables and key lookup generated from fields.h's tables. */
#include "fields.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define FLAGS_NONE 0
#define FLAGS_L AS_FF_LUA
#define FLAGS_J AS_FF_JSON
#define FLAGS_E AS_FF_EARLIER
#define FLAGS_LJ (AS_FF_LUA | AS_FF_JSON)
#define FLAGS_LJE (AS_FF_LUA | AS_FF_JSON | AS_FF_EARLIER)
#define FLAGS_LJC (AS_FF_LUA | AS_FF_JSON | AS_FF_CASE_ITEM)

/* ------------------------------------------------------------------------------------------
 * Compile-time checks: each id once per view, every public AS_F_* in some view
 * ---------------------------------------------------------------------------------------- */

_Static_assert(AS__F_COUNT <= 64, "field ids fit the masks below");
#define BIT(id, ...) | (1ull << (id))
#define ADD(id, ...) +(1ull << (id))
/* a sum of distinct powers of two equals their union; a repeated id makes the sum larger */
_Static_assert((0 AS_ORDER_FIELDS(BIT)) == (0 AS_ORDER_FIELDS(ADD)), "an order field twice");
_Static_assert((0 AS_CASE_FIELDS(BIT)) == (0 AS_CASE_FIELDS(ADD)), "a case field twice");
_Static_assert((0 AS_ITEM_FIELDS(BIT)) == (0 AS_ITEM_FIELDS(ADD)), "an item field twice");
#define PUBLIC_MASK ((1ull << (AS__F_PUBLIC_LAST + 1)) - 1)
_Static_assert(((0 AS_ORDER_FIELDS(BIT) AS_CASE_FIELDS(BIT) AS_ITEM_FIELDS(BIT)) & PUBLIC_MASK) ==
                   PUBLIC_MASK,
               "every field of plugin.h has a row");
#undef BIT
#undef ADD

int as__field_item(as_field_view view, const as_field_ctx *x, int i, as_field_ctx *out)
{
    const as_order *o = x->order;
    if (view == AS_FV_ORDER && i >= 0 && i < o->nitems) {
        *out = (as_field_ctx){.order = o, .item = &o->items[i], .qty = o->items[i].qty};
        return 0;
    }
    if (view == AS_FV_CASE && i >= 0 && i < x->c->nitems) {
        const as_case_item *ci = &x->c->items[i];
        *out = (as_field_ctx){.order = o, .item = &o->items[ci->line], .qty = ci->qty};
        return 0;
    }
    return -1;
}

int as__field_cases(const as_order *o, const as_case *self)
{
    int n = (int)o->ncases;
    for (const as_case *k = o->cases; k; k = k->next_in_order)
        n -= k == self;
    return n;
}

const as_case *as__field_next_case(const as_order *o, const as_case *self, const as_case *prev)
{
    const as_case *k = prev ? prev->next_in_order : o->cases;
    if (k && k == self) k = k->next_in_order;
    return k;
}

/* ------------------------------------------------------------------------------------------
 * Rows and the key lookup
 * ---------------------------------------------------------------------------------------- */

#define ROW(id, key, kind, flags, expr) {id, key, sizeof key - 1, AS_FK_##kind, FLAGS_##flags},
static const as_field_row order_rows[] = {AS_ORDER_FIELDS(ROW)};
static const as_field_row case_rows[] = {AS_CASE_FIELDS(ROW)};
static const as_field_row item_rows[] = {AS_ITEM_FIELDS(ROW)};
#undef ROW

static const struct {
    const as_field_row *rows;
    int n;
} views[AS_FV_COUNT] = {
    [AS_FV_ORDER] = {order_rows, (int)(sizeof order_rows / sizeof *order_rows)},
    [AS_FV_CASE] = {case_rows, (int)(sizeof case_rows / sizeof *case_rows)},
    [AS_FV_ITEM] = {item_rows, (int)(sizeof item_rows / sizeof *item_rows)},
};

const as_field_row *as__field_rows(as_field_view view, int *n)
{
    *n = views[view].n;
    return views[view].rows;
}

/* An open-addressed table per view, built once from the rows: a Lua view's __index costs a
 * hash of the key and, almost always, one memcmp. SLOTS is a power of two at least twice the
 * largest view, so probe runs stay short. */
#define SLOTS 64
_Static_assert(sizeof case_rows / sizeof *case_rows <= SLOTS / 2, "the key table is too small");
static uint8_t slots[AS_FV_COUNT][SLOTS]; /* row index + 1, 0 when empty */
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;
/* set once the table is built: the lookup's every call reads it inline instead of calling
 * pthread_once, which is for the first */
static atomic_bool slots_built;

/* First byte, last byte and length: a hash of the whole key cost the Lua views more than the
 * hand-written strcmp chains did. With these factors every key of today's views lands in its
 * own slot (no probing); a new key that collides only costs a probe. */
static unsigned hash(const char *k, size_t len)
{
    return ((unsigned char)k[0] + 3u * (unsigned char)k[len - 1] + 4u * (unsigned)len) &
           (SLOTS - 1);
}

static void build_slots(void)
{
    for (int v = 0; v < AS_FV_COUNT; v++)
        for (int r = 0; r < views[v].n; r++) {
            unsigned h = hash(views[v].rows[r].key, views[v].rows[r].len);
            while (slots[v][h])
                h = (h + 1) & (SLOTS - 1);
            slots[v][h] = (uint8_t)(r + 1);
        }
    atomic_store_explicit(&slots_built, true, memory_order_release);
}

const as_field_row *as__field_find(as_field_view view, const char *key, size_t len)
{
    if (!atomic_load_explicit(&slots_built, memory_order_acquire))
        pthread_once(&slots_once, build_slots);
    if ((unsigned)view >= AS_FV_COUNT || len == 0 || len > UINT8_MAX) return NULL;
    for (unsigned h = hash(key, len);; h = (h + 1) & (SLOTS - 1)) {
        int r = slots[view][h];
        if (r == 0) return NULL;
        const as_field_row *row = &views[view].rows[r - 1];
        if (row->len == len && memcmp(row->key, key, len) == 0) return row;
    }
}
