"""bench/python/race.py — CPython's side of examples/race.cpp (lessons L8, L9).

The source documents' experiment: two threads from a ThreadPoolExecutor each add 1 to a global
100 times; 100 attempts per switch interval. Prints one JSON line: % correct per interval.
On CPython >= 3.10 the eval loop checks for a GIL drop request only at calls and backward
jumps, so `num += 1` is never split and every cell is 100%.
"""
import json
import sys
from concurrent.futures import ThreadPoolExecutor

num = 0


def inc():
    global num
    for _ in range(100):
        num += 1


def percent_correct(interval, attempts=100):
    global num
    sys.setswitchinterval(interval)
    correct = 0
    for _ in range(attempts):
        num = 0
        with ThreadPoolExecutor(max_workers=2) as ex:
            ex.submit(inc)
            ex.submit(inc)
        correct += num == 200
    return 100.0 * correct / attempts


if __name__ == "__main__":
    intervals = [0.005, 5e-7, 5e-10]
    print(json.dumps({"python": sys.version.split()[0], "intervals": intervals,
                      "percent_correct": [percent_correct(i) for i in intervals]}))
