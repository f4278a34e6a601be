/*
** sync.h: the entry points of the synchronization modules (queue.c,
** sync.c with barrier.c), for host.c. Not installed.
*/
#ifndef LASYNC_SYNC_H
#define LASYNC_SYNC_H

#include "module.h"

/* "async.queue", "async.sync" */
int lasync__luaopen_queue(lua_State *L);
int lasync__luaopen_sync(lua_State *L);
/* barrier.c: adds barrier() to the sync module's table on the stack */
void lasync__open_barrier(lua_State *L);

#endif
