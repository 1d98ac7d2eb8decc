// bench/gil_bench.cpp — what the GIL itself costs (Google Benchmark).
//
//   Checkpoint/uncontended       gil::checkpoint() with nobody waiting: the eval-breaker load
//                                that interpreter code pays at every check (target <= 2 ns).
//   ReleaseAcquire/uncontended   gil::release() + gil::acquire() with no other thread: the cost
//                                of a Py_BEGIN/END_ALLOW_THREADS pair around a blocking call
//                                (target <= 50 ns).
//   Handoff                      the holder releases while another thread is blocked in
//                                acquire(): time until that thread holds the GIL (a futex wake).
// No CPython twin: CPython exposes no such hooks; these are the floor under every figure in
// examples/. Run by bench/run.py, which checks the targets.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gilio/gil.hpp"
#include "gilio/trace.hpp"

namespace gil = gilio::gil;

static void Checkpoint_uncontended(benchmark::State& state) {
  gil::acquire();
  for (auto _ : state) {
    gil::checkpoint();
    benchmark::ClobberMemory();
  }
  gil::release();
}
BENCHMARK(Checkpoint_uncontended);

static void ReleaseAcquire_uncontended(benchmark::State& state) {
  gil::acquire();
  for (auto _ : state) {
    gil::release();
    gil::acquire();
  }
  gil::release();
}
BENCHMARK(ReleaseAcquire_uncontended);

static void Handoff(benchmark::State& state) {
  std::atomic<int> round{0};
  std::atomic<int> done{0};
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> taken_at{0};
  std::thread other([&] {
    int seen = 0;
    for (;;) {
      while (round.load() == seen && !stop.load())
        std::this_thread::yield();
      if (stop.load()) break;
      seen = round.load();
      gil::acquire();  // blocks: the benchmark thread holds the GIL
      taken_at = gilio::trace::now_ns();
      gil::release();
      done = seen;
    }
  });
  gil::acquire();
  for (auto _ : state) {
    const int r = round.load() + 1;
    round = r;
    // Give the other thread time to block in acquire(); not timed.
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    const std::uint64_t released_at = gilio::trace::now_ns();
    gil::release();
    while (done.load() != r)
      std::this_thread::yield();
    gil::acquire();
    state.SetIterationTime((taken_at.load() - released_at) * 1e-9);
  }
  gil::release();
  stop = true;
  other.join();
}
BENCHMARK(Handoff)->UseManualTime()->Iterations(2000);

BENCHMARK_MAIN();
