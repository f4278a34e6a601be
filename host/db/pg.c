/*
** pg.c: require "async.core.pg", a PostgreSQL connection (libpq) driven by
** the loop: libpq in non-blocking pipeline mode, a uv_poll on PQsocket,
** and tasks that wait on a request with a wait record like any other
** (docs/pg.md). Statements are sent by pg_query.c; values are converted by
** pg_types.c.
**
** Every statement is followed by its own Sync, so many tasks may have
** statements in flight on one connection (one round trip for all of them)
** while an error still ends only its own statement. Results come back in
** the order sent; the head of the request list is the statement the
** server runs now.
**
** libpq may close its socket inside any call that reads or writes (a
** lost connection, a reconnection while connecting); after each such call
** the poll handle is checked against PQsocket and closed first, so libuv
** never watches a descriptor libpq closed.
**
** A cancelled request stays in the list (its results must be read) and is
** dropped when they arrive; if the server runs it now, a cancel request is
** sent from a thread of libuv's pool (PQcancel blocks; libpq 15 has no
** non-blocking cancel).
*/
#include <stdlib.h>
#include <string.h>
#include "db/pg.h"

static void poll_freed(uv_handle_t *h) { free(h); }

/* Closes the poll handle if any (before libpq's socket goes). */
static void conn_unwatch(PgConn *c) {
  if (c->poll) {
    uv_close((uv_handle_t *)c->poll, poll_freed);
    c->poll = NULL;
  }
  c->fd = -1;
  c->events = 0;
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches `events` on libpq's socket now, following a socket change.
** Returns 0, or a libuv error. */
int lasync__pg_watch(PgConn *c, int events) {
  int fd = c->pg ? PQsocket(c->pg) : -1, r;
  if (fd != c->fd) conn_unwatch(c);
  if (fd < 0) return 0;
  if (c->poll == NULL) {
    if ((c->poll = (uv_poll_t *)malloc(sizeof *c->poll)) == NULL) return UV_ENOMEM;
    if ((r = uv_poll_init(lasync_loop(c->H), c->poll, fd)) != 0) {
      free(c->poll);
      c->poll = NULL;
      return r;
    }
    c->poll->data = c;
    c->fd = fd;
  }
  if (events != c->events) {
    if ((r = uv_poll_start(c->poll, events, on_poll)) != 0) return r;
    c->events = events;
  }
  return 0;
}

/* ------------------------------------------------------------ ending */

int lasync__pg_ioerror(lua_State *L, PgConn *c, const char *msg) {
  const char *code = "EPGCONN";
  luaL_Buffer b;
  size_t n = strlen(msg);
  if (strstr(msg, "Connection refused")) code = "ECONNREFUSED";
  else if (strstr(msg, "No such file or directory")) code = "ENOENT";
  else if (strstr(msg, "closed the connection") || strstr(msg, "terminating connection"))
    code = "ECONNRESET";
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) n--;
  luaL_buffinit(L, &b);                  /* libpq's lines as one line */
  for (size_t i = 0; i < n; i++) luaL_addchar(&b, msg[i] == '\n' || msg[i] == '\t' ? ' ' : msg[i]);
  luaL_pushresult(&b);
  lasync__push_ioerror_msg(L, code, lua_tostring(L, -1), "pg", c->where[0] ? "address" : NULL,
                           c->where);
  lua_remove(L, -2);
  return 0;
}

/* Pushes the error a request or waiter gets once c is not usable. */
void lasync__pg_push_gone(lua_State *L, PgConn *c) {
  if (c->state == PG_BROKEN && c->error) lasync__pg_ioerror(L, c, c->error);
  else lasync__push_ioerror_msg(L, "ECANCELED", "connection closed", "pg",
                                c->where[0] ? "address" : NULL, c->where);
}

static void req_free(PgReq *q) {
  if (q->res) PQclear(q->res);
  free(q);
}

/* Ends c as `state` (PG_BROKEN with libpq's message, or PG_CLOSED): wakes
** every waiter with the error, frees the requests, finishes libpq. */
void lasync__pg_end(PgConn *c, int state, const char *why) {
  lua_State *L = lasync_state(c->H);
  PgReq *q;
  PGnotify *n;
  if (c->state == PG_CLOSED || c->state == PG_BROKEN) {   /* already ended */
    if (state == PG_CLOSED) c->state = PG_CLOSED;
    return;
  }
  c->state = state;
  if (why && !c->error) c->error = strdup(why);
  if (c->copyres) PQclear(c->copyres);
  c->copyres = NULL;
  conn_unwatch(c);
  if (c->pg) PQfinish(c->pg);
  c->pg = NULL;
  while ((q = c->head) != NULL) {
    c->head = q->next;
    lasync__pg_push_gone(L, c);
    lasync_wake_error(L, &q->wait);
    req_free(q);
  }
  c->tail = NULL;
  c->pending = 0;
  lasync__pg_push_gone(L, c);
  lasync_wake_error(L, &c->notify);
  lasync__pg_push_gone(L, c);
  lasync_wake_error(L, &c->connect);
  lasync__pg_push_gone(L, c);
  lasync_wake_error(L, &c->drain);
  lasync__pg_push_gone(L, c);
  lasync_wake_error(L, &c->copy);
  while ((n = c->nhead) != NULL) {
    c->nhead = n->next;
    PQfreemem(n);
  }
  c->ntail = NULL;
}

static void conn_broken(PgConn *c) {
  lasync__pg_end(c, PG_BROKEN, c->pg ? PQerrorMessage(c->pg) : "connection lost");
}

/* ------------------------------------------------------------ cancel */

typedef struct CancelWork {
  uv_work_t req;
  PGcancel *pc;
} CancelWork;

static void cancel_work(uv_work_t *req) {
  CancelWork *cw = (CancelWork *)req;
  char err[256];
  PQcancel(cw->pc, err, sizeof err);   /* a failure is no worse than no cancel */
}

static void cancel_after(uv_work_t *req, int status) {
  CancelWork *cw = (CancelWork *)req;
  (void)status;
  PQfreeCancel(cw->pc);
  free(cw);
}

/* Asks the server to stop the statement it runs now. */
static void conn_send_cancel(PgConn *c) {
  CancelWork *cw = (CancelWork *)calloc(1, sizeof *cw);
  if (cw == NULL) return;
  if ((cw->pc = PQgetCancel(c->pg)) == NULL ||
      uv_queue_work(lasync_loop(c->H), &cw->req, cancel_work, cancel_after) != 0) {
    if (cw->pc) PQfreeCancel(cw->pc);
    free(cw);
    return;
  }
  c->cancels++;
}

/* The waiting task was cancelled (its wait is over): the request stays
** until its results are read. If the server runs it now, stop it. A
** cancel request that arrives after the statement ended may stop the next
** one in the pipeline: PostgreSQL's cancel names a session, not a
** statement (docs/pg.md). */
void lasync__pg_req_cancel(lasync_Wait *w) {
  PgReq *q = container_of(w, PgReq, wait);
  PgConn *c = (PgConn *)q->wait.data;
  if (c && c->head == q && !q->synced && c->pg) conn_send_cancel(c);
}

/* ------------------------------------------------------------ results */

/* Runs in lua_pcall: pushes the caller's values of the request. */
static int push_result_protected(lua_State *L) {
  PgReq *q = (PgReq *)lua_touserdata(L, 1);
  lasync__pg_push_result(L, q->res, q->kind, 2);
  return 1;
}

/* The request's results are all in: wakes its task (if still waiting). */
static void req_finish(PgConn *c, PgReq *q) {
  lua_State *L = lasync_state(c->H);
  ExecStatusType st = q->res ? PQresultStatus(q->res) : PGRES_FATAL_ERROR;
  if (q->wait.task == NULL) {            /* cancelled: drop, note why */
    const char *s = q->res ? PQresultErrorField(q->res, PG_DIAG_SQLSTATE) : NULL;
    if (s) snprintf(c->discarded, sizeof c->discarded, "%s", s);
  }
  else if (st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) {
    if (q->res) lasync__pg_push_error(L, q->res);
    else lasync__pg_ioerror(L, c, "no result from the server");
    lasync_wake_error(L, &q->wait);
  }
  else {
    /* Everything the conversion allocates is kept, so the collector has
    ** nothing to free while it runs, yet each cycle it starts would walk
    ** the half-built rows again; it waits until they are built (one cycle
    ** then, not several). Not for small results: a restart clears the
    ** collector's debt, so the next allocation starts a step (a statement
    ** of one row then cost a step each: 10,000 of them, 11% more). */
    int gc = q->kind == REQ_ROWS && PQntuples(q->res) >= PG_MANY_ROWS &&
             lua_gc(L, LUA_GCISRUNNING), ok;
    if (gc) lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, push_result_protected);
    lua_pushlightuserdata(L, q);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->cfgref);
    ok = lua_pcall(L, 2, 1, 0) == LUA_OK;
    if (gc) lua_gc(L, LUA_GCRESTART);
    if (ok) lasync_wake_values(L, &q->wait, 1);
    else lasync_wake_error(L, &q->wait);
  }
  if (q->res) lasync__pg_clear_result(lasync_loop(c->H), q->res);
  q->res = NULL;
  req_free(q);
}

/* Keeps the result the caller gets: the first error, else the last. */
static void req_keep(PgReq *q, PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  if (q->res && (PQresultStatus(q->res) == PGRES_FATAL_ERROR ||
                 st == PGRES_PIPELINE_ABORTED)) {
    PQclear(r);
    return;
  }
  if (q->res) PQclear(q->res);
  q->res = r;
}

/* Takes every result that is complete, in order. */
static void conn_take_results(PgConn *c) {
  while (c->head && c->pg && !PQisBusy(c->pg)) {
    PgReq *q = c->head;
    PGresult *r = PQgetResult(c->pg);
    if (!q->synced) {
      if (r == NULL) q->synced = 1;      /* this statement's results end */
      else req_keep(q, r);
      continue;
    }
    if (r == NULL) break;                /* the Sync has not come yet */
    if (PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
      req_keep(q, r);                    /* not expected; keep the error */
      continue;
    }
    PQclear(r);
    if ((c->head = q->next) == NULL) c->tail = NULL;
    c->pending--;
    req_finish(c, q);
    if (c->pending == 0 && c->drain.task) lasync_wake(&c->drain);
  }
}

static void conn_take_notifications(PgConn *c) {
  PGnotify *n;
  while (c->pg && (n = PQnotifies(c->pg)) != NULL) {
    n->next = NULL;
    if (c->ntail) c->ntail->next = n;
    else c->nhead = n;
    c->ntail = n;
  }
  if (c->nhead && c->notify.task) lasync_wake(&c->notify);
}

/* Reads what came, flushes what is queued, watches for what is next. */
static void conn_io(PgConn *c, int events) {
  int flush = 0;
  if ((events & UV_WRITABLE) && (flush = PQflush(c->pg)) < 0) { conn_broken(c); return; }
  if ((events & UV_READABLE) && !PQconsumeInput(c->pg)) { conn_broken(c); return; }
  conn_take_results(c);
  conn_take_notifications(c);
  if (c->state != PG_READY) return;
  if (c->fatal) { lasync__pg_end(c, PG_BROKEN, c->fatal); return; }
  if (PQstatus(c->pg) == CONNECTION_BAD) { conn_broken(c); return; }
  if (!(events & UV_WRITABLE)) flush = PQflush(c->pg);
  if (flush < 0 || lasync__pg_watch(c, UV_READABLE | (flush ? UV_WRITABLE : 0)) != 0)
    conn_broken(c);
}

void lasync__pg_after_send(PgConn *c) {
  int flush = PQflush(c->pg);
  if (flush < 0 || lasync__pg_watch(c, UV_READABLE | (flush ? UV_WRITABLE : 0)) != 0)
    conn_broken(c);
}

/* ------------------------------------------------------------ connect */

/* The server's address for errors: "host:port" or the socket directory
** (never the conninfo, which may hold a password). */
static void conn_where(PgConn *c) {
  const char *host = PQhost(c->pg), *port = PQport(c->pg);
  if (host && host[0] == '/') snprintf(c->where, sizeof c->where, "%s", host);
  else snprintf(c->where, sizeof c->where, "%s:%s", host && *host ? host : "localhost",
                port && *port ? port : "5432");
}

static void conn_connected(PgConn *c) {
  conn_where(c);
  if (!PQenterPipelineMode(c->pg) || lasync__pg_watch(c, UV_READABLE) != 0) {
    lua_State *L = lasync_state(c->H);
    lasync__pg_ioerror(L, c, "could not enter pipeline mode");
    lasync_wake_error(L, &c->connect);
    lasync__pg_end(c, PG_BROKEN, "could not enter pipeline mode");
    return;
  }
  c->state = PG_READY;
  lasync_wake(&c->connect);
}

static void conn_connect_step(PgConn *c) {
  lua_State *L = lasync_state(c->H);
  int r = 0;
  switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING: r = lasync__pg_watch(c, UV_READABLE); break;
    case PGRES_POLLING_WRITING: r = lasync__pg_watch(c, UV_WRITABLE); break;
    case PGRES_POLLING_OK: conn_connected(c); return;
    default:
      lasync__pg_ioerror(L, c, PQerrorMessage(c->pg));
      lasync_wake_error(L, &c->connect);
      conn_broken(c);
      return;
  }
  if (r != 0) {
    lasync__push_ioerror(L, r, "pg.connect", "address", c->where);
    lasync_wake_error(L, &c->connect);
    lasync__pg_end(c, PG_BROKEN, uv_strerror(r));
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  PgConn *c = (PgConn *)h->data;
  if (status < 0) {              /* POLLERR: libuv stopped the handle; */
    c->events = 0;                /* libpq reads the socket's error */
    events = UV_READABLE | UV_WRITABLE;
  }
  if (c->state == PG_CONNECTING) conn_connect_step(c);
  else if (c->state == PG_READY) conn_io(c, events);
  else if (c->state == PG_COPY) lasync__pg_copy_io(c, events);
}

static void connect_cancel(lasync_Wait *w) {
  lasync__pg_end(container_of(w, PgConn, connect), PG_CLOSED, NULL);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  lua_pushvalue(L, (int)ctx);
  return 1;
}

/* Notices (WARNING, NOTICE) go nowhere rather than to stderr. A FATAL
** that arrives between statements (the server ends the session: shutdown,
** pg_terminate_backend) comes here too: noted, and the connection ends
** after libpq returns (not inside libpq). */
static void on_notice(void *arg, const PGresult *res) {
  PgConn *c = (PgConn *)arg;
  const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (sev && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0) && !c->fatal)
    c->fatal = strdup(PQresultErrorMessage(res));
}

/* connect(conninfo, config): a ready connection, or an IOError with
** libpq's message (which never holds the password). */
static int l_connect(lua_State *L) {
  const char *conninfo = luaL_checkstring(L, 1);
  PgConn *c;
  int r;
  luaL_checktype(L, 2, LUA_TTABLE);
  lasync_checktask(L, "pg.connect");
  lua_settop(L, 2);
  c = (PgConn *)lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->cfgref = LUA_NOREF;
  c->state = PG_CLOSED;
  c->H = lasync_host(L);
  luaL_setmetatable(L, PG_CONN_MT);
  if ((c->pg = PQconnectStart(conninfo)) == NULL) return luaL_error(L, "not enough memory");
  c->state = PG_CONNECTING;
  lua_pushvalue(L, 2);
  c->cfgref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (PQstatus(c->pg) == CONNECTION_BAD) {       /* conninfo refused */
    lasync__pg_ioerror(L, c, PQerrorMessage(c->pg));
    lasync__pg_end(c, PG_CLOSED, NULL);
    return lua_error(L);
  }
  conn_where(c);
  PQsetnonblocking(c->pg, 1);
  PQsetNoticeReceiver(c->pg, on_notice, c);
  if ((r = lasync__pg_watch(c, UV_WRITABLE)) != 0) {
    lasync__pg_end(c, PG_CLOSED, NULL);
    return lasync__ioerror(L, r, "pg.connect", NULL, NULL);
  }
  c->connect.what = "pg.connect";
  return lasync_wait(L, &c->connect, connect_cancel, connect_k, 3);
}

/* ------------------------------------------------------------ methods */

static PgConn *conn_box(lua_State *L) {
  return (PgConn *)luaL_checkudata(L, 1, PG_CONN_MT);
}

PgConn *lasync__pg_check(lua_State *L, int idx) {
  PgConn *c = (PgConn *)luaL_checkudata(L, idx, PG_CONN_MT);
  if (c->state == PG_READY) return c;
  if (c->state == PG_BROKEN) {
    lasync__pg_ioerror(L, c, c->error ? c->error : "connection lost");
    return (lua_error(L), NULL);
  }
  luaL_error(L, "pg connection is %s", c->state == PG_CLOSED ? "closed" :
             c->state == PG_COPY ? "busy with a COPY" : "not ready");
  return NULL;
}

/* The statement is queued in libpq: adds its Sync, links q (c owns it
** from here) and makes the task wait for its results. */
int lasync__pg_wait_req(lua_State *L, PgConn *c, PgReq *q, int kind, const char *what) {
  q->kind = kind;
  q->wait.data = c;
  q->wait.what = what;
  if (c->tail) c->tail->next = q;
  else c->head = q;
  c->tail = q;
  c->pending++;
  if (!PQpipelineSync(c->pg)) conn_broken(c);     /* frees q */
  else lasync__pg_after_send(c);
  if (c->state != PG_READY) {
    lasync__pg_push_gone(L, c);
    return lua_error(L);
  }
  return lasync_wait(L, &q->wait, lasync__pg_req_cancel, NULL, 0);
}

/* A send failed in libpq before anything was queued for it. */
int lasync__pg_send_failed(lua_State *L, PgConn *c, PgReq *q) {
  (void)q;
  lasync__pg_ioerror(L, c, PQerrorMessage(c->pg));
  if (PQstatus(c->pg) == CONNECTION_BAD) conn_broken(c);
  return lua_error(L);
}

/* close(): ends the connection; waiting tasks get an ECANCELED IOError. */
static int l_close(lua_State *L) {
  PgConn *c = conn_box(L);
  lasync__pg_end(c, PG_CLOSED, NULL);
  c->state = PG_CLOSED;
  return 0;
}

static int l_gc(lua_State *L) {
  PgConn *c = conn_box(L);
  l_close(L);
  free(c->error);
  free(c->fatal);
  c->error = c->fatal = NULL;
  if (c->cfgref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, c->cfgref);
  c->cfgref = LUA_NOREF;
  return 0;
}

const char *const lasync__pg_states[] = {"connecting", "ok", "broken", "closed", "copy"};

/* status(): "ok", "connecting", "broken", "closed" or "copy". */
static int l_status(lua_State *L) {
  lua_pushstring(L, lasync__pg_states[conn_box(L)->state]);
  return 1;
}

/* pending(): how many statements are in flight. */
static int l_pending(lua_State *L) {
  lua_pushinteger(L, conn_box(L)->pending);
  return 1;
}

static void drain_cancel(lasync_Wait *w) { (void)w; }

/* wait_idle(): returns once no statement is in flight (the pool closing
** a shared connection waits for its statements). One task at a time. */
static int l_wait_idle(lua_State *L) {
  PgConn *c = conn_box(L);
  if (c->pending == 0 || c->state != PG_READY) return 0;
  if (c->drain.task) return luaL_error(L, "another task waits for this connection to be idle");
  lasync_checktask(L, "pg.wait_idle");
  c->drain.what = "pg.wait_idle";
  return lasync_wait(L, &c->drain, drain_cancel, NULL, 0);
}

/* info(): what tests and the debugger want to know. */
static int l_info(lua_State *L) {
  PgConn *c = conn_box(L);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, c->pg ? PQbackendPID(c->pg) : 0);
  lua_setfield(L, -2, "pid");
  lua_pushinteger(L, c->pending);
  lua_setfield(L, -2, "pending");
  lua_pushinteger(L, (lua_Integer)c->cancels);
  lua_setfield(L, -2, "cancels");
  lua_pushstring(L, c->discarded);
  lua_setfield(L, -2, "discarded");
  lua_pushstring(L, c->where);
  lua_setfield(L, -2, "address");
  if (c->pg) {
    static const char *const tx[] = {"idle", "active", "intrans", "inerror", "unknown"};
    lua_pushstring(L, tx[PQtransactionStatus(c->pg)]);
    lua_setfield(L, -2, "transaction");
    lua_pushinteger(L, PQserverVersion(c->pg));
    lua_setfield(L, -2, "server_version");
  }
  return 1;
}

static int notify_push(lua_State *L, PgConn *c) {
  PGnotify *n = c->nhead;
  if ((c->nhead = n->next) == NULL) c->ntail = NULL;
  lua_createtable(L, 0, 3);
  lua_pushstring(L, n->relname);
  lua_setfield(L, -2, "channel");
  lua_pushstring(L, n->extra);
  lua_setfield(L, -2, "payload");
  lua_pushinteger(L, n->be_pid);
  lua_setfield(L, -2, "pid");
  PQfreemem(n);
  return 1;
}

static void notify_cancel(lasync_Wait *w) { (void)w; }

static int notify_k(lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = (PgConn *)lua_touserdata(L, 1);
  (void)status; (void)ctx;
  if (c->nhead == NULL) return luaL_error(L, "pg: notification wait woken with none");
  return notify_push(L, c);
}

/* next_notification(): the next notification ({channel, payload, pid}),
** waiting for one. One task at a time may wait. */
static int l_next_notification(lua_State *L) {
  PgConn *c = conn_box(L);
  if (c->nhead) return notify_push(L, c);
  lasync__pg_check(L, 1);
  if (c->notify.task) return luaL_error(L, "another task waits for notifications on this connection");
  lasync_checktask(L, "pg.notifications");
  lua_settop(L, 1);
  c->notify.what = "pg.notification";
  return lasync_wait(L, &c->notify, notify_cancel, notify_k, 0);
}

static int l_tostring(lua_State *L) {
  PgConn *c = conn_box(L);
  lua_pushfstring(L, "PgConnection<%s %s>", c->where, lasync__pg_states[c->state]);
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"close", l_close}, {"status", l_status}, {"info", l_info}, {"pending", l_pending},
  {"wait_idle", l_wait_idle},
  {"next_notification", l_next_notification}, {NULL, NULL}
};

int lasync__luaopen_pg(lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", l_gc}, {"__close", l_close}, {"__tostring", l_tostring}, {NULL, NULL}
  };
  lasync__class(L, PG_CONN_MT, meta, conn_methods);
  lua_getfield(L, -1, "__index");
  lasync__pg_query_methods(L);           /* adds query, exec, prepare... */
  lasync__pg_copy_methods(L);
  lua_newtable(L);
  lua_pushcfunction(L, l_connect);
  lua_setfield(L, -2, "connect");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "Connection");     /* the methods, for pg.lua to extend */
  lasync__open_pg_types(L);
  lua_setfield(L, -2, "types");
  return 1;
}
