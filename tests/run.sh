#!/bin/sh
# Runs every suite and prints "N passed, N failed".
#   tests/test_*.lua   LuaUnit suites, run by lasync, counted from their TAP output
#   tests/c/*.sh       C-level tests (when present), counted from their TAP output
#   scripts/*.lua      the examples, each checking its own result (exit 0)
# LASYNC names the binary (default build/lasync). ONLY=pattern runs a subset.
LASYNC=${LASYNC:-build/lasync}
cd "$(dirname "$0")/.." || exit 1
passed=0; failed=0; skipped=0; failures=""
out=$(mktemp); trap 'rm -f "$out"' EXIT

count_tap() {  # $1 = name, $2 = exit code; TAP in $out
  k=$(grep -c '^ok .*# SKIP' "$out"); p=$(($(grep -c '^ok ' "$out") - k)); f=$(grep -c '^not ok ' "$out")
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] || { [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; }; then
    f=$((f + 1)); failures="$failures\n  $1 (exit $2, no test failure reported)"
    sed 's/^/    | /' "$out" | tail -20
  fi
  if [ "$f" -gt 0 ]; then
    grep -A6 '^not ok ' "$out" | sed 's/^/    | /'
    failures="$failures\n  $1"
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + k))
  echo "$1: $p passed, $f failed, $k skipped"
}

for t in tests/test_*.lua; do
  [ -e "$t" ] || continue
  case "$t" in *${ONLY:-}*) ;; *) continue ;; esac
  timeout 300 "$LASYNC" "$t" -o tap >"$out" 2>&1
  count_tap "$t" $?
done

# C tests of the embedding API and the example application (tests/c/).
for t in tests/c/*.sh; do
  [ -e "$t" ] || continue
  case "$t" in *${ONLY:-}*) ;; *) continue ;; esac
  BUILD=${BUILD:-build} timeout 300 sh "$t" >"$out" 2>&1
  count_tap "$t" $?
done

for s in scripts/*.lua; do
  [ -e "$s" ] || continue
  case "$s" in *${ONLY:-}*) ;; *) continue ;; esac
  if timeout 120 "$LASYNC" "$s" >"$out" 2>&1; then
    passed=$((passed + 1))
  else
    rc=$?
    failed=$((failed + 1)); failures="$failures\n  $s (exit $rc)"
    echo "$s: FAILED (exit $rc)"; tail -20 "$out" | sed 's/^/    | /'
  fi
done

[ -n "$failures" ] && printf "failures:$failures\n"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
