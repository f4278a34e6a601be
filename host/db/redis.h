/*
** redis.h: what the two files of async.core.redis share (host/db/redis.c,
** the connection on the loop; host/db/redis_reply.c, the conversions
** between hiredis' replies and errors and Lua values). Not installed.
*/
#ifndef LASYNC_DB_REDIS_H
#define LASYNC_DB_REDIS_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include "module.h"

#define LASYNC_REDISERROR_MT "lasync.RedisError"

enum { S_CONNECTING, S_OPEN, S_LOST, S_CLOSED };

typedef struct Conn Conn;

/* The Lua object: a pointer to its connection (NULL once hiredis let go of
** it) and what became of it. */
typedef struct Box {
  Conn *c;
  int state;
  int inbox_ref;                /* pub/sub messages not yet read (a table) */
  int head, tail;               /* its first and next index */
  char code[16];                /* why it was lost: an IOError code */
  char err[128];                /* and hiredis' message */
  char addr[112];
} Box;

/* Argument vectors: on the stack for short commands, else malloc'd. */
typedef struct Args {
  const char *argv_s[16];
  size_t lens_s[16];
  const char **argv;
  size_t *lens;
} Args;

/* redis_reply.c */
void lasync__redis_push_error(lua_State *L, const char *s, size_t len);
void lasync__redis_push_reply(lua_State *L, const redisReply *r);
void lasync__redis_box_lost(Box *b, const redisAsyncContext *ac, int closed);
void lasync__redis_push_lost(lua_State *L, const Box *b, const char *op);
void lasync__redis_check_args(lua_State *L, int first, int top, const char *what);
int lasync__redis_collect_args(lua_State *L, int first, int top, const char **argv,
                               size_t *lens);
void lasync__redis_args_init(lua_State *L, Args *a, int n);
void lasync__redis_args_free(Args *a);

#endif
