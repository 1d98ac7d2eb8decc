// gil/gil.cpp — the GIL's algorithm; mirrors CPython's Python/ceval_gil.c.
//
// State (CPython's `struct _gil_runtime_state`): `locked`, `last_holder`, `switch_number`, one
// mutex, the condition `cond` that a dropping thread signals, and `switch_cond`, on which a
// thread that was asked to drop waits until somebody else has taken the GIL (FORCE_SWITCHING).
// The drop request lives outside the mutex, in detail::eval_breaker, so that checkpoint() is a
// single relaxed load.
//
// take(): if the GIL is free, take it. Otherwise wait on `cond` for one switch interval at a
//   time; when a wait times out and no switch happened during it (switch_number unchanged),
//   set the drop request. Once free, take it, bump switch_number if the holder changed, wake a
//   thread waiting in a forced switch, and clear the drop request: whoever asked was served.
// drop(): clear `locked`, signal `cond`. If a drop was requested and we are still the last
//   holder, clear the request and wait on `switch_cond` until the holder has changed.
//
// As in CPython the wait is at least one microsecond: a switch interval of 5e-10 s behaves like
// 1e-6 s. io_priority mode sets the drop request before the first wait when the taker comes back
// from a blocking call (bpo-7946), so it never waits a whole interval behind a CPU-bound holder.
//
// fork(): pthread_atfork handlers lock every internal mutex before the fork and, in the child,
// build a fresh GIL (CPython's _PyEval_ReInitThreads): the waiters and the other threads do not
// exist there. The forking thread keeps the GIL if it held it — in CPython it always does.
#include "gilio/gil.hpp"

#include <pthread.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

#include "gilio/trace.hpp"
#include "thread_state.hpp"

namespace gilio::gil {
namespace detail {
constinit std::atomic<bool> eval_breaker{false};
}  // namespace detail

namespace {

using detail::ThreadState;

std::int64_t interval_to_ns(double seconds, const char* who) {
  if (!std::isfinite(seconds) || seconds <= 0) {
    throw std::invalid_argument(std::string(who) +
                                ": switch interval must be strictly positive, got " +
                                std::to_string(seconds));
  }
  // CPython keeps the interval in whole microseconds and waits at least 1 µs.
  const double ns = seconds * 1e9;
  return ns < 1000.0   ? 1000
         : ns > 3.6e12 ? static_cast<std::int64_t>(3.6e12)
                       : static_cast<std::int64_t>(ns);
}

// Mode and switch interval. The environment is read once, first; explicit calls override it.
struct Settings {
  std::atomic<Mode> mode{Mode::cpython};
  std::atomic<bool> in_use{false};
  std::atomic<double> interval{0.005};
  std::atomic<std::int64_t> wait_ns{5'000'000};

  Settings() {
    if (const char* m = std::getenv("GILIO_GIL"); m && *m) mode = parse_mode(m);
    if (const char* s = std::getenv("GILIO_SWITCH_INTERVAL"); s && *s) {
      char* end = nullptr;
      const double v = std::strtod(s, &end);
      if (end == s || *end != '\0') {
        throw std::invalid_argument(std::string("GILIO_SWITCH_INTERVAL: not a number: '") + s +
                                    "'");
      }
      wait_ns = interval_to_ns(v, "GILIO_SWITCH_INTERVAL");
      interval = v;
    }
  }
};

Settings& settings() {
  static Settings s;
  return s;
}

struct Lock {
  std::mutex mutex;
  std::condition_variable cond;         // signalled when the GIL is dropped
  std::condition_variable switch_cond;  // signalled when it is taken (forced switching)
  bool locked = false;
  int switch_waiters = 0;
  const ThreadState* last_holder = nullptr;
  std::uint64_t switch_number = 0;
  std::uint64_t drop_requests = 0;
  std::uint64_t forced_switches = 0;
};

Lock*& lock_ptr() {
  static Lock* lock = new Lock;  // never freed: threads may still use it during exit
  return lock;
}
Lock& the_lock() {
  return *lock_ptr();
}

std::uint64_t ticks_to_ns(std::uint64_t ticks) {
  return static_cast<std::uint64_t>(ticks * detail::seconds_per_tick() * 1e9);
}

void request_drop(Lock& g) {
  ++g.drop_requests;
  detail::eval_breaker.store(true, std::memory_order_relaxed);
  if (trace::enabled()) trace::instant("drop request", "gil");
}

void take(ThreadState& ts, bool ask_at_once) {
  Lock& g = the_lock();
  std::unique_lock lk(g.mutex);
  std::uint64_t waited_from = 0;
  if (g.locked) {
    waited_from = detail::ticks_now();
    if (ask_at_once) request_drop(g);
    const std::chrono::nanoseconds interval(settings().wait_ns.load(std::memory_order_relaxed));
    while (g.locked) {
      const std::uint64_t saved_switch_number = g.switch_number;
      const bool timed_out = g.cond.wait_for(lk, interval) == std::cv_status::timeout;
      if (timed_out && g.locked && g.switch_number == saved_switch_number) request_drop(g);
    }
  }
  g.locked = true;
  if (g.last_holder != &ts) {
    g.last_holder = &ts;
    ++g.switch_number;
  }
  if (g.switch_waiters > 0) g.switch_cond.notify_all();
  detail::eval_breaker.store(false, std::memory_order_relaxed);
  lk.unlock();

  const std::uint64_t now = detail::ticks_now();
  if (waited_from != 0) {
    detail::add(ts.wait_ticks, now - waited_from);
    if (trace::enabled()) {
      const std::uint64_t end = trace::now_ns();
      trace::span("waiting for the GIL", "gil", end - ticks_to_ns(now - waited_from), end);
    }
  }
  detail::add(ts.acquisitions, 1);
  ts.acquired_at.store(now, std::memory_order_relaxed);
  ts.holding.store(true, std::memory_order_relaxed);
}

void drop(ThreadState& ts) {
  const std::uint64_t now = detail::ticks_now();
  const std::uint64_t since = ts.acquired_at.load(std::memory_order_relaxed);
  detail::add(ts.hold_ticks, now - since);
  ts.holding.store(false, std::memory_order_relaxed);
  if (trace::enabled()) {
    const std::uint64_t end = trace::now_ns();
    trace::span("holding the GIL", "gil", end - ticks_to_ns(now - since), end);
  }

  Lock& g = the_lock();
  std::unique_lock lk(g.mutex);
  g.locked = false;
  g.cond.notify_one();
  if (detail::eval_breaker.load(std::memory_order_relaxed) && g.last_holder == &ts) {
    // Forced switching: we were asked to drop, so do not compete for the GIL again until
    // the thread that asked (or any other) has actually taken it.
    detail::eval_breaker.store(false, std::memory_order_relaxed);
    ++g.forced_switches;
    ++g.switch_waiters;
    g.switch_cond.wait(lk, [&] { return g.last_holder != &ts; });
    --g.switch_waiters;
    lk.unlock();
    detail::add(ts.wait_ticks, detail::ticks_now() - now);
  }
}

Mode mode_in_use() {
  Settings& s = settings();
  s.in_use.store(true, std::memory_order_relaxed);
  return s.mode.load(std::memory_order_relaxed);
}

void take_back_after_blocking(ThreadState& ts) {
  const Mode m = mode_in_use();
  if (m == Mode::off) {
    ts.holding.store(true, std::memory_order_relaxed);
    detail::add(ts.acquisitions, 1);
    return;
  }
  take(ts, m == Mode::io_priority);
}

void before_fork() {
  detail::registry_before_fork();
  the_lock().mutex.lock();
}
void after_fork_parent() {
  the_lock().mutex.unlock();
  detail::registry_after_fork_parent();
}
void after_fork_child() {
  // The old mutex and conditions may record waiters that do not exist here: build new ones.
  detail::registry_after_fork_child();
  ThreadState* self = detail::current_thread();
  Lock* fresh = new Lock;
  if (self != nullptr && self->holding.load(std::memory_order_relaxed)) {
    fresh->locked = true;
    fresh->last_holder = self;
  }
  lock_ptr() = fresh;
  detail::eval_breaker.store(false, std::memory_order_relaxed);
}

[[maybe_unused]] const bool fork_handlers_installed = [] {
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
  return true;
}();

}  // namespace

Mode parse_mode(std::string_view text) {
  if (text == "cpython") return Mode::cpython;
  if (text == "io_priority") return Mode::io_priority;
  if (text == "off") return Mode::off;
  throw std::invalid_argument("GIL mode must be 'cpython', 'io_priority' or 'off', not '" +
                              std::string(text) + "'");
}

std::string_view to_string(Mode mode) {
  switch (mode) {
    case Mode::cpython:
      return "cpython";
    case Mode::io_priority:
      return "io_priority";
    case Mode::off:
      return "off";
  }
  return "?";
}

void set_mode(Mode mode) {
  Settings& s = settings();
  if (s.in_use.load(std::memory_order_relaxed) && s.mode.load() != mode) {
    throw std::logic_error("gil::set_mode: the GIL is already in use (mode '" +
                           std::string(to_string(s.mode.load())) +
                           "'); choose the mode before any thread first takes it");
  }
  s.mode.store(mode);
}

Mode mode() {
  return settings().mode.load(std::memory_order_relaxed);
}

void set_switch_interval(double seconds) {
  const std::int64_t ns = interval_to_ns(seconds, "gil::set_switch_interval");
  Settings& s = settings();
  s.wait_ns.store(ns);
  s.interval.store(seconds);
}

double get_switch_interval() {
  return settings().interval.load();
}

void acquire() {
  ThreadState& ts = detail::this_thread();
  if (ts.holding.load(std::memory_order_relaxed)) {
    throw std::logic_error("gil::acquire: thread '" + ts.name + "' already holds the GIL");
  }
  take_back_after_blocking(ts);
}

void release() {
  ThreadState* ts = detail::current_thread();
  if (ts == nullptr || !ts->holding.load(std::memory_order_relaxed)) {
    throw std::logic_error("gil::release: the calling thread does not hold the GIL");
  }
  if (mode() == Mode::off) {
    ts->holding.store(false, std::memory_order_relaxed);
    return;
  }
  drop(*ts);
}

bool held() noexcept {
  const ThreadState* ts = detail::current_thread();
  return ts != nullptr && ts->holding.load(std::memory_order_relaxed);
}

Released::Released() : retake_(held()) {
  if (retake_) release();
}

Released::~Released() {
  if (retake_) take_back_after_blocking(detail::this_thread());
}

namespace detail {

void handle_eval_breaker() {
  ThreadState* ts = current_thread();
  if (ts == nullptr || !ts->holding.load(std::memory_order_relaxed)) return;
  if (mode() == Mode::off) return;
  drop(*ts);
  take(*ts, false);
}

// Called by the registry when a thread exits still holding the GIL: let the others run.
void drop_at_thread_exit(ThreadState& ts) {
  if (mode() == Mode::off) {
    ts.holding.store(false, std::memory_order_relaxed);
  } else {
    drop(ts);
  }
}

// Read by stats() / reset_stats() in gil_stats.cpp.
void read_lock_counters(std::uint64_t& switches, std::uint64_t& drops, std::uint64_t& forced) {
  Lock& g = the_lock();
  std::lock_guard lk(g.mutex);
  switches = g.switch_number;
  drops = g.drop_requests;
  forced = g.forced_switches;
}

void reset_lock_counters() {
  Lock& g = the_lock();
  std::lock_guard lk(g.mutex);
  g.switch_number = 0;
  g.drop_requests = 0;
  g.forced_switches = 0;
}

void forget_holder(const ThreadState* ts) {
  Lock& g = the_lock();
  std::lock_guard lk(g.mutex);
  if (g.last_holder == ts) g.last_holder = nullptr;
}

}  // namespace detail
}  // namespace gilio::gil
