"""bench/python/convoy.py — CPython's side of examples/convoy.cpp: the convoy effect (bpo-7946).

An I/O thread does 1-byte round trips over a socketpair to an echo peer in another process
(outside this interpreter's GIL, like a remote server), first alone, then while one thread spins
in pure Python. Prints one JSON line: round trips per second alone and busy, the share of the
busy blocking calls (sendall and recv, each timed) whose return waited for the GIL (the call took
over half a switch interval), and their median.
"""
import json
import os
import socket
import sys
import threading
import time


def round_trips(sock, seconds):
    threshold = sys.getswitchinterval() / 2
    trips, waits = 0, []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        sock.sendall(b"x")
        t1 = time.perf_counter()
        if not sock.recv(1):
            raise RuntimeError("echo peer went away")
        t2 = time.perf_counter()
        trips += 1
        waits += [took for took in (t1 - t0, t2 - t1) if took > threshold]
    waits.sort()
    return {"per_second": trips / seconds, "waited": len(waits) / max(2 * trips, 1),
            "wait_p50_us": waits[len(waits) // 2] * 1e6 if waits else 0.0}


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
    busy = result["busy"]
    print(json.dumps({"python": sys.version.split()[0], "alone": result["alone"]["per_second"],
                      "busy": busy["per_second"], "busy_waited": busy["waited"],
                      "busy_wait_p50_us": busy["wait_p50_us"]}))


if __name__ == "__main__":
    main()
