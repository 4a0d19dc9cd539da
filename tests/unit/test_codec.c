/* test_codec.c -- the JSON codec (runtime/core/codec.c): parsing JSON text, the shapes of the
 * open and act payloads, and the case and order views.
 *
 * What runtime.h and command.h promise and these tests hold it to:
 *   - as__json_parse: "rejecting duplicate keys", AS_EBAD_REQUEST "malformed JSON: <why>" (with
 *     the line when `with_line`).
 *   - "Parsing never refuses by itself: a shape error is kept in `shape_err`" with a sentence in
 *     `shape_msg` that names the field; the first one found is the one kept.
 *   - as__order_json: "An order as the keys of POST /v1/orders (instants left out until they
 *     happen, buyer_credit when known), each line with its `attempts` too". */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/runtime.h"
#include "request/codec.h"
#include "unit_common.h"
#include "unit_fixtures.h"

/* ------------------------------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------------------------- */

static json_t *parse_ok(const char *text)
{
    json_t *j = NULL;
    as_error err = {0};
    int rc = as__json_parse(text, strlen(text), 0, &j, &err);
    ck_assert_msg(rc == 0, "parse of %s: %s", text, err.msg);
    ck_assert_ptr_nonnull(j);
    return j;
}

/* Parses `payload` (JSON text) as an open; returns what the parser returned (0 when the shape
 * is right; callers read shape_err, command.h), `cmd` filled. The document is
 * kept alive in *doc (the command borrows its strings). */
static int open_shape(as_cmd *cmd, const char *payload, json_t **doc)
{
    as_principal who = {AS_ROLE_BUYER, "B1"};
    as__cmd_init(cmd, who, AS_ACT_OPEN);
    *doc = parse_ok(payload);
    return as__cmd_parse_open(cmd, *doc);
}

/* An open of `payload` must be refused as bad_request with a message containing `needle`. */
static void open_refused(const char *payload, const char *needle)
{
    as_cmd cmd;
    json_t *doc;
    int rc = open_shape(&cmd, payload, &doc);
    ck_assert_msg(rc != 0 && cmd.shape_err == AS_EBAD_REQUEST,
                  "open %s: returned %d, shape_err %d, want bad_request", payload, rc,
                  cmd.shape_err);
    ck_assert_msg(strstr(cmd.shape_msg, needle) != NULL, "open %s: message \"%s\" lacks \"%s\"",
                  payload, cmd.shape_msg, needle);
    json_decref(doc);
}

static int act_shape(as_cmd *cmd, const char *action, const char *payload, json_t **doc)
{
    as_principal who = {AS_ROLE_MERCHANT, "S1"};
    as__cmd_init(cmd, who, -1);
    *doc = payload ? parse_ok(payload) : NULL;
    return as__cmd_parse_act(cmd, action, *doc);
}

static void act_refused(const char *action, const char *payload, const char *needle)
{
    as_cmd cmd;
    json_t *doc;
    int rc = act_shape(&cmd, action, payload, &doc);
    ck_assert_msg(rc != 0 && cmd.shape_err == AS_EBAD_REQUEST,
                  "%s %s: returned %d, shape_err %d, want bad_request", action,
                  payload ? payload : "(none)", rc, cmd.shape_err);
    ck_assert_msg(strstr(cmd.shape_msg, needle) != NULL, "%s %s: message \"%s\" lacks \"%s\"",
                  action, payload ? payload : "(none)", cmd.shape_msg, needle);
    json_decref(doc);
}

static void act_ok(as_cmd *cmd, const char *action, const char *payload, json_t **doc)
{
    int rc = act_shape(cmd, action, payload, doc);
    ck_assert_msg(rc == 0, "%s %s: refused: %s", action, payload ? payload : "(none)",
                  cmd->shape_msg);
}

/* The keys of object `o`, sorted and joined by ",". */
static void keys_of(json_t *o, char *buf, size_t cap)
{
    const char *names[64];
    size_t n = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) if (n < 64) names[n++] = k;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strncat(buf, names[i], cap - strlen(buf) - 1);
        if (i + 1 < n) strncat(buf, ",", cap - strlen(buf) - 1);
    }
}

/* ------------------------------------------------------------------------------------------
 * as__json_parse
 * ---------------------------------------------------------------------------------------- */

/* docs/design.md#check-order 3: malformed JSON is bad_request; a duplicate key is malformed
 * (one value would silently win otherwise). */
START_TEST(codec_json_duplicate_keys_refused)
{
    const char *texts[] = {"{\"a\":1,\"a\":2}", "{\"id\":\"C1\",\"x\":{\"k\":1,\"k\":1}}"};
    for (size_t i = 0; i < 2; i++) {
        json_t *j = (json_t *)0x1;
        as_error err = {0};
        ck_assert_int_eq(as__json_parse(texts[i], strlen(texts[i]), 0, &j, &err),
                         AS_EBAD_REQUEST);
        ck_assert_ptr_null(j);
        ck_assert_int_eq(err.code, AS_EBAD_REQUEST);
        ck_assert_msg(strncmp(err.msg, "malformed JSON: ", 16) == 0, "%s", err.msg);
        ck_assert_msg(strstr(err.msg, "duplicate") != NULL, "%s", err.msg);
    }
}
END_TEST

START_TEST(codec_json_malformed_names_why_and_the_line_when_asked)
{
    const char *text = "{\n  \"a\": 1,\n  \"b\": \n}";
    json_t *j = (json_t *)0x1;
    as_error err = {0};
    ck_assert_int_eq(as__json_parse(text, strlen(text), 1, &j, &err), AS_EBAD_REQUEST);
    ck_assert_ptr_null(j);
    ck_assert_msg(strncmp(err.msg, "malformed JSON: ", 16) == 0, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "(line 4)") != NULL, "%s", err.msg);
    as_error err2 = {0};
    ck_assert_int_eq(as__json_parse(text, strlen(text), 0, &j, &err2), AS_EBAD_REQUEST);
    ck_assert_msg(strstr(err2.msg, "(line") == NULL, "%s", err2.msg);
    /* the same reason either way */
    ck_assert_int_eq(strncmp(err.msg, err2.msg, strlen(err2.msg)), 0);
    /* no text at all, and empty text, are malformed too */
    ck_assert_int_eq(as__json_parse(NULL, 5, 0, &j, &err), AS_EBAD_REQUEST);
    ck_assert_ptr_null(j);
    ck_assert_int_eq(as__json_parse("", 0, 0, &j, &err), AS_EBAD_REQUEST);
    ck_assert_int_eq(as__json_parse("{", 1, 0, &j, &err), AS_EBAD_REQUEST);
}
END_TEST

/* Only `len` bytes are read: what follows them is not part of the document. */
START_TEST(codec_json_reads_len_bytes_only)
{
    const char *text = "{\"a\":1}{\"b\":2} trailing";
    json_t *j = NULL;
    as_error err = {0};
    ck_assert_int_eq(as__json_parse(text, 7, 0, &j, &err), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "a")), 1);
    ck_assert_int_eq(json_object_size(j), 1);
    json_decref(j);
    /* the whole text is two documents: refused */
    ck_assert_int_eq(as__json_parse(text, strlen(text), 0, &j, &err), AS_EBAD_REQUEST);
    ck_assert_ptr_null(j);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * as__cmd_parse_open
 * ---------------------------------------------------------------------------------------- */

/* docs/design.md#actions-and-payloads: open takes id, order, type, reason, items,
 * requested_amount?, bad_permille?, evidence?; each is read into the command. */
START_TEST(codec_open_reads_every_field)
{
    as_cmd cmd;
    json_t *doc;
    ck_assert_int_eq(open_shape(&cmd,
                                "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"partial_refund\","
                                "\"reason\":\"quality\",\"items\":[{\"sku\":\"T1\",\"qty\":2},"
                                "{\"qty\":1,\"sku\":\"T2\"}],\"requested_amount\":10000000000,"
                                "\"bad_permille\":1000,\"evidence\":[\"p1\",\"p2\"]}",
                                &doc),
                     0);
    ck_assert_str_eq(cmd.case_id, "C1");
    ck_assert_str_eq(cmd.order_id, "O1");
    ck_assert_int_eq(cmd.type, AS_TYPE_PARTIAL_REFUND);
    ck_assert_int_eq(cmd.reason, AS_REASON_QUALITY);
    ck_assert_int_eq(cmd.nitems, 2);
    ck_assert_str_eq(cmd.items[0].sku, "T1");
    ck_assert_int_eq(cmd.items[0].qty, 2);
    ck_assert_str_eq(cmd.items[1].sku, "T2");
    ck_assert_int_eq(cmd.items[1].qty, 1);
    ck_assert_int_eq(cmd.requested_amount, AS_MAX_MONEY);
    ck_assert_int_eq(cmd.bad_permille, 1000);
    ck_assert_int_eq(cmd.nevidence, 2);
    ck_assert_str_eq(cmd.evidence[1], "p2");
    ck_assert_uint_eq(cmd.given, AS_P_REASON | AS_P_EVIDENCE | AS_P_REQUESTED | AS_P_PERMILLE);
    ck_assert_int_eq(cmd.shape_err, 0);
    json_decref(doc);
}
END_TEST

/* docs/design.md#check-order: an unknown type or reason name and a negative amount are not
 * shape errors but range errors (check 7): parsed, kept as such, not refused here. */
START_TEST(codec_open_range_errors_are_kept_for_check_7)
{
    as_cmd cmd;
    json_t *doc;
    ck_assert_int_eq(open_shape(&cmd,
                                "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"teleport\","
                                "\"reason\":\"whim\",\"items\":[{\"sku\":\"T1\",\"qty\":-3}],"
                                "\"requested_amount\":-1,\"bad_permille\":5000}",
                                &doc),
                     0);
    ck_assert_int_eq(cmd.type, -1);
    ck_assert_int_eq(cmd.reason, -1);
    ck_assert_int_eq(cmd.items[0].qty, -3);
    ck_assert_int_eq(cmd.requested_amount, -1);
    ck_assert_int_eq(cmd.bad_permille, 5000);
    ck_assert(cmd.given & AS_P_REASON);
    json_decref(doc);
    /* an order id outside the limits is a lookup that finds nothing, not a shape error */
    ck_assert_int_eq(open_shape(&cmd,
                                "{\"id\":\"C1\",\"order\":\"no such/order\",\"type\":\"exchange\","
                                "\"reason\":\"quality\",\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
                                &doc),
                     0);
    ck_assert_str_eq(cmd.order_id, "no such/order");
    json_decref(doc);
}
END_TEST

/* Each required field missing is bad_request naming it; with several missing, the first in
 * the order id, order, type, reason, items is the one reported. */
START_TEST(codec_open_missing_fields_named)
{
    open_refused("{}", "the case needs an 'id'");
    open_refused("{\"id\":\"\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
                 "'id' must be 1-64 bytes");
    open_refused("{\"id\":\"C1\"}", "the case needs an 'order'");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\"}", "the case needs a 'type'");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\"}",
                 "the case needs a 'reason'");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\"}",
                 "the case needs 'items'");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\"}]}",
                 "a case item needs 'sku' and 'qty'");
    open_refused("[1,2]", "the case must be a JSON object");
}
END_TEST

#define OPEN_WITH(extra)                                                                   \
    "{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","        \
    "\"items\":[{\"sku\":\"T1\",\"qty\":1}]," extra "}"

/* docs/design.md#limits: a value of the wrong type or outside the limits is bad_request with a
 * sentence naming the field. */
START_TEST(codec_open_wrong_types_and_limits_named)
{
    open_refused("{\"id\":5}", "'id' must be a string");
    open_refused(OPEN_WITH("\"foo\":1"), "unknown key 'foo' in the case");
    open_refused(OPEN_WITH("\"evidence\":\"p1\""), "'evidence' must be a list of strings");
    open_refused(OPEN_WITH("\"evidence\":[1]"), "'evidence' must be a list of strings");
    open_refused(OPEN_WITH("\"evidence\":[\"\"]"), "'evidence[]' must be 1-256 bytes");
    open_refused(OPEN_WITH("\"requested_amount\":10000000001"),
                 "'requested_amount' " AS_LIMIT_MONEY_WHAT);
    open_refused(OPEN_WITH("\"requested_amount\":1.5"), "'requested_amount' must be an integer");
    open_refused(OPEN_WITH("\"bad_permille\":\"10\""), "'bad_permille' must be an integer");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":7,"
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1}]}",
                 "'reason' must be a string");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[]}",
                 "'items' must be a non-empty list of {sku, qty}");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":1,\"price\":5}]}",
                 "unknown key 'price' in a case item");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T 1\",\"qty\":1}]}",
                 "'items[].sku' must be 1-64 bytes");
    open_refused("{\"id\":\"C1\",\"order\":\"O1\",\"type\":\"exchange\",\"reason\":\"quality\","
                 "\"items\":[{\"sku\":\"T1\",\"qty\":\"1\"}]}",
                 "'items[].qty' must be an integer");
}
END_TEST

/* docs/design.md#limits at the bound and one past: a 64-byte id, 32 evidence entries of 256
 * bytes and 100 case items pass; 65 bytes, 33 entries, 257 bytes, 101 items do not. */
START_TEST(codec_open_limits_at_the_bound_and_one_past)
{
    char id[AS_MAX_ID + 1], text[AS_MAX_TEXT + 1];
    fx_max_id(id, "C");
    fx_max_text(text, "E");
    json_t *ev = json_array(), *items = json_array();
    for (int i = 0; i < AS_MAX_EVIDENCE; i++) json_array_append_new(ev, json_string(text));
    for (int i = 0; i < AS_MAX_CASE_ITEMS; i++) {
        char sku[16];
        snprintf(sku, sizeof sku, "L%d", i);
        json_array_append_new(items, json_pack("{s:s, s:i}", "sku", sku, "qty", 1));
    }
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:O, s:O}", "id", id, "order", "O1", "type",
                            "exchange", "reason", "quality", "items", items, "evidence", ev);
    as_cmd cmd;
    as__cmd_init(&cmd, (as_principal){AS_ROLE_BUYER, "B1"}, AS_ACT_OPEN);
    ck_assert_int_eq(as__cmd_parse_open(&cmd, doc), 0);
    ck_assert_str_eq(cmd.case_id, id);
    ck_assert_int_eq(cmd.nevidence, AS_MAX_EVIDENCE);
    ck_assert_int_eq(cmd.nitems, AS_MAX_CASE_ITEMS);
    ck_assert_str_eq(cmd.evidence[AS_MAX_EVIDENCE - 1], text);
    ck_assert_str_eq(cmd.items[AS_MAX_CASE_ITEMS - 1].sku, "L99");

    /* one past each bound */
    struct {
        const char *key;
        json_t *value;
        const char *needle;
    } past[4];
    char longid[AS_MAX_ID + 2], longtext[AS_MAX_TEXT + 2];
    snprintf(longid, sizeof longid, "%sX", id);
    snprintf(longtext, sizeof longtext, "%sX", text);
    json_t *ev33 = json_deep_copy(ev), *items101 = json_deep_copy(items), *ev257 = json_array();
    json_array_append_new(ev33, json_string("one more"));
    json_array_append_new(items101, json_pack("{s:s, s:i}", "sku", "L100", "qty", 1));
    json_array_append_new(ev257, json_string(longtext));
    past[0].key = "id", past[0].value = json_string(longid), past[0].needle = "'id' must be 1-64";
    past[1].key = "evidence", past[1].value = ev33,
    past[1].needle = "'evidence' has more than 32 entries";
    past[2].key = "items", past[2].value = items101,
    past[2].needle = "'items' has more than 100 entries";
    past[3].key = "evidence", past[3].value = ev257, past[3].needle = "'evidence[]' must be 1-256";
    for (int i = 0; i < 4; i++) {
        json_t *d = json_deep_copy(doc);
        json_object_set_new(d, past[i].key, past[i].value);
        as__cmd_init(&cmd, (as_principal){AS_ROLE_BUYER, "B1"}, AS_ACT_OPEN);
        ck_assert_int_ne(as__cmd_parse_open(&cmd, d), 0);
        ck_assert_int_eq(cmd.shape_err, AS_EBAD_REQUEST);
        ck_assert_msg(strstr(cmd.shape_msg, past[i].needle) != NULL, "%s: \"%s\"", past[i].key,
                      cmd.shape_msg);
        json_decref(d);
    }
    json_decref(items);
    json_decref(ev);
    json_decref(doc);
}
END_TEST

/* The first shape error is the one kept: a later one does not overwrite the sentence. And a
 * message that quotes input is echo safe (limits.h as__limit_sanitize): a control character in
 * an unknown key comes out as '?'. */
START_TEST(codec_open_first_shape_error_kept_and_echo_safe)
{
    as_cmd cmd;
    json_t *doc;
    ck_assert_int_ne(open_shape(&cmd, "{\"id\":1,\"order\":2}", &doc), 0);
    ck_assert_str_eq(cmd.shape_msg, "'id' must be a string");
    json_decref(doc);
    ck_assert_int_ne(open_shape(&cmd, OPEN_WITH("\"a\\u0001\\u007fb\":1"), &doc), 0);
    ck_assert_str_eq(cmd.shape_msg, "unknown key 'a??b' in the case");
    json_decref(doc);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * as__cmd_parse_act
 * ---------------------------------------------------------------------------------------- */

/* docs/design.md#actions-and-payloads: an unknown action, and open and the system's actions
 * named by a caller, are bad_request naming the action. */
START_TEST(codec_act_unknown_and_system_actions_refused)
{
    act_refused("fly", NULL, "unknown action 'fly'");
    act_refused("open", NULL, "unknown action 'open'");
    const char *system[] = {"auto_agree",  "auto_decline", "auto_close",   "auto_confirm_return",
                            "auto_inspect", "auto_refund", "auto_complete"};
    for (size_t i = 0; i < sizeof system / sizeof system[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "unknown action '%s'", system[i]);
        act_refused(system[i], NULL, want);
    }
    as_cmd cmd;
    as__cmd_init(&cmd, (as_principal){AS_ROLE_PLATFORM, NULL}, -1);
    ck_assert_int_ne(as__cmd_parse_act(&cmd, NULL, NULL), 0);
    ck_assert_int_eq(cmd.shape_err, AS_EBAD_REQUEST);
    ck_assert_str_eq(cmd.shape_msg, "unknown action ''");
}
END_TEST

/* docs/design.md#actions-and-payloads: "A payload key not listed for its action is
 * bad_request"; a payload that is not an object too; each required key missing is named. */
START_TEST(codec_act_payload_shape_errors_named)
{
    act_refused("agree", "{\"amount\":1}", "unknown key 'amount' for action 'agree'");
    act_refused("offer", "{\"amount\":1,\"reason\":\"x\"}", "unknown key 'reason' for action 'offer'");
    act_refused("reject", "[\"no\"]", "the payload of 'reject' must be an object");
    act_refused("reject", "{}", "'reject' needs a 'reason'");
    act_refused("reject", NULL, "'reject' needs a 'reason'");
    act_refused("reject_return", "{}", "'reject_return' needs a 'reason'");
    act_refused("ship_return", "{\"carrier\":\"SF\"}", "'ship_return' needs 'carrier' and 'tracking'");
    act_refused("ship_replacement", "{\"tracking\":\"T\"}",
                "'ship_replacement' needs 'carrier' and 'tracking'");
    act_refused("ship_replacement", "{\"carrier\":\"SF\",\"tracking\":\"T\",\"shipping_cost\":1}",
                "unknown key 'shipping_cost' for action 'ship_replacement'");
    act_refused("offer", "{}", "'offer' needs an 'amount'");
    act_refused("offer", "{\"amount\":10000000001}", "'amount' " AS_LIMIT_MONEY_WHAT);
    act_refused("offer", "{\"amount\":\"5\"}", "'amount' must be an integer");
    act_refused("inspect", "{}", "'inspect' needs a 'result'");
    act_refused("inspect", "{\"result\":true}", "'result' must be a string");
    act_refused("reject", "{\"reason\":\"line\\nbreak\"}", "'reason' must be 1-256 bytes");
    act_refused("ship_return", "{\"carrier\":\"SF\",\"tracking\":\"\"}", "'tracking' must be 1-256");
    act_refused("ship_return", "{\"carrier\":\"SF\",\"tracking\":\"T\",\"shipping_cost\":10000000001}",
                "'shipping_cost' " AS_LIMIT_MONEY_WHAT);
    act_refused("confirm_return", "{\"serial\":5}", "'serial' must be a string");
    act_refused("revise", "{\"items\":[]}", "unknown key 'items' for action 'revise'");
    act_refused("revise", "{\"evidence\":[\"\"]}", "'evidence[]' must be 1-256");
    act_refused("withdraw", "{\"reason\":\"x\"}", "unknown key 'reason' for action 'withdraw'");
    /* a long unknown key is cut in the message, which stays within its buffer */
    char payload[300], key[121];
    memset(key, 'k', 120);
    key[120] = '\0';
    snprintf(payload, sizeof payload, "{\"%s\":1}", key);
    as_cmd cmd;
    json_t *doc;
    ck_assert_int_ne(act_shape(&cmd, "agree", payload, &doc), 0);
    key[40] = '\0';
    char want[100] = "unknown key '";
    strcat(want, key);
    strcat(want, "' for action 'agree'");
    ck_assert_str_eq(cmd.shape_msg, want);
    json_decref(doc);
}
END_TEST

/* Each action's payload fields land in the command; no payload and null are the same. */
START_TEST(codec_act_reads_each_actions_fields)
{
    as_cmd cmd;
    json_t *doc;
    act_ok(&cmd, "agree", NULL, &doc);
    ck_assert_int_eq(cmd.action, AS_ACT_AGREE);
    ck_assert_uint_eq(cmd.given, 0);
    json_t *null = json_null();
    as__cmd_init(&cmd, (as_principal){AS_ROLE_MERCHANT, "S1"}, -1);
    ck_assert_int_eq(as__cmd_parse_act(&cmd, "agree", null), 0);
    ck_assert_int_eq(cmd.shape_err, 0);
    act_ok(&cmd, "ship_return", "{\"carrier\":\"SF\",\"tracking\":\"SF1\",\"shipping_cost\":-5}",
           &doc);
    ck_assert_str_eq(cmd.text, "SF");
    ck_assert_str_eq(cmd.tracking, "SF1");
    ck_assert_int_eq(cmd.shipping_cost, -5); /* negative: check 7's */
    ck_assert_uint_eq(cmd.given, AS_P_SHIPPING);
    json_decref(doc);
    act_ok(&cmd, "offer", "{\"amount\":10000000000}", &doc);
    ck_assert_int_eq(cmd.amount, AS_MAX_MONEY);
    ck_assert_uint_eq(cmd.given, AS_P_AMOUNT);
    json_decref(doc);
    act_ok(&cmd, "inspect", "{\"result\":\"fault\"}", &doc);
    ck_assert_int_eq(cmd.result, 1);
    json_decref(doc);
    act_ok(&cmd, "inspect", "{\"result\":\"no_fault\"}", &doc);
    ck_assert_int_eq(cmd.result, 0);
    json_decref(doc);
    act_ok(&cmd, "inspect", "{\"result\":\"maybe\"}", &doc); /* check 7's */
    ck_assert_int_eq(cmd.result, -1);
    ck_assert_uint_eq(cmd.given, AS_P_RESULT);
    json_decref(doc);
    act_ok(&cmd, "confirm_return", "{\"serial\":\"490154203237518\"}", &doc);
    ck_assert_str_eq(cmd.serial, "490154203237518");
    ck_assert_uint_eq(cmd.given, AS_P_SERIAL);
    json_decref(doc);
    act_ok(&cmd, "confirm_return", "{}", &doc);
    ck_assert_uint_eq(cmd.given, 0);
    json_decref(doc);
    act_ok(&cmd, "reject_return", "{\"reason\":\"worn\"}", &doc);
    ck_assert_str_eq(cmd.text, "worn");
    json_decref(doc);
    act_ok(&cmd, "refund_failed", "{}", &doc);
    ck_assert_ptr_null(cmd.text);
    json_decref(doc);
    act_ok(&cmd, "revise", "{\"reason\":\"quality\",\"evidence\":[\"a\",\"b\"],"
                          "\"requested_amount\":7,\"bad_permille\":3}", &doc);
    ck_assert_int_eq(cmd.reason, AS_REASON_QUALITY);
    ck_assert_int_eq(cmd.nevidence, 2);
    ck_assert_int_eq(cmd.requested_amount, 7);
    ck_assert_int_eq(cmd.bad_permille, 3);
    ck_assert_uint_eq(cmd.given, AS_P_REASON | AS_P_EVIDENCE | AS_P_REQUESTED | AS_P_PERMILLE);
    json_decref(doc);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * The case view
 * ---------------------------------------------------------------------------------------- */

/* docs/api.md "GET /v1/cases/{case}": the view's keys, with the values not given as null. */
START_TEST(codec_case_json_keys_and_nulls)
{
    fx f = fx_new();
    json_t *j = as__case_json(f.c);
    ck_assert_ptr_nonnull(j);
    char keys[512];
    keys_of(j, keys, sizeof keys);
    ck_assert_str_eq(keys, "bad_permille,category,deadline,evidence,history,id,items,opened_at,"
                           "order,priority,reason,refund_amount,remedy,requested_amount,rules,"
                           "state,type,version");
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "C1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "order")), "O1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "return_refund");
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "no_reason");
    ck_assert_str_eq(json_string_value(json_object_get(j, "state")), "requested");
    ck_assert_str_eq(json_string_value(json_object_get(j, "category")), "apparel");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "refund_amount")), 19900);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "opened_at")), FX_T0 + 4 * AS_DAY);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
    const char *nulls[] = {"requested_amount", "bad_permille", "remedy", "priority", "deadline"};
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(json_is_null(json_object_get(j, nulls[i])), "%s is not null", nulls[i]);
    json_t *want_items = json_pack("[{s:s, s:i}]", "sku", "T1", "qty", 1);
    ck_assert(json_equal(json_object_get(j, "items"), want_items));
    ck_assert_int_eq(json_array_size(json_object_get(j, "evidence")), 0);
    ck_assert_int_eq(json_object_size(json_object_get(j, "rules")), 0);
    ck_assert_int_eq(json_array_size(json_object_get(j, "history")), 0);
    json_decref(want_items);
    json_decref(j);
    fx_free(&f);
}
END_TEST

/* Every field of the view at its bound reads back exactly: amounts of 10^10 fen, bad_permille
 * 1000, priority 100, 32 evidence texts of 256 bytes, the pinned rules as name@version per
 * layer, a pending deadline with its kind and due instant, history entries with their actor,
 * the first one from "" (docs/design.md#limits). */
START_TEST(codec_case_json_every_field_at_its_limit)
{
    fx f = fx_new();
    as_case *c = f.c;
    c->v.requested_amount = AS_MAX_MONEY;
    c->v.refund_amount = AS_MAX_MONEY;
    c->v.bad_permille = 1000;
    c->v.priority = 100;
    c->v.remedy = AS_REMEDY_EXCHANGE;
    c->v.version = UINT32_MAX;
    c->v.reason = AS_REASON_SPOILED;
    c->type = AS_TYPE_RESHIP;
    c->opened_at = AS_MAX_TIME;
    char texts[AS_MAX_EVIDENCE][AS_MAX_TEXT + 1];
    const char *ptrs[AS_MAX_EVIDENCE];
    for (int i = 0; i < AS_MAX_EVIDENCE; i++) {
        char tag[8];
        snprintf(tag, sizeof tag, "e%d", i);
        ptrs[i] = fx_max_text(texts[i], tag);
    }
    fx_evidence(&f, ptrs, AS_MAX_EVIDENCE);
    as_pack *plat = as__pack_new(NULL, "platform", "1.0"), *merch = as__pack_new(NULL, "m", "v-32");
    ck_assert_ptr_nonnull(plat);
    ck_assert_ptr_nonnull(merch);
    c->rules[AS_LAYER_PLATFORM] = plat;
    c->rules[AS_LAYER_MERCHANT] = merch;
    as_sched s;
    as__sched_init(&s);
    ck_assert_int_eq(as__sched_add(&s, &c->deadline, AS_MAX_TIME), 0);
    char note[AS_MAX_TEXT + 1], why[AS_ANSWER_TEXT_MAX + 1];
    memset(why, 'w', AS_ANSWER_TEXT_MAX);
    why[AS_ANSWER_TEXT_MAX] = '\0';
    as_hist hist[2] = {
        {.at_ms = 0, .note = NULL, .action = AS_ACT_OPEN, .role = AS_ROLE_BUYER,
         .from = AS_STATE_CLOSED, .to = AS_STATE_REQUESTED, .flags = AS_HF_PARTY,
         .rule = as__hist_rule(AS_NONE_U8, AS_NONE_U8), .deadline = AS_NONE_U8},
        {.at_ms = AS_MAX_TIME, .note = (char *)fx_max_text(note, "n"), .why = why,
         .refund = AS_MAX_MONEY, .action = AS_ACT_AUTO_AGREE, .role = AS_ROLE_SYSTEM,
         .from = AS_STATE_REQUESTED, .to = AS_STATE_AWAITING_RETURN,
         .flags = AS_HF_REFUND | AS_HF_FEE | AS_HF_RETURN_SHIP,
         .rule = as__hist_rule(AS_HOOK_DEADLINES, AS_LAYER_PLATFORM),
         .refund_by = as__hist_refund_by(AS_RS_RULE, AS_LAYER_MERCHANT),
         .deadline = AS_DL_MERCHANT_RESPONSE},
    };
    c->hist = hist;
    c->nhist = 2;

    json_t *j = as__case_json(c);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "requested_amount")), AS_MAX_MONEY);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "refund_amount")), AS_MAX_MONEY);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "bad_permille")), 1000);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "priority")), 100);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), UINT32_MAX);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "opened_at")), AS_MAX_TIME);
    ck_assert_str_eq(json_string_value(json_object_get(j, "remedy")), "exchange");
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")), "spoiled");
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")), "reship");
    json_t *ev = json_object_get(j, "evidence");
    ck_assert_int_eq(json_array_size(ev), AS_MAX_EVIDENCE);
    for (int i = 0; i < AS_MAX_EVIDENCE; i++)
        ck_assert_str_eq(json_string_value(json_array_get(ev, i)), texts[i]);
    json_t *want_rules = json_pack("{s:s, s:s}", "platform", "platform@1.0", "merchant", "m@v-32");
    ck_assert(json_equal(json_object_get(j, "rules"), want_rules));
    json_t *want_dl = json_pack("{s:s, s:I}", "kind", "merchant_response", "due",
                                (json_int_t)AS_MAX_TIME);
    ck_assert(json_equal(json_object_get(j, "deadline"), want_dl));
    json_t *h = json_object_get(j, "history");
    ck_assert_int_eq(json_array_size(h), 2);
    json_t *want_h0 = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "at", (json_int_t)0, "actor",
                                "buyer:B1", "action", "open", "from", "", "to", "requested",
                                "decided_by", "buyer:B1");
    /* the deadline that fired, the rule that set its duration, the why and the refund's parts
     * at their limits */
    json_t *want_h1 = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:s, s:s, "
        "s:s, s:s}}",
        "at", (json_int_t)AS_MAX_TIME, "actor", "system", "action", "auto_agree", "from",
        "requested", "to", "awaiting_return", "note", note, "decided_by",
        "deadline:merchant_response", "hook", "deadlines", "layer", "platform", "pack",
        "platform@1.0", "why", why, "refund", "amount", (json_int_t)AS_MAX_MONEY, "paid",
        (json_int_t)as__case_paid(c), "shipping_fee", (json_int_t)c->order->shipping_fee,
        "return_shipping", (json_int_t)c->v.return_shipping, "source", "rule", "hook",
        "refund_amount", "layer", "merchant", "pack", "m@v-32");
    ck_assert_ptr_nonnull(want_h1);
    ck_assert(json_equal(json_array_get(h, 0), want_h0));
    ck_assert(json_equal(json_array_get(h, 1), want_h1));

    /* the text of the view parses back to the same document: nothing in it needs care */
    char *text = json_dumps(j, JSON_COMPACT);
    json_t *back = parse_ok(text);
    ck_assert(json_equal(back, j));
    free(text);

    /* a state without a deadline shows none, even with the node still scheduled */
    c->v.state = AS_STATE_PLATFORM_REVIEW;
    json_t *j2 = as__case_json(c);
    ck_assert(json_is_null(json_object_get(j2, "deadline")));

    json_decref(j2);
    json_decref(back);
    json_decref(want_h0);
    json_decref(want_h1);
    json_decref(want_dl);
    json_decref(want_rules);
    json_decref(j);
    as__sched_free(&s);
    c->hist = NULL;
    c->nhist = 0;
    as__pack_unref(plat);
    as__pack_unref(merch);
    fx_free(&f);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * The order view
 * ---------------------------------------------------------------------------------------- */

/* The order view minus each line's `attempts` is the body it was created from, field for
 * field at the limits (docs/design.md#limits), and that view creates the same order again. */
START_TEST(codec_order_json_round_trips_every_field_at_its_limit)
{
    for (int which = 0; which < 2; which++) {
        as_error err = {0};
        as_runtime *rt = unit_runtime(&(as_options){.start_ms = FX_T0}, &err);
        json_t *body = fx_order_at_limits(which);
        ck_assert_msg(as__order_create(rt, body, &err) == 0, "order %d: %s", which, err.msg);
        const char *id = json_string_value(json_object_get(body, "id"));
        as_order *o = as__order_get(rt, id);
        ck_assert_ptr_nonnull(o);
        json_t *view = as__order_json(o);
        ck_assert_ptr_nonnull(view);
        json_t *items = json_object_get(view, "items");
        ck_assert_int_eq(json_array_size(items), which == 0 ? AS_MAX_ORDER_LINES : 1);
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            ck_assert_int_eq(json_integer_value(json_object_get(it, "attempts")), 0);
            json_object_del(it, "attempts");
        }
        if (which == 1) {
            /* instants that have not happened are left out; the others are there */
            ck_assert_ptr_null(json_object_get(view, "shipped_at"));
            ck_assert_ptr_null(json_object_get(view, "delivered_at"));
            ck_assert_ptr_null(json_object_get(view, "confirmed_at"));
        }
        char *a = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);
        char *b = json_dumps(view, JSON_SORT_KEYS | JSON_COMPACT);
        ck_assert_msg(json_equal(body, view), "order %d:\n in: %.300s\nout: %.300s", which, a, b);
        free(a);
        free(b);

        /* the view is a body POST /v1/orders takes: the same order again in another runtime */
        as_runtime *rt2 = unit_runtime(&(as_options){.start_ms = FX_T0}, &err);
        ck_assert_msg(as__order_create(rt2, view, &err) == 0, "view %d: %s", which, err.msg);
        json_t *view2 = as__order_json(as__order_get(rt2, id));
        json_array_foreach(json_object_get(view2, "items"), i, it) json_object_del(it, "attempts");
        ck_assert(json_equal(view, view2));
        json_decref(view2);
        as_runtime_free(rt2);
        json_decref(view);
        json_decref(body);
        as_runtime_free(rt);
    }
}
END_TEST

/* An order without paid_at is paid at its creation (the runtime's now); buyer_credit is
 * shown only when known, attempts as counted. */
START_TEST(codec_order_json_defaults_and_attempts)
{
    as_error err = {0};
    as_runtime *rt = unit_runtime(&(as_options){.start_ms = FX_T0}, &err);
    json_t *body = json_pack("{s:s, s:s, s:s, s:[{s:s, s:s, s:i, s:i}]}", "id", "O1", "shop",
                             "S1", "buyer", "B1", "items", "sku", "T1", "category", "apparel",
                             "qty", 2, "price", 100);
    ck_assert_int_eq(as__order_create(rt, body, &err), 0);
    as_order *o = as__order_get(rt, "O1");
    o->items[0].attempts = 3;
    json_t *v = as__order_json(o);
    ck_assert_int_eq(json_integer_value(json_object_get(v, "paid_at")), FX_T0);
    ck_assert_ptr_null(json_object_get(v, "buyer_credit"));
    ck_assert_int_eq(json_integer_value(json_object_get(v, "shipping_fee")), 0);
    ck_assert(json_is_false(json_object_get(v, "freight_insurance")));
    json_t *it = json_array_get(json_object_get(v, "items"), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(it, "attempts")), 3);
    ck_assert_ptr_null(json_object_get(it, "serial"));
    ck_assert(json_is_false(json_object_get(it, "live")));
    char keys[256];
    keys_of(it, keys, sizeof keys);
    ck_assert_str_eq(keys, "attempts,category,custom_made,live,no_reason_excluded,price,qty,sku");
    json_decref(v);
    json_decref(body);
    as_runtime_free(rt);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, codec_json_duplicate_keys_refused);
    tcase_add_test(parse, codec_json_malformed_names_why_and_the_line_when_asked);
    tcase_add_test(parse, codec_json_reads_len_bytes_only);
    suite_add_tcase(s, parse);
    TCase *open = tcase_create("open");
    tcase_add_test(open, codec_open_reads_every_field);
    tcase_add_test(open, codec_open_range_errors_are_kept_for_check_7);
    tcase_add_test(open, codec_open_missing_fields_named);
    tcase_add_test(open, codec_open_wrong_types_and_limits_named);
    tcase_add_test(open, codec_open_limits_at_the_bound_and_one_past);
    tcase_add_test(open, codec_open_first_shape_error_kept_and_echo_safe);
    suite_add_tcase(s, open);
    TCase *act = tcase_create("act");
    tcase_add_test(act, codec_act_unknown_and_system_actions_refused);
    tcase_add_test(act, codec_act_payload_shape_errors_named);
    tcase_add_test(act, codec_act_reads_each_actions_fields);
    suite_add_tcase(s, act);
    TCase *out = tcase_create("output");
    tcase_set_timeout(out, 60);
    tcase_add_test(out, codec_case_json_keys_and_nulls);
    tcase_add_test(out, codec_case_json_every_field_at_its_limit);
    tcase_add_test(out, codec_order_json_round_trips_every_field_at_its_limit);
    tcase_add_test(out, codec_order_json_defaults_and_attempts);
    suite_add_tcase(s, out);
    return s;
}

int main(void)
{
    return unit_run(codec_suite(), 1);
}
