/*
** timer.c: the host clock, one min-heap for every deadline (sleeps and
** callbacks) behind a single uv_timer_t, async.sleep, async.time, and the
** call_soon / call_later handles.
**
** Deadlines are taken from uv_hrtime, not from libuv's cached loop time:
** the cached time can lag by however long the current turn has run, so a
** deadline computed from it would fire early. The uv timer may still fire
** before a deadline (it counts from the cached time); the callback then
** re-arms for the rest.
**
** The virtual clock (for tests, as Trio's MockClock): time stands still
** while any task can run, and when every task waits, it jumps straight to
** the next deadline. The uv timer then only paces the jumps (after
** `autojump` real ns of idleness, 0 by default).
*/
#include <math.h>
#include <stdlib.h>
#include <lauxlib.h>
#include "core/core.h"

#define HANDLE_MT "lasync.Handle"
#define HOST(L) ((lasync_Host *)lua_touserdata(L, lua_upvalueindex(1)))
#define MAX_SLEEP 1e9             /* seconds; longer waits have no timer */

uint64_t lasync__now(lasync_Host *H) {
  return H->virtual_clock ? H->vnow : uv_hrtime() + (uint64_t)H->clock_offset;
}

/* A call_soon / call_later callback. */
typedef struct Handle {
  lasync_Runnable run;
  lasync_Timer timer;
  lasync_Host *H;
  int ref;                        /* anchor while scheduled or queued */
  unsigned char state;
} Handle;
enum { H_SCHEDULED, H_QUEUED, H_DONE, H_CANCELLED };

/* -------------------------------------------------------------- the heap */

static int heap_less(const lasync_Timer *a, const lasync_Timer *b) {
  return a->due < b->due || (a->due == b->due && (int32_t)(a->seq - b->seq) < 0);
}

static void heap_set(lasync_Host *H, uint32_t i, lasync_Timer *tm) {
  H->heap[i] = tm;
  tm->idx = i + 1;
}

static void heap_up(lasync_Host *H, uint32_t i) {
  lasync_Timer *tm = H->heap[i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!heap_less(tm, H->heap[p])) break;
    heap_set(H, i, H->heap[p]);
    i = p;
  }
  heap_set(H, i, tm);
}

static void heap_down(lasync_Host *H, uint32_t i) {
  lasync_Timer *tm = H->heap[i];
  for (;;) {
    uint32_t c = 2 * i + 1;
    if (c >= H->heap_len) break;
    if (c + 1 < H->heap_len && heap_less(H->heap[c + 1], H->heap[c])) c++;
    if (!heap_less(H->heap[c], tm)) break;
    heap_set(H, i, H->heap[c]);
    i = c;
  }
  heap_set(H, i, tm);
}

static void timer_arm(lasync_Host *H);

static void timer_fire(lasync_Host *H, lasync_Timer *tm) {
  if ((tm->seq & 1) == TIMER_SLEEP)
    lasync_wake(&container_of(tm, lasync_Task, timer)->self);
  else {
    Handle *h = container_of(tm, Handle, timer);
    h->state = H_QUEUED;
    lasync__ready_push(H, &h->run);
  }
}

/* Fires every deadline up to the host's now. */
static void timer_fire_due(lasync_Host *H) {
  uint64_t now = lasync__now(H);
  while (H->heap_len > 0 && H->heap[0]->due <= now) {
    lasync_Timer *tm = H->heap[0];
    lasync__timer_stop(H, tm);
    timer_fire(H, tm);
  }
}

/* With a virtual clock, when no task can run: jump to the next deadline. */
void lasync__timer_jump(lasync_Host *H) {
  if (!H->virtual_clock || H->heap_len == 0 || H->ready_head != NULL) return;
  if (H->heap[0]->due > H->vnow) H->vnow = H->heap[0]->due;
  timer_fire_due(H);
  timer_arm(H);
}

static void timer_cb(uv_timer_t *h) {
  lasync_Host *H = (lasync_Host *)h->data;
  if (H->virtual_clock) lasync__timer_jump(H);
  else timer_fire_due(H);
  timer_arm(H);
}

static void timer_arm(lasync_Host *H) {
  uint64_t now, ms = 0;
  if (H->closing) return;
  if (H->heap_len == 0) {
    uv_timer_stop(&H->uvtimer);
    return;
  }
  if (H->virtual_clock) {
    /* Jumps happen when the ready queue runs dry (sched.c), or, with an
    ** autojump delay, after that much real idleness. (A 0 ms timer re-armed
    ** from its own callback would spin inside libuv's timer phase.) */
    if (H->autojump == 0) uv_timer_stop(&H->uvtimer);
    else uv_timer_start(&H->uvtimer, timer_cb, (H->autojump + 999999) / 1000000, 0);
    return;
  }
  now = lasync__now(H);
  if (H->heap[0]->due > now) ms = (H->heap[0]->due - now + 999999) / 1000000;
  uv_timer_start(&H->uvtimer, timer_cb, ms, 0);
}

void lasync__timer_start(lasync_Host *H, lasync_Timer *tm, uint64_t due, int kind) {
  lasync_assert(tm->idx == 0);           /* in the heap once */
  if (H->heap_len == H->heap_cap) {
    uint32_t cap = H->heap_cap ? H->heap_cap * 2 : 64;
    lasync_Timer **heap = (lasync_Timer **)realloc(H->heap, cap * sizeof *heap);
    if (heap == NULL) luaL_error(H->L, "not enough memory for a timer");
    H->heap = heap;
    H->heap_cap = cap;
  }
  tm->due = due;
  tm->seq = (H->timer_seq++ << 1) | (uint32_t)kind;
  heap_set(H, H->heap_len++, tm);
  heap_up(H, H->heap_len - 1);
  if (H->heap[0] == tm) timer_arm(H);
}

/* Removes tm from the heap; harmless when it is not there. */
void lasync__timer_stop(lasync_Host *H, lasync_Timer *tm) {
  uint32_t i;
  if (tm->idx == 0) return;
  i = tm->idx - 1;
  tm->idx = 0;
  if (--H->heap_len == i) return;
  heap_set(H, i, H->heap[H->heap_len]);
  if (i > 0 && heap_less(H->heap[i], H->heap[(i - 1) / 2])) heap_up(H, i);
  else heap_down(H, i);
}

void lasync__timer_init(lasync_Host *H) {
  uv_timer_init(H->loop, &H->uvtimer);
  H->uvtimer.data = H;
}

/* ------------------------------------------------------------- sleeping */

/* A sleeping task's wait says so; task_api.c tells it apart by address to
** add the time left. */
const char lasync__what_sleep[] = "sleep";

static void sleep_cancel(lasync_Wait *w) {
  lasync_Task *t = container_of(w, lasync_Task, self);
  lasync__timer_stop(t->H, &t->timer);
}

/* async.sleep(sec): sleep(0) (or less) lets every other ready task run. */
static int l_sleep(lua_State *L) {
  lua_Number sec = luaL_checknumber(L, 1);
  lasync_Task *t;
  luaL_argcheck(L, sec == sec, 1, "not a number (NaN)");
  t = lasync_checktask(L, "async.sleep");
  lua_settop(L, 0);
  if (sec <= 0) {
    return lasync__yield(L, t);
  }
  t->self.what = lasync__what_sleep;
  if (sec < MAX_SLEEP) {
    lasync__timer_start(t->H, &t->timer,
                        lasync__now(t->H) + (uint64_t)ceil(sec * 1e9), TIMER_SLEEP);
  }
  return lasync_wait(L, &t->self, sleep_cancel, NULL, 0);
}

/* core.clock("virtual" [, autojump_sec]) or core.clock("real"): switches
** the host clock; time stays continuous and monotonic across switches.
** Returns the previous mode. */
static int l_clock(lua_State *L) {
  static const char *const modes[] = {"real", "virtual", NULL};
  lasync_Host *H = HOST(L);
  int mode, prev = H->virtual_clock;
  lua_Number jump = luaL_optnumber(L, 2, 0);
  if (lua_isnone(L, 1)) {
    lua_pushstring(L, modes[prev]);
    return 1;
  }
  mode = luaL_checkoption(L, 1, NULL, modes);
  luaL_argcheck(L, jump >= 0, 2, "must not be negative");
  luaL_argcheck(L, jump < MAX_SLEEP, 2, "must be under 1e9 seconds");  /* NaN too */
  if (mode && !H->virtual_clock)          /* on a whole second, so that */
    H->vnow = (lasync__now(H) / 1000000000 + 1) * 1000000000;  /* time() is exact */
  if (!mode && H->virtual_clock)
    H->clock_offset = (int64_t)(H->vnow - uv_hrtime());
  H->virtual_clock = (unsigned char)mode;
  H->autojump = mode ? (uint64_t)(jump * 1e9) : 0;
  timer_arm(H);
  if (mode && H->ready_head == NULL) lasync__ready_wakeup(H);
  lua_pushstring(L, modes[prev]);
  return 1;
}

/* core.advance(sec): moves the virtual clock forward by sec and fires the
** deadlines it passes (their tasks run on the next round). */
static int l_advance(lua_State *L) {
  lasync_Host *H = HOST(L);
  lua_Number sec = luaL_checknumber(L, 1);
  luaL_argcheck(L, sec >= 0, 1, "must not be negative");
  luaL_argcheck(L, sec < MAX_SLEEP, 1, "must be under 1e9 seconds");  /* NaN too */
  if (!H->virtual_clock) return luaL_error(L, "advance: the clock is not virtual");
  H->vnow += (uint64_t)(sec * 1e9);
  timer_fire_due(H);
  timer_arm(H);
  return 0;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, (lua_Number)lasync__now(HOST(L)) / 1e9);
  return 1;
}

/* ------------------------------------------------------------ callbacks */


static void handle_unanchor(Handle *h) {
  luaL_unref(h->H->L, LUA_REGISTRYINDEX, h->ref);
  h->ref = LUA_NOREF;
}

/* Makes a handle for the function below nargs arguments on L's top, pops
** them and pushes the handle. */
static Handle *handle_new(lua_State *L, lasync_Host *H, int nargs) {
  Handle *h;
  lua_createtable(L, nargs + 1, 1);
  lua_insert(L, -(nargs + 2));
  lua_pushinteger(L, nargs + 1);
  lua_setfield(L, -(nargs + 3), "n");
  for (; nargs >= 0; nargs--) lua_rawseti(L, -(nargs + 2), nargs + 1);
  h = (Handle *)lua_newuserdatauv(L, sizeof *h, 1);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, HANDLE_MT);
  h->run.kind = RUN_CALLBACK;
  h->run.next = NULL;
  h->timer.idx = 0;
  h->H = H;
  lua_pushvalue(L, -1);
  h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return h;
}

void lasync__callback_run(lasync_Host *H, lasync_Runnable *r) {
  Handle *h = container_of(r, Handle, run);
  lua_State *L = H->L;
  int i, n;
  if (h->state == H_CANCELLED) {
    handle_unanchor(h);
    return;
  }
  h->state = H_DONE;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ref);
  lua_getiuservalue(L, -1, 1);
  lua_remove(L, -2);
  handle_unanchor(h);                     /* h may be collected from here */
  lua_getfield(L, -1, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many arguments");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -(n + 1));
  lasync__pcall(L, n - 1, 0);
}

void lasync__call_soon(lua_State *L, int nargs) {
  lasync_Host *H = lasync_host(L);
  Handle *h = handle_new(L, H, nargs);
  h->state = H_QUEUED;
  lasync__ready_push(H, &h->run);
  lua_pop(L, 1);
}

static int l_call_soon(lua_State *L) {
  Handle *h;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  h = handle_new(L, HOST(L), lua_gettop(L) - 1);
  h->state = H_QUEUED;
  lasync__ready_push(h->H, &h->run);
  return 1;
}

static int l_call_later(lua_State *L) {
  lua_Number sec = luaL_checknumber(L, 1);
  lasync_Host *H = HOST(L);
  Handle *h;
  luaL_argcheck(L, sec == sec, 1, "not a number (NaN)");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_remove(L, 1);
  h = handle_new(L, H, lua_gettop(L) - 1);
  h->state = H_SCHEDULED;
  if (sec <= 0) {
    h->state = H_QUEUED;
    lasync__ready_push(H, &h->run);
  }
  else if (sec < MAX_SLEEP)
    lasync__timer_start(H, &h->timer, lasync__now(H) + (uint64_t)ceil(sec * 1e9),
                        TIMER_CALLBACK);
  return 1;
}

/* h:cancel(): true when the callback had not run yet. */
static int handle_cancel(lua_State *L) {
  Handle *h = (Handle *)luaL_checkudata(L, 1, HANDLE_MT);
  int pending = h->state == H_SCHEDULED || h->state == H_QUEUED;
  if (h->state == H_SCHEDULED) {
    lasync__timer_stop(h->H, &h->timer);
    handle_unanchor(h);
  }
  if (pending) h->state = H_CANCELLED;    /* a queued one is dropped later */
  lua_pushboolean(L, pending);
  return 1;
}

static int handle_cancelled(lua_State *L) {
  Handle *h = (Handle *)luaL_checkudata(L, 1, HANDLE_MT);
  lua_pushboolean(L, h->state == H_CANCELLED);
  return 1;
}

static int handle_tostring(lua_State *L) {
  static const char *const names[] = {"scheduled", "queued", "done", "cancelled"};
  Handle *h = (Handle *)luaL_checkudata(L, 1, HANDLE_MT);
  lua_pushfstring(L, "Handle<%s>", names[h->state]);
  return 1;
}

/* ------------------------------------------------------ real-time alarms */

/* core.alarm(sec, fn): calls fn (a plain callback) after sec seconds of
** real time, whatever the host clock says: test timeouts must hold under a
** virtual clock. Returns a function that cancels it. The uv_timer_t lives
** apart from its Lua box and is freed in its close callback, which the
** cancel function or the box's __gc starts. It keeps the loop alive: a
** stuck test is reported by its timeout, with the tasks that wait. */
typedef struct Alarm {
  uv_timer_t timer;
  lua_State *L;
  int ref;                        /* the callback, until it runs */
} Alarm;

#define ALARM_MT "lasync.Alarm"

static void alarm_close_cb(uv_handle_t *h) { free(h->data); }

static void alarm_cb(uv_timer_t *h) {
  Alarm *a = (Alarm *)h->data;
  lua_State *L = a->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, a->ref);
  a->ref = LUA_NOREF;
  lasync__pcall(L, 0, 0);
}

static int alarm_close(lua_State *L) {
  Alarm **box = (Alarm **)luaL_checkudata(L, 1, ALARM_MT);
  Alarm *a = *box;
  if (a == NULL) return 0;
  *box = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, a->ref);
  uv_close((uv_handle_t *)&a->timer, alarm_close_cb);
  return 0;
}

static int alarm_cancel_box(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  return alarm_close(L);
}

static int l_alarm(lua_State *L) {
  lua_Number sec = luaL_checknumber(L, 1);
  Alarm *a, **box;
  luaL_argcheck(L, sec >= 0 && sec < MAX_SLEEP, 1, "out of range");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  box = (Alarm **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, ALARM_MT);
  a = (Alarm *)malloc(sizeof *a);
  if (a == NULL) return luaL_error(L, "not enough memory");
  a->L = HOST(L)->L;
  lua_pushvalue(L, 2);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  uv_timer_init(HOST(L)->loop, &a->timer);
  a->timer.data = a;
  uv_timer_start(&a->timer, alarm_cb, (uint64_t)ceil(sec * 1000), 0);
  *box = a;
  lua_pushcclosure(L, alarm_cancel_box, 1);
  return 1;
}

static const luaL_Reg handle_methods[] = {
  {"cancel", handle_cancel}, {"cancelled", handle_cancelled}, {NULL, NULL}
};

static const luaL_Reg timer_funcs[] = {
  {"sleep", l_sleep}, {"time", l_time}, {"call_soon", l_call_soon},
  {"call_later", l_call_later}, {"clock", l_clock}, {"advance", l_advance},
  {"alarm", l_alarm},
  {NULL, NULL}
};

int lasync__open_timer(lua_State *L) {
  static const luaL_Reg handle_meta[] = {{"__tostring", handle_tostring}, {NULL, NULL}};
  static const luaL_Reg alarm_meta[] = {{"__gc", alarm_close}, {NULL, NULL}};
  lasync__class(L, HANDLE_MT, handle_meta, handle_methods);
  lasync__class(L, ALARM_MT, alarm_meta, NULL);
  lua_pop(L, 2);
  lua_pushlightuserdata(L, lasync_host(L));
  luaL_setfuncs(L, timer_funcs, 1);
  return 0;
}
