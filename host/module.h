/*
** module.h: what a native module may use beyond lasync.h. Modules include
** lasync.h, this header and the headers of the layers below them (io/io.h
** for streams and IOError), never core/core.h: the core's structs stay the
** core's, and what a module needs of a host or a task it asks for here.
** Not installed. docs/internals.md has the layers; host/tools/layers.py
** checks them.
*/
#ifndef LASYNC_MODULE_H
#define LASYNC_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <lauxlib.h>
#include "lasync.h"

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* lasync_assert(cond): an invariant the design states (a wait has one
** owner, a link is in one list, a wake matches the wait's generation).
** Checked when LASYNC_DEBUG is defined (make DEBUG=1 and the sanitizer
** builds), compiled out otherwise. A failure reports the condition and
** where, and aborts: the state is already wrong, going on would hide it. */
void lasync__assert_fail(const char *cond, const char *file, int line);
#ifdef LASYNC_DEBUG
#define lasync_assert(c) ((c) ? (void)0 : lasync__assert_fail(#c, __FILE__, __LINE__))
#else
#define lasync_assert(c) ((void)0)
#endif

/* Makes (once) the metatable `name` of a type: the metamethods in `meta`
** (may be NULL) and, when `methods` is not NULL, __index a table of them.
** Leaves it on the stack. Every native type is made this way. */
void lasync__class(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods);
/* The fast type check of a native type on a hot path: luaL_checkudata
** without its by-name registry lookup (a string hash and strcmp per call).
** The type's struct starts with `const char *tag`, set to the address of
** its metatable name (static const char X_MT[]); the userdata at i is one
** when its size is `size` (a light userdata has none, so only a block that
** large is read) and its tag is `mt`. Anything else goes to
** luaL_checkudata, which raises its usual error. Inline: it is on the
** path of every lock, semaphore and queue call. */
static inline void *lasync__checkudata(lua_State *L, int i, const char *mt, size_t size) {
  const char **tag = (const char **)lua_touserdata(L, i);
  if (tag != NULL && lua_rawlen(L, i) == size && *tag == mt) return tag;
  return luaL_checkudata(L, i, mt);      /* raises */
}
/* Makes (once) an error class: a metatable whose objects ({kind, message})
** print as "Kind: message"; leaves it on the stack. */
void lasync__error_class(lua_State *L, const char *name);
/* Returns the userdata of `size` bytes kept in the registry under `key`,
** making it (zeroed, with `gc` as its __gc) on first use: a module's
** per-host state, finalized when the host's state closes. */
void *lasync__host_singleton(lua_State *L, const void *key, size_t size,
                             lua_CFunction gc);

/* ------------------------------------------------------------ the host */

/* Whether lasync_free has begun: no new work, no new handles. */
int lasync__host_closing(lasync_Host *H);
/* Where the host keeps the Stream metatable's address (io/stream.c). */
const void **lasync__host_stream_mt(lasync_Host *H);
/* +1 while a REPL is open, -1 when it stops: failures nobody awaited are
** then reported as soon as the task ends (as in debug mode). */
void lasync__report_now(lasync_Host *H, int delta);
/* The report hook set with lasync_set_report (NULL: stderr), and its ud. */
lasync_ReportFn lasync__get_report(lasync_Host *H, void **ud);
/* Reports msg through the host's report hook (or on stderr). */
void lasync__report(lasync_Host *H, const char *msg);
/* lua_pcall with a traceback handler; the error (with its traceback) is
** left on the stack as lua_pcall leaves it. */
int lasync__pcall(lua_State *L, int nargs, int nres);

/* --------------------------------------------------------------- tasks */

/* The task running L, or NULL (no check, no cancellation delivered: see
** lasync_checktask for that). */
lasync_Task *lasync__task_of(lua_State *L);
/* The task's id (async.dump, t:info()), unique in its host. */
uint32_t lasync__task_id(lasync_Task *t);
/* Whether a cancellation of t is pending (it raises at t's next wait). */
int lasync__task_cancelling(lasync_Task *t);
/* lasync_spawn on host H, without keeping the results for C: a task
** nobody in C reads (a signal handler's) lets go of them like a task
** spawned from Lua. Pops the function and nargs arguments; pushes the Task. */
lasync_Task *lasync__spawn_on(lua_State *L, lasync_Host *H, int nargs);
/* Records, for the running task, that the error at err_idx comes from
** `from` (a task's name, "a worker thread") whose traceback was tb: when
** the task fails with that same error, its traceback ends with tb. */
void lasync__task_set_cause(lua_State *L, int err_idx, const char *from, const char *tb);
/* The awaiters of the pending task or future at idx, or NULL when it is
** done (then *failed tells whether it ended in error). */
lasync_WaitList *lasync__awaiters(lua_State *L, int idx, int *failed);

/* -------------------------------------------------------------- errors */

/* Pushes an async.Cancelled error with msg (NULL: the default). */
void lasync__push_cancelled(lua_State *L, const char *msg);
/* Whether the value at idx is an async.Cancelled error. */
int lasync__is_cancelled(lua_State *L, int idx);

/* lasync_new as the host H was made (the same modules preloaded). A module
** that makes hosts (async.thread) gets it here rather than naming the
** composition root that preloads the module itself. */
typedef lasync_Host *(*lasync_NewFn)(uv_loop_t *loop);
lasync_NewFn lasync__host_maker(lasync_Host *H);

/* The entry points of the data and network modules (host.c preloads them). */
int lasync__luaopen_json(lua_State *L);      /* data/json.c: async.core.json */
int lasync__luaopen_http(lua_State *L);      /* net/http_session.c: async.core.http */
int lasync__luaopen_http_parser(lua_State *L);  /* net/http_parser.c: async.core.http_parser */
int lasync__luaopen_http_loop(lua_State *L);    /* net/http_loop.c: async.core.http_loop */
int lasync__luaopen_ws(lua_State *L);        /* net/ws.c: async.core.ws */
int lasync__luaopen_tls(lua_State *L);       /* net/tls.c: async.core.tls */
int lasync__luaopen_pg(lua_State *L);        /* db/pg.c: async.core.pg */
int lasync__luaopen_redis(lua_State *L);     /* db/redis.c: async.core.redis */

#endif
