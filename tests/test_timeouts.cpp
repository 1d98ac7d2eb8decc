// tests/test_timeouts.cpp — gilio/asyncio/timeouts.hpp: wait_for, timeout, timeout_at, after
// Lib/test/test_asyncio/test_waitfor.py and test_timeouts.py.
#include <gtest/gtest.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::fail_after;
using gilio::testing::forever;
using gilio::testing::run_test;
using gilio::testing::value_after;

TEST(WaitFor, ReturnsTheResultInTime) {
  run_test(
      []() -> Coro<void> { EXPECT_EQ(co_await asyncio::wait_for(value_after(4, 0.001), 5), 4); }());
}

TEST(WaitFor, TimeoutCancelsAndWaitsForTheInnerTask) {
  run_test([]() -> Coro<void> {
    bool cleanup_finished = false;
    auto inner = asyncio::create_task([](bool& done) -> Coro<int> {
      bool cancelled = false;
      try {
        co_await asyncio::sleep(3600);
      } catch (const asyncio::CancelledError&) {
        cancelled = true;  // (C++ allows no co_await inside a handler)
      }
      if (cancelled) {
        co_await asyncio::sleep(0.01);  // slow clean-up after the cancellation
        done = true;
        throw asyncio::CancelledError();
      }
      co_return 0;
    }(cleanup_finished));
    const double t0 = asyncio::get_running_loop().time();
    EXPECT_THROW(co_await asyncio::wait_for(inner, 0.01), asyncio::TimeoutError);
    EXPECT_TRUE(cleanup_finished) << "wait_for must wait for the cancelled task to finish";
    EXPECT_TRUE(inner.cancelled());
    EXPECT_GE(asyncio::get_running_loop().time() - t0, 0.019);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

TEST(WaitFor, ZeroTimeoutNeverStartsACoroutine) {
  run_test([]() -> Coro<void> {
    bool ran = false;
    auto body = [](bool& ran) -> Coro<int> {
      ran = true;
      co_return 1;
    };
    EXPECT_THROW(co_await asyncio::wait_for(body(ran), 0), asyncio::TimeoutError);
    EXPECT_FALSE(ran);
  }());
}

// With a timeout <= 0, what is already done gives what it ended with — as asyncio's wait_for
// returns fut.result() — and a pending future is cancelled itself, not a wrapper around it.
TEST(WaitFor, ZeroTimeoutGivesWhatIsDoneAndCancelsAPendingFuture) {
  run_test([]() -> Coro<void> {
    asyncio::Future<int> done;
    done.set_result(9);
    EXPECT_EQ(co_await asyncio::wait_for(done, 0), 9);
    asyncio::Future<int> failed;
    failed.set_exception(std::make_exception_ptr(std::runtime_error("boom")));
    EXPECT_THROW(co_await asyncio::wait_for(failed, -1), std::runtime_error);
    asyncio::Future<int> pending;
    EXPECT_THROW(co_await asyncio::wait_for(pending, 0), asyncio::TimeoutError);
    EXPECT_TRUE(pending.cancelled());

    auto finished = asyncio::create_task(value_after(5, 0));
    co_await finished;
    EXPECT_EQ(co_await asyncio::wait_for(finished, 0), 5);
    auto cancelled = asyncio::create_task(value_after(6, 3600));
    co_await asyncio::sleep(0);
    cancelled.cancel();
    EXPECT_THROW(co_await cancelled, asyncio::CancelledError);
    // Done before the wait: its own CancelledError, not a timeout (fut.result() in asyncio).
    EXPECT_THROW(co_await asyncio::wait_for(cancelled, 0), asyncio::CancelledError);
  }());
}

TEST(WaitFor, AnOuterCancellationStaysACancellation) {
  run_test([]() -> Coro<void> {
    auto t = asyncio::create_task(
        []() -> Coro<int> { co_return co_await asyncio::wait_for(value_after(1, 3600), 10); }());
    co_await asyncio::sleep(0.001);
    t.cancel();
    EXPECT_THROW(co_await t, asyncio::CancelledError);
    EXPECT_TRUE(t.cancelled());
  }());
}

TEST(Timeout, ExpiryBecomesTimeoutError) {
  run_test([]() -> Coro<void> {
    EXPECT_THROW(co_await asyncio::timeout(0.005, asyncio::sleep(3600)), asyncio::TimeoutError);
    EXPECT_EQ(co_await asyncio::timeout(1.0, value_after(2, 0.001)), 2);
    EXPECT_EQ(co_await asyncio::timeout(std::numeric_limits<double>::infinity(), value_after(3, 0)),
              3);
    const double when = asyncio::get_running_loop().time() + 0.005;
    EXPECT_THROW(co_await asyncio::timeout_at(when, asyncio::sleep(3600)), asyncio::TimeoutError);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

TEST(Timeout, NestedTimeoutsEachConvertTheirOwn) {
  run_test([]() -> Coro<void> {
    // The inner deadline expires first: the inner scope raises TimeoutError, which the outer
    // scope lets through untouched.
    bool inner_timed_out = false;
    auto inner = [](bool& flag) -> Coro<void> {
      try {
        co_await asyncio::timeout(0.005, asyncio::sleep(3600));
      } catch (const asyncio::TimeoutError&) {
        flag = true;
      }
      co_await asyncio::sleep(0.001);
    };
    co_await asyncio::timeout(1.0, inner(inner_timed_out));
    EXPECT_TRUE(inner_timed_out);
    // The outer deadline expires first: only the outer one converts.
    bool inner_saw_cancel = false;
    auto inner2 = [](bool& flag) -> Coro<void> {
      try {
        co_await asyncio::timeout(10.0, asyncio::sleep(3600));
      } catch (const asyncio::CancelledError&) {
        flag = true;
        throw;
      }
    };
    EXPECT_THROW(co_await asyncio::timeout(0.005, inner2(inner_saw_cancel)), asyncio::TimeoutError);
    EXPECT_TRUE(inner_saw_cancel)
        << "the inner scope must not turn the outer's cancel into a timeout";
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

TEST(Timeout, BodyThatSwallowsTheCancellationReturnsNormally) {
  run_test([]() -> Coro<void> {
    auto body = []() -> Coro<int> {
      try {
        co_await asyncio::sleep(3600);
      } catch (const asyncio::CancelledError&) {
      }
      co_return 8;
    };
    EXPECT_EQ(co_await asyncio::timeout(0.005, body()), 8);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

// The delay counts from the await, as asyncio's timeout(delay) reads the clock on entering the
// `async with` and wait_for's coroutine when it runs — not from the call that made the object.
TEST(Timeout, TheDelayStartsWhenAwaited) {
  run_test([]() -> Coro<void> {
    auto scoped = asyncio::timeout(0.5, value_after(1, 0.01));
    auto waited = asyncio::wait_for(value_after(2, 0.01), 0.5);
    co_await asyncio::sleep(0.6);  // both deadlines would have passed, counted from the calls
    EXPECT_EQ(co_await std::move(scoped), 1);
    EXPECT_EQ(co_await std::move(waited), 2);
  }());
}

TEST(Timeout, NaNIsRejected) {
  run_test([]() -> Coro<void> {
    EXPECT_THROW((void)asyncio::timeout(std::nan(""), value_after(1, 0)), std::invalid_argument);
    co_return;
  }());
}

TEST(Timeout, ExtremeDeadlinesAreClampedNotUndefined) {
  run_test([]() -> Coro<void> {
    // A deadline long past expires at once; one absurdly far away simply never comes.
    EXPECT_THROW(co_await asyncio::timeout(-1e300, asyncio::sleep(3600)), asyncio::TimeoutError);
    EXPECT_THROW(co_await asyncio::timeout_at(-1.0, asyncio::sleep(3600)), asyncio::TimeoutError);
    EXPECT_EQ(co_await asyncio::timeout(1e300, value_after(5, 0.001)), 5);
    std::vector<asyncio::Task<int>> tasks{asyncio::create_task(value_after(1, 0.001))};
    EXPECT_THROW((void)asyncio::wait(tasks, asyncio::ReturnWhen::ALL_COMPLETED, std::nan("")),
                 std::invalid_argument);
    co_await tasks[0];
  }());
}

// ---- the Timeout object (asyncio.Timeout: when, reschedule, expired) ----

TEST(TimeoutObject, ReschedulingLaterLetsTheBodyRunPastTheFirstDeadline) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const double before = loop.time();
    const int got = co_await asyncio::timeout(0.05, [&](asyncio::Timeout cm) -> Coro<int> {
      const double after = loop.time();
      EXPECT_TRUE(cm.when().has_value());
      EXPECT_GE(*cm.when(), before + 0.05 - 1e-6);
      EXPECT_LE(*cm.when(), after + 0.05 + 1e-6);
      cm.reschedule(loop.time() + 10);
      co_await asyncio::sleep(0.1);  // past the first deadline: it must not fire
      EXPECT_FALSE(cm.expired());
      co_return 5;
    });
    EXPECT_EQ(got, 5);
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

TEST(TimeoutObject, NoDeadlineUntilOneIsSet) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    std::optional<asyncio::Timeout> saved;
    const double none = std::numeric_limits<double>::infinity();
    try {
      co_await asyncio::timeout(none, [&](asyncio::Timeout cm) -> Coro<void> {
        saved = cm;
        EXPECT_FALSE(cm.when().has_value());
        cm.reschedule(loop.time() + 0.01);
        EXPECT_TRUE(cm.when().has_value());
        co_await forever();
      });
      ADD_FAILURE() << "no TimeoutError";
    } catch (const asyncio::TimeoutError&) {
    }
    EXPECT_TRUE(saved && saved->expired());
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

TEST(TimeoutObject, ReschedulingToNoneAndThenToThePast) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    std::optional<asyncio::Timeout> saved;
    bool timed_out = false;
    try {
      co_await asyncio::timeout_at(loop.time() + 0.05, [&](asyncio::Timeout cm) -> Coro<void> {
        saved = cm;
        cm.reschedule(std::nullopt);
        EXPECT_FALSE(cm.when().has_value());
        co_await asyncio::sleep(0.1);  // past the first deadline, which is gone
        EXPECT_FALSE(cm.expired());
        cm.reschedule(loop.time() - 1);  // already past: expires on the next iteration
        EXPECT_FALSE(cm.expired());
        co_await forever();
      });
    } catch (const asyncio::TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_TRUE(saved && saved->expired());
    EXPECT_EQ(asyncio::current_task().cancelling(), 0);
  }());
}

TEST(TimeoutObject, ExpiredTellsABodyThatSwallowedTheCancellation) {
  run_test([]() -> Coro<void> {
    std::optional<asyncio::Timeout> saved;
    const int got = co_await asyncio::timeout(0.005, [&](asyncio::Timeout cm) -> Coro<int> {
      saved = cm;
      try {
        co_await forever();
      } catch (const asyncio::CancelledError&) {
      }
      co_return 9;
    });
    EXPECT_EQ(got, 9);
    EXPECT_TRUE(saved && saved->expired()) << "only expired() tells that the time ran out";
    try {
      saved->reschedule(1.0);
      ADD_FAILURE() << "rescheduled an expired timeout";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Cannot change state of expired Timeout");
    }
  }());
}

TEST(TimeoutObject, ALeftScopeCannotBeRescheduled) {
  run_test([]() -> Coro<void> {
    std::optional<asyncio::Timeout> saved;
    co_await asyncio::timeout(10, [&](asyncio::Timeout cm) -> Coro<void> {
      saved = cm;
      co_await asyncio::sleep(0);
    });
    EXPECT_FALSE(saved->expired());
    try {
      saved->reschedule(1.0);
      ADD_FAILURE() << "rescheduled a timeout that was left";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Cannot change state of exited Timeout");
    }
    // The awaitable forms are unchanged beside the body forms.
    EXPECT_EQ(co_await asyncio::timeout(1.0, value_after(4, 0)), 4);
  }());
}

// The turns of the loop, as asyncio takes them (tests/task_diff.py compares whole scripts; these
// pin one rule each). Logs from CPython 3.13 running the Python in the comments.

// A deadline already past expires through call_soon, as asyncio's Timeout.reschedule has it:
// in the ready queue behind what was there and ahead of what comes after (here `other`, made
// inside the block), where a timer would fire after it.
//     async def other():
//         log.append("other runs"); await asyncio.sleep(0); log.append("other again")
//     async def body():
//         asyncio.create_task(other()); await asyncio.sleep(3600)
//     tk = asyncio.create_task(ticker(log, 4)); await asyncio.sleep(0)
//     try:
//         async with asyncio.timeout(0): await body()
//     except TimeoutError: log.append("timed out")
//     # ['tick 0', 'tick 1', 'other runs', 'tick 2', 'timed out', 'other again', 'tick 3']
TEST(Timeout, APastDeadlineExpiresThroughCallSoon) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> log;
    std::vector<asyncio::Task<void>> others;
    auto other = [&]() -> Coro<void> {
      log.push_back("other runs");
      co_await asyncio::sleep(0);
      log.push_back("other again");
    };
    auto body = [&]() -> Coro<void> {
      others.push_back(asyncio::create_task(other()));
      co_await forever();
    };
    auto tk = asyncio::create_task(gilio::testing::ticker(log, 4));
    co_await asyncio::sleep(0);
    try {
      co_await asyncio::timeout(0, body());
    } catch (const asyncio::TimeoutError&) {
      log.push_back("timed out");
    }
    co_await tk;
    const std::vector<std::string> asyncio_log{"tick 0",    "tick 1",      "other runs", "tick 2",
                                               "timed out", "other again", "tick 3"};
    EXPECT_EQ(log, asyncio_log);
  }());
}

// wait_for(task, 0) cancels the task and waits for it to end; a cancellation of the caller's
// own, meanwhile, is the caller's and propagates — also when the task has ended by then.
//     async def parent():
//         asyncio.current_task().cancel()
//         try: await asyncio.wait_for(asyncio.create_task(child()), 0)
//         except TimeoutError: return "TimeoutError"
//         except asyncio.CancelledError: return "CancelledError"     # this one
TEST(WaitFor, AZeroTimeoutLetsTheCallersOwnCancellationThrough) {
  run_test([]() -> Coro<void> {
    auto parent = asyncio::create_task([]() -> Coro<std::string> {
      asyncio::current_task().cancel();
      try {
        co_await asyncio::wait_for(asyncio::create_task(forever()), 0);
        co_return "returned";
      } catch (const asyncio::TimeoutError&) {
        co_return "TimeoutError";
      } catch (const asyncio::CancelledError&) {
        co_return "CancelledError";
      }
    }());
    EXPECT_EQ(co_await parent, "CancelledError");
  }());
}
