/*
** core.h: the core's structs (host, task, timer) and what the files of
** host/core and host/embed share. Not installed; embedders use lasync.h,
** native modules lasync.h and module.h (docs/internals.md).
*/
#ifndef LASYNC_CORE_H
#define LASYNC_CORE_H

#include <stddef.h>
#include <stdint.h>
#include "module.h"

/* The value a task yields to the scheduler (rule 10): any other yield at
** task level is refused, and coroutine.resume forwards this one outward. */
extern char lasync__tag;
#define LASYNC_TAG ((void *)&lasync__tag)

/* alloc.c: the allocator of the host's Lua state (small blocks by size). */
#define LASYNC_POOL_MAX 1024
typedef struct lasync_Alloc {
  void *free[LASYNC_POOL_MAX / 16 + 1]; /* a free list per 16-byte size */
  char *cur, *end;                      /* what is left of the newest slab */
  void *slabs;                          /* every slab, linked by first word */
  int closing;                          /* lua_close runs: frees are dropped */
} lasync_Alloc;
void *lasync__alloc(void *ud, void *ptr, size_t osize, size_t nsize);
lua_Alloc lasync__alloc_init(lasync_Alloc *A);
void lasync__alloc_closing(lasync_Alloc *A);
void lasync__alloc_close(lasync_Alloc *A);

/* Something the ready queue can run: a task step or a callback. */
typedef struct lasync_Runnable {
  struct lasync_Runnable *next;
  unsigned char kind;           /* RUN_TASK or RUN_CALLBACK */
} lasync_Runnable;
enum { RUN_TASK, RUN_CALLBACK };

/* A deadline in the host's single timer heap. */
typedef struct lasync_Timer {
  uint64_t due;                 /* ns on the host clock */
  uint32_t seq;                 /* FIFO order among equal deadlines << 1,
                                   | kind: a separate byte cost 8 bytes */
  uint32_t idx;                 /* heap slot + 1; 0 when not scheduled */
} lasync_Timer;
enum { TIMER_SLEEP, TIMER_CALLBACK };

/* Task states (lasync.h's LASYNC_* are the finished subset). */
enum { T_NEW = 10, T_READY, T_RUNNING, T_WAITING };
/* How the last wait ended. */
enum { WAKE_OK, WAKE_ERROR, WAKE_CANCEL };
#define task_done(t) ((t)->state >= LASYNC_DONE && (t)->state <= LASYNC_CANCELLED)
/* task flags */
#define TF_OBSERVED   1         /* someone saw its failure */
#define TF_CANCELREQ  2         /* a cancellation is pending */
#define TF_STARTED    4
#define TF_EXTRAS     8         /* its user value is the extras table */
#define TF_KEEPCO     16        /* C holds it: its results stay on co */

struct lasync_Task {
  lasync_Runnable run;          /* ready-queue link */
  unsigned char state, status, flags;
  int nargs;                    /* values staged on co for the next resume;
                                   once done without co, how many results */
  int ref;                      /* anchor in H's task table while alive */
  lua_State *co;
  lasync_Host *H;
  lasync_Wait *wait;            /* the wait it is in now, or NULL */
  lasync_Wait self;             /* built-in wait: sleep, await, futures */
  lasync_Timer timer;           /* built-in deadline for sleep */
  lasync_WaitList awaiters;     /* tasks awaiting this one */
  lua_KFunction k;              /* continuation of the current wait */
  lua_KContext kctx;
  unsigned gen;                 /* bumped on every wait */
  int cancel_depth;             /* of the pending cancellation */
  uint32_t id;
  uint32_t parent;              /* id of the task that spawned it, or 0 */
  uint64_t cpu_ns;              /* time spent running, when measured */
};

struct lasync_Host {
  /* host.c: what lasync_new makes */
  lua_State *L;
  uv_loop_t *loop;
  uv_loop_t own_loop;
  unsigned char own;            /* loop is own_loop */
  lasync_NewFn make;            /* what made it: lasync_new */
  unsigned libs, modules;       /* lasync_Options: what it opened */
  unsigned char warn_on, warn_cont; /* lua_warning state: off until "@on" */
  /* sched.c: the ready queue and reports */
  uv_idle_t idle;               /* keeps the loop polling while work is ready */
  uv_check_t check;             /* drains the ready queue after I/O */
  lasync_Runnable *ready_head, *ready_tail;
  lasync_ReportFn report;
  void *report_ud;
  unsigned char shuffle;        /* schedule fuzzing on (lasync_set_shuffle) */
  uint64_t shuffle_seed, shuffle_state;
  struct lasync_Runnable **shuffle_buf; /* a drain's list, to permute */
  uint32_t shuffle_cap;
  /* timer.c: the clock and the deadline heap */
  uv_timer_t uvtimer;           /* the one timer behind the heap */
  lasync_Timer **heap;          /* min-heap of deadlines */
  uint32_t heap_len, heap_cap, timer_seq;
  int64_t clock_offset;         /* ns added to uv_hrtime (keeps time monotonic
                                   across a virtual stretch) */
  uint64_t vnow;                /* the virtual clock's time, when virtual */
  uint64_t autojump;            /* real ns of idleness before it jumps */
  unsigned char virtual_clock;
  /* task.c: the tasks */
  unsigned char debug;
  int report_now;               /* REPLs open: failures reported at once */
  int tasks_ref;                /* table: slot -> Task, the strong anchors */
  int task_mt_ref;              /* the Task metatable, by integer key */
  int task_mt_gc_ref;           /* the same with __gc, for unseen failures */
  const void *task_mt, *task_mt_gc; /* the two, for lasync__totask to compare */
  int *anchor_free;             /* free slots of the task table */
  int anchor_nfree, anchor_cap, anchor_top;
  int live;                     /* tasks not yet done */
  uint32_t next_id;
  lasync_Task *current;         /* task being resumed, or NULL */
  /* interrupt.c */
  lua_State *run_co;            /* the coroutine running Lua now */
  int intr_busy, intr_req;      /* interrupters reading run_co; a request */
  int intr_ticks;               /* hook calls since the request */
  const char *intr_msg;         /* its message */
  lasync_Task *intr_taken;      /* the task the last request reached */
  char unobserved;              /* key of the weak table of failed tasks nobody awaited */
  /* watchdog.c */
  struct lasync_Watchdog *wd;   /* NULL when off */
  lasync_Task *wd_task;         /* being resumed (shared with the watchdog) */
  lua_State *wd_co;             /* the innermost coroutine it runs now */
  uint64_t wd_start, wd_seq;
  int wd_busy;
  /* io/stream.c */
  const void *stream_mt;        /* the Stream metatable, for lasync__stream_box
                                   to compare (a registry lookup cost more
                                   than the read it checked) */
  /* embed.c: wakers and freeing */
  struct lasync_Remote *remote; /* wakers, made on first use */
  int inside;                   /* depth: lasync drives the loop or runs one
                                   of its callbacks (re-entry is refused) */
  uint64_t budget_ns;           /* lasync_set_budget, 0: none */
  uint64_t budget_end;          /* while lasync_run_once runs with one */
  int budget_used;              /* this lasync_run_once has run something */
  int closing;                  /* lasync_free has begun */
  int closed;                   /* handles whose close callback ran */
  /* alloc.c */
  lasync_Alloc alloc;           /* outlives L: lua_close frees through it */
};

/* sched.c */
void lasync__sched_init(lasync_Host *H);
void lasync__ready_wakeup(lasync_Host *H);
extern const char lasync__hostkey;
void lasync__ready_push(lasync_Host *H, lasync_Runnable *r);
int lasync__yield(lua_State *L, lasync_Task *t);
void lasync__stage(lasync_Task *t, int status, lua_State *from, int n);
int lasync__list_remove(lua_State *L, int idx, int v);
int lasync__l_shuffle(lua_State *L);   /* core.shuffle */

/* task.c: a task's life; task_api.c: what Lua sees of it */
#define TASK_MT "lasync.Task"
int lasync__task_extras(lua_State *L, int idx, int make);
void lasync__task_pushname(lua_State *L, int idx, lasync_Task *t);
void lasync__task_observe(lua_State *L, lasync_Task *t);
int lasync__task_outcome(lua_State *L, int idx, lasync_Task *t, int raise);
int lasync__task_first(lua_State *L, int idx, lasync_Task *t);
void lasync__task_keep(lua_State *L, int idx, lasync_Task *t);
void lasync__task_report(lua_State *L, int idx, lasync_Task *t);
int lasync__open_task(lua_State *L);
void lasync__task_step(lasync_Host *H, lasync_Task *t);
int lasync__cancel(lua_State *L, lasync_Task *t, int depth);
void lasync__take_cancel(lua_State *L, lasync_Task *t);
extern const char lasync__what_task[];
lasync_Task *lasync__checktask_arg(lua_State *L, int i);
lasync_Task *lasync__totask(lua_State *L, int i);
void lasync__report_unobserved(lasync_Host *H);
void lasync__push_tasks(lua_State *L, lasync_Host *H);
void lasync__push_task(lua_State *L, lasync_Task *t);

/* timer.c */
extern const char lasync__what_sleep[];
uint64_t lasync__now(lasync_Host *H);
void lasync__timer_start(lasync_Host *H, lasync_Timer *tm, uint64_t due, int kind);
void lasync__timer_stop(lasync_Host *H, lasync_Timer *tm);
void lasync__callback_run(lasync_Host *H, lasync_Runnable *r);
void lasync__call_soon(lua_State *L, int nargs);
void lasync__timer_init(lasync_Host *H);
void lasync__timer_jump(lasync_Host *H);
int lasync__open_timer(lua_State *L);

/* future.c (its struct is here for watch.c's awaiter helpers) */
#define FUTURE_MT "lasync.Future"
typedef struct Future {
  lasync_WaitList awaiters;
  unsigned char state;            /* LASYNC_PENDING, _DONE, _FAILED, _CANCELLED */
} Future;
int lasync__open_future(lua_State *L);

/* watch.c: waiting on many, and what awaiting a task or future needs */
int lasync__notify(lasync_Wait *w, int failed);
int lasync__open_watch(lua_State *L);
int lasync__push_first(lua_State *L, int idx);

/* watchdog.c */
void lasync__wd_enter(lasync_Host *H, lasync_Task *t);
void lasync__wd_leave(lasync_Host *H, lasync_Task *t);
void lasync__wd_switch(lasync_Host *H, lua_State *co);

/* interrupt.c */
void lasync__intr_switch(lasync_Host *H, lua_State *co);
void lasync__intr_rearm(lasync_Host *H, lua_State *L);
int lasync__watchdog_start(lasync_Host *H, double threshold, int raise);
void lasync__watchdog_stop(lasync_Host *H);
int lasync__open_watchdog(lua_State *L);

/* coro.c */
int lasync__open_coro(lua_State *L);

/* The native modules' entry points are in their layers' headers
** (sync/sync.h, io/io.h, thread/worker.h, repl/repl.h): host.c names them. */

/* embed.c */
void lasync__shutdown(lasync_Host *H);
void lasync__remote_close(lasync_Host *H);

/* errors: classes live in the registry under these names */
#define LASYNC_CANCELLED_MT "lasync.Cancelled"
#define LASYNC_TIMEOUT_MT "lasync.Timeout"

#endif
