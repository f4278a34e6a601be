/*
** fs.c: require "async.core.fs", the C half of async.fs: each file
** system call of libuv (run on its thread pool) as one awaitable function.
** Files are plain descriptors here; lua/async/fs.lua makes File objects,
** buffering, atomic writes and recursive mkdir/remove out of them.
**
** One request type serves every call. Its callback builds the result on
** the main state under a protected call (it allocates) and wakes the task
** with it. Cancelling calls uv_cancel, which only stops a request that has
** not started; one already running on a thread finishes, and its result
** is then dropped when it arrives, undoing what would leak: a descriptor
** opened for nobody is closed, a temporary directory made for nobody is
** removed. Reads and writes take explicit offsets (pread/pwrite), so a
** cancelled read consumes nothing and a cancelled write, if it happened,
** can be repeated at the same offset.
**
** A descriptor is an Fd object, not a number, because a request that
** outlives its task still uses the number: closed then (and reused by the
** next open), the request would read or write another file. An Fd counts
** its requests still on the pool; close and settle wait for the count to
** drop to 0, and a close that cannot wait (a finalizer, a cancelled close)
** is left to the last request's callback. Bytes that an abandoned read in
** sequence (a FIFO) consumed are kept for the next read, not lost.
*/
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "io/io.h"

#define READ_MAX (64 * 1024 * 1024)

enum { FS_OPEN, FS_CLOSE, FS_READ, FS_WRITE, FS_STAT, FS_LSTAT, FS_FSTAT, FS_MKDIR,
       FS_RMDIR, FS_UNLINK, FS_RENAME, FS_SCANDIR, FS_MKDTEMP, FS_FSYNC, FS_FTRUNCATE };

static const char *const op_names[] = {
  "open", "close", "read", "write", "stat", "lstat", "stat", "mkdir", "rmdir",
  "remove", "rename", "list_dir", "temp_dir", "fsync", "truncate"
};

/* An open descriptor. Allocated apart from its userdata (rule 5): the
** requests on it hold it too, and may outlive the userdata and the host's
** Lua state (lasync_free runs the loop until they call back). */
typedef struct FsFd {
  int fd;                         /* -1 once closed or handed to a close */
  int busy;                       /* requests on fd not yet called back */
  int refs;                       /* the userdata's (while it lives) + busy */
  int close_late;                 /* let go while busy: the last callback closes */
  lasync_WaitList idle;           /* tasks in settle, woken when busy drops to 0 */
  char *kept;                     /* bytes an abandoned sequential read consumed */
  size_t nkept;
} FsFd;

static const char FD_MT[] = "lasync.fs.Fd";

typedef struct FsReq {
  uv_fs_t req;
  lasync_Wait wait;
  lasync_Host *H;
  FsFd *fd;                       /* a descriptor call's Fd (counted busy), or NULL */
  int op;
  int owned;                      /* FS_OPEN: an Fd holds the descriptor */
  int64_t off;                    /* FS_READ: the offset asked for (-1: in sequence) */
  char *buf;                      /* FS_READ: the bytes; FS_WRITE: a copy */
  char path[1];                   /* for errors; allocated to fit */
} FsReq;

/* ------------------------------------------------------------ the Fd */

/* Closes f's descriptor at once, on the loop thread (no request on it runs). */
static void fd_close_now(FsFd *f) {
  uv_fs_t req;
  if (f->fd < 0) return;
  uv_fs_close(NULL, &req, f->fd, NULL);   /* blocking: close(2) does not wait for I/O */
  uv_fs_req_cleanup(&req);
  f->fd = -1;
}

/* Drops one holder of f; the last frees it. */
static void fd_unref(FsFd *f) {
  if (--f->refs > 0) return;
  free(f->kept);
  free(f);
}

/* Pushes a new Fd for the open descriptor fd; raises when out of memory
** (the descriptor is then still the caller's to close). */
static FsFd *fd_push(lua_State *L, int fd) {
  FsFd **box = (FsFd **)lua_newuserdatauv(L, sizeof *box, 0);
  FsFd *f;
  *box = NULL;
  luaL_setmetatable(L, FD_MT);
  if ((f = (FsFd *)calloc(1, sizeof *f)) == NULL) luaL_error(L, "not enough memory");
  f->fd = fd;
  f->refs = 1;
  lasync_waitlist_init(&f->idle);
  *box = f;
  return f;
}

/* The open Fd at arg; raises for another value or a closed one. */
static FsFd *check_fd(lua_State *L, int arg) {
  FsFd *f = *(FsFd **)luaL_checkudata(L, arg, FD_MT);
  if (f == NULL || f->fd < 0) luaL_error(L, "attempt to use a closed file");
  return f;
}

/* --------------------------------------------------------------- results */

static const char *type_name(uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}

static void set_time(lua_State *L, const char *k, uv_timespec_t t) {
  lua_pushnumber(L, (lua_Number)t.tv_sec + (lua_Number)t.tv_nsec / 1e9);
  lua_setfield(L, -2, k);
}

static void push_stat(lua_State *L, const uv_stat_t *st) {
  lua_createtable(L, 0, 10);
  lua_pushstring(L, type_name(st->st_mode));
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, (lua_Integer)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  lua_pushinteger(L, (lua_Integer)st->st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st->st_nlink);
  lua_setfield(L, -2, "nlink");
  lua_pushinteger(L, (lua_Integer)st->st_ino);
  lua_setfield(L, -2, "ino");
  set_time(L, "mtime", st->st_mtim);
  set_time(L, "atime", st->st_atim);
  set_time(L, "ctime", st->st_ctim);
}

static int push_names(lua_State *L, uv_fs_t *req) {
  uv_dirent_t ent;
  int n = 0;
  lua_newtable(L);
  while (uv_fs_scandir_next(req, &ent) == 0) {
    lua_pushstring(L, ent.name);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

/* Pushes the outcome of the finished request (a light userdata): its
** value, or an IOError. Runs protected. */
static int fs_result(lua_State *L) {
  FsReq *r = (FsReq *)lua_touserdata(L, 1);
  ssize_t res = r->req.result;
  if (res < 0) {
    lasync__push_ioerror(L, (int)res, op_names[r->op], "path", r->path);
    return 1;
  }
  switch (r->op) {
    case FS_READ:
      if (res == 0) lua_pushnil(L);
      else lua_pushlstring(L, r->buf, (size_t)res);
      break;
    case FS_STAT: case FS_LSTAT: case FS_FSTAT: push_stat(L, &r->req.statbuf); break;
    case FS_SCANDIR: push_names(L, &r->req); break;
    case FS_MKDTEMP: lua_pushstring(L, r->req.path); break;
    case FS_OPEN:
      fd_push(L, (int)res);
      r->owned = 1;                       /* the Fd closes it from now on */
      break;
    default: lua_pushinteger(L, (lua_Integer)res); break;  /* bytes written, 0 */
  }
  return 1;
}

/* Undoes what a request did for a task that no longer waits for it. A
** read in sequence consumed its bytes: they are kept for the next read. */
static void fs_abandon(FsReq *r) {
  uv_fs_t req;
  if (r->req.result < 0) return;
  if (r->op == FS_READ && r->off < 0 && r->req.result > 0 && r->fd->fd >= 0) {
    size_t n = (size_t)r->req.result;
    char *p = (char *)realloc(r->fd->kept, r->fd->nkept + n);
    if (p == NULL) return;                /* out of memory: those bytes are lost */
    memcpy(p + r->fd->nkept, r->buf, n);
    r->fd->kept = p;
    r->fd->nkept += n;
    return;
  }
  if (r->op == FS_OPEN && !r->owned) uv_fs_close(NULL, &req, (uv_file)r->req.result, NULL);
  else if (r->op == FS_MKDTEMP) uv_fs_rmdir(NULL, &req, r->req.path, NULL);
  else return;
  uv_fs_req_cleanup(&req);
}

/* A request on f has called back: when it was the last one, the tasks in
** settle go on, and a close left to this callback happens now. */
static void fd_done(FsFd *f) {
  if (--f->busy == 0) {
    lasync_Wait *w;
    while ((w = lasync_waitlist_pop(&f->idle)) != NULL) lasync_wake(w);
    if (f->close_late) fd_close_now(f);
  }
  fd_unref(f);
}

static void on_fs(uv_fs_t *req) {
  FsReq *r = (FsReq *)req;
  int woke = 0;
  if (r->wait.task) {                     /* the state is only touched for a waiting task */
    lua_State *L = lasync_state(r->H);
    lua_pushcfunction(L, fs_result);
    lua_pushlightuserdata(L, r);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK && req->result >= 0)
      woke = lasync_wake_values(L, &r->wait, 1);
    else lasync_wake_error(L, &r->wait);  /* its error, or the result's memory error */
  }
  if (!woke) fs_abandon(r);
  if (r->fd) fd_done(r->fd);
  uv_fs_req_cleanup(req);
  free(r->buf);
  free(r);
}

static void fs_cancel(lasync_Wait *w) {
  FsReq *r = container_of(w, FsReq, wait);
  uv_cancel((uv_req_t *)&r->req);         /* fails once running: then dropped */
}

/* ------------------------------------------------------------- requests */

/* A request for op on path (kept for errors); checks the task first. */
static FsReq *fs_new(lua_State *L, int op, const char *path) {
  size_t len = strlen(path);
  FsReq *r;
  lasync_checktask(L, op_names[op]);
  if ((r = (FsReq *)calloc(1, sizeof *r + len)) == NULL) luaL_error(L, "not enough memory");
  memcpy(r->path, path, len + 1);
  r->op = op;
  r->H = lasync_host(L);
  return r;
}

/* Waits for a started request, or frees it and raises its start error. */
static int fs_wait(lua_State *L, FsReq *r, int err) {
  if (err < 0) {
    lasync__push_ioerror(L, err, op_names[r->op], "path", r->path);
    uv_fs_req_cleanup(&r->req);
    free(r->buf);
    free(r);
    return lua_error(L);
  }
  if (r->fd) {                            /* busy until the callback, not the wake */
    r->fd->busy++;
    r->fd->refs++;
  }
  r->wait.what = "fs";
  /* A close is never withdrawn: cancelled before it ran, it would leave
  ** the descriptor open for nobody. Its task stops waiting; it still runs. */
  return lasync_wait(L, &r->wait, r->op == FS_CLOSE ? NULL : fs_cancel, NULL, 0);
}

#define LOOP(r) (lasync_loop((r)->H))

static const char *check_path(lua_State *L, int arg) {
  size_t len;
  const char *p = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len > 0 && strlen(p) == len, arg, "not a file name");
  return p;
}

/* Optional path for errors of descriptor calls (the File knows it). */
static const char *opt_where(lua_State *L, int arg) { return luaL_optstring(L, arg, "?"); }

static int open_flags(lua_State *L, int arg) {
  static const char *const modes[] = {"r", "w", "a", "r+", "w+", "a+", "wx", "w+x", NULL};
  static const int flags[] = {
    O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC, O_WRONLY | O_CREAT | O_APPEND, O_RDWR,
    O_RDWR | O_CREAT | O_TRUNC, O_RDWR | O_CREAT | O_APPEND,
    O_WRONLY | O_CREAT | O_EXCL, O_RDWR | O_CREAT | O_EXCL
  };
  return flags[luaL_checkoption(L, arg, "r", modes)] | O_CLOEXEC;
}

/* open(path [, mode [, perm]]) -> fd */
static int l_open(lua_State *L) {
  const char *path = check_path(L, 1);
  int flags = open_flags(L, 2);
  int perm = (int)luaL_optinteger(L, 3, 0666);
  FsReq *r = fs_new(L, FS_OPEN, path);
  return fs_wait(L, r, uv_fs_open(LOOP(r), &r->req, path, flags, perm, on_fs));
}

/* close(fd [, path]): closes the Fd's descriptor. fs.lua settles first:
** closing under a running request is refused (the number would be free
** for the next open while the request still uses it). */
static int l_close(lua_State *L) {
  FsFd *f = check_fd(L, 1);
  FsReq *r;
  int err;
  if (f->busy > 0) return luaL_error(L, "close: a request on the file still runs");
  r = fs_new(L, FS_CLOSE, opt_where(L, 2));
  err = uv_fs_close(LOOP(r), &r->req, f->fd, on_fs);
  if (err == 0) f->fd = -1;               /* the close request has the number now */
  return fs_wait(L, r, err);
}

/* close_now(fd), also the Fd's __gc: lets go of the descriptor without
** waiting (finalizers cannot wait; a close cancelled while it waited).
** It closes now, or, while a request on it still runs, when the last one
** calls back. Idempotent; the Fd then reads as closed. */
static int l_close_now(lua_State *L) {
  FsFd **box = (FsFd **)luaL_checkudata(L, 1, FD_MT);
  FsFd *f = *box;
  if (f == NULL) return 0;
  *box = NULL;
  if (f->busy > 0) f->close_late = 1;
  else fd_close_now(f);
  fd_unref(f);
  return 0;
}

static void settle_cancel(lasync_Wait *w) { lasync_waitlist_remove(w); }

static int l_settle(lua_State *L);
static int settle_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status, (void)ctx;
  lua_settop(L, 1);
  return l_settle(L);                     /* busy again? wait again */
}

/* settle(fd) -> bytes or nil: waits until no request on the Fd runs (one
** whose task was cancelled may still), then returns the bytes abandoned
** reads in sequence consumed, for the File to read first. Returns at once
** when nothing runs, inside a task or not. */
static int l_settle(lua_State *L) {
  FsFd *f = check_fd(L, 1);
  if (f->busy > 0) {
    lasync_Task *t = lasync_checktask(L, "settle");
    lasync_Wait *w = lasync_task_wait(t);
    lasync_waitlist_push(&f->idle, w);
    w->what = "fs (a cancelled operation on the file still runs)";
    return lasync_wait(L, w, settle_cancel, settle_k, 0);
  }
  if (f->nkept == 0) return 0;
  lua_pushlstring(L, f->kept, f->nkept);
  free(f->kept);
  f->kept = NULL;
  f->nkept = 0;
  return 1;
}

/* fileno(fd) -> the descriptor number, or nil when closed (tests). */
static int l_fileno(lua_State *L) {
  FsFd *f = *(FsFd **)luaL_checkudata(L, 1, FD_MT);
  if (f == NULL || f->fd < 0) return 0;
  lua_pushinteger(L, f->fd);
  return 1;
}

static int fd_tostring(lua_State *L) {
  FsFd *f = *(FsFd **)luaL_checkudata(L, 1, FD_MT);
  if (f == NULL || f->fd < 0) lua_pushliteral(L, "fs.Fd (closed)");
  else lua_pushfstring(L, "fs.Fd (%d%s)", f->fd, f->busy ? ", busy" : "");
  return 1;
}

/* read(fd, n, offset [, path]) -> string, or nil at the end */
static int l_read(lua_State *L) {
  FsFd *fd = check_fd(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2), off = luaL_checkinteger(L, 3);
  FsReq *r;
  uv_buf_t b;
  luaL_argcheck(L, n > 0 && n <= READ_MAX, 2, "must be 1 .. 64 MiB");
  luaL_argcheck(L, off >= -1, 3, "offset must be 0 or more (-1: the current position)");
  r = fs_new(L, FS_READ, opt_where(L, 4));
  r->fd = fd;
  r->off = off;
  if ((r->buf = (char *)malloc((size_t)n)) == NULL) {
    free(r);
    return luaL_error(L, "not enough memory");
  }
  b = uv_buf_init(r->buf, (unsigned)n);
  return fs_wait(L, r, uv_fs_read(LOOP(r), &r->req, fd->fd, &b, 1, off, on_fs));
}

/* write(fd, data, offset [, path]) -> bytes written. The data is copied:
** the request may outlive the string (a cancelled write still runs). */
static int l_write(lua_State *L) {
  FsFd *fd = check_fd(L, 1);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  lua_Integer off = luaL_checkinteger(L, 3);
  FsReq *r;
  uv_buf_t b;
  luaL_argcheck(L, off >= -1, 3, "offset must be 0 or more (-1: the current position)");
  luaL_argcheck(L, len <= 0x7fffffff, 2, "too long for one write");
  r = fs_new(L, FS_WRITE, opt_where(L, 4));
  r->fd = fd;
  if ((r->buf = (char *)malloc(len ? len : 1)) == NULL) {
    free(r);
    return luaL_error(L, "not enough memory");
  }
  memcpy(r->buf, p, len);
  b = uv_buf_init(r->buf, (unsigned)len);
  return fs_wait(L, r, uv_fs_write(LOOP(r), &r->req, fd->fd, &b, 1, off, on_fs));
}

static int l_stat(lua_State *L) {
  const char *path = check_path(L, 1);
  FsReq *r = fs_new(L, FS_STAT, path);
  return fs_wait(L, r, uv_fs_stat(LOOP(r), &r->req, path, on_fs));
}

static int l_lstat(lua_State *L) {
  const char *path = check_path(L, 1);
  FsReq *r = fs_new(L, FS_LSTAT, path);
  return fs_wait(L, r, uv_fs_lstat(LOOP(r), &r->req, path, on_fs));
}

static int l_fstat(lua_State *L) {
  FsFd *fd = check_fd(L, 1);
  FsReq *r = fs_new(L, FS_FSTAT, opt_where(L, 2));
  r->fd = fd;
  return fs_wait(L, r, uv_fs_fstat(LOOP(r), &r->req, fd->fd, on_fs));
}

static int l_fsync(lua_State *L) {
  FsFd *fd = check_fd(L, 1);
  FsReq *r = fs_new(L, FS_FSYNC, opt_where(L, 2));
  r->fd = fd;
  return fs_wait(L, r, uv_fs_fsync(LOOP(r), &r->req, fd->fd, on_fs));
}

/* truncate(fd, size [, path]) */
static int l_ftruncate(lua_State *L) {
  FsFd *fd = check_fd(L, 1);
  lua_Integer size = luaL_checkinteger(L, 2);
  FsReq *r;
  luaL_argcheck(L, size >= 0, 2, "size must be 0 or more");
  r = fs_new(L, FS_FTRUNCATE, opt_where(L, 3));
  r->fd = fd;
  return fs_wait(L, r, uv_fs_ftruncate(LOOP(r), &r->req, fd->fd, size, on_fs));
}

static int l_mkdir(lua_State *L) {
  const char *path = check_path(L, 1);
  int perm = (int)luaL_optinteger(L, 2, 0777);
  FsReq *r = fs_new(L, FS_MKDIR, path);
  return fs_wait(L, r, uv_fs_mkdir(LOOP(r), &r->req, path, perm, on_fs));
}

static int l_rmdir(lua_State *L) {
  const char *path = check_path(L, 1);
  FsReq *r = fs_new(L, FS_RMDIR, path);
  return fs_wait(L, r, uv_fs_rmdir(LOOP(r), &r->req, path, on_fs));
}

static int l_unlink(lua_State *L) {
  const char *path = check_path(L, 1);
  FsReq *r = fs_new(L, FS_UNLINK, path);
  return fs_wait(L, r, uv_fs_unlink(LOOP(r), &r->req, path, on_fs));
}

static int l_rename(lua_State *L) {
  const char *from = check_path(L, 1), *to = check_path(L, 2);
  FsReq *r = fs_new(L, FS_RENAME, lua_pushfstring(L, "%s -> %s", from, to));
  return fs_wait(L, r, uv_fs_rename(LOOP(r), &r->req, from, to, on_fs));
}

/* scandir(path) -> names (unsorted; "." and ".." left out by libuv) */
static int l_scandir(lua_State *L) {
  const char *path = check_path(L, 1);
  FsReq *r = fs_new(L, FS_SCANDIR, path);
  return fs_wait(L, r, uv_fs_scandir(LOOP(r), &r->req, path, 0, on_fs));
}

/* mkdtemp(template) -> path (template ends in XXXXXX) */
static int l_mkdtemp(lua_State *L) {
  const char *tpl = check_path(L, 1);
  FsReq *r = fs_new(L, FS_MKDTEMP, tpl);
  return fs_wait(L, r, uv_fs_mkdtemp(LOOP(r), &r->req, tpl, on_fs));
}

static const luaL_Reg fs_funcs[] = {
  {"open", l_open}, {"close", l_close}, {"close_now", l_close_now}, {"read", l_read},
  {"write", l_write}, {"stat", l_stat}, {"lstat", l_lstat}, {"fstat", l_fstat},
  {"fsync", l_fsync}, {"truncate", l_ftruncate}, {"mkdir", l_mkdir}, {"rmdir", l_rmdir},
  {"unlink", l_unlink}, {"rename", l_rename}, {"scandir", l_scandir},
  {"mkdtemp", l_mkdtemp}, {"settle", l_settle}, {"fileno", l_fileno}, {NULL, NULL}
};

static const luaL_Reg fd_meta[] = {
  {"__gc", l_close_now}, {"__tostring", fd_tostring}, {NULL, NULL}
};

int lasync__luaopen_fs(lua_State *L) {
  lasync__class(L, FD_MT, fd_meta, NULL);
  lua_pop(L, 1);
  luaL_newlib(L, fs_funcs);
  lasync__ioerror_class(L);
  lua_setfield(L, -2, "IOError");
  return 1;
}
