/*
** task.c: the life of a task (its methods are task_api.c). A task is a Lua
** thread plus a lasync_Task, the userdata Lua sees. Its one user value
** "holds" the thread, and once the task is done its results instead (one
** value as it is, several in a table): the thread, a kilobyte and more, is
** then garbage. A task C code holds by pointer (TF_KEEPCO: spawned from C,
** or watched with lasync_task_on_done) keeps its thread, where
** lasync_task_results finds them. When a task has extras (name, traceback,
** pending cancellation, done callbacks, context), the user value is their
** table and it holds the rest as "held": most tasks have none, and a second
** user value cost every task 16 bytes.
** While a task is alive the host's task table holds it, so a task spawned
** and forgotten still runs to its end.
**
** Every task runs task_body, which calls the task's function under a
** protected call whose handler records the traceback, so a task always
** ends normally with its results (or its error) as its coroutine's stack.
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "core/core.h"


/* The Task at index i, or NULL. Compares the metatable's address with the
** two Task metatables' (the registry anchors them, and Lua's collector does
** not move objects): luaL_testudata looks one up by name on every call, and
** a lookup by integer key was still 5% of a spawn. */
lasync_Task *lasync__totask(lua_State *L, int i) {
  lasync_Task *t = (lasync_Task *)lua_touserdata(L, i);
  lasync_Host *H;
  const void *mt;
  if (t == NULL || !lua_getmetatable(L, i)) return NULL;
  mt = lua_topointer(L, -1);
  lua_pop(L, 1);
  H = lasync_host(L);
  return mt == H->task_mt || mt == H->task_mt_gc ? t : NULL;
}

lasync_Task *lasync__checktask_arg(lua_State *L, int i) {
  lasync_Task *t = lasync__totask(L, i);
  if (t == NULL) luaL_typeerror(L, i, TASK_MT);
  return t;
}

/* Pushes a live task's object (its anchor in the task table). */
void lasync__push_task(lua_State *L, lasync_Task *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->H->tasks_ref);
  lua_rawgeti(L, -1, t->ref);
  lua_remove(L, -2);
}

/* Pushes the extras table of the task object at idx, making it if asked. */
int lasync__task_extras(lua_State *L, int idx, int make) {
  lasync_Task *t = (lasync_Task *)lua_touserdata(L, idx);
  idx = lua_absindex(L, idx);
  if (t->flags & TF_EXTRAS) { lua_getiuservalue(L, idx, 1); return 1; }
  if (!make) return 0;
  lua_createtable(L, 0, 2);
  lua_getiuservalue(L, idx, 1);
  lua_setfield(L, -2, "held");
  lua_pushvalue(L, -1);
  lua_setiuservalue(L, idx, 1);
  t->flags |= TF_EXTRAS;
  return 1;
}

/* Pushes, or sets from the top, what the task object at idx holds. */
static void task_held(lua_State *L, int idx, lasync_Task *t) {
  lua_getiuservalue(L, idx, 1);
  if (t->flags & TF_EXTRAS) {
    lua_getfield(L, -1, "held");
    lua_remove(L, -2);
  }
}

static void task_hold(lua_State *L, int idx, lasync_Task *t) {
  if (t->flags & TF_EXTRAS) {
    lua_getiuservalue(L, idx, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "held");
    lua_pop(L, 1);
  }
  else lua_setiuservalue(L, idx, 1);
}

/* The task at idx is done: unless C holds it, its results (or error) leave
** the thread for the object, and the thread is let go. */
static void task_let_go(lua_State *L, int idx, lasync_Task *t) {
  lua_State *co = t->co;
  int i, n = lua_gettop(co);
  if ((t->flags & TF_KEEPCO) || !lua_checkstack(L, 2) || !lua_checkstack(co, 2))
    return;                               /* the thread keeps them */
  if (n == 1) lua_xmove(co, L, 1);
  else if (n == 0) lua_pushnil(L);
  else {
    lua_createtable(co, n, 0);
    for (i = 1; i <= n; i++) {
      lua_pushvalue(co, i);
      lua_rawseti(co, -2, i);
    }
    lua_xmove(co, L, 1);
  }
  lua_settop(co, 0);
  task_hold(L, idx, t);
  *(lasync_Task **)lua_getextraspace(co) = NULL;
  t->nargs = n;
  t->co = NULL;
}

/* Pushes the results (or error) of the done task at idx that let go of its
** thread, and returns their count. */
static int task_push_held(lua_State *L, int idx, lasync_Task *t) {
  int i, n = t->nargs;
  luaL_checkstack(L, n + 1, "too many results");
  if (n == 0) return 0;
  task_held(L, idx, t);
  if (n == 1) return 1;
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -(n + 1));
  return n;
}

/* C is about to hold the task at idx by pointer (lasync_task_on_done),
** and read its results with lasync_task_results: it keeps a thread for
** them, the one it runs on or, if it is done and let go of it, a new one. */
void lasync__task_keep(lua_State *L, int idx, lasync_Task *t) {
  idx = lua_absindex(L, idx);
  if (t->co == NULL) {
    int n = task_push_held(L, idx, t);
    lua_State *co = lua_newthread(L);
    *(lasync_Task **)lua_getextraspace(co) = NULL;
    lua_insert(L, -(n + 1));
    lua_xmove(L, co, n);
    task_hold(L, idx, t);
    t->co = co;
  }
  t->flags |= TF_KEEPCO;
}

void lasync__task_pushname(lua_State *L, int idx, lasync_Task *t) {
  if (lasync__task_extras(L, idx, 0)) {
    if (lua_getfield(L, -1, "name") != LUA_TNIL) { lua_remove(L, -2); return; }
    lua_pop(L, 2);
  }
  lua_pushfstring(L, "task-%d", (int)t->id);
}

/* ------------------------------------------------------------ the body */

/* Message handler of the body: records the traceback (chained to the one
** of a child whose error this task re-raised) and keeps the error value. */
static int task_msgh(lua_State *co) {
  lasync_Task *t = lasync__task_of(co);
  const char *msg = lua_tostring(co, 1);
  int tb, ex;
  if (lasync__is_cancelled(co, 1)) return 1;  /* nothing to report: keep it cheap */
  if (msg == NULL) msg = luaL_tolstring(co, 1, NULL);
  luaL_traceback(co, co, msg, 1);
  tb = lua_gettop(co);
  lasync__push_task(co, t);
  lasync__task_extras(co, -1, 1);
  ex = lua_gettop(co);
  if (lua_getfield(co, ex, "reraised") != LUA_TNIL && lua_rawequal(co, -1, 1)) {
    lua_pushvalue(co, tb);
    lua_pushliteral(co, "\n(re-raised from ");
    lua_getfield(co, ex, "cause");
    lua_concat(co, 3);
    lua_replace(co, tb);
  }
  lua_pushvalue(co, tb);
  lua_setfield(co, ex, "tb");
  lua_settop(co, 1);
  return 1;
}

static int task_body_k(lua_State *co, int st, lua_KContext ctx) {
  lasync_Task *t = lasync__task_of(co);
  (void)ctx;
  if (st == LUA_OK || st == LUA_YIELD) {
    t->state = LASYNC_DONE;
    return lua_gettop(co) - 1;           /* the results, above the handler */
  }
  t->state = lasync__is_cancelled(co, -1) ? LASYNC_CANCELLED : LASYNC_FAILED;
  return 1;
}

static int task_body(lua_State *co) {
  lasync_Task *t = lasync__task_of(co);
  t->flags |= TF_STARTED;
  if (t->flags & TF_CANCELREQ) {         /* cancelled before it ran */
    lua_settop(co, 0);
    lasync__take_cancel(co, t);
    t->state = LASYNC_CANCELLED;
    return 1;
  }
  lua_pushcfunction(co, task_msgh);
  lua_insert(co, 1);
  return task_body_k(co, lua_pcallk(co, lua_gettop(co) - 2, LUA_MULTRET, 1,
                                    0, task_body_k), 0);
}

/* ------------------------------------------------------ spawn and step */

/* Anchors the task at L's top in the host's task table (a slot of an
** array, recycled through a free list in C: cheaper than luaL_ref, which
** keeps its free list in the table itself). Returns the slot. */
static int task_anchor(lua_State *L, lasync_Host *H) {
  int slot = H->anchor_nfree > 0 ? H->anchor_free[--H->anchor_nfree] : ++H->anchor_top;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->tasks_ref);
  lua_pushvalue(L, -2);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  return slot;
}

static void task_unanchor(lua_State *L, lasync_Host *H, int slot) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->tasks_ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  if (H->anchor_nfree == H->anchor_cap) {
    int cap = H->anchor_cap ? 2 * H->anchor_cap : 256;
    int *a = (int *)realloc(H->anchor_free, (size_t)cap * sizeof *a);
    if (a == NULL) return;                /* the slot is not reused: harmless */
    H->anchor_free = a;
    H->anchor_cap = cap;
  }
  H->anchor_free[H->anchor_nfree++] = slot;
}

/* The task at L's top inherits the context of its spawner p (the layer
** p has now: p's later changes make a new layer, so they stay p's). Costs
** nothing when p has no context. */
static void task_inherit(lua_State *L, lasync_Task *p) {
  int top = lua_gettop(L);               /* the new task is at top */
  lasync__push_task(L, p);
  if (lasync__task_extras(L, -1, 0) && lua_getfield(L, -1, "ctx") != LUA_TNIL) {
    lasync__task_extras(L, top, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "ctx");
  }
  lua_settop(L, top);
}

lasync_Task *lasync__spawn_on(lua_State *L, lasync_Host *H, int nargs) {
  int n = nargs + 1;                     /* the function and its arguments */
  lasync_Task *t = (lasync_Task *)lua_newuserdatauv(L, sizeof *t, 1);
  lua_State *co = lua_newthread(L);
  memset(t, 0, sizeof *t);
  lua_setiuservalue(L, -2, 1);           /* the thread lives in the task */
  *(lasync_Task **)lua_getextraspace(co) = t;
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->task_mt_ref);
  lua_setmetatable(L, -2);
  lua_insert(L, -(n + 1));               /* task below function and args */
  if (!lua_checkstack(co, n + 1)) luaL_error(L, "spawn: too many arguments");
  lua_pushcfunction(co, task_body);
  lua_xmove(L, co, n);                   /* function and args to the task */
  t->co = co;
  t->H = H;
  t->state = T_NEW;
  t->nargs = n;
  t->id = ++H->next_id;
  t->parent = lasync__task_of(L) ? lasync__task_of(L)->id : 0;
  lasync_waitlist_init(&t->awaiters);
  if (t->parent) task_inherit(L, lasync__task_of(L));
  t->ref = task_anchor(L, H);
  H->live++;
  lasync__ready_push(H, &t->run);
  return t;
}

lasync_Task *lasync_spawn(lua_State *L, int nargs) {
  lasync_Task *t = lasync__spawn_on(L, lasync_host(L), nargs);
  t->flags |= TF_KEEPCO;                 /* the caller holds it by pointer */
  return t;
}

/* Runs the done callbacks of a finished task at stack top; returns how
** many ran. */
static int task_run_callbacks(lua_State *L) {
  int i, n;
  if (!lasync__task_extras(L, -1, 0)) return 0;
  if (lua_getfield(L, -1, "callbacks") == LUA_TNIL) { lua_pop(L, 2); return 0; }
  lua_pushnil(L);
  lua_setfield(L, -3, "callbacks");
  n = (int)luaL_len(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lua_pushvalue(L, -4);
    lasync__pcall(L, 1, 0);
  }
  lua_pop(L, 2);
  return n;
}

static void task_finish(lasync_Host *H, lasync_Task *t) {
  lua_State *L = H->L;
  lasync_Wait *w;
  int seen = 0;
  H->live--;
  lasync__push_task(L, t);
  task_let_go(L, lua_gettop(L), t);
  while ((w = lasync_waitlist_pop(&t->awaiters)) != NULL)
    seen |= lasync__notify(w, t->state != LASYNC_DONE);
  seen |= task_run_callbacks(L);
  if (t->state == LASYNC_FAILED && !(t->flags & TF_OBSERVED)) {
    if (seen) t->flags |= TF_OBSERVED;
    else if (H->debug) lasync__task_report(L, lua_gettop(L), t);
    else {                                /* remember it, weakly, and report
                                             it if it is collected unseen */
      lua_rawgeti(L, LUA_REGISTRYINDEX, H->task_mt_gc_ref);
      lua_setmetatable(L, -2);
      lua_rawgetp(L, LUA_REGISTRYINDEX, &H->unobserved);
      lua_pushvalue(L, -2);
      lua_rawsetp(L, -2, t);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  task_unanchor(L, H, t->ref);
  t->ref = LUA_NOREF;
}

/* The one place a task is resumed. */
void lasync__task_step(lasync_Host *H, lasync_Task *t) {
  lua_State *co = t->co;
  int nres, st, nargs = t->nargs;
  lasync_assert((t->state == T_NEW || t->state == T_READY) && t->wait == NULL);
  H->current = t;
  t->state = T_RUNNING;
  t->nargs = 0;
  if (H->wd) lasync__wd_enter(H, t);
  lasync__intr_switch(H, co);
  st = lua_resume(co, H->L, nargs, &nres);
  lasync__intr_switch(H, NULL);
  if (H->wd) lasync__wd_leave(H, t);
  H->current = NULL;
  if (st == LUA_YIELD) {
    if (nres == 1 && lua_touserdata(co, -1) == LASYNC_TAG) {
      lua_pop(co, 1);
      /* parked: on a wait it owns (lasync_wait), or queued (lasync__yield) */
      lasync_assert(t->state == T_READY ||
                    (t->state == T_WAITING && t->wait && t->wait->task == t));
      return;
    }
    lua_resetthread(co);                  /* a foreign yield: end the task */
    lua_settop(co, 0);
    lua_pushliteral(co, "a task yielded outside the scheduler "
                        "(use async.sleep(0) to let other tasks run)");
    t->state = LASYNC_FAILED;
  }
  else if (st != LUA_OK) {                /* escaped the body: out of memory */
    lua_xmove(co, H->L, 1);
    lua_resetthread(co);
    lua_settop(co, 0);
    lua_xmove(H->L, co, 1);
    t->state = LASYNC_FAILED;
  }
  task_finish(H, t);
}

/* ------------------------------------------------------ cancellation */

/* Requests cancellation of t with the error on L's top (nil: a default
** Cancelled), which is popped. A waiting task is woken at once with the
** error; otherwise it is kept pending and raised at the task's next wait,
** the outermost (smallest depth) request winning. Returns 0 if t is done. */
int lasync__cancel(lua_State *L, lasync_Task *t, int depth) {
  if (task_done(t)) { lua_pop(L, 1); return 0; }
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lasync__push_cancelled(L, NULL);
  }
  if (t->state == T_WAITING) {
    lasync_Wait *w = t->wait;
    lasync_assert(w != NULL && w->task == t && w->gen == t->gen);
    w->task = NULL;
    w->what = NULL;
    t->cancel_depth = depth;
    /* Staged before the wait's own cancel runs: that may cancel other
    ** tasks (an awaited task), which in a cycle of awaits comes back to
    ** this one; it must find t woken already, not waiting on nothing. */
    lasync__stage(t, WAKE_CANCEL, L, 1);
    if (w->cancel) w->cancel(w);
    return 1;
  }
  /* One already on its way (woken, not yet run) or pending absorbs this
  ** one, unless this one comes from further out. */
  if (((t->state == T_READY && t->status == WAKE_CANCEL) ||
       (t->flags & TF_CANCELREQ)) && depth >= t->cancel_depth) {
    lua_pop(L, 1);
    return 1;
  }
  t->flags |= TF_CANCELREQ;
  t->cancel_depth = depth;
  lasync__push_task(L, t);
  lasync__task_extras(L, -1, 1);
  lua_pushvalue(L, -3);
  lua_setfield(L, -2, "cancel");
  lua_pop(L, 3);
  return 1;
}

/* Pushes t's pending cancellation and clears it. */
void lasync__take_cancel(lua_State *L, lasync_Task *t) {
  int top = lua_gettop(L);
  t->flags &= ~TF_CANCELREQ;
  lasync__push_task(L, t);
  if (lasync__task_extras(L, -1, 0)) {
    lua_getfield(L, -1, "cancel");
    lua_pushnil(L);
    lua_setfield(L, -3, "cancel");
  }
  else lua_pushnil(L);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lasync__push_cancelled(L, NULL);
  }
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
}

int lasync_cancel(lua_State *L, lasync_Task *t, const char *msg) {
  lasync__push_cancelled(L, msg);
  return lasync__cancel(L, t, 0);
}

/* Pushes a list of the live tasks (a snapshot: safe to cancel or spawn
** while walking it). */
void lasync__push_tasks(lua_State *L, lasync_Host *H) {
  int n = 0;
  lua_createtable(L, H->live, 0);
  lua_rawgeti(L, LUA_REGISTRYINDEX, H->tasks_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lasync__totask(L, -1)) lua_rawseti(L, -4, ++n);
    else lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

void lasync_cancel_all(lasync_Host *H, const char *msg) {
  lua_State *L = H->L;
  int i, n;
  lasync__push_tasks(L, H);
  n = (int)lua_rawlen(L, -1);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, i);
    lasync_cancel(L, (lasync_Task *)lua_touserdata(L, -1), msg);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ----------------------------------------------------------- outcomes */

void lasync__task_observe(lua_State *L, lasync_Task *t) {
  if (t->state == LASYNC_FAILED && !(t->flags & TF_OBSERVED)) {
    t->flags |= TF_OBSERVED;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &t->H->unobserved);
    lua_pushnil(L);
    lua_rawsetp(L, -2, t);
    lua_pop(L, 1);
  }
}

/* Records, for the running task, that the error at err_idx comes from
** `from` (a task's name, "a worker thread") whose traceback was tb: when
** the task fails with that same error, its traceback ends with tb. */
void lasync__task_set_cause(lua_State *L, int err_idx, const char *from, const char *tb) {
  lasync_Task *me = lasync__task_of(L);
  if (me == NULL) return;
  err_idx = lua_absindex(L, err_idx);
  luaL_checkstack(L, 4, NULL);
  lasync__push_task(L, me);
  lasync__task_extras(L, -1, 1);
  lua_pushvalue(L, err_idx);
  lua_setfield(L, -2, "reraised");
  lua_pushfstring(L, "%s):\n%s", from, tb ? tb : "(no traceback)");
  lua_setfield(L, -2, "cause");
  lua_pop(L, 2);
}

/* Pushes the results of the done task at idx and returns their count; for
** a failed or cancelled task pushes its error and, if `raise`, raises it
** in the running task, remembering the child's traceback for its own. */
int lasync__task_outcome(lua_State *L, int idx, lasync_Task *t, int raise) {
  lua_State *co = t->co;
  int i, n = co ? lua_gettop(co) : t->nargs;
  lasync__task_observe(L, t);
  if (t->state == LASYNC_DONE) {
    luaL_checkstack(L, n + 1, "too many results");
    if (co) {
      luaL_checkstack(co, n, "too many results");
      for (i = 1; i <= n; i++) lua_pushvalue(co, i);
      lua_xmove(co, L, n);
      return n;
    }
    return task_push_held(L, idx, t);
  }
  if (co) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
  }
  else task_held(L, idx, t);
  if (!raise) return 1;
  if (lasync__task_of(L)) {              /* chain the tracebacks */
    const char *tb = NULL;
    int top = lua_gettop(L);
    lasync__task_pushname(L, idx, t);
    if (lasync__task_extras(L, idx, 0) && lua_getfield(L, -1, "tb") == LUA_TSTRING)
      tb = lua_tostring(L, -1);
    lasync__task_set_cause(L, top, lua_tostring(L, top + 1), tb);
    lua_settop(L, top);
  }
  return lua_error(L);
}

void lasync__task_report(lua_State *L, int idx, lasync_Task *t) {
  int top = lua_gettop(L);
  const char *tb;
  t->flags |= TF_OBSERVED;
  lasync__task_pushname(L, idx, t);
  if (lasync__task_extras(L, idx, 0)) lua_getfield(L, -1, "tb");
  else lua_pushnil(L);
  tb = lua_tostring(L, -1);
  lua_pushfstring(L, "lasync: task '%s' failed and nobody awaited it: %s",
                  lua_tostring(L, top + 1), tb ? tb : "(no traceback)");
  lasync__report(t->H, lua_tostring(L, -1));
  lua_settop(L, top);
}

/* At loop end: reports the failed tasks nobody awaited that were not
** collected yet (the others were reported when collected). No collection
** first: one over every object made the end of a big run slow, and a task
** it would have collected is reported here just the same, once. */
void lasync__report_unobserved(lasync_Host *H) {
  lua_State *L = H->L;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &H->unobserved);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    int top = lua_gettop(L);
    lasync_Task *t = (lasync_Task *)lua_touserdata(L, -1);
    if (!(t->flags & TF_OBSERVED)) lasync__task_report(L, top, t);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* ------------------------------------------------------- public C API */

void lasync_set_debug(lasync_Host *H, int on) {
  H->debug = (unsigned char)(on != 0);
  if (on && H->wd == NULL) lasync__watchdog_start(H, 0.1, 0);
  if (!on) lasync__watchdog_stop(H);
}

int lasync_task_status(lasync_Task *t) {
  return task_done(t) ? t->state : LASYNC_PENDING;
}

/* Pushes the first result of the done task at idx (nil if none). */
int lasync__task_first(lua_State *L, int idx, lasync_Task *t) {
  if (t->co) {
    if (lua_gettop(t->co) == 0 || !lua_checkstack(t->co, 1)) lua_pushnil(L);
    else {
      lua_pushvalue(t->co, 1);
      lua_xmove(t->co, L, 1);
    }
    return 1;
  }
  if (t->nargs == 0) lua_pushnil(L);
  else {
    task_held(L, idx, t);
    if (t->nargs > 1) {
      lua_rawgeti(L, -1, 1);
      lua_remove(L, -2);
    }
  }
  return 1;
}

/* For a task C holds (TF_KEEPCO), whose results stay on its thread. */
int lasync_task_results(lua_State *L, lasync_Task *t) {
  if (!task_done(t) || t->co == NULL) return 0;
  return lasync__task_outcome(L, 0, t, 0);
}

void lasync_task_traceback(lua_State *L, int idx) {
  lasync__checktask_arg(L, idx);
  if (lasync__task_extras(L, idx, 0)) {
    lua_getfield(L, -1, "tb");
    lua_remove(L, -2);
  }
  else lua_pushnil(L);
}

void lasync_task_stack(lua_State *L, int idx) {
  lasync_Task *t = lasync__checktask_arg(L, idx);
  if (task_done(t) || t->state == T_RUNNING) lua_pushnil(L);
  else luaL_traceback(L, t->co, NULL, 0);
}

