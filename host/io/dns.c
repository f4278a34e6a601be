/*
** dns.c: require "async.dns": resolve(host [, family]) through
** uv_getaddrinfo, which runs getaddrinfo(3) on libuv's thread pool (so
** /etc/hosts, nsswitch and the system's resolver all apply).
**
** Cancelling a resolve calls uv_cancel, which only succeeds while the
** request still waits for a thread; once getaddrinfo runs it cannot be
** stopped, and its result is discarded when it arrives. Either way the
** callback frees the request, and it touches Lua only when a task still
** waits (the wait is in the request).
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "io/io.h"

typedef struct Resolve {
  uv_getaddrinfo_t req;
  lasync_Wait wait;
  lasync_Host *H;
  char host[1];                   /* for errors; allocated to fit */
} Resolve;

/* Pushes the list of distinct addresses in the addrinfo list (a light
** userdata): called protected, as it allocates. */
static int dns_list(lua_State *L) {
  const struct addrinfo *ai = (const struct addrinfo *)lua_touserdata(L, 1);
  int n = 0;
  lua_newtable(L);
  for (; ai; ai = ai->ai_next) {
    char ip[INET6_ADDRSTRLEN];
    int i, dup = 0;
    if (ai->ai_family == AF_INET)
      uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
    else if (ai->ai_family == AF_INET6)
      uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
    else continue;
    for (i = 1; i <= n && !dup; i++) {
      lua_rawgeti(L, -1, i);
      dup = strcmp(lua_tostring(L, -1), ip) == 0;
      lua_pop(L, 1);
    }
    if (!dup) {
      lua_pushstring(L, ip);
      lua_rawseti(L, -2, ++n);
    }
  }
  return 1;
}

/* Pushes the resolve error for the status and host name (a light userdata). */
static int dns_error(lua_State *L) {
  lasync__push_ioerror(L, (int)lua_tointeger(L, 1), "resolve", "address",
                       (const char *)lua_touserdata(L, 2));
  return 1;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  Resolve *r = (Resolve *)req;
  if (r->wait.task) {
    lua_State *L = lasync_state(r->H);               /* building values may fail: protected */
    lua_pushcfunction(L, status < 0 ? dns_error : dns_list);
    if (status < 0) lua_pushinteger(L, status);
    else lua_pushlightuserdata(L, res);
    lua_pushlightuserdata(L, r->host);
    if (lua_pcall(L, 2, 1, 0) == LUA_OK && status == 0) lasync_wake_values(L, &r->wait, 1);
    else lasync_wake_error(L, &r->wait);
  }
  if (res) uv_freeaddrinfo(res);
  free(r);
}

static void resolve_cancel(lasync_Wait *w) {
  Resolve *r = container_of(w, Resolve, wait);
  uv_cancel((uv_req_t *)&r->req);         /* fails once running: then discarded */
}

/* The address family asked for: nil, 4, 6, "inet", "inet6" (or "ipv4"...). */
static int dns_family(lua_State *L, int arg) {
  static const char *const names[] = {"any", "inet", "inet6", "ipv4", "ipv6", NULL};
  static const int fams[] = {AF_UNSPEC, AF_INET, AF_INET6, AF_INET, AF_INET6};
  if (lua_isnoneornil(L, arg)) return AF_UNSPEC;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer v = lua_tointeger(L, arg);
    luaL_argcheck(L, v == 4 || v == 6, arg, "family must be 4, 6, \"inet\" or \"inet6\"");
    return v == 4 ? AF_INET : AF_INET6;
  }
  return fams[luaL_checkoption(L, arg, NULL, names)];
}

/* resolve(host [, family]): the host's addresses, a list of strings. */
static int l_resolve(lua_State *L) {
  size_t len;
  const char *host = luaL_checklstring(L, 1, &len);
  int family = dns_family(L, 2), rc;
  struct addrinfo hints;
  lasync_Host *H;
  Resolve *r;
  luaL_argcheck(L, len > 0 && strlen(host) == len, 1, "not a host name");
  lasync_checktask(L, "resolve");
  H = lasync_host(L);
  if ((r = (Resolve *)calloc(1, sizeof *r + len)) == NULL)
    return luaL_error(L, "not enough memory");
  memcpy(r->host, host, len + 1);
  r->H = H;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;        /* one entry per address */
  if ((rc = uv_getaddrinfo(lasync_loop(H), &r->req, on_resolved, host, NULL, &hints)) != 0) {
    free(r);
    return lasync__ioerror(L, rc, "resolve", "address", lua_tostring(L, 1));
  }
  lua_settop(L, 0);
  r->wait.what = "dns.resolve";
  return lasync_wait(L, &r->wait, resolve_cancel, NULL, 0);
}

int lasync__luaopen_dns(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_resolve);
  lua_setfield(L, -2, "resolve");
  return 1;
}
