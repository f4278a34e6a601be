/*
** class.c: the helpers every native module calls (module.h): metatables of
** types and of error classes, per-host singletons, and the Cancelled error.
** A leaf: it calls nothing else of the host's.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "core/core.h"

/* lasync_assert's failure (module.h): defined in every build, so a file
** built with asserts links against a library built without. */
void lasync__assert_fail(const char *cond, const char *file, int line) {
  fprintf(stderr, "lasync: assertion failed: %s (%s:%d)\n", cond, file, line);
  fflush(stderr);
  abort();
}

/* ---------------------------------------------------------- errors */

static int error_tostring(lua_State *L) {
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  if (lua_isstring(L, -1)) lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
  else lua_pushstring(L, lua_tostring(L, -2));
  return 1;
}

/* Makes (once) an error class: a metatable whose objects ({kind, message})
** print as "Kind: message"; leaves it on the stack. */
void lasync__error_class(lua_State *L, const char *name) {
  if (luaL_newmetatable(L, name)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
  }
}

/* Makes (once) the metatable `name` of a type: the metamethods in `meta`
** (may be NULL) and, when `methods` is not NULL, __index a table of them.
** Leaves it on the stack. Every native type is made this way. */
void lasync__class(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods) {
  if (!luaL_newmetatable(L, name)) return;
  if (meta) luaL_setfuncs(L, meta, 0);
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
}

void lasync__push_cancelled(lua_State *L, const char *msg) {
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "Cancelled");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, msg ? msg : "the task was cancelled");
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, LASYNC_CANCELLED_MT);
}

int lasync__is_cancelled(lua_State *L, int idx) {
  int r;
  if (!lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, LASYNC_CANCELLED_MT);
  r = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return r;
}

/* Returns the userdata of `size` bytes kept in the registry under `key`,
** making it (zeroed, with `gc` as its __gc) on first use: a module's
** per-host state, finalized when the host's state closes. */
void *lasync__host_singleton(lua_State *L, const void *key, size_t size,
                             lua_CFunction gc) {
  void *p;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, key) == LUA_TUSERDATA) {
    p = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return p;
  }
  lua_pop(L, 1);
  p = lua_newuserdatauv(L, size, 0);
  memset(p, 0, size);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
  return p;
}
