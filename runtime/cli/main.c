/* main.c -- the `aftersale` command: dispatch to subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aftersale/aftersale.h"
#include "cli.h"

#ifndef AS_PACKS_DIR
#define AS_PACKS_DIR "plugins"
#endif

const char *as__cli_packs_dir(void)
{
    const char *env = getenv("AFTERSALE_PACKS");
    return env && *env ? env : AS_PACKS_DIR;
}

#ifndef AS_PLUGIN_DIR
#define AS_PLUGIN_DIR "plugins"
#endif

const char *as__cli_plugin_dir(void)
{
    const char *env = getenv("AFTERSALE_PLUGINS");
    return env && *env ? env : AS_PLUGIN_DIR;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: aftersale COMMAND [ARGS]\n"
               "\n"
               "An after-sales workflow runtime (refunds, returns, exchanges, repairs).\n"
               "\n"
               "commands:\n"
               "  run SCENARIO...   run scenario files headless on a virtual clock\n"
               "  test PACK_DIR...  run the scenario files kept beside a rule pack\n"
               "  check PACK        load and validate a rule pack (.lua or .so)\n"
               "  pipe              a durable runtime over stdin/stdout (docs/pipe.md)\n"
               "  serve             the HTTP JSON API on the SQLite store (in progress)\n"
               "  db COMMAND FILE   check, back up or export a database file (docs/db.md)\n"
               "\n"
               "'aftersale COMMAND --help' describes a command. --version prints %s.\n",
            AS_VERSION_STRING);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("aftersale %s\n", AS_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) return as__cli_run(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0) return as__cli_check(argc - 1, argv + 1);
    if (strcmp(cmd, "test") == 0) return as__cli_test(argc - 1, argv + 1);
    if (strcmp(cmd, "pipe") == 0) return as__cli_pipe(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0) return as__cli_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "db") == 0) return as__cli_db(argc - 1, argv + 1);
    fprintf(stderr, "aftersale: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
