/*
** worker.h: what copy.c, pool.c, executor.c and thread.c share: values
** encoded for another thread, functions as bytecode, and the worker pool.
** Not installed; the public part (lasync_work) is in lasync.h.
**
** Nothing crosses threads by pointer to a Lua object (rule 11): values are
** encoded into malloc'd buffers on one thread and decoded into another
** state on the other, and functions travel as bytecode.
*/
#ifndef LASYNC_WORKER_H
#define LASYNC_WORKER_H

#include "module.h"

/* ------------------------------------------------------------ copy.c */

/* A growable byte buffer from malloc: one encoding of some values. */
typedef struct lasync_Buf { char *p; size_t n, cap; } lasync_Buf;
void lasync__buf_free(lasync_Buf *b);

/* Encodes the n values from index idx of L into b (reset first). Paths in
** error messages start at `root` ("args" names value i "args[i]"; with a
** single value the root alone names it); `dir` ends them ("to a thread").
** Returns 1, or 0 with the message pushed and b freed. Never raises. */
int lasync__encode(lua_State *L, int idx, int n, lasync_Buf *b,
                   const char *root, const char *dir);

/* Pushes the values encoded in b (b is left alone) and returns how many,
** or returns -1 with an error message pushed. Never raises. */
int lasync__decode(lua_State *L, const lasync_Buf *b);

/* A Lua function as bytecode, immutable, shared between threads by an
** atomic reference count. */
typedef struct lasync_Proto {
  int refs;
  size_t len;
  char code[1];
} lasync_Proto;

/* The bytecode of the function at idx, cached per host (one dump per
** function); the caller gets a new reference. Raises "<what>: function
** ... cannot cross to a thread" for a C function or a function with an
** upvalue other than _ENV. */
lasync_Proto *lasync__proto_of(lua_State *L, int idx, const char *what);
void lasync__proto_retain(lasync_Proto *p);
void lasync__proto_release(lasync_Proto *p);
/* Loads p into L as a function whose _ENV is L's globals and pushes it;
** returns 0, or nonzero with the message pushed. */
int lasync__proto_load(lua_State *L, const lasync_Proto *p);


/* ------------------------------------------------------------ pool.c */

typedef struct lasync_Pool lasync_Pool;
typedef struct lasync_Job lasync_Job;

enum { JOB_LUA, JOB_C };                          /* job kinds */
enum { JS_NEW, JS_QUEUED, JS_RUNNING, JS_DONE };  /* where a job is */
enum { JR_OK, JR_ERROR, JR_CANCELLED };           /* how it ended */

/* One piece of work. The loop thread fills it and submits it; a worker
** runs it; the loop thread gets it back through `finish`, and whoever
** finish hands it to frees it with lasync__job_free. */
struct lasync_Job {
  lasync_Job *next, *prev;        /* in the pool's queue or done list */
  lasync_Pool *pool;
  void *worker;                   /* running it (pool mutex) */
  unsigned char kind, state, result;
  int cancel;                     /* atomic: stop it */
  lasync_Proto *proto;            /* JOB_LUA: the function ... */
  lasync_Buf args, res;           /* ... its arguments; its results or error */
  char *tb;                       /* the worker's traceback of an error */
  lasync_WorkFn work;             /* JOB_C */
  lasync_AfterWorkFn after;
  void *data;
  /* Loop thread only. finish is called once the job has ended or was
  ** dropped from the queue (result JR_CANCELLED); it may be called from a
  ** cancel function, so it must not resume or raise. */
  void (*finish)(lasync_Job *j);
  lasync_Wait wait;               /* the waiting task, or a future's watcher */
  int ref;                        /* the future of a submitted job */
  unsigned char finished;         /* finish has begun */
  unsigned char settled;          /* its future was settled by someone else */
};

/* A pool of `size` worker threads (made as work arrives) on H's loop. */
lasync_Pool *lasync__pool_new(lasync_Host *H, int size, char *err, size_t errlen);
lasync_Job *lasync__job_new(lasync_Pool *p, int kind);
void lasync__job_free(lasync_Job *j);
/* Queues j; returns 0, -1 when the pool is closed, -2 when no worker
** thread could start (j is not queued then). While jobs are in flight the
** value at `owner` (0: none) is kept alive in L's registry. */
int lasync__pool_submit(lasync_Pool *p, lasync_Job *j, lua_State *L, int owner);
/* Stops j: drops it if queued (finish runs now), interrupts it if it is a
** running Lua job (finish runs when it stops), else lets it end. */
void lasync__pool_cancel(lasync_Job *j);
/* Stops taking jobs. abort: drops the queued jobs and interrupts the
** running ones. Workers exit once the queue is empty. */
void lasync__pool_close(lasync_Pool *p, int abort);
int lasync__pool_closed(lasync_Pool *p);
/* Suspends the task running L until every worker of the closed pool has
** exited and been joined (use as `return ...`; returns 0 at once when they
** have). */
int lasync__pool_wait_joined(lua_State *L, lasync_Pool *p);
/* Closes the pool now: aborts, joins every worker (blocking), drops what
** is left without calling into Lua, and frees the pool once its handle has
** closed. For __gc and host shutdown. */
void lasync__pool_destroy(lasync_Pool *p);
/* Whether Lua may be called from finish (0 once the pool is destroyed). */
int lasync__pool_live(lasync_Pool *p);
lasync_Host *lasync__pool_host(lasync_Pool *p);

typedef struct lasync_PoolStats {
  int size, threads, idle, queued, running, inflight, closed;
} lasync_PoolStats;
void lasync__pool_stats(lasync_Pool *p, lasync_PoolStats *s);

/* ----------------------------------------------------------- worker.c */

#define WORKER_CACHE 64           /* functions kept loaded per worker */

/* A worker thread of a pool. The pool's mutex guards L, running, job,
** wake and exited; the cache belongs to the worker thread. */
typedef struct lasync_Worker {
  lasync_Pool *pool;
  uv_mutex_t *mu;                 /* the pool's */
  uv_thread_t tid;
  uv_cond_t cv;                   /* signalled to wake it from idle */
  lua_State *L;                   /* its state, while it may run jobs */
  lua_State *running;             /* the coroutine of L running now; NULL: L */
  lasync_Job *job;                /* running now */
  struct lasync_Worker *next_idle;
  int wake;                       /* set (atomic, under the mutex) to wake it */
  unsigned char exited;
  unsigned char started, joined;  /* loop thread */
  int ncache;
  lasync_Proto *cache[WORKER_CACHE];
} lasync_Worker;

/* Worker thread: makes its state (NULL when out of memory); closes it. */
lua_State *lasync__worker_open(lasync_Worker *w);
/* Makes os.exit in L raise an error naming `where` (a state on a thread
** other than the program's: ending the process from there skips cleanup). */
void lasync__forbid_exit(lua_State *L, const char *where);
void lasync__worker_close(lasync_Worker *w, lua_State *L);
/* Worker thread: runs the Lua job j in L; returns how it ended (JR_*). */
int lasync__worker_run(lasync_Worker *w, lua_State *L, lasync_Job *j);
/* Mutex held, any thread: interrupts the Lua code w runs for its job. */
void lasync__worker_interrupt(lasync_Worker *w);
/* Mutex held, worker thread: the job is over; no interruption lingers. */
void lasync__worker_reset(lasync_Worker *w);

/* executor.c: the host's default pool (made on first use); raises if it
** cannot be made. */
lasync_Pool *lasync__default_pool(lua_State *L);

/* ------------------------------------------------- modules (host.c) */

/* executor.c, thread.c: "async.core.executor" and "async.thread" */
int lasync__luaopen_executor(lua_State *L);
int lasync__luaopen_thread(lua_State *L);

#endif
