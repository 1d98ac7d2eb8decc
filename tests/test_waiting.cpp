// tests/test_waiting.cpp — gilio/asyncio/waiting.hpp: gather, wait, as_completed, shield, with
// the cases asyncio's own tests pin (Lib/test/test_asyncio/test_tasks.py).
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::expect_await_throws;
using gilio::testing::fail_after;
using gilio::testing::forever;
using gilio::testing::run_test;
using gilio::testing::value_after;

TEST(Gather, ResultsInArgumentOrder) {
  run_test([]() -> Coro<void> {
    auto [a, b, c] = co_await asyncio::gather(value_after(1, 0.02), value_after(2, 0.001),
                                              asyncio::sleep(0.005));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, 2);
    static_assert(std::is_same_v<decltype(c), std::monostate>);
  }());
}

TEST(Gather, VectorOfTasks) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks;
    for (int i = 0; i < 10; ++i)
      tasks.push_back(asyncio::create_task(value_after(i, 0.001 * (10 - i))));
    auto results = co_await asyncio::gather(tasks);
    for (int i = 0; i < 10; ++i)
      EXPECT_EQ(results[i], i);
    auto none = co_await asyncio::gather(std::vector<asyncio::Task<int>>{});
    EXPECT_TRUE(none.empty());
  }());
}

// gather and wait read their children straight from the vector of handles (waiting.hpp), so an
// empty handle among them is refused when the gather or the wait is made, by name.
TEST(Gather, AnEmptyTaskHandleIsAClearError) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks;
    tasks.push_back(asyncio::create_task(value_after(1, 0)));
    tasks.emplace_back();
    for (const char* what : {"gather", "wait"}) {
      try {
        if (std::string(what) == "gather") {
          (void)asyncio::gather(tasks);
        } else {
          (void)asyncio::wait(tasks);
        }
        ADD_FAILURE() << what << " took an empty Task handle";
      } catch (const asyncio::InvalidStateError& e) {
        EXPECT_NE(std::string(e.what()).find("empty Task handle"), std::string::npos) << what;
      }
    }
    EXPECT_EQ(co_await tasks[0], 1);
  }());
}

namespace {
Coro<int> value_when(asyncio::Event& go, int v) {
  co_await go.wait();
  co_return v;
}
Coro<int> fail_when(asyncio::Event& go, std::string what) {
  co_await go.wait();
  throw std::runtime_error(what);
}
// Four tasks, each giving 10 + i once go[i] is set; the events cleared first.
std::vector<asyncio::Task<int>> values_when(std::deque<asyncio::Event>& go) {
  for (auto& e : go)
    e.clear();
  std::vector<asyncio::Task<int>> tasks;
  for (int i = 0; i < 4; ++i)
    tasks.push_back(asyncio::create_task(value_when(go[i], 10 + i)));
  return tasks;
}
}  // namespace

// A gather over a vector takes each child's result, and lets the child go, as soon as it and
// every child before it have ended (waiting.hpp). Whatever order they end in, the results keep
// the order of the vector; and a failure, a cancellation or return_exceptions arriving after
// some children were let go must never touch those again (ASan would see it).
TEST(Gather, AVectorTakesResultsAsChildrenEndAndKeepsTheirOrder) {
  run_test([]() -> Coro<void> {
    std::deque<asyncio::Event> go(5);

    // Out of order: 1, 0 (both taken then), 3 (waits for 2), 2.
    auto tasks = values_when(go);
    auto kept = tasks[0];  // a handle held elsewhere outlives the gather's
    auto g = asyncio::create_task(asyncio::gather(std::move(tasks)));
    co_await asyncio::sleep(0);  // every child waits for its event, the gather for them
    for (int i : {1, 0, 3, 2}) {
      go[i].set();
      co_await asyncio::sleep(0);  // the child ends...
      co_await asyncio::sleep(0);  // ...the gather hears of it (asyncio's done callback)...
      co_await asyncio::sleep(0);  // ...and, if that was the last, the gather's task ends
      EXPECT_EQ(g.done(), i == 2);
    }
    // Named first: g++ 12 cannot compile a braced list inside a co_await expression.
    const std::vector<int> in_order{10, 11, 12, 13};
    EXPECT_EQ(co_await g, in_order);
    EXPECT_EQ(kept.result(), 10);

    // A failure after two were taken: the gather raises it, the rest keep running.
    tasks = values_when(go);
    auto failing = asyncio::create_task(fail_when(go[4], "third"));
    auto rest = tasks[3];
    tasks.insert(tasks.begin() + 2, failing);
    g = asyncio::create_task(asyncio::gather(std::move(tasks)));
    co_await asyncio::sleep(0);
    go[0].set();
    go[1].set();
    co_await asyncio::sleep(0);
    go[4].set();
    co_await expect_await_throws<std::runtime_error>(g, "the failure was lost", "third");
    EXPECT_FALSE(rest.done());
    go[3].set();
    EXPECT_EQ(co_await rest, 13);

    // Cancelled after two were taken: only the children still pending are cancelled.
    tasks = values_when(go);
    auto third = tasks[2];
    g = asyncio::create_task(asyncio::gather(std::move(tasks)));
    co_await asyncio::sleep(0);
    go[0].set();
    go[1].set();
    co_await asyncio::sleep(0);
    g.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(g, "the gather was not cancelled");
    EXPECT_TRUE(third.cancelled());

    // return_exceptions: a failure taken in its place, between values.
    tasks = values_when(go);
    tasks.insert(tasks.begin() + 1, asyncio::create_task(fail_when(go[4], "second")));
    auto outcomes =
        asyncio::create_task(asyncio::gather(asyncio::return_exceptions, std::move(tasks)));
    co_await asyncio::sleep(0);
    for (int i : {0, 4, 1, 3, 2}) {
      go[i].set();
      co_await asyncio::sleep(0);
    }
    auto out = co_await outcomes;
    EXPECT_EQ(out.size(), 5u);
    if (out.size() != 5) co_return;
    EXPECT_EQ(out[0].value(), 10);
    EXPECT_TRUE(out[1].has_error());
    EXPECT_EQ(out[2].value(), 11);
    EXPECT_EQ(out[4].value(), 13);
  }());
}

namespace {
// A result that counts its copies.
struct Counted {
  static inline int copies = 0;
  int v = 0;
  explicit Counted(int x) : v(x) {}
  Counted(const Counted& o) : v(o.v) { ++copies; }
  Counted(Counted&&) noexcept = default;
  Counted& operator=(const Counted& o) {
    v = o.v;
    ++copies;
    return *this;
  }
  Counted& operator=(Counted&&) noexcept = default;
};
Coro<Counted> counted(int v) {
  co_return Counted(v);
}
Coro<Counted> counted_after(int v, double delay) {
  co_await asyncio::sleep(delay);
  co_return Counted(v);
}
}  // namespace

// co_await gather(coros...) is the only one to see its children's results, so it moves them
// out; so does a gather over a vector, which takes each result as its child ends, inside that
// child's last step. A gather awaited by name may be awaited again, and a task the caller also
// holds may be asked again, so their results are copied (both as asyncio, which hands out the
// same objects).
TEST(Gather, ResultsNobodyElseCanSeeAreMovedNotCopied) {
  run_test([]() -> Coro<void> {
    Counted::copies = 0;
    auto [a, b] = co_await asyncio::gather(counted(1), counted(2));
    EXPECT_EQ(a.v + b.v, 3);
    EXPECT_EQ(Counted::copies, 0);

    auto named = asyncio::gather(counted(3), counted(4));
    auto first = co_await named;
    auto again = co_await named;
    EXPECT_EQ(std::get<1>(first).v, 4);
    EXPECT_EQ(std::get<1>(again).v, 4);
    EXPECT_EQ(Counted::copies, 4);
    auto kept = asyncio::create_task(counted(5));
    auto [c, d] = co_await asyncio::gather(kept, counted(6));
    EXPECT_EQ(c.v + d.v, 11);
    EXPECT_EQ(Counted::copies, 5);  // `kept` may still be asked
    EXPECT_EQ(kept.result().v, 5);
    Counted::copies = 0;

    // A vector: taken as each child ends (in its last step, or after it for one that ended
    // before its turn), and moved unless a handle to it is kept elsewhere.
    std::vector<asyncio::Task<Counted>> tasks;
    for (int i = 0; i < 50; ++i)
      tasks.push_back(asyncio::create_task(counted(i)));
    auto kept_too = tasks[7];
    std::vector<Counted> all = co_await asyncio::gather(std::move(tasks));
    int sum = 0;
    for (const Counted& x : all)
      sum += x.v;
    EXPECT_EQ(sum, 49 * 50 / 2);
    EXPECT_EQ(Counted::copies, 1) << "only the result of the task also held by kept_too";
    EXPECT_EQ(kept_too.result().v, 7);

    // Ending in reverse order: most are taken after they ended, once those before them have.
    Counted::copies = 0;
    std::vector<asyncio::Task<Counted>> reversed;
    for (int i = 0; i < 5; ++i)
      reversed.push_back(asyncio::create_task(counted_after(i, 0.002 * (5 - i))));
    std::vector<Counted> in_order = co_await asyncio::gather(std::move(reversed));
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(in_order[i].v, i);
    EXPECT_EQ(Counted::copies, 0);

    // A vector passed by copy: its tasks can still be asked, so their results are copied.
    Counted::copies = 0;
    std::vector<asyncio::Task<Counted>> mine;
    for (int i = 0; i < 3; ++i)
      mine.push_back(asyncio::create_task(counted(i)));
    std::vector<Counted> copied = co_await asyncio::gather(mine);
    EXPECT_EQ(Counted::copies, 3);
    EXPECT_EQ(mine[2].result().v, 2);
    EXPECT_EQ(copied[2].v, 2);
  }());
}

TEST(Gather, FirstExceptionPropagatesAndOthersKeepRunning) {
  run_test([]() -> Coro<void> {
    auto slow = asyncio::create_task(value_after(5, 0.05));
    try {
      co_await asyncio::gather(fail_after(0.001, "first"), fail_after(0.01, "second"), slow);
      ADD_FAILURE() << "gather did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "first");
    }
    EXPECT_FALSE(slow.done()) << "gather does not cancel the other children";
    EXPECT_EQ(co_await slow, 5);
  }());
}

TEST(Gather, ACancelledChildMakesGatherRaiseCancelledError) {
  run_test([]() -> Coro<void> {
    auto child = asyncio::create_task(forever());
    auto other = asyncio::create_task(value_after(1, 0.01));
    asyncio::get_running_loop().call_later(0.001, [child]() mutable { child.cancel(); });
    EXPECT_THROW(co_await asyncio::gather(child, other), asyncio::CancelledError);
    EXPECT_FALSE(asyncio::current_task().cancelling()) << "the gather's awaiter was not cancelled";
    co_await other;
  }());
}

TEST(Gather, CancellingTheGatherCancelsItsChildren) {
  run_test([]() -> Coro<void> {
    auto a = asyncio::create_task(forever());
    auto b = asyncio::create_task(forever());
    auto g = asyncio::create_task(
        [](auto a, auto b) -> Coro<void> { co_await asyncio::gather(a, b); }(a, b));
    co_await asyncio::sleep(0.001);
    g.cancel();
    EXPECT_THROW(co_await g, asyncio::CancelledError);
    EXPECT_TRUE(g.cancelled());
    co_await asyncio::sleep(0);
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());
  }());
}

TEST(Gather, ReturnExceptionsCollectsOutcomes) {
  run_test([]() -> Coro<void> {
    auto cancelled = asyncio::create_task(forever());
    asyncio::get_running_loop().call_later(0.001, [cancelled]() mutable { cancelled.cancel(); });
    auto [ok, bad, gone] = co_await asyncio::gather(asyncio::return_exceptions, value_after(3, 0),
                                                    fail_after(0.002, "x"), cancelled);
    EXPECT_TRUE(ok.has_value());
    EXPECT_EQ(ok.value(), 3);
    EXPECT_TRUE(bad.has_error());
    EXPECT_THROW(std::rethrow_exception(bad.error()), std::runtime_error);
    EXPECT_TRUE(gone.has_error());
    EXPECT_THROW(std::rethrow_exception(gone.error()), asyncio::CancelledError);
  }());
}

TEST(Gather, ReturnExceptionsStillRaisesWhenTheGatherIsCancelled) {
  run_test([]() -> Coro<void> {
    auto g = asyncio::create_task([]() -> Coro<void> {
      co_await asyncio::gather(asyncio::return_exceptions, forever(), forever());
    }());
    co_await asyncio::sleep(0.001);
    g.cancel();
    EXPECT_THROW(co_await g, asyncio::CancelledError);
  }());
}

TEST(Wait, FirstCompletedAndAllCompleted) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks{asyncio::create_task(value_after(1, 0.001)),
                                          asyncio::create_task(value_after(2, 0.05))};
    auto first = co_await asyncio::wait(tasks, asyncio::ReturnWhen::FIRST_COMPLETED);
    EXPECT_EQ(first.done.size(), 1u);
    if (first.done.size() != 1) co_return;
    EXPECT_EQ(first.done[0].result(), 1);
    EXPECT_EQ(first.pending.size(), 1u);
    auto all = co_await asyncio::wait(tasks);
    EXPECT_EQ(all.done.size(), 2u);
    EXPECT_TRUE(all.pending.empty());
    // A task given twice is in the answer once: asyncio.wait takes a set.
    tasks.push_back(tasks[0]);
    auto again = co_await asyncio::wait(tasks);
    EXPECT_EQ(again.done.size(), 2u);
  }());
}

TEST(Wait, FirstExceptionAndTimeoutCancelNothing) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks{asyncio::create_task(fail_after(0.001, "e")),
                                          asyncio::create_task(value_after(2, 0.05))};
    auto r = co_await asyncio::wait(tasks, asyncio::ReturnWhen::FIRST_EXCEPTION);
    EXPECT_EQ(r.done.size(), 1u);
    EXPECT_THROW(r.done[0].result(), std::runtime_error);

    std::vector<asyncio::Task<void>> slow{asyncio::create_task(forever())};
    auto t = co_await asyncio::wait(slow, asyncio::ReturnWhen::ALL_COMPLETED, 0.01);
    EXPECT_TRUE(t.done.empty());
    EXPECT_EQ(t.pending.size(), 1u);
    EXPECT_FALSE(slow[0].done()) << "wait() never cancels on timeout";
    slow[0].cancel();
    EXPECT_THROW((void)asyncio::wait(std::vector<asyncio::Task<int>>{}), std::invalid_argument);
    co_await tasks[1];
  }());
}

TEST(AsCompleted, YieldsInCompletionOrder) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks{asyncio::create_task(value_after(3, 0.03)),
                                          asyncio::create_task(value_after(1, 0.001)),
                                          asyncio::create_task(value_after(2, 0.015))};
    std::vector<int> order;
    for (auto next : asyncio::as_completed(tasks))
      order.push_back(co_await next);
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  }());
}

// The rest of asyncio.as_completed: a failure comes back in its place in the completion order,
// tasks already done come first and in the order given, and a timeout makes the awaitables it
// beats throw TimeoutError without cancelling their tasks.
TEST(AsCompleted, FailuresDoneTasksAndTheTimeout) {
  run_test([]() -> Coro<void> {
    auto done_first = asyncio::create_task(value_after(10, 0));
    auto done_second = asyncio::create_task(value_after(20, 0));
    co_await asyncio::sleep(0);  // they start, yield once...
    co_await asyncio::sleep(0);  // ...and end
    EXPECT_TRUE(done_first.done() && done_second.done());
    // done_second twice: as in asyncio, which takes a set, it comes out once.
    std::vector<asyncio::Task<int>> tasks{asyncio::create_task(fail_after(0.002, "late")),
                                          done_second, done_first, done_second};
    std::vector<std::string> seen;
    for (auto next : asyncio::as_completed(tasks)) {
      try {
        seen.push_back(std::to_string(co_await next));
      } catch (const std::runtime_error& e) {
        seen.push_back(e.what());
      }
    }
    const std::vector<std::string> expected{"20", "10", "late"};
    EXPECT_EQ(seen, expected);

    auto quick = asyncio::create_task(value_after(1, 0));
    auto stuck = asyncio::create_task(forever());
    std::vector<asyncio::Task<>> mixed{stuck, quick};
    int timeouts = 0;
    int values = 0;
    for (auto next : asyncio::as_completed(mixed, 0.01)) {
      try {
        co_await next;
        ++values;
      } catch (const asyncio::TimeoutError&) {
        ++timeouts;
      }
    }
    EXPECT_EQ(values, 1);
    EXPECT_EQ(timeouts, 1);
    EXPECT_FALSE(stuck.done()) << "as_completed's timeout cancels nothing";
    // A negative timeout has already fallen (asyncio's call_later fires it at once).
    std::vector<asyncio::Task<>> stuck_only{stuck};
    for (auto next : asyncio::as_completed(stuck_only, -1.0))
      co_await expect_await_throws<asyncio::TimeoutError>(next, "no TimeoutError");
    stuck.cancel();
    EXPECT_THROW(asyncio::as_completed(mixed, std::nan("")), std::invalid_argument);
    auto all = asyncio::as_completed(std::vector<asyncio::Task<int>>{});
    EXPECT_FALSE(all.begin() != all.end());
    EXPECT_THROW((void)all.next(), std::out_of_range);
  }());
}

// Python 3.13's `async for task in as_completed(tasks)`: the very tasks given, as they end;
// TimeoutError from the step the timeout beats; std::nullopt after the last.
TEST(AsCompleted, AsyncIterationGivesTheTasksThemselvesAsTheyEnd) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks{asyncio::create_task(value_after(3, 0.03)),
                                          asyncio::create_task(value_after(1, 0.001)),
                                          asyncio::create_task(value_after(2, 0.015))};
    auto ended = asyncio::as_completed(tasks).aiter();  // outlives the AsCompleted it came from
    std::vector<int> order;
    while (std::optional<asyncio::Task<int>> task = co_await ended.next()) {
      EXPECT_TRUE(task->done());
      EXPECT_TRUE(*task == tasks[0] || *task == tasks[1] || *task == tasks[2]);
      order.push_back(co_await *task);
    }
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
    EXPECT_FALSE((co_await ended.next()).has_value());

    auto stuck = asyncio::create_task(forever());
    auto quick = asyncio::create_task(value_after(0, 0));
    std::vector<asyncio::Task<>> mixed{stuck, quick};
    auto within = asyncio::as_completed(mixed, 0.01).aiter();
    std::optional<asyncio::Task<>> first = co_await within.next();
    EXPECT_TRUE(first.has_value() && *first == quick);
    co_await expect_await_throws<asyncio::TimeoutError>(within.next(),
                                                        "the timeout must end the iteration");
    EXPECT_FALSE((co_await within.next()).has_value()) << "a generator that threw has ended";
    EXPECT_FALSE(stuck.done()) << "as_completed's timeout cancels nothing";
    stuck.cancel();

    // One count for both ways: what the loop took is not given again.
    std::vector<asyncio::Task<int>> two{asyncio::create_task(value_after(1, 0)),
                                        asyncio::create_task(value_after(2, 0.005))};
    auto both = asyncio::as_completed(two);
    EXPECT_EQ(co_await both.next(), 1);
    auto rest = both.aiter();
    std::optional<asyncio::Task<int>> last = co_await rest.next();
    EXPECT_TRUE(last.has_value() && *last == two[1]);
    EXPECT_FALSE((co_await rest.next()).has_value());
  }());
}

TEST(Shield, CancellingTheAwaiterDoesNotCancelTheTask) {
  run_test([]() -> Coro<void> {
    auto inner = asyncio::create_task(value_after(7, 0.02));
    auto outer = asyncio::create_task([](asyncio::Task<int> inner) -> Coro<int> {
      co_return co_await asyncio::shield(inner);
    }(inner));
    co_await asyncio::sleep(0.001);
    outer.cancel();
    EXPECT_THROW(co_await outer, asyncio::CancelledError);
    EXPECT_FALSE(inner.cancelled());
    EXPECT_EQ(co_await inner, 7);
  }());
}

// A future keeps its first waiter in one pointer and the rest in a vector: a waiter that leaves
// empties the pointer, and whoever comes next must still queue behind the older waiters.
TEST(Waiters, AwaitersOfOneTaskResumeInTheOrderTheyCame) {
  run_test([]() -> Coro<void> {
    asyncio::Event go;
    auto target = asyncio::create_task([](asyncio::Event& go) -> Coro<int> {
      co_await go.wait();
      co_return 7;
    }(go));
    std::vector<std::string> log;
    auto awaiter = [](asyncio::Task<int> t, std::string name,
                      std::vector<std::string>& log) -> Coro<void> {
      const int v = co_await t;
      log.push_back(name + std::to_string(v));
    };
    auto leaver = [](asyncio::Task<int> t, std::vector<std::string>& log) -> Coro<void> {
      std::vector<asyncio::Task<int>> just_t(1, t);  // g++ 12: no braced list in a co_await
      auto r = co_await asyncio::wait(just_t, asyncio::ReturnWhen::ALL_COMPLETED, 0.001);
      log.push_back(r.pending.size() == 1 ? "a left" : "a saw the end");
    };
    auto a = asyncio::create_task(leaver(target, log));  // the first waiter...
    auto b = asyncio::create_task(awaiter(target, "b", log));
    co_await asyncio::sleep(0);  // a and b wait on the target, a first
    co_await a;                  // ...gives up: the target cannot end before `go`
    auto c = asyncio::create_task(awaiter(target, "c", log));
    auto d = asyncio::create_task(asyncio::gather(target, target));  // one waiter, twice
    auto e = asyncio::create_task(awaiter(target, "e", log));
    co_await asyncio::sleep(0);
    go.set();
    co_await asyncio::gather(b, c, e);
    auto [x, y] = co_await d;
    EXPECT_EQ(x + y, 14);
    EXPECT_EQ(log, (std::vector<std::string>{"a left", "b7", "c7", "e7"}));
  }());
}

// A wait that ends before some of its children must leave none of them pointing at it: the
// children end after the waiting task (and with it the waiter) is gone — under ASan a stale
// waiter would be a use after free.
TEST(Waiters, AWaitThatEndsFirstLeavesNoStaleWaiterBehind) {
  run_test([]() -> Coro<void> {
    asyncio::Event go;
    auto slow = [](asyncio::Event& go, int v) -> Coro<int> {
      co_await go.wait();
      co_return v;
    };
    std::vector<asyncio::Task<int>> tasks{asyncio::create_task(value_after(1, 0)),
                                          asyncio::create_task(slow(go, 2)),
                                          asyncio::create_task(slow(go, 3))};
    auto waiter = asyncio::create_task([](std::vector<asyncio::Task<int>> tasks) -> Coro<int> {
      auto r = co_await asyncio::wait(tasks, asyncio::ReturnWhen::FIRST_COMPLETED);
      co_return static_cast<int>(r.pending.size());
    }(tasks));
    EXPECT_EQ(co_await waiter, 2);
    waiter = {};  // the waiting task and its frame are freed
    go.set();
    auto all = co_await asyncio::gather(tasks);
    EXPECT_EQ(all, (std::vector<int>{1, 2, 3}));
  }());
}

// The turns of the loop, as asyncio takes them (tests/task_diff.py compares whole scripts; these
// pin one rule each). Logs from CPython 3.13 running the Python in the comments.

// The task awaiting a gather wakes two turns after the last child ends: asyncio's child
// completes the gather's future in a done callback (one turn), whose own callback wakes the
// task (a second).
//     tk = asyncio.create_task(ticker(log, 5))
//     await asyncio.gather(child())          # child(): log.append("child ends")
//     log.append("gathered")
//     # ['tick 0', 'child ends', 'tick 1', 'tick 2', 'gathered', 'tick 3', 'tick 4']
TEST(Gather, TheAwaitingTaskWakesTwoTurnsAfterTheLastChild) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> log;
    auto tk = asyncio::create_task(gilio::testing::ticker(log, 5));
    auto child = [&]() -> Coro<void> {
      log.push_back("child ends");
      co_return;
    };
    auto gathering = asyncio::gather(child());
    co_await gathering;
    log.push_back("gathered");
    co_await tk;
    const std::vector<std::string> asyncio_log{"tick 0",   "child ends", "tick 1", "tick 2",
                                               "gathered", "tick 3",     "tick 4"};
    EXPECT_EQ(log, asyncio_log);
  }());
}

// wait() takes its turns even when a task is already done (asyncio adds a done callback, which
// runs a turn later, to each), and wait(timeout=0) is no poll: it returns when its timer fires,
// and a task may end meanwhile.
//     c = asyncio.create_task(child()); await asyncio.sleep(0)     # c is done
//     tk = asyncio.create_task(ticker(log, 5))
//     await asyncio.wait([c]); log.append("waited"); await tk
//     tk = asyncio.create_task(ticker(log, 5))
//     d = asyncio.create_task(late())         # late(): await asyncio.sleep(0); return 2
//     done, pending = await asyncio.wait([d], timeout=0)
//     log.append(f"polled done={len(done)}"); await tk
//     # ['tick 0', 'tick 1', 'waited', 'tick 2', 'tick 3', 'tick 4',
//     #  'tick 0', 'tick 1', 'polled done=1', 'tick 2', 'tick 3', 'tick 4']
TEST(Wait, TakesItsTurnsEvenWhenATaskIsDoneOrTheTimeoutIsZero) {
  run_test([]() -> Coro<void> {
    std::vector<std::string> log;
    auto c = asyncio::create_task([]() -> Coro<int> { co_return 1; }());
    co_await asyncio::sleep(0);
    EXPECT_TRUE(c.done());
    auto tk = asyncio::create_task(gilio::testing::ticker(log, 5));
    std::vector<asyncio::Task<int>> first{c};
    auto waiting = asyncio::wait(first);
    co_await waiting;
    log.push_back("waited");
    co_await tk;
    tk = asyncio::create_task(gilio::testing::ticker(log, 5));
    auto d = asyncio::create_task([]() -> Coro<int> {
      co_await asyncio::sleep(0);
      co_return 2;
    }());
    std::vector<asyncio::Task<int>> second{d};
    auto polling = asyncio::wait(second, asyncio::ReturnWhen::ALL_COMPLETED, 0);
    auto polled = co_await polling;
    log.push_back("polled done=" + std::to_string(polled.done.size()));
    co_await tk;
    const std::vector<std::string> asyncio_log{"tick 0",        "tick 1", "waited", "tick 2",
                                               "tick 3",        "tick 4", "tick 0", "tick 1",
                                               "polled done=1", "tick 2", "tick 3", "tick 4"};
    EXPECT_EQ(log, asyncio_log);
  }());
}
