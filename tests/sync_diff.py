#!/usr/bin/env python3
"""tests/sync_diff.py — Lock, Semaphore, Event, Condition and Queue against CPython's asyncio, on
random scripts of several tasks, down to the order in which the tasks run.

Each script is a few tasks, each a list of operations on one Lock, a Condition over it, a
Semaphore (bounded or not), an Event, a bounded Queue and a Barrier (acquire and release, wait
and set, put and get in both kinds, task_done and join, notify, the barrier's wait, reset and
abort, sleep(0), and cancel() of another task or of itself). Every
operation, as it finishes, appends a line to one transcript: which task, what, and what came of
it (a value, an error, CancelledError). The main task then lets the loop turn 100 times,
cancels whatever has not ended, lets it turn 100 more, notes the primitives' state, and frees
the lock for Condition waiters that were cancelled (they take it back before they raise). asyncio's
scheduling is deterministic (call_soon is FIFO), and gilio's mirrors it, so the transcripts must
be equal line for line: a different line is a task woken in another order, a wake-up lost or
given twice, an error where asyncio has none. A task that ends holding the lock releases it (the
runner keeps track of who took it last), so that no script stalls for good.

gilio follows what 3.12.x and 3.13 changed in these classes. The suite runs this script on the
newest CPython it finds (the machine's pyenv has 3.13; tests/CMakeLists.txt), whose classes are
used as they are. Run on Debian's 3.11, the runner's Condition and Semaphore below add those
changes to 3.11's (a cancelled Condition waiter notifies another; a Semaphore waiter wakes as
many as there are units).

Usage: sync_diff.py SYNC_REPLAY_BINARY [SEEDS [FIRST_SEED]]
"""
import asyncio
import collections
import inspect
import sys

import replay_diff

OPS = ["sleep", "sleep", "lock", "lock", "unlock", "unlock", "sem_acq", "sem_rel", "ev_wait",
       "ev_set", "ev_clear", "q_put", "q_put", "q_get", "q_get", "q_put_nowait", "q_get_nowait",
       "q_done", "q_join", "cond_wait", "cond_notify", "cond_notify_all", "cancel", "state",
       "bar_wait", "bar_wait", "bar_reset", "bar_abort"]


class Condition(asyncio.Condition):
    """asyncio.Condition as 3.12.x and 3.13 have it (gh-112202): a waiter that leaves wait() with
    an error — cancelled, perhaps after it was notified — notifies another in its place, so that
    no notification is lost. CPython 3.11 (here) lacks that; gilio does as 3.13 does."""

    async def wait(self):
        if not self.locked():
            raise RuntimeError("cannot wait on un-acquired lock")
        try:
            return await super().wait()
        except BaseException:
            self.notify(1)  # the lock is ours again: wait() takes it back before it raises
            raise


if "_notify" in asyncio.Condition.__dict__:  # the fix is there already
    Condition = asyncio.Condition


class Semaphore(asyncio.Semaphore):
    """asyncio.Semaphore as 3.12.x and 3.13 have it: a waiter that leaves acquire() — with its
    unit, or cancelled — wakes as many of the waiters queued behind it as there are units left,
    where 3.11 wakes one (and each of those the next, a turn of the loop later)."""

    def _wake_one(self):
        for fut in self._waiters or ():
            if not fut.done():
                self._value -= 1
                fut.set_result(True)
                return True
        return False

    def release(self):
        self._value += 1
        self._wake_one()

    async def acquire(self):
        if not self.locked():
            self._value -= 1
            return True
        if self._waiters is None:
            self._waiters = collections.deque()
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            try:
                await fut
            finally:
                self._waiters.remove(fut)
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._value += 1  # handed a unit, but leaving: it goes back
            raise
        finally:
            while self._value > 0 and self._wake_one():
                pass
        return True


if "while self._value > 0" in inspect.getsource(asyncio.Semaphore.acquire):  # 3.12.x, 3.13
    Semaphore = asyncio.Semaphore


class BoundedSemaphore(Semaphore):
    """asyncio.BoundedSemaphore over the Semaphore above."""

    def __init__(self, value):
        self._bound_value = value
        super().__init__(value)

    def release(self):
        if self._value >= self._bound_value:
            raise ValueError("BoundedSemaphore released too many times")
        super().release()


def make_barrier(parties):
    """asyncio.Barrier over the Condition above (a Barrier makes its own Condition)."""
    saved = asyncio.locks.Condition
    asyncio.locks.Condition = Condition
    try:
        return asyncio.Barrier(parties)
    finally:
        asyncio.locks.Condition = saved


def make_script(rng):
    ntasks = rng.randrange(1, 6)
    maxsize = rng.choice([0, 1, 2, 3])
    sem = rng.choice([0, 1, 2])
    bounded = rng.choice([0, 1])
    parties = rng.choice([1, 2, 3])
    tasks = []
    for _ in range(ntasks):
        ops = []
        for _ in range(rng.randrange(1, 12)):
            op = rng.choice(OPS)
            if op in ("q_put", "q_put_nowait"):
                ops.append((op, rng.randrange(100)))
            elif op == "cancel":
                ops.append((op, rng.randrange(ntasks)))
            elif op == "cond_notify":
                ops.append((op, rng.randrange(0, 3)))
            else:
                ops.append((op,))
        tasks.append(ops)
    return maxsize, sem, bounded, parties, tasks


def script_text(maxsize, sem, bounded, parties, tasks):
    lines = [f"queue {maxsize}", f"semaphore {sem} {bounded}", f"barrier {parties}"]
    for ops in tasks:
        lines.append("task " + " ".join(":".join(str(w) for w in op) for op in ops))
    lines.append("end")
    return "\n".join(lines) + "\n"


async def replay(maxsize, sem_value, bounded, parties, scripts):
    lock = asyncio.Lock()
    cond = Condition(lock)
    sem = BoundedSemaphore(sem_value) if bounded else Semaphore(sem_value)
    bar = make_barrier(parties)
    ev = asyncio.Event()
    q = asyncio.Queue(maxsize)
    out = []
    tasks = []
    holder = [None]  # the task that took the lock last

    def state():
        return (f"q={q.qsize()} lock={int(lock.locked())} sem={int(sem.locked())} "
                f"ev={int(ev.is_set())} bar={bar.n_waiting}/{int(bar.broken)}")

    async def one(i, op):
        name = op[0]
        if name == "sleep":
            await asyncio.sleep(0)
        elif name == "lock":
            await lock.acquire()
            holder[0] = i
        elif name == "unlock":
            lock.release()
            holder[0] = None
        elif name == "sem_acq":
            await sem.acquire()
        elif name == "sem_rel":
            sem.release()
        elif name == "ev_wait":
            await ev.wait()
        elif name == "ev_set":
            ev.set()
        elif name == "ev_clear":
            ev.clear()
        elif name == "q_put":
            await q.put(op[1])
        elif name == "q_get":
            return f"ok {await q.get()}"
        elif name == "q_put_nowait":
            q.put_nowait(op[1])
        elif name == "q_get_nowait":
            return f"ok {q.get_nowait()}"
        elif name == "q_done":
            q.task_done()
        elif name == "q_join":
            await q.join()
        elif name == "cond_wait":
            await cond.wait()
            holder[0] = i
        elif name == "cond_notify":
            cond.notify(op[1])
        elif name == "cond_notify_all":
            cond.notify_all()
        elif name == "bar_wait":
            return f"ok {await bar.wait()}"
        elif name == "bar_reset":
            await bar.reset()
        elif name == "bar_abort":
            await bar.abort()
        elif name == "cancel":
            return str(tasks[op[1]].cancel())
        elif name == "state":
            return state()
        return "ok"

    async def run(i, ops):
        try:
            for op in ops:
                what = ":".join(str(w) for w in op)
                try:
                    result = await one(i, op)
                except asyncio.CancelledError:
                    out.append(f"t{i} {what} CancelledError")
                    return
                except asyncio.QueueFull:
                    result = "QueueFull"
                except asyncio.QueueEmpty:
                    result = "QueueEmpty"
                except asyncio.BrokenBarrierError:
                    result = "BrokenBarrierError"
                except RuntimeError:
                    result = "RuntimeError"
                except ValueError:
                    result = "ValueError"
                out.append(f"t{i} {what} {result}")
        finally:
            out.append(f"t{i} end")
            if holder[0] == i and lock.locked():
                holder[0] = None
                lock.release()

    for i, ops in enumerate(scripts):
        tasks.append(asyncio.ensure_future(run(i, ops)))
    for _ in range(100):
        await asyncio.sleep(0)
    for i, t in enumerate(tasks):
        if not t.done():
            out.append(f"main cancels t{i}")
            t.cancel()
    for _ in range(100):
        await asyncio.sleep(0)
    out.append("main " + state())
    # A cancelled Condition.wait takes the lock back before it raises: free the lock until
    # every such waiter has done so and ended.
    for _ in range(100):
        if all(t.done() for t in tasks):
            break
        if lock.locked():
            lock.release()
        await asyncio.sleep(0)
    for i, t in enumerate(tasks):
        if not t.done():
            out.append(f"main: t{i} still running")
    return "".join(line + "\n" for line in out)


if __name__ == "__main__":
    sys.exit(replay_diff.main(make_script, replay, script_text,
                              "gilio's tasks ran and woke as asyncio's did"))
