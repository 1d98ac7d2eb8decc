"""bench/python/process_bench.py — CPython's side of bench/process_bench.cpp.

concurrent.futures.ProcessPoolExecutor: tiny calls pipelined and one at a time, the start-up of
a 2-worker pool, map with chunksize=1000, and the speedup of 8 CPU-bound jobs on 2 workers (start-up included;
the median of three pairs).
Prints one JSON line. Usage: process_bench.py [--quick]
"""
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

from cpu_threads import count_primes  # the same naive prime count (this folder)


def square(x):
    return x * x


def main():
    scale = 5 if "--quick" in sys.argv else 1
    t0 = time.perf_counter()
    pool = ProcessPoolExecutor(max_workers=2)
    pool.submit(square, 1).result()
    startup = time.perf_counter() - t0

    n = 20_000 // scale
    t0 = time.perf_counter()
    futures = [pool.submit(square, i) for i in range(n)]
    for f in futures:
        f.result()
    pipelined = n / (time.perf_counter() - t0)

    trips = 2000 // scale
    t0 = time.perf_counter()
    for i in range(trips):
        pool.submit(square, i).result()
    round_trip = (time.perf_counter() - t0) / trips

    items = 200_000 // scale
    t0 = time.perf_counter()
    list(pool.map(square, range(items), chunksize=1000))
    chunked = items / (time.perf_counter() - t0)
    pool.shutdown()

    # The median of three (sequential, parallel) pairs, as bench/process_bench.cpp does.
    jobs = [20_000 // scale] * 8
    speedups = []
    for _ in range(3):
        t0 = time.perf_counter()
        for j in jobs:
            count_primes(j)
        sequential = time.perf_counter() - t0
        t0 = time.perf_counter()
        with ProcessPoolExecutor(max_workers=2) as workers:
            list(workers.map(count_primes, jobs))
        parallel = time.perf_counter() - t0
        speedups.append(sequential / parallel)
    speedup = sorted(speedups)[1]
    print(json.dumps({"python": sys.version.split()[0], "pipelined_per_s": pipelined,
                      "round_trip_us": round_trip * 1e6, "startup_ms": startup * 1e3,
                      "cpu_speedup": speedup, "map_chunked_per_s": chunked}))


if __name__ == "__main__":
    main()
