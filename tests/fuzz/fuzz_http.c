/*
** tests/fuzz/fuzz_http.c: a libFuzzer target for the server's request path
** (host/net/http_parser.c over libhttp-parser) and the WebSocket frame path
** (host/net/ws.c over wslay). The first byte picks the target and how the
** input is cut into pieces, so resuming at every position is exercised;
** small limits make every refusal reachable. A Lua error (a broken
** invariant in the driver below) aborts, so libFuzzer reports it; ASan
** and UBSan report memory errors. Run by `make fuzz` (FUZZ_SECS seconds).
*/
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "module.h"

int lasync__luaopen_http_parser(lua_State *L);
int lasync__luaopen_ws(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The host's class helper (host/core/host.c), here so the target links
** only the two modules under test. */
void lasync__class(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods) {
  if (!luaL_newmetatable(L, name)) return;
  if (meta) luaL_setfuncs(L, meta, 0);
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
}

static const char driver[] =
  "local hp, ws, data = ...\n"
  "local b = data:byte(1) or 0\n"
  "local step = (b >> 1) % 31 + 1\n"
  "if b & 1 == 0 then\n"
  "  local p = hp.new{max_uri = 256, max_head = 1024, max_headers = 8, max_body = 4096}\n"
  "  local i = 2\n"
  "  while i <= #data do\n"
  "    local piece = data:sub(i, i + step - 1)\n"
  "    i = i + step\n"
  "    local pos = 1\n"
  "    while true do\n"
  "      local ev, a, r = p:execute(piece, pos)\n"
  "      if ev == 'error' then\n"
  "        assert(math.type(a) == 'integer' and a >= 400 and a <= 599 and type(r) == 'string')\n"
  "        return\n"
  "      end\n"
  "      if ev == 'more' then break end\n"
  "      assert(a >= pos and a <= #piece + 1, 'position went backwards or past the end')\n"
  "      if ev == 'head' then\n"
  "        assert(type(r.method) == 'string' and type(r.packed_headers) == 'string')\n"
  "        for k, v in pairs(hp.headers(r.packed_headers)) do\n"
  "          assert(type(k) == 'string' and k == k:lower() and type(v) == 'string')\n"
  "        end\n"
  "      end\n"
  "      pos = a\n"
  "    end\n"
  "  end\n"
  "  p:execute('', 1)\n"
  "else\n"
  "  local w = ws.new(b & 2 == 0, 4096)\n"
  "  for i = 2, #data, step do\n"
  "    local list = w:feed(data:sub(i, i + step - 1))\n"
  "    for j = 1, list and #list or 0, 2 do\n"
  "      if list[j] == 'text' then assert(ws.utf8_valid(list[j + 1])) end\n"
  "    end\n"
  "    w:output()\n"
  "  end\n"
  "  w:state()\n"
  "end\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static lua_State *L;
  if (L == NULL) {
    L = luaL_newstate();
    luaL_openlibs(L);
    lasync__luaopen_http_parser(L);
    lua_setglobal(L, "HP");
    lasync__luaopen_ws(L);
    lua_setglobal(L, "WS");
    if (luaL_loadbuffer(L, driver, sizeof driver - 1, "=driver") != LUA_OK) abort();
    lua_setglobal(L, "DRIVER");
  }
  lua_getglobal(L, "DRIVER");
  lua_getglobal(L, "HP");
  lua_getglobal(L, "WS");
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
