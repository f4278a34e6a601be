/*
** net.c: require "async.core.net", the C half of async.net: connecting
** TCP and unix sockets to a Stream, and the Listener that accepts them.
** Names are resolved and servers run (a task per connection) by
** lua/async/net.lua; here everything takes IP literals or paths.
**
** Connect: the Stream object exists before the connect starts, so a
** cancelled or failed connect closes it and libuv frees it; the request
** (with the wait in it) is freed by its callback, whoever is still
** interested.
**
** Accept: the listening socket is watched with a uv_poll and accepted
** here, eagerly, into a small queue of streams (no Lua objects yet), so a
** burst of clients does not sit in the kernel's backlog waiting for the
** accepting task to run once per loop turn; past ACCEPT_QUEUE, polling
** stops until accept() makes room. Not libuv's uv_listen: when accept fails
** with EMFILE, libuv accepts and closes the waiting connections and tells
** nobody. Here polling stops (the clients wait in the backlog), accept()
** raises EMFILE, marked `repeated` after the first of a burst so that the
** server logs it once, and polling resumes when accept() is called again.
*/
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <lauxlib.h>
#include "io/stream.h"

#define LISTENER_MT "lasync.Listener"
#define ACCEPT_QUEUE 64

typedef struct Listener {
  union { uv_handle_t handle; uv_stream_t stream; uv_tcp_t tcp; uv_pipe_t pipe; } h;
  lasync_Host *H;
  void *root;                     /* where accepted streams are listed */
  struct Listener **box;
  lasync_Wait wait;               /* the task in accept() */
  uv_poll_t poll;                 /* readable: connections are waiting */
  lasync_Stream *queue[ACCEPT_QUEUE];
  int qhead, qlen;
  int err;                        /* an accept failure, raised once */
  int burst;                      /* accept has failed since the last success */
  int polling;                    /* the poll is started */
  int handles;                    /* handles not yet closed (poll, socket) */
  int fd;                         /* the listening socket, -1 before listen */
  int kind;                       /* STREAM_TCP or STREAM_PIPE */
  char *desc;                     /* "127.0.0.1:8080" or the socket path */
  char *unlink_path;              /* the unix socket file to remove at close */
} Listener;

typedef struct ConnectReq {
  uv_connect_t req;
  lasync_Wait wait;
  lasync_Host *H;
} ConnectReq;

/* ------------------------------------------------------------ addresses */

/* is_ip(s): 4 or 6 for an IPv4 or IPv6 literal, else nil. */
static int l_is_ip(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  unsigned char buf[sizeof(struct in6_addr)];
  if (uv_inet_pton(AF_INET, s, buf) == 0) lua_pushinteger(L, 4);
  else if (uv_inet_pton(AF_INET6, s, buf) == 0) lua_pushinteger(L, 6);
  else lua_pushnil(L);
  return 1;
}

/* ------------------------------------------------------------- connect */

static void on_connect(uv_connect_t *req, int status) {
  ConnectReq *c = (ConnectReq *)req;
  lasync_Stream *s = (lasync_Stream *)req->handle;
  if (status < 0) lasync__stream_close(s, 1);
  if (c->wait.task) {
    lua_pushinteger(lasync_state(c->H), status);
    lasync_wake_values(lasync_state(c->H), &c->wait, 1);
  }
  free(c);
}

/* A cancelled connect closes its stream; libuv then calls on_connect with
** ECANCELED, which frees the request. */
static void connect_cancel(lasync_Wait *w) {
  ConnectReq *c = container_of(w, ConnectReq, wait);
  lasync__stream_close((lasync_Stream *)c->req.handle, 1);
}

/* Stack: the address text, the stream, the status. */
static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  int st = (int)lua_tointeger(L, -1);
  (void)status; (void)ctx;
  if (st < 0) return lasync__ioerror(L, st, "connect", "address", lua_tostring(L, -3));
  lua_pop(L, 1);
  return 1;
}

/* Allocates the request and pushes the new stream for `what`. */
static ConnectReq *connect_begin(lua_State *L, lasync_Stream **sp, int kind,
                                 const char *what) {
  ConnectReq *c;
  lasync_checktask(L, "connect");
  lua_pushstring(L, what);                /* what may point into the stack */
  lua_replace(L, 1);
  lua_settop(L, 1);
  *sp = lasync__stream_alloc(L, kind);
  if (kind == STREAM_TCP) uv_tcp_init(lasync_loop(lasync_host(L)), &(*sp)->h.tcp);
  else uv_pipe_init(lasync_loop(lasync_host(L)), &(*sp)->h.pipe, 0);
  lasync__stream_describe(*sp, what);
  lasync__stream_push(L, *sp);
  if ((c = (ConnectReq *)calloc(1, sizeof *c)) == NULL) {
    lasync__stream_close(*sp, 1);
    luaL_error(L, "not enough memory");
  }
  c->H = lasync_host(L);
  return c;
}

/* tcp_connect(ip, port): a connected Stream. */
static int l_tcp_connect(lua_State *L) {
  struct sockaddr_storage ss;
  char what[80];
  lasync_Stream *s;
  ConnectReq *c;
  int r;
  lasync__addr_check(L, 1, &ss);
  lasync__addr_format((struct sockaddr *)&ss, what, sizeof what);
  c = connect_begin(L, &s, STREAM_TCP, what);
  if ((r = uv_tcp_connect(&c->req, &s->h.tcp, (struct sockaddr *)&ss, on_connect)) != 0) {
    free(c);
    lasync__stream_close(s, 1);
    return lasync__ioerror(L, r, "connect", "address", what);
  }
  c->wait.what = "net.connect";
  return lasync_wait(L, &c->wait, connect_cancel, connect_k, 0);
}

/* A unix socket's path must fit sun_path: libuv cuts a longer one short,
** so the socket was made (or sought) at another path, and the truncated
** file outlived its listener, whose close unlinked the path as given. */
static const char *check_pipe_path(lua_State *L, const char *op) {
  size_t len, max = sizeof(((struct sockaddr_un *)0)->sun_path);
  const char *path = luaL_checklstring(L, 1, &len);
  if (len >= max || strlen(path) != len)
    lasync__ioerror(L, len >= max ? UV_ENAMETOOLONG : UV_EINVAL, op, "address",
                    len > 60 ? "(a path too long to show)" : path);
  return path;
}

/* pipe_connect(path): a Stream on a unix domain socket. */
static int l_pipe_connect(lua_State *L) {
  const char *path = check_pipe_path(L, "connect");
  lasync_Stream *s;
  ConnectReq *c = connect_begin(L, &s, STREAM_PIPE, path);
  uv_pipe_connect(&c->req, &s->h.pipe, lua_tostring(L, 1), on_connect);
  c->wait.what = "net.connect";
  return lasync_wait(L, &c->wait, connect_cancel, connect_k, 0);
}

/* ------------------------------------------------------------ listener */

/* Close callback of both handles; the second frees the listener. */
static void listener_close_cb(uv_handle_t *h) {
  Listener *l = h->type == UV_POLL ? container_of((uv_poll_t *)h, Listener, poll)
                                   : (Listener *)h;
  if (--l->handles > 0) return;
  free(l->desc);
  free(l->unlink_path);
  free(l);
}

static void listener_close(Listener *l) {
  if (l->box) *l->box = NULL;
  l->box = NULL;
  while (l->qlen > 0) {
    lasync__stream_close(l->queue[l->qhead], 1);
    l->qhead = (l->qhead + 1) % ACCEPT_QUEUE;
    l->qlen--;
  }
  if (l->wait.task) lasync_wake(&l->wait);  /* accept() finds it closed */
  if (l->unlink_path) unlink(l->unlink_path);
  /* The poll first: closing the socket's handle closes the descriptor. */
  if (l->fd >= 0) uv_close((uv_handle_t *)&l->poll, listener_close_cb);
  uv_close(&l->h.handle, listener_close_cb);
}

static void on_readable(uv_poll_t *h, int status, int events);

static void listener_poll(Listener *l, int on) {
  if (on == l->polling) return;
  l->polling = on;
  if (on) uv_poll_start(&l->poll, UV_READABLE, on_readable);
  else uv_poll_stop(&l->poll);
}

/* Puts an accepted socket into the queue as a stream; 0 or a libuv error. */
static int listener_take(Listener *l, int fd) {
  lasync_Stream *s = lasync__stream_new(l->H, l->root, l->kind);
  int r;
  if (s == NULL) { close(fd); return UV_ENOMEM; }
  if (l->kind == STREAM_TCP) {
    uv_tcp_init(lasync_loop(l->H), &s->h.tcp);
    r = uv_tcp_open(&s->h.tcp, fd);
  }
  else {
    uv_pipe_init(lasync_loop(l->H), &s->h.pipe, 0);
    r = uv_pipe_open(&s->h.pipe, fd);
  }
  if (r != 0) {
    close(fd);
    lasync__stream_uvclose(s);
    return r;
  }
  l->queue[(l->qhead + l->qlen++) % ACCEPT_QUEUE] = s;
  return 0;
}

static int fd_full(int e) { return e == EMFILE || e == ENFILE; }

/* Whether a connection waits. accept fails with EMFILE when the table is
** full before it looks at the queue, also when nobody waits. */
static int waiting(Listener *l) {
  struct pollfd p;
  p.fd = l->fd;
  p.events = POLLIN;
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Accepts what is waiting, up to a full queue. A failure stops polling and
** is raised by accept(); accept() starts polling again. */
static void on_readable(uv_poll_t *h, int status, int events) {
  Listener *l = container_of(h, Listener, poll);
  int fd, r = status;
  (void)events;
  while (r == 0 && l->qlen < ACCEPT_QUEUE) {
    fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) r = listener_take(l, fd);
    else if (errno == EAGAIN || errno == EWOULDBLOCK || (fd_full(errno) && !waiting(l))) break;
    else if (errno != EINTR && errno != ECONNABORTED) r = uv_translate_sys_error(errno);
    if (r == 0 && fd >= 0) l->burst = 0;
  }
  if (r != 0) {
    l->err = r;
    listener_poll(l, 0);
  }
  else if (l->qlen == ACCEPT_QUEUE) listener_poll(l, 0);
  if (l->wait.task && (l->qlen > 0 || l->err)) lasync_wake(&l->wait);
}

static Listener **listener_box(lua_State *L) {
  return (Listener **)luaL_checkudata(L, 1, LISTENER_MT);
}

/* Pushes the stream at the head of the queue as a Lua object. */
static void listener_pop(lua_State *L, Listener *l) {
  lasync_Stream *s = l->queue[l->qhead];
  l->qhead = (l->qhead + 1) % ACCEPT_QUEUE;
  l->qlen--;
  if (l->kind == STREAM_TCP) {
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    char what[80];
    if (uv_tcp_getpeername((uv_tcp_t *)lasync__stream_handle(s), (struct sockaddr *)&ss, &len) == 0)
      lasync__stream_describe(s, lasync__addr_format((struct sockaddr *)&ss, what, sizeof what));
  }
  else lasync__stream_describe(s, l->desc);
  if (l->err == 0) listener_poll(l, 1);   /* there is room again */
  lasync__stream_push(L, s);
}

static int accept_k(lua_State *L, int status, lua_KContext ctx);

/* listener:accept(): the next connection, as a Stream. */
static int accept_step(lua_State *L, int first) {
  Listener *l = *listener_box(L);
  if (l == NULL) {
    if (first) return lasync__closed_error(L, "accept", "listener");
    return lasync__closed_waiting_error(L, "accept", "listener");
  }
  if (l->qlen > 0) {
    listener_pop(L, l);
    return 1;
  }
  if (l->err) {                           /* EMFILE and the like: raised once */
    int e = l->err;
    l->err = 0;
    lasync__push_ioerror(L, e, "accept", "address", l->desc);
    lua_pushboolean(L, l->burst);         /* not the first of this burst */
    lua_setfield(L, -2, "repeated");
    l->burst = 1;
    return lua_error(L);
  }
  listener_poll(l, 1);                    /* room in the queue, no failure */
  if (first && l->wait.task)
    return luaL_error(L, "accept: another task is already accepting");
  lasync_checktask(L, "accept");
  lua_settop(L, 1);
  l->wait.what = "server accept";
  return lasync_wait(L, &l->wait, NULL, accept_k, 0);
}

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return accept_step(L, 0);
}

static int listener_accept(lua_State *L) { return accept_step(L, 1); }

static int listener_close_m(lua_State *L) {
  Listener *l = *listener_box(L);
  if (l) listener_close(l);
  return 0;
}

static int listener_closed(lua_State *L) {
  lua_pushboolean(L, *listener_box(L) == NULL);
  return 1;
}

/* listener:address(): ip, port (TCP) or the path (unix). */
static int listener_address(lua_State *L) {
  Listener *l = *listener_box(L);
  struct sockaddr_storage ss;
  int len = (int)sizeof ss, r;
  if (l == NULL) return lasync__closed_error(L, "address", "listener");
  if (l->kind == STREAM_PIPE) {
    lua_pushstring(L, l->desc);
    return 1;
  }
  if ((r = uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len)) != 0)
    return lasync__ioerror(L, r, "address", "address", l->desc);
  return lasync__addr_push(L, (struct sockaddr *)&ss);
}

static int listener_tostring(lua_State *L) {
  Listener *l = *listener_box(L);
  if (l == NULL) lua_pushliteral(L, "Listener<closed>");
  else lua_pushfstring(L, "Listener<%s %s>", l->kind == STREAM_TCP ? "tcp" : "unix", l->desc);
  return 1;
}

/* Pushes a Listener object with a fresh, uninitialized Listener. */
static Listener *listener_new(lua_State *L, int kind, const char *desc) {
  Listener **box = (Listener **)lua_newuserdatauv(L, sizeof *box, 0);
  Listener *l;
  *box = NULL;
  luaL_setmetatable(L, LISTENER_MT);
  if ((l = (Listener *)calloc(1, sizeof *l)) == NULL || (l->desc = strdup(desc)) == NULL) {
    free(l);
    luaL_error(L, "not enough memory");
  }
  l->H = lasync_host(L);
  l->root = lasync__stream_root(L);
  l->kind = kind;
  l->fd = -1;
  l->handles = 1;
  l->box = box;
  *box = l;
  return l;
}

/* Names a TCP listener by the address it got (port 0: the port chosen),
** for its errors and tostring. */
static void listener_describe(Listener *l) {
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  char what[80], *d;
  if (uv_tcp_getsockname(&l->h.tcp, (struct sockaddr *)&ss, &len) != 0) return;
  if ((d = strdup(lasync__addr_format((struct sockaddr *)&ss, what, sizeof what))) == NULL) return;
  free(l->desc);
  l->desc = d;
}

/* Starts listening, or closes the listener and raises. */
static int listener_start(lua_State *L, Listener *l, int r, int backlog) {
  uv_os_fd_t fd = -1;
  if (r == 0) r = uv_fileno(&l->h.handle, &fd);
  if (r == 0 && listen(fd, backlog) != 0) r = uv_translate_sys_error(errno);
  if (r == 0 && (r = uv_poll_init_socket(lasync_loop(l->H), &l->poll, fd)) == 0) {
    l->fd = fd;
    l->handles = 2;
    listener_poll(l, 1);
    if (l->kind == STREAM_TCP) listener_describe(l);
  }
  if (r != 0) {
    free(l->unlink_path);
    l->unlink_path = NULL;                /* it is not ours */
    lua_pushstring(L, l->desc);
    listener_close(l);
    return lasync__ioerror(L, r, "listen", "address", lua_tostring(L, -1));
  }
  return 1;
}

static int check_backlog(lua_State *L, int arg) {
  lua_Integer b = luaL_optinteger(L, arg, 511);
  luaL_argcheck(L, b >= 1 && b <= 65535, arg, "backlog must be 1..65535");
  return (int)b;
}

/* bind(2) itself: uv_tcp_bind defers EADDRINUSE to uv_listen, which the
** listener does not use (it accepts itself, see the top), and listen(2) on
** the unbound socket would then pick a port of its own. */
static int tcp_bind(Listener *l, const struct sockaddr *sa) {
  uv_os_fd_t fd;
  int on = 1, r = uv_fileno(&l->h.handle, &fd);
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  if (r != 0) return r;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 || bind(fd, sa, len) != 0)
    return uv_translate_sys_error(errno);
  return 0;
}

/* tcp_listen(ip, port [, backlog [, reuseport]]): a Listener. */
static int l_tcp_listen(lua_State *L) {
  struct sockaddr_storage ss;
  char what[80];
  int backlog = check_backlog(L, 3), reuse = lua_toboolean(L, 4), r;
  Listener *l;
  lasync__addr_check(L, 1, &ss);
  l = listener_new(L, STREAM_TCP, lasync__addr_format((struct sockaddr *)&ss, what, sizeof what));
  r = uv_tcp_init_ex(lasync_loop(l->H), &l->h.tcp, ss.ss_family);
  if (r) {                                /* nothing to close yet */
    *l->box = NULL;
    free(l->desc);
    free(l);
    return lasync__ioerror(L, r, "listen", "address", what);
  }
  if (reuse) {
    uv_os_fd_t fd;
    int on = 1;
    if (uv_fileno(&l->h.handle, &fd) == 0 &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0)
      r = uv_translate_sys_error(errno);
  }
  if (r == 0) r = tcp_bind(l, (struct sockaddr *)&ss);
  return listener_start(L, l, r, backlog);
}

/* pipe_listen(path [, backlog]): a Listener on a unix domain socket. A
** stale socket file at path (no listener behind it) is replaced; the file
** is removed when the listener closes. */
static int l_pipe_listen(lua_State *L) {
  const char *path = check_pipe_path(L, "listen");
  int backlog = check_backlog(L, 2), r;
  struct stat st;
  Listener *l = listener_new(L, STREAM_PIPE, path);
  uv_pipe_init(lasync_loop(l->H), &l->h.pipe, 0);
  if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strncpy(sa.sun_path, path, sizeof sa.sun_path - 1);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno == ECONNREFUSED)
      unlink(path);                       /* nobody listens: a leftover */
    if (fd >= 0) close(fd);
  }
  r = uv_pipe_bind(&l->h.pipe, path);
  if (r == 0) l->unlink_path = strdup(path);
  return listener_start(L, l, r, backlog);
}

static int listener_gc(lua_State *L) {
  Listener *l = *(Listener **)luaL_checkudata(L, 1, LISTENER_MT);
  if (l) listener_close(l);
  return 0;
}

static const luaL_Reg listener_methods[] = {
  {"accept", listener_accept}, {"close", listener_close_m},
  {"closed", listener_closed}, {"address", listener_address}, {NULL, NULL}
};

static const luaL_Reg net_funcs[] = {
  {"tcp_connect", l_tcp_connect}, {"pipe_connect", l_pipe_connect},
  {"tcp_listen", l_tcp_listen}, {"pipe_listen", l_pipe_listen},
  {"is_ip", l_is_ip}, {NULL, NULL}
};

int lasync__luaopen_net(lua_State *L) {
  struct sigaction sa;
  /* A write to a socket the peer closed must fail with EPIPE, not kill
  ** the process; only the default disposition is changed. */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
  }
  lasync__open_stream(L);
  static const luaL_Reg meta[] = {
    {"__gc", listener_gc}, {"__close", listener_close_m},
    {"__tostring", listener_tostring}, {NULL, NULL}
  };
  lasync__class(L, LISTENER_MT, meta, listener_methods);
  lua_pop(L, 1);
  luaL_newlib(L, net_funcs);
  return 1;
}
