/*
** task_api.c: what Lua sees of a task: async.spawn and the Task methods
** (await, result, error, cancel, state, name, info, stack, done
** callbacks), and the core functions for scopes, context and introspection.
** The task's life itself (body, step, finish, cancellation) is task.c.
*/
#include <lauxlib.h>
#include "core/core.h"

#define HOST(L) ((lasync_Host *)lua_touserdata(L, lua_upvalueindex(1)))

static const char *const state_names[] = {
  "pending", "done", "failed", "cancelled"
};

static void task_checkfn(lua_State *L) {
  if (lua_type(L, 1) != LUA_TFUNCTION && !luaL_getmetafield(L, 1, "__call"))
    luaL_typeerror(L, 1, "function");
}

static int l_spawn(lua_State *L) {
  task_checkfn(L);
  lasync__spawn_on(L, HOST(L), lua_gettop(L) - 1);
  return 1;
}

static int task_await_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lua_settop(L, 1);
  return lasync__task_outcome(L, 1, (lasync_Task *)lua_touserdata(L, 1), 1);
}

/* Cancelling a task that awaits another cancels the other too, as in
** asyncio; async.shield is the way to wait without that. */
static void task_await_cancel(lasync_Wait *w) {
  lasync_Task *t = (lasync_Task *)w->data;
  lasync_waitlist_remove(w);
  lua_pushnil(t->H->L);
  lasync__cancel(t->H->L, t, 0);
}

/* Whether me awaiting t closes a cycle of tasks awaiting each other (t
** awaits u, which awaits ... me): such a wait could only end cancelled.
** Follows the chain of plain awaits (wait_for(sec, task) is one too); at
** most as many steps as there are tasks alive. */
static int task_await_cycle(lasync_Task *me, lasync_Task *t) {
  int n = t->H->live;
  while (n-- > 0 && t->state == T_WAITING && t->wait == &t->self &&
         t->self.what == lasync__what_task) {
    t = (lasync_Task *)t->self.data;
    if (t == me) return 1;
  }
  return 0;
}

static int task_await(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  if (!task_done(t)) {
    lasync_Task *me = lasync_checktask(L, "await");
    if (me == t) return luaL_error(L, "await: a task cannot await itself");
    if (task_await_cycle(me, t)) {
      lasync__task_pushname(L, 1, t);
      return luaL_error(L, "await: task '%s' already awaits this task (a cycle of "
                           "tasks awaiting each other would never end)", lua_tostring(L, -1));
    }
    me->self.data = t;
    me->self.what = lasync__what_task;
    lasync_waitlist_push(&t->awaiters, &me->self);
    return lasync_wait(L, &me->self, task_await_cancel, task_await_k, 0);
  }
  return task_await_k(L, LUA_OK, 0);
}

static int task_result(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  if (!task_done(t)) {
    lasync__task_pushname(L, 1, t);
    return luaL_error(L, "result: task '%s' is not done", lua_tostring(L, -1));
  }
  lua_settop(L, 1);
  return lasync__task_outcome(L, 1, t, 1);
}

static int task_error(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  if (!task_done(t) || t->state == LASYNC_DONE) return 0;
  return lasync__task_outcome(L, 1, t, 0);
}

static int task_cancel(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  lasync__push_cancelled(L, luaL_optstring(L, 2, NULL));
  lua_pushboolean(L, lasync__cancel(L, t, 0));
  return 1;
}

static int task_done_m(lua_State *L) {
  lua_pushboolean(L, task_done(lasync__checktask_arg(L, 1)));
  return 1;
}

static int task_cancelled(lua_State *L) {
  lua_pushboolean(L, lasync__checktask_arg(L, 1)->state == LASYNC_CANCELLED);
  return 1;
}

static int task_state(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  if (task_done(t)) lua_pushstring(L, state_names[t->state]);
  else if (t->state == T_WAITING) lua_pushliteral(L, "waiting");
  else if (t->state == T_RUNNING) lua_pushliteral(L, "running");
  else lua_pushliteral(L, "ready");
  return 1;
}

static int task_name(lua_State *L) {
  lasync__task_pushname(L, 1, lasync__checktask_arg(L, 1));
  return 1;
}

static int task_set_name(lua_State *L) {
  lasync__checktask_arg(L, 1);
  luaL_checkstring(L, 2);
  lasync__task_extras(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "name");
  lua_settop(L, 1);
  return 1;
}

static int task_id(lua_State *L) {
  lua_pushinteger(L, lasync__checktask_arg(L, 1)->id);
  return 1;
}

static int task_traceback(lua_State *L) {
  lasync__checktask_arg(L, 1);
  if (!lasync__task_extras(L, 1, 0)) return 0;
  lua_getfield(L, -1, "tb");
  return 1;
}

/* t:add_done_callback(fn): fn(t) runs once t is done, from the loop. */
static int task_add_done_callback(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (task_done(t)) {
    lasync__task_observe(L, t);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    lasync__call_soon(L, 1);
    return 0;
  }
  lasync__task_extras(L, 1, 1);
  if (lua_getfield(L, -1, "callbacks") == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "callbacks");
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, luaL_len(L, -2) + 1);
  return 0;
}

static int task_remove_done_callback(lua_State *L) {
  int found = 0;
  lasync__checktask_arg(L, 1);
  if (lasync__task_extras(L, 1, 0)) {
    lua_getfield(L, -1, "callbacks");
    found = lasync__list_remove(L, -1, 2);
  }
  lua_pushboolean(L, found);
  return 1;
}

static int task_tostring(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  lasync__task_pushname(L, 1, t);
  task_state(L);
  lua_pushfstring(L, "Task<%s %s>", lua_tostring(L, -2), lua_tostring(L, -1));
  return 1;
}

/* A failed task nobody awaited is reported when it is collected. */
static int task_gc(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  if (t->state == LASYNC_FAILED && !(t->flags & TF_OBSERVED))
    lasync__task_report(L, 1, t);
  return 0;
}

/* The descriptions of the built-in waits that carry details are told apart
** by address (a module's description may start with the same letters):
** lasync__what_sleep (timer.c) and this one. */
const char lasync__what_task[] = "task";

/* Pushes what the task waits on, in words, or nil. */
static void task_push_waiting(lua_State *L, lasync_Task *t) {
  lasync_Wait *w = t->wait;
  if (w == NULL) lua_pushnil(L);
  else if (w != &t->self) lua_pushstring(L, w->what ? w->what : "a native operation");
  else if (w->what == lasync__what_sleep) {
    if (t->timer.idx) {
      uint64_t now = lasync__now(t->H);
      double left = t->timer.due > now ? (double)(t->timer.due - now) / 1e9 : 0;
      lua_pushfstring(L, "sleep (%f s left)", left);
    }
    else lua_pushliteral(L, "sleep (forever)");
  }
  else if (w->what == lasync__what_task)
    lua_pushfstring(L, "task-%d", (int)((lasync_Task *)w->data)->id);
  else lua_pushstring(L, w->what ? w->what : "?");
}

/* t:info(): {id, name, state, parent, waiting, stack} for introspection. */
static int task_info(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, t->id);
  lua_setfield(L, -2, "id");
  lasync__task_pushname(L, 1, t);
  lua_setfield(L, -2, "name");
  task_state(L);
  lua_setfield(L, -2, "state");
  lua_pushinteger(L, t->parent);
  lua_setfield(L, -2, "parent");
  task_push_waiting(L, t);
  lua_setfield(L, -2, "waiting");
  lasync_task_stack(L, 1);
  lua_setfield(L, -2, "stack");
  lua_pushnumber(L, (lua_Number)t->cpu_ns / 1e9);
  lua_setfield(L, -2, "cpu");
  return 1;
}

/* t:stack(): where a waiting task waits (a traceback), nil when done. */
static int task_stack(lua_State *L) {
  lasync_task_stack(L, 1);
  return 1;
}

static int l_current(lua_State *L) {
  lasync_Task *t = lasync__task_of(L);
  if (t == NULL) return 0;
  lasync__push_task(L, t);
  return 1;
}

/* core.cancel(task, err, depth): cancellation for scopes and timeouts. */
static int l_cancel(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  int depth = (int)luaL_checkinteger(L, 3);
  lua_settop(L, 2);
  lua_pushboolean(L, lasync__cancel(L, t, depth));
  return 1;
}

/* core.context([layer]): the current task's context layer (a table or
** nil); with an argument, sets it. Outside a task: nil, and setting fails. */
static int l_context(lua_State *L) {
  lasync_Task *t = lasync__task_of(L);
  int set = !lua_isnone(L, 1);
  if (t == NULL) {
    if (set) return luaL_error(L, "async.context: not inside a task");
    return 0;
  }
  lasync__push_task(L, t);
  lasync__task_extras(L, -1, set);
  if (set) {
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "ctx");
    return 0;
  }
  if (!lua_istable(L, -1)) return 0;
  lua_getfield(L, -1, "ctx");
  return 1;
}

/* core.withdraw(task, err): drops t's pending cancellation if it is err. */
static int l_withdraw(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  int ok = 0;
  if ((t->flags & TF_CANCELREQ) && lasync__task_extras(L, 1, 0)) {
    lua_getfield(L, -1, "cancel");
    if (lua_rawequal(L, -1, 2)) {
      ok = 1;
      t->flags &= ~TF_CANCELREQ;
      lua_pushnil(L);
      lua_setfield(L, -3, "cancel");
    }
  }
  lua_pushboolean(L, ok);
  return 1;
}

/* core.report_failed(task, why): reports on stderr (the host's report
** hook) the error of a failed task that was seen but not raised, e.g. a
** scope child failing after another error won: no error is dropped. */
static int l_report_failed(lua_State *L) {
  lasync_Task *t = lasync__checktask_arg(L, 1);
  const char *why = luaL_checkstring(L, 2), *tb;
  if (t->state != LASYNC_FAILED) return 0;
  lua_settop(L, 2);
  lasync__task_pushname(L, 1, t);
  if (lasync__task_extras(L, 1, 0)) lua_getfield(L, -1, "tb");
  else lua_pushnil(L);
  tb = lua_tostring(L, -1);
  if (tb == NULL) {
    lasync__task_outcome(L, 1, t, 0);
    tb = luaL_tolstring(L, -1, NULL);
  }
  lua_pushfstring(L, "lasync: task '%s' failed and %s: %s", lua_tostring(L, 3), why, tb);
  lasync__report(t->H, lua_tostring(L, -1));
  return 0;
}

/* core.tasks(): the live tasks, in no particular order. */
static int l_tasks(lua_State *L) {
  lasync__push_tasks(L, HOST(L));
  return 1;
}

static const luaL_Reg task_methods[] = {
  {"await", task_await}, {"result", task_result}, {"error", task_error},
  {"cancel", task_cancel}, {"done", task_done_m}, {"cancelled", task_cancelled},
  {"state", task_state}, {"name", task_name}, {"set_name", task_set_name},
  {"id", task_id}, {"traceback", task_traceback}, {"stack", task_stack},
  {"info", task_info},
  {"add_done_callback", task_add_done_callback},
  {"remove_done_callback", task_remove_done_callback},
  {NULL, NULL}
};

static const luaL_Reg task_funcs[] = {
  {"spawn", l_spawn}, {"current", l_current}, {"cancel", l_cancel},
  {"withdraw", l_withdraw}, {"tasks", l_tasks}, {"report_failed", l_report_failed}, {"context", l_context}, {NULL, NULL}
};

/* Adds the task functions to the table on top (H is upvalue 1). */
int lasync__open_task(lua_State *L) {
  lasync_Host *H = lasync_host(L);
  static const luaL_Reg meta[] = {{"__tostring", task_tostring}, {NULL, NULL}};
  lasync__class(L, TASK_MT, meta, task_methods);
  /* A second metatable, the same with a finalizer, for the failed tasks
  ** nobody has seen fail (task.c's task_finish): a finalizer on every task
  ** made each collection of a task a call, and its memory wait a cycle. */
  lua_createtable(L, 0, 4);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  lua_pushcfunction(L, task_gc);
  lua_setfield(L, -2, "__gc");
  H->task_mt_gc = lua_topointer(L, -1);
  H->task_mt_gc_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  H->task_mt = lua_topointer(L, -1);
  H->task_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushlightuserdata(L, H);
  luaL_setfuncs(L, task_funcs, 1);
  return 0;
}
