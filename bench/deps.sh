#!/bin/sh
# Installs what bench/run needs that is missing, from Debian packages. Idempotent: a peer
# already present (node from any source, say) is left alone. Uses sudo when not root.
set -eu

missing=""
want() { missing="$missing $1"; }

command -v make >/dev/null 2>&1 || want make
command -v cc >/dev/null 2>&1 || want gcc
command -v pkg-config >/dev/null 2>&1 || want pkg-config
pkg-config --exists libuv 2>/dev/null || want libuv1-dev
command -v lua5.4 >/dev/null 2>&1 || want lua5.4
lua5.4 -e 'require "luv"' >/dev/null 2>&1 || want lua-luv
command -v node >/dev/null 2>&1 || want nodejs
[ -x /usr/bin/python3 ] || want python3
/usr/bin/python3 -c 'import uvloop' >/dev/null 2>&1 || want python3-uvloop
# bench/pg: the server and the Python peers (asyncpg, psycopg 3 with its pool).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || want postgresql
/usr/bin/python3 -c 'import asyncpg' >/dev/null 2>&1 || want python3-asyncpg
/usr/bin/python3 -c 'import psycopg' >/dev/null 2>&1 || want python3-psycopg
/usr/bin/python3 -c 'import psycopg_pool' >/dev/null 2>&1 || want python3-psycopg-pool

if [ -z "$missing" ]; then
  echo "bench deps: all Debian packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  echo "bench deps: installing$missing"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

# bench/pg's Node peers (pg, postgres) from npm into bench/pg/node_modules, which is not
# committed; bench/pg/run leaves them out when this fails.
pgdir="$(dirname "$0")/pg"
if [ ! -d "$pgdir/node_modules/postgres" ] || [ ! -d "$pgdir/node_modules/pg" ]; then
  if command -v npm >/dev/null 2>&1; then
    (cd "$pgdir" && npm install --no-audit --no-fund --silent) ||
      echo "bench deps: npm install in bench/pg failed; its Node peers will be left out"
  else
    echo "bench deps: no npm; bench/pg's Node peers will be left out"
  fi
fi
