/*
** lasync.h: the public C interface of lasync, a Lua 5.4 host with a libuv
** task scheduler.
**
** Two audiences use it. Embedding applications create a host on their own
** uv_loop_t, run Lua code as tasks and drive the loop. Native modules (the
** built-in ones and an application's own) make C operations awaitable with
** the wait/wake interface below: a C function running in a task starts an
** operation, suspends the task with lasync_wait, and a libuv callback later
** wakes it with lasync_wake*.
**
** Nothing here is global: every function takes the host or a lua_State that
** belongs to one, so several hosts may live in one process.
*/
#ifndef LASYNC_H
#define LASYNC_H

#include <lua.h>
#include <uv.h>

#define LASYNC_VERSION "0.1.0"

typedef struct lasync_Host lasync_Host;
typedef struct lasync_Task lasync_Task;
typedef struct lasync_Wait lasync_Wait;

/* ---------------------------------------------------------------- host */

/* Creates a host on `loop`, or on a loop of its own when `loop` is NULL.
** Opens the standard libraries and makes `async` a preloaded global.
** Returns NULL when out of memory. */
lasync_Host *lasync_new(uv_loop_t *loop);

/* Cancels every live task, runs the loop until their cleanup is done,
** reports failures nobody observed, closes the handles the host opened
** (never the application's) and frees the host and its lua_State. */
void lasync_free(lasync_Host *H);

lua_State *lasync_state(lasync_Host *H);
uv_loop_t *lasync_loop(lasync_Host *H);
lasync_Host *lasync_host(lua_State *L);   /* host of any state or task */

/* Spawns the function on top of L's stack, below its `nargs` arguments, as a
** task; pops them and pushes the Task object. */
lasync_Task *lasync_spawn(lua_State *L, int nargs);

/* Runs the loop until `t` is done (t may be NULL: until nothing is left).
** Returns 0 when t finished, 1 when the loop ran dry first (a deadlock). */
int lasync_run_until(lasync_Host *H, lasync_Task *t);

/* Task results, for a task that is done. lasync_task_status returns
** LASYNC_DONE, LASYNC_FAILED or LASYNC_CANCELLED (LASYNC_PENDING otherwise).
** lasync_task_results pushes its results (or its error) and returns how
** many it pushed; it marks a failure as observed. */
enum { LASYNC_PENDING, LASYNC_DONE, LASYNC_FAILED, LASYNC_CANCELLED };
int lasync_task_status(lasync_Task *t);
int lasync_task_results(lua_State *L, lasync_Task *t);
/* Pushes the traceback (a string) of the failed Task object at idx, or nil. */
void lasync_task_traceback(lua_State *L, int idx);
/* Pushes where the Task object at idx waits (a traceback), or nil. */
void lasync_task_stack(lua_State *L, int idx);
/* Requests cancellation of a task with a message (NULL: the default);
** returns 0 when it was already done. */
int lasync_cancel(lua_State *L, lasync_Task *t, const char *msg);

/* Debug mode: the loop watchdog on, failures nobody awaited reported as
** soon as the task ends (not when it is collected). */
void lasync_set_debug(lasync_Host *H, int on);

/* Where messages about failures nobody observed go (default: stderr). */
typedef void (*lasync_ReportFn)(lasync_Host *H, const char *msg, void *ud);
void lasync_set_report(lasync_Host *H, lasync_ReportFn fn, void *ud);

/* ------------------------------------------------------- wait and wake */

/* Called when the waiting task is cancelled: abort the operation. The wait
** is already over when it is called (w->task is NULL), so a late completion
** of the operation finds it stale. It must not resume anything or raise. */
typedef void (*lasync_CancelFn)(lasync_Wait *w);

/* Embed one in the state of each operation. Only `data` is yours; the rest
** belongs to the scheduler. */
struct lasync_Wait {
  lasync_Task *task;            /* waiting task; NULL once the wait is over */
  lasync_CancelFn cancel;
  void *data;                   /* free for the module */
  struct lasync_Link { struct lasync_Link *next, *prev; } link;  /* lists */
  unsigned gen;                 /* generation of the task's wait */
  const char *what;             /* optional, yours: what the task waits on, for
                                   async.dump (a static string, "net.read") */
};

/* Returns the task running L, after delivering a pending cancellation (it
** raises the Cancelled error). Raises "<what>: not inside a task" when L is
** not a task, and an error when L cannot yield here. Call it before you
** start the operation, so an error leaves nothing started. */
lasync_Task *lasync_checktask(lua_State *L, const char *what);

/* Suspends the task running L on `w` (use as `return lasync_wait(...)`).
** When woken with values, the continuation `k` is called with them on top
** of the stack, above what the C function had; when `k` is NULL the values
** are returned to the Lua caller. When woken with an error or cancelled,
** the error is raised and `k` is not called. */
int lasync_wait(lua_State *L, lasync_Wait *w, lasync_CancelFn cancel,
                lua_KFunction k, lua_KContext ctx);

/* Wakes the task waiting on `w` (from a libuv callback or any code on the
** loop thread). lasync_wake_values moves the `n` values on L's top to the
** task; lasync_wake_error raises the value on L's top in the task. The
** values are popped in every case. Returns 1 when the task was woken, 0
** when the wait was already over (cancelled, or woken before). */
int lasync_wake(lasync_Wait *w);
int lasync_wake_values(lua_State *L, lasync_Wait *w, int n);
int lasync_wake_error(lua_State *L, lasync_Wait *w);

/* A FIFO of waits, for primitives where several tasks wait on one thing. */
typedef struct lasync_Link lasync_WaitList;
void lasync_waitlist_init(lasync_WaitList *l);
void lasync_waitlist_push(lasync_WaitList *l, lasync_Wait *w);
lasync_Wait *lasync_waitlist_pop(lasync_WaitList *l);    /* NULL if empty */
void lasync_waitlist_remove(lasync_Wait *w);             /* idempotent */
int lasync_waitlist_empty(const lasync_WaitList *l);

#endif
