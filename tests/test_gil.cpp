// tests/test_gil.cpp — the GIL's contract (gilio/gil.hpp): mutual exclusion, the switch
// interval, forced switching, the three modes, stats, the trace file, and every bad input.
//
// Each TEST runs in its own process (gtest_discover_tests), so a test may choose its mode.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "gilio/time.hpp"
#include "gilio/trace.hpp"
#include "support.hpp"

namespace gil = gilio::gil;
namespace threading = gilio::threading;
using gilio::testing::seconds_since;
using gilio::testing::spin_until;
using Clock = std::chrono::steady_clock;

TEST(Gil, DefaultsMatchCPython) {
  EXPECT_EQ(gil::mode(), gil::Mode::cpython);
  EXPECT_DOUBLE_EQ(gil::get_switch_interval(), 0.005);
  EXPECT_FALSE(gil::held());
}

TEST(Gil, AcquireAndRelease) {
  gil::acquire();
  EXPECT_TRUE(gil::held());
  gil::checkpoint();  // nobody waits: a no-op
  EXPECT_TRUE(gil::held());
  gil::release();
  EXPECT_FALSE(gil::held());
}

TEST(Gil, MutualExclusionUnderEightThreads) {
  gil::set_switch_interval(0.0001);  // many switches in a short run
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  std::atomic<bool> stop{false};
  std::vector<threading::Thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        const int now = inside.fetch_add(1) + 1;
        int seen = most_inside.load();
        while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
        }
        for (int k = 0; k < 50; ++k)
          std::atomic_signal_fence(std::memory_order_seq_cst);
        inside.fetch_sub(1);
        gil::checkpoint();
      }
    });
  }
  for (auto& t : threads)
    t.start();
  // Let them fight until the GIL has changed hands many times (bounded).
  const bool switched = spin_until([] { return gil::stats().switches >= 200; }, 20.0,
                                   [] { gilio::time::sleep(0.001); });
  stop = true;
  for (auto& t : threads)
    t.join();
  EXPECT_TRUE(switched) << "only " << gil::stats().switches << " switches";
  EXPECT_EQ(most_inside.load(), 1) << "two threads held the GIL at once";
}

TEST(Gil, WaiterGetsItAfterAboutOneIntervalWhileHolderSpins) {
  const double interval = 0.02;
  gil::set_switch_interval(interval);
  std::atomic<bool> holder_ready{false};
  std::atomic<bool> waiter_done{false};
  threading::Thread holder([&] {
    holder_ready = true;
    while (!waiter_done.load())
      gil::checkpoint();
  });
  holder.start();
  ASSERT_TRUE(spin_until([&] { return holder_ready.load(); }));
  const auto t0 = Clock::now();
  gil::acquire();  // the holder never blocks: only a drop request can get us the GIL
  const double waited = seconds_since(t0);
  gil::release();
  waiter_done = true;
  holder.join();
  // CPython's algorithm: the first timed wait must expire before the drop request is made.
  EXPECT_GE(waited, interval * 0.9);
  EXPECT_LT(waited, interval * 50) << "waited far more than a few switch intervals";
  EXPECT_GE(gil::stats().drop_requests, 1u);
}

TEST(Gil, ForcedSwitchingAlternatesHolders) {
  gil::set_switch_interval(0.001);
  std::atomic<int> last_runner{-1};
  std::atomic<int> turns[2] = {0, 0};
  std::atomic<bool> stop{false};
  auto body = [&](int me) {
    while (!stop.load()) {
      if (last_runner.exchange(me) != me) turns[me].fetch_add(1);
      gil::checkpoint();
    }
  };
  threading::Thread a(body, 0), b(body, 1);
  a.start();
  b.start();
  const bool alternated = spin_until([&] { return turns[0].load() >= 10 && turns[1].load() >= 10; },
                                     20.0, [] { gilio::time::sleep(0.001); });
  stop = true;
  a.join();
  b.join();
  EXPECT_TRUE(alternated) << "turns: " << turns[0] << " / " << turns[1];
  const gil::Stats s = gil::stats();
  EXPECT_GE(s.forced_switches, 10u);
  EXPECT_GE(s.switches, 20u);
}

TEST(Gil, ReleasedLetsOthersRun) {
  gil::acquire();
  std::atomic<bool> ran{false};
  threading::Thread t([&] { ran = true; });  // needs the GIL to run its target
  t.start();
  {
    gil::Released nogil;
    EXPECT_FALSE(gil::held());
    EXPECT_TRUE(spin_until([&] { return ran.load(); }));
  }
  EXPECT_TRUE(gil::held());
  t.join();
  gil::release();
}

TEST(Gil, ReleasedWithoutTheGilIsANoOp) {
  EXPECT_FALSE(gil::held());
  {
    gil::Released nogil;
    EXPECT_FALSE(gil::held());
  }
  EXPECT_FALSE(gil::held());
}

TEST(Gil, OffModeRunsTwoLoopsInParallel) {
  gil::set_mode(gil::Mode::off);
  std::atomic<int> inside{0};
  std::atomic<bool> both{false};
  auto body = [&] {
    inside.fetch_add(1);
    // No checkpoint, no release: under a real GIL the other thread could never get in.
    both = spin_until([&] { return inside.load() == 2; }, 10.0, [] {});
  };
  threading::Thread a(body), b(body);
  a.start();
  b.start();
  a.join();
  b.join();
  EXPECT_TRUE(both.load()) << "two threads never ran interpreter code at the same time";
  EXPECT_EQ(gil::stats().switches, 0u);
}

TEST(Gil, IoPriorityHandsOverOnReturnFromBlockingCall) {
  gil::set_mode(gil::Mode::io_priority);
  gil::set_switch_interval(2.0);
  std::atomic<bool> holder_ready{false};
  std::atomic<bool> done{false};
  threading::Thread holder([&] {
    holder_ready = true;
    while (!done.load())
      gil::checkpoint();
  });
  gil::acquire();
  holder.start();
  Clock::time_point t0;
  {
    gil::Released nogil;
    ASSERT_TRUE(spin_until([&] { return holder_ready.load(); }));
    t0 = Clock::now();
  }
  const double waited = seconds_since(t0);
  done = true;
  holder.join();
  gil::release();
  EXPECT_LT(waited, 1.0) << "io_priority still waited for the 2 s switch interval";
  EXPECT_GE(gil::stats().drop_requests, 1u);
}

TEST(Gil, CPythonModeMakesTheReturningThreadWaitAnInterval) {
  gil::set_switch_interval(0.5);
  std::atomic<bool> holder_ready{false};
  std::atomic<bool> done{false};
  threading::Thread holder([&] {
    holder_ready = true;
    while (!done.load())
      gil::checkpoint();
  });
  gil::acquire();
  holder.start();
  Clock::time_point t0;
  {
    gil::Released nogil;
    ASSERT_TRUE(spin_until([&] { return holder_ready.load(); }));
    t0 = Clock::now();
  }
  const double waited = seconds_since(t0);
  done = true;
  holder.join();
  gil::release();
  EXPECT_GE(waited, 0.45) << "the convoy effect needs a whole interval of waiting";
}

TEST(Gil, StatsCountHoldAndWaitPerThread) {
  gil::set_switch_interval(0.001);
  std::atomic<bool> stop{false};
  auto spin = [&] {
    while (!stop.load())
      gil::checkpoint();
  };
  threading::Thread a(spin), b(spin);
  a.set_name("spinner-a");
  b.set_name("spinner-b");
  a.start();
  b.start();
  spin_until([] { return gil::stats().switches >= 20; }, 20.0, [] { gilio::time::sleep(0.002); });
  stop = true;
  a.join();
  b.join();
  const gil::Stats s = gil::stats();
  EXPECT_GE(s.switches, 20u);
  EXPECT_GE(s.drop_requests, 10u);
  int found = 0;
  for (const auto& t : s.threads) {
    if (t.name != "spinner-a" && t.name != "spinner-b") continue;
    ++found;
    EXPECT_FALSE(t.alive);
    EXPECT_GE(t.acquisitions, 5u);
    EXPECT_GT(t.hold_seconds, 0.0);
    EXPECT_GT(t.wait_seconds, 0.0);
  }
  EXPECT_EQ(found, 2);

  gil::reset_stats();
  const gil::Stats z = gil::stats();
  EXPECT_EQ(z.switches, 0u);
  EXPECT_EQ(z.drop_requests, 0u);
  for (const auto& t : z.threads)
    EXPECT_TRUE(t.alive) << t.name << " should be forgotten";
}

TEST(Gil, HoldTimeOfTheCurrentHolderIsCounted) {
  gil::set_thread_name("main-holder");
  gil::acquire();
  gilio::time::sleep(0);  // the GIL is dropped and retaken around the sleep
  const auto t0 = Clock::now();
  while (seconds_since(t0) < 0.02)
    gil::checkpoint();
  double hold = 0;
  for (const auto& t : gil::stats().threads)
    if (t.name == "main-holder") hold = t.hold_seconds;
  gil::release();
  EXPECT_GE(hold, 0.019);
}

TEST(Gil, TraceWritesChromeTimeline) {
  const std::string path = ::testing::TempDir() + "gilio_trace_test.json";
  ASSERT_EQ(::setenv("GILIO_TRACE", path.c_str(), 1), 0);  // read at first use, in this process
  gil::set_switch_interval(0.001);
  std::atomic<bool> stop{false};
  auto spin = [&] {
    while (!stop.load())
      gil::checkpoint();
  };
  threading::Thread a(spin), b(spin);
  a.set_name("traced-a");
  a.start();
  b.start();
  spin_until([] { return gil::stats().switches >= 6; }, 20.0, [] { gilio::time::sleep(0.002); });
  stop = true;
  a.join();
  b.join();
  ASSERT_TRUE(gilio::trace::enabled());
  gilio::trace::flush();
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string json = ss.str();
  EXPECT_EQ(json.rfind("{\"displayTimeUnit\"", 0), 0u);
  EXPECT_NE(json.find("\"traceEvents\""), std::string::npos);
  EXPECT_NE(json.find("\"holding the GIL\""), std::string::npos);
  EXPECT_NE(json.find("\"waiting for the GIL\""), std::string::npos);
  EXPECT_NE(json.find("\"drop request\""), std::string::npos);
  EXPECT_NE(json.find("\"traced-a\""), std::string::npos);
  EXPECT_NE(json.find("\"lost_events\":0"), std::string::npos);
  std::remove(path.c_str());
}

TEST(GilErrors, NonPositiveSwitchIntervalIsRejected) {
  EXPECT_THROW(gil::set_switch_interval(0), std::invalid_argument);
  EXPECT_THROW(gil::set_switch_interval(-1e-3), std::invalid_argument);
  EXPECT_THROW(gil::set_switch_interval(std::numeric_limits<double>::quiet_NaN()),
               std::invalid_argument);
  EXPECT_DOUBLE_EQ(gil::get_switch_interval(), 0.005) << "a rejected value must change nothing";
  gil::set_switch_interval(5e-10);  // tiny but positive: accepted, as in CPython
  EXPECT_DOUBLE_EQ(gil::get_switch_interval(), 5e-10);
}

TEST(GilErrors, ReleaseByANonHolderIsALogicError) {
  try {
    gil::release();
    FAIL() << "release() without the GIL did not throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not hold"), std::string::npos) << e.what();
  }
}

TEST(GilErrors, AcquireTwiceIsALogicError) {
  gil::acquire();
  EXPECT_THROW(gil::acquire(), std::logic_error);
  EXPECT_TRUE(gil::held());
  gil::release();
}

TEST(GilErrors, SetModeAfterFirstUseIsALogicError) {
  gil::set_mode(gil::Mode::io_priority);  // before first use: fine
  gil::acquire();
  gil::release();
  try {
    gil::set_mode(gil::Mode::off);
    FAIL() << "set_mode after first use did not throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("already in use"), std::string::npos) << e.what();
  }
  EXPECT_EQ(gil::mode(), gil::Mode::io_priority);
}

TEST(GilErrors, BadModeNamesAreRejected) {
  EXPECT_EQ(gil::parse_mode("off"), gil::Mode::off);
  EXPECT_EQ(gil::parse_mode("io_priority"), gil::Mode::io_priority);
  EXPECT_THROW(gil::parse_mode("fast"), std::invalid_argument);
  EXPECT_THROW(gil::parse_mode(""), std::invalid_argument);
}

TEST(GilEnv, ModeAndIntervalComeFromTheEnvironment) {
  ASSERT_EQ(::setenv("GILIO_GIL", "io_priority", 1), 0);
  ASSERT_EQ(::setenv("GILIO_SWITCH_INTERVAL", "0.25", 1), 0);
  EXPECT_EQ(gil::mode(), gil::Mode::io_priority);
  EXPECT_DOUBLE_EQ(gil::get_switch_interval(), 0.25);
}

TEST(GilEnv, BadEnvironmentValueNamesTheVariable) {
  ASSERT_EQ(::setenv("GILIO_SWITCH_INTERVAL", "-3", 1), 0);
  try {
    (void)gil::get_switch_interval();
    FAIL() << "a negative GILIO_SWITCH_INTERVAL was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("GILIO_SWITCH_INTERVAL"), std::string::npos) << e.what();
  }
}

TEST(GilExit, AThreadThatExitsHoldingTheGilDropsIt) {
  std::thread t([] { gil::acquire(); });  // a plain thread that forgets to release
  t.join();
  const auto t0 = Clock::now();
  gil::acquire();  // would wait forever if the dead thread still held it
  EXPECT_LT(seconds_since(t0), 5.0);
  gil::release();
}
