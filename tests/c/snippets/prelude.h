/*
** tests/c/snippets/prelude.h: what the C snippets of docs/ assume of
** the application around them (tests/c/snippets.sh compiles each one with
** it): the application's own struct and functions, declared only. A
** snippet marked "program" is complete and does not use it.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lasync.h>

struct App {                       /* the application of the guide */
  uv_loop_t loop;
  lasync_Host *H;
  lasync_Task *main;               /* the task that runs its script */
  int quitting;
};
struct job;                        /* one of the application's jobs */

const char *lookup(struct App *app, const char *key);
long expensive(long n);
void job_finished(struct job *job, const char *result);
void job_failed(struct job *job, const char *message);
const char *app_version(void);
extern int listen_fd;
void *my_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
extern long my_budget;
