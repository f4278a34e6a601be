/*
** module.h: what a native module may use beyond lasync.h. Modules include
** lasync.h, this header and the headers of the layers below them (io/io.h
** for streams and IOError), never core/core.h: the core's structs stay the
** core's. Not installed. docs/internals.md has the layers.
*/
#ifndef LASYNC_MODULE_H
#define LASYNC_MODULE_H

#include <stddef.h>
#include <lauxlib.h>
#include "lasync.h"

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* Makes (once) the metatable `name` of a type: the metamethods in `meta`
** (may be NULL) and, when `methods` is not NULL, __index a table of them.
** Leaves it on the stack. Every native type is made this way. */
void lasync__class(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods);
/* Makes (once) an error class: a metatable whose objects ({kind, message})
** print as "Kind: message"; leaves it on the stack. */
void lasync__error_class(lua_State *L, const char *name);
/* Returns the userdata of `size` bytes kept in the registry under `key`,
** making it (zeroed, with `gc` as its __gc) on first use: a module's
** per-host state, finalized when the host's state closes. */
void *lasync__host_singleton(lua_State *L, const void *key, size_t size,
                             lua_CFunction gc);

/* The entry points of the data and network modules (host.c preloads them). */
int lasync__luaopen_json(lua_State *L);      /* data/json.c: async.core.json */
int lasync__luaopen_http(lua_State *L);      /* net/http_session.c: async.core.http */

#endif
