#!/usr/bin/env python3
"""tests/stream_diff.py — StreamReader against CPython's asyncio.StreamReader, on random scripts.

Makes SEEDS random scripts (a limit, bytes fed in random pieces, a random sequence of reads:
read(n), readline(), readexactly(n), readuntil(sep), at_eof()), runs each through CPython's
asyncio.StreamReader here and through gilio's (tests/stream_replay.cpp, the binary given), and
compares the two transcripts line by line. The bytes come from a four-letter alphabet and the
limits are small, so separators straddle pieces, lines run past the limit and reads run into EOF
all the time. Exits 1 with the first script whose transcripts differ, shown whole.

Usage: stream_diff.py STREAM_REPLAY_BINARY [SEEDS [FIRST_SEED]]
"""
import asyncio
import sys

import replay_diff

SEPARATORS = [b"\n", b"ab", b"X", b"aXb", b"bb", b"\n\n", b""]


def make_script(rng):
    limit = rng.choice([1, 2, 3, 4, 8, 16, 64, 65536])
    data = bytes(rng.choice(b"ab\nX") for _ in range(rng.randrange(0, 120)))
    cuts = sorted(rng.sample(range(len(data) + 1), rng.randrange(0, min(len(data), 12) + 1)))
    pieces, at = [], 0
    for c in cuts + [len(data)]:
        pieces.append(data[at:c])
        at = c
    if rng.random() < 0.2:
        pieces.insert(rng.randrange(len(pieces) + 1), b"")  # an empty feed
    ops = []
    for _ in range(rng.randrange(1, 16)):
        kind = rng.choice(["read", "read", "readline", "readline", "readexactly", "readuntil",
                           "readuntil", "at_eof"])
        if kind == "read":
            ops.append(("read", rng.choice([-1, 0, 1, 2, 3, 5, 8, 13, 40])))
        elif kind == "readexactly":
            ops.append(("readexactly", rng.choice([0, 1, 2, 3, 5, 8, 13, 40])))
        elif kind == "readuntil":
            ops.append(("readuntil", rng.choice(SEPARATORS)))
        else:
            ops.append((kind,))
    return limit, pieces, ops


def script_text(limit, pieces, ops):
    lines = [f"limit {limit}"]
    lines += [f"feed {p.hex()}".rstrip() for p in pieces]
    for op in ops:
        if op[0] == "readuntil":
            lines.append(f"op readuntil {op[1].hex()}".rstrip())
        else:
            lines.append("op " + " ".join(str(w) for w in op))
    lines.append("end")
    return "\n".join(lines) + "\n"


async def replay(limit, pieces, ops):
    reader = asyncio.StreamReader(limit=limit)
    out = []

    async def reading():
        for op in ops:
            if op[0] == "at_eof":
                out.append("true" if reader.at_eof() else "false")
                continue
            try:
                if op[0] == "read":
                    got = await reader.read(op[1])
                elif op[0] == "readline":
                    got = await reader.readline()
                elif op[0] == "readexactly":
                    got = await reader.readexactly(op[1])
                else:
                    got = await reader.readuntil(op[1])
                out.append(f"ok {got.hex()}")
            except asyncio.IncompleteReadError as e:
                out.append(f"IncompleteReadError {e.partial.hex()} {e.expected}")
            except asyncio.LimitOverrunError as e:
                out.append(f"LimitOverrunError {e.consumed}")
            except ValueError:
                out.append("ValueError")
        out.append(f"at_eof {'true' if reader.at_eof() else 'false'}")

    async def feeding():
        for p in pieces:
            reader.feed_data(p)
            await asyncio.sleep(0)
        reader.feed_eof()

    r = asyncio.ensure_future(reading())
    f = asyncio.ensure_future(feeding())
    await asyncio.wait_for(asyncio.gather(r, f), 10)
    return "".join(line + "\n" for line in out)


if __name__ == "__main__":
    sys.exit(replay_diff.main(make_script, replay, script_text,
                              "gilio's StreamReader read what asyncio's read"))
