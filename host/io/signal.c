/*
** signal.c: require "async.core.signal", the C half of async.signal:
** wait(sig) suspends the task until the signal arrives; on(sig, fn) runs
** fn(name) as a new task at each arrival until the handler is removed;
** kill(pid, sig). Also the signal names the I/O modules share.
**
** Each wait and each handler has a uv_signal_t of its own (libuv delivers
** a signal to every handle watching it, so they coexist with each other
** and with the CLI's SIGINT handler). A wait's handle is one-shot and is
** closed when it fires or when the wait is cancelled. A handler is held
** by the registry until removed: dropping its object does not remove it.
*/
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include "io/io.h"

#define HANDLER_MT "lasync.SignalHandler"

static const struct { const char *name; int num; } sigs[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT}, {"SIGILL", SIGILL},
  {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT}, {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE},
  {"SIGKILL", SIGKILL}, {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM}, {"SIGCHLD", SIGCHLD},
  {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP}, {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN},
  {"SIGTTOU", SIGTTOU}, {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH}, {"SIGIO", SIGIO},
  {"SIGSYS", SIGSYS}, {NULL, 0}
};

const char *lasync__signame(int signum) {
  int i;
  for (i = 0; sigs[i].name; i++) if (sigs[i].num == signum) return sigs[i].name;
  return NULL;
}

int lasync__checksignal(lua_State *L, int arg) {
  const char *s;
  int i;
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, arg);
    luaL_argcheck(L, n >= 1 && n <= 64, arg, "not a signal number");
    return (int)n;
  }
  s = luaL_checkstring(L, arg);
  for (i = 0; sigs[i].name; i++)
    if (strcmp(s, sigs[i].name) == 0 || strcmp(s, sigs[i].name + 3) == 0) return sigs[i].num;
  return luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'", s));
}

static void push_signame(lua_State *L, int signum) {
  const char *name = lasync__signame(signum);
  if (name) lua_pushstring(L, name);
  else lua_pushinteger(L, signum);
}

static void signal_close_cb(uv_handle_t *h) { free(h); }

/* ---------------------------------------------------------------- wait */

typedef struct SigWait {
  uv_signal_t h;                  /* first: a handle pointer is the SigWait */
  lasync_Wait wait;
} SigWait;

static void on_wait_signal(uv_signal_t *h, int signum) {
  SigWait *sw = (SigWait *)h;
  (void)signum;
  lasync_wake(&sw->wait);
  uv_close((uv_handle_t *)h, signal_close_cb);
}

static void wait_cancel(lasync_Wait *w) {
  uv_close((uv_handle_t *)&container_of(w, SigWait, wait)->h, signal_close_cb);
}

static int wait_k(lua_State *L, int status, lua_KContext signum) {
  (void)status;
  push_signame(L, (int)signum);
  return 1;
}

/* wait(sig): the signal's name, once it has arrived. */
static int l_wait(lua_State *L) {
  int sig = lasync__checksignal(L, 1), r;
  SigWait *sw;
  lasync_checktask(L, "signal.wait");
  if ((sw = (SigWait *)calloc(1, sizeof *sw)) == NULL) return luaL_error(L, "not enough memory");
  uv_signal_init(lasync_loop(lasync_host(L)), &sw->h);
  if ((r = uv_signal_start_oneshot(&sw->h, on_wait_signal, sig)) != 0) {
    uv_close((uv_handle_t *)&sw->h, signal_close_cb);
    return lasync__ioerror(L, r, "signal.wait", "address", lua_tostring(L, 1));
  }
  lua_settop(L, 0);
  sw->wait.what = "signal.wait";
  return lasync_wait(L, &sw->wait, wait_cancel, wait_k, sig);
}

/* ------------------------------------------------------------- handlers */

typedef struct SigHandler {
  uv_signal_t h;
  lasync_Host *H;
  int fnref, selfref;             /* the function; the object's anchor */
  int signum;
} SigHandler;

/* Spawns the handler's task: protected, as it allocates. */
static int handler_spawn(lua_State *L) {
  SigHandler *sh = (SigHandler *)lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sh->fnref);
  push_signame(L, sh->signum);
  lasync__spawn_on(L, sh->H, 1);          /* not lasync_spawn: no C code holds
                                            the task, so it lets go of its
                                            thread when done */
  return 0;
}

static void on_handler_signal(uv_signal_t *h, int signum) {
  SigHandler *sh = (SigHandler *)h;
  lua_State *L = lasync_state(sh->H);
  (void)signum;
  lua_pushcfunction(L, handler_spawn);
  lua_pushlightuserdata(L, sh);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_pushfstring(L, "lasync: signal handler not started: %s", lua_tostring(L, -1));
    lasync__report(sh->H, lua_tostring(L, -1));
    lua_pop(L, 2);
  }
}

static SigHandler **handler_box(lua_State *L) {
  return (SigHandler **)luaL_checkudata(L, 1, HANDLER_MT);
}

/* handler:remove(): no more tasks for this signal; true if it was active. */
static int handler_remove(lua_State *L) {
  SigHandler **box = handler_box(L), *sh = *box;
  if (sh == NULL) { lua_pushboolean(L, 0); return 1; }
  *box = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, sh->fnref);
  luaL_unref(L, LUA_REGISTRYINDEX, sh->selfref);
  uv_close((uv_handle_t *)&sh->h, signal_close_cb);
  lua_pushboolean(L, 1);
  return 1;
}

static int handler_active(lua_State *L) {
  lua_pushboolean(L, *handler_box(L) != NULL);
  return 1;
}

static int handler_tostring(lua_State *L) {
  SigHandler *sh = *handler_box(L);
  if (sh == NULL) lua_pushliteral(L, "SignalHandler<removed>");
  else {
    lua_pushliteral(L, "SignalHandler<");
    push_signame(L, sh->signum);
    lua_pushliteral(L, ">");
    lua_concat(L, 3);
  }
  return 1;
}

/* on(sig, fn): runs fn(name) as a task each time sig arrives; returns the
** handler (remove() stops it). */
static int l_on(lua_State *L) {
  int sig = lasync__checksignal(L, 1), r;
  SigHandler **box, *sh;
  if (lua_type(L, 2) != LUA_TFUNCTION && !luaL_getmetafield(L, 2, "__call"))
    luaL_typeerror(L, 2, "function");
  lua_settop(L, 2);
  box = (SigHandler **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, HANDLER_MT);
  if ((sh = (SigHandler *)calloc(1, sizeof *sh)) == NULL) return luaL_error(L, "not enough memory");
  sh->H = lasync_host(L);
  sh->signum = sig;
  uv_signal_init(lasync_loop(sh->H), &sh->h);
  if ((r = uv_signal_start(&sh->h, on_handler_signal, sig)) != 0) {
    uv_close((uv_handle_t *)&sh->h, signal_close_cb);
    return lasync__ioerror(L, r, "signal.on", "address", lua_tostring(L, 1));
  }
  lua_pushvalue(L, 2);
  sh->fnref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 3);
  sh->selfref = luaL_ref(L, LUA_REGISTRYINDEX);
  *box = sh;
  return 1;
}

/* kill(pid, sig): sends a signal to a process (pid 0: our process group). */
static int l_kill(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  int sig = lasync__checksignal(L, 2);
  int r = uv_kill((int)pid, sig);
  if (r) return lasync__ioerror(L, r, "kill", NULL, NULL);
  return 0;
}

static int l_getpid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_os_getpid());
  return 1;
}

static const luaL_Reg handler_methods[] = {
  {"remove", handler_remove}, {"active", handler_active}, {NULL, NULL}
};

static const luaL_Reg signal_funcs[] = {
  {"wait", l_wait}, {"on", l_on}, {"kill", l_kill}, {"getpid", l_getpid}, {NULL, NULL}
};

int lasync__luaopen_signal(lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", handler_remove}, {"__tostring", handler_tostring}, {NULL, NULL}
  };
  lasync__class(L, HANDLER_MT, meta, handler_methods);
  lua_pop(L, 1);
  luaL_newlib(L, signal_funcs);
  return 1;
}
