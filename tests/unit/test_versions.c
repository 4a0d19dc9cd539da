/* test_versions.c -- pack version identity (versions.h) and the SHA-256 pins carry
 * (digest.h), through the public loaders and the registry. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/aftersale.h"
#include "core/digest.h"
#include "core/runtime.h"
#include "unit_common.h"

#define SRC(v, body)                                                                       \
    "return { name = \"m\", version = \"" v "\",\n"                                       \
    "  eligibility = function(o, r, now) " body " end }\n"

static as_runtime *rt_new(void)
{
    as_options o = {.start_ms = 1772323200000ll, .auto_pay = 1};
    return unit_runtime(&o, NULL);
}

START_TEST(versions_sha256_is_the_standard_digest)
{
    char hex[AS_SHA256_HEX];
    ck_assert_int_eq(as__sha256_hex("abc", 3, hex), 0);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ck_assert_int_eq(as__sha256_hex("", 0, hex), 0);
    ck_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
END_TEST

START_TEST(versions_another_source_under_a_used_version_is_a_conflict)
{
    as_runtime *rt = rt_new();
    as_error err = {0};
    ck_assert_int_eq(as_runtime_load_merchant_source(rt, "S1", SRC("1", "return true"), &err), 0);
    as_pack *v1 = as__shop_get(rt, "S1", 0)->merchant;
    ck_assert_int_eq(as_runtime_load_merchant_source(rt, "S1", SRC("1", "return nil"), &err),
                     AS_ECONFLICT);
    ck_assert_ptr_nonnull(strstr(err.msg, "m@1"));
    as_shop *s = as__shop_get(rt, "S1", 0);
    ck_assert_ptr_eq(s->merchant, v1); /* nothing changed */
    ck_assert_int_eq(s->versions.n, 1);
    /* another shop has its own versions */
    ck_assert_int_eq(as_runtime_load_merchant_source(rt, "S2", SRC("1", "return nil"), &err), 0);
    as_runtime_free(rt);
}
END_TEST

START_TEST(versions_the_same_source_again_is_that_version)
{
    as_runtime *rt = rt_new();
    as_error err = {0};
    ck_assert_int_eq(as_runtime_load_merchant_source(rt, "S1", SRC("1", "return true"), &err), 0);
    as_shop *s = as__shop_get(rt, "S1", 0);
    as_pack *v1 = s->merchant;
    ck_assert_int_eq(as_runtime_load_merchant_source(rt, "S1", SRC("2", "return true"), &err), 0);
    ck_assert_ptr_ne(s->merchant, v1);
    ck_assert_int_eq(as_runtime_load_merchant_source(rt, "S1", SRC("1", "return true"), &err), 0);
    ck_assert_int_eq(s->versions.n, 2);
    ck_assert_str_eq(s->merchant->version, "1");
    char hex[AS_SHA256_HEX];
    const char *src = SRC("1", "return true");
    as__sha256_hex(src, strlen(src), hex);
    ck_assert_str_eq(as__versions_find(&s->versions, "m", "1")->sha256, hex);
    as_runtime_free(rt);
}
END_TEST

START_TEST(versions_names_and_versions_are_bounded)
{
    as_runtime *rt = rt_new();
    as_error err = {0};
    ck_assert_int_eq(as_runtime_load_merchant_source(
                         rt, "S1", "return { name = \"m\", version = \"1/2\" }", &err),
                     AS_EBAD_REQUEST);
    ck_assert_int_eq(as_runtime_load_merchant_source(
                         rt, "S1", "return { name = \"m\\r\\n\", version = \"1\" }", &err),
                     AS_EBAD_REQUEST);
    ck_assert_int_eq(as_runtime_load_merchant_source(rt, "bad shop", SRC("1", "return nil"), &err),
                     AS_EBAD_REQUEST);
    as_shop *s1 = as__shop_get(rt, "S1", 0); /* refused: no version was kept */
    ck_assert(s1 == NULL || (s1->versions.n == 0 && s1->merchant == NULL));
    for (int i = 0; i < AS_MAX_VERSIONS; i++) {
        char src[200];
        snprintf(src, sizeof src, "return { name = \"m\", version = \"%d\" }", i);
        ck_assert_int_eq(as_runtime_load_merchant_source(rt, "S1", src, &err), 0);
    }
    ck_assert_int_eq(as_runtime_load_merchant_source(
                         rt, "S1", "return { name = \"m\", version = \"x\" }", &err),
                     AS_EBAD_REQUEST);
    as_runtime_free(rt);
}
END_TEST

/* A bundled pack file loaded again under its version must be the same bytes. */
START_TEST(versions_platform_pack_reloaded_with_another_source_is_a_conflict)
{
    as_runtime *rt = rt_new();
    as_error err = {0};
    ck_assert_int_eq(as_runtime_load_pack(rt, AS_SOURCE_ROOT "/plugins/platform/platform.lua", &err), 0);
    char path[] = "/tmp/as-test-versions-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs("return { name = \"platform\", version = \"3\" }\n", f);
    fclose(f);
    ck_assert_int_eq(as_runtime_load_pack(rt, path, &err), AS_ECONFLICT);
    ck_assert_str_eq(rt->platform->version, "3");
    ck_assert(as__pack_has(rt->platform, AS_HOOK_ELIGIBILITY)); /* still the real one */
    unlink(path);
    as_runtime_free(rt);
}
END_TEST

/* A failed version answers every hook with a failure naming why. */
START_TEST(versions_failed_pack_fails_every_hook)
{
    as_pack *p = as__pack_new_failed("m", "1", "it threw at load");
    ck_assert_ptr_nonnull(p);
    as_answer a;
    as_error err = {0};
    as_hook_args args = {0};
    for (int h = 0; h < AS_HOOK_COUNT; h++) {
        ck_assert(as__pack_has(p, h));
        ck_assert_int_eq(p->engine->call(p, h, &args, &a, &err), AS_ERULE_ERROR);
        ck_assert_int_eq(a.kind, AS_ANS_NIL);
        ck_assert_ptr_nonnull(strstr(err.msg, "it threw at load"));
    }
    ck_assert_uint_eq(p->failures, AS_HOOK_COUNT);
    as__pack_unref(p);
}
END_TEST

static Suite *versions_suite(void)
{
    Suite *s = suite_create("versions");
    TCase *tc = tcase_create("identity");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, versions_sha256_is_the_standard_digest);
    tcase_add_test(tc, versions_another_source_under_a_used_version_is_a_conflict);
    tcase_add_test(tc, versions_the_same_source_again_is_that_version);
    tcase_add_test(tc, versions_names_and_versions_are_bounded);
    tcase_add_test(tc, versions_platform_pack_reloaded_with_another_source_is_a_conflict);
    tcase_add_test(tc, versions_failed_pack_fails_every_hook);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return unit_run(versions_suite(), 1);
}
