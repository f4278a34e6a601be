/*
** pg_copy.c: COPY ... FROM STDIN and COPY ... TO STDOUT on a connection,
** streamed: the methods copy_start, copy_get, copy_put and copy_end, on
** which lua/async/pg.lua builds copy_in and copy_out.
**
** COPY is not allowed in pipeline mode. copy_start waits until nothing is
** in flight, leaves pipeline mode and sends the statement; the connection
** is then PG_COPY (other statements raise "busy with a COPY") until the
** COPY's results are in, when it enters pipeline mode again. In PG_COPY
** the socket is watched only while the COPY's task waits, so a slow
** reader of COPY TO leaves the data in the kernel, not in memory.
**
** A task cancelled while it waits in the middle of a COPY leaves the
** protocol mid-way: the connection is ended (status "broken"), and a pool
** drops it.
*/
#include <stdlib.h>
#include <string.h>
#include "db/pg.h"

static PgConn *copy_box(lua_State *L) {
  return (PgConn *)luaL_checkudata(L, 1, PG_CONN_MT);
}

/* The connection, which must be in its COPY; raises otherwise. */
static PgConn *copy_check(lua_State *L) {
  PgConn *c = copy_box(L);
  if (c->state == PG_COPY) return c;
  if (c->state == PG_READY) luaL_error(L, "pg: no COPY in progress on this connection");
  lasync__pg_push_gone(L, c);
  lua_error(L);
  return NULL;
}

static int copy_broken(lua_State *L, PgConn *c) {
  lasync__pg_end(c, PG_BROKEN, PQerrorMessage(c->pg));
  lasync__pg_push_gone(L, c);
  return lua_error(L);
}

void lasync__pg_copy_io(PgConn *c, int events) {
  if ((events & UV_READABLE) && !PQconsumeInput(c->pg)) {
    lasync__pg_end(c, PG_BROKEN, PQerrorMessage(c->pg));
    return;
  }
  lasync__pg_watch(c, 0);               /* until the task asks again */
  lasync_wake(&c->copy);
}

static void copy_cancel(lasync_Wait *w) {
  PgConn *c = container_of(w, PgConn, copy);
  lasync__pg_end(c, PG_BROKEN, "COPY cancelled mid-way: connection closed");
}

/* Waits for `events` on the socket, then continues with k. */
static int copy_wait(lua_State *L, PgConn *c, int events, lua_KFunction k, lua_KContext ctx) {
  int r;
  lasync_checktask(L, "pg.copy");
  if ((r = lasync__pg_watch(c, events)) != 0) {
    lasync__pg_end(c, PG_BROKEN, uv_strerror(r));
    lasync__pg_push_gone(L, c);
    return lua_error(L);
  }
  c->copy.what = "pg.copy";
  return lasync_wait(L, &c->copy, copy_cancel, k, ctx);
}

/* ------------------------------------------------------------ results */

enum { FIN_COUNT, FIN_NOT_COPY, FIN_OUT_END };

static void keep(PgConn *c, PGresult *r) {
  ExecStatusType st = PQresultStatus(r);
  if (c->copyres && PQresultStatus(c->copyres) == PGRES_FATAL_ERROR) { PQclear(r); return; }
  (void)st;
  if (c->copyres) PQclear(c->copyres);
  c->copyres = r;
}

/* Reads the COPY's last results, enters pipeline mode again; pushes what
** `how` says (FIN_COUNT: the row count; FIN_OUT_END: nil and the count;
** FIN_NOT_COPY: raises) or raises the PgError. */
static int copy_finish_k(lua_State *L, int status, lua_KContext how) {
  PgConn *c = copy_check(L);
  PGresult *r;
  int flush = PQflush(c->pg), n;
  (void)status;
  if (flush < 0 || !PQconsumeInput(c->pg)) return copy_broken(L, c);
  while (!PQisBusy(c->pg)) {
    if ((r = PQgetResult(c->pg)) == NULL) break;
    if (PQresultStatus(r) == PGRES_COPY_IN || PQresultStatus(r) == PGRES_COPY_OUT) {
      PQclear(r);                         /* a COPY inside a COPY: refuse it */
      return copy_broken(L, c);
    }
    keep(c, r);
  }
  if (PQisBusy(c->pg))
    return copy_wait(L, c, UV_READABLE | (flush ? UV_WRITABLE : 0), copy_finish_k, how);
  r = c->copyres;
  c->copyres = NULL;
  if (!PQenterPipelineMode(c->pg) || lasync__pg_watch(c, UV_READABLE) != 0) {
    if (r) PQclear(r);
    return copy_broken(L, c);
  }
  c->state = PG_READY;
  if (r && PQresultStatus(r) == PGRES_FATAL_ERROR) {
    lasync__pg_push_error(L, r);
    PQclear(r);
    return lua_error(L);
  }
  n = r ? atoi(PQcmdTuples(r)) : 0;
  if (r) PQclear(r);
  if (how == FIN_NOT_COPY)
    return luaL_error(L, "pg: not a COPY FROM STDIN or COPY TO STDOUT statement");
  if (how == FIN_OUT_END) lua_pushnil(L);
  lua_pushinteger(L, n);
  return how == FIN_OUT_END ? 2 : 1;
}

/* ------------------------------------------------------------ start */

static int copy_sent_k(lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = copy_check(L);
  PGresult *r;
  int flush = PQflush(c->pg);
  (void)status; (void)ctx;
  if (flush < 0 || !PQconsumeInput(c->pg)) return copy_broken(L, c);
  if (PQisBusy(c->pg))
    return copy_wait(L, c, UV_READABLE | (flush ? UV_WRITABLE : 0), copy_sent_k, 0);
  r = PQgetResult(c->pg);
  if (r && (PQresultStatus(r) == PGRES_COPY_IN || PQresultStatus(r) == PGRES_COPY_OUT)) {
    lua_pushstring(L, PQresultStatus(r) == PGRES_COPY_IN ? "in" : "out");
    PQclear(r);
    return 1;
  }
  if (r) keep(c, r);
  return copy_finish_k(L, 0, FIN_NOT_COPY);
}

static void drain_cancel(lasync_Wait *w) { (void)w; }

static int copy_start_k(lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = lasync__pg_check(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  (void)status; (void)ctx;
  if (c->pending > 0) {                   /* statements in flight: wait */
    if (c->drain.task) return luaL_error(L, "pg: another task waits to COPY on this connection");
    lasync_checktask(L, "pg.copy");
    c->drain.what = "pg.copy (waiting for the pipeline)";
    return lasync_wait(L, &c->drain, drain_cancel, copy_start_k, 0);
  }
  if (!PQexitPipelineMode(c->pg)) return lasync__pg_send_failed(L, c, NULL);
  if (!PQsendQuery(c->pg, sql)) {
    lasync__pg_ioerror(L, c, PQerrorMessage(c->pg));
    if (!PQenterPipelineMode(c->pg)) lasync__pg_end(c, PG_BROKEN, "could not enter pipeline mode");
    return lua_error(L);
  }
  c->state = PG_COPY;
  return copy_sent_k(L, 0, 0);
}

/* copy_start(sql): "in" (COPY FROM STDIN) or "out" (COPY TO STDOUT) once
** the server is in the COPY. */
static int l_copy_start(lua_State *L) {
  lasync__pg_check(L, 1);
  luaL_checkstring(L, 2);
  lasync_checktask(L, "pg.copy");
  lua_settop(L, 2);
  return copy_start_k(L, 0, 0);
}

/* ------------------------------------------------------------ out */

/* copy_get(): the next chunk of a COPY TO STDOUT (a row, in COPY's
** format), or nil and the row count at its end. */
static int copy_get_k(lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = copy_check(L);
  char *buf = NULL;
  int n;
  (void)status; (void)ctx;
  if ((n = PQgetCopyData(c->pg, &buf, 1)) == 0) {
    if (!PQconsumeInput(c->pg)) return copy_broken(L, c);
    n = PQgetCopyData(c->pg, &buf, 1);
  }
  if (n > 0) {
    lua_pushlstring(L, buf, (size_t)n);
    PQfreemem(buf);
    return 1;
  }
  if (n == 0) return copy_wait(L, c, UV_READABLE, copy_get_k, 0);
  return copy_finish_k(L, 0, FIN_OUT_END);   /* -1 the end, -2 an error */
}

static int l_copy_get(lua_State *L) {
  copy_check(L);
  lua_settop(L, 1);
  return copy_get_k(L, 0, 0);
}

/* ------------------------------------------------------------ in */

/* Waits until libpq's output is on its way (backpressure). */
static int copy_flush_k(lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = copy_check(L);
  int flush = PQflush(c->pg);
  (void)status;
  if (flush < 0) return copy_broken(L, c);
  if (flush) return copy_wait(L, c, UV_WRITABLE, copy_flush_k, ctx);
  if (ctx) return copy_finish_k(L, 0, FIN_COUNT);
  return 0;
}

/* copy_put(data): sends a chunk of a COPY FROM STDIN. */
static int copy_put_k(lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = copy_check(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int r = PQputCopyData(c->pg, data, (int)len);
  (void)status; (void)ctx;
  if (r < 0) return copy_broken(L, c);
  if (r == 0) return copy_wait(L, c, UV_WRITABLE, copy_put_k, 0);
  return copy_flush_k(L, 0, 0);
}

static int l_copy_put(lua_State *L) {
  size_t len;
  copy_check(L);
  luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len <= 0x7fffffff, 2, "chunk too large");
  lua_settop(L, 2);
  return copy_put_k(L, 0, 0);
}

/* copy_end([errmsg]): ends a COPY FROM STDIN (with errmsg: aborts it);
** returns the row count, or raises the server's error. */
static int copy_end_k(lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = copy_check(L);
  const char *err = luaL_optstring(L, 2, NULL);
  int r = PQputCopyEnd(c->pg, err);
  (void)status; (void)ctx;
  if (r < 0) return copy_broken(L, c);
  if (r == 0) return copy_wait(L, c, UV_WRITABLE, copy_end_k, 0);
  return copy_flush_k(L, 0, 1);
}

static int l_copy_end(lua_State *L) {
  copy_check(L);
  luaL_optstring(L, 2, NULL);
  lua_settop(L, 2);
  return copy_end_k(L, 0, 0);
}

static const luaL_Reg copy_methods[] = {
  {"copy_start", l_copy_start}, {"copy_get", l_copy_get}, {"copy_put", l_copy_put},
  {"copy_end", l_copy_end}, {NULL, NULL}
};

int lasync__pg_copy_methods(lua_State *L) {
  luaL_setfuncs(L, copy_methods, 0);
  return 0;
}
