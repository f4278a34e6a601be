/*
** worker.c: the Lua side of a pool's worker thread (pool.c runs the
** threads and the queues). Each worker owns a Lua state, made on its
** thread and reused for every job, with the standard libraries and a cache
** of the functions it has loaded, keyed by their bytecode (lasync_Proto),
** so a function sent many times is loaded once per worker.
**
** Interrupting a running job: the loop thread sets a count hook on the
** Lua thread that runs now. Lua documents lua_sethook as safe to call
** asynchronously (lua.c calls it from a signal handler), and jumps and
** loops re-read the hook flag, so even `while true do end` stops at its
** next instruction with an error that ends the job. The hook stays set
** (count 1) until the job has ended, so a pcall in the job cannot swallow
** it. Hooks belong to one Lua thread, and a job may run its loop inside a
** coroutine, so the worker's coroutine.resume and coroutine.wrap record
** which coroutine runs (w->running, under the pool's mutex: a coroutine
** being resumed cannot be collected, so the loop thread may hook it), hook
** it on entry if the job is being cancelled, and hook the resumer when it
** comes back. (lua_sethook also marks the target's active call frames;
** Lua's "reasonable assumptions" for doing that asynchronously hold here
** except in one window of a few instructions: the worker returning from a
** frame while a collection step frees that frame's CallInfo. No test has
** seen it; a signal to the worker thread would close it, at the cost of a
** process-wide handler.)
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "thread/worker.h"

static const char cache_key = 0;  /* registry: Proto* -> function */
static const char tb_key = 0;     /* registry: traceback of the last error */

#define WORKER(L) (*(lasync_Worker **)lua_getextraspace(L))

/* The count hook of an interrupted job: ends it with an error. */
static void worker_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_pushliteral(L, "lasync: job cancelled");
  lua_error(L);
}

static int cancelling(lasync_Worker *w) {
  return w->job && __atomic_load_n(&w->job->cancel, __ATOMIC_SEQ_CST);
}

void lasync__worker_interrupt(lasync_Worker *w) {
  lua_State *co = w->running ? w->running : w->L;
  if (co) lua_sethook(co, worker_hook, LUA_MASKCOUNT, 1);
}

void lasync__worker_reset(lasync_Worker *w) {
  if (w->L && lua_gethookmask(w->L)) lua_sethook(w->L, NULL, 0, 0);
  w->running = NULL;
}

/* ------------------------------------------------------------ coroutines */

/* co is about to run: record it; hook it if the job is being cancelled, or
** unhook it if an earlier interruption left it hooked. */
static void co_enter(lasync_Worker *w, lua_State *co) {
  uv_mutex_lock(w->mu);
  w->running = co;
  if (cancelling(w)) lua_sethook(co, worker_hook, LUA_MASKCOUNT, 1);
  else if (lua_gethookmask(co)) lua_sethook(co, NULL, 0, 0);
  uv_mutex_unlock(w->mu);
}

/* Back in L, the resumer. */
static void co_leave(lasync_Worker *w, lua_State *L) {
  uv_mutex_lock(w->mu);
  w->running = L == w->L ? NULL : L;
  if (cancelling(w)) lua_sethook(L, worker_hook, LUA_MASKCOUNT, 1);
  uv_mutex_unlock(w->mu);
}

/* Calls Lua's coroutine.resume (upvalue 1) on co with the values from
** index `first`; leaves ok, results... from index `first`. */
static void co_call(lua_State *L, lua_State *co, int first) {
  lasync_Worker *w = WORKER(L);
  int st;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, first);
  co_enter(w, co);
  st = lua_pcall(L, lua_gettop(L) - first, LUA_MULTRET, 0);
  co_leave(w, L);
  if (st != LUA_OK) lua_error(L);        /* out of memory */
}

static int co_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  co_call(L, co, 1);
  return lua_gettop(L);
}

/* The function coroutine.wrap returns (upvalue 2: the coroutine), raising
** errors as Lua's does. */
static int co_wrapped(lua_State *L) {
  lua_State *co = lua_tothread(L, lua_upvalueindex(2));
  int stat;
  lua_pushvalue(L, lua_upvalueindex(2));
  lua_insert(L, 1);
  co_call(L, co, 1);
  if (lua_toboolean(L, 1)) return lua_gettop(L) - 1;
  stat = lua_status(co);
  if (stat != LUA_OK && stat != LUA_YIELD) {  /* an error in co: close it */
    lua_resetthread(co);
    lua_xmove(co, L, 1);
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

static int co_wrap(lua_State *L) {
  lua_State *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, lua_upvalueindex(1));
  co = lua_newthread(L);
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushcclosure(L, co_wrapped, 2);
  return 1;
}

/* Replaces coroutine.resume and coroutine.wrap in L. */
static void co_install(lua_State *L) {
  lua_getglobal(L, "coroutine");
  lua_getfield(L, -1, "resume");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, co_resume, 1);
  lua_setfield(L, -3, "resume");
  lua_pushcclosure(L, co_wrap, 1);
  lua_setfield(L, -2, "wrap");
  lua_pop(L, 1);
}

/* ----------------------------------------------------------------- state */

static int no_exit(lua_State *L) {
  return luaL_error(L, "os.exit is not allowed in %s: it would end the whole process "
                       "from a worker thread, without its cleanup (return or raise an "
                       "error instead)", lua_tostring(L, lua_upvalueindex(1)));
}

void lasync__forbid_exit(lua_State *L, const char *where) {
  lua_getglobal(L, "os");
  if (lua_istable(L, -1)) {
    lua_pushstring(L, where);
    lua_pushcclosure(L, no_exit, 1);
    lua_setfield(L, -2, "exit");
  }
  lua_pop(L, 1);
}

static int worker_init(lua_State *L) {
  luaL_openlibs(L);
  lasync__forbid_exit(L, "a job on a worker thread (to_thread, executor)");
  co_install(L);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  return 0;
}

lua_State *lasync__worker_open(lasync_Worker *w) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  WORKER(L) = w;                         /* coroutines copy it */
  lua_pushcfunction(L, worker_init);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  return L;
}

static void worker_clear_cache(lasync_Worker *w) {
  while (w->ncache > 0) lasync__proto_release(w->cache[--w->ncache]);
}

void lasync__worker_close(lasync_Worker *w, lua_State *L) {
  worker_clear_cache(w);
  if (L) lua_close(L);
}

/* Pushes the function of p, loaded once per worker. */
static void worker_function(lua_State *L, lasync_Worker *w, lasync_Proto *p) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &cache_key);
  if (lua_rawgetp(L, -1, p) == LUA_TFUNCTION) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  if (w->ncache == WORKER_CACHE) {       /* full: start over */
    worker_clear_cache(w);
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &cache_key);
  }
  if (lasync__proto_load(L, p) != LUA_OK) lua_error(L);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, p);
  lasync__proto_retain(p);
  w->cache[w->ncache++] = p;
  lua_remove(L, -2);
}

/* ------------------------------------------------------------------ jobs */

static int worker_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key);
  lua_settop(L, 1);
  return 1;
}

/* Protected: 1 = the job. Runs it and encodes its results. */
static int job_body(lua_State *L) {
  lasync_Job *j = (lasync_Job *)lua_touserdata(L, 1);
  int n;
  worker_function(L, WORKER(L), j->proto);
  n = lasync__decode(L, &j->args);
  if (n < 0) return lua_error(L);
  lua_call(L, n, LUA_MULTRET);
  if (!lasync__encode(L, 2, lua_gettop(L) - 1, &j->res, "results[%d]", "from a thread"))
    return lua_error(L);
  return 0;
}

/* Protected: 1 = an error value, 2 = the job. Encodes the value, or its
** string form when it cannot cross. */
static int job_error_body(lua_State *L) {
  lasync_Job *j = (lasync_Job *)lua_touserdata(L, 2);
  if (lasync__encode(L, 1, 1, &j->res, "error", "from a thread")) return 0;
  luaL_tolstring(L, 1, NULL);
  if (!lasync__encode(L, -1, 1, &j->res, "error", "from a thread")) lua_error(L);
  return 0;
}

/* The job failed with the error on L's top: keep it and the traceback. */
static void job_error(lua_State *L, lasync_Job *j) {
  size_t len;
  const char *tb;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &tb_key);
  tb = lua_tolstring(L, -1, &len);
  if (tb && (j->tb = (char *)malloc(len + 1)) != NULL) memcpy(j->tb, tb, len + 1);
  lua_pop(L, 1);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &tb_key);
  lua_pushcfunction(L, job_error_body);
  lua_insert(L, -2);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    lua_pushliteral(L, "(error object cannot be shown)");
    lasync__encode(L, -1, 1, &j->res, "error", "from a thread");
  }
}

int lasync__worker_run(lasync_Worker *w, lua_State *L, lasync_Job *j) {
  int result;
  if (L == NULL) return JR_ERROR;        /* no state: out of memory (res empty) */
  (void)w;
  lua_settop(L, 0);
  lua_pushcfunction(L, worker_msgh);
  lua_pushcfunction(L, job_body);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 0, 1) == LUA_OK) result = JR_OK;
  else if (__atomic_load_n(&j->cancel, __ATOMIC_SEQ_CST)) result = JR_CANCELLED;
  else {
    result = JR_ERROR;
    job_error(L, j);
  }
  lua_settop(L, 0);
  return result;
}
