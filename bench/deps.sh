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

if [ -z "$missing" ]; then
  echo "bench deps: all present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "bench deps: installing$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
