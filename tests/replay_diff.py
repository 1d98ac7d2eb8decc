"""tests/replay_diff.py — what tests/stream_diff.py and tests/sync_diff.py share: run gilio's
replay binary on the scripts that CPython has already run, and compare the transcripts.

The binary (tests/replay_support.hpp) reads every script on stdin and prints one transcript per
script, each followed by "==". The first script whose transcripts differ is printed whole,
with both transcripts and the first line where they part, and the run fails.
"""
import asyncio
import random
import subprocess
import sys


def main(make_script, replay, script_text, agreed):
    """The command line BINARY [SEEDS [FIRST_SEED]]: makes the scripts of those seeds
    (make_script(rng) gives a script's arguments), has CPython run each (replay(*script), a
    coroutine giving the transcript), and compares. Returns the exit status."""
    binary = sys.argv[1]
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    scripts = [make_script(random.Random(seed)) for seed in range(first, first + seeds)]
    expected = [asyncio.run(replay(*s)) for s in scripts]
    return compare(binary, first, scripts, expected, script_text, agreed)


def compare(binary, first, scripts, expected, script_text, agreed):
    """0 if `binary` gives `expected` (CPython's transcripts) for every script, else 1."""
    text = "".join(script_text(*s) for s in scripts)
    run = subprocess.run([binary], input=text.encode(), capture_output=True, timeout=600)
    if run.returncode != 0:
        print(f"{binary} exited with {run.returncode}:\n{run.stderr.decode(errors='replace')}")
        return 1
    got = run.stdout.decode().split("==\n")
    if len(got) != len(scripts) + 1 or got[-1] != "":
        print(f"{binary} gave {len(got) - 1} transcripts for {len(scripts)} scripts")
        return 1
    for i, (s, want, have) in enumerate(zip(scripts, expected, got)):
        if want != have:
            w, h = want.splitlines(), have.splitlines()
            n = next((k for k in range(min(len(w), len(h))) if w[k] != h[k]), min(len(w), len(h)))
            print(f"seed {first + i}: gilio differs from CPython's asyncio at line {n + 1}\n")
            print("script:\n" + script_text(*s))
            print("asyncio:\n" + want)
            print("gilio:\n" + have)
            return 1
    print(f"{len(scripts)} scripts: {agreed}")
    return 0
