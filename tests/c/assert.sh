#!/bin/sh
# tests/c/assert.sh: lasync_assert fires when an invariant is broken on
# purpose. The program below is linked with the library of $BUILD and with
# host/core/sched.c compiled again with LASYNC_DEBUG (its objects come before
# the archive, so they replace sched.o), so the check runs in every build,
# release included. Each case must abort naming the broken invariant; the
# same program keeping the rules must run clean. Prints TAP.
BUILD=${BUILD:-build}
CC=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
san=
syms=$(nm "$BUILD/liblasync.a" 2>/dev/null)
case "$syms" in *__asan*) san="-fsanitize=address,undefined" ;; *__tsan*) san="-fsanitize=thread" ;; esac
flags=$(pkg-config --cflags lua5.4 libuv)
libs="$(pkg-config --libs lua5.4 libuv libcurl openssl libpq hiredis lua5.4-cjson) -lhttp_parser -lwslay -lm"

cat >"$tmp/t.c" <<'C'
/* argv[1] names the invariant to break: "none", "twolists", "twoowners". */
#include <stdio.h>
#include <string.h>
#include <lauxlib.h>
#include "lasync.h"

static lasync_Wait shared;     /* zeroed: never in a list, no owner */
static lasync_WaitList a, b;

static void unlist(lasync_Wait *w) { lasync_waitlist_remove(w); }

/* A native awaitable: waits on the one static wait record, whoever calls. */
static int park(lua_State *L) {
  lasync_checktask(L, "park");
  lasync_waitlist_push(&a, &shared);
  return lasync_wait(L, &shared, unlist, NULL, 0);
}

/* The same without the list. */
static int park_only(lua_State *L) {
  lasync_checktask(L, "park_only");
  return lasync_wait(L, &shared, NULL, NULL, 0);
}

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "none";
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  lasync_waitlist_init(&a);
  lasync_waitlist_init(&b);
  if (strcmp(what, "twolists") == 0) {   /* one link in two lists */
    lasync_waitlist_push(&a, &shared);
    lasync_waitlist_push(&b, &shared);
  }
  lua_pushcfunction(L, park);
  lua_setglobal(L, "park");
  lua_pushcfunction(L, park_only);
  lua_setglobal(L, "park_only");
  if (strcmp(what, "twoowners") == 0)    /* a second task parks on a wait that is taken */
    lasync_dostring(H, "local t = async.spawn(park) async.sleep(0) park_only()");
  else
    lasync_dostring(H, "local t = async.spawn(park) async.sleep(0) t:cancel() async.sleep(0)");
  lasync_free(H);
  puts("ran to the end");
  return 0;
}
C
n=0
result() {  # $1 = 0 if passed, $2 = name; output in $tmp/out
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; sed 's/^/#   /' "$tmp/out" | tail -20; fi
}
$CC -std=c99 -D_GNU_SOURCE -DLASYNC_DEBUG -g -Ihost $flags $san -o "$tmp/t" "$tmp/t.c" host/core/sched.c \
  "$BUILD/liblasync.a" $libs $san >"$tmp/out" 2>&1
result $? "a program with the scheduler's asserts on builds against $BUILD/liblasync.a"

"$tmp/t" none >"$tmp/out" 2>&1
st=$?
[ $st -eq 0 ] && grep -q 'ran to the end' "$tmp/out" && ! grep -q 'assertion failed' "$tmp/out"
result $? "keeping the rules, nothing fires"

"$tmp/t" twolists >"$tmp/out" 2>&1
st=$?
[ $st -ne 0 ] && grep -q 'assertion failed: n->next == NULL' "$tmp/out"
result $? "a wait pushed on a second list aborts: in one list at a time"

"$tmp/t" twoowners >"$tmp/out" 2>&1
st=$?
[ $st -ne 0 ] && grep -q 'assertion failed: w->task == NULL' "$tmp/out"
result $? "a second task waiting on a wait another task owns aborts: one owner at a time"
