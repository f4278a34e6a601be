/*
** barrier.c: async.barrier(n) and its BrokenBarrier error, part of the
** async.sync module (sync.c adds them to its table).
**
** A cyclic barrier: the n-th task to arrive releases the n-1 waiting ones
** and the count starts over. A waiter that is cancelled breaks it, since
** the others could otherwise never be released: they wake with a
** BrokenBarrier error, and so does every wait until reset().
*/
#include <lauxlib.h>
#include "sync/sync.h"

#define BARRIER_MT "lasync.Barrier"
#define BROKEN_MT "lasync.BrokenBarrier"

typedef struct Barrier {
  lasync_WaitList waiters;
  lua_Integer parties, count;     /* count: arrived in this cycle */
  lua_State *L;                   /* the host's state, for errors made in cancel */
  int broken;
} Barrier;

static Barrier *barrier_check(lua_State *L, int i) {
  return (Barrier *)luaL_checkudata(L, i, BARRIER_MT);
}

static void barrier_push_broken(lua_State *L, const char *why) {
  lua_createtable(L, 0, 2);
  lua_pushliteral(L, "BrokenBarrier");
  lua_setfield(L, -2, "kind");
  lua_pushfstring(L, "the barrier is broken (%s)", why);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, BROKEN_MT);
}

/* Wakes every waiter raising BrokenBarrier; the cycle starts over. */
static void barrier_fail(Barrier *b, const char *why) {
  lasync_Wait *w;
  while ((w = lasync_waitlist_pop(&b->waiters)) != NULL) {
    barrier_push_broken(b->L, why);
    lasync_wake_error(b->L, w);
  }
  b->count = 0;
}

/* A waiter cancelled before the barrier filled breaks it: the others could
** otherwise wait forever for a party that is gone. */
static void barrier_cancel(lasync_Wait *w) {
  Barrier *b = (Barrier *)w->data;
  lasync_waitlist_remove(w);
  b->broken = 1;
  barrier_fail(b, "a waiting task was cancelled");
}

static int barrier_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  lua_settop(L, 2);
  return 1;                              /* the arrival index */
}

/* b:wait(): the arrival index, 1 (first) to parties (last, which releases
** the others and does not wait). */
static int barrier_wait(lua_State *L) {
  Barrier *b = barrier_check(L, 1);
  lasync_Task *t = lasync_checktask(L, "wait");
  lasync_Wait *w;
  lua_Integer index;
  if (b->broken) {
    barrier_push_broken(L, "wait: it was aborted or a waiting task was cancelled; reset() it");
    return lua_error(L);
  }
  index = ++b->count;
  lua_settop(L, 1);
  lua_pushinteger(L, index);
  if (index == b->parties) {
    b->count = 0;
    while ((w = lasync_waitlist_pop(&b->waiters)) != NULL) lasync_wake(w);
    return 1;
  }
  lasync_Wait *self = lasync_task_wait(t);
  self->data = b;
  lasync_waitlist_push(&b->waiters, self);
  self->what = "barrier";
  return lasync_wait(L, self, barrier_cancel, barrier_wait_k, 0);
}

static int barrier_abort(lua_State *L) {
  Barrier *b = barrier_check(L, 1);
  b->broken = 1;
  barrier_fail(b, "aborted");
  return 0;
}

static int barrier_reset(lua_State *L) {
  Barrier *b = barrier_check(L, 1);
  barrier_fail(b, "reset");
  b->broken = 0;
  return 0;
}

static int barrier_parties(lua_State *L) {
  lua_pushinteger(L, barrier_check(L, 1)->parties);
  return 1;
}

static int barrier_n_waiting(lua_State *L) {
  lua_pushinteger(L, barrier_check(L, 1)->count);
  return 1;
}

static int barrier_broken(lua_State *L) {
  lua_pushboolean(L, barrier_check(L, 1)->broken);
  return 1;
}

static int barrier_tostring(lua_State *L) {
  Barrier *b = barrier_check(L, 1);
  lua_pushfstring(L, "Barrier<%I/%I waiting%s>", (LUAI_UACINT)b->count,
                  (LUAI_UACINT)b->parties, b->broken ? ", broken" : "");
  return 1;
}

static int l_barrier(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  Barrier *b;
  luaL_argcheck(L, n >= 1, 1, "the number of parties must be 1 or more");
  b = (Barrier *)lua_newuserdatauv(L, sizeof *b, 0);
  lasync_waitlist_init(&b->waiters);
  b->parties = n;
  b->count = 0;
  b->broken = 0;
  b->L = lasync_state(lasync_host(L));
  luaL_setmetatable(L, BARRIER_MT);
  return 1;
}

static const luaL_Reg barrier_methods[] = {
  {"wait", barrier_wait}, {"abort", barrier_abort}, {"reset", barrier_reset},
  {"parties", barrier_parties}, {"n_waiting", barrier_n_waiting},
  {"broken", barrier_broken}, {NULL, NULL}
};

/* Adds barrier and BrokenBarrier to the module table on top. */
void lasync__open_barrier(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", barrier_tostring}, {NULL, NULL}};
  lasync__class(L, BARRIER_MT, meta, barrier_methods);
  lua_pop(L, 1);
  lua_pushcfunction(L, l_barrier);
  lua_setfield(L, -2, "barrier");
  lasync__error_class(L, BROKEN_MT);
  lua_setfield(L, -2, "BrokenBarrier");
}
