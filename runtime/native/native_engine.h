/* native_engine.h -- rule packs as shared objects (aftersale/plugin.h), behind the same
 * engine vtable as the Lua packs. */
#ifndef AS_NATIVE_ENGINE_H
#define AS_NATIVE_ENGINE_H

#include "../core/pack.h"

/* Loads `file` (a bare file name: no '/' and no "..") from the configured directory `dir`
 * with dlopen(RTLD_NOW | RTLD_LOCAL), checks its ABI version, struct size, name and hooks,
 * and runs its init. On success *out holds a new pack with one reference. Otherwise
 * AS_EBAD_REQUEST (the object is not a valid plugin: the message says why in one sentence)
 * or AS_ENOMEM. */
int as__native_pack_load(const char *dir, const char *file, as_pack **out, as_error *err);

#endif
