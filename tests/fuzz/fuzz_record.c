/* fuzz_record.c -- libFuzzer target: arbitrary bytes as the stored rows a restart decodes
 * (issue 11 item 1, "a fuzz target decodes stored records"). The first byte picks the reader:
 *   0  an ORDER row's data          as__journal_read_order  (durable.c v_order)
 *   1  a CASE row's data            as__journal_read_case   (v_case)
 *   2  an EVENT row's data          as__journal_read_event  (v_event), onto a stored case
 *   3  a batch of records           the memory store's commit (the batch record reader of
 *                                   store.h) and then its load, through the three readers
 *   4  an EVENT row's command       as__journal_read_command (`aftersale backtest`, db check)
 * and the rest of the input is the bytes. Whatever they are, the reader must not crash, read
 * out of bounds, leak or hit undefined behaviour, and it either refuses them with an error or
 * returns a value that renders (the case and order views) and re-encodes (journal.c's writer)
 * to exactly the same bytes: a row this build did not write is refused, not half-read.
 *
 * The runtime holds the orders that the seeds' cases name (ORDERS below; the seeds of
 * corpus_record/ come from a real database made with the same orders, see
 * make_corpus_record.py). A case's pinned packs are looked up by a stand-in that knows every
 * name and version (decoding, not pinning, is under test here).
 *
 * clang -fsanitize=fuzzer,address: scripts/fuzz record. Built without libFuzzer it is driven
 * by replay.c over corpus_record/, so the seeds run in every test build. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/aftersale.h"
#include "core/journal.h"
#include "core/runtime.h"
#include "request/codec.h"
#include "store/stores.h"

static as_runtime *rt;
static as_case *host; /* a stored case (not in the runtime's maps) that events are read onto */
static unsigned long runs;

/* The orders of make_corpus_record.py (same ids, lines and categories). */
static const char *const ORDERS[] = {
    "{\"id\":\"O1\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"T1\",\"category\":"
    "\"apparel\",\"qty\":2,\"price\":19900},{\"sku\":\"T2\",\"category\":\"apparel\",\"qty\":10000,"
    "\"price\":0}],\"shipping_fee\":500,\"buyer_credit\":800}",
    "{\"id\":\"O2\",\"shop\":\"S2\",\"buyer\":\"B2\",\"items\":[{\"sku\":\"P1\",\"category\":"
    "\"electronics\",\"qty\":1,\"price\":359900,\"serial\":\"490154203237518\"}]}",
    "{\"id\":\"O3\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":[{\"sku\":\"F1\",\"category\":"
    "\"fresh_food\",\"qty\":1,\"price\":16000,\"live\":true}]}",
};

/* ------------------------------------------------------------------------------------------
 * Pins: a pack shell per (layer, name, version), kept for the process
 * ---------------------------------------------------------------------------------------- */

#define MAX_SHELLS 256
static as_pack shells[MAX_SHELLS];
static int nshells;

static as_pack *pin(void *ctx, int layer, const char *shop, const char *name, const char *version)
{
    (void)ctx, (void)layer, (void)shop;
    for (int i = 0; i < nshells; i++)
        if (strcmp(shells[i].name, name) == 0 && strcmp(shells[i].version, version) == 0)
            return &shells[i];
    if (nshells == MAX_SHELLS) return NULL; /* "which the store does not hold" */
    as_pack *p = &shells[nshells];
    if ((p->name = strdup(name)) == NULL || (p->version = strdup(version)) == NULL) {
        free(p->name);
        p->name = NULL;
        return NULL;
    }
    nshells++;
    return p;
}

/* ------------------------------------------------------------------------------------------
 * Re-encoding
 * ---------------------------------------------------------------------------------------- */

/* The data blob of the record at `r` (kind, then `strs` strings, `ints` i64s, then the blob),
 * or abort when the writer's output does not have that shape. */
static const char *blob_of(as_rbuf *r, int kind, int strs, int u32s, int i64s, size_t *n)
{
    if (as__rbuf_u8(r) != kind) abort();
    for (int i = 0; i < strs; i++) as__rbuf_str(r, n);
    for (int i = 0; i < u32s; i++) as__rbuf_u32(r);
    for (int i = 0; i < i64s; i++) as__rbuf_i64(r);
    const char *p = as__rbuf_str(r, n);
    if (p == NULL || r->bad) abort();
    return p;
}

static void same(const char *what, const char *p, size_t n, const uint8_t *data, size_t len)
{
    if (n != len || memcmp(p, data, len) != 0) {
        fprintf(stderr, "fuzz_record: a decoded %s re-encodes to %zu other bytes (in: %zu)\n",
                what, n, len);
        abort();
    }
}

/* What the writer wrote into `b` (freed here) is one record of `kind` whose data blob is the
 * input's bytes again, and nothing after it. */
static void reencodes(as_wbuf *b, const char *what, int kind, int strs, int u32s, int i64s,
                      const uint8_t *data, size_t len)
{
    if (b->oom) abort();
    as_rbuf r = {b->p, b->len, 0, 0};
    size_t n;
    const char *p = blob_of(&r, kind, strs, u32s, i64s, &n);
    same(what, p, n, data, len);
    if (r.pos != r.len) abort();
    as__wbuf_free(b);
}

/* ------------------------------------------------------------------------------------------
 * The three readers
 * ---------------------------------------------------------------------------------------- */

static void check_order(const uint8_t *data, size_t len)
{
    as_order *o = NULL;
    as_error err = {0};
    int rc = as__journal_read_order(rt, data, len, &o, &err);
    if (rc) {
        if (err.code != rc || err.msg[0] == '\0') abort(); /* refused with a sentence */
        return;
    }
    json_t *j = as__order_json(o);
    json_decref(j);
    as_wbuf b = {0};
    as__journal_order(&b, o);
    reencodes(&b, "order", AS_REC_ORDER, 1, 0, 0, data, len);
    free(o);
}

static void check_case(const uint8_t *data, size_t len)
{
    as_case *c = NULL;
    as_error err = {0};
    int rc = as__journal_read_case(rt, data, len, pin, NULL, &c, &err);
    if (rc) {
        if (err.code != rc || err.msg[0] == '\0') abort();
        return;
    }
    json_t *j = as__case_json(c);
    json_decref(j);
    as_wbuf b = {0};
    as__journal_case(&b, c, NULL); /* no history entries: nhist == saved_hist == 0 */
    reencodes(&b, "case", AS_REC_CASE, 2, 0, 1, data, len);
    free(c->v.evidence);
    free(c);
}

static void check_event(const uint8_t *data, size_t len)
{
    as_error err = {0};
    uint32_t n0 = host->nhist;
    int rc = as__journal_read_event(rt, host, n0, data, len, &err);
    if (rc) {
        if (err.code != rc || err.msg[0] == '\0' || host->nhist != n0) abort();
        return;
    }
    if (host->nhist != n0 + 1) abort();
    json_t *j = as__case_json(host);
    json_decref(j);
    as_wbuf b = {0};
    host->saved_hist = n0; /* the writer appends the entries not yet journaled: this one */
    as__journal_case(&b, host, NULL);
    if (b.oom) abort();
    as_rbuf r = {b.p, b.len, 0, 0};
    size_t n;
    blob_of(&r, AS_REC_CASE, 2, 0, 1, &n);
    const char *p = blob_of(&r, AS_REC_EVENT, 1, 1, 0, &n);
    same("event", p, n, data, len);
    size_t cn;
    if (as__rbuf_str(&r, &cn) != NULL || r.pos != r.len) abort(); /* no command was staged */
    as__wbuf_free(&b);
    free(host->hist[n0].note);
    host->nhist = host->saved_hist = n0;
}

/* A command decodes to what re-encodes as exactly its bytes, or is refused with a sentence. */
static void check_command(const uint8_t *data, size_t len)
{
    as_error err = {0};
    as_journal_cmd j;
    int rc = as__journal_read_command(data, len, &j, &err);
    if (rc) {
        if (err.code != rc || err.msg[0] == '\0') abort();
        return;
    }
    as_cmd_stage st = {0};
    if (as__cmd_stage_reserve(&st, as__cmd_stage_size(&j.cmd)) != 0) abort();
    as__cmd_stage_put(&st, host, 7, j.at_ms, &j.cmd);
    host->cmd_head = 0;
    if (st.bytes.oom || st.v[0].len != as__cmd_stage_size(&j.cmd)) abort();
    const uint8_t *again = st.bytes.p + st.v[0].off;
    size_t again_len = st.v[0].len;
    as__journal_cmd_free(&j);
    if (data[0] == 0) {
        /* a schema-4 command is written again in this build's layout: that decodes, and
         * writes back as exactly itself */
        as_journal_cmd j2;
        if (as__journal_read_command(again, again_len, &j2, &err) != 0) abort();
        check_command(again, again_len);
        as__journal_cmd_free(&j2);
    } else {
        same("command", (const char *)again, again_len, data, len);
    }
    as__cmd_stage_free(&st);
}

/* ------------------------------------------------------------------------------------------
 * A batch through the memory store
 * ---------------------------------------------------------------------------------------- */

static int b_reserve(void *ud, size_t orders, size_t cases)
{
    (void)ud, (void)orders, (void)cases;
    return 0;
}

static int b_pack(void *ud, const char *shop, const char *name, const char *version,
                  const char *source, size_t len, int current, const char *sha256,
                  int64_t uploaded_at)
{
    (void)ud, (void)current, (void)uploaded_at;
    if (!shop || !name || !version || !source || !sha256 || source[len] != '\0') abort();
    return 0;
}

static int b_order(void *ud, const void *data, size_t len)
{
    (void)ud;
    check_order(data, len);
    return 0;
}

static int b_case(void *ud, const void *data, size_t len, int64_t due)
{
    (void)ud, (void)due;
    check_case(data, len);
    return 0;
}

static int b_event(void *ud, const char *case_id, uint32_t n, const void *data, size_t len)
{
    (void)ud, (void)n;
    if (case_id == NULL) abort();
    check_event(data, len);
    return 0;
}

static int b_outbox(void *ud, const char *key, const char *kind, const char *case_id,
                    int64_t amount)
{
    (void)ud, (void)amount;
    if (!key || !kind || !case_id) abort();
    return 0;
}

static int b_idem(void *ud, const char *key, int code, const char *message, int64_t at)
{
    (void)at;
    (void)ud, (void)code;
    if (!key || !message) abort();
    return 0;
}

static int b_ack(void *ud, const char *key, const char *url)
{
    (void)ud;
    if (!key || !url) abort();
    return 0;
}

static void check_batch(const uint8_t *data, size_t len)
{
    as_store *s = as__store_memory_new();
    if (s == NULL) return;
    as_error err = {0};
    if (s->engine->commit(s, data, len, &err) == 0) {
        as_store_visitor v = {NULL,    b_reserve, b_pack, b_order, b_case,
                              b_event, b_outbox,  b_idem, b_ack,   NULL};
        if (s->engine->load(s, &v, &err) != 0) abort(); /* the visitors go on */
    } else if (err.code == 0) {
        abort();
    }
    s->engine->close(s);
    as__store_memory_free(s);
}

/* ------------------------------------------------------------------------------------------
 * Setup
 * ---------------------------------------------------------------------------------------- */

static void teardown(void)
{
    if (host) {
        for (uint32_t i = 0; i < host->nhist; i++) free(host->hist[i].note);
        free(host->hist);
        free(host->v.evidence);
        free(host);
        host = NULL;
    }
    as_runtime_free(rt);
    rt = NULL;
}

static void setup(void)
{
    as_options o = {.start_ms = 1772323200000LL, .auto_pay = 1};
    as_error err = {0};
    rt = as_runtime_new(&o, &err);
    if (rt == NULL || as_runtime_load_packs_dir(rt, AS_SOURCE_ROOT "/plugins", &err) != 0) {
        fprintf(stderr, "fuzz_record: %s\n", err.msg);
        abort();
    }
    for (size_t i = 0; i < sizeof ORDERS / sizeof ORDERS[0]; i++)
        if (as_order_create_json(rt, ORDERS[i], &err) != 0) {
            fprintf(stderr, "fuzz_record: order %zu: %s\n", i, err.msg);
            abort();
        }
    as_order_event(rt, "O1", "deliver", &err);
    if (as_case_open_json(rt, "buyer:B1",
                          "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\","
                          "\"reason\":\"no_reason\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
                          &err) != 0) {
        fprintf(stderr, "fuzz_record: case: %s\n", err.msg);
        abort();
    }
    /* the host: C1 as stored, decoded (its history comes from the inputs) */
    as_case *c1 = as__case_get(rt, "C1");
    uint32_t saved = c1->saved_hist;
    c1->saved_hist = c1->nhist; /* the case record only */
    as_wbuf b = {0};
    as__journal_case(&b, c1, NULL);
    c1->saved_hist = saved;
    as_rbuf r = {b.p, b.len, 0, 0};
    size_t n;
    const char *p = blob_of(&r, AS_REC_CASE, 2, 0, 1, &n);
    if (as__journal_read_case(rt, p, n, pin, NULL, &host, &err) != 0) {
        fprintf(stderr, "fuzz_record: host case: %s\n", err.msg);
        abort();
    }
    as__wbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (rt && ++runs % 20000 == 0) teardown(); /* interned names of refused rows add up */
    if (rt == NULL) setup();
    if (size == 0) return 0;
    switch (data[0] % 5) {
    case 0: check_order(data + 1, size - 1); break;
    case 1: check_case(data + 1, size - 1); break;
    case 2: check_event(data + 1, size - 1); break;
    case 3: check_batch(data + 1, size - 1); break;
    default: check_command(data + 1, size - 1); break;
    }
    return 0;
}
