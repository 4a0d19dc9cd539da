/* wrong_abi.so -- a plugin built for an ABI the host does not speak (abi_version 999); the
 * loader must refuse it with a sentence before reading anything else (docs/design.md#plugin-abi). */
#include "aftersale/plugin.h"

static int eligibility(void *state, const as_view *order, const as_view *request, int64_t now,
                       struct as_refusal *out)
{
    out->code = out->message = 0;
    return AS_PLUGIN_ANSWER;
}

static const struct as_plugin plugin = {
    .abi_version = 999,
    .struct_size = sizeof(struct as_plugin),
    .name = "wrong_abi",
    .version = "1",
    .eligibility = eligibility,
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
