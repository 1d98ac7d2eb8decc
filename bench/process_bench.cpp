// bench/process_bench.cpp — what the process pool costs and gives (lessons L6, L7), gilio's
// side of bench/python/process_bench.py, printed as one JSON line:
//   pipelined_per_s   N tiny calls submitted at once, then all results collected
//   round_trip_us     one tiny call at a time: submit, wait for the result
//   map_chunked_per_s N tiny calls through map(fn, inputs, chunksize = 1000)
//   startup_ms        a pool of 2 workers created and its first call answered
//   cpu_speedup       8 CPU-bound jobs: sequential time / time on 2 workers (start-up included),
//                     the median of three pairs
//   bare_fork_speedup the machine's ceiling for that: the same jobs, four each in two processes
//                     forked for them, no pool at all (the median of three, measured beside)
//   floor_round_trip_us  the machine's floor for any such round trip: one byte to a forked
//                     process and back over a socketpair, blocking reads, no library at all
//                     (two cross-core wake-ups; a call through the pool needs three)
// Usage: process_bench [--quick]
#include <fmt/core.h>

#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <gilio/concurrent.hpp>
#include <gilio/gil.hpp>
#include <vector>

#include "bench_util.hpp"

namespace concurrent = gilio::concurrent;
using bench::now;

namespace {

long square(long x) {
  return x * x;
}

long count_primes(long limit) {  // the same naive CPU work as examples/cpu_threads
  long count = 0;
  for (long n = 2; n < limit; ++n) {
    bool prime = true;
    for (long d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime;
    gilio::gil::checkpoint();
  }
  return count;
}

// One byte there and back between two processes, `trips` times; µs per trip.
double socket_ping_pong_us(int trips) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(sv[0]);  // else the parent's close would never read as EOF here
    char b;
    while (::read(sv[1], &b, 1) == 1 && ::write(sv[1], &b, 1) == 1) {
    }
    ::_exit(0);
  }
  ::close(sv[1]);
  char b = 'x';
  const double t0 = now();
  for (int i = 0; i < trips; ++i) {
    if (::write(sv[0], &b, 1) != 1 || ::read(sv[0], &b, 1) != 1) return -1;
  }
  const double us = (now() - t0) / trips * 1e6;
  ::close(sv[0]);
  ::waitpid(pid, nullptr, 0);
  return us;
}

// Runs `jobs` in two processes forked for them, half each; seconds until both have exited.
double bare_forks(const std::vector<long>& jobs) {
  const double t0 = now();
  pid_t pids[2];
  for (std::size_t half = 0; half < 2; ++half) {
    pids[half] = ::fork();
    if (pids[half] == 0) {
      for (std::size_t j = half; j < jobs.size(); j += 2)
        count_primes(jobs[j]);
      ::_exit(0);
    }
  }
  for (pid_t pid : pids)
    ::waitpid(pid, nullptr, 0);
  return now() - t0;
}

struct Speedups {
  double pool;
  double bare_forks;
};

// 8 CPU-bound jobs: sequential time / time on a fresh 2-worker pool, start-up and shut-down
// included, and / time in two bare forked processes. The ratio of one (sequential, parallel)
// pair swings with the host's load; the median of three, each measured back to back, is
// reported. It runs first, while this process is small: forking copies the parent's page
// tables, so a parent holding the other phases' 40 MB of futures and inputs would charge the
// pool several milliseconds that are not CPU work.
Speedups cpu_speedup(int scale) {
  const long limit = 300'000 / scale;
  const std::vector<long> jobs(8, limit);
  std::vector<double> speedups;
  std::vector<double> bare;
  for (int pair = 0; pair < 3; ++pair) {
    double t0 = now();
    long primes = 0;
    for (long j : jobs)
      primes += count_primes(j);
    const double sequential = now() - t0;
    t0 = now();
    std::vector<long> counted;
    {
      concurrent::ProcessPoolExecutor workers(2);
      counted = workers.map(count_primes, jobs);
    }
    const double parallel = now() - t0;
    long parallel_primes = 0;
    for (long c : counted)
      parallel_primes += c;
    if (parallel_primes != primes) {
      fmt::print(stderr, "process_bench: the pool counted {} primes, not {}\n", parallel_primes,
                 primes);
      std::exit(1);
    }
    speedups.push_back(sequential / parallel);
    bare.push_back(sequential / bare_forks(jobs));
  }
  std::sort(speedups.begin(), speedups.end());
  std::sort(bare.begin(), bare.end());
  return {speedups[1], bare[1]};
}

}  // namespace

int main(int argc, char** argv) {
  const int scale = argc > 1 && std::strcmp(argv[1], "--quick") == 0 ? 5 : 1;
  const Speedups speedup = cpu_speedup(scale);
  double t0 = now();
  concurrent::ProcessPoolExecutor pool(2);
  pool.submit(square, 1L).result();
  const double startup = now() - t0;

  const int n = 200'000 / scale;
  std::vector<concurrent::Future<long>> futures;
  futures.reserve(n);
  t0 = now();
  for (long i = 0; i < n; ++i)
    futures.push_back(pool.submit(square, i));
  for (auto& f : futures)
    f.result();
  const double pipelined = n / (now() - t0);

  const int trips = 5000 / scale;
  t0 = now();
  for (long i = 0; i < trips; ++i)
    pool.submit(square, i).result();
  const double round_trip = (now() - t0) / trips;
  const double floor_us = socket_ping_pong_us(trips);

  std::vector<long> items(2'000'000 / scale);
  for (std::size_t i = 0; i < items.size(); ++i)
    items[i] = static_cast<long>(i);
  t0 = now();
  pool.map(square, items, 1000);
  const double chunked = items.size() / (now() - t0);

  fmt::print(
      "{{\"pipelined_per_s\": {:.0f}, \"round_trip_us\": {:.1f}, \"startup_ms\": {:.2f}, "
      "\"cpu_speedup\": {:.3f}, \"bare_fork_speedup\": {:.3f}, \"floor_round_trip_us\": {:.1f}, "
      "\"map_chunked_per_s\": {:.0f}}}\n",
      pipelined, round_trip * 1e6, startup * 1e3, speedup.pool, speedup.bare_forks, floor_us,
      chunked);
}
