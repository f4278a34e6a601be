/*
** coro.c: coroutine.resume, coroutine.wrap and coroutine.yield as tasks
** need them (rule 10). A plain coroutine (a generator, say) resumed from a
** task may itself wait: its wait yields the scheduler's tag, which resume
** passes outward so the whole task suspends; when the task is woken,
** resume hands the values back inward. A bare coroutine.yield at the top
** level of a task has nobody to go to and is refused with an error.
*/
#include <lauxlib.h>
#include "core/core.h"

#define CO_FORWARD (-2)

static lasync_Task **co_owner(lua_State *co) {
  return (lasync_Task **)lua_getextraspace(co);
}

/* Resumes co with the narg values on L's top. Returns the number of values
** it moved to L, -1 with an error on L's top, or CO_FORWARD when co waits
** on the scheduler (L's task must then suspend too). `cont` is set when
** L's task was woken from such a wait and hands co its values. */
static int co_run(lua_State *L, lua_State *co, int narg, int cont) {
  lasync_Task *t = lasync__task_of(L);
  int status, nres;
  if (!cont && *co_owner(co) != NULL) {
    lua_pushliteral(L, "cannot resume a task's coroutine, or a coroutine "
                       "that is waiting inside a task (use task:await())");
    return -1;
  }
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    return -1;
  }
  /* Waits in co belong to L's task, if L could suspend with it. */
  *co_owner(co) = lua_isyieldable(L) ? t : NULL;
  lua_xmove(L, co, narg);
  if (t && t->H->wd) lasync__wd_switch(t->H, co);
  if (t) lasync__intr_switch(t->H, co);
  status = lua_resume(co, L, narg, &nres);
  if (t) lasync__intr_switch(t->H, L);
  if (t && t->H->wd) lasync__wd_switch(t->H, L);
  if (status == LUA_YIELD && nres == 1 && lua_touserdata(co, -1) == LASYNC_TAG) {
    lua_pop(co, 1);
    return CO_FORWARD;
  }
  *co_owner(co) = NULL;
  if (status == LUA_OK || status == LUA_YIELD) {
    if (!lua_checkstack(L, nres + 1)) {
      lua_pop(co, nres);
      lua_pushliteral(L, "too many results to resume");
      return -1;
    }
    lua_xmove(co, L, nres);
    return nres;
  }
  lua_xmove(co, L, 1);
  return -1;
}

static int co_suspend(lua_State *L, int base, lua_KFunction k) {
  lua_pushlightuserdata(L, LASYNC_TAG);
  return lua_yieldk(L, 1, (lua_KContext)base, k);
}

static int co_resume_k(lua_State *L, int status, lua_KContext base);

static int co_resume_aux(lua_State *L, lua_State *co, int narg, int cont) {
  int r = co_run(L, co, narg, cont);
  if (r == CO_FORWARD) return co_suspend(L, 1, co_resume_k);
  if (r < 0) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  lua_pushboolean(L, 1);
  lua_insert(L, -(r + 1));
  return r + 1;
}

static int co_resume_k(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return co_resume_aux(L, lua_tothread(L, 1), lua_gettop(L) - (int)base, 1);
}

static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  return co_resume_aux(L, co, lua_gettop(L) - 1, 0);
}

static int co_wrap_k(lua_State *L, int status, lua_KContext base);

static int co_wrap_aux(lua_State *L, int narg, int cont) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(1));
  int r = co_run(L, co, narg, cont);
  if (r == CO_FORWARD) return co_suspend(L, 0, co_wrap_k);
  if (r < 0) {                           /* as lcorolib's auxwrap */
    int stat = lua_status(co);
    if (stat != LUA_OK && stat != LUA_YIELD) {
      stat = lua_resetthread(co);        /* close its to-be-closed variables */
      lua_xmove(co, L, 1);
    }
    if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
      luaL_where(L, 1);
      lua_insert(L, -2);
      lua_concat(L, 2);
    }
    return lua_error(L);
  }
  return r;
}

static int co_wrap_k(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return co_wrap_aux(L, lua_gettop(L) - (int)base, 1);
}

static int co_wrapped(lua_State *L) {
  return co_wrap_aux(L, lua_gettop(L), 0);
}

static int co_wrap(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State *co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 1);
  return 1;
}

static int co_yield(lua_State *L) {
  lasync_Task *t = lasync__task_of(L);
  if (t != NULL && t->co == L)
    return luaL_error(L, "coroutine.yield: called at the top level of a task "
                         "(use async.sleep(0) to let other tasks run)");
  return lua_yield(L, lua_gettop(L));
}

/* The standard close, unless co belongs to a task or waits inside one:
** closing it would leave that task waiting on a dead coroutine. */
static int co_close(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co, 1, "coroutine");
  if (*co_owner(co) != NULL)
    return luaL_error(L, "cannot close a task's coroutine, or a coroutine "
                         "that is waiting inside a task (use task:cancel())");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static const luaL_Reg co_funcs[] = {
  {"resume", co_resume}, {"wrap", co_wrap}, {"yield", co_yield}, {NULL, NULL}
};

/* Replaces the functions above in the standard coroutine table. */
int lasync__open_coro(lua_State *L) {
  lua_getglobal(L, "coroutine");
  luaL_setfuncs(L, co_funcs, 0);
  lua_getfield(L, -1, "close");          /* the standard close, as upvalue */
  lua_pushcclosure(L, co_close, 1);
  lua_setfield(L, -2, "close");
  lua_pop(L, 1);
  return 0;
}
