/*
** sched.c: the ready queue, the wait/wake interface and the waits lists.
**
** A task suspends in C with lasync_wait and is woken by lasync_wake*, which
** only stage the outcome on the task's stack and queue it; the queue is
** drained from the loop (an idle handle while work is ready, and a check
** handle right after I/O), so no libuv callback ever resumes a coroutine.
** Each drain runs the list it found; wakes during the drain go to the next
** round, which is what makes sleep(0) fair.
*/
#include <stdio.h>
#include <stdlib.h>
#include <lauxlib.h>
#include "core/core.h"

char lasync__tag;
const char lasync__hostkey = 0;

lasync_Task *lasync__task_of(lua_State *L) {
  return *(lasync_Task **)lua_getextraspace(L);
}

lasync_Host *lasync_host(lua_State *L) {
  lasync_Task *t = lasync__task_of(L);
  lasync_Host *H;
  if (t) return t->H;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &lasync__hostkey);
  H = (lasync_Host *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  return H;
}

lua_State *lasync_state(lasync_Host *H) { return H->L; }
uv_loop_t *lasync_loop(lasync_Host *H) { return H->loop; }
lasync_NewFn lasync__host_maker(lasync_Host *H) { return H->make; }
int lasync__host_closing(lasync_Host *H) { return H->closing; }
const void **lasync__host_stream_mt(lasync_Host *H) { return &H->stream_mt; }
uint32_t lasync__task_id(lasync_Task *t) { return t->id; }
int lasync__task_cancelling(lasync_Task *t) { return (t->flags & TF_CANCELREQ) != 0; }
lasync_Wait *lasync_task_wait(lasync_Task *t) { return &t->self; }

/* ------------------------------------------------------------- ready queue */

/* Schedule fuzzing (lasync_set_shuffle): each drain runs its list in an
** order drawn from a seeded generator (splitmix64), so the same seed replays
** the same order; tasks woken by timers due at the same instant share a
** drain, so their order is drawn too. Order-dependent bugs then show in
** tests. Off, the order stays FIFO. */
static uint64_t sched_random(lasync_Host *H) {
  uint64_t z = (H->shuffle_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Returns the list r relinked in a random order (as it was if the array
** cannot grow: the order is then FIFO, never a lost item). */
static lasync_Runnable *sched_shuffle(lasync_Host *H, lasync_Runnable *r) {
  uint32_t n = 0, i;
  lasync_Runnable *p;
  for (p = r; p; p = p->next) n++;
  if (n < 2) return r;
  if (n > H->shuffle_cap) {
    void *a = realloc(H->shuffle_buf, n * sizeof *H->shuffle_buf);
    if (a == NULL) return r;
    H->shuffle_buf = (lasync_Runnable **)a;
    H->shuffle_cap = n;
  }
  for (i = 0, p = r; p; p = p->next) H->shuffle_buf[i++] = p;
  for (i = n - 1; i > 0; i--) {            /* Fisher-Yates */
    uint32_t j = (uint32_t)(sched_random(H) % (i + 1));
    p = H->shuffle_buf[i];
    H->shuffle_buf[i] = H->shuffle_buf[j];
    H->shuffle_buf[j] = p;
  }
  for (i = 0; i + 1 < n; i++) H->shuffle_buf[i]->next = H->shuffle_buf[i + 1];
  H->shuffle_buf[n - 1]->next = NULL;
  return H->shuffle_buf[0];
}

void lasync_set_shuffle(lasync_Host *H, int on, unsigned long long seed) {
  H->shuffle = (unsigned char)(on != 0);
  H->shuffle_seed = H->shuffle_state = (uint64_t)seed;
}

/* core.shuffle([seed | false]): with an integer, shuffles from now on with
** that seed (the generator restarts); false: FIFO again. Returns the seed in
** use before, or nil when it was off. */
int lasync__l_shuffle(lua_State *L) {
  lasync_Host *H = lasync_host(L);
  int was = H->shuffle;
  lua_Integer before = (lua_Integer)H->shuffle_seed;
  if (!lua_isnoneornil(L, 1)) {
    if (lua_isboolean(L, 1) && !lua_toboolean(L, 1)) lasync_set_shuffle(H, 0, 0);
    else lasync_set_shuffle(H, 1, (unsigned long long)luaL_checkinteger(L, 1));
  }
  if (was) lua_pushinteger(L, before);
  else lua_pushnil(L);
  return 1;
}

/* A frame budget spent (lasync_run_once with lasync_set_budget): puts the
** list r back before what was queued since, for the next call. */
static void sched_requeue(lasync_Host *H, lasync_Runnable *r) {
  lasync_Runnable *tail = r;
  while (tail->next) tail = tail->next;
  tail->next = H->ready_head;
  if (H->ready_head == NULL) H->ready_tail = tail;
  H->ready_head = r;
}

static int sched_spent(lasync_Host *H) {
  return H->budget_end != 0 && uv_hrtime() >= H->budget_end;
}

static void sched_drain(lasync_Host *H) {
  lasync_Runnable *r = H->ready_head;
  if (r && H->budget_used && sched_spent(H)) return;  /* idle stays on */
  H->ready_head = H->ready_tail = NULL;
  if (H->shuffle) r = sched_shuffle(H, r);
  H->inside++;                           /* callbacks may not drive the loop */
  while (r) {
    lasync_Runnable *next = r->next;  /* r may be collected by its step */
    r->next = NULL;
    if (r->kind == RUN_TASK) lasync__task_step(H, container_of(r, lasync_Task, run));
    else lasync__callback_run(H, r);
    r = next;
    H->budget_used = 1;                  /* each call runs one at least */
    if (r && sched_spent(H)) {
      sched_requeue(H, r);
      break;
    }
  }
  H->inside--;
  if (H->ready_head == NULL) lasync__timer_jump(H);  /* virtual clock */
  if (H->ready_head == NULL) uv_idle_stop(&H->idle);
}


static void sched_idle_cb(uv_idle_t *h) {
  sched_drain((lasync_Host *)h->data);
}

static void sched_check_cb(uv_check_t *h) {
  lasync_Host *H = (lasync_Host *)h->data;
  if (H->ready_head) sched_drain(H);
}

/* Makes the loop drain (and so jump a virtual clock) on its next turn. */
void lasync__ready_wakeup(lasync_Host *H) {
  if (!H->closing) uv_idle_start(&H->idle, sched_idle_cb);
}

void lasync__ready_push(lasync_Host *H, lasync_Runnable *r) {
  lasync_assert(r != H->ready_tail);     /* queued once: not the tail already */
  r->next = NULL;
  if (H->ready_tail) H->ready_tail->next = r;
  else {
    H->ready_head = r;
    if (!H->closing) uv_idle_start(&H->idle, sched_idle_cb);
  }
  H->ready_tail = r;
}

void lasync__sched_init(lasync_Host *H) {
  uv_idle_init(H->loop, &H->idle);
  uv_check_init(H->loop, &H->check);
  H->idle.data = H->check.data = H;
  uv_check_start(&H->check, sched_check_cb);
  uv_unref((uv_handle_t *)&H->check);
}

/* ----------------------------------------------------------- wait and wake */

void lasync__stage(lasync_Task *t, int status, lua_State *from, int n) {
  lasync_assert(t->state == T_WAITING);  /* only a wait's end stages a task */
  if (n > 0) lua_xmove(from, t->co, n);
  t->status = (unsigned char)status;
  t->nargs = n;
  t->wait = NULL;
  t->state = T_READY;
  lasync__ready_push(t->H, &t->run);
}

static int wake_aux(lua_State *L, lasync_Wait *w, int status, int n) {
  lasync_Task *t = w->task;
  if (t == NULL || t->wait != w || t->gen != w->gen) {  /* stale: ignore */
    if (n > 0) lua_pop(L, n);
    return 0;
  }
  w->task = NULL;
  w->what = NULL;                        /* the next wait says its own */
  lasync_assert(t->state == T_WAITING);
  if (n > 0 && !lua_checkstack(t->co, n)) {
    lua_pop(L, n);
    lua_pushliteral(L, "lasync: too many values to wake a task with");
    status = WAKE_ERROR;
    n = 1;
  }
  lasync__stage(t, status, L, n);
  return 1;
}

int lasync_wake(lasync_Wait *w) { return wake_aux(NULL, w, WAKE_OK, 0); }

int lasync_wake_values(lua_State *L, lasync_Wait *w, int n) {
  return wake_aux(L, w, WAKE_OK, n);
}

int lasync_wake_error(lua_State *L, lasync_Wait *w) {
  return wake_aux(L, w, WAKE_ERROR, 1);
}

lasync_Task *lasync_checktask(lua_State *L, const char *what) {
  lasync_Task *t = lasync__task_of(L);
  if (t == NULL) luaL_error(L, "%s: not inside a task", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s: cannot wait here (inside a metamethod or C function "
                  "that does not allow yielding)", what);
  if (t->flags & TF_CANCELREQ) {
    lasync__take_cancel(L, t);
    lua_error(L);
  }
  return t;
}

/* Continuation of every wait: raise a staged error, else hand over. */
static int sched_wait_k(lua_State *L, int status, lua_KContext base) {
  lasync_Task *t = lasync__task_of(L);
  (void)status;
  if (t->status != WAKE_OK) return lua_error(L);
  if (t->k) return t->k(L, LUA_YIELD, t->kctx);
  return lua_gettop(L) - (int)base;
}

int lasync_wait(lua_State *L, lasync_Wait *w, lasync_CancelFn cancel,
                lua_KFunction k, lua_KContext ctx) {
  lasync_Task *t = lasync__task_of(L);
  int base = lua_gettop(L);
  lasync_assert(t != NULL && t->wait == NULL);  /* after lasync_checktask */
  lasync_assert(w->task == NULL);        /* a wait has one owner at a time */
  w->task = t;
  w->cancel = cancel;
  w->gen = ++t->gen;
  t->wait = w;
  t->state = T_WAITING;
  t->k = k;
  t->kctx = ctx;
  lua_pushlightuserdata(L, LASYNC_TAG);
  return lua_yieldk(L, 1, (lua_KContext)base, sched_wait_k);
}

/* Yields the running task and queues it to run again next round, with
** no wait: a cancellation meanwhile stays pending (sleep(0)). */
int lasync__yield(lua_State *L, lasync_Task *t) {
  int base = lua_gettop(L);
  t->status = WAKE_OK;
  t->k = NULL;
  t->state = T_READY;
  lasync__ready_push(t->H, &t->run);
  lua_pushlightuserdata(L, LASYNC_TAG);
  return lua_yieldk(L, 1, (lua_KContext)base, sched_wait_k);
}

/* -------------------------------------------------------------- wait lists */

void lasync_waitlist_init(lasync_WaitList *l) { l->next = l->prev = l; }

int lasync_waitlist_empty(const lasync_WaitList *l) { return l->next == l; }

void lasync_waitlist_push(lasync_WaitList *l, lasync_Wait *w) {
  struct lasync_Link *n = &w->link;
  lasync_assert(n->next == NULL);        /* in one list at a time */
  n->prev = l->prev;
  n->next = l;
  l->prev->next = n;
  l->prev = n;
}

void lasync_waitlist_remove(lasync_Wait *w) {
  struct lasync_Link *n = &w->link;
  if (n->next == NULL) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n->prev = NULL;
}

lasync_Wait *lasync_waitlist_pop(lasync_WaitList *l) {
  lasync_Wait *w;
  if (l->next == l) return NULL;
  w = container_of(l->next, lasync_Wait, link);
  lasync_waitlist_remove(w);
  return w;
}

/* Removes the first element rawequal to the value at v from the list (a
** sequence) at idx, which may be nil; returns whether it found one. */
int lasync__list_remove(lua_State *L, int idx, int v) {
  int i, n, found = 0;
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return 0;
  n = (int)luaL_len(L, idx);
  for (i = 1; i <= n && !found; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_rawequal(L, -1, v)) found = i;
    lua_pop(L, 1);
  }
  if (!found) return 0;
  for (i = found; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    lua_rawseti(L, idx, i);
  }
  lua_pushnil(L);
  lua_rawseti(L, idx, n);
  return 1;
}

/* ------------------------------------------------------------------ errors */

void lasync_set_report(lasync_Host *H, lasync_ReportFn fn, void *ud) {
  H->report = fn;
  H->report_ud = ud;
}

lasync_ReportFn lasync__get_report(lasync_Host *H, void **ud) {
  *ud = H->report_ud;
  return H->report;
}

void lasync__report(lasync_Host *H, const char *msg) {
  if (H->report) H->report(H, msg, H->report_ud);
  else {
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
  }
}

static int sched_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* The one gate for plain callbacks (call_soon, call_later, done callbacks):
** a protected call whose failure is reported with a traceback, never lost
** and never propagated into the loop. Returns the lua_pcall status. */
int lasync__pcall(lua_State *L, int nargs, int nres) {
  int base = lua_gettop(L) - nargs, st;
  lasync_Host *H = lasync_host(L);
  lua_pushcfunction(L, sched_traceback);
  lua_insert(L, base);
  H->inside++;                           /* a callback may not drive the loop */
  st = lua_pcall(L, nargs, nres, base);
  H->inside--;
  lua_remove(L, base);
  if (st != LUA_OK) {
    lua_pushfstring(L, "lasync: callback failed: %s", lua_tostring(L, -1));
    lasync__report(H, lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  return st;
}
