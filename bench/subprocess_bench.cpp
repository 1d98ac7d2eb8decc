// bench/subprocess_bench.cpp — child processes from the loop (create_subprocess_exec) beside the
// plain system calls that do the same work with no loop, printed as one JSON line.
//
//   one at a time   start /bin/true and wait for it, again and again (µs per process)
//   a burst         start 100 at once, then wait for all of them (µs per process)
//   through cat     64 MiB written to cat's stdin and read back from its stdout with
//                   communicate() (MB/s); the input is moved in, as write_file's is in
//                   file_bench (asyncio's communicate gets a bytearray; what its transport
//                   cannot write at once, it copies into a buffer of its own)
//
// The floor for the first two is posix_spawn + waitpid, blocking, in this same process: what
// the kernel and glibc charge for a process whatever runs around them. Each round times gilio
// and the floor with who goes first alternating, and every figure is the median of the rounds,
// so drift in this shared machine's speed falls on both alike. CPython's side (asyncio, and
// uvloop) is bench/python/subprocess_bench.py.
// Usage: subprocess_bench [--quick]
#include <fmt/core.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <gilio/asyncio.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_util.hpp"

extern char** environ;  // NOLINT: POSIX's

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using bench::now;

namespace {

constexpr int kBurst = 100;

pid_t plain_spawn(char** argv) {
  pid_t pid = 0;
  if (const int rc = ::posix_spawn(&pid, argv[0], nullptr, nullptr, argv, environ); rc != 0)
    throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(rc));
  return pid;
}
void plain_wait(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("true failed");
}

Coro<int> run_true(std::vector<std::string> argv) {
  asyncio::Process p = co_await asyncio::create_subprocess_exec(argv);
  co_return co_await p.wait();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Coro<std::string> all(bool quick) {
  const int rounds = quick ? 1 : 5;
  const int n = quick ? 50 : 300;
  const std::size_t cat_bytes = (quick ? 8u : 64u) << 20;
  std::vector<std::string> argv{"/bin/true"};
  char* cargv[] = {const_cast<char*>("/bin/true"), nullptr};
  std::vector<double> seq, floor_seq, burst, floor_burst, cat;
  for (int r = 0; r < rounds; ++r) {
    for (int k = 0; k < 2; ++k) {
      const double t0 = now();
      if ((k == 0) == (r % 2 == 0)) {
        for (int i = 0; i < n; ++i)
          if (co_await run_true(argv) != 0) throw std::runtime_error("true failed");
        seq.push_back((now() - t0) / n * 1e6);
      } else {
        for (int i = 0; i < n; ++i)
          plain_wait(plain_spawn(cargv));
        floor_seq.push_back((now() - t0) / n * 1e6);
      }
    }
    for (int k = 0; k < 2; ++k) {
      const double t0 = now();
      if ((k == 0) == (r % 2 == 0)) {
        std::vector<asyncio::Task<int>> tasks;
        for (int i = 0; i < kBurst; ++i)
          tasks.push_back(asyncio::create_task(run_true(argv)));
        for (int code : co_await asyncio::gather(std::move(tasks)))
          if (code != 0) throw std::runtime_error("true failed");
        burst.push_back((now() - t0) / kBurst * 1e6);
      } else {
        std::vector<pid_t> pids;
        for (int i = 0; i < kBurst; ++i)
          pids.push_back(plain_spawn(cargv));
        for (pid_t pid : pids)
          plain_wait(pid);
        floor_burst.push_back((now() - t0) / kBurst * 1e6);
      }
    }
    std::string data(cat_bytes, 'x');
    for (std::size_t i = 0; i < cat_bytes; i += 4096)
      data[i] = static_cast<char>('a' + i / 4096 % 26);
    asyncio::subprocess::Options pipes;
    pipes.stdin_ = asyncio::subprocess::PIPE;
    pipes.stdout_ = asyncio::subprocess::PIPE;
    std::vector<std::string> cat_argv{"cat"};
    std::string input = data;  // communicate takes its own; the copy is made before the clock
    const double t0 = now();
    asyncio::Process p = co_await asyncio::create_subprocess_exec(cat_argv, pipes);
    auto [out, err] = co_await p.communicate(std::move(input));
    cat.push_back(static_cast<double>(cat_bytes) / 1e6 / (now() - t0));
    if (out != data) throw std::runtime_error("cat gave back something else");
  }
  co_return fmt::format(
      "{{\"rounds\": {}, \"n\": {}, \"burst\": {}, \"cat_mib\": {}, \"seq_us\": {:.1f}, "
      "\"floor_seq_us\": {:.1f}, \"burst_us\": {:.1f}, \"floor_burst_us\": {:.1f}, "
      "\"cat_mb_s\": {:.0f}}}",
      rounds, n, kBurst, cat_bytes >> 20, median(seq), median(floor_seq), median(burst),
      median(floor_burst), median(cat));
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::puts(asyncio::run(all(quick)).c_str());
}
