// tests/test_taskgroups.cpp — gilio/asyncio/taskgroups.hpp, after
// Lib/test/test_asyncio/test_taskgroups.py.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::fail_after;
using gilio::testing::forever;
using gilio::testing::run_test;
using gilio::testing::value_after;

TEST(TaskGroup, JoinWaitsForEveryTask) {
  run_test([]() -> Coro<void> {
    asyncio::TaskGroup group;
    auto a = group.create_task(value_after(1, 0.01));
    auto b = group.create_task(value_after(2, 0.001));
    co_await group.join();
    EXPECT_TRUE(a.done());
    EXPECT_EQ(a.result() + b.result(), 3);
  }());
}

TEST(TaskGroup, FirstFailureCancelsSiblingsAndJoinRaisesExceptionGroup) {
  run_test([]() -> Coro<void> {
    asyncio::TaskGroup group;
    auto sibling = group.create_task(value_after(1, 3600));
    group.create_task(fail_after(0.001, "one"));
    group.create_task(fail_after(0.001, "two"));
    try {
      co_await group.join();
      ADD_FAILURE() << "join() did not throw";
    } catch (const asyncio::ExceptionGroup& eg) {
      EXPECT_EQ(eg.exceptions().size(), 2u);
      for (const auto& e : eg.exceptions())
        EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
    }
    EXPECT_TRUE(sibling.cancelled());
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

TEST(TaskGroup, RefusesNewTasksOnceAbortingOrFinished) {
  run_test([]() -> Coro<void> {
    asyncio::TaskGroup group;
    group.create_task(fail_after(0, "x"));
    group.create_task(value_after(1, 3600));
    co_await asyncio::sleep(0.005);  // the failure has been seen: the group is aborting
    EXPECT_THROW(group.create_task(value_after(1, 0)), std::runtime_error);
    EXPECT_THROW(co_await group.join(), asyncio::ExceptionGroup);
    EXPECT_THROW(group.create_task(value_after(1, 0)), std::runtime_error);
  }());
}

TEST(TaskGroup, CancellingTheJoinerCancelsChildrenAndPropagates) {
  run_test([]() -> Coro<void> {
    asyncio::Task<int> child;
    auto parent = asyncio::create_task([](asyncio::Task<int>& child) -> Coro<void> {
      asyncio::TaskGroup group;
      child = group.create_task(value_after(1, 3600));
      co_await group.join();
    }(child));
    co_await asyncio::sleep(0.001);
    parent.cancel();
    EXPECT_THROW(co_await parent, asyncio::CancelledError);
    EXPECT_TRUE(child.cancelled());
  }());
}

TEST(TaskGroup, ChildCancellationIsNotAFailure) {
  run_test([]() -> Coro<void> {
    asyncio::TaskGroup group;
    auto c = group.create_task(value_after(1, 3600));
    auto d = group.create_task(value_after(2, 0.002));
    co_await asyncio::sleep(0);
    c.cancel();
    co_await group.join();  // no ExceptionGroup: a cancelled child is not an error
    EXPECT_EQ(d.result(), 2);
  }());
}

// The ExceptionGroup wins over a cancellation from outside, and (3.13, gh-116720) that
// cancellation stays pending, with its count: the task gets it at its next await.
//     asyncio.current_task().cancel()
//     try: await asyncio.sleep(0)
//     except asyncio.CancelledError: pass          # caught, not uncancelled
//     try:
//         async with asyncio.TaskGroup() as tg: tg.create_task(fail())
//     except* ValueError: pass
//     state = asyncio.current_task().cancelling()  # 1
//     await asyncio.sleep(0)                       # CancelledError
TEST(TaskGroup, AnExceptionGroupLeavesAnOutsideCancellationPending) {
  run_test([]() -> Coro<void> {
    auto parent = asyncio::create_task([]() -> Coro<std::string> {
      asyncio::current_task().cancel();
      try {
        co_await asyncio::sleep(0);
      } catch (const asyncio::CancelledError&) {
      }
      try {
        asyncio::TaskGroup group;
        group.create_task(fail_after(0, "bad"));
        co_await group.join();
      } catch (const asyncio::ExceptionGroup&) {
      }
      const int state = asyncio::current_task().cancelling();
      try {
        co_await asyncio::sleep(0);
        co_return "no cancel, cancelling=" + std::to_string(state);
      } catch (const asyncio::CancelledError&) {
        co_return "CancelledError at the next await, cancelling=" + std::to_string(state);
      }
    }());
    EXPECT_EQ(co_await parent, "CancelledError at the next await, cancelling=1");
  }());
}

// A failure cancels the task waiting in join(), as asyncio's group cancels its parent, so the
// task wakes when asyncio's does (and join() takes that cancel back). Two children fail on the
// same turn: the first one's done callback cancels the parent's wait, which wakes it a turn
// later — before the second's callback could have. Log from CPython 3.13:
//     async def logger(name):
//         log.append(name); await asyncio.sleep(0); log.append(name + " again")
//     async def fail(name):
//         await asyncio.sleep(0); asyncio.create_task(logger(name)); raise ValueError(name)
//     try:
//         async with asyncio.TaskGroup() as tg:
//             tg.create_task(fail("a")); tg.create_task(fail("b"))
//     except* ValueError: log.append("group raised")
//     # ['a', 'b', 'a again', 'group raised', 'b again'], and cancelling() is 0
TEST(TaskGroup, AFailureWakesTheTaskInJoinWhenAsyncioWould) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> log;
    std::vector<asyncio::Task<void>> loggers;
    auto logger = [&](std::string name) -> Coro<void> {
      log.push_back(name);
      co_await asyncio::sleep(0);
      log.push_back(name + " again");
    };
    auto fail = [&](std::string name) -> Coro<void> {
      co_await asyncio::sleep(0);
      loggers.push_back(asyncio::create_task(logger(name)));
      throw std::invalid_argument(name);
    };
    try {
      asyncio::TaskGroup group;
      group.create_task(fail("a"));
      group.create_task(fail("b"));
      co_await group.join();
    } catch (const asyncio::ExceptionGroup&) {
      log.push_back("group raised");
    }
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    const std::vector<std::string> asyncio_log{"a", "b", "a again", "group raised", "b again"};
    EXPECT_EQ(log, asyncio_log);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}
