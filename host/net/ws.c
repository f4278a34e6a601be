/*
** ws.c: the native module "async.core.ws", WebSocket framing by wslay's
** event API (framing, masking, reassembly of fragments, automatic pongs,
** the close handshake, the message size limit), with no I/O of its own:
** Lua reads bytes from the stream and feeds them in, and writes out what
** wslay produced, so every wait is a stream wait (cancellable, with
** backpressure from the stream's write queue).
**
**   w = ws.new(is_server, max_message)
**   w:feed(data) -> nil or a list {kind, data, kind, data, ...} of the
**                   messages completed ("text", "binary"; "ping", "pong")
**   w:send(kind, data)    queues a message: "text", "binary", "ping", "pong"
**   w:close(code, reason) queues the close frame
**   w:output() -> the bytes to write now ("" when none)
**   w:state() -> close_received, close_sent, code, reason, failed
** plus ws.accept_key(key) for the handshake and ws.new_key().
**
** UTF-8 of text messages and close reasons is checked here (wslay does
** not): an invalid one closes with 1007.
*/
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <wslay/wslay.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include "lasync.h"
#include "module.h"

#define WS_MT "lasync.WsCore"

typedef struct Ws {
  wslay_event_context_ptr ctx;
  lua_State *L;                   /* during feed: the messages go on its stack */
  int list;                       /* stack index of the message list, 0 if none yet */
  int nmsg;
  const char *in;                 /* feed: the bytes not yet given to wslay */
  size_t inlen;
  char *out;                      /* output: what wslay sent */
  size_t outlen, outcap;
  int busy;                       /* inside wslay: a Lua error escaped, the context is unusable */
  int failed;                     /* a protocol error: wslay closed the connection */
  uint16_t code;                  /* the peer's close code */
  char reason[124];
  size_t reasonlen;
} Ws;

/* ------------------------------------------------------------- UTF-8 */

/* Whether s[0..n) is valid UTF-8 (RFC 3629: no overlongs, surrogates or
** code points above U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xE0) == 0xC0) { k = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { k = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n - i <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

/* --------------------------------------------------------- callbacks */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                          int flags, void *ud) {
  Ws *w = (Ws *)ud;
  size_t n = w->inlen < len ? w->inlen : len;
  (void)flags;
  if (n == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  memcpy(buf, w->in, n);
  w->in += n;
  w->inlen -= n;
  return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                          int flags, void *ud) {
  Ws *w = (Ws *)ud;
  (void)flags;
  if (w->outcap - w->outlen < len) {
    size_t cap = w->outcap ? w->outcap : 4096;
    char *nb;
    while (cap - w->outlen < len) cap *= 2;
    if ((nb = (char *)realloc(w->out, cap)) == NULL) {
      wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
      return -1;
    }
    w->out = nb;
    w->outcap = cap;
  }
  memcpy(w->out + w->outlen, data, len);
  w->outlen += len;
  return (ssize_t)len;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud) {
  (void)ctx; (void)ud;
  return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static const char *const kinds[] = {"continuation", "text", "binary", "", "", "", "", "",
                                    "close", "ping", "pong"};

/* Appends kind and data to the message list on the feeding stack. */
static void deliver(Ws *w, int op, const uint8_t *msg, size_t n) {
  lua_State *L = w->L;
  if (w->list == 0) {
    lua_newtable(L);
    w->list = lua_gettop(L);
  }
  lua_pushstring(L, kinds[op]);
  lua_rawseti(L, w->list, ++w->nmsg);
  lua_pushlstring(L, (const char *)msg, n);
  lua_rawseti(L, w->list, ++w->nmsg);
}

static void ws_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                      void *ud) {
  Ws *w = (Ws *)ud;
  if (a->opcode == WSLAY_CONNECTION_CLOSE) {
    size_t n = a->msg_length > 2 ? a->msg_length - 2 : 0;
    w->code = a->status_code;
    if (n > sizeof w->reason) n = sizeof w->reason;
    if (n && !utf8_valid(a->msg + 2, n)) n = 0;   /* a bare close has msg == NULL */
    if (n) memcpy(w->reason, a->msg + 2, n);
    w->reasonlen = n;
    return;
  }
  if (a->opcode == WSLAY_TEXT_FRAME && !utf8_valid(a->msg, a->msg_length)) {
    wslay_event_queue_close(ctx, 1007, (const uint8_t *)"invalid UTF-8 in a text message", 31);
    wslay_event_shutdown_read(ctx);
    w->failed = 1;
    return;
  }
  if (a->opcode <= WSLAY_PONG) deliver(w, a->opcode, a->msg, a->msg_length);
}

static const struct wslay_event_callbacks callbacks = {
  ws_recv_cb, ws_send_cb, ws_genmask_cb, NULL, NULL, NULL, ws_msg_cb
};

/* ------------------------------------------------------------ methods */

static Ws *check_ws(lua_State *L) {
  Ws *w = (Ws *)luaL_checkudata(L, 1, WS_MT);
  if (w->ctx == NULL) luaL_error(L, "attempt to use a closed WebSocket");
  if (w->busy) luaL_error(L, "the WebSocket failed earlier (out of memory)");
  return w;
}

static int ws_feed(lua_State *L) {
  Ws *w = check_ws(L);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  int r;
  lua_settop(L, 2);
  luaL_checkstack(L, 8, NULL);
  w->L = L;
  w->list = 0;
  w->nmsg = 0;
  w->in = data;
  w->inlen = n;
  w->busy = 1;
  r = wslay_event_recv(w->ctx);
  w->busy = 0;
  w->L = NULL;
  w->in = NULL;
  w->inlen = 0;
  if (r != 0) w->failed = 1;
  if (w->list == 0) lua_pushnil(L);
  else lua_pushvalue(L, w->list);
  return 1;
}

static int ws_send(lua_State *L) {
  static const char *const names[] = {"text", "binary", "ping", "pong", NULL};
  static const uint8_t ops[] = {WSLAY_TEXT_FRAME, WSLAY_BINARY_FRAME, WSLAY_PING, WSLAY_PONG};
  Ws *w = check_ws(L);
  int k = luaL_checkoption(L, 2, NULL, names);
  size_t n;
  const char *data = luaL_optlstring(L, 3, "", &n);
  struct wslay_event_msg m;
  int r;
  if (k == 0 && !utf8_valid((const uint8_t *)data, n))
    return luaL_argerror(L, 3, "a text message must be valid UTF-8 (send it as binary)");
  if (k >= 2 && n > 125) return luaL_argerror(L, 3, "a control frame carries at most 125 bytes");
  m.opcode = ops[k];
  m.msg = (const uint8_t *)data;
  m.msg_length = n;
  r = wslay_event_queue_msg(w->ctx, &m);
  lua_pushboolean(L, r == 0);
  return 1;
}

static int ws_close(lua_State *L) {
  Ws *w = check_ws(L);
  lua_Integer code = luaL_optinteger(L, 2, 1000);
  size_t n;
  const char *reason = luaL_optlstring(L, 3, "", &n);
  luaL_argcheck(L, code == 1000 || (code >= 3000 && code <= 4999) ||
                   (code >= 1001 && code <= 1014 && code != 1004 && code != 1005 && code != 1006),
                2, "not a close code one may send");
  luaL_argcheck(L, n <= 123, 3, "a close reason is at most 123 bytes");
  luaL_argcheck(L, utf8_valid((const uint8_t *)reason, n), 3, "a close reason must be UTF-8");
  lua_pushboolean(L, wslay_event_queue_close(w->ctx, (uint16_t)code, (const uint8_t *)reason, n) == 0);
  return 1;
}

static int ws_output(lua_State *L) {
  Ws *w = check_ws(L);
  if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0) w->failed = 1;
  lua_pushlstring(L, w->out ? w->out : "", w->outlen);
  w->outlen = 0;
  if (w->outcap > 65536) {                /* a large message is out: give it back */
    free(w->out);
    w->out = NULL;
    w->outcap = 0;
  }
  return 1;
}

static int ws_state(lua_State *L) {
  Ws *w = check_ws(L);
  lua_pushboolean(L, wslay_event_get_close_received(w->ctx));
  lua_pushboolean(L, wslay_event_get_close_sent(w->ctx));
  if (wslay_event_get_close_received(w->ctx)) {
    lua_pushinteger(L, w->code ? w->code : 1005);
    lua_pushlstring(L, w->reason, w->reasonlen);
  }
  else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_pushboolean(L, w->failed);
  lua_pushinteger(L, (lua_Integer)wslay_event_get_status_code_sent(w->ctx));
  return 6;
}

static int ws_gc(lua_State *L) {
  Ws *w = (Ws *)luaL_checkudata(L, 1, WS_MT);
  if (w->ctx) wslay_event_context_free(w->ctx);
  w->ctx = NULL;
  free(w->out);
  w->out = NULL;
  return 0;
}

static int ws_new(lua_State *L) {
  int server = lua_toboolean(L, 1);
  lua_Integer max = luaL_optinteger(L, 2, 16 * 1024 * 1024);
  Ws *w;
  int r;
  luaL_argcheck(L, max > 0, 2, "the maximum message size must be positive");
  w = (Ws *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  r = server ? wslay_event_context_server_init(&w->ctx, &callbacks, w)
             : wslay_event_context_client_init(&w->ctx, &callbacks, w);
  if (r != 0) return luaL_error(L, "not enough memory for a WebSocket");
  luaL_setmetatable(L, WS_MT);
  wslay_event_config_set_max_recv_msg_length(w->ctx, (uint64_t)max);
  return 1;
}

/* ws.frame(kind, data): one unmasked frame (a server's), made by wslay's
** frame API: a broadcast frames a message once for every peer. */
typedef struct FrameOut { char *p; size_t len, cap; } FrameOut;

static ssize_t frame_send_cb(const uint8_t *data, size_t len, int flags, void *ud) {
  FrameOut *o = (FrameOut *)ud;
  (void)flags;
  if (o->cap - o->len < len) return -1;
  memcpy(o->p + o->len, data, len);
  o->len += len;
  return (ssize_t)len;
}

static int ws_frame(lua_State *L) {
  static const char *const names[] = {"text", "binary", NULL};
  int k = luaL_checkoption(L, 1, NULL, names);
  size_t n;
  const char *data = luaL_checklstring(L, 2, &n);
  struct wslay_frame_callbacks cb = {frame_send_cb, NULL, NULL};
  struct wslay_frame_iocb io;
  wslay_frame_context_ptr fc;
  FrameOut o;
  ssize_t r;
  if (k == 0 && !utf8_valid((const uint8_t *)data, n))
    return luaL_argerror(L, 2, "a text message must be valid UTF-8 (send it as binary)");
  o.cap = n + 14;                         /* the longest header is 10 bytes */
  o.p = (char *)lua_newuserdatauv(L, o.cap, 0);
  o.len = 0;
  if (wslay_frame_context_init(&fc, &cb, &o) != 0) return luaL_error(L, "not enough memory");
  memset(&io, 0, sizeof io);
  io.fin = 1;
  io.opcode = k == 0 ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
  io.payload_length = n;
  io.data = (const uint8_t *)data;
  io.data_length = n;
  r = wslay_frame_send(fc, &io);
  wslay_frame_context_free(fc);
  if (r < 0 || (size_t)r != n) return luaL_error(L, "framing failed");
  lua_pushlstring(L, o.p, o.len);
  return 1;
}

/* ws.accept_key(key): base64(SHA-1(key .. GUID)), RFC 6455 4.2.2. */
static int ws_accept_key(lua_State *L) {
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  unsigned char md[EVP_MAX_MD_SIZE], out[64];
  unsigned int mdlen = 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c && EVP_DigestInit_ex(c, EVP_sha1(), NULL) && EVP_DigestUpdate(c, key, n) &&
           EVP_DigestUpdate(c, guid, sizeof guid - 1) && EVP_DigestFinal_ex(c, md, &mdlen);
  EVP_MD_CTX_free(c);
  if (!ok) return luaL_error(L, "SHA-1 failed");
  lua_pushlstring(L, (const char *)out, (size_t)EVP_EncodeBlock(out, md, (int)mdlen));
  return 1;
}

/* ws.new_key(): 16 random bytes in base64, a client's Sec-WebSocket-Key. */
static int ws_new_key(lua_State *L) {
  unsigned char raw[16], out[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return luaL_error(L, "no random bytes");
  lua_pushlstring(L, (const char *)out, (size_t)EVP_EncodeBlock(out, raw, sizeof raw));
  return 1;
}

static const luaL_Reg ws_methods[] = {
  {"feed", ws_feed}, {"send", ws_send}, {"close", ws_close}, {"output", ws_output},
  {"state", ws_state}, {NULL, NULL}
};

static const luaL_Reg ws_meta[] = {{"__gc", ws_gc}, {NULL, NULL}};

static const luaL_Reg ws_funcs[] = {
  {"new", ws_new}, {"accept_key", ws_accept_key}, {"new_key", ws_new_key}, {"frame", ws_frame},
  {"utf8_valid", NULL}, {NULL, NULL}
};

static int ws_utf8(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, utf8_valid((const uint8_t *)s, n));
  return 1;
}

int lasync__luaopen_ws(lua_State *L) {
  lasync__class(L, WS_MT, ws_meta, ws_methods);
  lua_pop(L, 1);
  luaL_newlib(L, ws_funcs);
  lua_pushcfunction(L, ws_utf8);
  lua_setfield(L, -2, "utf8_valid");
  return 1;
}
