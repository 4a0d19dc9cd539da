/* backtest.c -- `aftersale backtest`: a shop's recorded cases replayed under a candidate
 * merchant pack, and what changes (docs/design.md#interfaces). The replay and its report are
 * the library's as_db_backtest (the server's POST /v1/shops/{shop}/rules/backtest runs the
 * same); this reads the candidate file and prints the report, as a table or as it came. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: aftersale backtest --db FILE --shop SHOP --rules CANDIDATE.lua [--packs DIR]\n"
            "                          [--json]\n"
            "\n"
            "Replays the recorded cases of SHOP from the database file of `aftersale serve` (read\n"
            "only; a server may hold it) on a virtual clock, twice: under the shop's merchant\n"
            "pack in force in the file (or none) and under CANDIDATE.lua. The parties' commands\n"
            "come at their recorded times; deadlines and auto-decisions are derived again; a\n"
            "command the candidate refuses is skipped. Prints each case that ends differently\n"
            "(state, refund, auto-decisions, deadlines fired) and the totals: money refunded\n"
            "(fen, cases refunding or refunded), cases auto-agreed, disputes (escalations),\n"
            "cases compared, commands skipped. At most 100,000 cases, 10 s of replay.\n"
            "\n"
            "  --db FILE       the database file\n"
            "  --shop SHOP     the shop whose cases are replayed\n"
            "  --rules FILE    the candidate merchant pack (Lua)\n"
            "  --packs DIR     the bundled rule packs (default: %s)\n"
            "  --json          one JSON document instead of the table\n"
            "  -h, --help      this text\n"
            "\n"
            "Exit status 0 when the report was written, 1 when the file or the candidate could\n"
            "not be read, 2 for a usage error.\n",
            as__cli_packs_dir());
}

/* The candidate file whole into *src (as_malloc'd, NUL-terminated) and *len; 0, or 1 with a
 * sentence on stderr. */
static int read_candidate(const char *path, char **src, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int bad = f == NULL;
    while (!bad) {
        if (n + 1 >= cap) {
            char *p = as_realloc(buf, cap = cap ? cap * 2 : 4096);
            if ((bad = p == NULL)) break;
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            bad = ferror(f);
            break;
        }
    }
    if (f) fclose(f);
    if (bad) {
        fprintf(stderr, "aftersale backtest: %s: cannot read the candidate\n", path);
        as_free(buf);
        return 1;
    }
    buf[n] = '\0';
    *src = buf;
    *len = n;
    return 0;
}

/* One side of a changed case, from the report's OUTCOME object. */
static void print_outcome(json_t *o)
{
    const char *s = json_string_value(json_object_get(o, "state"));
    printf("%s %lld fen, %lld auto", s ? s : "(not opened)",
           (long long)json_integer_value(json_object_get(o, "refund_amount")),
           (long long)json_integer_value(json_object_get(o, "auto_decisions")));
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(o, "deadlines"), i, d)
        printf("%s%s", i ? "," : ", ", json_string_value(d));
}

/* The counts of a totals member: baseline, candidate, delta. */
static void print_delta(const char *what, json_t *totals, const char *unit)
{
    json_t *t = json_object_get(totals, what);
    printf("%lld -> %lld%s (%+lld)", (long long)json_integer_value(json_object_get(t, "baseline")),
           (long long)json_integer_value(json_object_get(t, "candidate")), unit,
           (long long)json_integer_value(json_object_get(t, "delta")));
}

/* The report as a table: each changed case, then the totals. */
static void print_table(json_t *doc)
{
    printf("case\tbaseline\t->\tcandidate\n");
    size_t i;
    json_t *c, *t = json_object_get(doc, "totals"), *skipped = json_object_get(t, "skipped");
    json_array_foreach(json_object_get(doc, "changed"), i, c)
    {
        printf("%s\t", json_string_value(json_object_get(c, "case")));
        print_outcome(json_object_get(c, "baseline"));
        printf("\t->\t");
        print_outcome(json_object_get(c, "candidate"));
        printf("\n");
    }
    printf("refunded ");
    print_delta("refunded", t, " fen");
    printf(", auto-agreed ");
    print_delta("auto_agreed", t, "");
    printf(", disputes ");
    print_delta("disputes", t, "");
    printf("\n%lld cases compared, %lld changed; commands skipped: %lld baseline, %lld "
           "candidate\n",
           (long long)json_integer_value(json_object_get(t, "cases")),
           (long long)json_integer_value(json_object_get(t, "changed")),
           (long long)json_integer_value(json_object_get(skipped, "baseline")),
           (long long)json_integer_value(json_object_get(skipped, "candidate")));
}

int as__cli_backtest(int argc, char **argv)
{
    static const struct option longs[] = {
        {"db", required_argument, NULL, 'd'},   {"shop", required_argument, NULL, 's'},
        {"rules", required_argument, NULL, 'r'}, {"packs", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},       {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *db = NULL, *shop = NULL, *rules = NULL, *packs = as__cli_packs_dir();
    int as_json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (opt) {
        case 'd': db = optarg; break;
        case 's': shop = optarg; break;
        case 'r': rules = optarg; break;
        case 'p': packs = optarg; break;
        case 'j': as_json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || db == NULL || shop == NULL || rules == NULL) {
        fprintf(stderr, "aftersale backtest: %s\n",
                optind < argc ? "unexpected arguments" : "--db, --shop and --rules are needed");
        usage(stderr);
        return 2;
    }
    char *src = NULL;
    size_t len = 0;
    if (read_candidate(rules, &src, &len) != 0) return 1;
    as_error err = {0};
    char *text = as_db_backtest(db, packs, shop, src, len, NULL, &err); /* owned here */
    as_free(src);
    if (text == NULL) {
        fprintf(stderr, "aftersale backtest: %s\n", err.msg);
        return 1;
    }
    json_t *doc = as_json ? NULL : json_loads(text, 0, NULL);
    if (as_json) printf("%s\n", text);
    else if (doc) print_table(doc);
    json_decref(doc);
    as_free(text);
    if (!as_json && doc == NULL) {
        fprintf(stderr, "aftersale backtest: out of memory\n");
        return 1;
    }
    return fflush(stdout) != 0 || ferror(stdout);
}
