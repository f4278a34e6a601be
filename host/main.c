/*
** main.c: the lasync command. `lasync script.lua [args]` runs the script
** as the main task; when it returns, the tasks still running are cancelled
** and awaited (their cleanup runs), as asyncio.run does.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include "lasync.h"

static const char *progname = "lasync";

static void usage(FILE *f) {
  fprintf(f,
    "usage: %s [options] [script [args]]\n"
    "  -e code   run code (as the main task)\n"
    "  -v        print the version\n"
    "  -h        print this help\n"
    "  -         run standard input\n"
    "With no script, runs standard input.\n", progname);
}

typedef struct Cli {
  lasync_Host *H;
  lasync_Task *main;
  int mainref;                    /* the main Task object, in the registry */
  uv_signal_t sigint;
  int interrupts;
} Cli;

static void on_sigint(uv_signal_t *h, int signum) {
  Cli *cli = (Cli *)h->data;
  (void)signum;
  if (++cli->interrupts > 1 || lasync_task_status(cli->main) != LASYNC_PENDING) {
    fprintf(stderr, "\n%s: interrupted\n", progname);
    _exit(130);
  }
  lasync_cancel(lasync_state(cli->H), cli->main, "interrupted (SIGINT)");
}

/* arg table as lua.c makes it: script at 0, its arguments at 1.., the
** interpreter and options at negative indices. */
static void create_arg(lua_State *L, char **argv, int argc, int script) {
  int i;
  lua_createtable(L, argc - script - 1, script + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

/* Prints the main task's error and traceback; returns the exit status. */
static int report_failure(lua_State *L, Cli *cli) {
  int status = lasync_task_status(cli->main);
  lasync_task_results(L, cli->main);
  if (status == LASYNC_CANCELLED) {
    fprintf(stderr, "%s: %s\n", progname, luaL_tolstring(L, -1, NULL));
    return 130;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, cli->mainref);
  lasync_task_traceback(L, -1);
  if (lua_isstring(L, -1)) fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
  else fprintf(stderr, "%s: %s\n", progname, luaL_tolstring(L, -3, NULL));
  return 1;
}

static int run_main(Cli *cli, int nargs) {
  lua_State *L = lasync_state(cli->H);
  int status;
  cli->main = lasync_spawn(L, nargs);
  cli->mainref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (lasync_run_until(cli->H, cli->main) != 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, cli->mainref);
    lasync_task_stack(L, -1);
    fprintf(stderr, "%s: the main task is waiting but nothing is left that "
                    "could wake it (deadlock); it waits at:\n%s\n", progname,
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 2);
    lasync_cancel(L, cli->main, "deadlock: nothing could wake the main task");
    lasync_run_until(cli->H, cli->main);
    lua_rawgeti(L, LUA_REGISTRYINDEX, cli->mainref);
    lasync_task_traceback(L, -1);
    if (lua_isstring(L, -1)) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    return 1;
  }
  status = lasync_task_status(cli->main);
  if (status == LASYNC_DONE) return 0;
  return report_failure(L, cli);
}

int main(int argc, char **argv) {
  Cli cli;
  lua_State *L;
  int i, rc, script = 0, nargs = 0;
  const char *code = NULL;
  if (argv[0] && argv[0][0]) progname = argv[0];
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0) { printf("lasync %s (%s, libuv %s)\n", LASYNC_VERSION, LUA_RELEASE, uv_version_string()); return 0; }
    else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) { usage(stdout); return 0; }
    else if (strcmp(argv[i], "-e") == 0) {
      if (++i >= argc) { fprintf(stderr, "%s: '-e' needs an argument\n", progname); usage(stderr); return 1; }
      code = argv[i];
    }
    else if (strcmp(argv[i], "-") == 0 || argv[i][0] != '-') { script = i; break; }
    else if (strcmp(argv[i], "--") == 0) { if (i + 1 < argc) script = i + 1; break; }
    else { fprintf(stderr, "%s: unknown option '%s'\n", progname, argv[i]); usage(stderr); return 1; }
  }
  memset(&cli, 0, sizeof cli);
  cli.H = lasync_new(NULL);
  if (cli.H == NULL) { fprintf(stderr, "%s: cannot create the host\n", progname); return 1; }
  L = lasync_state(cli.H);
  create_arg(L, argv, argc, script ? script : argc - 1);
  uv_signal_init(lasync_loop(cli.H), &cli.sigint);
  cli.sigint.data = &cli;
  uv_signal_start(&cli.sigint, on_sigint, SIGINT);
  uv_unref((uv_handle_t *)&cli.sigint);
  if (code) rc = luaL_loadbuffer(L, code, strlen(code), "=(command line)");
  else if (script && strcmp(argv[script], "-") != 0) rc = luaL_loadfile(L, argv[script]);
  else rc = luaL_loadfile(L, NULL);
  if (rc != LUA_OK) {
    fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    rc = 1;
  }
  else {
    if (script) for (i = script + 1; i < argc; i++, nargs++) lua_pushstring(L, argv[i]);
    rc = run_main(&cli, nargs);
  }
  lasync_free(cli.H);                    /* closes sigint last: ^C still works */
  return rc;
}
