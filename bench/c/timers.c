/* timers, pure C libuv: the physical limit. 100,000 tasks, each one heap struct with its
 * own uv_timer_t, sleeping a pseudo-random 0..50 ms (the LCG shared by every peer).
 * libuv timers count whole milliseconds of a loop time cached at the start of the loop
 * iteration, so a timer can fire before its delay has passed by the monotonic clock:
 * such a raw early fire is counted and the timer re-armed for the rest, so no task
 * wakes early (early=0), which is what a correct scheduler must also do. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define N 100000

typedef struct sleeper {
  uv_timer_t timer;
  uint64_t deadline;   /* uv_hrtime() ns */
  int fired_early;
} sleeper;

static long ndone, raw_early, early;
static uint64_t max_raw_early_ns;

static void close_cb(uv_handle_t *h) { free(h->data); }

static void timer_cb(uv_timer_t *h) {
  sleeper *s = h->data;
  uint64_t now = uv_hrtime();
  if (now < s->deadline) {
    uint64_t left = s->deadline - now;
    if (!s->fired_early) { s->fired_early = 1; raw_early++; }
    if (left > max_raw_early_ns) max_raw_early_ns = left;
    uv_timer_start(h, timer_cb, (left + 999999) / 1000000, 0);
    return;
  }
  ndone++;
  uv_close((uv_handle_t *)h, close_cb);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  uint64_t t0 = uv_hrtime();
  uint32_t x = 42;
  long i, dsum = 0;
  for (i = 0; i < N; i++) {
    sleeper *s = malloc(sizeof *s);
    unsigned ms;
    if (!s) return 2;
    x = (x * 1103515245u + 12345u) & 0x7fffffffu;
    ms = x % 51;
    dsum += ms;
    s->fired_early = 0;
    s->deadline = uv_hrtime() + (uint64_t)ms * 1000000;
    s->timer.data = s;
    uv_timer_init(loop, &s->timer);
    uv_timer_start(&s->timer, timer_cb, ms, 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (ndone != N || early) {
    fprintf(stderr, "timers: done=%ld early=%ld\n", ndone, early);
    return 1;
  }
  printf("ok early=%ld raw_early=%ld max_raw_early_us=%.1f dsum=%ld t=%.4f\n", early, raw_early,
         max_raw_early_ns / 1e3, dsum, (uv_hrtime() - t0) / 1e9);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
