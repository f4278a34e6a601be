/* echo_load: the load generator of the echo workload (pure C, libuv). Opens CONNS
 * connections to 127.0.0.1:port; each sends a MSG-byte message, waits until all of it
 * has come back, checks it, and sends the next, ROUNDS times. Prints
 * "rt=<round trips> t=<seconds>" with t from the first send to the last reply.
 * usage: echo_load port [conns [rounds [msg_bytes]]] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct conn {
  uv_tcp_t tcp;
  uv_connect_t req;
  uv_write_t wreq;
  int id;
  long left;                /* round trips still to do */
  size_t got;               /* bytes of the current reply */
  char msg[4096];
  char buf[65536];
} conn;

static int CONNS = 100, MSG = 64;
static long ROUNDS = 2000;
static long done_rt, open_conns, connected;
static uint64_t t0, t1;
static conn *conns;

static void fail(const char *what, int err) {
  fprintf(stderr, "echo_load: %s: %s\n", what, uv_strerror(err));
  exit(1);
}

static void on_write(uv_write_t *req, int status) {
  (void)req;
  if (status < 0) fail("write", status);
}

static void send_msg(conn *c) {
  uv_buf_t b = uv_buf_init(c->msg, (unsigned)MSG);
  int r;
  c->got = 0;
  r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (r == MSG) return;
  if (r > 0) { b.base += r; b.len -= (unsigned)r; }
  else if (r != UV_EAGAIN) fail("try_write", r);
  if ((r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write)) != 0) fail("write", r);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b) {
  conn *c = (conn *)h;
  (void)size;
  b->base = c->buf;
  b->len = sizeof c->buf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  conn *c = (conn *)s;
  if (n < 0) fail("read", (int)n);
  if (n == 0) return;
  if (c->got + (size_t)n > (size_t)MSG || memcmp(b->base, c->msg + c->got, (size_t)n) != 0) {
    fprintf(stderr, "echo_load: connection %d: wrong bytes echoed\n", c->id);
    exit(1);
  }
  c->got += (size_t)n;
  if (c->got < (size_t)MSG) return;
  done_rt++;
  if (--c->left > 0) {
    c->msg[0] = (char)('a' + c->left % 26);  /* each message differs */
    send_msg(c);
  }
  else {
    t1 = uv_hrtime();
    uv_close((uv_handle_t *)&c->tcp, NULL);
    open_conns--;
  }
}

static void on_connect(uv_connect_t *req, int status) {
  conn *c = (conn *)req->data;
  int i;
  if (status < 0) fail("connect", status);
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (++connected < CONNS) return;
  t0 = uv_hrtime();                       /* all connected: go */
  for (i = 0; i < CONNS; i++) send_msg(&conns[i]);
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  struct sockaddr_in addr;
  int i, j;
  if (argc < 2) { fprintf(stderr, "usage: echo_load port [conns [rounds [msg_bytes]]]\n"); return 2; }
  if (argc > 2) CONNS = atoi(argv[2]);
  if (argc > 3) ROUNDS = atol(argv[3]);
  if (argc > 4) MSG = atoi(argv[4]);
  if (CONNS < 1 || ROUNDS < 1 || MSG < 1 || MSG > 4096) { fprintf(stderr, "echo_load: bad arguments\n"); return 2; }
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  conns = calloc((size_t)CONNS, sizeof *conns);
  for (i = 0; i < CONNS; i++) {
    conn *c = &conns[i];
    c->id = i;
    c->left = ROUNDS;
    for (j = 0; j < MSG; j++) c->msg[j] = (char)('A' + (i + j) % 26);
    c->req.data = c;
    uv_tcp_init(loop, &c->tcp);
    if ((j = uv_tcp_connect(&c->req, &c->tcp, (struct sockaddr *)&addr, on_connect)) != 0) fail("connect", j);
    open_conns++;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  if (done_rt != (long)CONNS * ROUNDS) { fprintf(stderr, "echo_load: %ld of %ld round trips\n", done_rt, (long)CONNS * ROUNDS); return 1; }
  printf("rt=%ld t=%.6f\n", done_rt, (double)(t1 - t0) / 1e9);
  free(conns);
  return 0;
}
