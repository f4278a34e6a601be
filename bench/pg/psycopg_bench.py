"""bench/pg/psycopg_bench.py URL WORKLOAD: psycopg 3 async with psycopg_pool (see lasync_pg.lua)."""
import asyncio, sys, time
import psycopg_pool

ROWS_SQL = ("select g as id, 'name ' || g as name, g * 1.5::float8 as score "
            "from generate_series(1, 100000) g")

async def main(url, workload):
    pool = psycopg_pool.AsyncConnectionPool(url, min_size=10, max_size=10, open=False)
    await pool.open(wait=True)
    if workload == "queries":
        async def worker():
            s = 0
            for i in range(1, 101):
                async with pool.connection() as conn:
                    cur = await conn.execute("select %s::int", (i,))
                    s += (await cur.fetchone())[0]
            return s
        t0 = time.perf_counter()
        r = await asyncio.gather(*[worker() for _ in range(100)])
        dt = time.perf_counter() - t0
        assert sum(r) == 100 * 5050
    else:
        t0 = time.perf_counter()
        async with pool.connection() as conn:
            cur = await conn.execute(ROWS_SQL)
            rows = await cur.fetchall()
        s = sum(r[0] for r in rows)
        dt = time.perf_counter() - t0
        assert len(rows) == 100000 and s == 5000050000 and rows[6][1] == "name 7"
    await pool.close()
    print("ok secs=%.4f" % dt)

asyncio.run(main(sys.argv[1], sys.argv[2]))
