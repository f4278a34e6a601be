/*
** curl.h: what host/net/curl.c (a libcurl multi handle driven by the
** host's libuv loop: a session) and host/net/http_client.c (one transfer,
** the Lua-facing request and response) share. Not installed.
*/
#ifndef LASYNC_NET_CURL_H
#define LASYNC_NET_CURL_H

#include <curl/curl.h>
#include "lasync.h"
#include "module.h"

#define HTTP_SESSION_MT "lasync.HttpSession"
#define HTTP_TRANSFER_MT "lasync.HttpTransfer"

typedef struct Transfer Transfer;
typedef struct Poll Poll;

/* A session: one multi handle (its connection pool, limits, and a share
** handle with the DNS cache, TLS sessions and the cookie jar). Allocated
** apart from its userdata: it is freed by the timer's close callback. */
typedef struct Multi {
  CURLM *multi;
  CURLSH *share;
  uv_timer_t timer;             /* libcurl's one timeout */
  lasync_Host *H;
  Transfer *transfers;          /* live transfers (in the multi or not) */
  Poll *polls;                  /* sockets libcurl asked us to watch */
  int active;                   /* transfers in the multi */
  int closed;
  int cookies;
} Multi;

/* A socket libcurl watches: freed by its close callback. */
struct Poll {
  uv_poll_t poll;
  curl_socket_t fd;
  Multi *m;
  Poll *next, *prev;
};

struct Transfer {
  CURL *easy;
  Multi *m;                     /* NULL once detached from a closed session */
  Transfer *next, *prev;
  lasync_Wait wait;
  int want;                     /* what the waiting task waits for (WANT_*) */
  int in_multi, headers_ready, done, paused, aborted, read_timed_out;
  CURLcode result;
  char errbuf[CURL_ERROR_SIZE];
  struct curl_slist *req_headers;
  char *head;                   /* header lines of the last response */
  size_t head_len, head_cap;
  char *body;                   /* received, not yet read: body[off..len) */
  size_t body_len, body_off, body_cap;
  size_t high;                  /* pause past this much unread; 0: never */
  uv_timer_t *read_timer;       /* between-bytes timeout, when asked */
  uint64_t read_timeout_ms;
  int follow;                   /* redirects are followed */
  char *url;                    /* as asked, for errors */
  const char *method;
};

enum { WANT_NONE, WANT_HEADERS, WANT_DATA, WANT_DONE };

/* curl.c */
Multi *lasync__multi_new(lasync_Host *H, long limit, long per_host, int cookies);
/* Adds t's easy handle to the multi; returns a CURLMcode. */
int lasync__multi_add(Multi *m, Transfer *t);
/* Takes t out of the multi (a transfer cut short: its connection is not
** reused); idempotent. Does not wake anything. */
void lasync__multi_remove(Transfer *t);
/* Aborts every transfer, cleans the multi up and closes its handles. */
void lasync__multi_close(Multi *m);
/* Live easy handles of this process's sessions (the leak check). */
extern int lasync__http_easy_count;

/* http_client.c */
/* Wakes the task waiting on t when what it waits for has come. */
void lasync__transfer_notify(Transfer *t);
/* Marks t done with `result` (a transfer ended or cut short). */
void lasync__transfer_finish(Transfer *t, CURLcode result);

size_t lasync__http_on_write(char *data, size_t size, size_t n, void *ud);
size_t lasync__http_on_header(char *data, size_t size, size_t n, void *ud);
/* (Re)starts the between-bytes timer, when there is one. */
void lasync__transfer_activity(Transfer *t);
/* Pushes a new transfer object owning t (its uservalue 1 is free). */
void lasync__transfer_push(lua_State *L, Transfer *t);

#endif
