"""bench/python/convoy.py — CPython's side of examples/convoy.cpp: the convoy effect (bpo-7946).

An I/O thread does 1-byte round trips over a socketpair to an echo peer in another process
(outside this interpreter's GIL, like a remote server), first alone, then while one thread spins
in pure Python. Prints one JSON line: round trips per second alone and busy, and the busy p50.
"""
import json
import os
import socket
import sys
import threading
import time


def round_trips(sock, seconds):
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        sock.sendall(b"x")
        if not sock.recv(1):
            raise RuntimeError("echo peer went away")
        latencies.append(time.perf_counter() - t0)
    latencies.sort()
    return len(latencies) / seconds, latencies[len(latencies) // 2] * 1e6


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echo peer
        a.close()
        while data := b.recv(1):
            b.sendall(data)
        os._exit(0)
    b.close()
    result = {}
    threading.Thread(target=lambda: result.update(alone=round_trips(a, seconds))).start()
    while "alone" not in result:
        time.sleep(0.01)

    stop = False

    def spin():
        while not stop:
            pass

    spinner = threading.Thread(target=spin)
    spinner.start()
    io = threading.Thread(target=lambda: result.update(busy=round_trips(a, seconds)))
    io.start()
    io.join()
    stop = True
    spinner.join()
    a.close()
    os.waitpid(pid, 0)
    print(json.dumps({"python": sys.version.split()[0], "alone": result["alone"][0],
                      "busy": result["busy"][0], "busy_p50_us": result["busy"][1]}))


if __name__ == "__main__":
    main()
