/*
** pool.c: the worker pool behind executors: threads of its own (not
** libuv's thread pool, so long Lua jobs never starve file and DNS
** requests), a job queue under one mutex, and a completed-jobs list that
** the loop drains when a uv_async_t fires (sends coalesce: one wake-up may
** bring back many jobs). worker.c is what runs Lua on a worker thread.
**
** Threads start as work arrives, up to the pool's size, and idle on a
** condition variable each, so a submit wakes exactly one. Cancellation
** drops a queued job at once, and interrupts a running Lua job (worker.c);
** C work cannot be interrupted and is left to finish. Closing lets the
** queue drain (or drops it, aborting), then the workers exit and the loop
** thread joins them: the pool never leaks a thread.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "thread/worker.h"

#define SPIN_NS 50000             /* how long an idle worker spins before it sleeps */

typedef lasync_Worker Worker;

struct lasync_Pool {
  uv_mutex_t mu;                  /* guards what the workers touch */
  lasync_Job *head, *tail;        /* queued jobs */
  lasync_Job *done_head, *done_tail;
  Worker *idle;                   /* stack of idle workers */
  int queued, running, nidle, closing;
  Worker *workers;                /* `size` slots, started in order */
  int size;
  /* loop thread only */
  uv_async_t async;
  lasync_Host *H;
  lasync_WaitList closeq;         /* tasks waiting for the workers to exit */
  int started, joined, inflight;
  unsigned char anchored, refd, dead, destroyed, handle_closing, handle_closed;
};

/* ------------------------------------------------------------- lists */

static void list_push(lasync_Job **head, lasync_Job **tail, lasync_Job *j) {
  j->next = NULL;
  j->prev = *tail;
  if (*tail) (*tail)->next = j;
  else *head = j;
  *tail = j;
}

static void queue_unlink(lasync_Pool *p, lasync_Job *j) {
  if (j->prev) j->prev->next = j->next;
  else p->head = j->next;
  if (j->next) j->next->prev = j->prev;
  else p->tail = j->prev;
  j->next = j->prev = NULL;
  p->queued--;
}

/* ------------------------------------------------------- worker thread */

/* Idles until a submit (or close) pops w from the idle stack (mutex held).
** It first spins a little with the mutex released: a job that follows
** soon after (a task awaiting jobs one after another) is then taken with
** no futex wake-up and no scheduler latency, and the signal that wakes it
** costs nothing since nobody waits on the condition yet. */
static void worker_idle(lasync_Pool *p, Worker *w) {
  uint64_t until;
  int i;
  w->wake = 0;
  w->next_idle = p->idle;
  p->idle = w;
  p->nidle++;
  uv_mutex_unlock(&p->mu);
  until = uv_hrtime() + SPIN_NS;
  for (i = 1; !__atomic_load_n(&w->wake, __ATOMIC_ACQUIRE); i++)
    if ((i & 63) == 0 && uv_hrtime() > until) break;
  uv_mutex_lock(&p->mu);
  while (!w->wake) uv_cond_wait(&w->cv, &p->mu);
}

static void worker_main(void *arg) {
  Worker *w = (Worker *)arg;
  lasync_Pool *p = w->pool;
  lua_State *L = lasync__worker_open(w);
  int result;
  uv_mutex_lock(&p->mu);
  w->L = L;
  for (;;) {
    lasync_Job *j = p->head;
    if (j == NULL) {
      if (p->closing) break;
      worker_idle(p, w);
      continue;
    }
    queue_unlink(p, j);
    j->state = JS_RUNNING;
    j->worker = w;
    w->job = j;
    p->running++;
    uv_mutex_unlock(&p->mu);
    if (j->kind == JOB_C) {
      j->work(j->data);
      result = JR_OK;
    }
    else result = lasync__worker_run(w, L, j);
    uv_mutex_lock(&p->mu);
    j->result = (unsigned char)result;  /* under the mutex: the loop reads j */
    if (j->cancel) lasync__worker_reset(w);
    w->job = NULL;
    p->running--;
    j->state = JS_DONE;
    list_push(&p->done_head, &p->done_tail, j);
    uv_async_send(&p->async);
  }
  w->L = NULL;
  uv_mutex_unlock(&p->mu);
  lasync__worker_close(w, L);
  uv_mutex_lock(&p->mu);
  w->exited = 1;
  uv_async_send(&p->async);
  uv_mutex_unlock(&p->mu);
}

/* --------------------------------------------------------- loop thread */

lasync_Job *lasync__job_new(lasync_Pool *p, int kind) {
  lasync_Job *j = (lasync_Job *)calloc(1, sizeof *j);
  if (j == NULL) return NULL;
  j->pool = p;
  j->kind = (unsigned char)kind;
  j->ref = LUA_NOREF;
  return j;
}

void lasync__job_free(lasync_Job *j) {
  lasync__proto_release(j->proto);
  lasync__buf_free(&j->args);
  lasync__buf_free(&j->res);
  free(j->tb);
  free(j);
}

static int pool_all_joined(lasync_Pool *p) {
  return p->closing && p->joined == p->started;
}

static void pool_close_cb(uv_handle_t *h) {
  lasync_Pool *p = (lasync_Pool *)h->data;
  p->handle_closed = 1;
  if (p->destroyed) {
    int i;
    for (i = 0; i < p->size; i++) uv_cond_destroy(&p->workers[i].cv);
    uv_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
  }
}

/* After the in-flight count or the workers changed: keep the loop alive
** while anything is on its way back, hold or drop the owner's anchor. */
static void pool_settle(lasync_Pool *p) {
  int busy = p->inflight > 0 || (p->closing && !pool_all_joined(p) &&
                                 !lasync_waitlist_empty(&p->closeq));
  if (p->handle_closing) return;
  if (busy && !p->refd) uv_ref((uv_handle_t *)&p->async);
  if (!busy && p->refd) uv_unref((uv_handle_t *)&p->async);
  p->refd = (unsigned char)busy;
  if (p->inflight == 0 && p->anchored && !p->dead) {
    lua_pushnil(lasync_state(p->H));
    lua_rawsetp(lasync_state(p->H), LUA_REGISTRYINDEX, p);
    p->anchored = 0;
  }
}

/* Joins the workers that have exited. */
static void pool_reap(lasync_Pool *p) {
  int i;
  for (i = 0; i < p->started; i++) {
    Worker *w = &p->workers[i];
    int exited;
    if (w->joined) continue;
    uv_mutex_lock(&p->mu);
    exited = w->exited;
    uv_mutex_unlock(&p->mu);
    if (exited) {
      uv_thread_join(&w->tid);
      w->joined = 1;
      p->joined++;
    }
  }
}

static void pool_finish(lasync_Pool *p, lasync_Job *j) {
  p->inflight--;
  j->finished = 1;
  j->finish(j);
}

/* Takes the completed jobs and hands each to its finish. */
static void pool_drain(lasync_Pool *p) {
  lasync_Job *j, *next;
  uv_mutex_lock(&p->mu);
  j = p->done_head;
  p->done_head = p->done_tail = NULL;
  uv_mutex_unlock(&p->mu);
  for (; j; j = next) {
    next = j->next;
    pool_finish(p, j);
  }
}

static void pool_async_cb(uv_async_t *h) {
  lasync_Pool *p = (lasync_Pool *)h->data;
  lasync_Wait *w;
  pool_reap(p);                          /* first: their last jobs are queued by now */
  pool_drain(p);
  if (pool_all_joined(p)) {
    while ((w = lasync_waitlist_pop(&p->closeq)) != NULL) lasync_wake(w);
    if (p->inflight == 0 && !p->handle_closing) {
      p->handle_closing = 1;
      uv_close((uv_handle_t *)&p->async, pool_close_cb);
      return;
    }
  }
  pool_settle(p);
}

lasync_Pool *lasync__pool_new(lasync_Host *H, int size, char *err, size_t errlen) {
  lasync_Pool *p = (lasync_Pool *)calloc(1, sizeof *p);
  int i, rc = UV_ENOMEM;
  if (p && (p->workers = (Worker *)calloc((size_t)size, sizeof *p->workers)) != NULL &&
      (rc = uv_mutex_init(&p->mu)) == 0) {
    for (i = 0; i < size; i++) {
      p->workers[i].pool = p;
      p->workers[i].mu = &p->mu;
      if ((rc = uv_cond_init(&p->workers[i].cv)) != 0) break;
    }
    if (rc == 0 && (rc = uv_async_init(lasync_loop(H), &p->async, pool_async_cb)) == 0) {
      p->async.data = p;
      uv_unref((uv_handle_t *)&p->async);
      p->H = H;
      p->size = size;
      lasync_waitlist_init(&p->closeq);
      return p;
    }
    while (--i >= 0) uv_cond_destroy(&p->workers[i].cv);
    uv_mutex_destroy(&p->mu);
  }
  snprintf(err, errlen, "cannot make a worker pool: %s", uv_strerror(rc));
  if (p) free(p->workers);
  free(p);
  return NULL;
}

/* Starts another worker thread; returns 0 or a libuv error. */
static int pool_spawn(lasync_Pool *p) {
  Worker *w = &p->workers[p->started];
  int rc = uv_thread_create(&w->tid, worker_main, w);
  if (rc == 0) {
    w->started = 1;
    p->started++;
  }
  return rc;
}

int lasync__pool_submit(lasync_Pool *p, lasync_Job *j, lua_State *L, int owner) {
  Worker *w = NULL;
  int grow;
  uv_mutex_lock(&p->mu);
  if (p->closing) {
    uv_mutex_unlock(&p->mu);
    return -1;
  }
  j->state = JS_QUEUED;
  list_push(&p->head, &p->tail, j);
  p->queued++;
  if ((w = p->idle) != NULL) {
    p->idle = w->next_idle;
    p->nidle--;
    __atomic_store_n(&w->wake, 1, __ATOMIC_RELEASE);
    uv_cond_signal(&w->cv);
  }
  grow = w == NULL && p->queued > 0 && p->started < p->size;
  uv_mutex_unlock(&p->mu);
  if (grow && pool_spawn(p) != 0 && p->started == 0) {
    uv_mutex_lock(&p->mu);               /* no thread at all: give it back */
    queue_unlink(p, j);
    uv_mutex_unlock(&p->mu);
    j->state = JS_NEW;
    return -2;
  }
  if (p->inflight++ == 0 && owner && !p->anchored) {
    lua_pushvalue(L, owner);
    lua_rawsetp(L, LUA_REGISTRYINDEX, p);
    p->anchored = 1;
  }
  pool_settle(p);
  return 0;
}

void lasync__pool_cancel(lasync_Job *j) {
  lasync_Pool *p = j->pool;
  int dropped = 0;
  uv_mutex_lock(&p->mu);
  if (j->state == JS_QUEUED) {
    queue_unlink(p, j);
    j->state = JS_DONE;
    dropped = 1;
  }
  else if (j->state == JS_RUNNING && !j->cancel) {
    Worker *w = (Worker *)j->worker;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_SEQ_CST);
    if (j->kind == JOB_LUA) lasync__worker_interrupt(w);
  }
  uv_mutex_unlock(&p->mu);
  if (dropped) {
    j->result = JR_CANCELLED;
    pool_finish(p, j);
    pool_settle(p);
  }
}

void lasync__pool_close(lasync_Pool *p, int abort) {
  lasync_Job *dropped = NULL, *j, *next;
  Worker *w;
  int i;
  uv_mutex_lock(&p->mu);
  p->closing = 1;
  while ((w = p->idle) != NULL) {
    p->idle = w->next_idle;
    p->nidle--;
    __atomic_store_n(&w->wake, 1, __ATOMIC_RELEASE);
    uv_cond_signal(&w->cv);
  }
  if (abort) {
    dropped = p->head;
    p->head = p->tail = NULL;
    p->queued = 0;
    for (i = 0; i < p->started; i++) {
      lasync_Job *r = p->workers[i].job;
      if (r && !r->cancel) {
        __atomic_store_n(&r->cancel, 1, __ATOMIC_SEQ_CST);
        if (r->kind == JOB_LUA) lasync__worker_interrupt(&p->workers[i]);
      }
    }
  }
  uv_mutex_unlock(&p->mu);
  for (j = dropped; j; j = next) {
    next = j->next;
    j->state = JS_DONE;
    j->result = JR_CANCELLED;
    pool_finish(p, j);
  }
  if (p->started == 0) pool_async_cb(&p->async);   /* nothing will call back */
  else pool_settle(p);
}

static void closewait_cancel(lasync_Wait *w) {
  lasync_waitlist_remove(w);
}

int lasync__pool_wait_joined(lua_State *L, lasync_Pool *p) {
  lasync_Wait *w;
  if (pool_all_joined(p)) return 0;
  lasync_checktask(L, "executor:close");
  w = (lasync_Wait *)lua_newuserdatauv(L, sizeof *w, 0);
  memset(w, 0, sizeof *w);
  lasync_waitlist_push(&p->closeq, w);
  pool_settle(p);
  w->what = "executor close";
  return lasync_wait(L, w, closewait_cancel, NULL, 0);
}

void lasync__pool_destroy(lasync_Pool *p) {
  int i;
  lasync_Wait *w;
  p->dead = 1;
  if (!p->closing || !pool_all_joined(p)) {
    lasync__pool_close(p, 1);
    for (i = 0; i < p->started; i++)
      if (!p->workers[i].joined) {
        uv_thread_join(&p->workers[i].tid);
        p->workers[i].joined = 1;
        p->joined++;
      }
    pool_drain(p);
  }
  while ((w = lasync_waitlist_pop(&p->closeq)) != NULL) lasync_wake(w);
  p->destroyed = 1;
  if (!p->handle_closing) {
    p->handle_closing = 1;
    uv_close((uv_handle_t *)&p->async, pool_close_cb);
  }
  else if (p->handle_closed) pool_close_cb((uv_handle_t *)&p->async);  /* frees */
}

int lasync__pool_live(lasync_Pool *p) { return !p->dead; }
lasync_Host *lasync__pool_host(lasync_Pool *p) { return p->H; }
int lasync__pool_closed(lasync_Pool *p) { return p->closing; }

void lasync__pool_stats(lasync_Pool *p, lasync_PoolStats *s) {
  uv_mutex_lock(&p->mu);
  s->size = p->size;
  s->threads = p->started - p->joined;
  s->idle = p->nidle;
  s->queued = p->queued;
  s->running = p->running;
  s->inflight = p->inflight;
  s->closed = p->closing;
  uv_mutex_unlock(&p->mu);
}

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer tracks file descriptors as memory: a descriptor closed
** by one thread and the same number made again by another (every host
** opens an epoll fd, eventfds and pipes; servers open sockets) is reported
** as a race, though the kernel orders the two. Only these creations are
** exempt; races anywhere else are reported. */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void) {
  return "race:epoll_create1\nrace:eventfd\nrace:pipe2\nrace:socket\n"
         "race:accept4\nrace:dup\n";
}
#endif
