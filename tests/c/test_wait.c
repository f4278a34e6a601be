/*
** tests/c/test_wait.c: native awaitables written against lasync.h alone:
** a C function suspends its task with lasync_wait, C code wakes it with
** values or an error, cancellation calls the operation's cancel function
** and a late completion finds the wait stale; lasync_checktask's errors;
** wait lists, and a gate primitive built on them.
*/
#include "common.h"

/* The fixture: operations the tests complete by hand, by number. */
typedef struct Op {
  lasync_Wait wait;
  int started, cancelled, task_seen_in_cancel;
} Op;

typedef struct Fx {
  lasync_Host *H;
  lua_State *L;
  Op ops[4];
  lasync_WaitList gate;
  int gate_order;
} Fx;

static Fx *fx_of(lua_State *L) {
  return (Fx *)lua_touserdata(L, lua_upvalueindex(1));
}

static void op_cancel(lasync_Wait *w) {
  Op *op = (Op *)w->data;
  op->cancelled++;
  op->task_seen_in_cancel = w->task != NULL;
}

static Op *op_arg(lua_State *L) {
  lua_Integer i = luaL_checkinteger(L, 1);
  luaL_argcheck(L, i >= 0 && i < 4, 1, "no such op");
  return &fx_of(L)->ops[i];
}

/* op.start(i): waits until the test completes op i; returns its values. */
static int l_start(lua_State *L) {
  Op *op = op_arg(L);
  lasync_checktask(L, "op.start");
  op->started++;
  op->wait.data = op;
  return lasync_wait(L, &op->wait, op_cancel, NULL, 0);
}

/* op.start_k(i, prefix): the same, through a continuation that sees what
** the function had on its stack (prefix at 2) below the values. */
static int start_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  if (ctx != 42) return luaL_error(L, "lost the context");
  lua_pushvalue(L, 2);
  lua_insert(L, 3);
  lua_concat(L, lua_gettop(L) - 2);
  return 1;
}

static int l_start_k(lua_State *L) {
  Op *op = op_arg(L);
  luaL_checkstring(L, 2);
  lasync_checktask(L, "op.start_k");
  lua_settop(L, 2);
  op->started++;
  op->wait.data = op;
  return lasync_wait(L, &op->wait, op_cancel, start_k, 42);
}

/* gate.wait(): waits until gate.open(); the Wait lives in a userdata on
** the task's stack, which keeps it while the task waits. */
static void gate_cancel(lasync_Wait *w) {
  lasync_waitlist_remove(w);
}

static int l_gate_wait(lua_State *L) {
  Fx *fx = fx_of(L);
  lasync_Wait *w;
  lasync_checktask(L, "gate.wait");
  w = (lasync_Wait *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  lasync_waitlist_push(&fx->gate, w);
  return lasync_wait(L, w, gate_cancel, NULL, 0);
}

/* gate.open(): wakes every waiter, in order, with its rank. */
static int l_gate_open(lua_State *L) {
  Fx *fx = fx_of(L);
  lasync_Wait *w;
  int n = 0;
  while ((w = lasync_waitlist_pop(&fx->gate)) != NULL) {
    lua_pushinteger(L, ++fx->gate_order);
    n += lasync_wake_values(L, w, 1);
  }
  lua_pushinteger(L, n);
  return 1;
}

static void fx_init(Fx *fx) {
  static const luaL_Reg funcs[] = {
    {"start", l_start}, {"start_k", l_start_k}, {"gate_wait", l_gate_wait},
    {"gate_open", l_gate_open}, {NULL, NULL}
  };
  memset(fx, 0, sizeof *fx);
  fx->H = lasync_new(NULL);
  fx->L = lasync_state(fx->H);
  lasync_waitlist_init(&fx->gate);
  luaL_newlibtable(fx->L, funcs);
  lua_pushlightuserdata(fx->L, fx);
  luaL_setfuncs(fx->L, funcs, 1);
  lua_setglobal(fx->L, "op");
}

/* ---------------------------------------------------------------- waking */

static void wake_values_to_caller(void) {
  Fx fx;
  lasync_Task *t;
  int top;
  fx_init(&fx);
  t = spawn_code(fx.L, "local a, b = op.start(1) return b, a");
  lasync_run_once(fx.H);
  CHECK(fx.ops[1].started == 1 && lasync_task_status(t) == LASYNC_PENDING);
  top = lua_gettop(fx.L);
  lua_pushinteger(fx.L, 1);
  lua_pushliteral(fx.L, "x");
  CHECK(lasync_wake_values(fx.L, &fx.ops[1].wait, 2) == 1);
  CHECK(lua_gettop(fx.L) == top);        /* moved to the task */
  CHECK(lasync_task_status(t) == LASYNC_PENDING);   /* resumes from the loop */
  lua_pushinteger(fx.L, 2);
  CHECK(lasync_wake_values(fx.L, &fx.ops[1].wait, 1) == 0);   /* woken before */
  CHECK(lua_gettop(fx.L) == top);        /* popped all the same */
  CHECK(lasync_run_until(fx.H, t) == 0);
  CHECK(lasync_task_results(fx.L, t) == 2);
  CHECK(strcmp(lua_tostring(fx.L, -2), "x") == 0 && lua_tointeger(fx.L, -1) == 1);
  lasync_free(fx.H);
}

static void wake_without_values(void) {
  Fx fx;
  lasync_Task *t;
  fx_init(&fx);
  t = spawn_code(fx.L, "return select('#', op.start(0))");
  lasync_run_once(fx.H);
  CHECK(lasync_wake(&fx.ops[0].wait) == 1);
  CHECK(lasync_wake(&fx.ops[0].wait) == 0);
  lasync_run_until(fx.H, t);
  lasync_task_results(fx.L, t);
  CHECK(lua_tointeger(fx.L, -1) == 0);
  lasync_free(fx.H);
}

/* The error value arrives intact (a table here), raised where it waited. */
static void wake_error_raises(void) {
  Fx fx;
  lasync_Task *t;
  fx_init(&fx);
  t = spawn_code(fx.L, "local ok, e = pcall(op.start, 2) return ok, e.code");
  lasync_run_once(fx.H);
  lua_createtable(fx.L, 0, 1);
  lua_pushliteral(fx.L, "EIO");
  lua_setfield(fx.L, -2, "code");
  CHECK(lasync_wake_error(fx.L, &fx.ops[2].wait) == 1);
  lasync_run_until(fx.H, t);
  CHECK(lasync_task_results(fx.L, t) == 2);
  CHECK(!lua_toboolean(fx.L, -2) && strcmp(lua_tostring(fx.L, -1), "EIO") == 0);
  lasync_free(fx.H);
}

static void continuation_gets_values(void) {
  Fx fx;
  lasync_Task *t;
  fx_init(&fx);
  t = spawn_code(fx.L, "return op.start_k(3, 'got:')");
  lasync_run_once(fx.H);
  lua_pushliteral(fx.L, "v");
  lua_pushliteral(fx.L, "w");
  lasync_wake_values(fx.L, &fx.ops[3].wait, 2);
  lasync_run_until(fx.H, t);
  lasync_task_results(fx.L, t);
  CHECK(lasync_task_status(t) == LASYNC_DONE);
  CHECK(strcmp(lua_tostring(fx.L, -1), "got:vw") == 0);
  lasync_free(fx.H);
}

/* A C function spawned as a task from C may wait like any task. */
static void c_function_as_task(void) {
  Fx fx;
  lasync_Task *t;
  fx_init(&fx);
  lua_pushlightuserdata(fx.L, &fx);
  lua_pushcclosure(fx.L, l_start, 1);
  lua_pushinteger(fx.L, 2);
  t = lasync_spawn(fx.L, 1);
  lasync_run_once(fx.H);
  CHECK(fx.ops[2].started == 1);
  lua_pushliteral(fx.L, "from C");
  lasync_wake_values(fx.L, &fx.ops[2].wait, 1);
  CHECK(lasync_run_until(fx.H, t) == 0);
  CHECK(lasync_task_results(fx.L, t) == 1 && strcmp(lua_tostring(fx.L, -1), "from C") == 0);
  lasync_free(fx.H);
}

/* ---------------------------------------------------------- cancellation */

/* Cancelling the task calls the cancel function once, after the wait is
** over; the operation's late completion is stale and changes nothing. */
static void cancel_native_then_late_completion(void) {
  Fx fx;
  lasync_Task *t;
  int top;
  fx_init(&fx);
  t = spawn_code(fx.L, "op.start(1) return 'not reached'");
  lasync_run_once(fx.H);
  CHECK(lasync_cancel(fx.L, t, "halt") == 1);
  CHECK(fx.ops[1].cancelled == 1 && fx.ops[1].task_seen_in_cancel == 0);
  top = lua_gettop(fx.L);
  lua_pushliteral(fx.L, "late");
  CHECK(lasync_wake_values(fx.L, &fx.ops[1].wait, 1) == 0);
  lua_pushliteral(fx.L, "late error");
  CHECK(lasync_wake_error(fx.L, &fx.ops[1].wait) == 0);
  CHECK(lasync_wake(&fx.ops[1].wait) == 0);
  CHECK(lua_gettop(fx.L) == top);
  lasync_run_until(fx.H, t);
  CHECK(lasync_task_status(t) == LASYNC_CANCELLED);
  lasync_task_results(fx.L, t);
  CHECK(strcmp(luaL_tolstring(fx.L, -1, NULL), "Cancelled: halt") == 0);
  CHECK(fx.ops[1].cancelled == 1);
  lasync_free(fx.H);
}

/* A task that survives the cancellation and waits again is not woken by
** the first operation's late completion. */
static void stale_wake_misses_the_next_wait(void) {
  Fx fx;
  lasync_Task *t;
  fx_init(&fx);
  t = spawn_code(fx.L, "local ok = pcall(op.start, 1) return ok, op.start(2)");
  lasync_run_once(fx.H);
  lasync_cancel(fx.L, t, NULL);
  lasync_run_once(fx.H);
  CHECK(fx.ops[2].started == 1);
  lua_pushliteral(fx.L, "stale");
  CHECK(lasync_wake_values(fx.L, &fx.ops[1].wait, 1) == 0);
  lasync_run_once(fx.H);
  CHECK(lasync_task_status(t) == LASYNC_PENDING);
  lua_pushliteral(fx.L, "fresh");
  CHECK(lasync_wake_values(fx.L, &fx.ops[2].wait, 1) == 1);
  lasync_run_until(fx.H, t);
  CHECK(lasync_task_results(fx.L, t) == 2);
  CHECK(!lua_toboolean(fx.L, -2) && strcmp(lua_tostring(fx.L, -1), "fresh") == 0);
  lasync_free(fx.H);
}

static void timeout_cancels_native(void) {
  Fx fx;
  fx_init(&fx);
  CHECK(run_code(fx.H, "local ok, e = pcall(async.wait_for, 0.001, op.start, 0)\n"
                       "assert(not ok and async.is_timeout(e), tostring(e))") == LUA_OK);
  CHECK(fx.ops[0].started == 1 && fx.ops[0].cancelled == 1);
  lasync_free(fx.H);
}

/* Shutdown cancels a task waiting on a native operation. */
static void free_cancels_native(void) {
  Fx fx;
  Op *op;
  fx_init(&fx);
  op = &fx.ops[1];
  spawn_code(fx.L, "op.start(1)");
  lasync_run_once(fx.H);
  lasync_free(fx.H);
  CHECK(op->started == 1 && op->cancelled == 1);
}

/* ------------------------------------------------------- checktask */

static void checktask_outside_a_task(void) {
  Fx fx;
  fx_init(&fx);
  CHECK(luaL_dostring(fx.L, "op.start(1)") != LUA_OK);
  CHECK_HAS(lua_tostring(fx.L, -1), "op.start: not inside a task");
  CHECK(fx.ops[1].started == 0);
  lasync_free(fx.H);
}

static void checktask_cannot_yield_here(void) {
  Fx fx;
  fx_init(&fx);
  CHECK(run_code(fx.H, "local ok, e = pcall(table.sort, {3, 2, 1}, function(a, b) op.start(1) return a < b end)\n"
                       "assert(not ok) return e") == LUA_OK);
  CHECK_HAS(lua_tostring(fx.L, -1), "op.start: cannot wait here");
  CHECK(fx.ops[1].started == 0);
  lasync_free(fx.H);
}

/* A cancellation pending on a running task is raised by checktask, before
** the operation starts. */
static void checktask_delivers_pending_cancel(void) {
  Fx fx;
  fx_init(&fx);
  CHECK(run_code(fx.H, "async.current():cancel('early')\n"
                       "local ok, e = pcall(op.start, 1) return tostring(e)") == LUA_OK);
  CHECK(strcmp(lua_tostring(fx.L, -1), "Cancelled: early") == 0);
  CHECK(fx.ops[1].started == 0 && fx.ops[1].cancelled == 0);
  lasync_free(fx.H);
}

/* ------------------------------------------------------------ wait lists */

static void waitlist_fifo(void) {
  lasync_WaitList l;
  lasync_Wait w[4];
  memset(w, 0, sizeof w);
  lasync_waitlist_init(&l);
  CHECK(lasync_waitlist_empty(&l));
  CHECK(lasync_waitlist_pop(&l) == NULL);
  lasync_waitlist_remove(&w[3]);         /* never pushed: harmless */
  lasync_waitlist_push(&l, &w[0]);
  lasync_waitlist_push(&l, &w[1]);
  lasync_waitlist_push(&l, &w[2]);
  CHECK(!lasync_waitlist_empty(&l));
  lasync_waitlist_remove(&w[1]);
  lasync_waitlist_remove(&w[1]);         /* idempotent */
  CHECK(lasync_waitlist_pop(&l) == &w[0]);
  CHECK(lasync_waitlist_pop(&l) == &w[2]);
  CHECK(lasync_waitlist_pop(&l) == NULL);
  CHECK(lasync_waitlist_empty(&l));
}

/* Three tasks wait at the gate, one is cancelled (its cancel function
** leaves the list), the gate opens: the others wake in arrival order. */
static void gate_wakes_in_order(void) {
  Fx fx;
  fx_init(&fx);
  CHECK(run_code(fx.H,
    "local a = async.spawn(op.gate_wait)\n"
    "local b = async.spawn(op.gate_wait)\n"
    "local c = async.spawn(op.gate_wait)\n"
    "async.sleep(0)\n"
    "b:cancel()\n"
    "assert(op.gate_open() == 2)\n"
    "assert(a:await() == 1 and c:await() == 2)\n"
    "assert(not pcall(b.await, b) and b:cancelled())\n"
    "assert(op.gate_open() == 0)") == LUA_OK);
  CHECK(lasync_waitlist_empty(&fx.gate));
  lasync_free(fx.H);
}

int main(void) {
  TEST(wake_values_to_caller);
  TEST(wake_without_values);
  TEST(wake_error_raises);
  TEST(continuation_gets_values);
  TEST(c_function_as_task);
  TEST(cancel_native_then_late_completion);
  TEST(stale_wake_misses_the_next_wait);
  TEST(timeout_cancels_native);
  TEST(free_cancels_native);
  TEST(checktask_outside_a_task);
  TEST(checktask_cannot_yield_here);
  TEST(checktask_delivers_pending_cancel);
  TEST(waitlist_fifo);
  TEST(gate_wakes_in_order);
  return tap_end();
}
