/* aftersale/plugin.h -- the whole SDK for native rule plugins (docs/design.md#plugin-abi).
 *
 * A plugin is a dynamically loaded library (.so) that exports one symbol:
 *
 *     const struct as_plugin *aftersale_plugin(void);
 *
 * returning a struct that lives as long as the object is loaded. Its first two fields are
 * `abi_version` (AS_PLUGIN_ABI) and `struct_size` (sizeof(struct as_plugin) as the plugin was
 * built): the host refuses another ABI version, refuses a struct too short for the fields of
 * ABI 1, and never reads past `struct_size`. Fields are only ever appended.
 *
 * The host hands each call read-only views (`as_view`) and reads them through the host API
 * table given at `init`, so a plugin includes this header only and links against nothing of
 * the runtime. Hooks are the Lua packs' hooks (docs/rules.md) with the same meaning; every hook
 * is optional (NULL). A hook returns AS_PLUGIN_NIL for "no opinion", AS_PLUGIN_ANSWER with its
 * answer in the out parameter, or AS_PLUGIN_FAIL, which the host treats like a Lua hook that
 * threw. Hooks must be pure functions of their arguments and must not block.
 *
 * Views and every string the host returns are valid until the hook returns. */
#ifndef AFTERSALE_PLUGIN_H
#define AFTERSALE_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AS_PLUGIN_ABI 1

enum { AS_PLUGIN_FAIL = -1, AS_PLUGIN_NIL = 0, AS_PLUGIN_ANSWER = 1 };

/* A view of an order, a case, an item or an earlier case; opaque to the plugin. */
typedef struct as_view {
    const void *p[3];
    int64_t n;
} as_view;

/* Field ids for as_host_api.str and .num. A field that does not apply to a view, or is not
 * set (an order not yet delivered), reads as absent. */
enum as_field {
    /* strings */
    AS_F_ID, AS_F_SHOP, AS_F_BUYER, AS_F_ORDER, AS_F_CATEGORY, AS_F_TYPE, AS_F_REASON,
    AS_F_STATE, AS_F_REMEDY, AS_F_SKU, AS_F_SERIAL,
    /* numbers (money in fen, time in ms UTC, flags 0/1) */
    AS_F_SHIPPING_FEE, AS_F_PAID_AT, AS_F_SHIPPED_AT, AS_F_DELIVERED_AT, AS_F_CONFIRMED_AT,
    AS_F_FREIGHT_INSURANCE, AS_F_BUYER_CREDIT, AS_F_QTY, AS_F_PRICE, AS_F_LIVE, AS_F_CUSTOM_MADE,
    AS_F_NO_REASON_EXCLUDED, AS_F_REQUESTED_AMOUNT, AS_F_BAD_PERMILLE, AS_F_OPENED_AT,
    AS_F_ENDED_AT, AS_F_VERSION, AS_F_PAID, AS_F_REFUND_AMOUNT, AS_F_RETURN_SHIPPING,
    AS_F_NEEDS_INSPECTION, AS_F_PRIORITY, AS_F_REPAIR_DAYS, AS_F_EVIDENCE_COUNT
};

/* Lists for as_host_api.count and .at. */
enum as_list {
    AS_L_ITEMS, /* of an order: its lines; of a case: its items, with their lines' fields */
    AS_L_CASES  /* of an order: its other cases, oldest first */
};

/* Deadline kinds: the index into the `deadlines` hook's array. */
enum as_deadline {
    AS_D_MERCHANT_RESPONSE, AS_D_BUYER_RESPONSE, AS_D_ESCALATION_WINDOW, AS_D_BUYER_SHIP,
    AS_D_MERCHANT_RECEIVE, AS_D_INSPECTION, AS_D_MERCHANT_SHIP, AS_D_REPAIR, AS_D_BUYER_CONFIRM,
    AS_D_COUNT
};

#define AS_HOUR_MS 3600000LL
#define AS_DAY_MS 86400000LL

/* Host services, passed to init. Append-only like as_plugin. */
struct as_host_api {
    uint32_t abi_version;
    uint32_t struct_size;
    /* The field as a string, or NULL when absent. */
    const char *(*str)(const as_view *v, int field);
    /* 1 with *out set, or 0 when absent. */
    int (*num)(const as_view *v, int field, int64_t *out);
    /* The length of a list of `v` (0 when it has none). */
    int (*count)(const as_view *v, int list);
    /* Fills *out with element i (0-based) of a list of `v`; 0, or -1 when out of range. */
    int (*at)(const as_view *v, int list, int i, as_view *out);
    /* floor((t + 8h) / 24h): the platform-local day (docs/rulebook.md#conventions). */
    int64_t (*local_day)(int64_t t_ms);
    /* Writes a line to the host's log. */
    void (*log)(const char *plugin, const char *msg);
};

/* A refusal: an error code of docs/design.md#error-codes ("window_expired") and a sentence. Pointers must
 * stay valid until the plugin is unloaded (string literals are the usual choice). */
struct as_refusal {
    const char *code;
    const char *message;
};

/* auto_decide's answer: action is "agree" or "reject"; reason is a reject's reason, and for
 * an agree the why the case history shows beside it (docs/design.md#provenance), or NULL. */
struct as_decision {
    const char *action;
    const char *reason;
};

struct as_plugin {
    uint32_t abi_version; /* AS_PLUGIN_ABI */
    uint32_t struct_size; /* sizeof(struct as_plugin) */
    const char *name;
    const char *version;
    const char *const *categories; /* NULL-terminated, or NULL: a platform or merchant plugin */

    /* Called once after loading; *state is passed to every hook. Returns 0, or non-zero to
     * refuse loading. May be NULL. */
    int (*init)(const struct as_host_api *host, void **state);
    /* Called once before unloading. May be NULL. */
    void (*fini)(void *state);

    /* The hooks. order_check and eligibility answer with out->code NULL for "allowed" (an
     * eligibility `true`) or a refusal. */
    int (*order_check)(void *state, const as_view *order, struct as_refusal *out);
    int (*eligibility)(void *state, const as_view *order, const as_view *request, int64_t now_ms,
                       struct as_refusal *out);
    int (*refund_amount)(void *state, const as_view *c, const as_view *order, int64_t *fen);
    /* ms[k] for each kind k it sets; entries it leaves at -1 are unset. */
    int (*deadlines)(void *state, const as_view *c, const as_view *order, int64_t ms[AS_D_COUNT]);
    int (*priority)(void *state, const as_view *c, const as_view *order, int64_t *priority);
    int (*auto_decide)(void *state, const as_view *c, const as_view *order, int64_t now_ms,
                       struct as_decision *out);
    /* result: 1 "fault", 0 "no_fault"; *remedy: "refund", "exchange", "repair" or "reject" */
    int (*on_inspection)(void *state, const as_view *c, const as_view *order, int fault,
                         int64_t now_ms, const char **remedy);
    /* AS_PLUGIN_ANSWER means true. */
    int (*inspection)(void *state, const as_view *c, const as_view *order);
    int (*instant_refund)(void *state, const as_view *c, const as_view *order);
};

/* The one symbol a plugin exports. */
typedef const struct as_plugin *(*as_plugin_entry)(void);
#define AS_PLUGIN_SYMBOL "aftersale_plugin"

#ifdef __cplusplus
}
#endif
#endif
