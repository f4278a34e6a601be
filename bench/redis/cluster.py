#!/usr/bin/python3
"""bench/redis/cluster.py: async.redis on a 3-master Redis Cluster against ioredis's Cluster.

Starts three redis-servers with cluster mode on (temporary directories, free ports, no
persistence), joins them with redis-cli --cluster create, then REPS times (env BENCH_REPS,
default 5) in a rotating order: 100,000 commands (SET/GET alternating) from 100 tasks on one
cluster client (ops.lua given the seeds), ioredis Redis.Cluster with and without
enableAutoPipelining (ops_ioredis.js), and for reference the plain lasync client on a
standalone redis-server (ops.lua). Prints the median rate of each and its ratio
to lasync's cluster client. Needs bench/redis/deps.sh.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

# run.py's helpers (it runs its benchmarks when imported as a module, so load it by hand
# without executing the bottom-level main() call)
HERE = os.path.dirname(os.path.abspath(__file__))
_src = open(os.path.join(HERE, "run.py")).read().split("\nmain()")[0]
_run = {"__file__": os.path.join(HERE, "run.py"), "__name__": "bench_redis_run"}
exec(compile(_src, "run.py", "exec"), _run)
LASYNC, NODE, REPS = _run["LASYNC"], _run["NODE"], _run["REPS"]
free_port, run, start_redis = _run["free_port"], _run["run"], _run["start_redis"]

def start_cluster(n=3):
    procs, ports, dirs = [], [], []
    for _ in range(n):
        d = tempfile.mkdtemp(prefix="lasync-bench-cluster.")
        port = free_port()
        p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
                              "--save", "", "--appendonly", "no", "--cluster-enabled", "yes",
                              "--cluster-config-file", os.path.join(d, "nodes.conf"),
                              # the bus port is port + 10000 unless given: past 65535 for
                              # a free port above 55535, and the server would not start
                              "--cluster-port", str(free_port())],
                             stdout=subprocess.PIPE, text=True)
        for line in p.stdout:
            if "Ready to accept connections" in line:
                break
        procs.append(p); ports.append(port); dirs.append(d)
    seeds = ["127.0.0.1:%d" % p for p in ports]
    r = subprocess.run(["redis-cli", "--cluster", "create", *seeds, "--cluster-replicas", "0",
                        "--cluster-yes"], capture_output=True, text=True)
    if r.returncode != 0:
        for p in procs:
            p.terminate(); p.wait()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        sys.exit("redis-cli --cluster create failed:\n" + r.stdout + r.stderr)
    deadline = time.time() + 30
    for port in ports:
        while b"cluster_state:ok" not in subprocess.run(["redis-cli", "-p", str(port), "CLUSTER", "INFO"],
                                                        capture_output=True).stdout:
            if time.time() > deadline:
                sys.exit("the cluster never came up")
            time.sleep(0.05)
    return procs, seeds, dirs

def main():
    procs, seeds, dirs = start_cluster()
    single, single_port, single_dir = start_redis()
    procs.append(single); dirs.append(single_dir)
    s = ",".join(seeds)
    peers = {
        "lasync plain, 1 server": [LASYNC, os.path.join(HERE, "ops.lua"), str(single_port)],
        "lasync cluster": [LASYNC, os.path.join(HERE, "ops.lua"), s],
        "ioredis Cluster": [NODE, os.path.join(HERE, "ops_ioredis.js"), s],
        "ioredis Cluster autopipeline": [NODE, os.path.join(HERE, "ops_ioredis.js"), s],
    }
    env = {"ioredis Cluster autopipeline": {"AUTOPIPELINE": "1"}}
    rates = {k: [] for k in peers}
    names = list(peers)
    try:
        for rep in range(REPS):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                kv = run(peers[name], env.get(name))
                if kv:
                    rates[name].append(float(kv["ops_per_s"]))
    finally:
        for p in procs:
            p.terminate(); p.wait()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    base = statistics.median(rates["lasync cluster"]) if rates["lasync cluster"] else None
    for name in names:
        if rates[name]:
            m = statistics.median(rates[name])
            print("%-30s %10.0f ops/s  %s" % (name, m, ("x%.2f of lasync" % (m / base)) if base else ""))
        else:
            print("%-30s failed" % name)

if __name__ == "__main__":
    main()
