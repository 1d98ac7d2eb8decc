"""bench/python/loop_bench.py — asyncio's and uvloop's side of bench/loop_bench.cpp.

The same workloads, printed as one JSON line: spawn + gather of N trivial tasks (also with a
context variable set, which every task then copies), sleep(0) switches among 100 tasks, memory
per task parked on an Event (resident bytes, from /proc/self/statm), N call_later timers armed
and fired, N items through Queue(maxsize=64) from one producer to one consumer, and N ints from
an async generator through `async for`. Sizes are smaller than the C++ side's: only rates are
compared. Usage: loop_bench.py [--uvloop] [--quick]
"""
import asyncio
import contextvars
import json
import os
import sys
import time


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGESIZE")


async def trivial(i):
    return i


async def spawn_gather(n):
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(trivial(i)) for i in range(n)]
    results = await asyncio.gather(*tasks)
    assert len(results) == n
    return n / (time.perf_counter() - t0)


async def yielder(k):
    for _ in range(k):
        await asyncio.sleep(0)


async def yields(tasks, k):
    t0 = time.perf_counter()
    await asyncio.gather(*(yielder(k) for _ in range(tasks)))
    return tasks * k / (time.perf_counter() - t0)


async def parked(event):
    await event.wait()


async def parked_memory(n):
    event = asyncio.Event()
    rss0 = resident_bytes()
    tasks = [asyncio.create_task(parked(event)) for _ in range(n)]
    await asyncio.sleep(0)
    per_task = (resident_bytes() - rss0) / n
    event.set()
    await asyncio.gather(*tasks)
    return per_task


async def timers(n):
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    fired = 0

    def fire():
        nonlocal fired
        fired += 1
        if fired == n:
            done.set()

    t0 = time.perf_counter()
    for i in range(n):
        loop.call_later((i % 1000) * 1e-6, fire)
    await done.wait()
    return n / (time.perf_counter() - t0)


async def produce(q, n):
    for i in range(n):
        await q.put(i)


async def queue(n):
    q = asyncio.Queue(maxsize=64)
    t0 = time.perf_counter()
    producer = asyncio.create_task(produce(q, n))
    total = 0
    for _ in range(n):
        total += await q.get()
    await producer
    assert total == n * (n - 1) // 2
    return n / (time.perf_counter() - t0)


async def spawn_gather_eager(n):
    """spawn_gather under asyncio.eager_task_factory (3.12+); None before 3.12."""
    factory = getattr(asyncio, "eager_task_factory", None)
    if factory is None:
        return None
    loop = asyncio.get_running_loop()
    loop.set_task_factory(factory)
    try:
        return await spawn_gather(n)
    finally:
        loop.set_task_factory(None)


async def numbers(n):
    for i in range(n):
        yield i


async def async_gen_items(n):
    t0 = time.perf_counter()
    total = 0
    async for i in numbers(n):
        total += i
    assert total == n * (n - 1) // 2
    return n / (time.perf_counter() - t0)


request = contextvars.ContextVar("request")


async def spawn_gather_in_context(n):
    """spawn_gather (memory reused) made inside a context that holds a variable: each task
    copies that context, as every asyncio task copies its creator's."""
    ctx = contextvars.Context()
    ctx.run(request.set, 1)
    return await ctx.run(asyncio.get_running_loop().create_task, spawn_gather(n))


async def main(quick):
    scale = 5 if quick else 1
    result = {
        "spawn_gather_per_s": await spawn_gather(200_000 // scale),
        "spawn_gather_again_per_s": await spawn_gather(200_000 // scale),
        "spawn_gather_eager_per_s": await spawn_gather_eager(200_000 // scale),
        "yield_switches_per_s": await yields(100, 2_000 // scale),
        "parked_resident_bytes": await parked_memory(200_000 // scale),
        "timers_per_s": await timers(200_000 // scale),
        "queue_items_per_s": await queue(200_000 // scale),
        "async_gen_items_per_s": await async_gen_items(1_000_000 // scale),
        # Last: no other workload runs after a variable was set.
        "spawn_gather_context_per_s": await spawn_gather_in_context(200_000 // scale),
    }
    return {k: v for k, v in result.items() if v is not None}


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    if "--uvloop" in sys.argv:
        import uvloop  # Debian's 0.17 has no uvloop.run: install its loop policy instead
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        result = asyncio.run(main(quick))
        result["peer"] = "uvloop " + uvloop.__version__
    else:
        result = asyncio.run(main(quick))
        result["peer"] = "asyncio " + sys.version.split()[0]
    print(json.dumps(result))
