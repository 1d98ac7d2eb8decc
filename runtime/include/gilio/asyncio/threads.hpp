// gilio/asyncio/threads.hpp — to_thread and EventLoop::run_in_executor; mirrors
// Lib/asyncio/threads.py and BaseEventLoop.run_in_executor.
//
// The call runs on a pool thread, holding the GIL there as Python code would. The loop thread
// gets the result back thread-safely: the pool thread completes a concurrent::Future, whose
// callback posts (call_soon_threadsafe, which wakes the loop through its ring) a handle that
// copies the result into an asyncio::Future that the awaiting task is parked on. Cancelling the
// awaiting task cancels the asyncio future at once and the concurrent one if it has not started;
// a call already running runs to its end (a thread cannot be interrupted), as in asyncio.
//
// What lesson L5 shows with it: a CPU-bound function in to_thread still shares the one GIL with
// the loop thread, so the loop is delayed by about one switch interval each time it wants the
// GIL back (examples/to_thread.cpp measures it).
//
// The same bridge, the other way round and on its own (asyncio.run_coroutine_threadsafe, in
// tasks.py, and asyncio.wrap_future, in futures.py):
// - run_coroutine_threadsafe(coro, loop) is how a thread that is not the loop's hands it a
//   coroutine: the coroutine is posted with call_soon_threadsafe, becomes a task there, and its
//   outcome comes back in a concurrent::Future, which the thread may block on (result() releases
//   the GIL while it waits). Cancelling that future cancels the task, as asyncio's
//   _chain_future does. Where asyncio leaves the thread waiting for ever, here a coroutine that a
//   closing loop never started fails its future with std::runtime_error.
// - wrap_future(f) awaits a concurrent::Future from within the loop.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/futures.hpp"
#include "gilio/asyncio/tasks.hpp"
#include "gilio/concurrent.hpp"

namespace gilio::asyncio {
namespace detail {

// Lives on the heap from submission until the result is posted back to the loop thread, so the
// pool thread never touches the (single-threaded) reference count of the asyncio future.
template <class R>
struct Bridge {
  Future<R> target;
  concurrent::Future<R> source;
  void transfer() {
    if (target.done()) return;  // the awaiting task was cancelled meanwhile
    if (source.cancelled()) {
      target.cancel();
      return;
    }
    try {
      if constexpr (std::is_void_v<R>) {
        source.result();
        target.set_result();
      } else {
        target.set_result(source.result());
      }
    } catch (...) {
      target.set_exception(std::current_exception());
    }
  }
};

template <class R>
Coro<R> await_bridge(Future<R> target, concurrent::Future<R> source) {
  try {
    co_return co_await target;
  } catch (const CancelledError&) {
    source.cancel();  // only stops a call that has not started
    throw;
  }
}

// `from_executor`: the answer is a pool's, usually within microseconds, so an idle loop polls a
// moment before it sleeps (EventLoop::executor_call_started); a future wrapped by wrap_future
// may take any time, and the loop just sleeps.
template <class R>
Coro<R> wrap_concurrent(EventLoop& loop, concurrent::Future<R> source, bool from_executor = true) {
  Future<R> target(loop);
  auto* bridge = new Bridge<R>{target, source};
  if (from_executor) loop.executor_call_started();
  source.add_done_callback([token = loop.token(), bridge, from_executor](concurrent::Future<R>) {
    std::lock_guard lk(token->mutex);
    if (token->loop == nullptr) {
      // The loop has closed: every task (and so every awaiter of `target`) is gone, and the
      // bridge holds the last reference — freeing it here races with nobody.
      delete bridge;
      return;
    }
    token->loop->call_soon_threadsafe([bridge, loop = token->loop, from_executor] {
      if (from_executor) loop->executor_call_ended();
      bridge->transfer();
      delete bridge;
    });
  });
  return await_bridge(std::move(target), std::move(source));
}

// One run_coroutine_threadsafe call, shared by the poster, the task and the future's callback.
// `task` is touched on the loop's thread only, and emptied there before the task lets go of
// this, so the last reference may drop on any thread without touching a task's (single-threaded)
// reference count.
template <class T>
struct ThreadsafeCall {
  Coro<T> coro;  // until the loop starts it
  concurrent::Future<T> out;
  Task<> task;
  bool started = false;
  bool finished = false;
  ThreadsafeCall(Coro<T> c, concurrent::Future<T> f) : coro(std::move(c)), out(std::move(f)) {}
  ThreadsafeCall(const ThreadsafeCall&) = delete;
  ThreadsafeCall& operator=(const ThreadsafeCall&) = delete;
  ~ThreadsafeCall() {
    if (out.done()) return;
    if (started) {
      out.cancel();  // a task cancelled before its first step: the loop was closing
      return;
    }
    try {
      out.set_exception(std::make_exception_ptr(std::runtime_error(
          "run_coroutine_threadsafe: the event loop closed before the coroutine could start")));
    } catch (const InvalidStateError&) {  // cancelled by its owner meanwhile
    }
  }
};

// The task's coroutine: runs the caller's and copies how it ended into the concurrent future
// (asyncio's _set_concurrent_future_state), unless the owner cancelled that future meanwhile.
template <class T>
Coro<void> run_threadsafe_call(std::shared_ptr<ThreadsafeCall<T>> call) {
  Coro<T> coro = std::move(call->coro);
  std::optional<std::conditional_t<std::is_void_v<T>, std::monostate, T>> value;
  std::exception_ptr error;
  bool cancelled = false;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(coro);
      value.emplace();
    } else {
      value.emplace(co_await std::move(coro));
    }
  } catch (const CancelledError&) {
    cancelled = true;
  } catch (...) {
    error = std::current_exception();
  }
  call->finished = true;
  call->task = Task<>();
  if (cancelled) call->out.cancel();
  if (!call->out.set_running_or_notify_cancel()) co_return;
  if (error) {
    call->out.set_exception(std::move(error));
  } else if constexpr (std::is_void_v<T>) {
    call->out.set_result();
  } else {
    call->out.set_result(std::move(*value));
  }
}

}  // namespace detail

// asyncio.run_coroutine_threadsafe: from any thread, run `coro` as a task on `loop` (running in
// another thread) and get its outcome as a concurrent::Future. Throws std::runtime_error if the
// loop is closed.
template <class T>
concurrent::Future<T> run_coroutine_threadsafe(Coro<T> coro, EventLoop& loop) {
  if (!coro.valid()) throw InvalidStateError("run_coroutine_threadsafe: empty Coro");
  concurrent::Future<T> out;
  auto call = std::make_shared<detail::ThreadsafeCall<T>>(std::move(coro), out);
  // The owner cancels the future: cancel the task, on the loop's thread. A weak reference, or
  // the future (which holds this callback) and the call (which holds the future) would keep each
  // other alive.
  out.add_done_callback(
      [token = loop.token(), weak = std::weak_ptr(call)](concurrent::Future<T> f) {
        if (!f.cancelled()) return;
        std::shared_ptr<detail::ThreadsafeCall<T>> call = weak.lock();
        if (!call) return;
        std::lock_guard lk(token->mutex);
        if (token->loop == nullptr) return;
        token->loop->call_soon_threadsafe([call] {
          if (call->task.valid()) call->task.cancel();
        });
      });
  loop.call_soon_threadsafe([call, l = &loop] {
    call->started = true;
    if (call->out.cancelled()) return;  // cancelled before the loop got to it: never runs
    try {
      Task<> task = l->create_task(detail::run_threadsafe_call(call));
      if (!call->finished) call->task = std::move(task);  // an eager task may be done already
    } catch (...) {
      if (call->out.set_running_or_notify_cancel())
        call->out.set_exception(std::current_exception());
    }
  });
  return out;
}

// asyncio.wrap_future: await a concurrent::Future (completed by any thread) in the running loop.
// Cancelling the awaiting task cancels the future, which stops it only if its work has not begun.
template <class T>
Coro<T> wrap_future(concurrent::Future<T> future) {
  return detail::wrap_concurrent(get_running_loop(), std::move(future), false);
}

template <class Executor, class F, class... Args>
auto EventLoop::run_in_executor(Executor* executor, F fn, Args... args) {
  if (executor == nullptr) return run_in_executor(nullptr, std::move(fn), std::move(args)...);
  return detail::wrap_concurrent(*this, executor->submit(std::move(fn), std::move(args)...));
}

template <class F, class... Args>
auto EventLoop::run_in_executor(std::nullptr_t, F fn, Args... args) {
  return detail::wrap_concurrent(*this,
                                 default_executor().submit(std::move(fn), std::move(args)...));
}

// asyncio.to_thread(fn, *args): run fn in the loop's default thread pool, in a copy of the
// caller's context (contextvars.hpp) — as asyncio.to_thread does, and run_in_executor does not.
template <class F, class... Args>
auto to_thread(F fn, Args... args) {
  return get_running_loop().run_in_executor(
      nullptr,
      [context = contextvars::detail::capture(),
       fn = std::move(fn)](Args... a) mutable -> decltype(auto) {
        contextvars::detail::EnteredScope scope(context);
        return std::invoke(fn, std::move(a)...);
      },
      std::move(args)...);
}

}  // namespace gilio::asyncio
