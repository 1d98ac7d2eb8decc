// gilio/gil.hpp — the global interpreter lock.
//
// CPython lets only one thread run interpreter code at a time. The reason is memory
// management: every object carries a reference count that is bumped and dropped without
// atomics, so two threads touching the same objects would corrupt them. One big lock keeps
// the collector simple and every object consistent — a trade-off made in the single-core era
// that costs multi-core speed (lessons L1, L2).
//
// gilio models that lock for C++ code that plays "interpreter": a thread that runs such code
// holds the GIL, and calls gil::checkpoint() where CPython's eval loop checks its "eval
// breaker". The algorithm is CPython's (Python/ceval_gil.c, read its opening comment):
//
//   take:  while the GIL is locked, wait on a condition variable for one switch interval
//          (5 ms by default). If the wait timed out and no switch happened meanwhile, set the
//          drop request, which the holder sees at its next checkpoint.
//   drop:  clear `locked` and signal one waiter. If the drop was requested, wait until some
//          other thread has actually taken the GIL ("forced switching"), so the dropping
//          thread cannot grab it straight back — without this, the thread that is already
//          on a core usually wins the race and the waiter starves.
//
// A blocking call is wrapped in gil::Released (Py_BEGIN_ALLOW_THREADS): the GIL is dropped
// for the call and taken back afterwards, so threads do I/O concurrently (L3). Taking it back
// is where the convoy effect (bpo-7946) bites: a thread returning from I/O waits a whole
// switch interval behind a CPU-bound holder. Mode::io_priority is Beazley's fix — a thread
// coming back from a blocking call asks the holder to drop at once. Mode::off makes every
// operation a no-op, like CPython 3.13t's free-threaded build.
//
// Read next: gilio/threading.hpp (threads that run under this lock), then docs/01-gil.md.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gilio::gil {

enum class Mode {
  cpython,      // CPython's algorithm, faithfully (the default)
  io_priority,  // as cpython, but a thread back from a blocking call asks for the GIL at once
  off,          // free-threaded: acquire/release only keep the per-thread bookkeeping
};

// Chooses the mode. Must be called before the GIL is first taken (std::logic_error after).
// Without a call, the environment variable GILIO_GIL=cpython|io_priority|off decides.
void set_mode(Mode mode);
Mode mode();
// Parses "cpython", "io_priority" or "off"; std::invalid_argument otherwise.
Mode parse_mode(std::string_view text);
std::string_view to_string(Mode mode);

// sys.setswitchinterval / sys.getswitchinterval. Values <= 0 (or not finite) throw
// std::invalid_argument. Default 0.005 s, or GILIO_SWITCH_INTERVAL from the environment.
void set_switch_interval(double seconds);
double get_switch_interval();

// Take / drop the GIL for the calling thread (PyEval_RestoreThread / PyEval_SaveThread).
// acquire() by a holder and release() by a non-holder throw std::logic_error.
void acquire();
void release();
// Does the calling thread hold the GIL? (In Mode::off: has it acquired and not released.)
bool held() noexcept;

// Py_BEGIN_ALLOW_THREADS / Py_END_ALLOW_THREADS as a scope: drops the GIL if the calling thread
// holds it and takes it back on exit. A thread that does not hold the GIL passes through
// untouched, so library code can wrap every blocking call in one without asking who calls it.
class Released {
 public:
  Released();
  ~Released();
  Released(const Released&) = delete;
  Released& operator=(const Released&) = delete;

 private:
  bool retake_;
};

namespace detail {
// The eval breaker: set when a waiter asks the holder to drop the GIL.
extern std::atomic<bool> eval_breaker;
void handle_eval_breaker();
}  // namespace detail

// The eval-breaker check that CPython makes between bytecodes (≤ 3.9) or at calls and
// backward jumps (≥ 3.10). If another thread asked for the GIL, drop it, let that thread
// run, and take it back. One relaxed atomic load when nobody asked.
inline void checkpoint() noexcept {
  if (detail::eval_breaker.load(std::memory_order_relaxed)) [[unlikely]] {
    detail::handle_eval_breaker();
  }
}

// Names the calling thread in stats() and in the GILIO_TRACE timeline.
void set_thread_name(std::string name);

struct ThreadStats {
  std::string name;
  int tid = 0;                     // the kernel's thread id
  bool alive = true;               // false once the thread has exited
  std::uint64_t acquisitions = 0;  // times it took the GIL
  double wait_seconds = 0;         // time spent waiting to take it (and in forced switches)
  double hold_seconds = 0;         // time spent holding it
};

struct Stats {
  std::uint64_t switches = 0;         // times the holder changed (CPython's switch_number)
  std::uint64_t drop_requests = 0;    // times a waiter set the drop request
  std::uint64_t forced_switches = 0;  // times a dropping thread waited for another to take it
  std::vector<ThreadStats> threads;   // every thread that has touched the GIL since reset
};

Stats stats();
// Zeroes the counters and forgets threads that have exited.
void reset_stats();

}  // namespace gilio::gil
