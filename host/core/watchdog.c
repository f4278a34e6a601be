/*
** watchdog.c: names code that hogs the loop while it still runs. A thread
** wakes every quarter threshold; when one resume has run past the
** threshold, it sets a count hook on the running task's thread
** (lua_sethook may be called from another thread: lua.c's Ctrl-C handling
** relies on it). The hook, run by the task itself at its next instruction,
** reports the task, its traceback and line on stderr at once, and with
** `raise` fails the task there, so one runaway handler can be stopped
** without stopping the server.
**
** Safety against a task thread being freed while the watchdog hooks it:
** the watchdog raises wd_busy before it re-reads wd_task and wd_co, and the
** loop changes them before it reads wd_busy (both sequentially consistent),
** so either the watchdog sees the change, or the loop waits for it. wd_co
** is the innermost coroutine running for the task (a generator it
** resumed), so a runaway loop inside a generator is named too.
*/
#include <stdio.h>
#include <stdlib.h>
#include <lauxlib.h>
#include "core/core.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

typedef struct lasync_Watchdog lasync_Watchdog;

struct lasync_Watchdog {
  uv_thread_t thread;
  uv_mutex_t mu;
  uv_cond_t cond;
  uint64_t threshold;             /* ns */
  uint64_t hooked_seq;            /* the resume the hook was set for */
  int raise, stop;
};

/* Runs in the task, on the loop thread, at the instruction after the
** watchdog set it. */
static void wd_hook(lua_State *L, lua_Debug *ar) {
  lasync_Task *t = lasync__task_of(L);
  lasync_Host *H;
  lasync_Watchdog *w;
  char msg[160];
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (t == NULL) return;
  H = t->H;
  lasync__intr_rearm(H, L);              /* one hook per thread: an interrupt's too */
  w = H->wd;
  if (w == NULL || LOAD(&H->wd_seq) != LOAD(&w->hooked_seq)) return;  /* stale */
  snprintf(msg, sizeof msg, "lasync watchdog: task-%u has run %.0f ms without "
           "letting other tasks run", (unsigned)t->id,
           (double)(uv_hrtime() - H->wd_start) / 1e6);
  luaL_traceback(L, L, msg, 0);
  lasync__report(H, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (w->raise) luaL_error(L, "%s", msg);
}

static void wd_main(void *arg) {
  lasync_Host *H = (lasync_Host *)arg;
  lasync_Watchdog *w = H->wd;
  uv_mutex_lock(&w->mu);
  while (!w->stop) {
    lasync_Task *t;
    lua_State *co;
    uint64_t seq;
    uv_cond_timedwait(&w->cond, &w->mu, w->threshold / 4 + 1);
    if (w->stop) break;
    t = LOAD(&H->wd_task);
    seq = LOAD(&H->wd_seq);
    if (t == NULL || seq == LOAD(&w->hooked_seq) ||
        uv_hrtime() - LOAD(&H->wd_start) < w->threshold)
      continue;
    STORE(&H->wd_busy, 1);
    co = LOAD(&H->wd_co);               /* the generator it runs, if any */
    if (LOAD(&H->wd_task) == t && LOAD(&H->wd_seq) == seq && LOAD(&H->wd_co) == co) {
      STORE(&w->hooked_seq, seq);
      lua_sethook(co, wd_hook, LUA_MASKCOUNT, 1);
    }
    STORE(&H->wd_busy, 0);
  }
  uv_mutex_unlock(&w->mu);
}

/* The loop side, around each resume (task.c). */
void lasync__wd_enter(lasync_Host *H, lasync_Task *t) {
  STORE(&H->wd_start, uv_hrtime());
  STORE(&H->wd_seq, H->wd_seq + 1);
  STORE(&H->wd_co, t->co);
  STORE(&H->wd_task, t);
}

/* The task resumes a generator (co) or comes back from one (coro.c): the
** hook must go where the code runs. Leaving a generator waits for the
** watchdog, which may be hooking it, as wd_leave does. */
void lasync__wd_switch(lasync_Host *H, lua_State *co) {
  STORE(&H->wd_co, co);
  while (LOAD(&H->wd_busy)) ;
}

void lasync__wd_leave(lasync_Host *H, lasync_Task *t) {
  STORE(&H->wd_task, (lasync_Task *)NULL);
  while (LOAD(&H->wd_busy)) ;            /* the watchdog is hooking t: wait */
  t->cpu_ns += uv_hrtime() - H->wd_start;
}

void lasync__watchdog_stop(lasync_Host *H) {
  lasync_Watchdog *w = H->wd;
  if (w == NULL) return;
  uv_mutex_lock(&w->mu);
  w->stop = 1;
  uv_cond_signal(&w->cond);
  uv_mutex_unlock(&w->mu);
  uv_thread_join(&w->thread);
  uv_cond_destroy(&w->cond);
  uv_mutex_destroy(&w->mu);
  H->wd = NULL;
  free(w);
}

/* Starts (or re-tunes) the watchdog; returns 0 or a libuv error. */
int lasync__watchdog_start(lasync_Host *H, double threshold, int raise) {
  lasync_Watchdog *w;
  int rc;
  lasync__watchdog_stop(H);
  w = (lasync_Watchdog *)calloc(1, sizeof *w);
  if (w == NULL) return UV_ENOMEM;
  w->threshold = (uint64_t)(threshold * 1e9);
  w->raise = raise;
  w->hooked_seq = (uint64_t)-1;
  uv_mutex_init(&w->mu);
  uv_cond_init(&w->cond);
  H->wd = w;
  if ((rc = uv_thread_create(&w->thread, wd_main, H)) != 0) {
    uv_cond_destroy(&w->cond);
    uv_mutex_destroy(&w->mu);
    H->wd = NULL;
    free(w);
  }
  return rc;
}

/* core.watchdog(threshold_sec [, raise]) starts it; core.watchdog(false)
** stops it. Returns whether it is on. */
static int l_watchdog(lua_State *L) {
  lasync_Host *H = lasync_host(L);
  if (lua_toboolean(L, 1)) {
    lua_Number sec = luaL_checknumber(L, 1);
    int rc;
    luaL_argcheck(L, sec > 0 && sec < 3600, 1, "threshold must be in (0, 3600) seconds");
    if ((rc = lasync__watchdog_start(H, sec, lua_toboolean(L, 2))) != 0)
      return luaL_error(L, "watchdog: %s", uv_strerror(rc));
  }
  else lasync__watchdog_stop(H);
  lua_pushboolean(L, H->wd != NULL);
  return 1;
}

int lasync__open_watchdog(lua_State *L) {
  lua_pushcfunction(L, l_watchdog);
  lua_setfield(L, -2, "watchdog");
  return 0;
}
