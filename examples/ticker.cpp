// examples/ticker.cpp — an asynchronous generator: PEP 525's ticker, consumed to its end, broken
// out of and closed, and broken out of and dropped.
//
// The Python program it mirrors:
//
//     import asyncio
//
//     async def ticker(delay, to):
//         """Yield numbers from 0 to `to` every `delay` seconds."""
//         try:
//             for i in range(to):
//                 yield i
//                 await asyncio.sleep(delay)
//         finally:
//             print(f"ticker({to}) closed")
//
//     async def main():
//         async for i in ticker(0.01, 3):
//             print(i)
//         gen = ticker(0.01, 100)
//         async for i in gen:
//             if i == 2:
//                 break              # gen stays parked at its yield
//         await gen.aclose()         # GeneratorExit there: its finally runs now
//         async for i in ticker(0.01, 100):
//             break                  # dropped while parked: the loop closes it in a task
//         print("broke out")
//         await asyncio.sleep(0.05)
//         print("done")
//
//     asyncio.run(main())
//
// Both print the same eight lines. The last ticker shows what asyncio does for a generator left
// parked at a yield: the loop it ran on closes it in a task of its own, so "closed" comes after
// "broke out" (gilio/asyncio/generators.hpp, and chapter 3, "Asynchronous generators").
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <optional>

namespace asyncio = gilio::asyncio;
using asyncio::AsyncGenerator;
using asyncio::Coro;

// Python's `finally:` — a destructor, which runs however the body ends: at its end, by an
// exception, or by GeneratorExit from aclose().
struct Announce {
  int to;
  ~Announce() { fmt::print("ticker({}) closed\n", to); }
};

AsyncGenerator<int> ticker(double delay, int to) {
  Announce finally{to};
  for (int i = 0; i < to; ++i) {
    co_yield i;
    co_await asyncio::sleep(delay);
  }
}

Coro<void> amain() {
  {
    auto gen = ticker(0.01, 3);
    while (std::optional<int> i = co_await gen.next())
      fmt::print("{}\n", *i);
  }
  auto gen = ticker(0.01, 100);
  while (std::optional<int> i = co_await gen.next()) {
    if (*i == 2) break;  // gen stays parked at its co_yield
  }
  co_await gen.aclose();  // GeneratorExit there: its destructors run now
  {
    auto dropped = ticker(0.01, 100);
    co_await dropped.next();  // and break: dropped while parked, the loop closes it in a task
  }
  fmt::print("broke out\n");
  co_await asyncio::sleep(0.05);
  fmt::print("done\n");
}

int main() {
  asyncio::run(amain());
}
