/* main.c -- the `aftersale` command: dispatch to subcommands. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aftersale/aftersale.h"
#include "cli.h"

#ifndef AS_PACKS_DIR
#define AS_PACKS_DIR "plugins"
#define AS_PLUGIN_DIR "plugins"
#define AS_BUILD_ROOT ""
#define AS_PACKS_INSTALLED "plugins"
#define AS_PLUGIN_INSTALLED "plugins"
#endif

/* A binary run from its build tree uses the source tree's packs and the build's plugins; an
 * installed one those under its prefix (meson's datadir and libdir). Decided by where the
 * running executable is, so a build tree moved or removed after `ninja install` does not
 * matter to the installed copy. */
static int in_build_tree(void)
{
    static int known = -1;
    if (known < 0) {
        char exe[PATH_MAX], root[PATH_MAX]; /* both resolved: a symlink in either path */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        size_t len = realpath(AS_BUILD_ROOT, root) ? strlen(root) : 0;
        known = n > 0 && len > 0 && (size_t)n > len && strncmp(exe, root, len) == 0 &&
                exe[len] == '/';
    }
    return known;
}

const char *as__cli_packs_dir(void)
{
    const char *env = getenv("AFTERSALE_PACKS");
    if (env && *env) return env;
    return in_build_tree() ? AS_PACKS_DIR : AS_PACKS_INSTALLED;
}

const char *as__cli_plugin_dir(void)
{
    const char *env = getenv("AFTERSALE_PLUGINS");
    if (env && *env) return env;
    return in_build_tree() ? AS_PLUGIN_DIR : AS_PLUGIN_INSTALLED;
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
               "  serve             the HTTP JSON API on the SQLite store (docs/api.md)\n"
               "  db COMMAND FILE   check, back up or export a database file (docs/db.md)\n"
               "  simulate          seeded synthetic traffic on a virtual clock, its metrics\n"
               "  backtest          replay a shop's recorded cases under candidate rules\n"
               "\n"
               "environment:\n"
               "  AFTERSALE_PACKS   the bundled Lua packs (default: %s)\n"
               "  AFTERSALE_PLUGINS the native plugins (default: %s)\n"
               "\n"
               "'aftersale COMMAND --help' describes a command. --version prints %s.\n"
               "'man aftersale' once installed.\n",
            as__cli_packs_dir(), as__cli_plugin_dir(), AS_VERSION_STRING);
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
    if (strcmp(cmd, "simulate") == 0) return as__cli_simulate(argc - 1, argv + 1);
    if (strcmp(cmd, "backtest") == 0) return as__cli_backtest(argc - 1, argv + 1);
    fprintf(stderr, "aftersale: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
