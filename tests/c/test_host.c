/*
** tests/c/test_host.c: the embedding API from an application's side:
** creating and freeing hosts on their own loop and on the application's,
** running files and strings, spawning with done callbacks, the three ways
** to drive the loop, cancellation, reports, and shutdown with tasks alive.
*/
#include <unistd.h>
#include "common.h"

/* ------------------------------------------------------------ lifecycle */

static int l_whoami(lua_State *L) {
  lua_pushlightuserdata(L, lasync_host(L));
  return 1;
}

static void new_own_loop(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L;
  CHECK(H != NULL);
  L = lasync_state(H);
  CHECK(L != NULL);
  CHECK(lasync_loop(H) != NULL);
  CHECK(lasync_host(L) == H);
  CHECK(lua_getglobal(L, "async") == LUA_TTABLE);
  lua_pop(L, 1);
  CHECK(lasync_task_count(H) == 0);
  lasync_free(H);
  lasync_free(NULL);                     /* harmless */
}

static void new_app_loop(void) {
  uv_loop_t loop;
  lasync_Host *H;
  uv_loop_init(&loop);
  H = lasync_new(&loop);
  CHECK(lasync_loop(H) == &loop);
  CHECK(run_code(H, "async.sleep(0.001) return 1 + 1") == LUA_OK);
  CHECK(lua_tointeger(lasync_state(H), -1) == 2);
  lasync_free(H);
  CHECK(loop_finish(&loop) == 0);
}

/* lasync_host finds the host from a task's state and from a coroutine's. */
static void host_of_any_state(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  set_fn(L, "whoami", l_whoami, NULL);
  CHECK(run_code(H, "return whoami(), coroutine.wrap(whoami)()") == LUA_OK);
  CHECK(lua_touserdata(L, -2) == (void *)H);
  CHECK(lua_touserdata(L, -1) == (void *)H);
  lasync_free(H);
}

/* -------------------------------------------------- files and strings */

static void dostring_results(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int top = lua_gettop(L);
  CHECK(lasync_dostring(H, "async.sleep(0) return 1, 'two', nil") == LUA_OK);
  CHECK(lua_gettop(L) == top + 3);
  CHECK(lua_tointeger(L, top + 1) == 1);
  CHECK(strcmp(lua_tostring(L, top + 2), "two") == 0);
  CHECK(lua_isnil(L, top + 3));
  lasync_free(H);
}

/* A failure comes back as its message with the traceback, and is not
** also reported as unobserved: dostring observed it. */
static void dostring_error(void) {
  Log rep;
  lasync_Host *H = host_new(NULL, &rep, NULL);
  lua_State *L = lasync_state(H);
  int top = lua_gettop(L);
  CHECK(lasync_dostring(H, "local function f() async.sleep(0) error('boom') end f()") == LUA_ERRRUN);
  CHECK(lua_gettop(L) == top + 1);
  CHECK_HAS(lua_tostring(L, -1), "boom");
  CHECK_HAS(lua_tostring(L, -1), "stack traceback");
  CHECK_HAS(lua_tostring(L, -1), "in local 'f'");
  lasync_free(H);
  CHECK(rep.n == 0);
}

static void dostring_syntax_error(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int top = lua_gettop(L);
  CHECK(lasync_dostring(H, "x = = 1") == LUA_ERRSYNTAX);
  CHECK(lua_gettop(L) == top + 1);
  CHECK_HAS(lua_tostring(L, -1), "unexpected symbol");
  CHECK(lasync_task_count(H) == 0);
  lasync_free(H);
}

static void dostring_cancelled(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  CHECK(lasync_dostring(H, "async.current():cancel('stop now') async.sleep(1)") == LUA_ERRRUN);
  CHECK_HAS(lua_tostring(L, -1), "Cancelled: stop now");
  lasync_free(H);
}

/* The task waits on a future nobody can resolve: it is cancelled, its
** cleanup runs, and the message says where it waited. */
static void dostring_deadlock(void) {
  Log notes;
  lasync_Host *H = host_new(NULL, NULL, &notes);
  lua_State *L = lasync_state(H);
  CHECK(lasync_dostring(H,
    "local f = async.future()\n"
    "local ok, err = pcall(f.await, f)\n"
    "note(tostring(err))\n"
    "error(err, 0)") == LUA_ERRRUN);
  CHECK_HAS(lua_tostring(L, -1), "deadlock");
  CHECK_HAS(lua_tostring(L, -1), "waits at");
  CHECK_HAS(notes.text, "Cancelled: deadlock");
  CHECK(lasync_task_count(H) == 0);
  lasync_free(H);
}

static char *temp_file(const char *content) {
  static char path[64];
  int fd;
  strcpy(path, "/tmp/lasync-test-XXXXXX");
  fd = mkstemp(path);
  if (fd < 0) return NULL;
  if (write(fd, content, strlen(content)) < 0) path[0] = '\0';
  close(fd);
  return path;
}

static void dofile_ok_and_missing(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  char *path = temp_file("async.sleep(0.001) return 40 + 2, ...\n");
  int top = lua_gettop(L);
  CHECK(lasync_dofile(H, path) == LUA_OK);
  CHECK(lua_gettop(L) == top + 1);       /* no arguments: ... is empty */
  CHECK(lua_tointeger(L, -1) == 42);
  lua_settop(L, top);
  remove(path);
  CHECK(lasync_dofile(H, path) == LUA_ERRFILE);
  CHECK(lua_gettop(L) == top + 1);
  CHECK_HAS(lua_tostring(L, -1), "cannot open");
  lasync_free(H);
}

static void spawn_string_and_file(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int top = lua_gettop(L);
  lasync_Task *t;
  char *path;
  lua_pushinteger(L, 20);
  lua_pushinteger(L, 22);
  t = lasync_spawn_string(L, "local a, b = ... async.sleep(0) return a + b", "=sum", 2);
  CHECK(t != NULL && lua_gettop(L) == top + 1);
  CHECK(lasync_task_status(t) == LASYNC_PENDING);
  CHECK(lasync_run_until(H, t) == 0);
  CHECK(lasync_task_results(L, t) == 1 && lua_tointeger(L, -1) == 42);
  lua_settop(L, top);
  path = temp_file("local x = ... error('bad ' .. x)\n");
  lua_pushliteral(L, "input");
  t = lasync_spawn_file(L, path, 1);
  CHECK(t != NULL && lua_gettop(L) == top + 1);
  lasync_run_until(H, t);
  CHECK(lasync_task_status(t) == LASYNC_FAILED);
  lasync_task_traceback(L, -1);
  CHECK_HAS(lua_tostring(L, -1), "bad input");
  CHECK_HAS(lua_tostring(L, -1), path);
  lasync_task_results(L, t);             /* observed */
  lua_settop(L, top);
  remove(path);
  lasync_free(H);
}

static void spawn_load_errors(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int top = lua_gettop(L);
  lua_pushinteger(L, 1);
  lua_pushinteger(L, 2);
  CHECK(lasync_spawn_string(L, "return = 1", "=broken", 2) == NULL);
  CHECK(lua_gettop(L) == top + 1);       /* the arguments gave way to the message */
  CHECK_HAS(lua_tostring(L, -1), "broken:1:");
  lua_settop(L, top);
  lua_pushinteger(L, 1);
  CHECK(lasync_spawn_file(L, "/nonexistent/script.lua", 1) == NULL);
  CHECK(lua_gettop(L) == top + 1);
  CHECK_HAS(lua_tostring(L, -1), "cannot open /nonexistent/script.lua");
  CHECK(lasync_task_count(H) == 0);
  lasync_free(H);
}

/* ------------------------------------------------- spawn and callbacks */

static void spawn_function(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int top = lua_gettop(L);
  lasync_Task *t;
  luaL_loadstring(L, "local a, b, c = ... async.sleep(0) return c, b, a");
  lua_pushinteger(L, 1);
  lua_pushstring(L, "b");
  lua_pushboolean(L, 1);
  t = lasync_spawn(L, 3);
  CHECK(lua_gettop(L) == top + 1);
  CHECK(lasync_task_results(L, t) == 0); /* pending: nothing */
  CHECK(lasync_run_until(H, t) == 0);
  CHECK(lasync_task_status(t) == LASYNC_DONE);
  CHECK(lasync_task_results(L, t) == 3);
  CHECK(lua_toboolean(L, -3) && strcmp(lua_tostring(L, -2), "b") == 0 && lua_tointeger(L, -1) == 1);
  lasync_free(H);
}

typedef struct Seen {
  int calls, status, top_is_task;
  char text[512];
} Seen;

/* A done callback that records the outcome. */
static void on_done(lua_State *L, lasync_Task *t, void *ud) {
  Seen *s = (Seen *)ud;
  s->calls++;
  s->status = lasync_task_status(t);
  s->top_is_task = lua_gettop(L) >= 1 && lua_isuserdata(L, 1);
  if (s->status == LASYNC_FAILED) lasync_task_traceback(L, 1);
  else lasync_task_results(L, t);
  snprintf(s->text, sizeof s->text, "%s", luaL_tolstring(L, -1, NULL));
  lua_pushliteral(L, "litter");          /* discarded by the host */
}

static void spawn_cb_outcomes(void) {
  Log rep;
  lasync_Host *H = host_new(NULL, &rep, NULL);
  lua_State *L = lasync_state(H);
  Seen ok = {0}, bad = {0}, off = {0};
  int top = lua_gettop(L);
  luaL_loadstring(L, "async.sleep(0) return 'fine'");
  lasync_spawn_cb(L, 0, on_done, &ok);
  luaL_loadstring(L, "async.sleep(0) error('oops')");
  lasync_spawn_cb(L, 0, on_done, &bad);
  luaL_loadstring(L, "async.sleep(1)");
  lasync_cancel(L, lasync_spawn_cb(L, 0, on_done, &off), "not wanted");
  CHECK(lua_gettop(L) == top + 3);
  lua_settop(L, top);                    /* the host keeps live tasks */
  CHECK(ok.calls == 0);                  /* callbacks come from the loop */
  CHECK(lasync_run_until(H, NULL) == 0);
  CHECK(ok.calls == 1 && ok.status == LASYNC_DONE && strcmp(ok.text, "fine") == 0);
  CHECK(bad.calls == 1 && bad.status == LASYNC_FAILED);
  CHECK_HAS(bad.text, "oops");
  CHECK_HAS(bad.text, "stack traceback");
  CHECK(off.calls == 1 && off.status == LASYNC_CANCELLED);
  CHECK_HAS(off.text, "not wanted");
  CHECK(ok.top_is_task && bad.top_is_task);
  CHECK(lua_gettop(L) == top);
  lasync_free(H);
  CHECK(rep.n == 0);                     /* the callback observed the failure */
}

/* On a task that is done already, the callback runs at once. */
static void on_done_when_done(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  Seen s = {0};
  lasync_Task *t = spawn_code(L, "return 7");
  lasync_run_until(H, t);
  lasync_task_on_done(L, -1, on_done, &s);
  CHECK(s.calls == 1 && s.status == LASYNC_DONE && strcmp(s.text, "7") == 0);
  lasync_free(H);
}

/* A done callback that records how many results lasync_task_results gives
** and the first two. */
static void on_done_results(lua_State *L, lasync_Task *t, void *ud) {
  Seen *s = (Seen *)ud;
  int n = lasync_task_results(L, t), base = lua_gettop(L) - n + 1;
  const char *a = n >= 1 ? luaL_tolstring(L, base, NULL) : "-";
  const char *b = n >= 2 ? luaL_tolstring(L, base + 1, NULL) : "-";
  s->calls++;
  s->status = lasync_task_status(t);
  snprintf(s->text, sizeof s->text, "%d %s %s", n, a, b);
}

/* A task spawned from Lua lets go of its thread once done, its results
** kept by its object; C watching it with lasync_task_on_done still reads
** them with lasync_task_results, before it ends and after. */
static void on_done_of_lua_spawned_tasks(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  Seen before = {0}, after = {0};
  lasync_Task *t = spawn_code(L,
    "local done = async.spawn(function() return 7, 'eight' end)\n"
    "gate = async.future()\n"
    "local later = async.spawn(function() return gate:await() + 2 end)\n"
    "async.sleep(0)\n"
    "collectgarbage()\n"
    "return done, later");
  CHECK(lasync_run_until(H, t) == 0);
  CHECK(lasync_task_results(L, t) == 2);
  lasync_task_on_done(L, -2, on_done_results, &after);
  CHECK(after.calls == 1 && after.status == LASYNC_DONE);
  CHECK(strcmp(after.text, "2 7 eight") == 0);
  lasync_task_on_done(L, -1, on_done_results, &before);
  CHECK(before.calls == 0);
  CHECK(luaL_dostring(L, "gate:resolve(7)") == LUA_OK);
  CHECK(lasync_run_until(H, NULL) == 0);
  CHECK(before.calls == 1 && strcmp(before.text, "1 9 -") == 0);
  lasync_free(H);
}

static void raising_done(lua_State *L, lasync_Task *t, void *ud) {
  (void)t; (void)ud;
  luaL_error(L, "callback broke");
}

static void done_callback_error_is_reported(void) {
  Log rep;
  lasync_Host *H = host_new(NULL, &rep, NULL);
  lua_State *L = lasync_state(H);
  luaL_loadstring(L, "return 1");
  lasync_spawn_cb(L, 0, raising_done, NULL);
  lua_pop(L, 1);
  lasync_run_until(H, NULL);
  CHECK(rep.n == 1);
  CHECK_HAS(rep.text, "callback broke");
  lasync_free(H);
}

/* ---------------------------------------------------------- driving */

static void run_once_turns(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  lasync_Task *t = spawn_code(L, "for i = 1, 5 do async.sleep(0) end return 'x'");
  lasync_Task *sleeper = spawn_code(L, "async.sleep(3600)");
  int turns = 0;
  CHECK(lasync_task_count(H) == 2);
  CHECK(lasync_run_once(H) == 2);        /* one turn: t is not done yet */
  CHECK(lasync_task_status(t) == LASYNC_PENDING);
  while (lasync_run_once(H) > 1 && turns < 100) turns++;
  CHECK(turns < 100);
  CHECK(lasync_task_status(t) == LASYNC_DONE);
  CHECK(lasync_run_once(H) == 1);        /* the sleeper: a turn does not block */
  CHECK(lasync_cancel(L, sleeper, NULL) == 1);
  CHECK(lasync_run_until(H, sleeper) == 0);
  CHECK(lasync_task_status(sleeper) == LASYNC_CANCELLED);
  lasync_free(H);
}

/* The application runs its loop itself; the host's tasks run as it turns. */
static void app_drives_loop(void) {
  uv_loop_t loop;
  lasync_Host *H;
  lua_State *L;
  lasync_Task *a, *b;
  uv_loop_init(&loop);
  H = lasync_new(&loop);
  L = lasync_state(H);
  a = spawn_code(L, "async.sleep(0.002) return 'a'");
  b = spawn_code(L, "local f = async.future() async.spawn(function() f:resolve('b') end) return f:await()");
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(lasync_task_count(H) == 0);
  CHECK(lasync_task_status(a) == LASYNC_DONE && lasync_task_status(b) == LASYNC_DONE);
  lasync_task_results(L, b);
  CHECK(strcmp(lua_tostring(L, -1), "b") == 0);
  lasync_free(H);
  CHECK(loop_finish(&loop) == 0);
}

static void run_until_deadlock(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  lasync_Task *t = spawn_code(L, "local f = async.future() f:await()");
  CHECK(lasync_run_until(H, t) == 1);
  CHECK(lasync_task_status(t) == LASYNC_PENDING);
  CHECK(lasync_run_until(H, NULL) == 1);
  lasync_task_stack(L, -1);
  CHECK_HAS(lua_tostring(L, -1), "await");
  lasync_free(H);                        /* cancels it */
}

/* ------------------------------------------------------- cancellation */

static void cancel_task(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  lasync_Task *t = spawn_code(L, "async.sleep(3600)");
  lasync_Task *u = spawn_code(L, "async.sleep(3600)");
  lasync_run_once(H);
  CHECK(lasync_cancel(L, t, "enough") == 1);
  CHECK(lasync_cancel(L, u, NULL) == 1);
  lasync_run_until(H, NULL);
  CHECK(lasync_cancel(L, t, "again") == 0);   /* done */
  lasync_task_results(L, t);
  CHECK(strcmp(luaL_tolstring(L, -1, NULL), "Cancelled: enough") == 0);
  lasync_task_results(L, u);
  CHECK_HAS(luaL_tolstring(L, -1, NULL), "Cancelled");
  lasync_free(H);
}

static void cancel_all_then_count(void) {
  Log notes;
  lasync_Host *H = host_new(NULL, NULL, &notes);
  lua_State *L = lasync_state(H);
  int i;
  for (i = 0; i < 3; i++)
    spawn_code(L, "local _ <close> = setmetatable({}, {__close = function(_, e)\n"
                  "  async.sleep(0) note(tostring(e)) end})\n"
                  "async.sleep(3600)");
  lasync_run_once(H);
  CHECK(lasync_task_count(H) == 3);
  lasync_cancel_all(H, "stop");
  CHECK(lasync_task_count(H) == 3);      /* a request: they end as the loop turns */
  CHECK(lasync_run_until(H, NULL) == 0);
  CHECK(lasync_task_count(H) == 0);
  CHECK(notes.n == 3);
  CHECK_HAS(notes.text, "Cancelled: stop");
  for (i = -3; i < 0; i++)
    CHECK(lasync_task_status((lasync_Task *)lua_touserdata(L, i)) == LASYNC_CANCELLED);
  lasync_free(H);
}

static void stack_and_traceback(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int top = lua_gettop(L);
  lasync_Task *w = spawn_code(L, "local function nap() async.sleep(3600) end nap()");
  lasync_Task *f = spawn_code(L, "error('fell')");
  lasync_run_once(H);
  lasync_task_stack(L, top + 1);
  CHECK_HAS(lua_tostring(L, -1), "nap");
  lasync_task_traceback(L, top + 1);
  CHECK(lua_isnil(L, -1));               /* not failed */
  lasync_task_traceback(L, top + 2);
  CHECK_HAS(lua_tostring(L, -1), "fell");
  lasync_task_stack(L, top + 2);
  CHECK(lua_isnil(L, -1));               /* done: waits nowhere */
  CHECK(lasync_task_status(f) == LASYNC_FAILED);
  lasync_task_results(L, f);
  lasync_cancel(L, w, NULL);
  lasync_free(H);
}

/* ------------------------------------------------------------ reports */

/* Failures nobody observed go to the report hook of their own host. */
static void reports_per_host(void) {
  Log r1, r2;
  lasync_Host *H1 = host_new(NULL, &r1, NULL), *H2 = host_new(NULL, &r2, NULL);
  spawn_code(lasync_state(H1), "error('lost in one')");
  lasync_run_until(H1, NULL);
  lasync_run_until(H2, NULL);
  lasync_free(H1);
  lasync_free(H2);
  CHECK(r1.n == 1 && r2.n == 0);
  CHECK_HAS(r1.text, "lost in one");
  CHECK_HAS(r1.text, "nobody awaited");
}

/* ----------------------------------------------------------- shutdown */

static void free_with_tasks_own_loop(void) {
  Log notes;
  Seen s = {0};
  lasync_Host *H = host_new(NULL, NULL, &notes);
  lua_State *L = lasync_state(H);
  spawn_code(L, "local _ <close> = setmetatable({}, {__close = function()\n"
                "  async.sleep(0.001) note('closed after a wait') end})\n"
                "async.sleep(3600)");
  spawn_code(L, "local ok, e = pcall(function() local f = async.future() f:await() end)\n"
                "note('caught ' .. tostring(e))");
  luaL_loadstring(L, "async.sleep(3600)");
  lasync_spawn_cb(L, 0, on_done, &s);
  lasync_run_once(H);
  lasync_free(H);
  CHECK_HAS(notes.text, "closed after a wait");
  CHECK_HAS(notes.text, "caught Cancelled: the program is ending");
  CHECK(s.calls == 1 && s.status == LASYNC_CANCELLED);
}

static void count_cb(uv_handle_t *h) {
  (*(int *)h->data)++;
}

static void count_timer(uv_timer_t *h) { count_cb((uv_handle_t *)h); }
static void count_idle(uv_idle_t *h) { count_cb((uv_handle_t *)h); }

/* On the application's loop, a host with tasks alive runs the loop while
** they clean up; the application's handles stay open and active. */
static void free_with_tasks_app_loop(void) {
  Log notes;
  uv_loop_t loop;
  uv_timer_t timer;
  int fired = 0;
  lasync_Host *H;
  uv_loop_init(&loop);
  uv_timer_init(&loop, &timer);
  timer.data = &fired;
  uv_timer_start(&timer, count_timer, 3600 * 1000, 0);
  H = host_new(&loop, NULL, &notes);
  spawn_code(lasync_state(H), "local _ <close> = setmetatable({}, {__close = function()\n"
                              "  async.sleep(0.001) note('cleaned') end})\n"
                              "async.sleep(3600)");
  lasync_run_once(H);
  lasync_free(H);
  CHECK_HAS(notes.text, "cleaned");
  CHECK(uv_is_active((uv_handle_t *)&timer) && !uv_is_closing((uv_handle_t *)&timer));
  CHECK(fired == 0);
  uv_close((uv_handle_t *)&timer, NULL);
  CHECK(loop_finish(&loop) == 0);
}

/* With no task alive, lasync_free does not run the application's loop:
** callbacks that are due do not run inside it. */
static void free_idle_host_runs_no_app_callback(void) {
  uv_loop_t loop;
  uv_timer_t timer;
  uv_idle_t idle;
  int fired = 0, idled = 0;
  lasync_Host *H;
  uv_loop_init(&loop);
  H = lasync_new(&loop);
  CHECK(run_code(H, "return 1") == LUA_OK);
  uv_timer_init(&loop, &timer);
  uv_idle_init(&loop, &idle);
  timer.data = &fired;
  idle.data = &idled;
  uv_timer_start(&timer, count_timer, 0, 0);
  uv_idle_start(&idle, count_idle);
  lasync_free(H);
  CHECK(fired == 0 && idled == 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(fired == 1 && idled == 1);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_close((uv_handle_t *)&idle, NULL);
  CHECK(loop_finish(&loop) == 0);
}

/* Shutdown from inside one of the application's callbacks, where uv_run
** may not be called: cancel, let the loop turn, free when none is left. */
typedef struct Stopper {
  uv_timer_t timer;
  lasync_Host *H;
  Log *notes;
  int phase;
} Stopper;

static void stopper_cb(uv_timer_t *h) {
  Stopper *s = (Stopper *)h->data;
  if (s->phase == 0 && s->notes->n == 0) return;   /* the task has not begun */
  if (s->phase == 0) {
    lasync_cancel_all(s->H, "shutting down");
    s->phase = 1;
  }
  else if (lasync_task_count(s->H) == 0) {
    lasync_free(s->H);                   /* no task: it does not run the loop */
    s->H = NULL;
    uv_close((uv_handle_t *)h, NULL);
  }
}

static void free_from_app_callback(void) {
  Log notes;
  uv_loop_t loop;
  Stopper s;
  memset(&s, 0, sizeof s);
  uv_loop_init(&loop);
  s.H = host_new(&loop, NULL, &notes);
  s.notes = &notes;
  spawn_code(lasync_state(s.H), "note('begun') local ok, e = pcall(async.sleep, 3600)\n"
                                "async.sleep(0.001) note(tostring(e))");
  lua_pop(lasync_state(s.H), 1);
  uv_timer_init(&loop, &s.timer);
  s.timer.data = &s;
  uv_timer_start(&s.timer, stopper_cb, 1, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(s.H == NULL);
  CHECK_HAS(notes.text, "Cancelled: shutting down");
  CHECK(loop_finish(&loop) == 0);
}

int main(void) {
  TEST(new_own_loop);
  TEST(new_app_loop);
  TEST(host_of_any_state);
  TEST(dostring_results);
  TEST(dostring_error);
  TEST(dostring_syntax_error);
  TEST(dostring_cancelled);
  TEST(dostring_deadlock);
  TEST(dofile_ok_and_missing);
  TEST(spawn_string_and_file);
  TEST(spawn_load_errors);
  TEST(spawn_function);
  TEST(spawn_cb_outcomes);
  TEST(on_done_when_done);
  TEST(on_done_of_lua_spawned_tasks);
  TEST(done_callback_error_is_reported);
  TEST(run_once_turns);
  TEST(app_drives_loop);
  TEST(run_until_deadlock);
  TEST(cancel_task);
  TEST(cancel_all_then_count);
  TEST(stack_and_traceback);
  TEST(reports_per_host);
  TEST(free_with_tasks_own_loop);
  TEST(free_with_tasks_app_loop);
  TEST(free_idle_host_runs_no_app_callback);
  TEST(free_from_app_callback);
  return tap_end();
}
