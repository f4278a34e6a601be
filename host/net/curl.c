/*
** curl.c: a libcurl multi handle driven by the host's libuv loop, the way
** curl's docs/examples/multi-uv.c does it. libcurl tells us which sockets
** to watch (CURLMOPT_SOCKETFUNCTION: a uv_poll per socket) and when its
** timeout is due (CURLMOPT_TIMERFUNCTION: one uv_timer per multi); we call
** curl_multi_socket_action back from those handles and then collect the
** finished transfers. Tasks wait on transfers with wait records
** (http_client.c), so cancellation, timeouts and the leak check work as
** for any other wait.
**
** Reentrancy: libcurl's callbacks (socket, timer, write, header) only
** record state and queue wake-ups; they never call Lua and never add or
** remove handles, so nothing reenters libcurl. Handles are added and
** removed from Lua functions and from the loop's callbacks only.
**
** Loop liveness: the session's handles keep the loop alive only while
** transfers run (ref'd when `active` goes above 0, unref'd at 0), so an
** idle pool or the default session never holds a script open and is not
** counted by the leak check.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/curl.h"

int lasync__http_easy_count = 0;

static void multi_set_ref(Multi *m, int on) {
  Poll *p;
  if (on) uv_ref((uv_handle_t *)&m->timer); else uv_unref((uv_handle_t *)&m->timer);
  for (p = m->polls; p; p = p->next) {
    if (on) uv_ref((uv_handle_t *)&p->poll); else uv_unref((uv_handle_t *)&p->poll);
  }
}

/* Collects the transfers libcurl finished: each leaves the multi at once,
** so its connection goes back to the pool before the task even runs. */
static void multi_check_done(Multi *m) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
    Transfer *t = NULL;
    CURLcode rc = msg->data.result;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t == NULL) continue;
    lasync__multi_remove(t);              /* msg is invalid from here */
    lasync__transfer_finish(t, rc);
  }
}

static void poll_closed(uv_handle_t *h) {
  free(container_of(h, Poll, poll));
}

static void poll_close(Poll *p) {
  if (p->prev) p->prev->next = p->next; else p->m->polls = p->next;
  if (p->next) p->next->prev = p->prev;
  uv_close((uv_handle_t *)&p->poll, poll_closed);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  Poll *p = container_of(h, Poll, poll);
  Multi *m = p->m;
  int running, flags = 0;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(m->multi, p->fd, flags, &running);
  multi_check_done(m);
}

static void on_timer(uv_timer_t *h) {
  Multi *m = container_of(h, Multi, timer);
  int running;
  curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  multi_check_done(m);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "soon", which a
** 0 ms libuv timer gives (at the next turn, never inside this call). */
static int multi_timer_cb(CURLM *multi, long ms, void *ud) {
  Multi *m = (Multi *)ud;
  (void)multi;
  if (ms < 0) uv_timer_stop(&m->timer);
  else uv_timer_start(&m->timer, on_timer, (uint64_t)ms, 0);
  return 0;
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching socket s. */
static int multi_socket_cb(CURL *easy, curl_socket_t s, int what, void *ud, void *sockp) {
  Multi *m = (Multi *)ud;
  Poll *p = (Poll *)sockp;
  int events = 0;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (p) {
      curl_multi_assign(m->multi, s, NULL);
      poll_close(p);
    }
    return 0;
  }
  if (p == NULL) {
    if ((p = (Poll *)calloc(1, sizeof *p)) == NULL) return -1;
    if (uv_poll_init_socket(lasync_loop(m->H), &p->poll, s) != 0) {
      free(p);
      return -1;
    }
    p->fd = s;
    p->m = m;
    if ((p->next = m->polls) != NULL) p->next->prev = p;
    m->polls = p;
    if (m->active == 0) uv_unref((uv_handle_t *)&p->poll);
    curl_multi_assign(m->multi, s, p);
  }
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  uv_poll_start(&p->poll, events, on_poll);
  return 0;
}

Multi *lasync__multi_new(lasync_Host *H, long limit, long per_host, int cookies) {
  Multi *m = (Multi *)calloc(1, sizeof *m);
  if (m == NULL) return NULL;
  m->H = H;
  m->cookies = cookies;
  if ((m->multi = curl_multi_init()) == NULL || (m->share = curl_share_init()) == NULL) {
    if (m->multi) curl_multi_cleanup(m->multi);
    free(m);
    return NULL;
  }
  curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  if (cookies) curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, multi_socket_cb);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  /* Backstops of the limits the Lua side enforces by making callers wait. */
  curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, limit);
  curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, limit);
  uv_timer_init(lasync_loop(H), &m->timer);
  uv_unref((uv_handle_t *)&m->timer);
  return m;
}

int lasync__multi_add(Multi *m, Transfer *t) {
  CURLMcode rc;
  curl_easy_setopt(t->easy, CURLOPT_SHARE, m->share);
  if ((rc = curl_multi_add_handle(m->multi, t->easy)) != CURLM_OK) return (int)rc;
  t->in_multi = 1;
  if (m->active++ == 0) multi_set_ref(m, 1);
  return 0;
}

void lasync__multi_remove(Transfer *t) {
  Multi *m = t->m;
  if (!t->in_multi || m == NULL) return;
  t->in_multi = 0;
  curl_multi_remove_handle(m->multi, t->easy);
  if (--m->active == 0) multi_set_ref(m, 0);
}

static void multi_closed(uv_handle_t *h) {
  free(container_of(h, Multi, timer));
}

void lasync__multi_close(Multi *m) {
  if (m->closed) return;
  m->closed = 1;
  while (m->transfers) {
    Transfer *t = m->transfers;
    lasync__multi_remove(t);
    /* The easy handle uses the share: it goes with the session. */
    curl_easy_cleanup(t->easy);
    t->easy = NULL;
    lasync__http_easy_count--;
    m->transfers = t->next;
    t->next = t->prev = NULL;
    t->m = NULL;
    if (!t->done) {
      snprintf(t->errbuf, sizeof t->errbuf, "the session was closed");
      t->aborted = 1;
      lasync__transfer_finish(t, CURLE_ABORTED_BY_CALLBACK);
    }
  }
  curl_multi_cleanup(m->multi);           /* may still call the socket callback */
  curl_share_cleanup(m->share);
  while (m->polls) poll_close(m->polls);
  uv_close((uv_handle_t *)&m->timer, multi_closed);
}
