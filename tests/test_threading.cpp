// tests/test_threading.cpp — gilio/threading.hpp: Thread, Lock and Event, and that every
// blocking wait among them lets other threads take the GIL.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "gilio/time.hpp"
#include "support.hpp"

namespace gil = gilio::gil;
namespace threading = gilio::threading;
using gilio::testing::seconds_since;
using gilio::testing::spin_until;
using Clock = std::chrono::steady_clock;

TEST(Thread, RunsTargetHoldingTheGilWithItsArguments) {
  std::atomic<bool> held_inside{false};
  int sum = 0;
  threading::Thread t(
      [&](int a, int b) {
        held_inside = gil::held();
        sum = a + b;
      },
      2, 40);
  EXPECT_FALSE(t.is_alive());
  t.start();
  t.join();
  EXPECT_TRUE(held_inside.load());
  EXPECT_EQ(sum, 42);
  EXPECT_FALSE(t.is_alive());
}

TEST(Thread, NamesAreThreadN) {
  threading::Thread a([] {}), b([] {});
  EXPECT_EQ(a.name().rfind("Thread-", 0), 0u);
  EXPECT_NE(a.name(), b.name());
  a.set_name("worker");
  EXPECT_EQ(a.name(), "worker");
}

TEST(Thread, JoinReleasesTheGil) {
  gil::acquire();
  int value = 0;
  threading::Thread t([&] { value = 7; });  // cannot run unless join() lets go of the GIL
  t.start();
  t.join();
  EXPECT_TRUE(gil::held());
  EXPECT_EQ(value, 7);
  gil::release();
}

TEST(Thread, JoinWithTimeoutReturnsWhileStillAlive) {
  threading::Event go;
  threading::Thread t([&] { go.wait(); });
  t.start();
  const auto t0 = Clock::now();
  t.join(0.05);
  EXPECT_GE(seconds_since(t0), 0.04);
  EXPECT_TRUE(t.is_alive());
  go.set();
  t.join();
  EXPECT_FALSE(t.is_alive());
}

TEST(Thread, AnExceptionEndsOnlyThatThread) {
  threading::Thread t([] { throw std::runtime_error("boom"); });
  t.start();
  t.join();
  EXPECT_FALSE(t.is_alive());
  gil::acquire();  // the failed thread dropped the GIL on its way out
  EXPECT_TRUE(gil::held());
  gil::release();
}

TEST(Thread, DestructorJoins) {
  std::atomic<bool> done{false};
  {
    threading::Thread t([&] {
      gilio::time::sleep(0.02);
      done = true;
    });
    t.start();
  }
  EXPECT_TRUE(done.load());
}

TEST(ThreadErrors, JoinBeforeStartIsALogicError) {
  threading::Thread t([] {});
  try {
    t.join();
    FAIL() << "join() before start() did not throw";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("never started"), std::string::npos) << e.what();
  }
}

TEST(ThreadErrors, StartTwiceIsALogicError) {
  threading::Thread t([] {});
  t.start();
  EXPECT_THROW(t.start(), std::logic_error);
  t.join();
}

TEST(ThreadErrors, JoiningItselfIsALogicError) {
  std::atomic<bool> threw{false};
  std::atomic<threading::Thread*> self{nullptr};
  threading::Thread t([&] {
    spin_until([&] { return self.load() != nullptr; });
    try {
      self.load()->join();
    } catch (const std::logic_error&) {
      threw = true;
    }
  });
  t.start();
  self = &t;
  t.join();
  EXPECT_TRUE(threw.load());
}

TEST(Lock, BasicAcquireRelease) {
  threading::Lock lock;
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(lock.acquire());
  EXPECT_TRUE(lock.locked());
  EXPECT_FALSE(lock.acquire(false));
  const auto t0 = Clock::now();
  EXPECT_FALSE(lock.acquire(true, 0.05));
  EXPECT_GE(seconds_since(t0), 0.04);
  lock.release();
  EXPECT_FALSE(lock.locked());
  {
    std::lock_guard guard(lock);
    EXPECT_TRUE(lock.locked());
  }
  EXPECT_FALSE(lock.locked());
}

TEST(Lock, ContentionUnderTheGilDoesNotDeadlock) {
  gil::set_switch_interval(0.0005);
  threading::Lock lock;
  long counter = 0;  // protected by `lock`, not by the GIL: we give the GIL up inside
  std::vector<threading::Thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 300; ++k) {
        std::lock_guard guard(lock);
        const long seen = counter;
        gil::checkpoint();
        if (k % 50 == 0) gilio::time::sleep(0);  // drop the GIL while holding the lock
        counter = seen + 1;
      }
    });
  }
  for (auto& t : threads)
    t.start();
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(counter, 1200);
}

TEST(Lock, BlockedAcquireReleasesTheGil) {
  threading::Lock lock;
  lock.acquire();
  threading::Thread releaser([&] { lock.release(); });  // needs the GIL to run
  gil::acquire();
  releaser.start();
  EXPECT_TRUE(lock.acquire(true, 10.0)) << "acquire() kept the GIL, so the owner never ran";
  gil::release();
  releaser.join();
}

TEST(LockErrors, ReleasingAnUnlockedLockThrows) {
  threading::Lock lock;
  EXPECT_THROW(lock.release(), std::runtime_error);
}

TEST(LockErrors, BadTimeoutsAreRejected) {
  threading::Lock lock;
  EXPECT_THROW(lock.acquire(false, 1.0), std::invalid_argument);
  EXPECT_THROW(lock.acquire(true, -5.0), std::invalid_argument);
  EXPECT_FALSE(lock.locked());
}

TEST(Event, SetClearWait) {
  threading::Event ev;
  EXPECT_FALSE(ev.is_set());
  EXPECT_FALSE(ev.wait(0.01));
  ev.set();
  EXPECT_TRUE(ev.is_set());
  EXPECT_TRUE(ev.wait());
  ev.clear();
  EXPECT_FALSE(ev.is_set());
}

TEST(Event, WaitReleasesTheGil) {
  threading::Event ev;
  threading::Thread setter([&] { ev.set(); });
  gil::acquire();
  setter.start();
  EXPECT_TRUE(ev.wait(10.0));
  EXPECT_TRUE(gil::held());
  gil::release();
  setter.join();
}
