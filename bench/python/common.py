"""Shared by the Python peers: `bench_W.py` runs on asyncio's own loop, `bench_W.py
uvloop` on uvloop (Debian's python3-uvloop: run them with /usr/bin/python3). Files are
named bench_* so that none shadows a standard module (queue.py would break uvloop)."""
import asyncio
import sys


def run(main):
    if "uvloop" in sys.argv[1:]:
        import uvloop
        uvloop.install()
    return asyncio.run(main())


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
