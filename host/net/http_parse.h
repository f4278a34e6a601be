/*
** http_parse.h: the request parser's state and steps, shared by the
** parser module (http_parser.c, async.core.http_parser: p:execute, the
** general path) and the server's request loop (http_loop.c,
** async.core.http_loop: the common request without a Lua call per step).
** Not installed.
*/
#ifndef LASYNC_HTTP_PARSE_H
#define LASYNC_HTTP_PARSE_H

#include <stdint.h>
#include <http_parser.h>
#include "module.h"

enum { EV_NONE, EV_HEAD, EV_BODY, EV_DONE };

/* What lasync__http_step found. */
enum { STEP_MORE, STEP_HEAD, STEP_BODY, STEP_DONE, STEP_ERROR, STEP_EXTRA };

typedef struct Span { uint32_t off, len; } Span;

/* A connection's phase, which its timeout follows (async.http.server's
** sweeper): the names are phase_names in http_parser.c. */
enum { PH_HEAD, PH_IDLE, PH_HANDLER, PH_SEND, PH_BODY, PH_LINGER, PH_HANDSHAKE };

typedef struct Parser {
  http_parser p;
  /* the connection's phase, and how many times it changed (the sweeper
  ** expires a connection whose count stands still too long) */
  int phase;
  lua_Integer mark;
  /* limits */
  size_t max_uri, max_head, max_body;
  int max_headers;
  /* the head being collected */
  char *head;
  size_t hlen, hcap;
  Span uri;
  Span *hdrs;                     /* name, value, name, value, ... */
  int nspans, in_value;
  /* the message */
  uint64_t body_seen;
  int event;
  const char *at;                 /* EV_BODY: the chunk, inside the caller's string */
  size_t atlen;
  int status;                     /* set by a callback that refuses the request */
  const char *why;
  int te, cl;                     /* Transfer-Encoding and Content-Length headers seen */
  int te_other;                   /* a coding other than chunked */
  int expect_continue;
  int bodyless;                   /* the head event ends the request */
} Parser;

/* The upvalues that p:execute and the request loop share: the parser's
** metatable, then the request's field names and common values, interned
** once (lua_setfield would look each name up again on every request). */
enum { K_MT = 1, K_METHOD, K_TARGET, K_VERSION, K_PACKED, K_KEEP, K_UPGRADE, K_LENGTH,
       K_CHUNKED, K_EXPECT, K_GET, K_END };

/* Pushes the K_ upvalues (K_END - 1 values), the parser's metatable on top of
** the stack at the call. */
void lasync__http_push_keys(lua_State *L);
/* The parser at stack index 1 of a function with the K_ upvalues; raises if
** it is not one. */
Parser *lasync__http_check(lua_State *L);
/* Parses data[pos..len) (pos 0-based; len 0 says the peer ended the
** stream) up to the next event; *next is where the caller resumes. No Lua. */
int lasync__http_step(Parser *ps, const char *data, size_t len, size_t pos, size_t *next);
/* Pushes what p:execute returns for a step's result; returns how many. */
int lasync__http_push(lua_State *L, Parser *ps, int step, size_t next);
/* Pushes the request table of a STEP_HEAD (in a function with the K_
** upvalues and the parser at index 1), and gives back a large head's buffer
** when the request has no body. */
void lasync__http_request(lua_State *L, Parser *ps);
/* Whether the head just parsed is plain: keep-alive HTTP/1.1, no body, not
** HEAD (the server's common case). */
int lasync__http_plain(Parser *ps);

#endif
