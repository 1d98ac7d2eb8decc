// tests/test_queues.cpp — gilio/asyncio/queues.hpp, after Lib/test/test_asyncio/test_queues.py.
// FIFO, priority and LIFO order, maxsize back-pressure, the nowait variants, task_done/join, a
// cancelled getter passing its item on, and 3.13's shutdown.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::run_test;

TEST(Queue, FifoWithBackpressure) {
  run_test([]() -> Coro<void> {
    asyncio::Queue<int> q(2);
    EXPECT_EQ(q.maxsize(), 2u);
    auto producer = asyncio::create_task([](asyncio::Queue<int>& q) -> Coro<void> {
      for (int i = 0; i < 100; ++i)
        co_await q.put(i);
    }(q));
    std::vector<int> got;
    for (int i = 0; i < 100; ++i) {
      got.push_back(co_await q.get());
      EXPECT_LE(q.qsize(), 2u);
    }
    co_await producer;
    for (int i = 0; i < 100; ++i)
      EXPECT_EQ(got[i], i);
  }());
}

TEST(Queue, NowaitVariantsThrow) {
  run_test([]() -> Coro<void> {
    asyncio::Queue<std::string> q(1);
    EXPECT_THROW(q.get_nowait(), asyncio::QueueEmpty);
    q.put_nowait("a");
    EXPECT_TRUE(q.full());
    EXPECT_THROW(q.put_nowait("b"), asyncio::QueueFull);
    EXPECT_EQ(q.get_nowait(), "a");
    EXPECT_TRUE(q.empty());
    co_return;
  }());
}

TEST(Queue, JoinWaitsForTaskDone) {
  run_test([]() -> Coro<void> {
    asyncio::Queue<int> q;
    for (int i = 0; i < 5; ++i)
      q.put_nowait(i);
    int processed = 0;
    auto worker = asyncio::create_task([](asyncio::Queue<int>& q, int& n) -> Coro<void> {
      for (;;) {
        co_await q.get();
        co_await asyncio::sleep(0.001);
        ++n;
        q.task_done();
      }
    }(q, processed));
    co_await q.join();
    EXPECT_EQ(processed, 5);
    worker.cancel();
    EXPECT_THROW(q.task_done(), std::invalid_argument);
  }());
}

TEST(Queue, ShutdownWakesBlockedGettersAndPutters) {
  run_test([]() -> Coro<void> {
    asyncio::Queue<int> q(1);
    auto getter = asyncio::create_task(
        [](asyncio::Queue<int>& q) -> Coro<int> { co_return co_await q.get(); }(q));
    co_await asyncio::sleep(0);
    q.shutdown();
    EXPECT_THROW(co_await getter, asyncio::QueueShutDown);
    EXPECT_THROW(q.put_nowait(1), asyncio::QueueShutDown);

    asyncio::Queue<int> r(1);
    r.put_nowait(1);
    auto putter =
        asyncio::create_task([](asyncio::Queue<int>& r) -> Coro<void> { co_await r.put(2); }(r));
    co_await asyncio::sleep(0);
    r.shutdown();
    EXPECT_THROW(co_await putter, asyncio::QueueShutDown);
    EXPECT_EQ(co_await r.get(), 1) << "a graceful shutdown still lets getters drain";
    EXPECT_THROW(co_await r.get(), asyncio::QueueShutDown);

    asyncio::Queue<int> s;
    s.put_nowait(1);
    s.put_nowait(2);
    s.shutdown(true);  // immediate: items dropped, join() released
    EXPECT_TRUE(s.empty());
    co_await s.join();
  }());
}

TEST(Queue, CancelledGetterPassesTheItemOn) {
  run_test([]() -> Coro<void> {
    asyncio::Queue<int> q;
    auto a = asyncio::create_task(
        [](asyncio::Queue<int>& q) -> Coro<int> { co_return co_await q.get(); }(q));
    auto b = asyncio::create_task(
        [](asyncio::Queue<int>& q) -> Coro<int> { co_return co_await q.get(); }(q));
    co_await asyncio::sleep(0);
    q.put_nowait(5);  // wakes `a`...
    a.cancel();       // ...which is cancelled before it takes the item
    EXPECT_THROW(co_await a, asyncio::CancelledError);
    EXPECT_EQ(co_await b, 5);
  }());
}

// The other side and the message: a putter woken by a free slot but cancelled before it puts
// passes the slot on, and a cancelled wait raises CancelledError with the cancel() message.
TEST(Queue, CancelledPutterPassesTheSlotOnAndTheMessageArrives) {
  run_test([]() -> Coro<void> {
    asyncio::Queue<int> q(1);
    q.put_nowait(0);
    auto a =
        asyncio::create_task([](asyncio::Queue<int>& q) -> Coro<void> { co_await q.put(1); }(q));
    auto b =
        asyncio::create_task([](asyncio::Queue<int>& q) -> Coro<void> { co_await q.put(2); }(q));
    co_await asyncio::sleep(0);
    EXPECT_EQ(q.get_nowait(), 0);  // a free slot: wakes `a`...
    a.cancel("stop a");            // ...which is cancelled before it puts
    try {
      co_await a;
      ADD_FAILURE() << "a was not cancelled";
    } catch (const asyncio::CancelledError& e) {
      EXPECT_STREQ(e.what(), "stop a");
    }
    co_await b;
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_TRUE(q.empty());
  }());
}

TEST(PriorityQueue, SmallestFirst) {
  run_test([]() -> Coro<void> {
    asyncio::PriorityQueue<int> pq;
    for (int v : {5, 1, 4, 2, 3})
      pq.put_nowait(v);
    for (int want = 1; want <= 5; ++want)
      EXPECT_EQ(co_await pq.get(), want);
    asyncio::PriorityQueue<int, std::greater<int>> maxq;
    for (int v : {1, 3, 2})
      maxq.put_nowait(v);
    EXPECT_EQ(maxq.get_nowait(), 3);
  }());
}

TEST(LifoQueue, NewestFirst) {
  run_test([]() -> Coro<void> {
    asyncio::LifoQueue<int> lq;
    for (int v : {1, 2, 3})
      lq.put_nowait(v);
    EXPECT_EQ(co_await lq.get(), 3);
    EXPECT_EQ(lq.get_nowait(), 2);
  }());
}

// get() and put() answer in await_ready when they can (no coroutine frame, and no trip through
// the loop — as asyncio's get() with an item waiting never yields); they go to create_task,
// wait_for and gather, and, like a coroutine object, may be awaited once.
TEST(Queue, GetAndPutAreAwaitablesThatWaitOnlyWhenTheyMust) {
  run_test([]() -> Coro<void> {
    asyncio::Queue<int> q(1);
    bool other_ran = false;
    auto other = asyncio::create_task([](bool& ran) -> Coro<void> {
      ran = true;
      co_return;
    }(other_ran));
    co_await q.put(1);  // a free slot: no suspension, so `other` has not run yet
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_FALSE(other_ran) << "a put() or get() that need not wait yielded to the loop";
    co_await other;

    auto waiting_get = asyncio::create_task(q.get());
    co_await asyncio::sleep(0);
    EXPECT_FALSE(waiting_get.done());
    co_await asyncio::wait_for(q.put(7), 1.0);
    EXPECT_EQ(co_await waiting_get, 7);

    co_await q.put(8);
    EXPECT_THROW(co_await asyncio::wait_for(q.put(9), 0.01), asyncio::TimeoutError);
    EXPECT_EQ(q.qsize(), 1u) << "a put that timed out must not add its item";
    auto [a] = co_await asyncio::gather(q.get());
    EXPECT_EQ(a, 8);

    auto get_once = q.get();
    q.put_nowait(10);
    EXPECT_EQ(co_await get_once, 10);
    co_await gilio::testing::expect_await_throws<asyncio::InvalidStateError>(
        get_once, "a get() awaited twice did not throw", "awaited twice");
    auto put_once = q.put(11);
    co_await put_once;
    co_await gilio::testing::expect_await_throws<asyncio::InvalidStateError>(
        put_once, "a put() awaited twice did not throw", "awaited twice");
    EXPECT_EQ(q.qsize(), 1u);
  }());
}

TEST(Queue, IsBoundToTheLoopOfItsFirstWaiter) {
  // asyncio's _LoopBoundMixin: one binding for getters and putters alike.
  asyncio::EventLoop a;
  asyncio::EventLoop b;
  asyncio::Queue<int> q(1);
  auto wait_to_get = [](asyncio::Queue<int>& q) -> Coro<int> {
    auto getter = asyncio::create_task(q.get());
    co_await asyncio::sleep(0);
    q.put_nowait(7);
    co_return co_await getter;
  };
  auto wait_to_put = [](asyncio::Queue<int>& q) -> Coro<void> {
    q.put_nowait(1);
    auto putter = asyncio::create_task(q.put(2));
    co_await asyncio::sleep(0);
    EXPECT_EQ(q.get_nowait(), 1);
    co_await putter;
    EXPECT_EQ(q.get_nowait(), 2);
  };
  EXPECT_EQ(a.run_until_complete(asyncio::wait_for(wait_to_get(q), 20.0)), 7);
  try {
    b.run_until_complete(asyncio::wait_for(wait_to_put(q), 20.0));
    ADD_FAILURE() << "a task of another loop waited on the queue";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Queue is bound to a different event loop");
  }
  EXPECT_TRUE(q.empty());  // the refused put put nothing; a's tasks use the queue as before
  a.run_until_complete(asyncio::wait_for(wait_to_put(q), 20.0));
}
