/* versions.h -- the identity of rule pack versions (docs/design.md, "Versions").
 *
 * Within a shop, and among the platform's own packs, a name@version names one source for
 * good: another source under a used name@version is refused with AS_ECONFLICT, and the same
 * source again is that version, put in force again without storing anything new. Each version
 * keeps its source (to read it back, and to load it again after a restart while a case pins
 * it), the SHA-256 of that source and when it was first loaded, and the pack shell that runs
 * it while it is in force or pinned.
 *
 * A stored source that cannot be loaded at start (a sandbox that grew stricter, a damaged
 * row) never stops the runtime: it becomes a failed version whose every hook fails, so that a
 * merchant's answers are dropped and recorded like any failing merchant hook, and the failure
 * is counted (rt->stats.pack_load_failures, /metrics). */
#ifndef AS_VERSIONS_H
#define AS_VERSIONS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "aftersale/error.h"
#include "digest.h"
#include "pack.h"

#define AS_MAX_VERSIONS 100 /* pack versions one shop keeps */

typedef struct as_version {
    as_pack *pack;     /* the shell (owned by the runtime's `installed`), or NULL until loaded */
    char *name, *version; /* owned */
    char *source;      /* owned; NULL for a native plugin */
    size_t len;
    char sha256[AS_SHA256_HEX];
    int64_t uploaded_at;
    char *failed;      /* owned: why the source failed to load, or NULL */
    uint8_t stored;    /* the store holds this source (platform packs: written at attach) */
    uint8_t changed;   /* platform packs: the store holds another source under this version */
} as_version;

typedef struct as_versions {
    as_version *v; /* owned */
    int n;
} as_versions;

struct as_runtime;
struct as_shop;

as_version *as__versions_find(as_versions *vs, const char *name, const char *version);
void as__versions_free(as_versions *vs);
/* Open cases that pin `v` (its shell's references less the one of the registry). */
int as__version_pinned(const as_version *v, const as_pack *in_force);

/* Registers a platform or category pack loaded from a file (`source` NULL for a native
 * plugin, whose `sha256` is that of its file) and points *out at its version, whose `pack`
 * the caller sets once the pack is installed. AS_ECONFLICT when the same name@version was
 * loaded before from another source. */
int as__versions_bundled(struct as_runtime *rt, const as_pack *p, const char *source,
                         size_t len, const char *sha256, as_version **out, as_error *err);

/* Restore: one stored version row. A merchant row in force is loaded now, others when a case
 * pins them. Fails only for lack of memory. */
int as__versions_restore(struct as_runtime *rt, const char *shop, const char *name,
                         const char *version, const char *source, size_t len, int current,
                         const char *sha256, int64_t uploaded_at, as_error *err);
/* Restore: the pack a stored case pins at `layer`, loaded from its stored source when it is
 * not loaded yet; *fresh is set when the caller now owns its first reference (to release
 * once the restored cases hold theirs). NULL with `err` set when nothing can stand for it (the store does not hold
 * it, or a platform pack's file changed under a version that cases pin). */
as_pack *as__versions_pin(struct as_runtime *rt, int layer, const char *shop, const char *name,
                          const char *version, int *fresh, as_error *err);
/* After restore: journals the platform packs in force whose source the store lacks. */
void as__versions_store_bundled(struct as_runtime *rt);

/* GET /v1/shops/{shop}/rules and .../rules/{version}: new JSON, or NULL for an unknown shop
 * or version. */
json_t *as__versions_list_json(struct as_runtime *rt, const char *shop);
json_t *as__versions_source_json(struct as_runtime *rt, const char *shop, const char *version);

#endif
