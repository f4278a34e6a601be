/*
** repl.c: the REPL (lasync_repl_start). It reads chunks from a file
** descriptor while the loop goes on, runs each complete chunk as a task,
** and asks for more input when that task ends; background tasks run all
** along. On a terminal, lines are edited with libedit's readline interface
** in callback mode, driven by a uv_poll_t: libedit reads one key per
** readable event, so the loop never blocks on the keyboard. Elsewhere (a
** pipe, a socket, a regular file) lines are read as they come, without
** editing. Compiling, printing and the helpers are the Lua half,
** lua/async/repl.lua; the line editor's hooks are in repl_edit.c.
*/
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include "repl/repl.h"

/* ------------------------------------------------------------- output */

/* Writes all of s to fd, waiting while a non-blocking descriptor is full. */
static void repl_write_fd(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w > 0) { s += w; n -= (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {fd, POLLOUT, 0};
      if (poll(&p, 1, -1) >= 0 || errno == EINTR) continue;
    }
    return;                               /* the reader went away: drop it */
  }
}

/* The REPL's own output: values to stdout and errors to stderr when it
** talks on the process's stdout (through stdio, in order with print),
** both to out_fd otherwise. */
void lasync__repl_write(lasync_Repl *R, int err, const char *s, size_t n) {
  if (n == 0) return;
  if (R->stdio) {
    FILE *f = err ? stderr : stdout;
    lasync__repl_hide(R);
    fflush(stdout);
    fwrite(s, 1, n, f);
    fflush(f);
    R->at_bol = s[n - 1] == '\n';
  }
  else repl_write_fd(R->o.out_fd, s, n);
}

static void repl_puts(lasync_Repl *R, const char *s) {
  lasync__repl_write(R, 0, s, strlen(s));
}

/* ------------------------------------------------------- Lua session */

/* Calls session:method(...) on the `nargs` values on top through the
** host's gate; leaves `nres` results. Returns the lua_pcall status (on an
** error nothing is left: it was reported). */
int lasync__repl_call(lasync_Repl *R, const char *method, int nargs, int nres) {
  lua_State *L = lasync_state(R->H);
  lua_rawgeti(L, LUA_REGISTRYINDEX, R->session);
  lua_insert(L, -(nargs + 1));            /* session below the arguments */
  lua_getfield(L, -(nargs + 1), method);
  lua_insert(L, -(nargs + 2));            /* method below the session */
  return lasync__pcall(L, nargs + 1, nres);
}

/* ---------------------------------------------------------------- input */

/* The task of a line has ended: input again (unless the REPL stopped, or
** Ctrl-C twice left the task behind). */
static void repl_line_done(lua_State *L, lasync_Task *t, void *ud) {
  LineWatch *w = (LineWatch *)ud;
  lasync_Repl *R = w->R;
  (void)L; (void)t;
  free(w);
  if (R == NULL) return;
  R->watch = NULL;
  luaL_unref(lasync_state(R->H), LUA_REGISTRYINDEX, R->taskref);
  R->taskref = LUA_NOREF;
  lasync__repl_want_input(R);
}

/* Feeds one line (without its newline) to the session: it runs as a task,
** or it is part of a chunk, or it was a command. */
void lasync__repl_feed(lasync_Repl *R, const char *line, size_t n) {
  lua_State *L = lasync_state(R->H);
  lua_pushlstring(L, line, n);
  if (lasync__repl_call(R, "feed", 1, 1) != LUA_OK) return;
  if (lua_isuserdata(L, -1)) {            /* the chunk's Task: wait for it */
    LineWatch *w = (LineWatch *)malloc(sizeof *w);
    if (w == NULL) { lua_pop(L, 1); return; }
    w->R = R;
    R->watch = w;
    R->interrupts = 0;
    R->more = 0;
    lua_pushvalue(L, -1);
    R->taskref = luaL_ref(L, LUA_REGISTRYINDEX);
    lasync_task_on_done(L, -1, repl_line_done, w);
  }
  else if (lua_isstring(L, -1)) {
    const char *s = lua_tostring(L, -1);
    R->more = strcmp(s, "more") == 0;
    if (strcmp(s, "exit") == 0) R->eof = 2;
  }
  lua_pop(L, 1);
}

/* No line may be fed now: a chunk runs, or the session is over. */
int lasync__repl_busy(lasync_Repl *R) {
  return R->taskref != LUA_NOREF || R->stopped || R->eof == 2;
}

/* Feeds the complete lines in the buffer while no chunk runs; at the end
** of input, the last line even without its newline. */
static void repl_drain(lasync_Repl *R) {
  size_t start = 0;
  while (!lasync__repl_busy(R) && start < R->len) {
    char *nl = (char *)memchr(R->buf + start, '\n', R->len - start);
    size_t end;
    if (nl == NULL && !R->eof) break;
    end = nl ? (size_t)(nl - R->buf) : R->len;
    R->prompting = 0;
    lasync__repl_feed(R, R->buf + start, end - start);
    start = nl ? end + 1 : R->len;
  }
  if (R->buf == NULL) return;
  memmove(R->buf, R->buf + start, R->len - start);
  R->len -= start;
}

/* Reads what is there: one read, as poll said it would not block (or the
** input is a regular file). */
static void repl_read(lasync_Repl *R) {
  ssize_t n;
  if (R->cap - R->len < 4096) {
    char *b = (char *)realloc(R->buf, R->cap * 2 + 4096);
    if (b == NULL) { R->eof = 1; return; }
    R->buf = b;
    R->cap = R->cap * 2 + 4096;
  }
  do n = read(R->o.in_fd, R->buf + R->len, R->cap - R->len);
  while (n < 0 && errno == EINTR);
  if (n > 0) R->len += (size_t)n;
  else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) R->eof = 1;
}

static void repl_poll_cb(uv_poll_t *h, int status, int events);
static void repl_idle_cb(uv_idle_t *h);

static void repl_input_start(lasync_Repl *R) {
  if (R->reading) return;
  R->reading = 1;
  if (R->mode == IN_FILE) uv_idle_start(&R->idle, repl_idle_cb);
  else uv_poll_start(&R->poll, UV_READABLE, repl_poll_cb);
}

static void repl_input_stop(lasync_Repl *R) {
  if (!R->reading) return;
  R->reading = 0;
  if (R->mode == IN_FILE) uv_idle_stop(&R->idle);
  else uv_poll_stop(&R->poll);
}

/* Plain input: feeds the buffered lines; then ends the session, or waits
** for the chunk that runs, or for more input (after a prompt). */
static void repl_plain_next(lasync_Repl *R) {
  repl_drain(R);
  if (R->stopped) return;
  if (R->eof == 2 || (R->eof && R->len == 0 && R->taskref == LUA_NOREF)) {
    lasync__repl_end(R);
    return;
  }
  if (lasync__repl_busy(R)) { repl_input_stop(R); return; }
  if (R->prompts && !R->prompting) {
    repl_puts(R, R->more ? ">> " : "> ");
    R->prompting = 1;
  }
  repl_input_start(R);
}

static void repl_poll_cb(uv_poll_t *h, int status, int events) {
  lasync_Repl *R = (lasync_Repl *)h->data;
  (void)events;
  if (R->mode == IN_EDIT) {
    if (status < 0) R->eof = 2;
    else lasync__repl_edit_read(R);       /* one key; may feed a line */
    if (R->stopped) return;
    if (R->eof == 2) lasync__repl_end(R);
    else if (lasync__repl_busy(R)) repl_input_stop(R);
    else lasync__repl_edit_prompt(R);     /* a new line, if one was fed */
    return;
  }
  if (status < 0) R->eof = 1;
  else repl_read(R);
  repl_plain_next(R);
}

static void repl_idle_cb(uv_idle_t *h) {
  lasync_Repl *R = (lasync_Repl *)h->data;
  repl_read(R);
  repl_plain_next(R);
}

/* Ready for the next line (at start, after a line, after its task). */
void lasync__repl_want_input(lasync_Repl *R) {
  if (R->stopped) return;
  if (R->mode != IN_EDIT) { repl_plain_next(R); return; }
  if (R->eof == 2) { lasync__repl_end(R); return; }
  if (lasync__repl_busy(R)) return;
  lasync__repl_edit_prompt(R);
  repl_input_start(R);
}

/* The user ended the session (end of input, `.exit`): stops, then tells
** the application. */
void lasync__repl_end(lasync_Repl *R) {
  lasync_ReplExitFn fn = R->o.on_exit;
  void *ud = R->o.ud;
  if (R->stopped) return;
  if (R->mode != IN_EDIT && R->prompting) repl_puts(R, "\n");  /* off the prompt's line */
  lasync_repl_stop(R);
  if (fn) fn(R, ud);
}

/* ------------------------------------------------------ Lua-facing I/O */

static lasync_Repl *repl_up(lua_State *L) {
  return *(lasync_Repl **)lua_touserdata(L, lua_upvalueindex(1));
}

static int repl_l_out(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lasync_Repl *R = repl_up(L);
  if (R) lasync__repl_write(R, 0, s, n);
  return 0;
}

static int repl_l_err(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lasync_Repl *R = repl_up(L);
  if (R) lasync__repl_write(R, 1, s, n);
  return 0;
}

static int repl_l_hide(lua_State *L) {
  lasync_Repl *R = repl_up(L);
  if (R) lasync__repl_hide(R);
  return 0;
}

static int repl_l_shown(lua_State *L) {
  lasync_Repl *R = repl_up(L);
  size_t n;
  const char *s = lua_tolstring(L, 1, &n);
  if (R && s && n > 0) R->at_bol = s[n - 1] == '\n';
  return 0;
}

/* Pushes a closure of f over the box holding R (cleared when R goes). */
static void repl_closure(lua_State *L, lua_CFunction f, const char *name) {
  lua_pushvalue(L, -2);                   /* the box */
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}

/* Makes the Lua session: async.repl.new{out, err, hide, shown, ...}. */
static int repl_session(lasync_Repl *R) {
  lua_State *L = lasync_state(R->H);
  lasync_Repl **box;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async.repl");
  if (lasync__pcall(L, 1, 1) != LUA_OK) return -1;
  lua_getfield(L, -1, "new");
  box = (lasync_Repl **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = R;
  R->box = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgeti(L, LUA_REGISTRYINDEX, R->box);
  lua_createtable(L, 0, 6);
  repl_closure(L, repl_l_out, "out");
  repl_closure(L, repl_l_err, "err");
  repl_closure(L, repl_l_hide, "hide");
  repl_closure(L, repl_l_shown, "shown");
  lua_pushstring(L, R->o.chunkname ? R->o.chunkname : "stdin");
  lua_setfield(L, -2, "chunkname");
  lua_pushboolean(L, R->stdio);
  lua_setfield(L, -2, "stdio");
  lua_pushboolean(L, R->stdio && R->mode == IN_EDIT);
  lua_setfield(L, -2, "wrap");
  lua_remove(L, -2);                      /* the box */
  if (lasync__pcall(L, 1, 1) != LUA_OK) { lua_pop(L, 1); return -1; }
  R->session = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);                          /* async.repl */
  return 0;
}

/* -------------------------------------------------------------- public */

void lasync_repl_options_init(lasync_ReplOptions *o) {
  memset(o, 0, sizeof *o);
  o->in_fd = 0;
  o->out_fd = 1;
  o->edit = -1;
  o->prompt = -1;
}

void lasync__repl_close_cb(uv_handle_t *h) {
  lasync_Repl *R = (lasync_Repl *)h->data;
  if (--R->open == 0) {
    free(R->buf);
    free(R->history);
    free(R);
  }
}

static void repl_tick_cb(uv_prepare_t *h) {
  lasync_Repl *R = (lasync_Repl *)h->data;
  if (R->mode == IN_EDIT) lasync__repl_edit_redraw(R);
}

/* The input handle, and the prepare handle that runs while R is open. */
static int repl_handles_init(lasync_Repl *R) {
  uv_loop_t *loop = lasync_loop(R->H);
  int r;
  if (R->mode == IN_FILE) r = uv_idle_init(loop, &R->idle);
  else r = uv_poll_init(loop, &R->poll, R->o.in_fd);
  if (r != 0) return r;
  R->input = R->mode == IN_FILE ? (uv_handle_t *)&R->idle : (uv_handle_t *)&R->poll;
  R->input->data = R;
  uv_prepare_init(loop, &R->tick);
  R->tick.data = R;
  uv_prepare_start(&R->tick, repl_tick_cb);
  R->open = 2;
  return 0;
}

/* Which input mode the options and the descriptor call for. */
static int repl_mode(const lasync_ReplOptions *o) {
  uv_handle_type kind = uv_guess_handle(o->in_fd);
  if (kind == UV_UNKNOWN_HANDLE) return -1;
  if (o->edit != 0 && kind == UV_TTY && lasync__repl_edit_free()) return IN_EDIT;
  if (o->edit == 1) return -1;            /* required, and not possible */
  return kind == UV_FILE ? IN_FILE : IN_STREAM;
}

lasync_Repl *lasync_repl_start(lasync_Host *H, const lasync_ReplOptions *opts) {
  lasync_ReplOptions o;
  lasync_Repl *R;
  if (opts) o = *opts; else lasync_repl_options_init(&o);
  if (lasync__host_closing(H) || (R = (lasync_Repl *)calloc(1, sizeof *R)) == NULL) return NULL;
  R->H = H;
  R->o = o;
  R->taskref = R->session = R->box = LUA_NOREF;
  R->at_bol = 1;
  R->stdio = o.out_fd == 1;
  if ((R->mode = repl_mode(&o)) < 0
      || (o.history && (R->history = strdup(o.history)) == NULL)
      || repl_handles_init(R) != 0) {
    free(R->history);
    free(R);
    return NULL;
  }
  R->o.history = NULL;                    /* the copy is R->history */
  R->prompts = o.prompt >= 0 ? o.prompt : uv_guess_handle(o.in_fd) == UV_TTY;
  if (repl_session(R) != 0 || (R->mode == IN_EDIT && lasync__repl_edit_start(R) != 0)) {
    lasync_repl_stop(R);
    return NULL;
  }
  if (o.banner && R->prompts) repl_puts(R, o.banner);
  lasync__repl_want_input(R);
  return R;
}

/* The code of a task that never waited has been interrupted already
** (lasync_interrupt, from the signal): the line's task counts it as its
** first Ctrl-C; a background task's runaway code was what Ctrl-C stopped. */
static int repl_interrupt_taken(lasync_Repl *R) {
  lasync_Task *taken = lasync_interrupt_taken(R->H);
  lua_State *L = lasync_state(R->H);
  if (taken == NULL) return 0;
  if (R->taskref != LUA_NOREF && R->interrupts == 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, R->taskref);
    if ((lasync_Task *)lua_touserdata(L, -1) == taken) {
      R->interrupts = 1;
      lasync__repl_call(R, "interrupt", 0, 0);
    }
    lua_pop(L, 1);
  }
  return 1;
}

void lasync_repl_interrupt(lasync_Repl *R) {
  lua_State *L = lasync_state(R->H);
  if (R->stopped || repl_interrupt_taken(R)) return;
  if (R->taskref == LUA_NOREF) {          /* at the prompt: drop the line */
    R->more = 0;
    if (lasync__repl_call(R, "reset", 0, 0) != LUA_OK) return;
    if (R->mode == IN_EDIT) lasync__repl_edit_clear(R);
    else {
      if (R->prompting) repl_puts(R, "\n");
      R->prompting = 0;
      lasync__repl_want_input(R);
    }
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, R->taskref);
  if (R->mode == IN_EDIT) repl_puts(R, "\n");   /* after the terminal's "^C" */
  if (R->interrupts++ == 0) {             /* first: cancel the line's task */
    lasync__repl_call(R, "interrupt", 0, 0);
    lasync_cancel(L, (lasync_Task *)lua_touserdata(L, -1), "interrupted (Ctrl-C)");
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);                          /* again: leave it running, prompt */
  repl_puts(R, "the line's task goes on in the background (see tasks())\n");
  R->watch->R = NULL;
  R->watch = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, R->taskref);
  R->taskref = LUA_NOREF;
  lasync__repl_want_input(R);
}

/* Stops reading, puts the terminal back, cancels the line that runs and
** lets go of the session; R is freed once its handles have closed. */
void lasync_repl_stop(lasync_Repl *R) {
  lua_State *L = lasync_state(R->H);
  if (R->stopped) return;
  R->stopped = 1;
  repl_input_stop(R);
  if (R->mode == IN_EDIT) lasync__repl_edit_stop(R);
  if (R->taskref != LUA_NOREF) {
    R->watch->R = NULL;
    lua_rawgeti(L, LUA_REGISTRYINDEX, R->taskref);
    lasync_cancel(L, (lasync_Task *)lua_touserdata(L, -1), "the REPL was stopped");
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, R->taskref);
    R->taskref = LUA_NOREF;
  }
  if (R->session != LUA_NOREF) lasync__repl_call(R, "close", 0, 0);
  luaL_unref(L, LUA_REGISTRYINDEX, R->session);
  R->session = LUA_NOREF;
  if (R->box != LUA_NOREF) {              /* the session's closures see NULL now */
    lua_rawgeti(L, LUA_REGISTRYINDEX, R->box);
    *(lasync_Repl **)lua_touserdata(L, -1) = NULL;
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, R->box);
  }
  uv_close(R->input, lasync__repl_close_cb);
  uv_close((uv_handle_t *)&R->tick, lasync__repl_close_cb);
}

/* ------------------------------------------------- the API reference */

/* $(BUILD)/apidoc.c, made from docs/API.md by the Makefile */
extern const char lasync__apidoc[];

/* require "async.core.apidoc": the text of docs/API.md, for help. */
int lasync__luaopen_apidoc(lua_State *L) {
  lua_pushstring(L, lasync__apidoc);
  return 1;
}
