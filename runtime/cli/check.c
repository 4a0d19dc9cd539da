/* check.c -- `aftersale check PACK`: load and validate a rule pack without running it. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: aftersale check PACK.lua | PLUGIN.so\n"
               "\n"
               "Loads a rule pack (a Lua file in the sandbox, or a native plugin from its\n"
               "folder), validates it and its hooks, and prints its name, version, categories\n"
               "and hooks, then a warning for each hook the layer it would run in never asks\n"
               "(a pack without categories is a merchant's or the platform's: order_check is\n"
               "asked of the platform and category packs only). Exit status 0 when valid\n"
               "(warnings or not), 1 otherwise.\n");
}

/* Hooks a pack without categories may define that a merchant layer never asks, and why. */
static const struct {
    const char *hook, *why;
} merchant_ignores[] = {
    {"order_check", "an order is checked by the platform and category packs only, when it is "
                    "created; as a merchant pack this hook never runs"},
};

static void warn_ignored(json_t *j)
{
    if (json_array_size(json_object_get(j, "categories"))) return;
    size_t k;
    json_t *v;
    json_array_foreach(json_object_get(j, "hooks"), k, v)
    for (size_t i = 0; i < sizeof merchant_ignores / sizeof *merchant_ignores; i++)
        if (strcmp(json_string_value(v), merchant_ignores[i].hook) == 0)
            printf("warning: %s: %s\n", merchant_ignores[i].hook, merchant_ignores[i].why);
}

int as__cli_check(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        int help = argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    as_error err = {0};
    char *text = as_pack_inspect(argv[1], &err); /* owned here */
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    as_free(text);
    if (j == NULL) {
        if (text) err = (as_error){AS_ENOMEM, "out of memory"};
        fprintf(stderr, "aftersale check: %s (%s)\n", err.msg, as_err_name(err.code));
        return 1;
    }
    printf("name: %s\nversion: %s\nengine: %s\ncategories:", json_string_value(json_object_get(j, "name")),
           json_string_value(json_object_get(j, "version")),
           json_string_value(json_object_get(j, "engine")));
    json_t *cats = json_object_get(j, "categories"), *v;
    size_t k;
    json_array_foreach(cats, k, v) printf(" %s", json_string_value(v));
    printf("%s\nhooks:", json_array_size(cats) ? "" : " (none: a platform or merchant pack)");
    json_array_foreach(json_object_get(j, "hooks"), k, v) printf(" %s", json_string_value(v));
    printf("\nmemory: %lld bytes\n", (long long)json_integer_value(json_object_get(j, "memory")));
    warn_ignored(j);
    json_decref(j);
    return 0;
}
