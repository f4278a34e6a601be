/*
** executor.c: the native module "async.core.executor": async.to_thread,
** executor objects (run, submit, close, stats) and lasync_work, the C side
** (lasync.h). The pool mechanism is pool.c; executor:map and the public
** module are lua/async/executor.lua.
**
** A job's function crosses as bytecode (copy.c, cached per host and per
** worker), its arguments and results as encoded copies. to_thread waits
** on the job itself: the continuation decodes the results in the task, so
** a cancelled job costs the loop nothing when it comes back. submit hangs
** the job on an async.future: the job's wait joins the future's awaiters
** as a watcher, so settling the future first (future:cancel(), or the
** cancellation of a task awaiting it) stops the job at once.
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "thread/worker.h"

#define EXECUTOR_MT "lasync.Executor"
#define MAX_WORKERS 1024

typedef struct Executor {
  lasync_Pool *pool;              /* NULL once destroyed */
  int is_default;
} Executor;

static const char default_key = 0;  /* registry: the host's default Executor */

static int ex_gc(lua_State *L);
static int ex_tostring(lua_State *L);
static int ex_close_mm(lua_State *L);
static const luaL_Reg ex_methods[];

static void ex_metatable(lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", ex_gc}, {"__close", ex_close_mm}, {"__tostring", ex_tostring}, {NULL, NULL}
  };
  lasync__class(L, EXECUTOR_MT, meta, ex_methods);
}

/* Pushes a new Executor with `size` workers. */
static Executor *ex_new(lua_State *L, int size) {
  char err[128];
  Executor *e = (Executor *)lua_newuserdatauv(L, sizeof *e, 0);
  e->pool = NULL;
  e->is_default = 0;
  ex_metatable(L);
  lua_setmetatable(L, -2);
  e->pool = lasync__pool_new(lasync_host(L), size, err, sizeof err);
  if (e->pool == NULL) luaL_error(L, "%s", err);
  return e;
}

static int default_size(void) {
  unsigned n = uv_available_parallelism();
  return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

/* Pushes the host's default Executor, made on first use. */
static Executor *ex_default(lua_State *L) {
  Executor *e;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &default_key) == LUA_TUSERDATA)
    return (Executor *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  e = ex_new(L, default_size());
  e->is_default = 1;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &default_key);
  return e;
}

lasync_Pool *lasync__default_pool(lua_State *L) {
  Executor *e = ex_default(L);
  lua_pop(L, 1);
  return e->pool;
}

static lasync_Pool *ex_pool(lua_State *L, int i, const char *what) {
  Executor *e = (Executor *)luaL_checkudata(L, i, EXECUTOR_MT);
  if (e->pool == NULL || lasync__pool_closed(e->pool))
    luaL_error(L, "%s: the executor is closed", what);
  return e->pool;
}

/* ---------------------------------------------------------------- jobs */

/* A Lua job of the function at index fn with the nargs values above it as
** its arguments. */
static lasync_Job *lua_job(lua_State *L, lasync_Pool *p, int fn, int nargs,
                           const char *what) {
  lasync_Proto *proto;
  lasync_Job *j;
  luaL_checktype(L, fn, LUA_TFUNCTION);
  lua_pushfstring(L, "%s: fn", what);
  proto = lasync__proto_of(L, fn, lua_tostring(L, -1));
  lua_pop(L, 1);
  if ((j = lasync__job_new(p, JOB_LUA)) == NULL) {
    lasync__proto_release(proto);
    luaL_error(L, "%s: not enough memory", what);
  }
  j->proto = proto;
  if (!lasync__encode(L, fn + 1, nargs, &j->args, "args[%d]", "to a thread")) {
    lasync__job_free(j);
    luaL_error(L, "%s: %s", what, lua_tostring(L, -1));  /* names the value */
  }
  return j;
}

/* Queues j or frees it and raises. */
static void job_submit(lua_State *L, lasync_Job *j, int owner, const char *what) {
  int rc = lasync__pool_submit(j->pool, j, L, owner);
  if (rc == 0) return;
  lasync__job_free(j);
  if (rc == -1) luaL_error(L, "%s: the executor is closed", what);
  luaL_error(L, "%s: cannot start a worker thread", what);
}

/* A job that ended without reaching its waiter (it was cancelled, or the
** host is going away). */
static void job_drop(lasync_Job *j) {
  if (j->kind == JOB_C) j->after(NULL, j->data);
  lasync__job_free(j);
}

/* Pushes the error of a failed or cancelled Lua job and frees it. */
static void job_push_error(lua_State *L, lasync_Job *j) {
  if (j->result == JR_CANCELLED) lasync__push_cancelled(L, "the executor was closed");
  else if (j->res.n == 0) lua_pushliteral(L, "a worker thread could not make its Lua state");
  else if (lasync__decode(L, &j->res) >= 0 && j->tb)
    lasync__task_set_cause(L, -1, "a worker thread", j->tb);
  lasync__job_free(j);
}

/* ------------------------------------------------ waiting in the task */

static void wait_cancel(lasync_Wait *w) {
  lasync__pool_cancel(container_of(w, lasync_Job, wait));
}

static void wait_finish(lasync_Job *j) {
  if (!lasync__pool_live(j->pool) || !lasync_wake(&j->wait)) job_drop(j);
}

/* Continuation in the task: the job is back. */
static int run_k(lua_State *L, int status, lua_KContext ctx) {
  lasync_Job *j = (lasync_Job *)ctx;
  int n;
  (void)status;
  if (j->kind == JOB_C) {
    lasync_AfterWorkFn after = j->after;
    void *data = j->data;
    int cancelled = j->result == JR_CANCELLED;
    lasync__job_free(j);
    if (!cancelled) return after(L, data);
    after(NULL, data);
    lasync__push_cancelled(L, "the executor was closed");
    return lua_error(L);
  }
  if (j->result != JR_OK) {
    job_push_error(L, j);
    return lua_error(L);
  }
  n = lasync__decode(L, &j->res);
  lasync__job_free(j);
  return n < 0 ? lua_error(L) : n;
}

static int pool_run(lua_State *L, lasync_Pool *p, int fn, int owner, const char *what) {
  lasync_Job *j;
  lasync_checktask(L, what);
  j = lua_job(L, p, fn, lua_gettop(L) - fn, what);
  j->finish = wait_finish;
  job_submit(L, j, owner, what);
  lua_settop(L, 0);
  j->wait.what = "to_thread";
  return lasync_wait(L, &j->wait, wait_cancel, run_k, (lua_KContext)j);
}

/* async.to_thread(fn, ...): fn(...) on a worker of the default executor. */
static int l_to_thread(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  return pool_run(L, lasync__default_pool(L), 1, 0, "to_thread");
}

/* executor:run(fn, ...): the same on this executor. */
static int ex_run(lua_State *L) {
  return pool_run(L, ex_pool(L, 1, "run"), 2, 1, "run");
}

/* ---------------------------------------------------- settling futures */

/* The future settled: if not by the job, someone cancelled it. */
static void future_notify(lasync_Wait *w) {
  lasync_Job *j = container_of(w, lasync_Job, wait);
  if (j->finished) return;
  j->settled = 1;
  lasync__pool_cancel(j);
}

/* Protected: 1 = the job. Settles its future with the outcome. */
static int future_settle(lua_State *L) {
  lasync_Job *j = (lasync_Job *)lua_touserdata(L, 1);
  int n;
  lua_rawgeti(L, LUA_REGISTRYINDEX, j->ref);
  if (j->result == JR_CANCELLED) {
    lua_getfield(L, 2, "cancel");
    lua_pushvalue(L, 2);
    lua_pushliteral(L, "the executor was closed");
    lua_call(L, 2, 0);
    return 0;
  }
  lua_getfield(L, 2, j->result == JR_OK ? "resolve" : "reject");
  lua_pushvalue(L, 2);
  if (j->result == JR_OK) {
    n = lasync__decode(L, &j->res);
    if (n < 0) lua_error(L);
  }
  else if (j->res.n == 0) {
    lua_pushliteral(L, "a worker thread could not make its Lua state");
    n = 1;
  }
  else if ((n = lasync__decode(L, &j->res)) < 0) lua_error(L);
  lua_call(L, n + 1, 0);
  return 0;
}

static void future_finish(lasync_Job *j) {
  lasync_waitlist_remove(&j->wait);
  if (lasync__pool_live(j->pool)) {
    lua_State *L = lasync_state(lasync__pool_host(j->pool));
    if (!j->settled) {
      lua_pushcfunction(L, future_settle);
      lua_pushlightuserdata(L, j);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK) {  /* out of memory: reject with that */
        lua_rawgeti(L, LUA_REGISTRYINDEX, j->ref);
        lua_getfield(L, -1, "reject");
        lua_insert(L, -3);
        lua_insert(L, -2);
        lasync__pcall(L, 2, 0);
      }
    }
    luaL_unref(L, LUA_REGISTRYINDEX, j->ref);
  }
  lasync__job_free(j);
}

/* executor:submit(fn, ...): a future of fn(...)'s results on a worker. */
static int ex_submit(lua_State *L) {
  lasync_Pool *p = ex_pool(L, 1, "submit");
  lasync_WaitList *awaiters;
  lasync_Job *j;
  int failed, fut = lua_gettop(L) + 1;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));  /* async.future */
  lua_call(L, 0, 1);                       /* made first: it may raise */
  j = lua_job(L, p, 2, fut - 3, "submit");
  j->finish = future_finish;
  lua_pushvalue(L, fut);
  j->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  awaiters = lasync__awaiters(L, fut, &failed);
  j->wait.data = j;
  j->wait.cancel = future_notify;
  lasync_waitlist_push(awaiters, &j->wait);
  if (lasync__pool_submit(p, j, L, 1) != 0) {
    lasync_waitlist_remove(&j->wait);
    luaL_unref(L, LUA_REGISTRYINDEX, j->ref);
    lasync__job_free(j);
    return luaL_error(L, "submit: the executor is closed or cannot start a thread");
  }
  lua_settop(L, fut);
  return 1;
}

/* ----------------------------------------------------- closing, stats */

/* executor:close([wait]): takes no more jobs. wait (default true): lets
** the submitted jobs finish and waits for them and the worker threads.
** wait false: cancels the queued jobs, interrupts the running ones and
** returns at once; the threads exit in the background. */
static int ex_close(lua_State *L) {
  Executor *e = (Executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  int wait = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
  if (e->is_default) return luaL_error(L, "close: the default executor cannot be closed");
  if (e->pool == NULL) return 0;
  if (wait) lasync_checktask(L, "close");
  if (!lasync__pool_closed(e->pool)) lasync__pool_close(e->pool, !wait);
  lua_settop(L, 0);
  return wait ? lasync__pool_wait_joined(L, e->pool) : 0;
}

/* `local ex <close> = async.executor{...}`: at the end of the block,
** close; when the block ends with an error, cancel what is in flight (as a
** task scope cancels its children). Waits for the threads when the task
** can wait. */
static int ex_close_mm(lua_State *L) {
  Executor *e = (Executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  int abort = !lua_isnil(L, 2);
  if (e->is_default || e->pool == NULL) return 0;
  if (!lasync__pool_closed(e->pool)) lasync__pool_close(e->pool, abort);
  lua_settop(L, 0);
  if (lasync__task_of(L) == NULL || !lua_isyieldable(L)) return 0;
  return lasync__pool_wait_joined(L, e->pool);
}

static int ex_gc(lua_State *L) {
  Executor *e = (Executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  if (e->pool) lasync__pool_destroy(e->pool);
  e->pool = NULL;
  return 0;
}

static int ex_stats(lua_State *L) {
  Executor *e = (Executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  lasync_PoolStats s;
  memset(&s, 0, sizeof s);
  s.closed = 1;
  if (e->pool) lasync__pool_stats(e->pool, &s);
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, s.size);
  lua_setfield(L, -2, "workers");
  lua_pushinteger(L, s.threads);
  lua_setfield(L, -2, "threads");
  lua_pushinteger(L, s.idle);
  lua_setfield(L, -2, "idle");
  lua_pushinteger(L, s.queued);
  lua_setfield(L, -2, "queued");
  lua_pushinteger(L, s.running);
  lua_setfield(L, -2, "running");
  lua_pushinteger(L, s.inflight);
  lua_setfield(L, -2, "pending");
  lua_pushboolean(L, s.closed);
  lua_setfield(L, -2, "closed");
  return 1;
}

static int ex_tostring(lua_State *L) {
  Executor *e = (Executor *)luaL_checkudata(L, 1, EXECUTOR_MT);
  lasync_PoolStats s;
  if (e->pool == NULL) {
    lua_pushliteral(L, "Executor<closed>");
    return 1;
  }
  lasync__pool_stats(e->pool, &s);
  lua_pushfstring(L, "Executor<%d workers%s>", s.size, s.closed ? ", closed" : "");
  return 1;
}

/* async.executor{workers = N}: N defaults to the number of cores. */
static int l_executor(lua_State *L) {
  int n = default_size();
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      lua_pop(L, 1);
      if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), "workers") != 0)
        return luaL_error(L, "executor: unknown option '%s'", luaL_tolstring(L, -1, NULL));
    }
    if (lua_getfield(L, 1, "workers") != LUA_TNIL) {
      lua_Integer w;
      if (!lua_isinteger(L, -1))
        return luaL_error(L, "executor: workers must be an integer (got %s)", luaL_typename(L, -1));
      w = lua_tointeger(L, -1);
      if (w < 1 || w > MAX_WORKERS)
        return luaL_error(L, "executor: workers must be 1 to %d (got %I)", MAX_WORKERS, (LUAI_UACINT)w);
      n = (int)w;
    }
  }
  ex_new(L, n);
  return 1;
}

/* core.executor.default(): the executor behind to_thread and lasync_work. */
static int l_default(lua_State *L) {
  ex_default(L);
  return 1;
}

/* ------------------------------------------------------------ the C side */

static int work_prepare(lua_State *L) {
  lua_pushlightuserdata(L, lasync__default_pool(L));
  return 1;
}

int lasync_work(lua_State *L, lasync_WorkFn work, lasync_AfterWorkFn after, void *data) {
  lasync_Task *t = lasync__task_of(L);
  lasync_Pool *p = NULL;
  lasync_Job *j = NULL;
  int rc = -1;
  if (t != NULL && lua_isyieldable(L) && !lasync__task_cancelling(t)) {
    lua_pushcfunction(L, work_prepare);
    if (lua_pcall(L, 0, 1, 0) == LUA_OK) p = (lasync_Pool *)lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  if (p && (j = lasync__job_new(p, JOB_C)) != NULL) {
    j->work = work;
    j->after = after;
    j->data = data;
    j->finish = wait_finish;
    if ((rc = lasync__pool_submit(p, j, L, 0)) != 0) lasync__job_free(j);
  }
  if (rc != 0) {
    after(NULL, data);
    lasync_checktask(L, "lasync_work");  /* raises its own error, if any */
    return luaL_error(L, "lasync_work: %s", p ? "cannot start a worker thread" : "no executor");
  }
  j->wait.what = "executor job";
  return lasync_wait(L, &j->wait, wait_cancel, run_k, (lua_KContext)j);
}

/* ---------------------------------------------------------------- module */

static const luaL_Reg ex_methods[] = {
  {"run", ex_run}, {"submit", NULL}, {"close", ex_close}, {"stats", ex_stats},
  {NULL, NULL}
};

int lasync__luaopen_executor(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async.core");
  lua_call(L, 1, 1);
  ex_metatable(L);
  lua_getfield(L, -1, "__index");          /* submit makes futures */
  lua_getfield(L, -3, "future");
  lua_pushcclosure(L, ex_submit, 1);
  lua_setfield(L, -2, "submit");
  lua_pop(L, 2);
  lua_createtable(L, 0, 4);
  lua_pushcfunction(L, l_to_thread);
  lua_setfield(L, -2, "to_thread");
  lua_pushcfunction(L, l_executor);
  lua_setfield(L, -2, "executor");
  lua_pushcfunction(L, l_default);
  lua_setfield(L, -2, "default");
  luaL_getmetatable(L, EXECUTOR_MT);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "Executor");
  lua_pop(L, 1);
  return 1;
}
