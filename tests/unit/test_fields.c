/* test_fields.c -- the field schema (core/fields.h): every field of the native API has its
 * rows, the key lookup the Lua views use finds exactly the keys of the rows, and the Lua views
 * and the JSON of a case and an order are the same rows in the same order.
 *   - fields.h: "A view row is X(id, key, kind, flags, getter) ... Rows are in the order of
 *     the view's JSON object."
 *   - aftersale/plugin.h: "A field that does not apply to a view, or is not set, reads as
 *     absent"; the strings come through as_host_api.str, the numbers through .num. */
#include <check.h>
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fields.h"
#include "request/codec.h"
#include "unit_common.h"
#include "unit_fixtures.h"

static const as_field_view VIEWS[] = {AS_FV_ORDER, AS_FV_CASE, AS_FV_ITEM};
#define NVIEWS ((int)(sizeof VIEWS / sizeof *VIEWS))

/* ==========================================================================================
 * The rows against plugin.h
 * ======================================================================================== */

/* Each field of plugin.h is in exactly one view, but for those two views share: the id of an
 * order and of a case, the category of a case and of its items, and the shipping fee of an
 * order and the part of it a case refunds. */
START_TEST(fields_every_public_id_has_its_rows)
{
    static const int shared[] = {AS_F_ID, AS_F_CATEGORY, AS_F_SHIPPING_FEE};
    for (int id = 0; id <= AS__F_PUBLIC_LAST; id++) {
        int want = 1, got = 0;
        for (size_t s = 0; s < sizeof shared / sizeof *shared; s++)
            want += shared[s] == id;
        for (int v = 0; v < NVIEWS; v++) {
            int n;
            const as_field_row *rows = as__field_rows(VIEWS[v], &n);
            for (int r = 0; r < n; r++)
                got += rows[r].id == id;
        }
        ck_assert_msg(got == want, "field %d has %d rows, want %d", id, got, want);
    }
}
END_TEST

/* as_host_api.str reads AS_F_ID..AS_F_SERIAL and .num the rest: a row of another kind would
 * turn a plugin's field absent. */
START_TEST(fields_public_ids_keep_their_kind)
{
    for (int v = 0; v < NVIEWS; v++) {
        int n;
        const as_field_row *rows = as__field_rows(VIEWS[v], &n);
        for (int r = 0; r < n; r++) {
            if (rows[r].id > AS__F_PUBLIC_LAST) continue;
            if (rows[r].id <= AS_F_SERIAL)
                ck_assert_msg(rows[r].kind == AS_FK_STR, "%s is not a string", rows[r].key);
            else
                ck_assert_msg(rows[r].kind == AS_FK_INT || rows[r].kind == AS_FK_BOOL,
                              "%s is not a number", rows[r].key);
        }
    }
}
END_TEST

/* plugin.h: "A field that does not apply to a view ... reads as absent" -- plugins pass any
 * int, and the ids past plugin.h's are not theirs to read through the getter's views. */
START_TEST(fields_get_rejects_foreign_ids)
{
    fx f = fx_new();
    as_field_ctx order = {.order = f.o, .c = f.c};
    as_field_ctx kase = {.order = f.o, .c = f.c, .v = &f.c->v};
    as_field_ctx item = {.order = f.o, .item = &f.o->items[0], .qty = 2};
    as_field_value val;
    static const int odd[] = {-1, INT_MIN, INT_MAX, AS__F_COUNT, AS__F_COUNT + 1};
    for (size_t i = 0; i < sizeof odd / sizeof *odd; i++) {
        ck_assert_int_eq(as__field_get(AS_FV_ORDER, odd[i], &order, &val), 0);
        ck_assert_int_eq(as__field_get(AS_FV_CASE, odd[i], &kase, &val), 0);
        ck_assert_int_eq(as__field_get(AS_FV_ITEM, odd[i], &item, &val), 0);
    }
    ck_assert_int_eq(as__field_get(AS_FV_ORDER, AS_F_SKU, &order, &val), 0);
    ck_assert_int_eq(as__field_get(AS_FV_ITEM, AS_F_STATE, &item, &val), 0);
    ck_assert_int_eq(as__field_get(AS_FV_CASE, AS_F_BUYER, &kase, &val), 0);
    ck_assert_int_eq(as__field_get(AS_FV_COUNT, AS_F_ID, &kase, &val), 0);
    /* and a field of the view that is not set reads as absent: the fixture's order is not
     * confirmed, its case has no bad_permille */
    ck_assert_int_eq(as__field_get(AS_FV_ORDER, AS_F_CONFIRMED_AT, &order, &val), 0);
    ck_assert_int_eq(as__field_get(AS_FV_CASE, AS_F_BAD_PERMILLE, &kase, &val), 0);
    ck_assert_int_eq(as__field_get(AS_FV_ORDER, AS_F_PAID_AT, &order, &val), 1);
    ck_assert_int_eq(val.i, FX_T0);
    fx_free(&f);
}
END_TEST

/* ==========================================================================================
 * The key lookup (the Lua views' __index)
 * ======================================================================================== */

START_TEST(fields_find_every_key)
{
    for (int v = 0; v < NVIEWS; v++) {
        int n;
        const as_field_row *rows = as__field_rows(VIEWS[v], &n);
        for (int r = 0; r < n; r++) {
            ck_assert_uint_eq(rows[r].len, strlen(rows[r].key));
            ck_assert_ptr_eq(as__field_find(VIEWS[v], rows[r].key, rows[r].len), &rows[r]);
        }
    }
}
END_TEST

/* `key` (`len` bytes) names no row of `view` by the rows themselves. */
static int not_a_key(as_field_view view, const char *key, size_t len)
{
    int n;
    const as_field_row *rows = as__field_rows(view, &n);
    for (int r = 0; r < n; r++)
        if (rows[r].len == len && memcmp(rows[r].key, key, len) == 0) return 0;
    return 1;
}

static void expect_miss(as_field_view view, const char *key, size_t len)
{
    if (not_a_key(view, key, len))
        ck_assert_msg(as__field_find(view, key, len) == NULL, "'%.*s' (%zu bytes) found in view %d",
                      (int)len, key, len, view);
}

/* A Lua string may hold any bytes: a key's prefix, the key and one byte more, a NUL inside
 * or after it, another case, no bytes or too many are no key. */
START_TEST(fields_find_rejects_near_misses)
{
    char buf[300];
    for (int v = 0; v < NVIEWS; v++) {
        int n;
        const as_field_row *rows = as__field_rows(VIEWS[v], &n);
        for (int r = 0; r < n; r++) {
            const char *k = rows[r].key;
            size_t len = rows[r].len;
            for (size_t cut = 1; cut < len; cut++)
                expect_miss(VIEWS[v], k, cut);
            memcpy(buf, k, len);
            buf[len] = 'x';
            expect_miss(VIEWS[v], buf, len + 1);
            buf[len] = '\0';
            expect_miss(VIEWS[v], buf, len + 1); /* "id\0" */
            buf[0] = k[0];
            buf[1] = '\0';
            memcpy(buf + 2, k + 1, len - 1);
            expect_miss(VIEWS[v], buf, len + 1); /* "i\0d" */
            memcpy(buf, k, len);
            buf[0] = (char)toupper((unsigned char)buf[0]);
            expect_miss(VIEWS[v], buf, len); /* "Id" */
            memset(buf, 'a', sizeof buf);
            memcpy(buf, k, len);
            expect_miss(VIEWS[v], buf, 256);
            expect_miss(VIEWS[v], buf, sizeof buf);
        }
        expect_miss(VIEWS[v], "", 0);
    }
    /* a key of one view is no key of another */
    ck_assert_ptr_null(as__field_find(AS_FV_ORDER, "sku", 3));
    ck_assert_ptr_null(as__field_find(AS_FV_CASE, "buyer", 5));
    ck_assert_ptr_null(as__field_find(AS_FV_ITEM, "state", 5));
    ck_assert_ptr_null(as__field_find(AS_FV_COUNT, "id", 2));
}
END_TEST

/* ==========================================================================================
 * One set of rows: the JSON and the Lua views
 * ======================================================================================== */

/* The keys of `obj`, in order, must be the rows of `view` flagged `flag` (those with a value,
 * when `all` is 0), then `more` (NULL-terminated). */
static void expect_keys(json_t *obj, as_field_view view, unsigned flag, int all,
                        const as_field_ctx *x, const char *const *more)
{
    int n;
    const as_field_row *rows = as__field_rows(view, &n);
    void *it = json_object_iter(obj);
    for (int r = 0; r < n; r++) {
        as_field_value val;
        if (!(rows[r].flags & flag) || (!all && !as__field_get(view, rows[r].id, x, &val)))
            continue;
        ck_assert_msg(it != NULL, "'%s' missing", rows[r].key);
        ck_assert_str_eq(json_object_iter_key(it), rows[r].key);
        it = json_object_iter_next(obj, it);
    }
    for (; more && *more; more++) {
        ck_assert_msg(it != NULL, "'%s' missing", *more);
        ck_assert_str_eq(json_object_iter_key(it), *more);
        it = json_object_iter_next(obj, it);
    }
    ck_assert_msg(it == NULL, "'%s' is no row", it ? json_object_iter_key(it) : "");
}

/* docs/design.md's case object: the rows flagged J (absent ones as null), then the rules,
 * the deadline and the history; each item the rows flagged C. */
START_TEST(fields_case_json_keys_are_the_rows)
{
    fx f = fx_new();
    static const char *const ev[] = {"photo-1"};
    fx_evidence(&f, ev, 1);
    json_t *j = as__case_json(f.c);
    ck_assert_ptr_nonnull(j);
    static const char *const tail[] = {"rules", "deadline", "history", NULL};
    as_field_ctx x = {.order = f.o, .c = f.c, .v = &f.c->v};
    expect_keys(j, AS_FV_CASE, AS_FF_JSON, 1, &x, tail);
    ck_assert(json_is_null(json_object_get(j, "bad_permille")));
    json_t *items = json_object_get(j, "items");
    ck_assert_int_eq(json_array_size(items), 1);
    as_field_ctx e;
    ck_assert_int_eq(as__field_item(AS_FV_CASE, &x, 0, &e), 0);
    expect_keys(json_array_get(items, 0), AS_FV_ITEM, AS_FF_CASE_ITEM, 1, &e, NULL);
    json_decref(j);
    fx_free(&f);
}
END_TEST

/* docs/pipe.md's order.get: "the keys of POST /v1/orders (instants left out until they
 * happen, buyer_credit when known)" and each line's attempts: the rows flagged J that have a
 * value. The fixture is not confirmed, its first line has no serial. */
START_TEST(fields_order_json_keys_are_the_rows)
{
    fx f = fx_new();
    json_t *j = as__order_json(f.o);
    ck_assert_ptr_nonnull(j);
    as_field_ctx x = {.order = f.o};
    expect_keys(j, AS_FV_ORDER, AS_FF_JSON, 0, &x, NULL);
    ck_assert_ptr_null(json_object_get(j, "confirmed_at"));
    json_t *items = json_object_get(j, "items");
    ck_assert_int_eq(json_array_size(items), 2);
    for (int i = 0; i < 2; i++) {
        as_field_ctx e;
        ck_assert_int_eq(as__field_item(AS_FV_ORDER, &x, i, &e), 0);
        expect_keys(json_array_get(items, i), AS_FV_ITEM, AS_FF_JSON, 0, &e, NULL);
    }
    ck_assert_ptr_null(json_object_get(json_array_get(items, 0), "serial"));
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "serial")),
                     "SN-1");
    json_decref(j);
    fx_free(&f);
}
END_TEST

/* A JSON value as the Lua expression of lua_text would print it: nil for null or absent, a
 * list as '#' and its length. */
static void json_text(json_t *v, char *out, size_t size)
{
    if (v == NULL || json_is_null(v))
        snprintf(out, size, "nil");
    else if (json_is_integer(v))
        snprintf(out, size, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(out, size, "%s", json_string_value(v));
    else if (json_is_boolean(v))
        snprintf(out, size, "%s", json_is_true(v) ? "true" : "false");
    else if (json_is_array(v))
        snprintf(out, size, "#%zu", json_array_size(v));
    else
        snprintf(out, size, "?");
}

/* What a Lua hook reads as `var.key` on the fixture (request is the case, order the order):
 * tostring of it, or '#' and the length of a list. */
static void lua_text(const char *var, const as_field_row *row, char *out, size_t size)
{
    int list = row->kind == AS_FK_ITEMS || row->kind == AS_FK_STRS || row->kind == AS_FK_CASES;
    char src[512];
    snprintf(src, sizeof src,
             "return { name = 'p', version = '1', eligibility = function(order, request, now) "
             "return { error = 'bad_request', message = %s%s.%s%s } end }",
             list ? "'#' .. #" : "tostring(", var, row->key, list ? "" : ")");
    as_pack *p = fx_load(src, &(as_pack_limits){.instructions = 20000, .memory = 1 << 20}, 0, NULL);
    fx f = fx_new();
    static const char *const ev[] = {"photo-1"};
    fx_evidence(&f, ev, 1);
    as_answer ans;
    as_error err;
    ck_assert_msg(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err) == 0, "%s: %s", src, err.msg);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    snprintf(out, size, "%s", ans.msg);
    fx_free(&f);
    as__pack_unref(p);
}

/* Every key of a Lua view that the JSON has too reads the same value through both (nil where
 * the JSON leaves it out or writes null); the keys only the Lua view has are not in the JSON
 * (and each has a value on the fixture). */
static void expect_lua_reads_the_json(const char *var, as_field_view view, json_t *j)
{
    int n;
    const as_field_row *rows = as__field_rows(view, &n);
    for (int r = 0; r < n; r++) {
        if (!(rows[r].flags & AS_FF_LUA)) continue;
        char lua[300], want[300];
        lua_text(var, &rows[r], lua, sizeof lua);
        if (rows[r].flags & AS_FF_JSON) {
            json_text(json_object_get(j, rows[r].key), want, sizeof want);
            ck_assert_msg(strcmp(lua, want) == 0, "%s.%s: Lua %s, JSON %s", var, rows[r].key, lua,
                          want);
        } else {
            ck_assert_msg(json_object_get(j, rows[r].key) == NULL, "%s in the JSON", rows[r].key);
            ck_assert_msg(strcmp(lua, "nil") != 0, "%s.%s reads nil", var, rows[r].key);
        }
    }
}

START_TEST(fields_lua_views_read_the_json_values)
{
    fx f = fx_new();
    static const char *const ev[] = {"photo-1"};
    fx_evidence(&f, ev, 1);
    json_t *c = as__case_json(f.c), *o = as__order_json(f.o);
    expect_lua_reads_the_json("request", AS_FV_CASE, c);
    expect_lua_reads_the_json("order", AS_FV_ORDER, o);
    char lua[300];
    lua_text("request", &(as_field_row){.key = "nosuchfield", .kind = AS_FK_INT}, lua, sizeof lua);
    ck_assert_str_eq(lua, "nil");
    json_decref(c);
    json_decref(o);
    fx_free(&f);
}
END_TEST

/* Appends `key` as a Lua string literal (decimal escapes, so any byte goes) to `out`. */
static void lua_quote(char *out, size_t size, const char *key, size_t len)
{
    size_t at = strlen(out);
    at += (size_t)snprintf(out + at, size - at, "\"");
    for (size_t i = 0; i < len && at < size; i++)
        at += (size_t)snprintf(out + at, size - at, "\\%03u", (unsigned char)key[i]);
    snprintf(out + at, size - at, "\",");
}

/* The rows' keys of `view` flagged AS_FF_LUA as a Lua list literal. */
static void lua_keys(char *out, size_t size, as_field_view view)
{
    int n;
    const as_field_row *rows = as__field_rows(view, &n);
    snprintf(out, size, "{");
    for (int r = 0; r < n; r++)
        if (rows[r].flags & AS_FF_LUA) lua_quote(out, size, rows[r].key, rows[r].len);
    snprintf(out + strlen(out), size - strlen(out), "}");
}

/* A Lua string may hold any bytes: a key's prefix, the key and one byte more, a NUL inside
 * or after it, another case, no bytes, a long run, and keys that are no string read nil on
 * each view; so does a key of one view on another. The hook answers the first miss it finds. */
START_TEST(fields_lua_views_refuse_near_misses)
{
    static char keys[3][4096], src[16384];
    lua_keys(keys[0], sizeof keys[0], AS_FV_CASE);
    lua_keys(keys[1], sizeof keys[1], AS_FV_ORDER);
    lua_keys(keys[2], sizeof keys[2], AS_FV_ITEM);
    snprintf(src, sizeof src,
             "local KEYS = { %s, %s, %s }\n"
             "local function near(k)\n"
             "  local v = { k .. 'x', k .. '\\0', k:sub(1, 1) .. '\\0' .. k:sub(2), k:upper(),\n"
             "              k .. string.rep('a', 300), '' }\n"
             "  for cut = 1, #k - 1 do v[#v + 1] = k:sub(1, cut) end\n"
             "  return v\n"
             "end\n"
             "local function miss(view, keys)\n"
             "  local is = {}\n"
             "  for _, k in ipairs(keys) do is[k] = true end\n"
             "  for _, k in ipairs(keys) do\n"
             "    for _, m in ipairs(near(k)) do\n"
             "      if not is[m] and view[m] ~= nil then return m end\n"
             "    end\n"
             "  end\n"
             "  for _, m in ipairs({ 1, 0, -1, true, 0.5, 2^63 }) do\n"
             "    if view[m] ~= nil then return tostring(m) end\n"
             "  end\n"
             "end\n"
             "return { name = 'p', version = '1', eligibility = function(order, request, now)\n"
             "  local views = { request, order, order.items[1] }\n"
             "  for i = 1, 3 do\n"
             "    local m = miss(views[i], KEYS[i])\n"
             "    if m then return { error = 'bad_request', message = i .. ':' .. m } end\n"
             "    local is = {}\n"
             "    for _, k in ipairs(KEYS[i]) do is[k] = true end\n"
             "    for j = 1, 3 do\n"
             "      for _, k in ipairs(KEYS[j]) do\n"
             "        if not is[k] and views[i][k] ~= nil then\n"
             "          return { error = 'bad_request', message = i .. ' has ' .. k }\n"
             "        end\n"
             "      end\n"
             "    end\n"
             "  end\n"
             "  return { error = 'bad_request', message = 'none' }\n"
             "end }\n",
             keys[0], keys[1], keys[2]);
    as_pack *p = fx_load(src, &(as_pack_limits){.instructions = 1000000, .memory = 8 << 20}, 0,
                         NULL);
    fx f = fx_new();
    as_answer ans;
    as_error err;
    ck_assert_msg(fx_call(p, AS_HOOK_ELIGIBILITY, &f, &ans, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(ans.kind, AS_ANS_REFUSAL);
    ck_assert_str_eq(ans.msg, "none");
    fx_free(&f);
    as__pack_unref(p);
}
END_TEST

/* ==========================================================================================
 * Lists
 * ======================================================================================== */

/* plugin.h's AS_L_ITEMS: "of a case: its items, with their lines' fields" -- and the case's
 * quantity, not the line's. */
START_TEST(fields_case_items_carry_the_case_quantity)
{
    fx f = fx_new();
    as_field_ctx kase = {.order = f.o, .c = f.c, .v = &f.c->v}, order = {.order = f.o}, e;
    as_field_value val;
    ck_assert_int_eq(as__field_item(AS_FV_CASE, &kase, 0, &e), 0);
    ck_assert_ptr_eq(e.item, &f.o->items[0]);
    ck_assert_int_eq(as__field_get(AS_FV_ITEM, AS_F_QTY, &e, &val), 1);
    ck_assert_int_eq(val.i, 1);
    ck_assert_int_eq(as__field_item(AS_FV_ORDER, &order, 0, &e), 0);
    ck_assert_int_eq(as__field_get(AS_FV_ITEM, AS_F_QTY, &e, &val), 1);
    ck_assert_int_eq(val.i, 2);
    ck_assert_int_eq(as__field_item(AS_FV_CASE, &kase, 1, &e), -1);
    ck_assert_int_eq(as__field_item(AS_FV_CASE, &kase, -1, &e), -1);
    ck_assert_int_eq(as__field_item(AS_FV_ORDER, &order, 2, &e), -1);
    ck_assert_int_eq(as__field_item(AS_FV_ITEM, &order, 0, &e), -1);
    fx_free(&f);
}
END_TEST

/* plugin.h's AS_L_CASES: "of an order: its other cases, oldest first". */
START_TEST(fields_other_cases_leave_out_the_call_case)
{
    fx f = fx_new();
    as_case a = *f.c, b = *f.c;
    a.id = "CA";
    b.id = "CB";
    as__order_add_case(f.o, &a);
    as__order_add_case(f.o, f.c);
    as__order_add_case(f.o, &b);
    ck_assert_int_eq(as__field_cases(f.o, f.c), 2);
    ck_assert_int_eq(as__field_cases(f.o, NULL), 3);
    const as_case *k = as__field_next_case(f.o, f.c, NULL);
    ck_assert_ptr_eq(k, &a);
    ck_assert_ptr_eq(k = as__field_next_case(f.o, f.c, k), &b);
    ck_assert_ptr_null(as__field_next_case(f.o, f.c, k));
    ck_assert_ptr_eq(as__field_next_case(f.o, &a, NULL), f.c);
    as_field_value val;
    ck_assert_int_eq(
        as__field_get(AS_FV_ORDER, AS__F_CASES, &(as_field_ctx){.order = f.o, .c = f.c}, &val), 1);
    ck_assert_int_eq(val.kind, AS_FK_CASES);
    ck_assert_int_eq(val.i, 2);
    fx_free(&f);
}
END_TEST

static Suite *fields_suite(void)
{
    Suite *s = suite_create("fields");
    TCase *t = tcase_create("rows");
    tcase_add_test(t, fields_every_public_id_has_its_rows);
    tcase_add_test(t, fields_public_ids_keep_their_kind);
    tcase_add_test(t, fields_get_rejects_foreign_ids);
    suite_add_tcase(s, t);
    t = tcase_create("find");
    tcase_add_test(t, fields_find_every_key);
    tcase_add_test(t, fields_find_rejects_near_misses);
    suite_add_tcase(s, t);
    t = tcase_create("one_schema");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, fields_case_json_keys_are_the_rows);
    tcase_add_test(t, fields_order_json_keys_are_the_rows);
    tcase_add_test(t, fields_lua_views_read_the_json_values);
    tcase_add_test(t, fields_lua_views_refuse_near_misses);
    suite_add_tcase(s, t);
    t = tcase_create("lists");
    tcase_add_test(t, fields_case_items_carry_the_case_quantity);
    tcase_add_test(t, fields_other_cases_leave_out_the_call_case);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return unit_run(fields_suite(), 0);
}
