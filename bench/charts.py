"""bench/charts.py — the pictures of `make bench`: results as bar charts, GIL timelines.

render(results, out_dir, build) writes, into out_dir:
  headline.png        CPU-bound jobs on 2 cores: speedup of threads and processes, gilio and
                      CPython side by side (the README's chart)
  <group>.png         one chart per comparison: gilio's figure beside each peer's, per workload
  timeline-*.png      GIL timelines drawn by gil_timeline.py from GILIO_TRACE runs of the
                      lesson examples (CPU threads, the convoy in both modes, to_thread)
  README.md           the numbers the charts show, with the date and machine they came from
A full `make bench` writes them to docs/bench/ (committed); a quick one to build/bench-results/.
"""
import os
import re
import subprocess
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

HERE = os.path.dirname(os.path.abspath(__file__))
GILIO = "#2ca02c"
PEER = "#7f7f7f"


def footer(fig, meta):
    fig.text(0.99, 0.01, f"{meta['date']} · {meta['machine']} · {meta['cpus']} CPUs · "
             f"kernel {meta['kernel']}" + (" · quick run" if meta["quick"] else ""),
             ha="right", va="bottom", fontsize=7, color="#555555")


def find(rows, workload):
    return next((r for r in rows if r["workload"] == workload), None)


def headline(rows, meta, path):
    """Speedup of 8 CPU-bound jobs on 2 cores: threads vs processes, gilio vs CPython."""
    threads = find(rows, "CPU jobs: 2 threads under the GIL, speedup")
    off = find(rows, "CPU jobs: 2 threads, GIL off, speedup")
    pool = find(rows, "CPU jobs: 2 worker processes, speedup")
    if not (threads and off and pool):
        return None
    py_threads = next(iter(threads["peers"].items()), (None, None))
    py_pool = next(iter(pool["peers"].items()), (None, None))
    bars = [(f"{py_threads[0]}\n2 threads", py_threads[1], PEER),
            ("gilio\n2 threads, GIL", threads["gilio"], GILIO),
            ("gilio\n2 threads, GIL off", off["gilio"], GILIO),
            (f"{py_pool[0]}\nProcessPoolExecutor(2)", py_pool[1], PEER),
            ("gilio\nProcessPoolExecutor(2)", pool["gilio"], GILIO)]
    bars = [b for b in bars if isinstance(b[1], (int, float))]
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=110)
    ax.bar([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, b in enumerate(bars):
        ax.text(i, b[1] + 0.03, f"{b[1]:.2f}x", ha="center", fontsize=9)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.axhline(2.0, color="#bbbbbb", linewidth=0.8, linestyle=":")
    ax.set_ylabel("speedup over one core")
    ax.set_title("8 CPU-bound jobs on 2 cores: only processes (or no GIL) run in parallel",
                 fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    footer(fig, meta)
    fig.savefig(path)
    plt.close(fig)
    return path


def group_chart(title, rows, meta, path):
    """One horizontal bar chart per workload that has peers: gilio in green, peers in grey."""
    shown = [r for r in rows if r["peers"] and isinstance(r["gilio"], (int, float))]
    if not shown:
        return None
    cols = 2 if len(shown) > 1 else 1
    nrows = (len(shown) + cols - 1) // cols
    height = max(2.2, max(len(r["peers"]) for r in shown) * 0.32 + 1.2)
    fig, axes = plt.subplots(nrows, cols, figsize=(6.5 * cols, height * nrows), dpi=100,
                             squeeze=False)
    for ax in axes.flat[len(shown):]:
        ax.axis("off")
    for ax, r in zip(axes.flat, shown):
        items = [("gilio", r["gilio"], GILIO)] + [
            (name, v, PEER) for name, v in r["peers"].items() if isinstance(v, (int, float))]
        names = [i[0] for i in items][::-1]
        values = [i[1] for i in items][::-1]
        ax.barh(names, values, color=[i[2] for i in items][::-1])
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3g}", va="center", fontsize=8)
        better = {True: "higher is better", False: "lower is better"}.get(
            r.get("higher_is_better"), "")
        ax.set_title(f"{r['workload']} ({r['unit']})" + (f" — {better}" if better else ""),
                     fontsize=8.5)
        ax.tick_params(labelsize=8)
        ax.set_xlim(0, max(values) * 1.25 if max(values) > 0 else 1)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.03, 1, 0.97))
    footer(fig, meta)
    fig.savefig(path)
    plt.close(fig)
    return path


TIMELINES = [  # file, example and arguments, environment, title, gil_timeline.py options
    ("timeline-cpu-threads.png", ["cpu_threads", "--threads", "200000"], {},
     "Two CPU-bound threads under the GIL: they take turns, one switch interval each",
     ["--ms", "40", "--skip-ms", "20"]),
    ("timeline-convoy-cpython.png", ["convoy", "--measure", "0.1"], {"GILIO_GIL": "cpython"},
     "Convoy, cpython mode: the I/O thread (Thread-3) waits a switch interval after most calls",
     ["--start-at", "Thread-2", "--ms", "30", "--skip-ms", "5"]),
    ("timeline-convoy-io-priority.png", ["convoy", "--measure", "0.1"],
     {"GILIO_GIL": "io_priority"},
     "Convoy, io_priority mode: the I/O thread asks at once (note the scale: 1 ms)",
     ["--start-at", "Thread-2", "--ms", "1", "--skip-ms", "5"]),
    ("timeline-to-thread.png", ["to_thread"], {},
     "The event loop (MainThread) beside a CPU-bound to_thread worker: every wake-up waits",
     ["--ms", "30", "--skip-ms", "5"]),
]


def timelines(build, out_dir, python):
    made = []
    for name, cmd, env, title, opts in TIMELINES:
        with tempfile.TemporaryDirectory() as tmp:
            trace = os.path.join(tmp, "trace.json")
            full_env = dict(os.environ, GILIO_TRACE=trace, **env)
            subprocess.run([os.path.join(build, "examples", cmd[0])] + cmd[1:], env=full_env,
                           check=True, stdout=subprocess.DEVNULL, timeout=120)
            out = os.path.join(out_dir, name)
            subprocess.run([python, os.path.join(HERE, "gil_timeline.py"), trace, out,
                            "--title", title] + opts, check=True, stdout=subprocess.DEVNULL,
                           timeout=120)
            made.append(out)
    return made


def markdown(groups, meta, images, fmt):
    def cell(v):
        return "" if v is None else fmt(v)

    lines = ["# Benchmark results", "",
             f"Written by `make bench` on {meta['date']}, machine `{meta['machine']}` "
             f"({meta['cpus']} CPUs, kernel {meta['kernel']}){', quick run' if meta['quick'] else ''}."
             " Each comparison ran gilio and its peers in the same run; the machine is shared and"
             " noisy, so read ratios, not absolute figures. How each is measured:"
             " `bench/run.py` and `../../shared/PERF.md`.", ""]
    for img in images:
        lines += [f"![{os.path.basename(img)}]({os.path.basename(img)})", ""]
    for title, rows in groups:
        peers = []
        for r in rows:
            peers += [p for p in r["peers"] if p not in peers]
        lines += [f"## {title}", "",
                  "| " + " | ".join(["workload", "gilio", "unit"] + peers + ["target", "met"]) +
                  " |",
                  "|---" * (5 + len(peers)) + "|"]
        for r in rows:
            met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
            cells = ([r["workload"], cell(r["gilio"]), r["unit"]] +
                     [cell(r["peers"].get(p)) for p in peers] + [r["target"], met])
            lines.append("| " + " | ".join(cells) + " |")
        notes = [f"- {r['workload']}: {r['note']}" for r in rows if r.get("note")]
        lines += [""] + notes + ([""] if notes else [])
    return "\n".join(lines) + "\n"


def render(groups, meta, out_dir, build, python, fmt):
    """fmt: how a figure is written in the tables (run.py's, so both tables agree)."""
    os.makedirs(out_dir, exist_ok=True)
    rows = [r for _, rs in groups for r in rs]
    images = []
    path = headline(rows, meta, os.path.join(out_dir, "headline.png"))
    if path:
        images.append(path)
    for title, group_rows in groups:
        slug = re.sub(r"[^a-z0-9]+", "-", title.lower().split(" (")[0]).strip("-")
        path = group_chart(title, group_rows, meta, os.path.join(out_dir, f"{slug}.png"))
        if path:
            images.append(path)
    images += timelines(build, out_dir, python)
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write(markdown(groups, meta, images, fmt))
    return images
