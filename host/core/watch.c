/*
** watch.c: core.watch(list, n, mode), waiting for many tasks and futures
** at once in O(1) per completion: one watcher node per item joins the
** item's awaiters, and the waiting task is woken once, when `mode` is met:
** "all" (every item done), "first" (any item done) or "first_error" (an
** item failed, or all done). Returns the index of the item that met it.
** gather, settle and wait are built on it.
**
** A watcher node is a lasync_Wait with no task; completion calls its
** cancel function as a notification (lasync__notify). Every node leaves
** its list before the watch can be collected: on wake, on cancel, in __gc.
*/
#include <string.h>
#include <lauxlib.h>
#include "core/core.h"

typedef struct Node {
  lasync_Wait w;                  /* w.data: the Watch */
  int index;
} Node;

typedef struct Watch {
  lasync_Task *task;              /* the waiting task */
  unsigned gen;                   /* its wait generation when it began */
  int remaining, mode, trigger, n;
  Node nodes[1];
} Watch;

enum { MODE_ALL, MODE_FIRST, MODE_FIRST_ERROR };
static const char *const modes[] = {"all", "first", "first_error", NULL};

/* Completion of a task or future notifies each node of its awaiters:
** wakes a task, or tells a watcher whether the item failed. Returns 1 when
** a task was woken (it will observe the outcome). */
int lasync__notify(lasync_Wait *w, int failed) {
  if (w->task) return lasync_wake(w);
  w->gen = (unsigned)failed;
  if (w->cancel) w->cancel(w);
  return 0;
}

/* ----------------------------------------------- awaiting a task or future */

/* The awaiters of the pending task or future at idx, or NULL when it is
** done (then *failed tells whether it ended in error). */
lasync_WaitList *lasync__awaiters(lua_State *L, int idx, int *failed) {
  lasync_Task *t = lasync__totask(L, idx);
  Future *f;
  if (t) {
    *failed = t->state != LASYNC_DONE;
    return task_done(t) ? NULL : &t->awaiters;
  }
  f = (Future *)luaL_testudata(L, idx, FUTURE_MT);
  if (f == NULL) luaL_error(L, "a %s is not a task or future", luaL_typename(L, idx));
  *failed = f->state != LASYNC_DONE;
  return f->state != LASYNC_PENDING ? NULL : &f->awaiters;
}

/* Pushes the first result of the task or future at idx if it succeeded
** (nil when it returned nothing) and returns 1; returns 0 otherwise. */
int lasync__push_first(lua_State *L, int idx) {
  lasync_Task *t = lasync__totask(L, idx);
  Future *f;
  if (t) return t->state == LASYNC_DONE ? lasync__task_first(L, idx, t) : 0;
  f = (Future *)luaL_testudata(L, idx, FUTURE_MT);
  if (f == NULL || f->state != LASYNC_DONE) return 0;
  lua_getiuservalue(L, idx, 1);
  lua_rawgeti(L, -1, 1);
  lua_remove(L, -2);
  return 1;
}

/* ------------------------------------------------------------------ watch */

static void watch_detach(Watch *wt) {
  int i;
  for (i = 0; i < wt->n; i++) lasync_waitlist_remove(&wt->nodes[i].w);
}

/* An item finished: its outcome is read from the item by the caller. */
static void watch_notify(lasync_Wait *w) {
  Node *node = (Node *)w;
  Watch *wt = (Watch *)w->data;
  lasync_Task *t = wt->task;
  int failed = (int)node->w.gen;  /* set by lasync__notify */
  wt->remaining--;
  if (wt->trigger == 0 && (wt->mode == MODE_FIRST || wt->remaining == 0 ||
                           (wt->mode == MODE_FIRST_ERROR && failed))) {
    wt->trigger = node->index;
    if (t->wait == &t->self && t->self.gen == wt->gen) lasync_wake(&t->self);
  }
}

static void watch_cancel(lasync_Wait *w) {
  watch_detach((Watch *)w->data);
}

static int watch_k(lua_State *L, int status, lua_KContext ctx) {
  Watch *wt = (Watch *)lua_touserdata(L, 4);
  (void)status; (void)ctx;
  watch_detach(wt);
  lua_pushinteger(L, wt->trigger);
  return 1;
}

static int watch_gc(lua_State *L) {
  watch_detach((Watch *)luaL_checkudata(L, 1, "lasync.Watch"));
  return 0;
}

/* Joins the node to the awaiters of the item on top; returns 1 if the item
** is already done (whether it failed in *failed). */
static int watch_join(lua_State *L, Node *node, int *failed) {
  lasync_WaitList *list = lasync__awaiters(L, -1, failed);
  if (list == NULL) return 1;
  lasync_waitlist_push(list, &node->w);
  return 0;
}

static int l_watch(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 2);
  int mode = luaL_checkoption(L, 3, "all", modes);
  int i, failed, met = 0;
  lasync_Task *me;
  Watch *wt;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, n >= 0 && (lua_Unsigned)n <= lua_rawlen(L, 1), 2,
                "count must be 0 .. the length of the list");
  me = lasync_checktask(L, "async.watch");
  lua_settop(L, 3);
  wt = (Watch *)lua_newuserdatauv(L, sizeof(Watch) + (n > 0 ? n - 1 : 0) * sizeof(Node), 0);
  memset(wt, 0, sizeof(Watch));
  wt->task = me;
  wt->mode = mode;
  luaL_getmetatable(L, "lasync.Watch");
  lua_setmetatable(L, 4);
  for (i = 0; i < n; i++) {
    Node *node = &wt->nodes[i];
    memset(node, 0, sizeof *node);
    node->index = i + 1;
    node->w.data = wt;
    node->w.cancel = watch_notify;
    lua_rawgeti(L, 1, i + 1);
    if (watch_join(L, node, &failed)) {
      if (!met && (mode == MODE_FIRST || (mode == MODE_FIRST_ERROR && failed)))
        met = i + 1;
    }
    else wt->remaining++;
    wt->n = i + 1;
    lua_pop(L, 1);
    if (met) break;
  }
  if (met || wt->remaining == 0) {
    watch_detach(wt);
    if (met) lua_pushinteger(L, met);
    else lua_pushinteger(L, n > 0 ? n : 0);
    return 1;
  }
  me->self.data = wt;
  me->self.what = "several tasks (gather, settle or wait)";
  wt->gen = me->gen + 1;          /* the generation lasync_wait will give */
  return lasync_wait(L, &me->self, watch_cancel, watch_k, 0);
}

/* core.first_results(list, n): {n = n, first result of each item}, for
** gather once every item succeeded (one C loop instead of n method calls). */
static int l_first_results(lua_State *L) {
  lua_Integer i, n = luaL_checkinteger(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, n >= 0 && (lua_Unsigned)n <= lua_rawlen(L, 1), 2,
                "count must be 0 .. the length of the list");
  lua_createtable(L, (int)n, 1);
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (!lasync__push_first(L, -1))
      return luaL_error(L, "first_results: item %d has not succeeded", (int)i);
    lua_rawseti(L, -3, i);
    lua_pop(L, 1);
  }
  return 1;
}

int lasync__open_watch(lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", watch_gc}, {NULL, NULL}};
  lasync__class(L, "lasync.Watch", meta, NULL);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_watch);
  lua_setfield(L, -2, "watch");
  lua_pushcfunction(L, l_first_results);
  lua_setfield(L, -2, "first_results");
  return 0;
}
