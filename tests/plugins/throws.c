/* throws.so -- a platform-style plugin (no categories) whose eligibility always fails, as a
 * Lua hook that throws, and whose deadlines answer merchant_response = 1 h. */
#include "aftersale/plugin.h"

static int eligibility(void *state, const as_view *order, const as_view *request, int64_t now,
                       struct as_refusal *out)
{
    return AS_PLUGIN_FAIL;
}

static int deadlines(void *state, const as_view *c, const as_view *order, int64_t ms[AS_D_COUNT])
{
    ms[AS_D_MERCHANT_RESPONSE] = AS_HOUR_MS;
    return AS_PLUGIN_ANSWER;
}

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = "throws",
    .version = "1",
    .categories = 0,
    .eligibility = eligibility,
    .deadlines = deadlines,
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
