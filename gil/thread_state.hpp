// gil/thread_state.hpp — what the GIL knows about each thread (internal, not installed).
//
// CPython keeps a PyThreadState per thread; the GIL's `last_holder` points at one. gilio keeps
// this much smaller record: whether the thread holds the GIL, and the counters behind
// gil::stats(). Records live in a registry (gil_stats.cpp) so that stats() can list every
// thread, including those that have exited since the last reset_stats().
//
// Counters are relaxed atomics: the owning thread writes them, stats() reads them from any
// thread, and a torn read would be a data race that ThreadSanitizer rightly reports.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace gilio::gil::detail {

struct ThreadState {
  std::string name;
  int tid = 0;
  std::atomic<bool> alive{true};
  std::atomic<bool> holding{false};
  // Times are in ticks() (see below), converted to seconds only when stats() reads them.
  std::atomic<std::uint64_t> acquired_at{0};  // ticks() when it last took the GIL
  std::atomic<std::uint64_t> acquisitions{0};
  std::atomic<std::uint64_t> wait_ticks{0};
  std::atomic<std::uint64_t> hold_ticks{0};
};

// Only the owning thread adds to its counters, so a plain load + store does (no locked RMW: the
// GIL's uncontended release + re-take has a 50 ns budget). A concurrent reset_stats() may lose
// to it, which only means the reset happened a moment earlier.
inline void add(std::atomic<std::uint64_t>& counter, std::uint64_t delta) {
  counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

// A cheap timestamp for the per-thread accounting: the CPU's time-stamp counter (about 10 ns on
// this kind of machine, against 23 ns for clock_gettime), or the monotonic clock elsewhere.
std::uint64_t ticks_now() noexcept;
// Seconds per tick, calibrated against the monotonic clock since the process started.
double seconds_per_tick();

// The calling thread's record, created and registered on first use.
ThreadState& this_thread();
// The calling thread's record, or nullptr if it never touched the GIL.
ThreadState* current_thread() noexcept;

// Provided by gil.cpp for the registry and stats.
void drop_at_thread_exit(ThreadState& ts);
void read_lock_counters(std::uint64_t& switches, std::uint64_t& drops, std::uint64_t& forced);
void reset_lock_counters();
void forget_holder(const ThreadState* ts);

// Fork support (gil_stats.cpp): lock the registry before fork, unlock after; in the child
// forget every thread but the caller.
void registry_before_fork();
void registry_after_fork_parent();
void registry_after_fork_child();

}  // namespace gilio::gil::detail
