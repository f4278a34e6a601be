"""memory: 100,000 tasks all parked in sleep(1); resident memory per parked task."""
import asyncio
import gc
import time
from common import run, fail, status_kb

N = 100_000
parked = woke = 0


async def sleeper():
    global parked, woke
    parked += 1
    await asyncio.sleep(1)
    woke += 1


async def main():
    gc.collect()
    base = status_kb("VmRSS")
    t0 = time.monotonic()
    tasks = [asyncio.create_task(sleeper()) for _ in range(N)]
    while parked < N:
        await asyncio.sleep(0)
    gc.collect()
    rss, hwm = status_kb("VmRSS"), status_kb("VmHWM")
    if woke:
        fail(f"memory: {woke} tasks woke before all were parked ({time.monotonic() - t0:.2f}s)")
    await asyncio.gather(*tasks)
    if woke != N:
        fail(f"memory: {woke} of {N} woke")
    print(f"ok base_kb={base} rss_kb={rss} hwm_kb={hwm} bytes_per_task={(rss - base) * 1024 / N:.0f}")

run(main)
