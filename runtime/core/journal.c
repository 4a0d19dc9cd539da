/* journal.c -- orders, cases and history entries as store records, and back.
 *
 * The layouts below are the rows' `data` (store.h); they change only with a schema version. A
 * case row carries its pinned pack versions by name, so a restart pins the same versions. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "store.h"
#include "err.h"
#include "fields.h"
#include "journal.h"
#include "limits.h"
#include "layers.h"
#include "pack.h"

/* The most bytes an entry's why adds to its row beyond what an entry without one writes. */
#define HIST_WHY_BOUND AS_ANSWER_TEXT_MAX

/* ==========================================================================================
 * The fixed-width members: fields.h's AS_STORED_* lists, written and read by one macro each
 * ======================================================================================== */

/* A member `m` of `s` at its stored width; a signed one is stored as its two's complement. */
#define PUT(bits, m, bound) put_##bits(b, s->m);
#define put_64(b, x) as__wbuf_i64(b, x)
#define put_32(b, x) as__wbuf_u32(b, (uint32_t)(x))
#define put_16(b, x) as__wbuf_u16(b, (uint16_t)(x))
#define put_8(b, x) as__wbuf_u8(b, (uint8_t)(x))

/* Read wide first, so the bound is checked on the stored value, not on what the member makes
 * of it; the assignment then narrows as the writer's cast widened. */
#define GET(bits, m, bound)                                                                        \
    {                                                                                              \
        int64_t x = get_##bits(r);                                                                 \
        if ((bound) > 0 && x >= (bound)) r->bad = 1;                                               \
        s->m = x;                                                                                  \
    }
#define get_64(r) as__rbuf_i64(r)
#define get_32(r) (int64_t) as__rbuf_u32(r)
#define get_16(r) (int64_t) as__rbuf_u16(r)
#define get_8(r) (int64_t) as__rbuf_u8(r)

/* The writer and the reader of one list's members of a `T`. */
#define CODEC(name, T, LIST)                                                                       \
    static void put_##name(as_wbuf *b, const T *s) { LIST(PUT) }                                   \
    static void get_##name(as_rbuf *r, T *s) { LIST(GET) }
CODEC(order, as_order, AS_STORED_ORDER)
CODEC(vals, as_case_vals, AS_STORED_CASE_VALS)
CODEC(times, as_case, AS_STORED_CASE_TIMES)
CODEC(item, as_item, AS_STORED_ITEM)
#undef CODEC

/* An item's flags, one byte after its members. */
static void put_item_bits(as_wbuf *b, const as_item *s)
{
    unsigned f = 0, i = 0;
#define PUT_BIT(m) f |= (unsigned)s->m << i++;
    AS_STORED_ITEM_BITS(PUT_BIT)
#undef PUT_BIT
    as__wbuf_u8(b, (uint8_t)f);
}

static void get_item_bits(as_rbuf *r, as_item *s)
{
    unsigned f = as__rbuf_u8(r), i = 0;
#define GET_BIT(m) s->m = f >> i++ & 1;
    AS_STORED_ITEM_BITS(GET_BIT)
#undef GET_BIT
    if (f >> i) r->bad = 1; /* a bit no row names would not read back as written */
}

/* ==========================================================================================
 * Writing
 * ======================================================================================== */

static void put_blob_start(as_wbuf *b, size_t *mark)
{
    *mark = b->len;
    as__wbuf_u32(b, 0); /* patched by put_blob_end */
}

static void put_blob_end(as_wbuf *b, size_t mark)
{
    if (b->oom || b->measure) return;
    uint32_t n = (uint32_t)(b->len - mark - 4);
    memcpy(b->p + mark, &n, 4);
}

void as__journal_order(as_wbuf *b, const as_order *o)
{
    size_t m;
    as__wbuf_u8(b, AS_REC_ORDER);
    as__wbuf_str(b, o->id);
    put_blob_start(b, &m);
    as__wbuf_str(b, o->id);
    as__wbuf_str(b, o->shop);
    as__wbuf_str(b, o->buyer);
    put_order(b, o);
    as__wbuf_u16(b, o->nitems);
    for (int i = 0; i < o->nitems; i++) {
        const as_item *it = &o->items[i];
        as__wbuf_str(b, it->sku);
        as__wbuf_str(b, it->category);
        as__wbuf_str(b, it->serial);
        put_item(b, it);
        put_item_bits(b, it);
    }
    put_blob_end(b, m);
}

/* The id of an entry's actor: the order's party its role names. */
static const char *hist_actor(const as_order *o, const as_hist *h)
{
    if (!(h->flags & AS_HF_PARTY)) return NULL;
    return h->role == AS_ROLE_BUYER ? o->buyer : o->shop;
}

/* `cmd` is the party's command that made the entry (its staged encoding), or NULL for an
 * entry no party's command made (a deadline, a cascade, the restore's own). */
static void put_hist(as_wbuf *b, const as_case *c, uint32_t n, const as_hist *h,
                     const as_staged_cmd *cmd, const as_cmd_stage *stage)
{
    size_t m;
    as__wbuf_u8(b, AS_REC_EVENT);
    as__wbuf_str(b, c->id);
    as__wbuf_u32(b, n);
    put_blob_start(b, &m);
    as__wbuf_i64(b, h->at_ms);
    as__wbuf_str(b, hist_actor(c->order, h));
    as__wbuf_str(b, h->note);
    as__wbuf_u8(b, h->action);
    as__wbuf_u8(b, h->role);
    as__wbuf_u8(b, h->from);
    as__wbuf_u8(b, h->to);
    as__wbuf_u8(b, h->flags & (uint8_t)~AS_HF_PARTY); /* the actor says it */
    /* schema 4: the provenance (docs/design.md#provenance); the migration to it appends
     * "none" to the rows written before: FF FF FF, a NULL why (FF FF FF FF), refund 0 */
    as__wbuf_u8(b, h->rule);
    as__wbuf_u8(b, h->refund_by);
    as__wbuf_u8(b, h->deadline);
    as__wbuf_str(b, h->why);
    as__wbuf_i64(b, h->refund);
    put_blob_end(b, m);
    if (cmd == NULL) {
        as__wbuf_str(b, NULL);
        return;
    }
    as__wbuf_u32(b, (uint32_t)cmd->len);
    as__wbuf_bytes(b, stage->bytes.p + cmd->off, cmd->len);
}

void as__journal_case(as_wbuf *b, as_case *c, const as_cmd_stage *cmds)
{
    size_t m;
    const as_case_vals *v = &c->v;
    as__wbuf_u8(b, AS_REC_CASE);
    as__wbuf_str(b, c->id);
    as__wbuf_str(b, c->order->id);
    as__wbuf_i64(b, as__sched_pending(&c->deadline) ? c->deadline.due_ms : INT64_MIN);
    put_blob_start(b, &m);
    as__wbuf_str(b, c->id);
    as__wbuf_str(b, c->order->id);
    as__wbuf_u8(b, c->type);
    as__wbuf_u8(b, c->nitems);
    for (int i = 0; i < c->nitems; i++) {
        as__wbuf_u16(b, c->items[i].line);
        as__wbuf_u32(b, (uint32_t)c->items[i].qty);
    }
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        as__wbuf_str(b, c->rules[l] ? c->rules[l]->name : NULL);
        as__wbuf_str(b, c->rules[l] ? c->rules[l]->version : NULL);
    }
    put_vals(b, v);
    int ne = as__vals_evidence_count(v);
    as__wbuf_u32(b, (uint32_t)ne);
    for (int i = 0; i < ne; i++) as__wbuf_str(b, v->evidence[i]);
    put_times(b, c);
    /* schema 4; the migration appends FF 00 FF (none, default, none) to older rows */
    as__wbuf_u8(b, c->deadline_layer);
    as__wbuf_u8(b, c->refund_source);
    as__wbuf_u8(b, c->refund_layer);
    put_blob_end(b, m);
    /* the case's staged commands are chained in the order of the entries they made */
    uint32_t next = cmds ? c->cmd_head : 0;
    for (uint32_t n = c->saved_hist; n < c->nhist; n++) {
        const as_staged_cmd *sc = next && next <= cmds->len ? &cmds->v[next - 1] : NULL;
        if (sc && sc->n == n) next = sc->next;
        else sc = NULL;
        put_hist(b, c, n, &c->hist[n], sc, cmds);
    }
}

size_t as__journal_order_size(const as_order *o)
{
    as_wbuf m = {.measure = 1};
    as__journal_order(&m, o);
    return m.len;
}

size_t as__journal_case_bound(as_case *c, const as_case_vals *v, uint32_t more, size_t note_bytes)
{
    as_wbuf m = {.measure = 1};
    as__journal_case(&m, c, NULL);
    for (int i = 0, n = as__vals_evidence_count(v); i < n; i++) as__wbuf_str(&m, v->evidence[i]);
    /* an entry's actor is the order's buyer or shop, its note and extra part counted apart */
    as_hist h = {.flags = AS_HF_PARTY,
                 .role = strlen(c->order->buyer) > strlen(c->order->shop) ? AS_ROLE_BUYER
                                                                          : AS_ROLE_MERCHANT};
    for (uint32_t i = 0; i < more; i++) put_hist(&m, c, c->nhist + i, &h, NULL, NULL);
    return m.len + note_bytes + (size_t)more * HIST_WHY_BOUND;
}

/* ==========================================================================================
 * Reading
 * ======================================================================================== */

/* A string field as a new NUL-terminated copy (the caller frees it), of any length: no fixed
 * buffer stands between a value the API accepted and its restore. NULL when the field is
 * absent or the record bad; a failed copy marks the record bad and sets *oom. A NUL inside
 * the bytes marks the record bad too: no accepted value holds one (limits.h), and the copy
 * would silently end there (found by fuzz_record). */
/* A string field's bytes (*n of them, not terminated), or NULL when absent or bad; a NUL
 * inside marks the record bad (see take_str). */
static const char *str_bytes(as_rbuf *r, size_t *n)
{
    const char *p = as__rbuf_str(r, n);
    if (p == NULL || memchr(p, '\0', *n) == NULL) return p;
    r->bad = 1;
    return NULL;
}

static char *take_str(as_rbuf *r, int *oom)
{
    size_t n;
    const char *p = str_bytes(r, &n);
    if (p == NULL) return NULL;
    char *s = as__malloc(n + 1);
    if (s == NULL) {
        *oom = r->bad = 1;
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* Marks the record bad unless it was read to its last byte: bytes after the fields are not a
 * row this build wrote (a different layout, a torn or foreign blob), and reading past them
 * would restore something else than what was stored (found by fuzz_record). */
static void read_to_end(as_rbuf *r)
{
    if (r->pos != r->len) r->bad = 1;
}

static int layer_ok(uint8_t l)
{
    return l < AS_LAYER_COUNT || l == AS_NONE_U8;
}

/* The sentence of a record that does not decode; the store names the row (store.h). */
static int bad_row(as_error *err, int oom, const char *what)
{
    if (oom) return as__err(err, AS_ENOMEM, "out of memory");
    return as__err(err, AS_EIO, "its data does not decode as %s", what);
}

int as__journal_read_order(as_runtime *rt, const void *data, size_t len, as_order **out,
                           as_error *err)
{
    as_rbuf r = {data, len, 0, 0};
    int oom = 0;
    char *id = take_str(&r, &oom), *shop = take_str(&r, &oom), *buyer = take_str(&r, &oom);
    as_order head = {0}; /* the fixed-width members, until the order is allocated */
    get_order(&r, &head);
    uint16_t nitems = as__rbuf_u16(&r);
    as_order *o = NULL;
    if (!r.bad && id && shop && buyer && nitems > 0 && nitems <= AS_MAX_ORDER_LINES) {
        size_t idlen = strlen(id);
        o = as__calloc(1, sizeof *o + nitems * sizeof(as_item) + idlen + 1);
        if (o == NULL) oom = 1;
        else memcpy((char *)(o->items + nitems), id, idlen + 1);
    }
    if (o) {
        *o = head;
        o->id = (char *)(o->items + nitems);
        o->shop = as__intern(rt, shop);
        o->buyer = as__intern(rt, buyer);
        o->nitems = nitems;
        if (o->shop == NULL || o->buyer == NULL) oom = r.bad = 1;
    }
    for (int i = 0; o && i < nitems && !r.bad; i++) {
        as_item *it = &o->items[i];
        char *sku = take_str(&r, &oom), *cat = take_str(&r, &oom), *serial = take_str(&r, &oom);
        it->sku = sku ? as__intern(rt, sku) : NULL;
        it->category = cat ? as__intern(rt, cat) : NULL;
        it->serial = serial ? as__intern(rt, serial) : NULL;
        if ((sku && !it->sku) || (cat && !it->category) || (serial && !it->serial)) oom = 1;
        as__free(sku), as__free(cat), as__free(serial);
        get_item(&r, it);
        get_item_bits(&r, it);
        if (it->sku == NULL || it->category == NULL) r.bad = 1;
    }
    read_to_end(&r);
    int rc = 0;
    if (o == NULL || r.bad) {
        rc = bad_row(err, oom, "an order");
        as__free(o);
    } else {
        *out = o;
    }
    as__free(id), as__free(shop), as__free(buyer);
    return rc;
}

int as__journal_read_case(as_runtime *rt, const void *data, size_t len,
                          as_pack *(*pin)(void *ctx, int layer, const char *shop,
                                          const char *name, const char *version),
                          void *ctx, as_case **out, as_error *err)
{
    as_rbuf r = {data, len, 0, 0};
    int oom = 0;
    char *id = take_str(&r, &oom), *oid = take_str(&r, &oom);
    as_order *o = oid ? as__order_get(rt, oid) : NULL;
    uint8_t type = as__rbuf_u8(&r), nitems = as__rbuf_u8(&r);
    if (id == NULL || o == NULL || r.bad || nitems == 0 || type >= AS_TYPE_COUNT) {
        int rc = id && oid && o == NULL && !r.bad
                     ? as__err(err, AS_EIO, "its order '%s' is not stored, or could not be "
                               "restored", oid)
                     : bad_row(err, oom, "a case");
        as__free(id), as__free(oid);
        return rc;
    }
    as__free(oid);
    size_t idlen = strlen(id);
    as_case *c = as__calloc(1, sizeof *c + nitems * sizeof(as_case_item) + idlen + 1);
    if (c == NULL) {
        as__free(id);
        return as__err(err, AS_ENOMEM, "out of memory");
    }
    char *idcopy = (char *)(c->items + nitems);
    memcpy(idcopy, id, idlen + 1);
    c->id = idcopy;
    c->order = o;
    c->type = type;
    c->nitems = nitems;
    as__sched_node_init(&c->deadline);
    for (int i = 0; i < nitems; i++) {
        c->items[i].line = as__rbuf_u16(&r);
        c->items[i].qty = (int32_t)as__rbuf_u32(&r);
        if (c->items[i].line >= o->nitems) r.bad = 1;
    }
    if (!r.bad) c->category = o->items[c->items[0].line].category;
    for (int l = 0; l < AS_LAYER_COUNT; l++) {
        char *n = take_str(&r, &oom), *v = take_str(&r, &oom);
        /* a layer pins a name and a version, or nothing: one without the other is not a row
         * this build wrote, and the layer would silently restore unpinned (found by
         * fuzz_record) */
        if ((n == NULL) != (v == NULL)) r.bad = 1;
        c->rules[l] = n && v && !r.bad ? pin(ctx, l, o->shop, n, v) : NULL;
        int lost = n && v && !r.bad && c->rules[l] == NULL;
        int rc = 0;
        if (lost && err && err->code) rc = err->code; /* `pin` said why */
        else if (lost)
            rc = as__err(err, AS_EIO, "it pins %s rules %s@%s, which the store does not hold",
                         as__layer_name(l), n, v);
        as__free(n), as__free(v);
        if (rc) {
            as__free(c);
            as__free(id);
            return rc;
        }
    }
    as_case_vals *v = &c->v;
    get_vals(&r, v);
    uint32_t ne = as__rbuf_u32(&r);
    if (ne > AS_MAX_EVIDENCE) r.bad = 1;
    char *ev[AS_MAX_EVIDENCE] = {0};
    for (uint32_t i = 0; i < ne && !r.bad; i++)
        if ((ev[i] = take_str(&r, &oom)) == NULL) r.bad = 1;
    get_times(&r, c);
    c->deadline_layer = as__rbuf_u8(&r);
    c->refund_source = as__rbuf_u8(&r);
    c->refund_layer = as__rbuf_u8(&r);
    if (!layer_ok(c->deadline_layer) || c->refund_source >= AS_RS_COUNT ||
        !layer_ok(c->refund_layer))
        r.bad = 1;
    read_to_end(&r);
    if (!r.bad && ne && (v->evidence = as__evidence_copy((const char *const *)ev, (int)ne)) == NULL)
        oom = r.bad = 1;
    for (uint32_t i = 0; i < ne && i < AS_MAX_EVIDENCE; i++) as__free(ev[i]);
    int rc = 0;
    if (r.bad) {
        rc = bad_row(err, oom, "a case");
        as__free(v->evidence);
        as__free(c);
    } else {
        *out = c;
    }
    as__free(id);
    return rc;
}

int as__journal_read_event(as_runtime *rt, as_case *c, uint32_t n, const void *data, size_t len,
                           as_error *err)
{
    as_rbuf r = {data, len, 0, 0};
    int oom = 0;
    int64_t at = as__rbuf_i64(&r);
    char *a = take_str(&r, &oom), *note = take_str(&r, &oom); /* `note` owned until kept */
    uint8_t action = as__rbuf_u8(&r), role = as__rbuf_u8(&r), from = as__rbuf_u8(&r),
            to = as__rbuf_u8(&r), flags = as__rbuf_u8(&r);
    uint8_t rule = as__rbuf_u8(&r), refund_by = as__rbuf_u8(&r), deadline = as__rbuf_u8(&r);
    char *why = take_str(&r, &oom); /* owned until kept */
    int64_t refund = as__rbuf_i64(&r);
    read_to_end(&r);
    /* the actor is the order's party of the entry's role, and only that */
    const char *party = role == AS_ROLE_BUYER ? c->order->buyer : c->order->shop;
    if (a && ((role != AS_ROLE_BUYER && role != AS_ROLE_MERCHANT) || strcmp(a, party) != 0))
        r.bad = 1;
    if (a) flags |= AS_HF_PARTY;
    as__free(a);
    int hook = as__hist_hook(rule);
    if ((flags & ~AS_HF_ALL) || (rule & 0xC0) != 0xC0 || (refund_by & 0xF0) != 0xF0 ||
        (hook != AS_NONE_U8 && hook >= AS_HOOK_COUNT) ||
        (deadline != AS_NONE_U8 && deadline >= AS_DL_COUNT) ||
        (why && !as__answer_text_ok(why, strlen(why))) || refund < 0)
        r.bad = 1;
    int rc = 0;
    if (oom) rc = as__err(err, AS_ENOMEM, "out of memory");
    else if (n != c->nhist)
        rc = as__err(err, AS_EIO, "entry %u of case '%s' comes after %u entries: a gap or a "
                     "repeat in its history", n, c->id, c->nhist);
    else if (r.bad || action >= AS_ACT_COUNT || to >= AS_STATE_COUNT)
        rc = bad_row(err, 0, "a history entry");
    if (rc == 0 && c->nhist == c->caphist) {
        uint32_t cap = c->caphist ? c->caphist * 2 : 1;
        as_hist *h = as__realloc(c->hist, cap * sizeof *h);
        if (h == NULL) rc = as__err(err, AS_ENOMEM, "out of memory");
        else c->hist = h, c->caphist = cap;
    }
    if (rc) {
        as__free(note);
        as__free(why);
        return rc;
    }
    c->hist[c->nhist++] = (as_hist){at, refund, note, why, action, role, from, to, flags, rule,
                                    refund_by, deadline};
    c->saved_hist = c->nhist;
    return 0;
}

/* ==========================================================================================
 * Commands (store.h EVENT's second part): what a party asked, with every payload field, so
 * that a backtest can replay a shop's cases under other rules
 * ======================================================================================== */

/* An int field that is -1 when not given (reason, result, type) as one byte: FF for -1. */
static uint8_t small_u8(int v)
{
    return v < 0 ? AS_NONE_U8 : (uint8_t)v;
}

/* A command's first byte names its layout. CMD_FULL (schema 4, moved into events.cmd by the
 * migration to 5) has every field; CMD_GIVEN, what this build writes, only what the command
 * carries: a payload field whose AS_P_* bit is not given is not written (it reads back as
 * as__cmd_init leaves it), nor an open's fields on another action. Every byte here is written
 * again with each party's command, so none is spent on nothing. */
enum { CMD_FULL = 0, CMD_GIVEN = 1 };

static void put_command(as_wbuf *b, int64_t at_ms, const as_cmd *cmd)
{
    unsigned g = cmd->given;
    as__wbuf_u8(b, CMD_GIVEN);
    as__wbuf_i64(b, at_ms);
    as__wbuf_u8(b, (uint8_t)cmd->action);
    as__wbuf_u8(b, (uint8_t)cmd->who.role);
    as__wbuf_str(b, cmd->who.id);
    as__wbuf_i64(b, cmd->version);
    as__wbuf_u32(b, g);
    as__wbuf_str(b, cmd->text);
    as__wbuf_str(b, cmd->tracking);
    if (g & AS_P_SERIAL) as__wbuf_str(b, cmd->serial);
    if (g & AS_P_REASON) as__wbuf_u8(b, small_u8(cmd->reason));
    if (g & AS_P_RESULT) as__wbuf_u8(b, small_u8(cmd->result));
    if (g & AS_P_AMOUNT) as__wbuf_i64(b, cmd->amount);
    if (g & AS_P_SHIPPING) as__wbuf_i64(b, cmd->shipping_cost);
    if (g & AS_P_REQUESTED) as__wbuf_i64(b, cmd->requested_amount);
    if (g & AS_P_PERMILLE) as__wbuf_i64(b, cmd->bad_permille);
    if (g & AS_P_EVIDENCE) {
        as__wbuf_u8(b, (uint8_t)cmd->nevidence);
        for (int i = 0; i < cmd->nevidence; i++) as__wbuf_str(b, cmd->evidence[i]);
    }
    if (cmd->action != AS_ACT_OPEN) return;
    as__wbuf_str(b, cmd->order_id);
    as__wbuf_u8(b, small_u8(cmd->type));
    as__wbuf_u8(b, (uint8_t)cmd->nitems);
    for (int i = 0; i < cmd->nitems; i++) {
        as__wbuf_str(b, cmd->items[i].sku);
        as__wbuf_i64(b, cmd->items[i].qty);
    }
}

size_t as__cmd_stage_size(const as_cmd *cmd)
{
    as_wbuf m = {.measure = 1};
    put_command(&m, 0, cmd);
    return m.len;
}

int as__cmd_stage_reserve(as_cmd_stage *s, size_t bytes)
{
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        as_staged_cmd *v = as__realloc(s->v, cap * sizeof *v);
        if (v == NULL) return AS_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    return as__wbuf_reserve(&s->bytes, bytes);
}

void as__cmd_stage_put(as_cmd_stage *s, as_case *c, uint32_t n, int64_t at_ms, const as_cmd *cmd)
{
    size_t off = s->bytes.len;
    put_command(&s->bytes, at_ms, cmd);
    uint32_t self = (uint32_t)++s->len;
    s->v[self - 1] = (as_staged_cmd){n, 0, off, s->bytes.len - off};
    uint32_t *link = &c->cmd_head; /* to the end of the case's chain: entries come in order */
    while (*link) link = &s->v[*link - 1].next;
    *link = self;
}

void as__cmd_stage_reset(as_cmd_stage *s)
{
    s->len = 0;
    as__wbuf_reset(&s->bytes);
}

void as__cmd_stage_free(as_cmd_stage *s)
{
    as__free(s->v);
    as__wbuf_free(&s->bytes);
    *s = (as_cmd_stage){0};
}

/* A string field copied NUL-terminated into the arena at *at (which has room: each string
 * takes its length + 4 bytes in the record, + 1 here); NULL when absent. A NUL inside marks
 * the record bad, as take_str does. */
static const char *arena_str(as_rbuf *r, char **at)
{
    size_t n;
    const char *p = str_bytes(r, &n);
    if (p == NULL) return NULL;
    char *s = *at;
    memcpy(s, p, n);
    s[n] = '\0';
    *at += n + 1;
    return s;
}

static int from_u8(uint8_t v)
{
    return v == AS_NONE_U8 ? -1 : v;
}

void as__journal_cmd_free(as_journal_cmd *j)
{
    as__free(j->mem);
    j->mem = NULL;
}

int as__journal_read_command(const void *data, size_t len, as_journal_cmd *out, as_error *err)
{
    as_rbuf r = {data, len, 0, 0};
    as_cmd *cmd = &out->cmd;
    as__cmd_init(cmd, (as_principal){AS_ROLE_SYSTEM, NULL}, -1);
    cmd->nevidence = cmd->nitems = 0;
    out->mem = as__malloc(len + 1); /* every string of the record fits: see arena_str */
    if (out->mem == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    char *at = out->mem;
    uint8_t layout = as__rbuf_u8(&r);
    int full = layout == CMD_FULL; /* every field there, given or not */
    if (layout != CMD_FULL && layout != CMD_GIVEN) r.bad = 1;
    out->at_ms = as__rbuf_i64(&r);
    cmd->action = as__rbuf_u8(&r);
    cmd->who.role = as__rbuf_u8(&r);
    cmd->who.id = arena_str(&r, &at);
    cmd->version = as__rbuf_i64(&r);
    cmd->given = as__rbuf_u32(&r);
    unsigned g = full ? ~0u : cmd->given;
    cmd->text = arena_str(&r, &at);
    cmd->tracking = arena_str(&r, &at);
    if (g & AS_P_SERIAL) cmd->serial = arena_str(&r, &at);
    if (g & AS_P_REASON) cmd->reason = from_u8(as__rbuf_u8(&r));
    if (g & AS_P_RESULT) cmd->result = from_u8(as__rbuf_u8(&r));
    if (full) { /* schema 4 wrote the money fields in this order */
        cmd->amount = as__rbuf_i64(&r);
        cmd->shipping_cost = as__rbuf_i64(&r);
        cmd->requested_amount = as__rbuf_i64(&r);
        cmd->bad_permille = as__rbuf_i64(&r);
    } else {
        if (g & AS_P_AMOUNT) cmd->amount = as__rbuf_i64(&r);
        if (g & AS_P_SHIPPING) cmd->shipping_cost = as__rbuf_i64(&r);
        if (g & AS_P_REQUESTED) cmd->requested_amount = as__rbuf_i64(&r);
        if (g & AS_P_PERMILLE) cmd->bad_permille = as__rbuf_i64(&r);
    }
    if (g & AS_P_EVIDENCE) {
        unsigned ne = as__rbuf_u8(&r);
        if (ne > AS_MAX_EVIDENCE) r.bad = 1;
        for (unsigned i = 0; i < ne && !r.bad; i++)
            if ((cmd->evidence[i] = arena_str(&r, &at)) == NULL) r.bad = 1;
        if (!r.bad) cmd->nevidence = (int)ne;
    }
    if (full || cmd->action == AS_ACT_OPEN) {
        cmd->order_id = arena_str(&r, &at);
        cmd->type = from_u8(as__rbuf_u8(&r));
        unsigned ni = as__rbuf_u8(&r);
        if (ni > AS_MAX_CASE_ITEMS) r.bad = 1;
        for (unsigned i = 0; i < ni && !r.bad; i++) {
            if ((cmd->items[i].sku = arena_str(&r, &at)) == NULL) r.bad = 1;
            cmd->items[i].qty = as__rbuf_i64(&r);
        }
        if (!r.bad) cmd->nitems = (int)ni;
    }
    read_to_end(&r);
    /* only a party's accepted command is written: a party's role (with its id exactly when
     * the role has one), a known action, the payload bits this build names, an open with
     * its order, type and items and nothing else with any */
    int open = cmd->action == AS_ACT_OPEN;
    int with_id = cmd->who.role == AS_ROLE_BUYER || cmd->who.role == AS_ROLE_MERCHANT;
    if (r.bad || cmd->action >= AS_ACT_COUNT || cmd->who.role >= AS_ROLE_SYSTEM ||
        (cmd->who.id != NULL) != with_id || (cmd->given & ~0xFFu) || cmd->version < -1 ||
        (cmd->reason >= 0 && cmd->reason >= AS_REASON_COUNT) || cmd->result > 1 ||
        (open ? cmd->order_id == NULL || cmd->type < 0 || cmd->type >= AS_TYPE_COUNT ||
                    cmd->nitems == 0
              : cmd->order_id != NULL || cmd->type >= 0 || cmd->nitems != 0)) {
        as__journal_cmd_free(out);
        return bad_row(err, 0, "a command");
    }
    return 0;
}
