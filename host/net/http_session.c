/*
** http_session.c: the session type of async.core.http (a libcurl multi
** handle on the loop, curl.c) and session:start, which makes a transfer
** (http_client.c) from what lua/async/http/client.lua worked out: the
** method, the full URL, the header lines, the body and the options.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "net/curl.h"

typedef struct SessionBox { Multi *m; } SessionBox;

static Multi *session_check(lua_State *L, int idx) {
  SessionBox *b = (SessionBox *)luaL_checkudata(L, idx, HTTP_SESSION_MT);
  if (b->m == NULL) luaL_error(L, "the session is closed");
  return b->m;
}

/* Option `key` of the table at idx as milliseconds (seconds given), or 0. */
static long opt_ms(lua_State *L, int idx, const char *key) {
  lua_Number sec;
  int isnum;
  if (lua_getfield(L, idx, key) == LUA_TNIL) { lua_pop(L, 1); return 0; }
  sec = lua_tonumberx(L, -1, &isnum);
  if (!isnum || sec != sec || sec < 0) luaL_error(L, "%s must be a number of seconds >= 0", key);
  lua_pop(L, 1);
  if (sec > 1e9) return 0;                 /* math.huge: none */
  return sec * 1000 < 1 ? 1 : (long)ceil(sec * 1000);
}

static const char *opt_str(lua_State *L, int idx, const char *key) {
  const char *s;
  if (lua_getfield(L, idx, key) == LUA_TNIL) { lua_pop(L, 1); return NULL; }
  if ((s = lua_tostring(L, -1)) == NULL) luaL_error(L, "%s must be a string", key);
  lua_pop(L, 1);
  return s;                                /* anchored in the options table */
}

static lua_Integer opt_int(lua_State *L, int idx, const char *key, lua_Integer dflt) {
  lua_Integer v;
  int isnum;
  if (lua_getfield(L, idx, key) == LUA_TNIL) { lua_pop(L, 1); return dflt; }
  v = lua_tointegerx(L, -1, &isnum);
  if (!isnum) luaL_error(L, "%s must be an integer", key);
  lua_pop(L, 1);
  return v;
}

static int opt_bool(lua_State *L, int idx, const char *key) {
  int v;
  lua_getfield(L, idx, key);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* The easy-handle options that follow from the options table at idx. */
static void start_options(lua_State *L, int idx, Transfer *t, long total) {
  CURL *e = t->easy;
  long conn = opt_ms(L, idx, "connect_timeout");
  lua_Integer redirs = opt_int(L, idx, "max_redirects", 10), high = opt_int(L, idx, "high", 0);
  const char *s;
  if (total) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total);
  if (conn) curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conn);
  t->read_timeout_ms = (uint64_t)opt_ms(L, idx, "read_timeout");
  t->follow = redirs > 0;
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, (long)(redirs > 0));
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)redirs);
  t->high = high > 0 ? (size_t)high : 0;
  if (!opt_bool(L, idx, "no_decompress")) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  if (opt_bool(L, idx, "insecure")) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (opt_bool(L, idx, "verbose")) curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
  if ((s = opt_str(L, idx, "ca_file")) != NULL) curl_easy_setopt(e, CURLOPT_CAINFO, s);
  if ((s = opt_str(L, idx, "cert")) != NULL) curl_easy_setopt(e, CURLOPT_SSLCERT, s);
  if ((s = opt_str(L, idx, "key")) != NULL) curl_easy_setopt(e, CURLOPT_SSLKEY, s);
  if ((s = opt_str(L, idx, "proxy")) != NULL) curl_easy_setopt(e, CURLOPT_PROXY, s);
  if ((s = opt_str(L, idx, "http_version")) != NULL) {
    long v = strcmp(s, "1.1") == 0 ? CURL_HTTP_VERSION_1_1 : strcmp(s, "1.0") == 0 ?
             CURL_HTTP_VERSION_1_0 : strcmp(s, "2") == 0 ? CURL_HTTP_VERSION_2TLS :
             strcmp(s, "2-prior-knowledge") == 0 ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : -1;
    if (v < 0) luaL_error(L, "http_version must be \"1.0\", \"1.1\", \"2\" or \"2-prior-knowledge\"");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, v);
  }
}

/* The method: GET and HEAD as such, POST as a POST (so libcurl applies the
** redirect rules: 301/302/303 turn it into a GET, 307/308 keep it), any
** other as a custom request. */
static void start_method(Transfer *t, const char *method, const char *body, size_t n) {
  CURL *e = t->easy;
  if (strcmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcmp(method, "POST") == 0) curl_easy_setopt(e, CURLOPT_POST, 1L);
  else if (strcmp(method, "GET") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
  } else if (strcmp(method, "POST") == 0) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, "");
  }
}

/* The total timeout at arg (seconds; nil: none) in milliseconds. */
static long arg_ms(lua_State *L, int arg) {
  lua_Number sec;
  if (lua_isnoneornil(L, arg)) return 0;
  sec = luaL_checknumber(L, arg);
  luaL_argcheck(L, sec == sec && sec >= 0, arg, "timeout must be a number of seconds >= 0");
  if (sec > 1e9) return 0;
  return sec * 1000 < 1 ? 1 : (long)ceil(sec * 1000);
}

/* session:start(method, url, headers, body, opts [, timeout]): a running
** transfer. `opts` is read, not kept (a session passes the same table to
** many requests); `timeout` is the total in seconds. */
static int session_start(lua_State *L) {
  Multi *m = session_check(L, 1);
  const char *method = luaL_checkstring(L, 2), *url = luaL_checkstring(L, 3);
  size_t bodylen = 0;
  const char *body = luaL_optlstring(L, 5, NULL, &bodylen);
  long total = arg_ms(L, 7);
  lua_Integer i, nh;
  Transfer *t;
  luaL_checktype(L, 4, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  if ((t = (Transfer *)calloc(1, sizeof *t)) == NULL || (t->url = strdup(url)) == NULL ||
      (t->easy = curl_easy_init()) == NULL) {
    if (t) free(t->url);
    free(t);
    return luaL_error(L, "not enough memory");
  }
  lasync__http_easy_count++;
  t->m = m;
  if ((t->next = m->transfers) != NULL) t->next->prev = t;
  m->transfers = t;
  lasync__transfer_push(L, t);             /* owns t from here */
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);             /* the session outlives it */
  t->method = strcmp(method, "GET") == 0 ? "GET" : strcmp(method, "POST") == 0 ? "POST" :
              strcmp(method, "PUT") == 0 ? "PUT" : strcmp(method, "DELETE") == 0 ? "DELETE" :
              strcmp(method, "HEAD") == 0 ? "HEAD" : strcmp(method, "PATCH") == 0 ? "PATCH" :
              strcmp(method, "OPTIONS") == 0 ? "OPTIONS" : "request";
  curl_easy_setopt(t->easy, CURLOPT_URL, url);
  curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (char *)t);
  curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, lasync__http_on_write);
  curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, lasync__http_on_header);
  curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(t->easy, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(t->easy, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(t->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  if (m->cookies) curl_easy_setopt(t->easy, CURLOPT_COOKIEFILE, "");
  start_method(t, method, body, bodylen);
  nh = (lua_Integer)luaL_len(L, 4);
  for (i = 1; i <= nh; i++) {
    struct curl_slist *l;
    lua_geti(L, 4, i);
    if (!lua_isstring(L, -1)) return luaL_error(L, "header %d is not a string", (int)i);
    if ((l = curl_slist_append(t->req_headers, lua_tostring(L, -1))) == NULL)
      return luaL_error(L, "not enough memory");
    t->req_headers = l;
    lua_pop(L, 1);
  }
  if (t->req_headers) curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->req_headers);
  start_options(L, 6, t, total);
  if (t->read_timeout_ms) {
    if ((t->read_timer = (uv_timer_t *)malloc(sizeof *t->read_timer)) == NULL)
      return luaL_error(L, "not enough memory");
    uv_timer_init(lasync_loop(m->H), t->read_timer);
    t->read_timer->data = t;
    lasync__transfer_activity(t);          /* the first byte is due by then */
  }
  if (lasync__multi_add(m, t) != 0) return luaL_error(L, "the transfer could not start");
  return 1;
}

/* session:close(): aborts its transfers (their waiters raise ECANCELED),
** closes its connections. Idempotent; also __gc and __close. */
static int session_close(lua_State *L) {
  SessionBox *b = (SessionBox *)luaL_checkudata(L, 1, HTTP_SESSION_MT);
  if (b->m) {
    Multi *m = b->m;
    b->m = NULL;
    lasync__multi_close(m);
  }
  return 0;
}

/* session:stats(): {active = transfers running, transfers = open ones,
** sockets = sockets watched}. */
static int session_stats(lua_State *L) {
  Multi *m = session_check(L, 1);
  Transfer *t;
  Poll *p;
  int nt = 0, np = 0;
  for (t = m->transfers; t; t = t->next) nt++;
  for (p = m->polls; p; p = p->next) np++;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, m->active);
  lua_setfield(L, -2, "active");
  lua_pushinteger(L, nt);
  lua_setfield(L, -2, "transfers");
  lua_pushinteger(L, np);
  lua_setfield(L, -2, "sockets");
  return 1;
}

static int session_tostring(lua_State *L) {
  SessionBox *b = (SessionBox *)luaL_checkudata(L, 1, HTTP_SESSION_MT);
  if (b->m) lua_pushfstring(L, "HttpSession<%d active>", b->m->active);
  else lua_pushliteral(L, "HttpSession<closed>");
  return 1;
}

static const luaL_Reg session_meta[] = {
  {"__gc", session_close}, {"__close", session_close}, {"__tostring", session_tostring},
  {NULL, NULL}
};
static const luaL_Reg session_methods[] = {
  {"start", session_start}, {"close", session_close}, {"stats", session_stats}, {NULL, NULL}
};

/* session(limit, limit_per_host, cookies): a new session. */
static int l_session(lua_State *L) {
  lua_Integer limit = luaL_checkinteger(L, 1), per_host = luaL_checkinteger(L, 2);
  SessionBox *b;
  luaL_argcheck(L, limit > 0, 1, "limit must be positive");
  luaL_argcheck(L, per_host > 0, 2, "limit_per_host must be positive");
  b = (SessionBox *)lua_newuserdatauv(L, sizeof *b, 0);
  b->m = NULL;
  lasync__class(L, HTTP_SESSION_MT, session_meta, session_methods);
  lua_setmetatable(L, -2);
  if ((b->m = lasync__multi_new(lasync_host(L), (long)limit, (long)per_host,
                                lua_toboolean(L, 3))) == NULL)
    return luaL_error(L, "not enough memory");
  return 1;
}

/* stats(): {easy = live easy handles}, for the leak check. */
static int l_stats(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, lasync__http_easy_count);
  lua_setfield(L, -2, "easy");
  return 1;
}

int lasync__luaopen_http(lua_State *L) {
  static const luaL_Reg funcs[] = {{"session", l_session}, {"stats", l_stats}, {NULL, NULL}};
  /* Hosts on several threads may each get here: Debian's libcurl is built
  ** "threadsafe" (curl --version), so global init may run concurrently. */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  luaL_newlib(L, funcs);
  lua_pushstring(L, curl_version());
  lua_setfield(L, -2, "curl_version");
  return 1;
}
