/*
** redis.c: the native half of async.redis (module "async.core.redis"): one
** hiredis async context per connection, driven by the host's loop
** (redis_reply.c converts replies and arguments). Policy (URLs, reconnect,
** the pool, shorthands, pub/sub bookkeeping) is in lua/async/redis.lua.
**
** The adapter. hiredis owns the socket and its buffers and says through
** its `ev` hooks whether it wants to read or write; we keep one uv_poll_t
** on that fd with those events and call redisAsyncHandleRead/Write when it
** fires. hiredis 0.14 has no timer hook: timeouts are the caller's
** (async.timeout around a wait), and a cancelled command simply leaves its
** reply to be read and dropped, so the pipeline's order is never broken.
**
** Lifetimes. A connection is a malloc'd Conn with the poll handle inside;
** its Lua object (a Box) only points at it. hiredis frees its context on a
** lost connection or on redisAsyncFree; either way it calls our `cleanup`
** hook after every pending reply callback has run (with a NULL reply).
** cleanup wakes whoever still waits on the connection, cuts the Box's
** pointer and closes the poll handle; the Conn is freed in the close
** callback. Each command is a malloc'd Op that hiredis hands back exactly
** once, to reply_cb, which frees it: the Op, and the lasync_Wait in it,
** outlive any cancellation of the task that waited.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include "lasync.h"
#include "module.h"
#include "io/io.h"
#include "db/redis.h"

#define CONN_MT "lasync.RedisConn"

static const char *const state_names[] = {"connecting", "open", "lost", "closed"};

struct Conn {
  redisAsyncContext *ac;        /* NULL once hiredis freed it */
  uv_poll_t poll;
  int events;
  int inflight;                 /* commands sent and not yet answered */
  lasync_Host *H;
  lua_State *L;                 /* the state for wakes while Lua calls in */
  Box *box;
  lasync_Wait ready;            /* conn:ready() */
  lasync_Wait msg;              /* conn:next_message() */
};

typedef struct Pipe Pipe;

/* One command in flight. A pipeline's commands share a Pipe. */
typedef struct Op {
  lasync_Wait wait;
  Conn *c;
  Pipe *pipe;
  int index;
} Op;

struct Pipe {
  lasync_Wait wait;
  int results_ref;              /* table of the replies, by index */
  int left;                     /* replies still to come */
};

static int live_conns;          /* all hosts: for the tests' leak check */

/* ------------------------------------------------------- the loop side */

/* The state to wake tasks from, or NULL when Lua must not be touched. */
static lua_State *conn_state(Conn *c) {
  return c->L ? c->L : lasync_state(c->H);
}

/* The poll keeps the loop alive only while something waits on Redis: an
** idle connection, like an idle pool, does not hold a process open. */
static void conn_ref(Conn *c) {
  uv_handle_t *h = (uv_handle_t *)&c->poll;
  if (uv_is_closing(h)) return;
  if (c->inflight > 0 || c->ready.task || c->msg.task) uv_ref(h);
  else uv_unref(h);
}

static void conn_poll_cb(uv_poll_t *p, int status, int events) {
  Conn *c = container_of(p, Conn, poll);
  if (status < 0) events = UV_READABLE;  /* the read finds the error */
  if (c->ac && (events & UV_READABLE)) redisAsyncHandleRead(c->ac);
  if (c->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(c->ac);
  if (c->ac) conn_ref(c);
}

static void conn_set_events(Conn *c, int events) {
  if (events == c->events || uv_is_closing((uv_handle_t *)&c->poll)) return;
  c->events = events;
  if (events) uv_poll_start(&c->poll, events, conn_poll_cb);
  else uv_poll_stop(&c->poll);
}

static void ev_add_read(void *d) { Conn *c = d; conn_set_events(c, c->events | UV_READABLE); }
static void ev_del_read(void *d) { Conn *c = d; conn_set_events(c, c->events & ~UV_READABLE); }
static void ev_add_write(void *d) { Conn *c = d; conn_set_events(c, c->events | UV_WRITABLE); }
static void ev_del_write(void *d) { Conn *c = d; conn_set_events(c, c->events & ~UV_WRITABLE); }

static void conn_close_cb(uv_handle_t *h) {
  free(container_of((uv_poll_t *)h, Conn, poll));
  live_conns--;
}

/* Wakes the wait w (if a task still waits on it) with the connection's
** error. */
static void conn_wake_lost(Conn *c, lasync_Wait *w, const char *op) {
  lua_State *L = conn_state(c);
  if (w->task == NULL || L == NULL || c->box == NULL) return;
  lasync__redis_push_lost(L, c->box, op);
  lasync_wake_error(L, w);
}

/* hiredis' cleanup hook: the context is being freed, every reply callback
** has run. Whoever still waits hears why; the poll handle closes. */
static void ev_cleanup(void *d) {
  Conn *c = d;
  if (c->box) lasync__redis_box_lost(c->box, c->ac, 0);
  conn_wake_lost(c, &c->ready, "redis.connect");
  conn_wake_lost(c, &c->msg, "redis.message");
  if (c->box) c->box->c = NULL;
  c->ac = NULL;
  uv_close((uv_handle_t *)&c->poll, conn_close_cb);
}

static void on_connect(const redisAsyncContext *ac, int status) {
  Conn *c = ac->data;
  lua_State *L = conn_state(c);
  if (status != REDIS_OK) return;       /* hiredis frees it: ev_cleanup */
  if (c->box) c->box->state = S_OPEN;
  if (c->ready.task && L) {
    lua_pushboolean(L, 1);
    lasync_wake_values(L, &c->ready, 1);
  }
}

/* hiredis calls it once per command: with the reply, or NULL when the
** connection went away first. */
static void reply_cb(redisAsyncContext *ac, void *reply, void *privdata) {
  Op *op = privdata;
  Conn *c = ac->data;
  lua_State *L = conn_state(c);
  const redisReply *r = reply;
  lasync_Wait *w = op->pipe ? &op->pipe->wait : &op->wait;
  c->inflight--;
  if (L && w->task) {
    if (r == NULL) {
      if (c->box) lasync__redis_box_lost(c->box, ac, 0);
      lasync__redis_push_lost(L, c->box, "redis.call");
      lasync_wake_error(L, w);
    } else if (op->pipe) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, op->pipe->results_ref);
      lasync__redis_push_reply(L, r);
      lua_rawseti(L, -2, op->index);
      lua_pop(L, 1);
    } else if (r->type == REDIS_REPLY_ERROR) {
      lasync__redis_push_reply(L, r);
      lasync_wake_error(L, w);
    } else {
      lasync__redis_push_reply(L, r);
      lasync_wake_values(L, w, 1);
    }
  }
  if (op->pipe && --op->pipe->left == 0) {
    if (L && op->pipe->wait.task) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, op->pipe->results_ref);
      lasync_wake_values(L, &op->pipe->wait, 1);
    }
    if (L) luaL_unref(L, LUA_REGISTRYINDEX, op->pipe->results_ref);
    free(op->pipe);
  }
  free(op);
}

/* Pub/sub: every message, confirmation and (at the end) NULL of the
** subscriptions comes here; privdata is the Conn. A waiting reader gets
** the message at once, otherwise it joins the inbox. */
static void sub_cb(redisAsyncContext *ac, void *reply, void *privdata) {
  Conn *c = privdata;
  lua_State *L = conn_state(c);
  Box *b = c->box;
  (void)ac;
  if (reply == NULL || L == NULL || b == NULL) return;
  lasync__redis_push_reply(L, reply);
  if (c->msg.task) {
    lasync_wake_values(L, &c->msg, 1);
    return;
  }
  if (b->inbox_ref == LUA_NOREF) {
    lua_newtable(L);
    b->inbox_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, b->inbox_ref);
  lua_insert(L, -2);
  lua_rawseti(L, -2, b->tail++);
  lua_pop(L, 1);
}

/* ------------------------------------------------------------ Lua side */

static Box *check_box(lua_State *L) {
  return (Box *)luaL_checkudata(L, 1, CONN_MT);
}

/* The open (or connecting) connection at 1; raises its error otherwise. */
static Conn *check_conn(lua_State *L, const char *op) {
  Box *b = check_box(L);
  if (b->c == NULL) {
    lasync__redis_push_lost(L, b, op);
    lua_error(L);
  }
  return b->c;
}

/* Frees the context from Lua (close, __gc): pending commands fail with
** ECLOSED, waiting readers wake. */
static void conn_free(lua_State *L, Box *b) {
  Conn *c = b->c;
  if (b->state != S_LOST) b->state = S_CLOSED;
  if (c == NULL) return;
  c->L = L;
  redisAsyncFree(c->ac);                /* runs the callbacks and ev_cleanup */
}

/* open(host, port) or open(path): starts connecting and pushes the Conn
** object at once (conn:ready() waits for it). The host must be an IP
** address: names are resolved by the caller, without blocking. */
static int l_open(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int unix_sock = lua_isnoneornil(L, 2);
  lua_Integer port = unix_sock ? 0 : luaL_checkinteger(L, 2);
  lasync_Host *H = lasync_host(L);
  Box *b;
  luaL_argcheck(L, unix_sock || (port > 0 && port < 65536), 2, "port out of range");
  b = lua_newuserdatauv(L, sizeof *b, 0);
  Conn *c;
  redisAsyncContext *ac;
  memset(b, 0, sizeof *b);
  b->inbox_ref = LUA_NOREF;
  b->head = b->tail = 1;
  if (unix_sock) snprintf(b->addr, sizeof b->addr, "unix:%s", host);
  else snprintf(b->addr, sizeof b->addr, "%s:%d", host, (int)port);
  luaL_setmetatable(L, CONN_MT);
  b->state = S_CONNECTING;
  ac = unix_sock ? redisAsyncConnectUnix(host) : redisAsyncConnect(host, (int)port);
  if (ac == NULL) return luaL_error(L, "redis.connect: out of memory");
  if (ac->err) {
    lasync__redis_box_lost(b, ac, 0);
    lasync__redis_push_lost(L, b, "redis.connect");
    b->state = S_CLOSED;
    redisAsyncFree(ac);
    return lua_error(L);
  }
  c = calloc(1, sizeof *c);
  if (c == NULL || uv_poll_init_socket(lasync_loop(H), &c->poll, ac->c.fd) != 0) {
    free(c);
    redisAsyncFree(ac);
    return luaL_error(L, "redis.connect: cannot watch the socket");
  }
  live_conns++;
  c->ac = ac;
  c->H = H;
  c->box = b;
  b->c = c;
  b->state = S_CONNECTING;
  ac->data = c;
  ac->ev.data = c;
  ac->ev.addRead = ev_add_read;
  ac->ev.delRead = ev_del_read;
  ac->ev.addWrite = ev_add_write;
  ac->ev.delWrite = ev_del_write;
  ac->ev.cleanup = ev_cleanup;
  redisAsyncSetConnectCallback(ac, on_connect);
  conn_set_events(c, UV_WRITABLE);      /* connect(2) completes: writable */
  conn_ref(c);
  return 1;
}

static void wait_unref(lasync_Wait *w) {
  Conn *c = w->data;
  conn_ref(c);
}

/* conn:ready(): waits until the connection is established; raises its
** IOError when it cannot be (ECONNREFUSED, ...). */
static int l_ready(lua_State *L) {
  Conn *c = check_conn(L, "redis.connect");
  if (c->box->state == S_OPEN) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (c->ready.task) return luaL_error(L, "redis: another task waits for this connection");
  lasync_checktask(L, "redis.connect");
  c->ready.data = c;
  c->ready.what = "redis.connect";
  uv_ref((uv_handle_t *)&c->poll);
  return lasync_wait(L, &c->ready, wait_unref, NULL, 0);
}

#define MAX_ARGS 256

/* Appends one command for op; returns 0 (op not taken) when hiredis
** refuses it (the context is being closed). */
static int send_op(Conn *c, Op *op, int n, const char **argv, const size_t *lens) {
  op->c = c;
  if (redisAsyncCommandArgv(c->ac, reply_cb, op, n, argv, lens) != REDIS_OK) return 0;
  c->inflight++;
  return 1;
}

#define REFUSED "redis: the connection does not take commands now"

/* A subscribed context routes every reply by its channel name: a plain
** command's reply there could reach the wrong callback (hiredis 0.14), so
** a subscribed connection takes only (un)subscribe commands. */
static void check_unsubscribed(lua_State *L, Conn *c, const char *what) {
  if (c->ac->c.flags & REDIS_SUBSCRIBED)
    luaL_error(L, "%s: the connection is subscribed (only (un)subscribe commands)", what);
}

static int is_sub_command(const char *s) {
  if (s[0] == 'p' || s[0] == 'P') s++;
  return strcasecmp(s, "subscribe") == 0 || strcasecmp(s, "unsubscribe") == 0;
}

/* conn:call(cmd, ...): sends one command and waits for its reply; raises
** the RedisError of an error reply. */
static int l_call(lua_State *L) {
  Conn *c = check_conn(L, "redis.call");
  int top = lua_gettop(L), n;
  Args a;
  Op *op;
  if (top < 2) return luaL_error(L, "bad argument #1 to 'call' (command name expected)");
  lasync__redis_check_args(L, 2, top, "call");
  lasync_checktask(L, "redis.call");
  if (c->box->state != S_OPEN) return luaL_error(L, "redis.call: not connected yet");
  check_unsubscribed(L, c, "redis.call");
  lasync__redis_args_init(L, &a, top - 1);
  if ((op = calloc(1, sizeof *op)) == NULL) {
    lasync__redis_args_free(&a);
    return luaL_error(L, "redis: out of memory");
  }
  n = lasync__redis_collect_args(L, 2, top, a.argv, a.lens);
  n = send_op(c, op, n, a.argv, a.lens);
  lasync__redis_args_free(&a);
  if (!n) {
    free(op);
    return luaL_error(L, REFUSED);
  }
  uv_ref((uv_handle_t *)&c->poll);
  op->wait.what = "redis.call";
  return lasync_wait(L, &op->wait, NULL, NULL, 0);
}

/* conn:pipeline(cmds): sends every command of the list cmds (each a list
** of strings and numbers) at once and waits for all the replies; returns
** them as a list, error replies as RedisError values in their place. */
static int l_pipeline(lua_State *L) {
  Conn *c = check_conn(L, "redis.pipeline");
  lua_Integer i, n;
  Pipe *p;
  luaL_checktype(L, 2, LUA_TTABLE);
  n = luaL_len(L, 2);
  for (i = 1; i <= n; i++) {             /* check all before sending any */
    lua_Integer k, len;
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
      return luaL_error(L, "redis.pipeline: command %d is a %s (a list expected)",
                        (int)i, luaL_typename(L, -1));
    if ((len = luaL_len(L, -1)) < 1)
      return luaL_error(L, "redis.pipeline: command %d is empty", (int)i);
    for (k = 1; k <= len; k++) {
      int t = lua_rawgeti(L, -1, k);
      if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_error(L, "redis.pipeline: command %d, argument %d is a %s (string or "
                          "number expected)", (int)i, (int)k, luaL_typename(L, -1));
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lasync_checktask(L, "redis.pipeline");
  if (c->box->state != S_OPEN) return luaL_error(L, "redis.pipeline: not connected yet");
  check_unsubscribed(L, c, "redis.pipeline");
  lua_createtable(L, (int)n, 0);
  if (n == 0) return 1;
  if ((p = calloc(1, sizeof *p)) == NULL) return luaL_error(L, "redis: out of memory");
  p->results_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  for (i = 1; i <= n; i++) {
    Args a;
    Op *op;
    int base = lua_gettop(L), k, len, ok = 0;
    lua_rawgeti(L, 2, i);
    len = (int)luaL_len(L, base + 1);
    luaL_checkstack(L, len + 4, "redis.pipeline: command too long");
    for (k = 1; k <= len; k++) lua_rawgeti(L, base + 1, k);
    lasync__redis_args_init(L, &a, len);
    if ((op = calloc(1, sizeof *op)) != NULL) {
      op->pipe = p;
      op->index = (int)i;
      lasync__redis_collect_args(L, base + 2, base + 1 + len, a.argv, a.lens);
      ok = send_op(c, op, len, a.argv, a.lens);
      if (!ok) free(op);
    }
    lasync__redis_args_free(&a);
    lua_settop(L, base);
    if (!ok) {                          /* out of memory, or closing */
      if (p->left == 0) { luaL_unref(L, LUA_REGISTRYINDEX, p->results_ref); free(p); }
      return luaL_error(L, REFUSED);
    }
    p->left++;
  }
  uv_ref((uv_handle_t *)&c->poll);
  p->wait.what = "redis.pipeline";
  return lasync_wait(L, &p->wait, NULL, NULL, 0);
}

/* conn:subscribe(cmd, name, ...): sends SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE
** or PUNSUBSCRIBE; the confirmations and messages arrive through
** conn:next_message(). Returns at once. */
static int l_subscribe(lua_State *L) {
  Conn *c = check_conn(L, "redis.subscribe");
  int top = lua_gettop(L), n, ok;
  Args a;
  lasync__redis_check_args(L, 2, top, "subscribe");
  if (top >= 2 && !is_sub_command(lua_tostring(L, 2)))
    return luaL_error(L, "redis.subscribe: (P)SUBSCRIBE or (P)UNSUBSCRIBE expected");
  if (top < 2) return luaL_error(L, "bad argument #1 to 'subscribe' (command expected)");
  if (c->box->state != S_OPEN) return luaL_error(L, "redis.subscribe: not connected yet");
  lasync__redis_args_init(L, &a, top - 1);
  n = lasync__redis_collect_args(L, 2, top, a.argv, a.lens);
  ok = redisAsyncCommandArgv(c->ac, sub_cb, c, n, a.argv, a.lens) == REDIS_OK;
  lasync__redis_args_free(&a);
  if (!ok) return luaL_error(L, "redis.subscribe: refused (not subscribed, or closing)");
  return 0;
}

/* conn:next_message(): the next pub/sub reply (a list: "message", channel,
** payload; "pmessage", pattern, channel, payload; "subscribe", name,
** count; ...); waits for one. Raises the connection's error once it is
** gone and every message received before has been read. */
static int l_next_message(lua_State *L) {
  Box *b = check_box(L);
  Conn *c = b->c;
  if (b->head < b->tail) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, b->inbox_ref);
    lua_rawgeti(L, -1, b->head);
    lua_pushnil(L);
    lua_rawseti(L, -3, b->head++);
    return 1;
  }
  if (c == NULL) {
    lasync__redis_push_lost(L, b, "redis.message");
    return lua_error(L);
  }
  if (c->msg.task) return luaL_error(L, "redis: another task reads this connection's messages");
  lasync_checktask(L, "redis.message");
  c->msg.data = c;
  c->msg.what = "redis.message";
  uv_ref((uv_handle_t *)&c->poll);
  return lasync_wait(L, &c->msg, wait_unref, NULL, 0);
}

static void box_drop_inbox(lua_State *L, Box *b) {
  luaL_unref(L, LUA_REGISTRYINDEX, b->inbox_ref);
  b->inbox_ref = LUA_NOREF;
  b->head = b->tail = 1;
}

/* conn:close(), __close, __gc: commands in flight fail with ECLOSED.
** Idempotent. */
static int l_close(lua_State *L) {
  Box *b = check_box(L);
  conn_free(L, b);
  box_drop_inbox(L, b);
  return 0;
}

/* conn:status(): "connecting", "open", "lost" or "closed", and for a lost
** one its code and message. */
static int l_status(lua_State *L) {
  Box *b = check_box(L);
  lua_pushstring(L, state_names[b->state]);
  if (b->state != S_LOST) return 1;
  lua_pushstring(L, b->code);
  lua_pushstring(L, b->err);
  return 3;
}

/* conn:inflight(): commands sent and not yet answered. */
static int l_inflight(lua_State *L) {
  Box *b = check_box(L);
  lua_pushinteger(L, b->c ? b->c->inflight : 0);
  return 1;
}

static int l_tostring(lua_State *L) {
  Box *b = check_box(L);
  lua_pushfstring(L, "redis connection %s (%s)", b->addr, state_names[b->state]);
  return 1;
}

/* stats(): {connections = n}, the connections not yet freed. */
static int l_stats(lua_State *L) {
  lua_createtable(L, 0, 1);
  lua_pushinteger(L, live_conns);
  lua_setfield(L, -2, "connections");
  return 1;
}

static const luaL_Reg conn_meta[] = {
  {"__gc", l_close}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}
};

static const luaL_Reg conn_methods[] = {
  {"ready", l_ready}, {"call", l_call}, {"pipeline", l_pipeline},
  {"subscribe", l_subscribe}, {"next_message", l_next_message},
  {"close", l_close}, {"status", l_status}, {"inflight", l_inflight},
  {NULL, NULL}
};

int lasync__luaopen_redis(lua_State *L) {
  lua_newtable(L);
  lasync__class(L, CONN_MT, conn_meta, conn_methods);
  lua_setfield(L, -2, "Conn");
  lasync__error_class(L, LASYNC_REDISERROR_MT);
  lua_setfield(L, -2, "RedisError");
  lasync__ioerror_class(L);
  lua_setfield(L, -2, "IOError");
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "open");
  lua_pushcfunction(L, l_stats);
  lua_setfield(L, -2, "stats");
  return 1;
}
