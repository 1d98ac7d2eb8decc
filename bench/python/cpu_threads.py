"""bench/python/cpu_threads.py — CPython's side of examples/cpu_threads.cpp (L1, L4, L6, L7).

Eight CPU-bound jobs run sequentially, on 2 threads, and on 2 processes (ProcessPoolExecutor,
pool start-up included, as lesson L7 asks). Prints one JSON line of seconds. The job is the
same naive prime count as the C++ example, with a smaller limit: interpreted code is ~100x
slower, and only the ratios are compared.
"""
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

JOBS = 8


def count_primes(limit):
    count = 0
    for n in range(2, limit):
        d = 2
        prime = True
        while d * d <= n:
            if n % d == 0:
                prime = False
                break
            d += 1
        count += prime
    return count


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
    jobs = [limit] * JOBS
    sequential = timed(lambda: [count_primes(j) for j in jobs])

    def in_threads():
        with ThreadPoolExecutor(max_workers=2) as ex:
            list(ex.map(count_primes, jobs))

    def in_processes():
        with ProcessPoolExecutor(max_workers=2) as ex:
            list(ex.map(count_primes, jobs))

    print(json.dumps({"python": sys.version.split()[0], "jobs": JOBS, "limit": limit,
                      "sequential": sequential, "threads": timed(in_threads),
                      "processes": timed(in_processes)}))


if __name__ == "__main__":
    main()
