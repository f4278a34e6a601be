# bench/redis/ops_redispy.py PORT [TASKS] [N] [pool]: the same as ops.lua
# with redis-py's asyncio client (python3-redis; python3-hiredis parses
# replies when installed): one connection shared by the tasks (redis-py does
# not pipeline across tasks: each command holds it for its round trip), or
# with "pool" its default pool, a connection per concurrent task.
import asyncio, sys, time
import redis.asyncio as aioredis
import redis.utils

async def main(port, tasks, n, pooled):
    if pooled:      # its default: a connection per concurrent task (up to 100)
        pool = aioredis.ConnectionPool(host="127.0.0.1", port=port)
    else:           # one connection, which each command holds for its round trip
        pool = aioredis.BlockingConnectionPool(host="127.0.0.1", port=port, max_connections=1)
    r = aioredis.Redis(connection_pool=pool)
    per = n // tasks // 2
    async def worker(t):
        key = f"k{t}"
        for i in range(1, per + 1):
            await r.set(key, i)
            if await r.get(key) != str(i).encode():
                raise SystemExit("wrong value")
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(1, tasks + 1)))
    t = time.perf_counter() - t0
    await r.aclose() if hasattr(r, "aclose") else await r.close()
    print(f"ok t={t:.4f} ops={per*tasks*2} ops_per_s={per*tasks*2/t:.0f} hiredis={int(redis.utils.HIREDIS_AVAILABLE)}")

port = int(sys.argv[1]); tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 100
n = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
asyncio.run(main(port, tasks, n, len(sys.argv) > 4 and sys.argv[4] == "pool"))
