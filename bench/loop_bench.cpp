// bench/loop_bench.cpp — the event loop's costs, gilio's side of bench/python/loop_bench.py and
// bench/fiber_bench.cpp (the same five workloads), printed as one JSON line.
//
//   spawn_gather     create N trivial tasks and gather them, twice: in fresh memory, then
//                    reusing it (tasks/s); a third time under the eager task factory; a
//                    fourth (last of all) inside a context that holds a variable
//   yield            100 tasks each doing `co_await sleep(0)` K times          (switches/s)
//   parked_memory    N tasks parked on one Event: resident bytes per task
//   timers           arm N call_later timers with spread deadlines; run until all fired
//   queue            one producer, one consumer, N items through Queue(maxsize=64) (items/s)
//   async_gen        one task takes N ints from an async generator, `async for` (items/s)
//
// No CPython twin of its own: bench/python/loop_bench.py is the same program for asyncio and
// uvloop. Usage: loop_bench [--quick]
#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <gilio/asyncio.hpp>
#include <optional>
#include <string>
#include <vector>

namespace asyncio = gilio::asyncio;
using asyncio::Coro;

#include "bench_util.hpp"

namespace {

using bench::now;
using bench::resident_bytes;

Coro<int> trivial(int i) {
  co_return i;
}

Coro<double> spawn_gather(int n) {
  const double t0 = now();
  std::vector<asyncio::Task<int>> tasks;
  tasks.reserve(n);
  for (int i = 0; i < n; ++i)
    tasks.push_back(asyncio::create_task(trivial(i)));
  auto results = co_await asyncio::gather(std::move(tasks));
  const double dt = now() - t0;
  if (results.size() != static_cast<std::size_t>(n)) throw std::runtime_error("lost results");
  co_return n / dt;
}

// The same under asyncio 3.12's eager task factory: each trivial task runs to its end inside
// create_task, is never queued, and frees its frame before the next one is made.
Coro<double> spawn_gather_eager(int n) {
  auto& loop = asyncio::get_running_loop();
  loop.set_task_factory(asyncio::eager_task_factory);
  const double rate = co_await spawn_gather(n);
  loop.set_task_factory(nullptr);
  co_return rate;
}

// spawn_gather made inside a context that holds a variable: each task then copies that context
// (gilio/contextvars.hpp), as every asyncio task copies its creator's. Run last: until a variable
// is set, no task copies anything, and the rows before measure that.
gilio::contextvars::ContextVar<int> request("request");
Coro<double> spawn_gather_in_context(int n) {
  gilio::contextvars::Context ctx;
  ctx.run([] { request.set(1); });
  auto task = ctx.run([n] { return asyncio::create_task(spawn_gather(n)); });
  co_return co_await task;
}

Coro<void> yielder(int k) {
  for (int i = 0; i < k; ++i)
    co_await asyncio::sleep(0);
}

Coro<double> yields(int tasks, int k) {
  std::vector<asyncio::Task<void>> all;
  for (int i = 0; i < tasks; ++i)
    all.push_back(asyncio::create_task(yielder(k)));
  const double t0 = now();
  co_await asyncio::gather(std::move(all));
  co_return static_cast<double>(tasks) * k / (now() - t0);
}

Coro<void> parked(asyncio::Event& event) {
  co_await event.wait();
}

struct Memory {
  double resident_per_task;
};

Coro<Memory> parked_memory(int n) {
  asyncio::Event event;
  std::vector<asyncio::Task<void>> tasks;
  tasks.reserve(n);
  const long rss0 = resident_bytes();
  for (int i = 0; i < n; ++i)
    tasks.push_back(asyncio::create_task(parked(event)));
  co_await asyncio::sleep(0);  // every task has started and is parked
  const Memory m{static_cast<double>(resident_bytes() - rss0) / n};
  event.set();
  co_await asyncio::gather(std::move(tasks));
  co_return m;
}

Coro<double> timers(int n) {
  auto& loop = asyncio::get_running_loop();
  int fired = 0;
  asyncio::Event done;
  const double t0 = now();
  for (int i = 0; i < n; ++i) {
    loop.call_later((i % 1000) * 1e-6, [&fired, &done, n] {
      if (++fired == n) done.set();
    });
  }
  co_await done.wait();
  co_return n / (now() - t0);
}

Coro<void> produce(asyncio::Queue<int>& q, int n) {
  for (int i = 0; i < n; ++i)
    co_await q.put(i);
}

Coro<double> queue(int n) {
  asyncio::Queue<int> q(64);
  const double t0 = now();
  auto producer = asyncio::create_task(produce(q, n));
  long sum = 0;
  for (int i = 0; i < n; ++i)
    sum += co_await q.get();
  co_await producer;
  if (sum != static_cast<long>(n) * (n - 1) / 2) throw std::runtime_error("lost items");
  co_return n / (now() - t0);
}

asyncio::AsyncGenerator<int> numbers(int n) {
  for (int i = 0; i < n; ++i)
    co_yield i;
}

Coro<double> async_gen_items(int n) {
  const double t0 = now();
  long sum = 0;
  auto gen = numbers(n);
  while (std::optional<int> i = co_await gen.next())
    sum += *i;
  if (sum != static_cast<long>(n) * (n - 1) / 2) throw std::runtime_error("lost items");
  co_return n / (now() - t0);
}

Coro<std::string> all(bool quick) {
  const int scale = quick ? 5 : 1;
  // Memory first: later workloads leave freed blocks in the pool that a parked task would reuse.
  const Memory mem = co_await parked_memory(200'000 / scale);
  // The first round's time in the kernel: what filling fresh pages costs it (the pool maps its
  // chunks with MAP_POPULATE, so nearly all of it is there, not in page faults).
  const bench::ThreadCpu before = bench::thread_cpu();
  const double spawn = co_await spawn_gather(1'000'000 / scale);
  const double spawn_kernel_share =
      (bench::thread_cpu().system - before.system) / ((1'000'000 / scale) / spawn);
  // Again, now that the memory the first round took is free for reuse: a program that keeps
  // spawning runs like this; the first round also pays the kernel for fresh pages.
  const double spawn_again = co_await spawn_gather(1'000'000 / scale);
  const double spawn_eager = co_await spawn_gather_eager(1'000'000 / scale);
  const double switches = co_await yields(100, 100'000 / scale);
  const double timer_rate = co_await timers(1'000'000 / scale);
  const double items = co_await queue(1'000'000 / scale);
  const double gen_items = co_await async_gen_items(10'000'000 / scale);
  const double spawn_context = co_await spawn_gather_in_context(1'000'000 / scale);
  co_return fmt::format(
      "{{\"spawn_gather_per_s\": {:.0f}, \"spawn_gather_again_per_s\": {:.0f}, "
      "\"spawn_gather_eager_per_s\": {:.0f}, "
      "\"yield_switches_per_s\": {:.0f}, \"parked_resident_bytes\": {:.1f}, "
      "\"timers_per_s\": {:.0f}, \"queue_items_per_s\": {:.0f}, "
      "\"async_gen_items_per_s\": {:.0f}, \"spawn_gather_context_per_s\": {:.0f}, "
      "\"spawn_gather_kernel_share\": {:.3f}}}",
      spawn, spawn_again, spawn_eager, switches, mem.resident_per_task, timer_rate, items,
      gen_items, spawn_context, spawn_kernel_share);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  fmt::print("{}\n", asyncio::run(all(quick)));
}
