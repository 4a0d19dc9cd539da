/* native_engine.c -- loading native plugins and calling their hooks. See native_engine.h.
 *
 * The plugin sees only as_view handles and reads them through the host table below, so it
 * links against nothing of the runtime. The loader reads no field past the struct_size the
 * plugin declared (STYLE.md 7). */
#include "../core/alloc.h"
#include "native_engine.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/fields.h"
#include "../core/layers.h"
#include "../core/timefmt.h"
#include "aftersale/plugin.h"

_Static_assert((int)AS_D_COUNT == (int)AS_DL_COUNT, "plugin.h deadline kinds match model.h");
_Static_assert((int)AS_D_MERCHANT_RESPONSE == (int)AS_DL_MERCHANT_RESPONSE &&
                   (int)AS_D_BUYER_CONFIRM == (int)AS_DL_BUYER_CONFIRM && (int)AS_D_REPAIR == (int)AS_DL_REPAIR,
               "plugin.h deadline kinds in model.h order");

/* The fields of ABI 1 end with instant_refund; later fields are read only when struct_size
 * covers them, so a plugin built before they were appended still loads. */
#define ABI1_SIZE (offsetof(struct as_plugin, instant_refund) + sizeof(void (*)(void)))

typedef struct native_pack {
    void *dl;
    const struct as_plugin *pl;
    void *state;
} native_pack;

/* ------------------------------------------------------------------------------------------
 * Views: p[0] the object, p[1]/p[2] context, n the kind (and an item's quantity)
 * ---------------------------------------------------------------------------------------- */

enum { V_ORDER, V_CASE, V_ITEM };
#define KIND(v) ((int)((v)->n & 0xf))
#define ITEM_QTY(v) ((int32_t)((v)->n >> 4))

/* order: p[0] order, p[1] the case in the call (excluded from AS_L_CASES) */
static as_view order_view(const as_order *o, const as_case *self)
{
    return (as_view){{o, self, NULL}, V_ORDER};
}

/* case: p[0] case, p[1] its values (staged ones in a call), p[2] order */
static as_view case_view(const as_case *c, const as_case_vals *v)
{
    return (as_view){{c, v, c->order}, V_CASE};
}

static as_view item_view(const as_item *it, int32_t qty)
{
    return (as_view){{it, NULL, NULL}, ((int64_t)qty << 4) | V_ITEM};
}

/* The schema's context of a view (fields.h). */
static as_field_view view_ctx(const as_view *v, as_field_ctx *x)
{
    switch (KIND(v)) {
    case V_ORDER: *x = (as_field_ctx){.order = v->p[0], .c = v->p[1]}; return AS_FV_ORDER;
    case V_CASE: *x = (as_field_ctx){.order = v->p[2], .c = v->p[0], .v = v->p[1]}; return AS_FV_CASE;
    default: *x = (as_field_ctx){.item = v->p[0], .qty = ITEM_QTY(v)}; return AS_FV_ITEM;
    }
}

static const char *host_str(const as_view *v, int field)
{
    as_field_ctx x;
    as_field_value val;
    as_field_view kind = view_ctx(v, &x);
    if (!as__field_get(kind, field, &x, &val) || val.kind != AS_FK_STR) return NULL;
    return val.s;
}

static int host_num(const as_view *v, int field, int64_t *out)
{
    as_field_ctx x;
    as_field_value val;
    as_field_view kind = view_ctx(v, &x);
    /* the internal ids past plugin.h's are lists and JSON-only fields: not the plugin's */
    if (field > AS__F_PUBLIC_LAST || !as__field_get(kind, field, &x, &val) ||
        (val.kind != AS_FK_INT && val.kind != AS_FK_BOOL))
        return 0;
    *out = val.i;
    return 1;
}

/* A list of plugin.h as the schema's list field. */
static int list_field(int list)
{
    return list == AS_L_ITEMS ? AS__F_ITEMS : list == AS_L_CASES ? AS__F_CASES : -1;
}

static int host_count(const as_view *v, int list)
{
    as_field_ctx x;
    as_field_value val;
    as_field_view kind = view_ctx(v, &x);
    return as__field_get(kind, list_field(list), &x, &val) ? (int)val.i : 0;
}

static int host_at(const as_view *v, int list, int i, as_view *out)
{
    if (i < 0 || i >= host_count(v, list)) return -1;
    as_field_ctx x, e;
    as_field_view kind = view_ctx(v, &x);
    if (list == AS_L_ITEMS) {
        if (as__field_item(kind, &x, i, &e) != 0) return -1;
        *out = item_view(e.item, e.qty);
        return 0;
    }
    for (const as_case *k = NULL; (k = as__field_next_case(x.order, x.c, k)) != NULL;)
        if (i-- == 0) {
            *out = case_view(k, &k->v);
            return 0;
        }
    return -1;
}

static void host_log(const char *plugin, const char *msg)
{
    fprintf(stderr, "aftersale: plugin %s: %s\n", plugin ? plugin : "?", msg ? msg : "");
}

static const struct as_host_api host_api = {
    AS_PLUGIN_ABI, sizeof(struct as_host_api), host_str, host_num, host_count, host_at,
    as__local_day, host_log,
};

/* ------------------------------------------------------------------------------------------
 * Hook calls
 * ---------------------------------------------------------------------------------------- */

static int failed(as_pack *p, as_hook h, as_error *err, const char *what)
{
    p->failures++;
    return as__err(err, AS_ERULE_ERROR, "%s@%s: hook %s %s", p->name, p->version,
                   as__hook_name(h), what);
}

/* Copies a text answer whole into buf (AS_ANSWER_TEXT_MAX + 1 bytes), or returns 0 when it
 * is not docs/design.md#limits text. The ranges of the other answers are the layers' (layers.c). */
static int copy_text(char *buf, const char *s)
{
    size_t len = strnlen(s, AS_ANSWER_TEXT_MAX + 1);
    if (!as__answer_text_ok(s, len)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 1;
}

static int refusal(as_pack *p, as_hook h, const struct as_refusal *r, as_answer *ans,
                   as_error *err)
{
    if (r->code == NULL) {
        ans->kind = h == AS_HOOK_ELIGIBILITY ? AS_ANS_TRUE : AS_ANS_NIL;
        return 0;
    }
    int c = as_err_from_name(r->code);
    if (c == 0) return failed(p, h, err, "returned an unknown error code");
    if (!copy_text(ans->msg, r->message ? r->message : as_strerror(c)))
        return failed(p, h, err, "returned a message that is not 1-256 bytes of text");
    ans->kind = AS_ANS_REFUSAL;
    ans->code = c;
    return 0;
}

static int native_call(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans,
                       as_error *err)
{
    native_pack *np = p->impl;
    const struct as_plugin *pl = np->pl;
    as_view o = order_view(a->order, a->c);
    as_view c = a->c ? case_view(a->c, a->v) : o;
    int rc = AS_PLUGIN_NIL;
    ans->kind = AS_ANS_NIL;
    ans->why[0] = ans->where[0] = '\0'; /* a plugin's failure has no file:line */
    if (!as__pack_has(p, h)) return 0; /* no hook: no opinion, as in a Lua pack */
    switch (h) {
    case AS_HOOK_ORDER_CHECK:
    case AS_HOOK_ELIGIBILITY: {
        struct as_refusal r = {NULL, NULL};
        rc = h == AS_HOOK_ORDER_CHECK ? pl->order_check(np->state, &o, &r)
                                      : pl->eligibility(np->state, &o, &c, a->now_ms, &r);
        if (rc == AS_PLUGIN_ANSWER) return refusal(p, h, &r, ans, err);
        break;
    }
    case AS_HOOK_REFUND_AMOUNT:
    case AS_HOOK_PRIORITY: {
        int64_t x = 0;
        rc = h == AS_HOOK_PRIORITY ? pl->priority(np->state, &c, &o, &x)
                                   : pl->refund_amount(np->state, &c, &o, &x);
        if (rc == AS_PLUGIN_ANSWER) {
            ans->kind = AS_ANS_INT;
            ans->i = x;
        }
        break;
    }
    case AS_HOOK_DEADLINES: {
        int64_t ms[AS_D_COUNT];
        for (int k = 0; k < AS_D_COUNT; k++) ms[k] = -1;
        rc = pl->deadlines(np->state, &c, &o, ms);
        if (rc == AS_PLUGIN_ANSWER) {
            ans->kind = AS_ANS_DEADLINES;
            ans->dl_set = 0;
            as_deadline_kind k = as__state_deadline(a->v->state);
            if (k != AS_DL_NONE && ms[k] != -1) {
                ans->dl[k] = ms[k];
                ans->dl_set = 1u << k;
            }
        }
        break;
    }
    case AS_HOOK_AUTO_DECIDE: {
        struct as_decision d = {NULL, NULL};
        rc = pl->auto_decide(np->state, &c, &o, a->now_ms, &d);
        if (rc == AS_PLUGIN_ANSWER) {
            if (d.action && strcmp(d.action, "agree") == 0) {
                if (d.reason && !copy_text(ans->why, d.reason))
                    return failed(p, h, err, "returned a reason that is not 1-256 bytes of text");
                ans->kind = AS_ANS_AGREE;
            } else if (d.action && strcmp(d.action, "reject") == 0) {
                if (!copy_text(ans->msg, d.reason ? d.reason : "rule"))
                    return failed(p, h, err, "returned a reason that is not 1-256 bytes of text");
                ans->kind = AS_ANS_REJECT;
            } else {
                return failed(p, h, err, "returned an action other than agree or reject");
            }
        }
        break;
    }
    case AS_HOOK_ON_INSPECTION: {
        const char *remedy = NULL;
        rc = pl->on_inspection(np->state, &c, &o, a->inspect_fault, a->now_ms, &remedy);
        if (rc == AS_PLUGIN_ANSWER) {
            int r = as__remedy_from(remedy);
            if (r < 0) return failed(p, h, err, "returned an unknown remedy");
            ans->kind = AS_ANS_REMEDY;
            ans->i = r;
        }
        break;
    }
    case AS_HOOK_INSPECTION:
    case AS_HOOK_INSTANT_REFUND:
        rc = h == AS_HOOK_INSPECTION ? pl->inspection(np->state, &c, &o)
                                     : pl->instant_refund(np->state, &c, &o);
        if (rc == AS_PLUGIN_ANSWER) ans->kind = AS_ANS_TRUE;
        break;
    default: break;
    }
    if (rc == AS_PLUGIN_FAIL) return failed(p, h, err, "failed");
    if (rc != AS_PLUGIN_NIL && rc != AS_PLUGIN_ANSWER) return failed(p, h, err, "returned an unknown status");
    return 0;
}

static size_t native_memory(const as_pack *p)
{
    return sizeof(native_pack);
}

static void native_free(as_pack *p)
{
    native_pack *np = p->impl;
    if (np->pl && np->pl->fini) np->pl->fini(np->state);
    if (np->dl) dlclose(np->dl);
    as__free(np);
    p->impl = NULL;
}

static const as_engine native_engine = {"native", native_call, native_memory, native_free};

/* ------------------------------------------------------------------------------------------
 * Loading
 * ---------------------------------------------------------------------------------------- */

static uint32_t hooks_of(const struct as_plugin *pl)
{
    const void *fn[AS_HOOK_COUNT] = {
        [AS_HOOK_ORDER_CHECK] = (const void *)pl->order_check,
        [AS_HOOK_ELIGIBILITY] = (const void *)pl->eligibility,
        [AS_HOOK_REFUND_AMOUNT] = (const void *)pl->refund_amount,
        [AS_HOOK_DEADLINES] = (const void *)pl->deadlines,
        [AS_HOOK_PRIORITY] = (const void *)pl->priority,
        [AS_HOOK_AUTO_DECIDE] = (const void *)pl->auto_decide,
        [AS_HOOK_ON_INSPECTION] = (const void *)pl->on_inspection,
        [AS_HOOK_INSPECTION] = (const void *)pl->inspection,
        [AS_HOOK_INSTANT_REFUND] = (const void *)pl->instant_refund,
    };
    uint32_t mask = 0;
    for (int h = 0; h < AS_HOOK_COUNT; h++)
        if (fn[h]) mask |= 1u << h;
    return mask;
}

static int refuse(native_pack *np, as_error *err, const char *path, const char *why)
{
    if (np->dl) dlclose(np->dl);
    as__free(np);
    return as__err(err, AS_EBAD_REQUEST, "%s: %s", path, why);
}

int as__native_pack_load(const char *dir, const char *file, as_pack **out, as_error *err)
{
    *out = NULL;
    if (file == NULL || *file == '\0' || strchr(file, '/') || strstr(file, ".."))
        return as__err(err, AS_EBAD_REQUEST,
                       "'%s': a plugin is named by its file in the plugin directory only",
                       file ? file : "");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    native_pack *np = as__calloc(1, sizeof *np);
    if (np == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    np->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (np->dl == NULL) {
        const char *why = dlerror();
        char msg[512];
        snprintf(msg, sizeof msg, "cannot be loaded (%s)", why ? why : "unknown reason");
        return refuse(np, err, path, msg);
    }
    as_plugin_entry entry;
    *(void **)&entry = dlsym(np->dl, AS_PLUGIN_SYMBOL);
    if (entry == NULL)
        return refuse(np, err, path, "exports no " AS_PLUGIN_SYMBOL " symbol: not an aftersale plugin");
    const struct as_plugin *pl = entry();
    if (pl == NULL) return refuse(np, err, path, AS_PLUGIN_SYMBOL "() returned NULL");
    if (pl->abi_version != AS_PLUGIN_ABI) {
        char msg[160];
        snprintf(msg, sizeof msg, "was built for plugin ABI %u, this runtime speaks ABI %d",
                 pl->abi_version, AS_PLUGIN_ABI);
        return refuse(np, err, path, msg);
    }
    if (pl->struct_size < ABI1_SIZE) {
        char msg[160];
        snprintf(msg, sizeof msg, "declares a plugin struct of %u bytes, short of the %zu of ABI %d",
                 pl->struct_size, ABI1_SIZE, AS_PLUGIN_ABI);
        return refuse(np, err, path, msg);
    }
    if (pl->name == NULL || *pl->name == '\0') return refuse(np, err, path, "has no name");
    if (pl->version == NULL || *pl->version == '\0') return refuse(np, err, path, "has no version");
    uint32_t hooks = hooks_of(pl);
    if (hooks == 0) return refuse(np, err, path, "defines no hooks");
    np->pl = pl;
    if (pl->init && pl->init(&host_api, &np->state) != 0) {
        np->pl = NULL; /* no fini for a failed init */
        return refuse(np, err, path, "refused to initialise (its init failed)");
    }
    as_pack *p = as__pack_new(&native_engine, pl->name, pl->version);
    int n = 0;
    while (pl->categories && pl->categories[n]) n++;
    if (p == NULL || as__pack_set_categories(p, pl->categories, n) != 0) {
        if (p) {
            p->impl = np; /* let unref run fini and dlclose */
            as__pack_unref(p);
        } else {
            native_free(&(as_pack){.impl = np});
        }
        return as__err(err, AS_ENOMEM, "out of memory");
    }
    p->impl = np;
    p->hooks = hooks;
    *out = p;
    return 0;
}
