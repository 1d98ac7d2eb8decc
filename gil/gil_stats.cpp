// gil/gil_stats.cpp — the registry of threads that touched the GIL, and gil::stats().
//
// CPython's interpreter keeps a linked list of PyThreadState (Python/pystate.c); gilio keeps a
// vector of the small ThreadState records of gil/thread_state.hpp. A thread registers the first
// time it touches the GIL; a thread_local guard marks it dead when it exits and, if it exits
// still holding the GIL, drops it so the others are not locked out forever. Dead threads stay
// listed (their counters are part of the story) until reset_stats() forgets them.
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/trace.hpp"
#include "thread_state.hpp"

namespace gilio::gil {
namespace detail {
namespace {

struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<ThreadState>> threads;
};

Registry*& registry_ptr() {
  static Registry* registry = new Registry;  // never freed: threads exit after main returns
  return registry;
}

int kernel_tid() {
  return static_cast<int>(::syscall(SYS_gettid));
}

// The calibration base: a (ticks, monotonic ns) pair taken when the library is loaded.
const std::uint64_t base_ticks = ticks_now();
const std::uint64_t base_ns = trace::now_ns();

// Owns the calling thread's registration; its destructor runs when the thread exits.
struct ThisThread {
  ThreadState* state = nullptr;
  ~ThisThread() {
    if (state == nullptr) return;
    if (state->holding.load(std::memory_order_relaxed)) drop_at_thread_exit(*state);
    state->alive.store(false);
  }
};
thread_local ThisThread this_thread_record;

}  // namespace

std::uint64_t ticks_now() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_ia32_rdtsc();
#else
  return trace::now_ns();
#endif
}

double seconds_per_tick() {
#if defined(__x86_64__) || defined(__i386__)
  // The ratio of the two clocks since load; the longer the process runs, the more exact. Before
  // 1 ms has passed, measure a millisecond now (once) rather than divide by almost nothing.
  static std::atomic<double> cached{0};
  std::uint64_t ns = trace::now_ns() - base_ns;
  if (ns < 1'000'000) {
    if (const double c = cached.load(); c > 0) return c;
    while ((ns = trace::now_ns() - base_ns) < 1'000'000) {
    }
  }
  const double ratio = ns * 1e-9 / static_cast<double>(ticks_now() - base_ticks);
  cached.store(ratio);
  return ratio;
#else
  return 1e-9;
#endif
}

ThreadState* current_thread() noexcept {
  return this_thread_record.state;
}

ThreadState& this_thread() {
  ThisThread& record = this_thread_record;
  if (record.state == nullptr) {
    auto ts = std::make_unique<ThreadState>();
    ts->tid = kernel_tid();
    ts->name = ts->tid == ::getpid() ? "MainThread" : "thread " + std::to_string(ts->tid);
    record.state = ts.get();
    if (trace::enabled()) trace::name_thread(ts->tid, ts->name);
    Registry& r = *registry_ptr();
    std::lock_guard lk(r.mutex);
    r.threads.push_back(std::move(ts));
  }
  return *record.state;
}

void registry_before_fork() {
  registry_ptr()->mutex.lock();
}
void registry_after_fork_parent() {
  registry_ptr()->mutex.unlock();
}
void registry_after_fork_child() {
  // Only the forking thread exists in the child. The old registry is left as it is (its
  // mutex is locked); its records of other threads are simply not carried over.
  Registry* old = registry_ptr();
  auto* fresh = new Registry;
  for (auto& ts : old->threads) {
    if (ts.get() == this_thread_record.state) fresh->threads.push_back(std::move(ts));
  }
  if (ThreadState* self = this_thread_record.state) self->tid = kernel_tid();
  registry_ptr() = fresh;
}

}  // namespace detail

void set_thread_name(std::string name) {
  detail::ThreadState& ts = detail::this_thread();
  {
    detail::Registry& r = *detail::registry_ptr();
    std::lock_guard lk(r.mutex);
    ts.name = name;
  }
  if (trace::enabled()) trace::name_thread(ts.tid, name);
}

Stats stats() {
  Stats s;
  detail::read_lock_counters(s.switches, s.drop_requests, s.forced_switches);
  const std::uint64_t now = detail::ticks_now();
  const double tick = detail::seconds_per_tick();
  detail::Registry& r = *detail::registry_ptr();
  std::lock_guard lk(r.mutex);
  for (const auto& ts : r.threads) {
    ThreadStats t;
    t.name = ts->name;
    t.tid = ts->tid;
    t.alive = ts->alive.load();
    t.acquisitions = ts->acquisitions.load(std::memory_order_relaxed);
    t.wait_seconds = ts->wait_ticks.load(std::memory_order_relaxed) * tick;
    std::uint64_t hold = ts->hold_ticks.load(std::memory_order_relaxed);
    // A thread holding the GIL right now has an open span: count it up to now.
    if (ts->holding.load(std::memory_order_relaxed) && mode() != Mode::off) {
      const std::uint64_t since = ts->acquired_at.load(std::memory_order_relaxed);
      if (now > since) hold += now - since;
    }
    t.hold_seconds = hold * tick;
    s.threads.push_back(std::move(t));
  }
  return s;
}

void reset_stats() {
  detail::Registry& r = *detail::registry_ptr();
  std::lock_guard lk(r.mutex);
  std::erase_if(r.threads, [](const std::unique_ptr<detail::ThreadState>& ts) {
    if (ts->alive.load()) return false;
    detail::forget_holder(ts.get());
    return true;
  });
  const std::uint64_t now = detail::ticks_now();
  for (auto& ts : r.threads) {
    ts->acquisitions.store(0, std::memory_order_relaxed);
    ts->wait_ticks.store(0, std::memory_order_relaxed);
    ts->hold_ticks.store(0, std::memory_order_relaxed);
    // Only the owner writes acquired_at; a holder's open span is counted from now on instead
    // by subtracting what it had held so far.
    if (ts->holding.load(std::memory_order_relaxed)) {
      const std::uint64_t since = ts->acquired_at.load(std::memory_order_relaxed);
      if (now > since) ts->hold_ticks.store(0 - (now - since), std::memory_order_relaxed);
    }
  }
  detail::reset_lock_counters();
}

}  // namespace gilio::gil
