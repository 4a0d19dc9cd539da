/* init_fails.so -- a valid plugin whose init refuses to start (returns non-zero). Its fini
 * must not run: nothing was initialised. */
#include <stdlib.h>

#include "aftersale/plugin.h"

static int init(const struct as_host_api *host, void **state)
{
    *state = 0;
    return 7;
}

static void fini(void *state)
{
    abort(); /* the loader called fini after a failed init */
}

static int inspection(void *state, const as_view *c, const as_view *order)
{
    return AS_PLUGIN_ANSWER;
}

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = "init_fails",
    .version = "1",
    .init = init,
    .fini = fini,
    .inspection = inspection,
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
