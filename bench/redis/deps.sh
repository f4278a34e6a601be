#!/bin/sh
# bench/redis/deps.sh: the Node peers (ioredis, BullMQ) into bench/redis/node_modules
# (not committed), and python3-hiredis so redis-py parses with hiredis.
cd "$(dirname "$0")" || exit 1
npm install --no-audit --no-fund
dpkg-query -W -f='${Status}' python3-hiredis 2>/dev/null | grep -q 'install ok installed' ||
  { SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo; $SUDO apt-get install -y python3-hiredis; }
