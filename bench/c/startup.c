/*
** startup.c: the C peer of the "startup" workload (bench/startup_run.py): a libuv
** program that creates a loop, runs it (nothing to do) and closes it. The floor for
** starting a process that links libuv.
*/
#include <stdio.h>
#include <uv.h>

int main(void) {
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;
  uv_run(&loop, UV_RUN_DEFAULT);
  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
