/*
** http_parser.c: the native module "async.core.http_parser", libhttp-parser
** (Node's HTTP/1.1 parser) driven from Lua for the server's request path.
**
** A Parser consumes the bytes a connection reads and reports one event per
** call: p:execute(data, pos) returns
**   "head", nextpos, request, plain
**                                the request line and headers are complete;
**                                plain: a keep-alive HTTP/1.1 request without
**                                a body, not HEAD (the server's common case,
**                                told without four table reads)
**   "body", nextpos, chunk       a piece of the body (chunked or not)
**   "done", nextpos              the request ended (body included)
**   "more", #data + 1            everything was consumed; read more
**   "error", status, message     the request is refused with `status`
** The parser pauses itself in each callback that makes an event, so the
** caller gets events in order and resumes at nextpos with the same string.
** A request without a body has no "done" event (req.body_done is true:
** neither content_length nor chunked says there is one).
**
** Limits are enforced here, while the bytes arrive, so nothing grows
** without bound: the URI (414), the head's size and header count (431),
** the body (413). Smuggling shapes are refused: Content-Length with
** Transfer-Encoding or two Content-Lengths (400, libhttp-parser's own
** check), a transfer coding other than chunked (501).
**
** Memory: the head is collected in one malloc'd buffer (the URI, then each
** name and value, with an index of spans), freed when it grew large; the
** Lua request table is built once, at headers-complete, with the headers as
** one packed string: parser.headers(packed) makes their table only when a
** handler reads req.headers (most hello-world-like handlers never do).
*/
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>
#include <limits.h>
#include "http_parse.h"

#define PARSER_MT "lasync.HttpParser"
#define HEAD_KEEP 4096            /* a head buffer larger than this is freed */

/* --------------------------------------------------------- collecting */

static int refuse(Parser *ps, int status, const char *why) {
  ps->status = status;
  ps->why = why;
  return -1;
}

/* Grows the head buffer to hold n more bytes; -1 when out of memory. */
static int head_grow(Parser *ps, size_t n) {
  size_t cap = ps->hcap ? ps->hcap : 512;
  char *nb;
  while (cap - ps->hlen < n) cap *= 2;
  if ((nb = (char *)realloc(ps->head, cap)) == NULL) return -1;
  ps->head = nb;
  ps->hcap = cap;
  return 0;
}

/* Appends to the head buffer; -1 when out of memory. Inline: a request
** makes a dozen appends, most of a few bytes. */
static inline int head_append(Parser *ps, const char *at, size_t n) {
  if (ps->hcap - ps->hlen < n && head_grow(ps, n)) return -1;
  memcpy(ps->head + ps->hlen, at, n);
  ps->hlen += n;
  return 0;
}

static int on_message_begin(http_parser *p) {
  Parser *ps = (Parser *)p;
  ps->hlen = 0;
  ps->uri.off = ps->uri.len = 0;
  ps->nspans = ps->in_value = 0;
  ps->body_seen = 0;
  ps->te = ps->cl = ps->te_other = ps->expect_continue = ps->bodyless = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  Parser *ps = (Parser *)p;
  if (ps->uri.len + n > ps->max_uri) return refuse(ps, 414, "the URI is too long");
  if (ps->hlen + n > ps->max_head) return refuse(ps, 431, "the request head is too large");
  if (head_append(ps, at, n)) return refuse(ps, 500, "out of memory");
  ps->uri.len += (uint32_t)n;
  return 0;
}

/* A header name or value piece: a new span starts when the kind changes. */
static int header_piece(Parser *ps, const char *at, size_t n, int value) {
  if (ps->hlen + n + 4 > ps->max_head)
    return refuse(ps, 431, "the request head is too large");
  if (ps->nspans == 0 || ps->in_value != value) {
    if (!value && ps->nspans / 2 >= ps->max_headers)
      return refuse(ps, 431, "too many header fields");
    if (ps->hdrs == NULL &&
        (ps->hdrs = (Span *)malloc(sizeof(Span) * 2 * (size_t)ps->max_headers)) == NULL)
      return refuse(ps, 500, "out of memory");
    if (value && ps->nspans % 2 == 0) return refuse(ps, 400, "a header value without a name");
    if (ps->hcap - ps->hlen < 4 && head_grow(ps, 4)) return refuse(ps, 500, "out of memory");
    ps->hlen += 4;                        /* room for the span's length (packed headers) */
    ps->hdrs[ps->nspans].off = (uint32_t)ps->hlen;
    ps->hdrs[ps->nspans].len = 0;
    ps->nspans++;
    ps->in_value = value;
  }
  if (head_append(ps, at, n)) return refuse(ps, 500, "out of memory");
  ps->hdrs[ps->nspans - 1].len += (uint32_t)n;
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  return header_piece((Parser *)p, at, n, 0);
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  return header_piece((Parser *)p, at, n, 1);
}

/* ------------------------------------------------------ the request table */

static const char *span(Parser *ps, Span s) { return ps->head + s.off; }

static int name_is(Parser *ps, int i, const char *name) {
  size_t n = strlen(name);
  return ps->hdrs[i].len == n && strncasecmp(span(ps, ps->hdrs[i]), name, n) == 0;
}

/* Pushes a string with the ASCII letters lowered. */
static void push_lower(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  char *d = luaL_buffinitsize(L, &b, n);
  size_t i;
  for (i = 0; i < n; i++) d[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
  luaL_pushresultsize(&b, n);
}

/* Whether the value (trimmed) is exactly `word`, case aside. */
static int value_is(const char *v, size_t n, const char *word) {
  size_t k = strlen(word);
  while (n > 0 && (*v == ' ' || *v == '\t')) { v++; n--; }
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  return n == k && strncasecmp(v, word, k) == 0;
}

/* Looks at the headers that decide framing; 0, or refuses. */
static int check_framing(Parser *ps) {
  int i;
  for (i = 0; i + 1 < ps->nspans; i += 2) {
    Span v = ps->hdrs[i + 1];
    if (name_is(ps, i, "transfer-encoding")) {
      ps->te++;
      if (!value_is(span(ps, v), v.len, "chunked")) ps->te_other = 1;
    }
    else if (name_is(ps, i, "content-length")) ps->cl++;
    else if (name_is(ps, i, "expect")) {
      if (!value_is(span(ps, v), v.len, "100-continue"))
        return refuse(ps, 417, "only Expect: 100-continue is supported");
      ps->expect_continue = 1;
    }
  }
  if (ps->te && ps->cl)
    return refuse(ps, 400, "both Content-Length and Transfer-Encoding");
  if (ps->cl > 1) return refuse(ps, 400, "more than one Content-Length");
  if (ps->te > 1 || ps->te_other)
    return refuse(ps, 501, "a transfer coding other than chunked");
  if (ps->cl && ps->p.content_length > ps->max_body)
    return refuse(ps, 413, "the body is too large");
  return 0;
}

static const char *const keys[] = {"method", "target", "version", "packed_headers",
  "keep_alive", "upgrade", "content_length", "chunked", "expect_continue", "GET"};

/* t[key] = true, t on top. (Values are pushed after their key, each
** key an upvalue: lua_setfield would look each name up again on every
** request, and lua_insert to put a key under its value costs a rotate.) */
static void set_true(lua_State *L, int key) {
  lua_pushvalue(L, lua_upvalueindex(key));
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
}

/* The header spans as one string for headers() to decode when a handler
** asks: each name and value prefixed by its length (4 bytes, in the room
** header_piece left before each span). One string per request instead of
** a table and two strings per header; most handlers read few or none. */
static void push_packed_headers(lua_State *L, Parser *ps) {
  int i, n = ps->nspans & ~1;             /* a name without a value is dropped */
  uint32_t from, to;
  if (n == 0) { lua_pushliteral(L, ""); return; }
  for (i = 0; i < n; i++) memcpy(ps->head + ps->hdrs[i].off - 4, &ps->hdrs[i].len, 4);
  from = ps->hdrs[0].off - 4;
  to = ps->hdrs[n - 1].off + ps->hdrs[n - 1].len;
  lua_pushlstring(L, ps->head + from, to - from);
}

/* Pushes {method=, target=, version=, packed headers, keep_alive=,
** upgrade=, content_length=, chunked=, expect_continue=}; the Lua side
** makes req.headers from the packed string on first use. Two fields are
** left out for the common request, each a new key at ~200 instructions:
** version when it is "1.1", keep_alive when it is the version's default
** (HTTP/1.1's), and body_done (whether the request has no body follows
** from content_length and chunked); the request metatable of
** async.http.conn gives their values. */
static void push_request(lua_State *L, Parser *ps) {
  lua_createtable(L, 0, 8);                 /* room for what Lua adds (conn, res) */
  lua_pushvalue(L, lua_upvalueindex(K_METHOD));
  if (ps->p.method == HTTP_GET) lua_pushvalue(L, lua_upvalueindex(K_GET));
  else lua_pushstring(L, http_method_str((enum http_method)ps->p.method));
  lua_rawset(L, -3);
  lua_pushvalue(L, lua_upvalueindex(K_TARGET));
  lua_pushlstring(L, span(ps, ps->uri), ps->uri.len);
  lua_rawset(L, -3);
  if (ps->p.http_major != 1 || ps->p.http_minor != 1) {
    lua_pushvalue(L, lua_upvalueindex(K_VERSION));
    lua_pushstring(L, ps->p.http_major == 1 ? "1.0" : "0.9");
    lua_rawset(L, -3);
  }
  lua_pushvalue(L, lua_upvalueindex(K_PACKED));
  push_packed_headers(L, ps);
  lua_rawset(L, -3);
  /* flags are set only when true: nil reads as false, and each field
  ** costs on every request */
  if (http_should_keep_alive(&ps->p) != (ps->p.http_major == 1 && ps->p.http_minor == 1)) {
    lua_pushvalue(L, lua_upvalueindex(K_KEEP));       /* not the version's default */
    lua_pushboolean(L, !(ps->p.http_major == 1 && ps->p.http_minor == 1));
    lua_rawset(L, -3);
  }
  if (ps->p.upgrade) set_true(L, K_UPGRADE);
  if (ps->cl) {
    lua_pushvalue(L, lua_upvalueindex(K_LENGTH));
    lua_pushinteger(L, (lua_Integer)ps->p.content_length);
    lua_rawset(L, -3);
  }
  if (ps->p.flags & F_CHUNKED) set_true(L, K_CHUNKED);
  if (ps->expect_continue) set_true(L, K_EXPECT);
  if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) lua_setmetatable(L, -2);
  else lua_pop(L, 1);
}

/* parser.headers(packed [, mt]): the table {lowercase name = value} from a
** request's packed headers (see push_packed_headers), with metatable mt.
** A repeated header's values are joined with ", " (RFC 9110 5.3). */
static int parser_headers(lua_State *L) {
  size_t len, pos = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_createtable(L, 0, 8);
  while (len - pos >= 8) {
    uint32_t nl, vl;
    const char *name;
    memcpy(&nl, s + pos, 4);
    if (nl > len - pos - 8) break;
    name = s + pos + 4;
    memcpy(&vl, name + nl, 4);
    if (vl > len - pos - 8 - nl) break;
    push_lower(L, name, nl);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, name + nl + 4, vl);
      lua_concat(L, 3);
    }
    else {
      lua_pop(L, 1);
      lua_pushlstring(L, name + nl + 4, vl);
    }
    lua_rawset(L, -3);
    pos += 8 + (size_t)nl + vl;
  }
  if (pos != len) return luaL_argerror(L, 1, "not a request's packed headers");
  if (lua_istable(L, 2)) {
    lua_pushvalue(L, 2);
    lua_setmetatable(L, -2);
  }
  return 1;
}

/* A request without a body (no Content-Length or 0, not chunked) is not
** paused here: the parser goes on to its end in the same call, and the
** head event says the body is done (one call per request, not two). */
static int on_headers_complete(http_parser *p) {
  Parser *ps = (Parser *)p;
  if (check_framing(ps)) return -1;
  ps->event = EV_HEAD;
  ps->bodyless = !(p->flags & F_CHUNKED) && (p->content_length == 0 || p->content_length == ULLONG_MAX);
  if (!ps->bodyless) http_parser_pause(p, 1);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  Parser *ps = (Parser *)p;
  ps->body_seen += n;
  if (ps->body_seen > ps->max_body) return refuse(ps, 413, "the body is too large");
  ps->event = EV_BODY;
  ps->at = at;
  ps->atlen = n;
  http_parser_pause(p, 1);
  return 0;
}

static int on_message_complete(http_parser *p) {
  Parser *ps = (Parser *)p;
  if (ps->event != EV_HEAD) ps->event = EV_DONE;   /* else: a bodyless request's head */
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
  .on_message_begin = on_message_begin, .on_url = on_url,
  .on_header_field = on_header_field, .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete, .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------ the type */

/* luaL_checkudata without its lookup by name: execute runs several times
** per request. The metatable is the function's upvalue K_MT. */
Parser *lasync__http_check(lua_State *L) {
  void *p = lua_touserdata(L, 1);
  if (p != NULL && lua_getmetatable(L, 1)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(K_MT));
    lua_pop(L, 1);
    if (same) return (Parser *)p;
  }
  luaL_typeerror(L, 1, PARSER_MT);
  return NULL;
}

/* A large head is over: give its buffer back. */
static void trim_head(Parser *ps) {
  if (ps->hcap > HEAD_KEEP) {
    free(ps->head);
    ps->head = NULL;
    ps->hcap = ps->hlen = 0;
  }
}

void lasync__http_request(lua_State *L, Parser *ps) {
  push_request(L, ps);
  if (ps->bodyless) trim_head(ps);
}

int lasync__http_plain(Parser *ps) {
  return ps->bodyless && ps->p.http_major == 1 && ps->p.http_minor == 1 &&
         ps->p.method != HTTP_HEAD && http_should_keep_alive(&ps->p);
}

/* The status and message for libhttp-parser's own errors. */
static int parse_error(lua_State *L, Parser *ps) {
  enum http_errno e = HTTP_PARSER_ERRNO(&ps->p);
  int status = 400;
  const char *why = http_errno_description(e);
  if (ps->status) { status = ps->status; why = ps->why; }
  else if (e == HPE_HEADER_OVERFLOW) status = 431;
  else if (e == HPE_UNEXPECTED_CONTENT_LENGTH)
    why = "both Content-Length and Transfer-Encoding, or two Content-Lengths";
  else if (e == HPE_INVALID_TRANSFER_ENCODING) status = 501;
  lua_pushliteral(L, "error");
  lua_pushinteger(L, status);
  lua_pushstring(L, why);
  return 3;
}

static int failed(Parser *ps) {
  return ps->status || (HTTP_PARSER_ERRNO(&ps->p) != HPE_OK &&
                        HTTP_PARSER_ERRNO(&ps->p) != HPE_PAUSED);
}

int lasync__http_step(Parser *ps, const char *data, size_t len, size_t pos, size_t *next) {
  size_t n;
  *next = pos;
  if (failed(ps)) return STEP_ERROR;      /* a parser that failed stays failed */
  if (len > 0 && pos == len) return STEP_MORE;  /* nothing left: length 0 would mean EOF */
  http_parser_pause(&ps->p, 0);
  ps->event = EV_NONE;
  n = http_parser_execute(&ps->p, &settings, data + pos, len - pos);
  *next = pos + n;
  if (failed(ps)) return STEP_ERROR;
  switch (ps->event) {
    case EV_HEAD: return STEP_HEAD;
    case EV_BODY: return STEP_BODY;
    case EV_DONE: trim_head(ps); return STEP_DONE;
    default:
      if (len == 0) return STEP_MORE;     /* the end, and nothing was owed */
      /* stopped short with no error: an upgrade */
      return pos + n != len ? STEP_EXTRA : STEP_MORE;
  }
}

int lasync__http_push(lua_State *L, Parser *ps, int step, size_t next) {
  lua_Integer at = (lua_Integer)next + 1;
  switch (step) {
    case STEP_ERROR: return parse_error(L, ps);
    case STEP_HEAD:
      lua_pushliteral(L, "head");
      lua_pushinteger(L, at);
      lasync__http_request(L, ps);
      lua_pushboolean(L, lasync__http_plain(ps));  /* (from the parser's state, not the head) */
      return 4;
    case STEP_BODY:
      lua_pushliteral(L, "body");
      lua_pushinteger(L, at);
      lua_pushlstring(L, ps->at, ps->atlen);
      return 3;
    case STEP_DONE:
      lua_pushliteral(L, "done");
      lua_pushinteger(L, at);
      return 2;
    case STEP_EXTRA:
      lua_pushliteral(L, "error");
      lua_pushinteger(L, 400);
      lua_pushliteral(L, "unexpected data after the request");
      return 3;
    default:
      lua_pushliteral(L, "more");
      lua_pushinteger(L, at);
      return 2;
  }
}

static const char *const phase_names[] = {"head", "idle", "handler", "send", "body",
  "linger", "handshake", NULL};

/* hp.phase(p): the connection's phase and its count of changes. */
static int parser_phase(lua_State *L) {
  Parser *ps = lasync__http_check(L);
  lua_pushstring(L, phase_names[ps->phase]);
  lua_pushinteger(L, ps->mark);
  return 2;
}

/* hp.set_phase(p, name): a phase change the sweeper sees. */
static int parser_set_phase(lua_State *L) {
  Parser *ps = lasync__http_check(L);
  ps->phase = luaL_checkoption(L, 2, NULL, phase_names);
  ps->mark++;
  return 0;
}

/* p:execute(data, pos): the next event from data[pos..]; see the top. An
** empty data string tells the parser the peer ended the stream. */
static int parser_execute(lua_State *L) {
  Parser *ps = lasync__http_check(L);
  size_t len, next;
  int step;
  const char *data = luaL_checklstring(L, 2, &len);
  lua_Integer pos = lua_isinteger(L, 3) ? lua_tointeger(L, 3) : luaL_optinteger(L, 3, 1);
  luaL_argcheck(L, pos >= 1 && (size_t)pos <= len + 1, 3, "position out of range");
  step = lasync__http_step(ps, data, len, (size_t)pos - 1, &next);
  return lasync__http_push(L, ps, step, next);
}

static size_t opt_limit(lua_State *L, const char *key, size_t dflt) {
  lua_Integer v;
  int isnum;
  if (lua_getfield(L, 1, key) == LUA_TNIL) { lua_pop(L, 1); return dflt; }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum || v <= 0) luaL_error(L, "limits.%s must be a positive integer", key);
  lua_pop(L, 1);
  return (size_t)v;
}

/* parser.new([{max_uri=, max_head=, max_headers=, max_body=} [, request_mt
** [, headers_mt]]]): the request tables get that metatable (kept as the
** parser's user value; headers_mt is kept for compatibility and unused). */
static int parser_new(lua_State *L) {
  Parser *ps;
  size_t max_uri = 8192, max_head = 16384, max_body = 1048576, max_headers = 100;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    max_uri = opt_limit(L, "max_uri", max_uri);
    max_head = opt_limit(L, "max_head", max_head);
    max_body = opt_limit(L, "max_body", max_body);
    max_headers = opt_limit(L, "max_headers", max_headers);
    if (max_head > UINT32_MAX / 2 || max_headers > 100000)
      return luaL_error(L, "limits.max_head or limits.max_headers is too large");
  }
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
  ps = (Parser *)lua_newuserdatauv(L, sizeof *ps, 2);
  memset(ps, 0, sizeof *ps);
  luaL_setmetatable(L, PARSER_MT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 2);
  http_parser_init(&ps->p, HTTP_REQUEST);
  ps->max_uri = max_uri;
  ps->max_head = max_head;
  ps->max_body = max_body;
  ps->max_headers = (int)max_headers;
  return 1;
}

static int parser_gc(lua_State *L) {
  Parser *ps = (Parser *)luaL_checkudata(L, 1, PARSER_MT);
  free(ps->head);
  free(ps->hdrs);
  ps->head = NULL;
  ps->hdrs = NULL;
  ps->hcap = ps->hlen = 0;
  ps->nspans = 0;
  return 0;
}

static const luaL_Reg parser_methods[] = {{"execute", NULL}, {NULL, NULL}};

static const luaL_Reg parser_meta[] = {{"__gc", parser_gc}, {NULL, NULL}};

void lasync__http_push_keys(lua_State *L) {
  int k;
  luaL_getmetatable(L, PARSER_MT);
  for (k = K_METHOD; k < K_END; k++) lua_pushstring(L, keys[k - K_METHOD]);
}

int lasync__luaopen_http_parser(lua_State *L) {
  lasync__class(L, PARSER_MT, parser_meta, parser_methods);
  lua_getfield(L, -1, "__index");
  lasync__http_push_keys(L);
  lua_pushcclosure(L, parser_execute, K_END - 1);
  lua_setfield(L, -2, "execute");
  lua_pop(L, 2);
  lua_newtable(L);
  lua_pushcfunction(L, parser_new);
  lua_setfield(L, -2, "new");
  lua_pushcfunction(L, parser_headers);
  lua_setfield(L, -2, "headers");
  luaL_getmetatable(L, PARSER_MT);               /* K_MT, all lasync__http_check needs */
  lua_pushcclosure(L, parser_phase, 1);
  lua_setfield(L, -2, "phase");
  luaL_getmetatable(L, PARSER_MT);
  lua_pushcclosure(L, parser_set_phase, 1);
  lua_setfield(L, -2, "set_phase");
  return 1;
}
