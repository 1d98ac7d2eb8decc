// bench/bench_util.hpp — what the benchmark programs share: a monotonic clock in seconds and the
// process's resident memory (from /proc/self/statm, the same measure the Python peers use).
#pragma once

#include <unistd.h>

#include <chrono>
#include <fstream>

namespace bench {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

}  // namespace bench
