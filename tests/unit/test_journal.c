/* test_journal.c -- orders, cases and history entries as store records and back
 * (runtime/core/journal.c), the rows' data a restart restores (docs/design.md#storage-and-durability:
 * "On start the file restores orders, cases, histories, pinned pack versions, pending deadlines
 * ... A file that is ... damaged is refused").
 *
 * What journal.h promises and these tests hold it to:
 *   - a record read back is the value written: every field, at its limit (docs/design.md#limits);
 *   - as__journal_order_size is "the bytes as__journal_order writes"; as__journal_case_bound is
 *     "at least the bytes as__journal_case will write" once a change gives the case its staged
 *     values and `more` history entries;
 *   - a record this build did not write -- truncated, with bytes after its fields, or with a
 *     field out of its range -- is refused with an error and a sentence, never half-read; each
 *     record is read from a buffer of exactly its size, so that an over-read is an
 *     AddressSanitizer error in the sanitizer build. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/journal.h"
#include "core/runtime.h"
#include "request/codec.h"
#include "store/stores.h"
#include "unit_common.h"
#include "unit_fixtures.h"

/* ------------------------------------------------------------------------------------------
 * Records
 * ---------------------------------------------------------------------------------------- */

/* One record of a written buffer: its kind, its key fields and its data blob (pointing into
 * the buffer). */
typedef struct rec {
    int kind;
    const char *key;   /* the order's or case's id */
    size_t keylen;
    const char *order; /* a case record: its order's id */
    int64_t due;       /* a case record: the pending deadline, or INT64_MIN */
    uint32_t n;        /* an event record: its number */
    const unsigned char *blob;
    size_t len;
    const unsigned char *cmd; /* an event record: the command staged for it, or NULL */
    size_t cmdlen;
} rec;

/* Reads the next record at `r` (the layouts of journal.c's writers). */
static rec next_rec(as_rbuf *r)
{
    rec x = {0};
    size_t n;
    x.kind = as__rbuf_u8(r);
    x.key = as__rbuf_str(r, &x.keylen);
    if (x.kind == AS_REC_CASE) {
        x.order = as__rbuf_str(r, &n);
        x.due = as__rbuf_i64(r);
    } else if (x.kind == AS_REC_EVENT) {
        x.n = as__rbuf_u32(r);
    }
    x.blob = (const unsigned char *)as__rbuf_str(r, &x.len);
    if (x.kind == AS_REC_EVENT) x.cmd = (const unsigned char *)as__rbuf_str(r, &x.cmdlen);
    ck_assert_msg(!r->bad && x.blob != NULL, "the writer's output is not a record");
    return x;
}

/* `n` bytes of `p` in a block of exactly that size (the caller frees it). */
static unsigned char *exact(const void *p, size_t n)
{
    unsigned char *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    if (n) memcpy(b, p, n);
    return b;
}

static void key_is(const rec *x, const char *want)
{
    ck_assert_uint_eq(x->keylen, strlen(want));
    ck_assert_int_eq(memcmp(x->key, want, x->keylen), 0);
}

/* ------------------------------------------------------------------------------------------
 * A case with history, on a runtime with the bundled packs
 * ---------------------------------------------------------------------------------------- */

#define ORDER_O1                                                                           \
    "{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":["                          \
    "{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":2,\"price\":19900},"                 \
    "{\"sku\":\"T2\",\"category\":\"apparel\",\"qty\":1,\"price\":5000,\"serial\":\"SN-2\"}]," \
    "\"shipping_fee\":600,\"freight_insurance\":true,\"buyer_credit\":700}"

/* Order O1 paid at T0, shipped T0 + 1d, delivered T0 + 3d; case C1 (return_refund of T1 and
 * T2) opened at T0 + 4d and agreed: two history entries, a pending deadline, pinned packs. */
static as_runtime *world(as_case **c)
{
    as_error err = {0};
    as_runtime *rt = unit_runtime(&(as_options){.start_ms = FX_T0}, &err);
    ck_assert_msg(as_order_create_json(rt, ORDER_O1, &err) == 0, "%s", err.msg);
    as_runtime_advance(rt, FX_T0 + AS_DAY);
    ck_assert_int_eq(as_order_event(rt, "O1", "ship", &err), 0);
    as_runtime_advance(rt, FX_T0 + 3 * AS_DAY);
    ck_assert_int_eq(as_order_event(rt, "O1", "deliver", &err), 0);
    as_runtime_advance(rt, FX_T0 + 4 * AS_DAY);
    ck_assert_msg(as_case_open_json(rt, "buyer:B1",
                                    "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\","
                                    "\"reason\":\"no_reason\",\"items\":[{\"sku\":\"T1\","
                                    "\"qty\":2},{\"sku\":\"T2\",\"qty\":1}]}",
                                    &err) == 0,
                  "open: %s", err.msg);
    ck_assert_msg(as_case_act_json(rt, "merchant:S1", "C1", "agree", NULL, -1, &err) == 0,
                  "agree: %s", err.msg);
    *c = as__case_get(rt, "C1");
    ck_assert_ptr_nonnull(*c);
    ck_assert_uint_eq((*c)->nhist, 2);
    ck_assert((*c)->rules[AS_LAYER_PLATFORM] != NULL && (*c)->rules[AS_LAYER_CATEGORY] != NULL);
    ck_assert(as__sched_pending(&(*c)->deadline));
    return rt;
}

/* Gives C1 every value the journal keeps at a bound (docs/design.md#limits): 32 evidence
 * texts of 256 bytes, amounts of 10^10 fen, and history entries with 256-byte notes. */
static void at_limits(as_case *c, char texts[AS_MAX_EVIDENCE][AS_MAX_TEXT + 1])
{
    const char *ptrs[AS_MAX_EVIDENCE];
    for (int i = 0; i < AS_MAX_EVIDENCE; i++) {
        char tag[8];
        snprintf(tag, sizeof tag, "e%d", i);
        ptrs[i] = fx_max_text(texts[i], tag);
    }
    as__free(c->v.evidence);
    c->v.evidence = as__evidence_copy(ptrs, AS_MAX_EVIDENCE);
    ck_assert_ptr_nonnull(c->v.evidence);
    c->v.refund_amount = AS_MAX_MONEY;
    c->v.requested_amount = AS_MAX_MONEY;
    c->v.return_shipping = AS_MAX_MONEY;
    c->v.offer_amount = AS_MAX_MONEY;
    c->v.bad_permille = 1000;
    c->v.version = UINT32_MAX;
    c->v.flags = 0x7f;
    c->v.priority = 100;
    c->v.remedy = AS_REMEDY_REPAIR;
    c->v.reason = AS_REASON_SPOILED;
    c->ended_at = AS_MAX_TIME;
    c->repair_since = 0;
    c->repair_days = 365;
    c->deadline_layer = AS_LAYER_MERCHANT;
    c->refund_source = AS_RS_COUNT - 1;
    c->refund_layer = AS_LAYER_MERCHANT;
    char note[AS_MAX_TEXT + 1];
    for (uint32_t i = 0; i < c->nhist; i++) {
        as__free(c->hist[i].note);
        c->hist[i].note = as__strdup(fx_max_text(note, "n"));
        c->hist[i].flags |= AS_HF_DROPPED | AS_HF_FAILED;
    }
    c->hist[1].at_ms = AS_MAX_TIME;
    /* the provenance at its bounds: the last hook, layer and deadline kind, a 256-byte why,
     * every flag, a refund of the most a case may refund */
    c->hist[1].flags |= AS_HF_REFUND | AS_HF_FEE | AS_HF_RETURN_SHIP;
    c->hist[1].rule = as__hist_rule(AS_HOOK_COUNT - 1, AS_LAYER_MERCHANT);
    c->hist[1].refund_by = as__hist_refund_by(AS_RS_COUNT - 1, AS_LAYER_MERCHANT);
    c->hist[1].deadline = AS_DL_COUNT - 1;
    c->hist[1].refund = 3 * AS_MAX_MONEY;
    as__free(c->hist[1].why);
    c->hist[1].why = as__malloc(AS_ANSWER_TEXT_MAX + 1);
    ck_assert_ptr_nonnull(c->hist[1].why);
    memset(c->hist[1].why, 'w', AS_ANSWER_TEXT_MAX);
    c->hist[1].why[AS_ANSWER_TEXT_MAX] = '\0';
}

/* The stand-in for the store's pins: the original case's pack for a layer when the name and
 * version match, else NULL ("which the store does not hold"). */
static as_pack *pin_of(void *ctx, int layer, const char *shop, const char *name,
                       const char *version)
{
    const as_case *orig = ctx;
    (void)shop;
    as_pack *p = orig->rules[layer];
    return p && strcmp(p->name, name) == 0 && strcmp(p->version, version) == 0 ? p : NULL;
}

static void free_restored(as_case *c)
{
    for (uint32_t i = 0; i < c->nhist; i++) {
        as__free(c->hist[i].note);
        as__free(c->hist[i].why);
    }
    as__free(c->hist);
    as__free(c->v.evidence);
    as__free(c);
}

/* The case view without its deadline (a restored case's is scheduled by the caller). */
static json_t *view_sans_deadline(const as_case *c)
{
    json_t *j = as__case_json(c);
    ck_assert_ptr_nonnull(j);
    json_object_del(j, "deadline");
    return j;
}

/* ------------------------------------------------------------------------------------------
 * Round trips
 * ---------------------------------------------------------------------------------------- */

START_TEST(journal_order_round_trip_at_limits)
{
    as_error err = {0};
    as_runtime *rt = unit_runtime(&(as_options){.start_ms = FX_T0}, &err);
    as_runtime *back = unit_runtime(&(as_options){.start_ms = FX_T0}, &err); /* a restart */
    for (int pass = 0; pass < 3; pass++) {
        json_t *body = fx_order_at_limits(pass == 0 ? 0 : 1);
        const char *id = json_string_value(json_object_get(body, "id"));
        if (pass == 2) json_object_set_new(body, "id", json_string("O-nocredit"));
        id = json_string_value(json_object_get(body, "id"));
        if (pass == 2) json_object_del(body, "buyer_credit");
        ck_assert_msg(as__order_create(rt, body, &err) == 0, "%s", err.msg);
        as_order *o = as__order_get(rt, id);
        for (int i = 0; i < o->nitems; i++) o->items[i].attempts = i == 0 ? INT32_MAX : i;
        if (pass == 2) ck_assert_int_eq(o->buyer_credit, -1);

        as_wbuf b = {0};
        as__journal_order(&b, o);
        ck_assert(!b.oom);
        ck_assert_uint_eq(as__journal_order_size(o), b.len);
        as_rbuf r = {b.p, b.len, 0, 0};
        rec x = next_rec(&r);
        ck_assert_int_eq(x.kind, AS_REC_ORDER);
        key_is(&x, id);
        ck_assert_uint_eq(r.pos, r.len); /* one record */

        unsigned char *blob = exact(x.blob, x.len);
        as_order *got = NULL;
        ck_assert_msg(as__journal_read_order(back, blob, x.len, &got, &err) == 0, "%s", err.msg);
        ck_assert_ptr_nonnull(got);
        ck_assert_str_eq(got->id, id);
        ck_assert_int_eq(got->buyer_credit, o->buyer_credit);
        ck_assert_int_eq(got->items[0].attempts, INT32_MAX);
        json_t *a = as__order_json(o), *c = as__order_json(got);
        ck_assert_msg(json_equal(a, c), "order %d reads back otherwise", pass);
        /* and it writes the same bytes again */
        as_wbuf b2 = {0};
        as__journal_order(&b2, got);
        ck_assert_uint_eq(b2.len, b.len);
        ck_assert_int_eq(memcmp(b2.p, b.p, b.len), 0);
        as__wbuf_free(&b2);
        json_decref(a);
        json_decref(c);
        as__free(got);
        free(blob);
        as__wbuf_free(&b);
        json_decref(body);
    }
    as_runtime_free(back);
    as_runtime_free(rt);
}
END_TEST

START_TEST(journal_case_and_history_round_trip_at_limits)
{
    as_case *c;
    as_runtime *rt = world(&c);
    char texts[AS_MAX_EVIDENCE][AS_MAX_TEXT + 1];
    at_limits(c, texts);
    c->saved_hist = 0;

    as_wbuf b = {0};
    as__journal_case(&b, c, NULL);
    ck_assert(!b.oom);
    as_rbuf r = {b.p, b.len, 0, 0};
    rec cr = next_rec(&r);
    ck_assert_int_eq(cr.kind, AS_REC_CASE);
    key_is(&cr, "C1");
    ck_assert_int_eq(memcmp(cr.order, "O1", 2), 0);
    ck_assert_int_eq(cr.due, c->deadline.due_ms);
    rec ev[2];
    for (int i = 0; i < 2; i++) {
        ev[i] = next_rec(&r);
        ck_assert_int_eq(ev[i].kind, AS_REC_EVENT);
        key_is(&ev[i], "C1");
        ck_assert_uint_eq(ev[i].n, (uint32_t)i);
        ck_assert_ptr_null(ev[i].cmd); /* none staged */
    }
    ck_assert_uint_eq(r.pos, r.len); /* the case and its two entries, nothing more */

    as_error err = {0};
    unsigned char *blob = exact(cr.blob, cr.len);
    as_case *got = NULL;
    ck_assert_msg(as__journal_read_case(rt, blob, cr.len, pin_of, c, &got, &err) == 0, "%s",
                  err.msg);
    free(blob);
    for (uint32_t i = 0; i < 2; i++) {
        unsigned char *e = exact(ev[i].blob, ev[i].len);
        ck_assert_msg(as__journal_read_event(rt, got, i, e, ev[i].len, &err) == 0, "%s", err.msg);
        free(e);
    }
    ck_assert(!as__sched_pending(&got->deadline)); /* "its deadline not scheduled" */
    ck_assert_ptr_eq(got->order, c->order);
    for (int l = 0; l < AS_LAYER_COUNT; l++) ck_assert_ptr_eq(got->rules[l], c->rules[l]);
    ck_assert_uint_eq(got->saved_hist, 2);
    /* the fields the view does not show */
    ck_assert_int_eq(got->v.return_shipping, AS_MAX_MONEY);
    ck_assert_int_eq(got->v.offer_amount, AS_MAX_MONEY);
    ck_assert_uint_eq(got->v.flags, 0x7f);
    ck_assert_int_eq(got->ended_at, AS_MAX_TIME);
    ck_assert_int_eq(got->repair_since, 0);
    ck_assert_int_eq(got->repair_days, 365);
    ck_assert_str_eq(got->category, "apparel");
    for (int i = 0; i < 2; i++) {
        ck_assert_uint_eq(got->hist[i].flags, c->hist[i].flags);
        ck_assert_str_eq(got->hist[i].note, c->hist[i].note);
        ck_assert_ptr_ne(got->hist[i].note, c->hist[i].note); /* its own copy */
        ck_assert_uint_eq(got->hist[i].rule, c->hist[i].rule);
        ck_assert_uint_eq(got->hist[i].refund_by, c->hist[i].refund_by);
        ck_assert_uint_eq(got->hist[i].deadline, c->hist[i].deadline);
        ck_assert_int_eq(got->hist[i].refund, c->hist[i].refund);
        if (c->hist[i].why) ck_assert_str_eq(got->hist[i].why, c->hist[i].why);
        else ck_assert_ptr_null(got->hist[i].why);
    }
    ck_assert_uint_eq(got->deadline_layer, AS_LAYER_MERCHANT);
    ck_assert_uint_eq(got->refund_source, AS_RS_COUNT - 1);
    ck_assert_uint_eq(got->refund_layer, AS_LAYER_MERCHANT);
    json_t *a = view_sans_deadline(c), *g = view_sans_deadline(got);
    char *as = json_dumps(a, JSON_COMPACT), *gs = json_dumps(g, JSON_COMPACT);
    ck_assert_msg(json_equal(a, g), "\nwrote %.400s\n read %.400s", as, gs);
    free(as);
    free(gs);
    /* and it writes the same bytes again */
    got->saved_hist = 0;
    as_wbuf b2 = {0};
    as_sched s;
    as__sched_init(&s);
    ck_assert_int_eq(as__sched_add(&s, &got->deadline, c->deadline.due_ms), 0);
    as__journal_case(&b2, got, NULL);
    ck_assert_uint_eq(b2.len, b.len);
    ck_assert_int_eq(memcmp(b2.p, b.p, b.len), 0);
    as__sched_free(&s);
    as__wbuf_free(&b2);
    json_decref(a);
    json_decref(g);
    free_restored(got);
    as__wbuf_free(&b);
    as_runtime_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Sizes and bounds
 * ---------------------------------------------------------------------------------------- */

/* runtime.h as__durable_reserve: a change reserves as__journal_*_size/bound bytes before it is
 * made, so the bound must cover what the journal then writes. */
START_TEST(journal_size_and_bound_cover_what_is_written)
{
    as_case *c;
    as_runtime *rt = world(&c);
    /* the order: exactly its size, and measuring writes nothing */
    as_wbuf m = {.measure = 1};
    as__journal_order(&m, c->order);
    ck_assert_ptr_null(m.p);
    as_wbuf b = {0};
    as__journal_order(&b, c->order);
    ck_assert_uint_eq(m.len, b.len);
    ck_assert_uint_eq(as__journal_order_size(c->order), b.len);
    as__wbuf_free(&b);

    /* the case as it is, everything journaled: the bound covers the record */
    c->saved_hist = c->nhist;
    size_t bound0 = as__journal_case_bound(c, &c->v, 0, 0);
    as__journal_case(&b, c, NULL);
    ck_assert_uint_ge(bound0, b.len);
    size_t plain = b.len;
    as__wbuf_reset(&b);

    /* a change staged: 32 evidence texts of 256 bytes and one more entry with a 256-byte note
     * by the buyer; the bound taken before the change covers the record written after it */
    char texts[AS_MAX_EVIDENCE][AS_MAX_TEXT + 1];
    const char *ptrs[AS_MAX_EVIDENCE];
    for (int i = 0; i < AS_MAX_EVIDENCE; i++) ptrs[i] = fx_max_text(texts[i], "ev");
    as_case_vals nv = c->v;
    nv.evidence = as__evidence_copy(ptrs, AS_MAX_EVIDENCE);
    nv.version = UINT32_MAX;
    nv.requested_amount = AS_MAX_MONEY;
    char note[AS_MAX_TEXT + 1];
    fx_max_text(note, "n");
    size_t bound = as__journal_case_bound(c, &nv, 1, AS_MAX_TEXT);
    ck_assert_uint_gt(bound, plain + AS_MAX_EVIDENCE * AS_MAX_TEXT);
    as__free(c->v.evidence);
    c->v = nv;
    if (c->nhist == c->caphist) {
        c->hist = as__realloc(c->hist, (c->caphist + 1) * sizeof *c->hist);
        ck_assert_ptr_nonnull(c->hist);
        c->caphist++;
    }
    /* a new entry with the longest note and the longest why */
    char *why = as__malloc(AS_ANSWER_TEXT_MAX + 1);
    ck_assert_ptr_nonnull(why);
    memset(why, 'w', AS_ANSWER_TEXT_MAX);
    why[AS_ANSWER_TEXT_MAX] = '\0';
    c->hist[c->nhist++] = (as_hist){.at_ms = FX_T0 + 5 * AS_DAY, .refund = AS_MAX_MONEY,
                                    .note = as__strdup(note), .why = why,
                                    .action = AS_ACT_REVISE, .role = AS_ROLE_BUYER,
                                    .from = c->v.state, .to = c->v.state,
                                    .flags = AS_HF_PARTY | AS_HF_REFUND,
                                    .rule = as__hist_rule(AS_NONE_U8, AS_NONE_U8),
                                    .refund_by = as__hist_refund_by(AS_RS_DEFAULT, AS_NONE_U8),
                                    .deadline = AS_NONE_U8};
    as__journal_case(&b, c, NULL);
    ck_assert_msg(bound >= b.len, "bound %zu, written %zu", bound, b.len);
    ck_assert_uint_gt(b.len, plain);
    as__wbuf_free(&b);
    as_runtime_free(rt);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Damaged records
 * ---------------------------------------------------------------------------------------- */

/* The three blobs of C1 and its order (with history), owned by the caller. */
typedef struct blobs {
    as_wbuf ob, cb; /* the order's record; the case's and its entries' */
    rec order, kase, ev[2];
} blobs;

static void blobs_of(as_case *c, blobs *B)
{
    memset(B, 0, sizeof *B);
    as__journal_order(&B->ob, c->order);
    c->saved_hist = 0;
    as__journal_case(&B->cb, c, NULL);
    as_rbuf r = {B->ob.p, B->ob.len, 0, 0};
    B->order = next_rec(&r);
    as_rbuf r2 = {B->cb.p, B->cb.len, 0, 0};
    B->kase = next_rec(&r2);
    B->ev[0] = next_rec(&r2);
    B->ev[1] = next_rec(&r2);
}

static void blobs_free(blobs *B)
{
    as__wbuf_free(&B->ob);
    as__wbuf_free(&B->cb);
}

/* A fresh case to read entries onto: C1 restored without history. */
static as_case *host_of(as_runtime *rt, as_case *c, const blobs *B)
{
    as_case *h = NULL;
    as_error err = {0};
    ck_assert_int_eq(as__journal_read_case(rt, B->kase.blob, B->kase.len, pin_of, c, &h, &err), 0);
    return h;
}

/* Reads `len` bytes of `p` (in a block of exactly that size) with reader `which` (0 order,
 * 1 case, 2 the next entry onto `host`); returns the code, checked to come with a sentence
 * naming what did not decode when it is not 0. On success the value is freed (its re-encoding
 * compared first for orders). */
static int read_one(as_runtime *rt, as_case *c, as_case *host, int which, const void *p,
                    size_t len)
{
    static const char *const what[] = {"an order", "a case", "a history entry"};
    unsigned char *blob = exact(p, len);
    as_error err = {0};
    int rc;
    if (which == 0) {
        as_order *o = (as_order *)0x1;
        rc = as__journal_read_order(rt, blob, len, &o, &err);
        if (rc == 0) {
            as_wbuf w = {0};
            as__journal_order(&w, o);
            as_rbuf r = {w.p, w.len, 0, 0};
            rec x = next_rec(&r);
            ck_assert_msg(x.len == len && memcmp(x.blob, blob, len) == 0,
                          "an accepted order record does not write back the same");
            as__wbuf_free(&w);
            as__free(o);
        } else {
            ck_assert_ptr_eq(o, (as_order *)0x1); /* untouched */
        }
    } else if (which == 1) {
        as_case *k = (as_case *)0x1;
        rc = as__journal_read_case(rt, blob, len, pin_of, c, &k, &err);
        if (rc == 0) free_restored(k);
        else ck_assert_ptr_eq(k, (as_case *)0x1);
    } else {
        uint32_t n0 = host->nhist;
        rc = as__journal_read_event(rt, host, n0, blob, len, &err);
        if (rc) ck_assert_uint_eq(host->nhist, n0); /* nothing appended */
    }
    if (rc) {
        ck_assert_int_eq(err.code, rc);
        ck_assert_msg(err.msg[0] != '\0', "refused without a sentence");
        if (rc == AS_EIO && strstr(err.msg, "does not decode") != NULL)
            ck_assert_msg(strstr(err.msg, what[which]) != NULL, "\"%s\" is not about %s",
                          err.msg, what[which]);
    }
    free(blob);
    return rc;
}

/* docs/design.md#storage-and-durability: a damaged file is refused. Every prefix of every
 * record, and every record with one byte more, is refused as not decoding. */
START_TEST(journal_truncated_or_longer_records_refused)
{
    as_case *c;
    as_runtime *rt = world(&c);
    blobs B;
    blobs_of(c, &B);
    as_case *host = host_of(rt, c, &B);
    const rec *rs[4] = {&B.order, &B.kase, &B.ev[0], &B.ev[1]};
    for (int k = 0; k < 4; k++) {
        int which = k < 2 ? k : 2;
        for (size_t n = 0; n < rs[k]->len; n++)
            ck_assert_msg(read_one(rt, c, host, which, rs[k]->blob, n) == AS_EIO,
                          "record %d cut at %zu of %zu bytes was taken", k, n, rs[k]->len);
        unsigned char *longer = malloc(rs[k]->len + 1);
        memcpy(longer, rs[k]->blob, rs[k]->len);
        longer[rs[k]->len] = 0;
        ck_assert_msg(read_one(rt, c, host, which, longer, rs[k]->len + 1) == AS_EIO,
                      "record %d with a byte more was taken", k);
        free(longer);
        /* whole, it is taken (entries in their order) */
        ck_assert_int_eq(read_one(rt, c, host, which, rs[k]->blob, rs[k]->len), 0);
    }
    ck_assert_uint_eq(host->nhist, 2);
    free_restored(host);
    blobs_free(&B);
    as_runtime_free(rt);
}
END_TEST

/* Fields out of their range, each refused with its sentence (journal.c's readers). */
START_TEST(journal_fields_out_of_range_refused)
{
    as_case *c;
    as_runtime *rt = world(&c);
    blobs B;
    blobs_of(c, &B);
    as_case *host = host_of(rt, c, &B);
    unsigned char *p;
    /* order: O1, S1, B1, 5 instants, buyer_credit, then freight_insurance (a bool) */
    size_t fi = 3 * (4 + 2) + 5 * 8 + 2;
    p = exact(B.order.blob, B.order.len);
    ck_assert_int_eq(p[fi], 1);
    p[fi] = 2;
    ck_assert_int_eq(read_one(rt, c, host, 0, p, B.order.len), AS_EIO);
    p[fi] = 1;
    p[fi + 1] = 0, p[fi + 2] = 0; /* no lines */
    ck_assert_int_eq(read_one(rt, c, host, 0, p, B.order.len), AS_EIO);
    p[fi + 1] = AS_MAX_ORDER_LINES + 1; /* more lines than an order has */
    ck_assert_int_eq(read_one(rt, c, host, 0, p, B.order.len), AS_EIO);
    p[fi + 1] = 2;
    /* line 0: T1, apparel, no serial, price, qty, attempts, then its flag bits */
    size_t flags = fi + 3 + (4 + 2) + (4 + 7) + 4 + 8 + 4 + 4;
    ck_assert_int_eq(p[flags], 0);
    p[flags] = 8; /* a fourth flag bit */
    ck_assert_int_eq(read_one(rt, c, host, 0, p, B.order.len), AS_EIO);
    p[flags] = 0;
    p[4] = '\0'; /* a NUL inside the id: no accepted value holds one */
    ck_assert_int_eq(read_one(rt, c, host, 0, p, B.order.len), AS_EIO);
    p[4] = 'O';
    memset(p, 0xff, 4); /* the id's length: absent */
    ck_assert_int_eq(read_one(rt, c, host, 0, p, B.order.len), AS_EIO);
    p[0] = 0xfe; /* a length far past the record */
    ck_assert_int_eq(read_one(rt, c, host, 0, p, B.order.len), AS_EIO);
    free(p);

    /* case: C1, O1, then type, nitems, each item's line */
    size_t type = 2 * (4 + 2);
    p = exact(B.kase.blob, B.kase.len);
    ck_assert_int_eq(p[type], AS_TYPE_RETURN_REFUND);
    p[type] = AS_TYPE_COUNT;
    ck_assert_int_eq(read_one(rt, c, host, 1, p, B.kase.len), AS_EIO);
    p[type] = AS_TYPE_RETURN_REFUND;
    p[type + 1] = 0; /* no items */
    ck_assert_int_eq(read_one(rt, c, host, 1, p, B.kase.len), AS_EIO);
    p[type + 1] = 2;
    p[type + 2] = 2; /* line 2 of a two-line order */
    ck_assert_int_eq(read_one(rt, c, host, 1, p, B.kase.len), AS_EIO);
    p[type + 2] = 0;
    ck_assert_int_eq(read_one(rt, c, host, 1, p, B.kase.len), 0); /* restored as it was */
    free(p);

    /* entry: at, actor B1, no note, then action, role, from, to */
    size_t action = 8 + (4 + 2) + 4;
    p = exact(B.ev[0].blob, B.ev[0].len);
    ck_assert_int_eq(p[action], AS_ACT_OPEN);
    p[action] = AS_ACT_COUNT;
    ck_assert_int_eq(read_one(rt, c, host, 2, p, B.ev[0].len), AS_EIO);
    p[action] = AS_ACT_OPEN;
    p[action + 3] = AS_STATE_COUNT;
    ck_assert_int_eq(read_one(rt, c, host, 2, p, B.ev[0].len), AS_EIO);
    free(p);
    ck_assert_uint_eq(host->nhist, 0);

    free_restored(host);
    blobs_free(&B);
    as_runtime_free(rt);
}
END_TEST

/* Every single byte of every record changed (to its complement and to the next value): each
 * is refused with a sentence, or taken, and an order taken writes back the very bytes read.
 * Never a crash, an over-read (the sanitizer build) or a leak. */
START_TEST(journal_every_byte_flipped_is_refused_or_exact)
{
    as_case *c;
    as_runtime *rt = world(&c);
    char texts[AS_MAX_EVIDENCE][AS_MAX_TEXT + 1];
    at_limits(c, texts);
    blobs B;
    blobs_of(c, &B);
    const rec *rs[4] = {&B.order, &B.kase, &B.ev[0], &B.ev[1]};
    int refused = 0, taken = 0;
    size_t total = 0;
    for (int k = 0; k < 4; k++) total += rs[k]->len;
    ck_assert_uint_gt(rs[1]->len, AS_MAX_EVIDENCE * AS_MAX_TEXT); /* the case at its limits */
    for (int k = 0; k < 4; k++) {
        int which = k < 2 ? k : 2;
        unsigned char *p = exact(rs[k]->blob, rs[k]->len);
        for (size_t i = 0; i < rs[k]->len; i++) {
            for (int m = 0; m < 2; m++) {
                unsigned char was = p[i];
                p[i] = m ? (unsigned char)(was + 1) : (unsigned char)~was;
                as_case *host = which == 2 ? host_of(rt, c, &B) : NULL;
                if (read_one(rt, c, host, which, p, rs[k]->len)) refused++;
                else taken++;
                if (host) free_restored(host);
                p[i] = was;
            }
        }
        free(p);
    }
    ck_assert_uint_eq((size_t)(refused + taken), 2 * total);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_gt(taken, 0); /* an amount or an instant is any value */
    blobs_free(&B);
    as_runtime_free(rt);
}
END_TEST

static as_pack *pin_none(void *ctx, int layer, const char *shop, const char *name,
                         const char *version)
{
    (void)ctx, (void)layer, (void)shop, (void)name, (void)version;
    return NULL;
}

static as_pack *pin_says_why(void *ctx, int layer, const char *shop, const char *name,
                             const char *version)
{
    (void)layer, (void)shop, (void)name, (void)version;
    as__err(ctx, AS_ENOMEM, "out of memory");
    return NULL;
}

/* A case whose order is not restored, or whose pinned pack version the store does not hold,
 * is refused naming it (docs/design.md#pack-versions: a restart pins the same versions). */
START_TEST(journal_case_without_its_order_or_pins_refused)
{
    as_case *c;
    as_runtime *rt = world(&c);
    blobs B;
    blobs_of(c, &B);
    as_error err = {0};
    as_case *got = NULL;
    as_runtime *empty = unit_runtime(&(as_options){.start_ms = FX_T0}, &err);
    ck_assert_int_eq(as__journal_read_case(empty, B.kase.blob, B.kase.len, pin_of, c, &got, &err),
                     AS_EIO);
    ck_assert_str_eq(err.msg, "its order 'O1' is not stored, or could not be restored");
    ck_assert_ptr_null(got);
    as_runtime_free(empty);

    memset(&err, 0, sizeof err);
    ck_assert_int_eq(as__journal_read_case(rt, B.kase.blob, B.kase.len, pin_none, NULL, &got, &err),
                     AS_EIO);
    char want[200];
    snprintf(want, sizeof want, "it pins platform rules %s@%s, which the store does not hold",
             c->rules[0]->name, c->rules[0]->version);
    ck_assert_str_eq(err.msg, want);
    ck_assert_ptr_null(got);

    /* a pin that says why: its code and sentence are the answer */
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(
        as__journal_read_case(rt, B.kase.blob, B.kase.len, pin_says_why, &err, &got, &err),
        AS_ENOMEM);
    ck_assert_ptr_null(got);
    blobs_free(&B);
    as_runtime_free(rt);
}
END_TEST

/* History entries are read in their order: a gap or a repeat is refused naming the entry. */
START_TEST(journal_history_gap_or_repeat_refused)
{
    as_case *c;
    as_runtime *rt = world(&c);
    blobs B;
    blobs_of(c, &B);
    as_case *host = host_of(rt, c, &B);
    as_error err = {0};
    ck_assert_int_eq(as__journal_read_event(rt, host, 1, B.ev[1].blob, B.ev[1].len, &err), AS_EIO);
    ck_assert_str_eq(err.msg, "entry 1 of case 'C1' comes after 0 entries: a gap or a repeat in "
                              "its history");
    ck_assert_uint_eq(host->nhist, 0);
    ck_assert_int_eq(as__journal_read_event(rt, host, 0, B.ev[0].blob, B.ev[0].len, &err), 0);
    ck_assert_int_eq(as__journal_read_event(rt, host, 0, B.ev[0].blob, B.ev[0].len, &err), AS_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "entry 0 of case 'C1' comes after 1 entries"));
    ck_assert_uint_eq(host->nhist, 1);
    ck_assert_int_eq(as__journal_read_event(rt, host, 1, B.ev[1].blob, B.ev[1].len, &err), 0);
    ck_assert_uint_eq(host->nhist, 2);
    ck_assert_uint_eq(host->saved_hist, 2);
    free_restored(host);
    blobs_free(&B);
    as_runtime_free(rt);
}
END_TEST


/* ------------------------------------------------------------------------------------------
 * Commands (store.h COMMAND): a party's command with its whole payload
 * ---------------------------------------------------------------------------------------- */

static char cmd_text[AS_MAX_EVIDENCE][AS_MAX_TEXT + 1];
static char cmd_skus[AS_MAX_CASE_ITEMS][AS_MAX_ID + 1];

/* A string of `n` bytes, each `ch`, into `buf`. */
static const char *fill(char *buf, size_t n, char ch)
{
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

/* An open at its limits: 64-byte ids, 100 items, 32 evidence entries of 256 bytes. */
static void open_at_limits(as_cmd *cmd)
{
    static char id[AS_MAX_ID + 1], order[AS_MAX_ID + 1], buyer[AS_MAX_ID + 1];
    as__cmd_init(cmd, (as_principal){AS_ROLE_BUYER, fill(buyer, AS_MAX_ID, 'b')},
                 AS_ACT_OPEN);
    cmd->case_id = fill(id, AS_MAX_ID, 'c');
    cmd->order_id = fill(order, AS_MAX_ID, 'o');
    cmd->type = AS_TYPE_COUNT - 1;
    cmd->reason = AS_REASON_COUNT - 1;
    cmd->given = AS_P_REASON | AS_P_EVIDENCE | AS_P_REQUESTED | AS_P_PERMILLE;
    cmd->requested_amount = AS_MAX_MONEY;
    cmd->bad_permille = 1000;
    cmd->nevidence = AS_MAX_EVIDENCE;
    for (int i = 0; i < AS_MAX_EVIDENCE; i++)
        cmd->evidence[i] = fill(cmd_text[i], AS_MAX_TEXT, (char)('A' + i));
    cmd->nitems = AS_MAX_CASE_ITEMS;
    for (int i = 0; i < AS_MAX_CASE_ITEMS; i++) {
        snprintf(cmd_skus[i], sizeof cmd_skus[i], "%-64d", i);
        cmd->items[i].sku = cmd_skus[i];
        cmd->items[i].qty = i == 0 ? 1 : 10000;
    }
}

/* An action with every non-open field set at its limit. */
static void act_at_limits(as_cmd *cmd)
{
    static char shop[AS_MAX_ID + 1], text[AS_MAX_TEXT + 1],
        tracking[AS_MAX_TEXT + 1], serial[AS_MAX_TEXT + 1];
    as__cmd_init(cmd, (as_principal){AS_ROLE_MERCHANT, fill(shop, AS_MAX_ID, 's')},
                 AS_ACT_COUNT - 1);
    cmd->case_id = "C1";
    cmd->version = INT32_MAX;
    cmd->given = 0xFF;
    cmd->text = fill(text, AS_MAX_TEXT, 't');
    cmd->tracking = fill(tracking, AS_MAX_TEXT, 'k');
    cmd->serial = fill(serial, AS_MAX_TEXT, 'n');
    cmd->reason = 0;
    cmd->result = 1;
    cmd->amount = AS_MAX_MONEY;
    cmd->shipping_cost = AS_MAX_MONEY;
    cmd->requested_amount = 1;
    cmd->bad_permille = 1;
    cmd->nevidence = 1;
    cmd->evidence[0] = "";
}

static void str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) ck_assert_ptr_eq(a, b);
    else ck_assert_str_eq(a, b);
}

/* Stages `cmd` as the command of entry `n` of a case, checks its size, and returns its bytes
 * (the caller frees). */
static unsigned char *command_blob(const as_cmd *cmd, uint32_t n, int64_t at, size_t *len)
{
    as_case c = {0};
    as_cmd_stage st = {0};
    ck_assert_int_eq(as__cmd_stage_reserve(&st, as__cmd_stage_size(cmd)), 0);
    as__cmd_stage_put(&st, &c, n, at, cmd);
    ck_assert(!st.bytes.oom);
    ck_assert_uint_eq(st.len, 1);
    ck_assert_uint_eq(st.v[0].n, n);
    ck_assert_uint_eq(c.cmd_head, 1);
    *len = st.v[0].len;
    ck_assert_uint_eq(*len, as__cmd_stage_size(cmd));
    unsigned char *d = exact(st.bytes.p + st.v[0].off, *len);
    as__cmd_stage_free(&st);
    return d;
}

static void commands_equal(const as_cmd *a, const as_cmd *b)
{
    ck_assert_int_eq(a->action, b->action);
    ck_assert_int_eq(a->who.role, b->who.role);
    str_eq(a->who.id, b->who.id);
    ck_assert_int_eq(a->version, b->version);
    ck_assert_uint_eq(a->given, b->given);
    str_eq(a->text, b->text);
    str_eq(a->tracking, b->tracking);
    str_eq(a->serial, b->serial);
    ck_assert_int_eq(a->reason, b->reason);
    ck_assert_int_eq(a->result, b->result);
    ck_assert_int_eq(a->amount, b->amount);
    ck_assert_int_eq(a->shipping_cost, b->shipping_cost);
    ck_assert_int_eq(a->requested_amount, b->requested_amount);
    ck_assert_int_eq(a->bad_permille, b->bad_permille);
    ck_assert_int_eq(a->nevidence, b->nevidence);
    for (int i = 0; i < a->nevidence; i++) str_eq(a->evidence[i], b->evidence[i]);
    int open = a->action == AS_ACT_OPEN;
    str_eq(open ? a->order_id : NULL, b->order_id);
    ck_assert_int_eq(open ? a->type : -1, b->type);
    ck_assert_int_eq(open ? a->nitems : 0, b->nitems);
    for (int i = 0; open && i < a->nitems; i++) {
        str_eq(a->items[i].sku, b->items[i].sku);
        ck_assert_int_eq(a->items[i].qty, b->items[i].qty);
    }
}

START_TEST(journal_command_round_trip_at_limits)
{
    static as_cmd cmds[4];
    open_at_limits(&cmds[0]);
    act_at_limits(&cmds[1]);
    /* the least: logistics news with nothing given, and a buyer's bare action */
    as__cmd_init(&cmds[2], (as_principal){AS_ROLE_LOGISTICS, NULL}, AS_ACT_RETURN_DELIVERED);
    cmds[2].case_id = "C";
    as__cmd_init(&cmds[3], (as_principal){AS_ROLE_BUYER, "B"}, AS_ACT_WITHDRAW);
    cmds[3].case_id = "C";
    const int64_t ats[4] = {INT64_MAX, 0, -1, 1796319288346};
    /* store.h: "only the fields given": a bare action is its header and two absent strings,
     * and a value without its AS_P_ bit is not kept */
    ck_assert_uint_eq(as__cmd_stage_size(&cmds[3]), 1 + 8 + 1 + 1 + (4 + 1) + 8 + 4 + 4 + 4);
    static as_cmd ungiven;
    as__cmd_init(&ungiven, (as_principal){AS_ROLE_BUYER, "B"}, AS_ACT_WITHDRAW);
    ungiven.amount = 5;
    ungiven.reason = 1;
    ck_assert_uint_eq(as__cmd_stage_size(&ungiven), as__cmd_stage_size(&cmds[3]));
    for (int k = 0; k < 4; k++) {
        size_t len;
        unsigned char *d = command_blob(&cmds[k], (uint32_t)k * 1000u, ats[k], &len);
        as_journal_cmd j;
        as_error err = {0};
        ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), 0);
        ck_assert_int_eq(j.at_ms, ats[k]);
        commands_equal(&cmds[k], &j.cmd);
        /* written again from what was read, it is the same bytes */
        j.cmd.case_id = cmds[k].case_id;
        size_t len2;
        unsigned char *d2 = command_blob(&j.cmd, 0, j.at_ms, &len2);
        ck_assert_uint_eq(len2, len);
        ck_assert_int_eq(memcmp(d, d2, len), 0);
        free(d2);
        as__journal_cmd_free(&j);
        free(d);
    }
}
END_TEST

/* journal.h: "A case's staged commands are chained from its cmd_head ... in entry order": each
 * entry's record carries the command that made it and no other, though another case's
 * command was staged between them. */
START_TEST(journal_case_writes_each_staged_command_with_its_entry)
{
    as_case *c;
    as_runtime *rt = world(&c);
    ck_assert_uint_eq(c->nhist, 2);
    c->saved_hist = 0;
    static as_cmd open, agree, other;
    open_at_limits(&open);
    as__cmd_init(&agree, (as_principal){AS_ROLE_MERCHANT, "S1"}, AS_ACT_AGREE);
    as__cmd_init(&other, (as_principal){AS_ROLE_BUYER, "B9"}, AS_ACT_WITHDRAW);
    as_case elsewhere = {0};
    as_cmd_stage st = {0};
    ck_assert_int_eq(as__cmd_stage_reserve(&st, as__cmd_stage_size(&open)), 0);
    as__cmd_stage_put(&st, c, 0, 10, &open);
    ck_assert_int_eq(as__cmd_stage_reserve(&st, as__cmd_stage_size(&other)), 0);
    as__cmd_stage_put(&st, &elsewhere, 0, 11, &other);
    ck_assert_int_eq(as__cmd_stage_reserve(&st, as__cmd_stage_size(&agree)), 0);
    as__cmd_stage_put(&st, c, 1, 12, &agree);
    ck_assert_uint_eq(elsewhere.cmd_head, 2);

    as_wbuf b = {0};
    as__journal_case(&b, c, &st);
    ck_assert(!b.oom);
    as_rbuf r = {b.p, b.len, 0, 0};
    next_rec(&r);
    const int64_t ats[2] = {10, 12};
    const as_cmd *want[2] = {&open, &agree};
    for (uint32_t i = 0; i < 2; i++) {
        rec ev = next_rec(&r);
        ck_assert_uint_eq(ev.n, i);
        ck_assert_ptr_nonnull(ev.cmd);
        as_journal_cmd j;
        as_error err = {0};
        unsigned char *d = exact(ev.cmd, ev.cmdlen);
        ck_assert_msg(as__journal_read_command(d, ev.cmdlen, &j, &err) == 0, "%s", err.msg);
        ck_assert_int_eq(j.at_ms, ats[i]);
        ck_assert_int_eq(j.cmd.action, want[i]->action);
        ck_assert_uint_eq(ev.cmdlen, as__cmd_stage_size(want[i]));
        as__journal_cmd_free(&j);
        free(d);
    }
    ck_assert_uint_eq(r.pos, r.len);
    /* the bound a change reserves covers the commands it stages */
    size_t bound = as__journal_case_bound(c, &c->v, 0, 0);
    ck_assert_uint_le(b.len, bound + as__cmd_stage_size(&open) + as__cmd_stage_size(&agree));
    c->cmd_head = 0;
    as__cmd_stage_free(&st);
    as__wbuf_free(&b);
    as_runtime_free(rt);
}
END_TEST

/* A schema-4 command as that build wrote it (every field, an open's on every action), behind
 * the layout byte 00 the migration to schema 5 puts before it. */
static unsigned char *v4_command(const as_cmd *cmd, int64_t at, size_t *len)
{
    int open = cmd->action == AS_ACT_OPEN;
    as_wbuf b = {0};
    as__wbuf_u8(&b, 0);
    as__wbuf_i64(&b, at);
    as__wbuf_u8(&b, (uint8_t)cmd->action);
    as__wbuf_u8(&b, (uint8_t)cmd->who.role);
    as__wbuf_str(&b, cmd->who.id);
    as__wbuf_i64(&b, cmd->version);
    as__wbuf_u32(&b, cmd->given);
    as__wbuf_str(&b, cmd->text);
    as__wbuf_str(&b, cmd->tracking);
    as__wbuf_str(&b, cmd->serial);
    as__wbuf_u8(&b, cmd->reason < 0 ? 0xFF : (uint8_t)cmd->reason);
    as__wbuf_u8(&b, cmd->result < 0 ? 0xFF : (uint8_t)cmd->result);
    as__wbuf_i64(&b, cmd->amount);
    as__wbuf_i64(&b, cmd->shipping_cost);
    as__wbuf_i64(&b, cmd->requested_amount);
    as__wbuf_i64(&b, cmd->bad_permille);
    as__wbuf_u8(&b, (uint8_t)cmd->nevidence);
    for (int i = 0; i < cmd->nevidence; i++) as__wbuf_str(&b, cmd->evidence[i]);
    as__wbuf_str(&b, open ? cmd->order_id : NULL);
    as__wbuf_u8(&b, open ? (uint8_t)cmd->type : 0xFF);
    as__wbuf_u8(&b, (uint8_t)(open ? cmd->nitems : 0));
    for (int i = 0; open && i < cmd->nitems; i++) {
        as__wbuf_str(&b, cmd->items[i].sku);
        as__wbuf_i64(&b, cmd->items[i].qty);
    }
    ck_assert(!b.oom);
    *len = b.len;
    return b.p;
}

/* store.h: "0: a schema-4 command, moved": a file migrated from schema 4 keeps every command
 * readable, the same command this build would write of it. */
START_TEST(journal_schema_4_command_still_reads)
{
    static as_cmd cmds[3];
    open_at_limits(&cmds[0]);
    act_at_limits(&cmds[1]);
    as__cmd_init(&cmds[2], (as_principal){AS_ROLE_MERCHANT, "S1"}, AS_ACT_AGREE);
    for (int k = 0; k < 3; k++) {
        size_t len, len2;
        unsigned char *d = v4_command(&cmds[k], 1796319288346 + k, &len);
        as_journal_cmd j;
        as_error err = {0};
        ck_assert_msg(as__journal_read_command(d, len, &j, &err) == 0, "%d: %s", k, err.msg);
        ck_assert_int_eq(j.at_ms, 1796319288346 + k);
        commands_equal(&cmds[k], &j.cmd);
        unsigned char *now = command_blob(&cmds[k], 0, j.at_ms, &len2);
        ck_assert_uint_lt(len2, len); /* the layout of this build spends less */
        free(now);
        as__journal_cmd_free(&j);
        /* cut short, it is refused like any other */
        ck_assert_int_eq(as__journal_read_command(d, len - 1, &j, &err), AS_EIO);
        d[0] = 2; /* a layout no build wrote */
        ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), AS_EIO);
        as__free(d);
    }
}
END_TEST

START_TEST(journal_command_truncated_longer_or_foreign_refused)
{
    static as_cmd cmd;
    open_at_limits(&cmd);
    size_t len;
    unsigned char *d = command_blob(&cmd, 0, 5, &len);
    as_journal_cmd j;
    as_error err = {0};
    for (size_t n = 0; n < len; n++) {
        unsigned char *cut = exact(d, n);
        ck_assert_msg(as__journal_read_command(cut, n, &j, &err) == AS_EIO,
                      "a command cut at %zu of %zu bytes was taken", n, len);
        free(cut);
    }
    ck_assert_ptr_nonnull(strstr(err.msg, "does not decode as a command"));
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, d, len);
    longer[len] = 0;
    ck_assert_int_eq(as__journal_read_command(longer, len + 1, &j, &err), AS_EIO);
    free(longer);
    free(d);
    /* what a party's accepted command never is: a system action, a principal id the role
     * does not have (or lacks), an open without items, an action with an open's fields */
    as_cmd bad;
    as__cmd_init(&bad, (as_principal){AS_ROLE_SYSTEM, NULL}, AS_ACT_AGREE);
    bad.case_id = "C1";
    d = command_blob(&bad, 1, 5, &len);
    ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), AS_EIO);
    free(d);
    as__cmd_init(&bad, (as_principal){AS_ROLE_PLATFORM, "P"}, AS_ACT_REFUND_SUCCEEDED);
    bad.case_id = "C1";
    d = command_blob(&bad, 1, 5, &len);
    ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), AS_EIO);
    free(d);
    as__cmd_init(&bad, (as_principal){AS_ROLE_MERCHANT, NULL}, AS_ACT_AGREE);
    bad.case_id = "C1";
    d = command_blob(&bad, 1, 5, &len);
    ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), AS_EIO);
    free(d);
    open_at_limits(&cmd);
    cmd.nitems = 0;
    d = command_blob(&cmd, 0, 5, &len);
    ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), AS_EIO);
    free(d);
    /* the same open's bytes with the action byte (after the layout byte and the 8-byte time)
     * made agree's */
    open_at_limits(&cmd);
    d = command_blob(&cmd, 0, 5, &len);
    d[9] = AS_ACT_AGREE;
    ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), AS_EIO);
    d[9] = AS_ACT_COUNT;
    ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), AS_EIO);
    d[9] = AS_ACT_OPEN;
    ck_assert_int_eq(as__journal_read_command(d, len, &j, &err), 0);
    as__journal_cmd_free(&j);
    free(d);
}
END_TEST

static Suite *journal_suite(void)
{
    Suite *s = suite_create("journal");
    TCase *rt = tcase_create("round_trip");
    tcase_set_timeout(rt, 60);
    tcase_add_test(rt, journal_order_round_trip_at_limits);
    tcase_add_test(rt, journal_case_and_history_round_trip_at_limits);
    tcase_add_test(rt, journal_size_and_bound_cover_what_is_written);
    tcase_add_test(rt, journal_command_round_trip_at_limits);
    tcase_add_test(rt, journal_case_writes_each_staged_command_with_its_entry);
    tcase_add_test(rt, journal_schema_4_command_still_reads);
    suite_add_tcase(s, rt);
    TCase *bad = tcase_create("damaged");
    tcase_set_timeout(bad, 110);
    tcase_add_test(bad, journal_truncated_or_longer_records_refused);
    tcase_add_test(bad, journal_fields_out_of_range_refused);
    tcase_add_test(bad, journal_every_byte_flipped_is_refused_or_exact);
    tcase_add_test(bad, journal_case_without_its_order_or_pins_refused);
    tcase_add_test(bad, journal_history_gap_or_repeat_refused);
    tcase_add_test(bad, journal_command_truncated_longer_or_foreign_refused);
    suite_add_tcase(s, bad);
    return s;
}

int main(void)
{
    return unit_run(journal_suite(), 1);
}
