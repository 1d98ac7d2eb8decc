// tests/test_fd_events.cpp — EventLoop::add_reader / add_writer / remove_reader / remove_writer
// (runtime/fd_events.cpp), after the ideas of Lib/test/test_asyncio/test_selector_events.py:
// callbacks on real descriptors (socketpairs, an eventfd written by another thread), asyncio's
// level-triggered behaviour, replacing and removing (also from inside the callback), errors,
// and a loop closed with hundreds still registered (no leak under LeakSanitizer).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "asyncio_support.hpp"
#include "support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::asleep;
using gilio::testing::Reports;
using gilio::testing::run_test;
using gilio::testing::spin_until;
using gilio::testing::this_tid;
using gilio::testing::what_of;

namespace {

// A connected pair of non-blocking Unix stream sockets, closed at the end of the scope.
struct Pair {
  std::array<int, 2> fd{-1, -1};
  Pair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd.data()) != 0)
      throw std::runtime_error("socketpair failed");
  }
  ~Pair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  void close_end(int i) {
    ::close(fd[i]);
    fd[i] = -1;
  }
};

std::string read_all(int fd) {
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<std::size_t>(n));
  return out;
}

Coro<void> iterations(int n) {  // lets the loop go round n times
  for (int i = 0; i < n; ++i)
    co_await asyncio::sleep(0);
}

// Waits (1 ms at a time, 10 s at most) until pred() holds; returns pred(). With g++ 12, pass a
// named lambda: a capturing temporary inside a co_await expression is destroyed twice.
template <class Pred>
Coro<bool> until(Pred pred) {
  auto& loop = asyncio::get_running_loop();
  const double end = loop.time() + 10.0;
  while (!pred() && loop.time() < end)
    co_await asyncio::sleep(0.001);
  co_return pred();
}

}  // namespace

// As a selector loop's: the callback runs on every iteration while data is there to read, and
// not once it has been read.
TEST(FdEvents, AReaderRunsWhileDataWaitsAndStopsWhenItIsRead) {
  Pair p;
  run_test([&p]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    int calls = 0;
    std::string got;
    asyncio::Event drained;
    loop.add_reader(p.fd[0], [&] {
      if (++calls < 3) return;  // leaves the data there: called again next iteration
      got += read_all(p.fd[0]);
      drained.set();
    });
    co_await iterations(3);
    EXPECT_EQ(calls, 0) << "called with nothing to read";
    EXPECT_EQ(::write(p.fd[1], "hello", 5), 5);
    co_await asyncio::wait_for(drained.wait(), 10.0);
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(got, "hello");
    co_await iterations(5);
    EXPECT_EQ(calls, 3) << "called again with nothing left to read";
    EXPECT_EQ(::write(p.fd[1], "again", 5), 5);
    auto fourth = [&] { return calls == 4; };
    EXPECT_TRUE(co_await until(fourth));
    EXPECT_TRUE(loop.remove_reader(p.fd[0]));
    EXPECT_FALSE(loop.remove_reader(p.fd[0]));
  }());
}

TEST(FdEvents, AWriterRunsWhileTheSocketTakesDataAndStopsWhenItIsFull) {
  Pair p;
  run_test([&p]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    std::size_t written = 0;
    int calls = 0;
    asyncio::Event full;
    const std::string chunk(4096, 'w');
    loop.add_writer(p.fd[0], [&] {
      ++calls;
      ssize_t n;
      while ((n = ::write(p.fd[0], chunk.data(), chunk.size())) > 0)
        written += static_cast<std::size_t>(n);
      if (errno == EAGAIN) full.set();
    });
    co_await asyncio::wait_for(full.wait(), 10.0);
    const int calls_when_full = calls;
    co_await iterations(5);
    EXPECT_EQ(calls, calls_when_full) << "called while the socket could take nothing";
    EXPECT_EQ(read_all(p.fd[1]).size(), written);  // room again: the writer is called again
    auto again = [&] { return calls > calls_when_full; };
    EXPECT_TRUE(co_await until(again));
    EXPECT_TRUE(loop.remove_writer(p.fd[0]));
    const int calls_when_removed = calls;
    co_await iterations(5);
    EXPECT_EQ(calls, calls_when_removed);
  }());
}

TEST(FdEvents, AReaderAndAWriterOnOneFdAreSeparate) {
  Pair p;
  run_test([&p]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    int reads = 0, writes = 0;
    loop.add_reader(p.fd[0], [&] {
      ++reads;
      read_all(p.fd[0]);
    });
    loop.add_writer(p.fd[0], [&] {
      ++writes;
      asyncio::get_running_loop().remove_writer(p.fd[0]);  // once is enough
    });
    EXPECT_EQ(::write(p.fd[1], "x", 1), 1);
    auto both = [&] { return reads == 1 && writes == 1; };
    EXPECT_TRUE(co_await until(both));
    EXPECT_FALSE(loop.remove_writer(p.fd[0]));
    EXPECT_TRUE(loop.remove_reader(p.fd[0]));
  }());
}

TEST(FdEvents, ACallbackIsReplacedAndMayReplaceOrRemoveItself) {
  Pair p;
  run_test([&p]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    std::vector<std::string> seen;
    loop.add_reader(p.fd[0], [&] { seen.push_back("replaced"); });
    loop.add_reader(p.fd[0], [&] {  // replaces the first, then itself while it runs
      seen.push_back("second");
      asyncio::get_running_loop().add_reader(p.fd[0], [&] {
        seen.push_back("third");
        read_all(p.fd[0]);
        asyncio::get_running_loop().remove_reader(p.fd[0]);  // and this one removes itself
      });
    });
    EXPECT_EQ(::write(p.fd[1], "x", 1), 1);
    auto two = [&] { return seen.size() == 2; };
    EXPECT_TRUE(co_await until(two));
    EXPECT_EQ(::write(p.fd[1], "y", 1), 1);
    co_await iterations(5);
    EXPECT_EQ(seen, (std::vector<std::string>{"second", "third"}));
    EXPECT_FALSE(loop.remove_reader(p.fd[0]));
  }());
}

// A callback that throws is reported through the loop's exception handler, as asyncio's
// Handle._run does; the watch goes on.
TEST(FdEvents, ACallbackThatThrowsIsReportedAndCalledAgain) {
  Pair p;
  run_test([&p]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    Reports reports;
    reports.install(loop);
    int calls = 0;
    loop.add_reader(p.fd[0], [&] {
      if (++calls == 1) throw std::runtime_error("the reader failed");
      read_all(p.fd[0]);
    });
    EXPECT_EQ(::write(p.fd[1], "x", 1), 1);
    auto twice = [&] { return calls == 2; };
    const bool called_again = co_await until(twice);
    EXPECT_TRUE(called_again);
    EXPECT_EQ(reports.seen.size(), 1u);
    const asyncio::ExceptionContext& c = reports.seen.at(0);
    EXPECT_EQ(c.message, "Exception in callback");
    EXPECT_EQ(what_of(c), "the reader failed");
    EXPECT_EQ(c.handle, "reader callback for fd " + std::to_string(p.fd[0]));
    loop.remove_reader(p.fd[0]);
  }());
}

// The peer hangs up: the reader is called, and its read finds the end of the stream.
TEST(FdEvents, AHangUpCallsTheReader) {
  Pair p;
  run_test([&p]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    asyncio::Event eof;
    loop.add_reader(p.fd[0], [&] {
      char c;
      if (::read(p.fd[0], &c, 1) == 0) eof.set();
    });
    p.close_end(1);
    co_await asyncio::wait_for(eof.wait(), 10.0);
    loop.remove_reader(p.fd[0]);
  }());
}

// A descriptor closed while registered (a mistake) is dropped with a message, not polled for
// ever or reported again and again.
TEST(FdEvents, ADescriptorClosedWhileRegisteredIsDroppedAndReported) {
  Pair p;
  run_test([&p]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    Reports reports;
    reports.install(loop);
    const int fd = ::dup(p.fd[0]);
    int calls = 0;
    loop.add_reader(fd, [&] {
      ++calls;
      read_all(fd);
      ::close(fd);  // without remove_reader first
    });
    EXPECT_EQ(::write(p.fd[1], "x", 1), 1);
    auto called = [&] { return calls == 1; };
    EXPECT_TRUE(co_await until(called));
    // The next poll fails as it is submitted, in the next iteration; the report follows.
    auto reported = [&] { return !reports.seen.empty(); };
    EXPECT_TRUE(co_await until(reported));
    co_await iterations(3);  // nothing more is reported, and the callback is not called again
    EXPECT_FALSE(loop.remove_reader(fd)) << "still registered";
    EXPECT_EQ(calls, 1);
    EXPECT_EQ(reports.seen.size(), 1u);
    const asyncio::ExceptionContext& c = reports.seen.at(0);
    EXPECT_EQ(c.message,
              "cannot poll fd " + std::to_string(fd) + " for its reader callback; removed it");
    EXPECT_NE(what_of(c).find("Bad file descriptor"), std::string::npos) << what_of(c);
  }());
}

// Another thread writes an eventfd while the loop sleeps in io_uring: the reader wakes it.
TEST(FdEvents, ADescriptorWrittenByAThreadWakesAnIdleLoop) {
  const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  run_test([efd]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const pid_t loop_tid = this_tid();
    std::atomic<bool> loop_slept{false};
    std::uint64_t total = 0;
    asyncio::Event got;
    loop.add_reader(efd, [&] {
      std::uint64_t v = 0;
      if (::read(efd, &v, sizeof v) == sizeof v) total += v;
      if (total >= 7) got.set();
    });
    std::jthread writer([&] {
      loop_slept = spin_until([&] { return asleep(loop_tid); }, 10.0);
      const std::uint64_t seven = 7;
      [[maybe_unused]] const ssize_t n = ::write(efd, &seven, sizeof seven);
    });
    co_await asyncio::wait_for(got.wait(), 10.0);
    EXPECT_EQ(total, 7u);
    EXPECT_TRUE(loop_slept) << "the loop never slept, so the wake-up went untested";
    loop.remove_reader(efd);
  }());
  ::close(efd);
}

TEST(FdEvents, BadDescriptorsAreClearErrors) {
  asyncio::EventLoop loop;
  EXPECT_THROW(loop.add_reader(-1, [] {}), std::invalid_argument);
  Pair p;
  const int closed = ::dup(p.fd[0]);
  ::close(closed);
  try {
    loop.add_writer(closed, [] {});
    ADD_FAILURE() << "a closed descriptor was accepted";
  } catch (const asyncio::OSError& e) {
    EXPECT_EQ(e.code().value(), EBADF);
    EXPECT_NE(std::string(e.what()).find("add_writer: fd " + std::to_string(closed)),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(loop.add_reader(p.fd[0], std::function<void()>()), std::invalid_argument);
  EXPECT_FALSE(loop.remove_reader(p.fd[0]));
  EXPECT_FALSE(loop.remove_writer(12345));
  loop.close();
  EXPECT_THROW(loop.add_reader(p.fd[0], [] {}), std::runtime_error);
}

// Closed with hundreds registered — polls in the ring, callbacks in the ready queue — nothing
// leaks (LeakSanitizer in the ASan build) and nothing runs after close.
TEST(FdEvents, ALoopClosedWithWatchesRegisteredFreesThem) {
  std::vector<Pair> pairs(300);
  int calls = 0;
  {
    asyncio::EventLoop loop;
    for (auto& p : pairs) {
      loop.add_reader(p.fd[0], [&calls] { ++calls; });  // never reads: stays ready
      loop.add_writer(p.fd[0], [&calls] { ++calls; });  // always writable
      EXPECT_EQ(::write(p.fd[1], "x", 1), 1);
    }
    loop.run_until_complete(iterations(3));
    EXPECT_GE(calls, 600);
    loop.close();
  }
  const int at_close = calls;
  EXPECT_GT(at_close, 0);
  asyncio::EventLoop other;  // a later loop sees none of them
  other.run_until_complete(iterations(3));
  EXPECT_EQ(calls, at_close);
}
