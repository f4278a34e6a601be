/*
** tests/c/test_interrupt.c: lasync_interrupt, stopping Lua code that never
** waits from another thread (an application's watchdog, or its Ctrl-C):
** the code raises Cancelled where it runs, a task may catch it, code that
** waits is not disturbed, and a withdrawn request never fires later.
*/
#include "common.h"

/* started(): the code is about to loop; the interrupter thread may go. */
typedef struct Interrupter {
  lasync_Host *H;
  uv_thread_t thread;
  uv_sem_t go;
  int hooked;
} Interrupter;

static int l_started(lua_State *L) {
  Interrupter *in = (Interrupter *)lua_touserdata(L, lua_upvalueindex(1));
  uv_sem_post(&in->go);
  return 0;
}

static void interrupter_main(void *arg) {
  Interrupter *in = (Interrupter *)arg;
  uv_sem_wait(&in->go);
  in->hooked = lasync_interrupt(in->H, "stopped by the application");
}

static lasync_Host *start(Interrupter *in) {
  lasync_Host *H = lasync_new(NULL);
  memset(in, 0, sizeof *in);
  in->H = H;
  uv_sem_init(&in->go, 0);
  set_fn(lasync_state(H), "started", l_started, in);
  uv_thread_create(&in->thread, interrupter_main, in);
  return H;
}

static void stop(Interrupter *in) {
  uv_thread_join(&in->thread);
  uv_sem_destroy(&in->go);
  lasync_free(in->H);
}

static void interrupts_a_loop_from_another_thread(void) {
  Interrupter in;
  lasync_Host *H = start(&in);
  lua_State *L = lasync_state(H);
  int st = lasync_dostring(H, "started() while true do end");
  CHECK(st == LUA_ERRRUN);
  CHECK_HAS(lua_tostring(L, -1), "stopped by the application");
  lua_settop(L, 0);
  stop(&in);
}

static void a_task_may_catch_the_interrupt(void) {
  Interrupter in;
  lasync_Host *H = start(&in);
  lua_State *L = lasync_state(H);
  int st = run_code(H, "local ok, e = pcall(function() started() while true do end end)\n"
                       "async.sleep(0)  -- its cleanup may wait\n"
                       "return async.is_cancelled(e), tostring(e)");
  CHECK(st == LUA_OK);
  CHECK(lua_toboolean(L, -2));
  CHECK_HAS(lua_tostring(L, -1), "Cancelled: stopped by the application");
  lua_settop(L, 0);
  stop(&in);
}

/* Nothing runs: the request waits for code that runs on; withdrawn, it
** never reaches the next code, however long that runs. */
static void a_withdrawn_request_never_fires(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  CHECK(lasync_interrupt(H, NULL) == 0);
  CHECK(lasync_interrupt_taken(H) == NULL);
  CHECK(run_code(H, "local n = 0 for i = 1, 3000000 do n = n + i end return n") == LUA_OK);
  CHECK(lua_tointeger(L, -1) == 4500001500000);
  lua_settop(L, 0);
  lasync_free(H);
}

/* A request made while nothing runs reaches the next code that runs on
** without waiting, and names it. */
static void a_pending_request_reaches_the_next_runaway(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  lasync_Task *t;
  CHECK(lasync_interrupt(H, NULL) == 0);
  t = spawn_code(L, "while true do end");
  CHECK(lasync_run_until(H, t) == 0);
  CHECK(lasync_task_status(t) == LASYNC_CANCELLED);
  CHECK(lasync_interrupt_taken(H) == t);
  CHECK(lasync_interrupt_taken(H) == NULL);
  lasync_task_results(L, t);
  CHECK_HAS(luaL_tolstring(L, -1, NULL), "interrupted");
  lua_settop(L, 0);
  lasync_free(H);
}

int main(void) {
  TEST(interrupts_a_loop_from_another_thread);
  TEST(a_task_may_catch_the_interrupt);
  TEST(a_withdrawn_request_never_fires);
  TEST(a_pending_request_reaches_the_next_runaway);
  return tap_end();
}
