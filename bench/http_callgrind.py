#!/usr/bin/python3
"""Exact instructions per keep-alive request at the HTTP server, under callgrind.

usage: bench/http_callgrind.py [N]      (default N = 2000; LASYNC picks the binary)

Runs bench/lasync/http_hello.lua under `valgrind --tool=callgrind` twice, driven by one
keep-alive client sending the same 75-byte GET (wrk's shape) N and 2N times, one at a
time, and prints (total(2N) - total(N)) / N: start-up and exit cancel out, what is left
is the server's cost of one request and its response (parser, Lua, libuv, the
scheduler; the kernel's share is not counted). The figure is exact and repeatable where
times on a shared machine are not; bench/http_run.py gives the times against peers.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
LASYNC = os.path.abspath(os.environ.get("LASYNC") or os.path.join(BENCH, "..", "build", "lasync"))
REQ = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


def total(n, out):
    p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, LASYNC,
                          os.path.join(BENCH, "lasync", "http_hello.lua")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(p.stdout.readline().split()[1])
    s = socket.create_connection(("127.0.0.1", port))
    buf = b""
    for _ in range(n):
        s.sendall(REQ)
        while True:                      # one whole response before the next request
            k = buf.find(b"\r\n\r\n")
            if k >= 0:
                length = int(re.search(rb"Content-Length: (\d+)", buf[:k]).group(1))
                if len(buf) >= k + 4 + length:
                    buf = buf[k + 4 + length:]
                    break
            data = s.recv(65536)
            if not data:
                sys.exit("the server closed the connection")
            buf += data
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
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        a = total(n, os.path.join(tmp, "a.out"))
        b = total(2 * n, os.path.join(tmp, "b.out"))
    print(f"{(b - a) / n:.0f} instructions per request ({n} and {2 * n} requests: {a:,} and {b:,})")


if __name__ == "__main__":
    main()
