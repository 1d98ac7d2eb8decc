// gilio/asyncio/generators.hpp — AsyncGenerator<T>, Python's asynchronous generator (PEP 525):
// a coroutine that awaits and also yields, consumed one value at a time.
//
//     async def ticker(delay, to):              AsyncGenerator<int> ticker(double delay, int to) {
//         for i in range(to):                     for (int i = 0; i < to; ++i) {
//             yield i                               co_yield i;
//             await asyncio.sleep(delay)            co_await asyncio::sleep(delay);
//                                                 }
//                                               }
//     async for i in ticker(0.1, 3):            auto gen = ticker(0.1, 3);
//         print(i)                              while (std::optional<int> i = co_await gen.next())
//                                                 fmt::print("{}\n", *i);
//
// C++ has no `async for`: the while loop over next() is its spelling, and std::nullopt is
// Python's StopAsyncIteration.
//
// How it runs. Calling the function makes the frame and runs nothing (as calling an `async def`
// with a yield in it). `co_await gen.next()` runs the body inside the task that awaits — an
// async generator has no task of its own, in Python or here — until the next `co_yield`, which
// parks the frame and hands the value over, or until the body ends: then next() gives
// std::nullopt, or throws what the body threw, once. Both jumps go through the task's
// trampoline, as co_await on a Coro does (coro.hpp), so a chain of generators feeding each other
// uses no stack. What the body awaits suspends the consumer's task, and cancelling that task
// throws CancelledError at the body's co_await; unless the body catches it, it ends the
// generator and comes out of next().
//
// One step at a time: next(), athrow() or aclose() while another is still running the body
// (from another task) throws std::runtime_error ("anext(): asynchronous generator is already
// running"), as Python's.
//
// Closing. aclose() throws GeneratorExit (exceptions.hpp; not a std::exception) at the parked
// co_yield: the body's destructors and catch blocks run, it may co_await to clean up (outside
// the catch block, as C++ wants), and it must then end — a co_yield instead makes aclose() throw
// std::runtime_error("async generator ignored GeneratorExit"). athrow(e) throws e there instead
// and gives the value the body yields next (std::nullopt if it ends instead). A generator that
// never started is just marked closed.
//
// Sending. AsyncGenerator<T, S> also takes values of type S back (PEP 525's asend): in its body
// `co_yield v` evaluates to std::optional<S> — the value the consumer sent with asend(s) to
// resume it, or std::nullopt when next() resumed it (Python's None, since next() is asend(None)).
// With S void, the default, co_yield evaluates to nothing and asend() does not exist. As in
// Python, a generator that never started takes no value: start it with next() (asend throws
// std::invalid_argument, Python's TypeError).
//
// Finalization, as asyncio does it through sys.set_asyncgen_hooks (base_events.py). The first
// step registers the generator with the loop running it (_asyncgen_firstiter_hook). Its handle
// destroyed while the frame is parked at a co_yield — a consumer that broke out of its loop —
// is asyncio's finalizer hook: the loop takes the frame and closes it with aclose() in a task
// of its own, scheduled with call_soon, so that the clean-up may await. With no loop to do that
// the frame is destroyed at once: destructors run, nothing awaits. Destroyed while it runs
// (its consumer's frame torn down around it, as a closing loop does to a pending task) it is
// destroyed at once, as a Coro would be. close() — so asyncio::run and Runner too — calls
// shutdown_asyncgens() after the leftover tasks have ended: every generator still parked is
// closed, concurrently, and an error one throws goes to the loop's exception handler.
//
// As with a Coro, the handle must outlive an await on it; and, as a task, a generator belongs to
// the thread of its loop (its finalization schedules with call_soon, not call_soon_threadsafe).
//
// Mirrors: the async_gen objects of Objects/genobject.c, and BaseEventLoop's asyncgen hooks and
// shutdown_asyncgens in Lib/asyncio/base_events.py. Read next: docs/03-tasks-and-cancellation.md,
// "Asynchronous generators".
#pragma once

#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/exceptions.hpp"

namespace gilio::asyncio {

template <class T, class S = void>
class AsyncGenerator;

namespace detail {

// What every async generator's promise has, whatever it yields: where it stands, the loop it
// is registered with, and the exceptions in transit. The typed part (AsyncGenPromise) adds the
// slot for the value.
class AsyncGenCore : public PromiseBase, public ListNode {
 public:
  enum class State : std::uint8_t {
    created,  // never run
    parked,   // at a co_yield
    running,  // a next(), athrow() or aclose() is running the body
    closed,   // ended (or closed before it started)
  };

  State state() const noexcept { return state_; }
  std::coroutine_handle<> frame() const noexcept { return frame_; }
  // std::runtime_error if a step is running the body: "<what>: asynchronous generator is already
  // running".
  void check_not_running(const char* what) const {
    if (state_ == State::running) [[unlikely]]
      already_running(what);
  }
  // Marks a generator that never ran as closed: its body will not run.
  void close_unstarted() noexcept { state_ = State::closed; }
  // The exception the body ended with, for the step that saw it end (and only that one).
  std::exception_ptr take_error() noexcept { return std::exchange(error_, nullptr); }
  // e is thrown at the parked co_yield when the body resumes (athrow, aclose).
  void throw_at_yield(std::exception_ptr e) noexcept { throw_in_ = std::move(e); }

  // A step begins: the body runs until its next co_yield or its end.
  void begin_step() noexcept {
    if (state_ == State::created) first_step();
    state_ = State::running;
  }

  // The coroutine protocol.
  void unhandled_exception() noexcept { error_ = std::current_exception(); }
  void return_void() noexcept {}
  FinalAwaiter final_suspend() noexcept {
    state_ = State::closed;
    leave_loop();
    return {};
  }
  struct YieldAwaiter {
    AsyncGenCore* g;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<>) const noexcept {
      g->state_ = State::parked;
      return g->back_to_awaiter();
    }
    void await_resume() const {
      if (g->throw_in_) [[unlikely]]
        std::rethrow_exception(std::exchange(g->throw_in_, nullptr));
    }
  };

  // The loop's bookkeeping (runtime/generators.cpp, EventLoop).
  EventLoop* loop = nullptr;   // registered with this loop's list (null: with none)
  bool held_by_loop = false;   // a loop's task is closing it, and frees it if the handle went
  bool handle_gone = false;    // its AsyncGenerator handle was destroyed
  void leave_loop() noexcept;  // off its loop's list

 protected:
  explicit AsyncGenCore(std::coroutine_handle<> frame) noexcept : frame_(frame) {}
  ~AsyncGenCore() = default;

 private:
  void first_step() noexcept;  // registers with the running loop, if any
  [[noreturn]] static void already_running(const char* what);
  std::coroutine_handle<> frame_;
  std::exception_ptr error_;     // what the body ended with, not yet given to a step
  std::exception_ptr throw_in_;  // to throw at the parked co_yield
  State state_ = State::created;
};

// The slot of the value yielded last, until a step takes it: what the steps of a generator of
// T read, whatever it takes back.
template <class T>
struct AsyncGenValue : AsyncGenCore {
  using AsyncGenCore::AsyncGenCore;
  std::optional<T> value;
};

// The value asend() sent, until the parked co_yield takes it (nothing for a generator that takes
// none).
template <class S>
struct AsyncGenSent {
  std::optional<S> sent;
  // co_yield in a generator that takes values: evaluates to what asend() sent, or std::nullopt.
  struct YieldAwaiter : AsyncGenCore::YieldAwaiter {
    std::optional<S>* slot;
    std::optional<S> await_resume() const {
      std::optional<S> s = std::exchange(*slot, std::nullopt);
      AsyncGenCore::YieldAwaiter::await_resume();  // what athrow() or aclose() throws here
      return s;
    }
  };
};
template <>
struct AsyncGenSent<void> {};

template <class T, class S>
struct AsyncGenPromise final : AsyncGenValue<T>, AsyncGenSent<S> {
  AsyncGenPromise() noexcept
      : AsyncGenValue<T>(std::coroutine_handle<AsyncGenPromise>::from_promise(*this)) {}
  AsyncGenerator<T, S> get_return_object() noexcept;
  // U defaults to T so that `co_yield {a, b}` builds a T (with clang: g++ 12 rejects a braced
  // list in any co_await or co_yield, a known bug).
  template <class U = T>
  auto yield_value(U&& v) {
    this->value.emplace(std::forward<U>(v));
    if constexpr (std::is_void_v<S>) {
      return AsyncGenCore::YieldAwaiter{this};
    } else {
      return typename AsyncGenSent<S>::YieldAwaiter{{this}, &this->sent};
    }
  }
};

// Runs one step of the body for the awaiting coroutine: until its next co_yield or its end.
// Already closed: nothing runs. Trivially destructible, as every awaiter that user code awaits
// as a temporary should be (g++ 12 destroys some such temporaries twice).
class AsyncGenStep {
 public:
  AsyncGenStep(AsyncGenCore* g, const char* what) noexcept : g_(g), what_(what) {}
  bool await_ready() const {
    g_->check_not_running(what_);
    return g_->state() == AsyncGenCore::State::closed;
  }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> awaiting) noexcept {
    g_->begin_step();
    return run_for(*g_, g_->frame(), awaiting);
  }
  void await_resume() const noexcept {}

 protected:
  AsyncGenCore* g_;
  const char* what_;
};

// next() and athrow(): the value the step yielded; std::nullopt if the body ended (or had);
// the body's exception if it ended with one.
template <class T>
class AsyncGenNext : public AsyncGenStep {
 public:
  using AsyncGenStep::AsyncGenStep;
  std::optional<T> await_resume() {
    auto& g = static_cast<AsyncGenValue<T>&>(*g_);
    if (g.state() == AsyncGenCore::State::parked) {
      // Built from the value, not copied whole: g++ copies a small std::optional with one wide
      // load of the value and its flag, just stored apart by the yield, and the CPU cannot
      // forward two stores into one load — a stall that halved the items per second.
      std::optional<T> v(std::in_place, std::move(*g.value));
      g.value.reset();
      return v;
    }
    if (std::exception_ptr e = g.take_error()) std::rethrow_exception(e);
    return std::nullopt;
  }
};

// aclose() of the generator whose promise is g (runtime/generators.cpp).
Coro<void> close_async_generator(AsyncGenCore& g);
// The handle of g was destroyed (~AsyncGenerator): free the frame, or hand it to its loop to
// close first.
void drop_async_generator(AsyncGenCore& g) noexcept;

template <class T>
Coro<std::optional<T>> throw_into(AsyncGenValue<T>& g, std::exception_ptr e) {
  g.check_not_running("athrow()");
  if (g.state() == AsyncGenCore::State::closed) co_return std::nullopt;
  if (g.state() == AsyncGenCore::State::created) {  // thrown before the first line: it ends
    g.close_unstarted();
    std::rethrow_exception(e);
  }
  g.throw_at_yield(std::move(e));
  std::optional<T> v = co_await AsyncGenNext<T>(&g, "athrow()");
  co_return std::move(v);
}

// asend(): resumes the parked co_yield with `value` (a coroutine, so that the value lives in its
// frame and not in an awaiter: g++ 12 destroys some awaiter temporaries twice).
template <class T, class S>
Coro<std::optional<T>> send_into(AsyncGenPromise<T, S>& g, S value) {
  g.check_not_running("asend()");
  if (g.state() == AsyncGenCore::State::closed) co_return std::nullopt;
  if (g.state() == AsyncGenCore::State::created) {
    throw std::invalid_argument(
        "asend(): can't send a value to a just-started async generator (start it with next())");
  }
  g.sent.emplace(std::move(value));
  std::optional<T> v = co_await AsyncGenNext<T>(&g, "asend()");
  co_return std::move(v);
}

}  // namespace detail

// The return type of an asynchronous generator function: a coroutine whose body uses co_yield.
// Move-only; owns the frame (see the top of the file for what destroying it does).
template <class T, class S>
class [[nodiscard]] AsyncGenerator {
  static_assert(!std::is_reference_v<T> && !std::is_void_v<T>,
                "AsyncGenerator<T>: T must be a value type (yield a pointer to share an object)");
  static_assert(!std::is_reference_v<S>, "AsyncGenerator<T, S>: S must be a value type");

 public:
  using promise_type = detail::AsyncGenPromise<T, S>;
  using value_type = T;
  using send_type = S;

  AsyncGenerator() = default;
  AsyncGenerator(AsyncGenerator&& o) noexcept : g_(std::exchange(o.g_, nullptr)) {}
  AsyncGenerator& operator=(AsyncGenerator&& o) noexcept {
    if (this != &o) {
      reset();
      g_ = std::exchange(o.g_, nullptr);
    }
    return *this;
  }
  ~AsyncGenerator() { reset(); }

  bool valid() const noexcept { return g_ != nullptr; }

  // anext(gen): runs the body to its next co_yield and gives that value; std::nullopt once the
  // body has ended (every time after, too). Rethrows what the body threw, once.
  detail::AsyncGenNext<T> next() { return {&checked(), "anext()"}; }
  // gen.athrow(e): throws e at the parked co_yield; gives the value yielded next, or
  // std::nullopt if the body ends (or had ended). Throws e itself if the body does not catch it,
  // and if the body never started.
  Coro<std::optional<T>> athrow(std::exception_ptr e) {
    if (!e) throw std::invalid_argument("athrow: null exception");
    return detail::throw_into(checked(), std::move(e));
  }
  template <class E>
  Coro<std::optional<T>> athrow(E e) {
    return athrow(std::make_exception_ptr(std::move(e)));
  }
  // gen.asend(value), for a generator that takes values (S not void): resumes the body with the
  // parked co_yield evaluating to `value`; gives the value yielded next, or std::nullopt if the
  // body ends (or had ended). std::invalid_argument if the body never started (Python's
  // TypeError): next() starts it.
  template <class U = S>
  requires(!std::is_void_v<U>) Coro<std::optional<T>> asend(U value) {
    return detail::send_into(checked(), std::move(value));
  }
  // gen.aclose(): throws GeneratorExit at the parked co_yield and runs the body to its end.
  // Returns when it ends; rethrows an exception other than GeneratorExit that it ends with;
  // std::runtime_error if it yields instead. Nothing runs if it never started or has ended.
  Coro<void> aclose() { return detail::close_async_generator(checked()); }

 private:
  friend promise_type;
  explicit AsyncGenerator(promise_type* g) noexcept : g_(g) {}
  promise_type& checked() const {
    if (g_ == nullptr) throw InvalidStateError("empty AsyncGenerator (moved from)");
    return *g_;
  }
  void reset() noexcept {
    if (g_ != nullptr) detail::drop_async_generator(*std::exchange(g_, nullptr));
  }
  promise_type* g_ = nullptr;
};

namespace detail {
template <class T, class S>
AsyncGenerator<T, S> AsyncGenPromise<T, S>::get_return_object() noexcept {
  return AsyncGenerator<T, S>(this);
}
}  // namespace detail

}  // namespace gilio::asyncio
