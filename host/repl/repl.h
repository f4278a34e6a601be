/*
** repl.h: what repl.c (input, the session, the public calls) and
** repl_edit.c (the line editor: libedit, the prompt, completion, history)
** share. Not installed.
*/
#ifndef LASYNC_REPL_H
#define LASYNC_REPL_H

#include "module.h"

enum { IN_EDIT, IN_STREAM, IN_FILE };

/* The line's task being waited for. It outlives the REPL when the REPL
** stops (or lets the task go) before the task ends: R is then NULL. */
typedef struct LineWatch { lasync_Repl *R; } LineWatch;

struct lasync_Repl {
  lasync_Host *H;
  lasync_ReplOptions o;
  char *history;                /* our copy of o.history */
  int mode;                     /* IN_* */
  int stdio;                    /* out_fd is the process's stdout */
  int prompts;                  /* prompts are shown */
  uv_poll_t poll;               /* in_fd readable (IN_EDIT, IN_STREAM) */
  uv_idle_t idle;               /* IN_FILE: input is wanted */
  uv_handle_t *input;           /* one of the two */
  uv_prepare_t tick;            /* every loop turn while the REPL is open:
                                   keeps the loop alive (a line may wait on
                                   what only the user can end, with ^C) and
                                   draws the prompt again after output */
  uv_signal_t winch;            /* IN_EDIT: the terminal was resized */
  int open;                     /* handles not yet closed; R is freed at 0 */
  int session;                  /* registry refs: the Lua session, */
  int box;                      /* the box its closures reach R through, */
  int taskref;                  /* the line's Task (LUA_NOREF: none) */
  LineWatch *watch;
  int interrupts;               /* Ctrl-C while this line runs */
  int more;                     /* a chunk goes on: the second prompt */
  int reading;                  /* the input handle is started */
  int prompting;                /* IN_EDIT: libedit's handler is installed;
                                   otherwise: the prompt was written */
  int hidden;                   /* the prompt was erased for output */
  int at_bol;                   /* the last output ended a line */
  int eof;                      /* 1: input ended; 2: the session ends */
  int stopped;
  char *buf;                    /* input not yet fed (IN_STREAM, IN_FILE) */
  size_t len, cap;
  FILE *in, *out;               /* IN_EDIT: libedit's streams, if ours */
  lasync_ReportFn report;       /* IN_EDIT: the host's report hook we wrap */
  void *report_ud;
};

/* repl.c */
void lasync__repl_write(lasync_Repl *R, int err, const char *s, size_t n);
int lasync__repl_call(lasync_Repl *R, const char *method, int nargs, int nres);
void lasync__repl_feed(lasync_Repl *R, const char *line, size_t n);
void lasync__repl_want_input(lasync_Repl *R);
void lasync__repl_end(lasync_Repl *R);
int lasync__repl_busy(lasync_Repl *R);
void lasync__repl_close_cb(uv_handle_t *h);

/* repl_edit.c */
int lasync__repl_edit_free(void);
int lasync__repl_edit_start(lasync_Repl *R);
void lasync__repl_edit_prompt(lasync_Repl *R);
void lasync__repl_edit_read(lasync_Repl *R);
void lasync__repl_edit_redraw(lasync_Repl *R);
void lasync__repl_edit_clear(lasync_Repl *R);
void lasync__repl_edit_stop(lasync_Repl *R);
void lasync__repl_hide(lasync_Repl *R);

/* repl.c: "async.core.apidoc", the text of docs/API.md for help (host.c) */
int lasync__luaopen_apidoc(lua_State *L);

#endif
