// tests/test_signals.cpp — EventLoop::add_signal_handler / remove_signal_handler
// (runtime/unix_events.cpp), after the ideas of Lib/test/test_asyncio/test_unix_events.py: real
// signals sent to this process, handlers that run on the loop, the errors asyncio raises, the
// default action restored, and a forked child that does not inherit the loop's handlers.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <thread>

#include "asyncio_support.hpp"
#include "support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::asleep;
using gilio::testing::run_test;
using gilio::testing::spin_until;
using gilio::testing::this_tid;

namespace {

bool has_default_action(int sig) {
  struct sigaction now;
  ::sigaction(sig, nullptr, &now);
  return now.sa_handler == SIG_DFL;
}

// Blocks `sig` in the calling thread for its scope (a new thread inherits the mask).
class Blocked {
 public:
  explicit Blocked(int sig) {
    sigset_t set;
    ::sigemptyset(&set);
    ::sigaddset(&set, sig);
    ::pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~Blocked() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

}  // namespace

TEST(Signals, AHandlerRunsOnTheLoopAsACallback) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    asyncio::Event got;
    pid_t ran_on = 0;
    bool ran_inside_kill = false, in_kill = false;
    loop.add_signal_handler(SIGUSR1, [&] {
      ran_on = this_tid();
      ran_inside_kill = in_kill;
      got.set();  // an asyncio object: safe here, in a callback of the loop
    });
    in_kill = true;
    EXPECT_EQ(::kill(::getpid(), SIGUSR1), 0);  // a signal to oneself arrives before kill returns
    in_kill = false;
    EXPECT_FALSE(got.is_set()) << "the handler must wait for the loop, not run in the signal";
    co_await asyncio::wait_for(got.wait(), 10.0);
    EXPECT_EQ(ran_on, this_tid());
    EXPECT_FALSE(ran_inside_kill);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
  }());
  EXPECT_TRUE(has_default_action(SIGUSR1));
}

// The real handler runs on whichever thread the kernel picks; here the loop's thread blocks the
// signal, so it runs on another thread and must wake the loop from its io_uring wait.
TEST(Signals, ASignalCaughtOnAnotherThreadWakesAnIdleLoop) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const pid_t loop_tid = this_tid();
    std::atomic<bool> loop_slept{false};
    asyncio::Event got;
    loop.add_signal_handler(SIGUSR2, [&] { got.set(); });
    std::jthread sender;  // joined also when the wait below fails
    {
      Blocked blocked(SIGUSR2);  // the loop's thread only
      sender = std::jthread([&] {
        sigset_t none;
        ::sigemptyset(&none);
        ::pthread_sigmask(SIG_SETMASK, &none, nullptr);
        // Send once the loop sleeps (bounded: without it the test still checks delivery).
        loop_slept = spin_until([&] { return asleep(loop_tid); }, 10.0);
        ::kill(::getpid(), SIGUSR2);
      });
      co_await asyncio::wait_for(got.wait(), 10.0);  // the only timers: these deadlines
    }
    sender.join();
    EXPECT_TRUE(loop_slept) << "the loop never slept, so the wake-up went untested";
    loop.remove_signal_handler(SIGUSR2);
  }());
}

// Many deliveries between two iterations of the loop: one call each, none merged or lost.
// (A real-time signal, so that the kernel never merges two either.)
TEST(Signals, EveryDeliveryRunsTheHandlerOnce) {
  const int sig = SIGRTMIN + 1;
  run_test([sig]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    constexpr int kSent = 200;
    int calls = 0;
    asyncio::Event all;
    loop.add_signal_handler(sig, [&] {
      if (++calls == kSent) all.set();
    });
    for (int i = 0; i < kSent; ++i)
      EXPECT_EQ(::kill(::getpid(), sig), 0) << "kill: errno " << errno;
    EXPECT_EQ(calls, 0);  // all of them wait for the loop's next iteration
    co_await asyncio::wait_for(all.wait(), 10.0);
    co_await asyncio::sleep(0);  // a surplus call, queued with the rest, would have run by now
    EXPECT_EQ(calls, kSent);
    loop.remove_signal_handler(sig);
  }());
}

TEST(Signals, BadNumbersAndSignalsThatCannotBeCaughtAreClearErrors) {
  asyncio::EventLoop loop;
  for (int bad : {0, -1, NSIG, 1000, 32}) {  // 32: one of the two glibc keeps for itself
    try {
      loop.add_signal_handler(bad, [] {});
      ADD_FAILURE() << "signal " << bad << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("invalid signal number " + std::to_string(bad)),
                std::string::npos)
          << e.what();
    }
    EXPECT_THROW(loop.remove_signal_handler(bad), std::invalid_argument);
  }
  for (int uncatchable : {SIGKILL, SIGSTOP}) {
    try {
      loop.add_signal_handler(uncatchable, [] {});
      ADD_FAILURE() << "signal " << uncatchable << " was accepted";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot be caught"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(has_default_action(uncatchable));
  }
  EXPECT_THROW(loop.add_signal_handler(SIGUSR1, std::function<void()>()), std::invalid_argument);
  EXPECT_TRUE(has_default_action(SIGUSR1));
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));  // none there
  loop.close();
  EXPECT_THROW(loop.add_signal_handler(SIGUSR1, [] {}), std::runtime_error);
}

TEST(Signals, RemovalAndCloseRestoreTheDefaultAction) {
  {
    asyncio::EventLoop loop;
    loop.add_signal_handler(SIGUSR1, [] {});
    loop.add_signal_handler(SIGHUP, [] {});
    EXPECT_FALSE(has_default_action(SIGUSR1));
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_TRUE(has_default_action(SIGUSR1));
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_FALSE(has_default_action(SIGHUP));
    loop.close();
    EXPECT_TRUE(has_default_action(SIGHUP));
  }
  {
    asyncio::EventLoop loop;
    loop.add_signal_handler(SIGHUP, [] {});
  }  // the destructor closes it
  EXPECT_TRUE(has_default_action(SIGHUP));
}

TEST(Signals, ASignalBelongsToOneLoopAtATime) {
  asyncio::EventLoop first, second;
  first.add_signal_handler(SIGUSR1, [] {});
  try {
    second.add_signal_handler(SIGUSR1, [] {});
    ADD_FAILURE() << "two loops handle one signal";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another event loop"), std::string::npos) << e.what();
  }
  second.add_signal_handler(SIGUSR2, [] {});  // another signal is free
  EXPECT_TRUE(first.remove_signal_handler(SIGUSR1));
  second.add_signal_handler(SIGUSR1, [] {});  // and this one is, now
  second.close();
  first.close();
  EXPECT_TRUE(has_default_action(SIGUSR1));
  EXPECT_TRUE(has_default_action(SIGUSR2));
}

TEST(Signals, AHandlerCanBeReplacedAndCanRemoveItself) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    int old_calls = 0, new_calls = 0;
    asyncio::Event got;
    loop.add_signal_handler(SIGUSR1, [&] { ++old_calls; });
    ::signal(SIGUSR1, SIG_IGN);             // someone else's change, which a second add undoes
    loop.add_signal_handler(SIGUSR1, [&] {  // replaces the first
      ++new_calls;
      EXPECT_TRUE(asyncio::get_running_loop().remove_signal_handler(SIGUSR1));
      got.set();
    });
    ::kill(::getpid(), SIGUSR1);
    co_await asyncio::wait_for(got.wait(), 10.0);
    EXPECT_EQ(old_calls, 0);
    EXPECT_EQ(new_calls, 1);
    EXPECT_TRUE(has_default_action(SIGUSR1));
  }());
}

// The way servers use it: SIGTERM stops run_forever, and the loop closes cleanly.
TEST(Signals, SigtermStopsALoopRunningForever) {
  asyncio::EventLoop loop;
  bool stopped_by_signal = false;
  loop.add_signal_handler(SIGTERM, [&] {
    stopped_by_signal = true;
    loop.stop();
  });
  loop.call_soon([] { ::kill(::getpid(), SIGTERM); });
  auto deadline = loop.call_later(10.0, [&] { loop.stop(); });  // bounds a broken delivery
  loop.run_forever();
  deadline.cancel();
  EXPECT_TRUE(stopped_by_signal);
  loop.close();
  EXPECT_TRUE(has_default_action(SIGTERM));
}

TEST(Signals, AForkedChildStartsWithTheDefaultActions) {
  asyncio::EventLoop loop;
  loop.add_signal_handler(SIGUSR1, [] {});
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(has_default_action(SIGUSR1) ? 0 : 1);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_FALSE(has_default_action(SIGUSR1));  // the parent keeps its handler
  // And the child may take the signal for a loop of its own (the table was reset there).
  const pid_t second = ::fork();
  ASSERT_GE(second, 0);
  if (second == 0) {
    try {
      asyncio::EventLoop own;
      own.add_signal_handler(SIGUSR1, [] {});
      _exit(0);
    } catch (...) {
      _exit(2);
    }
  }
  ASSERT_EQ(::waitpid(second, &status, 0), second);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
}
