// tests/test_time.cpp — gilio/time.hpp: sleep blocks for its length with the GIL released.
// Sleeps last their length, sleeping threads overlap and release the GIL meanwhile, and a
// negative or NaN length is a clear error.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <limits>
#include <stdexcept>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "gilio/time.hpp"

namespace gil = gilio::gil;
namespace threading = gilio::threading;

TEST(Sleep, SleepsAtLeastItsLength) {
  const double t0 = gilio::time::monotonic();
  gilio::time::sleep(0.03);
  EXPECT_GE(gilio::time::monotonic() - t0, 0.029);
  const double t1 = gilio::time::monotonic();
  gilio::time::sleep(std::chrono::milliseconds(20));
  EXPECT_GE(gilio::time::monotonic() - t1, 0.019);
}

TEST(Sleep, SleepingThreadsOverlap) {
  // Eight threads each sleep 100 ms holding the GIL before and after: if sleep kept the GIL,
  // this would take 800 ms.
  std::vector<threading::Thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([] { gilio::time::sleep(0.1); });
  const double t0 = gilio::time::monotonic();
  for (auto& t : threads)
    t.start();
  for (auto& t : threads)
    t.join();
  EXPECT_LT(gilio::time::monotonic() - t0, 0.7);
}

TEST(Sleep, SleepReleasesTheGil) {
  gil::acquire();
  std::atomic<bool> ran{false};
  threading::Thread t([&] { ran = true; });
  t.start();
  for (int i = 0; i < 1000 && !ran.load(); ++i)
    gilio::time::sleep(0.01);
  EXPECT_TRUE(ran.load());
  EXPECT_TRUE(gil::held());
  t.join();
  gil::release();
}

TEST(SleepErrors, NegativeOrNaNIsRejected) {
  EXPECT_THROW(gilio::time::sleep(-0.001), std::invalid_argument);
  EXPECT_THROW(gilio::time::sleep(std::numeric_limits<double>::quiet_NaN()), std::invalid_argument);
  EXPECT_THROW(gilio::time::sleep(std::chrono::milliseconds(-1)), std::invalid_argument);
}
