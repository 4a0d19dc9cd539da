/* cli.h -- the `aftersale` command's subcommands. Each returns the process exit status. */
#ifndef AS_CLI_H
#define AS_CLI_H

#include <stddef.h>
#include <jansson.h>
#include <stdio.h>

#include "aftersale/aftersale.h"

#define AS_RUN_MAX_NATIVE 16

typedef struct as_run_opts {
    const char *packs, *plugins;
    const char *native[AS_RUN_MAX_NATIVE]; /* categories to run on their native plugin */
    int nnative;
    long lua_instructions; /* 0: the default */
    size_t lua_memory;     /* 0: the default */
    int explain;           /* print each step's decisions (docs/design.md#provenance) */
} as_run_opts;

#define AS_RUN_OPTIONS_HELP                                                                \
    "  --lua-instructions N  instruction budget per Lua hook call (default 1000000)\n"      \
    "  --lua-memory BYTES    memory cap per Lua pack (default 33554432, 32 MiB)\n"      \
    "  --native CATEGORY     run CATEGORY on its native plugin in every scenario\n"     \
    "  -v, --explain         after each step, each decision it led to: who or what\n"   \
    "                        decided, under which pack, why, and the refund's parts\n"

int as__cli_run(int argc, char **argv);
int as__cli_test(int argc, char **argv);
int as__cli_pipe(int argc, char **argv);
int as__cli_serve(int argc, char **argv);
/* Parses the options `run` and `test` share. Returns -1 to go on (optind at the first
 * operand), or the exit status (after --help, a bad option, or no operand). */
int as__run_opts_parse(as_run_opts *ro, int argc, char **argv, void (*help)(FILE *));
/* Runs scenario files, prints the summary line; returns the exit status of `run`. */
int as__run_files(char **files, int n, const as_run_opts *ro);
int as__cli_check(int argc, char **argv);
/* explain.c: history entries (docs/design.md#provenance) as one line each, times as offsets
 * from `start_ms`. as__explain_history prints entries from index `from` on and returns the
 * history's length. */
void as__explain_entry(FILE *f, const char *case_id, int64_t start_ms, json_t *entry);
size_t as__explain_history(FILE *f, const char *case_id, int64_t start_ms, json_t *history,
                           size_t from);
/* `aftersale simulate` (simulate.c): seeded synthetic traffic on a virtual clock. */
int as__cli_simulate(int argc, char **argv);
int as__cli_backtest(int argc, char **argv);
/* `aftersale db` (db.c) and its check and export (db_check.c, db_export.c). */
int as__cli_db(int argc, char **argv);
int as__cli_db_check(int argc, char **argv);
int as__cli_db_export(int argc, char **argv);
/* db_scenario.c: `db export --scenario --shop SHOP FILE`, the shop's recorded history as a
 * scenario on stdout; returns the exit status (0, or 1 with the reason on stderr). */
#define AS_DB_SCENARIO_MAX_CASES 100000
int as__db_scenario(const char *file, const char *packs, const char *shop);
/* Parses `db check` and `db export` options: [--packs DIR] FILE. Returns -1 to go on (FILE at
 * argv[optind], *packs the bundled packs' folder), or the exit status (after --help, or a
 * usage error). */
int as__db_options(int argc, char **argv, void (*usage)(FILE *), const char **packs);
/* A new runtime on a virtual clock that never moves, with the bundled packs of `packs` loaded
 * as a starting server loads them, to restore a file into (as__runtime_restore). *rt is the
 * caller's even when this fails (NULL when it could not be made): as_runtime_free. */
/* The bundled packs' folder: $AFTERSALE_PACKS, else the build's configured default. */
const char *as__cli_packs_dir(void);
/* Native plugins' folder: $AFTERSALE_PLUGINS, else the build's plugins folder. */
const char *as__cli_plugin_dir(void);

#endif
