/*
** pg_types.c: PostgreSQL values in text format to Lua and back, the
** PgError (docs/pg.md has the table of types), and freeing results.
**
** Results: bool to boolean; int2, int4, int8, oid to integers; float4,
** float8 to numbers (NaN and infinities too); numeric stays a string (no
** precision is lost); bytea to a binary string; json and jsonb through the
** config's json_decode when there is one, else strings; arrays of these to
** Lua sequences (nested for several dimensions); NULL to the config's null
** sentinel; anything else (text, timestamps, dates, uuid...) as the
** server's text.
**
** Parameters are sent as text with type "unknown", so the server infers
** the type from the statement: nil and null to NULL, booleans, integers,
** floats (17 significant digits: no precision lost), strings (text; a zero
** byte is refused, bytea takes pg.bytea). Tables and userdata go to the
** config's encode function, which returns text or binary and a type.
*/
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "db/pg.h"

/* OIDs of pg_type.h, which the client headers do not install. */
enum {
  BOOLOID = 16, BYTEAOID = 17, INT8OID = 20, INT2OID = 21, INT4OID = 23, OIDOID = 26,
  JSONOID = 114, FLOAT4OID = 700, FLOAT8OID = 701, JSONBOID = 3802
};

/* The element type of an array type this file converts; 0 if none. */
static Oid array_elem(Oid oid) {
  switch (oid) {
    case 1000: return BOOLOID;   case 1001: return BYTEAOID;  case 1005: return INT2OID;
    case 1007: return INT4OID;   case 1016: return INT8OID;   case 1028: return OIDOID;
    case 1021: return FLOAT4OID; case 1022: return FLOAT8OID; case 199: return JSONOID;
    case 3807: return JSONBOID;
    case 1009: case 1015: case 1014: case 1231: case 1115: case 1185: case 1182:
    case 1183: case 1270: case 2951: case 1187: case 1041: case 651:
      return 25;                  /* text-like elements: text, varchar, numeric... */
    default: return 0;
  }
}

static int hexval(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* bytea's hex output ("\x0aff") to the bytes. */
static void push_bytea(lua_State *L, const char *v, size_t len) {
  luaL_Buffer b;
  size_t i;
  if (len < 2 || v[0] != '\\' || v[1] != 'x') {   /* bytea_output = escape */
    size_t n;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)v, &n);
    if (raw == NULL) luaL_error(L, "pg: bytea value could not be decoded");
    lua_pushlstring(L, (const char *)raw, n);
    PQfreemem(raw);
    return;
  }
  luaL_buffinitsize(L, &b, (len - 2) / 2);
  for (i = 2; i + 1 < len; i += 2) {
    int hi = hexval((unsigned char)v[i]), lo = hexval((unsigned char)v[i + 1]);
    if (hi < 0 || lo < 0) luaL_error(L, "pg: bad hex digit in bytea value");
    luaL_addchar(&b, (char)(hi * 16 + lo));
  }
  luaL_pushresult(&b);
}

/* The integer in v ("-123"): digits by hand, strtoll only past 18 of them
** (its locale handling costs more than the conversion). */
static lua_Integer parse_int(const char *v) {
  const char *p = v + (*v == '-');
  lua_Integer n = 0;
  int i;
  for (i = 0; i < 18 && p[i] >= '0' && p[i] <= '9'; i++) n = n * 10 + (p[i] - '0');
  if (p[i] != '\0') return (lua_Integer)strtoll(v, NULL, 10);
  return *v == '-' ? -n : n;
}

/* The float in v. Clinger's fast path: a decimal with at most 15 digits
** and a scale of at most 22 is exact as digits / 10^scale, one correctly
** rounded division; anything else (exponents, NaN, more digits) goes to
** strtod. */
static lua_Number parse_float(const char *v) {
  static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
    1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const char *p = v + (*v == '-');
  long long m = 0;
  int digits = 0, scale = 0, dot = 0;
  for (; *p; p++) {
    if (*p >= '0' && *p <= '9') {
      if (++digits > 15) return (lua_Number)strtod(v, NULL);
      m = m * 10 + (*p - '0');
      scale += dot;
    }
    else if (*p == '.' && !dot) dot = 1;
    else return (lua_Number)strtod(v, NULL);
  }
  if (digits == 0 || scale > 22) return (lua_Number)strtod(v, NULL);
  return (lua_Number)((*v == '-' ? -(double)m : (double)m) / pow10[scale]);
}

/* Pushes the value of one field in text format v of type oid. A value in
** text format ends at its first zero byte (the server sends none inside),
** so its length is asked for only where it is needed. cfg: the config
** table's index. */
static void push_value(lua_State *L, const char *v, Oid oid, int cfg);

/* Parses an array literal at *s into a new table on the stack. */
static const char *parse_array(lua_State *L, const char *s, Oid elem, int cfg, int depth) {
  lua_Integer i = 0;
  luaL_Buffer b;
  if (depth > 6 || *s != '{') luaL_error(L, "pg: malformed array value");
  luaL_checkstack(L, 6, "pg array");
  lua_newtable(L);
  s++;
  if (*s == '}') return s + 1;
  for (;;) {
    if (*s == '{') s = parse_array(L, s, elem, cfg, depth + 1);
    else if (*s == '"') {                 /* quoted: backslash escapes */
      luaL_buffinit(L, &b);
      for (s++; *s && *s != '"'; s++) {
        if (*s == '\\' && s[1]) s++;
        luaL_addchar(&b, *s);
      }
      if (*s++ != '"') luaL_error(L, "pg: malformed array value");
      luaL_pushresult(&b);
      push_value(L, lua_tostring(L, -1), elem, cfg);
      lua_remove(L, -2);
    }
    else {
      const char *e = s;
      while (*e && *e != ',' && *e != '}') e++;
      if (e - s == 4 && strncasecmp(s, "NULL", 4) == 0) lua_getfield(L, cfg, "null");
      else {
        lua_pushlstring(L, s, (size_t)(e - s));
        push_value(L, lua_tostring(L, -1), elem, cfg);
        lua_remove(L, -2);
      }
      s = e;
    }
    lua_rawseti(L, -2, ++i);
    if (*s == ',') s++;
    else if (*s == '}') return s + 1;
    else luaL_error(L, "pg: malformed array value");
  }
}

static void push_value(lua_State *L, const char *v, Oid oid, int cfg) {
  Oid elem;
  switch (oid) {
    case BOOLOID: lua_pushboolean(L, v[0] == 't'); return;
    case INT2OID: case INT4OID: case INT8OID: case OIDOID:
      lua_pushinteger(L, parse_int(v));
      return;
    case FLOAT4OID: case FLOAT8OID: lua_pushnumber(L, parse_float(v)); return;
    case BYTEAOID: push_bytea(L, v, strlen(v)); return;
    case JSONOID: case JSONBOID:
      if (lua_getfield(L, cfg, "json_decode") == LUA_TFUNCTION) {
        lua_pushlstring(L, v, strlen(v));
        lua_call(L, 1, 1);
      }
      else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, strlen(v));
      }
      return;
  }
  if ((elem = array_elem(oid)) != 0) {
    while (*v == '[') {                  /* bounds decoration "[0:1]=" */
      while (*v && *v != '=') v++;
      if (*v) v++;
    }
    if (parse_array(L, v, elem, cfg, 0)[0] != '\0') luaL_error(L, "pg: malformed array value");
    return;
  }
  lua_pushlstring(L, v, strlen(v));     /* not pushstring: its cache misses */
}

/* ------------------------------------------------------------ results */

/* rows: {row, ..., columns = {names}, count = n, command = "SELECT 3"}.
** The column names sit on the stack: a push each, no lookup. The column
** types are read once, not per field; a NULL field reads as "", so
** PQgetisnull is asked only then. */
static void push_rows(lua_State *L, PGresult *res, int cfg) {
  int nrows = PQntuples(res), ncols = PQnfields(res), r, f;
  const char *v;
  int names, null, rows;
  const char *tuples = PQcmdTuples(res);
  Oid few[16], *types = few;            /* a userdata only for wide rows */
  luaL_checkstack(L, ncols + 8, "pg rows");
  lua_createtable(L, nrows, 3);
  rows = lua_gettop(L);
  if (ncols > 16) types = (Oid *)lua_newuserdatauv(L, (size_t)ncols * sizeof(Oid), 0);
  for (f = 0; f < ncols; f++) types[f] = PQftype(res, f);
  lua_getfield(L, cfg, "null");
  null = lua_gettop(L);
  names = null + 1;
  for (f = 0; f < ncols; f++) lua_pushstring(L, PQfname(res, f));
  for (r = 0; r < nrows; r++) {
    lua_createtable(L, 0, ncols);
    for (f = 0; f < ncols; f++) {
      lua_pushvalue(L, names + f);
      v = PQgetvalue(res, r, f);
      if (v[0] == '\0' && PQgetisnull(res, r, f)) lua_pushvalue(L, null);
      else push_value(L, v, types[f], cfg);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, rows, r + 1);
  }
  lua_createtable(L, ncols, 0);
  for (f = 0; f < ncols; f++) {
    lua_pushvalue(L, names + f);
    lua_rawseti(L, -2, f + 1);
  }
  lua_setfield(L, rows, "columns");
  lua_settop(L, rows);
  lua_pushinteger(L, tuples[0] ? (lua_Integer)strtoll(tuples, NULL, 10) : nrows);
  lua_setfield(L, rows, "count");
  lua_pushstring(L, PQcmdStatus(res));
  lua_setfield(L, rows, "command");
}

void lasync__pg_push_result(lua_State *L, PGresult *res, int kind, int cfg) {
  const char *tuples;
  switch (kind) {
    case REQ_ROWS: push_rows(L, res, cfg); break;
    case REQ_COUNT:
      tuples = PQcmdTuples(res);
      if (tuples[0]) lua_pushinteger(L, (lua_Integer)strtoll(tuples, NULL, 10));
      else lua_pushinteger(L, PQntuples(res));
      break;
    default: lua_pushboolean(L, 1); break;
  }
}

typedef struct ClearWork {
  uv_work_t req;
  PGresult *res;
} ClearWork;

static void clear_work(uv_work_t *req) { PQclear(((ClearWork *)req)->res); }
static void clear_after(uv_work_t *req, int status) { (void)status; free(req); }

/* Freeing 100,000 rows took 7..14 ms on the loop thread (thousands of
** libpq blocks, then glibc handing the top of the heap back to the
** kernel), after the rows were built and before their task could run: a
** large result goes to a thread of libuv's pool instead. A PGresult is
** independent of its connection, and no event procedure is registered. */
void lasync__pg_clear_result(uv_loop_t *loop, PGresult *res) {
  ClearWork *cw;
  if (PQntuples(res) >= PG_MANY_ROWS && (cw = (ClearWork *)malloc(sizeof *cw)) != NULL) {
    cw->res = res;
    if (uv_queue_work(loop, &cw->req, clear_work, clear_after) == 0) return;
    free(cw);
  }
  PQclear(res);
}

/* ------------------------------------------------------------ errors */

static int error_tostring(lua_State *L) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "PgError");
  if (lua_getfield(L, 1, "sqlstate") == LUA_TSTRING) {
    luaL_addchar(&b, ' ');
    luaL_addvalue(&b);
  }
  else lua_pop(L, 1);
  luaL_addstring(&b, ": ");
  lua_getfield(L, 1, "message");
  luaL_addstring(&b, lua_isstring(L, -1) ? lua_tostring(L, -1) : "error");
  lua_pop(L, 1);
  if (lua_getfield(L, 1, "detail") == LUA_TSTRING) {
    luaL_addstring(&b, " (");
    luaL_addvalue(&b);
    luaL_addchar(&b, ')');
  }
  else lua_pop(L, 1);
  luaL_pushresult(&b);
  return 1;
}

static void error_class(lua_State *L) {
  static const luaL_Reg meta[] = {{"__tostring", error_tostring}, {NULL, NULL}};
  lasync__class(L, PG_ERROR_MT, meta, NULL);
}

void lasync__pg_push_error(lua_State *L, const PGresult *res) {
  static const struct { int code; const char *name; } fields[] = {
    {PG_DIAG_SQLSTATE, "sqlstate"}, {PG_DIAG_MESSAGE_PRIMARY, "message"},
    {PG_DIAG_MESSAGE_DETAIL, "detail"}, {PG_DIAG_MESSAGE_HINT, "hint"},
    {PG_DIAG_SEVERITY_NONLOCALIZED, "severity"}, {PG_DIAG_SCHEMA_NAME, "schema"},
    {PG_DIAG_TABLE_NAME, "table"}, {PG_DIAG_COLUMN_NAME, "column"},
    {PG_DIAG_CONSTRAINT_NAME, "constraint"}, {PG_DIAG_CONTEXT, "context"}, {0, NULL}
  };
  const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
  int i;
  lua_createtable(L, 0, 8);
  lua_pushliteral(L, "PgError");
  lua_setfield(L, -2, "kind");
  for (i = 0; fields[i].name; i++) {
    const char *v = PQresultErrorField(res, fields[i].code);
    if (v == NULL) continue;
    lua_pushstring(L, v);
    lua_setfield(L, -2, fields[i].name);
  }
  if (lua_getfield(L, -1, "sqlstate") == LUA_TSTRING) lua_setfield(L, -2, "code");
  else lua_pop(L, 1);
  if (lua_getfield(L, -1, "message") == LUA_TNIL) {     /* a client-side failure */
    lua_pushstring(L, PQresultErrorMessage(res));
    lua_setfield(L, -3, "message");
  }
  lua_pop(L, 1);
  if (pos) {
    lua_pushinteger(L, atoi(pos));
    lua_setfield(L, -2, "position");
  }
  error_class(L);
  lua_setmetatable(L, -2);
}

/* ------------------------------------------------------------ params */

static void param_number(lua_State *L, int idx) {
  char buf[64];
  lua_Number x = lua_tonumber(L, idx);
  if (isnan(x)) lua_pushliteral(L, "NaN");
  else if (isinf(x)) lua_pushstring(L, x > 0 ? "Infinity" : "-Infinity");
  else {
    snprintf(buf, sizeof buf, "%.17g", (double)x);
    lua_pushstring(L, buf);
  }
}

/* One parameter at idx into slot i; pushes what must stay alive. */
static void param_one(lua_State *L, int idx, int argn, int cfg, PgParams *p, int i) {
  size_t len;
  p->values[i] = NULL;
  p->lengths[i] = 0;
  p->formats[i] = 0;
  p->types[i] = 0;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: return;
    case LUA_TBOOLEAN: p->values[i] = lua_toboolean(L, idx) ? "t" : "f"; return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, idx));
      else param_number(L, idx);
      p->values[i] = lua_tostring(L, -1);
      return;
    case LUA_TSTRING:
      p->values[i] = lua_tolstring(L, idx, &len);
      if (memchr(p->values[i], '\0', len))
        luaL_argerror(L, argn, "string with a zero byte (for bytea, pass pg.bytea(s))");
      return;
    case LUA_TTABLE: case LUA_TUSERDATA: case LUA_TLIGHTUSERDATA:
      lua_getfield(L, cfg, "null");
      if (lua_rawequal(L, -1, idx)) { lua_pop(L, 1); return; }
      lua_pop(L, 1);
      if (lua_getfield(L, cfg, "encode") != LUA_TFUNCTION) break;
      lua_pushvalue(L, idx);
      lua_pushinteger(L, argn);
      lua_call(L, 2, 3);                 /* text, oid, format; nil: NULL */
      if (lua_isnil(L, -3)) { lua_pop(L, 3); return; }
      p->types[i] = (Oid)lua_tointeger(L, -2);
      p->formats[i] = (int)lua_tointeger(L, -1);
      lua_pop(L, 2);
      p->values[i] = luaL_checklstring(L, -1, &len);
      p->lengths[i] = (int)len;
      return;
  }
  luaL_argerror(L, argn, lua_pushfstring(L, "%s cannot be a query parameter",
                                         luaL_typename(L, idx)));
}

void lasync__pg_params(lua_State *L, int first, int n, int cfg, PgParams *p) {
  char *mem;
  int i;
  p->n = n;
  if (n > 65535) luaL_error(L, "pg: too many parameters (%d, at most 65535)", n);
  luaL_checkstack(L, n + 4, "pg parameters");
  mem = (char *)lua_newuserdatauv(L, (size_t)(n ? n : 1) * (sizeof(char *) + 2 * sizeof(int) +
                                                           sizeof(Oid)), 0);
  p->values = (const char **)(void *)mem;
  p->lengths = (int *)(void *)(mem + (size_t)n * sizeof(char *));
  p->formats = p->lengths + n;
  p->types = (Oid *)(void *)(p->formats + n);
  for (i = 0; i < n; i++) param_one(L, first + i, first + i, cfg, p, i);
}

/* types.is_error(v): whether v is a PgError. */
static int l_is_error(lua_State *L) {
  int r = lua_getmetatable(L, 1);
  if (r) {
    error_class(L);
    r = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, r);
  return 1;
}

int lasync__open_pg_types(lua_State *L) {
  lua_newtable(L);
  error_class(L);
  lua_setfield(L, -2, "PgError");
  lua_pushcfunction(L, l_is_error);
  lua_setfield(L, -2, "is_error");
  return 1;
}
