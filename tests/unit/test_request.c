/* test_request.c -- the request layer (runtime/request/: request.c, reads.c) through the public
 * API of aftersale.h: typed commands (as_runtime_command), the pipe protocol's lines
 * (as_runtime_request, docs/pipe.md) and the reads (as_case_view, as_case_read, as_order_read,
 * as_worklist_read, shop metrics, rules), on a headless runtime (virtual clock) with the
 * bundled packs.
 *
 * What the docs promise and these tests hold it to: the check order of
 * docs/design.md#check-order (and request.c's: who may send the op, an unknown case, the
 * idempotency key, the body's shape), the codes of docs/design.md#error-codes with the
 * sentences docs/api.md names, "a refused command changes nothing" (the case reads back the
 * same, its version unchanged), idempotency keys (docs/api.md#idempotency), the principals'
 * scopes (docs/design.md#parties-and-principals) and the actions each role may take in a state
 * (docs/design.md#transitions).
 *
 * Idempotency runs on a durable runtime (a real loop and a SQLite file of the test case's
 * scratch directory): the store keeps the keys, and a runtime without one applies every
 * command (aftersale.h, as_command.key; request_headless_runtime_keeps_no_keys). An "as" from
 * a non-platform principal is refused by what the key may send, before the body is looked at
 * (docs/design.md#check-order, step 1; request_as_from_anyone_but_the_platform_is_forbidden). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "aftersale/aftersale.h"
#include "core/timefmt.h"
#include "unit_common.h"
#include "unit_scratch.h"

#define T0 1772323200000ll /* 2026-03-01T00:00:00Z */

/* ==========================================================================================
 * A world: a runtime with three delivered orders
 * ======================================================================================== */

typedef struct W {
    as_runtime *rt;
    int durable;    /* on a real loop with a SQLite file */
    uv_loop_t loop; /* when durable */
    uv_idle_t spin; /* keeps the loop turning while pump() waits */
    unit_reply r;   /* the last answer */
} W;

static void spin_cb(uv_idle_t *h)
{
    (void)h;
}

/* Turns the loop until nothing submitted waits for the disk (a no-op when headless). */
static void pump(W *w)
{
    if (!w->durable) return;
    int64_t until = wall_ms() + 20000;
    uv_idle_start(&w->spin, spin_cb);
    while (!as_runtime_idle(w->rt)) {
        uv_run(&w->loop, UV_RUN_ONCE);
        ck_assert_msg(wall_ms() < until, "the runtime did not become idle in 20 s");
    }
    uv_idle_stop(&w->spin);
}

/* One typed command; asserts that `done` came exactly once, with the code the call returned.
 * The answer stays in w->r. */
static int cmd(W *w, as_op op, const char *who, const char *target, const char *body,
               const char *key)
{
    unit_reply_clear(&w->r);
    as_command c = {.op = op,
                    .principal = who,
                    .target = target,
                    .body = body,
                    .body_len = body ? strlen(body) : 0,
                    .key = key,
                    .key_len = key ? strlen(key) : 0};
    int rc = as_runtime_command(w->rt, &c, unit_reply_cb, &w->r);
    pump(w);
    ck_assert_int_eq(w->r.calls, 1);
    ck_assert_msg(w->r.code == rc, "returned %s, answered %s", as_err_name(rc),
                  as_err_name(w->r.code));
    if (rc == 0)
        ck_assert_str_eq(w->r.text, "");
    else
        ck_assert_msg(w->r.text[0] != '\0', "a refusal (%s) without a sentence", as_err_name(rc));
    return rc;
}

#define OK(w, expr)                                                                                \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        ck_assert_msg(rc_ == 0, "%s: %s (%s)", #expr, as_err_name(rc_), (w)->r.text);              \
    } while (0)

/* An action on a case: body {"action": ACTION, "payload": PAYLOAD?} (payload JSON or NULL). */
static int act(W *w, const char *who, const char *id, const char *action, const char *payload,
               const char *key)
{
    char body[1024];
    if (payload)
        snprintf(body, sizeof body, "{\"action\":\"%s\",\"payload\":%s}", action, payload);
    else
        snprintf(body, sizeof body, "{\"action\":\"%s\"}", action);
    return cmd(w, AS_OP_CASE_ACT, who, id, body, key);
}

/* The body of an order of two apparel lines: T1 x 2 at 19900 fen, T2 x 1 at 5000 fen. */
static const char *order_body(char *buf, size_t n, const char *id, const char *shop,
                              const char *buyer)
{
    snprintf(buf, n,
             "{\"id\":\"%s\",\"shop\":\"%s\",\"buyer\":\"%s\",\"items\":["
             "{\"sku\":\"T1\",\"category\":\"apparel\",\"qty\":2,\"price\":19900},"
             "{\"sku\":\"T2\",\"category\":\"apparel\",\"qty\":1,\"price\":5000}],"
             "\"shipping_fee\":0}",
             id, shop, buyer);
    return buf;
}

/* The body of a case of one unit of `sku`, with one photo of evidence. */
static const char *case_body(char *buf, size_t n, const char *id, const char *order,
                             const char *type, const char *reason, const char *sku)
{
    snprintf(buf, n,
             "{\"id\":\"%s\",\"order\":\"%s\",\"type\":\"%s\",\"reason\":\"%s\","
             "\"items\":[{\"sku\":\"%s\",\"qty\":1}],\"evidence\":[\"photo-1\"]}",
             id, order, type, reason, sku);
    return buf;
}

/* Opens a case as `who`; returns the code. */
static int open_case(W *w, const char *who, const char *id, const char *order, const char *type,
                     const char *reason, const char *sku)
{
    char body[512];
    return cmd(w, AS_OP_CASE_OPEN, who, NULL,
               case_body(body, sizeof body, id, order, type, reason, sku), NULL);
}

/* B1's partial refund CP on O1 (5000 fen asked, with evidence). */
static int open_partial(W *w)
{
    return cmd(w, AS_OP_CASE_OPEN, "buyer:B1", NULL,
               "{\"id\":\"CP\",\"order\":\"O1\",\"type\":\"partial_refund\",\"reason\":\"quality\","
               "\"items\":[{\"sku\":\"T1\",\"qty\":1}],\"evidence\":[\"p\"],"
               "\"requested_amount\":5000}",
               NULL);
}

/* Creates, ships and delivers an order (ship and deliver stamped at the clock's now). */
static void delivered_order(W *w, const char *id, const char *shop, const char *buyer)
{
    char body[512];
    OK(w, cmd(w, AS_OP_ORDER_CREATE, "platform", NULL,
              order_body(body, sizeof body, id, shop, buyer), NULL));
    OK(w, cmd(w, AS_OP_ORDER_SHIP, "platform", id, NULL, NULL));
    OK(w, cmd(w, AS_OP_ORDER_DELIVER, "platform", id, NULL, NULL));
}

/* A headless runtime at T0 (durable 0), or one on a loop with the file req.db of the test
 * case's directory (durable 1), with the bundled packs and the delivered orders O1 and O2 of
 * shop S1 for buyer B1 and O3 of shop S2 for buyer B2; the clock a day after delivery on the
 * virtual clock. */
static void world(W *w, int durable)
{
    memset(w, 0, sizeof *w);
    w->durable = durable;
    as_options o = {0};
    o.start_ms = T0;
    o.lua_memory = 8 << 20;
    if (durable) {
        ck_assert_int_eq(uv_loop_init(&w->loop), 0);
        ck_assert_int_eq(uv_idle_init(&w->loop, &w->spin), 0);
        o.loop = &w->loop;
    }
    as_error err;
    w->rt = unit_runtime(&o, &err);
    if (durable) {
        char db[128];
        snprintf(db, sizeof db, "%s/req.db", root);
        ck_assert_msg(as_runtime_attach_store(w->rt, db, &err) == 0, "attach: %s", err.msg);
    }
    delivered_order(w, "O1", "S1", "B1");
    delivered_order(w, "O2", "S1", "B1");
    delivered_order(w, "O3", "S2", "B2");
    as_runtime_advance(w->rt, T0 + AS_DAY);
}

static void bye(W *w)
{
    pump(w);
    as_runtime_free(w->rt);
    w->rt = NULL;
    unit_reply_clear(&w->r);
    if (w->durable) {
        uv_close((uv_handle_t *)&w->spin, NULL);
        uv_run(&w->loop, UV_RUN_NOWAIT);
        ck_assert_int_eq(uv_loop_close(&w->loop), 0);
    }
}

/* ------------------------------------------------------------------------------------------
 * Reading back
 * ---------------------------------------------------------------------------------------- */

static json_t *parse(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", je.text, text);
    return j;
}

/* A read: its answer in w->r, asserting one call with the code returned. */
static int read_done(W *w, int rc)
{
    pump(w);
    ck_assert_int_eq(w->r.calls, 1);
    ck_assert_int_eq(w->r.code, rc);
    return rc;
}

static int view(W *w, const char *who, const char *id)
{
    unit_reply_clear(&w->r);
    return read_done(w, as_case_view(w->rt, who, id, unit_reply_cb, &w->r));
}

/* The case as as_case_read shows it (the caller's reference). */
static json_t *case_doc(W *w, const char *id)
{
    unit_reply_clear(&w->r);
    int rc = read_done(w, as_case_read(w->rt, id, unit_reply_cb, &w->r));
    ck_assert_msg(rc == 0, "as_case_read %s: %s (%s)", id, as_err_name(rc), w->r.text);
    return parse(w->r.text);
}

static json_int_t case_version(W *w, const char *id)
{
    json_t *j = case_doc(w, id);
    json_int_t v = json_integer_value(json_object_get(j, "version"));
    json_decref(j);
    return v;
}

static const char *case_state(W *w, const char *id, char *buf, size_t n)
{
    json_t *j = case_doc(w, id);
    snprintf(buf, n, "%s", json_string_value(json_object_get(j, "state")));
    json_decref(j);
    return buf;
}
#define STATE_IS(w, id, want)                                                                      \
    do {                                                                                           \
        char st_[32];                                                                              \
        ck_assert_str_eq(case_state((w), (id), st_, sizeof st_), (want));                          \
    } while (0)

/* docs/design.md#check-order "a refused command changes nothing": `expr` is refused with
 * `want`, its sentence holds `needle` (NULL: any), and case `id` reads back byte for byte the
 * same, at the same version. */
#define REFUSED(w, id, want, needle, expr)                                                         \
    do {                                                                                           \
        char *b_ = as_case_get_json((w)->rt, (id));                                                \
        ck_assert_msg(b_ != NULL, "case %s is unknown", (id));                                     \
        json_int_t v_ = case_version((w), (id));                                                   \
        int rc_ = (expr);                                                                          \
        ck_assert_msg(rc_ == (want), "%s: %s (%s), want %s", #expr, as_err_name(rc_), (w)->r.text, \
                      as_err_name(want));                                                          \
        const char *n_ = (needle);                                                                 \
        ck_assert_msg(n_ == NULL || strstr((w)->r.text, n_) != NULL,                               \
                      "%s: message \"%s\" lacks \"%s\"", #expr, (w)->r.text, n_ ? n_ : "");        \
        char *a_ = as_case_get_json((w)->rt, (id));                                                \
        ck_assert_ptr_nonnull(a_);                                                                 \
        ck_assert_str_eq(b_, a_);                                                                  \
        ck_assert_int_eq(case_version((w), (id)), v_);                                             \
        as_free(b_);                                                                               \
        as_free(a_);                                                                               \
    } while (0)

/* The refusal's message holds `needle`. */
static void says(W *w, const char *needle)
{
    ck_assert_msg(strstr(w->r.text, needle) != NULL, "message \"%s\" lacks \"%s\"", w->r.text,
                  needle);
}

/* ==========================================================================================
 * 1. as_runtime_command: the check order
 * ======================================================================================== */

/* docs/api.md#authentication: forbidden for "anyone but the platform creating orders or
 * reporting order events". */
START_TEST(request_only_the_platform_sends_order_ops)
{
    W w;
    world(&w, 0);
    char body[512];
    ck_assert_int_eq(cmd(&w, AS_OP_ORDER_CREATE, "buyer:B1", NULL,
                         order_body(body, sizeof body, "O9", "S1", "B1"), NULL),
                     AS_EFORBIDDEN);
    says(&w, "only the platform creates orders");
    ck_assert_int_eq(cmd(&w, AS_OP_ORDER_CREATE, "merchant:S1", NULL, body, NULL), AS_EFORBIDDEN);
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_order_read(w.rt, "O9", unit_reply_cb, &w.r)), AS_ENOT_FOUND);

    /* an order event from a merchant or logistics changes nothing either */
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_order_read(w.rt, "O1", unit_reply_cb, &w.r)), 0);
    char *before = strdup(w.r.text);
    ck_assert_int_eq(cmd(&w, AS_OP_ORDER_CONFIRM, "merchant:S1", "O1", NULL, NULL), AS_EFORBIDDEN);
    says(&w, "only the platform reports order events");
    ck_assert_int_eq(cmd(&w, AS_OP_ORDER_CONFIRM, "logistics", "O1", NULL, NULL), AS_EFORBIDDEN);
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_order_read(w.rt, "O1", unit_reply_cb, &w.r)), 0);
    ck_assert_str_eq(w.r.text, before);
    ck_assert_ptr_null(strstr(before, "confirmed_at"));
    free(before);

    /* while the platform's own order works */
    OK(&w, cmd(&w, AS_OP_ORDER_CREATE, "platform", NULL, body, NULL));
    bye(&w);
}
END_TEST

/* docs/design.md#check-order: "2. Existence — unknown case or order: not_found", before
 * "3. Shape" (aftersale.h: "an unknown case is AS_ENOT_FOUND before anything about the body"). */
START_TEST(request_unknown_case_is_not_found_before_the_body)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    static const char *const bodies[] = {
        "{\"action\":\"agree\"}",
        "{",
        "[1]",
        "",
        "{\"action\":\"frobnicate\",\"bogus\":1}",
        "{\"action\":\"reject\",\"payload\":{\"reason\":7}}",
        "{\"action\":\"agree\",\"as\":7}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        REFUSED(&w, "C1", AS_ENOT_FOUND, "unknown case",
                cmd(&w, AS_OP_CASE_ACT, "merchant:S1", "C9", bodies[i], NULL));
        /* and before the idempotency key's shape */
        REFUSED(&w, "C1", AS_ENOT_FOUND, "unknown case",
                cmd(&w, AS_OP_CASE_ACT, "merchant:S1", "C9", bodies[i], "bad key"));
    }
    /* docs/design.md#limits: an identifier outside the limits is simply an unknown one */
    REFUSED(&w, "C1", AS_ENOT_FOUND, NULL,
            cmd(&w, AS_OP_CASE_ACT, "merchant:S1", "C 1", "{\"action\":\"agree\"}", NULL));
    REFUSED(&w, "C1", AS_ENOT_FOUND, NULL,
            cmd(&w, AS_OP_CASE_ACT, "merchant:S1", NULL, "{\"action\":\"agree\"}", NULL));
    /* an open on an unknown order, however malformed the rest */
    ck_assert_int_eq(cmd(&w, AS_OP_CASE_OPEN, "buyer:B1", NULL,
                         "{\"id\":\"C9\",\"order\":\"O9\",\"type\":\"gift\",\"items\":[]}", NULL),
                     AS_ENOT_FOUND);
    ck_assert_ptr_null(as_case_get_json(w.rt, "C9"));
    bye(&w);
}
END_TEST

/* docs/design.md#check-order: "3. Shape — unknown action, malformed JSON, an unknown key, a
 * value of the wrong type ...: bad_request". */
START_TEST(request_malformed_body_is_bad_request)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    const char *M = "merchant:S1";
    REFUSED(&w, "C1", AS_EBAD_REQUEST, "malformed JSON",
            cmd(&w, AS_OP_CASE_ACT, M, "C1", "{", NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, "malformed JSON",
            cmd(&w, AS_OP_CASE_ACT, M, "C1", "[\"agree\"]", NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, "malformed JSON",
            cmd(&w, AS_OP_CASE_ACT, M, "C1", "{\"action\":\"agree\",\"action\":\"reject\"}", NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, "'extra'",
            cmd(&w, AS_OP_CASE_ACT, M, "C1", "{\"action\":\"agree\",\"extra\":1}", NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, act(&w, M, "C1", "frobnicate", NULL, NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, cmd(&w, AS_OP_CASE_ACT, M, "C1", "{}", NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, "'version'",
            cmd(&w, AS_OP_CASE_ACT, M, "C1", "{\"action\":\"agree\",\"version\":\"1\"}", NULL));
    /* docs/design.md#actions-and-payloads: "A payload key not listed for its action is
     * bad_request" */
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, act(&w, M, "C1", "agree", "{\"amount\":1}", NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, act(&w, M, "C1", "reject", "{\"reason\":7}", NULL));
    /* a deadline's action named by a caller */
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, act(&w, M, "C1", "auto_agree", NULL, NULL));
    /* a body with a NUL byte inside its length */
    static const char nul[] = "{\"action\":\"agree\"}\0{}";
    as_command c = {.op = AS_OP_CASE_ACT,
                    .principal = M,
                    .target = "C1",
                    .body = nul,
                    .body_len = sizeof nul - 1};
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, as_runtime_command(w.rt, &c, NULL, NULL));
    /* the same action, well formed, is taken */
    OK(&w, cmd(&w, AS_OP_CASE_ACT, M, "C1", "{\"action\":\"agree\",\"version\":1}", NULL));
    ck_assert_int_eq(case_version(&w, "C1"), 2);
    bye(&w);
}
END_TEST

/* docs/design.md#limits: "anything outside these bounds is bad_request before anything is
 * stored or changed"; docs/api.md#limits: "The message names the field and the limit". */
START_TEST(request_values_over_the_limits_are_bad_request)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    char reason[300], payload[400];
    memset(reason, 'r', 257);
    reason[257] = '\0';
    snprintf(payload, sizeof payload, "{\"reason\":\"%s\"}", reason);
    REFUSED(&w, "C1", AS_EBAD_REQUEST, "must be 1-256 bytes",
            act(&w, "merchant:S1", "C1", "reject", payload, NULL));
    says(&w, "reason");
    /* at the bound it is taken */
    reason[256] = '\0';
    snprintf(payload, sizeof payload, "{\"reason\":\"%s\"}", reason);
    OK(&w, act(&w, "merchant:S1", "C1", "reject", payload, NULL));
    STATE_IS(&w, "C1", "rejected");

    /* an open whose id is 65 bytes, or with 33 photos, opens nothing */
    char id[80], body[2048];
    memset(id, 'K', 65);
    id[65] = '\0';
    ck_assert_int_eq(open_case(&w, "buyer:B1", id, "O2", "return_refund", "no_reason", "T1"),
                     AS_EBAD_REQUEST);
    says(&w, "'id' must be 1-64 bytes");
    ck_assert_ptr_null(as_case_get_json(w.rt, id));
    int n = snprintf(body, sizeof body,
                     "{\"id\":\"C2\",\"order\":\"O2\",\"type\":\"return_refund\","
                     "\"reason\":\"no_reason\",\"items\":[{\"sku\":\"T1\",\"qty\":1}],"
                     "\"evidence\":[");
    for (int i = 0; i < 33; i++)
        n += snprintf(body + n, sizeof body - n, "%s\"p%d\"", i ? "," : "", i);
    snprintf(body + n, sizeof body - n, "]}");
    ck_assert_int_eq(cmd(&w, AS_OP_CASE_OPEN, "buyer:B1", NULL, body, NULL), AS_EBAD_REQUEST);
    says(&w, "evidence");
    ck_assert_ptr_null(as_case_get_json(w.rt, "C2"));
    bye(&w);
}
END_TEST

/* docs/api.md#errors: "a malformed body is 400 before any party check, and a key posting a
 * well-formed action to a case that is not its party's gets 403". */
START_TEST(request_shape_comes_before_the_party)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, cmd(&w, AS_OP_CASE_ACT, "buyer:B2", "C1", "{", NULL));
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL,
            act(&w, "merchant:S2", "C1", "frobnicate", NULL, NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, NULL, act(&w, "buyer:B2", "C1", "withdraw", NULL, NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, NULL, act(&w, "merchant:S2", "C1", "agree", NULL, NULL));
    /* "or its role never takes this action": the case's own buyer agreeing */
    REFUSED(&w, "C1", AS_EFORBIDDEN, NULL, act(&w, "buyer:B1", "C1", "agree", NULL, NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, NULL, act(&w, "logistics", "C1", "withdraw", NULL, NULL));
    /* another buyer opening on B1's order */
    ck_assert_int_eq(open_case(&w, "buyer:B2", "C2", "O2", "return_refund", "no_reason", "T1"),
                     AS_EFORBIDDEN);
    ck_assert_ptr_null(as_case_get_json(w.rt, "C2"));
    bye(&w);
}
END_TEST

/* docs/design.md#parties-and-principals: "A caller is a principal: platform, merchant:SHOP,
 * buyer:ID or logistics." -- anything else is refused (forbidden) and changes nothing. */
START_TEST(request_unknown_principal_is_forbidden)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    char longid[80] = "buyer:";
    memset(longid + 6, 'B', 65);
    longid[71] = '\0';
    const char *const bad[] = {NULL,        "",         "nobody",     "buyer:", "buyer:B 1",
                               "merchant:", "Platform", "platform:x", longid,   "system"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        REFUSED(&w, "C1", AS_EFORBIDDEN, "unknown principal",
                act(&w, bad[i], "C1", "withdraw", NULL, NULL));
        ck_assert_int_eq(open_case(&w, bad[i], "C2", "O2", "return_refund", "no_reason", "T1"),
                         AS_EFORBIDDEN);
        ck_assert_ptr_null(as_case_get_json(w.rt, "C2"));
    }
    bye(&w);
}
END_TEST

/* docs/api.md#acting-for-another-party-as: "An "as" that is not a string is 400 (a shape
 * error); "as" from any other key is 403, and so is an "as" that is not a principal" -- and
 * docs/design.md#check-order step 1: before anything is looked up, so also when the rest of
 * the body is malformed. */
START_TEST(request_as_from_anyone_but_the_platform_is_forbidden)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    REFUSED(&w, "C1", AS_EFORBIDDEN, "only the platform",
            cmd(&w, AS_OP_CASE_ACT, "buyer:B1", "C1",
                "{\"action\":\"withdraw\",\"as\":\"buyer:B1\"}", NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, "only the platform",
            cmd(&w, AS_OP_CASE_ACT, "merchant:S1", "C1",
                "{\"action\":\"agree\",\"as\":\"platform\"}", NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, "only the platform",
            cmd(&w, AS_OP_CASE_ACT, "logistics", "C1",
                "{\"action\":\"delivered\",\"as\":\"logistics\"}", NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, "only the platform key may act as another party",
            cmd(&w, AS_OP_CASE_ACT, "buyer:B1", "C1",
                "{\"action\":\"frobnicate\",\"payload\":{\"bogus\":1},"
                "\"as\":\"merchant:S1\"}",
                NULL));
    ck_assert_int_eq(cmd(&w, AS_OP_CASE_OPEN, "merchant:S1", NULL,
                         "{\"as\":\"buyer:B1\",\"id\":\"C2\",\"order\":\"O2\",\"type\":"
                         "\"return_refund\",\"reason\":\"no_reason\",\"items\":[{\"sku\":\"T1\","
                         "\"qty\":1}]}",
                         NULL),
                     AS_EFORBIDDEN);
    says(&w, "only the platform");
    ck_assert_ptr_null(as_case_get_json(w.rt, "C2"));
    /* from the platform: not a string is a shape error, not a principal forbidden */
    REFUSED(&w, "C1", AS_EBAD_REQUEST, "'as'",
            cmd(&w, AS_OP_CASE_ACT, "platform", "C1", "{\"action\":\"agree\",\"as\":7}", NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, "unknown principal",
            cmd(&w, AS_OP_CASE_ACT, "platform", "C1", "{\"action\":\"agree\",\"as\":\"nobody\"}",
                NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, "unknown principal",
            cmd(&w, AS_OP_CASE_ACT, "platform", "C1", "{\"action\":\"agree\",\"as\":\"merchant:\"}",
                NULL));
    bye(&w);
}
END_TEST

/* docs/design.md#parties-and-principals: "The platform may act as another principal; the
 * command is then checked and recorded as that principal's." */
START_TEST(request_platform_acts_as_a_party)
{
    W w;
    world(&w, 0);
    OK(&w, cmd(&w, AS_OP_CASE_OPEN, "platform", NULL,
               "{\"as\":\"buyer:B1\",\"id\":\"C1\",\"order\":\"O1\",\"type\":\"return_refund\","
               "\"reason\":\"no_reason\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
               NULL));
    json_t *c = case_doc(&w, "C1");
    ck_assert_ptr_null(json_object_get(c, "as"));
    json_t *h = json_object_get(c, "history");
    ck_assert_int_eq(json_array_size(h), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 0), "actor")), "buyer:B1");
    json_decref(c);

    /* checked as that principal's: the buyer never agrees, another shop is no party */
    REFUSED(&w, "C1", AS_EFORBIDDEN, NULL,
            cmd(&w, AS_OP_CASE_ACT, "platform", "C1", "{\"action\":\"agree\",\"as\":\"buyer:B1\"}",
                NULL));
    REFUSED(&w, "C1", AS_EFORBIDDEN, NULL,
            cmd(&w, AS_OP_CASE_ACT, "platform", "C1",
                "{\"action\":\"agree\",\"as\":\"merchant:S2\"}", NULL));
    /* docs/api.md: without "as" the platform takes its own actions "and no others" */
    REFUSED(&w, "C1", AS_EFORBIDDEN, NULL, act(&w, "platform", "C1", "agree", NULL, NULL));

    OK(&w, cmd(&w, AS_OP_CASE_ACT, "platform", "C1",
               "{\"action\":\"agree\",\"as\":\"merchant:S1\",\"version\":1}", NULL));
    c = case_doc(&w, "C1");
    h = json_object_get(c, "history");
    ck_assert_int_eq(json_array_size(h), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 1), "actor")),
                     "merchant:S1");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 1), "action")), "agree");
    ck_assert_str_eq(json_string_value(json_object_get(c, "state")), "awaiting_return");
    json_decref(c);
    bye(&w);
}
END_TEST

/* aftersale.h, as_command.key: "Keys are kept by the store ...: a runtime without one ...
 * checks a key's shape and applies every command." */
START_TEST(request_headless_runtime_keeps_no_keys)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    OK(&w, act(&w, "merchant:S1", "C1", "agree", NULL, "agree-C1"));
    ck_assert_int_eq(act(&w, "merchant:S1", "C1", "agree", NULL, "agree-C1"), AS_EINVALID_STATE);
    ck_assert_int_eq(act(&w, "merchant:S1", "C1", "agree", NULL, "no key"), AS_EBAD_REQUEST);
    bye(&w);
}
END_TEST

/* ==========================================================================================
 * 2. Idempotency keys (on a durable runtime: the store keeps them)
 * ======================================================================================== */

static void keyed_world(W *w, int durable)
{
    if (durable) root_make();
    world(w, durable);
    OK(w, open_case(w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
}

static void keyed_bye(W *w)
{
    int durable = w->durable;
    bye(w);
    if (durable) root_remove();
}

/* docs/design.md#transitions: "A command may carry an idempotency key: the same key again
 * returns the first answer and applies nothing". */
START_TEST(request_key_applies_once)
{
    W w;
    keyed_world(&w, 1);
    OK(&w, act(&w, "merchant:S1", "C1", "agree", NULL, "agree-C1"));
    ck_assert_int_eq(case_version(&w, "C1"), 2);
    char *before = as_case_get_json(w.rt, "C1");
    /* the retry: the first answer (ok), nothing applied -- not even a history entry */
    OK(&w, act(&w, "merchant:S1", "C1", "agree", NULL, "agree-C1"));
    char *after = as_case_get_json(w.rt, "C1");
    ck_assert_str_eq(before, after);
    as_free(before);
    as_free(after);
    /* a different request under the used key gets the first answer too */
    OK(&w, act(&w, "merchant:S1", "C1", "reject", "{\"reason\":\"late\"}", "agree-C1"));
    STATE_IS(&w, "C1", "awaiting_return");
    /* without a key, a second agree is an ordinary second command */
    ck_assert_int_eq(act(&w, "merchant:S1", "C1", "agree", NULL, NULL), AS_EINVALID_STATE);
    ck_assert_int_eq(case_version(&w, "C1"), 2);
    keyed_bye(&w);
}
END_TEST

/* docs/api.md#idempotency: "Refusals are remembered too: a retry of a refused request is refused
 * the same way, even if the case has moved on since." */
START_TEST(request_key_repeats_a_refusal)
{
    W w;
    keyed_world(&w, 1);
    ck_assert_int_eq(act(&w, "buyer:B1", "C1", "escalate", NULL, "esc-1"), AS_EINVALID_STATE);
    char *first = strdup(w.r.text);
    OK(&w, act(&w, "merchant:S1", "C1", "reject", "{\"reason\":\"worn\"}", NULL));
    STATE_IS(&w, "C1", "rejected");
    json_int_t v = case_version(&w, "C1");
    /* now escalate would be taken, but the key answers as it did */
    ck_assert_int_eq(act(&w, "buyer:B1", "C1", "escalate", NULL, "esc-1"), AS_EINVALID_STATE);
    ck_assert_str_eq(w.r.text, first);
    STATE_IS(&w, "C1", "rejected");
    ck_assert_int_eq(case_version(&w, "C1"), v);
    free(first);
    /* a fresh key runs it */
    OK(&w, act(&w, "buyer:B1", "C1", "escalate", NULL, "esc-2"));
    STATE_IS(&w, "C1", "platform_review");
    keyed_bye(&w);
}
END_TEST

/* aftersale.h as_command.key: "scoped to `principal`"; docs/api.md#idempotency: "the same
 * text sent with two different keys is two different keys". */
START_TEST(request_key_is_per_principal)
{
    W w;
    keyed_world(&w, 1);
    OK(&w, act(&w, "merchant:S1", "C1", "agree", NULL, "k1"));
    STATE_IS(&w, "C1", "awaiting_return");
    /* the buyer's k1 is its own: the withdrawal runs and closes the case */
    OK(&w, act(&w, "buyer:B1", "C1", "withdraw", NULL, "k1"));
    STATE_IS(&w, "C1", "closed");
    /* and the merchant's k1 still answers the merchant's first answer */
    OK(&w, act(&w, "merchant:S1", "C1", "agree", NULL, "k1"));
    STATE_IS(&w, "C1", "closed");
    keyed_bye(&w);
}
END_TEST

/* docs/api.md#idempotency: "A key is an identifier (1–64 bytes of A-Z a-z 0-9 . _ : -, not . or
 * ..); any other is refused with 400 bad_request and nothing is applied." */
START_TEST(request_key_outside_the_limits_is_bad_request)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    char k65[80], k64[80];
    memset(k65, 'k', 65);
    k65[65] = '\0';
    memcpy(k64, k65, 64);
    k64[64] = '\0';
    const char *const bad[] = {"", ".", "..", "a b", "k\n1", "k/1", "k\xc3\xa9", k65};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REFUSED(&w, "C1", AS_EBAD_REQUEST, "'Idempotency-Key' must be 1-64 bytes",
                act(&w, "merchant:S1", "C1", "agree", NULL, bad[i]));
    /* a key inside its length and outside its bytes */
    as_command c = {.op = AS_OP_CASE_ACT,
                    .principal = "merchant:S1",
                    .target = "C1",
                    .body = "{\"action\":\"agree\"}",
                    .body_len = 18,
                    .key = "k1\0x",
                    .key_len = 4};
    REFUSED(&w, "C1", AS_EBAD_REQUEST, NULL, as_runtime_command(w.rt, &c, NULL, NULL));
    /* and an order under a bad key is not created */
    char body[512];
    ck_assert_int_eq(cmd(&w, AS_OP_ORDER_CREATE, "platform", NULL,
                         order_body(body, sizeof body, "O9", "S1", "B1"), "a b"),
                     AS_EBAD_REQUEST);
    ck_assert_int_eq(cmd(&w, AS_OP_ORDER_CREATE, "platform", NULL, body, "..."), 0);
    /* 64 bytes is an identifier */
    OK(&w, act(&w, "merchant:S1", "C1", "agree", NULL, k64));
    STATE_IS(&w, "C1", "awaiting_return");
    bye(&w);
}
END_TEST

/* ==========================================================================================
 * 3-4. The pipe protocol
 * ======================================================================================== */

/* One pipe line of `len` bytes: the answer line parsed (the caller's reference), asserting one
 * call with the code returned; the code stays in w->r.code. */
static json_t *pipe_bytes(W *w, const char *line, size_t len)
{
    unit_reply_clear(&w->r);
    int rc = as_runtime_request(w->rt, line, len, unit_reply_cb, &w->r);
    pump(w);
    ck_assert_int_eq(w->r.calls, 1);
    ck_assert_int_eq(w->r.code, rc);
    json_t *a = parse(w->r.text);
    ck_assert_msg(json_is_object(a) && json_object_get(a, "id") != NULL, "answer %s", w->r.text);
    return a;
}

static json_t *pipe_line(W *w, const char *line)
{
    return pipe_bytes(w, line, strlen(line));
}

/* The answer is {"id": ID, "error": CODE, "message": ...} with CODE the name of `want` and a
 * message holding `needle` (NULL: any non-empty). */
static void pipe_refused(W *w, json_t *a, int want, const char *id_json, const char *needle)
{
    int code = w->r.code;
    char *text = json_dumps(a, JSON_COMPACT);
    ck_assert_msg(code == want, "%s: %s, want %s", text, as_err_name(code), as_err_name(want));
    ck_assert_str_eq(json_string_value(json_object_get(a, "error")), as_err_name(want));
    ck_assert_ptr_null(json_object_get(a, "ok"));
    const char *msg = json_string_value(json_object_get(a, "message"));
    ck_assert_msg(msg && msg[0], "%s: no message", text);
    if (needle) ck_assert_msg(strstr(msg, needle), "%s: message lacks \"%s\"", text, needle);
    char *id = json_dumps(json_object_get(a, "id"), JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_str_eq(id, id_json);
    free(id);
    free(text);
    json_decref(a);
}

static void pipe_ok(W *w, json_t *a, const char *id_json)
{
    int code = w->r.code;
    char *text = json_dumps(a, JSON_COMPACT);
    ck_assert_msg(code == 0, "%s", text);
    ck_assert_ptr_eq(json_object_get(a, "ok"), json_true());
    char *id = json_dumps(json_object_get(a, "id"), JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert_str_eq(id, id_json);
    free(id);
    free(text);
    json_decref(a);
}

/* The case without what names it (its id and its order's). */
static json_t *case_shape(W *w, const char *id)
{
    json_t *j = case_doc(w, id);
    json_object_del(j, "id");
    json_object_del(j, "order");
    return j;
}

static void same_shape(W *w, const char *a, const char *b)
{
    json_t *x = case_shape(w, a), *y = case_shape(w, b);
    char *sx = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS),
         *sy = json_dumps(y, JSON_COMPACT | JSON_SORT_KEYS);
    ck_assert_msg(json_equal(x, y), "%s: %s\n%s: %s", a, sx, b, sy);
    free(sx);
    free(sy);
    json_decref(x);
    json_decref(y);
}

/* docs/pipe.md: "It is the embedding API (aftersale.h) with a wire" -- a command gives the same
 * outcome typed and as a line. */
START_TEST(request_typed_and_pipe_agree)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    pipe_ok(&w,
            pipe_line(&w,
                      "{\"id\":1,\"op\":\"case.open\",\"as\":\"buyer:B1\",\"case\":{\"id\":\"C2\","
                      "\"order\":\"O2\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
                      "\"items\":[{\"sku\":\"T1\",\"qty\":1}],\"evidence\":[\"photo-1\"]}}"),
            "1");
    same_shape(&w, "C1", "C2");

    as_runtime_advance(w.rt, T0 + AS_DAY + AS_HOUR);
    OK(&w,
       cmd(&w, AS_OP_CASE_ACT, "merchant:S1", "C1", "{\"action\":\"agree\",\"version\":1}", NULL));
    pipe_ok(&w,
            pipe_line(&w,
                      "{\"id\":\"two\",\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C2\","
                      "\"action\":\"agree\",\"version\":1}"),
            "\"two\"");
    same_shape(&w, "C1", "C2");

    /* a refusal: the same code and sentence both ways */
    ck_assert_int_eq(act(&w, "merchant:S1", "C1", "reject", "{\"reason\":\"x\"}", NULL),
                     AS_EINVALID_STATE);
    char *typed = strdup(w.r.text);
    json_t *a =
        pipe_line(&w, "{\"id\":3,\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C2\","
                      "\"action\":\"reject\",\"payload\":{\"reason\":\"x\"}}");
    ck_assert_str_eq(json_string_value(json_object_get(a, "message")), typed);
    pipe_refused(&w, a, AS_EINVALID_STATE, "3", NULL);
    free(typed);
    same_shape(&w, "C1", "C2");

    /* and case.get answers the case JSON of as_case_read */
    a = pipe_line(&w, "{\"id\":4,\"op\":\"case.get\",\"case\":\"C2\"}");
    ck_assert_int_eq(w.r.code, 0);
    json_t *direct = case_doc(&w, "C2");
    ck_assert(json_equal(json_object_get(a, "case"), direct));
    json_decref(direct);
    json_decref(a);
    bye(&w);
}
END_TEST

static const char GOOD_LINE[] = "{\"id\":\"after\",\"op\":\"case.get\",\"case\":\"C1\"}";

/* The runtime still serves: a good line afterwards is answered with the case. */
static void still_serving(W *w)
{
    json_t *a = pipe_line(w, GOOD_LINE);
    ck_assert_int_eq(w->r.code, 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "case"), "id")), "C1");
    json_decref(a);
}

/* docs/pipe.md: "Answers: {"id": ..., "ok": true} or {"id": ..., "error": "code", "message":
 * "..."} with the error codes" -- a line that is no JSON object is bad_request (id null). */
START_TEST(request_pipe_malformed_line_is_answered)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    const char *const lines[] = {"{",
                                 "",
                                 "not json",
                                 "[1,2]",
                                 "\"case.get\"",
                                 "null",
                                 "{\"id\":1,\"op\":\"case.get\"",
                                 "{\"id\":1}{\"id\":2}"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        pipe_refused(&w, pipe_line(&w, lines[i]), AS_EBAD_REQUEST, "null", "malformed JSON");
        still_serving(&w);
    }
    /* a NULL line of length 0 too */
    pipe_refused(&w, pipe_bytes(&w, NULL, 0), AS_EBAD_REQUEST, "null", "malformed JSON");
    still_serving(&w);
    bye(&w);
}
END_TEST

/* docs/pipe.md's table of ops: any other op is refused (bad_request), its id echoed. */
START_TEST(request_pipe_unknown_op_is_answered)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    pipe_refused(&w, pipe_line(&w, "{\"id\":\"x\",\"op\":\"case.frob\",\"case\":\"C1\"}"),
                 AS_EBAD_REQUEST, "\"x\"", "unknown op 'case.frob'");
    still_serving(&w);
    pipe_refused(&w, pipe_line(&w, "{\"id\":[1,{\"a\":2}],\"case\":\"C1\"}"), AS_EBAD_REQUEST,
                 "[1,{\"a\":2}]", "'op'");
    still_serving(&w);
    pipe_refused(&w, pipe_line(&w, "{\"id\":5,\"op\":7}"), AS_EBAD_REQUEST, "5", "'op'");
    still_serving(&w);
    /* a case op without a principal */
    pipe_refused(
        &w, pipe_line(&w, "{\"id\":6,\"op\":\"case.act\",\"case\":\"C1\",\"action\":\"agree\"}"),
        AS_EFORBIDDEN, "6", "unknown principal");
    ck_assert_int_eq(case_version(&w, "C1"), 1);
    still_serving(&w);
    bye(&w);
}
END_TEST

/* docs/design.md#limits: "Every value is checked where it enters — HTTP, the pipe, ... — and
 * anything outside these bounds is bad_request before anything is stored or changed." */
START_TEST(request_pipe_nul_and_limits_are_answered)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    /* a raw NUL inside the line, and an escaped one in a string */
    static const char raw[] =
        "{\"id\":1,\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\","
        "\"action\":\"agree\"}\0";
    pipe_refused(&w, pipe_bytes(&w, raw, sizeof raw), AS_EBAD_REQUEST, "null", "malformed JSON");
    still_serving(&w);
    pipe_refused(&w,
                 pipe_line(&w,
                           "{\"id\":2,\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\","
                           "\"action\":\"reject\",\"payload\":{\"reason\":\"a\\u0000b\"}}"),
                 AS_EBAD_REQUEST, "null", "malformed JSON");
    ck_assert_int_eq(case_version(&w, "C1"), 1);
    still_serving(&w);

    /* a key of 65 bytes, a case id of 65 bytes, a shop of 65 bytes */
    char k65[66], line[1024];
    memset(k65, 'k', 65);
    k65[65] = '\0';
    snprintf(line, sizeof line,
             "{\"id\":3,\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\","
             "\"action\":\"agree\",\"key\":\"%s\"}",
             k65);
    pipe_refused(&w, pipe_line(&w, line), AS_EBAD_REQUEST, "3", "'key' must be 1-64 bytes");
    ck_assert_int_eq(case_version(&w, "C1"), 1);
    still_serving(&w);
    snprintf(line, sizeof line,
             "{\"id\":4,\"op\":\"case.open\",\"as\":\"buyer:B1\",\"case\":{\"id\":\"%s\","
             "\"order\":\"O2\",\"type\":\"return_refund\",\"reason\":\"no_reason\","
             "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}}",
             k65);
    pipe_refused(&w, pipe_line(&w, line), AS_EBAD_REQUEST, "4", "'id' must be 1-64 bytes");
    ck_assert_ptr_null(as_case_get_json(w.rt, k65));
    still_serving(&w);
    snprintf(line, sizeof line,
             "{\"id\":5,\"op\":\"rules.load\",\"shop\":\"%s\",\"source\":\"return {}\"}", k65);
    pipe_refused(&w, pipe_line(&w, line), AS_EBAD_REQUEST, "5", "'shop' must be 1-64 bytes");
    still_serving(&w);
    /* an unknown case by get */
    pipe_refused(&w, pipe_line(&w, "{\"id\":6,\"op\":\"case.get\",\"case\":\"C9\"}"), AS_ENOT_FOUND,
                 "6", NULL);
    /* and a good write after all of it is applied */
    pipe_ok(&w,
            pipe_line(&w, "{\"id\":7,\"op\":\"case.act\",\"as\":\"merchant:S1\",\"case\":\"C1\","
                          "\"action\":\"agree\",\"version\":1}"),
            "7");
    STATE_IS(&w, "C1", "awaiting_return");
    bye(&w);
}
END_TEST

/* ==========================================================================================
 * 5. Reads
 * ======================================================================================== */

/* docs/design.md#parties-and-principals: "A buyer principal reaches only its own orders' cases,
 * a merchant principal only its shop's." (aftersale.h: "the platform and logistics see every
 * case") */
START_TEST(request_view_is_scoped_to_the_principal)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    OK(&w, open_case(&w, "buyer:B2", "C3", "O3", "return_refund", "no_reason", "T1"));
    const char *const sees[] = {"buyer:B1", "merchant:S1", "platform", "logistics"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_msg(view(&w, sees[i], "C1") == 0, "%s: %s", sees[i], w.r.text);
        json_t *j = parse(w.r.text);
        ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "C1");
        ck_assert(json_is_array(json_object_get(j, "actions")));
        /* docs/api.md: each history entry names the pack versions it ran under: the pins */
        json_t *rules = json_object_get(j, "rules"), *e;
        size_t k;
        ck_assert_int_gt(json_object_size(rules), 0);
        json_array_foreach(json_object_get(j, "history"), k, e)
            ck_assert(json_equal(json_object_get(e, "rules"), rules));
        json_decref(j);
    }
    const char *const not_c1[] = {"buyer:B2", "merchant:S2", "buyer:S1", "merchant:B1"};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_msg(view(&w, not_c1[i], "C1") == AS_EFORBIDDEN, "%s saw C1", not_c1[i]);
        says(&w, "cannot see");
    }
    ck_assert_int_eq(view(&w, "buyer:B2", "C3"), 0);
    ck_assert_int_eq(view(&w, "merchant:S2", "C3"), 0);
    ck_assert_int_eq(view(&w, "buyer:B1", "C3"), AS_EFORBIDDEN);
    ck_assert_int_eq(view(&w, "merchant:S1", "C3"), AS_EFORBIDDEN);
    ck_assert_int_eq(view(&w, "nobody", "C1"), AS_EFORBIDDEN);
    ck_assert_int_eq(view(&w, NULL, "C1"), AS_EFORBIDDEN);
    bye(&w);
}
END_TEST

/* docs/design.md#limits: "A lookup by an identifier outside the limits (a case id in a URL) is
 * simply an unknown one: not_found." */
START_TEST(request_view_of_an_unknown_case_is_not_found)
{
    W w;
    world(&w, 0);
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    const char *const ids[] = {"C9", "c1", "C 1", "", NULL};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        ck_assert_int_eq(view(&w, "platform", ids[i]), AS_ENOT_FOUND);
        says(&w, "unknown case");
        ck_assert_int_eq(view(&w, "buyer:B1", ids[i]), AS_ENOT_FOUND);
        unit_reply_clear(&w.r);
        ck_assert_int_eq(read_done(&w, as_case_read(w.rt, ids[i], unit_reply_cb, &w.r)),
                         AS_ENOT_FOUND);
    }
    bye(&w);
}
END_TEST

/* The "actions" of `who`'s view of `id` are exactly `want` (as a set). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void actions_are(W *w, const char *who, const char *id, const char *want_csv)
{
    ck_assert_msg(view(w, who, id) == 0, "%s on %s: %s", who, id, w->r.text);
    json_t *j = parse(w->r.text), *acts = json_object_get(j, "actions"), *e;
    ck_assert(json_is_array(acts));
    const char *got[32];
    size_t n = json_array_size(acts), i;
    ck_assert_uint_le(n, 32);
    json_array_foreach(acts, i, e) got[i] = json_string_value(e);
    qsort(got, n, sizeof got[0], cmp_str);
    char have[512] = "";
    for (i = 0; i < n; i++) {
        strcat(have, i ? "," : "");
        strcat(have, got[i]);
    }
    /* the wanted list, sorted the same way */
    char buf[512], *parts[32], *save = NULL;
    size_t m = 0;
    snprintf(buf, sizeof buf, "%s", want_csv);
    for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save))
        parts[m++] = p;
    qsort(parts, m, sizeof parts[0], cmp_str);
    char wanted[512] = "";
    for (i = 0; i < m; i++) {
        strcat(wanted, i ? "," : "");
        strcat(wanted, parts[i]);
    }
    ck_assert_msg(strcmp(have, wanted) == 0, "%s on %s (%s): actions [%s], want [%s]", who, id,
                  json_string_value(json_object_get(j, "state")), have, wanted);
    json_decref(j);
}

/* docs/design.md#transitions, state requested: "merchant agree ... merchant reject ... merchant
 * offer (partial_refund) ... buyer revise ... buyer withdraw"; "any: logistics return_delivered,
 * delivered"; docs/api.md: the platform sees "its own actions plus the buyer's and merchant's". */
START_TEST(request_view_actions_in_requested)
{
    W w;
    world(&w, 0);
    OK(&w, open_partial(&w));
    OK(&w, open_case(&w, "buyer:B1", "C1", "O2", "return_refund", "no_reason", "T1"));
    STATE_IS(&w, "CP", "requested");
    actions_are(&w, "merchant:S1", "CP", "agree,reject,offer");
    actions_are(&w, "buyer:B1", "CP", "revise,withdraw");
    actions_are(&w, "logistics", "CP", "return_delivered,delivered");
    actions_are(&w, "platform", "CP", "agree,reject,offer,revise,withdraw");
    /* offer is partial_refund's only */
    actions_are(&w, "merchant:S1", "C1", "agree,reject");
    actions_are(&w, "buyer:B1", "C1", "revise,withdraw");
    bye(&w);
}
END_TEST

/* docs/design.md#transitions: the rows of negotiating, rejected, platform_review, refunding and
 * awaiting_return, per role. */
START_TEST(request_view_actions_follow_the_state)
{
    W w;
    world(&w, 0);
    OK(&w, open_partial(&w));
    OK(&w, act(&w, "merchant:S1", "CP", "offer", "{\"amount\":3000}", NULL));
    STATE_IS(&w, "CP", "negotiating");
    actions_are(&w, "buyer:B1", "CP", "accept_offer,decline_offer,withdraw");
    actions_are(&w, "merchant:S1", "CP", "");

    OK(&w, act(&w, "buyer:B1", "CP", "decline_offer", NULL, NULL));
    STATE_IS(&w, "CP", "rejected");
    actions_are(&w, "buyer:B1", "CP", "revise,escalate,withdraw");
    actions_are(&w, "merchant:S1", "CP", "");

    OK(&w, act(&w, "buyer:B1", "CP", "escalate", NULL, NULL));
    STATE_IS(&w, "CP", "platform_review");
    actions_are(&w, "platform", "CP", "rule_for_buyer,rule_for_merchant");
    actions_are(&w, "buyer:B1", "CP", "");
    actions_are(&w, "merchant:S1", "CP", "");

    OK(&w, act(&w, "platform", "CP", "rule_for_buyer", NULL, NULL));
    STATE_IS(&w, "CP", "refunding");
    actions_are(&w, "platform", "CP", "refund_succeeded,refund_failed");
    actions_are(&w, "buyer:B1", "CP", "");
    actions_are(&w, "logistics", "CP", "return_delivered,delivered");

    OK(&w, open_case(&w, "buyer:B1", "C1", "O2", "return_refund", "no_reason", "T1"));
    OK(&w, act(&w, "merchant:S1", "C1", "agree", NULL, NULL));
    STATE_IS(&w, "C1", "awaiting_return");
    actions_are(&w, "buyer:B1", "C1", "ship_return,withdraw");
    actions_are(&w, "merchant:S1", "C1", "");
    actions_are(&w, "platform", "C1", "ship_return,withdraw");
    bye(&w);
}
END_TEST

/* docs/design.md#error-codes: "not_found: unknown order or case"; docs/pipe.md order.get: "the
 * order with the keys of POST /v1/orders ... and each line's attempts". */
START_TEST(request_order_read)
{
    W w;
    world(&w, 0);
    const char *const ids[] = {"O9", "o1", "O 1", "", NULL};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        unit_reply_clear(&w.r);
        ck_assert_int_eq(read_done(&w, as_order_read(w.rt, ids[i], unit_reply_cb, &w.r)),
                         AS_ENOT_FOUND);
        says(&w, "unknown order");
    }
    OK(&w, open_case(&w, "buyer:B1", "C1", "O1", "return_refund", "no_reason", "T1"));
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_order_read(w.rt, "O1", unit_reply_cb, &w.r)), 0);
    json_t *o = parse(w.r.text), *items = json_object_get(o, "items");
    ck_assert_str_eq(json_string_value(json_object_get(o, "id")), "O1");
    ck_assert_str_eq(json_string_value(json_object_get(o, "shop")), "S1");
    ck_assert_str_eq(json_string_value(json_object_get(o, "buyer")), "B1");
    ck_assert_int_eq(json_array_size(items), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "sku")), "T1");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 0), "attempts")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 1), "attempts")), 0);
    ck_assert(json_is_integer(json_object_get(o, "delivered_at")));
    ck_assert_ptr_null(json_object_get(o, "confirmed_at")); /* left out until it happens */
    json_decref(o);
    bye(&w);
}
END_TEST

/* The ids of a worklist answer, comma-separated, checking each entry's `due` against its case. */
static void worklist_ids(W *w, const as_worklist_query *q, char *out, size_t n)
{
    unit_reply_clear(&w->r);
    int rc = read_done(w, as_worklist_read(w->rt, q, unit_reply_cb, &w->r));
    ck_assert_msg(rc == 0, "worklist: %s", w->r.text);
    json_t *j = parse(w->r.text), *e;
    size_t i;
    out[0] = '\0';
    json_array_foreach(json_object_get(j, "cases"), i, e)
    {
        const char *id = json_string_value(json_object_get(e, "id"));
        snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "", id);
        json_t *c = case_doc(w, id), *dl = json_object_get(c, "deadline");
        /* `due`: the pending deadline's, or null */
        json_t *due = json_is_null(dl) ? dl : json_object_get(dl, "due");
        ck_assert_msg(json_equal(json_object_get(e, "due"), due), "%s: due differs", id);
        ck_assert(json_equal(json_object_get(e, "priority"), json_object_get(c, "priority")));
        json_decref(c);
    }
    json_decref(j);
}

/* aftersale.h as_worklist_read: "the cases by priority (1 first, none as 100), then deadline
 * (none last), then id"; docs/api.md: "A merchant key is always limited to its own shop". */
START_TEST(request_worklist_by_priority_then_deadline)
{
    W w;
    world(&w, 0);
    char body[512];
    snprintf(body, sizeof body,
             "{\"id\":\"OW\",\"shop\":\"S1\",\"buyer\":\"B1\",\"items\":["
             "{\"sku\":\"W1\",\"category\":\"apparel\",\"qty\":1,\"price\":100},"
             "{\"sku\":\"W2\",\"category\":\"apparel\",\"qty\":1,\"price\":100},"
             "{\"sku\":\"W3\",\"category\":\"apparel\",\"qty\":1,\"price\":100},"
             "{\"sku\":\"W4\",\"category\":\"apparel\",\"qty\":1,\"price\":100},"
             "{\"sku\":\"W5\",\"category\":\"apparel\",\"qty\":1,\"price\":100}]}");
    OK(&w, cmd(&w, AS_OP_ORDER_CREATE, "platform", NULL, body, NULL));
    OK(&w, cmd(&w, AS_OP_ORDER_SHIP, "platform", "OW", NULL, NULL));
    OK(&w, cmd(&w, AS_OP_ORDER_DELIVER, "platform", "OW", NULL, NULL));
    int64_t t = as_runtime_now(w.rt);
    /* docs/rulebook.md#priority: no_reason 4, quality 1, wrong_item 2 */
    OK(&w, open_case(&w, "buyer:B1", "K1", "OW", "return_refund", "no_reason", "W1"));
    as_runtime_advance(w.rt, t + AS_HOUR);
    OK(&w, open_case(&w, "buyer:B1", "K2", "OW", "refund_only", "quality", "W2"));
    as_runtime_advance(w.rt, t + 2 * AS_HOUR);
    OK(&w, open_case(&w, "buyer:B1", "K3", "OW", "exchange", "wrong_item", "W3"));
    as_runtime_advance(w.rt, t + 3 * AS_HOUR);
    /* priority 4 like K1, due later, id before it */
    OK(&w, open_case(&w, "buyer:B1", "K0", "OW", "return_refund", "no_reason", "W4"));
    OK(&w, open_case(&w, "buyer:B1", "K5", "OW", "return_refund", "no_reason", "W5"));
    OK(&w, act(&w, "buyer:B1", "K5", "withdraw", NULL, NULL)); /* closed: not open */
    OK(&w, open_case(&w, "buyer:B2", "X1", "O3", "refund_only", "quality", "T1")); /* shop S2 */

    char ids[256];
    as_worklist_query q = {.principal = "merchant:S1"};
    worklist_ids(&w, &q, ids, sizeof ids);
    ck_assert_str_eq(ids, "K2,K3,K1,K0");
    q.shop = "S1";
    worklist_ids(&w, &q, ids, sizeof ids);
    ck_assert_str_eq(ids, "K2,K3,K1,K0");
    q.principal = "platform";
    worklist_ids(&w, &q, ids, sizeof ids);
    ck_assert_str_eq(ids, "K2,K3,K1,K0");
    q.shop = "S2";
    worklist_ids(&w, &q, ids, sizeof ids);
    ck_assert_str_eq(ids, "X1");
    /* the closed case by its state, and paging */
    q = (as_worklist_query){.principal = "merchant:S1", .state = "closed"};
    worklist_ids(&w, &q, ids, sizeof ids);
    ck_assert_str_eq(ids, "K5");
    q = (as_worklist_query){.principal = "merchant:S1", .limit = 3};
    worklist_ids(&w, &q, ids, sizeof ids);
    ck_assert_str_eq(ids, "K2,K3,K1");
    q.cursor = 3;
    worklist_ids(&w, &q, ids, sizeof ids);
    ck_assert_str_eq(ids, "K0");

    /* another shop's worklist, logistics', and queries out of range */
    q = (as_worklist_query){.principal = "merchant:S1", .shop = "S2"};
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_worklist_read(w.rt, &q, unit_reply_cb, &w.r)), AS_EFORBIDDEN);
    q = (as_worklist_query){.principal = "logistics"};
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_worklist_read(w.rt, &q, unit_reply_cb, &w.r)), AS_EFORBIDDEN);
    q = (as_worklist_query){.principal = "platform", .limit = 1001};
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_worklist_read(w.rt, &q, unit_reply_cb, &w.r)),
                     AS_EBAD_REQUEST);
    q = (as_worklist_query){.principal = "platform", .state = "pending"};
    unit_reply_clear(&w.r);
    ck_assert_int_eq(read_done(&w, as_worklist_read(w.rt, &q, unit_reply_cb, &w.r)),
                     AS_EBAD_REQUEST);
    bye(&w);
}
END_TEST

/* docs/api.md#get-v1shopsshopmetrics--a-shops-metrics: "The platform key or merchant:{shop};
 * anyone else 403"; docs/api.md#get-v1rules--the-packs-in-force: "a merchant key (which sees
 * only its own shop's merchant pack; buyer and logistics keys get 403)". */
START_TEST(request_metrics_and_rules_reads_are_scoped)
{
    W w;
    world(&w, 0);
    as_error err = {0};
    char *m = as_shop_metrics_read(w.rt, "platform", "S1", &err);
    ck_assert_ptr_nonnull(m);
    json_t *j = parse(m);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "orders")), 2);
    json_decref(j);
    as_free(m);
    m = as_shop_metrics_read(w.rt, "merchant:S1", "S1", &err);
    ck_assert_ptr_nonnull(m);
    as_free(m);
    const char *const others[] = {"merchant:S2", "buyer:B1", "logistics", "nobody"};
    for (size_t i = 0; i < 4; i++) {
        err = (as_error){0};
        ck_assert_ptr_null(as_shop_metrics_read(w.rt, others[i], "S1", &err));
        ck_assert_int_eq(err.code, AS_EFORBIDDEN);
    }

    /* a merchant uploads its own rules only */
    const char *src = "return {name = \"s2-rules\", version = \"1\"}";
    ck_assert_int_eq(cmd(&w, AS_OP_RULES_LOAD, "merchant:S1", "S2", src, NULL), AS_EFORBIDDEN);
    OK(&w, cmd(&w, AS_OP_RULES_LOAD, "merchant:S2", "S2", src, NULL));
    char *r = as_rules_read(w.rt, "platform", &err);
    ck_assert_ptr_nonnull(r);
    j = parse(r);
    ck_assert_str_eq(json_string_value(json_object_get(j, "platform")), "platform@3");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "categories"), "apparel"));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "merchants"), "S2")),
                     "s2-rules@1");
    json_decref(j);
    as_free(r);
    r = as_rules_read(w.rt, "merchant:S1", &err);
    ck_assert_ptr_nonnull(r);
    j = parse(r);
    ck_assert_int_eq(json_object_size(json_object_get(j, "merchants")), 0);
    json_decref(j);
    as_free(r);
    r = as_rules_read(w.rt, "merchant:S2", &err);
    ck_assert_ptr_nonnull(r);
    j = parse(r);
    ck_assert_int_eq(json_object_size(json_object_get(j, "merchants")), 1);
    json_decref(j);
    as_free(r);
    const char *const no[] = {"buyer:B1", "logistics", "nobody"};
    for (size_t i = 0; i < 3; i++) {
        err = (as_error){0};
        ck_assert_ptr_null(as_rules_read(w.rt, no[i], &err));
        ck_assert_int_eq(err.code, AS_EFORBIDDEN);
    }
    bye(&w);
}
END_TEST

/* ==========================================================================================
 * The suite
 * ======================================================================================== */

static Suite *request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *order = tcase_create("check_order");
    tcase_set_timeout(order, 30);
    tcase_add_test(order, request_only_the_platform_sends_order_ops);
    tcase_add_test(order, request_unknown_case_is_not_found_before_the_body);
    tcase_add_test(order, request_malformed_body_is_bad_request);
    tcase_add_test(order, request_values_over_the_limits_are_bad_request);
    tcase_add_test(order, request_shape_comes_before_the_party);
    tcase_add_test(order, request_unknown_principal_is_forbidden);
    tcase_add_test(order, request_as_from_anyone_but_the_platform_is_forbidden);
    tcase_add_test(order, request_platform_acts_as_a_party);
    suite_add_tcase(s, order);

    /* on a durable runtime; each test makes and removes its own scratch directory */
    TCase *keys = tcase_create("idempotency");
    tcase_set_timeout(keys, 60);
    tcase_add_test(keys, request_key_applies_once);
    tcase_add_test(keys, request_key_repeats_a_refusal);
    tcase_add_test(keys, request_key_is_per_principal);
    tcase_add_test(keys, request_key_outside_the_limits_is_bad_request);
    tcase_add_test(keys, request_headless_runtime_keeps_no_keys);
    suite_add_tcase(s, keys);

    TCase *pipe = tcase_create("pipe");
    tcase_set_timeout(pipe, 30);
    tcase_add_test(pipe, request_typed_and_pipe_agree);
    tcase_add_test(pipe, request_pipe_malformed_line_is_answered);
    tcase_add_test(pipe, request_pipe_unknown_op_is_answered);
    tcase_add_test(pipe, request_pipe_nul_and_limits_are_answered);
    suite_add_tcase(s, pipe);

    TCase *reads = tcase_create("reads");
    tcase_set_timeout(reads, 30);
    tcase_add_test(reads, request_view_is_scoped_to_the_principal);
    tcase_add_test(reads, request_view_of_an_unknown_case_is_not_found);
    tcase_add_test(reads, request_view_actions_in_requested);
    tcase_add_test(reads, request_view_actions_follow_the_state);
    tcase_add_test(reads, request_order_read);
    tcase_add_test(reads, request_worklist_by_priority_then_deadline);
    tcase_add_test(reads, request_metrics_and_rules_reads_are_scoped);
    suite_add_tcase(s, reads);

    return s;
}

int main(void)
{
    return unit_run(request_suite(), 1);
}
