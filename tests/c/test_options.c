/*
** tests/c/test_options.c: lasync_new_with's options: a sandbox (no io, os
** or debug library, no file loading, no bytecode, no lasync module for
** files, network, processes, signals, stdio or threads) that still runs
** tasks; a choice of libraries and module groups; a caller's allocator
** that sees every block of the host's state come back.
*/
#include <stdlib.h>
#include "common.h"

/* Runs code as a task to completion; returns its first result as a string
** (static buffer) or the error message. */
static const char *run(lasync_Host *H, const char *code) {
  static char out[1024];
  lua_State *L = lasync_state(H);
  int rc = lasync_dostring(H, code);
  snprintf(out, sizeof out, "%s%s", rc == LUA_OK ? "" : "error: ",
           lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
  lua_settop(L, 0);
  return out;
}

static void sandbox_has_no_os_io_files_or_network(void) {
  lasync_Options o;
  lasync_Host *H;
  lasync_options_sandbox(&o);
  H = lasync_new_with(NULL, &o);
  CHECK(H != NULL);
  if (H == NULL) return;
  CHECK_HAS(run(H, "return tostring(io) .. tostring(os) .. tostring(debug) .. "
                   "tostring(dofile) .. tostring(loadfile) .. tostring(package.loadlib)"),
            "nilnilnilnilnilnil");
  CHECK_HAS(run(H, "return require 'async.net'"), "module 'async.net' not found");
  CHECK_HAS(run(H, "return async.fs"), "module 'async.fs' not found");
  CHECK_HAS(run(H, "return async.process"), "module 'async.process' not found");
  CHECK_HAS(run(H, "return async.to_thread"), "module 'async.executor' not found");
  CHECK_HAS(run(H, "return require 'async.thread'"), "module 'async.thread' not found");
  CHECK_HAS(run(H, "return async.stdout"), "module 'async.stdio' not found");
  CHECK_HAS(run(H, "return require 'os'"), "module 'os' not found");
  CHECK_HAS(run(H, "return select(2, load(string.dump(function() end)))"),
            "attempt to load a binary chunk");
  CHECK_HAS(run(H, "return load('return 6 * 7')()"), "42");
  lasync_free(H);
}

static void sandbox_still_runs_tasks(void) {
  lasync_Options o;
  lasync_Host *H;
  lasync_options_sandbox(&o);
  H = lasync_new_with(NULL, &o);
  CHECK(H != NULL);
  if (H == NULL) return;
  CHECK_HAS(run(H, "local q = async.queue() local lock = async.lock()\n"
                   "local t = async.spawn(function() async.sleep(0.001) q:put(math.floor(2.5)) end)\n"
                   "local r = async.gather(function() return q:get() end, t)\n"
                   "lock:acquire() lock:release()\n"
                   "return async.json.encode({r[1], utf8.char(233)})"), "[2,\"\xc3\xa9\"]");
  lasync_free(H);
}

static void choose_libraries_and_modules(void) {
  lasync_Options o;
  lasync_Host *H;
  lasync_options_init(&o);
  o.libs = LASYNC_LIB_IO;                /* io, not os */
  o.modules = LASYNC_MOD_THREADS;        /* executors, no network */
  H = lasync_new_with(NULL, &o);
  CHECK(H != NULL);
  if (H == NULL) return;
  CHECK_HAS(run(H, "return type(io.write) .. type(os) .. type(loadfile)"), "functionnilfunction");
  CHECK_HAS(run(H, "return async.to_thread(function(a) return a * 2 end, 21)"), "42");
  CHECK_HAS(run(H, "return async.net"), "module 'async.net' not found");
  lasync_free(H);
}

/* A caller's allocator: counts the bytes out. */
typedef struct Counter { long blocks; size_t bytes; int calls; } Counter;

static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  Counter *c = (Counter *)ud;
  c->calls++;
  if (ptr) { c->bytes -= osize; c->blocks--; }
  if (nsize == 0) { free(ptr); return NULL; }
  ptr = realloc(ptr, nsize);
  if (ptr) { c->bytes += nsize; c->blocks++; }
  else if (osize) { c->bytes += osize; c->blocks++; }   /* the old block stays */
  return ptr;
}

static void caller_supplied_allocator(void) {
  Counter c = {0, 0, 0};
  lasync_Options o;
  lasync_Host *H;
  lasync_options_init(&o);
  o.alloc = counting_alloc;
  o.alloc_ud = &c;
  H = lasync_new_with(NULL, &o);
  CHECK(H != NULL);
  if (H == NULL) return;
  CHECK(c.blocks > 0);
  CHECK_HAS(run(H, "local t = {} for i = 1, 1000 do t[i] = async.spawn(async.sleep, 0) end "
                   "async.gather(t) return 'ok'"), "ok");
  CHECK(c.calls > 1000);
  lasync_free(H);
  CHECK(c.blocks == 0);                  /* every block came back */
  CHECK(c.bytes == 0);
}

static void null_options_are_the_defaults(void) {
  lasync_Host *H = lasync_new_with(NULL, NULL);
  CHECK_HAS(run(H, "return type(io) .. type(os) .. type(async.net)"), "tabletabletable");
  lasync_free(H);
}

int main(void) {
  TEST(sandbox_has_no_os_io_files_or_network);
  TEST(sandbox_still_runs_tasks);
  TEST(choose_libraries_and_modules);
  TEST(caller_supplied_allocator);
  TEST(null_options_are_the_defaults);
  return tap_end();
}
