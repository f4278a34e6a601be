/*
** copy.c: values crossing between Lua states that live on different
** threads (worker states, thread hosts, channels).
**
** Encoding walks the values on the sending thread into a flat malloc'd
** buffer; decoding rebuilds them in the receiving state. What crosses:
** nil, booleans, integers and floats (kept apart), strings (any bytes),
** tables of those with shared sub-tables and cycles preserved, and Lua
** functions whose only upvalue is _ENV (as bytecode, bound to the
** receiving state's globals). A table with a metatable, userdata, a
** coroutine, a C function or a function with other upvalues does not
** cross: the error names its path ("args[2].conn: userdata cannot cross to
** a thread").
**
** Layout: a flags byte, then each value as a tag byte and its payload.
** Tables and functions get ids in the order they first appear, on both
** sides; a later appearance is a T_REF to the id.
*/
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <lauxlib.h>
#include "thread/worker.h"

#define MAXDEPTH 1000             /* nesting of tables (the encoder recurses) */
#define PATH_SHOWN 8              /* steps of a path an error shows */
#define PROTO_MT "lasync.Proto"

enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TAB, T_END, T_REF, T_FUNC };
#define F_REFS 1                  /* flags: some T_REF follows, keep the ids */

static const char protos_key = 0; /* registry: weak table function -> Proto box */

typedef struct Enc {
  lua_State *L;
  lasync_Buf *b;
  const char *root, *dir;
  int seenslot, seen;             /* stack slot of {value = id}; seen: made */
  uint32_t nseen;
  int refs;                       /* a T_REF was written */
  int cur;                        /* which value (1-based) is being encoded */
  int depth;
  int key[MAXDEPTH + 1];          /* stack index of the key at each depth */
  unsigned char iskey[MAXDEPTH + 1];  /* encoding that key itself */
} Enc;

/* ------------------------------------------------------------- buffers */

void lasync__buf_free(lasync_Buf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}

/* Room for `need` more bytes; 0 when out of memory. */
static int buf_reserve(lasync_Buf *b, size_t need) {
  size_t cap = b->cap ? b->cap : 64;
  char *p;
  if (b->cap - b->n >= need) return 1;
  while (cap - b->n < need) {
    if (cap > ((size_t)-1) / 2) return 0;
    cap *= 2;
  }
  p = (char *)realloc(b->p, cap);
  if (p == NULL) return 0;
  b->p = p;
  b->cap = cap;
  return 1;
}

static void put(Enc *E, const void *s, size_t len) {
  if (!buf_reserve(E->b, len)) luaL_error(E->L, "not enough memory to copy a value");
  memcpy(E->b->p + E->b->n, s, len);
  E->b->n += len;
}

static void put_byte(Enc *E, int c) {
  unsigned char u = (unsigned char)c;
  put(E, &u, 1);
}

/* ---------------------------------------------------------- error paths */

static int is_name(const char *s, size_t len) {
  size_t i;
  if (len == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
  for (i = 0; i < len; i++)
    if (!(s[i] == '_' || (s[i] >= '0' && s[i] <= '9') || ((s[i] | 32) >= 'a' && (s[i] | 32) <= 'z')))
      return 0;
  return 1;
}

/* Adds the key at k to the path in B: .name, ["str"], [1], [2.5], [table]. */
static void path_key(luaL_Buffer *B, lua_State *L, int k) {
  size_t len;
  const char *s;
  switch (lua_type(L, k)) {
    case LUA_TSTRING:
      s = lua_tolstring(L, k, &len);
      if (is_name(s, len)) { luaL_addchar(B, '.'); luaL_addlstring(B, s, len); }
      else {
        luaL_addstring(B, "[\"");
        luaL_addlstring(B, s, len > 40 ? 40 : len);
        luaL_addstring(B, len > 40 ? "...\"]" : "\"]");
      }
      return;
    case LUA_TNUMBER:
      if (lua_isinteger(L, k)) lua_pushfstring(L, "[%I]", (LUAI_UACINT)lua_tointeger(L, k));
      else lua_pushfstring(L, "[%f]", (LUAI_UACNUMBER)lua_tonumber(L, k));
      break;
    default:
      lua_pushfstring(L, "[%s]", luaL_typename(L, k));
  }
  luaL_addvalue(B);
}

/* Raises "<path>: <what> cannot cross <dir><hint>". */
static int enc_fail(Enc *E, const char *what, const char *hint) {
  lua_State *L = E->L;
  luaL_Buffer B;
  int d;
  luaL_checkstack(L, 4, "copying a value");
  luaL_buffinit(L, &B);
  lua_pushfstring(L, E->root, E->cur);
  luaL_addvalue(&B);
  for (d = 1; d <= E->depth; d++) {
    /* A deep path keeps its first and last steps: all 1000 of a table
    ** nested too deeply made a 3 KB message. */
    if (E->depth > PATH_SHOWN && d == PATH_SHOWN - 1) {
      luaL_addstring(&B, "...");
      d = E->depth - 1;
    }
    if (E->iskey[d]) luaL_addstring(&B, "{key}");
    else path_key(&B, L, E->key[d]);
  }
  luaL_pushresult(&B);
  lua_pushfstring(L, "%s: %s cannot cross %s%s", lua_tostring(L, -1), what, E->dir, hint);
  return lua_error(L);
}

/* ------------------------------------------------------------ encoding */

static void enc_value(Enc *E, int idx);

/* Writes a T_REF and returns 1 if the value at idx was seen before;
** otherwise gives it the next id and returns 0. */
static int enc_seen(Enc *E, int idx) {
  lua_State *L = E->L;
  if (!E->seen) {
    lua_newtable(L);
    lua_replace(L, E->seenslot);
    E->seen = 1;
  }
  lua_pushvalue(L, idx);
  if (lua_rawget(L, E->seenslot) == LUA_TNUMBER) {
    uint32_t id = (uint32_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    put_byte(E, T_REF);
    put(E, &id, sizeof id);
    E->refs = 1;
    return 1;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, (lua_Integer)++E->nseen);
  lua_rawset(L, E->seenslot);
  return 0;
}

static void enc_table(Enc *E, int idx) {
  lua_State *L = E->L;
  uint32_t narr, count = 0;
  size_t hdr;
  if (lua_getmetatable(L, idx)) enc_fail(E, "table with a metatable", "");
  if (enc_seen(E, idx)) return;
  if (E->depth >= MAXDEPTH) enc_fail(E, "table nested over 1000 levels deep", "");
  luaL_checkstack(L, 6, "copying a table");
  narr = (uint32_t)lua_rawlen(L, idx);
  put_byte(E, T_TAB);
  hdr = E->b->n;
  put(E, &narr, sizeof narr);
  put(E, &count, sizeof count);
  E->depth++;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    E->key[E->depth] = top - 1;
    E->iskey[E->depth] = 1;
    enc_value(E, top - 1);
    E->iskey[E->depth] = 0;
    enc_value(E, top);
    lua_pop(L, 1);
    count++;
  }
  E->depth--;
  put_byte(E, T_END);
  memcpy(E->b->p + hdr + sizeof narr, &count, sizeof count);
}

/* Why the function at idx cannot cross, or NULL (may push a string). */
static const char *fn_refusal(lua_State *L, int idx) {
  const char *name;
  int i;
  if (lua_iscfunction(L, idx)) return "C function";
  for (i = 1; (name = lua_getupvalue(L, idx, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      return lua_pushfstring(L, "function with upvalue '%s'", name);
  }
  return NULL;
}

#define FN_HINT " (only _ENV may be an upvalue: pass values as arguments)"

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud) {
  lasync_Buf *b = (lasync_Buf *)ud;
  (void)L;
  if (!buf_reserve(b, sz)) return 1;
  memcpy(b->p + b->n, p, sz);
  b->n += sz;
  return 0;
}

static void enc_function(Enc *E, int idx) {
  lua_State *L = E->L;
  const char *why;
  size_t at, len;
  if (enc_seen(E, idx)) return;
  if ((why = fn_refusal(L, idx)) != NULL)
    enc_fail(E, why, lua_iscfunction(L, idx) ? "" : FN_HINT);
  put_byte(E, T_FUNC);
  at = E->b->n;
  len = 0;
  put(E, &len, sizeof len);
  lua_pushvalue(L, idx);
  if (lua_dump(L, dump_writer, E->b, 0) != 0) luaL_error(L, "not enough memory to copy a function");
  lua_pop(L, 1);
  len = E->b->n - at - sizeof len;
  memcpy(E->b->p + at, &len, sizeof len);
}

static void enc_value(Enc *E, int idx) {
  lua_State *L = E->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_byte(E, T_NIL); break;
    case LUA_TBOOLEAN: put_byte(E, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        put_byte(E, T_INT);
        put(E, &i, sizeof i);
      }
      else {
        lua_Number x = lua_tonumber(L, idx);
        put_byte(E, T_FLT);
        put(E, &x, sizeof x);
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      put_byte(E, T_STR);
      put(E, &len, sizeof len);
      put(E, s, len);
      break;
    }
    case LUA_TTABLE: enc_table(E, idx); break;
    case LUA_TFUNCTION: enc_function(E, idx); break;
    case LUA_TTHREAD: enc_fail(E, "coroutine", ""); break;
    default: enc_fail(E, "userdata", ""); break;
  }
}

/* Protected body: 1 = the Enc, 2.. = the values. */
static int enc_body(lua_State *L) {
  Enc *E = (Enc *)lua_touserdata(L, 1);
  int i, n = lua_gettop(L) - 1;
  E->L = L;
  lua_pushnil(L);                        /* slot for the table of ids */
  E->seenslot = lua_gettop(L);
  put_byte(E, 0);                        /* flags, set below */
  for (i = 1; i <= n; i++) {
    E->cur = i;
    enc_value(E, i + 1);
  }
  if (E->refs) E->b->p[0] = F_REFS;
  return 0;
}

int lasync__encode(lua_State *L, int idx, int n, lasync_Buf *b,
                   const char *root, const char *dir) {
  Enc E;                                 /* the path arrays: about 5 KB of stack */
  int i;
  idx = lua_absindex(L, idx);
  lasync__buf_free(b);
  if (!lua_checkstack(L, n + 2)) {
    lua_pushliteral(L, "too many values to copy");
    return 0;
  }
  memset(&E, 0, offsetof(Enc, key));
  E.b = b;
  E.root = root;
  E.dir = dir;
  lua_pushcfunction(L, enc_body);
  lua_pushlightuserdata(L, &E);
  for (i = 0; i < n; i++) lua_pushvalue(L, idx + i);
  if (lua_pcall(L, n + 1, 0, 0) != LUA_OK) {
    lasync__buf_free(b);
    return 0;
  }
  return 1;
}

/* ------------------------------------------------------------ decoding */

typedef struct Dec {
  const char *p, *end;
  int ids;                        /* stack index of {id = value}, or 0 */
  lua_Integer nids;
} Dec;

static void get(Dec *D, void *to, size_t len) {
  memcpy(to, D->p, len);
  D->p += len;
}

static void dec_value(lua_State *L, Dec *D);

static void dec_register(lua_State *L, Dec *D) {
  if (!D->ids) return;
  lua_pushvalue(L, -1);
  lua_rawseti(L, D->ids, ++D->nids);
}

static void dec_table(lua_State *L, Dec *D) {
  uint32_t narr, count;
  get(D, &narr, sizeof narr);
  get(D, &count, sizeof count);
  luaL_checkstack(L, 4, "copying a table");
  lua_createtable(L, (int)narr, count > narr ? (int)(count - narr) : 0);
  dec_register(L, D);
  while (*D->p != T_END) {
    dec_value(L, D);                     /* key */
    dec_value(L, D);                     /* value */
    lua_rawset(L, -3);
  }
  D->p++;
}

static void dec_function(lua_State *L, Dec *D) {
  size_t len;
  get(D, &len, sizeof len);
  if (luaL_loadbufferx(L, D->p, len, "=(thread)", "b") != LUA_OK) lua_error(L);
  D->p += len;
  dec_register(L, D);
}

static void dec_value(lua_State *L, Dec *D) {
  int tag = (unsigned char)*D->p++;
  switch (tag) {
    case T_NIL: lua_pushnil(L); break;
    case T_FALSE: lua_pushboolean(L, 0); break;
    case T_TRUE: lua_pushboolean(L, 1); break;
    case T_INT: { lua_Integer i; get(D, &i, sizeof i); lua_pushinteger(L, i); break; }
    case T_FLT: { lua_Number x; get(D, &x, sizeof x); lua_pushnumber(L, x); break; }
    case T_STR: {
      size_t len;
      get(D, &len, sizeof len);
      lua_pushlstring(L, D->p, len);
      D->p += len;
      break;
    }
    case T_TAB: dec_table(L, D); break;
    case T_REF: {
      uint32_t id;
      get(D, &id, sizeof id);
      lua_rawgeti(L, D->ids, id);
      break;
    }
    case T_FUNC: dec_function(L, D); break;
    default: luaL_error(L, "lasync: corrupt value encoding (tag %d)", tag);
  }
}

/* Protected body: 1 = the Dec; pushes the values and returns their count. */
static int dec_body(lua_State *L) {
  Dec *D = (Dec *)lua_touserdata(L, 1);
  int n = 0;
  if (D->p < D->end && (*D->p++ & F_REFS)) {
    lua_newtable(L);
    D->ids = lua_gettop(L);
  }
  while (D->p < D->end) {
    luaL_checkstack(L, 4, "too many values");
    dec_value(L, D);
    n++;
  }
  return n;
}

int lasync__decode(lua_State *L, const lasync_Buf *b) {
  Dec D;
  int top = lua_gettop(L);
  D.p = b->p;
  D.end = b->p + b->n;
  D.ids = 0;
  D.nids = 0;
  if (!lua_checkstack(L, 3)) return -1;
  lua_pushcfunction(L, dec_body);
  lua_pushlightuserdata(L, &D);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) return -1;
  return lua_gettop(L) - top;
}

/* ----------------------------------------------- functions as bytecode */

void lasync__proto_retain(lasync_Proto *p) {
  __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void lasync__proto_release(lasync_Proto *p) {
  if (p && __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) == 0) free(p);
}

static int proto_gc(lua_State *L) {
  lasync_Proto **box = (lasync_Proto **)luaL_checkudata(L, 1, PROTO_MT);
  lasync__proto_release(*box);
  *box = NULL;
  return 0;
}

/* Pushes the cache (weak keys: a collected function drops its bytecode). */
static void proto_cache(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &protos_key) != LUA_TNIL) return;
  lua_pop(L, 1);
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &protos_key);
  static const luaL_Reg meta[] = {{"__gc", proto_gc}, {NULL, NULL}};
  lasync__class(L, PROTO_MT, meta, NULL);
  lua_pop(L, 1);
}

/* Dumps the function at idx into a new Proto (refs 1) boxed in a userdata
** on the stack top. */
static lasync_Proto *proto_make(lua_State *L, int idx, const char *what) {
  lasync_Buf b = {NULL, 0, 0};
  lasync_Proto *p, **box;
  const char *why = fn_refusal(L, idx);
  if (why) luaL_error(L, "%s: %s cannot cross to a thread%s", what, why,
                      lua_iscfunction(L, idx) ? "" : FN_HINT);
  box = (lasync_Proto **)lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, PROTO_MT);
  lua_pushvalue(L, idx);
  if (lua_dump(L, dump_writer, &b, 0) != 0 ||
      (p = (lasync_Proto *)malloc(offsetof(lasync_Proto, code) + b.n)) == NULL) {
    lasync__buf_free(&b);
    luaL_error(L, "%s: not enough memory", what);
  }
  lua_pop(L, 1);
  p->refs = 1;
  p->len = b.n;
  memcpy(p->code, b.p, b.n);
  lasync__buf_free(&b);
  *box = p;
  return p;
}

lasync_Proto *lasync__proto_of(lua_State *L, int idx, const char *what) {
  lasync_Proto *p;
  idx = lua_absindex(L, idx);
  proto_cache(L);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) p = *(lasync_Proto **)lua_touserdata(L, -1);
  else {
    lua_pop(L, 1);
    p = proto_make(L, idx, what);
    lua_pushvalue(L, idx);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
  }
  lua_pop(L, 2);
  lasync__proto_retain(p);
  return p;
}

int lasync__proto_load(lua_State *L, const lasync_Proto *p) {
  return luaL_loadbufferx(L, p->code, p->len, "=(thread)", "b");
}
