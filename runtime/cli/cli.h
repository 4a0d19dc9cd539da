/* cli.h -- the `aftersale` command's subcommands. Each returns the process exit status. */
#ifndef AS_CLI_H
#define AS_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "aftersale/aftersale.h"

#define AS_RUN_MAX_NATIVE 16

typedef struct as_run_opts {
    const char *packs, *plugins;
    const char *native[AS_RUN_MAX_NATIVE]; /* categories to run on their native plugin */
    int nnative;
    long lua_instructions; /* 0: the default */
    size_t lua_memory;     /* 0: the default */
} as_run_opts;

#define AS_RUN_OPTIONS_HELP                                                                \
    "  --lua-instructions N  instruction budget per Lua hook call (default 1000000)\n"      \
    "  --lua-memory BYTES    memory cap per Lua pack (default 33554432, 32 MiB)\n"      \
    "  --native CATEGORY     run CATEGORY on its native plugin in every scenario\n"

int as__cli_run(int argc, char **argv);
int as__cli_test(int argc, char **argv);
int as__cli_pipe(int argc, char **argv);
int as__cli_serve(int argc, char **argv);
/* Parses the options `run` and `test` share. Returns -1 to go on (optind at the first
 * operand), or the exit status (after --help, or a bad option). */
int as__run_opts_parse(as_run_opts *ro, int argc, char **argv, void (*help)(FILE *));
/* Runs scenario files, prints the summary line; returns the exit status of `run`. */
int as__run_files(char **files, int n, const as_run_opts *ro);
int as__cli_check(int argc, char **argv);
/* `aftersale db` (db.c) and its check and export (db_check.c, db_export.c). */
int as__cli_db(int argc, char **argv);
int as__cli_db_check(int argc, char **argv);
int as__cli_db_export(int argc, char **argv);
/* 1 when argv[1] is the only argument and asks for --help. */
int as__db_wants_help(int argc, char **argv);
struct as_store;
/* Opens `path` read-only and restores it into a new runtime on a virtual clock that never
 * moves (as__runtime_restore: `refused` as there). *store and *rt are the caller's even when
 * this fails (either may be NULL): free both with as__db_snapshot_free. */
int as__db_snapshot(const char *path,
                    int (*refused)(void *ud, const char *table, const char *key, const char *why),
                    void *ud, struct as_store **store, as_runtime **rt, as_error *err);
void as__db_snapshot_free(struct as_store *store, as_runtime *rt);
/* The bundled packs' folder: $AFTERSALE_PACKS, else the build's configured default. */
const char *as__cli_packs_dir(void);
/* Native plugins' folder: $AFTERSALE_PLUGINS, else the build's plugins folder. */
const char *as__cli_plugin_dir(void);

#endif
