#!/usr/bin/env python3
"""bench/run.py — `make bench`: every comparison, gilio beside its peers, in one run.

Machines here are shared and noisy, so each comparison runs gilio and its peer in the same
invocation and reports the ratio (../shared/PERF.md). Each comparison is a function that returns
rows; a row names the workload, gilio's figure, each peer's figure, the target and whether it is
met. Results go to build/bench-results/ as JSON and CSV, and one table is printed at the end.

The comparisons (COMPARISONS): the GIL's own costs (Google Benchmark), the race experiment
(L8/L9), CPU-bound threads vs processes (L1/L4/L6), the convoy effect, the event loop's costs
(spawn, switches, timers, queue, memory per task) against asyncio, uvloop and Boost.Fiber, the
loop's lag beside a CPU-bound to_thread (L5), echo servers against asyncio and uvloop on
loopback, whole-file reads and writes against plain system calls and CPython's to_thread, child
processes against posix_spawn, asyncio and uvloop, and the process pool against CPython's. Then charts.py draws the results and the GIL
timelines: into docs/bench/ after a full run (committed, with the date and machine), into
build/bench-results/charts/ after a quick one.
"""
import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PYTHON = "/usr/bin/python3"  # Debian's interpreter: the one python3-uvloop is installed for
HERE = os.path.dirname(os.path.abspath(__file__))
START = time.monotonic()


def progress(message):
    print(f"[{time.monotonic() - START:6.1f}s] {message}", flush=True)


def run_json(cmd, env=None, timeout=600):
    """Runs a program that prints JSON (a document, or one line last) and returns it parsed."""
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=full_env,
                         timeout=timeout).stdout.strip()
    try:
        return json.loads(out)
    except json.JSONDecodeError:
        return json.loads(out.splitlines()[-1])


def row(workload, gilio, unit, peers=None, target=None, met=None, note="", higher_is_better=None):
    """One line of the table. With higher_is_better set, `ratio` compares gilio with the best
    peer of the row (> 1 means gilio is better)."""
    peers = peers or {}
    ratio = None
    values = [v for v in peers.values() if isinstance(v, (int, float)) and v > 0]
    if higher_is_better is not None and values and gilio > 0:
        best = max(values) if higher_is_better else min(values)
        ratio = gilio / best if higher_is_better else best / gilio
    return {"workload": workload, "gilio": gilio, "unit": unit, "peers": peers,
            "target": target or "", "met": met, "note": note, "ratio": ratio,
            "higher_is_better": higher_is_better}


def spread(lo, hi, target, n, what="runs"):
    """What n runs (or rounds) say about a target: the true median lies between the lowest and
    the highest of n independent runs with probability 1 - 2 / 2**n (94% for 5), whatever the
    noise's distribution."""
    if n < 2:
        return ""
    confidence = 100 * (1 - 2 / 2 ** n)
    verdict = (", a range that straddles the target: this run cannot tell either way"
               if target is not None and lo <= target <= hi else "")
    return (f"; its true value lies within the {what}' range, {lo:.4g}-{hi:.4g}, with "
            f"{confidence:.0f}% confidence{verdict}")


def repeated(cmd, runs, what):
    """Runs a JSON-printing program `runs` times, each a fresh process; returns (the median of
    each numeric figure, every run's figures)."""
    results = []
    for i in range(runs):
        progress(f"{what} ({i + 1}/{runs})")
        results.append(run_json(cmd))
    medians = {k: statistics.median(r[k] for r in results) for k, v in results[0].items()
               if isinstance(v, (int, float))}
    return medians, results


def median_note(results, key, scale=1.0, target=None):
    """The note under a figure that is the median of several runs: how many, and their range."""
    values = [r[key] * scale for r in results]
    n = len(values)
    if n < 2:
        return ""
    if min(values) == max(values):
        return f"the same in each of {n} runs"
    return (f"the median of {n} runs, each a fresh process"
            f"{spread(min(values), max(values), target, n)}")


def joined(*notes):
    """Notes for one figure, the empty ones left out."""
    return "; ".join(n for n in notes if n)


def gil_costs(args):
    progress("GIL costs: gil_bench (Google Benchmark)")
    data = run_json([os.path.join(args.build, "bench", "gil_bench"), "--benchmark_format=json",
                     f"--benchmark_min_time={0.05 if args.quick else 0.3}"])
    ns = {b["name"].split("/")[0]: b["real_time"] for b in data["benchmarks"]}
    return [
        row("checkpoint(), nobody waiting", ns["Checkpoint_uncontended"], "ns",
            target="<= 2 ns", met=ns["Checkpoint_uncontended"] <= 2),
        row("release + re-take, uncontended", ns["ReleaseAcquire_uncontended"], "ns",
            target="<= 50 ns", met=ns["ReleaseAcquire_uncontended"] <= 50),
        row("handoff to a thread blocked in acquire()", ns["Handoff"] / 1000, "us",
            note="one futex wake-up"),
    ]


def race(args):
    progress("race (L8/L9): gilio, both policies")
    ours = run_json([os.path.join(args.build, "examples", "race"), "--json"])
    progress("race (L8/L9): CPython")
    theirs = run_json([PYTHON, os.path.join(HERE, "python", "race.py")])
    rows = []
    for i, interval in enumerate(ours["intervals"]):
        new = ours["calls_and_jumps"][i]
        rows.append(row(f"race: % correct at switch interval {interval:g} s", new, "%",
                        peers={f"CPython {theirs['python']}": theirs["percent_correct"][i],
                               "gilio <=3.9 policy": ours["every_bytecode"][i]},
                        target="3.10+ policy 100%", met=new == 100.0))
    return rows


def cpu_threads(args):
    progress("CPU-bound jobs: gilio sequential / threads (GIL on, off)")
    ours = run_json([os.path.join(args.build, "examples", "cpu_threads"), "--json"])
    progress("CPU-bound jobs: CPython sequential / threads / processes")
    limit = "15000" if args.quick else "40000"
    theirs = run_json([PYTHON, os.path.join(HERE, "python", "cpu_threads.py"), limit])
    py = f"CPython {theirs['python']}"
    gil_x = ours["sequential"] / ours["threads_gil"]
    off_x = ours["sequential"] / ours["threads_off"]
    return [
        row("CPU jobs: 2 threads under the GIL, speedup", gil_x, "x",
            peers={py: theirs["sequential"] / theirs["threads"]},
            target="~1x (faithful)", met=0.8 <= gil_x <= 1.2),
        row("CPU jobs: 2 threads, GIL off, speedup", off_x, "x",
            peers={f"{py} processes": theirs["sequential"] / theirs["processes"]},
            target=">= 1.9x", met=off_x >= 1.9),
    ]


def convoy(args):
    progress("convoy effect: gilio cpython and io_priority modes")
    ours = run_json([os.path.join(args.build, "examples", "convoy"), "--json"])
    progress("convoy effect: CPython")
    theirs = run_json([PYTHON, os.path.join(HERE, "python", "convoy.py"),
                       "0.2" if args.quick else "0.5"])
    py = f"CPython {theirs['python']}"
    slow = {m: ours[m]["alone"] / ours[m]["busy"] for m in ("cpython", "io_priority")}
    return [
        row("convoy: I/O round-trip slowdown, cpython mode", slow["cpython"], "x",
            peers={py: theirs["alone"] / theirs["busy"]}, target=">= 30x",
            met=slow["cpython"] >= 30),
        row("convoy: I/O round-trip slowdown, io_priority mode", slow["io_priority"], "x",
            target="<= 2x", met=slow["io_priority"] <= 2),
        row("convoy: blocking calls that came back to a held GIL, cpython mode",
            ours["cpython"]["busy_waited"] * 100, "%", peers={py: theirs["busy_waited"] * 100},
            note="the rest are free: they fall while the spinner wakes from its forced switch"),
        row("convoy: p50 of those calls, cpython mode",
            ours["cpython"]["busy_wait_p50_us"] / 1000, "ms",
            peers={py: theirs["busy_wait_p50_us"] / 1000}, note="about one switch interval"),
    ]


def loop_costs(args):
    quick = ["--quick"] if args.quick else []
    # gilio's figures swing with the host's load (switches/s by up to 2x between runs here) and
    # each run takes a second, so it runs five times and every figure is the median; the peers,
    # slower by orders of magnitude and ten seconds a run, run once.
    ours, runs = repeated([os.path.join(args.build, "bench", "loop_bench")] + quick,
                          1 if args.quick else 5, "event loop costs: gilio (loop_bench)")
    progress("event loop costs: CPython asyncio")
    aio = run_json([PYTHON, os.path.join(HERE, "python", "loop_bench.py")] + quick)
    progress("event loop costs: uvloop")
    uv = run_json([PYTHON, os.path.join(HERE, "python", "loop_bench.py"), "--uvloop"] + quick)
    progress("event loop costs: Boost.Fiber (fiber_bench)")
    fib = run_json([os.path.join(args.build, "bench", "fiber_bench")] + quick)

    def peers(key):
        return {p["peer"]: p[key] for p in (aio, uv, fib) if key in p}

    spawn, yld = ours["spawn_gather_per_s"], ours["yield_switches_per_s"]
    # The first round's share of time in the kernel (loop_bench measures it with getrusage);
    # older builds do not report it.
    kernel = ours.get("spawn_gather_kernel_share", 0)
    mem, timers, items = (ours["parked_resident_bytes"], ours["timers_per_s"],
                          ours["queue_items_per_s"])

    def note(key, scale=1e-6, target=None):
        return median_note(runs, key, scale, target)

    return [
        row("spawn + gather of trivial tasks", spawn / 1e6, "M/s",
            {k: v / 1e6 for k, v in peers("spawn_gather_per_s").items()},
            ">= 10 M/s", spawn >= 10e6, higher_is_better=True,
            note=joined(note("spawn_gather_per_s", target=10),
                        f"the kernel took {kernel:.0%} of this round filling fresh pages; the "
                        f"rest alone would run at {spawn / (1 - kernel) / 1e6:.1f} M/s"
                        if 0 < kernel < 1 else "")),
        row("spawn + gather again, memory reused", ours["spawn_gather_again_per_s"] / 1e6, "M/s",
            {k: v / 1e6 for k, v in peers("spawn_gather_again_per_s").items()},
            higher_is_better=True,
            note=joined("the same workload a second time in the same process: no fresh pages "
                        "to fault in; the target is judged on the first round",
                        note("spawn_gather_again_per_s"))),
        row("spawn + gather, eager task factory", ours["spawn_gather_eager_per_s"] / 1e6, "M/s",
            {k: v / 1e6 for k, v in peers("spawn_gather_eager_per_s").items()},
            higher_is_better=True,
            note=joined("asyncio 3.12's eager_task_factory: each task runs to its end inside "
                        "create_task and is never queued (memory reused, as the row above); "
                        "CPython before 3.12 and Boost.Fiber have none",
                        note("spawn_gather_eager_per_s"))),
        row("spawn + gather, a context variable set", ours["spawn_gather_context_per_s"] / 1e6,
            "M/s", {k: v / 1e6 for k, v in peers("spawn_gather_context_per_s").items()},
            higher_is_better=True,
            note=joined("the same workload made inside a context holding a variable, so each "
                        "task copies it (asyncio copies a context for every task anyway; gilio "
                        "only once a variable is set, into a 128-byte part that is fresh memory "
                        "here); Boost.Fiber has none",
                        note("spawn_gather_context_per_s"))),
        row("sleep(0) switches among 100 tasks", yld / 1e6, "M/s",
            {k: v / 1e6 for k, v in peers("yield_switches_per_s").items()},
            ">= 100 M/s", yld >= 100e6, higher_is_better=True,
            note=note("yield_switches_per_s", target=100)),
        row("memory per task parked on an Event", mem, "B", peers("parked_resident_bytes"),
            "<= 256 B", mem <= 256, higher_is_better=False,
            note=note("parked_resident_bytes", 1, target=256)),
        row("timers armed and fired", timers / 1e6, "M/s",
            {k: v / 1e6 for k, v in peers("timers_per_s").items()},
            ">= 5 M/s", timers >= 5e6, higher_is_better=True,
            note=note("timers_per_s", target=5)),
        row("Queue producer -> consumer", items / 1e6, "M/s",
            {k: v / 1e6 for k, v in peers("queue_items_per_s").items()},
            higher_is_better=True, note=note("queue_items_per_s")),
        row("async generator -> async for", ours["async_gen_items_per_s"] / 1e6, "M/s",
            {k: v / 1e6 for k, v in peers("async_gen_items_per_s").items()},
            higher_is_better=True,
            note=joined("one task takes ints from an async generator (AsyncGenerator<int>, "
                        "next() in a while loop); Boost.Fiber has none",
                        note("async_gen_items_per_s"))),
    ]


def loop_lag(args):
    progress("loop lag beside a CPU-bound to_thread: gilio")
    ours = run_json([os.path.join(args.build, "examples", "to_thread"), "--json"])
    progress("loop lag beside a CPU-bound to_thread: CPython")
    theirs = run_json([PYTHON, os.path.join(HERE, "python", "to_thread_lag.py")])
    p50 = ours["busy_p50_ms"]
    return [row("sleep(1 ms) overshoot p50 beside a CPU-bound to_thread", p50, "ms",
                {f"CPython {theirs['python']}": theirs["busy_p50_ms"]},
                "~ switch interval (faithful)", 3 <= p50 <= 8)]


def start_server(cmd):
    """Starts an echo server pinned to core 1; returns (process, port)."""
    proc = subprocess.Popen(["taskset", "-c", "1"] + cmd, stdout=subprocess.PIPE, text=True,
                            stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()
    if "Serving on" not in line:
        proc.kill()
        raise RuntimeError(f"{cmd[0]} did not start: {line!r}")
    return proc, int(line.strip().rsplit(":", 1)[1])


def drive_echo_servers(args, servers, order_of, rounds, what, extra=()):
    """Runs every server of `servers` (name: command) under the load generator with 50
    connections, `rounds` times for each message size, in the order order_of(turn) gives (the
    load generator's `extra` arguments after its CPU). Returns {(name, size): [its JSON, ...]}."""
    seconds = "0.5" if args.quick else "2"
    runs = {}
    for size in (128, 1024):
        for turn in range(rounds):
            for name in order_of(turn):
                progress(f"{what}, 50 connections x {size} B: {name} ({turn + 1}/{rounds})")
                proc, port = start_server(servers[name])
                try:
                    runs.setdefault((name, size), []).append(run_json(
                        [os.path.join(args.build, "bench", "loadgen"), str(port), "50", str(size),
                         seconds, str(proc.pid), "0", *extra], timeout=120))
                finally:
                    proc.kill()
                    proc.wait()
    return runs


def medians(runs):
    """Each server's and size's runs, every metric the median of its runs."""
    return {key: {metric: statistics.median(r[metric] for r in rs) for metric in rs[0]}
            for key, rs in runs.items()}


def echo(args):
    uring_echo = os.path.join(args.build, "bench", "uring_echo")
    servers = {
        "gilio streams": [os.path.join(args.build, "examples", "echo_server"), "0"],
        "gilio protocol": [os.path.join(args.build, "examples", "echo_protocol_server"), "0"],
        "gilio sock_*": [os.path.join(args.build, "bench", "sock_echo"), "0"],
        "liburing floor": [uring_echo, "0"],
        "asyncio streams": [PYTHON, os.path.join(HERE, "python", "echo_server.py"), "0", "streams"],
        "asyncio protocol": [PYTHON, os.path.join(HERE, "python", "echo_server.py"), "0",
                             "protocol"],
        "uvloop protocol": [PYTHON, os.path.join(HERE, "python", "echo_server.py"), "0",
                            "protocol", "--uvloop"],
        "uvloop streams": [PYTHON, os.path.join(HERE, "python", "echo_server.py"), "0",
                           "streams", "--uvloop"],
    }
    # One run of a server swings 10-20% on this shared machine: each server runs `rounds` times,
    # the servers taking turns, and every figure is the median of its runs. The targets are
    # judged on paired ratios: gilio's run against the peer's run of the same round (one after
    # the other, so drift in the machine's speed cancels), the median over the rounds.
    # The judged pairs run back to back (the floor, gilio's streams, uvloop's protocol server),
    # so that each ratio compares runs about two seconds apart; the rest follow. A place in the
    # round has a cost of its own (in one run every server that ran late measured slower), so
    # the places move: the judged three run forwards and backwards in alternate rounds (gilio
    # in the middle, next to both of its peers), and the rest rotate.
    judged = ["liburing floor", "gilio streams", "uvloop protocol"]
    rest = [n for n in servers if n not in judged]

    def order_of(turn):
        k = turn % len(rest)
        return (judged if turn % 2 == 0 else judged[::-1]) + rest[k:] + rest[:k]
    rounds = 1 if args.quick else 5
    runs = drive_echo_servers(args, servers, order_of, rounds, "echo")
    results = medians(runs)

    def paired(size, peer, metric):
        ratios = [g[metric] / p[metric]
                  for g, p in zip(runs[("gilio streams", size)], runs[(peer, size)])]
        return statistics.median(ratios), min(ratios), max(ratios)

    how = f"the median of {rounds} rounds' ratios, each round running every server once in turn"

    rows = []
    for size in (128, 1024):
        ours = results[("gilio streams", size)]
        cpu_x, cpu_lo, cpu_hi = paired(size, "liburing floor", "server_cpu_us_per_req")
        rps_x, rps_lo, rps_hi = paired(size, "uvloop protocol", "requests_per_s")
        others = [n for n in servers if n != "gilio streams"]
        rows.append(row(f"echo {size} B x 50 conns: server CPU per request",
                        ours["server_cpu_us_per_req"], "us",
                        {n: results[(n, size)]["server_cpu_us_per_req"] for n in others},
                        "<= 1.0x liburing floor", cpu_x <= 1.0,
                        note=f"{cpu_x:.3f}x the liburing floor ({how}"
                             f"{spread(cpu_lo, cpu_hi, 1.0, rounds, 'rounds')})"))
        rows.append(row(f"echo {size} B x 50 conns: requests/s", ours["requests_per_s"] / 1e3,
                        "k/s", {n: results[(n, size)]["requests_per_s"] / 1e3 for n in others},
                        ">= 1.25x uvloop", rps_x >= 1.25,
                        note=f"{rps_x:.3f}x uvloop's protocol server ({how}"
                             f"{spread(rps_lo, rps_hi, 1.25, rounds, 'rounds')}); the load "
                             f"generator used {ours['client_busy']:.0%} of its core against "
                             f"gilio, {results[('uvloop protocol', size)]['client_busy']:.0%} "
                             "against uvloop (near 100%, the client and not the server set the "
                             "pace)"))
        rows.append(row(f"echo {size} B x 50 conns: p99 latency", ours["p99_us"], "us",
                        {n: results[(n, size)]["p99_us"] for n in others}))
    return rows


def tls_echo(args):
    """The echo comparison over TLS 1.3: gilio's stream server with ssl= against asyncio's and
    uvloop's, each with a certificate made for the run, driven by the same load generator (its
    OpenSSL client). Every server pays the same cipher work, so what differs is how each one
    moves records between its socket and its TLS engine. No target: PERF.md sets none."""
    tmp = tempfile.mkdtemp(prefix="gilio-tls-bench-")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    echo_py = os.path.join(HERE, "python", "echo_server.py")
    servers = {
        "gilio streams": [os.path.join(args.build, "examples", "echo_server"), "0", cert, key],
        "asyncio streams": [PYTHON, echo_py, "0", "streams", "--tls", cert, key],
        "asyncio protocol": [PYTHON, echo_py, "0", "protocol", "--tls", cert, key],
        "uvloop protocol": [PYTHON, echo_py, "0", "protocol", "--uvloop", "--tls", cert, key],
        "uvloop streams": [PYTHON, echo_py, "0", "streams", "--uvloop", "--tls", cert, key],
    }
    names = list(servers)

    def order_of(turn):  # the places rotate, round by round
        k = turn % len(names)
        return names[k:] + names[:k]
    rounds = 1 if args.quick else 5
    try:
        runs = drive_echo_servers(args, servers, order_of, rounds, "TLS echo", extra=["tls"])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = medians(runs)
    rows = []
    for size in (128, 1024):
        ours = results[("gilio streams", size)]
        others = [n for n in servers if n != "gilio streams"]
        ratios = [g["requests_per_s"] / p["requests_per_s"]
                  for g, p in zip(runs[("gilio streams", size)], runs[("uvloop protocol", size)])]
        rows.append(row(f"TLS echo {size} B x 50 conns: requests/s", ours["requests_per_s"] / 1e3,
                        "k/s", {n: results[(n, size)]["requests_per_s"] / 1e3 for n in others},
                        note=f"{statistics.median(ratios):.3f}x uvloop's protocol server (the "
                             f"median of {rounds} rounds' paired ratios); the load generator "
                             f"used {ours['client_busy']:.0%} of its core against gilio",
                        higher_is_better=True))
        rows.append(row(f"TLS echo {size} B x 50 conns: server CPU per request",
                        ours["server_cpu_us_per_req"], "us",
                        {n: results[(n, size)]["server_cpu_us_per_req"] for n in others},
                        higher_is_better=False))
    return rows


def ours_and_cpythons(args, program, ours_what, theirs_what):
    """Runs bench/PROGRAM and its CPython twin bench/python/PROGRAM.py (--quick passed on to
    both); returns their JSON."""
    quick = ["--quick"] if args.quick else []
    progress(ours_what)
    ours = run_json([os.path.join(args.build, "bench", program)] + quick)
    progress(theirs_what)
    theirs = run_json([PYTHON, os.path.join(HERE, "python", program + ".py")] + quick)
    return ours, theirs


def files(args):
    ours, theirs = ours_and_cpythons(
        args, "file_bench", "files: gilio read_file / write_file beside plain read() / write()",
        "files: CPython asyncio.to_thread(Path.read_bytes / write_bytes)")
    py = f"CPython {theirs['python']} to_thread"
    n = ours["rounds"]
    how = f"the median of {n} round{'s' if n != 1 else ''} each"
    workloads = [  # (what, gilio's key, the plain loop, its key, CPython's key, note)
        ("read a {} MiB file (in the page cache)", "read_file_mb_s", "plain read() loop",
         "plain_read_mb_s", "read_mb_s",
         "read_file through the ring against a blocking read() loop into an unfilled buffer "
         "whose pages are populated first, as read_file's are (the floor), and asyncio's way, "
         "Path.read_bytes in to_thread"),
        ("replace a {} MiB file", "write_file_mb_s", "plain write() loop", "plain_write_mb_s",
         "write_mb_s",
         "write_file (data passed with std::move) against a blocking write() loop and "
         "Path.write_bytes in to_thread, each from a fresh copy of the data made before the "
         "clock and freed inside it; ext4 cannot take a buffered write without blocking, "
         "so io_uring hands each 1 MiB step to a kernel worker thread"),
    ]
    return [row(what.format(ours["mib"]), ours[key], "MB/s",
                {plain: ours[plain_key], py: theirs[py_key]}, higher_is_better=True,
                note=f"{note}; {how}")
            for what, key, plain, plain_key, py_key, note in workloads]


def child_processes(args):
    ours, theirs = ours_and_cpythons(
        args, "subprocess_bench",
        "child processes: gilio create_subprocess_exec beside posix_spawn + waitpid",
        "child processes: CPython asyncio create_subprocess_exec")
    progress("child processes: uvloop create_subprocess_exec")
    uv = run_json([PYTHON, os.path.join(HERE, "python", "subprocess_bench.py"), "--uvloop"]
                  + (["--quick"] if args.quick else []))
    py, uvl = f"CPython {theirs['python']} asyncio", "uvloop"
    floor = "posix_spawn + waitpid"
    how = f"the median of {ours['rounds']} rounds"
    return [
        row("start /bin/true and wait for it, one at a time", ours["seq_us"], "us",
            {floor: ours["floor_seq_us"], py: theirs["seq_us"], uvl: uv["seq_us"]},
            higher_is_better=False,
            note=f"{ours['n']} in turn per round, {how}; the floor is blocking posix_spawn + "
                 "waitpid in the same process, alternating with gilio"),
        row(f"start {ours['burst']} at once, then wait for all", ours["burst_us"], "us",
            {floor: ours["floor_burst_us"], py: theirs["burst_us"], uvl: uv["burst_us"]},
            higher_is_better=False, note=f"per process; {how}"),
        row(f"{ours['cat_mib']} MiB through cat with communicate()", ours["cat_mb_s"], "MB/s",
            {py: theirs["cat_mb_s"], uvl: uv["cat_mb_s"]}, higher_is_better=True,
            note=f"written to cat's stdin and read back from its stdout at once (gilio's input "
                 f"moved in, asyncio's a bytearray); {how}"),
    ]


def process_pool(args):
    # Four parties (caller, manager, two workers) share two cores, and how the host schedules
    # them moves a single run's figures by 2x here: gilio's side runs five times (three seconds
    # each) and reports medians; CPython's, a hundred times slower, runs once.
    quick = ["--quick"] if args.quick else []
    ours, runs = repeated([os.path.join(args.build, "bench", "process_bench")] + quick,
                          1 if args.quick else 5, "process pool: gilio ProcessPoolExecutor")
    progress("process pool: CPython ProcessPoolExecutor")
    theirs = run_json([PYTHON, os.path.join(HERE, "python", "process_bench.py")] + quick)
    py = f"CPython {theirs['python']}"

    def note(key, scale=1.0, target=None):
        return median_note(runs, key, scale, target)

    return [
        row("process pool: tiny calls pipelined", ours["pipelined_per_s"] / 1e3, "k/s",
            {py: theirs["pipelined_per_s"] / 1e3}, ">= 500 k/s",
            ours["pipelined_per_s"] >= 500e3, higher_is_better=True,
            note=note("pipelined_per_s", 1e-3, target=500)),
        row("process pool: sequential round trip", ours["round_trip_us"], "us",
            {py: theirs["round_trip_us"]}, "<= 20 us", ours["round_trip_us"] <= 20,
            higher_is_better=False,
            note=joined(f"floor here: {ours['floor_round_trip_us']:.0f} us for a bare "
                        "socketpair ping-pong between two processes (2 wake-ups; a pooled call "
                        "needs 3)", note("round_trip_us", target=20))),
        row("process pool: map, chunksize 1000", ours["map_chunked_per_s"] / 1e3, "k/s",
            {py: theirs["map_chunked_per_s"] / 1e3}, higher_is_better=True,
            note=note("map_chunked_per_s", 1e-3)),
        row("process pool: start-up of 2 workers + first call", ours["startup_ms"], "ms",
            {py: theirs["startup_ms"]}, higher_is_better=False, note=note("startup_ms")),
        row("CPU jobs: 2 worker processes, speedup", ours["cpu_speedup"], "x",
            {py: theirs["cpu_speedup"]}, ">= 1.9x", ours["cpu_speedup"] >= 1.9,
            higher_is_better=True,
            note=joined(f"ceiling here: {ours['bare_fork_speedup']:.2f}x for the same jobs in two "
                        "bare forked processes, no pool (a median of three, like the pool's)",
                        note("cpu_speedup", target=1.9))),
    ]


COMPARISONS = [  # (title, function): the order of the run, the table and the charts
    ("The GIL's own costs", gil_costs),
    ("Race (L8, L9)", race),
    ("CPU-bound threads (L1, L4)", cpu_threads),
    ("Convoy effect", convoy),
    ("Event loop costs", loop_costs),
    ("Loop lag beside to_thread (L5)", loop_lag),
    ("Echo servers", echo),
    ("TLS echo servers", tls_echo),
    ("Files", files),
    ("Child processes", child_processes),
    ("Process pool (L6, L7)", process_pool),
]


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def print_table(groups):
    """One table, a section per comparison, each with its own peers' columns."""
    for title, rows in groups:
        peer_names = []
        for r in rows:
            peer_names += [p for p in r["peers"] if p not in peer_names]
        head = ["workload", "gilio", "unit"] + peer_names + ["vs best peer", "target", "met"]
        table = [head]
        for r in rows:
            met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
            ratio = "" if r.get("ratio") is None else f"{r['ratio']:.3g}x"
            table.append([r["workload"], fmt(r["gilio"]), r["unit"]] +
                         [fmt(r["peers"].get(p, "")) for p in peer_names] +
                         [ratio, r["target"], met])
        widths = [max(len(str(line[i])) for line in table) for i in range(len(head))]
        print(f"\n== {title}")
        for n, line in enumerate(table):
            print("  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                            for i, c in enumerate(line)))
            if n == 0:
                print("  ".join("-" * w for w in widths))
        for r in rows:
            if r["note"]:
                print(f"  - {r['workload']}: {r['note']}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default="build", help="the CMake build folder")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only the comparisons whose title contains TEXT (e.g. echo); "
                             "its charts stay in the build folder")
    args = parser.parse_args()

    groups = []
    for title, comparison in COMPARISONS:
        if args.only is None or args.only.lower() in title.lower():
            groups.append((title, comparison(args)))
    rows = [r for _, rs in groups for r in rs]

    out_dir = os.path.join(args.build, "bench-results")
    os.makedirs(out_dir, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.node(),
            "cpus": os.cpu_count(), "kernel": platform.release(), "quick": args.quick}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"meta": meta, "groups": [{"title": t, "rows": rs} for t, rs in groups]}, f,
                  indent=1)
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["comparison", "workload", "gilio", "unit", "peers", "target", "met"])
        for title, rs in groups:
            for r in rs:
                w.writerow([title, r["workload"], r["gilio"], r["unit"], json.dumps(r["peers"]),
                            r["target"], r["met"]])
    # Charts: a whole full run refreshes the committed ones in docs/bench/; a quick or partial one
    # stays in build/.
    partial = args.quick or args.only is not None
    chart_dir = os.path.join(out_dir, "charts") if partial else os.path.join(HERE, "..", "docs",
                                                                             "bench")
    progress(f"charts and GIL timelines -> {os.path.normpath(chart_dir)}")
    import charts  # matplotlib is only needed from here on
    charts.render(groups, meta, chart_dir, args.build, PYTHON, fmt)
    if not partial:
        shutil.copy(os.path.join(out_dir, "results.json"), chart_dir)
    print_table(groups)
    missed = [r["workload"] for r in rows if r["met"] is False]
    print(f"\n{len(rows)} figures, {len(missed)} targets missed; results in {out_dir}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
