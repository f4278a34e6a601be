/*
** stream.c: the one buffered reader/writer behind every byte stream (TCP,
** unix pipes, subprocess pipes, stdio): the Stream object, its life cycle
** and reading. Writing is in stream_write.c.
**
** Memory: the Lua object is a box holding a pointer to a lasync_Stream
** malloc'd apart (rule 5), so the handle can outlive the object until
** libuv's close callback frees it. Every stream not yet handed to uv_close
** is on its host's list (a registry userdata, the Root), whose finalizer
** closes what is left when the Lua state closes.
**
** Reading: libuv reads into one scratch buffer per host; read_cb appends
** to the stream's own buffer, so data read and not yet asked for stays
** there for the next read (also after a cancelled one). Reading starts
** with the first read call and then runs ahead until LASYNC_READ_HIGH
** bytes are unread (a waiting reader may need more: read_exactly(n)).
** One task reads at a time; it waits on s->rwait with what it needs
** (rmode) and read_cb wakes it only when that is met, so a 10 MB
** read_exactly costs one wake. The continuation re-runs the read, which
** takes its result from the buffer.
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "io/stream.h"
#include <stdio.h>
#include <sys/socket.h>
#include <errno.h>
#include <unistd.h>

#define READ_CHUNK 65536          /* what libuv may read at once */
#define BUF_KEEP 65536            /* an empty buffer larger than this is freed */
#define READ_DEFAULT 65536        /* read() with no n */

typedef struct Root {
  lasync_Stream *streams;         /* not yet handed to uv_close */
  char scratch[READ_CHUNK];
} Root;

static const char root_key = 0;

static const char *const op_names[] = {
  "read", "read_line", "read_exactly", "read_until", "read_all"
};

/* ------------------------------------------------------------ the root */

static void root_unlink(lasync_Stream *s) {
  Root *root = (Root *)s->root;
  if (root == NULL) return;
  if (s->prev) s->prev->next = s->next;
  else root->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
  s->root = NULL;
}

/* At lua_close every stream object has been finalized before the root
** (created first): what is left is flushing in the background or was
** never given an object. Close it all now; libuv frees it later. */
static int root_gc(lua_State *L) {
  Root *root = (Root *)lua_touserdata(L, 1);
  lasync_Stream *s;
  while ((s = root->streams) != NULL) {   /* each turn takes s off the list */
    if (s->flags & F_CLOSED) lasync__stream_uvclose(s);  /* was flushing */
    else lasync__stream_close(s, 1);
  }
  return 0;
}

static Root *root_get(lua_State *L) {
  return (Root *)lasync__host_singleton(L, &root_key, sizeof(Root), root_gc);
}

/* ------------------------------------------------------- the life cycle */

void *lasync__stream_root(lua_State *L) { return root_get(L); }

lasync_Stream *lasync__stream_new(lasync_Host *H, void *rootp, int kind) {
  Root *root = (Root *)rootp;
  lasync_Stream *s = (lasync_Stream *)calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->H = H;
  s->kind = (unsigned char)kind;
  s->rhigh = LASYNC_READ_HIGH;
  s->whigh = LASYNC_WRITE_HIGH;
  s->wlow = LASYNC_WRITE_HIGH / 4;
  lasync_waitlist_init(&s->writers);
  lasync_waitlist_init(&s->drainers);
  s->root = root;
  s->next = root->streams;
  if (s->next) s->next->prev = s;
  root->streams = s;
  return s;
}

lasync_Stream *lasync__stream_alloc(lua_State *L, int kind) {
  lasync_Stream *s = lasync__stream_new(lasync_host(L), root_get(L), kind);
  if (s == NULL) luaL_error(L, "not enough memory for a stream");
  return s;
}

uv_handle_t *lasync__stream_handle(lasync_Stream *s) { return &s->h.handle; }

void lasync__stream_drop(lasync_Stream *s) {
  root_unlink(s);
  free(s->desc);
  free(s);
}

static void stream_close_cb(uv_handle_t *h) {
  lasync_Stream *s = (lasync_Stream *)h;
  free(s->buf);
  free(s->desc);
  free(s);
}

/* Hands the handle to uv_close, once; stream_close_cb frees it after every
** request on it has called back. */
void lasync__stream_uvclose(lasync_Stream *s) {
  if (s->flags & F_UVCLOSED) return;
  s->flags |= F_UVCLOSED;
  root_unlink(s);
  uv_close(&s->h.handle, stream_close_cb);
}

/* Wakes every task waiting on s; each continuation finds the stream
** closed (or failed) and raises. */
void lasync__stream_wake_all(lasync_Stream *s) {
  lasync_Wait *w;
  if (s->rmode != R_NONE) {
    s->rmode = R_NONE;
    lasync_wake(&s->rwait);
  }
  while ((w = lasync_waitlist_pop(&s->writers)) != NULL) lasync_wake(w);
  while ((w = lasync_waitlist_pop(&s->drainers)) != NULL) lasync_wake(w);
  if (s->swait.task) lasync_wake(&s->swait);
}

void lasync__stream_close(lasync_Stream *s, int abort) {
  if (s->flags & F_CLOSED) return;
  s->flags |= F_CLOSED;
  if (s->box) *s->box = NULL;
  s->box = NULL;
  lasync__stream_wake_all(s);
  if (s->flags & F_READING) uv_read_stop(&s->h.stream);
  s->flags &= ~F_READING;
  free(s->buf);
  s->buf = NULL;
  s->off = s->len = s->cap = 0;
  if (s->kind == STREAM_FILE) {           /* no handle: nothing is pending */
    lasync__stream_drop(s);
    return;
  }
  if (!abort && s->root && !lasync__host_closing(s->H) && lasync__stream_linger(s)) return;
  if (abort && s->kind == STREAM_TCP && !(s->flags & F_UVCLOSED) &&
      uv_tcp_close_reset(&s->h.tcp, stream_close_cb) == 0) {
    s->flags |= F_UVCLOSED;                /* RST instead of FIN */
    root_unlink(s);
    return;
  }
  lasync__stream_uvclose(s);
}

/* ------------------------------------------------------- the Lua object */

/* The metatable's address is kept in the host: luaL_checkudata finds it
** by name, hashing and comparing the string on every call, a registry
** lookup by a light key cost 300 instructions a call, and stream methods
** are on the per-message path. */

lasync_Stream **lasync__stream_test(lua_State *L, int idx) {
  void *p = lua_touserdata(L, idx);
  if (p != NULL && lua_getmetatable(L, idx)) {
    const void *mt = lua_topointer(L, -1);
    lua_pop(L, 1);
    if (mt == *lasync__host_stream_mt(lasync_host(L))) return (lasync_Stream **)p;
  }
  return NULL;
}

lasync_Stream **lasync__stream_box(lua_State *L, int idx) {
  lasync_Stream **box = lasync__stream_test(L, idx);
  if (box == NULL) luaL_typeerror(L, idx, LASYNC_STREAM_MT);
  return box;
}

#define box_check lasync__stream_box

void lasync__stream_push(lua_State *L, lasync_Stream *s) {
  lasync_Stream **box;
  s->h.handle.data = s;
  if (!lua_checkstack(L, 2)) {
    lasync__stream_close(s, 1);
    luaL_error(L, "stack overflow");
  }
  box = (lasync_Stream **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, LASYNC_STREAM_MT);
  *box = s;
  s->box = box;
}

lasync_Stream *lasync__stream_check(lua_State *L, int idx) {
  lasync_Stream *s = *box_check(L, idx);
  if (s == NULL) lasync__closed_error(L, NULL, "stream");
  return s;
}

void lasync__stream_describe(lasync_Stream *s, const char *what) {
  char *d = strdup(what);
  if (d == NULL) return;
  free(s->desc);
  s->desc = d;
}

/* Raised by a call that was waiting when the stream was closed. */
int lasync__stream_closed_error(lua_State *L, const char *op) {
  return lasync__closed_waiting_error(L, op, "stream");
}

static int stream_close_m(lua_State *L) {
  lasync_Stream *s = *box_check(L, 1);
  if (s) lasync__stream_close(s, 0);
  return 0;
}

static int stream_abort(lua_State *L) {
  lasync_Stream *s = *box_check(L, 1);
  if (s) lasync__stream_close(s, 1);
  return 0;
}

static int stream_is_closed(lua_State *L) {
  lua_pushboolean(L, *box_check(L, 1) == NULL);
  return 1;
}

const char *const lasync__stream_kinds[] = {"tcp", "pipe", "tty", "file"};

static int stream_tostring(lua_State *L) {
  lasync_Stream *s = *box_check(L, 1);
  if (s == NULL) lua_pushliteral(L, "Stream<closed>");
  else lua_pushfstring(L, "Stream<%s%s%s>", lasync__stream_kinds[s->kind],
                       s->desc ? " " : "", s->desc ? s->desc : "");
  return 1;
}

/* ------------------------------------------------------------- reading */

static size_t unread(const lasync_Stream *s) { return s->len - s->off; }

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  Root *root = (Root *)((lasync_Stream *)h)->root;
  (void)suggested;
  b->base = root->scratch;
  b->len = READ_CHUNK;
}

/* Appends n bytes to the unread data; returns 0, or -1 when out of memory. */
static int buf_append(lasync_Stream *s, const char *p, size_t n) {
  if (s->cap - s->len < n) {
    size_t used = unread(s);
    if (s->off > 0) memmove(s->buf, s->buf + s->off, used);
    s->off = 0;
    s->len = used;
    if (s->cap - used < n) {
      size_t cap = s->cap ? s->cap : 1024;
      char *nb;
      while (cap - used < n) cap *= 2;
      if ((nb = (char *)realloc(s->buf, cap)) == NULL) return -1;
      s->buf = nb;
      s->cap = cap;
    }
  }
  memcpy(s->buf + s->len, p, n);
  s->len += n;
  return 0;
}

static void buf_consume(lasync_Stream *s, size_t n) {
  s->off += n;
  s->scan = 0;
  if (s->off == s->len) {
    s->off = s->len = 0;
    if (s->cap > BUF_KEEP) {              /* a burst is over: give it back */
      free(s->buf);
      s->buf = NULL;
      s->cap = 0;
    }
  }
}

/* The offset of the separator in the unread data, or -1. Resumes where
** the last search stopped (s->scan), so a long line costs O(n). */
static long find_sep(lasync_Stream *s) {
  size_t n = unread(s);
  const char *base = s->buf + s->off, *p;
  if (n < s->seplen) return -1;
  p = s->seplen == 1 ? memchr(base + s->scan, s->sep[0], n - s->scan)
                     : memmem(base + s->scan, n - s->scan, s->sep, s->seplen);
  if (p) return (long)(p - base);
  s->scan = n - s->seplen + 1;
  return -1;
}

/* Whether the waiting reader's need is met (or never will be). */
static int satisfied(lasync_Stream *s) {
  if (s->rerr || (s->flags & F_EOF)) return 1;
  switch (s->rmode) {
    case R_ANY: return unread(s) > 0;
    case R_EXACT: return unread(s) >= s->rneed;
    case R_UNTIL: return unread(s) >= s->rneed || find_sep(s) >= 0;
    default: return 0;                    /* R_ALL: only the end */
  }
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b);

/* Starts or stops libuv's reading to match what the stream needs. */
void lasync__stream_pump(lasync_Stream *s) {
  int want;
  if (s->kind == STREAM_FILE) return;
  want = (s->flags & (F_STARTED | F_EOF | F_CLOSED)) == F_STARTED &&
             s->rerr == 0 && (s->rmode != R_NONE || unread(s) < s->rhigh);
  if (want == ((s->flags & F_READING) != 0)) return;
  if (want) {
    int r = uv_read_start(&s->h.stream, on_alloc, on_read);
    if (r == 0) s->flags |= F_READING;
    else s->rerr = r;
  }
  else {
    uv_read_stop(&s->h.stream);
    s->flags &= ~F_READING;
  }
}

/* libuv reports EOF, not the error, when a peer's reset arrives with data
** (POLLHUP after a partial read); the socket still holds the error. */
static int eof_error(lasync_Stream *s) {
  uv_os_fd_t fd;
  int err = 0;
  socklen_t len = sizeof err;
  if (s->kind != STREAM_TCP || uv_fileno(&s->h.handle, &fd) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    return 0;
  return err ? uv_translate_sys_error(err) : 0;
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b) {
  lasync_Stream *s = (lasync_Stream *)h;
  if (n > 0) {
    if (buf_append(s, b->base, (size_t)n) != 0) s->rerr = UV_ENOBUFS;
  }
  else if (n == UV_EOF) {
    s->flags |= F_EOF;
    s->rerr = eof_error(s);
  }
  else if (n < 0) s->rerr = (int)n;
  if (n < 0) s->flags &= ~F_READING;      /* libuv stopped reading */
  if (s->rmode != R_NONE && satisfied(s)) {
    s->rmode = R_NONE;
    lasync_wake(&s->rwait);
  }
  lasync__stream_pump(s);
}

/* Pushes the first n unread bytes as a string and consumes them. */
static void take(lua_State *L, lasync_Stream *s, size_t n) {
  lua_pushlstring(L, s->buf + s->off, n);
  buf_consume(s, n);
}

/* Raises the read error once the data before it has been read. */
static int read_failed(lua_State *L, lasync_Stream *s, const char *op) {
  return lasync__ioerror(L, s->rerr, op, "address", s->desc);
}

/* Raises an EOF error with the `n` bytes that came before the end (taken)
** as its `partial` field. */
static int read_incomplete(lua_State *L, lasync_Stream *s, const char *op,
                           size_t want) {
  size_t n = unread(s);
  char msg[96];
  if (want) snprintf(msg, sizeof msg, "the stream ended after %zu of %zu bytes", n, want);
  else snprintf(msg, sizeof msg, "the stream ended after %zu bytes, before the separator", n);
  lasync__push_ioerror_msg(L, "EOF", msg, op, "address", s->desc);
  take(L, s, n);
  lua_setfield(L, -2, "partial");
  return lua_error(L);
}

static int read_overrun(lua_State *L, lasync_Stream *s, const char *op, size_t limit) {
  char msg[96];
  snprintf(msg, sizeof msg, "no separator within %zu bytes", limit);
  lasync__push_ioerror_msg(L, "ELIMIT", msg, op, "address", s->desc);
  lua_pushinteger(L, (lua_Integer)unread(s));
  lua_setfield(L, -2, "buffered");
  return lua_error(L);
}

/* The end of the data: nil, or the error that ended it. */
static int read_end(lua_State *L, lasync_Stream *s, const char *op) {
  if (s->rerr) return read_failed(L, s, op);
  lua_pushnil(L);
  return 1;
}

static size_t check_size(lua_State *L, int arg, lua_Integer dflt) {
  lua_Integer n;
  if (lua_type(L, arg) <= LUA_TNIL) return (size_t)dflt;  /* read(): twice a message */
  n = luaL_checkinteger(L, arg);
  luaL_argcheck(L, n > 0, arg, "must be a positive number of bytes");
  return (size_t)n;
}

/* read_until and read_line: the data up to and with the separator (line:
** without "\n" or "\r\n", and a last line without one is returned). */
static int try_until(lua_State *L, lasync_Stream *s, int op) {
  int line = op == OP_LINE;
  size_t limit = check_size(L, line ? 2 : 3, LASYNC_LINE_LIMIT), n = unread(s);
  /* read_until's limit counts the separator; read_line's counts the line
  ** without its "\r\n", so a line of exactly `limit` bytes needs up to
  ** limit + 2 bytes buffered (it was refused when the "\n" made it limit + 1). */
  size_t span = line ? limit + 2 : limit;
  long at = find_sep(s);
  if (at >= 0) {
    size_t end = (size_t)at + s->seplen, cut = end;
    if (line) cut = at > 0 && s->buf[s->off + at - 1] == '\r' ? (size_t)at - 1 : (size_t)at;
    if (line ? cut <= limit : end <= limit) {
      lua_pushlstring(L, s->buf + s->off, cut);
      buf_consume(s, end);
      return 1;
    }
  }
  if (at >= 0 || n >= span || (line && n > limit && s->buf[s->off + limit] != '\r'))
    return read_overrun(L, s, op_names[op], limit);
  if (!(s->flags & F_EOF) && !s->rerr) {
    s->rneed = line && n <= limit ? limit + 1 : span;  /* limit + 1: "\r"? */
    return -1;
  }
  if (n == 0) return read_end(L, s, op_names[op]);
  if (line && n > limit) return read_overrun(L, s, op_names[op], limit);
  if (line && !s->rerr) { take(L, s, n); return 1; }
  if (s->rerr) return read_failed(L, s, op_names[op]);
  return read_incomplete(L, s, op_names[op], 0);
}

/* One attempt at read op `op` (arguments at 2..): pushes its results and
** returns their count, or returns -(the R_* mode to wait in) with rneed
** and sep set. Raises errors. */
static int read_try(lua_State *L, lasync_Stream *s, int op) {
  size_t n = unread(s), want;
  switch (op) {
    case OP_READ:
      want = check_size(L, 2, READ_DEFAULT);
      if (n > 0) { take(L, s, n < want ? n : want); return 1; }
      if ((s->flags & F_EOF) || s->rerr) return read_end(L, s, "read");
      return -R_ANY;
    case OP_EXACT: {
      lua_Integer k = luaL_checkinteger(L, 2);
      luaL_argcheck(L, k >= 0, 2, "must be a number of bytes (0 or more)");
      want = (size_t)k;
      if (n >= want) { take(L, s, want); return 1; }
      if (s->rerr) return read_failed(L, s, "read_exactly");
      if (s->flags & F_EOF) {
        if (n == 0) return read_end(L, s, "read_exactly");
        return read_incomplete(L, s, "read_exactly", want);
      }
      s->rneed = want;
      return -R_EXACT;
    }
    case OP_ALL:
      if (s->rerr) return read_failed(L, s, "read_all");
      if (s->flags & F_EOF) { take(L, s, n); return 1; }
      return -R_ALL;
    default:
      s->sep = op == OP_LINE ? "\n" : luaL_checklstring(L, 2, &s->seplen);
      if (op == OP_LINE) s->seplen = 1;
      luaL_argcheck(L, s->seplen > 0, 2, "the separator is empty");
      return try_until(L, s, op) >= 0 ? 1 : -R_UNTIL;
  }
}

/* STREAM_FILE: reads the next chunk, blocking (a file or device cannot be
** polled); sets EOF or the error when there is no more. */
static void file_fill(lasync_Stream *s) {
  ssize_t n;
  do n = read(s->fd, ((Root *)s->root)->scratch, READ_CHUNK);
  while (n < 0 && errno == EINTR);
  if (n > 0 && buf_append(s, ((Root *)s->root)->scratch, (size_t)n) != 0) s->rerr = UV_ENOBUFS;
  else if (n == 0) s->flags |= F_EOF;
  else if (n < 0) s->rerr = uv_translate_sys_error(errno);
}

static void read_cancel(lasync_Wait *w) {
  lasync_Stream *s = container_of(w, lasync_Stream, rwait);
  s->rmode = R_NONE;
  lasync__stream_pump(s);
}

static int read_k(lua_State *L, int status, lua_KContext ctx);

/* Runs read op `op` for the stream at 1, waiting as long as it takes.
** `first` is 0 in the continuation, where the stream may have been closed
** while the task waited. */
static int read_step(lua_State *L, int op, int first, int nargs) {
  /* a continuation's slot 1 was checked by the first call */
  lasync_Stream *s = first ? *box_check(L, 1) : *(lasync_Stream **)lua_touserdata(L, 1);
  int n;
  if (s == NULL) {
    if (first) return lasync__closed_error(L, op_names[op], "stream");
    return lasync__stream_closed_error(L, op_names[op]);
  }
  if (first) {
    if (s->rmode != R_NONE)
      return luaL_error(L, "%s: another task is already reading this stream", op_names[op]);
    s->scan = 0;
  }
  n = read_try(L, s, op);
  while (n < 0 && s->kind == STREAM_FILE) {
    file_fill(s);
    n = read_try(L, s, op);
  }
  if (n >= 0) {
    lasync__stream_pump(s);               /* consumed: may read ahead again */
    return n;
  }
  lasync_checktask(L, op_names[op]);
  s->rmode = -n;
  s->flags |= F_STARTED;
  lasync__stream_pump(s);
  if (s->rerr) {                          /* reading could not start */
    s->rmode = R_NONE;
    return read_failed(L, s, op_names[op]);
  }
  lua_settop(L, nargs);
  s->rwait.what = "stream read";
  return lasync_wait(L, &s->rwait, read_cancel, read_k, (lua_KContext)(op * 8 + nargs));
}

static int read_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return read_step(L, (int)(ctx / 8), 0, (int)(ctx % 8));
}

/* ------------------------------------------------ a reader in C (io.h) */

size_t lasync__stream_peek(lua_State *L, int idx, int first, const char **p,
                           lua_KFunction k, lua_KContext ctx) {
  lasync_Stream *s = *(lasync_Stream **)lua_touserdata(L, idx);
  if (s == NULL) {
    if (first) lasync__closed_error(L, "read", "stream");
    lasync__stream_closed_error(L, "read");
  }
  if (first && s->rmode != R_NONE)
    luaL_error(L, "read: another task is already reading this stream");
  if (unread(s) > 0) {
    *p = s->buf + s->off;
    return unread(s);
  }
  if ((s->flags & F_EOF) || s->rerr || s->kind == STREAM_FILE) return 0;
  lasync_checktask(L, "read");
  s->rmode = R_ANY;
  s->flags |= F_STARTED;
  lasync__stream_pump(s);
  if (s->rerr) {                          /* reading could not start */
    s->rmode = R_NONE;
    return 0;
  }
  s->rwait.what = "stream read";
  lasync_wait(L, &s->rwait, read_cancel, k, ctx);  /* yields: does not return */
  return 0;
}

void lasync__stream_consume(lua_State *L, int idx, size_t n) {
  lasync_Stream *s = *(lasync_Stream **)lua_touserdata(L, idx);
  buf_consume(s, n);
  lasync__stream_pump(s);                 /* consumed: may read ahead again */
}

static int stream_read(lua_State *L) { return read_step(L, OP_READ, 1, 2); }
static int stream_read_line(lua_State *L) { return read_step(L, OP_LINE, 1, 2); }
static int stream_read_exactly(lua_State *L) { return read_step(L, OP_EXACT, 1, 2); }
static int stream_read_until(lua_State *L) { return read_step(L, OP_UNTIL, 1, 3); }
static int stream_read_all(lua_State *L) { return read_step(L, OP_ALL, 1, 1); }

/* The iterator of lines(): read_line with the stream and limit kept as
** upvalues (a generic for passes the last line as an argument). */
static int lines_iter(lua_State *L) {
  lua_settop(L, 0);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, lua_upvalueindex(2));
  return read_step(L, OP_LINE, 1, 2);
}

static int stream_lines(lua_State *L) {
  box_check(L, 1);
  if (!lua_isnoneornil(L, 2)) check_size(L, 2, LASYNC_LINE_LIMIT);
  lua_settop(L, 2);
  lua_pushcclosure(L, lines_iter, 2);
  return 1;
}

/* s:buffered(): unread input bytes, queued output bytes. */
static int stream_buffered(lua_State *L) {
  lasync_Stream *s = lasync__stream_check(L, 1);
  lua_pushinteger(L, (lua_Integer)unread(s));
  lua_pushinteger(L, (lua_Integer)s->wqueued);
  return 2;
}

/* s:set_read_buffer(n): how far reading runs ahead of the reader. */
static int stream_set_read_buffer(lua_State *L) {
  lasync_Stream *s = lasync__stream_check(L, 1);
  s->rhigh = check_size(L, 2, LASYNC_READ_HIGH);
  lasync__stream_pump(s);
  return 0;
}

static int stream_gc(lua_State *L) {
  lasync_Stream *s = *(lasync_Stream **)luaL_checkudata(L, 1, LASYNC_STREAM_MT);
  if (s) lasync__stream_close(s, 0);
  return 0;
}

/* ------------------------------------------------------------- the type */

static const luaL_Reg stream_methods[] = {
  {"read", stream_read}, {"read_line", stream_read_line},
  {"read_exactly", stream_read_exactly}, {"read_until", stream_read_until},
  {"read_all", stream_read_all}, {"lines", stream_lines},
  {"close", stream_close_m}, {"abort", stream_abort}, {"closed", stream_is_closed},
  {"buffered", stream_buffered}, {"set_read_buffer", stream_set_read_buffer},
  {NULL, NULL}
};

static const luaL_Reg stream_meta[] = {
  {"__gc", stream_gc}, {"__close", stream_close_m}, {"__tostring", stream_tostring},
  {NULL, NULL}
};

/* Makes the Stream metatable (once); leaves nothing on the stack. */
int lasync__open_stream(lua_State *L) {
  if (luaL_newmetatable(L, LASYNC_STREAM_MT)) {
    *lasync__host_stream_mt(lasync_host(L)) = lua_topointer(L, -1);
    luaL_setfuncs(L, stream_meta, 0);
    luaL_newlib(L, stream_methods);
    lasync__stream_write_methods(L);
    lasync__stream_info_methods(L);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  root_get(L);
  return 0;
}
