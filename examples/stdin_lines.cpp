// examples/stdin_lines.cpp — standard input read line by line as a stream, while the loop goes
// on with other work: asyncio's recipe of a hand-made StreamReader, a StreamReaderProtocol, and
// connect_read_pipe.
//
// The Python program it mirrors:
//
//     import asyncio, sys
//     async def ticker(ticks):
//         while True:
//             await asyncio.sleep(0.05)
//             ticks[0] += 1
//     async def main():
//         loop = asyncio.get_running_loop()
//         reader = asyncio.StreamReader()
//         protocol = asyncio.StreamReaderProtocol(reader)
//         await loop.connect_read_pipe(lambda: protocol, sys.stdin)
//         ticks = [0]
//         task = asyncio.create_task(ticker(ticks))
//         t0, lines = loop.time(), 0
//         while line := await reader.readline():
//             lines += 1
//             print(f"{loop.time() - t0:5.2f} s  {line.decode().rstrip()}")
//         task.cancel()
//         print(f"{lines} lines; meanwhile the loop ran a ticker {ticks[0]} times")
//     asyncio.run(main())
//
// Try it with a writer that takes its time:
//     (echo one; sleep 0.3; echo two; sleep 0.3; echo three) | build/examples/stdin_lines
// Each line prints as it comes, and the ticker ticks about twelve times meanwhile: waiting for
// the pipe, the loop sleeps in io_uring with a read in flight, and wakes for the timers too.
// Standard input must be a pipe, a socket or a terminal; a file is refused, as asyncio refuses
// it ("Pipe transport is for pipes/sockets only").
#include <fmt/core.h>

#include <exception>
#include <gilio/asyncio.hpp>
#include <memory>
#include <string>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> ticker(int& ticks) {
  for (;;) {
    co_await asyncio::sleep(0.05);
    ++ticks;
  }
}

asyncio::Coro<> main_coro() {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  asyncio::StreamReader reader = asyncio::StreamReader::fed();
  auto protocol = std::make_shared<asyncio::StreamReaderProtocol>(reader);
  co_await asyncio::connect_read_pipe([&] { return protocol; }, 0);
  int ticks = 0;
  auto task = asyncio::create_task(ticker(ticks));
  const double t0 = loop.time();
  int lines = 0;
  for (std::string line; !(line = co_await reader.readline()).empty();) {
    ++lines;
    while (!line.empty() && line.back() == '\n')
      line.pop_back();
    fmt::print("{:5.2f} s  {}\n", loop.time() - t0, line);
  }
  task.cancel();
  fmt::print("{} lines; meanwhile the loop ran a ticker {} times\n", lines, ticks);
}

int main() {
  try {
    asyncio::run(main_coro());
  } catch (const std::exception& e) {
    fmt::print(stderr, "stdin_lines: {}\n", e.what());
    return 1;
  }
}
