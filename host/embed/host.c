/*
** host.c: creating a host, the `async.core` module, and the modules every
** host preloads (native and Lua, compiled into the binary): the
** composition root, the one file that names every module. Nothing calls
** into it but lasync_new's callers (a module that makes hosts, async.thread,
** gets lasync_new from lasync__host_maker); freeing is in embed.c. The
** helpers every module calls are in core/class.c.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "core/core.h"
#include "sync/sync.h"
#include "io/io.h"
#include "thread/worker.h"
#include "repl/repl.h"

/* build/modules.c, generated from lua/ by host/tools/luaembed.c */
typedef struct { const char *name; const unsigned char *code; size_t len; } EmbeddedModule;
extern const EmbeddedModule lasync__modules[];

/* ----------------------------------------------------------- async.core */

static int l_is_cancelled(lua_State *L) {
  lua_pushboolean(L, lasync__is_cancelled(L, 1));
  return 1;
}

static int l_new_cancelled(lua_State *L) {
  lasync__push_cancelled(L, luaL_optstring(L, 1, NULL));
  return 1;
}

/* async.core.stats(): counters for tests and the debugger. */
static int l_stats(lua_State *L) {
  lasync_Host *H = lasync_host(L);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, H->live);
  lua_setfield(L, -2, "live");
  lua_pushinteger(L, H->heap_len);
  lua_setfield(L, -2, "timers");
  lua_pushinteger(L, H->next_id);
  lua_setfield(L, -2, "spawned");
  lua_pushboolean(L, H->debug);
  lua_setfield(L, -2, "debug");
  return 1;
}

/* core.handles(): the type names of the libuv handles open on the host's
** loop, not counting the host's own, those closing, and those that do not
** keep the loop alive (signal watchers, an idle executor's async handle):
** what a test that leaks a socket or a timer of its own leaves behind. */
static void host_count_handle(uv_handle_t *h, void *arg) {
  lua_State *L = (lua_State *)arg;
  lasync_Host *H = lasync_host(L);
  if (uv_is_closing(h) || !uv_has_ref(h) || h == (uv_handle_t *)&H->idle ||
      h == (uv_handle_t *)&H->check || h == (uv_handle_t *)&H->uvtimer)
    return;                 /* unreferenced: host-lifetime (signals, pools) */
  lua_pushstring(L, uv_handle_type_name(uv_handle_get_type(h)));
  lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
}

static int l_handles(lua_State *L) {
  lua_newtable(L);
  uv_walk(lasync_host(L)->loop, host_count_handle, L);
  return 1;
}

static int luaopen_core(lua_State *L) {
  lua_newtable(L);
  lasync__open_task(L);
  lasync__open_timer(L);
  lasync__open_future(L);
  lasync__open_watch(L);
  lasync__open_watchdog(L);
  lua_pushcfunction(L, l_is_cancelled);
  lua_setfield(L, -2, "is_cancelled");
  lua_pushcfunction(L, l_new_cancelled);
  lua_setfield(L, -2, "new_cancelled");
  lua_pushcfunction(L, l_stats);
  lua_setfield(L, -2, "stats");
  lua_pushcfunction(L, lasync__l_shuffle);
  lua_setfield(L, -2, "shuffle");
  lua_pushcfunction(L, l_handles);
  lua_setfield(L, -2, "handles");
  luaL_getmetatable(L, LASYNC_CANCELLED_MT);
  lua_setfield(L, -2, "Cancelled");
  luaL_getmetatable(L, LASYNC_TIMEOUT_MT);
  lua_setfield(L, -2, "Timeout");
  luaL_getmetatable(L, "lasync.Task");
  lua_setfield(L, -2, "Task");
  lua_rawgeti(L, LUA_REGISTRYINDEX, lasync_host(L)->task_mt_gc_ref);
  lua_setfield(L, -2, "TaskUnseen");     /* a failed task nobody saw fail */
  luaL_getmetatable(L, "lasync.Future");
  lua_setfield(L, -2, "Future");
  return 1;
}

/* ----------------------------------------------------- embedded modules */

static int host_load_embedded(lua_State *L) {
  const EmbeddedModule *m = (const EmbeddedModule *)lua_touserdata(L, lua_upvalueindex(1));
  lua_pushfstring(L, "@%s", m->name);
  if (luaL_loadbufferx(L, (const char *)m->code, m->len, lua_tostring(L, -1), "b") != LUA_OK)
    return lua_error(L);
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return 1;
}

/* The native modules: one C file each, loaded on first require. */
static const luaL_Reg natives[] = {
  {"async.core", luaopen_core},
  {"async.queue", lasync__luaopen_queue},
  {"async.sync", lasync__luaopen_sync},
  {"async.stream", lasync__luaopen_stream},
  {"async.core.net", lasync__luaopen_net},
  {"async.dns", lasync__luaopen_dns},
  {"async.core.udp", lasync__luaopen_udp},
  {"async.core.fs", lasync__luaopen_fs},
  {"async.core.process", lasync__luaopen_process},
  {"async.core.signal", lasync__luaopen_signal},
  {"async.core.pg", lasync__luaopen_pg},
  {"async.core.executor", lasync__luaopen_executor},
  {"async.thread", lasync__luaopen_thread},
  {"async.core.apidoc", lasync__luaopen_apidoc},
  {"async.core.json", lasync__luaopen_json},
  {"async.core.console", lasync__luaopen_console},
  {"async.core.redis", lasync__luaopen_redis},
  {"async.core.http", lasync__luaopen_http},
  {"async.core.http_parser", lasync__luaopen_http_parser},
  {"async.core.http_loop", lasync__luaopen_http_loop},
  {"async.core.ws", lasync__luaopen_ws},
  {"async.core.tls", lasync__luaopen_tls},
  {NULL, NULL}
};

/* Which group (LASYNC_MOD_*) a module belongs to: 0 for the modules every
** host has (an allow-list: a module added later is outside a sandbox until
** it is put here), LASYNC_MOD_THREADS, or LASYNC_MOD_SYSTEM for the rest. */
static unsigned host_group(const char *name) {
  static const char *const always[] = {"async", "async.core", "async.sync", "async.queue",
    "async.json", "async.core.json", "async.context", "async.debug", "async.internal.check",
    "async.class", NULL};
  static const char *const threads[] = {"async.executor", "async.core.executor",
    "async.thread", NULL};
  int i;
  for (i = 0; always[i]; i++) if (strcmp(name, always[i]) == 0) return 0;
  for (i = 0; threads[i]; i++) if (strcmp(name, threads[i]) == 0) return LASYNC_MOD_THREADS;
  return LASYNC_MOD_SYSTEM;
}

#define HOST_WANTS(H, name) ((host_group(name) & ~(H)->modules) == 0)

/* Registers the native and embedded Lua modules the host's options allow
** in package.preload; none is loaded until required. */
static void host_preload(lua_State *L, lasync_Host *H) {
  const EmbeddedModule *m;
  const luaL_Reg *r;
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  for (r = natives; r->name; r++) {
    if (!HOST_WANTS(H, r->name)) continue;
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  for (m = lasync__modules; m->name; m++) {
    char name[128];
    size_t n = strlen(m->name);
    /* "async/init.lua" -> "async", "async/x.lua" -> "async.x" */
    if (n >= sizeof name) continue;
    memcpy(name, m->name, n + 1);
    name[n - 4] = '\0';
    if (n > 9 && strcmp(name + n - 9, "/init") == 0) name[n - 9] = '\0';
    for (char *p = name; *p; p++) if (*p == '/') *p = '.';
    if (!HOST_WANTS(H, name)) continue;
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, host_load_embedded, 1);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
}

/* --------------------------------------------------------------- host */

/* load(chunk, name, mode, env) with mode "t" whatever is asked: a sandbox
** takes no bytecode (malformed bytecode can crash the VM). */
static int host_load_text(lua_State *L) {
  lua_settop(L, 4);
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, 4, LUA_MULTRET);
  return lua_gettop(L);
}

/* Without the io library, nothing else reads files either: no dofile or
** loadfile, require finds preloaded modules only (no Lua files, no C
** libraries), and load takes text only. */
static void host_close_files(lua_State *L) {
  lua_pushnil(L);
  lua_setglobal(L, "dofile");
  lua_pushnil(L);
  lua_setglobal(L, "loadfile");
  lua_getglobal(L, "load");
  lua_pushcclosure(L, host_load_text, 1);
  lua_setglobal(L, "load");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_createtable(L, 1, 0);
  lua_rawgeti(L, -2, 1);                 /* the preload searcher */
  lua_rawseti(L, -2, 1);
  lua_setfield(L, -3, "searchers");
  lua_pop(L, 1);
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pushnil(L);
  lua_setfield(L, -2, "loadlib");
  lua_pushnil(L);
  lua_setfield(L, -2, "searchpath");
  lua_pop(L, 1);
}

/* The standard libraries the options ask for (and those lasync needs). */
static void host_openlibs(lua_State *L, unsigned libs) {
  static const struct { const char *name; lua_CFunction open; unsigned bit; } all[] = {
    {LUA_GNAME, luaopen_base, 0}, {LUA_LOADLIBNAME, luaopen_package, 0},
    {LUA_COLIBNAME, luaopen_coroutine, 0}, {LUA_TABLIBNAME, luaopen_table, 0},
    {LUA_STRLIBNAME, luaopen_string, 0}, {LUA_IOLIBNAME, luaopen_io, LASYNC_LIB_IO},
    {LUA_OSLIBNAME, luaopen_os, LASYNC_LIB_OS}, {LUA_MATHLIBNAME, luaopen_math, 0},
    {LUA_UTF8LIBNAME, luaopen_utf8, LASYNC_LIB_UTF8}, {LUA_DBLIBNAME, luaopen_debug, LASYNC_LIB_DEBUG},
    {NULL, NULL, 0}
  };
  int i;
  for (i = 0; all[i].name; i++) {
    if (all[i].bit && !(libs & all[i].bit)) continue;
    luaL_requiref(L, all[i].name, all[i].open, 1);
    lua_pop(L, 1);
  }
  if (!(libs & LASYNC_LIB_IO)) host_close_files(L);
}

static int host_init(lua_State *L) {
  lasync_Host *H = (lasync_Host *)lua_touserdata(L, 1);
  lua_pushlightuserdata(L, H);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &lasync__hostkey);
  host_openlibs(L, H->libs);
  lua_newtable(L);
  H->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);                       /* failed tasks nobody awaited */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &H->unobserved);
  lasync__error_class(L, LASYNC_CANCELLED_MT);
  lasync__error_class(L, LASYNC_TIMEOUT_MT);
  lua_pop(L, 2);
  lasync__open_coro(L);
  host_preload(L, H);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async");
  lua_call(L, 1, 1);
  lua_setglobal(L, "async");
  return 0;
}

/* luaL_newstate's panic and warning behaviour, for a state made with our
** own allocator: warnings are off until a script says warn("@on"). */
static int host_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "lasync: PANIC: unprotected error in call to Lua API (%s)\n",
          msg ? msg : "error object is not a string");
  return 0;                              /* Lua aborts */
}

static void host_warn(void *ud, const char *msg, int tocont) {
  lasync_Host *H = (lasync_Host *)ud;
  if (!H->warn_cont && *msg == '@') {    /* a control message */
    if (strcmp(msg, "@on") == 0) H->warn_on = 1;
    else if (strcmp(msg, "@off") == 0) H->warn_on = 0;
    return;
  }
  if (H->warn_on) {
    if (!H->warn_cont) fputs("Lua warning: ", stderr);
    fputs(msg, stderr);
    if (!tocont) fputc('\n', stderr);
  }
  H->warn_cont = (unsigned char)(tocont != 0);
}

void lasync_options_init(lasync_Options *o) {
  memset(o, 0, sizeof *o);
  o->libs = LASYNC_LIB_ALL;
  o->modules = LASYNC_MOD_ALL;
}

void lasync_options_sandbox(lasync_Options *o) {
  lasync_options_init(o);
  o->libs = LASYNC_LIB_UTF8;
  o->modules = 0;
}

lasync_Host *lasync_new(uv_loop_t *loop) {
  return lasync_new_with(loop, NULL);
}

lasync_Host *lasync_new_with(uv_loop_t *loop, const lasync_Options *o) {
  lasync_Host *H = (lasync_Host *)calloc(1, sizeof *H);
  lasync_Options dflt;
  lua_State *L;
  if (H == NULL) return NULL;
  if (o == NULL) {
    lasync_options_init(&dflt);
    o = &dflt;
  }
  H->libs = o->libs;
  H->modules = o->modules;
  if (loop == NULL) {
    if (uv_loop_init(&H->own_loop) != 0) { free(H); return NULL; }
    loop = &H->own_loop;
    H->own = 1;
  }
  H->loop = loop;
  H->make = lasync_new;
  if (o->alloc) H->L = L = lua_newstate(o->alloc, o->alloc_ud);
  else H->L = L = lua_newstate(lasync__alloc_init(&H->alloc), &H->alloc);
  if (L == NULL) {
    lasync__alloc_close(&H->alloc);
    if (H->own) uv_loop_close(loop);
    free(H);
    return NULL;
  }
  lua_atpanic(L, host_panic);
  lua_setwarnf(L, host_warn, H);
  *(lasync_Task **)lua_getextraspace(L) = NULL;
  lasync__sched_init(H);
  lasync__timer_init(H);
  lua_pushcfunction(L, host_init);
  lua_pushlightuserdata(L, H);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lasync__report(H, lua_tostring(L, -1));
    lasync_free(H);
    return NULL;
  }
  return H;
}
