/*
** redis.h: the native half of async.redis (host/db/redis.c). Not installed.
*/
#ifndef LASYNC_REDIS_H
#define LASYNC_REDIS_H

#include <lua.h>

#define LASYNC_REDISERROR_MT "lasync.RedisError"

/* The module "async.core.redis": open, stats, the Conn and RedisError
** classes. */
int lasync__luaopen_redis(lua_State *L);

#endif
