/*
** tests/c/test_repl.c: the REPL as the embedding API offers it
** (lasync_repl_start), a console on a pair of descriptors beside the
** application's own loop: chunks in, values and errors out, the loop going
** on between lines, Ctrl-C routed by the application, end of input, and
** stopping the console while a line runs.
*/
#include <fcntl.h>
#include <unistd.h>
#include "common.h"

typedef struct Console {
  int in[2], out[2];            /* pipes: we write in[1], read out[0] */
  lasync_Repl *R;
  int exits;
  char text[8192];              /* what the console wrote */
  size_t len;
} Console;

static void on_exit_cb(lasync_Repl *R, void *ud) {
  Console *c = (Console *)ud;
  (void)R;
  c->exits++;
  c->R = NULL;
}

static lasync_Repl *console_open(lasync_Host *H, Console *c, int prompt) {
  lasync_ReplOptions o;
  memset(c, 0, sizeof *c);
  if (pipe(c->in) != 0 || pipe(c->out) != 0) return NULL;
  fcntl(c->out[0], F_SETFL, O_NONBLOCK);
  lasync_repl_options_init(&o);
  o.in_fd = c->in[0];
  o.out_fd = c->out[1];
  o.prompt = prompt;
  o.chunkname = "console";
  o.on_exit = on_exit_cb;
  o.ud = c;
  return c->R = lasync_repl_start(H, &o);
}

static void console_send(Console *c, const char *s) {
  CHECK(write(c->in[1], s, strlen(s)) == (ssize_t)strlen(s));
}

static void console_drain(Console *c) {
  ssize_t n;
  while ((n = read(c->out[0], c->text + c->len, sizeof c->text - 1 - c->len)) > 0) c->len += (size_t)n;
  c->text[c->len] = '\0';
}

/* Runs the loop until the console has written `want` (or has ended). */
static int console_wait(lasync_Host *H, Console *c, const char *want) {
  int turns;
  for (turns = 0; turns < 100000; turns++) {
    console_drain(c);
    if (want ? strstr(c->text, want) != NULL : c->exits > 0) return 1;
    uv_run(lasync_loop(H), UV_RUN_ONCE);
  }
  return 0;
}

static void console_close(Console *c) {
  close(c->in[0]); close(c->out[0]); close(c->out[1]);
  if (c->in[1] >= 0) close(c->in[1]);
}

/* -------------------------------------------------------------- tests */

static void values_errors_and_end_of_input(void) {
  lasync_Host *H = lasync_new(NULL);
  Console c;
  CHECK(console_open(H, &c, 0) != NULL);
  console_send(&c, "local x = 40\nprint('printed', x + 2)\nx + 1, 'two'\nerror('bad')\n"
                   "async.sleep(0.001) return 'slept'\n");
  CHECK(console_wait(H, &c, "\"slept\"\n"));
  close(c.in[1]);
  c.in[1] = -1;                         /* end of input: the session ends */
  CHECK(console_wait(H, &c, NULL));
  CHECK(c.exits == 1);
  CHECK_HAS(c.text, "printed\t42\n41, \"two\"\nconsole#4:1: bad\nstack traceback:");
  CHECK(strstr(c.text, "> ") == NULL);  /* prompt 0: none */
  console_close(&c);
  lasync_free(H);
}

/* The application's tasks run while the console waits for a line. */
static void loop_goes_on_between_lines(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  Console c;
  CHECK(run_code(H, "ticks = 0; app = async.spawn(function() "
                    "while true do ticks = ticks + 1 async.sleep(0.001) end end)") == LUA_OK);
  CHECK(console_open(H, &c, 1) != NULL);
  CHECK(console_wait(H, &c, "> "));     /* prompt 1: prompts on a pipe */
  lua_getglobal(L, "ticks");
  while (lua_tointeger(L, -1) < 3) {    /* no line typed: the app task runs */
    lua_pop(L, 1);
    uv_run(lasync_loop(H), UV_RUN_ONCE);
    lua_getglobal(L, "ticks");
  }
  lua_pop(L, 1);
  console_send(&c, "ticks >= 3\n.exit\n");
  CHECK(console_wait(H, &c, NULL));
  CHECK_HAS(c.text, "> true\n");
  CHECK(lasync_task_count(H) == 1);     /* the console left the app's task alone */
  console_close(&c);
  lasync_free(H);                       /* cancels it */
}

static void interrupt_cancels_the_line(void) {
  lasync_Host *H = lasync_new(NULL);
  Console c;
  CHECK(console_open(H, &c, 0) != NULL);
  console_send(&c, "local ok = pcall(async.sleep, 100) print('after', ok)\n");
  while (lasync_task_count(H) == 0) uv_run(lasync_loop(H), UV_RUN_ONCE);
  lasync_repl_interrupt(c.R);
  CHECK(console_wait(H, &c, "after\tfalse\n"));
  console_send(&c, "'next'\n");
  CHECK(console_wait(H, &c, "\"next\"\n"));
  lasync_repl_interrupt(c.R);           /* at the prompt: nothing to cancel */
  lasync_repl_stop(c.R);
  CHECK(c.exits == 0);
  console_close(&c);
  lasync_free(H);
}

/* Stopping the console while a line waits cancels that line's task. */
static void stop_while_a_line_runs(void) {
  uv_loop_t loop;
  lasync_Host *H;
  Console c;
  uv_loop_init(&loop);
  H = lasync_new(&loop);
  CHECK(console_open(H, &c, 0) != NULL);
  console_send(&c, "print('started') async.future():await()\n");
  CHECK(console_wait(H, &c, "started\n"));
  CHECK(lasync_task_count(H) == 1);
  lasync_repl_stop(c.R);
  lasync_repl_stop(c.R);                /* twice: harmless until freed */
  uv_run(&loop, UV_RUN_NOWAIT);
  CHECK(lasync_task_count(H) == 0);
  CHECK(c.exits == 0);
  console_close(&c);
  lasync_free(H);
  CHECK(loop_finish(&loop) == 0);       /* every handle of the console closed */
}

static void editing_required_on_a_pipe_fails(void) {
  lasync_Host *H = lasync_new(NULL);
  lasync_ReplOptions o;
  int p[2];
  CHECK(pipe(p) == 0);
  lasync_repl_options_init(&o);
  o.in_fd = p[0];
  o.edit = 1;
  CHECK(lasync_repl_start(H, &o) == NULL);
  o.edit = 0;
  o.in_fd = -1;
  CHECK(lasync_repl_start(H, &o) == NULL);
  close(p[0]); close(p[1]);
  lasync_free(H);
}

int main(void) {
  TEST(values_errors_and_end_of_input);
  TEST(loop_goes_on_between_lines);
  TEST(interrupt_cancels_the_line);
  TEST(stop_while_a_line_runs);
  TEST(editing_required_on_a_pipe_fails);
  return tap_end();
}
