/* spawn, pure C libuv: the physical limit. 200,000 heap-allocated task structs go on an
 * intrusive ready queue drained by a uv_check handle (a uv_idle handle keeps the poll
 * from blocking while tasks are ready). Each task yields once (back onto the queue),
 * then returns i into the gather array; main checks the sum. */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

#define N 200000

typedef struct task {
  struct task *next;
  long i;
  int state;
} task;

static task *ready_head, *ready_tail;
static uv_check_t check;
static uv_idle_t idle;
static long results[N];
static long ndone;

static void idle_cb(uv_idle_t *h) { (void)h; }

static void push(task *t) {
  t->next = NULL;
  if (ready_tail) ready_tail->next = t;
  else { ready_head = t; uv_idle_start(&idle, idle_cb); }
  ready_tail = t;
}

static void step(task *t) {
  if (t->state == 0) {          /* sleep(0): yield once */
    t->state = 1;
    push(t);
    return;
  }
  results[t->i] = t->i;         /* return i */
  free(t);
  if (++ndone == N) { uv_close((uv_handle_t *)&check, NULL); uv_close((uv_handle_t *)&idle, NULL); }
}

static void check_cb(uv_check_t *h) {
  task *t = ready_head;
  (void)h;
  ready_head = ready_tail = NULL;   /* wake-ups during the drain go to the next round */
  while (t) { task *next = t->next; step(t); t = next; }
  if (!ready_head && ndone < N) uv_idle_stop(&idle);
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  uint64_t t0 = uv_hrtime();
  long long sum = 0;
  long i;
  uv_check_init(loop, &check);
  uv_check_start(&check, check_cb);
  uv_unref((uv_handle_t *)&check);
  uv_idle_init(loop, &idle);
  for (i = 0; i < N; i++) {
    task *t = malloc(sizeof *t);
    if (!t) return 2;
    t->i = i;
    t->state = 0;
    push(t);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  for (i = 0; i < N; i++) sum += results[i];
  if (ndone != N || sum != (long long)N * (N - 1) / 2) {
    fprintf(stderr, "spawn: done=%ld sum=%lld\n", ndone, sum);
    return 1;
  }
  printf("ok sum=%lld t=%.4f\n", sum, (uv_hrtime() - t0) / 1e9);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
