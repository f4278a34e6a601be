#!/bin/sh
# tests/c/snippets.sh: every C snippet in docs/*.md compiles, and the
# complete ones run, so the guides cannot drift from lasync.h. Each ```c
# block is marked on the line before it:
#   <!-- snippet: program -->   a whole program: compiled, linked, run (exit 0)
#   <!-- snippet: file -->      declarations and functions: compiled with
#                               tests/c/snippets/prelude.h (the app around it)
#   <!-- snippet: body -->      statements: compiled inside a function that
#                               has H, L, loop, job and url
# An unmarked block fails. CC_ALL and LINK_ALL come from `make test`.
BUILD=${BUILD:-build}
CC_ALL=${CC_ALL:-"cc -std=c99 -D_GNU_SOURCE -Wall -Wextra $(pkg-config --cflags lua5.4 libuv) -Ihost"}
LINK_ALL=${LINK_ALL:-"-L$BUILD -llasync -Wl,-rpath,$PWD/$BUILD $(pkg-config --libs lua5.4 libuv)"}
QUIET="-Wno-unused-function -Wno-unused-variable -Wno-unused-parameter -Wno-unused-but-set-variable -Wno-shadow"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0

# Splits the docs into $tmp/NNN.c files, with $tmp/NNN.kind, .where, .doc.
awk -v dir="$tmp" '
  /^<!-- snippet: [a-z]+ -->$/ { kind = $3; next }
  /^```c$/ { n++; f = sprintf("%s/%03d", dir, n); inside = 1
             print (kind == "" ? "unmarked" : kind) > (f ".kind")
             print FILENAME ":" FNR > (f ".where")
             d = FILENAME; gsub("/", "_", d); print d > (f ".doc"); kind = ""; next }
  /^```/ && inside { inside = 0; next }
  inside { print > (f ".c"); next }
  { kind = "" }
' docs/*.md

# A body sees the file snippets of its document above it (as the reader
# does), and H, L, loop, job and url.
for k in "$tmp"/*.kind; do
  [ -e "$k" ] || continue
  base=${k%.kind}
  kind=$(cat "$k"); where=$(cat "$base.where"); above="$tmp/$(cat "$base.doc").above"
  touch "$above"
  n=$((n + 1))
  src="$base.src.c"
  case "$kind" in
    program) cp "$base.c" "$src" ;;
    file) { echo '#include "prelude.h"'; cat "$base.c"; } >"$src"
          cat "$base.c" >>"$above" ;;
    body) { echo '#include "prelude.h"'; cat "$above"
            echo 'static lasync_Host *H; static lua_State *L; static uv_loop_t loop;'
            echo 'static struct job *job; static const char *url;'
            echo 'void snippet(void);'
            echo 'void snippet(void) {'
            cat "$base.c"; echo '}'; } >"$src" ;;
    *) echo "not ok $n $where: a C snippet without its <!-- snippet: program|file|body --> mark"
       continue ;;
  esac
  if [ "$kind" = program ]; then
    $CC_ALL $QUIET -o "$base.bin" "$src" $LINK_ALL >"$base.log" 2>&1 && "$base.bin" >>"$base.log" 2>&1
  else
    $CC_ALL $QUIET -Itests/c/snippets -c -o "$base.o" "$src" >"$base.log" 2>&1
  fi
  if [ $? -eq 0 ]; then echo "ok $n $where ($kind)"
  else echo "not ok $n $where ($kind)"; sed 's/^/#   /' "$base.log" | head -30; fi
done
[ "$n" -gt 0 ] || echo "not ok 1 no C snippet found in docs/*.md"
echo "1..$n"
