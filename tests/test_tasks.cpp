// tests/test_tasks.cpp — gilio/asyncio/tasks.hpp and coro.hpp: coroutines, tasks, sleep,
// cancellation as asyncio does it (DESIGN.md invariants 5 and 6).
#include <gtest/gtest.h>

#include <coroutine>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::forever;
using gilio::testing::run_test;

namespace {

Coro<int> answer() {
  co_return 42;
}
Coro<int> add_later(int a, int b) {
  co_await asyncio::sleep(0.001);
  co_return a + b;
}
Coro<int> nested(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await nested(depth - 1);
}
Coro<void> fail_with(std::string what) {
  co_await asyncio::sleep(0);
  throw std::runtime_error(what);
}

// A coroutine type from another library: its own promise, which gilio knows nothing of. It
// starts when awaited and hands control back to its awaiter by symmetric transfer.
class Foreign {
 public:
  struct promise_type {
    std::coroutine_handle<> awaiter;
    int value = 0;
    std::exception_ptr error;
    Foreign get_return_object() { return Foreign(Handle::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct ToAwaiter {
        bool await_ready() noexcept { return false; }
        std::coroutine_handle<> await_suspend(Handle h) noexcept { return h.promise().awaiter; }
        void await_resume() noexcept {}
      };
      return ToAwaiter{};
    }
    void return_value(int v) { value = v; }
    void unhandled_exception() { error = std::current_exception(); }
  };
  using Handle = std::coroutine_handle<promise_type>;
  explicit Foreign(Handle h) : h_(h) {}
  Foreign(Foreign&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  ~Foreign() {
    if (h_) h_.destroy();
  }
  // Runs it from plain code, outside any task, until it first suspends or ends.
  void start() {
    h_.promise().awaiter = std::noop_coroutine();
    h_.resume();
  }
  bool done() const noexcept { return h_.done(); }
  bool await_ready() const noexcept { return h_.done(); }
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
    h_.promise().awaiter = awaiter;
    return h_;
  }
  int await_resume() {
    if (h_.promise().error) std::rethrow_exception(h_.promise().error);
    return h_.promise().value;
  }

 private:
  Handle h_;
};

// Waits in the loop (so its frame is resumed by a later step), then reports whether the task it
// ran in was `expected`.
Coro<int> yield_then_check(asyncio::Task<> expected) {
  co_await asyncio::sleep(0);
  co_await asyncio::sleep(0.001);
  EXPECT_TRUE(asyncio::current_task() == expected);
  co_return 7;
}
Foreign foreign_awaiting(asyncio::Task<> expected) {
  const int a = co_await yield_then_check(expected);
  const int b = co_await answer();
  co_return a * 100 + b;
}
Foreign foreign_summing() {
  const int a = co_await answer();
  co_return a + co_await answer();
}
Foreign foreign_failing() {
  co_await fail_with("from inside a foreign coroutine");
  co_return 0;
}

}  // namespace

TEST(Coro, IsLazyAndReturnsItsValue) {
  bool ran = false;
  auto body = [&]() -> Coro<int> {
    ran = true;
    co_return 7;
  };
  EXPECT_EQ(run_test([&]() -> Coro<int> {
              Coro<int> c = body();
              EXPECT_FALSE(ran);  // calling the coroutine function runs nothing
              co_return co_await c;
            }()),
            7);
  EXPECT_TRUE(ran);
}

TEST(Coro, DeepChainsUseNoStack) {
  EXPECT_EQ(run_test(nested(200000)), 200000);
}

TEST(Coro, AwaitingTwiceIsAnError) {
  run_test([]() -> Coro<void> {
    Coro<int> c = answer();
    EXPECT_EQ(co_await c, 42);
    EXPECT_THROW(co_await c, asyncio::InvalidStateError);
  }());
}

// A coroutine parked inside one task cannot be awaited by another: that would resume a frame
// whose awaitable is parked for the first (Python: "coroutine is being awaited already").
Coro<int> await_it(Coro<int>& c) {
  co_return co_await c;
}
TEST(Coro, AwaitingOneStillRunningIsAnError) {
  run_test([]() -> Coro<void> {
    Coro<int> slow = add_later(20, 22);
    auto first = asyncio::create_task(await_it(slow));
    co_await asyncio::sleep(0);  // `first` is parked inside `slow` now
    try {
      co_await slow;
      ADD_FAILURE() << "a second awaiter ran the coroutine";
    } catch (const asyncio::InvalidStateError& e) {
      EXPECT_STREQ(e.what(), "coroutine is being awaited already");
    }
    EXPECT_EQ(co_await first, 42) << "the first awaiter is undisturbed";
  }());
}

TEST(Coro, ExceptionsPropagateThroughAwait) {
  run_test([]() -> Coro<void> { EXPECT_THROW(co_await fail_with("boom"), std::runtime_error); }());
}

// A Coro awaited by a coroutine of another library is not run by the task's trampoline: it hands
// control back by symmetric transfer, yet still parks and wakes in the task that runs the chain.
TEST(Coro, AwaitedByAForeignCoroutineItStillRunsInTheTask) {
  EXPECT_EQ(run_test([]() -> Coro<int> {
              const asyncio::Task<> me = asyncio::current_task();
              const int v = co_await foreign_awaiting(me);
              EXPECT_THROW(co_await foreign_failing(), std::runtime_error);
              co_await asyncio::sleep(0);  // the task's own frame still runs in its steps
              co_return v;
            }()),
            742);
}

// ...and with no task at all, from a plain callback, a Coro that never waits in the loop runs to
// its end and resumes the foreign coroutine at once.
TEST(Coro, AwaitedByAForeignCoroutineOutsideAnyTaskItRunsAndReturns) {
  run_test([]() -> Coro<void> {
    Foreign f = foreign_summing();
    bool ran = false;
    asyncio::get_running_loop().call_soon([&] {
      f.start();
      ran = true;
    });
    while (!ran)
      co_await asyncio::sleep(0);
    EXPECT_TRUE(f.done());
    EXPECT_EQ(co_await std::move(f), 84);
  }());
}

TEST(Task, RunsConcurrentlyAndGivesItsResult) {
  run_test([]() -> Coro<void> {
    auto a = asyncio::create_task(add_later(1, 2));
    auto b = asyncio::create_task(add_later(3, 4), "named");
    EXPECT_EQ(b.get_name(), "named");
    EXPECT_EQ(a.get_name().rfind("Task-", 0), 0u);
    EXPECT_FALSE(a.done());
    EXPECT_THROW(a.result(), asyncio::InvalidStateError);
    EXPECT_EQ(co_await a, 3);
    EXPECT_EQ(co_await b, 7);
    EXPECT_TRUE(a.done());
    EXPECT_EQ(a.result(), 3);
  }());
}

namespace {
// N in "Task-N".
long task_number(const asyncio::Task<>& t) {
  return std::stol(t.get_name().substr(std::string("Task-").size()));
}
}  // namespace

// Unnamed tasks are "Task-1", "Task-2"... counted across the process, as asyncio's counter is:
// one after another on a thread, and never the same number on two threads (each thread takes
// its numbers from the shared counter a block at a time).
TEST(Task, UnnamedTasksAreNumberedInOrderAndNeverTwice) {
  const auto numbers = [](int n) {
    std::vector<long> out;
    asyncio::run([](int n, std::vector<long>& out) -> Coro<void> {
      for (int i = 0; i < n; ++i) {
        auto t = asyncio::create_task(asyncio::sleep(0));
        out.push_back(task_number(t));
        co_await t;
      }
    }(n, out));
    return out;
  };
  std::vector<long> mine = numbers(3000);
  for (std::size_t i = 1; i < mine.size(); ++i)
    EXPECT_EQ(mine[i], mine[i - 1] + 1);
  std::vector<long> theirs;
  std::thread other([&] { theirs = numbers(3000); });
  std::vector<long> mine_again = numbers(3000);
  other.join();
  std::set<long> all(mine.begin(), mine.end());
  all.insert(theirs.begin(), theirs.end());
  all.insert(mine_again.begin(), mine_again.end());
  EXPECT_EQ(all.size(), 9000u) << "a task number was given twice";
}

TEST(Task, ExceptionIsStoredAndRethrown) {
  run_test([]() -> Coro<void> {
    auto t = asyncio::create_task(fail_with("bad"));
    EXPECT_THROW(co_await t, std::runtime_error);
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.cancelled());
    EXPECT_NE(t.exception(), nullptr);
  }());
}

TEST(Task, CancelThrowsAtTheCurrentAwait) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> log;
    auto t = asyncio::create_task([](std::vector<std::string>& log) -> Coro<void> {
      log.push_back("start");
      try {
        co_await asyncio::sleep(3600);
      } catch (const asyncio::CancelledError&) {
        log.push_back("cancelled at sleep");
        throw;
      }
    }(log));
    co_await asyncio::sleep(0);
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_THROW(co_await t, asyncio::CancelledError);
    EXPECT_TRUE(t.cancelled());
    EXPECT_THROW(t.result(), asyncio::CancelledError);
    EXPECT_FALSE(t.cancel()) << "cancel() of a done task returns false";
    EXPECT_EQ(log, (std::vector<std::string>{"start", "cancelled at sleep"}));
  }());
}

TEST(Task, CancelledBeforeItStartsNeverRunsItsBody) {
  run_test([]() -> Coro<void> {
    bool ran = false;
    auto t = asyncio::create_task([](bool& ran) -> Coro<void> {
      ran = true;
      co_return;
    }(ran));
    t.cancel();
    EXPECT_THROW(co_await t, asyncio::CancelledError);
    EXPECT_FALSE(ran);
  }());
}

TEST(Task, CancelledErrorIsNotAStdException) {
  run_test([]() -> Coro<void> {
    auto t = asyncio::create_task([]() -> Coro<void> {
      try {
        co_await forever();
      } catch (const std::exception&) {
        ADD_FAILURE() << "catch (std::exception&) swallowed a cancellation";
      }
    }());
    co_await asyncio::sleep(0);
    t.cancel();
    EXPECT_THROW(co_await t, asyncio::CancelledError);
  }());
}

TEST(Task, ATaskMaySuppressCancellationAndGoOn) {
  run_test([]() -> Coro<void> {
    auto t = asyncio::create_task([]() -> Coro<int> {
      try {
        co_await asyncio::sleep(3600);
      } catch (const asyncio::CancelledError&) {
        asyncio::current_task().uncancel();
      }
      co_await asyncio::sleep(0.001);  // it really goes on: a new await works
      co_return 5;
    }());
    co_await asyncio::sleep(0);
    t.cancel();
    EXPECT_EQ(co_await t, 5);
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 0);
  }());
}

TEST(Task, CancellingAnAwaiterCancelsTheAwaitedTask) {
  run_test([]() -> Coro<void> {
    auto inner = asyncio::create_task(forever());
    auto outer = asyncio::create_task(
        [](asyncio::Task<void> inner) -> Coro<void> { co_await inner; }(inner));
    co_await asyncio::sleep(0.001);
    outer.cancel();
    EXPECT_THROW(co_await outer, asyncio::CancelledError);
    EXPECT_TRUE(inner.cancelled()) << "asyncio cancels the task being awaited";
  }());
}

TEST(Task, TwoCancelsThrowOnce) {
  run_test([]() -> Coro<void> {
    auto t = asyncio::create_task([]() -> Coro<int> {
      int caught = 0;
      for (int i = 0; i < 2; ++i) {
        try {
          co_await asyncio::sleep(0.01);
        } catch (const asyncio::CancelledError&) {
          ++caught;
        }
      }
      co_return caught;
    }());
    co_await asyncio::sleep(0);
    t.cancel();
    t.cancel();
    EXPECT_EQ(co_await t, 1);
    EXPECT_EQ(t.cancelling(), 2);
  }());
}

TEST(Task, FireAndForgetTaskStillFinishes) {
  run_test([]() -> Coro<void> {
    bool finished = false;
    {
      auto dropped = asyncio::create_task([](bool& finished) -> Coro<void> {
        co_await asyncio::sleep(0.01);
        finished = true;
      }(finished));
    }  // every handle is gone; the loop owns the task
    co_await asyncio::sleep(0.05);
    EXPECT_TRUE(finished);
  }());
}

TEST(Task, AwaitingItselfIsAnError) {
  run_test([]() -> Coro<void> {
    auto self = asyncio::current_task();
    EXPECT_THROW(co_await self, std::runtime_error);
  }());
}

TEST(Task, CurrentTaskAndAllTasks) {
  run_test([]() -> Coro<void> {
    EXPECT_TRUE(asyncio::current_task().valid());
    auto t = asyncio::create_task(forever(), "sleeper");
    bool found = false;
    for (auto& task : asyncio::all_tasks())
      found |= task.get_name() == "sleeper";
    EXPECT_TRUE(found);
    t.cancel();
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(0);
    for (auto& task : asyncio::all_tasks())
      EXPECT_NE(task.get_name(), "sleeper");
  }());
  EXPECT_FALSE(asyncio::current_task().valid());
}

TEST(Task, DoneCallbacksRunThroughTheLoop) {
  run_test([]() -> Coro<void> {
    int calls = 0;
    auto t = asyncio::create_task(answer());
    t.add_done_callback([&](asyncio::Task<int> done) {
      ++calls;
      EXPECT_EQ(done.result(), 42);
    });
    co_await t;
    EXPECT_EQ(calls, 0) << "done callbacks are scheduled with call_soon, not called inline";
    co_await asyncio::sleep(0);
    EXPECT_EQ(calls, 1);
  }());
}

TEST(Sleep, ZeroYieldsToOtherTasks) {
  run_test([]() -> Coro<void> {
    std::vector<int> order;
    auto a = asyncio::create_task([](std::vector<int>& o) -> Coro<void> {
      for (int i = 0; i < 3; ++i) {
        o.push_back(1);
        co_await asyncio::sleep(0);
      }
    }(order));
    auto b = asyncio::create_task([](std::vector<int>& o) -> Coro<void> {
      for (int i = 0; i < 3; ++i) {
        o.push_back(2);
        co_await asyncio::sleep(0);
      }
    }(order));
    co_await a;
    co_await b;
    EXPECT_EQ(order, (std::vector<int>{1, 2, 1, 2, 1, 2}));
  }());
}

TEST(Sleep, SleepsAtLeastItsDelay) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const double t0 = loop.time();
    co_await asyncio::sleep(0.03);
    EXPECT_GE(loop.time() - t0, 0.029);
    co_await asyncio::sleep(std::chrono::milliseconds(10));
    EXPECT_THROW(asyncio::sleep(std::nan("")), std::invalid_argument);
  }());
}

TEST(Future, SetResultWakesTheAwaiter) {
  run_test([]() -> Coro<void> {
    asyncio::Future<int> f;
    asyncio::get_running_loop().call_later(0.001, [f]() mutable { f.set_result(9); });
    EXPECT_EQ(co_await f, 9);
    EXPECT_THROW(f.set_result(1), asyncio::InvalidStateError);
    asyncio::Future<void> g;
    EXPECT_THROW(g.result(), asyncio::InvalidStateError);
    g.set_exception(std::make_exception_ptr(std::logic_error("x")));
    EXPECT_THROW(co_await g, std::logic_error);
    asyncio::Future<int> h;
    EXPECT_TRUE(h.cancel());
    EXPECT_THROW(co_await h, asyncio::CancelledError);
    // loop.create_future(): the same, bound to that loop.
    asyncio::Future<std::string> made = asyncio::get_running_loop().create_future<std::string>();
    asyncio::get_running_loop().call_soon([made]() mutable { made.set_result("made"); });
    EXPECT_EQ(co_await made, "made");
    EXPECT_FALSE(asyncio::get_running_loop().create_future().done());
  }());
}

TEST(Run, ReturnsTheResultAndCancelsLeftovers) {
  bool cleaned_up = false;
  struct Flag {
    bool& f;
    ~Flag() { f = true; }
  };
  const int r = asyncio::run([](bool& cleaned) -> Coro<int> {
    asyncio::create_task([](bool& cleaned) -> Coro<void> {
      Flag flag{cleaned};
      co_await asyncio::sleep(3600);
    }(cleaned));
    co_await asyncio::sleep(0);
    co_return 3;
  }(cleaned_up));
  EXPECT_EQ(r, 3);
  EXPECT_TRUE(cleaned_up) << "run() must cancel and finish the task left behind";
}

TEST(Run, RethrowsTheException) {
  EXPECT_THROW(asyncio::run(fail_with("main failed")), std::runtime_error);
}

TEST(Run, CannotNest) {
  run_test([]() -> Coro<void> {
    EXPECT_THROW(asyncio::run(answer()), std::runtime_error);
    co_return;
  }());
}

TEST(Errors, AwaitOutsideATaskAndNoLoop) {
  EXPECT_THROW(asyncio::get_running_loop(), std::runtime_error);
  EXPECT_THROW(asyncio::create_task(answer()), std::runtime_error);
}

// ---- the eager task factory (asyncio 3.12) ----

void use_eager_tasks() {
  asyncio::get_running_loop().set_task_factory(asyncio::eager_task_factory);
}

Coro<int> record_steps(std::vector<std::string>& log, std::string name, int value) {
  log.push_back(name + " first step, current task " + asyncio::current_task().get_name());
  co_await asyncio::sleep(0);
  log.push_back(name + " second step");
  co_return value;
}

// The order of a new task's two steps and its creator's next line, under either factory.
Coro<std::vector<std::string>> start_order(bool eager) {
  asyncio::current_task().set_name("main");
  if (eager) use_eager_tasks();
  EXPECT_EQ(asyncio::get_running_loop().get_task_factory() != nullptr, eager);
  std::vector<std::string> log;
  auto t = asyncio::create_task(record_steps(log, "child", 7), "child");
  log.push_back("after create_task, current task " + asyncio::current_task().get_name());
  EXPECT_FALSE(t.done());
  EXPECT_EQ(co_await t, 7);
  co_return log;
}

TEST(EagerTasks, FirstStepRunsInsideCreateTask) {
  const std::vector<std::string> want = {"child first step, current task child",
                                         "after create_task, current task main",
                                         "child second step"};
  EXPECT_EQ(run_test(start_order(true)), want);
}

TEST(EagerTasks, DefaultFactoryStartsOnTheNextIteration) {
  const std::vector<std::string> want = {"after create_task, current task main",
                                         "child first step, current task child",
                                         "child second step"};
  EXPECT_EQ(run_test(start_order(false)), want);
}

TEST(EagerTasks, TaskThatNeverSuspendsIsDoneAtOnceAndNeverListed) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    EXPECT_EQ(asyncio::get_running_loop().get_task_factory(), &asyncio::eager_task_factory);
    const std::size_t before = asyncio::all_tasks().size();
    auto t = asyncio::create_task(answer());
    EXPECT_TRUE(t.done());
    EXPECT_EQ(t.result(), 42);
    EXPECT_EQ(asyncio::all_tasks().size(), before);
    EXPECT_EQ(co_await t, 42);
    // One that suspends is listed until it ends.
    auto pending = asyncio::create_task(add_later(1, 2));
    EXPECT_EQ(asyncio::all_tasks().size(), before + 1);
    EXPECT_EQ(co_await pending, 3);
    EXPECT_EQ(asyncio::all_tasks().size(), before);
  }());
}

Coro<int> fail_at_once(std::string what) {
  throw std::runtime_error(what);
  co_return 0;
}

TEST(EagerTasks, ExceptionInTheFirstStepEndsTheTaskNotTheCreator) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    auto t = asyncio::create_task(fail_at_once("eager failure"));
    EXPECT_TRUE(t.done());
    EXPECT_FALSE(t.cancelled());
    co_await gilio::testing::expect_await_throws<std::runtime_error>(t, "no exception",
                                                                     "eager failure");
  }());
}

TEST(EagerTasks, CancellingATaskSuspendedInItsFirstStep) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    auto t = asyncio::create_task(forever());
    EXPECT_FALSE(t.done());
    EXPECT_TRUE(t.cancel());
    co_await gilio::testing::expect_await_throws<asyncio::CancelledError>(t, "not cancelled");
    EXPECT_TRUE(t.cancelled());
  }());
}

Coro<void> cancel_task(asyncio::Task<> victim) {
  victim.cancel();
  co_return;
}

TEST(EagerTasks, ChildCancellingItsCreatorReachesTheCreatorsNextAwait) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    bool reached = false;
    try {
      auto t = asyncio::create_task(cancel_task(asyncio::current_task()));
      EXPECT_TRUE(t.done());
      reached = true;  // the cancel() found the creator running: it lands at the next co_await
      co_await asyncio::sleep(0);
      ADD_FAILURE() << "the creator was not cancelled";
    } catch (const asyncio::CancelledError&) {
    }
    EXPECT_TRUE(reached);
    EXPECT_EQ(asyncio::current_task().uncancel(), 0);
  }());
}

Coro<std::string> nest_eagerly(int depth) {
  const std::string me = asyncio::current_task().get_name();
  if (depth == 0) co_return me;
  auto child = asyncio::create_task(nest_eagerly(depth - 1), "depth " + std::to_string(depth - 1));
  // The child's first step ran, and this task is current again.
  EXPECT_EQ(asyncio::current_task().get_name(), me);
  co_await asyncio::sleep(0);
  co_return me + " > " + co_await child;
}

TEST(EagerTasks, NestedEagerStepsRestoreTheCurrentTask) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    auto t = asyncio::create_task(nest_eagerly(3), "depth 3");
    EXPECT_EQ(co_await t, "depth 3 > depth 2 > depth 1 > depth 0");
  }());
}

TEST(EagerTasks, LoopNotRunningStartsTheTaskLazily) {
  asyncio::EventLoop loop;
  loop.set_task_factory(asyncio::eager_task_factory);
  std::vector<std::string> log;
  auto t = loop.create_task(record_steps(log, "child", 5), "child");
  EXPECT_TRUE(log.empty()) << "as asyncio: an eager task made before the loop runs waits for it";
  EXPECT_EQ(loop.run_until_complete(t), 5);
  EXPECT_EQ(log.size(), 2u);
  loop.set_task_factory(nullptr);
  EXPECT_EQ(loop.get_task_factory(), nullptr);
  loop.close();
}

TEST(EagerTasks, GatherOfEagerTasksKeepsArgumentOrder) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    std::vector<asyncio::Task<int>> tasks;
    for (int i = 0; i < 1000; ++i)
      tasks.push_back(asyncio::create_task(i % 2 == 0 ? add_later(i, 0) : nested(i % 7)));
    std::vector<int> got = co_await asyncio::gather(std::move(tasks));
    EXPECT_EQ(got.size(), 1000u);
    for (int i = 0; i < 1000 && i < static_cast<int>(got.size()); ++i)
      EXPECT_EQ(got[i], i % 2 == 0 ? i : i % 7) << i;
    auto [a, b] = co_await asyncio::gather(answer(), add_later(2, 3));
    EXPECT_EQ(a, 42);
    EXPECT_EQ(b, 5);
  }());
}

TEST(EagerTasks, TaskGroupCountsAChildThatFailedInsideCreateTask) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    asyncio::TaskGroup group;
    auto sleeper = group.create_task(forever());
    auto failed = group.create_task(fail_at_once("eager child failed"));
    EXPECT_TRUE(failed.done());
    // The failure aborted the group at once, as asyncio 3.12's TaskGroup does.
    EXPECT_THROW(group.create_task(answer()), std::runtime_error);
    bool grouped = false;
    try {
      co_await group.join();
    } catch (const asyncio::ExceptionGroup& e) {
      grouped = e.exceptions().size() == 1;
    }
    EXPECT_TRUE(grouped);
    EXPECT_TRUE(sleeper.cancelled());
  }());
}

Coro<int> trivial(int i) {
  co_return i;
}

TEST(EagerTasks, HundredThousandTasksThatNeverSuspend) {
  run_test([]() -> Coro<void> {
    use_eager_tasks();
    std::vector<asyncio::Task<int>> tasks;
    tasks.reserve(100'000);
    for (int i = 0; i < 100'000; ++i)
      tasks.push_back(asyncio::create_task(trivial(i)));
    std::vector<int> got = co_await asyncio::gather(std::move(tasks));
    long long sum = 0;
    for (int v : got)
      sum += v;
    EXPECT_EQ(sum, 100'000LL * 99'999 / 2);
  }());
}

// As asyncio: a future or task of another loop cannot be awaited (its completion would wake this
// task from that loop's thread).
TEST(Errors, AwaitingAFutureOfAnotherLoopIsAClearError) {
  asyncio::EventLoop other;
  asyncio::Future<int> foreign(other);
  run_test([](asyncio::Future<int> f) -> Coro<void> {
    asyncio::current_task().set_name("main");
    try {
      co_await f;
      ADD_FAILURE() << "awaited a future of another loop";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Task main got Future attached to a different loop");
    }
  }(foreign));
  other.close();
}

TEST(Task, ACancelPendingWhenTheTaskWaitsInterruptsThatWaitAtOnce) {
  // asyncio's Task.__step: a task with _must_cancel that yields a future cancels it at once. A
  // task that cancels itself while it runs, then sleeps for an hour, ends within the next loop
  // iterations, not in an hour.
  run_test([]() -> Coro<void> {
    auto t = asyncio::create_task([]() -> Coro<int> {
      asyncio::current_task().cancel();  // pending: the task is running
      co_await asyncio::sleep(3600);
      co_return 1;
    }());
    for (int i = 0; i < 3 && !t.done(); ++i)
      co_await asyncio::sleep(0);
    EXPECT_TRUE(t.done()) << "a pending cancel was not delivered at the next wait";
    EXPECT_TRUE(t.cancelled());
    t.cancel();  // (should it still sleep)
  }());
}

// The turns of the loop, as asyncio takes them (tests/task_diff.py compares whole scripts; these
// pin one rule each). Each mirrors the Python program in its comment, run on CPython 3.13.

// A cancel() that arrives after the last await — here the task's own — ends the task cancelled,
// not with its value ("Task is cancelled right before coro stops" in Task.__step):
//     async def body():
//         asyncio.current_task().cancel()
//         return 5
//     t = asyncio.create_task(body())   # awaited: CancelledError; t.cancelled() is True
TEST(Task, ACancelArrivingAfterTheLastAwaitEndsTheTaskCancelled) {
  run_test([]() -> Coro<void> {
    auto t = asyncio::create_task([]() -> Coro<int> {
      asyncio::current_task().cancel();
      co_return 5;
    }());
    bool cancelled = false;
    try {
      co_await t;
    } catch (const asyncio::CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    EXPECT_TRUE(t.cancelled());
  }());
}

// A cancel() pending when the task awaits another task is passed on to that task and spent: if
// that task refuses it, the awaiting task gets what it returns (asyncio clears _must_cancel
// once the future it waits on accepted the cancel). cancelling() still counts the request.
//     async def child():
//         try: await asyncio.sleep(3600)
//         except asyncio.CancelledError: return "refused"
//     async def parent():
//         c = asyncio.create_task(child()); await asyncio.sleep(0)
//         asyncio.current_task().cancel()
//         return await c, asyncio.current_task().cancelling()   # ('refused', 1)
TEST(Task, APendingCancelGoesToTheAwaitedTaskWhichMayRefuseIt) {
  run_test([]() -> Coro<void> {
    auto parent = asyncio::create_task([]() -> Coro<std::string> {
      auto c = asyncio::create_task([]() -> Coro<std::string> {
        try {
          co_await asyncio::sleep(3600);
        } catch (const asyncio::CancelledError&) {
          co_return "refused";
        }
        co_return "slept";
      }());
      co_await asyncio::sleep(0);
      asyncio::current_task().cancel();
      const std::string got = co_await c;
      co_return got + " " + std::to_string(asyncio::current_task().cancelling());
    }());
    EXPECT_EQ(co_await parent, "refused 1");
  }());
}

// A sleep with a delay is a timer: it fires after the handles that were ready, and the task it
// wakes runs an iteration later (asyncio's timer handle sets a future, whose callback wakes the
// task). Log from CPython 3.13:
//     tk = asyncio.create_task(ticker(log, 6)); await asyncio.sleep(0)
//     await asyncio.sleep(1e-9); log.append("slept")
//     # ['tick 0', 'tick 1', 'tick 2', 'slept', 'tick 3', 'tick 4', 'tick 5']
TEST(Sleep, ATimerWakesItsTaskTheIterationAfterItFires) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> log;
    auto tk = asyncio::create_task(gilio::testing::ticker(log, 6));
    co_await asyncio::sleep(0);
    co_await asyncio::sleep(1e-9);
    log.push_back("slept");
    co_await tk;
    const std::vector<std::string> asyncio_log{"tick 0", "tick 1", "tick 2", "slept",
                                               "tick 3", "tick 4", "tick 5"};
    EXPECT_EQ(log, asyncio_log);
  }());
}
