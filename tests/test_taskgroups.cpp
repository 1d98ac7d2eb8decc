// tests/test_taskgroups.cpp — gilio/asyncio/taskgroups.hpp, after
// Lib/test/test_asyncio/test_taskgroups.py.
#include <gtest/gtest.h>

#include <string>

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
