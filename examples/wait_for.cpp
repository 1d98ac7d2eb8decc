// examples/wait_for.cpp — wait_for and timeout: give up on an awaitable after a deadline.
//
// The Python program it mirrors (the asyncio docs' wait_for and timeout examples):
//
//     import asyncio
//     async def eternity():
//         await asyncio.sleep(3600)
//         print('yay!')
//     async def main():
//         try:
//             await asyncio.wait_for(eternity(), timeout=0.1)
//         except TimeoutError:
//             print('timeout!')
//         try:
//             async with asyncio.timeout(0.1):
//                 await eternity()
//         except TimeoutError:
//             print("The long operation timed out, but we've handled it.")
//         print("This statement will run regardless.")
//     asyncio.run(main())
//
// On expiry the current task is cancelled: CancelledError appears inside eternity() at its
// sleep, unwinds it, and becomes TimeoutError where the deadline was set.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> eternity() {
  co_await asyncio::sleep(3600);
  fmt::print("yay!\n");
}

asyncio::Coro<> main_coro() {
  try {
    co_await asyncio::wait_for(eternity(), 0.1);
  } catch (const asyncio::TimeoutError&) {
    fmt::print("timeout!\n");
  }
  try {
    co_await asyncio::timeout(0.1, eternity());
  } catch (const asyncio::TimeoutError&) {
    fmt::print("The long operation timed out, but we've handled it.\n");
  }
  fmt::print("This statement will run regardless.\n");
}

int main() {
  asyncio::run(main_coro());
}
