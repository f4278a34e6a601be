/*
** sync.c: the async.sync module: lock, event, condition, semaphore and
** bounded_semaphore; barrier.c adds barrier and the BrokenBarrier error.
**
** Every primitive keeps its waiters in a FIFO lasync_WaitList and hands
** what they wait for straight to the first of them: release gives the lock
** (or the permit) to the first waiter and wakes it as the new holder, so a
** task that releases and acquires again queues behind the others, and a
** woken waiter never has to compete again. A cancelled waiter leaves its
** list at once and so never receives anything; one that was handed the
** lock and is cancelled before it runs still returns from acquire holding
** it (the core keeps that cancellation pending until its next wait), and
** `<close>` releases it.
**
** Locks are owned by tasks (by id: a finished task's id is never reused).
** A condition notified moves its waiter onto its lock's waiters ("wait
** morphing"): the waiter wakes only when the lock is handed to it. Waits
** use the task's built-in wait (t->self), except a condition wait, whose
** own node also records whether it was notified (see cond_cancel).
*/
#include <string.h>
#include <lauxlib.h>
#include "sync/sync.h"

/* Metatable names; their addresses also tag the structs (sync_check). */
static const char LOCK_MT[] = "lasync.Lock";
static const char EVENT_MT[] = "lasync.Event";
static const char COND_MT[] = "lasync.Condition";
static const char SEM_MT[] = "lasync.Semaphore";

/* Cancel function of the plain waits: leave the list, take nothing. */
static void sync_unlist(lasync_Wait *w) {
  lasync_waitlist_remove(w);
}

static int sync_count(const lasync_WaitList *l) {
  const struct lasync_Link *n;
  int c = 0;
  for (n = l->next; n != l; n = n->next) c++;
  return c;
}

/* Every struct here starts with a pointer to its metatable name, for the
** fast type check (lasync__checkudata, module.h). */
#define sync_check lasync__checkudata

/* Returns the task running L, raising "<what>: not inside a task". */
static lasync_Task *sync_task(lua_State *L, const char *what) {
  lasync_Task *t = lasync__task_of(L);
  if (t == NULL) luaL_error(L, "%s: not inside a task", what);
  return t;
}

/* Continuation of waits that return their object (at 1): a guard. */
static int sync_return_self(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lua_settop(L, 1);
  return 1;
}

static int sync_return_true(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------------ lock */

typedef struct Lock {
  const char *tag;                /* LOCK_MT */
  lasync_WaitList waiters;
  uint32_t owner;                 /* id of the holding task; 0: unlocked */
} Lock;

static Lock *lock_check(lua_State *L, int i) {
  return (Lock *)sync_check(L, i, LOCK_MT, sizeof(Lock));
}

/* Hands k to its first waiter, woken as the owner, or unlocks it. Every
** wait on the list is a current one (cancelled ones have left), so its
** task is set. */
static void lock_handoff(Lock *k) {
  lasync_Wait *w = lasync_waitlist_pop(&k->waiters);
  if (w == NULL) {
    k->owner = 0;
    return;
  }
  k->owner = lasync__task_id(w->task);
  lasync_wake(w);
}

/* Acquires k for the running task; returns the value at 1 (the guard). */
static int lock_acquire_aux(lua_State *L, Lock *k) {
  lasync_Task *t = sync_task(L, "acquire");
  lua_settop(L, 1);
  if (k->owner == 0) {
    k->owner = lasync__task_id(t);
    return 1;
  }
  if (k->owner == lasync__task_id(t))
    return luaL_error(L, "acquire: this task already holds the lock (locks are not re-entrant)");
  lasync_checktask(L, "acquire");
  lasync_Wait *self = lasync_task_wait(t);
  lasync_waitlist_push(&k->waiters, self);
  self->what = "lock";
  return lasync_wait(L, self, sync_unlist, sync_return_self, 0);
}

static int lock_release_aux(lua_State *L, Lock *k, const char *what) {
  lasync_Task *t = lasync__task_of(L);
  if (k->owner == 0) return luaL_error(L, "%s: the lock is not locked", what);
  if (t == NULL || lasync__task_id(t) != k->owner)
    return luaL_error(L, "%s: the lock is held by another task", what);
  lock_handoff(k);
  return 0;
}

static int lock_acquire(lua_State *L) {
  return lock_acquire_aux(L, lock_check(L, 1));
}

static int lock_release(lua_State *L) {
  return lock_release_aux(L, lock_check(L, 1), "release");
}

static int lock_locked(lua_State *L) {
  lua_pushboolean(L, lock_check(L, 1)->owner != 0);
  return 1;
}

static void lock_pushstate(lua_State *L, Lock *k) {
  lua_pushfstring(L, "%s, %d waiting", k->owner ? "locked" : "unlocked",
                  sync_count(&k->waiters));
}

static int lock_tostring(lua_State *L) {
  lock_pushstate(L, lock_check(L, 1));
  lua_pushfstring(L, "Lock<%s>", lua_tostring(L, -1));
  return 1;
}

static Lock *lock_new(lua_State *L) {
  Lock *k = (Lock *)lua_newuserdatauv(L, sizeof *k, 0);
  k->tag = LOCK_MT;
  lasync_waitlist_init(&k->waiters);
  k->owner = 0;
  luaL_setmetatable(L, LOCK_MT);
  return k;
}

static int l_lock(lua_State *L) {
  lock_new(L);
  return 1;
}

/* ----------------------------------------------------------------- event */

typedef struct Event {
  const char *tag;                /* EVENT_MT */
  lasync_WaitList waiters;
  int set;
} Event;

static Event *event_check(lua_State *L, int i) {
  return (Event *)sync_check(L, i, EVENT_MT, sizeof(Event));
}

static int event_set(lua_State *L) {
  Event *e = event_check(L, 1);
  lasync_Wait *w;
  e->set = 1;
  while ((w = lasync_waitlist_pop(&e->waiters)) != NULL) lasync_wake(w);
  return 0;
}

static int event_clear(lua_State *L) {
  event_check(L, 1)->set = 0;
  return 0;
}

static int event_is_set(lua_State *L) {
  lua_pushboolean(L, event_check(L, 1)->set);
  return 1;
}

static int event_wait(lua_State *L) {
  Event *e = event_check(L, 1);
  lasync_Task *t;
  if (e->set) return sync_return_true(L, LUA_OK, 0);
  t = lasync_checktask(L, "wait");
  lasync_Wait *self = lasync_task_wait(t);
  lasync_waitlist_push(&e->waiters, self);
  self->what = "event";
  return lasync_wait(L, self, sync_unlist, sync_return_true, 0);
}

static int event_tostring(lua_State *L) {
  Event *e = event_check(L, 1);
  lua_pushfstring(L, "Event<%s, %d waiting>", e->set ? "set" : "clear", sync_count(&e->waiters));
  return 1;
}

static int l_event(lua_State *L) {
  Event *e = (Event *)lua_newuserdatauv(L, sizeof *e, 0);
  e->tag = EVENT_MT;
  lasync_waitlist_init(&e->waiters);
  e->set = 0;
  luaL_setmetatable(L, EVENT_MT);
  return 1;
}

/* ------------------------------------------------------------- condition */

typedef struct Cond {
  const char *tag;                /* COND_MT */
  lasync_WaitList waiters;        /* CondWaiter nodes not yet notified */
  Lock *lock;                     /* user value 1 keeps it alive */
} Cond;

/* One per wait, on the waiting call's stack. Notified, it moves to the
** lock's waiters, where release hands it the lock like any acquirer. */
typedef struct CondWaiter {
  lasync_Wait w;
  Cond *c;
  int notified;
} CondWaiter;

static Cond *cond_check(lua_State *L, int i) {
  return (Cond *)sync_check(L, i, COND_MT, sizeof(Cond));
}

static void cond_checkheld(lua_State *L, Cond *c, const char *what) {
  lasync_Task *t = sync_task(L, what);
  if (c->lock->owner != lasync__task_id(t))
    luaL_error(L, "%s: the condition's lock is not held by this task", what);
}

/* Moves up to n waiters to the lock's queue (the caller holds the lock,
** so none can have it before the caller releases). */
static void cond_notify_n(Cond *c, lua_Integer n) {
  lasync_Wait *w;
  while (n-- > 0 && (w = lasync_waitlist_pop(&c->waiters)) != NULL) {
    ((CondWaiter *)w)->notified = 1;
    lasync_waitlist_push(&c->lock->waiters, w);
  }
}

/* A waiter cancelled after it was notified passes the notification on, so
** that a notify(1) meant for it is not lost (a spurious wake-up at worst).
** It was on the lock's queue, so the lock is held, as cond_notify_n needs. */
static void cond_cancel(lasync_Wait *w) {
  CondWaiter *node = (CondWaiter *)w;
  lasync_waitlist_remove(w);
  if (node->notified) cond_notify_n(node->c, 1);
}

/* (cond, node): releases the lock and waits to be notified and then handed
** the lock back. Raises only a cancellation, never holding the lock. */
static int cond_wait_inner(lua_State *L) {
  Cond *c = (Cond *)lua_touserdata(L, 1);
  CondWaiter *node = (CondWaiter *)lua_touserdata(L, 2);
  lock_handoff(c->lock);
  lasync_waitlist_push(&c->waiters, &node->w);
  node->w.what = "condition";
  return lasync_wait(L, &node->w, cond_cancel, NULL, 0);
}

/* Continuation of cond:wait. ctx 0: the wait ended; ctx 1: an attempt to
** re-acquire the lock after the wait failed ended. Stack: cond, node, and
** from the first failure on, the error to raise at 3. */
static int cond_wait_k(lua_State *L, int status, lua_KContext ctx) {
  Cond *c = (Cond *)lua_touserdata(L, 1);
  lasync_Task *t = lasync__task_of(L);
  if (status == LUA_OK || status == LUA_YIELD) {
    if (ctx == 0) return sync_return_true(L, status, 0);
    lua_settop(L, 3);
    return lua_error(L);                 /* re-acquired: raise the error */
  }
  if (!lasync__is_cancelled(L, -1)) return lua_error(L);
  if (lua_gettop(L) > 3) lua_replace(L, 3);  /* the latest cancellation wins */
  lua_settop(L, 3);
  if (c->lock->owner == lasync__task_id(t)) return lua_error(L);
  /* Take the lock back before raising, as a normal return would; a new
  ** cancellation meanwhile interrupts only this attempt. */
  lua_pushcfunction(L, lock_acquire);
  lua_getiuservalue(L, 1, 1);
  return cond_wait_k(L, lua_pcallk(L, 1, 0, 0, 1, cond_wait_k), 1);
}

static int cond_wait(lua_State *L) {
  Cond *c = cond_check(L, 1);
  CondWaiter *node;
  cond_checkheld(L, c, "wait");
  lasync_checktask(L, "wait");           /* a pending cancel: raise, holding */
  lua_settop(L, 1);
  node = (CondWaiter *)lua_newuserdatauv(L, sizeof *node, 0);
  memset(node, 0, sizeof *node);         /* a wait starts zeroed: no owner, no list */
  node->c = c;
  lua_pushcfunction(L, cond_wait_inner);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  return cond_wait_k(L, lua_pcallk(L, 2, 0, 0, 0, cond_wait_k), 0);
}

/* cond:wait_for(pred): waits until pred() is true; returns its value.
** Stack: cond, pred. ctx 0: pred returned (its value on top); 1: waited. */
static int cond_wait_for_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  if (ctx == 0) {
    if (lua_toboolean(L, -1)) return 1;
    lua_settop(L, 2);
    lua_pushcfunction(L, cond_wait);
    lua_pushvalue(L, 1);
    lua_callk(L, 1, 0, 1, cond_wait_for_k);
  }
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  lua_callk(L, 0, 1, 0, cond_wait_for_k);
  return cond_wait_for_k(L, LUA_OK, 0);
}

static int cond_wait_for(lua_State *L) {
  Cond *c = cond_check(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  cond_checkheld(L, c, "wait_for");
  lua_settop(L, 2);
  return cond_wait_for_k(L, LUA_OK, 1);
}

static int cond_notify(lua_State *L) {
  Cond *c = cond_check(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, 1);
  luaL_argcheck(L, n >= 0, 2, "must be 0 or more");
  cond_checkheld(L, c, "notify");
  cond_notify_n(c, n);
  return 0;
}

static int cond_notify_all(lua_State *L) {
  Cond *c = cond_check(L, 1);
  cond_checkheld(L, c, "notify_all");
  cond_notify_n(c, LUA_MAXINTEGER);
  return 0;
}

static int cond_acquire(lua_State *L) {
  return lock_acquire_aux(L, cond_check(L, 1)->lock);
}

static int cond_release(lua_State *L) {
  return lock_release_aux(L, cond_check(L, 1)->lock, "release");
}

static int cond_locked(lua_State *L) {
  lua_pushboolean(L, cond_check(L, 1)->lock->owner != 0);
  return 1;
}

static int cond_tostring(lua_State *L) {
  Cond *c = cond_check(L, 1);
  lock_pushstate(L, c->lock);
  lua_pushfstring(L, "Condition<%d waiting, lock %s>", sync_count(&c->waiters),
                  lua_tostring(L, -1));
  return 1;
}

/* condition([lock]): on the given lock, or a new one. */
static int l_condition(lua_State *L) {
  Cond *c;
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lock_new(L);
  }
  else lock_check(L, 1);
  lua_settop(L, 1);
  c = (Cond *)lua_newuserdatauv(L, sizeof *c, 1);
  c->tag = COND_MT;
  lasync_waitlist_init(&c->waiters);
  c->lock = (Lock *)lua_touserdata(L, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, COND_MT);
  return 1;
}

/* ------------------------------------------------------------- semaphore */

typedef struct Sem {
  const char *tag;                /* SEM_MT */
  lasync_WaitList waiters;        /* only while value is 0 */
  lua_Integer value;
  lua_Integer bound;              /* bounded: the initial value; else -1 */
} Sem;

static Sem *sem_check(lua_State *L, int i) {
  return (Sem *)sync_check(L, i, SEM_MT, sizeof(Sem));
}

static int sem_acquire(lua_State *L) {
  Sem *s = sem_check(L, 1);
  lasync_Task *t;
  lua_settop(L, 1);
  if (s->value > 0) {
    s->value--;
    return 1;
  }
  t = lasync_checktask(L, "acquire");
  lasync_Wait *self = lasync_task_wait(t);
  lasync_waitlist_push(&s->waiters, self);
  self->what = "semaphore";
  return lasync_wait(L, self, sync_unlist, sync_return_self, 0);
}

/* A release hands the permit to the first waiter, if any. */
static int sem_release(lua_State *L) {
  Sem *s = sem_check(L, 1);
  lasync_Wait *w = lasync_waitlist_pop(&s->waiters);
  if (w != NULL) {
    lasync_wake(w);
    return 0;
  }
  if (s->bound >= 0 && s->value >= s->bound)
    return luaL_error(L, "release: the bounded semaphore was released more times "
                         "than it was acquired (its value would exceed %I)",
                      (LUAI_UACINT)s->bound);
  if (s->value == LUA_MAXINTEGER)         /* Lua drives the counter: bound it */
    return luaL_error(L, "release: the semaphore's value would exceed %I",
                      (LUAI_UACINT)LUA_MAXINTEGER);
  s->value++;
  return 0;
}

static int sem_locked(lua_State *L) {
  lua_pushboolean(L, sem_check(L, 1)->value == 0);
  return 1;
}

static int sem_value(lua_State *L) {
  lua_pushinteger(L, sem_check(L, 1)->value);
  return 1;
}

static int sem_tostring(lua_State *L) {
  Sem *s = sem_check(L, 1);
  lua_pushfstring(L, "%s<value %I, %d waiting>", s->bound >= 0 ? "BoundedSemaphore" : "Semaphore",
                  (LUAI_UACINT)s->value, sync_count(&s->waiters));
  return 1;
}

static int sem_new(lua_State *L, int bounded) {
  lua_Integer n = luaL_optinteger(L, 1, 1);
  Sem *s;
  luaL_argcheck(L, n >= 0, 1, "the initial value must be 0 or more");
  s = (Sem *)lua_newuserdatauv(L, sizeof *s, 0);
  s->tag = SEM_MT;
  lasync_waitlist_init(&s->waiters);
  s->value = n;
  s->bound = bounded ? n : -1;
  luaL_setmetatable(L, SEM_MT);
  return 1;
}

static int l_semaphore(lua_State *L) { return sem_new(L, 0); }
static int l_bounded_semaphore(lua_State *L) { return sem_new(L, 1); }

/* ---------------------------------------------------------------- module */

static const luaL_Reg lock_methods[] = {
  {"acquire", lock_acquire}, {"release", lock_release}, {"locked", lock_locked},
  {NULL, NULL}
};

static const luaL_Reg event_methods[] = {
  {"set", event_set}, {"clear", event_clear}, {"is_set", event_is_set},
  {"wait", event_wait}, {NULL, NULL}
};

static const luaL_Reg cond_methods[] = {
  {"acquire", cond_acquire}, {"release", cond_release}, {"locked", cond_locked},
  {"wait", cond_wait}, {"wait_for", cond_wait_for}, {"notify", cond_notify},
  {"notify_all", cond_notify_all}, {NULL, NULL}
};

static const luaL_Reg sem_methods[] = {
  {"acquire", sem_acquire}, {"release", sem_release}, {"locked", sem_locked},
  {"value", sem_value}, {NULL, NULL}
};

static const luaL_Reg sync_funcs[] = {
  {"lock", l_lock}, {"event", l_event}, {"condition", l_condition},
  {"semaphore", l_semaphore}, {"bounded_semaphore", l_bounded_semaphore},
  {NULL, NULL}
};

/* A metatable with methods and __tostring; `release`, if it is one of the
** methods, is also __close, so `local _ <close> = x:acquire()` releases. */
static void sync_class(lua_State *L, const char *mt, const luaL_Reg *methods,
                       lua_CFunction tostring) {
  luaL_Reg meta[] = {{"__tostring", NULL}, {NULL, NULL}};
  meta[0].func = tostring;
  lasync__class(L, mt, meta, methods);
  lua_getfield(L, -1, "__index");
  if (lua_getfield(L, -1, "release") != LUA_TNIL) lua_setfield(L, -3, "__close");
  else lua_pop(L, 1);
  lua_pop(L, 2);
}

int lasync__luaopen_sync(lua_State *L) {
  sync_class(L, LOCK_MT, lock_methods, lock_tostring);
  sync_class(L, EVENT_MT, event_methods, event_tostring);
  sync_class(L, COND_MT, cond_methods, cond_tostring);
  sync_class(L, SEM_MT, sem_methods, sem_tostring);
  luaL_newlib(L, sync_funcs);
  lasync__open_barrier(L);               /* barrier.c */
  return 1;
}
