/*
** stream_write.c: writing to a Stream: write() with backpressure, drain(),
** shutdown() (half-close), and the flush-then-close of a stream closed
** with output still queued.
**
** write(data) queues the data whole or not at all. It first writes
** straight to the fd (uv_try_write: no allocation, no callback, the common
** case), and copies only what the kernel did not take into a request that
** its callback frees (a Lua string cannot be handed to libuv: the state
** may be gone before the callback). When whigh bytes or more are queued,
** write() waits, in FIFO order with other writers, until the queue is down
** to wlow: a peer that never reads holds a writer at whigh plus one
** write. A write cancelled while it waits has queued nothing; one that
** returned has handed everything to libuv, which sends it even if the
** stream is then closed (close flushes; abort drops). drain() waits until
** the queue is empty.
*/
#include <errno.h>
#include <limits.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "io/stream.h"

typedef struct WriteReq {
  uv_write_t req;
  size_t len;
  char data[];
} WriteReq;

/* Wakes the writers and drainers whose turn has come (no values: their
** continuations look at the stream). */
static void write_wake(lasync_Stream *s) {
  lasync_Wait *w;
  if (s->werr) {
    while ((w = lasync_waitlist_pop(&s->writers)) != NULL) lasync_wake(w);
  }
  else if (s->wqueued <= s->wlow && (w = lasync_waitlist_pop(&s->writers)) != NULL)
    lasync_wake(w);                       /* one: it passes the turn on */
  if (s->werr || s->wqueued == 0)
    while ((w = lasync_waitlist_pop(&s->drainers)) != NULL) lasync_wake(w);
}

static void on_write(uv_write_t *req, int status) {
  WriteReq *w = (WriteReq *)req;
  lasync_Stream *s = (lasync_Stream *)req->handle;
  s->wqueued -= w->len;
  free(w);
  if (status < 0 && status != UV_ECANCELED && s->werr == 0) s->werr = status;
  if (!(s->flags & F_CLOSED)) write_wake(s);
}

/* STREAM_FILE: writes it all, blocking. */
static int file_write(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return uv_translate_sys_error(errno);
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Queues the bytes of the pieces b[0..nb) after the first `skip` in one
** request (a Lua string cannot be handed to libuv: the state may be gone
** before the callback); returns 0 or a libuv error. */
static int queue_pieces(lasync_Stream *s, const uv_buf_t *b, unsigned nb, size_t skip) {
  WriteReq *w;
  uv_buf_t q;
  size_t total = 0, at = 0;
  unsigned i;
  int r;
  for (i = 0; i < nb; i++) total += b[i].len;
  if (total - skip > UINT_MAX) return UV_E2BIG;
  if ((w = (WriteReq *)malloc(sizeof *w + (total - skip))) == NULL) return UV_ENOMEM;
  for (i = 0, total = 0; i < nb; total += b[i].len, i++) {
    size_t from = skip > total ? skip - total : 0;
    if (from < b[i].len) {
      memcpy(w->data + at, b[i].base + from, b[i].len - from);
      at += b[i].len - from;
    }
  }
  w->len = at;
  q = uv_buf_init(w->data, (unsigned)at);
  if ((r = uv_write(&w->req, &s->h.stream, &q, 1, on_write)) != 0) {
    free(w);
    return r;
  }
  s->wqueued += at;
  return 0;
}

/* Hands n bytes to the kernel or to libuv's queue; returns 0 or a libuv
** error. */
static int enqueue(lasync_Stream *s, const char *p, size_t n) {
  uv_buf_t b;
  int r;
  if (n > UINT_MAX) return UV_E2BIG;
  if (s->kind == STREAM_FILE) return file_write(s->fd, p, n);
  b = uv_buf_init((char *)p, (unsigned)n);
  if (s->wqueued == 0 && n <= INT_MAX) {
    r = uv_try_write(&s->h.stream, &b, 1);
    if (r == (int)n) return 0;
    if (r >= 0) return queue_pieces(s, &b, 1, (size_t)r);
    if (r != UV_EAGAIN && r != UV_ENOSYS) return r;
  }
  return queue_pieces(s, &b, 1, 0);
}

static int write_failed(lua_State *L, lasync_Stream *s, const char *op) {
  return lasync__ioerror(L, s->werr, op, "address", s->desc);
}

static int shut_error(lua_State *L, lasync_Stream *s, const char *op) {
  lasync__push_ioerror_msg(L, "EPIPE", "the stream was shut down for writing",
                           op, "address", s->desc);
  return lua_error(L);
}

/* A task waiting in a list (its self wait) leaves it when cancelled. */
static void list_cancel(lasync_Wait *w) { lasync_waitlist_remove(w); }

/* The open stream at 1, or NULL; raises for a closed one (`first`: misuse;
** in a continuation: it was closed while the task waited). */
static lasync_Stream *write_stream(lua_State *L, int first, const char *op) {
  /* a continuation's slot 1 was checked by the first call */
  lasync_Stream *s = first ? *lasync__stream_box(L, 1) : *(lasync_Stream **)lua_touserdata(L, 1);
  if (s == NULL) {
    if (first) lasync__closed_error(L, op, "stream");
    lasync__stream_closed_error(L, op);
  }
  return s;
}

static int write_k(lua_State *L, int status, lua_KContext ctx);

#define WRITEV_MAX 8

/* write(a, b, ...) when nothing is queued: the pieces straight to the fd
** in one writev, with no string made by concatenation (an HTTP response's
** head and body, say). Checks the pieces (strings or numbers). Returns
** SIZE_MAX when all of it went, or how many bytes did (the caller
** concatenates and queues the rest). */
static size_t write_pieces(lua_State *L, lasync_Stream *s, int n) {
  uv_buf_t b[WRITEV_MAX];
  size_t total = 0, len;
  int i, r, fast = !s->werr && !(s->flags & F_SHUT) && s->kind != STREAM_FILE &&
                   s->wqueued == 0 && lasync_waitlist_empty(&s->writers);
  for (i = 2; i <= n; i++) {             /* each is checked, fast or not */
    const char *p = luaL_checklstring(L, i, &len);
    b[i - 2] = uv_buf_init((char *)p, (unsigned)len);
    total += len;
    if (len > INT_MAX || total > INT_MAX) fast = 0;
  }
  if (!fast) return 0;
  r = uv_try_write(&s->h.stream, b, (unsigned)(n - 1));
  if (r == (int)total) return SIZE_MAX;
  return r > 0 ? (size_t)r : 0;
}

/* write(...): the arguments (strings or numbers) are written as one. In
** the continuation the writer has been given its turn: it queues its data
** whatever the queue holds, and passes the turn on if there is room. */
static int write_step(lua_State *L, int first) {
  lasync_Stream *s = write_stream(L, first, "write");
  const char *p;
  size_t len;
  int r;
  size_t done = 0;
  if (first) {
    int i, n = lua_gettop(L);
    if (n > 2 && n - 1 <= WRITEV_MAX) {    /* write_pieces checks them */
      if ((done = write_pieces(L, s, n)) == SIZE_MAX) {
        lua_settop(L, 1);
        return 1;
      }
    }
    else for (i = 2; i <= n || i == 2; i++) luaL_checklstring(L, i, NULL);
    if (n > 2) lua_concat(L, n - 1);
  }
  p = lua_tolstring(L, 2, &len);
  p += done;                              /* write_pieces sent that much */
  len -= done;
  if (s->werr) return write_failed(L, s, "write");
  if (s->flags & F_SHUT) return shut_error(L, s, "write");
  if (first && len > 0 &&
      (s->wqueued >= s->whigh || !lasync_waitlist_empty(&s->writers))) {
    lasync_Task *t = lasync_checktask(L, "write");
    lasync_Wait *self = lasync_task_wait(t);
    self->data = s;
    lasync_waitlist_push(&s->writers, self);
    lua_settop(L, 2);
    self->what = "stream write";
    return lasync_wait(L, self, list_cancel, write_k, 0);
  }
  if (len > 0 && (r = enqueue(s, p, len)) != 0) {
    s->werr = r;
    write_wake(s);
    return write_failed(L, s, "write");
  }
  if (!first && s->wqueued < s->whigh) {
    lasync_Wait *w = lasync_waitlist_pop(&s->writers);
    if (w) lasync_wake(w);
  }
  lua_settop(L, 1);
  return 1;
}

static int write_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return write_step(L, 0);
}

/* A writer in C (io.h): what write(...) does when it need not wait. */
int lasync__stream_writev(lua_State *L, int idx, const uv_buf_t *b, unsigned n) {
  lasync_Stream *s = *(lasync_Stream **)lua_touserdata(L, idx);
  size_t total = 0;
  unsigned i;
  int r;
  if (s == NULL || s->werr || (s->flags & F_SHUT) || s->kind == STREAM_FILE ||
      s->wqueued != 0 || !lasync_waitlist_empty(&s->writers))
    return 0;
  for (i = 0; i < n; i++) total += b[i].len;
  if (total > INT_MAX) return 0;
  r = uv_try_write(&s->h.stream, b, n);
  if (r == (int)total) return 1;
  if (r < 0 && r != UV_EAGAIN && r != UV_ENOSYS) {
    s->werr = r;                          /* write() raises it */
    write_wake(s);
    return 0;
  }
  if ((r = queue_pieces(s, b, n, r > 0 ? (size_t)r : 0)) != 0) {
    s->werr = r;                          /* part may have gone: write() must not resend it */
    write_wake(s);
    return 0;
  }
  return 1;
}

static int stream_write(lua_State *L) { return write_step(L, 1); }

static int drain_k(lua_State *L, int status, lua_KContext ctx);

/* drain(): waits until every queued byte is written (handed to the kernel). */
static int drain_step(lua_State *L, int first) {
  lasync_Stream *s = write_stream(L, first, "drain");
  lasync_Task *t;
  if (s->werr) return write_failed(L, s, "drain");
  if (s->wqueued == 0) {
    lua_settop(L, 1);
    return 1;
  }
  t = lasync_checktask(L, "drain");
  lasync_Wait *self = lasync_task_wait(t);
  self->data = s;
  lasync_waitlist_push(&s->drainers, self);
  lua_settop(L, 1);
  self->what = "stream drain";
  return lasync_wait(L, self, list_cancel, drain_k, 0);
}

static int drain_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return drain_step(L, 0);
}

static int stream_drain(lua_State *L) { return drain_step(L, 1); }

/* ------------------------------------------------------------ shutdown */

static void on_shutdown(uv_shutdown_t *req, int status) {
  lasync_Stream *s = (lasync_Stream *)req->handle;
  free(req);
  s->shutreq = NULL;
  if (s->flags & F_CLOSED) {              /* a closed stream finished flushing */
    lasync__stream_uvclose(s);
    return;
  }
  if (status < 0 && status != UV_ECANCELED) s->shuterr = status;
  if (s->swait.task) lasync_wake(&s->swait);
}

int lasync__stream_linger(lasync_Stream *s) {
  uv_shutdown_t *req;
  if (s->shutreq) return 1;               /* the pending shutdown closes */
  if (s->wqueued == 0) return 0;
  if ((req = (uv_shutdown_t *)malloc(sizeof *req)) == NULL) return 0;
  if (uv_shutdown(req, &s->h.stream, on_shutdown) != 0) {
    free(req);
    return 0;
  }
  s->shutreq = req;
  return 1;
}

static int shutdown_k(lua_State *L, int status, lua_KContext ctx);

/* shutdown(): waits until the queued output is written, then ends this
** side (FIN); reading goes on. Later writes raise EPIPE. Cancelling the
** wait does not stop the shutdown. */
static int shutdown_step(lua_State *L, int first) {
  lasync_Stream *s = write_stream(L, first, "shutdown");
  int r;
  if (s->kind == STREAM_FILE) s->flags |= F_SHUT;  /* nothing to flush or send */
  if (first && !(s->flags & F_SHUT)) {
    uv_shutdown_t *req;
    lasync_checktask(L, "shutdown");
    if ((req = (uv_shutdown_t *)malloc(sizeof *req)) == NULL)
      return luaL_error(L, "not enough memory");
    if ((r = uv_shutdown(req, &s->h.stream, on_shutdown)) != 0) {
      free(req);
      return lasync__ioerror(L, r, "shutdown", "address", s->desc);
    }
    s->shutreq = req;
    s->flags |= F_SHUT;
    write_wake(s);                        /* waiting writers raise EPIPE */
    while (!lasync_waitlist_empty(&s->writers))
      lasync_wake(lasync_waitlist_pop(&s->writers));
  }
  if (s->shutreq) {
    if (s->swait.task)
      return luaL_error(L, "shutdown: another task is waiting for this stream's shutdown");
    if (!first) lasync_checktask(L, "shutdown");
    lua_settop(L, 1);
    s->swait.what = "stream shutdown";
    return lasync_wait(L, &s->swait, NULL, shutdown_k, 0);
  }
  if (s->shuterr) return lasync__ioerror(L, s->shuterr, "shutdown", "address", s->desc);
  lua_settop(L, 1);
  return 1;
}

static int shutdown_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return shutdown_step(L, 0);
}

static int stream_shutdown(lua_State *L) { return shutdown_step(L, 1); }

/* set_write_buffer(high [, low]): write() waits while `high` bytes or more
** are queued, until the queue is down to `low` (default high / 4). */
static int stream_set_write_buffer(lua_State *L) {
  lasync_Stream *s = lasync__stream_check(L, 1);
  lua_Integer high = luaL_checkinteger(L, 2);
  lua_Integer low = luaL_optinteger(L, 3, high / 4);
  luaL_argcheck(L, high >= 1, 2, "must be a positive number of bytes");
  luaL_argcheck(L, low >= 0 && low <= high, 3, "must be between 0 and high");
  s->whigh = (size_t)high;
  s->wlow = (size_t)low;
  write_wake(s);
  return 0;
}

static const luaL_Reg write_methods[] = {
  {"write", stream_write}, {"drain", stream_drain}, {"shutdown", stream_shutdown},
  {"set_write_buffer", stream_set_write_buffer}, {NULL, NULL}
};

void lasync__stream_write_methods(lua_State *L) {
  luaL_setfuncs(L, write_methods, 0);
}
