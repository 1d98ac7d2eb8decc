#!/usr/bin/env python3
"""tests/check_quotes.py — code quoted in the docs must match the source it is quoted from.

A fenced block right after a line `<!-- quote: PATH -->` in README.md or docs/*.md must appear,
line for line, in PATH (relative to the repository root). Exits 1 and names every stale quote,
so a change to an example or a source file that leaves its chapter behind fails the suite.
"""
import glob
import os
import re
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
pattern = re.compile(r"<!-- quote: (\S+) -->\n```[a-z]*\n(.*?)```", re.S)
stale, checked = [], 0
for doc in [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md"))):
    text = open(doc).read()
    for path, block in pattern.findall(text):
        checked += 1
        source = os.path.join(root, path)
        if not os.path.exists(source) or block not in open(source).read():
            stale.append(f"{os.path.relpath(doc, root)}: quote from {path} no longer matches it")
for s in stale:
    print(s)
print(f"{checked} quotes checked, {len(stale)} stale")
sys.exit(1 if stale or checked == 0 else 0)
