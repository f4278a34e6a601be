#!/bin/sh
# tests/c/example.sh: runs the example application (host/example/app.c,
# built by `make` into $BUILD/example/app) with its script, then with a
# missing and a failing script: each time it must shut down cleanly (its
# loop closes with no handle left), with exit status 0 only in the first.
BUILD=${BUILD:-build}
APP="$VALGRIND $BUILD/example/app"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
result() {  # $1 = 0 if passed, $2 = name; the output is in $tmp/out
  n=$((n + 1))
  if [ "$1" -eq 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; sed 's/^/#   /' "$tmp/out"; fi
}

$APP host/example/app.lua >"$tmp/out" 2>&1
st=$?
grep -q 'temperature=21.5 humidity=40 status=ok' "$tmp/out" && [ $st -eq 0 ]
result $? "the example app runs the script's concurrent queries and shuts down"

$APP "$tmp/missing.lua" >"$tmp/out" 2>&1
st=$?
grep -q 'cannot open' "$tmp/out" && ! grep -q 'left open' "$tmp/out" && [ $st -eq 1 ]
result $? "a missing script is reported and the app still closes its loop"

printf 'app.query("status")\nerror("the script broke")\n' >"$tmp/bad.lua"
$APP "$tmp/bad.lua" >"$tmp/out" 2>&1
st=$?
grep -q 'the script broke' "$tmp/out" && grep -q 'stack traceback' "$tmp/out" &&
  ! grep -q 'left open' "$tmp/out" && [ $st -eq 1 ]
result $? "a failing script is reported with its traceback and the app still closes its loop"
