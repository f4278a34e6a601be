#!/bin/sh
# tests/c/build.sh: the build needs the libraries, not Debian's tools. With a
# PATH that has no dpkg-query, dpkg or apt-get (every other command still
# there), plain `make` builds from the libraries pkg-config finds, `make deps`
# says it can only check, and a missing library is named, not installed.
# Builds into a temporary directory; prints TAP.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
check() {  # $1 = name, then the command; its output goes to $tmp/log
  name=$1; shift
  n=$((n + 1))
  if "$@" >"$tmp/log" 2>&1; then echo "ok $n $name"
  else echo "not ok $n $name"; sed 's/^/#   /' "$tmp/log" | tail -30; fi
}

# The fake PATH: one directory linking every command on PATH but Debian's
# package tools.
mkdir "$tmp/bin"
IFS=:; for d in $PATH; do
  [ -d "$d" ] || continue
  for f in "$d"/*; do
    b=${f##*/}
    case "$b" in dpkg*|apt*) continue ;; esac
    [ -x "$f" ] && [ ! -e "$tmp/bin/$b" ] && ln -s "$f" "$tmp/bin/$b"
  done
done
unset IFS
mk() { env PATH="$tmp/bin" MAKEFLAGS= MAKELEVEL= make "$@"; }

check "the fake PATH has no dpkg-query and no apt-get" \
  env PATH="$tmp/bin" sh -c '! command -v dpkg-query && ! command -v apt-get && command -v pkg-config'
check "make builds without dpkg-query/apt-get when the libraries are there" \
  sh -c "env PATH='$tmp/bin' MAKEFLAGS= MAKELEVEL= make -j2 BUILD='$tmp/b' && '$tmp/b/lasync' -e 'print(async.spawn(function() return 6 * 7 end):await())' | grep -qx 42"
check "make deps without them says so and succeeds" \
  sh -c "env PATH='$tmp/bin' MAKEFLAGS= MAKELEVEL= make deps BUILD='$tmp/b' | grep -q 'no dpkg-query/apt-get'"
mk BUILD="$tmp/c" LUA_PC=lua9.9 >"$tmp/missing" 2>&1
st=$?
check "a missing library fails the build, named, with nothing installed" \
  sh -c "[ $st -ne 0 ] && grep -q 'missing libraries: lua9.9 lua9.9-cjson' '$tmp/missing' && ! grep -q installing '$tmp/missing' && [ ! -e '$tmp/c/obj' ]"
