#!/usr/bin/python3
"""Starts a program (the argv given) STARTUP_N times, one after another, and prints its
figures as an "ok" line for bench/run:

  ok t=<s, all runs> per_run_ms=<ms per start> n=<runs>

For the "startup" workload the program does nothing (`lasync -e ''`, `lua5.4 -e ''`,
`node -e ''`, `python3 -c 'import asyncio'`), so a run is the cost of starting the
runtime: exec, dynamic linking, creating the state, loading what is loaded eagerly,
tearing down. Each run must exit 0 with no output on stderr. A few warm-up runs first
(page cache, dynamic loader cache); then the timed runs (default STARTUP_N=300).

usage: startup_run.py program [args...]"""
import os
import sys
import time

N = int(os.environ.get("STARTUP_N", "300"))
WARMUP = 10


def run_once(argv, actions):
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"{' '.join(argv)} exited with status {code}")


def main(argv):
    if not argv:
        sys.exit(__doc__)
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    for _ in range(WARMUP):
        run_once(argv, actions)
    t0 = time.perf_counter()
    for _ in range(N):
        run_once(argv, actions)
    t = time.perf_counter() - t0
    print(f"ok t={t:.4f} per_run_ms={t / N * 1000:.3f} n={N}")


if __name__ == "__main__":
    main(sys.argv[1:])
