/*
** ioerror.c: the one place where a libuv failure becomes a Lua value
** (rule 12). Operational failures of every I/O module are raised as an
** IOError table: code (libuv's name, "ECONNREFUSED"), message, op, and
** path or address where there is one; tostring gives one readable line.
** Also the socket address helpers the I/O modules share.
*/
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "io/io.h"

static int ioerror_tostring(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (lua_getfield(L, 1, "op") == LUA_TSTRING) luaL_addvalue(&b);
  else lua_pop(L, 1);
  if (lua_getfield(L, 1, "path") == LUA_TSTRING ||
      (lua_pop(L, 1), lua_getfield(L, 1, "address")) == LUA_TSTRING) {
    luaL_addchar(&b, ' ');
    luaL_addvalue(&b);
  }
  else lua_pop(L, 1);
  luaL_addstring(&b, ": ");
  lua_getfield(L, 1, "message");
  luaL_addstring(&b, lua_isstring(L, -1) ? lua_tostring(L, -1) : "I/O error");
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "code") == LUA_TSTRING) {
    luaL_addstring(&b, " (");
    luaL_addvalue(&b);
    luaL_addchar(&b, ')');
  }
  else lua_pop(L, 1);
  luaL_pushresult(&b);
  return 1;
}

void lasync__ioerror_class(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", ioerror_tostring}, {NULL, NULL}};
  lasync__class(L, LASYNC_IOERROR_MT, meta, NULL);
}

void lasync__push_ioerror_msg(lua_State *L, const char *code, const char *msg,
                              const char *op, const char *where_key,
                              const char *where) {
  luaL_checkstack(L, 4, "I/O error");
  lua_createtable(L, 0, 6);
  lua_pushliteral(L, "IOError");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  if (op) {
    lua_pushstring(L, op);
    lua_setfield(L, -2, "op");
  }
  if (where && where_key) {
    lua_pushstring(L, where);
    lua_setfield(L, -2, where_key);
  }
  lasync__ioerror_class(L);
  lua_setmetatable(L, -2);
}

void lasync__push_ioerror(lua_State *L, int err, const char *op,
                          const char *where_key, const char *where) {
  lasync__push_ioerror_msg(L, uv_err_name(err), uv_strerror(err), op,
                           where_key, where);
}

int lasync__closed_error(lua_State *L, const char *op, const char *what) {
  if (op == NULL) return luaL_error(L, "attempt to use a closed %s", what);
  return luaL_error(L, "%s: attempt to use a closed %s", op, what);
}

int lasync__closed_waiting_error(lua_State *L, const char *op, const char *what) {
  lua_pushfstring(L, "the %s was closed while waiting", what);
  lasync__push_ioerror_msg(L, "ECANCELED", lua_tostring(L, -1), op, NULL, NULL);
  return lua_error(L);
}

int lasync__ioerror(lua_State *L, int err, const char *op,
                    const char *where_key, const char *where) {
  lasync__push_ioerror(L, err, op, where_key, where);
  return lua_error(L);
}

/* --------------------------------------------------------- addresses */

void lasync__addr_check(lua_State *L, int iarg, struct sockaddr_storage *ss) {
  const char *ip = luaL_checkstring(L, iarg);
  lua_Integer port = luaL_checkinteger(L, iarg + 1);
  luaL_argcheck(L, port >= 0 && port <= 65535, iarg + 1, "port must be 0..65535");
  if (uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)ss) != 0 &&
      uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)ss) != 0)
    luaL_argerror(L, iarg, lua_pushfstring(L, "'%s' is not an IP address", ip));
}

char *lasync__addr_format(const struct sockaddr *sa, char *buf, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof ip);
    snprintf(buf, len, "%s:%d", ip, ntohs(a->sin_port));
  }
  else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, ip, sizeof ip);
    snprintf(buf, len, "[%s]:%d", ip, ntohs(a->sin6_port));
  }
  else snprintf(buf, len, "?");
  return buf;
}

int lasync__addr_push(lua_State *L, const struct sockaddr *sa) {
  char ip[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin_port));
  }
  else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin6_port));
  }
  else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  return 2;
}
