// examples/gather.cpp — gather: three coroutines run concurrently on one thread (lesson L5).
//
// The Python program it mirrors (the asyncio docs' gather example, delays scaled down):
//
//     import asyncio
//     async def factorial(name, number):
//         f = 1
//         for i in range(2, number + 1):
//             print(f"Task {name}: Compute factorial({number}), currently i={i}...")
//             await asyncio.sleep(0.1)
//             f *= i
//         print(f"Task {name}: factorial({number}) = {f}")
//         return f
//     async def main():
//         L = await asyncio.gather(factorial("A", 2), factorial("B", 3), factorial("C", 4))
//         print(L)                                   # [2, 6, 24], after 0.3 s, not 0.6 s
//     asyncio.run(main())
//
// While one task sleeps, the others run: the lines interleave, and the whole takes as long as
// the longest task. All on one thread, holding the GIL the whole time except while the loop
// waits in io_uring.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <string>

namespace asyncio = gilio::asyncio;

asyncio::Coro<long> factorial(std::string name, int number) {
  long f = 1;
  for (int i = 2; i <= number; ++i) {
    fmt::print("Task {}: Compute factorial({}), currently i={}...\n", name, number, i);
    co_await asyncio::sleep(0.1);
    f *= i;
  }
  fmt::print("Task {}: factorial({}) = {}\n", name, number, f);
  co_return f;
}

asyncio::Coro<> main_coro() {
  const double t0 = asyncio::get_running_loop().time();
  auto [a, b, c] =
      co_await asyncio::gather(factorial("A", 2), factorial("B", 3), factorial("C", 4));
  fmt::print("[{}, {}, {}] in {:.2f} s\n", a, b, c, asyncio::get_running_loop().time() - t0);
}

int main() {
  asyncio::run(main_coro());
}
