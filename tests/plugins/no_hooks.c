/* no_hooks.so -- a valid header (name, version, categories, init) and every hook NULL: a pack
 * that can never answer anything is refused as a mistake. */
#include "aftersale/plugin.h"

static const char *const categories[] = {"gadgets", 0};

static int init(const struct as_host_api *host, void **state)
{
    *state = 0;
    return 0;
}

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = "no_hooks",
    .version = "1",
    .categories = categories,
    .init = init,
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
