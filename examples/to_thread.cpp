// examples/to_thread.cpp — lesson L5: asyncio does not get around the GIL. A CPU-bound
// function in to_thread shares the one GIL with the event loop, and the loop pays for it.
//
// The Python program it mirrors:
//
//     import asyncio, statistics, time
//     stop = False
//     def cpu_bound():                      # pure Python: holds the GIL, drops it when asked
//         n = 0
//         while not stop: n += 1
//     async def overshoot(samples=200):     # how late does sleep(1 ms) wake up?
//         late = []
//         for _ in range(samples):
//             t0 = time.perf_counter()
//             await asyncio.sleep(0.001)
//             late.append(time.perf_counter() - t0 - 0.001)
//         return statistics.median(late)
//     async def main():
//         global stop
//         idle = await overshoot()
//         worker = asyncio.create_task(asyncio.to_thread(cpu_bound))
//         busy = await overshoot()
//         stop = True; await worker
//         print(f"sleep(1 ms) overshoot p50: idle {idle*1e3:.2f} ms, beside to_thread
//         {busy*1e3:.2f} ms")
//     asyncio.run(main())                   # CPython 3.11 here: 0.14 ms idle, about 5.5 ms busy
//
// Why about 5 ms: the loop drops the GIL while it sleeps in io_uring; the worker takes it. When
// the timer is due, the loop must take the GIL back, and in CPython's algorithm it waits one
// switch interval (5 ms) before it may even ask the worker to drop it. The loop is never
// blocked — it is late. Try GILIO_GIL=io_priority (asks at once) or GILIO_GIL=off.
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <gilio/asyncio.hpp>
#include <gilio/gil.hpp>
#include <vector>

namespace asyncio = gilio::asyncio;
namespace gil = gilio::gil;

std::atomic<bool> stop{false};

void cpu_bound() {
  long n = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    ++n;
    gil::checkpoint();  // interpreter code: the eval breaker is checked at the backward jump
  }
}

struct Lateness {
  double p50_ms;
  double p99_ms;
};

asyncio::Coro<Lateness> overshoot(int samples) {
  auto& loop = asyncio::get_running_loop();
  std::vector<double> late;
  for (int i = 0; i < samples; ++i) {
    const double t0 = loop.time();
    co_await asyncio::sleep(0.001);
    late.push_back((loop.time() - t0 - 0.001) * 1e3);
  }
  std::sort(late.begin(), late.end());
  co_return Lateness{late[late.size() / 2], late[late.size() * 99 / 100]};
}

asyncio::Coro<> main_coro(bool json) {
  const Lateness idle = co_await overshoot(200);
  auto worker = asyncio::create_task(asyncio::to_thread(cpu_bound));
  const Lateness busy = co_await overshoot(200);
  stop = true;
  co_await worker;
  if (json) {
    fmt::print(
        "{{\"mode\": \"{}\", \"idle_p50_ms\": {}, \"busy_p50_ms\": {}, \"busy_p99_ms\": {}}}\n",
        gil::to_string(gil::mode()), idle.p50_ms, busy.p50_ms, busy.p99_ms);
    co_return;
  }
  fmt::print("How late does asyncio.sleep(1 ms) wake up? (GIL mode {}, switch interval {} s)\n\n",
             gil::to_string(gil::mode()), gil::get_switch_interval());
  fmt::print("{:<36} {:>10} {:>10}\n", "", "p50", "p99");
  fmt::print("{:<36} {:>7.2f} ms {:>7.2f} ms\n", "loop alone", idle.p50_ms, idle.p99_ms);
  fmt::print("{:<36} {:>7.2f} ms {:>7.2f} ms\n", "beside a CPU-bound to_thread", busy.p50_ms,
             busy.p99_ms);
  fmt::print(
      "\nThe loop and the worker share one GIL: each time the loop wakes it waits about\n"
      "one switch interval for the worker to let go (CPython 3.11 here: p50 ~5.5 ms).\n");
}

int main(int argc, char** argv) {
  asyncio::run(main_coro(argc > 1 && std::strcmp(argv[1], "--json") == 0));
}
