/* null_name.so -- a plugin with a valid header and a hook but no name. */
#include "aftersale/plugin.h"

static int inspection(void *state, const as_view *c, const as_view *order)
{
    return AS_PLUGIN_ANSWER;
}

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = 0,
    .version = "1",
    .inspection = inspection,
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
