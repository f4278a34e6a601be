/*
** interrupt.c: lasync_interrupt, stopping Lua code that never waits. A
** task that loops without waiting never gives the loop back, so nothing
** the loop does (a cancel, a signal watcher) can reach it. As lua.c does
** for Ctrl-C, the interrupter sets a count hook on the coroutine running
** now; if that code then runs on, without waiting, for INTR_GRACE
** instructions, the hook raises async.Cancelled there: a task is
** cancelled as at a wait (its cleanup runs, it may catch it). Code that
** was about to wait anyway is left alone: the loop then withdraws the
** request (lasync_interrupt_taken) and cancels at the wait instead, so an
** interrupt does not land in the middle of ordinary code. Counting
** instructions, not time, keeps a loaded machine from changing the
** outcome. While a request is pending, every coroutine the loop resumes is
** hooked too: another task may be the one that never waits.
**
** Any thread, or a signal handler, may interrupt, so nothing here locks.
** The loop thread publishes the coroutine it resumes in run_co, and the
** interrupter raises intr_busy while it reads run_co and hooks it; the
** loop changes run_co before it reads intr_busy (both sequentially
** consistent), so once it has seen intr_busy at 0 no interrupter still
** holds the old coroutine, which may then be freed (as watchdog.c does).
** A hook that fires late (the code yielded first, and the loop withdrew
** the request) finds no request and removes itself. From another thread,
** lua_sethook races with the code it hooks exactly as the watchdog's and
** the executor's interrupts do (see thread/worker.c): Lua's "reasonable
** assumptions" for an asynchronous lua_sethook.
*/
#include <lauxlib.h>
#include "core/core.h"

#define LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

#define INTR_STEP 1000                   /* instructions between hook calls */
#define INTR_GRACE 100                   /* hook calls before it raises */

/* Runs in the hooked code, on the loop thread, every INTR_STEP
** instructions while a request is pending. */
static void intr_hook(lua_State *L, lua_Debug *ar) {
  lasync_Host *H = lasync_host(L);
  const char *msg;
  (void)ar;
  if (H == NULL || !LOAD(&H->intr_req)) {
    lua_sethook(L, NULL, 0, 0);          /* withdrawn, or spent elsewhere */
    return;
  }
  if (__atomic_add_fetch(&H->intr_ticks, 1, __ATOMIC_SEQ_CST) < INTR_GRACE) return;
  lua_sethook(L, NULL, 0, 0);
  if (!__atomic_exchange_n(&H->intr_req, 0, __ATOMIC_SEQ_CST)) return;
  msg = LOAD(&H->intr_msg);
  H->intr_taken = H->current;
  if (H->current == NULL) luaL_error(L, "%s", msg);
  lasync__push_cancelled(L, msg);
  lua_error(L);
}

/* Loop thread: the hook of L was taken over (by the watchdog's): put ours
** back while a request is pending. */
void lasync__intr_rearm(lasync_Host *H, lua_State *L) {
  if (LOAD(&H->intr_req)) lua_sethook(L, intr_hook, LUA_MASKCOUNT, INTR_STEP);
}

/* Loop thread: the coroutine that runs now (NULL: none runs Lua). */
void lasync__intr_switch(lasync_Host *H, lua_State *co) {
  STORE(&H->run_co, co);
  while (LOAD(&H->intr_busy)) ;          /* an interrupter holds the old one */
  if (co != NULL && LOAD(&H->intr_req)) lua_sethook(co, intr_hook, LUA_MASKCOUNT, INTR_STEP);
}

int lasync_interrupt(lasync_Host *H, const char *msg) {
  lua_State *co;
  __atomic_add_fetch(&H->intr_busy, 1, __ATOMIC_SEQ_CST);
  STORE(&H->intr_msg, msg ? msg : "interrupted");
  STORE(&H->intr_ticks, 0);
  STORE(&H->intr_req, 1);
  co = LOAD(&H->run_co);
  if (co != NULL) lua_sethook(co, intr_hook, LUA_MASKCOUNT, INTR_STEP);
  __atomic_sub_fetch(&H->intr_busy, 1, __ATOMIC_SEQ_CST);
  return co != NULL;
}

lasync_Task *lasync_interrupt_taken(lasync_Host *H) {
  lasync_Task *t = H->intr_taken;
  STORE(&H->intr_req, 0);                /* not delivered yet: never will be */
  H->intr_taken = NULL;
  return t;
}
