/* db_export.c -- `aftersale db export FILE`: the file's orders and cases as JSON lines.
 *
 * The rows go through the restore a starting server runs (as_db_export, with the same
 * bundled packs), and each case is the runtime's own view of it (as_case_get_json; GET
 * /v1/cases/{id} is that plus what the asking key may do next, and each history entry's copy
 * of the case's rules), so a line is what the server would show after a restart (deadlines
 * that fell due meanwhile aside: nothing fires here). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aftersale db export [--packs DIR] FILE\n"
            "       aftersale db export --scenario --shop SHOP [--packs DIR] FILE\n"
            "\n"
            "Writes the orders and cases of a database file of `aftersale serve` to standard\n"
            "output as JSON lines, one object per line, read-only (a server may hold it):\n"
            "    {\"order\": ORDER}   the keys of POST /v1/orders; each line also has attempts\n"
            "    {\"case\": CASE}     as GET /v1/cases/{id} answers, with its history, less\n"
            "                       `actions` and the history entries' copies of `rules`\n"
            "Orders come by id; each order's line is followed by its cases, oldest first.\n"
            "A row that cannot be restored stops the export (exit 1) naming its table and\n"
            "key; `aftersale db check FILE` lists them all.\n"
            "\n"
            "With --scenario, writes instead the recorded history of SHOP as one scenario file\n"
            "(docs/design.md#scenario-files) a pack's tests can keep: its orders and the\n"
            "parties' commands at their recorded times (whole seconds), then each case's state\n"
            "and refund as the file holds them as the expectations, at the last instant its\n"
            "history records. At most %d cases.\n"
            "\n"
            "  --scenario   a scenario of one shop's cases instead of the JSON lines\n"
            "  --shop SHOP  the shop (with --scenario)\n"
            "  --packs DIR  the bundled rule packs a server would start with (default:\n"
            "               %s)\n"
            "  -h, --help   this text\n"
            "\n"
            "Exit status 0 when everything was written, 1 when not, 2 for a usage error.\n",
            AS_DB_SCENARIO_MAX_CASES, as__cli_packs_dir());
}

/* One line {"KIND": obj} on stdout. */
static int line(void *ud, const char *kind, const char *json)
{
    (void)ud;
    (void)kind;
    if (puts(json) < 0) return AS_EIO;
    return 0;
}

int as__cli_db_export(int argc, char **argv)
{
    static const struct option opts[] = {{"packs", required_argument, NULL, 'p'},
                                         {"scenario", no_argument, NULL, 's'},
                                         {"shop", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *packs = as__cli_packs_dir(), *shop = NULL;
    int as_scenario = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': packs = optarg; break;
        case 's': as_scenario = 1; break;
        case 'S': shop = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (argc - optind != 1 || (as_scenario != (shop != NULL))) {
        if (argc - optind == 1) fprintf(stderr, "aftersale db export: --scenario and --shop go together\n");
        usage(stderr);
        return 2;
    }
    if (as_scenario) return as__db_scenario(argv[optind], packs, shop);
    as_error err = {0};
    int rc = as_db_export(argv[optind], packs, line, NULL, &err);
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout)))
        rc = AS_EIO, snprintf(err.msg, sizeof err.msg, "cannot write the export: standard output failed");
    if (rc) {
        fprintf(stderr, "aftersale db export: %s\n", err.msg);
        return 1;
    }
    return 0;
}
