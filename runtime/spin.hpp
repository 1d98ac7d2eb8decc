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
// Locks held over short sections are taken the same way, at a smaller scale (try_briefly: a few
// hundred pauses, a few dozen yields, then sleep — gilio/concurrent.hpp's FutexLock).
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

// Tells the core that this thread is spinning (it lets a sibling hyperthread run meanwhile).
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Calls take() until it returns true (then true), for a moment: a few hundred pauses, then a few
// dozen times handing the core to whatever else is runnable (false if all fail). For a lock held
// over short sections, before sleeping on it (FutexLock, gilio/concurrent.hpp).
template <class Take>
bool try_briefly(Take&& take) {
  for (int i = 0; i < 256; ++i) {
    if (take()) return true;
    cpu_relax();
  }
  for (int i = 0; i < 32; ++i) {
    if (take()) return true;
    ::sched_yield();
  }
  return false;
}

}  // namespace gilio::concurrent::detail
