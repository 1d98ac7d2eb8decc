// examples/cpu_threads.cpp — lessons L1 and L4: CPU-bound threads under a GIL take turns.
//
// The Python program it mirrors:
//
//     import time
//     from concurrent.futures import ThreadPoolExecutor
//     def count_primes(limit):                       # pure interpreter code
//         return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))
//     jobs = [500_000] * 8
//     t0 = time.perf_counter(); [count_primes(j) for j in jobs]; seq = time.perf_counter() - t0
//     t0 = time.perf_counter()
//     with ThreadPoolExecutor(max_workers=2) as ex: list(ex.map(count_primes, jobs))
//     print("2 threads:", seq / (time.perf_counter() - t0), "x")    # ~0.93x on 3.11, 0.66x on 3.13
//
// Two threads on two cores, and yet no faster: only the GIL's holder runs interpreter code; the
// other sleeps in the GIL's condition variable until the switch interval expires and it asks for
// a turn (L1). Concurrency, not parallelism (L4). With GILIO_GIL=off — CPython 3.13t's
// free-threaded build — the same threads run in parallel. The mode is fixed per process, so
// that row runs in a child process started with GILIO_GIL=off.
#include <fmt/core.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "lab.hpp"

namespace gil = gilio::gil;
namespace threading = gilio::threading;

namespace {

constexpr int kJobs = 8;
constexpr int kWorkers = 2;

// Runs the jobs on `workers` threads (each takes every workers-th job); returns seconds.
double run_in_threads(std::int64_t limit, int workers) {
  std::vector<threading::Thread> threads;
  for (int w = 0; w < workers; ++w) {
    threads.emplace_back([=] {
      for (int j = w; j < kJobs; j += workers)
        lab::cpu_work(limit);
    });
  }
  const double t0 = lab::now();
  for (auto& t : threads)
    t.start();
  for (auto& t : threads)
    t.join();
  return lab::now() - t0;
}

double run_sequentially(std::int64_t limit) {
  gil::acquire();
  const double t0 = lab::now();
  for (int j = 0; j < kJobs; ++j)
    lab::cpu_work(limit);
  const double seconds = lab::now() - t0;
  gil::release();
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;  // for bench/run.py
  const std::int64_t limit = quick ? 60'000 : 500'000;
  if (argc > 2 && std::strcmp(argv[1], "--threads") == 0) {  // the child's part
    fmt::print("{}\n", run_in_threads(std::stoll(argv[2]), kWorkers));
    return 0;
  }

  const double sequential = run_sequentially(limit);
  gil::reset_stats();
  const double threaded = run_in_threads(limit, kWorkers);
  const gil::Stats s = gil::stats();
  const double unlocked =
      std::stod(lab::run_self({"--threads", std::to_string(limit)}, {"GILIO_GIL=off"}));

  if (json) {
    fmt::print(
        "{{\"jobs\": {}, \"limit\": {}, \"sequential\": {}, \"threads_gil\": {}, "
        "\"threads_off\": {}}}\n",
        kJobs, limit, sequential, threaded, unlocked);
    return 0;
  }
  fmt::print("{} CPU-bound jobs (count primes below {}), {} worker threads, {} cores\n\n", kJobs,
             limit, kWorkers, std::thread::hardware_concurrency());
  fmt::print("{:<28} {:>9} {:>9}\n", "", "seconds", "speedup");
  fmt::print("{:<28} {:>9.3f} {:>8.2f}x\n", "sequential", sequential, 1.0);
  fmt::print("{:<28} {:>9.3f} {:>8.2f}x\n",
             fmt::format("{} threads, GIL {}", kWorkers, gil::to_string(gil::mode())), threaded,
             sequential / threaded);
  fmt::print("{:<28} {:>9.3f} {:>8.2f}x\n", fmt::format("{} threads, GIL off", kWorkers), unlocked,
             sequential / unlocked);

  fmt::print("\nUnder the GIL: {} switches, {} forced by drop requests. Per thread:\n", s.switches,
             s.forced_switches);
  for (const auto& t : s.threads) {
    if (t.acquisitions == 0) continue;
    const double total = t.hold_seconds + t.wait_seconds;
    fmt::print("  {:<12} held the GIL {:5.1f}% of its life, waited for it {:5.1f}%\n", t.name,
               100 * t.hold_seconds / total, 100 * t.wait_seconds / total);
  }
  return 0;
}
