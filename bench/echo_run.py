#!/usr/bin/python3
"""Runs one echo server (the argv given) against the C load generator and prints its
figures as an "ok" line for bench/run:

  ok rate=<round trips/s> cpu_us=<server CPU µs per round trip> rt=<n> t=<s> cpu_s=<s>
     server_rss_kb=<the server's peak resident set>

The server prints "port N" when it listens. The load generator (bench/build/echo_load)
opens ECHO_CONNS connections (default 100) that each do ECHO_ROUNDS round trips
(default 3000) of a 64-byte message; a short warm-up run comes first. The server's CPU
time (user + system, all its threads) is read from /proc/<pid>/stat just before and after
the measured run, so start-up is not counted. The generator and the server share the
machine's cores: the rate is often the client's limit, the CPU per round trip is the
server's cost.

usage: echo_run.py server-argv..."""
import os
import subprocess
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
LOAD = os.path.join(BENCH, "build", "echo_load")
CONNS = os.environ.get("ECHO_CONNS", "100")
ROUNDS = os.environ.get("ECHO_ROUNDS", "3000")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK   # utime, stime


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))


def load(port, rounds):
    r = subprocess.run([LOAD, str(port), CONNS, str(rounds)], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"echo_load failed: {r.stderr.strip()}")
    return dict(kv.split("=") for kv in r.stdout.split())


def main(argv):
    if not argv:
        sys.exit(__doc__)
    if subprocess.run(["make", "-s", "-C", BENCH, "build/echo_load"]).returncode != 0:
        sys.exit("cannot build bench/build/echo_load")
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        if not line.startswith("port "):
            sys.exit(f"server did not start: {line!r} {server.stderr.read()[-600:]}")
        port = int(line.split()[1])
        load(port, 200)                                  # warm-up: JITs, allocators
        c0 = cpu_seconds(server.pid)
        res = load(port, int(ROUNDS))
        c1 = cpu_seconds(server.pid)
        rt, t = int(res["rt"]), float(res["t"])
        print(f"ok rate={rt / t:.0f} cpu_us={(c1 - c0) / rt * 1e6:.3f} rt={rt} t={t:.4f} "
              f"cpu_s={c1 - c0:.3f} server_rss_kb={peak_rss_kb(server.pid)}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main(sys.argv[1:])
