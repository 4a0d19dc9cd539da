/* test.c -- `aftersale test PACK_DIR...`: run the scenario files kept beside a rule pack
 * (the .json files in PACK_DIR/tests), the way `opa test` runs a policy's tests. */
#include <getopt.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: aftersale test [OPTIONS] PACK_DIR...\n"
               "\n"
               "Runs every scenario in PACK_DIR/tests/*.json (paths in a scenario are relative\n"
               "to it: a merchant pack's tests name it as \"../rules.lua\"), prints one line per\n"
               "failed expectation and 'N passed, M failed'.\n"
               "\n"
               "%s"
               "  -h, --help      this text\n"
               "\n"
               "Exit status: 0 all passed, 1 some failed, 2 no tests found or a file could not\n"
               "be read or parsed.\n",
            AS_RUN_OPTIONS_HELP);
}

int as__cli_test(int argc, char **argv)
{
    as_run_opts ro;
    int rc = as__run_opts_parse(&ro, argc, argv, usage);
    if (rc >= 0) return rc;
    glob_t g;
    memset(&g, 0, sizeof g);
    for (int i = optind; i < argc; i++) {
        char pattern[4200];
        snprintf(pattern, sizeof pattern, "%s/tests/*.json", argv[i]);
        int grc = glob(pattern, i > optind ? GLOB_APPEND : 0, NULL, &g);
        if (grc != 0 && grc != GLOB_NOMATCH) {
            fprintf(stderr, "aftersale test: cannot list %s\n", pattern);
            globfree(&g);
            return 2;
        }
    }
    if (g.gl_pathc == 0) {
        fprintf(stderr, "aftersale test: no scenario files in PACK_DIR/tests/\n");
        globfree(&g);
        return 2;
    }
    rc = as__run_files(g.gl_pathv, (int)g.gl_pathc, &ro);
    globfree(&g);
    return rc;
}
