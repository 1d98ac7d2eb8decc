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
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>

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

template <class R>
Coro<R> wrap_concurrent(EventLoop& loop, concurrent::Future<R> source) {
  Future<R> target(loop);
  auto* bridge = new Bridge<R>{target, source};
  loop.executor_call_started();
  source.add_done_callback([token = loop.token(), bridge](concurrent::Future<R>) {
    std::lock_guard lk(token->mutex);
    if (token->loop == nullptr) {
      // The loop has closed: every task (and so every awaiter of `target`) is gone, and the
      // bridge holds the last reference — freeing it here races with nobody.
      delete bridge;
      return;
    }
    token->loop->call_soon_threadsafe([bridge, loop = token->loop] {
      loop->executor_call_ended();
      bridge->transfer();
      delete bridge;
    });
  });
  return await_bridge(std::move(target), std::move(source));
}

}  // namespace detail

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

// asyncio.to_thread(fn, *args): run fn in the loop's default thread pool.
template <class F, class... Args>
auto to_thread(F fn, Args... args) {
  return get_running_loop().run_in_executor(nullptr, std::move(fn), std::move(args)...);
}

}  // namespace gilio::asyncio
