"""bench/python/file_bench.py — CPython's side of bench/file_bench.cpp.

asyncio has no file I/O: a program reads and writes whole files with
`await asyncio.to_thread(path.read_bytes)` and `path.write_bytes`, which is what this times —
the same 256 MiB file (in the page cache) read, then replaced, five rounds, medians in MB/s.
Prints one JSON line. Usage: file_bench.py [--quick]
"""
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


async def main():
    quick = "--quick" in sys.argv
    size = (32 if quick else 256) << 20
    rounds = 1 if quick else 5
    folder = Path(os.environ.get("TMPDIR") or tempfile.gettempdir())
    src, dst = folder / "gilio_file_bench_py_in.bin", folder / "gilio_file_bench_py_out.bin"
    data = bytearray(size)
    data[::4096] = bytes(i % 256 for i in range(len(data[::4096])))
    data = bytes(data)
    src.write_bytes(data)
    src.read_bytes()  # into the page cache
    reads, writes = [], []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            back = await asyncio.to_thread(src.read_bytes)
            reads.append(size / 1e6 / (time.perf_counter() - t0))
            if back != data:
                raise RuntimeError("the read came back different")
            # From a fresh copy, as gilio's write_file and the plain loop write (made before the
            # clock, freed inside it): the kernel's first read of a new buffer costs more here.
            fresh = bytearray(data)
            t0 = time.perf_counter()
            await asyncio.to_thread(dst.write_bytes, fresh)
            del fresh
            writes.append(size / 1e6 / (time.perf_counter() - t0))
    finally:
        src.unlink(missing_ok=True)
        dst.unlink(missing_ok=True)
    print(json.dumps({"python": platform.python_version(), "mib": size >> 20,
                      "read_mb_s": statistics.median(reads),
                      "write_mb_s": statistics.median(writes)}))


asyncio.run(main())
