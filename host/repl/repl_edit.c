/*
** repl_edit.c: the REPL's line editor, libedit's readline interface in
** callback mode. Installing the handler draws the prompt; each readable
** event on the terminal gives libedit one key (rl_callback_read_char),
** and a finished line comes back through edit_on_line. Also here: history,
** tab completion through the Lua session, and output from background tasks
** kept off the line being typed: before such output the prompt and the
** partial line are erased, and once the loop turn is over (the REPL's
** prepare handle, so a burst of output costs one redraw) drawn again.
** libedit keeps this state globally: one REPL at a time edits (`owner`).
**
** libedit is loaded when the first edited REPL starts (dlopen), not when
** the program starts: linked, it and what it needs (libtinfo, libbsd)
** added a fifth to the start-up time of every `lasync script.lua`, and an
** application embedding lasync pays nothing for a REPL it does not open.
** Without libedit the REPL reads plain lines (with prompts on a terminal).
*/
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include <editline/readline.h>
#include "repl/repl.h"

#define HISTORY_MAX 1000

static lasync_Repl *owner;              /* the REPL that has libedit */
static int point;                       /* the cursor in the line being typed
                                           (rl_point is stale after a line) */
static char **matches;                  /* the last completion's candidates */
static int nmatches;

/* ------------------------------------------------- libedit, on demand */

static struct {
  void (*handler_install)(const char *, rl_vcpfunc_t *);
  void (*handler_remove)(void);
  void (*read_char)(void);
  int (*initialize)(void);
  void (*forced_update_display)(void);
  void (*get_screen_size)(int *, int *);
  void (*resize_terminal)(void);
  char **(*completion_matches)(const char *, rl_compentry_func_t *);
  int (*add_history)(const char *);
  int (*read_history)(const char *);
  int (*write_history)(const char *);
  void (*stifle_history)(int);
  FILE **instream, **outstream;
  int *point, *catch_signals, *catch_sigwinch, *append_character, *completion_over;
  const char **readline_name, **basic_breaks;
  char **completer_breaks;
  rl_completion_func_t **attempted_completion;
} ed;

#define ED(field, name) {(void **)&ed.field, name}
static const struct { void **slot; const char *name; } ed_symbols[] = {
  ED(handler_install, "rl_callback_handler_install"),
  ED(handler_remove, "rl_callback_handler_remove"),
  ED(read_char, "rl_callback_read_char"), ED(initialize, "rl_initialize"),
  ED(forced_update_display, "rl_forced_update_display"),
  ED(get_screen_size, "rl_get_screen_size"), ED(resize_terminal, "rl_resize_terminal"),
  ED(completion_matches, "rl_completion_matches"), ED(add_history, "add_history"),
  ED(read_history, "read_history"), ED(write_history, "write_history"),
  ED(stifle_history, "stifle_history"), ED(instream, "rl_instream"),
  ED(outstream, "rl_outstream"), ED(point, "rl_point"),
  ED(catch_signals, "rl_catch_signals"), ED(catch_sigwinch, "rl_catch_sigwinch"),
  ED(append_character, "rl_completion_append_character"),
  ED(completion_over, "rl_attempted_completion_over"),
  ED(readline_name, "rl_readline_name"), ED(basic_breaks, "rl_basic_word_break_characters"),
  ED(completer_breaks, "rl_completer_word_break_characters"),
  ED(attempted_completion, "rl_attempted_completion_function"),
};

/* Loads libedit once; 0 when it and every symbol we use are there. */
static int edit_load(void) {
  static void *lib;
  static int failed;
  size_t i;
  if (lib || failed) return lib ? 0 : -1;
  if ((lib = dlopen("libedit.so.2", RTLD_LAZY | RTLD_LOCAL)) == NULL) { failed = 1; return -1; }
  for (i = 0; i < sizeof ed_symbols / sizeof ed_symbols[0]; i++) {
    if ((*ed_symbols[i].slot = dlsym(lib, ed_symbols[i].name)) == NULL) {
      dlclose(lib);
      lib = NULL;
      failed = 1;
      return -1;
    }
  }
  return 0;
}

/* Whether a REPL may edit lines now: libedit is there and free. */
int lasync__repl_edit_free(void) {
  return owner == NULL && edit_load() == 0;
}

static const char *edit_prompt_text(lasync_Repl *R) {
  return R->more ? ">> " : "> ";
}

/* ---------------------------------------------- output over the prompt */

/* From the REPL's prepare handle, once the loop turn's output is done. */
void lasync__repl_edit_redraw(lasync_Repl *R) {
  if (!R->hidden) return;
  R->hidden = 0;
  if (R != owner || !R->prompting) return;
  fflush(stdout);
  if (!R->at_bol) fputs("\n", *ed.outstream);
  ed.forced_update_display();           /* prompt and line, cursor in place */
  fflush(*ed.outstream);
}

/* Erases the prompt and the partial line (all the rows they take), so
** output can be written where they were; redrawn after the loop turn. */
void lasync__repl_hide(lasync_Repl *R) {
  int rows = 0, cols = 0, row;
  if (R != owner || !R->prompting || R->hidden) return;
  ed.get_screen_size(&rows, &cols);
  row = cols > 0 ? (int)(strlen(edit_prompt_text(R)) + (size_t)point) / cols : 0;
  if (row > 0) fprintf(*ed.outstream, "\033[%dA", row);
  fputs("\r\033[J", *ed.outstream);
  fflush(*ed.outstream);
  R->hidden = 1;
  R->at_bol = 1;
}

/* Reports of failures nobody awaited go around the prompt as well. */
static void edit_report(lasync_Host *H, const char *msg, void *ud) {
  lasync_Repl *R = (lasync_Repl *)ud;
  lasync__repl_hide(R);
  if (R->report) R->report(H, msg, R->report_ud);
  else {
    fflush(stdout);
    fprintf(stderr, "%s\n", msg);
    fflush(stderr);
  }
  R->at_bol = 1;
}

/* ---------------------------------------------------------------- lines */

/* A finished line (NULL: Ctrl-D on an empty line). libedit has left raw
** mode already; the poll callback installs the handler again for the
** next line, or stops reading while the line's task runs. */
static void edit_on_line(char *line) {
  lasync_Repl *R = owner;
  if (R == NULL) { free(line); return; }
  R->prompting = 0;
  ed.handler_remove();
  if (line == NULL) {                   /* the session ends */
    fputs("\n", *ed.outstream);
    R->eof = 2;
    return;
  }
  if (line[0] != '\0') {
    ed.add_history(line);
    if (R->history) ed.write_history(R->history);
  }
  lasync__repl_feed(R, line, strlen(line));
  free(line);
}

void lasync__repl_edit_prompt(lasync_Repl *R) {
  if (R != owner || R->prompting || R->stopped) return;
  R->prompting = 1;
  R->hidden = 0;
  fflush(stdout);
  point = 0;
  ed.handler_install(edit_prompt_text(R), edit_on_line);
  fflush(*ed.outstream);
}

void lasync__repl_edit_read(lasync_Repl *R) {
  if (R != owner || !R->prompting) return;
  ed.read_char();
  point = *ed.point;
}

/* Ctrl-C at the prompt: the line (and a chunk begun) is dropped. */
void lasync__repl_edit_clear(lasync_Repl *R) {
  if (R != owner || !R->prompting) return;
  ed.handler_remove();
  R->prompting = 0;
  fputs("\n", *ed.outstream);
  lasync__repl_edit_prompt(R);
}

/* ----------------------------------------------------------- completion */

static void edit_free_matches(void) {
  int i;
  for (i = 0; i < nmatches; i++) free(matches[i]);
  free(matches);
  matches = NULL;
  nmatches = 0;
}

static char *edit_generator(const char *text, int state) {
  static int next;
  (void)text;
  if (state == 0) next = 0;
  return next < nmatches ? strdup(matches[next++]) : NULL;
}

/* The candidates for the word before the cursor come from the session
** (session:complete(word)); libedit shows them or inserts the common part. */
static char **edit_complete(const char *text, int start, int end) {
  lasync_Repl *R = owner;
  lua_State *L;
  int i, n;
  (void)start; (void)end;
  *ed.completion_over = 1;     /* no file names as a fallback */
  edit_free_matches();
  if (R == NULL || R->stopped) return NULL;
  L = lasync_state(R->H);
  lua_pushstring(L, text);
  if (lasync__repl_call(R, "complete", 1, 1) != LUA_OK) return NULL;
  n = lua_istable(L, -1) ? (int)lua_rawlen(L, -1) : 0;
  if (n > 0 && (matches = (char **)calloc((size_t)n, sizeof *matches)) != NULL) {
    for (i = 1; i <= n; i++) {
      const char *s;
      lua_rawgeti(L, -1, i);
      s = lua_tostring(L, -1);
      if (s && (matches[nmatches] = strdup(s)) != NULL) nmatches++;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return nmatches > 0 ? ed.completion_matches(text, edit_generator) : NULL;
}

/* -------------------------------------------------------- start, stop */

static void edit_winch_cb(uv_signal_t *h, int signum) {
  (void)h; (void)signum;
  ed.resize_terminal();
}

static FILE *edit_stream(int fd, int std, FILE *f, const char *mode) {
  int d;
  if (fd == std) return f;
  if ((d = dup(fd)) < 0) return NULL;
  if ((f = fdopen(d, mode)) == NULL) close(d);
  return f;
}

int lasync__repl_edit_start(lasync_Repl *R) {
  /* '.' and ':' are no breaks: "async.qu" is one word to complete */
  static char breaks[] = " \t\n\"'`@$><=;|&{(+-*/%^#~,[]";
  uv_loop_t *loop = lasync_loop(R->H);
  if (owner != NULL) return -1;
  R->in = edit_stream(R->o.in_fd, 0, stdin, "r");
  R->out = edit_stream(R->o.out_fd, 1, stdout, "w");
  if (R->in == NULL || R->out == NULL) return -1;
  owner = R;
  if (uv_signal_init(loop, &R->winch) == 0) {
    R->winch.data = R;
    R->open++;
    uv_signal_start(&R->winch, edit_winch_cb, SIGWINCH);
    uv_unref((uv_handle_t *)&R->winch);
  }
  else R->winch.data = NULL;
  *ed.instream = R->in;
  *ed.outstream = R->out;
  *ed.catch_signals = 0;                 /* SIGINT is the application's (uv_signal) */
  *ed.catch_sigwinch = 0;
  *ed.readline_name = "lasync";          /* for ~/.editrc */
  ed.initialize();
  *ed.attempted_completion = edit_complete;
  *ed.basic_breaks = breaks;
  *ed.completer_breaks = breaks;
  *ed.append_character = '\0';
  ed.stifle_history(HISTORY_MAX);
  if (R->history) ed.read_history(R->history);
  R->report = lasync__get_report(R->H, &R->report_ud);
  lasync_set_report(R->H, edit_report, R);
  return 0;
}

void lasync__repl_edit_stop(lasync_Repl *R) {
  if (R != owner) {                     /* edit_start failed early */
    if (R->in && R->in != stdin) fclose(R->in);
    if (R->out && R->out != stdout) fclose(R->out);
    return;
  }
  if (R->prompting) ed.handler_remove();   /* the terminal as it was */
  R->prompting = 0;
  if (R->history) ed.write_history(R->history);
  lasync_set_report(R->H, R->report, R->report_ud);
  if (R->winch.data) uv_close((uv_handle_t *)&R->winch, lasync__repl_close_cb);
  fflush(*ed.outstream);
  *ed.instream = *ed.outstream = NULL;    /* the next rl_initialize: stdin, stdout */
  if (R->in != stdin) fclose(R->in);
  if (R->out != stdout) fclose(R->out);
  edit_free_matches();
  owner = NULL;
}
