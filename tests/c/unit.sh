#!/bin/sh
# tests/c/unit.sh: runs the C test programs (tests/c/test_*.c, built by
# `make test` into $BUILD/tests/c/) and passes their TAP on to tests/run.sh.
# A program that exits non-zero with no failing test reported (a crash, a
# sanitizer or valgrind error) adds one failure of its own.
#   LASYNC_ALLOC=system VALGRIND="valgrind -q --error-exitcode=99 --leak-check=full"
#   runs each under valgrind (the system allocator lets it see every block).
BUILD=${BUILD:-build}
rc=0
for t in "$BUILD"/tests/c/test_*; do
  [ -x "$t" ] || continue
  echo "# $t"
  $VALGRIND "$t" 2>&1
  st=$?
  if [ "$st" -ne 0 ]; then
    echo "not ok - $t exited with status $st"
    rc=1
  fi
done
exit $rc
