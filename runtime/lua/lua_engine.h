/* lua_engine.h -- rule packs written in Lua, each in its own sandboxed lua_State.
 *
 * The sandbox (docs/design.md#hooks-and-layers, STYLE.md 10): base without
 * load/loadfile/dofile/collectgarbage/ print, string without dump, table, math, utf8; source loaded
 * as text only into a read-only global environment; an instruction budget per hook call that the
 * script's own pcall or xpcall cannot swallow; a memory cap per state through a counting allocator;
 * setmetatable refuses __gc so no finalizer runs outside the budget.
 *
 * The instruction budget is the deterministic rule: VM instructions, plus every C library
 * call charged per byte or element of its work, plus every byte allocated (docs/rules.md
 * "Sandbox"). A string is at most AS_LUA_STRING_MAX bytes and a library call returns at most
 * AS_LUA_MAX_RESULTS values, so each instruction's uncharged work (a comparison of two
 * strings, moving varargs) is bounded. The thread CPU time of a call is a backstop on top,
 * checked every AS_LUA_HOOK_PERIOD instructions, for what cannot be charged exactly. */
#ifndef AS_LUA_ENGINE_H
#define AS_LUA_ENGINE_H

#include <stddef.h>

#include "../core/pack.h"

#define AS_LUA_DEFAULT_INSTRUCTIONS 1000000L
#define AS_LUA_DEFAULT_MEMORY ((size_t)32 << 20)
#define AS_LUA_DEFAULT_CPU_MS 20L
#define AS_LUA_DEFAULT_SHOP_MEMORY AS_PACK_SHOP_MEMORY_DEFAULT
#define AS_LUA_STRING_MAX 65536      /* bytes in one Lua string */
#define AS_LUA_MAX_RESULTS 4096      /* values one library call may return */
#define AS_LUA_HOOK_PERIOD 1000      /* instructions between two checks of the count hook */

/* A new group of `cap` bytes with one reference (the caller's); NULL on OOM. */
as_pack_group *as__lua_group_new(size_t cap);
/* Drops a reference; NULL is a no-op. */
void as__lua_group_unref(as_pack_group *g);
/* Bytes the group's states hold now. */
size_t as__lua_group_used(const as_pack_group *g);

/* Loads a pack from Lua source text. `chunkname` names it in error messages (a path).
 * `limits` may be NULL for the defaults. On success *out holds a new pack with one reference
 * (the caller's). On failure returns AS_EBAD_REQUEST (not a valid pack), AS_ERULE_ERROR (the
 * chunk threw or ran out of budget) or AS_ENOMEM, with the reason in `err`. */
int as__lua_pack_load(const char *source, size_t len, const char *chunkname,
                      const as_pack_limits *limits, as_pack **out, as_error *err);

/* Reads a whole file into a new NUL-terminated buffer (the caller frees *buf). AS_EIO when it
 * cannot be read. */
int as__read_file(const char *path, char **buf, size_t *len, as_error *err);

/* The room of a chunk name: Lua's own cut for the name it prints (LUA_IDSIZE is 60) is far
 * below it, so a long path is shortened by Lua, not here. */
#define AS_CHUNK_MAX 512

/* Reads a pack's source file as as__read_file does and names its chunk "@path" in `chunk`,
 * Lua's mark of a file, so that an error in it reads file:line. */
int as__read_source(const char *path, char **src, size_t *len, char chunk[AS_CHUNK_MAX],
                    as_error *err);

/* Reads `path` and loads it as above. AS_EIO when the file cannot be read. */
int as__lua_pack_load_file(const char *path, const as_pack_limits *limits, as_pack **out,
                           as_error *err);

#endif
