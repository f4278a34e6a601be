/*
** tests/c/test_work.c: lasync_work, C work on a worker thread of the host's
** default executor: results come back to the waiting task, the work runs
** off the loop thread, after() is called exactly once in every case
** (results, cancelled while queued, cancelled while running, not in a
** task, host freed with work in flight), and a queued work that is
** cancelled never runs.
*/
#include <uv.h>
#include "common.h"

/* One piece of work: sums 1..n, optionally after waiting for `gate`. */
typedef struct Job {
  struct Fx *fx;
  lua_Integer n, sum;
  int gated;
  uv_thread_t ran_on;
  int ran;
} Job;

typedef struct Fx {
  lasync_Host *H;
  lua_State *L;
  uv_thread_t loop_thread;
  uv_sem_t gate;                  /* gated works wait for a post each */
  uv_sem_t started;               /* each gated work posts when it starts */
  int after_with_L, after_without_L, ran;
  uv_mutex_t mu;                  /* guards ran (worker threads count) */
} Fx;

static void job_work(void *data) {
  Job *j = (Job *)data;
  lua_Integer i;
  if (j->gated) {
    uv_sem_post(&j->fx->started);
    uv_sem_wait(&j->fx->gate);
  }
  for (i = 1; i <= j->n; i++) j->sum += i;
  j->ran_on = uv_thread_self();
  j->ran = 1;
  uv_mutex_lock(&j->fx->mu);
  j->fx->ran++;
  uv_mutex_unlock(&j->fx->mu);
}

static int job_after(lua_State *L, void *data) {
  Job *j = (Job *)data;
  Fx *fx = j->fx;
  if (L == NULL) {
    fx->after_without_L++;
    free(j);
    return 0;
  }
  fx->after_with_L++;
  lua_pushinteger(L, j->sum);
  lua_pushboolean(L, j->ran && !uv_thread_equal(&j->ran_on, &fx->loop_thread));
  free(j);
  return 2;
}

/* work.sum(n [, gated]): sum, ran_off_the_loop_thread */
static int l_sum(lua_State *L) {
  Fx *fx = (Fx *)lua_touserdata(L, lua_upvalueindex(1));
  Job *j = (Job *)calloc(1, sizeof *j);
  j->fx = fx;
  j->n = luaL_checkinteger(L, 1);
  j->gated = lua_toboolean(L, 2);
  return lasync_work(L, job_work, job_after, j);
}

static void fx_init(Fx *fx) {
  memset(fx, 0, sizeof *fx);
  fx->H = lasync_new(NULL);
  fx->L = lasync_state(fx->H);
  fx->loop_thread = uv_thread_self();
  uv_sem_init(&fx->gate, 0);
  uv_sem_init(&fx->started, 0);
  uv_mutex_init(&fx->mu);
  lua_pushlightuserdata(fx->L, fx);
  lua_pushcclosure(fx->L, l_sum, 1);
  lua_setglobal(fx->L, "sum");
}

static void fx_free(Fx *fx) {
  lasync_free(fx->H);
  uv_sem_destroy(&fx->gate);
  uv_sem_destroy(&fx->started);
  uv_mutex_destroy(&fx->mu);
}

/* The number of workers of the default executor. */
static int workers(Fx *fx) {
  int n;
  run_code(fx->H, "return require('async.executor').default():stats().workers");
  n = (int)lua_tointeger(fx->L, -1);
  lua_settop(fx->L, 0);
  return n;
}

static void results_come_back(void) {
  Fx fx;
  fx_init(&fx);
  CHECK(run_code(fx.H,
    "local r = async.gather(function() return sum(10) end, function() return sum(100) end,\n"
    "                       function() return sum(1000) end)\n"
    "local s, off = sum(4)\n"
    "assert(r[1] == 55 and r[2] == 5050 and r[3] == 500500 and s == 10 and off, 'wrong')\n"
    "return 'ok'") == LUA_OK);
  CHECK(fx.after_with_L == 4 && fx.after_without_L == 0 && fx.ran == 4);
  fx_free(&fx);
}

/* Every worker blocked on the gate, one more work queued behind them: its
** task is cancelled, so it never runs, and after(NULL) comes at once. */
static void cancel_queued_never_runs(void) {
  Fx fx;
  lasync_Task *t;
  int i, n;
  fx_init(&fx);
  n = workers(&fx);
  for (i = 0; i < n; i++) {
    spawn_code(fx.L, "return sum(1, true)");
    lua_pop(fx.L, 1);
  }
  lasync_run_once(fx.H);
  for (i = 0; i < n; i++) uv_sem_wait(&fx.started);   /* all busy now */
  t = spawn_code(fx.L, "local ok, e = pcall(sum, 5) return async.is_cancelled(e)");
  lasync_run_once(fx.H);
  lasync_cancel(fx.L, t, NULL);
  CHECK(fx.after_without_L == 1);        /* dropped from the queue, now */
  lasync_run_until(fx.H, t);
  lasync_task_results(fx.L, t);
  CHECK(lua_toboolean(fx.L, -1));
  lua_settop(fx.L, 0);
  for (i = 0; i < n; i++) uv_sem_post(&fx.gate);
  lasync_run_until(fx.H, NULL);
  CHECK(fx.ran == n && fx.after_with_L == n && fx.after_without_L == 1);
  fx_free(&fx);
}

/* A running work cannot be stopped: the task ends at once, and the work's
** after(NULL) comes when it has finished. */
static void cancel_running_frees_later(void) {
  Fx fx;
  lasync_Task *t;
  fx_init(&fx);
  t = spawn_code(fx.L, "return sum(3, true)");
  lasync_run_once(fx.H);
  uv_sem_wait(&fx.started);
  lasync_cancel(fx.L, t, NULL);
  lasync_run_until(fx.H, t);
  CHECK(lasync_task_status(t) == LASYNC_CANCELLED);
  CHECK(fx.after_without_L == 0);        /* still running */
  uv_sem_post(&fx.gate);
  while (fx.after_without_L == 0) uv_run(lasync_loop(fx.H), UV_RUN_ONCE);
  CHECK(fx.ran == 1 && fx.after_with_L == 0 && fx.after_without_L == 1);
  lua_settop(fx.L, 0);
  fx_free(&fx);
}

/* Outside a task it raises like lasync_checktask, after freeing data. */
static void not_in_a_task(void) {
  Fx fx;
  fx_init(&fx);
  lua_getglobal(fx.L, "sum");
  lua_pushinteger(fx.L, 1);
  CHECK(lua_pcall(fx.L, 1, 0, 0) != LUA_OK);
  CHECK_HAS(lua_tostring(fx.L, -1), "not inside a task");
  CHECK(fx.after_without_L == 1 && fx.ran == 0);
  lua_settop(fx.L, 0);
  fx_free(&fx);
}

/* lasync_free with a work running: the host waits for it and frees it. */
static void free_with_work_in_flight(void) {
  Fx fx;
  fx_init(&fx);
  spawn_code(fx.L, "return sum(7, true)");
  lua_pop(fx.L, 1);
  lasync_run_once(fx.H);
  uv_sem_wait(&fx.started);
  uv_sem_post(&fx.gate);                 /* it may finish during the free */
  fx_free(&fx);
  CHECK(fx.ran == 1 && fx.after_with_L + fx.after_without_L == 1);
}

int main(void) {
  TEST(results_come_back);
  TEST(cancel_queued_never_runs);
  TEST(cancel_running_frees_later);
  TEST(not_in_a_task);
  TEST(free_with_work_in_flight);
  return tap_end();
}
