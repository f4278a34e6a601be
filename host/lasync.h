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
**
** Threads: a host belongs to the thread that runs its loop (the loop
** thread). Every function here must be called on that thread, except
** lasync_waker_send, which any thread may call. Hosts are not locked: each
** thread may have hosts of its own, on loops of its own.
**
** docs/embedding.md is the guide and the reference of this interface.
*/
#ifndef LASYNC_H
#define LASYNC_H

#ifdef __cplusplus
extern "C" {                    /* lua.h has no C++ guard of its own */
#endif
#include <lua.h>
#include <uv.h>

#define LASYNC_VERSION "0.1.0"

typedef struct lasync_Host lasync_Host;
typedef struct lasync_Task lasync_Task;
typedef struct lasync_Wait lasync_Wait;

/* ---------------------------------------------------------------- host */

/* Creates a host on `loop`, or on a loop of its own when `loop` is NULL.
** Opens the standard libraries and makes `async` a preloaded global.
** The host adds three handles to the loop (an idle, a check and a timer
** handle; a fourth, an async handle, once a waker is made); they keep the
** loop alive only while tasks are ready or sleeping, or wakers are out.
** Returns NULL when out of memory. */
lasync_Host *lasync_new(uv_loop_t *loop);

/* Shuts the host down and frees it, with its lua_State.
** 1. Cancels every live task and runs the loop (UV_RUN_ONCE turns) until
**    they have ended and every waker has been sent and run: cleanup code
**    (pcall, `<close>`) may still wait. Done callbacks run.
** 2. Reports failures nobody observed (lasync_set_report).
** 3. Closes every handle the host and its modules opened, never the
**    application's, and closes the lua_State. On a loop of its own it then
**    runs the loop until they are closed and closes the loop. On the
**    application's loop it does not run the loop: the handles finish
**    closing at the loop's next turn, so run the loop once more before
**    uv_loop_close, as libuv requires after any uv_close.
** So the loop runs (and the application's callbacks may run) only in step
** 1, and only when tasks are alive or wakers outstanding. Because uv_run
** is not reentrant, do not call it from a callback of the running loop
** then: call lasync_cancel_all there, and free the host once
** lasync_task_count is 0. Never call it from the host's own callbacks (a
** done callback, a waker function, a C function called by Lua).
** NULL is ignored. */
void lasync_free(lasync_Host *H);

lua_State *lasync_state(lasync_Host *H);  /* the host's main state */
uv_loop_t *lasync_loop(lasync_Host *H);
lasync_Host *lasync_host(lua_State *L);   /* host of any state or task */

/* --------------------------------------------------------- running code */

/* Spawns the function on top of L's stack, below its `nargs` arguments, as a
** task; pops them and pushes the Task object. The task starts from the
** loop, never inside this call. The Task object is what keeps a lasync_Task
** pointer valid once the task is done: hold it (on a stack, in the
** registry) while you use the pointer. */
lasync_Task *lasync_spawn(lua_State *L, int nargs);

/* Called once, from the loop, when task `t` is done. L is a state of the
** host with the Task object at index 1; lasync_task_status and
** lasync_task_results(L, t) read the outcome. What it leaves on the stack
** is discarded; an error it raises is reported (lasync_set_report). It
** may spawn and cancel tasks and make wakers; it must not free the host
** or run the loop. Calling it counts as observing a failure, so a failed
** task is not reported as unobserved: the callback owns the error. */
typedef void (*lasync_DoneFn)(lua_State *L, lasync_Task *t, void *ud);

/* lasync_spawn, and fn(L, t, ud) once the task is done (also when it ends
** by cancellation at lasync_free). Pushes the Task object. */
lasync_Task *lasync_spawn_cb(lua_State *L, int nargs, lasync_DoneFn fn,
                             void *ud);

/* Calls fn(L, t, ud) once the Task object at idx is done; at once (before
** returning) when it is done already. */
void lasync_task_on_done(lua_State *L, int idx, lasync_DoneFn fn, void *ud);

/* Loads a Lua chunk and spawns it as a task, with the `nargs` values on L's
** top as its arguments (`...`). Pops them; pushes the Task object and
** returns it, or, when the chunk cannot be loaded (missing file, syntax
** error), pushes the error message and returns NULL. `path` NULL reads
** standard input; `chunkname` NULL names the chunk after its code, as
** luaL_loadstring does. Binary chunks are accepted, as luaL_loadfile does:
** load only code you trust. */
lasync_Task *lasync_spawn_file(lua_State *L, const char *path, int nargs);
lasync_Task *lasync_spawn_string(lua_State *L, const char *code,
                                 const char *chunkname, int nargs);

/* Runs a file (NULL: standard input) or a string as a task and runs the
** loop until it is done (lasync_run_until), on the host's main state.
** Returns LUA_OK and pushes the chunk's results; otherwise pushes one
** message (a string) and returns LUA_ERRFILE, LUA_ERRSYNTAX or LUA_ERRMEM
** when it could not be loaded, or LUA_ERRRUN when the task failed (the
** message is its error with the traceback), was cancelled, or deadlocked
** (it waited and nothing was left that could wake it: it is then
** cancelled, and the message says where it waited). Not from a callback
** of the running loop. */
int lasync_dofile(lasync_Host *H, const char *path);
int lasync_dostring(lasync_Host *H, const char *code);

/* ----------------------------------------------------- driving the loop */

/* Three ways to drive: lasync_run_until runs the loop to completion;
** lasync_run_once runs one turn that does not block (a game's frame); or
** the application runs the loop itself with uv_run: the host's handles are
** on it, and tasks run as it turns. None of them may be called from a
** callback of the running loop (uv_run is not reentrant). */

/* Runs the loop until `t` is done (t may be NULL: until no task is alive).
** Returns 0 when it is, 1 when the loop ran out of work first (the tasks
** left wait for something nothing can deliver: a deadlock). On the
** application's loop, its handles keep the loop turning, so a deadlock is
** only seen when the loop has nothing else to do. */
int lasync_run_until(lasync_Host *H, lasync_Task *t);

/* Runs one turn of the loop, without blocking (UV_RUN_NOWAIT): due timers,
** ready I/O, and the tasks that were ready. Returns the number of live
** tasks (not yet done). */
int lasync_run_once(lasync_Host *H);

/* The number of live tasks: spawned and not yet done. */
int lasync_task_count(lasync_Host *H);

/* Requests cancellation of every live task with the message `msg` (NULL:
** the default) and returns at once; the tasks end (their cleanup runs) as
** the loop turns. For a shutdown driven by the application's loop. */
void lasync_cancel_all(lasync_Host *H, const char *msg);

/* Interrupting code that never waits (Ctrl-C in the lasync command).
** lasync_interrupt may be called from any thread, and from a signal handler
** (it only sets a flag and a hook). Lua code that a task of H runs from
** now on without waiting, for more than about 100,000 instructions (a
** millisecond or so), raises async.Cancelled(msg) there, as if it had been
** cancelled at a wait: its cleanup runs, and it may catch it. Code about to
** wait anyway is not disturbed. msg (NULL: "interrupted") must stay valid
** until the next call. The request stands until it is delivered once, or
** withdrawn with lasync_interrupt_taken: call that when your loop gets to
** handle the interrupt itself (cancelling the task that waits, say).
** Returns 1 if a task was running Lua code at the call, else 0. */
int lasync_interrupt(lasync_Host *H, const char *msg);
/* Loop thread: withdraws the request of lasync_interrupt if it is still
** pending, and returns the task it was delivered to, or NULL (none yet:
** no task ran on without waiting). For comparison with a task you hold
** only: that task may be done. */
lasync_Task *lasync_interrupt_taken(lasync_Host *H);

/* --------------------------------------------------------------- tasks */

/* Task results, for a task that is done. lasync_task_status returns
** LASYNC_DONE, LASYNC_FAILED or LASYNC_CANCELLED (LASYNC_PENDING otherwise).
** lasync_task_results pushes its results (or its error) and returns how
** many it pushed (0 for a pending task); it marks a failure as observed.
** It reads them by pointer for the tasks C holds: those spawned with
** lasync_spawn* and those watched with lasync_task_on_done. (A task spawned
** from Lua keeps its results in its Lua object and lets go of its thread
** when done; lasync_task_on_done gives it back what C needs.) */
enum { LASYNC_PENDING, LASYNC_DONE, LASYNC_FAILED, LASYNC_CANCELLED };
int lasync_task_status(lasync_Task *t);
int lasync_task_results(lua_State *L, lasync_Task *t);
/* Pushes the traceback (a string) of the failed Task object at idx, or nil. */
void lasync_task_traceback(lua_State *L, int idx);
/* Pushes where the Task object at idx waits (a traceback), or nil. */
void lasync_task_stack(lua_State *L, int idx);
/* Requests cancellation of a task with a message (NULL: the default);
** returns 0 when it was already done. A waiting task is woken with the
** Cancelled error from the loop; a running or ready one gets it at its
** next wait. */
int lasync_cancel(lua_State *L, lasync_Task *t, const char *msg);

/* Debug mode: the loop watchdog on, failures nobody awaited reported as
** soon as the task ends (not when it is collected). */
void lasync_set_debug(lasync_Host *H, int on);

/* Where messages about failures nobody observed go (default: stderr). */
typedef void (*lasync_ReportFn)(lasync_Host *H, const char *msg, void *ud);
void lasync_set_report(lasync_Host *H, lasync_ReportFn fn, void *ud);

/* -------------------------------------------------- from other threads */

/* A waker is a one-shot call of fn(L, arg) on the loop thread that another
** thread triggers: the way to finish an operation that runs on a thread of
** the application's (a worker pool, a foreign library's callback thread).
** lasync_waker_new (loop thread) makes it; while it is unsent, the host
** keeps the loop alive and lasync_free waits for it. lasync_waker_send (any
** thread, exactly once per waker) queues the call, which runs from the
** loop; the host then frees the waker. fn gets the host's main state: it
** typically pushes results and calls lasync_wake_values on the operation's
** wait, which ignores a wait that ended meanwhile (the task was cancelled),
** and frees the operation. What fn leaves on the stack is discarded; an
** error it raises is reported. Returns NULL when out of memory, or when
** the host is being freed. */
typedef struct lasync_Waker lasync_Waker;
typedef void (*lasync_WakerFn)(lua_State *L, void *arg);
lasync_Waker *lasync_waker_new(lasync_Host *H, lasync_WakerFn fn, void *arg);
void lasync_waker_send(lasync_Waker *k);

/* ------------------------------------------------------- wait and wake */

/* How a C function makes a task wait (a native awaitable):
**   lasync_checktask(L, "app.query");      raises before anything starts
**   start the operation, its state holding a lasync_Wait
**   return lasync_wait(L, &op->wait, op_cancel, NULL, 0);
** and later, from the operation's libuv callback:
**   push results; lasync_wake_values(L, &op->wait, n);
** Everything here runs on the loop thread; to finish an operation from
** another thread, send a lasync_Waker whose function wakes the wait. */

/* Called when the waiting task is cancelled: abort the operation. The wait
** is already over when it is called (w->task is NULL), so a late completion
** of the operation finds it stale. It runs on the loop thread, inside the
** call that cancelled (lasync_cancel, t:cancel(), a timeout). It must not
** resume anything or raise. */
typedef void (*lasync_CancelFn)(lasync_Wait *w);

struct lasync_Link { struct lasync_Link *next, *prev; };

/* Embed one in the state of each operation, zeroed before its first use
** (a wait that was never in a list has link.next NULL). Only `data` is
** yours; the rest belongs to the scheduler. The memory must stay valid
** while the wait lasts and while anything may still call lasync_wake* on
** it: a late completion reads it to see that it is stale. */
struct lasync_Wait {
  lasync_Task *task;            /* waiting task; NULL once the wait is over */
  lasync_CancelFn cancel;
  void *data;                   /* free for the module */
  struct lasync_Link link;      /* lists */
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
** the error is raised and `k` is not called. Call it only after
** lasync_checktask, with nothing between them that could wait. */
int lasync_wait(lua_State *L, lasync_Wait *w, lasync_CancelFn cancel,
                lua_KFunction k, lua_KContext ctx);

/* Wakes the task waiting on `w` (from a libuv callback or any code on the
** loop thread). lasync_wake_values moves the `n` values on L's top to the
** task; lasync_wake_error raises the value on L's top in the task. L is
** any state of the host (lasync_state(H) in a callback). The values are
** popped in every case. The task resumes later, from the loop, never
** inside this call. Returns 1 when the task was woken, 0 when the wait was
** already over (cancelled, or woken before). */
int lasync_wake(lasync_Wait *w);
int lasync_wake_values(lua_State *L, lasync_Wait *w, int n);
int lasync_wake_error(lua_State *L, lasync_Wait *w);

/* The task's own wait record. A task waits on one thing at a time, so a
** primitive whose waits need no memory of their own (a lock, a queue)
** can wait on it instead of embedding one: set its `data` and `what`,
** push it on a list, lasync_wait on it. Like any wait, it is the
** scheduler's once the wait is over; the next wait of the task reuses it. */
lasync_Wait *lasync_task_wait(lasync_Task *t);
/* A FIFO of waits, for primitives where several tasks wait on one thing.
** The list holds pointers only: a wait's cancel function must remove it
** (lasync_waitlist_remove) before its memory goes. */
typedef struct lasync_Link lasync_WaitList;
void lasync_waitlist_init(lasync_WaitList *l);
void lasync_waitlist_push(lasync_WaitList *l, lasync_Wait *w);
lasync_Wait *lasync_waitlist_pop(lasync_WaitList *l);    /* NULL if empty */
void lasync_waitlist_remove(lasync_Wait *w);             /* idempotent */
int lasync_waitlist_empty(const lasync_WaitList *l);

/* ---------------------------------------------- work on a worker thread */

/* The C side of async.to_thread (host/thread/pool.c, host/thread/executor.c): a C
** function running in a task hands blocking or CPU-heavy C work to a worker
** thread of the host's default executor and waits for it like any other
** operation:
**   static void work(void *d) { ... }             worker thread, no Lua
**   static int after(lua_State *L, void *d) {     loop thread
**     if (L == NULL) { free(d); return 0; }       the task stopped waiting
**     push results; free(d); return n;            in the task
**   }
**   return lasync_work(L, work, after, d);        from a C function in a task
** work(data) runs on a worker thread and must not touch any lua_State.
** after(L, data) is then called exactly once, on the loop thread: with L
** the waiting task's state, as the wait's continuation, it pushes the
** results of the call and returns how many (it may raise, and the error is
** raised in the task); with L NULL it only frees data: the task was
** cancelled (a queued work never runs; a running one is left to finish and
** after comes when it has), the executor was closed, the host is going
** away, or lasync_work raised before queueing (not in a task, out of
** memory), which it does like lasync_checktask. */
typedef void (*lasync_WorkFn)(void *data);
typedef int (*lasync_AfterWorkFn)(lua_State *L, void *data);
int lasync_work(lua_State *L, lasync_WorkFn work, lasync_AfterWorkFn after,
                void *data);

/* ----------------------------------------------------------------- REPL */

/* The interactive REPL of the lasync command (docs/repl.md), on any host:
** a daemon can offer a live console on a socket or a terminal. It reads
** chunks from in_fd while the loop goes on, runs each as a task (printing
** its values or its error) and reads on when that task ends; the
** application's tasks and handles keep running all along. Its locals and
** helpers (help, tasks) live in an environment of its own over _G. */
typedef struct lasync_Repl lasync_Repl;

/* Called once when the user ends the session (end of input, Ctrl-D,
** `.exit`); the REPL has stopped, and R is freed after the call. */
typedef void (*lasync_ReplExitFn)(lasync_Repl *R, void *ud);

typedef struct lasync_ReplOptions {
  int in_fd, out_fd;            /* read chunks from, write to (0 and 1) */
  int edit;                     /* line editing (libedit): -1 when in_fd is a
                                   terminal and no other REPL edits (libedit
                                   is process-global), 0 never, 1 required */
  int prompt;                   /* -1: prompts when in_fd is a terminal;
                                   0 none; 1 always */
  const char *history;          /* history file when editing, or NULL */
  const char *banner;           /* written before the first prompt, or NULL */
  const char *chunkname;        /* in error messages (default "stdin") */
  lasync_ReplExitFn on_exit;
  void *ud;
} lasync_ReplOptions;

/* Fills in the defaults: 0, 1, edit and prompt -1, the rest NULL. */
void lasync_repl_options_init(lasync_ReplOptions *o);

/* Starts a REPL on H's loop and returns at once; the loop runs it. When
** out_fd is 1, values go to stdout and errors to stderr through C stdio,
** and print, io.write and reports are kept off the line being edited;
** otherwise everything goes to out_fd, and the session's `print` writes
** there. Returns NULL when in_fd is not usable, editing was required and
** is not possible, or memory ran out. The descriptors stay the caller's. */
lasync_Repl *lasync_repl_start(lasync_Host *H, const lasync_ReplOptions *o);

/* Ctrl-C (the application routes SIGINT here): cancels the task of the
** line that runs (its cleanup runs, then the prompt comes back); a second
** one leaves that task running in the background and returns to the
** prompt; at the prompt, drops the line typed so far. Code that never
** waits cannot see it: the application calls lasync_interrupt first, from
** its signal handler; when that reached a task (lasync_interrupt_taken),
** the interrupt was spent there (the line's own task counts it as its
** first Ctrl-C). */
void lasync_repl_interrupt(lasync_Repl *R);

/* Ends the REPL without on_exit: stops reading, cancels the line's task,
** puts the terminal back. R is freed once its handles have closed (the
** loop's next turn). Call it before lasync_free. */
void lasync_repl_stop(lasync_Repl *R);

#ifdef __cplusplus
}
#endif
#endif
