#!/usr/bin/env python3
"""tests/check_essays.py — every source file opens with its essay (../shared/STYLE.md).

The house style: a source file's first comment names the file (`// runtime/uring.cpp — ...`, or
`# bench/run.py ...`, or a Python docstring that starts with the path) and goes on for at least
`MIN_LINES` lines saying what the file is and how it works. This check walks the project's
sources and names every file whose opening essay is missing or shorter than that; it exits 1 if
there is one, so a new file without its essay fails the suite.
"""
import os
import sys

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
FOLDERS = ["gil", "runtime", "examples", "bench", "tests", "cmake", ".ci"]
SUFFIXES = {".cpp": "//", ".hpp": "//", ".py": "#", ".sh": "#"}
MIN_LINES = 2


def opening_comment(path, marker):
    """The lines of the file's first comment block (a shebang skipped; docstrings count)."""
    lines = open(path, encoding="utf-8").read().splitlines()
    if lines and lines[0].startswith("#!"):
        lines = lines[1:]
    if marker == "#" and lines and lines[0].startswith('"""'):
        block = []
        for line in lines:
            block.append(line)
            if line.rstrip().endswith('"""') and len(block) > 1:
                break
        return block
    block = []
    for line in lines:
        if not line.startswith(marker):
            break
        block.append(line)
    return block


missing, checked = [], 0
for folder in FOLDERS:
    for dirpath, _, files in os.walk(os.path.join(root, folder)):
        for name in sorted(files):
            suffix = os.path.splitext(name)[1]
            if suffix not in SUFFIXES:
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            checked += 1
            block = opening_comment(path, SUFFIXES[suffix])
            # A public header may name itself by its include path (gilio/asyncio/coro.hpp).
            names = {rel, rel.split("include/", 1)[-1]}
            if not block or not any(n in block[0] for n in names):
                missing.append(f"{rel}: its first comment does not name the file")
            elif len(block) < MIN_LINES:
                missing.append(f"{rel}: its opening essay is {len(block)} line(s) long")
for m in missing:
    print(m)
print(f"{checked} source files checked, {len(missing)} without their essay")
sys.exit(1 if missing or checked == 0 else 0)
