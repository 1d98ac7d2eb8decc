// bench/fiber_bench.cpp — Boost.Fiber's side of bench/loop_bench.cpp: the stackful alternative
// to C++20 coroutines, on the same workloads, printed as one JSON line.
//
//   spawn_gather    create N fibers running a trivial function, then join them all
//   yield           100 fibers each calling this_fiber::yield() K times
//   parked_memory   N fibers parked on one condition variable: resident bytes per fiber
//   queue           one producer fiber, one consumer, N items through buffered_channel(64)
// (Boost.Fiber has no call_later; the timer workload has no counterpart here.)
// No CPython twin. Usage: fiber_bench [--quick]
#include <fmt/core.h>
#include <unistd.h>

#include <boost/fiber/all.hpp>
#include <chrono>
#include <cstring>
#include <fstream>
#include <vector>

namespace fibers = boost::fibers;

#include "bench_util.hpp"

namespace {

using bench::now;
using bench::resident_bytes;

double spawn_join(int n) {
  const double t0 = now();
  std::vector<fibers::fiber> all;
  all.reserve(n);
  long sum = 0;
  for (int i = 0; i < n; ++i)
    all.emplace_back([&sum, i] { sum += i; });
  for (auto& f : all)
    f.join();
  return n / (now() - t0);
}

double yields(int n_fibers, int k) {
  std::vector<fibers::fiber> all;
  const double t0 = now();
  for (int i = 0; i < n_fibers; ++i) {
    all.emplace_back([k] {
      for (int j = 0; j < k; ++j)
        boost::this_fiber::yield();
    });
  }
  for (auto& f : all)
    f.join();
  return static_cast<double>(n_fibers) * k / (now() - t0);
}

double parked_memory(int n) {
  fibers::mutex m;
  fibers::condition_variable cv;
  bool go = false;
  const long rss0 = resident_bytes();
  std::vector<fibers::fiber> all;
  all.reserve(n);
  for (int i = 0; i < n; ++i) {
    all.emplace_back([&] {
      std::unique_lock lk(m);
      cv.wait(lk, [&] { return go; });
    });
  }
  boost::this_fiber::yield();  // let every fiber start and park
  const double per = static_cast<double>(resident_bytes() - rss0) / n;
  {
    std::unique_lock lk(m);
    go = true;
  }
  cv.notify_all();
  for (auto& f : all)
    f.join();
  return per;
}

double queue(int n) {
  fibers::buffered_channel<int> ch(64);
  const double t0 = now();
  fibers::fiber producer([&] {
    for (int i = 0; i < n; ++i)
      ch.push(i);
    ch.close();
  });
  long sum = 0;
  int v;
  while (ch.pop(v) == fibers::channel_op_status::success)
    sum += v;
  producer.join();
  if (sum != static_cast<long>(n) * (n - 1) / 2) throw std::runtime_error("lost items");
  return n / (now() - t0);
}

}  // namespace

int main(int argc, char** argv) {
  const int scale = argc > 1 && std::strcmp(argv[1], "--quick") == 0 ? 5 : 1;
  const double spawn = spawn_join(200'000 / scale);
  const double spawn_again = spawn_join(200'000 / scale);
  const double switches = yields(100, 100'000 / scale);
  const double mem = parked_memory(100'000 / scale);
  const double items = queue(1'000'000 / scale);
  fmt::print(
      "{{\"peer\": \"Boost.Fiber {}.{}\", \"spawn_gather_per_s\": {:.0f}, "
      "\"spawn_gather_again_per_s\": {:.0f}, \"yield_switches_per_s\": {:.0f}, "
      "\"parked_resident_bytes\": {:.1f}, \"queue_items_per_s\": {:.0f}}}\n",
      BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, spawn, spawn_again, switches, mem, items);
}
