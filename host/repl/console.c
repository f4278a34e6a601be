/*
** console.c: async.core.console, the REPL served on a Unix socket, so an
** operator can attach to a running program (`lasync attach PATH`) and look
** at its tasks, read and change globals or cancel a task while it goes on
** serving. Each connection is a REPL session (lasync_repl_start on the
** connection's descriptor); several may be open at once, and one ending
** (.exit, Ctrl-D, a dropped connection) stops only itself.
**
** Access is the socket file's permissions: the socket's mode is set
** before bind (fchmod on the unbound socket, which Linux gives the file),
** 0600 unless asked, so no other user can connect even for an instant.
** The listener does not keep the loop alive: a program ends as it would
** without a console. lua/async/console.lua is the Lua half (attach).
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <lauxlib.h>
#include "repl/repl.h"

#define CONSOLE_MT "lasync.Console"

typedef struct Session {
  struct Session *next;
  struct Console *C;
  lasync_Repl *R;                 /* NULL once the REPL has ended */
  int fd;
} Session;

/* Allocated apart from its Lua box: the poll handle's memory must live
** until its close callback (rule 5). */
typedef struct Console {
  lasync_Host *H;
  uv_poll_t poll;                 /* the listening socket is readable */
  int fd;                         /* the listening socket, or -1 */
  char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
  Session *sessions;
  int count;                      /* sessions open */
  int closed;
} Console;

static Console *console_check(lua_State *L, int i) {
  Console **box = (Console **)luaL_checkudata(L, i, CONSOLE_MT);
  if (*box == NULL || (*box)->closed) luaL_error(L, "console: closed");
  return *box;
}

/* -------------------------------------------------------------- sessions */

/* The REPL of a session ended (the user left): close its connection. */
static void session_exit(lasync_Repl *R, void *ud) {
  Session *s = (Session *)ud, **p;
  Console *C = s->C;
  (void)R;
  for (p = &C->sessions; *p; p = &(*p)->next)
    if (*p == s) { *p = s->next; break; }
  C->count--;
  close(s->fd);
  free(s);
}

static void console_accept(Console *C) {
  lasync_ReplOptions o;
  Session *s;
  int fd = accept4(C->fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return;                    /* EAGAIN, or the client left */
  if ((s = (Session *)calloc(1, sizeof *s)) == NULL) { close(fd); return; }
  lasync_repl_options_init(&o);
  o.in_fd = o.out_fd = fd;
  o.edit = 0;
  o.prompt = 1;                          /* a person at the other end */
  o.chunkname = "console";
  o.banner = "lasync console: the program goes on while you type. "
             "help, tasks(); .exit or Ctrl-D leaves (the program keeps running)\n";
  o.on_exit = session_exit;
  o.ud = s;
  s->C = C;
  s->fd = fd;
  if ((s->R = lasync_repl_start(C->H, &o)) == NULL) {
    close(fd);
    free(s);
    return;
  }
  s->next = C->sessions;
  C->sessions = s;
  C->count++;
}

static void console_poll_cb(uv_poll_t *h, int status, int events) {
  (void)events;
  if (status == 0) console_accept((Console *)h->data);
}

/* The sessions' REPL handles were closed before ours (uv_close order):
** their descriptors may be closed now. */
static void console_close_cb(uv_handle_t *h) {
  Console *C = (Console *)h->data;
  while (C->sessions) {
    Session *s = C->sessions;
    C->sessions = s->next;
    close(s->fd);
    free(s);
  }
  free(C);
}

/* Stops listening, removes the socket file, ends every session. */
static void console_close(Console *C) {
  Session *s;
  if (C->closed) return;
  C->closed = 1;
  for (s = C->sessions; s; s = s->next) {
    shutdown(s->fd, SHUT_RDWR);          /* the client sees the end now */
    if (s->R) lasync_repl_stop(s->R);
    s->R = NULL;
  }
  C->count = 0;
  uv_close((uv_handle_t *)&C->poll, console_close_cb);
  close(C->fd);
  C->fd = -1;
  unlink(C->path);
}

/* ------------------------------------------------------------ listening */

/* A Unix socket bound at path with the given mode, listening; returns the
** descriptor, or -1 with errno set. */
static int console_socket(const char *path, int mode) {
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, path, strlen(path) + 1);
  if (fchmod(fd, (mode_t)mode) != 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0
      || listen(fd, 16) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

/* core.listen(path [, mode]): a Console serving the REPL at path. */
static int l_listen(lua_State *L) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  lua_Integer mode = luaL_optinteger(L, 2, 0600);
  Console **box, *C;
  int fd;
  luaL_argcheck(L, len > 0 && len < sizeof C->path && strlen(path) == len, 1,
                "a socket path of 1 to 107 bytes expected");
  luaL_argcheck(L, mode >= 0 && mode <= 0777, 2, "a file mode (0 to 0777) expected");
  box = (Console **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, CONSOLE_MT);
  if ((C = (Console *)calloc(1, sizeof *C)) == NULL) return luaL_error(L, "not enough memory");
  if ((fd = console_socket(path, (int)mode)) < 0) {
    int e = errno;
    free(C);
    return luaL_error(L, "console: cannot listen at %s: %s", path, strerror(e));
  }
  C->H = lasync_host(L);
  C->fd = fd;
  memcpy(C->path, path, len + 1);
  uv_poll_init(lasync_loop(C->H), &C->poll, fd);
  C->poll.data = C;
  uv_poll_start(&C->poll, UV_READABLE, console_poll_cb);
  uv_unref((uv_handle_t *)&C->poll);     /* the program ends as without it */
  *box = C;
  return 1;
}

/* ------------------------------------------------------------- methods */

static int console_m_close(lua_State *L) {
  Console **box = (Console **)luaL_checkudata(L, 1, CONSOLE_MT);
  if (*box) console_close(*box);
  *box = NULL;
  return 0;
}

static int console_m_closed(lua_State *L) {
  Console **box = (Console **)luaL_checkudata(L, 1, CONSOLE_MT);
  lua_pushboolean(L, *box == NULL || (*box)->closed);
  return 1;
}

static int console_m_path(lua_State *L) {
  lua_pushstring(L, console_check(L, 1)->path);
  return 1;
}

static int console_m_sessions(lua_State *L) {
  lua_pushinteger(L, console_check(L, 1)->count);
  return 1;
}

static int console_tostring(lua_State *L) {
  Console **box = (Console **)luaL_checkudata(L, 1, CONSOLE_MT);
  if (*box == NULL || (*box)->closed) lua_pushliteral(L, "Console<closed>");
  else lua_pushfstring(L, "Console<%s, %d session%s>", (*box)->path, (*box)->count,
                       (*box)->count == 1 ? "" : "s");
  return 1;
}

static const luaL_Reg console_methods[] = {
  {"close", console_m_close}, {"closed", console_m_closed}, {"path", console_m_path},
  {"sessions", console_m_sessions}, {NULL, NULL}
};

int lasync__luaopen_console(lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", console_m_close}, {"__close", console_m_close},
    {"__tostring", console_tostring}, {NULL, NULL}
  };
  lasync__class(L, CONSOLE_MT, meta, console_methods);
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, -2, "listen");
  return 1;
}
