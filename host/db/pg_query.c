/*
** pg_query.c: the statements a connection sends (methods of
** lasync.PgConnection): query, exec, prepare, query_prepared. Each is
** sent with its Sync in the pipeline (pg.c) and the task waits for its
** results; many tasks may have statements in flight on one connection.
*/
#include <stdlib.h>
#include <string.h>
#include "db/pg.h"

/* Sends the statement (prepared: by name) with the parameters at 3.. and
** waits for what `kind` gives the caller. */
static int conn_send(lua_State *L, int kind, int prepared, const char *what) {
  PgConn *c = lasync__pg_check(L, 1);
  const char *sql = luaL_checkstring(L, 2);
  int n = lua_gettop(L) - 2, ok;
  PgParams p;
  PgReq *q;
  lasync_checktask(L, what);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->cfgref);
  lasync__pg_params(L, 3, n, n + 3, &p);
  if ((q = (PgReq *)calloc(1, sizeof *q)) == NULL) return luaL_error(L, "not enough memory");
  if (prepared)
    ok = PQsendQueryPrepared(c->pg, sql, n, p.values, p.lengths, p.formats, 0);
  else
    ok = PQsendQueryParams(c->pg, sql, n, p.types, p.values, p.lengths, p.formats, 0);
  if (!ok) {
    free(q);
    return lasync__pg_send_failed(L, c, NULL);
  }
  return lasync__pg_wait_req(L, c, q, kind, what);
}

/* query(sql, ...): the rows; $1... are the parameters. */
static int l_query(lua_State *L) { return conn_send(L, REQ_ROWS, 0, "pg.query"); }

/* exec(sql, ...): the number of rows the command affected (or returned). */
static int l_exec(lua_State *L) { return conn_send(L, REQ_COUNT, 0, "pg.exec"); }

/* query_prepared(name, ...), exec_prepared(name, ...): the same with a
** statement made by prepare. */
static int l_query_prepared(lua_State *L) { return conn_send(L, REQ_ROWS, 1, "pg.query"); }
static int l_exec_prepared(lua_State *L) { return conn_send(L, REQ_COUNT, 1, "pg.exec"); }

/* prepare(name, sql): true once the server has it. */
static int l_prepare(lua_State *L) {
  PgConn *c = lasync__pg_check(L, 1);
  const char *name = luaL_checkstring(L, 2), *sql = luaL_checkstring(L, 3);
  PgReq *q;
  lasync_checktask(L, "pg.prepare");
  if ((q = (PgReq *)calloc(1, sizeof *q)) == NULL) return luaL_error(L, "not enough memory");
  if (!PQsendPrepare(c->pg, name, sql, 0, NULL)) {
    free(q);
    return lasync__pg_send_failed(L, c, NULL);
  }
  return lasync__pg_wait_req(L, c, q, REQ_PREPARE, "pg.prepare");
}

static const luaL_Reg query_methods[] = {
  {"query", l_query}, {"exec", l_exec}, {"prepare", l_prepare},
  {"query_prepared", l_query_prepared}, {"exec_prepared", l_exec_prepared},
  {NULL, NULL}
};

/* Adds the methods to the table on the top of the stack. */
int lasync__pg_query_methods(lua_State *L) {
  luaL_setfuncs(L, query_methods, 0);
  return 0;
}
