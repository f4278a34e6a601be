/*
** stream_info.c: what a Stream is connected to and how: peer(), address(),
** kind(), the TCP options (set_nodelay, set_keepalive); the standard
** streams (stdio(fd)); and require "async.stream", which gives the type.
*/
#include <lauxlib.h>
#include "io/stream.h"

/* s:peer() / s:address(): ip, port for TCP; the path for a unix socket. */
static int sock_name(lua_State *L, int peer) {
  lasync_Stream *s = lasync__stream_check(L, 1);
  const char *op = peer ? "peer" : "address";
  int r;
  if (s->kind == STREAM_TCP) {
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    r = peer ? uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len)
             : uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len);
    if (r == 0) return lasync__addr_push(L, (struct sockaddr *)&ss);
  }
  else if (s->kind == STREAM_PIPE) {
    char buf[512];
    size_t len = sizeof buf;
    r = peer ? uv_pipe_getpeername(&s->h.pipe, buf, &len)
             : uv_pipe_getsockname(&s->h.pipe, buf, &len);
    if (r == 0) { lua_pushlstring(L, buf, len); return 1; }
  }
  else return 0;
  return lasync__ioerror(L, r, op, "address", s->desc);
}

static int stream_peer(lua_State *L) { return sock_name(L, 1); }
static int stream_address(lua_State *L) { return sock_name(L, 0); }

static lasync_Stream *check_tcp(lua_State *L, const char *op) {
  lasync_Stream *s = lasync__stream_check(L, 1);
  if (s->kind != STREAM_TCP) luaL_error(L, "%s: not a TCP stream", op);
  return s;
}

/* s:set_nodelay([on]): on (the default) sends small writes at once. */
static int stream_set_nodelay(lua_State *L) {
  lasync_Stream *s = check_tcp(L, "set_nodelay");
  int r = uv_tcp_nodelay(&s->h.tcp, lua_isnone(L, 2) || lua_toboolean(L, 2));
  if (r) return lasync__ioerror(L, r, "set_nodelay", "address", s->desc);
  return 0;
}

/* s:set_keepalive(on [, delay]): TCP keep-alive probes after `delay`
** seconds idle (default 60). */
static int stream_set_keepalive(lua_State *L) {
  lasync_Stream *s = check_tcp(L, "set_keepalive");
  lua_Integer delay = luaL_optinteger(L, 3, 60);
  int r;
  luaL_argcheck(L, delay >= 1 && delay <= 86400 * 365, 3, "delay must be 1 s or more");
  r = uv_tcp_keepalive(&s->h.tcp, lua_toboolean(L, 2), (unsigned)delay);
  if (r) return lasync__ioerror(L, r, "set_keepalive", "address", s->desc);
  return 0;
}

static int stream_kind(lua_State *L) {
  lua_pushstring(L, lasync__stream_kinds[lasync__stream_check(L, 1)->kind]);
  return 1;
}

/* ---------------------------------------------------------------- stdio */

/* stdio(fd): a stream on standard input, output or error. Output is made
** blocking, as C's stdio is, so nothing queued is lost when the program
** ends and print() and the stream cannot interleave out of order. */
static int l_stdio(lua_State *L) {
  static const char *const names[] = {"stdin", "stdout", "stderr"};
  lua_Integer fd = luaL_checkinteger(L, 1);
  uv_loop_t *loop = lasync_loop(lasync_host(L));
  uv_handle_type type;
  lasync_Stream *s;
  int r;
  luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "0 (stdin), 1 (stdout) or 2 (stderr) expected");
  type = uv_guess_handle((int)fd);
  if (type == UV_TTY) {
    s = lasync__stream_alloc(L, STREAM_TTY);
    if ((r = uv_tty_init(loop, &s->h.tty, (int)fd, fd == 0)) != 0) {
      lasync__stream_drop(s);
      return lasync__ioerror(L, r, "stdio", "address", names[fd]);
    }
  }
  else if (type == UV_NAMED_PIPE || type == UV_TCP) {
    s = lasync__stream_alloc(L, type == UV_TCP ? STREAM_TCP : STREAM_PIPE);
    if (type == UV_TCP) uv_tcp_init(loop, &s->h.tcp);
    else uv_pipe_init(loop, &s->h.pipe, 0);
    r = type == UV_TCP ? uv_tcp_open(&s->h.tcp, (uv_os_sock_t)fd) : uv_pipe_open(&s->h.pipe, (int)fd);
    if (r) {
      lasync__stream_uvclose(s);
      return lasync__ioerror(L, r, "stdio", "address", names[fd]);
    }
  }
  else if (type == UV_FILE) {
    s = lasync__stream_alloc(L, STREAM_FILE);
    s->fd = (int)fd;
  }
  else return luaL_error(L, "%s is closed or of an unknown kind", names[fd]);
  if (fd > 0 && s->kind != STREAM_FILE) uv_stream_set_blocking(&s->h.stream, 1);
  lasync__stream_describe(s, names[fd]);
  lasync__stream_push(L, s);
  return 1;
}

static const luaL_Reg info_methods[] = {
  {"peer", stream_peer}, {"address", stream_address}, {"kind", stream_kind},
  {"set_nodelay", stream_set_nodelay}, {"set_keepalive", stream_set_keepalive},
  {NULL, NULL}
};

void lasync__stream_info_methods(lua_State *L) {
  luaL_setfuncs(L, info_methods, 0);
}

/* require "async.stream": the Stream type and stdio(fd). */
int lasync__luaopen_stream(lua_State *L) {
  lasync__open_stream(L);
  lua_createtable(L, 0, 3);
  lua_pushcfunction(L, l_stdio);
  lua_setfield(L, -2, "stdio");
  luaL_getmetatable(L, LASYNC_STREAM_MT);
  lua_setfield(L, -2, "Stream");
  lasync__ioerror_class(L);
  lua_setfield(L, -2, "IOError");
  return 1;
}
