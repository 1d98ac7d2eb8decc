"""bench/python/to_thread_lag.py — CPython's side of examples/to_thread.cpp (lesson L5).

How late asyncio.sleep(1 ms) wakes up, alone and while a CPU-bound pure-Python function runs in
asyncio.to_thread. Prints one JSON line (milliseconds). Pass --uvloop to run it on uvloop.
"""
import asyncio
import json
import statistics
import sys
import time

stop = False


def cpu_bound():
    n = 0
    while not stop:
        n += 1


async def overshoot(samples=200):
    late = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append(time.perf_counter() - t0 - 0.001)
    late.sort()
    return statistics.median(late) * 1e3, late[len(late) * 99 // 100] * 1e3


async def main():
    global stop
    idle = await overshoot()
    worker = asyncio.create_task(asyncio.to_thread(cpu_bound))
    busy = await overshoot()
    stop = True
    await worker
    return {"python": sys.version.split()[0], "idle_p50_ms": idle[0], "busy_p50_ms": busy[0],
            "busy_p99_ms": busy[1]}


if __name__ == "__main__":
    if "--uvloop" in sys.argv:
        import uvloop  # Debian's 0.17 has no uvloop.run: install its loop policy instead
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        result = asyncio.run(main())
    else:
        result = asyncio.run(main())
    print(json.dumps(result))
