/*
** tests/c/tap.h: the C tests' harness, a few macros printing TAP, which
** tests/run.sh counts into the "N passed, N failed" total:
**
**   ok 1 new_own_loop
**   not ok 2 free_with_tasks
**   #   tests/c/test_host.c:120: check failed: n == 2
**
** A test is a `static void name(void)`; TEST(name) runs it and prints its
** line; CHECK(cond) records a failure and goes on; tap_end() prints the
** plan and returns the exit status. One header, included by one file of
** each test program: its state is static to that program.
*/
#ifndef LASYNC_TAP_H
#define LASYNC_TAP_H

#include <stdio.h>
#include <string.h>

static struct {
  int n, failed;
  int case_failed;
  char notes[4096];
} tap;

static inline void tap_note(const char *file, int line, const char *what) {
  size_t used = strlen(tap.notes);
  if (snprintf(tap.notes + used, sizeof tap.notes - used, "#   %s:%d: %s\n", file, line, what) < 0)
    tap.notes[used] = '\0';
}

#define CHECK(c) do { \
    if (!(c)) { tap.case_failed++; tap_note(__FILE__, __LINE__, "check failed: " #c); } \
  } while (0)

/* CHECK that the string s (may be NULL) contains sub. */
#define CHECK_HAS(s, sub) do { \
    const char *s_ = (s); \
    if (s_ == NULL || strstr(s_, (sub)) == NULL) { \
      tap.case_failed++; \
      tap_note(__FILE__, __LINE__, "expected to find this:"); \
      tap_note(__FILE__, __LINE__, (sub)); \
      tap_note(__FILE__, __LINE__, "in this:"); \
      tap_note(__FILE__, __LINE__, s_ ? s_ : "(null)"); \
    } \
  } while (0)

static inline void tap_run(const char *name, void (*fn)(void)) {
  tap.case_failed = 0;
  tap.notes[0] = '\0';
  fn();
  tap.n++;
  if (tap.case_failed) tap.failed++;
  printf("%sok %d %s\n%s", tap.case_failed ? "not " : "", tap.n, name, tap.notes);
  fflush(stdout);
}

#define TEST(fn) tap_run(#fn, fn)

static inline int tap_end(void) {
  printf("1..%d\n", tap.n);
  return tap.failed != 0;
}

#endif
