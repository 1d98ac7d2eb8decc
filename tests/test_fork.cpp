// tests/test_fork.cpp — after fork() the child has a fresh GIL of its own (CPython's
// _PyEval_ReInitThreads), even when the parent had other threads holding and passing the GIL at
// the moment of the fork. The child reports through its exit status; the parent waits for it
// with a deadline, so a child that deadlocks on an inherited lock fails the test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "gilio/time.hpp"
#include "support.hpp"

namespace gil = gilio::gil;
namespace threading = gilio::threading;

namespace {

using gilio::testing::wait_child;

// What a child checks: it can use the GIL, threads and sleep on its own.
int child_checks(bool expect_held) {
  if (gil::held() != expect_held) return 10;
  if (!expect_held) gil::acquire();
  gil::checkpoint();
  const gil::Stats s = gil::stats();
  if (s.threads.size() != 1) return 11;  // only the forking thread exists here
#ifndef __SANITIZE_THREAD__  // TSan cannot start threads in the child of a threaded fork
  int value = 0;
  threading::Thread t([&] { value = 5; });
  t.start();
  t.join();  // the child's own GIL passes to the new thread and back
  if (value != 5) return 12;
#endif
  gilio::time::sleep(0.001);
  if (!gil::held()) return 13;
  gil::release();
  return 0;
}

struct BusyThreads {
  std::atomic<bool> stop{false};
  std::vector<threading::Thread> threads;
  explicit BusyThreads(int n) {
    gil::set_switch_interval(0.0002);
    for (int i = 0; i < n; ++i) {
      threads.emplace_back([this] {
        while (!stop.load())
          gil::checkpoint();
      });
    }
    for (auto& t : threads)
      t.start();
    gilio::testing::spin_until([] { return gil::stats().switches > 10; });
  }
  ~BusyThreads() {
    stop = true;
    for (auto& t : threads)
      t.join();
  }
};

}  // namespace

TEST(Fork, ChildOfAHolderKeepsTheGilAndCanUseIt) {
  BusyThreads busy(2);
  for (int round = 0; round < 20; ++round) {
    gil::acquire();  // as in CPython, the forking thread holds the GIL
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(child_checks(true));
    gil::release();
    ASSERT_EQ(wait_child(pid), 0) << "round " << round;
  }
}

TEST(Fork, ChildOfANonHolderGetsAFreeGil) {
  BusyThreads busy(2);
  for (int round = 0; round < 20; ++round) {
    const pid_t pid = ::fork();  // other threads hold and pass the GIL right now
    if (pid == 0) ::_exit(child_checks(false));
    ASSERT_EQ(wait_child(pid), 0) << "round " << round;
  }
}
