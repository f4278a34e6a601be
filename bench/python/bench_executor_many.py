"""executor_many: 100,000 small jobs submitted at once to a 2-thread pool
(loop.run_in_executor), all awaited."""
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from common import run, fail

N = 100_000


def job(i):
    return i * 2


async def main():
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(2) as pool:
        await asyncio.gather(loop.run_in_executor(pool, job, 0), loop.run_in_executor(pool, job, 0))
        t0 = time.monotonic()
        res = await asyncio.gather(*(loop.run_in_executor(pool, job, i) for i in range(1, N + 1)))
        t = time.monotonic() - t0
    if sum(res) != N * (N + 1):
        fail(f"executor_many: sum={sum(res)}")
    print(f"ok sum={sum(res)} rate={N / t:.0f} t={t:.4f}")

run(main)
