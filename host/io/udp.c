/*
** udp.c: require "async.core.udp", the C half of async.net's UDP sockets:
** bind, send_to, recv_from, connect, send, recv.
**
** Receiving starts with the first recv and then runs ahead into a queue of
** datagrams (copied out of a 64 KiB buffer of the socket's own); at
** RECV_QUEUE datagrams it pauses and the kernel's buffer takes over, so a
** slow reader holds bounded memory and the kernel drops the excess, as UDP
** does. Sending first tries the socket directly (uv_udp_try_send); only
** when the kernel would block is the datagram copied into a request, and
** the sender waits for it. A cancelled send still goes out: the request
** owns its copy and frees it in its callback.
*/
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "io/io.h"

#define UDP_MT "lasync.Udp"
#define RECV_QUEUE 64
#define DGRAM_MAX 65536           /* the receive buffer */
#define SEND_MAX 65507            /* 65535 less the IPv4 and UDP headers */

typedef struct Datagram {
  struct Datagram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[];
} Datagram;

typedef struct Udp {
  uv_udp_t h;                     /* first: a handle pointer is the Udp */
  lasync_Host *H;
  struct Udp **box;
  lasync_Wait rwait;              /* the task in recv / recv_from */
  int waiting, receiving, rerr;
  Datagram *head, *tail;
  int count;
  char *buf;                      /* what libuv receives into */
  char desc[64];
} Udp;

typedef struct SendReq {
  uv_udp_send_t req;
  lasync_Wait wait;
  lasync_Host *H;
  char data[];
} SendReq;

static Udp **udp_box(lua_State *L) { return (Udp **)luaL_checkudata(L, 1, UDP_MT); }

static Udp *udp_check(lua_State *L, const char *op) {
  Udp *u = *udp_box(L);
  if (u == NULL) lasync__closed_error(L, op, "UDP socket");
  return u;
}

/* ------------------------------------------------------------ receiving */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b) {
  Udp *u = (Udp *)h;
  (void)suggested;
  b->base = u->buf;
  b->len = DGRAM_MAX;
}

static void udp_pump(Udp *u);

static void on_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b,
                    const struct sockaddr *from, unsigned flags) {
  Udp *u = (Udp *)h;
  (void)flags;
  if (n < 0) u->rerr = (int)n;
  else if (from != NULL) {                /* n == 0 with an address: empty datagram */
    Datagram *d = (Datagram *)malloc(sizeof *d + (size_t)n);
    if (d == NULL) u->rerr = UV_ENOBUFS;
    else {
      memcpy(d->data, b->base, (size_t)n);
      d->len = (size_t)n;
      memcpy(&d->from, from, from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                          : sizeof(struct sockaddr_in));
      d->next = NULL;
      if (u->tail) u->tail->next = d;
      else u->head = d;
      u->tail = d;
      u->count++;
    }
  }
  if (u->waiting && (u->head || u->rerr)) {
    u->waiting = 0;
    lasync_wake(&u->rwait);
  }
  udp_pump(u);
}

/* Receives while someone waits or the queue has room. */
static void udp_pump(Udp *u) {
  int want = u->rerr == 0 && (u->waiting || u->count < RECV_QUEUE);
  if (want == u->receiving) return;
  if (want) {
    int r;
    if (u->buf == NULL && (u->buf = (char *)malloc(DGRAM_MAX)) == NULL) r = UV_ENOMEM;
    else r = uv_udp_recv_start(&u->h, on_alloc, on_recv);
    if (r == 0) u->receiving = 1;
    else u->rerr = r;
  }
  else {
    uv_udp_recv_stop(&u->h);
    u->receiving = 0;
  }
}

static void recv_cancel(lasync_Wait *w) {
  Udp *u = container_of(w, Udp, rwait);
  u->waiting = 0;
  udp_pump(u);
}

static int recv_k(lua_State *L, int status, lua_KContext ctx);

/* recv_from() -> data, ip, port; recv() -> data (ctx 1: with the sender). */
static int recv_step(lua_State *L, int from, int first) {
  const char *op = from ? "recv_from" : "recv";
  Udp *u = *udp_box(L);
  Datagram *d;
  if (u == NULL) {
    if (first) return lasync__closed_error(L, op, "UDP socket");
    return lasync__closed_waiting_error(L, op, "UDP socket");
  }
  if ((d = u->head) != NULL) {
    int n = 1;
    lua_pushlstring(L, d->data, d->len);
    if (from) n += lasync__addr_push(L, (struct sockaddr *)&d->from);
    if ((u->head = d->next) == NULL) u->tail = NULL;
    u->count--;
    free(d);
    udp_pump(u);
    return n;
  }
  if (u->rerr) {
    int e = u->rerr;
    u->rerr = 0;                          /* e.g. ECONNREFUSED from an ICMP: once */
    udp_pump(u);
    return lasync__ioerror(L, e, op, "address", u->desc);
  }
  if (first && u->waiting) return luaL_error(L, "%s: another task is already receiving", op);
  lasync_checktask(L, op);
  u->waiting = 1;
  udp_pump(u);
  lua_settop(L, 1);
  u->rwait.what = "udp recv";
  return lasync_wait(L, &u->rwait, recv_cancel, recv_k, from);
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return recv_step(L, (int)ctx, 0);
}

static int udp_recv_from(lua_State *L) { return recv_step(L, 1, 1); }
static int udp_recv(lua_State *L) { return recv_step(L, 0, 1); }

/* -------------------------------------------------------------- sending */

static void on_send(uv_udp_send_t *req, int status) {
  SendReq *q = (SendReq *)req;
  if (q->wait.task) {
    lua_State *L = lasync_state(q->H);
    lua_pushinteger(L, status);
    lasync_wake_values(L, &q->wait, 1);
  }
  free(q);
}

/* After a send that waited: ctx is the stack index of op, then where. */
static int send_k(lua_State *L, int status, lua_KContext ctx) {
  int st = (int)lua_tointeger(L, -1);
  (void)status;
  if (st < 0)
    return lasync__ioerror(L, st, lua_tostring(L, (int)ctx), "address", lua_tostring(L, (int)ctx + 1));
  return 0;
}

/* Sends the string at 2 to addr (NULL: the connected peer); errors name
** `where`, the target (they named our own socket, "127.0.0.1:0"). */
static int udp_send_aux(lua_State *L, Udp *u, const struct sockaddr *addr, const char *op,
                        const char *where) {
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
  SendReq *q;
  int r;
  if (len > SEND_MAX)
    return luaL_error(L, "%s %s: datagram too large (%I bytes; at most %d)", op, where,
                      (LUAI_UACINT)len, SEND_MAX);
  r = uv_udp_try_send(&u->h, &b, 1, addr);
  if (r >= 0) return 0;
  if (r != UV_EAGAIN && r != UV_ENOSYS) return lasync__ioerror(L, r, op, "address", where);
  lasync_checktask(L, op);
  if ((q = (SendReq *)calloc(1, sizeof *q + len)) == NULL) return luaL_error(L, "not enough memory");
  memcpy(q->data, p, len);
  q->H = u->H;
  b = uv_buf_init(q->data, (unsigned)len);
  if ((r = uv_udp_send(&q->req, &u->h, &b, 1, addr, on_send)) != 0) {
    free(q);
    return lasync__ioerror(L, r, op, "address", where);
  }
  lua_pushstring(L, op);
  lua_pushstring(L, where);
  q->wait.what = "udp send";
  return lasync_wait(L, &q->wait, NULL, send_k, lua_gettop(L) - 1);
}

/* send_to(data, ip, port) */
static int udp_send_to(lua_State *L) {
  Udp *u = udp_check(L, "send_to");
  struct sockaddr_storage ss;
  char to[64];
  lasync__addr_check(L, 3, &ss);
  lasync__addr_format((struct sockaddr *)&ss, to, sizeof to);
  return udp_send_aux(L, u, (struct sockaddr *)&ss, "send_to", to);
}

/* send(data): to the connected peer */
static int udp_send(lua_State *L) {
  Udp *u = udp_check(L, "send");
  return udp_send_aux(L, u, NULL, "send", u->desc);
}

/* connect(ip, port): fixes the peer (send/recv; others' datagrams are dropped). */
static int udp_connect(lua_State *L) {
  Udp *u = udp_check(L, "connect");
  struct sockaddr_storage ss;
  int r;
  lasync__addr_check(L, 2, &ss);
  if ((r = uv_udp_connect(&u->h, (struct sockaddr *)&ss)) != 0)
    return lasync__ioerror(L, r, "connect", "address", lasync__addr_format((struct sockaddr *)&ss, u->desc, sizeof u->desc));
  return 0;
}

/* --------------------------------------------------------------- the rest */

static int udp_name(lua_State *L, int peer) {
  Udp *u = udp_check(L, peer ? "peer" : "address");
  struct sockaddr_storage ss;
  int len = (int)sizeof ss;
  int r = peer ? uv_udp_getpeername(&u->h, (struct sockaddr *)&ss, &len)
               : uv_udp_getsockname(&u->h, (struct sockaddr *)&ss, &len);
  if (r) return lasync__ioerror(L, r, peer ? "peer" : "address", "address", u->desc);
  return lasync__addr_push(L, (struct sockaddr *)&ss);
}

static int udp_address(lua_State *L) { return udp_name(L, 0); }
static int udp_peer(lua_State *L) { return udp_name(L, 1); }

static int udp_set_broadcast(lua_State *L) {
  Udp *u = udp_check(L, "set_broadcast");
  int r = uv_udp_set_broadcast(&u->h, lua_isnone(L, 2) || lua_toboolean(L, 2));
  if (r) return lasync__ioerror(L, r, "set_broadcast", "address", u->desc);
  return 0;
}

static void udp_close_cb(uv_handle_t *h) {
  Udp *u = (Udp *)h;
  while (u->head) {
    Datagram *d = u->head;
    u->head = d->next;
    free(d);
  }
  free(u->buf);
  free(u);
}

static void udp_shut(Udp *u) {
  *u->box = NULL;
  if (u->waiting) {
    u->waiting = 0;
    lasync_wake(&u->rwait);               /* recv finds it closed */
  }
  uv_close((uv_handle_t *)&u->h, udp_close_cb);
}

static int udp_close(lua_State *L) {
  Udp *u = *udp_box(L);
  if (u) udp_shut(u);
  return 0;
}

static int udp_closed(lua_State *L) {
  lua_pushboolean(L, *udp_box(L) == NULL);
  return 1;
}

static int udp_tostring(lua_State *L) {
  Udp *u = *udp_box(L);
  if (u == NULL) lua_pushliteral(L, "Udp<closed>");
  else lua_pushfstring(L, "Udp<%s>", u->desc);
  return 1;
}

/* udp_bind(ip, port [, reuseaddr]): a UDP socket bound to ip:port. */
static int l_udp_bind(lua_State *L) {
  struct sockaddr_storage ss;
  Udp **box, *u;
  int r;
  lasync__addr_check(L, 1, &ss);
  box = (Udp **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, UDP_MT);
  if ((u = (Udp *)calloc(1, sizeof *u)) == NULL) return luaL_error(L, "not enough memory");
  u->H = lasync_host(L);
  lasync__addr_format((struct sockaddr *)&ss, u->desc, sizeof u->desc);
  if ((r = uv_udp_init_ex(lasync_loop(u->H), &u->h, ss.ss_family)) != 0) {
    free(u);
    return lasync__ioerror(L, r, "bind", "address", lua_tostring(L, 1));
  }
  u->box = box;
  *box = u;
  r = uv_udp_bind(&u->h, (struct sockaddr *)&ss, lua_toboolean(L, 3) ? UV_UDP_REUSEADDR : 0);
  if (r) {
    lua_pushstring(L, u->desc);
    udp_shut(u);
    return lasync__ioerror(L, r, "bind", "address", lua_tostring(L, -1));
  }
  return 1;
}

static const luaL_Reg udp_methods[] = {
  {"send_to", udp_send_to}, {"send", udp_send}, {"recv_from", udp_recv_from},
  {"recv", udp_recv}, {"connect", udp_connect}, {"address", udp_address},
  {"peer", udp_peer}, {"set_broadcast", udp_set_broadcast},
  {"close", udp_close}, {"closed", udp_closed}, {NULL, NULL}
};

int lasync__luaopen_udp(lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", udp_close}, {"__close", udp_close}, {"__tostring", udp_tostring},
    {NULL, NULL}
  };
  lasync__class(L, UDP_MT, meta, udp_methods);
  lua_pop(L, 1);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, l_udp_bind);
  lua_setfield(L, -2, "udp_bind");
  return 1;
}
