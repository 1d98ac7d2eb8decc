// examples/subprocesses.cpp — three shell commands run at once from one thread, their output
// collected with communicate() (lesson L5, for processes instead of sockets).
//
// The Python program it mirrors:
//
//     import asyncio
//     async def run(cmd):
//         proc = await asyncio.create_subprocess_shell(
//             cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
//         out, err = await proc.communicate()
//         print(f"[{cmd!r} exited with {proc.returncode}]")
//         if out:
//             print(f"  stdout: {out.decode().strip()}")
//         if err:
//             print(f"  stderr: {err.decode().strip()}")
//     async def main():
//         loop = asyncio.get_running_loop()
//         t0 = loop.time()
//         await asyncio.gather(run("sleep 0.5; echo one"), run("sleep 0.5; echo two >&2"),
//                              run("sleep 0.5; exit 3"))
//         print(f"three commands of 0.5 s each took {loop.time() - t0:.2f} s")
//     asyncio.run(main())
//
// Each task starts its child and awaits it; while the children sleep, the loop sleeps in
// io_uring, where a pidfd per child and a read per pipe wait for it. So the three take about
// 0.5 s together, not 1.5 s, on one thread — and no thread is parked in waitpid().
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <string>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> run(std::string cmd) {
  asyncio::subprocess::Options opts;
  opts.stdout_ = asyncio::subprocess::PIPE;
  opts.stderr_ = asyncio::subprocess::PIPE;
  asyncio::Process proc = co_await asyncio::create_subprocess_shell(cmd, opts);
  auto [out, err] = co_await proc.communicate();
  fmt::print("['{}' exited with {}]\n", cmd, *proc.returncode());
  auto strip = [](std::string s) {
    while (!s.empty() && s.back() == '\n')
      s.pop_back();
    return s;
  };
  if (!out.empty()) fmt::print("  stdout: {}\n", strip(out));
  if (!err.empty()) fmt::print("  stderr: {}\n", strip(err));
}

asyncio::Coro<> main_coro() {
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  const double t0 = loop.time();
  co_await asyncio::gather(run("sleep 0.5; echo one"), run("sleep 0.5; echo two >&2"),
                           run("sleep 0.5; exit 3"));
  fmt::print("three commands of 0.5 s each took {:.2f} s\n", loop.time() - t0);
}

int main() {
  asyncio::run(main_coro());
}
