// tests/test_signals.cpp — EventLoop::add_signal_handler / remove_signal_handler
// (runtime/unix_events.cpp), after the ideas of Lib/test/test_asyncio/test_unix_events.py: real
// signals sent to this process, handlers that run on the loop, the errors asyncio raises, the
// default action restored, and a forked child that does not inherit the loop's handlers; and
// asyncio::run's Ctrl-C, in forked children that are sent SIGINT.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
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

// ---- asyncio::run and Ctrl-C (runners.hpp), as asyncio.run since Python 3.11 ----

namespace {

// A forked child that runs `body` (which writes what happens to fd `out`); the parent reads.
struct Child {
  pid_t pid = -1;
  int from_child = -1;

  template <class Body>
  explicit Child(Body body) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      body(fds[1]);
      _exit(0);
    }
    ::close(fds[1]);
    from_child = fds[0];
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(from_child);
  }
  // Reads until `want` has arrived (true) or 10 s pass or the child closes the pipe (false).
  bool read_until(const std::string& want) {
    const auto t0 = std::chrono::steady_clock::now();
    while (text.find(want) == std::string::npos) {
      if (gilio::testing::seconds_since(t0) > 10) return false;
      pollfd p{from_child, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      const ssize_t n = ::read(from_child, buf, sizeof buf);
      if (n <= 0) return false;
      text.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  // The child's wait status, or -1 if it has not ended within 10 s (it is killed then).
  int status() {
    for (int i = 0; i < 1000; ++i) {
      int st = 0;
      if (::waitpid(pid, &st, WNOHANG) == pid) {
        pid = -1;
        char buf[256];
        for (ssize_t n; (n = ::read(from_child, buf, sizeof buf)) > 0;)
          text.append(buf, static_cast<std::size_t>(n));
        return st;
      }
      ::usleep(10'000);
    }
    return -1;
  }
  std::string text;
};

void say(int fd, const char* what) {
  [[maybe_unused]] const ssize_t n = ::write(fd, what, std::strlen(what));
}

}  // namespace

namespace {
// Says `ready` (if given), sleeps an hour, and says `cleaned_up` when cancelled out of it.
Coro<void> sleep_until_cancelled(int out, const char* ready, const char* cleaned_up) {
  if (ready != nullptr) say(out, ready);
  try {
    co_await asyncio::sleep(3600);
  } catch (const asyncio::CancelledError&) {
    say(out, cleaned_up);  // the clean-up runs: that is the point
    throw;
  }
}
}  // namespace

TEST(RunAndCtrlC, TheFirstSigintCancelsMainThenTheProcessEndsBySigint) {
  Child child([](int out) {
    asyncio::run(sleep_until_cancelled(out, "ready;", "cleaned up;"));
    say(out, "run returned;");
  });
  ASSERT_TRUE(child.read_until("ready;"));
  ::kill(child.pid, SIGINT);
  const int st = child.status();
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) << "status " << st;
  EXPECT_EQ(child.text, "ready;cleaned up;");
}

TEST(RunAndCtrlC, AMainThatCatchesTheCancellationMakesRunReturn) {
  Child child([](int out) {
    const int v = asyncio::run([](int out) -> Coro<int> {
      say(out, "ready;");
      try {
        co_await asyncio::sleep(3600);
      } catch (const asyncio::CancelledError&) {
        asyncio::current_task().uncancel();
        co_return 7;
      }
      co_return 0;
    }(out));
    say(out, v == 7 ? "returned 7;" : "returned something else;");
  });
  ASSERT_TRUE(child.read_until("ready;"));
  ::kill(child.pid, SIGINT);
  const int st = child.status();
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "status " << st;
  EXPECT_EQ(child.text, "ready;returned 7;");
}

// A second Ctrl-C ends the program at once, even when the loop never gets to run again.
TEST(RunAndCtrlC, ASecondSigintEndsALoopStuckInCpuWork) {
  Child child([](int out) {
    asyncio::run([](int out) -> Coro<void> {
      say(out, "ready;");
      std::atomic<long> spin{0};
      for (;;)
        spin.fetch_add(1, std::memory_order_relaxed);  // never yields to the loop
      co_return;
    }(out));
    say(out, "run returned;");
  });
  ASSERT_TRUE(child.read_until("ready;"));
  ::kill(child.pid, SIGINT);  // counted; the loop cannot act on it
  // The kernel restores the default action as it delivers the first: wait for that, then send
  // the second.
  bool reset = false;
  for (int i = 0; i < 1000 && !reset; ++i) {
    std::ifstream status("/proc/" + std::to_string(child.pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("SigCgt:", 0) == 0) {
        const unsigned long long caught = std::stoull(line.substr(7), nullptr, 16);
        reset = (caught & (1ull << (SIGINT - 1))) == 0;
      }
    }
    if (!reset) ::usleep(10'000);
  }
  EXPECT_TRUE(reset) << "SIGINT still caught after the first one";
  ::kill(child.pid, SIGINT);
  const int st = child.status();
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) << "status " << st;
  EXPECT_EQ(child.text, "ready;");
}

// A program's own SIGINT handler is left alone, as asyncio.run leaves one that is not Python's
// default; and run() on another thread installs nothing.
TEST(RunAndCtrlC, RunTakesSigintOnlyOnTheMainThreadAndOnlyIfItIsFree) {
  EXPECT_TRUE(has_default_action(SIGINT));
  bool caught_inside = false;
  asyncio::run([](bool& caught) -> Coro<void> {
    caught = !has_default_action(SIGINT);
    co_return;
  }(caught_inside));
  EXPECT_TRUE(caught_inside) << "run() did not take SIGINT on the main thread";
  EXPECT_TRUE(has_default_action(SIGINT)) << "run() did not give SIGINT back";
  bool caught_on_thread = true;
  std::thread([&] {
    asyncio::run([](bool& caught) -> Coro<void> {
      caught = !has_default_action(SIGINT);
      co_return;
    }(caught_on_thread));
  }).join();
  EXPECT_FALSE(caught_on_thread) << "run() took SIGINT on another thread";
  ::signal(SIGINT, SIG_IGN);
  asyncio::run([]() -> Coro<void> {
    struct sigaction now;
    ::sigaction(SIGINT, nullptr, &now);
    EXPECT_EQ(now.sa_handler, SIG_IGN) << "run() replaced the program's own SIGINT action";
    co_return;
  }());
  ::signal(SIGINT, SIG_DFL);
}

TEST(RunAndCtrlC, ARunnersFirstSigintCancelsItsMainThenClosesTheRunner) {
  // asyncio.Runner.run: the same Ctrl-C as run(); what an earlier run left pending is cancelled
  // by the close that follows, before the process ends by SIGINT.
  Child child([](int out) {
    asyncio::Runner runner;
    runner.run([](int out) -> Coro<void> {
      asyncio::create_task(sleep_until_cancelled(out, nullptr, "left-over cleaned up;"));
      co_await asyncio::sleep(0);
    }(out));
    runner.run(sleep_until_cancelled(out, "ready;", "main cleaned up;"));
    say(out, "run returned;");
  });
  ASSERT_TRUE(child.read_until("ready;"));
  ::kill(child.pid, SIGINT);
  const int st = child.status();
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) << "status " << st;
  EXPECT_EQ(child.text, "ready;main cleaned up;left-over cleaned up;");
}
