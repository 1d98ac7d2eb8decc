// examples/hello.cpp — asyncio.run and sleep: coroutines awaited one after another.
//
// The Python program it mirrors (the asyncio docs' "Coroutines" example, delays scaled down):
//
//     import asyncio, time
//     async def say_after(delay, what):
//         await asyncio.sleep(delay)
//         print(what)
//     async def main():
//         t0 = time.perf_counter()
//         await say_after(0.1, 'hello')
//         await say_after(0.2, 'world')
//         print(f"finished in {time.perf_counter() - t0:.2f} s")   # 0.30 s: one after another
//     asyncio.run(main())
//
// `co_await say_after(...)` runs the coroutine inside the current task, to its end, before the
// next line: nothing here is concurrent yet (examples/gather.cpp makes it so).
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <string>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> say_after(double delay, std::string what) {
  co_await asyncio::sleep(delay);
  fmt::print("{}\n", what);
}

asyncio::Coro<> main_coro() {
  const double t0 = asyncio::get_running_loop().time();
  co_await say_after(0.1, "hello");
  co_await say_after(0.2, "world");
  fmt::print("finished in {:.2f} s\n", asyncio::get_running_loop().time() - t0);
}

int main() {
  asyncio::run(main_coro());
}
