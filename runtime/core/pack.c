/* pack.c -- see pack.h. */
#include "pack.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"

#define NAME1(up, low) #low,
static const char *const hook_names[] = {AS_HOOK_MAP(NAME1)};
#undef NAME1
static const char *const layer_names[] = {"platform", "category", "merchant"};

const char *as__hook_name(int h)
{
    return h >= 0 && h < AS_HOOK_COUNT ? hook_names[h] : "unknown";
}

const char *as__layer_name(int l)
{
    return l >= 0 && l < AS_LAYER_COUNT ? layer_names[l] : "unknown";
}

as_pack *as__pack_new(const as_engine *engine, const char *name, const char *version)
{
    as_pack *p = as__calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->engine = engine;
    p->name = as__strdup(name);
    p->version = as__strdup(version);
    p->categories = as__calloc(1, sizeof *p->categories);
    p->refs = 1;
    if (p->name == NULL || p->version == NULL || p->categories == NULL) {
        as__pack_unref(p);
        return NULL;
    }
    return p;
}

static int failed_call(as_pack *p, as_hook h, const as_hook_args *a, as_answer *ans,
                       as_error *err)
{
    (void)a;
    ans->kind = AS_ANS_NIL;
    ans->why[0] = ans->where[0] = '\0';
    p->failures++;
    return as__err(err, AS_ERULE_ERROR, "%s@%s: hook %s did not run: the pack failed to load (%s)",
                   p->name, p->version, as__hook_name(h), (const char *)p->impl);
}

static size_t failed_memory(const as_pack *p)
{
    (void)p;
    return 0;
}

static void failed_free(as_pack *p)
{
    as__free(p->impl);
    p->impl = NULL;
}

static const as_engine failed_engine = {"failed", failed_call, failed_memory, failed_free};

as_pack *as__pack_new_failed(const char *name, const char *version, const char *why)
{
    as_pack *p = as__pack_new(&failed_engine, name, version);
    if (p == NULL) return NULL;
    if ((p->impl = as__strdup(why)) == NULL) {
        as__pack_unref(p);
        return NULL;
    }
    p->hooks = (1u << AS_HOOK_COUNT) - 1; /* each hook fails, so each is recorded */
    return p;
}

int as__pack_set_categories(as_pack *p, const char *const *cats, int n)
{
    char **list = as__calloc((size_t)n + 1, sizeof *list);
    if (list == NULL) return AS_ENOMEM;
    for (int i = 0; i < n; i++) {
        if ((list[i] = as__strdup(cats[i])) == NULL) {
            for (int j = 0; j < i; j++) as__free(list[j]);
            as__free(list);
            return AS_ENOMEM;
        }
    }
    for (char **c = p->categories; c && *c; c++) as__free(*c);
    as__free(p->categories);
    p->categories = list;
    return 0;
}

void as__pack_ref(as_pack *p)
{
    if (p) p->refs++;
}

void as__pack_unref(as_pack *p)
{
    if (p == NULL || --p->refs > 0) return;
    if (p->impl && p->engine) p->engine->free_impl(p);
    if (!p->kept) as__pack_free_shell(p);
}

void as__pack_free_shell(as_pack *p)
{
    if (p == NULL) return;
    if (p->impl && p->engine) p->engine->free_impl(p);
    for (char **c = p->categories; c && *c; c++) as__free(*c);
    as__free(p->categories);
    as__free(p->name);
    as__free(p->version);
    as__free(p);
}

int as__pack_serves(const as_pack *p, const char *category)
{
    for (char **c = p->categories; c && *c; c++)
        if (strcmp(*c, category) == 0) return 1;
    return 0;
}
