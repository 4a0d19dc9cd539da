/* registry.c -- the runtime's maps (orders, cases, shops, interned strings), the packs in
 * force per layer and category, and the runtime's lifecycle. */
#include <string.h>

#include "alloc.h"
#include "engine.h"
#include "err.h"

as_case *as__case_get(as_runtime *rt, const char *id)
{
    return id ? as__strmap_get(&rt->cases, id) : NULL;
}

as_order *as__order_get(as_runtime *rt, const char *id)
{
    return id ? as__strmap_get(&rt->orders, id) : NULL;
}

static const char *order_key(const void *o)
{
    return ((const as_order *)o)->id;
}

static const char *case_key(const void *c)
{
    return ((const as_case *)c)->id;
}

static const char *ident(const void *s)
{
    return s;
}

static const char *shop_key(const void *s)
{
    return ((const as_shop *)s)->id;
}

const char *as__intern(as_runtime *rt, const char *s)
{
    const char *have = as__strmap_get(&rt->strings, s);
    if (have) return have;
    char *copy = as__strdup(s);
    if (copy == NULL || as__strmap_put(&rt->strings, copy) != 0) {
        as__free(copy);
        return NULL;
    }
    return copy;
}

as_shop *as__shop_get(as_runtime *rt, const char *id, int create)
{
    as_shop *s = as__strmap_get(&rt->shops, id);
    if (s || !create) return s;
    s = as__calloc(1, sizeof *s);
    if (s == NULL || (s->id = as__intern(rt, id)) == NULL || as__strmap_put(&rt->shops, s) != 0) {
        as__free(s);
        return NULL;
    }
    as__sched_node_init(&s->fig_due);
    return s;
}

as_pack *as__category_pack(as_runtime *rt, const char *category)
{
    for (int i = 0; i < rt->ncats; i++)
        if (strcmp(rt->cats[i].category, category) == 0) return rt->cats[i].pack;
    return NULL;
}

as_runtime *as__runtime_new(const as_options *opts, const as_pack_loaders *loaders, as_error *err)
{
    as_options none = {0};
    if (opts == NULL) opts = &none;
    as__allocator_lock(); /* its blocks live from here on */
    as_runtime *rt = as__calloc(1, sizeof *rt);
    if (rt == NULL) {
        as__err(err, AS_ENOMEM, "out of memory");
        return NULL;
    }
    /* The loop serves I/O and the step; the clock is the loop's only when it is not virtual,
     * and only a real clock has a timer: virtual time moves when told, not when a timer says. */
    int real = opts->loop && !opts->virtual_clock;
    rt->loop = opts->loop;
    if (opts->loop) {
        rt->timer = real ? as__malloc(sizeof *rt->timer) : NULL;
        if ((real && rt->timer == NULL) || as__turn_init(rt, opts->loop) != 0) {
            as__free(rt->timer);
            as__free(rt);
            as__err(err, AS_ENOMEM, "out of memory");
            return NULL;
        }
    }
    if (real) {
        uv_timer_init(opts->loop, rt->timer);
        rt->timer->data = rt;
        as__clock_init_real(&rt->clock, opts->loop);
    } else {
        as__clock_init_virtual(&rt->clock, opts->start_ms);
    }
    as__sched_init(&rt->sched);
    as__sched_init(&rt->fig_due);
    as__strmap_init(&rt->orders, order_key);
    as__strmap_init(&rt->cases, case_key);
    as__strmap_init(&rt->shops, shop_key);
    as__strmap_init(&rt->strings, ident);
    rt->auto_pay = opts->auto_pay;
    rt->limits.instructions = opts->lua_instructions;
    rt->limits.memory = opts->lua_memory;
    rt->lua_shop_memory =
        opts->lua_shop_memory ? opts->lua_shop_memory : AS_PACK_SHOP_MEMORY_DEFAULT;
    rt->loaders = *loaders;
    rt->idempotency_ms =
        opts->idempotency_ms > 0 ? opts->idempotency_ms : AS_IDEMPOTENCY_DEFAULT_MS;
    rt->outbox.cb = opts->outbox;
    rt->outbox.data = opts->outbox_data;
    return rt;
}

static void close_timer(uv_handle_t *h)
{
    as__free(h);
}

void as__runtime_free(as_runtime *rt)
{
    if (rt == NULL) return;
    as__turn_close(rt); /* what is queued runs and is handed to the store first */
    as__durable_free(rt);
    if (rt->timer) uv_close((uv_handle_t *)rt->timer, close_timer);
    as__sched_free(&rt->sched); /* before the cases that embed its nodes */
    as__shop_metrics_free(rt);  /* before the shops that embed theirs */
    size_t pos = 0;
    as_case *c;
    while ((c = as__strmap_next(&rt->cases, &pos)) != NULL) {
        if (!as__state_terminal(c->v.state))
            for (int l = 0; l < AS_LAYER_COUNT; l++)
                as__pack_unref(c->rules[l]);
        as__case_free(c);
    }
    pos = 0;
    as_order *o;
    while ((o = as__strmap_next(&rt->orders, &pos)) != NULL)
        as__free(o);
    pos = 0;
    as_shop *s;
    while ((s = as__strmap_next(&rt->shops, &pos)) != NULL) {
        as__pack_unref(s->merchant);
        as__versions_free(&s->versions);
        rt->loaders.group_unref(s->lua_group);
        as__events_free(&s->events);
        as__worklist_free(&s->cases);
        as__free(s);
    }
    pos = 0;
    char *str;
    while ((str = as__strmap_next(&rt->strings, &pos)) != NULL)
        as__free(str);
    for (int i = 0; i < rt->ncats; i++)
        as__pack_unref(rt->cats[i].pack);
    as__free(rt->cats);
    as__pack_unref(rt->platform);
    for (int i = 0; i < rt->ninstalled; i++)
        as__pack_free_shell(rt->installed[i]);
    as__free(rt->installed);
    as__versions_free(&rt->bundled);
    as__strmap_free(&rt->orders);
    as__strmap_free(&rt->cases);
    as__strmap_free(&rt->shops);
    as__strmap_free(&rt->strings);
    as__free(rt);
}

/* Takes `p`'s shell into the runtime's keeping (see pack.h). On failure `p` is freed. */
int as__runtime_keep(as_runtime *rt, as_pack *p, as_error *err)
{
    as_pack **v = as__realloc(rt->installed, (size_t)(rt->ninstalled + 1) * sizeof *v);
    if (v == NULL) {
        as__pack_unref(p);
        return as__err(err, AS_ENOMEM, "out of memory");
    }
    rt->installed = v;
    rt->installed[rt->ninstalled++] = p;
    p->kept = 1;
    return 0;
}

/* Installs `p` (one reference, taken over) as the platform pack or the pack of each of its
 * categories. */
static int install_pack(as_runtime *rt, as_pack *p, as_error *err)
{
    if (as__runtime_keep(rt, p, err)) return AS_ENOMEM;
    if (p->categories[0] == NULL) {
        as__pack_unref(rt->platform);
        rt->platform = p;
        return 0;
    }
    for (char **cat = p->categories; *cat; cat++) {
        const char *name = as__intern(rt, *cat);
        int i = 0;
        while (i < rt->ncats && rt->cats[i].category != name)
            i++;
        if (i == rt->ncats) {
            as_category_pack *cats = as__realloc(rt->cats, (size_t)(rt->ncats + 1) * sizeof *cats);
            if (name == NULL || cats == NULL) {
                as__pack_unref(p);
                return as__err(err, AS_ENOMEM, "out of memory");
            }
            rt->cats = cats;
            rt->cats[rt->ncats++] = (as_category_pack){name, NULL};
        }
        as__pack_ref(p);
        as__pack_unref(rt->cats[i].pack);
        rt->cats[i].pack = p;
    }
    as__pack_unref(p);
    return 0;
}

int as__install_version(as_runtime *rt, as_pack *p, const char *src, size_t len, const char *sha,
                        as_error *err)
{
    as_version *v;
    int rc = as__versions_bundled(rt, p, src, len, sha, &v, err);
    if (rc) {
        as__pack_unref(p);
        return rc;
    }
    if ((rc = install_pack(rt, p, err)) != 0) return rc;
    v->pack = p; /* kept by the runtime */
    return 0;
}
