/*
** http_client.c: require "async.core.http": sessions (a multi handle on
** the loop, curl.c) and transfers (one easy handle each), the mechanism
** under lua/async/http/client.lua, which holds the policy (limits,
** retries of nothing, URLs, headers, JSON, the response object).
**
** A transfer starts at once and runs on its own; a task waits on it for
** its headers (wait_headers), for body bytes (read) or for its end
** (read_all). libcurl's write callback appends to the transfer's buffer;
** past `high` unread bytes it returns CURL_WRITEFUNC_PAUSE, and reading
** below it unpauses (curl_easy_pause), so a slow reader holds the
** server back and memory stays bounded. Cancelling a waiting task aborts
** the transfer: it leaves the multi at once, and libcurl closes the
** connection of a transfer cut short, so it is never reused mid-body.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>
#include "net/curl.h"
#include "io/io.h"

/* ------------------------------------------------------------ buffers */

static int buf_add(char **p, size_t *len, size_t *cap, const char *s, size_t n) {
  if (*cap - *len < n) {
    size_t c = *cap ? *cap : 1024;
    char *q;
    while (c - *len < n) c *= 2;
    if ((q = (char *)realloc(*p, c)) == NULL) return -1;
    *p = q;
    *cap = c;
  }
  memcpy(*p + *len, s, n);
  *len += n;
  return 0;
}

/* --------------------------------------------------- libcurl callbacks */

static int transfer_ready(const Transfer *t, int want) {
  return t->done || (want == WANT_HEADERS && t->headers_ready) ||
         (want == WANT_DATA && t->body_len > t->body_off);
}

void lasync__transfer_notify(Transfer *t) {
  if (t->want != WANT_NONE && t->wait.task && transfer_ready(t, t->want)) {
    t->want = WANT_NONE;
    lasync_wake(&t->wait);
  }
}

void lasync__transfer_finish(Transfer *t, CURLcode result) {
  if (t->done) return;
  t->done = 1;
  t->result = result;
  if (t->read_timer) uv_timer_stop(t->read_timer);
  lasync__transfer_notify(t);
}

static void on_read_timeout(uv_timer_t *h) {
  Transfer *t = (Transfer *)h->data;
  t->read_timed_out = 1;
  lasync__multi_remove(t);
  lasync__transfer_finish(t, CURLE_OPERATION_TIMEDOUT);
}

void lasync__transfer_activity(Transfer *t) {
  if (t->read_timer && !t->done) uv_timer_start(t->read_timer, on_read_timeout, t->read_timeout_ms, 0);
}

size_t lasync__http_on_write(char *data, size_t size, size_t n, void *ud) {
  Transfer *t = (Transfer *)ud;
  n *= size;
  if (t->high && t->body_len - t->body_off >= t->high) {
    t->paused = 1;                        /* libcurl keeps `data` for later */
    if (t->read_timer) uv_timer_stop(t->read_timer);
    return CURL_WRITEFUNC_PAUSE;
  }
  if (t->body_off > 0 && t->body_off == t->body_len) t->body_off = t->body_len = 0;
  if (buf_add(&t->body, &t->body_len, &t->body_cap, data, n)) return 0;  /* fails it */
  t->headers_ready = 1;
  lasync__transfer_activity(t);
  lasync__transfer_notify(t);
  return n;
}

/* Whether the response whose headers just ended is the last one: not a
** 1xx, and not a redirect that libcurl is about to follow. */
static int headers_final(Transfer *t) {
  long code = 0;
  size_t i;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200) return 0;
  if (!t->follow || code < 300 || code >= 400 || code == 304) return 1;
  for (i = 0; i + 9 < t->head_len; i++) {
    if (t->head[i] == '\n' && strncasecmp(t->head + i + 1, "location:", 9) == 0) return 0;
  }
  return 1;
}

size_t lasync__http_on_header(char *data, size_t size, size_t n, void *ud) {
  Transfer *t = (Transfer *)ud;
  n *= size;
  lasync__transfer_activity(t);
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) t->head_len = 0;   /* a new response */
  if (buf_add(&t->head, &t->head_len, &t->head_cap, data, n)) return 0;
  if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n')) {
    if (headers_final(t)) {
      t->headers_ready = 1;
      lasync__transfer_notify(t);
    }
  }
  return n;
}

/* ---------------------------------------------------------- transfers */

typedef struct Box { Transfer *t; } Box;

static Transfer *transfer_check(lua_State *L, int idx) {
  Box *b = (Box *)luaL_checkudata(L, idx, HTTP_TRANSFER_MT);
  if (b->t == NULL) luaL_error(L, "the response is closed");
  return b->t;
}

static void read_timer_closed(uv_handle_t *h) {
  Transfer *t = (Transfer *)h->data;
  free(h);
  free(t);
}

/* Frees the transfer (the easy handle first: it leaves the multi). */
static void transfer_free(Transfer *t) {
  Multi *m = t->m;
  if (t->wait.task) lasync_wake(&t->wait);  /* never: a waiter holds the box */
  lasync__multi_remove(t);
  if (t->easy) {
    curl_easy_cleanup(t->easy);
    lasync__http_easy_count--;
  }
  if (m) {
    if (t->prev) t->prev->next = t->next; else m->transfers = t->next;
    if (t->next) t->next->prev = t->prev;
  }
  curl_slist_free_all(t->req_headers);
  free(t->head);
  free(t->body);
  free(t->url);
  if (t->read_timer) uv_close((uv_handle_t *)t->read_timer, read_timer_closed);
  else free(t);
}

static int transfer_close(lua_State *L) {
  Box *b = (Box *)luaL_checkudata(L, 1, HTTP_TRANSFER_MT);
  if (b->t) {
    Transfer *t = b->t;
    b->t = NULL;
    transfer_free(t);
  }
  return 0;
}

static void transfer_cancel(lasync_Wait *w) {
  Transfer *t = container_of(w, Transfer, wait);
  t->want = WANT_NONE;
  t->aborted = 1;
  snprintf(t->errbuf, sizeof t->errbuf, "the request was cancelled");
  lasync__multi_remove(t);
  lasync__transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
}

/* The IOError code for a libcurl failure. */
static const char *transfer_code(Transfer *t) {
  long os = 0;
  switch (t->result) {
  case CURLE_COULDNT_CONNECT:
    curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os);
    return os ? uv_err_name(-(int)os) : "ECONNREFUSED";
  case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY: return "EAI_NONAME";
  case CURLE_OPERATION_TIMEDOUT: return "ETIMEDOUT";
  case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS: case CURLE_SSL_CRL_BADFILE: case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED: case CURLE_SSL_SHUTDOWN_FAILED: case CURLE_USE_SSL_FAILED:
    return "ETLS";
  case CURLE_TOO_MANY_REDIRECTS: return "ETOOMANYREDIRECTS";
  case CURLE_RECV_ERROR: case CURLE_SEND_ERROR: return "ECONNRESET";
  case CURLE_GOT_NOTHING: case CURLE_PARTIAL_FILE: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
  case CURLE_WEIRD_SERVER_REPLY: case CURLE_BAD_CONTENT_ENCODING: case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_URL_MALFORMAT:
    return "EPROTO";
  case CURLE_ABORTED_BY_CALLBACK: return "ECANCELED";
  case CURLE_OUT_OF_MEMORY: case CURLE_WRITE_ERROR: return "ENOMEM";
  default: return "ECURL";
  }
}

/* Raises the transfer's failure: an async.Timeout for the three timeouts
** (with `which`), an IOError otherwise; both carry code, url and
** libcurl's code and message. */
static int transfer_raise(lua_State *L, Transfer *t) {
  const char *msg = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
  if (t->result == CURLE_OPERATION_TIMEDOUT) {
    const char *which = t->read_timed_out ? "read" :
      (strncmp(msg, "Connection timed out", 20) == 0 || strncmp(msg, "Resolving", 9) == 0 ||
       strncmp(msg, "SSL connection timeout", 22) == 0) ?
      "connect" : "total";
    lua_createtable(L, 0, 6);
    lua_pushliteral(L, "Timeout");
    lua_setfield(L, -2, "kind");
    lua_pushfstring(L, "%s timeout: %s %s", which, t->method, t->url);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, which);
    lua_setfield(L, -2, "which");
    lua_pushliteral(L, "ETIMEDOUT");
    lua_setfield(L, -2, "code");
    luaL_setmetatable(L, "lasync.Timeout");
  } else {
    lasync__push_ioerror_msg(L, transfer_code(t), msg, t->method, "address", t->url);
  }
  lua_pushstring(L, t->url);
  lua_setfield(L, -2, "url");
  lua_pushinteger(L, (lua_Integer)t->result);
  lua_setfield(L, -2, "curl_code");
  lua_pushstring(L, curl_easy_strerror(t->result));
  lua_setfield(L, -2, "curl_message");
  return lua_error(L);
}

/* Waits (for `want`) unless it has come; calls k either way. */
static int transfer_wait(lua_State *L, Transfer *t, int want, lua_KFunction k, const char *what) {
  lasync_checktask(L, what);
  if (t->wait.task) return luaL_error(L, "%s: another task waits on this response", what);
  if (transfer_ready(t, want)) return k(L, LUA_YIELD, 0);
  t->want = want;
  t->wait.what = what;
  return lasync_wait(L, &t->wait, transfer_cancel, k, 0);
}

/* headers: status, raw header lines, HTTP version (10, 11, 20, 30),
** effective URL. Raises the failure when the transfer ended without. */
static int headers_k(lua_State *L, int status, lua_KContext ctx) {
  Transfer *t = transfer_check(L, 1);
  long code = 0, ver = 0;
  char *url = NULL;
  (void)status; (void)ctx;
  if (t->done && t->result != CURLE_OK) return transfer_raise(L, t);
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &ver);
  curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &url);
  lua_pushinteger(L, code);
  lua_pushlstring(L, t->head ? t->head : "", t->head_len);
  lua_pushinteger(L, ver == CURL_HTTP_VERSION_1_0 ? 10 : ver == CURL_HTTP_VERSION_1_1 ? 11 :
                     ver == CURL_HTTP_VERSION_2_0 ? 20 : ver == CURL_HTTP_VERSION_3 ? 30 : 0);
  lua_pushstring(L, url ? url : t->url);
  return 4;
}

static int transfer_headers(lua_State *L) {
  Transfer *t = transfer_check(L, 1);
  lua_settop(L, 1);
  return transfer_wait(L, t, WANT_HEADERS, headers_k, "http.headers");
}

/* Unpauses a paused transfer once the reader is below the mark. */
static void transfer_drained(Transfer *t) {
  if (t->paused && t->body_len - t->body_off < t->high && t->in_multi) {
    t->paused = 0;
    lasync__transfer_activity(t);
    curl_easy_pause(t->easy, CURLPAUSE_CONT);   /* may call on_write now */
  }
}

/* read(n): up to n bytes of body (all buffered when n is nil), or nil at
** the end; raises the failure. */
static int read_k(lua_State *L, int status, lua_KContext ctx) {
  Transfer *t = transfer_check(L, 1);
  size_t avail = t->body_len - t->body_off, n = avail;
  (void)status; (void)ctx;
  if (avail == 0) {
    if (t->done && t->result != CURLE_OK) return transfer_raise(L, t);
    lua_pushnil(L);
    return 1;
  }
  if (!lua_isnoneornil(L, 2) && (size_t)lua_tointeger(L, 2) < n) n = (size_t)lua_tointeger(L, 2);
  lua_pushlstring(L, t->body + t->body_off, n);
  t->body_off += n;
  if (t->body_off == t->body_len) t->body_off = t->body_len = 0;
  transfer_drained(t);
  return 1;
}

static int transfer_read(lua_State *L) {
  Transfer *t = transfer_check(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_argcheck(L, luaL_checkinteger(L, 2) > 0, 2, "size must be positive");
  lua_settop(L, 2);
  return transfer_wait(L, t, WANT_DATA, read_k, "http.read");
}

/* read_all(): the rest of the body, once the transfer has ended. */
static int read_all_k(lua_State *L, int status, lua_KContext ctx) {
  Transfer *t = transfer_check(L, 1);
  (void)status; (void)ctx;
  if (t->result != CURLE_OK) return transfer_raise(L, t);
  lua_pushlstring(L, t->body ? t->body + t->body_off : "", t->body_len - t->body_off);
  t->body_off = t->body_len = 0;
  return 1;
}

static int transfer_read_all(lua_State *L) {
  Transfer *t = transfer_check(L, 1);
  lua_settop(L, 1);
  t->high = 0;                            /* the whole body is wanted now */
  if (t->paused && t->in_multi) {
    t->paused = 0;
    curl_easy_pause(t->easy, CURLPAUSE_CONT);
  }
  return transfer_wait(L, t, WANT_DONE, read_all_k, "http.read_all");
}

/* complete(): waits for the end and returns what headers() does and the
** whole body: one wait for a request whose body is wanted whole. */
static int complete_k(lua_State *L, int status, lua_KContext ctx) {
  Transfer *t = transfer_check(L, 1);
  if (t->result != CURLE_OK) return transfer_raise(L, t);
  headers_k(L, status, ctx);
  lua_pushlstring(L, t->body ? t->body + t->body_off : "", t->body_len - t->body_off);
  t->body_off = t->body_len = 0;
  return 5;
}

static int transfer_complete(lua_State *L) {
  Transfer *t = transfer_check(L, 1);
  lua_settop(L, 1);
  t->high = 0;
  return transfer_wait(L, t, WANT_DONE, complete_k, "http.request");
}

/* info(): a table of what libcurl measured (times in seconds). */
static int transfer_info(lua_State *L) {
  Transfer *t = transfer_check(L, 1);
  curl_off_t v = 0;
  long conns = 0;
  lua_createtable(L, 0, 6);
  curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &v);
  lua_pushnumber(L, (double)v / 1e6);
  lua_setfield(L, -2, "total_time");
  curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &v);
  lua_pushnumber(L, (double)v / 1e6);
  lua_setfield(L, -2, "connect_time");
  curl_easy_getinfo(t->easy, CURLINFO_SIZE_DOWNLOAD_T, &v);
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, "bytes");
  curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &conns);
  lua_pushinteger(L, conns);
  lua_setfield(L, -2, "new_connections");
  lua_pushboolean(L, t->done);
  lua_setfield(L, -2, "done");
  lua_pushboolean(L, t->paused);
  lua_setfield(L, -2, "paused");
  return 1;
}

static int transfer_tostring(lua_State *L) {
  Box *b = (Box *)luaL_checkudata(L, 1, HTTP_TRANSFER_MT);
  if (b->t) lua_pushfstring(L, "HttpTransfer<%s %s>", b->t->method, b->t->url);
  else lua_pushliteral(L, "HttpTransfer<closed>");
  return 1;
}

static const luaL_Reg transfer_meta[] = {
  {"__gc", transfer_close}, {"__close", transfer_close}, {"__tostring", transfer_tostring},
  {NULL, NULL}
};
static const luaL_Reg transfer_methods[] = {
  {"headers", transfer_headers}, {"read", transfer_read}, {"read_all", transfer_read_all},
  {"complete", transfer_complete},
  {"info", transfer_info}, {"close", transfer_close}, {NULL, NULL}
};

/* Pushes a new transfer object owning t. */
void lasync__transfer_push(lua_State *L, Transfer *t) {
  Box *b = (Box *)lua_newuserdatauv(L, sizeof *b, 1);
  b->t = NULL;
  lasync__class(L, HTTP_TRANSFER_MT, transfer_meta, transfer_methods);
  lua_setmetatable(L, -2);
  b->t = t;
}
