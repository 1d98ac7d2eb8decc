// tests/test_threads.cpp — gilio/asyncio/threads.hpp and gilio/concurrent.hpp: to_thread,
// run_in_executor, run_coroutine_threadsafe, wrap_future, and ThreadPoolExecutor on its own.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "asyncio_support.hpp"
#include "gilio/concurrent.hpp"
#include "gilio/gil.hpp"
#include "gilio/time.hpp"
#include "support.hpp"

namespace asyncio = gilio::asyncio;
namespace concurrent = gilio::concurrent;
namespace gil = gilio::gil;
using asyncio::Coro;
using gilio::testing::run_test;

TEST(ToThread, RunsOnAPoolThreadHoldingTheGil) {
  run_test([]() -> Coro<void> {
    const auto loop_thread = std::this_thread::get_id();
    auto [same_thread, held] = co_await asyncio::to_thread([loop_thread] {
      return std::make_pair(std::this_thread::get_id() == loop_thread, gil::held());
    });
    EXPECT_FALSE(same_thread);
    EXPECT_TRUE(held);
    EXPECT_EQ(co_await asyncio::to_thread([](int a, int b) { return a * b; }, 6, 7), 42);
    EXPECT_THROW(co_await asyncio::to_thread([] { throw std::domain_error("in thread"); }),
                 std::domain_error);
  }());
}

TEST(ToThread, TheLoopStaysResponsiveWhileAThreadBlocks) {
  run_test([]() -> Coro<void> {
    int ticks = 0;
    auto ticker = asyncio::create_task([](int& ticks) -> Coro<void> {
      for (;;) {
        co_await asyncio::sleep(0.005);
        ++ticks;
      }
    }(ticks));
    co_await asyncio::to_thread([] { gilio::time::sleep(0.1); });  // blocks, GIL released
    EXPECT_GE(ticks, 5);
    ticker.cancel();
  }());
}

TEST(ToThread, CancellingTheAwaiterDoesNotWaitForTheThread) {
  run_test([]() -> Coro<void> {
    // Shared: the thread outlives this coroutine's frame (run() joins it at the end).
    auto finished = std::make_shared<std::atomic<bool>>(false);
    auto t = asyncio::create_task(asyncio::to_thread([finished] {
      gilio::time::sleep(0.05);
      *finished = true;
    }));
    co_await asyncio::sleep(0.005);
    t.cancel();
    EXPECT_THROW(co_await t, asyncio::CancelledError);
    EXPECT_FALSE(finished->load()) << "the awaiting task is cancelled at once";
  }());  // run() shuts the default executor down, waiting for the thread
}

TEST(RunInExecutor, UsesTheGivenExecutor) {
  concurrent::ThreadPoolExecutor pool(2);
  run_test([](concurrent::ThreadPoolExecutor& pool) -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    std::vector<asyncio::Task<int>> jobs;
    for (int i = 0; i < 8; ++i) {
      jobs.push_back(asyncio::create_task(loop.run_in_executor(
          &pool, [](int x) { return x * x; }, i)));
    }
    auto squares = co_await asyncio::gather(jobs);
    for (int i = 0; i < 8; ++i)
      EXPECT_EQ(squares[i], i * i);
  }(pool));
}

// loop.set_default_executor: to_thread and run_in_executor(nullptr) use it; one it replaces
// finishes what it runs, and the loop shuts both down when it closes.
TEST(RunInExecutor, SetDefaultExecutorIsWhatToThreadAndRunInExecutorUse) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    EXPECT_THROW(loop.set_default_executor(nullptr), std::invalid_argument);
    auto first = std::make_unique<concurrent::ThreadPoolExecutor>(1);
    concurrent::ThreadPoolExecutor* first_pool = first.get();
    loop.set_default_executor(std::move(first));
    EXPECT_EQ(&loop.default_executor(), first_pool);
    // One worker: calls submitted together run one at a time, on one thread.
    std::atomic<int> running{0};
    std::atomic<int> most{0};
    auto job = [&running, &most] {
      const int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      gilio::time::sleep(0.02);  // without the GIL: a second worker could run meanwhile
      --running;
      return std::this_thread::get_id();
    };
    auto a = asyncio::create_task(asyncio::to_thread(job));
    auto b = asyncio::create_task(loop.run_in_executor(nullptr, job));
    const auto ids = co_await asyncio::gather(a, b);
    EXPECT_EQ(std::get<0>(ids), std::get<1>(ids));
    EXPECT_NE(std::get<0>(ids), std::this_thread::get_id());
    EXPECT_EQ(most.load(), 1);

    // Replaced while a call runs in it: the call still finishes; new calls go to the new one.
    auto slow = asyncio::create_task(asyncio::to_thread([] {
      gilio::time::sleep(0.05);
      return std::this_thread::get_id();
    }));
    co_await asyncio::sleep(0.01);
    loop.set_default_executor(std::make_unique<concurrent::ThreadPoolExecutor>(1));
    EXPECT_NE(&loop.default_executor(), first_pool);
    const auto on_second = co_await asyncio::to_thread([] { return std::this_thread::get_id(); });
    EXPECT_NE(on_second, std::get<0>(ids));
    EXPECT_EQ(co_await slow, std::get<0>(ids));
  }());
}

TEST(ThreadPoolExecutor, SubmitMapAndShutdown) {
  concurrent::ThreadPoolExecutor pool(3);
  auto f = pool.submit([](int a) { return a + 1; }, 1);
  EXPECT_EQ(f.result(), 2);
  EXPECT_TRUE(f.done());
  EXPECT_EQ(pool.map([](int x) { return x * 2; }, std::vector<int>{1, 2, 3}),
            (std::vector<int>{2, 4, 6}));
  auto bad = pool.submit([] { throw std::runtime_error("x"); });
  EXPECT_THROW(bad.result(), std::runtime_error);
  int callbacks = 0;
  auto g = pool.submit([] { return 5; });
  g.result();
  g.add_done_callback([&](concurrent::Future<int> d) { callbacks += d.result(); });
  EXPECT_EQ(callbacks, 5);
  pool.shutdown();
  EXPECT_THROW(pool.submit([] { return 0; }), std::runtime_error);
}

TEST(ThreadPoolExecutor, ShutdownCancelsQueuedWork) {
  concurrent::ThreadPoolExecutor pool(1);
  std::atomic<bool> release{false};
  auto running = pool.submit([&] {
    while (!release.load())
      gilio::time::sleep(0.001);
    return 1;
  });
  std::vector<concurrent::Future<int>> queued;
  for (int i = 0; i < 5; ++i)
    queued.push_back(pool.submit([] { return 2; }));
  while (!running.running())
    gilio::time::sleep(0.001);
  EXPECT_FALSE(running.cancel()) << "a running call cannot be cancelled";
  std::thread releaser([&] {
    gilio::time::sleep(0.02);
    release = true;
  });
  pool.shutdown(true, true);
  releaser.join();
  EXPECT_EQ(running.result(), 1);
  for (auto& q : queued) {
    EXPECT_TRUE(q.cancelled());
    EXPECT_THROW(q.result(), concurrent::CancelledError);
  }
}

TEST(ThreadPoolExecutor, ResultTimeout) {
  concurrent::ThreadPoolExecutor pool(1);
  auto f = pool.submit([] { gilio::time::sleep(0.2); });
  EXPECT_THROW(f.result(0.01), concurrent::TimeoutError);
  EXPECT_THROW(f.result(1e-5), concurrent::TimeoutError) << "a timeout shorter than the spin";
  EXPECT_THROW(f.result(0), concurrent::TimeoutError);
  f.result();
}

TEST(ThreadPoolExecutor, WorkersTakeTurnsOnTheGil) {
  // Workers run holding the GIL: two CPU-bound calls never hold it at the same time.
  concurrent::ThreadPoolExecutor pool(2);
  std::atomic<int> inside{0}, most{0};
  auto work = [&] {
    for (int i = 0; i < 20000; ++i) {
      const int now = ++inside;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      --inside;
      gil::checkpoint();
    }
  };
  auto a = pool.submit(work);
  auto b = pool.submit(work);
  a.result();
  b.result();
  EXPECT_EQ(most.load(), 1);
}

TEST(ThreadPoolExecutor, ManyThreadsSubmittingAtOnce) {
  // Workers are created as submissions arrive; concurrent submitters must not start one twice.
  concurrent::ThreadPoolExecutor pool(8);
  std::atomic<int> ran{0};
  std::vector<std::thread> submitters;
  for (int t = 0; t < 4; ++t) {
    submitters.emplace_back([&] {
      std::vector<concurrent::Future<void>> fs;
      for (int i = 0; i < 200; ++i)
        fs.push_back(pool.submit([&ran] { ++ran; }));
      for (auto& f : fs)
        f.result();
    });
  }
  for (auto& t : submitters)
    t.join();
  EXPECT_EQ(ran.load(), 800);
}

// concurrent::Future's own lock and done flag (detail::FutexLock, detail::DoneFlag): every
// sleeper wakes when the future is set, and the lock excludes — also once holders keep it long
// enough that waiters stop trying and sleep on it.
TEST(ConcurrentFuture, EveryThreadWaitingForOneFutureWakes) {
  concurrent::Future<int> f;
  std::atomic<int> woke{0};
  std::chrono::steady_clock::time_point set_at;
  std::vector<std::thread> waiters;
  for (int t = 0; t < 6; ++t) {
    waiters.emplace_back([&] {
      // A waiter nobody wakes still sees the value when its 10 s run out: so count only those
      // back within 5 s (microseconds, when woken).
      const int value = f.result(10);
      if (value == 42 && gilio::testing::seconds_since(set_at) < 5.0) ++woke;
    });
  }
  // Not synchronisation: the test passes or fails the same without it, but with it the waiters
  // have surely stopped polling (50 µs) and sleep, the path under test.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  set_at = std::chrono::steady_clock::now();
  f.set_result(42);
  for (auto& t : waiters)
    t.join();
  EXPECT_EQ(woke.load(), 6);
}

TEST(ConcurrentFuture, ItsLockExcludesAlsoWhenWaitersSleep) {
  gilio::concurrent::detail::FutexLock lock;
  std::atomic<int> inside{0};
  std::atomic<int> overlaps{0};
  long counter = 0;  // a plain long: a lost update, or TSan, would show a lock that fails
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        std::lock_guard hold(lock);
        if (++inside != 1) ++overlaps;
        const long seen = counter;
        if (i % 64 == 0) std::this_thread::yield();  // widen the window a broken lock leaves
        counter = seen + 1;
        // Now and then hold it for a while, so the others give up trying and sleep on it.
        if (i % 5000 == t) std::this_thread::sleep_for(std::chrono::milliseconds(2));
        --inside;
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(counter, 80000);
}

// A loop running in a thread of its own, as a program that keeps its loop beside other threads
// has it: run() of a coroutine that waits until stop() — itself sent by run_coroutine_threadsafe.
class LoopThread {
 public:
  LoopThread() {
    std::promise<std::pair<asyncio::EventLoop*, asyncio::Event*>> ready;
    auto started = ready.get_future();
    thread_ = std::thread([&ready] {
      asyncio::run([](auto& ready) -> Coro<void> {
        asyncio::Event stop;
        ready.set_value({&asyncio::get_running_loop(), &stop});
        co_await asyncio::wait_for(stop.wait(), 60.0);  // bounded: a lost stop() fails, not hangs
      }(ready));
    });
    std::tie(loop_, stop_) = started.get();
  }
  ~LoopThread() { stop(); }
  asyncio::EventLoop& loop() { return *loop_; }
  void stop() {
    if (!thread_.joinable()) return;
    asyncio::run_coroutine_threadsafe(
        [](asyncio::Event* stop) -> Coro<void> {
          stop->set();
          co_return;
        }(stop_),
        *loop_)
        .result(30.0);
    thread_.join();
  }

 private:
  std::thread thread_;
  asyncio::EventLoop* loop_ = nullptr;
  asyncio::Event* stop_ = nullptr;
};

TEST(RunCoroutineThreadsafe, AnotherThreadGetsTheOutcome) {
  LoopThread lt;
  const auto caller = std::this_thread::get_id();
  auto product = asyncio::run_coroutine_threadsafe(
      [](std::thread::id caller) -> Coro<std::pair<int, bool>> {
        co_await asyncio::sleep(0.001);
        const bool elsewhere = std::this_thread::get_id() != caller;
        co_return std::make_pair(6 * 7, elsewhere && asyncio::current_task().valid());
      }(caller),
      lt.loop());
  EXPECT_EQ(product.result(30.0), std::make_pair(42, true)) << "ran as a task on the loop's thread";
  auto failure = asyncio::run_coroutine_threadsafe(
      []() -> Coro<void> {
        co_await asyncio::sleep(0);
        throw std::domain_error("in the loop");
      }(),
      lt.loop());
  EXPECT_THROW(failure.result(30.0), std::domain_error);
  // Many callers at once, each waiting for its own answer.
  std::vector<std::thread> callers;
  std::atomic<int> right{0};
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&lt, &right, t] {
      for (int i = 0; i < 200; ++i) {
        auto f = asyncio::run_coroutine_threadsafe(
            [](int v) -> Coro<int> {
              co_await asyncio::sleep(0);
              co_return v + 1;
            }(t * 1000 + i),
            lt.loop());
        if (f.result(30.0) == t * 1000 + i + 1) ++right;
      }
    });
  }
  for (auto& c : callers)
    c.join();
  EXPECT_EQ(right.load(), 800);
}

TEST(RunCoroutineThreadsafe, CancellingTheFutureCancelsTheTask) {
  LoopThread lt;
  concurrent::Future<void> entered, heard_cancel;
  auto f = asyncio::run_coroutine_threadsafe(
      [](concurrent::Future<void> entered, concurrent::Future<void> heard) -> Coro<int> {
        entered.set_result();
        try {
          co_await asyncio::sleep(60.0);
        } catch (const asyncio::CancelledError&) {
          heard.set_result();
          throw;
        }
        co_return 1;
      }(entered, heard_cancel),
      lt.loop());
  entered.result(30.0);
  EXPECT_TRUE(f.cancel()) << "running in the loop is still pending to its owner, as in asyncio";
  EXPECT_THROW(f.result(30.0), concurrent::CancelledError);
  heard_cancel.result(30.0);  // the task was cancelled on the loop's thread (TimeoutError if not)
  // Cancelled before the loop took it: the coroutine never runs.
  auto ran = std::make_shared<std::atomic<bool>>(false);
  asyncio::EventLoop idle;  // not running: what is posted waits
  auto g = asyncio::run_coroutine_threadsafe(
      [](std::shared_ptr<std::atomic<bool>> ran) -> Coro<void> {
        *ran = true;
        co_return;
      }(ran),
      idle);
  EXPECT_TRUE(g.cancel());
  idle.run_until_complete([]() -> Coro<void> { co_await asyncio::sleep(0.001); }());
  EXPECT_FALSE(ran->load());
  EXPECT_THROW(g.result(0), concurrent::CancelledError);
}

TEST(RunCoroutineThreadsafe, AClosingLoopFailsWhatItNeverRan) {
  auto ran = std::make_shared<std::atomic<int>>(0);
  auto coro = [](std::shared_ptr<std::atomic<int>> ran) -> Coro<void> {
    ++*ran;
    co_await asyncio::sleep(60.0);
  };
  concurrent::Future<void> posted;
  {
    asyncio::EventLoop loop;
    posted = asyncio::run_coroutine_threadsafe(coro(ran), loop);
    loop.close();  // runs what was posted, then cancels the task it made
    EXPECT_THROW(asyncio::run_coroutine_threadsafe(coro(ran), loop), std::runtime_error);
  }
  EXPECT_THROW(posted.result(10.0), concurrent::CancelledError);
  EXPECT_EQ(ran->load(), 0) << "cancelled before its first step";
  // Posted while the loop closes, past its last round: dropped, and its future says so. close()
  // runs what was posted in rounds until no task is left; a callback posted from within such a
  // round's callback, that posts the coroutine in turn, comes too late.
  {
    concurrent::Future<void> late;
    asyncio::EventLoop loop;
    loop.call_soon_threadsafe([&] {
      loop.call_soon_threadsafe([&] { late = asyncio::run_coroutine_threadsafe(coro(ran), loop); });
    });
    loop.close();
    EXPECT_THROW(
        {
          try {
            late.result(10.0);
          } catch (const std::runtime_error& e) {
            EXPECT_STREQ(e.what(),
                         "run_coroutine_threadsafe: the event loop closed before the coroutine "
                         "could start");
            throw;
          }
        },
        std::runtime_error);
  }
  // The same race with a thread that posts until the loop refuses: every future it got must be
  // done, none left hanging.
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::vector<concurrent::Future<void>> futures;
    std::atomic<bool> go{false};
    auto loop = std::make_unique<asyncio::EventLoop>();
    std::thread poster([&] {
      while (!go.load())
        std::this_thread::yield();
      try {
        for (;;)
          futures.push_back(asyncio::run_coroutine_threadsafe(coro(ran), *loop));
      } catch (const std::runtime_error&) {  // closed
      }
    });
    go = true;
    loop->close();
    poster.join();
    for (auto& f : futures) {
      try {
        f.result(10.0);
        ADD_FAILURE() << "a coroutine that waits a minute cannot have finished";
      } catch (const concurrent::CancelledError&) {
      } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("closed before the coroutine could start"),
                  std::string::npos)
            << e.what();
      }
    }
  }
}

TEST(WrapFuture, AwaitsAConcurrentFutureFromAnyThread) {
  run_test([]() -> Coro<void> {
    concurrent::Future<std::string> f;
    std::thread t([f]() mutable {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      f.set_result("from a thread");
    });
    EXPECT_EQ(co_await asyncio::wrap_future(f), "from a thread");
    t.join();
    concurrent::Future<int> failing;
    failing.set_exception(std::make_exception_ptr(std::out_of_range("stored")));
    EXPECT_THROW(co_await asyncio::wrap_future(failing), std::out_of_range);
    // Cancelling the task that awaits it cancels the future (which nobody had started).
    concurrent::Future<int> never;
    auto waiter = asyncio::create_task(asyncio::wrap_future(never));
    co_await asyncio::sleep(0.001);
    waiter.cancel();
    EXPECT_THROW(co_await waiter, asyncio::CancelledError);
    EXPECT_TRUE(never.cancelled());
  }());
}
