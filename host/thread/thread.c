/*
** thread.c: the native module "async.thread". async.thread.spawn(fn, ...)
** starts an OS thread running a host of its own (lasync_new(NULL): its own
** lua_State, its own loop, its own tasks), which runs fn(ch, ...) as its
** main task, and returns a Thread object. The Thread (in the parent) and
** ch (a Channel, in the thread) are the two ends of a pair of channels,
** one each way: send(v) never waits, recv() suspends the task until a
** message comes, and returns nil once the other side has closed (its
** close(), or its end) and every message sent before has been received.
**
** The two sides share a Shared block under a mutex: the queued messages
** (encoded, copy.c), which side has closed, the thread's outcome. Each end
** lives on its own loop with a uv_async_t that the other side sends to
** (under the mutex, while that end exists) when it queues a message,
** closes, finishes, or asks the thread to stop; the end's callback hands
** messages to waiting tasks in FIFO order.
**
** The thread ends when its main task does (other tasks are cancelled, as
** for a script); join() returns the main task's results. A Thread that is
** forgotten keeps running; when the parent host is freed, it cancels each
** thread's main task and joins the thread (blocking: a thread that never
** ends keeps it waiting).
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "thread/worker.h"

#define THREAD_MT "lasync.Thread"
#define CHANNEL_MT "lasync.Channel"

typedef struct Msg {
  struct Msg *next;
  lasync_Buf b;
} Msg;

struct End;

typedef struct Shared {
  uv_mutex_t mu;
  int refs;                       /* the parent's end and the thread */
  struct End *end[2];             /* [0] the parent's, [1] the thread's; NULL once gone */
  Msg *head[2], *tail[2];         /* messages for side i */
  unsigned char closed[2];        /* side i sends no more */
  unsigned char gone[2];          /* side i's end is gone (takes no more) */
  unsigned char finished, cancel;
  lasync_Host *child;             /* the thread's host, while it runs tasks */
  uv_thread_t tid;
  lasync_NewFn make;              /* makes the thread's host (lasync_new) */
  lasync_Proto *proto;            /* the thread's function and arguments */
  lasync_Buf args;
  int status;                     /* its outcome: JR_*, the values or error, */
  lasync_Buf result;              /* and the traceback of an error */
  char *tb;
} Shared;

typedef struct End {
  uv_async_t async;
  Shared *sh;
  int side;
  lasync_Host *H;
  lasync_WaitList recvq;          /* tasks in recv */
  lasync_WaitList joinq;          /* tasks in join (parent) */
  int waiting;                    /* the handle keeps the loop alive while > 0 */
  lasync_Task *main;              /* thread: its main task, while it runs */
  struct End **box;               /* in the Lua object, while it exists */
  unsigned char joined, gone;     /* gone: takes and sends no more */
  unsigned char closing, closed;  /* the handle; the End is freed once it has
                                     closed and the Lua object is gone */
} End;

typedef struct RecvWait {
  lasync_Wait w;
  End *end;
  Msg *msg;                       /* handed over by the callback; NULL: closed */
} RecvWait;

/* ------------------------------------------------------------- shared */

static void msgs_free(Msg *m) {
  while (m) {
    Msg *next = m->next;
    lasync__buf_free(&m->b);
    free(m);
    m = next;
  }
}

/* Takes the first message for side s (mutex held), or NULL. */
static Msg *msg_pop(Shared *sh, int s) {
  Msg *m = sh->head[s];
  if (m) {
    if ((sh->head[s] = m->next) == NULL) sh->tail[s] = NULL;
    m->next = NULL;
  }
  return m;
}

/* Drops a reference (mutex held); frees the block with the last one. */
static void shared_release(Shared *sh) {
  int last = --sh->refs == 0;
  uv_mutex_unlock(&sh->mu);
  if (!last) return;
  msgs_free(sh->head[0]);
  msgs_free(sh->head[1]);
  lasync__proto_release(sh->proto);
  lasync__buf_free(&sh->args);
  lasync__buf_free(&sh->result);
  free(sh->tb);
  uv_mutex_destroy(&sh->mu);
  free(sh);
}

/* Pokes the other side's end, if it is still there (mutex held). */
static void shared_poke(Shared *sh, int side) {
  if (sh->end[side]) uv_async_send(&sh->end[side]->async);
}

/* ---------------------------------------------------------------- ends */

static void end_settle(End *e) {
  if (e->closing) return;
  if (e->waiting > 0) uv_ref((uv_handle_t *)&e->async);
  else uv_unref((uv_handle_t *)&e->async);
}

static void end_close_cb(uv_handle_t *h) {
  End *e = (End *)h->data;
  e->closed = 1;
  if (e->box == NULL) free(e);
}

/* Nothing will poke this end any more (mutex: sh->end[side] is NULL). */
static void end_close_handle(End *e) {
  if (e->closing) return;
  e->closing = 1;
  uv_close((uv_handle_t *)&e->async, end_close_cb);
}

static void end_join(End *e);

/* The other side queued, closed, finished or asked us to stop. */
static void end_async_cb(uv_async_t *h) {
  End *e = (End *)h->data;
  Shared *sh = e->sh;
  int s = e->side, finished, cancel;
  lasync_Wait *w;
  uv_mutex_lock(&sh->mu);
  while (sh->head[s] && (w = lasync_waitlist_pop(&e->recvq)) != NULL) {
    ((RecvWait *)w)->msg = msg_pop(sh, s);
    e->waiting--;
    lasync_wake(w);
  }
  if (sh->head[s] == NULL && sh->closed[1 - s])
    while ((w = lasync_waitlist_pop(&e->recvq)) != NULL) {
      e->waiting--;
      lasync_wake(w);                    /* msg NULL: recv returns nil */
    }
  finished = sh->finished;
  cancel = sh->cancel;
  uv_mutex_unlock(&sh->mu);
  if (s == 0 && finished) end_join(e);
  if (s == 1 && cancel && e->main) {      /* unless shared_cancel's interrupt reached it */
    if (lasync_interrupt_taken(e->H) != e->main)
      lasync_cancel(lasync_state(e->H), e->main, "the thread was cancelled by its parent");
    e->main = NULL;
  }
  end_settle(e);
}

/* Pushes a new Thread or Channel object for side `side` of sh. */
static End *end_new(lua_State *L, Shared *sh, int side) {
  End **box = (End **)lua_newuserdatauv(L, sizeof *box, 0);
  End *e = (End *)calloc(1, sizeof *e);
  *box = NULL;
  luaL_setmetatable(L, side == 0 ? THREAD_MT : CHANNEL_MT);
  if (e == NULL) luaL_error(L, "thread: not enough memory");
  if (uv_async_init(lasync_loop(lasync_host(L)), &e->async, end_async_cb) != 0) {
    free(e);
    luaL_error(L, "thread: cannot make an async handle");
  }
  e->async.data = e;
  e->sh = sh;
  e->side = side;
  e->H = lasync_host(L);
  lasync_waitlist_init(&e->recvq);
  lasync_waitlist_init(&e->joinq);
  uv_unref((uv_handle_t *)&e->async);
  *box = e;
  e->box = box;
  return e;
}

/* This side is gone: it sends no more, takes no more, and its handle
** closes. Idempotent. */
static void end_close(End *e) {
  Shared *sh = e->sh;
  int s = e->side;
  Msg *drop;
  if (e->gone) return;
  e->gone = 1;
  uv_mutex_lock(&sh->mu);
  sh->end[s] = NULL;
  sh->closed[s] = sh->gone[s] = 1;
  drop = sh->head[s];
  sh->head[s] = sh->tail[s] = NULL;
  shared_poke(sh, 1 - s);
  if (s == 0) shared_release(sh);        /* the parent's end holds a reference */
  else uv_mutex_unlock(&sh->mu);
  msgs_free(drop);
  end_close_handle(e);
}

/* The box of the Thread or Channel at i; raises for anything else (the two
** types share their metamethods, which must check as methods do). */
static End **end_box(lua_State *L, int i) {
  End **box = (End **)luaL_testudata(L, i, THREAD_MT);
  if (box == NULL) box = (End **)luaL_checkudata(L, i, CHANNEL_MT);
  return box;
}

static End *end_check(lua_State *L, int i) {
  End **box = end_box(L, i);
  if (*box == NULL || (*box)->gone) luaL_error(L, "the channel is gone");
  return *box;
}

/* ---------------------------------------------------- send, recv, close */

static int ch_send(lua_State *L) {
  End *e = end_check(L, 1);
  Shared *sh = e->sh;
  int s = e->side, closed, peer;
  Msg *m;
  luaL_checkany(L, 2);
  if (lua_isnil(L, 2)) return luaL_argerror(L, 2, "nil cannot be sent (recv returns nil when the channel is closed)");
  lua_settop(L, 2);
  if ((m = (Msg *)calloc(1, sizeof *m)) == NULL) return luaL_error(L, "send: not enough memory");
  if (!lasync__encode(L, 2, 1, &m->b, "message", "to another thread")) {
    free(m);
    return luaL_error(L, "send: %s", lua_tostring(L, -1));
  }
  uv_mutex_lock(&sh->mu);
  closed = sh->closed[s];
  peer = !sh->gone[1 - s];               /* (the thread's end may not exist yet) */
  if (!closed && peer) {
    if (sh->tail[1 - s]) sh->tail[1 - s]->next = m;
    else sh->head[1 - s] = m;
    sh->tail[1 - s] = m;
    shared_poke(sh, 1 - s);
  }
  uv_mutex_unlock(&sh->mu);
  if (closed || !peer) {
    msgs_free(m);
    return luaL_error(L, "send: %s", closed ? "this side of the channel is closed"
                                            : "the other side has ended");
  }
  return 0;
}

/* Pushes the message's value and frees it. */
static int msg_push(lua_State *L, Msg *m) {
  int n = lasync__decode(L, &m->b);
  msgs_free(m);
  return n < 0 ? lua_error(L) : n;
}

static void recv_cancel(lasync_Wait *w) {
  RecvWait *rw = (RecvWait *)w;
  lasync_waitlist_remove(w);
  rw->end->waiting--;
  end_settle(rw->end);
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  RecvWait *rw = (RecvWait *)lua_touserdata(L, 2);
  Msg *m = rw->msg;
  (void)status; (void)ctx;
  rw->msg = NULL;
  lua_settop(L, 0);
  if (m) return msg_push(L, m);
  lua_pushnil(L);
  return 1;
}

/* recv(): the next message, waiting for one; nil once the other side has
** closed and everything it sent has been received. */
static int ch_recv(lua_State *L) {
  End *e = end_check(L, 1);
  Shared *sh = e->sh;
  int s = e->side, closed;
  Msg *m;
  RecvWait *rw;
  lua_settop(L, 1);
  uv_mutex_lock(&sh->mu);
  m = lasync_waitlist_empty(&e->recvq) ? msg_pop(sh, s) : NULL;  /* FIFO: waiters first */
  closed = sh->closed[1 - s] && sh->head[s] == NULL;
  uv_mutex_unlock(&sh->mu);
  if (m) return msg_push(L, m);
  if (closed) {
    lua_pushnil(L);
    return 1;
  }
  lasync_checktask(L, "recv");
  rw = (RecvWait *)lua_newuserdatauv(L, sizeof *rw, 0);
  memset(rw, 0, sizeof *rw);
  rw->end = e;
  lasync_waitlist_push(&e->recvq, &rw->w);
  e->waiting++;
  end_settle(e);
  if (!e->closing) uv_async_send(&e->async);  /* a message may have come meanwhile */
  rw->w.what = "channel recv";
  return lasync_wait(L, &rw->w, recv_cancel, recv_k, 0);
}

/* close(): this side sends no more; the other side's recv returns nil once
** it has received what was sent before. */
static int ch_close(lua_State *L) {
  End *e = end_check(L, 1);
  Shared *sh = e->sh;
  uv_mutex_lock(&sh->mu);
  sh->closed[e->side] = 1;
  shared_poke(sh, 1 - e->side);
  uv_mutex_unlock(&sh->mu);
  return 0;
}

/* for msg in ch:iter() do ... end */
static int ch_iter(lua_State *L) {
  end_check(L, 1);
  lua_pushcfunction(L, ch_recv);
  lua_pushvalue(L, 1);
  return 2;
}

/* ------------------------------------------------------ the thread side */

static void thread_metatables(lua_State *L);

/* Protected, in the thread's host: 1 = the Shared block. Spawns
** fn(ch, ...) as the main task; pushes the Task object. */
static int child_start(lua_State *L) {
  Shared *sh = (Shared *)lua_touserdata(L, 1);
  End *e;
  int n;
  thread_metatables(L);
  lasync__forbid_exit(L, "a thread (async.thread.spawn)");
  e = end_new(L, sh, 1);                 /* 2: the Channel */
  uv_mutex_lock(&sh->mu);
  sh->end[1] = e;
  if (sh->cancel || sh->head[1] || sh->closed[0])
    uv_async_send(&e->async);            /* what came before we were here */
  uv_mutex_unlock(&sh->mu);
  if (lasync__proto_load(L, sh->proto) != LUA_OK) return lua_error(L);
  lua_insert(L, 2);                      /* 2: fn, 3: the Channel */
  if ((n = lasync__decode(L, &sh->args)) < 0) return lua_error(L);
  lasync__buf_free(&sh->args);
  e->main = lasync_spawn(L, n + 1);
  return 1;
}

/* Records the outcome of the thread's main task (on L's top) in sh. */
static void child_outcome(lua_State *L, Shared *sh, lasync_Task *t) {
  int n, st = lasync_task_status(t);
  n = lasync_task_results(L, t);
  sh->status = st == LASYNC_DONE ? JR_OK : st == LASYNC_CANCELLED ? JR_CANCELLED : JR_ERROR;
  if (sh->status == JR_ERROR) {
    const char *tb;
    lasync_task_traceback(L, -(n + 1));
    if ((tb = lua_tostring(L, -1)) != NULL) sh->tb = strdup(tb);
    lua_pop(L, 1);
  }
  if (sh->status != JR_CANCELLED &&
      !lasync__encode(L, lua_gettop(L) - n + 1, n, &sh->result, sh->status == JR_OK ? "results[%d]" : "error",
                      "from a thread")) {
    sh->status = JR_ERROR;               /* the message says what did not cross */
    lasync__encode(L, -1, 1, &sh->result, "error", "from a thread");
  }
}

static void child_main(void *arg) {
  Shared *sh = (Shared *)arg;
  lasync_Host *H = sh->make(NULL);
  lua_State *L;
  End *e = NULL;
  if (H == NULL) sh->status = JR_ERROR;  /* with no result: "could not start" */
  else {
    uv_mutex_lock(&sh->mu);
    sh->child = H;
    uv_mutex_unlock(&sh->mu);
    L = lasync_state(H);
    lua_pushcfunction(L, child_start);
    lua_pushlightuserdata(L, sh);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      sh->status = JR_ERROR;
      lasync__encode(L, -1, 1, &sh->result, "error", "from a thread");
    }
    else {
      lasync_Task *t = (lasync_Task *)lua_touserdata(L, -1);
      int stuck = lasync_run_until(H, t);
      uv_mutex_lock(&sh->mu);
      e = sh->end[1];
      uv_mutex_unlock(&sh->mu);
      if (e) e->main = NULL;
      if (!stuck) child_outcome(L, sh, t);
      else {
        sh->status = JR_ERROR;
        lua_pushliteral(L, "the thread's main task waits but nothing is left that could "
                           "wake it (deadlock)");
        lasync__encode(L, -1, 1, &sh->result, "error", "from a thread");
      }
    }
    uv_mutex_lock(&sh->mu);
    e = sh->end[1];
    uv_mutex_unlock(&sh->mu);
    if (e) end_close(e);                 /* the parent's recv ends now */
    lua_settop(L, 0);
    uv_mutex_lock(&sh->mu);
    sh->child = NULL;                    /* no interrupt reaches H now */
    uv_mutex_unlock(&sh->mu);
    lasync_free(H);
  }
  uv_mutex_lock(&sh->mu);
  sh->finished = 1;
  shared_poke(sh, 0);
  shared_release(sh);
}

/* ------------------------------------------------------ the parent side */

/* The thread has finished: join it, wake the joiners, drop the anchor.
** Nothing can come from it any more, so the handle closes now; what it
** sent is still there for recv, its outcome for join. */
static void end_join(End *e) {
  lasync_Wait *w;
  lua_State *L = lasync_state(e->H);
  if (!e->joined) {
    uv_thread_join(&e->sh->tid);
    e->joined = 1;
    uv_mutex_lock(&e->sh->mu);
    e->sh->end[0] = NULL;
    uv_mutex_unlock(&e->sh->mu);
    end_close_handle(e);
    if (!lasync__host_closing(e->H)) {
      lua_pushnil(L);
      lua_rawsetp(L, LUA_REGISTRYINDEX, e);
    }
  }
  while ((w = lasync_waitlist_pop(&e->joinq)) != NULL) {
    e->waiting--;
    lasync_wake(w);
  }
}

/* Pushes the thread's results, or raises its error. */
static int join_result(lua_State *L, End *e) {
  Shared *sh = e->sh;
  int n;
  lua_settop(L, 0);
  if (sh->status == JR_CANCELLED) {
    lasync__push_cancelled(L, "the thread was cancelled");
    return lua_error(L);
  }
  if (sh->result.n == 0) {
    lua_pushliteral(L, "thread: could not start a host in the thread");
    return lua_error(L);
  }
  if ((n = lasync__decode(L, &sh->result)) < 0 || sh->status == JR_OK) return n < 0 ? lua_error(L) : n;
  if (sh->tb) lasync__task_set_cause(L, -1, "a thread", sh->tb);
  return lua_error(L);
}

static void join_cancel(lasync_Wait *w) {
  End *e = (End *)w->data;
  lasync_waitlist_remove(w);
  e->waiting--;
  end_settle(e);
}

static int join_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return join_result(L, (End *)ctx);
}

/* th:join(): waits for the thread to end; its main task's results. */
static int th_join(lua_State *L) {
  End **box = (End **)luaL_checkudata(L, 1, THREAD_MT);
  End *e = *box;
  lasync_Wait *w;
  if (e == NULL) return luaL_error(L, "join: the thread is gone");
  if (e->joined) return join_result(L, e);
  lasync_checktask(L, "join");
  w = (lasync_Wait *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  w->data = e;
  lasync_waitlist_push(&e->joinq, w);
  e->waiting++;
  end_settle(e);
  w->what = "thread join";
  return lasync_wait(L, w, join_cancel, join_k, (lua_KContext)e);
}

/* Asks the thread to stop (mutex held): its loop cancels its main task,
** and code it runs without waiting is interrupted at once (a busy loop
** never lets its loop see the request). */
static void shared_cancel(Shared *sh) {
  sh->cancel = 1;
  shared_poke(sh, 1);
  if (sh->child) lasync_interrupt(sh->child, "the thread was cancelled by its parent");
}

/* th:cancel(): cancels the thread's main task (it ends the thread). */
static int th_cancel(lua_State *L) {
  End *e = end_check(L, 1);
  uv_mutex_lock(&e->sh->mu);
  shared_cancel(e->sh);
  uv_mutex_unlock(&e->sh->mu);
  return 0;
}

static int th_done(lua_State *L) {
  End **box = (End **)luaL_checkudata(L, 1, THREAD_MT);
  lua_pushboolean(L, *box == NULL || (*box)->joined);
  return 1;
}

static int end_gc(lua_State *L) {
  End **box = end_box(L, 1);
  End *e = *box;
  if (e == NULL) return 0;
  *box = NULL;
  e->box = NULL;                         /* freed once the handle has closed */
  if (e->side == 0 && !e->joined) {      /* the host is closing: stop the thread */
    uv_mutex_lock(&e->sh->mu);
    e->sh->closed[0] = 1;
    shared_cancel(e->sh);
    uv_mutex_unlock(&e->sh->mu);
    uv_thread_join(&e->sh->tid);
    e->joined = 1;
  }
  end_close(e);
  if (e->closed) free(e);
  return 0;
}

static int end_tostring(lua_State *L) {
  End **box = end_box(L, 1);
  if (luaL_testudata(L, 1, THREAD_MT))
    lua_pushfstring(L, "Thread<%s>", *box == NULL || (*box)->joined ? "done" : "running");
  else
    lua_pushfstring(L, "Channel<%s>", *box == NULL || (*box)->gone ? "gone" : "open");
  return 1;
}

/* async.thread.spawn(fn, ...): a new thread running fn(ch, ...). */
static int l_spawn(lua_State *L) {
  lasync_Proto *proto;
  Shared *sh;
  End *e;
  int rc;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  proto = lasync__proto_of(L, 1, "thread.spawn: fn");
  sh = (Shared *)calloc(1, sizeof *sh);
  if (sh == NULL || uv_mutex_init(&sh->mu) != 0) {
    free(sh);
    lasync__proto_release(proto);
    return luaL_error(L, "thread.spawn: not enough memory");
  }
  sh->proto = proto;
  sh->make = lasync__host_maker(lasync_host(L));
  sh->refs = 2;
  if (!lasync__encode(L, 2, lua_gettop(L) - 1, &sh->args, "args[%d]", "to a thread")) {
    uv_mutex_lock(&sh->mu);
    sh->refs = 1;
    shared_release(sh);
    return luaL_error(L, "thread.spawn: %s", lua_tostring(L, -1));
  }
  e = end_new(L, sh, 0);                 /* may raise: leaks sh */
  sh->end[0] = e;
  if ((rc = uv_thread_create(&sh->tid, child_main, sh)) != 0) {
    uv_mutex_lock(&sh->mu);
    sh->refs--;                          /* the thread's */
    uv_mutex_unlock(&sh->mu);
    e->joined = 1;
    return luaL_error(L, "thread.spawn: %s", uv_strerror(rc));
  }
  lua_pushvalue(L, -1);                  /* anchored while it runs */
  lua_rawsetp(L, LUA_REGISTRYINDEX, e);
  return 1;
}

static const luaL_Reg channel_methods[] = {
  {"send", ch_send}, {"recv", ch_recv}, {"close", ch_close}, {"iter", ch_iter},
  {NULL, NULL}
};

static const luaL_Reg thread_methods[] = {
  {"send", ch_send}, {"recv", ch_recv}, {"close", ch_close}, {"iter", ch_iter},
  {"join", th_join}, {"cancel", th_cancel}, {"done", th_done},
  {NULL, NULL}
};

static void thread_metatables(lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", end_gc}, {"__tostring", end_tostring}, {NULL, NULL}
  };
  lasync__class(L, THREAD_MT, meta, thread_methods);
  lasync__class(L, CHANNEL_MT, meta, channel_methods);
  lua_pop(L, 2);
}

/* async.thread.cpu_count(): how many threads can run in parallel here. */
static int l_cpu_count(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_available_parallelism());
  return 1;
}

int lasync__luaopen_thread(lua_State *L) {
  thread_metatables(L);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_spawn);
  lua_setfield(L, -2, "spawn");
  lua_pushcfunction(L, l_cpu_count);
  lua_setfield(L, -2, "cpu_count");
  return 1;
}
