/*
** tests/c/test_threads.c: wakers (finishing an operation from another
** thread), their cancellation and shutdown, and hosts side by side: two
** on one loop, and two on two threads with two loops.
*/
#include "common.h"

/* A host with job.run(n [, hold]): sums 1..n on a thread of its own and
** wakes the task through a waker. With `hold`, the thread waits until
** the job is cancelled before it finishes, so its completion is late. */
typedef struct Fx {
  lasync_Host *H;
  lua_State *L;
  Log rep;
  int finished, stale, cancels;
} Fx;

typedef struct Job {
  lasync_Wait wait;
  lasync_Waker *waker;
  uv_thread_t thread;
  uv_sem_t go;
  int hold;
  long n, result;
  Fx *fx;
} Job;

/* Loop thread, sent by the job's thread: wake the task (unless its wait
** ended meanwhile) and free the job. */
static void job_finish(lua_State *L, void *arg) {
  Job *j = (Job *)arg;
  uv_thread_join(&j->thread);
  lua_pushinteger(L, j->result);
  if (!lasync_wake_values(L, &j->wait, 1)) j->fx->stale++;
  j->fx->finished++;
  if (j->hold) uv_sem_destroy(&j->go);
  free(j);
}

static void job_thread(void *arg) {
  Job *j = (Job *)arg;
  long i;
  if (j->hold) uv_sem_wait(&j->go);
  for (i = 1; i <= j->n; i++) j->result += i;
  lasync_waker_send(j->waker);           /* the last touch of j here */
}

/* A thread cannot be stopped: let it finish; job_finish frees the job. */
static void job_cancel(lasync_Wait *w) {
  Job *j = (Job *)w->data;
  j->fx->cancels++;
  if (j->hold) uv_sem_post(&j->go);
}

static int l_job_run(lua_State *L) {
  Fx *fx = (Fx *)lua_touserdata(L, lua_upvalueindex(1));
  long n = (long)luaL_checkinteger(L, 1);
  int hold = lua_toboolean(L, 2);
  Job *j;
  lasync_checktask(L, "job.run");
  if ((j = (Job *)calloc(1, sizeof *j)) == NULL) return luaL_error(L, "job.run: out of memory");
  if ((j->waker = lasync_waker_new(fx->H, job_finish, j)) == NULL) {
    free(j);
    return luaL_error(L, "job.run: no waker");
  }
  j->n = n;
  j->fx = fx;
  j->hold = hold;
  j->wait.data = j;
  if (hold) uv_sem_init(&j->go, 0);
  if (uv_thread_create(&j->thread, job_thread, j) != 0) abort();
  return lasync_wait(L, &j->wait, job_cancel, NULL, 0);
}

static void fx_init(Fx *fx, uv_loop_t *loop) {
  memset(fx, 0, sizeof *fx);
  fx->H = host_new(loop, &fx->rep, NULL);
  fx->L = lasync_state(fx->H);
  lua_createtable(fx->L, 0, 1);
  lua_pushlightuserdata(fx->L, fx);
  lua_pushcclosure(fx->L, l_job_run, 1);
  lua_setfield(fx->L, -2, "run");
  lua_setglobal(fx->L, "job");
}

/* -------------------------------------------------------------- wakers */

static void waker_from_threads(void) {
  Fx fx;
  fx_init(&fx, NULL);
  CHECK(run_code(fx.H, "local r = async.gather(\n"
                       "  function() return job.run(10) end, function() return job.run(100) end,\n"
                       "  function() return job.run(1000) end, function() return job.run(0) end)\n"
                       "return r[1], r[2], r[3], r[4]") == LUA_OK);
  CHECK(lua_tointeger(fx.L, -4) == 55 && lua_tointeger(fx.L, -3) == 5050);
  CHECK(lua_tointeger(fx.L, -2) == 500500 && lua_tointeger(fx.L, -1) == 0);
  CHECK(fx.finished == 4 && fx.stale == 0);
  lasync_free(fx.H);
}

/* The task is cancelled while its thread works: the cancel function runs,
** the task ends, and the thread's late completion is stale. */
static void cancelled_job_completes_stale(void) {
  Fx fx;
  lasync_Task *t;
  fx_init(&fx, NULL);
  t = spawn_code(fx.L, "return job.run(10, true)");
  lasync_run_once(fx.H);
  CHECK(lasync_cancel(fx.L, t, "no longer needed") == 1);
  CHECK(fx.cancels == 1);
  CHECK(lasync_run_until(fx.H, t) == 0);
  CHECK(lasync_task_status(t) == LASYNC_CANCELLED);
  while (fx.finished == 0) uv_run(lasync_loop(fx.H), UV_RUN_ONCE);
  CHECK(fx.stale == 1);
  lasync_free(fx.H);
}

/* lasync_free waits for the wakers still out: the job's memory is freed
** by its function, not leaked or freed under the thread. */
static void free_waits_for_wakers(void) {
  Fx fx;
  uv_loop_t loop;
  fx_init(&fx, NULL);
  spawn_code(fx.L, "job.run(10, true)");
  lasync_run_once(fx.H);
  lasync_free(fx.H);
  CHECK(fx.cancels == 1 && fx.finished == 1 && fx.stale == 1);
  uv_loop_init(&loop);                   /* the same on the application's loop */
  fx_init(&fx, &loop);
  spawn_code(fx.L, "job.run(10, true)");
  lasync_run_once(fx.H);
  lasync_free(fx.H);
  CHECK(fx.cancels == 1 && fx.finished == 1 && fx.stale == 1);
  CHECK(loop_finish(&loop) == 0);
}

static void count_waker(lua_State *L, void *arg) {
  (void)L;
  (*(int *)arg)++;
}

/* A waker may be sent from the loop thread too; its function runs from
** the loop, not inside the send. An unsent waker keeps the loop alive,
** and nothing does once it has run. */
static void waker_on_loop_thread(void) {
  uv_loop_t loop;
  lasync_Host *H;
  lasync_Waker *k;
  int ran = 0;
  uv_loop_init(&loop);
  H = lasync_new(&loop);
  CHECK(uv_loop_alive(&loop) == 0);
  k = lasync_waker_new(H, count_waker, &ran);
  CHECK(k != NULL && uv_loop_alive(&loop) != 0);
  lasync_waker_send(k);
  CHECK(ran == 0);
  uv_run(&loop, UV_RUN_DEFAULT);         /* returns once it has run */
  CHECK(ran == 1);
  CHECK(uv_loop_alive(&loop) == 0);
  lasync_free(H);
  CHECK(loop_finish(&loop) == 0);
}

static void raising_waker(lua_State *L, void *arg) {
  (void)arg;
  luaL_error(L, "waker broke");
}

static void waker_error_is_reported(void) {
  Fx fx;
  fx_init(&fx, NULL);
  lasync_waker_send(lasync_waker_new(fx.H, raising_waker, NULL));
  lasync_run_once(fx.H);
  CHECK(fx.rep.n == 1);
  CHECK_HAS(fx.rep.text, "waker broke");
  lasync_free(fx.H);
}

#define SENDERS 4
#define PER_SENDER 250

typedef struct Sender {
  uv_thread_t thread;
  lasync_Waker *wakers[PER_SENDER];
} Sender;

static void sender_main(void *arg) {
  Sender *s = (Sender *)arg;
  int i;
  for (i = 0; i < PER_SENDER; i++) lasync_waker_send(s->wakers[i]);
}

/* Many threads sending at once: every waker runs exactly once. */
static void many_senders(void) {
  Sender senders[SENDERS];
  lasync_Host *H = lasync_new(NULL);
  int i, j, ran = 0;
  for (i = 0; i < SENDERS; i++)
    for (j = 0; j < PER_SENDER; j++) senders[i].wakers[j] = lasync_waker_new(H, count_waker, &ran);
  for (i = 0; i < SENDERS; i++) uv_thread_create(&senders[i].thread, sender_main, &senders[i]);
  while (ran < SENDERS * PER_SENDER) uv_run(lasync_loop(H), UV_RUN_ONCE);
  for (i = 0; i < SENDERS; i++) uv_thread_join(&senders[i].thread);
  CHECK(ran == SENDERS * PER_SENDER);
  CHECK(uv_loop_alive(lasync_loop(H)) == 0);
  lasync_free(H);
}

/* ------------------------------------------------------- hosts side by side */

#define WORKLOAD \
  "local tasks = {}\n" \
  "for i = 1, 200 do tasks[i] = async.spawn(function() async.sleep(0) async.sleep(0.001) return i end) end\n" \
  "local sum = 0\n" \
  "for i = 1, 200 do sum = sum + tasks[i]:await() end\n" \
  "return sum + job.run(100)"
#define WORKLOAD_RESULT (20100 + 5050)

/* Two hosts on one loop: their tasks interleave, each keeps its globals
** and its reports, and freeing one leaves the other running. */
static void two_hosts_one_loop(void) {
  uv_loop_t loop;
  Fx a, b;
  lasync_Task *ta, *tb, *later;
  uv_loop_init(&loop);
  fx_init(&a, &loop);
  fx_init(&b, &loop);
  CHECK(lasync_host(a.L) == a.H && lasync_host(b.L) == b.H && a.H != b.H);
  ta = spawn_code(a.L, "who = 'a' " WORKLOAD);
  tb = spawn_code(b.L, "who = 'b' " WORKLOAD);
  spawn_code(a.L, "error('only in a')");
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(lasync_task_status(ta) == LASYNC_DONE && lasync_task_status(tb) == LASYNC_DONE);
  lasync_task_results(a.L, ta);
  lasync_task_results(b.L, tb);
  CHECK(lua_tointeger(a.L, -1) == WORKLOAD_RESULT && lua_tointeger(b.L, -1) == WORKLOAD_RESULT);
  CHECK(run_code(a.H, "return who") == LUA_OK && strcmp(lua_tostring(a.L, -1), "a") == 0);
  CHECK(run_code(b.H, "return who") == LUA_OK && strcmp(lua_tostring(b.L, -1), "b") == 0);
  later = spawn_code(b.L, "async.sleep(0.002) return 'b lives on'");
  lasync_free(a.H);
  CHECK(a.rep.n == 1 && b.rep.n == 0);
  CHECK_HAS(a.rep.text, "only in a");
  CHECK(lasync_run_until(b.H, later) == 0 && lasync_task_status(later) == LASYNC_DONE);
  lasync_free(b.H);
  CHECK(loop_finish(&loop) == 0);
}

typedef struct Worker {
  uv_thread_t thread;
  int app_loop;                          /* on a loop of the thread's, or the host's own */
  long result;
  int status, loop_closed;
} Worker;

static void worker_main(void *arg) {
  Worker *w = (Worker *)arg;
  uv_loop_t loop;
  Fx fx;
  if (w->app_loop) uv_loop_init(&loop);
  fx_init(&fx, w->app_loop ? &loop : NULL);
  w->status = lasync_dostring(fx.H, WORKLOAD);
  w->result = (long)lua_tointeger(fx.L, -1);
  lasync_free(fx.H);
  w->loop_closed = w->app_loop ? loop_finish(&loop) : 0;
}

static void two_hosts_two_threads(void) {
  Worker w[2];
  int i;
  memset(w, 0, sizeof w);
  w[1].app_loop = 1;
  for (i = 0; i < 2; i++) uv_thread_create(&w[i].thread, worker_main, &w[i]);
  for (i = 0; i < 2; i++) uv_thread_join(&w[i].thread);
  for (i = 0; i < 2; i++) {
    CHECK(w[i].status == LUA_OK);
    CHECK(w[i].result == WORKLOAD_RESULT);
    CHECK(w[i].loop_closed == 0);
  }
}

int main(void) {
  TEST(waker_from_threads);
  TEST(cancelled_job_completes_stale);
  TEST(free_waits_for_wakers);
  TEST(waker_on_loop_thread);
  TEST(waker_error_is_reported);
  TEST(many_senders);
  TEST(two_hosts_one_loop);
  TEST(two_hosts_two_threads);
  return tap_end();
}
