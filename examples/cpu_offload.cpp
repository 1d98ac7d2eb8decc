// examples/cpu_offload.cpp — lessons L4, L6 and L7, the project's headline: under a GIL, CPU work
// gets faster only in separate processes, each with a GIL of its own — and processes cost more
// to start and to talk to than threads.
//
// The Python program it mirrors:
//
//     import asyncio, time, zlib
//     from concurrent.futures import ProcessPoolExecutor
//     def count_primes(limit):                      # pure interpreter code
//         return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))
//     async def ticker(late):                       # the loop's pulse: a 10 ms sleep, forever
//         while True:
//             t0 = time.perf_counter(); await asyncio.sleep(0.01)
//             late.append(time.perf_counter() - t0 - 0.01)
//     async def main():
//         loop, jobs, late = asyncio.get_running_loop(), [300_000] * 8, []
//         asyncio.create_task(ticker(late))
//         t0 = time.perf_counter(); [count_primes(j) for j in jobs]      # (a) in the task
//         print("in the task", time.perf_counter() - t0, max(late))      #     the loop stalls
//         t0 = time.perf_counter()                                       # (b) to_thread: ~1x
//         await asyncio.gather(*(asyncio.to_thread(count_primes, j) for j in jobs))
//         await asyncio.gather(*(asyncio.to_thread(zlib.compress, big) for _ in jobs))
//                                   # (d) native code that releases the GIL (zlib, NumPy): ~2x
//         with ProcessPoolExecutor(2) as pool:                           # (e) processes: ~2x
//             t0 = time.perf_counter()
//             await asyncio.gather(*(loop.run_in_executor(pool, count_primes, j) for j in jobs))
//     asyncio.run(main())
//
// Row (c), to_thread with the GIL off (CPython 3.13t's free-threaded build), runs in a child
// process started with GILIO_GIL=off, because the GIL's mode is fixed per process. Row (d) is
// lesson L11: the same loop written as a C extension writes it, with the GIL released around
// the whole computation — threads are enough for that. The ticker's lateness shows what each
// way does to the loop: run directly, the jobs stall it for their whole length; in to_thread
// under the GIL, each of its wake-ups waits up to a switch interval or more for the GIL; in the
// process pool it barely notices. Then L7: what a process costs — start-up, and the
// round trip of a tiny call — beside a thread pool.
#include <fmt/core.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <gilio/asyncio.hpp>
#include <gilio/concurrent.hpp>
#include <gilio/gil.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lab.hpp"

namespace asyncio = gilio::asyncio;
namespace concurrent = gilio::concurrent;
namespace gil = gilio::gil;

namespace {

constexpr int kJobs = 8;
constexpr int kWorkers = 2;

std::int64_t count_primes(std::int64_t limit) {
  return lab::cpu_work(limit);
}
std::int64_t count_primes_native(std::int64_t limit) {  // as a C extension would: GIL released
  return lab::native_work(limit);
}
long tiny(long x) {
  return x + 1;
}

// The loop's pulse: sleeps 10 ms at a time and records how late each wake-up was.
struct Pulse {
  std::vector<double> late_ms;
  void reset() { late_ms.clear(); }
  double median_ms() {
    if (late_ms.empty()) return 0;
    std::nth_element(late_ms.begin(), late_ms.begin() + late_ms.size() / 2, late_ms.end());
    return late_ms[late_ms.size() / 2];
  }
  double worst_ms() const {
    return late_ms.empty() ? 0 : *std::max_element(late_ms.begin(), late_ms.end());
  }
};

asyncio::Coro<> ticker(Pulse& pulse) {
  auto& loop = asyncio::get_running_loop();
  for (;;) {
    const double t0 = loop.time();
    co_await asyncio::sleep(0.01);
    pulse.late_ms.push_back((loop.time() - t0 - 0.01) * 1e3);
  }
}

struct Row {
  std::string how;
  double seconds;
  double median_lag_ms;
  double worst_lag_ms;
};
Row make_row(std::string how, double seconds, Pulse& pulse) {
  return Row{std::move(how), seconds, pulse.median_ms(), pulse.worst_ms()};
}

// Runs every job through `offload` (a function returning an awaitable), all at once; the row
// holds how long they took and how late the pulse was meanwhile.
template <class Offload>
asyncio::Coro<Row> run_all(std::string how, std::int64_t limit, Pulse& pulse, Offload offload) {
  pulse.reset();
  const double t0 = lab::now();
  std::vector<asyncio::Task<std::int64_t>> tasks;
  for (int j = 0; j < kJobs; ++j)
    tasks.push_back(asyncio::create_task(offload(limit)));
  co_await asyncio::gather(std::move(tasks));
  co_return make_row(std::move(how), lab::now() - t0, pulse);
}

asyncio::Coro<Row> in_to_thread(std::int64_t limit, Pulse& pulse, std::string how) {
  auto offload = [](std::int64_t l) { return asyncio::to_thread(count_primes, l); };
  co_return co_await run_all(std::move(how), limit, pulse, offload);
}

// The child's part for row (c): the to_thread row, with whatever GIL mode it was started with.
asyncio::Coro<> to_thread_only(std::int64_t limit) {
  Pulse pulse;
  auto tick = asyncio::create_task(ticker(pulse));
  std::string how;  // named: g++ 12 mishandles temporaries inside a co_await expression
  const Row row = co_await in_to_thread(limit, pulse, how);
  tick.cancel();
  fmt::print("{} {} {}\n", row.seconds, row.median_lag_ms, row.worst_lag_ms);
}

// L7: what it costs to start a pool and to send it one tiny call at a time.
struct Costs {
  double startup_ms;
  double round_trip_us;
};

template <class Pool>
asyncio::Coro<Costs> pool_costs(int calls) {
  auto& loop = asyncio::get_running_loop();
  double t0 = lab::now();
  Pool pool(kWorkers);
  co_await loop.run_in_executor(&pool, tiny, 0L);  // started, and the first call answered
  const double startup = lab::now() - t0;
  t0 = lab::now();
  for (long i = 0; i < calls; ++i)
    co_await loop.run_in_executor(&pool, tiny, i);
  co_return Costs{startup * 1e3, (lab::now() - t0) / calls * 1e6};
}

asyncio::Coro<> main_coro(std::int64_t limit, bool json) {
  auto& loop = asyncio::get_running_loop();
  Pulse pulse;
  auto tick = asyncio::create_task(ticker(pulse));
  co_await asyncio::sleep(0.02);  // the pulse is running
  std::vector<Row> rows;

  // (a) Directly in a task: nothing else on the loop runs until the jobs are done.
  pulse.reset();
  double t0 = lab::now();
  for (int j = 0; j < kJobs; ++j)
    count_primes(limit);
  const double direct = lab::now() - t0;
  co_await asyncio::sleep(0.011);  // the starved ticker wakes at last and sees how late it is
  rows.push_back(make_row("directly in the task", direct, pulse));

  // (b) In to_thread: other threads, the same GIL.
  // Named first: g++ 12 destroys some temporaries inside a co_await expression twice.
  std::string how = fmt::format("to_thread, GIL {}", gil::to_string(gil::mode()));
  rows.push_back(co_await in_to_thread(limit, pulse, how));

  // (c) In to_thread with the GIL off: a child process, since the mode is fixed per process.
  {
    std::string answer;
    {
      gil::Released nogil;  // run_self blocks; nothing else on this loop needs to run meanwhile
      answer = lab::run_self({"--to-thread-only", std::to_string(limit)}, {"GILIO_GIL=off"});
    }
    Row row{"to_thread, GIL off", 0, 0, 0};
    if (std::sscanf(answer.c_str(), "%lf %lf %lf", &row.seconds, &row.median_lag_ms,
                    &row.worst_lag_ms) != 3) {
      throw std::runtime_error("cpu_offload: unexpected answer from the child: " + answer);
    }
    rows.push_back(row);
    co_await asyncio::sleep(0.011);  // the ticker's late wake-up belongs to no row: let it pass
  }

  // (d) L11: native code that releases the GIL (as NumPy does) runs in parallel in to_thread.
  {
    std::string how = "to_thread, native code";  // named: g++ 12 and co_await temporaries
    auto offload = [](std::int64_t l) { return asyncio::to_thread(count_primes_native, l); };
    rows.push_back(co_await run_all(how, limit, pulse, offload));
  }

  // (e) In a process pool: processes, each with its own GIL; the loop only waits.
  {
    concurrent::ProcessPoolExecutor pool(kWorkers);
    co_await loop.run_in_executor(&pool, tiny, 0L);  // start-up is L7's row, not this one's
    auto offload = [&](std::int64_t l) { return loop.run_in_executor(&pool, count_primes, l); };
    std::string how = fmt::format("process pool, {} workers", kWorkers);
    rows.push_back(co_await run_all(how, limit, pulse, offload));
  }
  tick.cancel();

  const int calls = 2000;
  const Costs threads = co_await pool_costs<concurrent::ThreadPoolExecutor>(calls);
  const Costs processes = co_await pool_costs<concurrent::ProcessPoolExecutor>(calls);

  if (json) {
    std::vector<std::string> json_rows;
    for (const Row& r : rows) {
      json_rows.push_back(fmt::format(
          "{{\"how\": \"{}\", \"seconds\": {}, \"median_lag_ms\": {}, \"worst_lag_ms\": {}}}",
          r.how, r.seconds, r.median_lag_ms, r.worst_lag_ms));
    }
    fmt::print(
        "{{\"jobs\": {}, \"limit\": {}, \"rows\": [{}], \"thread_startup_ms\": {}, "
        "\"thread_round_trip_us\": {}, \"process_startup_ms\": {}, "
        "\"process_round_trip_us\": {}}}\n",
        kJobs, limit, fmt::join(json_rows, ", "), threads.startup_ms, threads.round_trip_us,
        processes.startup_ms, processes.round_trip_us);
    co_return;
  }
  fmt::print("{} CPU-bound jobs (count primes below {}) from an event loop, {} cores\n\n", kJobs,
             limit, std::thread::hardware_concurrency());
  fmt::print("{:<28} {:>9} {:>9}   {}\n", "", "seconds", "speedup", "loop lag: median    worst");
  for (const Row& r : rows) {
    fmt::print("{:<28} {:>9.3f} {:>8.2f}x {:>13.1f} ms {:>6.1f} ms\n", r.how, r.seconds,
               rows[0].seconds / r.seconds, r.median_lag_ms, r.worst_lag_ms);
  }
  fmt::print("\nWhat a worker costs (L7), {} workers, {} sequential tiny calls:\n", kWorkers,
             calls);
  fmt::print("{:<28} {:>12} {:>16}\n", "", "start-up", "per round trip");
  fmt::print("{:<28} {:>9.2f} ms {:>13.1f} µs\n", "thread pool", threads.startup_ms,
             threads.round_trip_us);
  fmt::print("{:<28} {:>9.2f} ms {:>13.1f} µs\n", "process pool", processes.startup_ms,
             processes.round_trip_us);
  fmt::print(
      "\nInterpreter code runs in parallel only in processes (or with no GIL at all); native\n"
      "code that releases the GIL is parallel in threads too (L11). Only the process pool and\n"
      "the threads that let go of the GIL leave the loop free. A process costs a fork, and\n"
      "each call crosses two sockets.");
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;  // for bench/run.py
  if (argc > 2 && std::strcmp(argv[1], "--to-thread-only") == 0) {
    asyncio::run(to_thread_only(std::stoll(argv[2])));
    return 0;
  }
  asyncio::run(main_coro(quick ? 40'000 : 600'000, json));
}
