#!/usr/bin/env python3
"""tests/task_diff.py — tasks, cancellation, gather, wait, shield, wait_for, timeout, TaskGroup
and as_completed against CPython's asyncio, on random scripts, down to the order in which the
tasks run — a quarter of them under the eager task factory.

A script is a few coroutine bodies, each a list of operations, and the bodies the main task
starts as root tasks. An operation may start other bodies, as tasks (spawn, gather, wait,
shield, TaskGroup, as_completed, wait_for of a task) or inline (call, wait_for of a coroutine,
a timeout block) — always bodies later in the list, so every script ends. The others: sleep(0),
await or cancel() a child the body started, cancel the running task itself, raise ValueError,
uncancel() and cancelling(). Timeouts are 0 (already past: asyncio schedules the expiry with
call_soon, so it falls at a fixed turn of the loop) or none.

Every body prints a line as it starts, one for each operation as it finishes (with what came of
it: a value, an exception) and one as it returns or raises. A body named "resist" catches the
CancelledError of an operation and goes on; the others end with it. Every activation of a body
is named by where it was started from ("r0" the first root, "r0.3" what r0's fourth operation
started, "r0.3.1" the second task of that gather), so names do not depend on the order things
run in. The main task lets the loop turn 150 times, cancels every task still running (in the
order they were made), lets it turn 150 more, and prints how each task ended.

asyncio's scheduling is deterministic (call_soon is FIFO), and gilio's mirrors it, so the two
transcripts must be equal line for line.

This runner needs CPython 3.12 or later (gilio follows 3.12+'s wait_for and gather); CMake finds
one (tests/CMakeLists.txt).

Usage: task_diff.py TASK_REPLAY_BINARY [SEEDS [FIRST_SEED]]
"""
import asyncio
import sys

import replay_diff

# What an operation does to the activation tree: the bodies it starts (tasks or inline).
MANY = ("gather", "wait", "taskgroup", "as_completed")
ONE = ("spawn", "shield", "wait_for", "wait_for_task", "timeout", "call")
PLAIN = ["sleep", "sleep", "await", "await", "cancel", "cancel", "cancel_self", "raise",
         "uncancel", "cancelling", "cancel_parent", "sleep_timer", "gather_old", "wait_old",
         "shield_old"]
MAX_ACTIVATIONS = 40


class TaskGroup(asyncio.TaskGroup):
    """asyncio.TaskGroup with its set of tasks kept in the order they were made. asyncio keeps a
    set, so that when a child fails, the order in which the others are cancelled (and so the
    order they run in next) depends on the tasks' addresses; gilio cancels them in the order
    they were made, and so does this group. Nothing else is changed."""

    class _Ordered(dict):
        def add(self, task):
            self[task] = None

        def discard(self, task):
            self.pop(task, None)

    def __init__(self):
        super().__init__()
        self._tasks = self._Ordered()


def make_script(rng):
    while True:
        # Under the eager task factory a task may be done before as_completed() sees it, and
        # asyncio's as_completed takes the tasks as a set: those already done come out in the
        # order of their addresses. So eager scripts leave as_completed out.
        eager = rng.random() < 0.25
        many_ops = [op for op in MANY if not (eager and op == "as_completed")]
        nbodies = rng.randrange(1, 6)
        bodies = []
        for b in range(nbodies):
            ops = []
            for _ in range(rng.randrange(1, 8)):
                kinds = PLAIN + (list(ONE) * 2 + many_ops * 2 if b + 1 < nbodies else [])
                op = rng.choice(kinds)
                if op in ("await", "cancel", "shield_old"):
                    ops.append(f"{op}:{rng.randrange(3)}")
                elif op == "gather_old":
                    ops.append(f"{op}:{rng.randrange(2)}")
                elif op == "wait_old":
                    ops.append(f"{op}:{rng.choice(['first', 'exc', 'all'])}")
                elif op in ONE:
                    j = rng.randrange(b + 1, nbodies)
                    if op in ("wait_for", "wait_for_task", "timeout"):
                        ops.append(f"{op}:{rng.choice(['0', 'inf'])}:{j}")
                    else:
                        ops.append(f"{op}:{j}")
                elif op in MANY:
                    js = ",".join(str(rng.randrange(b + 1, nbodies))
                                  for _ in range(rng.randrange(1, 4)))
                    if op == "gather":
                        ops.append(f"gather:{rng.randrange(2)}:{js}")
                    elif op == "wait":
                        ops.append(f"wait:{rng.choice(['first', 'exc', 'all', 't0'])}:{js}")
                    else:
                        ops.append(f"{op}:{js}")
                else:
                    ops.append(op)
            bodies.append((rng.random() < 0.3, ops))
        roots = [rng.randrange(nbodies) for _ in range(rng.randrange(1, 4))]
        if sum(activations(bodies, r) for r in roots) <= MAX_ACTIVATIONS:
            return bodies, roots, eager


def activations(bodies, b):
    """How many activations body b makes, at most (itself and everything it starts)."""
    n = 1
    for op in bodies[b][1]:
        words = op.split(":")
        if words[0] in ONE:
            n += activations(bodies, int(words[-1]))
        elif words[0] in MANY:
            n += sum(activations(bodies, int(j)) for j in words[-1].split(","))
    return n


def script_text(bodies, roots, eager):
    lines = [("body resist " if resist else "body plain ") + " ".join(ops)
             for resist, ops in bodies]
    lines.append("roots " + " ".join(str(r) for r in roots))
    lines.append(f"eager {int(eager)}")
    lines.append("end")
    return "\n".join(lines) + "\n"


def describe(exc):
    """An exception as the transcript shows it."""
    if isinstance(exc, asyncio.CancelledError):
        return "CancelledError"
    if isinstance(exc, TimeoutError):
        return "TimeoutError"
    if isinstance(exc, ValueError):
        return f"ValueError {exc}"
    if isinstance(exc, BaseExceptionGroup):
        return "ExceptionGroup[" + ", ".join(describe(e) for e in exc.exceptions) + "]"
    if isinstance(exc, RuntimeError):
        return "RuntimeError"
    return type(exc).__name__


async def gather_text(ts, outcomes):
    """gather(*ts), with return_exceptions if `outcomes` is "1", and what it gave."""
    if outcomes == "1":
        got = await asyncio.gather(*ts, return_exceptions=True)
        return "ok [" + ", ".join(
            describe(r) if isinstance(r, BaseException) else r for r in got) + "]"
    return "ok [" + ", ".join(await asyncio.gather(*ts)) + "]"


async def wait_text(ts, when):
    """wait(ts) — `when` is "first", "exc", "all", or "t0" (timeout=0: the answer a turn of the
    loop later) — and which tasks were done."""
    if when == "t0":
        done, _ = await asyncio.wait(ts, timeout=0)
    else:
        return_when = {"first": asyncio.FIRST_COMPLETED, "exc": asyncio.FIRST_EXCEPTION,
                       "all": asyncio.ALL_COMPLETED}[when]
        done, _ = await asyncio.wait(ts, return_when=return_when)
    return "done " + ",".join(str(i) for i, t in enumerate(ts) if t in done)


async def replay(bodies, roots, eager):
    out = []
    loop = asyncio.get_running_loop()
    if eager:  # every task made from here on starts inside create_task (3.12+)
        loop.set_task_factory(asyncio.eager_task_factory)
    made = []  # (name, task), in the order they were made
    parents = {}  # task: the task that made it

    def task(b, name):
        t = asyncio.ensure_future(body(b, name))
        made.append((name, t))
        parents[t] = asyncio.current_task()
        return t

    async def body(b, name):
        resist, ops = bodies[b]
        out.append(f"{name} start")
        children = []  # the tasks this activation made, in order
        for k, op in enumerate(ops):
            words = op.split(":")
            here = f"{name}.{k}"
            try:
                result = await one(words, here, children)
            except asyncio.CancelledError:
                out.append(f"{name} {op} CancelledError")
                if resist:
                    continue
                raise
            except (ValueError, TimeoutError, BaseExceptionGroup, RuntimeError) as e:
                result = describe(e)
            out.append(f"{name} {op} {result}")
            if words[0] == "raise":
                raise ValueError(f"e{name}")
        out.append(f"{name} return")
        return f"v{name}"

    def many(words, here, children):
        ts = [task(int(j), f"{here}.{m}") for m, j in enumerate(words[-1].split(","))]
        children.extend(ts)
        return ts

    async def one(words, here, children):
        op = words[0]
        me = asyncio.current_task()
        if op == "sleep":
            await asyncio.sleep(0)
        elif op == "spawn":
            children.append(task(int(words[1]), here))
        elif op in ("await", "cancel", "shield_old"):
            if not children:
                return "none"
            child = children[int(words[1]) % len(children)]
            if op == "cancel":
                return str(child.cancel())
            if op == "shield_old":
                return "ok " + await asyncio.shield(child)
            return "ok " + await child
        elif op == "cancel_parent":
            parent = parents.get(me)
            if parent is None:
                return "none"
            return str(parent.cancel())
        elif op == "sleep_timer":
            await asyncio.sleep(1e-9)  # a timer, not sleep(0)'s bare yield
        elif op == "gather_old":
            return await gather_text(list(children), words[1])
        elif op == "wait_old":
            if not children:
                return "none"
            return await wait_text(list(children), words[1])
        elif op == "cancel_self":
            return str(me.cancel())
        elif op == "raise":
            return "raising"
        elif op == "uncancel":
            return str(me.uncancel())
        elif op == "cancelling":
            return str(me.cancelling())
        elif op == "call":
            return "ok " + await body(int(words[1]), here)
        elif op == "shield":
            t = task(int(words[1]), here)
            children.append(t)
            return "ok " + await asyncio.shield(t)
        elif op in ("wait_for", "wait_for_task", "timeout"):
            delay = 0 if words[1] == "0" else None
            if op == "wait_for_task":
                t = task(int(words[2]), here)
                children.append(t)
                return "ok " + await asyncio.wait_for(t, delay)
            if op == "wait_for":
                return "ok " + await asyncio.wait_for(body(int(words[2]), here), delay)
            async with asyncio.timeout(delay):
                return "ok " + await body(int(words[2]), here)
        elif op == "gather":
            return await gather_text(many(words, here, children), words[1])
        elif op == "wait":
            return await wait_text(many(words, here, children), words[1])
        elif op == "taskgroup":
            async with TaskGroup() as tg:
                for m, j in enumerate(words[-1].split(",")):
                    try:
                        t = tg.create_task(body(int(j), f"{here}.{m}"))
                    except RuntimeError:  # shutting down: an eager child failed already
                        out.append(f"{here}.{m} refused")
                        continue
                    made.append((f"{here}.{m}", t))
                    parents[t] = me
                    children.append(t)
            return "ok"
        elif op == "as_completed":
            ts = many(words, here, children)
            got = []
            for next_one in asyncio.as_completed(ts):
                try:
                    got.append(await next_one)
                except ValueError as e:
                    got.append(describe(e))
            return "ok [" + ", ".join(got) + "]"
        else:
            raise AssertionError(op)
        return "ok"

    for i, b in enumerate(roots):
        parents[task(b, f"r{i}")] = None  # the main task is not for the scripts to cancel
    for _ in range(150):
        await asyncio.sleep(0)
    for name, t in list(made):
        if not t.done():
            out.append(f"main cancels {name}")
            t.cancel()
    for _ in range(150):
        await asyncio.sleep(0)
    loop.set_task_factory(None)
    for name, t in made:
        if not t.done():
            state = "pending"
        elif t.cancelled():
            state = "cancelled"
        elif t.exception() is not None:
            state = describe(t.exception())
        else:
            state = "ok " + t.result()
        out.append(f"main {name} {state}")
    return "".join(line + "\n" for line in out)


if __name__ == "__main__":
    if sys.version_info < (3, 12):
        sys.exit("task_diff.py needs CPython 3.12 or later (3.12's wait_for and gather)")
    sys.exit(replay_diff.main(make_script, replay, script_text,
                              "gilio's tasks ran, ended and were cancelled as asyncio's"))
