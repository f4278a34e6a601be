#!/bin/sh
# tests/c/install.sh: `make install PREFIX=<temp dir>`, then programs written
# outside the repository (C, and C++ when g++ is there) that build against
# the installed header and library with nothing but
# `pkg-config --cflags --libs lasync`, and run. Prints TAP.
BUILD=${BUILD:-build}
CC=${CC:-cc}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
n=0
check() {  # $1 = name, then the command; its output goes to $tmp/log
  name=$1; shift
  n=$((n + 1))
  if "$@" >"$tmp/log" 2>&1; then echo "ok $n $name"
  else echo "not ok $n $name"; sed 's/^/#   /' "$tmp/log" | tail -30; fi
}
# A library built with sanitizers needs them at link time too.
# make install is told the same, so it never rebuilds them otherwise.
san= sanitize=
syms=$(nm "$BUILD/liblasync.a" 2>/dev/null)
case "$syms" in
  *__asan*) san="-fsanitize=address,undefined" sanitize=address ;;
  *__tsan*) san="-fsanitize=thread" sanitize=thread ;;
esac
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib"

check "make install PREFIX=<temp dir>" \
  env MAKEFLAGS= MAKELEVEL= make -s install BUILD="$BUILD" SANITIZE="$sanitize" PREFIX="$prefix"

mkdir "$tmp/outside" && cd "$tmp/outside" || exit 1
cat >hello.c <<'C'
/* A program of someone else's: the installed lasync.h and liblasync only. */
#include <stdio.h>
#include <lasync.h>

static void done(lua_State *L, lasync_Task *t, void *ud) {
  if (lasync_task_status(t) == LASYNC_DONE && lasync_task_results(L, t) == 1)
    *(int *)ud = (int)lua_tointeger(L, -1);
}

int main(void) {
  lasync_Host *H = lasync_new(NULL);
  lua_State *L = lasync_state(H);
  int answer = 0;
  lasync_spawn_string(L, "local t = async.spawn(function() async.sleep(0.001) return 21 end)\n"
                         "return t:await() * 2", "=hello", 0);
  lasync_task_on_done(L, -1, done, &answer);
  lasync_run_until(H, NULL);
  lasync_free(H);
  printf("answer %d\n", answer);
  return answer == 42 ? 0 : 1;
}
C
check "pkg-config knows lasync" pkg-config --exists --print-errors lasync
check "a C program outside the repository builds with pkg-config only" \
  sh -c "$CC -Wall -Wextra -Werror -o hello hello.c \$(pkg-config --cflags --libs lasync) $san"
check "it runs against the installed shared library" \
  sh -c "./hello | grep -q 'answer 42' && ldd ./hello | grep -q 'liblasync.so.0 => $prefix/lib'"

check "a static build with pkg-config --static (liblasync.a, no liblasync.so)" \
  sh -c "$CC -o hello_static hello.c \$(pkg-config --cflags lasync) '$prefix/lib/liblasync.a' \$(pkg-config --libs --static lasync | sed 's/-llasync//') $san && ./hello_static | grep -q 'answer 42' && ! ldd ./hello_static | grep -q liblasync"

# Strict ISO C hides POSIX types that uv.h needs: as for uv.h itself, a
# feature macro is the user's to give (docs/embedding.md).
printf '#include <lasync.h>\n' >alone.c
check "lasync.h is self-contained (-std=c99 -pedantic, with a POSIX feature macro)" \
  sh -c "$CC -std=c99 -D_POSIX_C_SOURCE=200809L -pedantic -Wall -Wextra -Werror -c alone.c \$(pkg-config --cflags lasync)"

if command -v g++ >/dev/null 2>&1; then
  cat >hello.cc <<'CC'
#include <lasync.h>
int main() {
  lasync_Host *H = lasync_new(nullptr);
  int st = lasync_dostring(H, "return 1");
  lasync_WaitList list;
  lasync_Wait w = {};
  lasync_waitlist_init(&list);
  lasync_waitlist_push(&list, &w);
  bool fifo = lasync_waitlist_pop(&list) == &w && lasync_waitlist_empty(&list);
  lasync_free(H);
  return st == LUA_OK && fifo ? 0 : 1;
}
CC
  check "a C++ program builds and links against it (extern \"C\")" \
    sh -c "g++ -Wall -Werror -o hellocc hello.cc \$(pkg-config --cflags --libs lasync) $san && ./hellocc"
else
  n=$((n + 1)); echo "ok $n C++ program # SKIP no g++"
fi

lib="$prefix/lib/liblasync.so"
check "liblasync.so has the soname liblasync.so.0" \
  sh -c "readelf -d '$lib' | grep -q 'SONAME.*\[liblasync.so.0\]'"
check "liblasync.so exports lasync_* and hides the internals (lasync__*)" \
  sh -c "nm -D --defined-only '$lib' | grep -q ' T lasync_new\$' && ! nm -D --defined-only '$lib' | grep -q ' lasync__'"
check "the installed lasync command runs" \
  sh -c "'$prefix/bin/lasync' -e 'print(async.spawn(function() return 6 * 7 end):await())' | grep -qx 42"

cd - >/dev/null || exit 1
check "make uninstall removes every installed file" \
  sh -c "env MAKEFLAGS= MAKELEVEL= make -s uninstall BUILD='$BUILD' SANITIZE='$sanitize' PREFIX='$prefix' && [ -z \"\$(find '$prefix' -type f -o -type l)\" ]"
