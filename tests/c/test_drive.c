/*
** tests/c/test_drive.c: driving the loop from an application: re-entry of
** lasync_run_once/run_until/dostring from inside the running loop is
** refused with a clear report, and a frame budget bounds one
** lasync_run_once, keeping the rest of the ready tasks for the next call.
*/
#include "common.h"

/* ------------------------------------------------------------ re-entry */

/* A C function called from Lua that tries to drive the loop itself. */
static int l_drive(lua_State *L) {
  lasync_Host *H = lasync_host(L);
  lua_pushinteger(L, lasync_run_once(H));
  lua_pushinteger(L, lasync_run_until(H, NULL));
  lua_pushinteger(L, lasync_dostring(H, "return 1"));
  CHECK_HAS(lua_tostring(lasync_state(H), -1), "called from inside the running loop");
  lua_pop(lasync_state(H), 1);           /* dostring's message, on the main state */
  return 3;
}

static void reentry_from_lua_is_refused(void) {
  Log rep;
  lasync_Host *H = host_new(NULL, &rep, NULL);
  lua_State *L = lasync_state(H);
  lasync_Task *t;
  lua_register(L, "drive", l_drive);
  t = spawn_code(L, "async.sleep(0) local a, b, c = drive() return a, b, c");
  CHECK(lasync_run_until(H, t) == 0);
  CHECK(lasync_task_status(t) == LASYNC_DONE);
  CHECK(lasync_task_results(L, t) == 3);
  CHECK(lua_tointeger(L, -3) == -1);     /* run_once */
  CHECK(lua_tointeger(L, -2) == -1);     /* run_until */
  CHECK(lua_tointeger(L, -1) == LUA_ERRRUN);
  CHECK(rep.n == 3);
  CHECK_HAS(rep.text, "lasync_run_once refused: called from inside the running loop");
  CHECK_HAS(rep.text, "lasync_run_until refused");
  lasync_free(H);
}

static void on_done_drive(lua_State *L, lasync_Task *t, void *ud) {
  (void)t;
  *(int *)ud = lasync_run_once(lasync_host(L));
}

static void reentry_from_done_callback_is_refused(void) {
  Log rep;
  lasync_Host *H = host_new(NULL, &rep, NULL);
  lua_State *L = lasync_state(H);
  int got = 0;
  luaL_loadstring(L, "async.sleep(0) return 1");
  lasync_spawn_cb(L, 0, on_done_drive, &got);
  lua_pop(L, 1);
  CHECK(lasync_run_until(H, NULL) == 0);
  CHECK(got == -1);
  CHECK_HAS(rep.text, "lasync_run_once refused");
  CHECK(lasync_run_once(H) == 0);        /* from outside: fine again */
  lasync_free(H);
}

/* -------------------------------------------------------------- budget */

/* With a budget that is always spent, each call runs one task step. */
static void budget_keeps_ready_tasks_for_the_next_call(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int calls = 0;
  CHECK(luaL_dostring(L, "ran = {}") == LUA_OK);
  CHECK(spawn_code(L, "ran[#ran + 1] = 'a'") != NULL);
  CHECK(spawn_code(L, "ran[#ran + 1] = 'b'") != NULL);
  CHECK(spawn_code(L, "ran[#ran + 1] = 'c'") != NULL);
  lua_settop(L, 0);
  lasync_set_budget(H, 1e-9);
  CHECK(lasync_ready_count(H) == 3);
  CHECK(lasync_run_once(H) == 2);        /* one ran, two are kept */
  CHECK(lasync_ready_count(H) == 2);
  while (lasync_run_once(H) > 0 && ++calls < 10) {}
  CHECK(calls == 1);
  CHECK(luaL_dostring(L, "return table.concat(ran)") == LUA_OK);
  CHECK(strcmp(lua_tostring(L, -1), "abc") == 0);   /* FIFO order kept */
  lua_settop(L, 0);
  lasync_set_budget(H, 0);               /* none: one call runs all that is ready */
  CHECK(spawn_code(L, "ran[#ran + 1] = 'd'") != NULL);
  CHECK(spawn_code(L, "ran[#ran + 1] = 'e'") != NULL);
  lua_settop(L, 0);
  CHECK(lasync_run_once(H) == 0);
  lasync_free(H);
}

/* Tasks woken during a spent call wait behind the kept ones. */
static void budget_kept_tasks_run_before_newly_woken(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int calls = 0;
  CHECK(luaL_dostring(L, "ran = {}") == LUA_OK);
  CHECK(spawn_code(L, "ran[#ran + 1] = 'a1' async.sleep(0) ran[#ran + 1] = 'a2'") != NULL);
  CHECK(spawn_code(L, "ran[#ran + 1] = 'b'") != NULL);
  lua_settop(L, 0);
  lasync_set_budget(H, 1e-9);
  while (lasync_run_once(H) > 0 && ++calls < 10) {}
  CHECK(luaL_dostring(L, "return table.concat(ran, ' ')") == LUA_OK);
  CHECK(strcmp(lua_tostring(L, -1), "a1 b a2") == 0);
  lasync_free(H);
}

int main(void) {
  TEST(reentry_from_lua_is_refused);
  TEST(reentry_from_done_callback_is_refused);
  TEST(budget_keeps_ready_tasks_for_the_next_call);
  TEST(budget_kept_tasks_run_before_newly_woken);
  return tap_end();
}
