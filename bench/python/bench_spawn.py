"""spawn: 200,000 tasks that each yield once with sleep(0) and return i; gather all."""
import asyncio
import time
from common import run, fail

N = 200_000


async def task(i):
    await asyncio.sleep(0)
    return i


async def main():
    t0 = time.monotonic()
    tasks = [asyncio.create_task(task(i)) for i in range(N)]
    res = await asyncio.gather(*tasks)
    if len(res) != N or sum(res) != N * (N - 1) // 2:
        fail(f"spawn: n={len(res)} sum={sum(res)}")
    print(f"ok sum={sum(res)} t={time.monotonic() - t0:.4f}")

run(main)
