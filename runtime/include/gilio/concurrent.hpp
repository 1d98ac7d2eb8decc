// gilio/concurrent.hpp — executors usable with or without an event loop; mirrors
// Lib/concurrent/futures/_base.py (Future) and thread.py (ThreadPoolExecutor).
//
// A concurrent::Future is the thread-safe cousin of asyncio::Future: any thread may complete it
// and any thread may wait for it. result() blocks with the GIL released (a blocking call, like
// every other), so the worker that will complete the future can run.
//
// ThreadPoolExecutor runs submitted calls on up to max_workers threads, created lazily as work
// arrives (as Python's _adjust_thread_count does). Its workers are gilio threads: they run the
// call holding the GIL, exactly as a Python worker runs Python code — so CPU-bound calls take
// turns (lesson L4) while calls that block, or release the GIL, overlap (L3, L11).
//
// Edge cases, as in Python: cancel() succeeds only before the call starts; submit() after
// shutdown() throws std::runtime_error; shutdown(cancel_futures=true) cancels what has not
// started; the destructor is shutdown(wait=true). An exception thrown by the call is stored and
// rethrown by result().
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "gilio/asyncio/exceptions.hpp"

namespace gilio::concurrent {

// concurrent.futures.CancelledError is asyncio.CancelledError (since Python 3.8).
using CancelledError = asyncio::CancelledError;
using TimeoutError = asyncio::TimeoutError;
using InvalidStateError = asyncio::InvalidStateError;

namespace detail {

// A lock of four bytes for short critical sections, on a Linux futex (the three-state mutex of
// Drepper's "Futexes Are Tricky"): free, held, or held with someone asleep waiting for it. Taken
// with one atomic exchange when free; when not, it tries a moment — a few hundred pauses, then
// handing the core to whatever else is runnable — before it sleeps, since on a VM a sleeping
// thread costs ~25 µs to wake, many times such a section. A std::mutex is 40 bytes and sleeps
// on the first miss. BasicLockable: std::lock_guard takes it.
class FutexLock {
 public:
  void lock() noexcept {
    std::uint32_t free = 0;
    if (!state_.compare_exchange_strong(free, 1, std::memory_order_acquire)) lock_contended();
  }
  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) wake_one();
  }

 private:
  void lock_contended() noexcept;
  void wake_one() noexcept;
  std::atomic<std::uint32_t> state_{0};  // 0 free, 1 held, 2 held and someone may sleep on it
};

// A flag set once that threads may sleep on until it is set: a concurrent::Future's "done".
// Four bytes where a std::condition_variable took 48; setting it costs a system call only when
// someone sleeps on it.
class DoneFlag {
 public:
  bool is_set() const noexcept { return state_.load(std::memory_order_acquire) & kSet; }
  void set() noexcept {
    if (state_.exchange(kSet, std::memory_order_release) & kSleepers) wake_all();
  }
  // Waits with the GIL released until set (true), or until `timeout` seconds have passed
  // (false; timeout < 0 waits for ever). It polls a moment before sleeping (a pool's answer
  // often comes within microseconds).
  bool wait_released(double timeout);

 private:
  static constexpr std::uint32_t kSet = 1;
  static constexpr std::uint32_t kSleepers = 2;
  void wake_all() noexcept;
  std::atomic<std::uint32_t> state_{0};
};

}  // namespace detail

template <class T>
class Future {
  // A process pool's caller makes one of these a call: with a std::mutex and a
  // std::condition_variable it was 144 bytes for Future<long>, now 64 (chapter 6).
  struct State {
    enum class Phase { pending, running, finished, cancelled };
    detail::FutexLock mutex;
    detail::DoneFlag done;  // set when phase becomes finished or cancelled
    Phase phase = Phase::pending;
    std::optional<std::conditional_t<std::is_void_v<T>, bool, T>> value;
    std::exception_ptr error;
    std::vector<std::function<void(Future)>> callbacks;
  };
  using Phase = typename State::Phase;

 public:
  Future() : s_(std::make_shared<State>()) {}

  bool done() const {
    std::lock_guard lk(s_->mutex);
    return s_->phase == Phase::finished || s_->phase == Phase::cancelled;
  }
  bool running() const {
    std::lock_guard lk(s_->mutex);
    return s_->phase == Phase::running;
  }
  bool cancelled() const {
    std::lock_guard lk(s_->mutex);
    return s_->phase == Phase::cancelled;
  }
  // Cancels the call if it has not started; false otherwise.
  bool cancel() {
    {
      std::lock_guard lk(s_->mutex);
      if (s_->phase == Phase::running || s_->phase == Phase::finished) return false;
      if (s_->phase == Phase::cancelled) return true;
      s_->phase = Phase::cancelled;
      s_->done.set();
    }
    run_callbacks();
    return true;
  }
  // Waits (GIL released) and returns the value or rethrows; CancelledError if cancelled;
  // TimeoutError if `timeout` seconds pass first (timeout < 0: no limit).
  T result(double timeout = -1) {
    wait_done(timeout);
    std::lock_guard lk(s_->mutex);
    if (s_->phase == Phase::cancelled) throw CancelledError();
    if (s_->error) std::rethrow_exception(s_->error);
    if constexpr (!std::is_void_v<T>) return *s_->value;
  }
  std::exception_ptr exception(double timeout = -1) {
    wait_done(timeout);
    std::lock_guard lk(s_->mutex);
    if (s_->phase == Phase::cancelled) throw CancelledError();
    return s_->error;
  }
  // fn(future) runs in the thread that completes the future — or now, if it is done.
  void add_done_callback(std::function<void(Future)> fn) {
    {
      std::lock_guard lk(s_->mutex);
      if (s_->phase != Phase::finished && s_->phase != Phase::cancelled) {
        s_->callbacks.push_back(std::move(fn));
        return;
      }
    }
    fn(*this);
  }

  // ---- for executors ----
  // Marks the future running; false if it was cancelled (then the call must not run).
  bool set_running_or_notify_cancel() {
    std::lock_guard lk(s_->mutex);
    if (s_->phase == Phase::cancelled) return false;
    if (s_->phase != Phase::pending) throw InvalidStateError("Future in unexpected state");
    s_->phase = Phase::running;
    return true;
  }
  template <class... U>
  void set_result(U&&... v) {
    {
      std::lock_guard lk(s_->mutex);
      check_settable();
      if constexpr (std::is_void_v<T>) {
        s_->value = true;
      } else {
        s_->value.emplace(std::forward<U>(v)...);
      }
      s_->phase = Phase::finished;
      s_->done.set();
    }
    run_callbacks();
  }
  void set_exception(std::exception_ptr e) {
    {
      std::lock_guard lk(s_->mutex);
      check_settable();
      s_->error = std::move(e);
      s_->phase = Phase::finished;
      s_->done.set();
    }
    run_callbacks();
  }

 private:
  void check_settable() const {
    if (s_->phase == Phase::finished || s_->phase == Phase::cancelled) {
      throw InvalidStateError("Future is already done");
    }
  }
  void wait_done(double timeout) {
    if (!s_->done.is_set() && !s_->done.wait_released(timeout)) {
      throw TimeoutError("concurrent::Future::result timed out");
    }
  }
  void run_callbacks() {
    std::vector<std::function<void(Future)>> cbs;
    {
      std::lock_guard lk(s_->mutex);
      cbs.swap(s_->callbacks);
    }
    for (auto& cb : cbs) {
      try {
        cb(*this);
      } catch (const std::exception& e) {  // Python logs and goes on
        std::fprintf(stderr, "gilio: exception calling a done callback: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "gilio: exception calling a done callback\n");
      }
    }
  }
  std::shared_ptr<State> s_;
};

// The result type of calling fn(args...).
template <class F, class... Args>
using call_result_t = std::invoke_result_t<std::decay_t<F>&, std::decay_t<Args>&...>;

// Executor::map for any executor: submits every call first, then collects in order.
template <class Executor, class F, class Range>
auto map_with(Executor& executor, F fn, const Range& inputs) {
  using Fut = decltype(executor.submit(fn, *std::begin(inputs)));
  std::vector<Fut> futures;
  for (const auto& x : inputs)
    futures.push_back(executor.submit(fn, x));
  std::vector<decltype(futures.front().result())> out;
  out.reserve(futures.size());
  for (auto& f : futures)
    out.push_back(f.result());
  return out;
}

// Runs fn(args...) and completes `future` with what it returned or threw.
template <class R, class F, class Tuple>
void run_call(Future<R>& future, F& fn, Tuple& args) {
  if (!future.set_running_or_notify_cancel()) return;
  try {
    if constexpr (std::is_void_v<R>) {
      std::apply(fn, args);
      future.set_result();
    } else {
      future.set_result(std::apply(fn, args));
    }
  } catch (...) {
    future.set_exception(std::current_exception());
  }
}

class ThreadPoolExecutor {
 public:
  // max_workers = 0 picks Python's default, min(32, cores + 4).
  explicit ThreadPoolExecutor(std::size_t max_workers = 0);
  ~ThreadPoolExecutor();
  ThreadPoolExecutor(const ThreadPoolExecutor&) = delete;
  ThreadPoolExecutor& operator=(const ThreadPoolExecutor&) = delete;

  template <class F, class... Args>
  Future<call_result_t<F, Args...>> submit(F&& fn, Args&&... args) {
    using R = call_result_t<F, Args...>;
    Future<R> future;
    enqueue([future, fn = std::forward<F>(fn),
             args = std::make_tuple(
                 std::forward<Args>(args)...)]() mutable { run_call(future, fn, args); },
            [future]() mutable { future.cancel(); });
    return future;
  }
  // Calls fn on every element (in the pool), returns the results in order; rethrows the first
  // exception in order.
  template <class F, class Range>
  auto map(F fn, const Range& inputs) {
    return map_with(*this, fn, inputs);
  }
  void shutdown(bool wait = true, bool cancel_futures = false);
  std::size_t max_workers() const noexcept { return max_workers_; }

 private:
  void enqueue(std::function<void()> work, std::function<void()> cancel);
  struct Impl;
  std::size_t max_workers_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gilio::concurrent
#include "gilio/concurrent/process.hpp"  // ProcessPoolExecutor (it includes this header first)
