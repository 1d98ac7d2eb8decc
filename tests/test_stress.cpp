// tests/test_stress.cpp — many tasks: a million at once, a hundred thousand cancelled at random
// points. Under ASan the suite's LeakSanitizer checks that nothing is left behind.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::run_test;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kMillion = 200'000;  // the sanitizers' shadow memory makes 1 M slow, not different
#else
constexpr int kMillion = 1'000'000;
#endif

TEST(Stress, AMillionConcurrentTasks) {
  run_test(
      []() -> Coro<void> {
        asyncio::Event go;
        long sum = 0;
        std::vector<asyncio::Task<void>> tasks;
        tasks.reserve(kMillion);
        for (int i = 0; i < kMillion; ++i) {
          tasks.push_back(
              asyncio::create_task([](asyncio::Event& go, long& sum, int i) -> Coro<void> {
                co_await go.wait();  // all of them alive at once
                sum += i;
              }(go, sum, i)));
        }
        co_await asyncio::sleep(0);
        EXPECT_EQ(asyncio::get_running_loop().task_count(), static_cast<std::size_t>(kMillion) + 1);
        go.set();
        co_await asyncio::gather(tasks);
        EXPECT_EQ(sum, static_cast<long>(kMillion) * (kMillion - 1) / 2);
      }(),
      120);
}

TEST(Stress, ManyTasksCancelledAtRandomPoints) {
  run_test(
      []() -> Coro<void> {
        constexpr int kTasks = 100'000;
        std::mt19937 rng(12345);
        asyncio::Lock lock;
        asyncio::Queue<int> queue;
        std::vector<asyncio::Task<int>> tasks;
        for (int i = 0; i < kTasks; ++i) {
          tasks.push_back(asyncio::create_task(
              [](asyncio::Lock& lock, asyncio::Queue<int>& q, int i) -> Coro<int> {
                // A mix of every kind of wait, so cancellations land everywhere.
                co_await asyncio::sleep((i % 7) * 1e-4);
                {
                  auto guard = co_await lock.scoped();
                  co_await asyncio::sleep(0);
                }
                if (i % 3 == 0) {
                  q.put_nowait(i);
                } else if (i % 3 == 1) {
                  try {
                    co_await asyncio::wait_for(q.get(), 0.002);
                  } catch (const asyncio::TimeoutError&) {  // nothing came in time: fine
                  }
                }
                co_return i;
              }(lock, queue, i)));
        }
        for (int round = 0; round < 20; ++round) {
          co_await asyncio::sleep(0.0005);
          for (int k = 0; k < kTasks / 40; ++k)
            tasks[rng() % kTasks].cancel();
        }
        auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, tasks);
        int done = 0, cancelled = 0;
        for (auto& o : outcomes) {
          if (o.has_value()) {
            ++done;
          } else {
            try {
              std::rethrow_exception(o.error());
            } catch (const asyncio::CancelledError&) {
              ++cancelled;
            }
          }
        }
        EXPECT_EQ(done + cancelled, kTasks);
        EXPECT_GT(cancelled, 0);
        EXPECT_FALSE(lock.locked()) << "a cancelled holder or waiter leaked the lock";
      }(),
      120);
}
