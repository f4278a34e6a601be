/*
** tests/c/common.h: helpers the C tests share. Only the public interface
** (lasync.h, Lua, libuv) is used: the tests prove that it is enough.
*/
#ifndef LASYNC_TEST_COMMON_H
#define LASYNC_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "lasync.h"
#include "tap.h"

/* What a host reported (lasync_set_report), and what scripts noted. */
typedef struct Log {
  int n;
  char text[4096];
} Log;

static inline void log_add(Log *g, const char *s) {
  size_t used = strlen(g->text);
  g->n++;
  if (snprintf(g->text + used, sizeof g->text - used, "%s\n", s) < 0) g->text[used] = '\0';
}

static inline void log_report(lasync_Host *H, const char *msg, void *ud) {
  (void)H;
  log_add((Log *)ud, msg);
}

/* note(s): appends s to the Log in upvalue 1; it outlives the host. */
static inline int l_note(lua_State *L) {
  log_add((Log *)lua_touserdata(L, lua_upvalueindex(1)), luaL_checkstring(L, 1));
  return 0;
}

static inline void set_fn(lua_State *L, const char *name, lua_CFunction f, void *up) {
  lua_pushlightuserdata(L, up);
  lua_pushcclosure(L, f, 1);
  lua_setglobal(L, name);
}

/* A host whose reports go to *rep, with note() writing to *notes. */
static inline lasync_Host *host_new(uv_loop_t *loop, Log *rep, Log *notes) {
  lasync_Host *H = lasync_new(loop);
  if (H == NULL) return NULL;
  if (rep) {
    memset(rep, 0, sizeof *rep);
    lasync_set_report(H, log_report, rep);
  }
  if (notes) {
    memset(notes, 0, sizeof *notes);
    set_fn(lasync_state(H), "note", l_note, notes);
  }
  return H;
}

/* Runs code as a task to its end; on failure notes the message. Leaves
** the results on the stack and returns the status. */
static inline int run_code(lasync_Host *H, const char *code) {
  int st = lasync_dostring(H, code);
  if (st != LUA_OK) tap_note(__FILE__, __LINE__, lua_tostring(lasync_state(H), -1));
  return st;
}

/* Spawns code as a task and leaves its Task object on the stack. */
static inline lasync_Task *spawn_code(lua_State *L, const char *code) {
  lasync_Task *t = lasync_spawn_string(L, code, "=test", 0);
  if (t == NULL) tap_note(__FILE__, __LINE__, lua_tostring(L, -1));
  return t;
}

/* The loop, once every handle on it is closed: 0 when nothing leaked. */
static inline int loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}

#endif
