/* db_check.c -- `aftersale db check [--packs DIR] FILE`: can a server start on this file, and what stops it?
 *
 * Two passes, one line per problem: SQLite's integrity and the references between tables
 * (sqlite_tools.c), then every row restored by the same restore a starting server runs, after
 * the same bundled packs (durable.c), so that "decodes" means exactly "the server could
 * restore it". A table the restore cannot read at all is a problem of the file; only a lack
 * of memory, or a file or packs folder it cannot open, ends the check without a summary. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aftersale db check [--packs DIR] FILE\n"
            "\n"
            "Checks a database file of `aftersale serve`, read-only (a server may hold it):\n"
            "SQLite's integrity_check; every row of orders, cases, events and packs restored\n"
            "as a starting server restores it (its data decodes, a case's order and pinned\n"
            "pack versions are stored, a history is entries 0..n-1 of a stored case); the\n"
            "invariants between tables (a case's order_id and history, outbox entries and\n"
            "acknowledgements naming stored cases and entries, each pack version's SHA-256\n"
            "against its source); the file is aftersale's, of this build's schema.\n"
            "\n"
            "Prints one line per problem, naming its table and key\n"
            "    cases C123: its data does not decode as a case\n"
            "    events C9#0: its case 'C9' is not stored, or could not be restored\n"
            "('database: ...' for the file as a whole), then a summary line.\n"
            "\n"
            "  --packs DIR  the bundled rule packs a server would start with (default:\n"
            "               %s); the rows are checked against them as a start does\n"
            "  -h, --help   this text\n"
            "\n"
            "Exit status 0 when clean, 1 with problems (or a file it cannot open), 2 for a\n"
            "usage error.\n",
            as__cli_packs_dir());
}

typedef struct found {
    long problems;
} found;

static void problem(void *ud, const char *table, const char *key, const char *why)
{
    found *f = ud;
    f->problems++;
    if (key)
        printf("%s %s: %s\n", table, key, why);
    else
        printf("%s: %s\n", table, why);
}

/* A count for the summary; "?" for a table that could not be read. */
static const char *count(long long n, char buf[24])
{
    if (n < 0) return "?";
    snprintf(buf, 24, "%lld", n);
    return buf;
}

int as__cli_db_check(int argc, char **argv)
{
    const char *packs;
    int status = as__db_options(argc, argv, usage, &packs);
    if (status >= 0) return status;
    const char *path = argv[optind];
    found f = {0};
    as_db_counts n = {0};
    as_error err = {0};
    int rc = as_db_check(path, packs, problem, &f, &n, &err);
    fflush(stdout);
    if (rc) {
        fprintf(stderr, "aftersale db check: %s\n", err.msg);
        return 1;
    }
    char verdict[48] = "clean", c[6][24];
    if (f.problems)
        snprintf(verdict, sizeof verdict, "%ld problem%s", f.problems, f.problems == 1 ? "" : "s");
    printf("aftersale db check: %s: %s (%s orders, %s cases, %s history entries, %s pack "
           "versions, %s outbox entries, %s idempotency keys)\n",
           path, verdict, count(n.orders, c[0]), count(n.cases, c[1]), count(n.events, c[2]),
           count(n.packs, c[3]), count(n.outbox, c[4]), count(n.idempotency, c[5]));
    return f.problems ? 1 : 0;
}
