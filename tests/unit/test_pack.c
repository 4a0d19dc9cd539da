/* test_pack.c -- one loaded version of a rule pack, whatever engine runs it
 * (runtime/core/pack.c).
 *
 * What pack.h promises and these tests hold it to:
 *   - "A pack is reference-counted ... an old version is freed when its last case ends":
 *     as__pack_unref "at zero frees the engine state, and the shell too unless `kept`", NULL a
 *     no-op; as__pack_free_shell frees a kept shell "and its engine state if still there";
 *   - as__pack_new "Allocates a pack shell owning copies of name and version; NULL on OOM";
 *   - as__pack_has: "bit h set when the pack defines hook h", false for no pack;
 *   - as__pack_set_categories "Takes a copy of the categories list", as__pack_serves;
 *   - the hook and layer names (docs/design.md#hooks-and-layers), "unknown" outside them. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/aftersale.h"
#include "core/pack.h"
#include "unit_common.h"

/* ------------------------------------------------------------------------------------------
 * A counting engine
 * ---------------------------------------------------------------------------------------- */

static int frees, calls;

static int count_call(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans,
                      as_error *err)
{
    (void)p, (void)h, (void)a, (void)err;
    calls++;
    ans->kind = AS_ANS_TRUE;
    return 0;
}

static size_t count_memory(const as_pack *p)
{
    (void)p;
    return 42;
}

static void count_free(as_pack *p)
{
    frees++;
    free(p->impl);
    p->impl = NULL;
}

static const as_engine counting = {"counting", count_call, count_memory, count_free};

static as_pack *counted(const char *name, const char *version)
{
    as_pack *p = as__pack_new(&counting, name, version);
    ck_assert_ptr_nonnull(p);
    p->impl = malloc(16);
    ck_assert_ptr_nonnull(p->impl);
    frees = calls = 0;
    return p;
}

/* ------------------------------------------------------------------------------------------
 * Names
 * ---------------------------------------------------------------------------------------- */

/* docs/design.md#hooks-and-layers: the hooks' names as packs spell them, the three layers in
 * the order they are asked. */
START_TEST(pack_hook_and_layer_names)
{
    static const char *const hooks[] = {"order_check",   "eligibility", "refund_amount",
                                        "deadlines",     "priority",    "auto_decide",
                                        "on_inspection", "inspection",  "instant_refund"};
    ck_assert_int_eq(AS_HOOK_COUNT, sizeof hooks / sizeof hooks[0]);
    for (int h = 0; h < AS_HOOK_COUNT; h++) ck_assert_str_eq(as__hook_name(h), hooks[h]);
    ck_assert_str_eq(as__hook_name(AS_HOOK_DEADLINES), "deadlines");
    ck_assert_str_eq(as__hook_name(-1), "unknown");
    ck_assert_str_eq(as__hook_name(AS_HOOK_COUNT), "unknown");
    ck_assert_int_eq(AS_LAYER_COUNT, 3);
    ck_assert_str_eq(as__layer_name(AS_LAYER_PLATFORM), "platform");
    ck_assert_str_eq(as__layer_name(AS_LAYER_CATEGORY), "category");
    ck_assert_str_eq(as__layer_name(AS_LAYER_MERCHANT), "merchant");
    ck_assert_str_eq(as__layer_name(-1), "unknown");
    ck_assert_str_eq(as__layer_name(AS_LAYER_COUNT), "unknown");
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * The shell
 * ---------------------------------------------------------------------------------------- */

START_TEST(pack_new_owns_copies_and_defines_no_hook)
{
    char name[] = "apparel", version[] = "1.2";
    as_pack *p = as__pack_new(&counting, name, version);
    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_ne(p->name, name);
    ck_assert_ptr_ne(p->version, version);
    name[0] = 'X', version[0] = '9'; /* the caller's buffers change: the pack's do not */
    ck_assert_str_eq(p->name, "apparel");
    ck_assert_str_eq(p->version, "1.2");
    ck_assert_ptr_eq(p->engine, &counting);
    ck_assert_int_eq(p->refs, 1);
    ck_assert_int_eq(p->kept, 0);
    ck_assert_ptr_null(p->owner);
    ck_assert_uint_eq(p->failures, 0);
    ck_assert_uint_eq(p->dropped, 0);
    ck_assert_ptr_nonnull(p->categories); /* empty, NULL-terminated */
    ck_assert_ptr_null(p->categories[0]);
    ck_assert(!as__pack_serves(p, "apparel"));
    ck_assert(!as__pack_loaded(p));
    for (int h = 0; h < AS_HOOK_COUNT; h++) ck_assert(!as__pack_has(p, h));
    as__pack_unref(p);
}
END_TEST

/* as__pack_has reads bit h of `hooks` and nothing else; no pack defines no hook. */
START_TEST(pack_has_reads_each_hook_bit)
{
    as_pack *p = counted("m", "1");
    for (int h = 0; h < AS_HOOK_COUNT; h++) {
        p->hooks = 1u << h;
        for (int k = 0; k < AS_HOOK_COUNT; k++)
            ck_assert_msg(as__pack_has(p, k) == (k == h), "hooks %#x: has(%d)", p->hooks, k);
        ck_assert(!as__pack_has(NULL, h));
    }
    p->hooks = (1u << AS_HOOK_COUNT) - 1;
    for (int h = 0; h < AS_HOOK_COUNT; h++) ck_assert(as__pack_has(p, h));
    as__pack_unref(p);
}
END_TEST

/* pack.h: "the registry holds one reference to the version in force, and every case that
 * pinned it at open holds one, so an old version is freed when its last case ends". */
START_TEST(pack_engine_state_freed_with_the_last_reference)
{
    as_pack *p = counted("m", "1");
    as__pack_ref(p); /* a case pins it */
    as__pack_ref(p); /* another */
    ck_assert_int_eq(p->refs, 3);
    as__pack_unref(p); /* the registry moves on to a new version */
    as__pack_unref(p); /* one case ends */
    ck_assert_int_eq(p->refs, 1);
    ck_assert(as__pack_loaded(p));
    ck_assert_int_eq(frees, 0);
    as_answer a;
    as_error err = {0};
    ck_assert_int_eq(p->engine->call(p, AS_HOOK_ELIGIBILITY, NULL, &a, &err), 0);
    ck_assert_int_eq(calls, 1);
    as__pack_unref(p); /* the last: engine state and (not kept) shell go */
    ck_assert_int_eq(frees, 1);
    /* NULL is a no-op */
    as__pack_ref(NULL);
    as__pack_unref(NULL);
    as__pack_free_shell(NULL);
}
END_TEST

/* A kept shell (the runtime's: as__runtime_keep) outlives its engine state: at zero only impl
 * is freed, the shell stays for its name and version until as__pack_free_shell. */
START_TEST(pack_kept_shell_outlives_its_engine_state)
{
    as_pack *p = counted("m", "7");
    p->kept = 1;
    as__pack_unref(p);
    ck_assert_int_eq(frees, 1);
    ck_assert(!as__pack_loaded(p));
    ck_assert_str_eq(p->name, "m"); /* the shell is still readable */
    ck_assert_str_eq(p->version, "7");
    as__pack_free_shell(p); /* impl already gone: not freed twice */
    ck_assert_int_eq(frees, 1);

    /* a kept shell freed while its engine state is still loaded frees both */
    as_pack *q = counted("m", "8");
    q->kept = 1;
    as__pack_free_shell(q);
    ck_assert_int_eq(frees, 1);
}
END_TEST

START_TEST(pack_categories_copied_and_replaced)
{
    as_pack *p = counted("fresh", "1");
    char a[] = "fresh_food", b[] = "apparel";
    const char *cats[] = {a, b};
    ck_assert_int_eq(as__pack_set_categories(p, cats, 2), 0);
    a[0] = 'X'; /* the caller's list changes: the pack's does not */
    ck_assert(as__pack_serves(p, "fresh_food"));
    ck_assert(as__pack_serves(p, "apparel"));
    ck_assert(!as__pack_serves(p, "Xresh_food"));
    ck_assert(!as__pack_serves(p, "electronics"));
    ck_assert(!as__pack_serves(p, "apparel "));
    ck_assert_ptr_null(p->categories[2]);
    const char *one[] = {"electronics"};
    ck_assert_int_eq(as__pack_set_categories(p, one, 1), 0); /* replaces, not adds */
    ck_assert(as__pack_serves(p, "electronics"));
    ck_assert(!as__pack_serves(p, "apparel"));
    ck_assert_int_eq(as__pack_set_categories(p, NULL, 0), 0);
    ck_assert(!as__pack_serves(p, "electronics"));
    ck_assert_ptr_null(p->categories[0]);
    as__pack_unref(p);
}
END_TEST

/* A version that failed to load (versions.h) defines every hook, each failing with the reason
 * and naming the pack and the hook; its engine holds no memory. */
START_TEST(pack_failed_version_names_pack_hook_and_why)
{
    as_pack *p = as__pack_new_failed("apparel", "3", "syntax error near 'end'");
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p->engine->kind, "failed");
    ck_assert_uint_eq(p->engine->memory(p), 0);
    ck_assert(as__pack_loaded(p));
    as_answer a;
    as_error err = {0};
    as_hook_args args = {0};
    ck_assert_int_eq(p->engine->call(p, AS_HOOK_REFUND_AMOUNT, &args, &a, &err), AS_ERULE_ERROR);
    ck_assert_int_eq(err.code, AS_ERULE_ERROR);
    ck_assert_str_eq(err.msg, "apparel@3: hook refund_amount did not run: the pack failed to "
                              "load (syntax error near 'end')");
    ck_assert_uint_eq(p->failures, 1);
    as__pack_unref(p);
}
END_TEST

/* ------------------------------------------------------------------------------------------
 * Out of memory
 * ---------------------------------------------------------------------------------------- */

/* An allocator that refuses its `fail_at`-th allocation and counts what is live. */
static int n_alloc, fail_at, live;

static void *t_malloc(size_t n)
{
    if (n_alloc++ == fail_at) return NULL;
    void *p = malloc(n);
    if (p) live++;
    return p;
}

static void *t_realloc(void *p, size_t n)
{
    if (n_alloc++ == fail_at) return NULL;
    void *q = realloc(p, n);
    if (q && !p) live++;
    return q;
}

static void *t_calloc(size_t c, size_t n)
{
    if (n_alloc++ == fail_at) return NULL;
    void *p = calloc(c, n);
    if (p) live++;
    return p;
}

static void t_free(void *p)
{
    if (p) live--;
    free(p);
}

/* "NULL on OOM" / "AS_ENOMEM": each allocation refused in turn gives the failure with nothing
 * left allocated, and a set of categories refused leaves the old set in place. */
START_TEST(pack_out_of_memory_leaves_nothing_behind)
{
    ck_assert_int_eq(as_replace_allocator(t_malloc, t_realloc, t_calloc, t_free), 0);
    int failures = 0;
    for (fail_at = 0;; fail_at++) {
        n_alloc = live = 0;
        as_pack *p = as__pack_new_failed("m", "1", "why");
        if (p == NULL) {
            ck_assert_int_eq(live, 0);
            failures++;
            continue;
        }
        ck_assert_int_eq(fail_at, n_alloc); /* the first run that needed no refusal */
        as__pack_unref(p);
        ck_assert_int_eq(live, 0);
        break;
    }
    ck_assert_int_eq(failures, 5); /* shell, name, version, categories, the reason */

    fail_at = -1;
    as_pack *p = as__pack_new(NULL, "m", "1");
    const char *old[] = {"apparel"}, *cats[] = {"fresh_food", "electronics"};
    ck_assert_int_eq(as__pack_set_categories(p, old, 1), 0);
    for (int k = 0; k < 3; k++) {
        n_alloc = 0;
        fail_at = k; /* the list, then each name */
        int before = live;
        ck_assert_int_eq(as__pack_set_categories(p, cats, 2), AS_ENOMEM);
        ck_assert_int_eq(live, before);
        ck_assert(as__pack_serves(p, "apparel"));
        ck_assert(!as__pack_serves(p, "fresh_food"));
    }
    fail_at = -1;
    as__pack_unref(p);
    ck_assert_int_eq(live, 0);
}
END_TEST

static Suite *pack_suite(void)
{
    Suite *s = suite_create("pack");
    TCase *tc = tcase_create("pack");
    tcase_add_test(tc, pack_hook_and_layer_names);
    tcase_add_test(tc, pack_new_owns_copies_and_defines_no_hook);
    tcase_add_test(tc, pack_has_reads_each_hook_bit);
    tcase_add_test(tc, pack_engine_state_freed_with_the_last_reference);
    tcase_add_test(tc, pack_kept_shell_outlives_its_engine_state);
    tcase_add_test(tc, pack_categories_copied_and_replaced);
    tcase_add_test(tc, pack_failed_version_names_pack_hook_and_why);
    tcase_add_test(tc, pack_out_of_memory_leaves_nothing_behind);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(pack_suite(), 1);
}
