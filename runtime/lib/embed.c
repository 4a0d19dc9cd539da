/* embed.c -- the library: wiring core to its engines (Lua, native plugins) and its store
 * (SQLite), and the entry points of aftersale.h that are not reads (request/reads.c) or
 * commands (request/request.c). The only file that names the concrete engines. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "../core/alloc.h"
#include "../core/err.h"
#include "../core/journal.h"
#include "../core/limits.h"
#include "../core/runtime.h"
#include "../core/timefmt.h"
#include "../lua/lua_engine.h"
#include "../native/native_engine.h"
#include "../request/codec.h"
#include "../store/stores.h"

static const as_pack_loaders engines = {
    .source = as__lua_pack_load,
    .native = as__native_pack_load,
    .group_new = as__lua_group_new,
    .group_unref = as__lua_group_unref,
};

/* as_options as it was before its first field taken from `reserved` (virtual_clock): a field
 * added later takes a reserved word's room, so that the struct a program was compiled with
 * and the one the library reads are the same size (aftersale.h). */
typedef struct options_v1 {
    struct uv_loop_s *loop;
    int64_t start_ms;
    int auto_pay;
    long lua_instructions;
    size_t lua_memory, lua_shop_memory;
    as_outbox_cb outbox;
    void *outbox_data;
    int64_t idempotency_ms;
    uint64_t reserved[8];
} options_v1;
_Static_assert(sizeof(as_options) == sizeof(options_v1), "as_options keeps its size");
_Static_assert(offsetof(as_options, reserved) + sizeof(((as_options *)0)->reserved) ==
                   offsetof(options_v1, reserved) + sizeof(((options_v1 *)0)->reserved),
               "the reserved words end where they did");

as_runtime *as_runtime_new(const as_options *opts, as_error *err)
{
    for (size_t i = 0; opts && i < sizeof opts->reserved / sizeof opts->reserved[0]; i++)
        if (opts->reserved[i]) {
            as__err(err, AS_EBAD_REQUEST, "as_options.reserved must be zero");
            return NULL;
        }
    /* 0 or 1 only, so that a later meaning for other values cannot surprise a program */
    if (opts && opts->virtual_clock != 0 && opts->virtual_clock != 1) {
        as__err(err, AS_EBAD_REQUEST, "as_options.virtual_clock must be 0 or 1");
        return NULL;
    }
    return as__runtime_new(opts, &engines, err);
}

int as_runtime_defer(as_runtime *rt, as_step_fn fn, void *ud)
{
    return as__turn_defer(rt, fn, ud);
}

void as_runtime_free(as_runtime *rt)
{
    as__runtime_free(rt);
}

const char *as_version_string(void)
{
    return AS_VERSION_STRING;
}

int as_version_number(void)
{
    return AS_VERSION_MAJOR * 10000 + AS_VERSION_MINOR * 100 + AS_VERSION_PATCH;
}

void *as_malloc(size_t size)
{
    return as__malloc(size);
}

void *as_calloc(size_t count, size_t size)
{
    return as__calloc(count, size);
}

void *as_realloc(void *ptr, size_t size)
{
    return as__realloc(ptr, size);
}

char *as_strdup(const char *s)
{
    return s ? as__strdup(s) : NULL;
}

int as_id_valid(const char *s, size_t len)
{
    return s && as__limit_id(s, len) == 0;
}

as_party as_principal_parse(const char *principal, const char **id)
{
    as_principal p;
    if (as__principal_parse(principal, &p) != 0) return AS_PARTY_NONE;
    if (id) *id = p.id;
    switch (p.role) {
    case AS_ROLE_BUYER: return AS_PARTY_BUYER;
    case AS_ROLE_MERCHANT: return AS_PARTY_MERCHANT;
    case AS_ROLE_PLATFORM: return AS_PARTY_PLATFORM;
    case AS_ROLE_LOGISTICS: return AS_PARTY_LOGISTICS;
    default: return AS_PARTY_NONE;
    }
}

int as_duration_parse(const char *text, int64_t *ms)
{
    int64_t v;
    if (text == NULL || as__duration_parse(text, &v) != 0) return AS_EBAD_REQUEST;
    *ms = v;
    return 0;
}

int as_instant_parse(const char *text, int64_t *ms)
{
    int64_t v;
    if (text == NULL || as__instant_parse(text, &v) != 0) return AS_EBAD_REQUEST;
    *ms = v;
    return 0;
}

void as_instant_format(int64_t ms, char *buf, size_t cap)
{
    char tmp[64];
    as__instant_format(ms, tmp, (int)sizeof tmp);
    snprintf(buf, cap, "%s", tmp);
}

int as_outbox_delivered(const as_runtime *rt, const char *key, const char *url)
{
    return as__outbox_acked(rt, key, url);
}

int as_runtime_idle(const as_runtime *rt)
{
    return as__runtime_idle(rt);
}

/* ---- Packs ------------------------------------------------------------------------------- */

int as_runtime_load_pack(as_runtime *rt, const char *path, as_error *err)
{
    char *src, sha[AS_SHA256_HEX], chunk[AS_CHUNK_MAX];
    size_t len;
    int rc = as__read_source(path, &src, &len, chunk, err);
    if (rc) return rc;
    as_pack *p;
    if (as__sha256_hex(src, len, sha)) rc = as__err(err, AS_ENOMEM, "out of memory");
    else rc = as__lua_pack_load(src, len, chunk, &rt->limits, &p, err);
    if (rc == 0) rc = as__install_version(rt, p, src, len, sha, err);
    as__free(src);
    return rc;
}

int as_runtime_load_native(as_runtime *rt, const char *dir, const char *file, as_error *err)
{
    char path[4096], *bytes, sha[AS_SHA256_HEX];
    size_t len;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    as_pack *p;
    int rc = as__native_pack_load(dir, file, &p, err);
    if (rc) return rc;
    /* the pin's identity is the file the plugin was loaded from */
    if ((rc = as__read_file(path, &bytes, &len, err)) != 0) {
        as__pack_unref(p);
        return rc;
    }
    if (as__sha256_hex(bytes, len, sha)) rc = as__err(err, AS_ENOMEM, "out of memory");
    as__free(bytes);
    if (rc) {
        as__pack_unref(p);
        return rc;
    }
    return as__install_version(rt, p, NULL, 0, sha, err);
}

int as_runtime_load_merchant(as_runtime *rt, const char *shop, const char *path, as_error *err)
{
    char *src, chunk[AS_CHUNK_MAX];
    size_t len;
    int rc = as__read_source(path, &src, &len, chunk, err);
    if (rc) return rc;
    rc = as__merchant_install(rt, shop, src, len, chunk, err);
    as__free(src);
    return rc;
}

int as_runtime_load_packs_dir(as_runtime *rt, const char *dir, as_error *err)
{
    static const char *const bundled[] = {"platform", "apparel", "electronics", "fresh_food", NULL};
    for (const char *const *b = bundled; *b; b++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s/%s.lua", dir, *b, *b);
        int rc = as_runtime_load_pack(rt, path, err);
        if (rc) return rc;
    }
    return 0;
}

/* ---- Commands without a store ------------------------------------------------------------ */

int as_order_create_json(as_runtime *rt, const char *json, as_error *err)
{
    json_t *j;
    int rc = as__json_parse(json, json ? strlen(json) : 0, 1, &j, err);
    if (rc) return rc;
    as__fire_due(rt);
    rc = as__order_create(rt, j, err);
    json_decref(j);
    as__rearm(rt);
    return rc;
}

int as_order_event(as_runtime *rt, const char *order_id, const char *event, as_error *err)
{
    return as__order_event(rt, order_id, event, err);
}

int as_case_open_json(as_runtime *rt, const char *principal, const char *json, as_error *err)
{
    as_cmd cmd;
    as_principal who;
    if (as__principal_parse(principal, &who) != 0)
        return as__err(err, AS_EFORBIDDEN, "unknown principal '%s'", principal ? principal : "");
    as__cmd_init(&cmd, who, AS_ACT_OPEN);
    json_t *j;
    int rc = as__json_parse(json, json ? strlen(json) : 0, 1, &j, err);
    if (rc) return rc;
    as__cmd_parse_open(&cmd, j);
    rc = as__case_open(rt, &cmd, err);
    json_decref(j);
    as__rearm(rt);
    return rc;
}

int as_case_act_json(as_runtime *rt, const char *principal, const char *case_id,
                     const char *action, const char *payload_json, int64_t version, as_error *err)
{
    as_cmd cmd;
    as_principal who;
    if (as__principal_parse(principal, &who) != 0)
        return as__err(err, AS_EFORBIDDEN, "unknown principal '%s'", principal ? principal : "");
    as__cmd_init(&cmd, who, -1);
    json_t *j = NULL;
    int rc = payload_json ? as__json_parse(payload_json, strlen(payload_json), 1, &j, err) : 0;
    if (rc == AS_EBAD_REQUEST && as__case_get(rt, case_id) == NULL)
        return as__err(err, AS_ENOT_FOUND, "unknown case '%s'", case_id);
    if (rc) return rc;
    cmd.case_id = case_id;
    as__cmd_parse_act(&cmd, action, j);
    cmd.version = version;
    rc = as__case_act(rt, &cmd, err);
    json_decref(j);
    as__rearm(rt);
    return rc;
}

int64_t as_runtime_now(const as_runtime *rt)
{
    return as__clock_now(&rt->clock);
}

int as_runtime_clock_virtual(const as_runtime *rt)
{
    return as__clock_is_virtual(&rt->clock);
}

void as_runtime_advance(as_runtime *rt, int64_t to_ms)
{
    as__advance(rt, to_ms, NULL, NULL);
}

void as_free(void *p)
{
    as__free(p);
}

const char *as_runtime_store_failure(const as_runtime *rt)
{
    return as__store_failure(rt);
}

int as_runtime_load_merchant_source(as_runtime *rt, const char *shop, const char *source,
                                    as_error *err)
{
    return as__merchant_upload(rt, shop, source, strlen(source), err);
}


int as_runtime_attach_store(as_runtime *rt, const char *db_path, as_error *err)
{
    as_store *s;
    int rc = as__durable_attach_refused(rt, err);
    if (rc) return rc;
    rc = as__store_sqlite_open(db_path, &s, err);
    if (rc) return rc;
    return as__durable_attach(rt, s, err);
}

