"""queue: 1 producer, 4 consumers, an asyncio.Queue bounded at 100, 500,000 integers."""
import asyncio
import time
from common import run, fail

N, CONSUMERS, MAXSIZE = 500_000, 4, 100
count = 0


async def producer(q):
    for i in range(N):
        await q.put(i)
    for _ in range(CONSUMERS):
        await q.put(None)   # one end marker per consumer


async def consumer(q):
    global count
    total = 0
    while (v := await q.get()) is not None:
        total += v
        count += 1
    return total


async def main():
    t0 = time.monotonic()
    q = asyncio.Queue(MAXSIZE)
    res = await asyncio.gather(*(consumer(q) for _ in range(CONSUMERS)), producer(q))
    total = sum(res[:CONSUMERS])
    if count != N or total != N * (N - 1) // 2:
        fail(f"queue: count={count} total={total}")
    print(f"ok total={total} t={time.monotonic() - t0:.4f}")

run(main)
