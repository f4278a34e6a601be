#!/usr/bin/python3
"""WebSocket broadcast: 100 clients, 10 of them sending 200 messages each (the next once
their own came back), every message fanned out to all 100 (200,000 deliveries).

usage: bench/ws_run.py [peer ...]     peers: lasync node python
The server is pinned to CPU 0, the load (bench/lasync/ws_load.lua, the same for every
peer) to CPU 1. Reports delivered messages/s and the server's CPU time per delivered
message (/proc, user + system, and the user part alone), median and range over
BENCH_REPS runs (default 3).
"""
import os
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
LASYNC = os.path.abspath(os.environ.get("LASYNC") or os.path.join(BENCH, "..", "build", "lasync"))
REPS = int(os.environ.get("BENCH_REPS", "3"))
TICK = os.sysconf("SC_CLK_TCK")
SERVERS = {"lasync": [LASYNC, os.path.join(BENCH, "lasync", "ws_broadcast.lua")],
           "node": ["node", os.path.join(BENCH, "node", "ws_broadcast.js")],
           "python": ["/usr/bin/python3", os.path.join(BENCH, "python", "bench_ws.py")]}


def cpu_seconds(pid):
    """The process's user and system CPU time so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def run_once(peer):
    env = dict(os.environ, NODE_PATH=os.path.join(BENCH, "node", "node_modules"))
    p = subprocess.Popen(["taskset", "-c", "0"] + SERVERS[peer], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stdout.readline()
        if not line.startswith("port "):
            sys.exit(f"{peer} did not start: {line!r} {p.stderr.read()[-500:]}")
        port = line.split()[1]
        u0, s0 = cpu_seconds(p.pid)
        r = subprocess.run(["taskset", "-c", "1", LASYNC, os.path.join(BENCH, "lasync", "ws_load.lua"), port],
                           capture_output=True, text=True, timeout=300)
        u1, s1 = cpu_seconds(p.pid)
        kv = dict(t.split("=") for t in r.stdout.split()[1:]) if r.stdout.startswith("ok") else None
        if not kv:
            sys.exit(f"load failed against {peer}: {r.stdout} {r.stderr[-500:]}")
        n = int(kv["delivered"])
        return n / float(kv["t"]), (u1 - u0 + s1 - s0) / n * 1e6, (u1 - u0) / n * 1e6
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
    print(f"WebSocket broadcast to 100 clients, 200,000 deliveries; {REPS} runs (median, range)")
    print(f"{'peer':<8} {'messages/s':>24} {'server CPU us/msg':>22} {'ratio':>6}"
          f" {'user us/msg':>20} {'ratio':>6}")
    for peer in peers:
        rates, cpus, users = ([r[i] for r in res[peer]] for i in range(3))
        cm, um = med(peer, 1), med(peer, 2)
        print(f"{peer:<8} {statistics.median(rates):>10.0f} ({min(rates):.0f}-{max(rates):.0f})"
              f" {cm:>8.2f} ({min(cpus):.2f}-{max(cpus):.2f}) {cm / base[0] if base else float('nan'):>6.2f}"
              f" {um:>7.2f} ({min(users):.2f}-{max(users):.2f}) {um / base[1] if base else float('nan'):>6.2f}")


if __name__ == "__main__":
    main(sys.argv[1:] or list(SERVERS))
