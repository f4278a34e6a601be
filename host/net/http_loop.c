/*
** http_loop.c: the native module "async.core.http_loop": the HTTP
** server's request loop for the common request, in C. async.http.conn's
** Lua loop calls serve whenever a connection is idle between requests;
** serve reads, parses, calls the handler and writes the response for as
** long as the requests are plain (keep-alive HTTP/1.1, no body, not HEAD,
** one read each) and the handler's answer is the common one (a status seen
** before, a string body, no headers, nothing streamed). It hands anything
** else back to the Lua loop where it stands. It does what the Lua loop did,
** field for field, without the Lua VM's steps between the calls; on a
** plain TCP stream it also reads from the stream's buffer and writes with
** one writev in C (io.h's reader and writer), so a request makes no string
** of its bytes and no read or write call (a TLS stream's read and write
** are called). Together, 30% of a request's instructions.
**
** serve(p, c, srv, sock, read, write, handler, res_arg, Response,
**       plain_status, plain_tails) returns one of
**   "more"                      the read ended inside a head: the parser
**                               holds it; go on with next_event
**   ev, a, b, plain             a parser event it does not handle (as
**                               p:execute returns it; c.buf and c.pos are
**                               set when the read goes on past it), or "eof"
**   "slow", req, res, status, body, headers
**                               the handler ran (c.current is req) and its
**                               answer is not the common one
**   "stop"                      the server is closing
** The handler and the stream's read and write are called with lua_callk,
** so each may wait; an error in them leaves serve as it was raised.
*/
#include <limits.h>
#include <string.h>
#include "io/io.h"
#include "http_parse.h"

/* The arguments' places on the stack. */
enum { A_P = 1, A_C, A_SRV, A_SOCK, A_READ, A_WRITE, A_HANDLER, A_RESARG, A_RESMT,
       A_STATUS, A_TAILS, A_LOGGING, A_DIRECT, A_TOP = A_DIRECT };
/* A_LOGGING: srv.access_log, read once. A_DIRECT: sock is a lasync.Stream,
** read in C from its buffer (no string per read); otherwise (TLS) through
** read. */
/* A request's places above them. */
enum { S_DATA = A_TOP + 1, S_REQ, S_RES, S_STATUS, S_BODY, S_HEADERS, S_LINE, S_END };

/* The upvalues after the parser's K_ ones: field names and values. */
enum { U_CURRENT = K_END, U_KEEP, U_BUF, U_POS, U_BROKEN, U_MADE_RES, U_UPGRADED,
       U_CLOSING, U_DATE, U_ACCESS_LOG, U_STARTED, U_CONN, U_REQ, U_RES, U_LOG_ACCESS, U_END };
static const char *const names[] = {"current", "keep", "buf", "pos", "broken", "made_res",
  "upgraded", "closing", "date", "access_log", "started", "conn", "req", "res", "log_access"};

/* The loop's states, each the continuation of a call that may wait. A
** step returns its results for Lua (a count, 1 or more) or GO(the next
** state): serve_k runs the states in a loop, so a connection that never
** waits (pipelined TLS records, say) does not deepen the C stack. */
enum { K_NEXT, K_PEEK, K_READ, K_HANDLER, K_WRITE, K_LOG };
#define GO(k) (-(k) - 1)

/* t[key], raw, pushed; its type. (Every table here is the server's own:
** the connection, the server, the request, the response; none has an
** __index that gives these fields.) */
static int get(lua_State *L, int t, int key) {
  lua_pushvalue(L, lua_upvalueindex(key));
  return lua_rawget(L, t);
}

/* Whether t[key] is neither nil nor false. */
static int is_set(lua_State *L, int t, int key) {
  int on;
  get(L, t, key);
  on = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return on;
}

/* t[key] = the value at index v (t and v absolute indexes). */
static void set(lua_State *L, int t, int key, int v) {
  lua_pushvalue(L, lua_upvalueindex(key));
  lua_pushvalue(L, v);
  lua_rawset(L, t);
}

/* c.buf, c.pos = data, next + 1: the rest of the read. */
static void keep_rest(lua_State *L, size_t next) {
  set(L, A_C, U_BUF, S_DATA);
  lua_pushvalue(L, lua_upvalueindex(U_POS));
  lua_pushinteger(L, (lua_Integer)next + 1);
  lua_rawset(L, A_C);
}

/* A phase change the sweeper sees. */
static void set_phase(lua_State *L, int phase) {
  Parser *ps = (Parser *)lua_touserdata(L, A_P);
  ps->phase = phase;
  ps->mark++;
}

static int serve_k(lua_State *L, int status, lua_KContext ctx);
static int start_request(lua_State *L, Parser *ps);
static int hand_back(lua_State *L, Parser *ps, int step, size_t next, size_t len);

/* Reads the next request (the connection is idle and has nothing
** buffered): from the stream's buffer, or through read. first: not the
** continuation of a wait (see lasync__stream_peek). */
static int read_next(lua_State *L, int first) {
  lua_settop(L, A_TOP);
  if (lua_toboolean(L, A_DIRECT)) {
    Parser *ps = (Parser *)lua_touserdata(L, A_P);
    const char *data;
    size_t next, len = lasync__stream_peek(L, A_SOCK, first, &data, serve_k, K_PEEK);
    if (len > 0) {
      int step = lasync__http_step(ps, data, len, 0, &next);
      if (step == STEP_HEAD && lasync__http_plain(ps) && next == len) {
        lasync__stream_consume(L, A_SOCK, len);
        lua_pushnil(L);                           /* S_DATA: no string */
        return start_request(L, ps);
      }
      lua_pushlstring(L, data, len);              /* S_DATA: the read as read() gives it */
      step = hand_back(L, ps, step, next, len);   /* (a body's piece is copied out first) */
      lasync__stream_consume(L, A_SOCK, len);
      return step;
    }                                             /* the end, an error: read says which */
  }
  lua_pushvalue(L, A_READ);
  lua_pushvalue(L, A_SOCK);
  lua_callk(L, 1, 1, K_READ, serve_k);
  return GO(K_READ);
}

/* Hands an event back to Lua as p:execute gives it; c.buf and c.pos keep
** the rest of the read (the Lua loop's own steps after its execute). */
static int hand_back(lua_State *L, Parser *ps, int step, size_t next, size_t len) {
  int n;
  if (step == STEP_MORE && len > 0) {
    lua_pushliteral(L, "more");
    return 1;
  }
  n = lasync__http_push(L, ps, step, next);
  if (step != STEP_ERROR && step != STEP_EXTRA && step != STEP_MORE && next < len)
    keep_rest(L, next);
  return n;
}

/* After the read: parse, and call the handler of a plain request. */
static int after_read(lua_State *L) {
  Parser *ps = (Parser *)lua_touserdata(L, A_P);
  size_t len, next;
  const char *data;
  int step, t = lua_type(L, S_DATA);
  if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, S_DATA))) {
    step = lasync__http_step(ps, "", 0, 0, &next);   /* the end of the stream */
    if (step == STEP_ERROR) return lasync__http_push(L, ps, step, next);
    lua_pushliteral(L, "eof");
    return 1;
  }
  if (t != LUA_TSTRING) return luaL_error(L, "http serve: read gave a %s", lua_typename(L, t));
  data = lua_tolstring(L, S_DATA, &len);
  step = lasync__http_step(ps, data, len, 0, &next);
  if (step != STEP_HEAD || !lasync__http_plain(ps) || next < len)  /* (or pipelined) */
    return hand_back(L, ps, step, next, len);
  return start_request(L, ps);
}

/* A plain request's head is parsed: make the request, call the handler. */
static int start_request(lua_State *L, Parser *ps) {
  lasync__http_request(L, ps);                    /* S_REQ */
  set_phase(L, PH_HANDLER);
  set(L, S_REQ, U_CONN, A_C);
  set(L, A_C, U_CURRENT, S_REQ);
  lua_pushvalue(L, lua_upvalueindex(U_KEEP));   /* (the Lua loop's "and not srv.closing": */
  lua_pushboolean(L, 1);                          /* every reader of c.keep checks closing too) */
  lua_rawset(L, A_C);
  if (lua_toboolean(L, A_RESARG)) {               /* S_RES: made for a handler that takes it */
    lua_createtable(L, 0, 2);
    set(L, S_RES, U_CONN, A_C);
    set(L, S_RES, U_REQ, S_REQ);
    lua_pushvalue(L, A_RESMT);
    lua_setmetatable(L, S_RES);
    set(L, S_REQ, U_RES, S_RES);
  }
  else lua_pushnil(L);
  lua_pushvalue(L, A_HANDLER);
  lua_pushvalue(L, S_REQ);
  lua_pushvalue(L, S_RES);
  lua_callk(L, 2, 3, K_HANDLER, serve_k);
  return GO(K_HANDLER);
}

/* After the handler: write the common response, or hand the rest back. */
static int after_handler(lua_State *L) {
  int common = 0;
  if (!lua_isnil(L, S_STATUS) && lua_type(L, S_BODY) == LUA_TSTRING && lua_isnil(L, S_HEADERS)) {
    lua_pushvalue(L, S_STATUS);
    common = lua_rawget(L, A_STATUS) == LUA_TSTRING;   /* S_LINE: the status line, kept */
  }
  common = common && !is_set(L, A_SRV, U_CLOSING) && !is_set(L, A_C, U_BROKEN) &&
           !is_set(L, A_C, U_MADE_RES) && !is_set(L, A_C, U_UPGRADED) &&
           !(lua_toboolean(L, S_RES) && is_set(L, S_RES, U_STARTED));
  if (!common) {
    lua_settop(L, S_HEADERS);
    lua_pushliteral(L, "slow");
    lua_replace(L, S_DATA);
    return 6;                                     /* "slow", req, res, status, body, headers */
  }
  get(L, A_SRV, U_DATE);                          /* S_LINE + 1 */
  lua_geti(L, A_TAILS, (lua_Integer)lua_rawlen(L, S_BODY));  /* its __index makes a new length's */
  if (lua_toboolean(L, A_DIRECT) && lua_type(L, -1) == LUA_TSTRING &&
      lua_type(L, -2) == LUA_TSTRING && lua_rawlen(L, S_BODY) <= INT_MAX) {
    /* one writev, no string made, no call (uv_buf_t lengths are unsigned) */
    uv_buf_t b[4];
    int i;
    for (i = 0; i < 4; i++) {
      size_t n;
      const char *p = lua_tolstring(L, i < 3 ? S_LINE + i : S_BODY, &n);
      b[i] = uv_buf_init((char *)p, (unsigned)n);
    }
    if (lasync__stream_writev(L, A_SOCK, b, 4)) return GO(K_WRITE);
  }
  set_phase(L, PH_SEND);                          /* write may wait for a slow peer */
  lua_pushvalue(L, A_WRITE);
  lua_pushvalue(L, A_SOCK);
  lua_pushvalue(L, S_LINE);
  lua_pushvalue(L, S_LINE + 1);
  lua_pushvalue(L, S_LINE + 2);
  lua_pushvalue(L, S_BODY);
  lua_callk(L, 5, 0, K_WRITE, serve_k);           /* one writev, no string made */
  return GO(K_WRITE);
}

/* After the write: the phase, the log, and the next request. */
static int after_write(lua_State *L) {
  set_phase(L, PH_IDLE);
  lua_pushvalue(L, lua_upvalueindex(U_CURRENT));  /* (a failing log is not the handler's) */
  lua_pushnil(L);
  lua_rawset(L, A_C);
  if (lua_toboolean(L, A_LOGGING)) {              /* srv:log_access(c, req, status, #body) */
    lua_pushvalue(L, lua_upvalueindex(U_LOG_ACCESS));
    lua_gettable(L, A_SRV);                       /* a method: through the metatable */
    lua_pushvalue(L, A_SRV);
    lua_pushvalue(L, A_C);
    lua_pushvalue(L, S_REQ);
    lua_pushvalue(L, S_STATUS);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, S_BODY));
    lua_callk(L, 5, 0, K_LOG, serve_k);
  }
  return GO(K_LOG);
}

/* After the log: on to the next request, or back to Lua. */
static int after_log(lua_State *L) {
  if (is_set(L, A_SRV, U_CLOSING)) {
    lua_pushliteral(L, "stop");
    return 1;
  }
  return GO(K_NEXT);                              /* (the read was used up: c.buf is nil) */
}

static int serve_k(lua_State *L, int status, lua_KContext ctx) {
  int r;
  (void)status;
  for (;;) {
    switch (ctx) {
      case K_NEXT: r = read_next(L, 1); break;
      case K_PEEK: r = read_next(L, 0); break;
      case K_READ: r = after_read(L); break;
      case K_HANDLER: r = after_handler(L); break;
      case K_WRITE: r = after_write(L); break;
      default: r = after_log(L); break;
    }
    if (r >= 0) return r;
    ctx = -r - 1;
  }
}

static int serve(lua_State *L) {
  lasync__http_check(L);
  luaL_checktype(L, A_C, LUA_TTABLE);
  luaL_checktype(L, A_SRV, LUA_TTABLE);
  if (!lua_isnil(L, A_RESMT)) luaL_checktype(L, A_RESMT, LUA_TTABLE);
  luaL_checktype(L, A_STATUS, LUA_TTABLE);
  luaL_checktype(L, A_TAILS, LUA_TTABLE);
  lua_settop(L, A_TAILS);
  lua_pushboolean(L, is_set(L, A_SRV, U_ACCESS_LOG));  /* A_LOGGING */
  lua_pushboolean(L, lasync__stream_test(L, A_SOCK) != NULL);  /* A_DIRECT */
  luaL_checkstack(L, S_END + 8 - A_TOP, "http serve");
  return serve_k(L, LUA_OK, K_NEXT);
}

int lasync__luaopen_http_loop(lua_State *L) {
  int k;
  /* the parser's metatable and its interned names are this loop's first
  ** upvalues too (lasync__http_check and push_request use them) */
  luaL_requiref(L, "async.core.http_parser", lasync__luaopen_http_parser, 0);
  lua_pop(L, 1);
  luaL_checkstack(L, U_END, "async.core.http_loop");  /* more upvalues than LUA_MINSTACK */
  lua_createtable(L, 0, 1);
  lasync__http_push_keys(L);
  for (k = U_CURRENT; k < U_END; k++) lua_pushstring(L, names[k - U_CURRENT]);
  lua_pushcclosure(L, serve, U_END - 1);
  lua_setfield(L, -2, "serve");
  return 1;
}
