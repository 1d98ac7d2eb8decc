// tests/test_generators.cpp — gilio/asyncio/generators.hpp: asynchronous generators and the
// loop's part in closing them; after the ideas of Lib/test/test_asyncgen.py (steps, athrow,
// aclose, "already running", "ignored GeneratorExit") and of its asyncio half (a generator
// dropped while parked is closed by the loop in a task; asyncio.run closes the ones left).
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::AsyncGenerator;
using asyncio::Coro;
using gilio::testing::Reports;
using gilio::testing::run_test;
using gilio::testing::what_of;

namespace {

AsyncGenerator<int> count_to(int n, bool* started = nullptr) {
  if (started != nullptr) *started = true;
  for (int i = 0; i < n; ++i)
    co_yield i;
}

// Everything the generator yields, in order, until it ends.
template <class T>
Coro<std::vector<T>> drain(AsyncGenerator<T>& gen) {
  std::vector<T> out;
  while (std::optional<T> v = co_await gen.next())
    out.push_back(std::move(*v));
  co_return out;
}

// Sets *flag when destroyed: a generator's RAII clean-up.
struct SetOnExit {
  bool* flag;
  ~SetOnExit() { *flag = true; }
};

// Yields 0, 1, 2... until closed; its clean-up awaits (a sleep(0)) before it records that it ran,
// and in which task.
struct Cleanup {
  bool ran = false;
  asyncio::detail::TaskCore* task = nullptr;
};
AsyncGenerator<int> with_async_cleanup(Cleanup* c) {
  bool closing = false;
  try {
    for (int i = 0;; ++i)
      co_yield i;
  } catch (const asyncio::GeneratorExit&) {
    closing = true;
  }
  if (closing) {
    co_await asyncio::sleep(0);  // clean-up may await: outside the catch block
    c->task = &asyncio::current_task().core();
    c->ran = true;
  }
}

// Sleeps (a loop iteration) until *flag is set: at most `rounds` iterations.
Coro<bool> until_set(const bool* flag, int rounds = 100) {
  for (int i = 0; i < rounds && !*flag; ++i)
    co_await asyncio::sleep(0);
  co_return *flag;
}

}  // namespace

// ---- stepping ----

TEST(AsyncGenerators, YieldValuesInOrderThenNulloptForEver) {
  run_test([]() -> Coro<void> {
    bool started = false;
    auto gen = count_to(4, &started);
    EXPECT_FALSE(started) << "calling the function must run nothing, as calling an async def";
    std::vector<int> got = co_await drain(gen);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3}));
    EXPECT_FALSE((co_await gen.next()).has_value());  // StopAsyncIteration, again and again
    EXPECT_FALSE((co_await gen.next()).has_value());
  }());
}

AsyncGenerator<int> wait_between(asyncio::Event* ev) {
  co_yield 1;
  co_await ev->wait();
  co_yield 2;
}

TEST(AsyncGenerators, TheBodyAwaitsInTheConsumersTaskWhileOtherTasksRun) {
  run_test([]() -> Coro<void> {
    asyncio::Event ev;
    auto gen = wait_between(&ev);
    EXPECT_EQ(co_await gen.next(), 1);
    // The second step waits on the event: only another task can set it, so the consumer's task
    // must really be suspended inside the generator's body, with the loop running others.
    auto setter = asyncio::create_task([](asyncio::Event* e) -> Coro<void> {
      e->set();
      co_return;
    }(&ev));
    EXPECT_EQ(co_await gen.next(), 2);
    EXPECT_FALSE((co_await gen.next()).has_value());
    co_await setter;
  }());
}

AsyncGenerator<asyncio::detail::TaskCore*> whose_task() {
  for (;;)
    co_yield &asyncio::current_task().core();
}

TEST(AsyncGenerators, EachStepRunsInTheTaskThatAwaitsIt) {
  run_test([]() -> Coro<void> {
    auto gen = whose_task();
    asyncio::detail::TaskCore* mine = &asyncio::current_task().core();
    EXPECT_EQ(co_await gen.next(), mine);
    auto other = asyncio::create_task(
        [](AsyncGenerator<asyncio::detail::TaskCore*>* g) -> Coro<asyncio::detail::TaskCore*> {
          co_return *co_await g->next();
        }(&gen));
    asyncio::detail::TaskCore* seen = co_await other;
    EXPECT_EQ(seen, &other.core());
    EXPECT_EQ(co_await gen.next(), mine);
  }());
}

AsyncGenerator<int> fails_after(int n) {
  for (int i = 0; i < n; ++i)
    co_yield i;
  throw std::runtime_error("generator failed");
}

TEST(AsyncGenerators, AnExceptionFromTheBodyComesOutOfNextOnceThenItHasEnded) {
  run_test([]() -> Coro<void> {
    auto gen = fails_after(2);
    EXPECT_EQ(co_await gen.next(), 0);
    EXPECT_EQ(co_await gen.next(), 1);
    co_await gilio::testing::expect_await_throws<std::runtime_error>(
        gen.next(), "the body's exception must come out of next()", "generator failed");
    EXPECT_FALSE((co_await gen.next()).has_value());
  }());
}

AsyncGenerator<std::unique_ptr<int>> boxes(int n) {
  for (int i = 0; i < n; ++i)
    co_yield std::make_unique<int>(i * 10);
}
AsyncGenerator<std::pair<int, std::string>> pairs() {
  // g++ 12 rejects a braced list in any co_await, co_yield included (a known bug), and mishandles
  // some temporaries there: the value is named first, and moved.
  std::pair<int, std::string> one{1, "one"};
  co_yield std::move(one);
  std::pair<int, std::string> two{2, "two"};
  co_yield two;  // an lvalue is copied, and stays the body's
  EXPECT_EQ(two.second, "two");
}

TEST(AsyncGenerators, MoveOnlyAndBracedValuesCrossWhole) {
  run_test([]() -> Coro<void> {
    auto gen = boxes(3);
    std::vector<std::unique_ptr<int>> got = co_await drain(gen);
    EXPECT_EQ(got.size(), 3u);  // (no ASSERT_* in a coroutine)
    if (got.size() == 3) {
      EXPECT_EQ(*got[2], 20);
    }
    auto p = pairs();
    std::vector<std::pair<int, std::string>> ps = co_await drain(p);
    EXPECT_EQ(ps, (std::vector<std::pair<int, std::string>>{{1, "one"}, {2, "two"}}));
  }());
}

// Each level relays every value of the level below it: a value crosses `depth` frames.
AsyncGenerator<int> relay(int depth, int n) {
  if (depth == 0) {
    for (int i = 0; i < n; ++i)
      co_yield i;
    co_return;
  }
  auto inner = relay(depth - 1, n);
  while (std::optional<int> v = co_await inner.next())
    co_yield *v;
}

TEST(AsyncGenerators, AChainOfTenThousandGeneratorsUsesNoStack) {
  // Every step resumes 10,000 nested frames and hands the value back through all of them; on a
  // call stack (no trampoline) that overflows, above all under ASan with its bigger frames.
  run_test([]() -> Coro<void> {
    auto gen = relay(10'000, 3);
    std::vector<int> got = co_await drain(gen);  // (g++ 12: no braced list beside a co_await)
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2}));
  }());
}

TEST(AsyncGenerators, ASecondStepWhileOneRunsIsRuntimeError) {
  run_test([]() -> Coro<void> {
    asyncio::Event ev;
    auto gen = wait_between(&ev);
    EXPECT_EQ(co_await gen.next(), 1);
    auto first = asyncio::create_task([](AsyncGenerator<int>* g) -> Coro<std::optional<int>> {
      co_return co_await g->next();
    }(&gen));
    co_await asyncio::sleep(0);  // `first` is now inside the body, waiting on the event
    co_await gilio::testing::expect_await_throws<std::runtime_error>(
        gen.next(), "next() during a step must throw",
        "anext(): asynchronous generator is already running");
    co_await gilio::testing::expect_await_throws<std::runtime_error>(
        gen.aclose(), "aclose() during a step must throw",
        "aclose(): asynchronous generator is already running");
    co_await gilio::testing::expect_await_throws<std::runtime_error>(
        gen.athrow(std::logic_error("x")), "athrow() during a step must throw",
        "athrow(): asynchronous generator is already running");
    ev.set();
    EXPECT_EQ(co_await first, 2);  // the running step was not disturbed
  }());
}

AsyncGenerator<int> parked_forever(bool* cleaned) {
  SetOnExit guard{cleaned};
  co_yield 1;
  co_await asyncio::sleep(3600);
  co_yield 2;
}

TEST(AsyncGenerators, CancellingTheConsumerCancelsTheBodysAwaitAndEndsTheGenerator) {
  run_test([]() -> Coro<void> {
    bool cleaned = false;
    auto gen = parked_forever(&cleaned);
    EXPECT_EQ(co_await gen.next(), 1);
    auto consumer = asyncio::create_task([](AsyncGenerator<int>* g) -> Coro<std::optional<int>> {
      co_return co_await g->next();
    }(&gen));
    co_await asyncio::sleep(0);  // inside the body's sleep
    consumer.cancel();
    co_await gilio::testing::expect_await_throws<asyncio::CancelledError>(
        consumer, "the body's CancelledError must come out of next()");
    EXPECT_TRUE(cleaned) << "the CancelledError unwound the body";
    EXPECT_FALSE((co_await gen.next()).has_value());
  }());
}

// ---- aclose and athrow ----

TEST(AsyncGenerators, AcloseThrowsGeneratorExitAtTheYieldAndTheCleanupMayAwait) {
  run_test([]() -> Coro<void> {
    Cleanup c;
    auto gen = with_async_cleanup(&c);
    EXPECT_EQ(co_await gen.next(), 0);
    EXPECT_EQ(co_await gen.next(), 1);
    co_await gen.aclose();
    EXPECT_TRUE(c.ran);
    EXPECT_EQ(c.task, &asyncio::current_task().core()) << "aclose runs the body in its caller";
    EXPECT_FALSE((co_await gen.next()).has_value());
    co_await gen.aclose();  // closed already: nothing to do
  }());
}

AsyncGenerator<int> catches_std_exceptions(bool* caught, bool* cleaned) {
  SetOnExit guard{cleaned};
  try {
    co_yield 1;
  } catch (const std::exception&) {
    *caught = true;
  }
}

TEST(AsyncGenerators, GeneratorExitIsNotAStdException) {
  run_test([]() -> Coro<void> {
    bool caught = false, cleaned = false;
    auto gen = catches_std_exceptions(&caught, &cleaned);
    EXPECT_EQ(co_await gen.next(), 1);
    co_await gen.aclose();
    EXPECT_FALSE(caught) << "catch (const std::exception&) must let GeneratorExit through";
    EXPECT_TRUE(cleaned);
  }());
}

AsyncGenerator<int> ignores_generator_exit() {
  try {
    co_yield 1;
  } catch (const asyncio::GeneratorExit&) {
  }
  co_yield 2;
}

TEST(AsyncGenerators, AGeneratorThatYieldsInsteadOfEndingMakesAcloseThrow) {
  run_test([]() -> Coro<void> {
    auto gen = ignores_generator_exit();
    EXPECT_EQ(co_await gen.next(), 1);
    co_await gilio::testing::expect_await_throws<std::runtime_error>(
        gen.aclose(), "a yield after GeneratorExit must fail aclose()",
        "async generator ignored GeneratorExit");
    // It is parked at its second yield, as in Python; the next step runs it to its end.
    EXPECT_FALSE((co_await gen.next()).has_value());
  }());
}

AsyncGenerator<int> fails_on_close() {
  try {
    co_yield 1;
  } catch (const asyncio::GeneratorExit&) {
    throw std::logic_error("clean-up failed");
  }
}

TEST(AsyncGenerators, AcloseRethrowsAnotherExceptionTheCleanupRaises) {
  run_test([]() -> Coro<void> {
    auto gen = fails_on_close();
    EXPECT_EQ(co_await gen.next(), 1);
    co_await gilio::testing::expect_await_throws<std::logic_error>(
        gen.aclose(), "the clean-up's exception must come out of aclose()", "clean-up failed");
    EXPECT_FALSE((co_await gen.next()).has_value());
  }());
}

TEST(AsyncGenerators, AGeneratorThatNeverStartedIsClosedWithoutRunning) {
  run_test([]() -> Coro<void> {
    bool started = false;
    auto gen = count_to(3, &started);
    co_await gen.aclose();
    EXPECT_FALSE(started);
    EXPECT_FALSE((co_await gen.next()).has_value());

    auto thrown = count_to(3, &started);
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        thrown.athrow(std::invalid_argument("before the first line")),
        "athrow() into a generator that never started throws at once", "before the first line");
    EXPECT_FALSE(started);
    EXPECT_FALSE((co_await thrown.next()).has_value());
  }());
}

AsyncGenerator<int> recovers() {
  std::string answer;
  for (int i = 0;; ++i) {
    try {
      co_yield i;
    } catch (const std::invalid_argument& e) {
      answer = e.what();
    }
    if (!answer.empty()) {
      co_yield -1;  // answers the athrow (not from inside the handler: C++ forbids that)
      if (answer == "stop") co_return;
      answer.clear();
    }
  }
}

TEST(AsyncGenerators, AthrowThrowsAtTheYieldAndGivesWhatTheBodyYieldsNext) {
  run_test([]() -> Coro<void> {
    auto gen = recovers();
    EXPECT_EQ(co_await gen.next(), 0);
    EXPECT_EQ(co_await gen.athrow(std::invalid_argument("go on")), -1);
    EXPECT_EQ(co_await gen.next(), 1);
    EXPECT_EQ(co_await gen.athrow(std::invalid_argument("stop")), -1);
    EXPECT_FALSE((co_await gen.next()).has_value());  // it returned after answering
    // Ended: athrow gives std::nullopt (StopAsyncIteration), throwing nothing.
    EXPECT_FALSE((co_await gen.athrow(std::invalid_argument("late"))).has_value());

    auto other = recovers();
    EXPECT_EQ(co_await other.next(), 0);
    co_await gilio::testing::expect_await_throws<std::out_of_range>(
        other.athrow(std::out_of_range("not caught")), "an uncaught athrow comes back out",
        "not caught");
    EXPECT_FALSE((co_await other.next()).has_value());
    EXPECT_THROW((void)other.athrow(std::exception_ptr()), std::invalid_argument);
  }());
}

// PEP 525's asend, with the running average of its discussion: a generator that takes values
// back. co_yield evaluates to what asend() sent, std::nullopt when next() resumed it (None).
//
//     async def averager():                      AsyncGenerator<double, double> averager() {
//         total, n = 0.0, 0                        double total = 0;
//         value = yield 0.0                        int n = 0;
//         while value is not None:                 std::optional<double> value = co_yield 0.0;
//             total += value; n += 1               while (value) {
//             value = yield total / n                total += *value; ++n;
//                                                    value = co_yield total / n;
//                                                  }
AsyncGenerator<double, double> averager(std::vector<double>* seen) {
  double total = 0;
  int n = 0;
  std::optional<double> value = co_yield 0.0;
  while (value) {
    seen->push_back(*value);
    total += *value;
    ++n;
    co_await asyncio::sleep(0);  // the body awaits between values, as any async generator may
    value = co_yield total / n;
  }
}

// Sends strings, so that a sent value that is not consumed must be freed (ASan's leak check).
AsyncGenerator<int, std::string> lengths() {
  for (;;) {
    std::optional<std::string> word = co_yield 0;
    while (word) {
      const int n = static_cast<int>(word->size());
      word = co_yield n;
    }
  }
}

TEST(AsyncGenerators, AsendResumesTheYieldWithTheValueSentAndNextWithNullopt) {
  run_test([]() -> Coro<void> {
    std::vector<double> seen;
    auto avg = averager(&seen);
    co_await gilio::testing::expect_await_throws<std::invalid_argument>(
        avg.asend(1.0), "a value sent to a generator that never started", "just-started");
    EXPECT_EQ(co_await avg.next(), 0.0);  // next() starts it
    EXPECT_EQ(co_await avg.asend(10.0), 10.0);
    EXPECT_EQ(co_await avg.asend(20.0), 15.0);
    EXPECT_EQ(co_await avg.asend(60.0), 30.0);
    EXPECT_FALSE((co_await avg.next()).has_value());  // None: the loop ends, and the body
    EXPECT_EQ(seen, (std::vector<double>{10.0, 20.0, 60.0}));
    EXPECT_FALSE((co_await avg.asend(5.0)).has_value());  // ended: StopAsyncIteration
    EXPECT_EQ(seen.size(), 3u);

    auto len = lengths();
    EXPECT_EQ(co_await len.next(), 0);
    std::string word(100, 'w');  // g++ 12: no temporary inside the co_await
    EXPECT_EQ(co_await len.asend(word), 100);
    EXPECT_EQ(co_await len.next(), 0);
    std::string four = "four";
    EXPECT_EQ(co_await len.asend(std::move(four)), 4);
    co_await len.aclose();  // GeneratorExit at the yield; no sent value is left behind
    EXPECT_FALSE((co_await len.asend(word)).has_value());
  }());
}

TEST(AsyncGenerators, AMovedFromHandleIsAnError) {
  run_test([]() -> Coro<void> {
    auto gen = count_to(2);
    auto moved = std::move(gen);
    EXPECT_FALSE(gen.valid());  // NOLINT(bugprone-use-after-move): the point of the test
    EXPECT_THROW(gen.next(), asyncio::InvalidStateError);
    EXPECT_EQ(co_await moved.next(), 0);
    gen = std::move(moved);  // a parked generator changes owner
    EXPECT_EQ(co_await gen.next(), 1);
  }());
}

// ---- the loop's part ----

TEST(AsyncGenerators, DroppedWhileParkedTheLoopClosesItInATaskOfItsOwn) {
  run_test([]() -> Coro<void> {
    Cleanup c;
    {
      auto gen = with_async_cleanup(&c);
      EXPECT_EQ(co_await gen.next(), 0);
    }  // dropped at a co_yield: asyncio's finalizer hook
    EXPECT_FALSE(c.ran) << "the clean-up awaits, so it cannot have run inside the destructor";
    EXPECT_TRUE(co_await until_set(&c.ran)) << "the loop must close the dropped generator";
    EXPECT_NE(c.task, &asyncio::current_task().core()) << "it runs in a task of its own";
  }());
}

TEST(AsyncGenerators, RunClosesTheGeneratorsStillParkedWhenMainReturns) {
  Cleanup c;
  AsyncGenerator<int> kept;  // outlives the loop
  asyncio::run([](Cleanup* cp, AsyncGenerator<int>* out) -> Coro<void> {
    *out = with_async_cleanup(cp);
    EXPECT_EQ(co_await out->next(), 0);
  }(&c, &kept));
  EXPECT_TRUE(c.ran) << "asyncio::run must close (aclose) a generator left parked";
  kept = AsyncGenerator<int>();  // closed, its loop gone: the frame is just freed
}

TEST(AsyncGenerators, GeneratorsDroppedByCancelledLeftoverTasksAreClosedBeforeTheLoopCloses) {
  Cleanup c;
  asyncio::run([](Cleanup* cp) -> Coro<void> {
    // A consumer still in its loop body when main returns: run() cancels it, its frame unwinds,
    // and the generator it held is dropped while parked. Closing it needs the loop once more.
    asyncio::create_task([](Cleanup* cc) -> Coro<void> {
      auto gen = with_async_cleanup(cc);
      while (co_await gen.next())
        co_await asyncio::sleep(3600);
    }(cp));
    co_await asyncio::sleep(0);
  }(&c));
  EXPECT_TRUE(c.ran);
}

TEST(AsyncGenerators, ShutdownAsyncgensClosesParkedGeneratorsAndReportsTheirErrors) {
  Cleanup c;
  Reports reports;
  AsyncGenerator<int> stubborn;
  bool stubborn_freed = false;
  asyncio::Runner runner;
  runner.run([](Cleanup* cp, Reports* r, AsyncGenerator<int>* st, bool* freed) -> Coro<void> {
    r->install(asyncio::get_running_loop());
    auto gen = with_async_cleanup(cp);
    EXPECT_EQ(co_await gen.next(), 0);
    *st = [](bool* f) -> AsyncGenerator<int> {
      SetOnExit guard{f};
      for (;;) {
        try {
          co_yield 1;
        } catch (const asyncio::GeneratorExit&) {  // ignored, every time
        }
      }
    }(freed);
    EXPECT_EQ(co_await st->next(), 1);
    co_await asyncio::get_running_loop().shutdown_asyncgens();
    EXPECT_TRUE(cp->ran);
    EXPECT_FALSE((co_await gen.next()).has_value());
  }(&c, &reports, &stubborn, &stubborn_freed));
  ASSERT_EQ(reports.seen.size(), 1u);
  EXPECT_NE(
      reports.seen[0].message.find("an error occurred during closing of asynchronous generator"),
      std::string::npos)
      << reports.seen[0].message;
  EXPECT_EQ(what_of(reports.seen[0]), "async generator ignored GeneratorExit");
  runner.close();
  EXPECT_FALSE(stubborn_freed) << "its handle still owns it";
  stubborn = AsyncGenerator<int>();  // no loop to close it now: destroyed at once, destructors run
  EXPECT_TRUE(stubborn_freed);
}

// Counts a generator's clean-up: `closed` when its awaiting clean-up (after GeneratorExit) ran
// to its end, `freed` when its frame was destroyed, whichever way.
struct Counts {
  int closed = 0;
  int freed = 0;
};
struct CountOnExit {
  int* n;
  ~CountOnExit() { ++*n; }
};
AsyncGenerator<int> counted(Counts* c) {
  CountOnExit guard{&c->freed};
  bool closing = false;
  try {
    co_yield 1;
    co_yield 2;
  } catch (const asyncio::GeneratorExit&) {
    closing = true;
  }
  if (closing) {
    co_await asyncio::sleep(0);
    ++c->closed;
  }
}

// 10,000 consumers each take one value of a generator of their own. The odd ones return, and
// drop theirs at once (the finalizer's tasks close them); the even ones sleep until run()
// cancels them, and drop theirs then (shutdown_asyncgens closes them). Main waits for the odd
// ones' clean-up when `wait` is set, and returns at once otherwise.
Coro<void> ten_thousand_consumers(Counts* c, bool wait) {
  std::vector<asyncio::Task<void>> consumers;
  for (int i = 0; i < 10'000; ++i) {
    consumers.push_back(asyncio::create_task([](Counts* cc, int k) -> Coro<void> {
      auto gen = counted(cc);
      co_await gen.next();
      if (k % 2 == 0) co_await asyncio::sleep(3600);
    }(c, i)));
  }
  for (int round = 0; wait && c->closed < 5'000 && round < 100; ++round)
    co_await asyncio::sleep(0);
  if (wait) {
    EXPECT_EQ(c->closed, 5'000) << "the finalizer tasks must close the dropped ones";
  }
}

TEST(AsyncGenerators, TenThousandDroppedGeneratorsAreAllClosedAndFreed) {
  Counts c;
  asyncio::run(ten_thousand_consumers(&c, true));
  EXPECT_EQ(c.closed, 10'000) << "run() must close those the cancelled consumers dropped";
  EXPECT_EQ(c.freed, 10'000);
}

TEST(AsyncGenerators, FinalizerTasksCancelledByAClosingLoopStillFreeTheirGenerators) {
  // Main returns before the finalizer tasks have run: the closing loop cancels them, as
  // asyncio.run's cancels every task left, finalizers included. Their generators are freed all
  // the same (LeakSanitizer checks the memory too), without the clean-up that awaits.
  Counts c;
  asyncio::run(ten_thousand_consumers(&c, false));
  EXPECT_EQ(c.freed, 10'000);
  EXPECT_GE(c.closed, 5'000) << "shutdown_asyncgens closes those dropped by cancelled consumers";
}
