// runtime/spin.hpp — wait a moment awake before sleeping (internal, not installed).
//
// No CPython twin: CPython's pools always sleep while they wait. On this kind of VM a thread or
// process that sleeps costs about 25 µs to wake (the host must wake a halted virtual CPU), so a
// call to a process pool and back — caller, worker, manager, caller — spent 60-70 µs in three
// wake-ups, against 4-6 µs for the same hops taken by parties that were still awake. So the
// three places a pool call waits (the worker for its next call, the manager for a result, the
// caller for its future) first poll for up to 50 µs, handing the core to anything else that is
// runnable between polls (sched_yield), and only then block. A busy pool never sleeps between
// calls; an idle one goes to sleep 50 µs after its last call — the price is that much CPU.
#pragma once

#include <sched.h>
#include <time.h>

#include <cstdint>
#include <mutex>

namespace gilio::concurrent::detail {

inline constexpr std::int64_t kSpinNs = 50'000;

// Calls ready() until it returns true (then true) or kSpinNs have passed (then false), yielding
// the core between calls.
template <class Ready>
bool spin_briefly(Ready&& ready) {
  auto now = [] {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  };
  const std::int64_t deadline = now() + kSpinNs;
  for (;;) {
    if (ready()) return true;
    if (now() > deadline) return false;
    ::sched_yield();
  }
}

// spin_briefly over a condition guarded by `mutex`: each look takes the mutex.
template <class Pred>
bool spin_briefly_locked(std::mutex& mutex, Pred&& pred) {
  return spin_briefly([&] {
    std::lock_guard lk(mutex);
    return pred();
  });
}

// A mutex for short critical sections that several threads take at a high rate: lock() tries
// for a moment (a few hundred pauses, then yielding the core) before it sleeps in the kernel.
// A std::mutex sleeps on the first miss, and on this kind of VM the wake-up costs ~25 µs, many
// times the section it waited for.
class BriefMutex {
 public:
  void lock() {
    for (int i = 0; i < 256; ++i) {
      if (m_.try_lock()) return;
      __builtin_ia32_pause();
    }
    for (int i = 0; i < 32; ++i) {
      if (m_.try_lock()) return;
      ::sched_yield();
    }
    m_.lock();
  }
  bool try_lock() { return m_.try_lock(); }
  void unlock() { m_.unlock(); }

 private:
  std::mutex m_;
};

}  // namespace gilio::concurrent::detail
