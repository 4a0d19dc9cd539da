/* decides.so -- a merchant plugin whose auto_decide agrees with a why (the decision's reason,
 * docs/design.md#provenance) for a quality claim, and rejects any other with a reason. */
#include "aftersale/plugin.h"

static const struct as_host_api *api;

static int init(const struct as_host_api *host, void **state)
{
    api = host;
    *state = 0;
    return 0;
}

static int auto_decide(void *state, const as_view *c, const as_view *order, int64_t now_ms,
                       struct as_decision *out)
{
    (void)state, (void)order, (void)now_ms;
    const char *reason = api->str(c, AS_F_REASON);
    if (reason && reason[0] == 'q') {
        out->action = "agree";
        out->reason = "a quality claim: the merchant agrees to all of them";
    } else {
        out->action = "reject";
        out->reason = "as_described";
    }
    return AS_PLUGIN_ANSWER;
}

static const struct as_plugin plugin = {
    .abi_version = AS_PLUGIN_ABI,
    .struct_size = sizeof(struct as_plugin),
    .name = "decides",
    .version = "1",
    .init = init,
    .auto_decide = auto_decide,
};

__attribute__((visibility("default"))) const struct as_plugin *aftersale_plugin(void)
{
    return &plugin;
}
