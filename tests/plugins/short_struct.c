/* short_struct.so -- a plugin whose struct ends after `version`, with struct_size saying so:
 * the loader must refuse it (too short for ABI 1) without reading past its end. The struct is
 * its own, so a read past struct_size lands outside the object (ASan reports it). */
#include "aftersale/plugin.h"

struct truncated_plugin {
    uint32_t abi_version;
    uint32_t struct_size;
    const char *name;
    const char *version;
};

static const struct truncated_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct truncated_plugin),
    .name = "short_struct",
    .version = "1",
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return (const struct as_plugin *)(const void *)&plugin;
}
