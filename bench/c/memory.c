/* memory, pure C libuv: the physical limit. 100,000 heap structs, each with its own
 * uv_timer_t, all armed for 1 s; resident memory per parked task. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define N 100000

typedef struct sleeper {
  uv_timer_t timer;
  long i;
} sleeper;

static long nwoke;

static long status_kb(const char *key) {
  char line[256];
  long v = -1;
  size_t n = strlen(key);
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, key, n) && line[n] == ':') { v = strtol(line + n + 1, NULL, 10); break; }
  fclose(f);
  return v;
}

static void close_cb(uv_handle_t *h) { free(h->data); }

static void timer_cb(uv_timer_t *h) {
  nwoke++;
  uv_close((uv_handle_t *)h, close_cb);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  long base = status_kb("VmRSS"), rss, hwm, i;
  for (i = 0; i < N; i++) {
    sleeper *s = malloc(sizeof *s);
    if (!s) return 2;
    s->i = i;
    s->timer.data = s;
    uv_timer_init(loop, &s->timer);
    uv_timer_start(&s->timer, timer_cb, 1000, 0);
  }
  rss = status_kb("VmRSS");
  hwm = status_kb("VmHWM");
  uv_run(loop, UV_RUN_DEFAULT);
  if (nwoke != N) { fprintf(stderr, "memory: %ld of %d woke\n", nwoke, N); return 1; }
  printf("ok base_kb=%ld rss_kb=%ld hwm_kb=%ld bytes_per_task=%.0f\n", base, rss, hwm,
         (rss - base) * 1024.0 / N);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
