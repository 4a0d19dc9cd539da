/* missing_symbol.so -- a shared object that exports no `aftersale_plugin`: a near miss by name,
 * and the right name with hidden visibility, neither of which the loader may find. */
#include "aftersale/plugin.h"

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = "missing_symbol",
    .version = "1",
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin_v2(void)
{
    return &plugin;
}

__attribute__((visibility("hidden"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
