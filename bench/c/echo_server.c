/* echo_server, pure C libuv: the physical limit of the echo workload. Echoes every byte
 * back on the connection it came from: reads into one static buffer, writes with
 * uv_try_write, and queues only what the kernel did not take (a copy, freed by the
 * write callback). Prints "port N" once listening on 127.0.0.1 (port 0: any). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct wreq { uv_write_t req; char data[]; } wreq;

static char buf[65536];

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *b) {
  (void)h; (void)size;
  b->base = buf;
  b->len = sizeof buf;
}

static void on_closed(uv_handle_t *h) { free(h); }
static void on_written(uv_write_t *req, int status) { (void)status; free(req); }

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  uv_buf_t out;
  int r = UV_EAGAIN;
  if (n < 0) { uv_close((uv_handle_t *)s, on_closed); return; }
  if (n == 0) return;
  out = uv_buf_init(b->base, (unsigned)n);
  if (s->write_queue_size == 0) r = uv_try_write(s, &out, 1);
  if (r == n) return;
  if (r > 0) { out.base += r; out.len -= (unsigned)r; }
  else if (r != UV_EAGAIN) { uv_close((uv_handle_t *)s, on_closed); return; }
  {
    wreq *w = malloc(sizeof *w + out.len);
    memcpy(w->data, out.base, out.len);
    out.base = w->data;
    uv_write(&w->req, s, &out, 1, on_written);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  uv_tcp_t *c;
  if (status < 0) return;
  c = malloc(sizeof *c);
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t *)c) != 0) { uv_close((uv_handle_t *)c, on_closed); return; }
  uv_tcp_nodelay(c, 1);
  uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  struct sockaddr_storage ss;
  int len = sizeof ss, r;
  uv_ip4_addr("127.0.0.1", argc > 1 ? atoi(argv[1]) : 0, &addr);
  uv_tcp_init(loop, &server);
  if ((r = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0)) != 0 ||
      (r = uv_listen((uv_stream_t *)&server, 1024, on_connection)) != 0) {
    fprintf(stderr, "echo_server: %s\n", uv_strerror(r));
    return 1;
  }
  uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
  printf("port %d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
  fflush(stdout);
  return uv_run(loop, UV_RUN_DEFAULT);
}
