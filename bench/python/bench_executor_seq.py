"""executor_seq: 20,000 trivial jobs one after another on a 2-thread pool
(loop.run_in_executor): submit, await the result, repeat."""
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from common import run, fail

N = 20_000


def job(i):
    return i + 1


async def main():
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(2) as pool:
        await loop.run_in_executor(pool, job, 0)
        t0 = time.monotonic()
        total = 0
        for i in range(1, N + 1):
            total += await loop.run_in_executor(pool, job, i)
        t = time.monotonic() - t0
    if total != N * (N + 1) // 2 + N:
        fail(f"executor_seq: sum={total}")
    print(f"ok sum={total} rate={N / t:.0f} t={t:.4f}")

run(main)
