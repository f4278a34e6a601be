/*
** tests/c/test_alloc.c: the host's Lua allocator (host/core/alloc.c), which is
** internal: small blocks by size class with no header, large ones from
** malloc. Every size keeps its bytes, blocks never overlap, a block moves
** correctly across the small/large boundary when resized, freed blocks
** are reused, and a whole Lua state lives and dies on it. Built with
** AddressSanitizer the test still runs the pool (it calls it directly),
** so ASan sees its slabs.
*/
#include "tap.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>
#include "core/core.h"

#define NSIZES 1100

static void fill(unsigned char *p, size_t n, unsigned seed) {
  size_t i;
  for (i = 0; i < n; i++) p[i] = (unsigned char)(seed * 31 + i);
}

static int same(const unsigned char *p, size_t n, unsigned seed) {
  size_t i;
  for (i = 0; i < n; i++) if (p[i] != (unsigned char)(seed * 31 + i)) return 0;
  return 1;
}

/* Every size from 1 to beyond the pool's limit, all alive at once, each
** filled with its own pattern: none overlaps another, all 16-aligned. */
static void sizes_keep_their_bytes(void) {
  lasync_Alloc A;
  static unsigned char *p[NSIZES + 1];
  size_t n;
  int ok = 1, aligned = 1;
  lasync__alloc_init(&A);
  for (n = 1; n <= NSIZES; n++) {
    p[n] = (unsigned char *)lasync__alloc(&A, NULL, LUA_TSTRING, n);
    CHECK(p[n] != NULL);
    if ((uintptr_t)p[n] % 16 != 0) aligned = 0;
    fill(p[n], n, (unsigned)n);
  }
  for (n = 1; n <= NSIZES; n++) if (!same(p[n], n, (unsigned)n)) ok = 0;
  CHECK(ok);
  CHECK(aligned);
  for (n = 1; n <= NSIZES; n++) CHECK(lasync__alloc(&A, p[n], n, 0) == NULL);
  lasync__alloc_close(&A);
}

/* Growing and shrinking keep the common prefix, within the pool, across
** its limit both ways, and outside it. */
static void resize_keeps_contents(void) {
  static const size_t steps[] = {8, 16, 17, 100, 1024, 1025, 5000, 1024, 33, 16, 3000, 20};
  lasync_Alloc A;
  unsigned char *p;
  size_t i, cur = 8;
  lasync__alloc_init(&A);
  p = (unsigned char *)lasync__alloc(&A, NULL, 0, cur);
  fill(p, cur, 7);
  for (i = 1; i < sizeof steps / sizeof *steps; i++) {
    size_t next = steps[i], keep = cur < next ? cur : next;
    p = (unsigned char *)lasync__alloc(&A, p, cur, next);
    CHECK(p != NULL);
    CHECK(same(p, keep, 7));
    fill(p, next, 7);
    cur = next;
  }
  lasync__alloc(&A, p, cur, 0);
  lasync__alloc_close(&A);
}

/* A freed small block is the next one given out for its size class, and
** a resize within one class keeps the block where it is. */
static void freed_blocks_are_reused(void) {
  lasync_Alloc A;
  void *a, *b, *c;
  lasync__alloc_init(&A);
  a = lasync__alloc(&A, NULL, 0, 64);
  b = lasync__alloc(&A, NULL, 0, 64);
  CHECK(a != b);
  lasync__alloc(&A, a, 64, 0);
  c = lasync__alloc(&A, NULL, 0, 60);   /* 60 rounds to the same class */
  CHECK(c == a);
  CHECK(lasync__alloc(&A, c, 60, 50) == c);
  lasync__alloc(&A, c, 50, 0);
  lasync__alloc(&A, b, 64, 0);
  lasync__alloc_close(&A);
}

/* While lua_close runs, small frees are dropped (the slabs go whole) and
** large ones still go back to malloc (ASan's leak check would see them);
** allocating still works, for finalizers. */
static void closing_drops_small_frees(void) {
  lasync_Alloc A;
  void *small, *big, *again;
  lasync__alloc_init(&A);
  small = lasync__alloc(&A, NULL, 0, 100);
  big = lasync__alloc(&A, NULL, 0, 4000);
  lasync__alloc_closing(&A);
  lasync__alloc(&A, small, 100, 0);
  lasync__alloc(&A, big, 4000, 0);
  again = lasync__alloc(&A, NULL, 0, 100);
  CHECK(again != NULL && again != small);
  memset(again, 1, 100);
  lasync__alloc_close(&A);
  CHECK(A.slabs == NULL && A.closing == 0);
}

/* A Lua state on the allocator: strings, tables that grow and shrink,
** coroutines; then closed, and the allocator's slabs freed. */
static void lua_state_lives_on_it(void) {
  lasync_Alloc A;
  lua_State *L;
  lasync__alloc_init(&A);
  L = lua_newstate(lasync__alloc, &A);
  CHECK(L != NULL);
  luaL_openlibs(L);
  CHECK(luaL_dostring(L,
    "local t, s = {}, 0\n"
    "for i = 1, 20000 do t[i] = string.rep('x', i % 1500) end\n"
    "for i = 1, 20000, 2 do t[i] = nil end\n"
    "collectgarbage()\n"
    "for i = 2, 20000, 2 do s = s + #t[i] end\n"
    "local cos = {}\n"
    "for i = 1, 2000 do cos[i] = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return a + b end) end\n"
    "for i = 1, 2000 do s = s + cos[i](i) end\n"
    "for i = 1, 2000 do s = s + cos[i](1) end\n"
    "cos = nil; t = nil; collectgarbage()\n"
    "return s") == LUA_OK);
  {
    lua_Integer want = 0, i;
    for (i = 2; i <= 20000; i += 2) want += i % 1500;
    for (i = 1; i <= 2000; i++) want += (i + 1) + (i + 1);
    CHECK(lua_tointeger(L, -1) == want);
  }
  lua_close(L);
  lasync__alloc_close(&A);
  CHECK(A.slabs == NULL);
}

int main(void) {
  TEST(sizes_keep_their_bytes);
  TEST(resize_keeps_contents);
  TEST(freed_blocks_are_reused);
  TEST(closing_drops_small_frees);
  TEST(lua_state_lives_on_it);
  return tap_end();
}
