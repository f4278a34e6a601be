/*
** embed.c: what an application embedding lasync needs beyond the core:
** running files and strings as tasks, C callbacks when a task is done,
** driving the loop (to the end, or one turn at a time), cancelling
** everything, wakers, the one door into a host from other threads, and
** freeing the host (host.c makes it).
**
** Wakers: each host has (once the first waker is made) one uv_async_t and
** a mutex-protected queue of sent wakers. A thread sends by queueing the
** waker and signalling the async handle while it holds the mutex; the loop
** thread takes the whole queue under the mutex and runs each waker's
** function outside it. The async handle is referenced only while wakers
** are outstanding, so an operation finished by a thread keeps the loop
** alive as a libuv request would, and an idle host does not.
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "core/core.h"

#define TASK_MT "lasync.Task"

typedef struct lasync_Remote {
  uv_async_t async;
  uv_mutex_t lock;
  lasync_Waker *head, *tail;      /* sent, not yet run: under lock */
  lasync_Host *H;
  int pending;                    /* made, not yet run: loop thread only */
} Remote;

struct lasync_Waker {
  lasync_Waker *next;
  Remote *R;
  lasync_WakerFn fn;
  void *arg;
};

/* ------------------------------------------------------ done callbacks */

typedef struct DoneCb {
  lasync_DoneFn fn;
  void *ud;
} DoneCb;

/* A done callback as Lua sees it: upvalue 1 is the DoneCb, argument 1 the
** finished Task object. Runs under the host's protected call. */
static int embed_done(lua_State *L) {
  DoneCb *cb = (DoneCb *)lua_touserdata(L, lua_upvalueindex(1));
  lasync_Task *t = lasync__checktask_arg(L, 1);
  lua_settop(L, 1);
  cb->fn(L, t, cb->ud);
  return 0;
}

void lasync_task_on_done(lua_State *L, int idx, lasync_DoneFn fn, void *ud) {
  lasync_Task *t = lasync__checktask_arg(L, idx);
  DoneCb *cb;
  idx = lua_absindex(L, idx);
  lasync__task_keep(L, idx, t);          /* fn may call lasync_task_results */
  cb = (DoneCb *)lua_newuserdatauv(L, sizeof *cb, 0);
  cb->fn = fn;
  cb->ud = ud;
  lua_pushcclosure(L, embed_done, 1);
  if (lasync_task_status(t) == LASYNC_PENDING) {
    lua_getfield(L, idx, "add_done_callback");
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -3);                /* the closure */
    lua_call(L, 2, 0);
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, lasync_task_results(L, t)); /* done: observe it, and call now */
  lua_pushvalue(L, idx);
  lasync__pcall(L, 1, 0);
}

lasync_Task *lasync_spawn_cb(lua_State *L, int nargs, lasync_DoneFn fn,
                             void *ud) {
  lasync_Task *t = lasync_spawn(L, nargs);
  lasync_task_on_done(L, -1, fn, ud);
  return t;
}

/* --------------------------------------------------------- running code */

/* The chunk (or load error) `st` left on top goes below the nargs
** arguments: spawned with them, or replacing them with the message. */
static lasync_Task *embed_spawn_loaded(lua_State *L, int st, int nargs) {
  lua_insert(L, -(nargs + 1));
  if (st != LUA_OK) {
    lua_pop(L, nargs);
    return NULL;
  }
  return lasync_spawn(L, nargs);
}

lasync_Task *lasync_spawn_file(lua_State *L, const char *path, int nargs) {
  return embed_spawn_loaded(L, luaL_loadfile(L, path), nargs);
}

lasync_Task *lasync_spawn_string(lua_State *L, const char *code,
                                 const char *chunkname, int nargs) {
  int st = luaL_loadbuffer(L, code, strlen(code), chunkname ? chunkname : code);
  return embed_spawn_loaded(L, st, nargs);
}

/* Replaces everything from idx up with the one value on top. */
static void embed_leave(lua_State *L, int idx) {
  lua_replace(L, idx);
  lua_settop(L, idx);
}

/* The done task t, whose object is at idx: replaces it with its results
** (LUA_OK) or with a message (LUA_ERRRUN). */
static int embed_outcome(lua_State *L, lasync_Task *t, int idx) {
  int status = lasync_task_status(t);
  lasync_task_results(L, t);             /* marks a failure as observed */
  if (status == LASYNC_DONE) {
    lua_remove(L, idx);
    return LUA_OK;
  }
  if (status == LASYNC_FAILED) lasync_task_traceback(L, idx);
  else lua_pushnil(L);                   /* cancelled: no traceback */
  if (!lua_isstring(L, -1)) {
    lua_pop(L, 1);
    luaL_tolstring(L, -1, NULL);
  }
  embed_leave(L, idx);
  return LUA_ERRRUN;
}

/* The task at idx waits and nothing can wake it: says where, cancels it
** and lets its cleanup run. */
static int embed_deadlock(lasync_Host *H, lasync_Task *t, int idx) {
  lua_State *L = H->L;
  lasync_task_stack(L, idx);
  lua_pushfstring(L, "deadlock: the task waits and nothing is left that "
                     "could wake it; it waits at:\n%s",
                  lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_remove(L, -2);
  lasync_cancel(L, t, "deadlock: nothing could wake the task");
  lasync_run_until(H, t);
  lua_pop(L, lasync_task_results(L, t)); /* observed: the message says it */
  embed_leave(L, idx);
  return LUA_ERRRUN;
}

/* Runs the chunk a load with status st left on H's stack top. */
static int embed_do(lasync_Host *H, int st) {
  lua_State *L = H->L;
  int idx = lua_gettop(L);
  lasync_Task *t;
  if (st != LUA_OK) return st;
  t = lasync_spawn(L, 0);                /* the Task object replaces the chunk */
  if (lasync_run_until(H, t) != 0) return embed_deadlock(H, t, idx);
  return embed_outcome(L, t, idx);
}

int lasync_dofile(lasync_Host *H, const char *path) {
  return embed_do(H, luaL_loadfile(H->L, path));
}

int lasync_dostring(lasync_Host *H, const char *code) {
  return embed_do(H, luaL_loadstring(H->L, code));
}

/* ----------------------------------------------------- driving the loop */

/* Runs the loop until t is done, or until nothing is left when t is NULL.
** Returns 1 when the loop ran out of work first. */
int lasync_run_until(lasync_Host *H, lasync_Task *t) {
  for (;;) {
    if (t ? task_done(t) : H->live == 0) return 0;
    if (uv_run(H->loop, UV_RUN_ONCE) == 0 && H->ready_head == NULL) {
      if (t ? task_done(t) : H->live == 0) return 0;
      return 1;
    }
  }
}

int lasync_run_once(lasync_Host *H) {
  uv_run(H->loop, UV_RUN_NOWAIT);
  return H->live;
}

int lasync_task_count(lasync_Host *H) {
  return H->live;
}

/* -------------------------------------------------------------- wakers */

static int waker_call(lua_State *L) {
  lasync_Waker *k = (lasync_Waker *)lua_touserdata(L, 1);
  lua_settop(L, 0);
  k->fn(L, k->arg);
  return 0;
}

/* Loop thread: runs a sent waker's function, protected, and frees it. */
static void remote_run(Remote *R, lasync_Waker *k) {
  lua_State *L = R->H->L;
  lua_pushcfunction(L, waker_call);
  lua_pushlightuserdata(L, k);
  lasync__pcall(L, 1, 0);
  free(k);
  if (--R->pending == 0) uv_unref((uv_handle_t *)&R->async);
}

static void remote_cb(uv_async_t *h) {
  Remote *R = (Remote *)h->data;
  lasync_Waker *k;
  uv_mutex_lock(&R->lock);
  k = R->head;
  R->head = R->tail = NULL;
  uv_mutex_unlock(&R->lock);
  while (k) {
    lasync_Waker *next = k->next;
    remote_run(R, k);
    k = next;
  }
}

static Remote *remote_get(lasync_Host *H) {
  Remote *R = H->remote;
  if (R) return R;
  if ((R = (Remote *)calloc(1, sizeof *R)) == NULL) return NULL;
  if (uv_mutex_init(&R->lock) != 0) {
    free(R);
    return NULL;
  }
  if (uv_async_init(H->loop, &R->async, remote_cb) != 0) {
    uv_mutex_destroy(&R->lock);
    free(R);
    return NULL;
  }
  R->async.data = R;
  R->H = H;
  uv_unref((uv_handle_t *)&R->async);    /* referenced while wakers are out */
  H->remote = R;
  return R;
}

lasync_Waker *lasync_waker_new(lasync_Host *H, lasync_WakerFn fn, void *arg) {
  Remote *R;
  lasync_Waker *k;
  if (H->closing || (R = remote_get(H)) == NULL) return NULL;
  if ((k = (lasync_Waker *)malloc(sizeof *k)) == NULL) return NULL;
  k->next = NULL;
  k->R = R;
  k->fn = fn;
  k->arg = arg;
  if (R->pending++ == 0) uv_ref((uv_handle_t *)&R->async);
  return k;
}

/* Any thread. The mutex is held across uv_async_send: the loop thread
** cannot see the waker (and so cannot run it, reach pending == 0 and close
** the handle) until this thread is done with R. */
void lasync_waker_send(lasync_Waker *k) {
  Remote *R = k->R;
  uv_mutex_lock(&R->lock);
  k->next = NULL;
  if (R->tail) R->tail->next = k;
  else R->head = k;
  R->tail = k;
  uv_async_send(&R->async);
  uv_mutex_unlock(&R->lock);
}

static void remote_close_cb(uv_handle_t *h) {
  Remote *R = (Remote *)h->data;
  uv_mutex_destroy(&R->lock);
  free(R);
}

/* lasync_free, after lasync__shutdown: no waker is outstanding (unless a
** finalizer made one since), so no thread touches R again. */
void lasync__remote_close(lasync_Host *H) {
  if (H->remote == NULL) return;
  while (H->remote->pending > 0) uv_run(H->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&H->remote->async, remote_close_cb);
  H->remote = NULL;
}

/* lasync_free's first step: cancels every task and runs the loop until no
** task is alive and no waker is outstanding. Tasks spawned meanwhile (by
** cleanup code or a waker's function) are cancelled in their turn. Stops
** early only if the tasks left wait for what nothing can deliver. */
void lasync__shutdown(lasync_Host *H) {
  for (;;) {
    if (H->live > 0) {
      lasync_cancel_all(H, "the program is ending");
      lasync_run_until(H, NULL);
    }
    if (H->remote == NULL || H->remote->pending == 0) return;
    while (H->remote->pending > 0) uv_run(H->loop, UV_RUN_ONCE);
  }
}

/* --------------------------------------------------------------- free */

/* On the application's loop, lasync_free does not run the loop: the host
** outlives it until the last of its three handles has closed. */
static void host_close_cb(uv_handle_t *h) {
  lasync_Host *H = (lasync_Host *)h->data;
  if (++H->closed == 3 && !H->own) free(H);
}

static void host_walk_close(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void lasync_free(lasync_Host *H) {
  if (H == NULL) return;
  lasync__shutdown(H);                   /* tasks end, wakers run: may run the loop */
  lasync__watchdog_stop(H);
  lasync__report_unobserved(H);
  H->closing = 1;
  lasync__remote_close(H);
  uv_timer_stop(&H->uvtimer);
  uv_idle_stop(&H->idle);
  H->ready_head = H->ready_tail = NULL;
  H->heap_len = 0;
  lasync__alloc_closing(&H->alloc);
  lua_close(H->L);                       /* finalizers close module handles */
  lasync__alloc_close(&H->alloc);
  free(H->heap);
  free(H->anchor_free);
  uv_close((uv_handle_t *)&H->idle, host_close_cb);
  uv_close((uv_handle_t *)&H->check, host_close_cb);
  uv_close((uv_handle_t *)&H->uvtimer, host_close_cb);
  if (H->own) {                          /* our loop: finish it here */
    uv_walk(H->loop, host_walk_close, NULL);
    uv_run(H->loop, UV_RUN_DEFAULT);
    uv_loop_close(H->loop);
    free(H);
  }
}
