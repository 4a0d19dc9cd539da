/* cli.h -- the `aftersale` command's subcommands. Each returns the process exit status. */
#ifndef AS_CLI_H
#define AS_CLI_H

int as__cli_run(int argc, char **argv);
int as__cli_check(int argc, char **argv);
/* The bundled packs' folder: $AFTERSALE_PACKS, else the build's configured default. */
const char *as__cli_packs_dir(void);
/* Native plugins' folder: $AFTERSALE_PLUGINS, else the build's plugins folder. */
const char *as__cli_plugin_dir(void);

#endif
