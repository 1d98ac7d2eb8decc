// gilio/asyncio/timeouts.hpp — timeout, timeout_at and wait_for; mirrors Lib/asyncio/timeouts.py
// and tasks.wait_for (3.12+, which is written on top of timeouts).
//
// timeout_at(when, aw) runs `aw` inside the current task with a deadline. When the deadline
// passes, the current task is cancelled — CancelledError appears wherever it is waiting inside
// `aw` — and on the way out that CancelledError becomes TimeoutError. Only our own: the scope
// remembers task.cancelling() on entry and converts only if, after taking its own request back
// with uncancel(), no other cancellation is pending. So nested timeouts each convert their own,
// and a cancel() from outside that races with the deadline stays a CancelledError.
//
// timeout(delay, aw) counts the delay from the moment it is awaited, as asyncio's reads the clock
// on entering the `async with`. In place of `aw`, a body may be given: a callable that takes an
// asyncio::Timeout — what `async with asyncio.timeout(d) as cm` names — and returns what to
// await, so that it can read and move the deadline (cm.when(), cm.reschedule()) and ask
// afterwards whether it passed (cm.expired()).
//
// wait_for(aw, timeout) is timeout() around `co_await aw` — that very coroutine, with none of its
// own (a server awaiting wait_for(reader.readline(), t) per message pays one frame, not two). If
// aw is a task, the cancellation reaches it (awaiting a task and being cancelled cancels it), and
// wait_for waits until it has really finished before throwing TimeoutError. A timeout <= 0 never
// runs a coroutine at all: it becomes a task that is cancelled before its first step, as in
// asyncio; a task or a future already done gives its result, and a pending future is cancelled.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "gilio/asyncio/tasks.hpp"
#include "gilio/asyncio/waiting.hpp"

namespace gilio::asyncio {
namespace detail {

class TimeoutScope final : public TimerTarget {
 public:
  explicit TimeoutScope(std::int64_t when_ns);  // when_ns < 0: no deadline
  ~TimeoutScope();
  TimeoutScope(const TimeoutScope&) = delete;
  TimeoutScope& operator=(const TimeoutScope&) = delete;
  // Leaves the scope; true if the CancelledError that ended it must become TimeoutError.
  bool exit(bool by_cancellation) noexcept;
  bool expired() const noexcept { return state_ == State::expiring || state_ == State::expired; }
  // The deadline in loop nanoseconds; < 0: none.
  std::int64_t when_ns() const noexcept { return when_ns_; }
  // Moves the deadline (< 0: none); one already past expires the scope through call_soon.
  // std::runtime_error once the deadline has passed or the scope was left, as asyncio's.
  void reschedule(std::int64_t when_ns);
  void on_timer() override;

 private:
  enum class State { entered, expiring, expired, exited };
  void arm();
  void disarm() noexcept;
  TaskCore* task_;
  TimerNode* timer_ = nullptr;  // a deadline to come
  Handle soon_;                 // a deadline already past: the expiry, queued by call_soon
  std::int64_t when_ns_;
  int cancelling_on_entry_;
  State state_ = State::entered;
};

// When a scope's deadline falls: fixed in loop time (timeout_at), or a delay that starts when the
// awaitable is first awaited (timeout, wait_for) — as asyncio's timeout(delay) reads the clock in
// __aenter__, not when the object is made. ns < 0: no deadline.
struct Deadline {
  std::int64_t ns;
  bool relative;
  std::int64_t when_ns() const {
    if (ns < 0 || !relative) return ns;
    return std::max<std::int64_t>(0, EventLoop::now_ns() + ns);
  }
};

// +infinity: no deadline (-1); anything else through the loop's one conversion.
inline Deadline deadline_at(double when_seconds) {
  if (std::isinf(when_seconds) && when_seconds > 0) return {-1, false};
  return {std::max<std::int64_t>(0, seconds_to_ns(when_seconds, "timeout")), false};
}
// A delay: +infinity is no deadline; one below zero is clamped to 0 (already expired), since a
// deadline below zero would read as "none".
inline Deadline deadline_after(double delay_seconds) {
  if (std::isinf(delay_seconds) && delay_seconds > 0) return {-1, true};
  return {std::clamp(seconds_to_ns(delay_seconds, "timeout"), std::int64_t{0},
                     std::int64_t{4'000'000'000'000'000'000}),
          true};
}

}  // namespace detail

// asyncio.Timeout: what `async with asyncio.timeout(delay) as cm:` names. A body passed to
// timeout() or timeout_at() gets one, a copyable handle to its scope:
//
//     co_await asyncio::timeout(10, [&](asyncio::Timeout cm) -> Coro<void> {
//       cm.reschedule(loop.time() + 30);  // cm.reschedule(loop.time() + 30)
//       co_await long_running();
//     });
//
// when() is the deadline in loop time (nullopt: none); reschedule(when) moves it (nullopt or
// +infinity: none; a time already past expires the scope a turn of the loop later, through
// call_soon); expired() tells whether the deadline passed, also after the scope is left — a body
// that swallowed the cancellation returns normally, and then only expired() says the time ran out.
// reschedule throws std::runtime_error once the deadline has passed or the scope was left, as
// asyncio's.
class Timeout {
 public:
  explicit Timeout(std::shared_ptr<detail::TimeoutScope> scope) noexcept
      : scope_(std::move(scope)) {}
  std::optional<double> when() const {
    const std::int64_t ns = scope_->when_ns();
    if (ns < 0) return std::nullopt;
    return static_cast<double>(ns) * 1e-9;
  }
  void reschedule(std::optional<double> when) const {
    scope_->reschedule(when ? detail::deadline_at(*when).ns : -1);
  }
  bool expired() const noexcept { return scope_->expired(); }

 private:
  std::shared_ptr<detail::TimeoutScope> scope_;
};

namespace detail {

// A body: a callable that takes the Timeout and returns what to await (asyncio's
// `async with timeout(d) as cm:` block, which may call cm.reschedule()).
template <class F>
concept TimeoutBody = std::is_invocable_v < std::decay_t<F>
&, Timeout > &&!Awaitable<F>;

// Where run_with_deadline keeps its scope: in its own frame for an awaitable; shared with the
// Timeout handles for a body, which may ask a handle expired() after the scope is left.
template <class Aw>
struct ScopeOf {
  explicit ScopeOf(std::int64_t when_ns) : scope(when_ns) {}
  TimeoutScope& get() noexcept { return scope; }
  Aw&& start(Aw& aw) noexcept { return std::move(aw); }
  TimeoutScope scope;
};
template <TimeoutBody F>
struct ScopeOf<F> {
  explicit ScopeOf(std::int64_t when_ns) : scope(std::make_shared<TimeoutScope>(when_ns)) {}
  TimeoutScope& get() noexcept { return *scope; }
  auto start(F& body) { return body(Timeout(scope)); }
  std::shared_ptr<TimeoutScope> scope;
};

template <class R, class Aw>
Coro<R> run_with_deadline(Deadline deadline, Aw aw) {
  ScopeOf<Aw> holder(deadline.when_ns());
  TimeoutScope& scope = holder.get();
  try {
    if constexpr (std::is_void_v<R>) {
      co_await holder.start(aw);
      scope.exit(false);
    } else {
      R result = co_await holder.start(aw);
      scope.exit(false);
      co_return result;
    }
  } catch (const CancelledError&) {
    if (scope.exit(true)) throw TimeoutError("timed out");
    throw;
  } catch (...) {
    scope.exit(false);
    throw;
  }
}
// What a deadline's scope awaits, for an awaitable or a body.
template <class Aw>
using deadline_result_t = await_result_t<std::invoke_result_t<Aw&, Timeout>>;

// wait_for's special case, a timeout <= 0 (or NaN, refused): as asyncio, a coroutine never runs
// at all — it becomes a task cancelled before its first step — a task or a future already done
// gives what it ended with, and a pending future is cancelled itself.
template <class R, class Aw>
Coro<R> wait_for_expired(Aw aw, double timeout_seconds) {
  if (std::isnan(timeout_seconds)) throw std::invalid_argument("wait_for: the timeout is NaN");
  if constexpr (is_future_v<Aw>) {
    if (!aw.done()) {
      aw.cancel();
      throw TimeoutError("timed out");
    }
    co_return aw.result();
  } else {
    auto task = ensure_task(std::move(aw));
    if (task.done()) co_return task.result();  // even a task cancelled before: CancelledError
    task.cancel();
    // Wait for it to end, as asyncio's _cancel_and_wait: a cancellation of our own propagates
    // (also when the task has ended by the time we resume), and stops only our wait.
    std::vector<decltype(task)> one{task};
    auto ended = ::gilio::asyncio::wait(std::move(one));
    co_await ended;
    if (task.cancelled()) throw TimeoutError("timed out");
    co_return task.result();
  }
}

}  // namespace detail

// asyncio.timeout_at(when): `when` is loop time (EventLoop::time()); +infinity: no deadline.
template <Awaitable Aw>
auto timeout_at(double when, Aw&& aw) {
  using R = detail::await_result_t<Aw>;
  return detail::run_with_deadline<R>(detail::deadline_at(when), std::forward<Aw>(aw));
}
// asyncio.timeout(delay): a deadline `delay` seconds after it is awaited; +infinity: none.
template <Awaitable Aw>
auto timeout(double delay, Aw&& aw) {
  using R = detail::await_result_t<Aw>;
  return detail::run_with_deadline<R>(detail::deadline_after(delay), std::forward<Aw>(aw));
}
// The same two around a body that is given the Timeout (see above), for cm.when(),
// cm.reschedule() and cm.expired(). The body is moved (or copied) into the timeout's frame and
// kept there while what it returned runs. g++ 12 bug: a lambda written inside the co_await
// expression is destroyed twice, harmless when it captures by reference ([&]) but a double
// free when it holds a std::string by value: name such a body first and pass it by name.
template <detail::TimeoutBody F>
auto timeout_at(double when, F&& body) {
  using R = detail::deadline_result_t<std::decay_t<F>>;
  return detail::run_with_deadline<R>(detail::deadline_at(when), std::forward<F>(body));
}
template <detail::TimeoutBody F>
auto timeout(double delay, F&& body) {
  using R = detail::deadline_result_t<std::decay_t<F>>;
  return detail::run_with_deadline<R>(detail::deadline_after(delay), std::forward<F>(body));
}

// asyncio.wait_for(aw, timeout): timeout() around `co_await aw`, with no coroutine of its own
// (the deadline's scope is the only frame), except for the special case of a timeout <= 0.
template <Awaitable Aw>
Coro<detail::await_result_t<Aw>> wait_for(Aw&& aw, double timeout_seconds) {
  using R = detail::await_result_t<Aw>;
  if (!(timeout_seconds > 0)) {
    return detail::wait_for_expired<R>(std::forward<Aw>(aw), timeout_seconds);
  }
  return detail::run_with_deadline<R>(detail::deadline_after(timeout_seconds),
                                      std::forward<Aw>(aw));
}

}  // namespace gilio::asyncio
