#!/usr/bin/python3
"""bench/redis/run.py: async.redis and async.jobs against their peers, one redis-server.

usage: bench/redis/run.py [ops] [jobs]      (default: both)

Starts a redis-server of its own (temporary directory, free port, no persistence), then,
REPS times (env BENCH_REPS, default 5) in a rotating order, each peer once:
  ops:  100,000 commands (SET/GET alternating) from 100 tasks on one connection:
        lasync (bench/redis/ops.lua), redis-py asyncio with hiredis (ops_redispy.py: on one
        connection, 20,000 commands, and with its default pool of a connection per task),
        ioredis with and without enableAutoPipelining (ops_ioredis.js), and
        redis-benchmark -P 16 (the C limit; -c 1 and -c 50, SET and GET averaged).
  jobs: 10,000 jobs through 2 worker processes: async.jobs (jobs.lua) and BullMQ
        (jobs_bullmq.js). Both started first; the clock runs from the first push.
Prints the median rate of each peer and its ratio to lasync. The Node peers need
`bench/redis/deps.sh` (npm install into bench/redis/node_modules, not committed).
"""
import os, socket, statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
LASYNC = os.path.abspath(os.environ.get("LASYNC") or os.path.join(HERE, "..", "..", "build", "lasync"))
PYTHON = os.environ.get("BENCH_PYTHON", "/usr/bin/python3")
NODE = os.environ.get("BENCH_NODE", "node")
REPS = int(os.environ.get("BENCH_REPS", "5"))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def start_redis():
    d = tempfile.mkdtemp(prefix="lasync-bench-redis.")
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                          "--save", "", "--appendonly", "no"], stdout=subprocess.PIPE, text=True)
    for line in p.stdout:
        if "Ready to accept connections" in line:
            break
    return p, port, d

def parse_ok(out):
    for line in out.splitlines():
        if line.startswith("ok"):
            return dict(kv.split("=") for kv in line.split()[1:])
    return None

def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **(env or {})))
    kv = parse_ok(r.stdout)
    if r.returncode != 0 or kv is None:
        sys.stderr.write("FAILED %s\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
        return None
    return kv

def redis_benchmark(port, clients):
    r = subprocess.run(["redis-benchmark", "-p", str(port), "-n", "100000", "-P", "16",
                        "-c", str(clients), "-t", "set,get", "--csv"],
                       capture_output=True, text=True, timeout=300)
    rates = [float(l.split(",")[1].strip('"')) for l in r.stdout.splitlines()
             if l.startswith('"SET"') or l.startswith('"GET"')]
    return {"ops_per_s": str(statistics.mean(rates))} if len(rates) == 2 else None

def table(title, key, peers, results):
    print("\n" + title)
    base = statistics.median(results["lasync"]) if results.get("lasync") else None
    print("%-28s %12s %10s %s" % ("peer", key, "vs lasync", "runs"))
    for name in peers:
        xs = results.get(name) or []
        if not xs:
            print("%-28s %12s" % (name, "failed")); continue
        m = statistics.median(xs)
        ratio = ("%.2fx" % (m / base)) if base else "-"
        print("%-28s %12.0f %10s %s" % (name, m, ratio, " ".join("%.0f" % x for x in xs)))

def main():
    which = sys.argv[1:] or ["ops", "jobs"]
    srv, port, d = start_redis()
    try:
        if "ops" in which:
            peers = {
                "lasync": lambda: run([LASYNC, os.path.join(HERE, "ops.lua"), str(port)]),
                # 20,000 commands for the single connection: it is that slow.
                "redis-py 1 connection": lambda: run([PYTHON, os.path.join(HERE, "ops_redispy.py"),
                                                      str(port), "100", "20000"]),
                "redis-py pool (100 conns)": lambda: run([PYTHON, os.path.join(HERE, "ops_redispy.py"),
                                                          str(port), "100", "100000", "pool"]),
                "ioredis": lambda: run([NODE, os.path.join(HERE, "ops_ioredis.js"), str(port)]),
                "ioredis autopipelining": lambda: run([NODE, os.path.join(HERE, "ops_ioredis.js"), str(port)],
                                                      {"AUTOPIPELINE": "1"}),
                "redis-benchmark -P16 -c1": lambda: redis_benchmark(port, 1),
                "redis-benchmark -P16 -c50": lambda: redis_benchmark(port, 50),
            }
            results = {k: [] for k in peers}
            names = list(peers)
            for rep in range(REPS):
                for name in names[rep % len(names):] + names[:rep % len(names)]:
                    kv = peers[name]()
                    if kv: results[name].append(float(kv["ops_per_s"]))
            table("100,000 SET/GET from 100 tasks on one connection (ops/s, higher is better)",
                  "ops/s", names, results)
        if "jobs" in which:
            peers = {
                "lasync": lambda: run([LASYNC, os.path.join(HERE, "jobs.lua"), str(port)]),
                "BullMQ": lambda: run([NODE, os.path.join(HERE, "jobs_bullmq.js"), str(port)]),
            }
            results = {k: [] for k in peers}
            names = list(peers)
            for rep in range(REPS):
                for name in names[rep % 2:] + names[:rep % 2]:
                    kv = peers[name]()
                    if kv: results[name].append(float(kv["jobs_per_s"]))
            table("10,000 jobs through 2 worker processes (jobs/s, higher is better)",
                  "jobs/s", names, results)
    finally:
        srv.terminate(); srv.wait()
        subprocess.run(["rm", "-rf", d])

main()
