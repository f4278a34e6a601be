/*
** redis_reply.c: the conversions of async.core.redis (redis.c drives the
** connection): hiredis replies to Lua values, error replies to RedisError
** objects, a lost connection to an IOError, and Lua arguments to the
** argument vectors hiredis sends.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "lasync.h"
#include "module.h"
#include "io/io.h"
#include "db/redis.h"

/* -------------------------------------------------------------- replies */

/* Pushes the RedisError of an error reply: {kind, code, message}. The
** code is the reply's first word when it is in capitals ("WRONGTYPE"). */
void lasync__redis_push_error(lua_State *L, const char *s, size_t len) {
  size_t n = 0;
  while (n < len && n < 32 && s[n] >= 'A' && s[n] <= 'Z') n++;
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, "RedisError");
  lua_setfield(L, -2, "kind");
  if (n > 0 && (n == len || s[n] == ' ')) lua_pushlstring(L, s, n);
  else lua_pushliteral(L, "ERR");
  lua_setfield(L, -2, "code");
  lua_pushlstring(L, s, len);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, LASYNC_REDISERROR_MT);
}

/* Pushes a reply as a Lua value: bulk and status strings as strings,
** integers, nil, arrays as tables (with `false` for a nil inside, so they
** have no holes), error replies as RedisError objects (the caller raises
** them at the top level). */
void lasync__redis_push_reply(lua_State *L, const redisReply *r) {
  size_t i;
  switch (r->type) {
    case REDIS_REPLY_STRING: case REDIS_REPLY_STATUS:
      lua_pushlstring(L, r->str, r->len); break;
    case REDIS_REPLY_INTEGER: lua_pushinteger(L, (lua_Integer)r->integer); break;
    case REDIS_REPLY_NIL: lua_pushnil(L); break;
    case REDIS_REPLY_ERROR: lasync__redis_push_error(L, r->str, r->len); break;
    case REDIS_REPLY_ARRAY:
      luaL_checkstack(L, 4, "redis reply nested too deep");
      lua_createtable(L, (int)r->elements, 0);
      for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_NIL) lua_pushboolean(L, 0);
        else lasync__redis_push_reply(L, r->element[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      break;
    default: lua_pushnil(L);
  }
}

/* ----------------------------------------------------------- the errors */

/* Records why the connection is gone (hiredis' err and errstr) in b. */
void lasync__redis_box_lost(Box *b, const redisAsyncContext *ac, int closed) {
  const char *code = "ECONNRESET";
  const char *msg = ac->errstr ? ac->errstr : "connection lost";
  if (b->state == S_CLOSED || closed) {
    b->state = S_CLOSED;
    code = "ECLOSED";
    msg = "the connection was closed";
  } else {
    b->state = S_LOST;
    if (ac->err == REDIS_ERR_EOF) code = "EOF";
    else if (strstr(msg, "refused")) code = "ECONNREFUSED";
    else if (strstr(msg, "No such file")) code = "ENOENT";
    else if (ac->err == 0) msg = "connection lost";
    else if (ac->err == REDIS_ERR_OTHER) code = "EPROTO";
  }
  snprintf(b->code, sizeof b->code, "%s", code);
  snprintf(b->err, sizeof b->err, "%s", msg);
}

/* Pushes the IOError that commands on a lost or closed connection raise. */
void lasync__redis_push_lost(lua_State *L, const Box *b, const char *op) {
  char msg[200];
  if (b->state == S_CLOSED)
    snprintf(msg, sizeof msg, "the connection was closed");
  else if (b->state == S_CONNECTING || strcmp(op, "redis.connect") == 0)
    snprintf(msg, sizeof msg, "%s", b->err);
  else
    snprintf(msg, sizeof msg, "connection lost (%s); a command in flight may or may "
             "not have run", b->err);
  lasync__push_ioerror_msg(L, b->code, msg, op, "address", b->addr);
}

/* Raises an argument error unless [first, top] are strings or numbers
** (a command), before anything is allocated or sent. */
void lasync__redis_check_args(lua_State *L, int first, int top, const char *what) {
  int i;
  for (i = first; i <= top; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_error(L, "bad argument #%d to '%s' (string or number expected, got %s)",
                 i - first + 1, what, luaL_typename(L, i));
  }
}

/* Reads the command at [first, top], checked, into argv. */
int lasync__redis_collect_args(lua_State *L, int first, int top, const char **argv,
                        size_t *lens) {
  int i, n = 0;
  for (i = first; i <= top; i++, n++) argv[n] = lua_tolstring(L, i, &lens[n]);
  return n;
}

void lasync__redis_args_init(lua_State *L, Args *a, int n) {
  a->argv = a->argv_s;
  a->lens = a->lens_s;
  if (n <= 16) return;
  if (n > 1024 * 1024) luaL_error(L, "redis: too many arguments (%d)", n);
  a->argv = malloc(sizeof *a->argv * (size_t)n);
  a->lens = malloc(sizeof *a->lens * (size_t)n);
  if (!a->argv || !a->lens) {
    free(a->argv); free(a->lens);
    luaL_error(L, "redis: out of memory");
  }
}

void lasync__redis_args_free(Args *a) {
  if (a->argv != a->argv_s) { free(a->argv); free(a->lens); }
}

/* conn:call(cmd, ...): sends one command and waits for its reply; raises
** the RedisError of an error reply. */
