#!/usr/bin/env python3
"""bench/gil_timeline.py — draws a GILIO_TRACE file as a PNG timeline of the GIL.

One row per thread: green while it holds the GIL, red while it waits for it, blank while it runs
without it (blocked in a system call, or in native code); an event loop's waits in io_uring are
blue, and each drop request (a waiting thread asking the holder to let go) is a black tick. It is
the picture of David Beazley's "Understanding the Python GIL" talk, drawn from gilio's own trace
(gil/trace.cpp writes Chrome trace-event JSON, which Perfetto also opens).

Usage:
  GILIO_TRACE=trace.json build/examples/cpu_threads --threads 200000
  bench/gil_timeline.py trace.json timeline.png --title "..." [--start-at THREAD] [--ms 40]

The window starts at the first event of THREAD (by name; default: the second thread to appear,
which is where contention can begin) and lasts --ms milliseconds.
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.patches import Patch  # noqa: E402

STYLE = {  # span name -> (colour, bottom, height) within a row of height 1
    "holding the GIL": ("#2ca02c", 0.3, 0.55),
    "waiting for the GIL": ("#d62728", 0.3, 0.55),
    "loop waits (GIL released)": ("#1f77b4", 0.08, 0.17),  # a band under the GIL's
}


def load(path):
    with open(path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("ph") == "M"}
    spans, ticks, first_seen = {}, {}, {}
    for e in events:
        if e.get("ph") == "X" and e["name"] in STYLE:
            spans.setdefault(e["tid"], []).append((e["name"], e["ts"], e["dur"]))
        elif e.get("ph") == "i" and e["name"] == "drop request":
            ticks.setdefault(e["tid"], []).append(e["ts"])
        else:
            continue
        first_seen[e["tid"]] = min(first_seen.get(e["tid"], e["ts"]), e["ts"])
    return names, spans, ticks, first_seen


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace")
    parser.add_argument("png")
    parser.add_argument("--title", default="GIL timeline")
    parser.add_argument("--start-at", help="thread whose first event opens the window")
    parser.add_argument("--ms", type=float, default=40.0, help="window length in milliseconds")
    parser.add_argument("--skip-ms", type=float, default=0.0,
                        help="move the window this far past its start")
    args = parser.parse_args()

    names, spans, ticks, first_seen = load(args.trace)
    if not spans:
        sys.exit(f"{args.trace}: no GIL events (was GILIO_TRACE set?)")
    order = sorted(first_seen, key=first_seen.get)
    if args.start_at:
        match = [t for t in order if names.get(t) == args.start_at]
        if not match:
            sys.exit(f"no thread named {args.start_at}; threads: "
                     f"{', '.join(names.get(t, str(t)) for t in order)}")
        t0 = first_seen[match[0]]
    else:
        t0 = first_seen[order[1]] if len(order) > 1 else first_seen[order[0]]
    t0 += args.skip_ms * 1e3
    t1 = t0 + args.ms * 1e3

    def visible(tid):
        return any(ts < t1 and ts + dur > t0 for _, ts, dur in spans.get(tid, []))

    rows = [t for t in order if visible(t)]
    fig, ax = plt.subplots(figsize=(10, 0.7 * len(rows) + 1.4), dpi=110)
    for y, tid in enumerate(reversed(rows)):
        by_kind = {}
        for name, ts, dur in spans.get(tid, []):
            if ts < t1 and ts + dur > t0:
                start, end = max(ts, t0), min(ts + dur, t1)
                by_kind.setdefault(name, []).append(((start - t0) / 1e3, (end - start) / 1e3))
        for name, bars in by_kind.items():
            colour, bottom, height = STYLE[name]
            ax.broken_barh(bars, (y + bottom, height), facecolors=colour, linewidth=0)
        marks = [(ts - t0) / 1e3 for ts in ticks.get(tid, []) if t0 <= ts < t1]
        if marks:
            ax.plot(marks, [y + 0.92] * len(marks), "|", color="black", markersize=7)
    ax.set_yticks([y + 0.5 for y in range(len(rows))])
    ax.set_yticklabels([names.get(t, str(t)) for t in reversed(rows)])
    ax.set_xlim(0, args.ms)
    ax.set_ylim(0, len(rows))
    ax.set_xlabel("milliseconds")
    ax.set_title(args.title, fontsize=11)
    legend = [Patch(color=STYLE["holding the GIL"][0], label="holds the GIL"),
              Patch(color=STYLE["waiting for the GIL"][0], label="waits for it")]
    if any(name == "loop waits (GIL released)" for t in rows for name, _, _ in spans.get(t, [])):
        legend.append(Patch(color=STYLE["loop waits (GIL released)"][0],
                            label="event loop waits (GIL released)"))
    legend.append(plt.Line2D([], [], marker="|", color="black", linestyle="None",
                             label="drop request"))
    ax.legend(handles=legend, loc="upper center",
              bbox_to_anchor=(0.5, -0.28 if len(rows) < 3 else -0.2), ncol=len(legend),
              fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(args.png)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
