"""executor_cpu: 8 CPU-bound jobs (a numeric loop) one after another in the
process, then on a ProcessPoolExecutor of 2 (threads would not run Python
in parallel); t is the pool's time."""
import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from common import run, fail

JOBS, N = 8, 10_000_000


def work(n):
    s = 0
    for i in range(1, n + 1):
        s = (s * 31 + i) % 1000000007
    return s


async def main():
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    want = [work(N + j) for j in range(1, JOBS + 1)]
    seq = time.monotonic() - t0
    with ProcessPoolExecutor(2) as pool:
        await asyncio.gather(loop.run_in_executor(pool, work, 1000), loop.run_in_executor(pool, work, 1000))
        t0 = time.monotonic()
        got = await asyncio.gather(*(loop.run_in_executor(pool, work, N + j) for j in range(1, JOBS + 1)))
        t = time.monotonic() - t0
    if got != want:
        fail(f"executor_cpu: got {got}, want {want}")
    print(f"ok check={want[-1]} seq={seq:.4f} speedup={seq / t:.2f} t={t:.4f}")

run(main)
