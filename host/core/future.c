/*
** future.c: async.future(), a one-shot result slot that tasks can await.
** Resolved with values or rejected with an error by whoever holds it; the
** first outcome wins and later ones are ignored (resolve returns false).
** User value 1 holds the outcome ({n=..., ...} or the error), 2 the done
** callbacks.
*/
#include <lauxlib.h>
#include "core/core.h"

static Future *future_check(lua_State *L, int i) {
  return (Future *)luaL_checkudata(L, i, FUTURE_MT);
}

static int l_future(lua_State *L) {
  Future *f = (Future *)lua_newuserdatauv(L, sizeof *f, 2);
  f->state = LASYNC_PENDING;
  lasync_waitlist_init(&f->awaiters);
  luaL_setmetatable(L, FUTURE_MT);
  return 1;
}

/* Settles the future at 1 with the outcome on top (popped); wakes the
** awaiters and runs the callbacks. Returns 0 when it was already done. */
static int future_settle(lua_State *L, Future *f, int state) {
  lasync_Wait *w;
  int i, n;
  if (f->state != LASYNC_PENDING) { lua_pop(L, 1); return 0; }
  f->state = (unsigned char)state;
  lua_setiuservalue(L, 1, 1);
  lua_pushnil(L);                        /* no longer anchored by awaiters */
  lua_rawsetp(L, LUA_REGISTRYINDEX, f);
  while ((w = lasync_waitlist_pop(&f->awaiters)) != NULL)
    lasync__notify(w, state != LASYNC_DONE);
  if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE) {
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 2);
    n = (int)luaL_len(L, -1);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      lua_pushvalue(L, 1);
      lasync__call_soon(L, 1);
    }
  }
  lua_pop(L, 1);
  return 1;
}

static int future_resolve(lua_State *L) {
  int n = lua_gettop(L) - 1;
  future_check(L, 1);
  lua_createtable(L, n, 1);
  lua_insert(L, 2);
  lua_pushinteger(L, n);
  lua_setfield(L, 2, "n");
  for (; n > 0; n--) lua_rawseti(L, 2, n);
  lua_pushboolean(L, future_settle(L, future_check(L, 1), LASYNC_DONE));
  return 1;
}

static int future_reject(lua_State *L) {
  Future *f = future_check(L, 1);
  /* A nil error would reach its awaiters as `error(nil)`: no message,
  ** and a pcall that reads as failed with nothing to say. */
  if (lua_isnoneornil(L, 2)) luaL_argerror(L, 2, "an error value expected, got nil");
  lua_settop(L, 2);
  lua_pushboolean(L, future_settle(L, f, LASYNC_FAILED));
  return 1;
}

static int future_cancel(lua_State *L) {
  Future *f = future_check(L, 1);
  lua_settop(L, 2);
  lasync__push_cancelled(L, luaL_optstring(L, 2, NULL));
  lua_replace(L, 2);
  lua_pushboolean(L, future_settle(L, f, LASYNC_CANCELLED));
  return 1;
}

/* Pushes the outcome of the done future at 1; raises an error outcome. */
static int future_outcome(lua_State *L, Future *f, int raise) {
  lua_getiuservalue(L, 1, 1);
  if (f->state == LASYNC_DONE) {
    int i, n;
    lua_getfield(L, -1, "n");
    n = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, n, "too many results");
    for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
    return n;
  }
  return raise ? lua_error(L) : 1;
}

static int future_await_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lua_settop(L, 1);
  return future_outcome(L, (Future *)lua_touserdata(L, 1), 1);
}

/* As with tasks, cancelling the awaiter cancels the future. */
static void future_await_cancel(lasync_Wait *w) {
  lua_State *L = container_of(w, lasync_Task, self)->H->L;
  lasync_waitlist_remove(w);
  lua_rawgetp(L, LUA_REGISTRYINDEX, w->data);   /* anchored by future_await */
  if (!lua_isnil(L, -1)) {
    lua_pushcfunction(L, future_cancel);
    lua_insert(L, -2);
    lasync__pcall(L, 1, 0);
  }
  else lua_pop(L, 1);
}

static int future_await(lua_State *L) {
  Future *f = future_check(L, 1);
  if (f->state == LASYNC_PENDING) {
    lasync_Task *me = lasync_checktask(L, "await");
    me->self.data = f;
    me->self.what = "future";
    lua_pushvalue(L, 1);                 /* anchor the future while awaited */
    lua_rawsetp(L, LUA_REGISTRYINDEX, f);
    lasync_waitlist_push(&f->awaiters, &me->self);
    return lasync_wait(L, &me->self, future_await_cancel, future_await_k, 0);
  }
  return future_await_k(L, LUA_OK, 0);
}

static int future_done(lua_State *L) {
  lua_pushboolean(L, future_check(L, 1)->state != LASYNC_PENDING);
  return 1;
}

static int future_cancelled(lua_State *L) {
  lua_pushboolean(L, future_check(L, 1)->state == LASYNC_CANCELLED);
  return 1;
}

static int future_result(lua_State *L) {
  Future *f = future_check(L, 1);
  if (f->state == LASYNC_PENDING) return luaL_error(L, "result: future is not done");
  lua_settop(L, 1);
  return future_outcome(L, f, 1);
}

static int future_error(lua_State *L) {
  Future *f = future_check(L, 1);
  if (f->state == LASYNC_PENDING || f->state == LASYNC_DONE) return 0;
  lua_settop(L, 1);
  return future_outcome(L, f, 0);
}

static int future_add_done_callback(lua_State *L) {
  Future *f = future_check(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (f->state != LASYNC_PENDING) {
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    lasync__call_soon(L, 1);
    return 0;
  }
  if (lua_getiuservalue(L, 1, 2) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 2);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  return 0;
}

static int future_remove_done_callback(lua_State *L) {
  future_check(L, 1);
  lua_getiuservalue(L, 1, 2);
  lua_pushboolean(L, lasync__list_remove(L, -1, 2));
  return 1;
}

static const char *const state_names[] = {"pending", "done", "failed", "cancelled"};

static int future_state(lua_State *L) {
  lua_pushstring(L, state_names[future_check(L, 1)->state]);
  return 1;
}

static int future_tostring(lua_State *L) {
  lua_pushfstring(L, "Future<%s>", state_names[future_check(L, 1)->state]);
  return 1;
}

static const luaL_Reg future_methods[] = {
  {"resolve", future_resolve}, {"reject", future_reject},
  {"cancel", future_cancel}, {"await", future_await}, {"done", future_done},
  {"cancelled", future_cancelled}, {"result", future_result}, {"state", future_state},
  {"error", future_error}, {"add_done_callback", future_add_done_callback},
  {"remove_done_callback", future_remove_done_callback},
  {NULL, NULL}
};

int lasync__open_future(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", future_tostring}, {NULL, NULL}};
  lasync__class(L, FUTURE_MT, meta, future_methods);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_future);
  lua_setfield(L, -2, "future");
  return 0;
}
