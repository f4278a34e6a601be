# bench/python/bench_http_client.py LOOP URL N CONC [CA]: N GETs of URL,
# CONC at a time, through one aiohttp ClientSession (limit=CONC) on
# asyncio or uvloop; prints "ok bytes=...".
import asyncio, ssl, sys
import aiohttp

async def main(url, n, conc, ca):
    ctx = ssl.create_default_context(cafile=ca) if ca else None
    conn = aiohttp.TCPConnector(limit=conc, limit_per_host=conc, ssl=ctx if ctx else None)
    left, total = [n], [0]
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker():
            while left[0] > 0:
                left[0] -= 1
                async with s.get(url) as r:
                    assert r.status == 200
                    total[0] += len(await r.read())
        await asyncio.gather(*(worker() for _ in range(conc)))
    print("ok bytes=%d" % total[0])

loop, url, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ca = sys.argv[5] if len(sys.argv) > 5 else None
if loop == "uvloop":
    import uvloop
    uvloop.install()
asyncio.run(main(url, n, conc, ca))
