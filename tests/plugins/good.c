/* good.so -- a minimal valid category plugin: categories {"gadgets"}, one hook (deadlines:
 * merchant_response = 5 h), init and fini that check each other. */
#include <stdlib.h>

#include "aftersale/plugin.h"

static const char *const categories[] = {"gadgets", 0};
static int token;

static int init(const struct as_host_api *host, void **state)
{
    if (host == 0 || host->abi_version != AS_PLUGIN_ABI) return -1;
    *state = &token;
    return 0;
}

static void fini(void *state)
{
    if (state != &token) abort(); /* the loader lost the state init gave it */
}

static int deadlines(void *state, const as_view *c, const as_view *order, int64_t ms[AS_D_COUNT])
{
    if (state != &token) return AS_PLUGIN_FAIL;
    ms[AS_D_MERCHANT_RESPONSE] = 5 * AS_HOUR_MS;
    return AS_PLUGIN_ANSWER;
}

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = "good",
    .version = "1.2",
    .categories = categories,
    .init = init,
    .fini = fini,
    .deadlines = deadlines,
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
