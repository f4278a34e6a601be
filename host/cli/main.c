/*
** main.c: the lasync command. `lasync script.lua [args]` runs the script
** as the main task; when it returns, the tasks still running are cancelled
** and awaited (their cleanup runs), as asyncio.run does. `lasync` on a
** terminal, and `lasync -i [script]`, open the REPL (host/repl/repl.c) on the
** loop, the script's tasks still running. `lasync test` runs test suites
** (lua/async/testing.lua). SIGQUIT prints the task tree.
**
** Ending never hangs: once the main task (or the REPL) has ended, SIGINT,
** SIGTERM and SIGHUP end the process at once, and a thread ("the reaper")
** ends it when the shutdown outlives its deadline, naming what still runs.
** SIGINT reaches code that never waits through lasync_interrupt, called
** from the signal handler itself (the loop cannot run to see it).
*/
#include <errno.h>
#include <math.h>
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
    "       %s test [paths] [LuaUnit options]\n"
    "  -e code        run code (as the main task)\n"
    "  -i             enter the REPL after the script or -e (with neither,\n"
    "                 a REPL reading standard input, even when not a terminal)\n"
    "  -v             print the version\n"
    "  -h             print this help\n"
    "  --debug        debug mode (also LASYNC_DEBUG=1): loop watchdog on,\n"
    "                 failures nobody awaited reported at once\n"
    "  --dump-on SIG  print the task tree on signal SIG (SIGQUIT always does)\n"
    "  --shutdown-timeout SEC  end the process when the tasks and threads\n"
    "                 still running at the end take longer than SEC seconds\n"
    "                 to finish (default 10; also LASYNC_SHUTDOWN_TIMEOUT)\n"
    "  -              run standard input\n"
    "With no script: the REPL when standard input is a terminal, else runs\n"
    "standard input. REPL history: ~/.lasync_history (LASYNC_HISTORY moves it;\n"
    "empty: none).\n"
    "`test` runs every test_*.lua under the paths (default tests/ or .).\n",
    progname, progname);
}

typedef struct Cli {
  lasync_Host *H;
  lasync_Task *main;
  int mainref;                    /* the main Task object, in the registry */
  uv_signal_t sigint, sigquit, sigdump, sigterm, sighup;
  int term_signal;                /* ended the REPL, or 0 */
  int interrupts;
  lasync_Repl *repl;              /* while the REPL runs */
  int repl_done;
  int repl_ran;                   /* say how many tasks the REPL left */
  double shutdown_timeout;        /* seconds; over 1e7 (inf): none */
  uv_async_t overdue;             /* the reaper tells the loop: report, exit */
  int status;                     /* the exit status, as it stands */
  uv_thread_t reaper;
  uv_mutex_t mu;                  /* with cond: the reaper's sleep */
  uv_cond_t cond;
  int reaped;                     /* the shutdown has finished */
  int late;                       /* the deadline passed before */
  int stage;                      /* what the shutdown waits for: STAGE_* */
} Cli;

typedef struct Options {
  const char *code;               /* -e */
  const char *module, *func;      /* run require(module)[func](args) instead */
  int script;                     /* argv index of the script, or 0 */
  int first_arg;                  /* argv index of the first argument */
  int dump_signal;
  int debug;
  int status_result;              /* exit status is the main task's result */
  int interactive;                /* -i, or no script on a terminal: the REPL */
  const char *shutdown_timeout;   /* --shutdown-timeout, or NULL */
} Options;

/* ---------------------------------------------------------- signals */

/* What the signal handlers need: they may run on any thread, at any time. */
static Cli *the_cli;
static struct sigaction uv_handler[32];  /* libuv's handlers, ours chain to them */
static volatile sig_atomic_t unseen[32]; /* signals the loop has not seen yet */
static volatile sig_atomic_t ending;     /* the shutdown has begun */

/* Async-signal-safe: writes "\n<progname>: <msg>\n" and exits. */
static void die(const char *msg, int status) {
  ssize_t r = write(2, "\n", 1);
  r += write(2, progname, strlen(progname));
  r += write(2, ": ", 2);
  r += write(2, msg, strlen(msg));
  r += write(2, "\n", 1);
  (void)r;
  _exit(status);
}

static void die_of(int signum) {
  if (signum == SIGINT) die("interrupted", 130);
  die(signum == SIGTERM ? "ended by SIGTERM" : "ended by SIGHUP", 128 + signum);
}

/* The process's handler of SIGINT (and, at the REPL, of SIGTERM and
** SIGHUP), in front of libuv's. While the shutdown runs, or when the loop
** has not yet seen the last such signal (the code runs and never waits),
** it ends the process. Otherwise it interrupts the Lua code that runs now
** (lasync_interrupt) and hands the signal to libuv's handler: the CLI's
** watcher (on_sigint, on_repl_term) then runs on the loop. */
static void chained_handler(int signum, siginfo_t *si, void *uc) {
  int saved = errno;
  struct sigaction *uv = &uv_handler[signum];
  if (ending || unseen[signum]++ > 0) die_of(signum);
  lasync_interrupt(the_cli->H, signum == SIGTERM ? "terminated (SIGTERM)"
                   : signum == SIGHUP ? "hung up (SIGHUP)"
                   : the_cli->repl ? "interrupted (Ctrl-C)" : "interrupted (SIGINT)");
  if (uv->sa_flags & SA_SIGINFO) uv->sa_sigaction(signum, si, uc);
  else if (uv->sa_handler != SIG_DFL && uv->sa_handler != SIG_IGN) uv->sa_handler(signum);
  errno = saved;
}

/* Once the shutdown has begun: SIGTERM and SIGHUP end it. */
static void term_handler(int signum) {
  die(signum == SIGTERM ? "ended by SIGTERM while shutting down"
                        : "ended by SIGHUP while shutting down", 128 + signum);
}

/* Puts chained_handler in front of libuv's handler of signum, which the
** CLI's own watcher keeps installed (libuv installs it again only when no
** other watcher of the signal is active, and the CLI's stays active). */
static void chain_signal(Cli *cli, int signum) {
  struct sigaction sa;
  the_cli = cli;
  sigaction(signum, NULL, &uv_handler[signum]);
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = chained_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigfillset(&sa.sa_mask);
  sigaction(signum, &sa, NULL);
}

/* On the loop, after chained_handler. A first SIGINT cancels the main task,
** unless the handler's interrupt reached it already (it ran code that did
** not wait); the REPL interrupts its line. A second one exits 130. */
static void on_sigint(uv_signal_t *h, int signum) {
  Cli *cli = (Cli *)h->data;
  lasync_Task *taken;
  int pending;
  (void)signum;
  unseen[SIGINT] = 0;
  if (cli->repl) {                       /* the REPL's line, or its prompt */
    lasync_repl_interrupt(cli->repl);
    return;
  }
  taken = lasync_interrupt_taken(cli->H);
  pending = cli->main && lasync_task_status(cli->main) == LASYNC_PENDING;
  if (++cli->interrupts > 1 || (!pending && taken == NULL)) {
    fprintf(stderr, "\n%s: interrupted\n", progname);
    _exit(130);
  }
  if (pending && taken != cli->main)
    lasync_cancel(lasync_state(cli->H), cli->main, "interrupted (SIGINT)");
}

/* Prints the task tree to stderr; the program goes on. */
static void on_dump(uv_signal_t *h, int signum) {
  Cli *cli = (Cli *)h->data;
  lua_State *L = lasync_state(cli->H);
  (void)signum;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async.debug");
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lua_getfield(L, -1, "dump");
    lua_remove(L, -2);
    if (lua_pcall(L, 0, 0, 0) == LUA_OK) return;
  }
  fprintf(stderr, "%s: dump failed: %s\n", progname, lua_tostring(L, -1));
  lua_pop(L, 1);
}

static void watch_signal(Cli *cli, uv_signal_t *h, uv_signal_cb cb, int signum) {
  uv_signal_init(lasync_loop(cli->H), h);
  h->data = cli;
  uv_signal_start(h, cb, signum);
  uv_unref((uv_handle_t *)h);
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

static int report_deadlock(lua_State *L, Cli *cli) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, cli->mainref);
  lasync_task_stack(L, -1);
  fprintf(stderr, "%s: the main task is waiting but nothing is left that "
                  "could wake it (deadlock); it waits at:\n%s\n", progname,
          lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
  lua_pop(L, 2);
  lasync_cancel(L, cli->main, "deadlock: nothing could wake the main task");
  lasync_run_until(cli->H, cli->main);
  return 1;
}

/* Runs the function below nargs arguments as the main task; returns the
** exit status. */
static int run_main(Cli *cli, int nargs, int status_result) {
  lua_State *L = lasync_state(cli->H);
  cli->main = lasync_spawn(L, nargs);
  cli->mainref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (lasync_run_until(cli->H, cli->main) != 0) return report_deadlock(L, cli);
  if (lasync_task_status(cli->main) != LASYNC_DONE) return report_failure(L, cli);
  if (status_result && lasync_task_results(L, cli->main) > 0 && lua_isinteger(L, -1))
    return (int)lua_tointeger(L, -1);
  return 0;
}

/* Pushes the main function: the chunk to run, or require(module)[func]. */
static int load_main(lua_State *L, const Options *o, char **argv) {
  if (o->module) {
    lua_getglobal(L, "require");
    lua_pushstring(L, o->module);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) return LUA_ERRRUN;
    lua_getfield(L, -1, o->func);
    lua_remove(L, -2);
    return LUA_OK;
  }
  if (o->code) return luaL_loadbuffer(L, o->code, strlen(o->code), "=(command line)");
  if (o->script && strcmp(argv[o->script], "-") != 0) return luaL_loadfile(L, argv[o->script]);
  return luaL_loadfile(L, NULL);
}

/* ----------------------------------------------------------------- REPL */

static void on_repl_exit(lasync_Repl *R, void *ud) {
  Cli *cli = (Cli *)ud;
  (void)R;
  cli->repl = NULL;
  cli->repl_done = 1;
}

/* The history file: $LASYNC_HISTORY (empty: none), else ~/.lasync_history. */
static const char *history_path(char *buf, size_t n) {
  const char *env = getenv("LASYNC_HISTORY"), *home = getenv("HOME");
  if (env) return env[0] ? env : NULL;
  if (home == NULL || home[0] == '\0') return NULL;
  snprintf(buf, n, "%s/.lasync_history", home);
  return buf;
}

/* SIGTERM or SIGHUP while the REPL runs: put the terminal back (libedit
** keeps it raw at the prompt) and end as the REPL's Ctrl-D would. */
static void on_repl_term(uv_signal_t *h, int signum) {
  Cli *cli = (Cli *)h->data;
  unseen[signum] = 0;
  lasync_interrupt_taken(cli->H);        /* spent on the line's code, if it ran */
  if (cli->repl) lasync_repl_stop(cli->repl);
  cli->repl = NULL;
  cli->repl_done = 1;
  cli->term_signal = signum;
}

/* Runs the REPL on standard input until the user ends it; finish() then
** cancels the tasks still running (their cleanup runs) and says how many. */
static int run_repl(Cli *cli) {
  lasync_ReplOptions o;
  char hist[4096], banner[200];
  watch_signal(cli, &cli->sigterm, on_repl_term, SIGTERM);
  watch_signal(cli, &cli->sighup, on_repl_term, SIGHUP);
  chain_signal(cli, SIGTERM);
  chain_signal(cli, SIGHUP);
  lasync_repl_options_init(&o);
  o.history = history_path(hist, sizeof hist);
  snprintf(banner, sizeof banner, "lasync %s (%s): the loop runs while you type. "
           "help, tasks(); Ctrl-D exits\n", LASYNC_VERSION, LUA_RELEASE);
  o.banner = banner;
  o.on_exit = on_repl_exit;
  o.ud = cli;
  if ((cli->repl = lasync_repl_start(cli->H, &o)) == NULL) {
    fprintf(stderr, "%s: cannot read standard input for the REPL\n", progname);
    return 1;
  }
  while (!cli->repl_done) uv_run(lasync_loop(cli->H), UV_RUN_ONCE);
  cli->repl_ran = 1;
  return cli->term_signal ? 128 + cli->term_signal : 0;
}

/* ------------------------------------------------------------ shutdown */

enum { STAGE_TASKS = 1, STAGE_CLOSE };   /* cli->stage */

static int overdue_status(Cli *cli) { return cli->status ? cli->status : 1; }

/* On the loop, when the reaper says the deadline has passed: names the
** tasks still running, and exits. (None left: its interrupt ended the
** last one, and finish() says so.) */
static void on_overdue(uv_async_t *h) {
  Cli *cli = (Cli *)h->data;
  lua_State *L = lasync_state(cli->H);
  if (lasync_task_count(cli->H) == 0) return;
  fflush(stdout);
  fprintf(stderr, "%s: the shutdown did not finish within %g s (--shutdown-timeout); "
                  "still running:\n", progname, cli->shutdown_timeout);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "async.debug");
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
    lua_getfield(L, -1, "dump");
    lua_pcall(L, 0, 0, 0);
  }
  fflush(NULL);
  _exit(overdue_status(cli));
}

/* The loop cannot report: it runs code that does not stop, or the host
** waits for threads that do not end. */
static void reaper_exit(Cli *cli, int stage) {
  char msg[300];
  fflush(stdout);
  snprintf(msg, sizeof msg, "the shutdown did not finish within %g s (--shutdown-timeout): %s",
           cli->shutdown_timeout, stage == STAGE_TASKS
           ? "a task runs code that does not stop"
           : "a thread (async.thread.spawn, or an executor's job) does not end");
  die(msg, overdue_status(cli));
}

/* The reaper: at the deadline it interrupts the code that runs and asks
** the loop to report (on_overdue); if the loop cannot (a second later, or
** at once while the host closes), it ends the process itself. */
static void reaper_main(void *arg) {
  Cli *cli = (Cli *)arg;
  uint64_t now = uv_hrtime(), end = now + (uint64_t)(cli->shutdown_timeout * 1e9);
  uv_mutex_lock(&cli->mu);
  while (!cli->reaped) {
    if ((now = uv_hrtime()) >= end) {
      int stage = cli->stage;
      if (cli->late || stage != STAGE_TASKS) reaper_exit(cli, stage);
      lasync_interrupt(cli->H, "the shutdown deadline passed");
      uv_async_send(&cli->overdue);
      cli->late = 1;
      end = now + 1000000000u;
      continue;
    }
    uv_cond_timedwait(&cli->cond, &cli->mu, end - now);
  }
  uv_mutex_unlock(&cli->mu);
}

static void set_stage(Cli *cli, int stage) {
  uv_mutex_lock(&cli->mu);
  cli->stage = stage;
  uv_mutex_unlock(&cli->mu);
}

/* Starts the reaper (unless there is no deadline); returns whether it runs. */
static int reaper_start(Cli *cli) {
  uv_mutex_init(&cli->mu);
  uv_cond_init(&cli->cond);
  cli->stage = STAGE_TASKS;
  if (cli->shutdown_timeout > 1e7                   /* months: none (and no overflow) */
      || uv_async_init(lasync_loop(cli->H), &cli->overdue, on_overdue) != 0)
    return 0;
  cli->overdue.data = cli;
  uv_unref((uv_handle_t *)&cli->overdue);
  return uv_thread_create(&cli->reaper, reaper_main, cli) == 0;
}

static void reaper_stop(Cli *cli, int running) {
  if (running) {
    uv_mutex_lock(&cli->mu);
    cli->reaped = 1;
    uv_cond_signal(&cli->cond);
    uv_mutex_unlock(&cli->mu);
    uv_thread_join(&cli->reaper);
  }
  uv_cond_destroy(&cli->cond);
  uv_mutex_destroy(&cli->mu);
}

/* Ends the run with status rc: cancels the tasks left (their cleanup
** runs), frees the host, within the deadline; signals end it at once. */
static int finish(Cli *cli, int rc) {
  struct sigaction sa;
  int n = lasync_task_count(cli->H), reaper;
  cli->status = rc;
  ending = 1;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = term_handler;
  sigfillset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  reaper = reaper_start(cli);
  while (lasync_task_count(cli->H) > 0) {
    lasync_cancel_all(cli->H, cli->repl_ran ? "the REPL ended" : "the program is ending");
    lasync_run_until(cli->H, NULL);
  }
  if (cli->repl_ran && n > 0)
    fprintf(stderr, "%s: cancelled %d background task%s\n", progname, n, n == 1 ? "" : "s");
  set_stage(cli, STAGE_CLOSE);
  lasync_free(cli->H);                   /* joins threads: the reaper still watches */
  reaper_stop(cli, reaper);
  if (cli->late) {                       /* the interrupt ended it before on_overdue ran */
    fprintf(stderr, "%s: the shutdown did not finish within %g s (--shutdown-timeout): "
                    "code that did not wait was interrupted\n", progname, cli->shutdown_timeout);
    rc = overdue_status(cli);
  }
  return rc;
}

/* Seconds >= 0 ("inf": no deadline) from the option or the environment
** variable; -1 when s is not such a number. */
static double parse_seconds(const char *s) {
  char *end;
  double d = strtod(s, &end);
  if (end == s || *end != '\0' || isnan(d) || d < 0) return -1;
  return d;
}

static int parse_signal(const char *name) {
  static const struct { const char *name; int num; } sigs[] = {
    {"SIGQUIT", SIGQUIT}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
    {"SIGHUP", SIGHUP}, {"SIGTERM", SIGTERM}, {NULL, 0}
  };
  int i;
  for (i = 0; sigs[i].name; i++)
    if (strcmp(name, sigs[i].name) == 0 || strcmp(name, sigs[i].name + 3) == 0)
      return sigs[i].num;
  return 0;
}

/* Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, Options *o) {
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-v") == 0) {
      printf("lasync %s (%s, libuv %s)\n", LASYNC_VERSION, LUA_RELEASE, uv_version_string());
      return 0;
    }
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) { usage(stdout); return 0; }
    if (strcmp(a, "--debug") == 0) { o->debug = 1; continue; }
    if (strcmp(a, "-i") == 0) { o->interactive = 1; continue; }
    if (strcmp(a, "--shutdown-timeout") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: '%s' needs an argument\n", progname, a);
        return 1;
      }
      o->shutdown_timeout = argv[++i];
      continue;
    }
    if (strcmp(a, "-e") == 0 || strcmp(a, "--dump-on") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "%s: '%s' needs an argument\n", progname, a);
        return 1;
      }
      if (a[1] == 'e') o->code = argv[++i];
      else if ((o->dump_signal = parse_signal(argv[++i])) == 0) {
        fprintf(stderr, "%s: unknown signal '%s' (SIGQUIT, SIGUSR1, SIGUSR2, "
                        "SIGHUP, SIGTERM)\n", progname, argv[i]);
        return 1;
      }
      continue;
    }
    if (i == 1 && (strcmp(a, "test") == 0 || strcmp(a, "--test-file") == 0)) {
      o->module = "async.testing";
      o->func = a[0] == 't' ? "command" : "run_file";
      o->status_result = a[0] == 't';
      o->script = i;
      o->first_arg = i + 1;
      return -1;
    }
    if (strcmp(a, "--") == 0) { i++; break; }
    if (strcmp(a, "-") == 0 || a[0] != '-') break;
    fprintf(stderr, "%s: unknown option '%s'\n", progname, a);
    usage(stderr);
    return 1;
  }
  if (i < argc && !o->code) { o->script = i; o->first_arg = i + 1; }
  else o->first_arg = i;                 /* -e code: the rest is its `...` */
  return -1;
}

int main(int argc, char **argv) {
  Cli cli;
  Options o;
  lua_State *L;
  int i, rc, nargs = 0;
  if (argv[0] && argv[0][0]) progname = argv[0];
  memset(&o, 0, sizeof o);
  if ((rc = parse_args(argc, argv, &o)) >= 0) return rc;
  if (getenv("LASYNC_DEBUG") && strcmp(getenv("LASYNC_DEBUG"), "0") != 0) o.debug = 1;
  memset(&cli, 0, sizeof cli);
  cli.shutdown_timeout = 10;
  if (o.shutdown_timeout == NULL) o.shutdown_timeout = getenv("LASYNC_SHUTDOWN_TIMEOUT");
  if (o.shutdown_timeout && (cli.shutdown_timeout = parse_seconds(o.shutdown_timeout)) < 0) {
    fprintf(stderr, "%s: the shutdown timeout must be a number of seconds >= 0 "
                    "(inf: none), not '%s'\n", progname, o.shutdown_timeout);
    return 1;
  }
  cli.H = lasync_new(NULL);
  if (cli.H == NULL) { fprintf(stderr, "%s: cannot create the host\n", progname); return 1; }
  L = lasync_state(cli.H);
  if (o.debug) lasync_set_debug(cli.H, 1);
  create_arg(L, argv, argc, o.script ? o.script : argc - 1);
  watch_signal(&cli, &cli.sigint, on_sigint, SIGINT);
  chain_signal(&cli, SIGINT);
  watch_signal(&cli, &cli.sigquit, on_dump, SIGQUIT);
  if (o.dump_signal && o.dump_signal != SIGQUIT)
    watch_signal(&cli, &cli.sigdump, on_dump, o.dump_signal);
  if (!o.script && !o.code && !o.module && isatty(0)) o.interactive = 1;
  if (o.interactive && !o.script && !o.code) rc = 0;   /* the REPL only */
  else if (load_main(L, &o, argv) != LUA_OK) {
    fprintf(stderr, "%s: %s\n", progname, lua_tostring(L, -1));
    rc = 1;
  }
  else {
    for (i = o.first_arg; i < argc; i++, nargs++) lua_pushstring(L, argv[i]);
    rc = run_main(&cli, nargs, o.status_result);
  }
  if (o.interactive) rc = run_repl(&cli);
  return finish(&cli, rc);
}
