"""bench/pg/asyncpg_bench.py URL WORKLOAD: asyncpg on uvloop (see lasync_pg.lua)."""
import asyncio, sys, time
import asyncpg, uvloop

ROWS_SQL = ("select g as id, 'name ' || g as name, g * 1.5::float8 as score "
            "from generate_series(1, 100000) g")

async def main(url, workload):
    pool = await asyncpg.create_pool(url, min_size=10, max_size=10)
    if workload == "queries":
        async def worker():
            s = 0
            for i in range(1, 101):
                s += await pool.fetchval("select $1::int", i)
            return s
        t0 = time.perf_counter()
        r = await asyncio.gather(*[worker() for _ in range(100)])
        dt = time.perf_counter() - t0
        assert sum(r) == 100 * 5050
    else:
        t0 = time.perf_counter()
        rows = await pool.fetch(ROWS_SQL)
        s = sum(r["id"] for r in rows)
        dt = time.perf_counter() - t0
        assert len(rows) == 100000 and s == 5000050000 and rows[6]["name"] == "name 7"
    await pool.close()
    print("ok secs=%.4f" % dt)

uvloop.install()
asyncio.run(main(sys.argv[1], sys.argv[2]))
