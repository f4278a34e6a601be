#!/usr/bin/python3
"""HTTP hello-world: `wrk -t1 -c64 -d5s` against a keep-alive server on one core.

usage: bench/http_run.py [peer ...]     peers: lasync nginx nginx_lua node aiohttp
Environment: BENCH_REPS (default 3), HTTP_SECS (default 5), LASYNC.

Each server is pinned to CPU 0 and wrk to CPU 1 (taskset). The server's CPU time (user +
system of its process) is read from /proc before and after the measured run, so the
figure that matters is the server's CPU per request: on two shared cores wrk often limits
the rate. It is shown whole and its user-space part alone: the kernel's part is the same
work for every peer (one read and one writev per request) and most of the figure.
Repetitions take turns across peers; the table shows the median and the range, and each
peer's figure as a ratio to lasync's (>1: the peer spends more).
"""
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
LASYNC = os.path.abspath(os.environ.get("LASYNC") or os.path.join(BENCH, "..", "build", "lasync"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
SECS = os.environ.get("HTTP_SECS", "5")
TICK = os.sysconf("SC_CLK_TCK")
PEERS = ["lasync", "nginx", "nginx_lua", "node", "aiohttp"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def nginx_argv(lua, tmp):
    port = free_port()
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    load = ("load_module /usr/lib/nginx/modules/ndk_http_module.so;\n"
            "load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;") if lua else ""
    content = 'content_by_lua_block { ngx.print("hello world\\n") }' if lua else 'return 200 "hello world\\n";'
    with open(os.path.join(BENCH, "nginx", "nginx.conf.in")) as f:
        conf = f.read()
    conf = conf.replace("@PORT@", str(port)).replace("@PREFIX@", tmp).replace("@LOAD@", load)
    conf = conf.replace("@CONTENT@", content)
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return ["nginx", "-p", tmp, "-c", path], port


def start(peer, tmp):
    """The server process and its port."""
    if peer in ("nginx", "nginx_lua"):
        argv, port = nginx_argv(peer == "nginx_lua", tmp)
    else:
        argv = {"lasync": [LASYNC, os.path.join(BENCH, "lasync", "http_hello.lua")],
                "node": ["node", os.path.join(BENCH, "node", "http_hello.js")],
                "aiohttp": ["/usr/bin/python3", os.path.join(BENCH, "python", "bench_http.py")]}[peer]
        port = None
    p = subprocess.Popen(["taskset", "-c", "0"] + argv, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if port is None:
        line = p.stdout.readline()
        if not line.startswith("port "):
            p.kill()
            sys.exit(f"{peer} did not start: {line!r} {p.stderr.read()[-500:]}")
        port = int(line.split()[1])
    for _ in range(200):                     # nginx prints nothing: wait for the port
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.02)
    return p, port


def cpu_seconds(pid):
    """The process's user and system CPU time so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def wrk(port, secs):
    r = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{secs}s",
                        f"http://127.0.0.1:{port}/"], capture_output=True, text=True)
    m = re.search(r"^\s*(\d+) requests in", r.stdout, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", r.stdout)
    if not m or errors:
        sys.exit(f"wrk failed: {r.stdout} {r.stderr}")
    return int(m.group(1))


def run_once(peer):
    with tempfile.TemporaryDirectory() as tmp:
        p, port = start(peer, tmp)
        try:
            wrk(port, 1)                                        # warm-up
            (u0, s0), t0 = cpu_seconds(p.pid), time.monotonic()
            n = wrk(port, SECS)
            (u1, s1), t1 = cpu_seconds(p.pid), time.monotonic()
            return n / (t1 - t0), (u1 - u0 + s1 - s0) / n * 1e6, (u1 - u0) / n * 1e6
        finally:
            p.kill()
            p.wait()


def main(peers):
    res = {p: [] for p in peers}
    for rep in range(REPS):
        for i in range(len(peers)):
            peer = peers[(i + rep) % len(peers)]
            res[peer].append(run_once(peer))
    def med(peer, i):
        return statistics.median(r[i] for r in res[peer])
    base = (med("lasync", 1), med("lasync", 2)) if "lasync" in res else None
    print(f"HTTP hello-world, wrk -t1 -c64 -d{SECS}s, server on one core; {REPS} runs (median, range)")
    print("The server's CPU per request is user + system time; the system part (one read and one")
    print("writev per request, the same for every peer) is most of it, so the user part is shown too.")
    print(f"{'peer':<10} {'requests/s':>22} {'server CPU us/req':>22} {'ratio':>6}"
          f" {'user us/req':>20} {'ratio':>6}")
    for peer in peers:
        rates, cpus, users = ([r[i] for r in res[peer]] for i in range(3))
        cm, um = med(peer, 1), med(peer, 2)
        print(f"{peer:<10} {statistics.median(rates):>10.0f} ({min(rates):.0f}-{max(rates):.0f})"
              f" {cm:>8.2f} ({min(cpus):.2f}-{max(cpus):.2f})"
              f" {cm / base[0] if base else float('nan'):>6.2f}"
              f" {um:>7.2f} ({min(users):.2f}-{max(users):.2f})"
              f" {um / base[1] if base else float('nan'):>6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or PEERS)
