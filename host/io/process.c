/*
** process.c: require "async.core.process", the C half of async.process:
** spawning a child with its standard streams as pipes (Streams), inherited
** or ignored; waiting for its exit; signalling it. lua/async/process.lua
** builds the Process object and run() on top.
**
** Zombies: libuv reaps a child (on SIGCHLD) only while its uv_process_t is
** open, so a handle whose child still runs is never closed early. Closing
** or collecting the Lua object of a running child detaches it: the handle
** stays open until the exit callback, which closes it. Whatever is still
** running when the Lua state closes is closed then (the program is ending;
** its children are reparented, not left as our zombies).
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lauxlib.h>
#include "io/io.h"

#define PROC_MT "lasync.Proc"
#define MAX_ARGS 4096

extern char **environ;

typedef struct Proc {
  uv_process_t h;                 /* first: a handle pointer is the Proc */
  struct Proc **box;              /* the Lua object's slot, or NULL: detached */
  struct Proc *next, *prev;       /* the list of running children */
  lasync_WaitList waiters;        /* tasks in wait() (their self waits) */
  int exited, termsig;
  int64_t status;
} Proc;

static const char list_key = 0;   /* registry: the list head (a userdata) */

/* ------------------------------------------------------- the running list */

typedef struct ProcList { Proc *head; } ProcList;

static void list_unlink(ProcList *pl, Proc *p) {
  if (p->prev) p->prev->next = p->next;
  else if (pl && pl->head == p) pl->head = p->next;
  if (p->next) p->next->prev = p->prev;
  p->next = p->prev = NULL;
}

static void proc_close_cb(uv_handle_t *h) { free(h); }

/* At lua_close: close the handles of children still running. */
static int list_gc(lua_State *L) {
  ProcList *pl = (ProcList *)lua_touserdata(L, 1);
  while (pl->head) {
    Proc *p = pl->head;
    list_unlink(pl, p);
    if (p->box) *p->box = NULL;
    uv_close((uv_handle_t *)&p->h, proc_close_cb);
  }
  return 0;
}

static ProcList *list_get(lua_State *L) {
  return (ProcList *)lasync__host_singleton(L, &list_key, sizeof(ProcList), list_gc);
}

/* ------------------------------------------------------------ exit, wait */

static void on_exit_cb(uv_process_t *h, int64_t status, int termsig) {
  Proc *p = (Proc *)h;
  lasync_Wait *w;
  p->exited = 1;
  p->status = status;
  p->termsig = termsig;
  list_unlink((ProcList *)h->data, p);
  while ((w = lasync_waitlist_pop(&p->waiters)) != NULL) lasync_wake(w);
  if (p->box == NULL) uv_close((uv_handle_t *)h, proc_close_cb);  /* detached */
}

static Proc **proc_box(lua_State *L) { return (Proc **)luaL_checkudata(L, 1, PROC_MT); }

static void list_cancel(lasync_Wait *w) { lasync_waitlist_remove(w); }

/* Pushes code, signal name (or nil) of an exited child. */
static int push_exit(lua_State *L, Proc *p) {
  const char *name = p->termsig ? lasync__signame(p->termsig) : NULL;
  lua_pushinteger(L, (lua_Integer)p->status);
  if (name) lua_pushstring(L, name);
  else if (p->termsig) lua_pushinteger(L, p->termsig);
  else lua_pushnil(L);
  return 2;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx);

/* proc:wait(): code, signal once the child has exited. */
static int wait_step(lua_State *L, int first) {
  Proc *p = *proc_box(L);
  lasync_Task *t;
  if (p == NULL) {
    if (first) return lasync__closed_error(L, "wait", "process handle");
    return lasync__closed_waiting_error(L, "wait", "process handle");
  }
  if (p->exited) return push_exit(L, p);
  t = lasync_checktask(L, "wait");
  lasync_Wait *self = lasync_task_wait(t);
  self->data = p;
  lasync_waitlist_push(&p->waiters, self);
  lua_settop(L, 1);
  self->what = "process wait";
  return lasync_wait(L, self, list_cancel, wait_k, 0);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return wait_step(L, 0);
}

static int proc_wait(lua_State *L) { return wait_step(L, 1); }

/* proc:status(): nil while running, else code, signal. */
static int proc_status(lua_State *L) {
  Proc *p = *proc_box(L);
  if (p == NULL || !p->exited) return 0;
  return push_exit(L, p);
}

/* proc:kill([sig]): sends sig (default SIGTERM); false if it had exited. */
static int proc_kill(lua_State *L) {
  Proc *p = *proc_box(L);
  int sig, r;
  /* Signal 0 sends nothing: it checks that the child is still there. */
  if (lua_type(L, 2) == LUA_TNUMBER && lua_tointeger(L, 2) == 0 && lua_isinteger(L, 2)) sig = 0;
  else sig = lua_isnoneornil(L, 2) ? SIGTERM : lasync__checksignal(L, 2);
  if (p == NULL) return lasync__closed_error(L, "kill", "process handle");
  if (p->exited) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if ((r = uv_process_kill(&p->h, sig)) != 0) {
    if (r == UV_ESRCH) { lua_pushboolean(L, 0); return 1; }
    return lasync__ioerror(L, r, "kill", NULL, NULL);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* proc:close(): lets go of the child. A running one is detached: its
** handle closes when it exits (so it is reaped). Waiters raise ECANCELED. */
static int proc_close(lua_State *L) {
  Proc *p = *(Proc **)luaL_checkudata(L, 1, PROC_MT);
  lasync_Wait *w;
  if (p == NULL) return 0;
  *p->box = NULL;
  p->box = NULL;
  while ((w = lasync_waitlist_pop(&p->waiters)) != NULL) lasync_wake(w);
  if (p->exited) uv_close((uv_handle_t *)&p->h, proc_close_cb);
  return 0;
}

/* ----------------------------------------------------------------- spawn */

/* The string at the top (a number converts), or an error naming what:
** a NUL byte would silently cut it short in the child's exec. */
static const char *spawn_string(lua_State *L, const char *what, lua_Integer i) {
  size_t len;
  const char *p = lua_tolstring(L, -1, &len);
  if (memchr(p, '\0', len)) luaL_error(L, "spawn: %s %I contains a NUL byte", what, (LUAI_UACINT)i);
  return p;
}

/* The argument list from the sequence at idx: strings only. */
static char **spawn_args(lua_State *L, int idx, int *n) {
  lua_Integer i, len = luaL_len(L, idx);
  char **args;
  if (len < 1) luaL_error(L, "spawn: the command is missing (spawn{\"cmd\", \"arg\", ...})");
  if (len > MAX_ARGS) luaL_error(L, "spawn: too many arguments");
  args = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(len + 1), 0);
  for (i = 1; i <= len; i++) {
    if (lua_geti(L, idx, i) != LUA_TSTRING && !lua_isnumber(L, -1))
      luaL_error(L, "spawn: argument %d is a %s (strings expected)", (int)i, luaL_typename(L, -1));
    args[i - 1] = (char *)spawn_string(L, "argument", i);
    lua_pop(L, 1);                        /* the table keeps the string */
  }
  args[len] = NULL;
  *n = (int)len;
  return args;
}

/* Checks the env entry name, value at -2, -1: a name with '=' would set
** another variable, and a NUL byte would cut either short. */
static void check_env_entry(lua_State *L) {
  size_t klen, vlen;
  const char *k = lua_tolstring(L, -2, &klen), *v;
  if (klen == 0 || memchr(k, '=', klen) || memchr(k, '\0', klen))
    luaL_error(L, "spawn: env key '%s' is not a variable name (empty, or with '=' or a NUL byte)", k);
  if (lua_type(L, -1) == LUA_TSTRING) {
    v = lua_tolstring(L, -1, &vlen);
    if (memchr(v, '\0', vlen)) luaL_error(L, "spawn: env.%s contains a NUL byte", k);
  }
}

/* The environment: ours with env's entries set (false removes one), or
** only env's entries when `clear` is set; NULL: inherit ours unchanged.
** The strings live in a table left on the stack below the array. */
static char **spawn_env(lua_State *L, int env, int clear) {
  char **out, **e;
  int t, n = 0;
  if (lua_isnil(L, env) && !clear) return NULL;
  lua_newtable(L);                        /* name -> "name=value" */
  t = lua_gettop(L);
  if (!clear) for (e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (eq == NULL) continue;
    lua_pushlstring(L, *e, (size_t)(eq - *e));
    lua_pushstring(L, *e);
    lua_rawset(L, t);
  }
  if (lua_istable(L, env)) {
    lua_pushnil(L);
    while (lua_next(L, env)) {            /* name, value */
      if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "spawn: env keys must be strings");
      check_env_entry(L);
      lua_pushvalue(L, -2);
      if (!lua_toboolean(L, -2)) lua_pushnil(L);
      else if (!lua_isstring(L, -2)) luaL_error(L, "spawn: env.%s must be a string", lua_tostring(L, -1));
      else lua_pushfstring(L, "%s=%s", lua_tostring(L, -1), lua_tostring(L, -2));
      lua_rawset(L, t);
      lua_pop(L, 1);
    }
  }
  lua_pushnil(L);
  while (lua_next(L, t)) { n++; lua_pop(L, 1); }
  out = (char **)lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, t)) {
    out[n++] = (char *)lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  out[n] = NULL;
  return out;
}

static const char *const stdio_names[] = {"stdin", "stdout", "stderr"};

/* Sets up child fd i from opts[name]: "pipe" (a new Stream, left on the
** stack), "inherit", "ignore" (default "inherit"), or a Stream to hand over. */
static void spawn_stdio(lua_State *L, int opts, int i, uv_stdio_container_t *c,
                        lasync_Stream **made) {
  const char *k;
  *made = NULL;
  lua_getfield(L, opts, stdio_names[i]);
  if (luaL_testudata(L, -1, LASYNC_STREAM_MT)) {
    lasync_Stream *s = lasync__stream_check(L, -1);
    c->flags = UV_INHERIT_STREAM;
    c->data.stream = (uv_stream_t *)lasync__stream_handle(s);
    lua_pop(L, 1);
    return;
  }
  k = lua_isnil(L, -1) ? "inherit" : lua_tostring(L, -1);
  if (k == NULL || (strcmp(k, "inherit") && strcmp(k, "pipe") && strcmp(k, "ignore")))
    luaL_error(L, "spawn: %s must be \"pipe\", \"inherit\", \"ignore\" or a Stream (got %s)",
               stdio_names[i], k ? k : luaL_typename(L, -1));
  lua_pop(L, 1);
  if (k[0] == 'i' && k[1] == 'n') { c->flags = UV_INHERIT_FD; c->data.fd = i; }
  else if (k[0] == 'i') c->flags = UV_IGNORE;
  else {
    lasync_Stream *s = lasync__stream_alloc(L, STREAM_PIPE);
    uv_pipe_init(lasync_loop(lasync_host(L)), (uv_pipe_t *)lasync__stream_handle(s), 0);
    lasync__stream_describe(s, stdio_names[i]);
    lasync__stream_push(L, s);            /* its object closes it if spawn fails */
    c->flags = UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
    c->data.stream = (uv_stream_t *)lasync__stream_handle(s);
    *made = s;
  }
}

/* Puts a started child on the list of running ones (see list_gc). */
static void proc_track(lua_State *L, Proc *p) {
  ProcList *pl = list_get(L);
  p->h.data = pl;
  p->next = pl->head;
  if (p->next) p->next->prev = p;
  pl->head = p;
}

/* Fills the options from the table at 1: arguments, cwd, environment,
** flags. What they point to is kept on the stack. */
static void spawn_options(lua_State *L, uv_process_options_t *o) {
  int n;
  memset(o, 0, sizeof *o);
  o->args = spawn_args(L, 1, &n);
  o->file = o->args[0];
  lua_getfield(L, 1, "cwd");
  if (lua_isnil(L, -1)) o->cwd = NULL;
  else {
    size_t len;
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "spawn: cwd must be a string (got %s)", luaL_typename(L, -1));
    o->cwd = lua_tolstring(L, -1, &len);
    if (strlen(o->cwd) != len) luaL_error(L, "spawn: cwd contains a NUL byte");
  }
  if (lua_getfield(L, 1, "env") != LUA_TNIL) luaL_checktype(L, -1, LUA_TTABLE);
  lua_getfield(L, 1, "clear_env");
  o->env = spawn_env(L, lua_gettop(L) - 1, lua_toboolean(L, -1));
  lua_getfield(L, 1, "detached");
  if (lua_toboolean(L, -1)) o->flags |= UV_PROCESS_DETACHED;
  lua_pop(L, 1);
  o->exit_cb = on_exit_cb;
}

/* Raises uv_spawn's failure r. The child's chdir and exec both report
** ENOENT (and the like) the same way; a cwd that is not a directory we can
** enter is named as the cause ("spawn true: no such file" misled). */
static int spawn_failed(lua_State *L, int r, const uv_process_options_t *o) {
  struct stat st;
  int e = 0;
  if (o->cwd) {
    if (stat(o->cwd, &st) != 0) e = -errno;
    else if (!S_ISDIR(st.st_mode)) e = UV_ENOTDIR;
    else if (access(o->cwd, X_OK) != 0) e = -errno;
  }
  if (e == 0) return lasync__ioerror(L, r, "spawn", "path", o->file);
  lua_pushfstring(L, "cwd %s: %s", o->cwd, uv_strerror(e));
  lasync__push_ioerror_msg(L, uv_err_name(e), lua_tostring(L, -1), "spawn", "path", o->file);
  lua_pushstring(L, o->cwd);
  lua_setfield(L, -2, "cwd");
  lua_remove(L, -2);                      /* the message */
  return lua_error(L);
}

/* spawn(opts) -> proc, pid, stdin, stdout, stderr (streams or nil).
** opts: the command and arguments as its sequence; cwd, env, clear_env,
** stdin, stdout, stderr, detached. */
static int l_spawn(lua_State *L) {
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  lasync_Stream *pipes[3];
  Proc **box, *p;
  int i, r, at[3];
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  spawn_options(L, &o);
  for (i = 0; i < 3; i++) {
    spawn_stdio(L, 1, i, &stdio[i], &pipes[i]);
    at[i] = lua_gettop(L);                /* the pipe's object, if one was made */
  }
  o.stdio = stdio;
  o.stdio_count = 3;
  box = (Proc **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, PROC_MT);
  if ((p = (Proc *)calloc(1, sizeof *p)) == NULL) return luaL_error(L, "not enough memory");
  lasync_waitlist_init(&p->waiters);
  if ((r = uv_spawn(lasync_loop(lasync_host(L)), &p->h, &o)) != 0) {
    uv_close((uv_handle_t *)&p->h, proc_close_cb);  /* initialized even on failure */
    for (i = 0; i < 3; i++) if (pipes[i]) lasync__stream_close(pipes[i], 1);
    return spawn_failed(L, r, &o);
  }
  p->box = box;
  *box = p;
  proc_track(L, p);
  lua_pushinteger(L, p->h.pid);
  for (i = 0; i < 3; i++) {
    if (pipes[i]) lua_pushvalue(L, at[i]);
    else lua_pushnil(L);
  }
  return 5;
}

static const luaL_Reg proc_methods[] = {
  {"wait", proc_wait}, {"status", proc_status}, {"kill", proc_kill},
  {"close", proc_close}, {NULL, NULL}
};

int lasync__luaopen_process(lua_State *L) {
  lasync__open_stream(L);
  static const luaL_Reg meta[] = {{"__gc", proc_close}, {NULL, NULL}};
  lasync__class(L, PROC_MT, meta, proc_methods);
  lua_pop(L, 1);
  list_get(L);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
  return 1;
}
