// tests/test_locks.cpp — gilio/asyncio/locks.hpp, after Lib/test/test_asyncio/test_locks.py.
// Lock's FIFO order (unlocked between a release and the woken waiter's turn, as asyncio's) and
// a cancelled waiter passing its turn on, Event, Condition (re-acquiring on cancel, notifying
// another in its place), Semaphore (woken waiters counted until they run), BoundedSemaphore's
// over-release, and Barrier's indices and abort. tests/sync_diff.py checks the same classes
// against CPython's asyncio on random scripts, task order included.
#include <gtest/gtest.h>

#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::run_test;

TEST(Lock, IsFifoFair) {
  run_test([]() -> Coro<void> {
    asyncio::Lock lock;
    std::vector<int> order;
    co_await lock.acquire();
    std::vector<asyncio::Task<void>> tasks;
    for (int i = 0; i < 5; ++i) {
      tasks.push_back(
          asyncio::create_task([](asyncio::Lock& l, std::vector<int>& o, int i) -> Coro<void> {
            co_await l.acquire();
            o.push_back(i);
            co_await asyncio::sleep(0);
            l.release();
          }(lock, order, i)));
      co_await asyncio::sleep(0);  // each one queues in turn
    }
    lock.release();
    // A latecomer that asks right after the release must not barge ahead of the queue.
    auto late = asyncio::create_task([](asyncio::Lock& l, std::vector<int>& o) -> Coro<void> {
      co_await l.acquire();
      o.push_back(99);
      l.release();
    }(lock, order));
    co_await asyncio::gather(tasks);
    co_await late;
    EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4, 99}));
    EXPECT_FALSE(lock.locked());
  }());
}

TEST(Lock, CancelledWaiterPassesTheLockOn) {
  run_test([]() -> Coro<void> {
    asyncio::Lock lock;
    co_await lock.acquire();
    auto a =
        asyncio::create_task([](asyncio::Lock& l) -> Coro<void> { co_await l.acquire(); }(lock));
    auto b = asyncio::create_task([](asyncio::Lock& l) -> Coro<int> {
      co_await l.acquire();
      l.release();
      co_return 1;
    }(lock));
    co_await asyncio::sleep(0);
    lock.release();  // handed to `a`...
    a.cancel();      // ...which is cancelled before it runs: `b` must get it
    EXPECT_THROW(co_await a, asyncio::CancelledError);
    EXPECT_EQ(co_await b, 1);
    EXPECT_FALSE(lock.locked());
    EXPECT_THROW(lock.release(), std::runtime_error);
  }());
}

// As asyncio's: release() unlocks at once, and the woken waiter takes the lock when it runs. In
// between, locked() is false and another release() is an error (it used to be handed over
// locked, and that second release() went through), yet a newcomer still queues behind.
TEST(Lock, ReleaseUnlocksAndTheWokenWaiterTakesItWhenItRuns) {
  run_test([]() -> Coro<void> {
    asyncio::Lock lock;
    std::vector<int> order;
    auto take = [](asyncio::Lock& l, std::vector<int>& o, int who) -> Coro<void> {
      co_await l.acquire();
      o.push_back(who);
      l.release();
    };
    co_await lock.acquire();
    auto b = asyncio::create_task(take(lock, order, 1));
    co_await asyncio::sleep(0);  // b waits
    lock.release();
    EXPECT_FALSE(lock.locked()) << "asyncio's lock is unlocked until the woken waiter runs";
    EXPECT_THROW(lock.release(), std::runtime_error);
    auto c = asyncio::create_task(take(lock, order, 2));  // a newcomer: behind b
    co_await b;
    co_await c;
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    EXPECT_FALSE(lock.locked());
  }());
}

TEST(Lock, ScopedGuardReleases) {
  run_test([]() -> Coro<void> {
    asyncio::Lock lock;
    {
      auto guard = co_await lock.scoped();
      EXPECT_TRUE(lock.locked());
    }
    EXPECT_FALSE(lock.locked());
    // Contended: a scoped() that times out holds nothing; one that waits gets the lock in turn
    // and gives it back at the end of its scope.
    std::vector<int> order;
    auto guard = co_await lock.scoped();
    EXPECT_THROW(co_await asyncio::wait_for(lock.scoped(), 0.01), asyncio::TimeoutError);
    auto waiter = asyncio::create_task([](asyncio::Lock& l, std::vector<int>& o) -> Coro<void> {
      auto g = co_await l.scoped();
      o.push_back(2);
    }(lock, order));
    co_await asyncio::sleep(0);
    order.push_back(1);
    { auto released = std::move(guard); }  // the end of the holder's scope
    co_await waiter;
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    EXPECT_FALSE(lock.locked());
  }());
}

TEST(Event, SetWakesAllWaiters) {
  run_test([]() -> Coro<void> {
    asyncio::Event ev;
    int woken = 0;
    std::vector<asyncio::Task<void>> waiters;
    for (int i = 0; i < 3; ++i) {
      waiters.push_back(asyncio::create_task([](asyncio::Event& e, int& w) -> Coro<void> {
        EXPECT_TRUE(co_await e.wait());
        ++w;
      }(ev, woken)));
    }
    co_await asyncio::sleep(0);
    EXPECT_EQ(woken, 0);
    ev.set();
    co_await asyncio::gather(waiters);
    EXPECT_EQ(woken, 3);
    EXPECT_TRUE(co_await ev.wait());  // already set: no waiting
    ev.clear();
    EXPECT_FALSE(ev.is_set());
  }());
}

TEST(Condition, WaitNotifyAndReacquireOnCancel) {
  run_test([]() -> Coro<void> {
    asyncio::Condition cond;
    int items = 0;
    auto consumer = asyncio::create_task([](asyncio::Condition& c, int& items) -> Coro<int> {
      co_await c.acquire();
      co_await c.wait_for([&] { return items > 0; });
      const int got = items;
      c.release();
      co_return got;
    }(cond, items));
    co_await asyncio::sleep(0);
    co_await cond.acquire();
    items = 3;
    cond.notify();
    cond.release();
    EXPECT_EQ(co_await consumer, 3);
    EXPECT_THROW(cond.notify(), std::runtime_error);

    auto waiter = asyncio::create_task([](asyncio::Condition& c) -> Coro<bool> {
      co_await c.acquire();
      try {
        co_await c.wait();
      } catch (const asyncio::CancelledError&) {
        co_return c.locked();  // the lock is held again when the CancelledError arrives
      }
      co_return false;
    }(cond));
    co_await asyncio::sleep(0);
    waiter.cancel();
    EXPECT_TRUE(co_await waiter);
    EXPECT_TRUE(cond.locked());
    cond.release();
  }());
}

// A waiter that is cancelled without having been notified still notifies another in its place
// on its way out (asyncio since 3.12.x, gh-112202: a notification may have reached it first).
// Here that is a spurious wake-up, which a condition variable allows.
TEST(Condition, ACancelledWaiterNotifiesAnotherInItsPlace) {
  run_test([]() -> Coro<void> {
    asyncio::Condition cond;
    auto wait_once = [](asyncio::Condition& c) -> Coro<bool> {
      co_await c.acquire();  // as `async with c:` — released on the way out, cancelled or not
      bool woken = false;
      try {
        woken = co_await c.wait();
      } catch (const asyncio::CancelledError&) {
        c.release();
        throw;
      }
      c.release();
      co_return woken;
    };
    auto a = asyncio::create_task(wait_once(cond));
    auto b = asyncio::create_task(wait_once(cond));
    co_await asyncio::sleep(0);  // both wait
    a.cancel();
    EXPECT_THROW(co_await a, asyncio::CancelledError);
    EXPECT_TRUE(co_await b) << "b was not notified in a's place";
    EXPECT_FALSE(cond.locked());
  }());
}

TEST(Semaphore, LimitsConcurrency) {
  run_test([]() -> Coro<void> {
    asyncio::Semaphore sem(2);
    int inside = 0, most = 0;
    std::vector<asyncio::Task<void>> tasks;
    for (int i = 0; i < 8; ++i) {
      tasks.push_back(
          asyncio::create_task([](asyncio::Semaphore& s, int& in, int& most) -> Coro<void> {
            co_await s.acquire();
            most = std::max(most, ++in);
            co_await asyncio::sleep(0.001);
            --in;
            s.release();
          }(sem, inside, most)));
    }
    co_await asyncio::gather(tasks);
    EXPECT_EQ(most, 2);
    EXPECT_EQ(sem.value(), 2);
    EXPECT_THROW(asyncio::Semaphore(-1), std::invalid_argument);
  }());
}

TEST(Semaphore, CancelledWaiterPassesTheUnitOn) {
  run_test([]() -> Coro<void> {
    asyncio::Semaphore sem(0);
    auto a = asyncio::create_task(
        [](asyncio::Semaphore& s) -> Coro<void> { co_await s.acquire(); }(sem));
    auto b = asyncio::create_task([](asyncio::Semaphore& s) -> Coro<int> {
      co_await s.acquire();
      s.release();
      co_return 1;
    }(sem));
    co_await asyncio::sleep(0);
    sem.release();  // handed to `a`...
    a.cancel();     // ...which is cancelled before it runs: `b` must get the unit
    EXPECT_THROW(co_await a, asyncio::CancelledError);
    EXPECT_EQ(co_await b, 1);
    EXPECT_FALSE(sem.locked());
  }());
}

// As asyncio's: a waiter handed a unit counts until it has run — locked() stays true, and a
// newcomer queues behind it even with a unit left over — and when it runs it wakes as many of
// those behind it as there are units.
TEST(Semaphore, AWokenWaiterCountsUntilItRuns) {
  run_test([]() -> Coro<void> {
    asyncio::Semaphore sem(0);
    std::vector<int> order;
    auto take = [](asyncio::Semaphore& s, std::vector<int>& o, int who) -> Coro<void> {
      co_await s.acquire();
      o.push_back(who);
    };
    auto a = asyncio::create_task(take(sem, order, 1));
    co_await asyncio::sleep(0);  // a waits
    sem.release();               // a's unit
    sem.release();               // one more
    EXPECT_EQ(sem.value(), 1);
    EXPECT_TRUE(sem.locked()) << "a has been handed a unit and has not run: it is ahead";
    auto b = asyncio::create_task(take(sem, order, 2));
    auto c = asyncio::create_task(take(sem, order, 3));
    co_await a;
    co_await b;
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
    EXPECT_EQ(sem.value(), 0);
    sem.release();
    co_await c;
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_TRUE(sem.locked());  // c holds the last unit
    sem.release();
    EXPECT_FALSE(sem.locked());
  }());
}

TEST(BoundedSemaphore, ReleasingPastTheInitialValueThrows) {
  run_test([]() -> Coro<void> {
    asyncio::BoundedSemaphore sem(1);
    co_await sem.acquire();
    sem.release();
    EXPECT_THROW(sem.release(), std::invalid_argument);
  }());
}

TEST(Barrier, ReturnsArrivalIndicesAndBreaksOnAbort) {
  run_test([]() -> Coro<void> {
    asyncio::Barrier barrier(3);
    std::vector<asyncio::Task<std::size_t>> parties;
    for (int i = 0; i < 3; ++i)
      parties.push_back(asyncio::create_task(barrier.wait()));
    auto indices = co_await asyncio::gather(parties);
    std::sort(indices.begin(), indices.end());
    EXPECT_EQ(indices, (std::vector<std::size_t>{0, 1, 2}));
    // Reusable: a second round works too.
    std::vector<asyncio::Task<std::size_t>> again;
    for (int i = 0; i < 3; ++i)
      again.push_back(asyncio::create_task(barrier.wait()));
    co_await asyncio::gather(again);

    auto stuck = asyncio::create_task(barrier.wait());
    co_await asyncio::sleep(0.001);
    co_await barrier.abort();
    EXPECT_THROW(co_await stuck, asyncio::BrokenBarrierError);
    EXPECT_THROW(co_await barrier.wait(), asyncio::BrokenBarrierError);
    EXPECT_TRUE(barrier.broken());
    co_await barrier.reset();
    EXPECT_FALSE(barrier.broken());
    EXPECT_THROW(asyncio::Barrier(0), std::invalid_argument);
  }());
}

// The primitives' awaitables go wherever asyncio takes an awaitable — wait_for, timeout,
// create_task, gather — as asyncio.wait_for(event.wait(), t) and create_task(lock.acquire())
// do; moving one into its wrapper before it is awaited leaves the wait intact.
TEST(Awaitables, LockEventAndSemaphoreWaitsGoWhereACoroutineGoes) {
  run_test([]() -> Coro<void> {
    asyncio::Event event;
    EXPECT_THROW(co_await asyncio::wait_for(event.wait(), 0.01), asyncio::TimeoutError);
    auto waiter = asyncio::create_task(event.wait());
    co_await asyncio::sleep(0);
    EXPECT_FALSE(waiter.done());
    event.set();
    EXPECT_TRUE(co_await waiter);
    EXPECT_TRUE(co_await asyncio::wait_for(event.wait(), 1.0));

    asyncio::Lock lock;
    co_await asyncio::wait_for(lock.acquire(), 1.0);
    EXPECT_TRUE(lock.locked());
    auto second = asyncio::create_task(lock.acquire());  // queued behind us
    EXPECT_THROW(co_await asyncio::timeout(0.01, lock.acquire()), asyncio::TimeoutError);
    lock.release();  // handed to `second`, not to the timed-out waiter
    co_await second;
    EXPECT_TRUE(lock.locked());
    lock.release();

    asyncio::Semaphore sem(2);
    auto [a, b] = co_await asyncio::gather(sem.acquire(), sem.acquire());
    (void)a;
    (void)b;
    EXPECT_EQ(sem.value(), 0);
    EXPECT_THROW(co_await asyncio::wait_for(sem.acquire(), 0.01), asyncio::TimeoutError);
    sem.release();
    co_await asyncio::wait_for(sem.acquire(), 1.0);
    EXPECT_EQ(sem.value(), 0);
  }());
}

// asyncio's _LoopBoundMixin: a primitive belongs to the loop of the first task that waits on it.
// Two loops, both alive, run in turn on this thread as two threads would run them; each test body
// makes a task of the running loop park on the primitive once, and hands it what it waits for.
namespace {

template <class Prim>
using Contended = Coro<void> (*)(Prim&);

// Runs `body` on `loop` under a deadline; the std::runtime_error it ends with, or "".
template <class Prim>
std::string run_on(asyncio::EventLoop& loop, Contended<Prim> body, Prim& prim) {
  try {
    loop.run_until_complete(asyncio::wait_for(body(prim), 20.0));
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

template <class Prim>
void expect_bound_to_first_waiters_loop(Contended<Prim> body, const std::string& owner) {
  asyncio::EventLoop a;
  asyncio::EventLoop b;
  Prim prim;
  EXPECT_EQ(run_on(a, body, prim), "");  // binds it to a
  EXPECT_EQ(run_on(b, body, prim), owner + " is bound to a different event loop");
  EXPECT_EQ(run_on(a, body, prim), "");  // the refused wait left nothing behind
  Prim fresh;  // a primitive nobody waited on yet goes with the first loop that waits
  EXPECT_EQ(run_on(b, body, fresh), "");
  EXPECT_EQ(run_on(a, body, fresh), owner + " is bound to a different event loop");
}

// A Lock or a Semaphore(1): held here while another task waits to acquire it.
template <class Prim>
Coro<void> contended_acquire(Prim& prim) {
  co_await prim.acquire();
  auto waiter = asyncio::create_task([](Prim& p) -> Coro<void> {
    co_await p.acquire();
    p.release();
  }(prim));
  co_await asyncio::sleep(0);
  prim.release();
  co_await waiter;
}
Coro<void> contended_event(asyncio::Event& event) {
  auto waiter = asyncio::create_task(event.wait());
  co_await asyncio::sleep(0);
  event.set();
  co_await waiter;
  event.clear();
}
Coro<void> contended_condition(asyncio::Condition& cond) {
  auto waiter = asyncio::create_task([](asyncio::Condition& c) -> Coro<void> {
    co_await c.acquire();
    try {
      co_await c.wait();
    } catch (...) {
      EXPECT_TRUE(c.locked());  // a refused wait() never let the lock go
      c.release();
      throw;
    }
    c.release();
  }(cond));
  co_await asyncio::sleep(0);
  co_await cond.acquire();
  cond.notify();
  cond.release();
  co_await waiter;
}

}  // namespace

TEST(LoopBinding, ALockIsBoundToTheLoopOfItsFirstWaiter) {
  expect_bound_to_first_waiters_loop<asyncio::Lock>(contended_acquire, "Lock");
}
TEST(LoopBinding, AnEventIsBoundToTheLoopOfItsFirstWaiter) {
  expect_bound_to_first_waiters_loop<asyncio::Event>(contended_event, "Event");
}
TEST(LoopBinding, AConditionIsBoundToTheLoopOfItsFirstWaiter) {
  expect_bound_to_first_waiters_loop<asyncio::Condition>(contended_condition, "Condition");
}
TEST(LoopBinding, ASemaphoreIsBoundToTheLoopOfItsFirstWaiter) {
  expect_bound_to_first_waiters_loop<asyncio::Semaphore>(contended_acquire, "Semaphore");
}

TEST(LoopBinding, UseWithoutWaitingBindsNothing) {
  // As in asyncio: an acquire that need not wait touches no loop, so a primitive used only so
  // goes from loop to loop.
  asyncio::EventLoop a;
  asyncio::EventLoop b;
  asyncio::Lock lock;
  asyncio::Semaphore sem(1);
  auto uncontended = [](asyncio::Lock& l, asyncio::Semaphore& s) -> Coro<void> {
    co_await l.acquire();
    l.release();
    co_await s.acquire();
    s.release();
  };
  a.run_until_complete(uncontended(lock, sem));
  b.run_until_complete(uncontended(lock, sem));
  EXPECT_EQ(run_on(b, Contended<asyncio::Lock>(contended_acquire), lock), "");
}
