/* lua_engine.h -- rule packs written in Lua, each in its own sandboxed lua_State.
 *
 * The sandbox (DESIGN.md §3, STYLE.md 10): base without load/loadfile/dofile/collectgarbage/
 * print, string without dump, table, math, utf8; source loaded as text only into a read-only
 * global environment; an instruction budget per hook call that the script's own pcall or
 * xpcall cannot swallow; a memory cap per state through a counting allocator; setmetatable
 * refuses __gc so no finalizer runs outside the budget. */
#ifndef AS_LUA_ENGINE_H
#define AS_LUA_ENGINE_H

#include <stddef.h>

#include "../core/pack.h"

typedef struct as_lua_limits {
    long instructions; /* per hook call; default 1,000,000 */
    size_t memory;     /* bytes per pack state; default 32 MiB */
    long fail_alloc;   /* tests: the n-th allocation of the state and all after it fail
                        * (0: none) */
} as_lua_limits;

#define AS_LUA_DEFAULT_INSTRUCTIONS 1000000L
#define AS_LUA_DEFAULT_MEMORY ((size_t)32 << 20)

/* Loads a pack from Lua source text. `chunkname` names it in error messages (a path).
 * `limits` may be NULL for the defaults. On success *out holds a new pack with one reference
 * (the caller's). On failure returns AS_EBAD_REQUEST (not a valid pack), AS_ERULE_ERROR (the
 * chunk threw or ran out of budget) or AS_ENOMEM, with the reason in `err`. */
int as__lua_pack_load(const char *source, size_t len, const char *chunkname,
                      const as_lua_limits *limits, as_pack **out, as_error *err);

/* Reads a whole file into a new NUL-terminated buffer (the caller frees *buf). AS_EIO when it
 * cannot be read. */
int as__read_file(const char *path, char **buf, size_t *len, as_error *err);

/* Reads `path` and loads it as above. AS_EIO when the file cannot be read. */
int as__lua_pack_load_file(const char *path, const as_lua_limits *limits, as_pack **out,
                           as_error *err);

#endif
