// tests/test_process.cpp — gilio/concurrent/process.hpp: ProcessPoolExecutor with real worker
// processes: every built-in serializable type and a user type, RemoteError, worker death
// (abort, kill -9) breaking the pool with no zombie left, cancellation, shutdown, a pool started
// while gilio threads pass the GIL around, descriptors, run_in_executor with a live loop, and
// max_tasks_per_child recycling workers.
#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "asyncio_support.hpp"
#include "gilio/concurrent.hpp"
#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "gilio/time.hpp"
#include "support.hpp"

namespace concurrent = gilio::concurrent;
namespace wire = gilio::concurrent::wire;
namespace asyncio = gilio::asyncio;
namespace gil = gilio::gil;

struct Point {
  int x = 0;
  std::string label;
};
template <>
struct gilio::concurrent::serializer<Point> {
  static void write(wire::Writer& w, const Point& p) {
    wire::put(w, p.x);
    wire::put(w, p.label);
  }
  static Point read(wire::Reader& r) {
    Point p;
    p.x = wire::get<int>(r);
    p.label = wire::get<std::string>(r);
    return p;
  }
};

// A type whose decoding always fails: the error must land on the future, not crash the pool.
struct Undecodable {};
template <>
struct gilio::concurrent::serializer<Undecodable> {
  static void write(wire::Writer&, const Undecodable&) {}
  static Undecodable read(wire::Reader&) { throw wire::DecodeError("cannot decode Undecodable"); }
};

namespace {

using Everything =
    std::tuple<bool, char, int, long long, unsigned, float, double, std::string, std::vector<int>,
               std::array<double, 3>, std::pair<int, std::string>, std::optional<std::string>,
               std::optional<int>, std::vector<std::vector<std::string>>>;
Everything echo_everything(Everything e) {
  return e;
}
Point move_point(Point p, int dx) {
  return Point{p.x + dx, p.label + "!"};
}
long square(long x) {
  return x * x;
}
int fail(int) {
  throw std::out_of_range("index 7 out of range");
}
int crash(int) {
  std::abort();
}
int nap(int ms) {
  gilio::time::sleep(ms / 1000.0);
  return ms;
}
pid_t my_pid(int) {
  return ::getpid();
}
Undecodable undecodable(int) {
  return {};
}
long cpu_work(long n) {
  long acc = 0;
  for (long i = 0; i < n; ++i) {
    acc += i % 7;
    gil::checkpoint();
  }
  return acc;
}
std::vector<int> open_descriptors(int) {
  std::vector<int> fds;
  DIR* d = ::opendir("/proc/self/fd");
  const int dir_fd = ::dirfd(d);
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd != dir_fd) fds.push_back(fd);
  }
  ::closedir(d);
  return fds;
}

std::string reversed(std::string s) {
  std::reverse(s.begin(), s.end());
  return s;
}
std::string joined(std::string a, std::string b) {
  return a + b;
}
std::size_t length(std::string s) {
  return s.size();
}

bool reaped(pid_t pid) {
  // A reaped child is gone: no zombie left in /proc, and waitpid knows nothing of it.
  return ::waitpid(pid, nullptr, WNOHANG) == -1 && errno == ECHILD;
}

}  // namespace

TEST(ProcessPool, RoundTripsEveryBuiltInTypeAndAUserType) {
  concurrent::ProcessPoolExecutor pool(2);
  const Everything e{true,         'q',
                     -42,          1LL << 40,
                     7u,           1.5f,
                     3.25,         "text",
                     {1, 2, 3},    {0.5, 1.5, 2.5},
                     {9, "nine"},  std::string("some"),
                     std::nullopt, {{"a", "b"}, {}, {"c"}}};
  EXPECT_EQ(pool.submit(echo_everything, e).result(), e);
  const Point p = pool.submit(move_point, Point{1, "p"}, 10).result();
  EXPECT_EQ(p.x, 11);
  EXPECT_EQ(p.label, "p!");
  EXPECT_EQ(pool.submit([](int a, int b) { return a * b; }, 6, 7).result(), 42);
  EXPECT_NE(pool.submit(my_pid, 0).result(), ::getpid()) << "the call ran in this process";
}

TEST(ProcessPool, MapAndManyPipelinedCalls) {
  concurrent::ProcessPoolExecutor pool(2);
  EXPECT_EQ(pool.map(square, std::vector<long>{1, 2, 3}), (std::vector<long>{1, 4, 9}));
  std::vector<concurrent::Future<long>> futures;
  for (long i = 0; i < 20000; ++i)
    futures.push_back(pool.submit(square, i));
  long sum = 0;
  for (auto& f : futures)
    sum += f.result();
  EXPECT_EQ(sum, 19999L * 20000 * 39999 / 6);
}

TEST(ProcessPool, MapWithAChunksizeKeepsOrderAndErrors) {
  concurrent::ProcessPoolExecutor pool(2);
  std::vector<long> inputs(1001);
  std::iota(inputs.begin(), inputs.end(), -500L);
  std::vector<long> expected;
  for (long x : inputs)
    expected.push_back(x * x);
  for (std::size_t chunksize : {1u, 7u, 1000u, 5000u})
    EXPECT_EQ(pool.map(square, inputs, chunksize), expected) << "chunksize " << chunksize;
  EXPECT_EQ(pool.map([](std::string s) { return s + "!"; }, std::vector<std::string>{"a", "b"}, 2),
            (std::vector<std::string>{"a!", "b!"}));
  EXPECT_TRUE(pool.map(square, std::vector<long>{}, 3).empty());
  EXPECT_THROW(pool.map(square, inputs, 0), std::invalid_argument);
  EXPECT_THROW(pool.map(fail, std::vector<int>{1, 2, 3}, 2), concurrent::RemoteError);
}

TEST(ProcessPool, ExceptionsComeBackAsRemoteError) {
  concurrent::ProcessPoolExecutor pool(1);
  try {
    pool.submit(fail, 1).result();
    FAIL() << "no exception";
  } catch (const concurrent::RemoteError& e) {
    EXPECT_EQ(e.type_name(), "std::out_of_range");
    EXPECT_EQ(e.message(), "index 7 out of range");
  }
  EXPECT_EQ(pool.submit(square, 3L).result(), 9) << "a failing call does not break the pool";
}

TEST(ProcessPool, AResultThatFailsToDecodeIsAnErrorOnItsFuture) {
  concurrent::ProcessPoolExecutor pool(1);
  EXPECT_THROW(pool.submit(undecodable, 0).result(), wire::DecodeError);
  EXPECT_EQ(pool.submit(square, 4L).result(), 16);
}

TEST(ProcessPool, AbortInAWorkerBreaksThePoolQuicklyAndLeavesNoZombie) {
  auto pool = std::make_unique<concurrent::ProcessPoolExecutor>(2);
  EXPECT_EQ(pool->submit(square, 2L).result(), 4);
  const auto pids = pool->worker_pids();
  auto pending = pool->submit(nap, 5000);  // on the other worker, or queued: must fail too
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(pool->submit(crash, 0).result(10), concurrent::BrokenProcessPool);
  EXPECT_LT(gilio::testing::seconds_since(t0), 2.0);
  EXPECT_THROW(pending.result(10), concurrent::BrokenProcessPool);
  EXPECT_THROW(pool->submit(square, 1L), concurrent::BrokenProcessPool);
  pool.reset();  // joins the manager, which has reaped every worker
  for (pid_t pid : pids)
    EXPECT_TRUE(reaped(pid)) << "worker " << pid << " left behind";
}

TEST(ProcessPool, KillNineBreaksThePool) {
  concurrent::ProcessPoolExecutor pool(1);
  auto slow = pool.submit(nap, 10000);
  gilio::testing::spin_until([&] { return slow.running(); });
  ::kill(pool.worker_pids().front(), SIGKILL);
  EXPECT_THROW(slow.result(10), concurrent::BrokenProcessPool);
}

// Megabytes each way, several calls at once: frames far larger than the channel's buffer are
// written a piece at a time and read back whole, in order. An argument of another type than the
// parameter's is converted first, as the call would convert it.
TEST(ProcessPool, ArgumentsAndResultsOfManyMegabytesCrossWhole) {
  concurrent::ProcessPoolExecutor pool(2);
  std::vector<std::string> inputs;
  std::vector<concurrent::Future<std::string>> futures;
  for (int i = 0; i < 4; ++i) {
    std::string s((6 << 20) + i, '\0');
    for (std::size_t k = 0; k < s.size(); ++k)
      s[k] = static_cast<char>('a' + (k * (i + 3)) % 26);
    futures.push_back(pool.submit(reversed, s));
    inputs.push_back(std::move(s));
  }
  for (int i = 0; i < 4; ++i) {
    std::string want = inputs[i];
    std::reverse(want.begin(), want.end());
    const std::string got = futures[i].result(60);
    EXPECT_EQ(got.size(), want.size());
    EXPECT_TRUE(got == want) << "call " << i << " came back different";
  }
  EXPECT_EQ(pool.submit(joined, "abc", "def").result(10), "abcdef");  // const char* -> std::string
}

// A worker that dies while the parent still has calls to write to it: the write fails with
// EPIPE, which must break the pool, not raise SIGPIPE and end the parent.
TEST(ProcessPool, AWorkerKilledWithCallsStillToWriteBreaksThePoolNotTheParent) {
  concurrent::ProcessPoolExecutor pool(1);
  auto slow = pool.submit(nap, 10000);
  ASSERT_TRUE(gilio::testing::spin_until([&] { return slow.running(); }));
  const std::string big(64 * 1024, 'b');
  std::vector<concurrent::Future<std::size_t>> backlog;
  for (int i = 0; i < 200; ++i)  // 12.8 MB: far more than the channel's buffer holds
    backlog.push_back(pool.submit(length, big));
  ::kill(pool.worker_pids().front(), SIGKILL);
  EXPECT_THROW(slow.result(10), concurrent::BrokenProcessPool);
  for (auto& f : backlog)
    EXPECT_THROW(f.result(10), concurrent::BrokenProcessPool);
}

// With its only worker busy, the manager stops polling and sleeps; a call submitted then must
// wake it to be sent (running() turns true when the manager hands it to a worker), not wait
// for the busy worker's answer 10 s later.
TEST(ProcessPool, ACallQueuedWhileTheManagerSleepsWakesIt) {
  concurrent::ProcessPoolExecutor pool(1);
  auto slow = pool.submit(nap, 10000);
  ASSERT_TRUE(gilio::testing::spin_until([&] { return slow.running(); }));
  // Not synchronisation: the test passes or fails the same without it, but with it the
  // manager has surely gone from polling awake (50 µs) to sleeping, the path under test.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto queued = pool.submit(square, 3L);
  EXPECT_TRUE(gilio::testing::spin_until([&] { return queued.running(); }, 5.0));
  ::kill(pool.worker_pids().front(), SIGKILL);  // end `slow` now, not in 10 s
  EXPECT_THROW(slow.result(10), concurrent::BrokenProcessPool);
  EXPECT_THROW(queued.result(10), concurrent::BrokenProcessPool);
}

TEST(ProcessPool, ShutdownCancelsWhatWasNotSent) {
  concurrent::ProcessPoolExecutor pool(1);
  auto first = pool.submit(nap, 200);
  // shutdown(cancel_futures) rightly cancels `first` too if the manager has not sent it yet.
  ASSERT_TRUE(gilio::testing::spin_until([&] { return first.running(); }));
  std::vector<concurrent::Future<long>> queued;
  for (int i = 0; i < 2000; ++i)
    queued.push_back(pool.submit(square, 1L));
  pool.shutdown(true, true);
  EXPECT_EQ(first.result(), 200);
  int cancelled = 0;
  for (auto& f : queued) {
    if (f.cancelled()) {
      ++cancelled;
      EXPECT_THROW(f.result(), concurrent::CancelledError);
    } else {
      EXPECT_EQ(f.result(), 1);
    }
  }
  EXPECT_GT(cancelled, 0) << "calls still queued should have been cancelled";
  EXPECT_THROW(pool.submit(square, 1L), std::runtime_error);
}

TEST(ProcessPool, CancellingAQueuedCallRemovesIt) {
  concurrent::ProcessPoolExecutor pool(1);
  std::vector<concurrent::Future<int>> busy;
  for (int i = 0; i < 300; ++i)
    busy.push_back(pool.submit(nap, 1));  // fill the send window
  auto last = pool.submit(nap, 1);
  EXPECT_TRUE(last.cancel());
  EXPECT_THROW(last.result(), concurrent::CancelledError);
  for (auto& f : busy)
    f.result();
}

TEST(ProcessPool, StartsWhileGilioThreadsPassTheGilAround) {
  gil::set_switch_interval(0.0002);
  std::atomic<bool> stop{false};
  std::vector<gilio::threading::Thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      while (!stop.load())
        gil::checkpoint();
    });
  }
  for (auto& t : threads)
    t.start();
  gilio::testing::spin_until([] { return gil::stats().switches > 20; });
  {
    concurrent::ProcessPoolExecutor pool(2);  // forked while the GIL changes hands
    EXPECT_EQ(pool.submit(cpu_work, 1000L).result(10), cpu_work(1000));
    EXPECT_EQ(pool.map(square, std::vector<long>{5, 6}), (std::vector<long>{25, 36}));
  }
  stop = true;
  for (auto& t : threads)
    t.join();
}

TEST(ProcessPool, WorkersInheritNoDescriptorButTheirChannel) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);  // not CLOEXEC: fork would keep it
  concurrent::ProcessPoolExecutor pool(1);
  const auto fds = pool.submit(open_descriptors, 0).result();
  EXPECT_EQ(fds, (std::vector<int>{0, 1, 2, 3})) << "stdio and the channel only";
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST(ProcessPool, RunInExecutorKeepsTheLoopResponsive) {
  concurrent::ProcessPoolExecutor pool(1);
  gilio::testing::run_test([](concurrent::ProcessPoolExecutor& pool) -> asyncio::Coro<void> {
    int ticks = 0;
    auto ticker = asyncio::create_task([](int& ticks) -> asyncio::Coro<void> {
      for (;;) {
        co_await asyncio::sleep(0.005);
        ++ticks;
      }
    }(ticks));
    auto& loop = asyncio::get_running_loop();
    const int ms = co_await loop.run_in_executor(&pool, nap, 200);
    EXPECT_EQ(ms, 200);
    EXPECT_GE(ticks, 10) << "the loop stalled while the worker computed";
    const long r = co_await loop.run_in_executor(&pool, cpu_work, 100000L);
    EXPECT_EQ(r, cpu_work(100000));
    ticker.cancel();
  }(pool));
}

TEST(ProcessPool, MaxTasksPerChildRecyclesWorkers) {
  concurrent::ProcessPoolExecutor pool(2, 3);
  std::vector<concurrent::Future<pid_t>> calls;
  for (int i = 0; i < 30; ++i)
    calls.push_back(pool.submit(my_pid, 0));
  std::map<pid_t, int> per_process;
  for (auto& f : calls)
    ++per_process[f.result()];
  EXPECT_GE(per_process.size(), 10u) << "30 calls, at most 3 per process";
  for (const auto& [pid, n] : per_process)
    EXPECT_LE(n, 3) << "process " << pid << " ran more calls than max_tasks_per_child";
  // The pool goes on with fresh workers, and the retired ones were reaped.
  EXPECT_EQ(pool.submit(square, 9L).result(), 81);
  const auto live = pool.worker_pids();
  pool.shutdown();
  for (const auto& [pid, n] : per_process) {
    if (std::find(live.begin(), live.end(), pid) == live.end()) {
      EXPECT_TRUE(reaped(pid)) << "retired worker " << pid << " left behind";
    }
  }
  for (pid_t pid : live)
    EXPECT_TRUE(reaped(pid));
}
