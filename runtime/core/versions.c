/* versions.c -- see versions.h. */
#include "versions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "limits.h"
#include "runtime.h"

as_version *as__versions_find(as_versions *vs, const char *name, const char *version)
{
    for (int i = 0; i < vs->n; i++)
        if (strcmp(vs->v[i].name, name) == 0 && strcmp(vs->v[i].version, version) == 0)
            return &vs->v[i];
    return NULL;
}

static void version_clear(as_version *v)
{
    as__free(v->name);
    as__free(v->version);
    as__free(v->source);
    as__free(v->failed);
}

void as__versions_free(as_versions *vs)
{
    for (int i = 0; i < vs->n; i++) version_clear(&vs->v[i]);
    as__free(vs->v);
    vs->v = NULL;
    vs->n = 0;
}

int as__version_pinned(const as_version *v, const as_pack *in_force)
{
    if (v->pack == NULL || !as__pack_loaded(v->pack)) return 0;
    return v->pack->refs - (v->pack == in_force);
}

/* Appends a version holding a copy of `source` (NULL: none). NULL on OOM, nothing added. */
static as_version *add(as_versions *vs, const char *name, const char *version,
                       const char *source, size_t len, const char *sha256, int64_t uploaded_at)
{
    as_version *nv = as__realloc(vs->v, (size_t)(vs->n + 1) * sizeof *nv);
    if (nv == NULL) return NULL;
    vs->v = nv;
    as_version *v = &nv[vs->n];
    *v = (as_version){.len = len, .uploaded_at = uploaded_at};
    v->name = as__strdup(name);
    v->version = as__strdup(version);
    if (source) {
        v->source = as__malloc(len + 1);
        if (v->source) memcpy(v->source, source, len), v->source[len] = '\0';
    }
    if (v->name == NULL || v->version == NULL || (source && v->source == NULL)) {
        version_clear(v);
        return NULL;
    }
    snprintf(v->sha256, sizeof v->sha256, "%s", sha256);
    vs->n++;
    return v;
}

static void drop_last(as_versions *vs)
{
    version_clear(&vs->v[--vs->n]);
}

/* docs/design.md, Limits: a pack's name is an identifier, its version a version string. */
static int check_identity(const as_pack *p, const char *what, as_error *err)
{
    if (as__limit_id(p->name, strlen(p->name)))
        return as__err(err, AS_EBAD_REQUEST, "%s: the pack's name " AS_LIMIT_ID_WHAT, what);
    if (as__limit_version(p->version, strlen(p->version)))
        return as__err(err, AS_EBAD_REQUEST, "%s: the pack's version " AS_LIMIT_VERSION_WHAT, what);
    return 0;
}

static int conflict(as_error *err, const char *owner, const as_pack *p, const as_version *v)
{
    return as__err(err, AS_ECONFLICT,
                   "%s: %s@%s is already used for another source (sha256 %.16s...); a changed "
                   "source needs a new version",
                   owner, p->name, p->version, v->sha256);
}

/* The shell that runs `v`: loaded from its stored source when it is not loaded (a failed
 * version when that fails). *fresh is set when the caller now owns the shell's first
 * reference. NULL on OOM. */
static as_pack *load_version(as_runtime *rt, as_shop *s, as_version *v, int *fresh)
{
    *fresh = 0;
    if (v->pack && as__pack_loaded(v->pack)) return v->pack;
    as_error e = {0};
    as_pack *p = NULL;
    char chunk[200];
    snprintf(chunk, sizeof chunk, "=%s rules %s@%s", s ? s->id : "platform", v->name, v->version);
    as_pack_limits lim = rt->limits;
    if (s && as__merchant_limits(rt, s->id, &lim, &e)) return NULL;
    int rc = v->failed   ? as__err(&e, AS_ERULE_ERROR, "%s", v->failed)
             : v->source ? rt->loaders.source(v->source, v->len, chunk, &lim, &p, &e)
             : s         ? as__err(&e, AS_ERULE_ERROR, "its source was pruned (no case pinned it)")
                         : as__err(&e, AS_ERULE_ERROR, "the native plugin is no longer loaded");
    if (rc == 0 && (strcmp(p->name, v->name) != 0 || strcmp(p->version, v->version) != 0)) {
        rc = as__err(&e, AS_ERULE_ERROR, "the stored source says it is %s@%s", p->name, p->version);
        as__pack_unref(p);
    }
    if (rc == AS_ENOMEM) return NULL;
    if (rc) {
        rt->stats.pack_load_failures++;
        if (v->failed == NULL && (v->failed = as__strdup(e.msg)) == NULL) return NULL;
        if ((p = as__pack_new_failed(v->name, v->version, v->failed)) == NULL) return NULL;
    }
    if (s) p->owner = s->id;
    if (as__runtime_keep(rt, p, NULL)) return NULL;
    v->pack = p;
    *fresh = 1;
    return p;
}

/* Retention: once another version is in force, a version no case pins gives up its source
 * (memory and store); its row keeps the identity, so its name@version still names that
 * source (another is a conflict, the same one brings it back). */
static void prune_unpinned(as_runtime *rt, as_shop *s)
{
    for (int i = 0; i < s->versions.n; i++) {
        as_version *v = &s->versions.v[i];
        if (v->source == NULL || (v->pack && v->pack == s->merchant) ||
            as__version_pinned(v, s->merchant) != 0)
            continue;
        /* out of memory for the record: the version keeps its source, to prune next time */
        if (as__durable_pack_prune(rt, s->id, v) != 0) continue;
        as__free(v->source);
        v->source = NULL;
        v->len = 0;
    }
}

int as__merchant_install(as_runtime *rt, const char *shop, const char *src, size_t len,
                         const char *chunk, as_error *err)
{
    char sha[AS_SHA256_HEX];
    if (as__sha256_hex(src, len, sha)) return as__err(err, AS_ENOMEM, "out of memory");
    as_pack *p;
    as_pack_limits lim;
    int rc = as__merchant_limits(rt, shop, &lim, err);
    if (rc || (rc = rt->loaders.source(src, len, chunk, &lim, &p, err)) != 0) return rc;
    if (p->categories[0] != NULL)
        rc = as__err(err, AS_EBAD_REQUEST, "%s: a merchant pack names no categories", chunk + 1);
    else
        rc = check_identity(p, chunk + 1, err);
    as_shop *s = rc ? NULL : as__shop_get(rt, shop, 1);
    if (rc == 0 && s == NULL) rc = as__err(err, AS_ENOMEM, "out of memory");
    as_version *v = s ? as__versions_find(&s->versions, p->name, p->version) : NULL;
    if (rc == 0 && v && strcmp(v->sha256, sha) != 0) rc = conflict(err, shop, p, v);
    if (rc == 0 && v == NULL && s->versions.n >= AS_MAX_VERSIONS)
        rc = as__err(err, AS_EBAD_REQUEST, "%s keeps %d pack versions, the most a shop keeps",
                     shop, AS_MAX_VERSIONS);
    if (rc == 0 && v && v->source == NULL) { /* pruned: the same source brings it back */
        if ((v->source = as__malloc(len + 1)) == NULL) {
            rc = as__err(err, AS_ENOMEM, "out of memory");
        } else {
            memcpy(v->source, src, len);
            v->source[len] = '\0';
            v->len = len;
        }
    }
    int added = 0;
    if (rc == 0 && v == NULL) {
        v = add(&s->versions, p->name, p->version, src, len, sha, as__clock_now(&rt->clock));
        if (v == NULL) rc = as__err(err, AS_ENOMEM, "out of memory");
        added = v != NULL;
    }
    /* the version's row is journaled below, after the point of no return: room for it now */
    if (rc == 0 && rt->dur && as__durable_reserve(rt, as__durable_pack_size(shop, v)) != 0) {
        if (added) drop_last(&s->versions);
        rc = as__err(err, AS_ENOMEM, "out of memory");
    }
    if (rc) {
        as__pack_unref(p);
        return rc;
    }
    if (v->pack && as__pack_loaded(v->pack) && v->failed == NULL) {
        /* the same source again: the loaded version, nothing new */
        as__pack_unref(p);
        p = v->pack;
        as__pack_ref(p);
    } else {
        p->owner = s->id;
        if (as__runtime_keep(rt, p, err)) {
            if (added) drop_last(&s->versions);
            return AS_ENOMEM;
        }
        v->pack = p;
        as__free(v->failed);
        v->failed = NULL;
    }
    as__pack_unref(s->merchant);
    s->merchant = p;
    as__durable_pack(rt, shop, v, 1);
    prune_unpinned(rt, s);
    return 0;
}

int as__versions_bundled(as_runtime *rt, const as_pack *p, const char *source, size_t len,
                         const char *sha256, as_version **out, as_error *err)
{
    int rc = check_identity(p, p->name, err);
    if (rc) return rc;
    /* a native twin and a Lua pack of one name@version are two implementations of one
     * version: each kind's own bytes are its identity */
    as_version *v = NULL;
    for (int i = 0; i < rt->bundled.n && v == NULL; i++) {
        as_version *e = &rt->bundled.v[i];
        if (strcmp(e->name, p->name) == 0 && strcmp(e->version, p->version) == 0 &&
            (e->source == NULL) == (source == NULL))
            v = e;
    }
    if (v && strcmp(v->sha256, sha256) != 0) return conflict(err, "platform", p, v);
    if (v == NULL && (v = add(&rt->bundled, p->name, p->version, source, len, sha256,
                              as__clock_now(&rt->clock))) == NULL)
        return as__err(err, AS_ENOMEM, "out of memory");
    *out = v;
    return 0;
}

int as__versions_restore(as_runtime *rt, const char *shop, const char *name,
                         const char *version, const char *source, size_t len, int current,
                         const char *sha256, int64_t uploaded_at, as_error *err)
{
    char sha[AS_SHA256_HEX];
    if (as__sha256_hex(source, len, sha)) return as__err(err, AS_ENOMEM, "out of memory");
    /* a row written before sources were hashed has none: its source is its identity */
    int damaged = sha256[0] != '\0' && strcmp(sha256, sha) != 0;
    if (shop[0] == '\0') {
        as_version *v = as__versions_find(&rt->bundled, name, version);
        if (v) {
            v->stored = 1;
            v->changed = strcmp(v->sha256, sha) != 0;
            return 0;
        }
        if (add(&rt->bundled, name, version, source, len, sha, uploaded_at) == NULL)
            return as__err(err, AS_ENOMEM, "out of memory");
        rt->bundled.v[rt->bundled.n - 1].stored = 1;
        return 0;
    }
    /* a pruned version: its identity without a source (store.h PACK_PRUNE) */
    int pruned = len == 0 && !current && sha256[0] != '\0';
    if (pruned) {
        snprintf(sha, sizeof sha, "%s", sha256);
        damaged = 0;
    }
    as_shop *s = as__shop_get(rt, shop, 1);
    as_version *v = s ? add(&s->versions, name, version, pruned ? NULL : source, len,
                            sha, uploaded_at)
                      : NULL;
    if (v == NULL || (damaged && (v->failed = as__strdup("the stored source does not match its "
                                                      "SHA-256")) == NULL))
        return as__err(err, AS_ENOMEM, "out of memory");
    v->stored = 1;
    if (!current) return 0; /* loaded when a case pins it */
    int fresh;
    as_pack *p = load_version(rt, s, v, &fresh);
    if (p == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    as__pack_unref(s->merchant);
    s->merchant = p; /* the first reference */
    return 0;
}

as_pack *as__versions_pin(as_runtime *rt, int layer, const char *shop, const char *name,
                          const char *version, int *fresh, as_error *err)
{
    *fresh = 0;
    as_shop *s = layer == AS_LAYER_MERCHANT ? as__shop_get(rt, shop, 0) : NULL;
    as_versions *vs = layer == AS_LAYER_MERCHANT ? (s ? &s->versions : NULL) : &rt->bundled;
    as_version *v = vs ? as__versions_find(vs, name, version) : NULL;
    if (v && v->changed && v->pack && as__pack_loaded(v->pack)) {
        as__err(err, AS_EIO, "the %s pack %s@%s was changed under a version that cases pin "
                "(the store holds the source with sha256 %.16s...): give the changed file a "
                "new version", as__layer_name(layer), name, version, v->sha256);
        return NULL;
    }
    if (v) {
        as_pack *p = load_version(rt, s, v, fresh);
        if (p == NULL) as__err(err, AS_ENOMEM, "out of memory");
        return p;
    }
    /* a file written before platform sources were stored: the version in force stands in */
    if (layer == AS_LAYER_PLATFORM) return rt->platform;
    for (int i = 0; layer == AS_LAYER_CATEGORY && i < rt->ncats; i++)
        if (strcmp(rt->cats[i].pack->name, name) == 0) return rt->cats[i].pack;
    as__err(err, AS_EIO, "it pins %s rules %s@%s, which the store does not hold",
            as__layer_name(layer), name, version);
    return NULL;
}

void as__versions_store_bundled(as_runtime *rt)
{
    for (int i = 0; i < rt->bundled.n; i++) {
        as_version *v = &rt->bundled.v[i];
        if (v->source == NULL || v->pack == NULL || !as__pack_loaded(v->pack)) continue;
        if (v->stored && !v->changed) continue;
        as__durable_pack(rt, "", v, 1);
        v->stored = 1;
        v->changed = 0;
    }
}

static json_t *version_json(const as_version *v, const as_pack *in_force)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:i, s:b}", "name", v->name, "version",
                          v->version, "sha256", v->sha256, "uploaded_at",
                          (json_int_t)v->uploaded_at, "cases_pinned",
                          as__version_pinned(v, in_force), "in_force",
                          v->pack != NULL && v->pack == in_force);
    if (j && v->failed) json_object_set_new(j, "failed", json_string(v->failed));
    if (j && v->source == NULL) json_object_set_new(j, "pruned", json_true());
    return j;
}

json_t *as__versions_list_json(as_runtime *rt, const char *shop)
{
    as_shop *s = as__shop_get(rt, shop, 0);
    json_t *list = json_array();
    for (int i = 0; s && list && i < s->versions.n; i++)
        json_array_append_new(list, version_json(&s->versions.v[i], s->merchant));
    return json_pack("{s:s, s:o}", "shop", shop, "versions", list);
}

json_t *as__versions_source_json(as_runtime *rt, const char *shop, const char *version)
{
    as_shop *s = as__shop_get(rt, shop, 0);
    if (s == NULL) return NULL;
    /* by version; when names share it, the one in force, else the latest upload */
    as_version *pick = NULL;
    for (int i = 0; i < s->versions.n; i++) {
        as_version *v = &s->versions.v[i];
        if (strcmp(v->version, version) != 0) continue;
        if (pick == NULL || v->pack == s->merchant || pick->pack != s->merchant) pick = v;
    }
    if (pick == NULL) return NULL;
    json_t *j = version_json(pick, s->merchant);
    if (j) json_object_set_new(j, "source", pick->source ? json_stringn(pick->source, pick->len)
                                                          : json_null());
    return j;
}

int as__merchant_limits(as_runtime *rt, const char *shop, as_pack_limits *lim, as_error *err)
{
    as_shop *s = as__shop_get(rt, shop, 1);
    if (s && s->lua_group == NULL) s->lua_group = rt->loaders.group_new(rt->lua_shop_memory);
    if (s == NULL || s->lua_group == NULL) return as__err(err, AS_ENOMEM, "out of memory");
    *lim = rt->limits;
    lim->group = s->lua_group;
    return 0;
}

int as__merchant_upload(as_runtime *rt, const char *shop, const char *src, size_t len,
                        as_error *err)
{
    if (as__limit_id(shop, strlen(shop))) return as__limit_err(err, "shop", AS_LIMIT_ID_WHAT);
    if (len > AS_MAX_SOURCE)
        return as__err(err, AS_EBAD_REQUEST, "the rules of %s are longer than 1 MiB", shop);
    if (as__limit_utf8(src, len, 1))
        return as__err(err, AS_EBAD_REQUEST, "the rules of %s are not UTF-8 text without NUL bytes",
                       shop);
    char chunk[300];
    snprintf(chunk, sizeof chunk, "=merchant rules of %s", shop);
    return as__merchant_install(rt, shop, src, len, chunk, err);
}
