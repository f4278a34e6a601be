#!/usr/bin/python3
"""Exact instructions per keep-alive request at the HTTP server, under callgrind.

usage: bench/http_callgrind.py [N] [peer ...]    peers: lasync (default) nginx nginx_lua
(N defaults to 2000; LASYNC picks the binary)

Runs each server under `valgrind --tool=callgrind` twice, driven by one keep-alive
client sending the same 75-byte GET (wrk's shape) N and 2N times, one at a time, and
prints (total(2N) - total(N)) / N: start-up and exit cancel out, what is left is the
server's user-space cost of one request and its response (for lasync: the parser, Lua,
libuv, the scheduler). The kernel's share is not counted: it is the same for every peer
(one read and one writev per request), and bench/http_run.py measures it. The figure is
exact and repeatable, where times on a shared machine are not; nginx (the C limit, `return
200`) and nginx with Debian's Lua module (`content_by_lua_block`, LuaJIT) give the same
figure for their configurations in bench/http_run.py.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import http_run  # noqa: E402  (nginx's configuration)

LASYNC = os.path.abspath(os.environ.get("LASYNC") or os.path.join(BENCH, "..", "build", "lasync"))
REQ = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


def read_response(s, buf):
    """Reads one whole response (Content-Length or chunked); returns what follows it."""
    while True:
        k = buf.find(b"\r\n\r\n")
        if k >= 0:
            m = re.search(rb"Content-Length: (\d+)", buf[:k])
            if m and len(buf) >= k + 4 + int(m.group(1)):
                return buf[k + 4 + int(m.group(1)):]
            end = buf.find(b"\r\n0\r\n\r\n", k)
            if not m and end >= 0:
                return buf[end + 7:]
        data = s.recv(65536)
        if not data:
            sys.exit("the server closed the connection")
        buf += data


def total(peer, n, out, tmp):
    # --smc-check=all: LuaJIT (nginx_lua) writes and patches machine code
    grind = ["valgrind", "--tool=callgrind", "--smc-check=all", "--callgrind-out-file=" + out]
    if peer == "lasync":
        p = subprocess.Popen(grind + [LASYNC, os.path.join(BENCH, "lasync", "http_hello.lua")],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(p.stdout.readline().split()[1])
        s = socket.create_connection(("127.0.0.1", port))
    else:
        argv, port = http_run.nginx_argv(peer == "nginx_lua", tmp)
        p = subprocess.Popen(grind + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(600):                  # nginx prints nothing: wait for the port
            try:
                s = socket.create_connection(("127.0.0.1", port), 0.1)
                break
            except OSError:
                time.sleep(0.05)
        else:
            sys.exit(f"{peer} did not start under valgrind")
    buf = b""
    for _ in range(n):
        s.sendall(REQ)                        # one whole response before the next request
        buf = read_response(s, buf)
    s.close()
    time.sleep(0.3)
    p.terminate()
    p.wait()
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    sys.exit("no totals in " + out)


def main():
    args = sys.argv[1:]
    n = int(args.pop(0)) if args and args[0].isdigit() else 2000
    for peer in args or ["lasync"]:
        with tempfile.TemporaryDirectory() as tmp:
            a = total(peer, n, os.path.join(tmp, "a.out"), tmp)
            b = total(peer, 2 * n, os.path.join(tmp, "b.out"), tmp)
        print(f"{peer}: {(b - a) / n:.0f} instructions per request"
              f" ({n} and {2 * n} requests: {a:,} and {b:,})")


if __name__ == "__main__":
    main()
