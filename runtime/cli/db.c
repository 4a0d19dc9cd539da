/* db.c -- `aftersale db`: tools for a database file of `aftersale serve` (docs/db.md).
 *
 * Every subcommand opens the file read-only (aftersale.h as_db_*): no writer lock,
 * nothing written or migrated, so each runs beside a server that holds the file. This file
 * dispatches, says --help, parses what check and export share, and does the backup. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: aftersale db COMMAND ARGS\n"
               "\n"
               "Tools for the SQLite file of `aftersale serve` (docs/db.md). Each opens the file\n"
               "read-only and takes no writer lock, so each works while a server runs on it;\n"
               "none writes or migrates it.\n"
               "\n"
               "commands:\n"
               "  check [--packs DIR] FILE   integrity, every row restorable, the invariants\n"
               "                             between tables; exit 0 clean, 1 with problems\n"
               "  backup [--force] FILE DEST a consistent copy with SQLite's online backup\n"
               "  export [--packs DIR] FILE  orders and cases with their histories as JSON\n"
               "                             lines\n"
               "\n"
               "'aftersale db COMMAND --help' describes a command.\n");
}

int as__db_options(int argc, char **argv, void (*usage)(FILE *), const char **packs)
{
    static const struct option opts[] = {
        {"packs", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    *packs = as__cli_packs_dir();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') return usage(stdout), 0;
        if (c == '?') return usage(stderr), 2;
        *packs = optarg;
    }
    if (argc - optind != 1) return usage(stderr), 2;
    return -1;
}

static void backup_usage(FILE *f)
{
    fprintf(f, "usage: aftersale db backup [--force] FILE DEST\n"
               "\n"
               "Copies FILE into DEST with SQLite's online backup API: one consistent snapshot,\n"
               "taken while a server may go on writing FILE (it is not held up). The copy is\n"
               "written as DEST.partial, synced, then renamed to DEST, so DEST is whole or\n"
               "absent. DEST is a database on its own (no -wal beside it); `aftersale db check\n"
               "DEST` checks it and `aftersale serve --db DEST` serves it.\n"
               "\n"
               "  --force     replace an existing DEST (and its DEST-wal, DEST-shm); a DEST that\n"
               "              a server holds for writing is refused even so\n"
               "  -h, --help  this text\n"
               "\n"
               "Exit status 0 when DEST is written, 1 when not, 2 for a usage error.\n");
}

static int cli_backup(int argc, char **argv)
{
    static const struct option opts[] = {
        {"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    int force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') return backup_usage(stdout), 0;
        if (c == '?') return backup_usage(stderr), 2;
        force = 1;
    }
    if (argc - optind != 2) return backup_usage(stderr), 2;
    const char *path = argv[optind], *dest = argv[optind + 1];
    as_error err = {0};
    int pages, rc = as_db_backup(path, dest, force, &pages, &err);
    if (rc) {
        fprintf(stderr, "aftersale db backup: %s\n", err.msg);
        return 1;
    }
    printf("aftersale db backup: %s copied to %s (%d pages)\n", path, dest, pages);
    return 0;
}

int as__cli_db(int argc, char **argv)
{
    if (argc < 2) return usage(stderr), 2;
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
        return usage(stdout), 0;
    if (strcmp(cmd, "check") == 0) return as__cli_db_check(argc - 1, argv + 1);
    if (strcmp(cmd, "backup") == 0) return cli_backup(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0) return as__cli_db_export(argc - 1, argv + 1);
    fprintf(stderr, "aftersale db: unknown command '%s'\n", cmd);
    return usage(stderr), 2;
}
