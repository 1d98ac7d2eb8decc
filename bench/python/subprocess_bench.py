"""bench/python/subprocess_bench.py — CPython's side of bench/subprocess_bench.cpp.

The same three workloads with asyncio's create_subprocess_exec: /bin/true started and awaited
one at a time, a burst of 100 at once, and 64 MiB through cat with communicate(). Run with
`--uvloop` it installs uvloop's event loop first. Five rounds, medians; prints one JSON line.
Usage: subprocess_bench.py [--quick] [--uvloop]
"""
import asyncio
import json
import platform
import statistics
import sys
import time


async def run_true():
    p = await asyncio.create_subprocess_exec("/bin/true")
    return await p.wait()


async def main():
    quick = "--quick" in sys.argv
    rounds = 1 if quick else 5
    n = 50 if quick else 300
    burst = 100
    cat_bytes = (8 if quick else 64) << 20
    data = bytearray(b"x" * cat_bytes)
    data[::4096] = bytes(ord("a") + i % 26 for i in range(len(data[::4096])))
    data = bytes(data)
    seq, bursts, cat = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(n):
            if await run_true() != 0:
                raise RuntimeError("true failed")
        seq.append((time.perf_counter() - t0) / n * 1e6)
        t0 = time.perf_counter()
        codes = await asyncio.gather(*(run_true() for _ in range(burst)))
        if any(codes):
            raise RuntimeError("true failed")
        bursts.append((time.perf_counter() - t0) / burst * 1e6)
        t0 = time.perf_counter()
        p = await asyncio.create_subprocess_exec("cat", stdin=asyncio.subprocess.PIPE,
                                                 stdout=asyncio.subprocess.PIPE)
        out, _ = await p.communicate(data)
        cat.append(cat_bytes / 1e6 / (time.perf_counter() - t0))
        if out != data:
            raise RuntimeError("cat gave back something else")
    print(json.dumps({"python": platform.python_version(), "seq_us": statistics.median(seq),
                      "burst_us": statistics.median(bursts), "cat_mb_s": statistics.median(cat)}))


if "--uvloop" in sys.argv:
    import uvloop
    uvloop.install()
asyncio.run(main())
