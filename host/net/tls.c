/*
** tls.c: the native module "async.core.tls", OpenSSL over memory BIOs.
** OpenSSL never touches a socket: Lua feeds it the bytes a stream read
** and writes out the bytes it produced, so a TLS connection waits, times
** out and is cancelled exactly as the plain stream under it
** (lua/async/tls.lua makes the stream-like object).
**
**   ctx = tls.server_context(cert_path, key_path)   ALPN: http/1.1
**   ctx = tls.client_context(verify, ca_path_or_nil)
**   s = ctx:session(hostname_or_nil)                 SNI and host check
**   s:handshake() -> true when done, false when it needs more input
**   s:feed(bytes)            ciphertext from the peer
**   s:read() -> plaintext, or nil when it needs more input, or false at
**               the peer's close_notify
**   s:write(plain)           encrypts; the ciphertext comes from output
**   s:output() -> ciphertext to send ("" when none)
**   s:close_notify()         queues the closing alert
**   s:alpn() -> the protocol agreed on, or nil
** Failures raise "tls: <OpenSSL's reason>".
*/
#include <string.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <uv.h>
#include "lasync.h"
#include "module.h"

#define CTX_MT "lasync.TlsContext"
#define SESSION_MT "lasync.TlsSession"

typedef struct Ctx { SSL_CTX *ctx; } Ctx;
typedef struct Session { SSL *ssl; BIO *in, *out; } Session;

static int tls_fail(lua_State *L, const char *what) {
  unsigned long e = ERR_get_error();
  char buf[256];
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  else strcpy(buf, "unknown error");
  ERR_clear_error();
  return luaL_error(L, "tls: %s: %s", what, buf);
}

/* ----------------------------------------------------------- contexts */

static const unsigned char alpn_http11[] = "\x08http/1.1";

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg) {
  (void)ssl; (void)arg;
  if (SSL_select_next_proto((unsigned char **)out, outlen, alpn_http11,
                            sizeof alpn_http11 - 1, in, inlen) == OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_OK;
  return SSL_TLSEXT_ERR_NOACK;           /* no http/1.1 offered: go on without ALPN */
}

static Ctx *new_ctx(lua_State *L, const SSL_METHOD *m) {
  Ctx *c = (Ctx *)lua_newuserdatauv(L, sizeof *c, 0);
  c->ctx = NULL;
  luaL_setmetatable(L, CTX_MT);
  if ((c->ctx = SSL_CTX_new(m)) == NULL) tls_fail(L, "context");
  SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
  return c;
}

static int tls_server_context(lua_State *L) {
  const char *cert = luaL_checkstring(L, 1), *key = luaL_checkstring(L, 2);
  Ctx *c = new_ctx(L, TLS_server_method());
  if (SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1)
    return tls_fail(L, lua_pushfstring(L, "certificate %s", cert));
  if (SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1)
    return tls_fail(L, lua_pushfstring(L, "private key %s", key));
  if (SSL_CTX_check_private_key(c->ctx) != 1) return tls_fail(L, "the key does not match the certificate");
  SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select, NULL);
  lua_settop(L, 3);
  return 1;
}

/* The system's CA certificates, parsed once per process and shared by
** every client context (X509_STORE is reference counted and locks its own
** lookups): OpenSSL 3 takes about 20 ms of CPU to parse Debian's bundle,
** which a context per connection would spend on the loop thread each time. */
static uv_once_t default_store_once = UV_ONCE_INIT;
static X509_STORE *default_store;

static void load_default_store(void) {
  X509_STORE *st = X509_STORE_new();
  if (st && X509_STORE_set_default_paths(st) != 1) {
    X509_STORE_free(st);
    st = NULL;
  }
  default_store = st;                    /* NULL: every caller reports it */
}

static int tls_client_context(lua_State *L) {
  int verify = lua_toboolean(L, 1);
  const char *ca = luaL_optstring(L, 2, NULL);
  Ctx *c = new_ctx(L, TLS_client_method());
  if (verify) {
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (ca) {
      if (SSL_CTX_load_verify_locations(c->ctx, ca, NULL) != 1)
        return tls_fail(L, lua_pushfstring(L, "CA file %s", ca));
    } else {
      uv_once(&default_store_once, load_default_store);
      if (default_store == NULL) return tls_fail(L, "system CA certificates");
      SSL_CTX_set1_cert_store(c->ctx, default_store);
    }
  }
  SSL_CTX_set_alpn_protos(c->ctx, alpn_http11, sizeof alpn_http11 - 1);
  return 1;
}

static int ctx_gc(lua_State *L) {
  Ctx *c = (Ctx *)luaL_checkudata(L, 1, CTX_MT);
  if (c->ctx) SSL_CTX_free(c->ctx);
  c->ctx = NULL;
  return 0;
}

/* ctx:session([hostname]): a client session sends SNI and checks the
** certificate's name against hostname. */
static int ctx_session(lua_State *L) {
  Ctx *c = (Ctx *)luaL_checkudata(L, 1, CTX_MT);
  const char *host = luaL_optstring(L, 2, NULL);
  Session *s = (Session *)lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SESSION_MT);
  if (c->ctx == NULL) return luaL_error(L, "tls: the context is closed");
  if ((s->ssl = SSL_new(c->ctx)) == NULL) return tls_fail(L, "session");
  s->in = BIO_new(BIO_s_mem());
  s->out = BIO_new(BIO_s_mem());
  if (!s->in || !s->out) {
    BIO_free(s->in);
    BIO_free(s->out);
    s->in = s->out = NULL;
    return tls_fail(L, "session buffers");
  }
  BIO_set_mem_eof_return(s->in, -1);     /* empty means "more to come", not EOF */
  SSL_set_bio(s->ssl, s->in, s->out);    /* the SSL owns both now */
  if (SSL_is_server(s->ssl)) SSL_set_accept_state(s->ssl);
  else {
    SSL_set_connect_state(s->ssl);
    if (host) {
      SSL_set_tlsext_host_name(s->ssl, host);
      SSL_set1_host(s->ssl, host);
    }
  }
  return 1;
}

/* ----------------------------------------------------------- sessions */

static Session *check_session(lua_State *L) {
  Session *s = (Session *)luaL_checkudata(L, 1, SESSION_MT);
  if (s->ssl == NULL) luaL_error(L, "tls: the session is closed");
  return s;
}

/* Whether the last call just needs more input (or output drained). */
static int wants_io(Session *s, int r) {
  int e = SSL_get_error(s->ssl, r);
  return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

static int session_handshake(lua_State *L) {
  Session *s = check_session(L);
  int r;
  ERR_clear_error();                     /* SSL_get_error reads the thread's queue */
  r = SSL_do_handshake(s->ssl);
  if (r == 1) { lua_pushboolean(L, 1); return 1; }
  if (wants_io(s, r)) { lua_pushboolean(L, 0); return 1; }
  if (SSL_get_verify_result(s->ssl) != X509_V_OK)
    return luaL_error(L, "tls: handshake: certificate verification failed: %s",
                      X509_verify_cert_error_string(SSL_get_verify_result(s->ssl)));
  return tls_fail(L, "handshake");
}

static int session_feed(lua_State *L) {
  Session *s = check_session(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (n > 0 && BIO_write(s->in, p, (int)n) != (int)n) return tls_fail(L, "feed");
  return 0;
}

static int session_read(lua_State *L) {
  Session *s = check_session(L);
  luaL_Buffer b;
  int got = 0, r;
  luaL_buffinit(L, &b);
  ERR_clear_error();
  for (;;) {
    char *p = luaL_prepbuffsize(&b, 16384);
    r = SSL_read(s->ssl, p, 16384);
    if (r <= 0) break;
    luaL_addsize(&b, (size_t)r);
    got = 1;
  }
  if (got) { luaL_pushresult(&b); return 1; }
  if (wants_io(s, r)) { lua_pushnil(L); return 1; }
  if (SSL_get_error(s->ssl, r) == SSL_ERROR_ZERO_RETURN) { lua_pushboolean(L, 0); return 1; }
  return tls_fail(L, "read");
}

static int session_write(lua_State *L) {
  Session *s = check_session(L);
  size_t n, off = 0;
  const char *p = luaL_checklstring(L, 2, &n);
  ERR_clear_error();
  while (off < n) {                      /* memory BIO: never short but for errors */
    int r = SSL_write(s->ssl, p + off, (int)((n - off) > 1 << 30 ? 1 << 30 : n - off));
    if (r <= 0) return tls_fail(L, "write");
    off += (size_t)r;
  }
  return 0;
}

static int session_output(lua_State *L) {
  Session *s = check_session(L);
  char *p;
  long n = BIO_get_mem_data(s->out, &p);
  lua_pushlstring(L, n > 0 ? p : "", n > 0 ? (size_t)n : 0);
  (void)BIO_reset(s->out);
  return 1;
}

static int session_close_notify(lua_State *L) {
  Session *s = check_session(L);
  SSL_shutdown(s->ssl);
  ERR_clear_error();
  return 0;
}

static int session_alpn(lua_State *L) {
  Session *s = check_session(L);
  const unsigned char *p;
  unsigned int n;
  SSL_get0_alpn_selected(s->ssl, &p, &n);
  if (n == 0) lua_pushnil(L);
  else lua_pushlstring(L, (const char *)p, n);
  return 1;
}

static int session_gc(lua_State *L) {
  Session *s = (Session *)luaL_checkudata(L, 1, SESSION_MT);
  if (s->ssl) SSL_free(s->ssl);          /* frees both BIOs */
  s->ssl = NULL;
  return 0;
}

static const luaL_Reg ctx_methods[] = {{"session", ctx_session}, {NULL, NULL}};
static const luaL_Reg ctx_meta[] = {{"__gc", ctx_gc}, {NULL, NULL}};
static const luaL_Reg session_methods[] = {
  {"handshake", session_handshake}, {"feed", session_feed}, {"read", session_read},
  {"write", session_write}, {"output", session_output},
  {"close_notify", session_close_notify}, {"alpn", session_alpn}, {"free", session_gc},
  {NULL, NULL}
};
static const luaL_Reg session_meta[] = {{"__gc", session_gc}, {NULL, NULL}};
static const luaL_Reg tls_funcs[] = {
  {"server_context", tls_server_context}, {"client_context", tls_client_context}, {NULL, NULL}
};

int lasync__luaopen_tls(lua_State *L) {
  lasync__class(L, CTX_MT, ctx_meta, ctx_methods);
  lasync__class(L, SESSION_MT, session_meta, session_methods);
  lua_pop(L, 2);
  luaL_newlib(L, tls_funcs);
  return 1;
}
