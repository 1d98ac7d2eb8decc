// tests/test_contextvars.cpp — gilio/contextvars.hpp and how asyncio copies contexts; after the
// ideas of Lib/test/test_context.py and Lib/test/test_asyncio/test_context.py (a task runs in a
// copy of its creator's context, callbacks in a copy of their scheduler's, to_thread in a copy
// of its caller's).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
namespace contextvars = gilio::contextvars;
using asyncio::Coro;
using gilio::testing::run_test;

namespace {

contextvars::ContextVar<int> number("number");
contextvars::ContextVar<std::string> request_id("request_id", "none");

}  // namespace

// ---- the module on its own ----

TEST(ContextVar, GetWithoutAValueRaisesLookupErrorNamingTheVariable) {
  contextvars::Context().run([] {
    try {
      number.get();
      ADD_FAILURE() << "get() with no value and no default must throw";
    } catch (const contextvars::LookupError& e) {
      EXPECT_NE(std::string(e.what()).find("number"), std::string::npos) << e.what();
    }
    EXPECT_EQ(request_id.get(), "none");          // the variable's default
    EXPECT_EQ(request_id.get("given"), "given");  // get(default) wins over it
    EXPECT_EQ(number.get(7), 7);
  });
}

TEST(ContextVar, SetThenResetPutsBackTheOldValueOrRemovesIt) {
  contextvars::Context ctx;
  ctx.run([&] {
    auto first = number.set(1);
    EXPECT_FALSE(first.old_value().has_value());
    auto second = number.set(2);
    EXPECT_EQ(second.old_value(), 1);
    EXPECT_EQ(&second.var(), &number);
    EXPECT_EQ(number.get(), 2);
    number.reset(second);
    EXPECT_EQ(number.get(), 1);
    number.reset(first);
    EXPECT_THROW(number.get(), contextvars::LookupError);
    EXPECT_FALSE(ctx.contains(number));
  });
}

TEST(ContextVar, ATokenIsUsedOnceByItsOwnVariableInItsOwnContext) {
  contextvars::Context a;
  contextvars::Context b;
  a.run([&] {
    auto token = number.set(1);
    contextvars::ContextVar<int> other("other");
    EXPECT_THROW(
        {
          try {
            other.reset(token);
          } catch (const std::invalid_argument& e) {
            EXPECT_NE(std::string(e.what()).find("different ContextVar"), std::string::npos);
            throw;
          }
        },
        std::invalid_argument);
    b.run([&] {
      try {
        number.reset(token);
        ADD_FAILURE() << "a token made in another context must be refused";
      } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("different Context"), std::string::npos);
      }
    });
    number.reset(token);
    try {
      number.reset(token);
      ADD_FAILURE() << "a token must be refused the second time";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("already been used"), std::string::npos);
    }
  });
}

TEST(Context, RunKeepsWhatItSetsAndTheCallerDoesNotSeeIt) {
  contextvars::Context outer;
  outer.run([] {
    number.set(1);
    contextvars::Context inner = contextvars::copy_context();
    EXPECT_EQ(inner.get(number), 1);
    inner.run([] {
      EXPECT_EQ(number.get(), 1);
      number.set(2);
      request_id.set("inner");
    });
    EXPECT_EQ(number.get(), 1);
    EXPECT_EQ(request_id.get(), "none");
    EXPECT_EQ(inner.get(number), 2);
    EXPECT_EQ(inner.get(request_id), "inner");
    EXPECT_EQ(inner.size(), 2u);
    // A copy shares the values, not the future: setting in one leaves the other.
    contextvars::Context twin = inner.copy();
    EXPECT_FALSE(twin == inner);
    twin.run([] { number.set(3); });
    EXPECT_EQ(inner.get(number), 2);
    EXPECT_EQ(twin.get(number), 3);
  });
}

TEST(Context, EnteringAContextThatIsEnteredIsARuntimeError) {
  contextvars::Context ctx;
  ctx.run([&] {
    try {
      ctx.run([] {});
      ADD_FAILURE() << "entering an entered context must throw";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("already entered"), std::string::npos);
    }
  });
  ctx.run([] {});  // left again: enterable
}

TEST(Context, AVariableDestroyedLeavesNoValueForTheNextOne) {
  contextvars::Context ctx;
  ctx.run([] {
    for (int i = 0; i < 100; ++i) {
      contextvars::ContextVar<int> v("short-lived");
      EXPECT_EQ(v.get(-1), -1) << "a new variable saw an old one's value, round " << i;
      v.set(i);
    }
  });
  EXPECT_EQ(ctx.size(), 100u);  // the values stay until the context goes
}

TEST(Context, ANewThreadStartsWithAnEmptyContext) {
  contextvars::Context ctx;
  ctx.run([] {
    number.set(5);
    int seen = 0;
    std::thread t([&] { seen = number.get(-1); });
    t.join();
    EXPECT_EQ(seen, -1);
  });
}

// ---- tasks ----

TEST(TaskContext, ATaskRunsInACopyOfItsCreatorsContext) {
  run_test([]() -> Coro<void> {
    number.set(1);
    auto child = asyncio::create_task([]() -> Coro<int> {
      const int seen = number.get();
      number.set(2);
      co_await asyncio::sleep(0);
      EXPECT_EQ(number.get(), 2) << "a task keeps what it set across its steps";
      co_return seen;
    }());
    number.set(10);  // after the copy: the child does not see it
    EXPECT_EQ(co_await child, 1);
    EXPECT_EQ(number.get(), 10) << "the child's set must not reach its parent";
    EXPECT_EQ(child.get_context().get(number), 2);
  }());
}

// test_asyncio/test_context.py's test_context_1, as C++: many tasks, each with its own value,
// interleaved at every step; none sees another's.
TEST(TaskContext, InterleavedTasksEachSeeOnlyTheirOwnValue) {
  run_test([]() -> Coro<void> {
    std::vector<asyncio::Task<int>> tasks;
    for (int i = 0; i < 200; ++i) {
      tasks.push_back(asyncio::create_task([](int i) -> Coro<int> {
        EXPECT_EQ(number.get(-1), -1);
        number.set(i);
        int mismatches = 0;
        for (int step = 0; step < 5; ++step) {
          co_await asyncio::sleep(0);
          if (number.get() != i) ++mismatches;
          number.set(i);
        }
        co_return mismatches;
      }(i)));
    }
    for (auto& t : tasks)
      EXPECT_EQ(co_await t, 0);
    EXPECT_EQ(number.get(-1), -1);
  }());
}

TEST(TaskContext, CreateTaskWithAContextRunsInThatContextItself) {
  run_test([]() -> Coro<void> {
    contextvars::Context shared;
    auto writer = asyncio::create_task(
        []() -> Coro<void> {
          number.set(41);
          co_return;
        }(),
        "writer", shared);
    co_await writer;
    EXPECT_EQ(shared.get(number), 41);
    EXPECT_TRUE(writer.get_context() == shared);
    auto reader =
        asyncio::create_task([]() -> Coro<int> { co_return number.get() + 1; }(), "", shared);
    EXPECT_EQ(co_await reader, 42);
    EXPECT_EQ(number.get(-1), -1);
  }());
}

TEST(TaskContext, GetContextIsOneObjectForTheTasksLife) {
  run_test([]() -> Coro<void> {
    asyncio::Event go;
    auto t = asyncio::create_task([](asyncio::Event& go) -> Coro<void> {
      co_await go.wait();
      number.set(3);
    }(go));
    contextvars::Context before = t.get_context();
    EXPECT_FALSE(before.contains(number));
    go.set();
    co_await t;
    EXPECT_TRUE(t.get_context() == before);
    EXPECT_EQ(before.get(number), 3);
  }());
}

// As in asyncio, whose Task.__step runs under the task's context: a task cannot enter its own
// context (it is entered while the task runs), nor can a Context::run nested in it; another task
// may, while this one is parked, and sees what it set.
TEST(TaskContext, ATasksOwnContextIsEnteredWhileItRuns) {
  run_test([]() -> Coro<void> {
    asyncio::Event go;
    auto t = asyncio::create_task([](asyncio::Event& go) -> Coro<void> {
      number.set(5);
      contextvars::Context own = asyncio::current_task().get_context();
      EXPECT_THROW(own.run([] {}), std::runtime_error) << "its own context, from its own step";
      contextvars::Context().run([&own] {
        EXPECT_THROW(own.run([] {}), std::runtime_error) << "still entered under another";
      });
      co_await go.wait();
      EXPECT_THROW(own.run([] {}), std::runtime_error) << "and in every later step";
    }(go));
    co_await asyncio::sleep(0);  // t has run its first step and is parked
    EXPECT_EQ(t.get_context().run([] { return number.get(); }), 5) << "enterable while parked";
    go.set();
    co_await t;
  }());
}

TEST(TaskContext, TaskGroupChildrenCopyTheirCreatorsContext) {
  run_test([]() -> Coro<void> {
    request_id.set("group");
    std::vector<std::string> seen(3);
    contextvars::Context own;
    {
      asyncio::TaskGroup group;
      for (int i = 0; i < 2; ++i) {
        group.create_task([](std::string& out, int i) -> Coro<void> {
          co_await asyncio::sleep(0);
          out = request_id.get();
          request_id.set("child " + std::to_string(i));
        }(seen[i], i));
      }
      group.create_task(
          [](std::string& out) -> Coro<void> {
            out = request_id.get();
            co_return;
          }(seen[2]),
          "own", own);
      co_await group.join();
    }
    EXPECT_EQ(seen[0], "group");
    EXPECT_EQ(seen[1], "group");
    EXPECT_EQ(seen[2], "none") << "a child given its own context does not see the creator's";
    EXPECT_EQ(request_id.get(), "group");
  }());
}

TEST(TaskContext, AnEagerTaskStartsInItsOwnCopy) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    loop.set_task_factory(asyncio::eager_task_factory);
    number.set(1);
    int seen_at_start = 0;
    auto t = asyncio::create_task([](int& seen) -> Coro<void> {
      seen = number.get();
      number.set(2);  // on the creator's stack, but in the task's own context
      co_await asyncio::sleep(0);
      EXPECT_EQ(number.get(), 2);
    }(seen_at_start));
    EXPECT_EQ(seen_at_start, 1);
    EXPECT_EQ(number.get(), 1);
    // Created inside a Context::run: the task copies that context, and does not write to it.
    contextvars::Context side;
    asyncio::Task<int> inner;
    side.run([&] {
      number.set(5);
      inner = asyncio::create_task([]() -> Coro<int> {
        const int v = number.get();
        number.set(6);
        co_return v;
      }());
    });
    EXPECT_EQ(co_await inner, 5);
    EXPECT_EQ(side.get(number), 5);
    co_await t;
    loop.set_task_factory(nullptr);
  }());
}

// ---- callbacks ----

TEST(CallbackContext, CallSoonRunsInACopyTakenWhenItWasScheduled) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    number.set(1);
    asyncio::Future<int> seen;
    loop.call_soon([&] {
      seen.set_result(number.get(-1));
      number.set(100);  // into the callback's own copy
    });
    number.set(2);
    EXPECT_EQ(co_await seen, 1);
    EXPECT_EQ(number.get(), 2);

    asyncio::Future<int> later;
    loop.call_later(0.001, [&] { later.set_result(number.get(-1)); });
    number.set(3);
    EXPECT_EQ(co_await later, 2);
  }());
}

// Scheduled from an empty context, each callback still gets a context of its own: what one sets
// the next does not see, and neither does the thread the loop runs on.
TEST(CallbackContext, CallbacksFromAnEmptyContextDoNotShareWhatTheySet) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    asyncio::Future<int> seen;
    contextvars::Context().run([&] {
      loop.call_soon([] { number.set(100); });
      loop.call_soon([&] { seen.set_result(number.get(-1)); });
    });
    EXPECT_EQ(co_await seen, -1);
  }());
  EXPECT_EQ(number.get(-1), -1) << "a callback's set reached the loop thread's own context";
}

TEST(CallbackContext, ACallbackGivenAContextSetsInThatContext) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    contextvars::Context ctx;
    asyncio::Future<void> done;
    loop.call_soon(
        [&] {
          number.set(8);
          done.set_result();
        },
        ctx);
    co_await done;
    EXPECT_EQ(ctx.get(number), 8);
    EXPECT_EQ(number.get(-1), -1);
    asyncio::Future<void> timed;
    loop.call_at(
        loop.time(),
        [&] {
          number.set(9);
          timed.set_result();
        },
        ctx);
    co_await timed;
    EXPECT_EQ(ctx.get(number), 9);
    // While its callback runs, the context is entered: entering it again there is refused.
    asyncio::Future<bool> refused;
    loop.call_soon(
        [&] {
          try {
            ctx.run([] {});
            refused.set_result(false);
          } catch (const std::runtime_error&) {
            refused.set_result(true);
          }
        },
        ctx);
    EXPECT_TRUE(co_await refused);
    ctx.run([] {});  // and left again after it
  }());
}

TEST(CallbackContext, ADoneCallbackRunsInTheContextOfWhoAddedIt) {
  run_test([]() -> Coro<void> {
    asyncio::Future<int> f;
    asyncio::Future<int> seen;
    request_id.set("adder");
    f.add_done_callback(
        [&](asyncio::Future<int>) { seen.set_result(request_id.get() == "adder"); });
    auto completer = asyncio::create_task([](asyncio::Future<int>& f) -> Coro<void> {
      request_id.set("completer");
      f.set_result(1);
      co_return;
    }(f));
    request_id.set("changed");
    co_await completer;
    EXPECT_EQ(co_await seen, 1);
  }());
}

TEST(CallbackContext, CallSoonThreadsafeCarriesTheCallingThreadsContext) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    number.set(1);
    asyncio::Future<int> seen;
    std::thread t([&] {
      contextvars::Context mine;
      mine.run([&] {
        number.set(77);
        loop.call_soon_threadsafe([&] { seen.set_result(number.get(-1)); });
      });
    });
    const int v = co_await asyncio::wait_for(seen, 10);
    t.join();
    EXPECT_EQ(v, 77);
    EXPECT_EQ(number.get(), 1);
  }());
}

// ---- servers ----

// asyncio starts each connection's handler from the server's accept callback, which runs in a
// copy of the context start_server was called in: a value set before start_server reaches every
// handler, one set after it does not, and a handler's own set() stays in its connection.
TEST(ServerContext, HandlersRunInACopyOfTheContextThatStartedTheServer) {
  run_test([]() -> Coro<void> {
    request_id.set("server");
    std::vector<std::string> seen;
    auto server = co_await asyncio::start_server(
        [&seen](asyncio::StreamReader r, asyncio::StreamWriter w) -> Coro<void> {
          seen.push_back(request_id.get());
          request_id.set("handler " + std::to_string(seen.size()));
          co_await r.readline();
          w.write(request_id.get() + "\n");
          co_await w.drain();
          w.close();
        },
        "127.0.0.1", 0);
    request_id.set("after");
    for (int i = 1; i <= 2; ++i) {
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
      w.write("hi\n");
      EXPECT_EQ(co_await r.readline(), "handler " + std::to_string(i) + "\n");
      w.close();
      co_await w.wait_closed();
    }
    EXPECT_EQ(seen, (std::vector<std::string>{"server", "server"}));
    EXPECT_EQ(request_id.get(), "after");
    server.close();
    co_await server.wait_closed();
  }());
}

// ---- threads and runners ----

TEST(ThreadContext, ToThreadCopiesTheContextAndRunInExecutorDoesNot) {
  run_test([]() -> Coro<void> {
    request_id.set("caller");
    const std::string in_thread = co_await asyncio::to_thread([] {
      std::string seen = request_id.get();
      request_id.set("worker");  // into the copy
      return seen;
    });
    EXPECT_EQ(in_thread, "caller");
    EXPECT_EQ(request_id.get(), "caller");
    const std::string plain = co_await asyncio::get_running_loop().run_in_executor(
        nullptr, [] { return request_id.get(); });
    EXPECT_EQ(plain, "none");
    // And the worker's own context was not touched by to_thread's copy.
    const std::string again = co_await asyncio::get_running_loop().run_in_executor(
        nullptr, [] { return request_id.get(); });
    EXPECT_EQ(again, "none");
  }());
}

TEST(RunnerContext, RunsShareTheRunnersContextAndTheCallerKeepsItsOwn) {
  int result = 0;
  std::thread t([&] {
    number.set(1);  // this thread's own context
    {
      asyncio::Runner runner;
      runner.run([]() -> Coro<void> {
        EXPECT_EQ(number.get(), 1);
        number.set(2);
        co_return;
      }());
      result = runner.run([]() -> Coro<int> { co_return number.get(); }());
      contextvars::Context other;
      EXPECT_EQ(runner.run([]() -> Coro<int> { co_return number.get(-1); }(), other), -1);
    }
    EXPECT_EQ(number.get(), 1);
    EXPECT_EQ(asyncio::run([]() -> Coro<int> { co_return number.get(); }()), 1);
  });
  t.join();
  EXPECT_EQ(result, 2);
}

// Under ASan/LSan: contexts shared by many tasks and callbacks, and dropped, leave nothing.
TEST(TaskContext, ManyTasksSettingAndCopyingLeaveNoLeak) {
  run_test([]() -> Coro<void> {
    number.set(0);
    std::vector<asyncio::Task<int>> tasks;
    for (int i = 0; i < 2000; ++i) {
      tasks.push_back(asyncio::create_task([](int i) -> Coro<int> {
        auto token = number.set(i);
        auto grandchild = asyncio::create_task([]() -> Coro<int> { co_return number.get(); }());
        asyncio::get_running_loop().call_soon([] { number.set(-5); });
        const int g = co_await grandchild;
        number.reset(token);
        co_return g - i + number.get();
      }(i)));
    }
    int sum = 0;
    for (auto& t : tasks)
      sum += co_await t;
    EXPECT_EQ(sum, 0);
  }());
}
