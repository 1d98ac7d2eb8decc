// bench/bench_util.hpp — what the benchmark programs share: a monotonic clock in seconds, the
// calling thread's CPU time split into kernel and user (getrusage), and the process's resident
// memory (from /proc/self/statm, the same measure the Python peers use).
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

namespace bench {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The calling thread's CPU seconds so far, in the kernel (system) and in user code.
struct ThreadCpu {
  double system = 0;
  double user = 0;
};
inline ThreadCpu thread_cpu() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return {seconds(ru.ru_stime), seconds(ru.ru_utime)};
}

inline long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace bench
