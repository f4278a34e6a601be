/*
** json.c: require "async.core.json", the codec behind async.json
** (lua/async/json.lua has the rules users see; docs/API.md documents them).
**
** Decoding is lua-cjson's (Debian's lua5.4-cjson; a private instance made
** with cjson.new, so its settings are ours alone). Two passes wrap it:
** the input is checked to be UTF-8 first (cjson copies any byte through),
** and afterwards every integral number below 2^53 in magnitude becomes a Lua integer
** (cjson 2.1 decodes every number as a float).
**
** Encoding is ours, because cjson 2.1 prints numbers with at most 14
** significant digits (so 2^53 and every big integer come out wrong) and
** has no way to say that an empty table is an array. This encoder writes
** integers exactly, floats as the shortest of %.15g/%.16g/%.17g that
** reads back equal, honours the array mark (json.array), refuses invalid
** UTF-8, and names the path of the value it cannot encode ("$.a[3]").
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua-cjson.h>
#include "module.h"

#define JSON_ARRAY_MT "lasync.json.array"
#define JSON_ERROR_MT "lasync.JSONError"
#define JSON_MAX_DEPTH 1000
/* 2^53: below it every integer has a double of its own (JavaScript's safe
** integers); from it on, a decoded value may be a neighbour rounded. */
#define JSON_EXACT (9007199254740992.0)

/* ------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is
** not one: overlong forms, surrogates and code points past U+10FFFF are
** refused, as RFC 3629 says. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len, i;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) { len = 2; cp = c & 0x1F; }
  else if (c < 0xF0) { len = 3; cp = c & 0x0F; }
  else if (c < 0xF5) { len = 4; cp = c & 0x07; }
  else return 0;
  if (n < len) return 0;
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
    return 0;
  return len;
}

/* Byte offset (0-based) of the first invalid sequence, or -1. */
static long utf8_check(const char *s, size_t n) {
  size_t i = 0, k;
  while (i < n) {
    if ((unsigned char)s[i] < 0x80) { i++; continue; }
    if ((k = utf8_seq((const unsigned char *)s + i, n - i)) == 0) return (long)i;
    i += k;
  }
  return -1;
}

/* ---------------------------------------------------------- encoder */

/* The output grows in a userdata at stack slot `buf`, so a Lua error
** (memory) in the middle leaves nothing to free by hand. */
typedef struct Enc {
  lua_State *L;
  int buf, maxdepth;
  char *p;
  size_t len, cap;
  char err[200];                /* the reason, then the path prepended */
  char path[300];
} Enc;

static void enc_grow(Enc *e, size_t need) {
  size_t cap = e->cap ? e->cap : 256;
  char *p;
  while (cap - e->len < need) cap *= 2;
  p = (char *)lua_newuserdatauv(e->L, cap, 0);
  if (e->len) memcpy(p, e->p, e->len);
  lua_replace(e->L, e->buf);
  e->p = p;
  e->cap = cap;
}

static void enc_put(Enc *e, const char *s, size_t n) {
  if (e->cap - e->len < n) enc_grow(e, n);
  memcpy(e->p + e->len, s, n);
  e->len += n;
}

#define enc_lit(e, s) enc_put((e), "" s, sizeof(s) - 1)

/* Records the reason of a failure (returns -1 for `return enc_fail(...)`). */
static int enc_fail(Enc *e, const char *fmt, const char *arg) {
  snprintf(e->err, sizeof e->err, fmt, arg);
  return -1;
}

/* Prepends a path segment while a failure unwinds. */
static void enc_path(Enc *e, const char *seg) {
  size_t n = strlen(seg), have = strlen(e->path);
  if (n + have + 1 > sizeof e->path) return;
  memmove(e->path + n, e->path, have + 1);
  memcpy(e->path, seg, n);
}

static int enc_string(Enc *e, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i = 0, k;
  if (e->cap - e->len < n + 2) enc_grow(e, n + 2);
  e->p[e->len++] = '"';
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x80) {
      if ((k = utf8_seq((const unsigned char *)s + i, n - i)) == 0)
        return enc_fail(e, "invalid UTF-8 in a string%s", "");
      enc_put(e, s + i, k);
      i += k;
      continue;
    }
    if (c == '"' || c == '\\') { char q[2] = {'\\', (char)c}; enc_put(e, q, 2); }
    else if (c == '\n') enc_lit(e, "\\n");
    else if (c == '\r') enc_lit(e, "\\r");
    else if (c == '\t') enc_lit(e, "\\t");
    else if (c < 0x20 || c == 0x7f) {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      enc_put(e, u, 6);
    } else {
      if (e->cap == e->len) enc_grow(e, 1);
      e->p[e->len++] = (char)c;
    }
    i++;
  }
  enc_lit(e, "\"");
  return 0;
}

/* Formats a number as JSON in buf (at least 40 bytes); NULL for NaN or
** an infinity. A float that looks integral gets ".0", so it reads as
** the float it was in languages that care. */
static const char *fmt_number(lua_State *L, int idx, char *buf) {
  lua_Number d;
  int prec;
  if (lua_isinteger(L, idx)) {
    snprintf(buf, 40, LUA_INTEGER_FMT, lua_tointeger(L, idx));
    return buf;
  }
  d = lua_tonumber(L, idx);
  if (d != d || d == HUGE_VAL || d == -HUGE_VAL) return NULL;
  for (prec = 15; prec <= 17; prec++) {
    snprintf(buf, 40, "%.*g", prec, d);
    if (strtod(buf, NULL) == d) break;
  }
  if (strpbrk(buf, ".eE") == NULL) strcat(buf, ".0");
  return buf;
}

static int enc_value(Enc *e, int idx, int depth);

/* How the table at idx encodes: 1 array (of *n items), 0 object, -1 bad. */
static int enc_kind(Enc *e, int idx, lua_Integer *n) {
  lua_State *L = e->L;
  lua_Integer count = 0, max = 0;
  int ints = 1;
  if (lua_getmetatable(L, idx)) {
    int arr;
    luaL_getmetatable(L, JSON_ARRAY_MT);
    arr = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (arr) { *n = (lua_Integer)lua_rawlen(L, idx); return 1; }
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (ints && lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
      if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
    } else ints = 0;
  }
  if (count == 0 || !ints) return 0;
  if (max != count) {
    char m[40];
    snprintf(m, sizeof m, LUA_INTEGER_FMT, max);
    enc_fail(e, "sparse array (key %s, fewer items; fill holes with json.null)", m);
    return -1;
  }
  *n = count;
  return 1;
}

static int enc_array(Enc *e, int idx, lua_Integer n, int depth) {
  lua_Integer i;
  enc_lit(e, "[");
  for (i = 1; i <= n; i++) {
    if (i > 1) enc_lit(e, ",");
    lua_rawgeti(e->L, idx, i);
    if (enc_value(e, lua_gettop(e->L), depth + 1)) {
      char seg[40];
      snprintf(seg, sizeof seg, "[" LUA_INTEGER_FMT "]", i);
      enc_path(e, seg);
      return -1;
    }
    lua_pop(e->L, 1);
  }
  enc_lit(e, "]");
  return 0;
}

static int enc_object(Enc *e, int idx, int depth) {
  lua_State *L = e->L;
  int first = 1;
  enc_lit(e, "{");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    char num[40], seg[80];
    const char *k;
    size_t kn;
    if (!first) enc_lit(e, ",");
    first = 0;
    if (lua_type(L, -2) == LUA_TSTRING) k = lua_tolstring(L, -2, &kn);
    else if (lua_type(L, -2) == LUA_TNUMBER && (k = fmt_number(L, -2, num)) != NULL) kn = strlen(k);
    else return enc_fail(e, "a table key of type %s (strings and numbers only)",
                         luaL_typename(L, -2));
    if (enc_string(e, k, kn)) return -1;
    enc_lit(e, ":");
    if (enc_value(e, lua_gettop(L), depth + 1)) {
      snprintf(seg, sizeof seg, lua_type(L, -2) == LUA_TSTRING ? ".%.60s" : "[%.60s]", k);
      enc_path(e, seg);
      return -1;
    }
    lua_pop(L, 1);
  }
  enc_lit(e, "}");
  return 0;
}

static int enc_value(Enc *e, int idx, int depth) {
  lua_State *L = e->L;
  char num[40];
  const char *s;
  size_t n;
  lua_Integer len;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: enc_lit(e, "null"); return 0;
  case LUA_TBOOLEAN:
    if (lua_toboolean(L, idx)) enc_lit(e, "true"); else enc_lit(e, "false");
    return 0;
  case LUA_TNUMBER:
    if ((s = fmt_number(L, idx, num)) == NULL)
      return enc_fail(e, "cannot encode %s (JSON has no NaN or infinity)",
                      lua_tonumber(L, idx) != lua_tonumber(L, idx) ? "NaN" : "an infinity");
    enc_put(e, s, strlen(s));
    return 0;
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    return enc_string(e, s, n);
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) { enc_lit(e, "null"); return 0; }
    break;
  case LUA_TTABLE:
    if (depth >= e->maxdepth) {
      char m[20];
      snprintf(m, sizeof m, "%d", e->maxdepth);
      return enc_fail(e, "nested deeper than %s levels (a table that contains itself?)", m);
    }
    luaL_checkstack(L, 4, "json.encode");
    switch (enc_kind(e, idx, &len)) {
    case 1: return enc_array(e, idx, len, depth);
    case 0: return enc_object(e, idx, depth);
    default: return -1;
    }
  default: break;
  }
  return enc_fail(e, "cannot encode a %s", luaL_typename(L, idx));
}

/* encode(value [, maxdepth]): the JSON text, or nil and the reason naming
** what and where (lua/async/json.lua raises it at the caller's level). */
static int json_encode(lua_State *L) {
  Enc e;
  memset(&e, 0, sizeof e);
  luaL_checkany(L, 1);
  e.maxdepth = (int)luaL_optinteger(L, 2, JSON_MAX_DEPTH);
  luaL_argcheck(L, e.maxdepth > 0, 2, "depth must be positive");
  lua_settop(L, 1);
  lua_pushnil(L);                         /* slot of the buffer */
  e.L = L;
  e.buf = 2;
  if (enc_value(&e, 1, 0)) {
    lua_pushnil(L);
    lua_pushfstring(L, "json.encode: %s at $%s", e.err, e.path);
    return 2;
  }
  lua_pushlstring(L, e.p ? e.p : "", e.len);
  return 1;
}

/* ---------------------------------------------------------- decoder */

/* Makes integral floats below 2^53 in magnitude in the table at idx integers. */
static void dec_ints(lua_State *L, int idx) {
  luaL_checkstack(L, 4, "json.decode");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -1) == LUA_TTABLE) dec_ints(L, lua_gettop(L));
    else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number d = lua_tonumber(L, -1);
      if (d == floor(d) && fabs(d) < JSON_EXACT) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)d);
        lua_rawset(L, idx);               /* an existing key: next() stays valid */
      }
    }
    lua_pop(L, 1);
  }
}

/* Raises a JSONError {message, position} (position 1-based, in bytes). */
static int dec_error(lua_State *L, const char *msg, lua_Integer pos) {
  lua_createtable(L, 0, 3);
  lua_pushliteral(L, "JSONError");
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  lua_pushinteger(L, pos);
  lua_setfield(L, -2, "position");
  luaL_setmetatable(L, JSON_ERROR_MT);
  return lua_error(L);
}

/* decode(text): the value; raises a JSONError. Upvalue 1: cjson's decode. */
static int json_decode(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  long bad = utf8_check(s, n);
  if (bad >= 0) {
    lua_pushfstring(L, "invalid UTF-8 at byte %d", (int)bad + 1);
    return dec_error(L, lua_tostring(L, -1), bad + 1);
  }
  lua_settop(L, 1);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1), *at;
    lua_Integer pos = 0;
    if (msg == NULL) return lua_error(L);   /* not cjson's: memory */
    if ((at = strstr(msg, "at character ")) != NULL) pos = strtol(at + 13, NULL, 10);
    return dec_error(L, msg, pos);
  }
  if (lua_type(L, -1) == LUA_TTABLE) dec_ints(L, lua_gettop(L));
  else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
    lua_Number d = lua_tonumber(L, -1);
    if (d == floor(d) && fabs(d) < JSON_EXACT) lua_pushinteger(L, (lua_Integer)d);
  }
  return 1;
}

/* Calls cjson_instance[name](arg) to configure it. */
static void json_config(lua_State *L, const char *name, int arg) {
  lua_getfield(L, -1, name);
  if (arg < 0) lua_pushboolean(L, 0); else lua_pushinteger(L, arg);
  lua_call(L, 1, 0);
}

int lasync__luaopen_json(lua_State *L) {
  lasync__error_class(L, JSON_ERROR_MT);
  lua_pop(L, 1);
  lua_pushcfunction(L, luaopen_cjson);
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "new");             /* our own instance: settings are ours */
  lua_call(L, 0, 1);
  json_config(L, "decode_max_depth", JSON_MAX_DEPTH);
  json_config(L, "decode_invalid_numbers", -1);
  lua_createtable(L, 0, 4);
  lua_getfield(L, -2, "decode");
  lua_pushcclosure(L, json_decode, 1);
  lua_setfield(L, -2, "decode");
  lua_pushcfunction(L, json_encode);
  lua_setfield(L, -2, "encode");
  lua_getfield(L, -2, "null");
  lua_setfield(L, -2, "null");
  luaL_newmetatable(L, JSON_ARRAY_MT);
  lua_setfield(L, -2, "array_mt");
  luaL_getmetatable(L, JSON_ERROR_MT);
  lua_setfield(L, -2, "Error");
  return 1;
}
