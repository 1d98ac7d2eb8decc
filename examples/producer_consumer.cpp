// examples/producer_consumer.cpp — Queue with task_done/join: a pool of worker tasks.
//
// The Python program it mirrors (the asyncio docs' Queue example, times scaled down):
//
//     import asyncio, random, time
//     async def worker(name, queue):
//         while True:
//             sleep_for = await queue.get()
//             await asyncio.sleep(sleep_for)
//             queue.task_done()
//             print(f'{name} has slept for {sleep_for:.3f} seconds')
//     async def main():
//         queue = asyncio.Queue()
//         total = 0
//         for _ in range(20):
//             sleep_for = random.uniform(0.005, 0.05)
//             total += sleep_for
//             queue.put_nowait(sleep_for)
//         tasks = [asyncio.create_task(worker(f'worker-{i}', queue)) for i in range(3)]
//         t0 = time.monotonic()
//         await queue.join()
//         elapsed = time.monotonic() - t0
//         for task in tasks: task.cancel()
//         await asyncio.gather(*tasks, return_exceptions=True)
//         print(f'3 workers slept in parallel for {elapsed:.2f} seconds')
//         print(f'total expected sleep time: {total:.2f} seconds')
//     asyncio.run(main())
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <random>
#include <string>
#include <vector>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> worker(std::string name, asyncio::Queue<double>& queue) {
  for (;;) {
    const double sleep_for = co_await queue.get();
    co_await asyncio::sleep(sleep_for);
    queue.task_done();
    fmt::print("{} has slept for {:.3f} seconds\n", name, sleep_for);
  }
}

asyncio::Coro<> main_coro() {
  asyncio::Queue<double> queue;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(0.005, 0.05);
  double total = 0;
  for (int i = 0; i < 20; ++i) {
    const double sleep_for = uniform(rng);
    total += sleep_for;
    queue.put_nowait(sleep_for);
  }
  std::vector<asyncio::Task<>> tasks;
  for (int i = 0; i < 3; ++i) {
    tasks.push_back(asyncio::create_task(worker(fmt::format("worker-{}", i), queue)));
  }
  const double t0 = asyncio::get_running_loop().time();
  co_await queue.join();
  const double elapsed = asyncio::get_running_loop().time() - t0;
  for (auto& task : tasks)
    task.cancel();
  co_await asyncio::gather(asyncio::return_exceptions, tasks);
  fmt::print("3 workers slept in parallel for {:.2f} seconds\n", elapsed);
  fmt::print("total expected sleep time: {:.2f} seconds\n", total);
}

int main() {
  asyncio::run(main_coro());
}
