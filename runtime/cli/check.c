/* check.c -- `aftersale check PACK`: load and validate a rule pack without running it. */
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "../core/pack.h"
#include "../lua/lua_engine.h"
#include "../native/native_engine.h"
#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: aftersale check PACK.lua | PLUGIN.so\n"
               "\n"
               "Loads a rule pack (a Lua file in the sandbox, or a native plugin from its\n"
               "folder), validates it and its hooks, and prints its name, version, categories\n"
               "and hooks. Exit status 0 when valid, 1 otherwise.\n");
}

int as__cli_check(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        int help = argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0);
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    as_pack *p;
    as_error err = {0};
    size_t len = strlen(argv[1]);
    int rc;
    if (len > 3 && strcmp(argv[1] + len - 3, ".so") == 0) {
        char d[4096], b[4096];
        snprintf(d, sizeof d, "%s", argv[1]);
        snprintf(b, sizeof b, "%s", argv[1]);
        rc = as__native_pack_load(dirname(d), basename(b), &p, &err);
    } else {
        rc = as__lua_pack_load_file(argv[1], NULL, &p, &err);
    }
    if (rc != 0) {
        fprintf(stderr, "aftersale check: %s (%s)\n", err.msg, as_err_name(err.code));
        return 1;
    }
    printf("name: %s\nversion: %s\nengine: %s\ncategories:", p->name, p->version, p->engine->kind);
    for (char **c = p->categories; *c; c++) printf(" %s", *c);
    printf("%s\nhooks:", p->categories[0] ? "" : " (none: a platform or merchant pack)");
    for (int h = 0; h < AS_HOOK_COUNT; h++)
        if (as__pack_has(p, h)) printf(" %s", as__hook_name(h));
    printf("\nmemory: %zu bytes\n", p->engine->memory(p));
    as__pack_unref(p);
    return 0;
}
