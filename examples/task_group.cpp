// examples/task_group.cpp — TaskGroup: structured concurrency, and what a failure does.
//
// The Python program it mirrors (after the asyncio docs' TaskGroup example):
//
//     import asyncio
//     async def fetch(name, delay, fail=False):
//         await asyncio.sleep(delay)
//         if fail:
//             raise ValueError(f"{name} failed")
//         return f"{name} done"
//     async def main():
//         async with asyncio.TaskGroup() as tg:
//             a = tg.create_task(fetch("a", 0.05))
//             b = tg.create_task(fetch("b", 0.1))
//         print(a.result(), b.result())
//         try:
//             async with asyncio.TaskGroup() as tg:
//                 slow = tg.create_task(fetch("slow", 10))
//                 tg.create_task(fetch("bad", 0.05, fail=True))
//         except* ValueError as eg:
//             print(f"{len(eg.exceptions)} error(s): {eg.exceptions[0]}")
//         print("slow was cancelled:", slow.cancelled())
//     asyncio.run(main())
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <stdexcept>
#include <string>

namespace asyncio = gilio::asyncio;

asyncio::Coro<std::string> fetch(std::string name, double delay, bool fail = false) {
  co_await asyncio::sleep(delay);
  if (fail) throw std::invalid_argument(name + " failed");
  co_return name + " done";
}

asyncio::Coro<> main_coro() {
  {
    asyncio::TaskGroup tg;
    auto a = tg.create_task(fetch("a", 0.05));
    auto b = tg.create_task(fetch("b", 0.1));
    co_await tg.join();
    fmt::print("{}, {}\n", a.result(), b.result());
  }
  asyncio::Task<std::string> slow;
  try {
    asyncio::TaskGroup tg;
    slow = tg.create_task(fetch("slow", 10));
    tg.create_task(fetch("bad", 0.05, true));
    co_await tg.join();
  } catch (const asyncio::ExceptionGroup& eg) {
    try {
      std::rethrow_exception(eg.exceptions().front());
    } catch (const std::invalid_argument& e) {
      fmt::print("{} error(s): {}\n", eg.exceptions().size(), e.what());
    }
  }
  fmt::print("slow was cancelled: {}\n", slow.cancelled());
}

int main() {
  asyncio::run(main_coro());
}
