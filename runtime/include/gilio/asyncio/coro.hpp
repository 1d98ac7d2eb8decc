// gilio/asyncio/coro.hpp — Coro<T>, the return type of a coroutine function (Python's
// coroutine object), and Outcome<T>, a value or an exception.
//
// A Coro is lazy: calling the coroutine function allocates its frame and runs nothing, exactly
// like calling an `async def`. `co_await coro` runs it inside the awaiting task: the awaiter
// stores itself as the callee's continuation and the callee runs; when it finishes, the
// continuation runs. Neither jump nests on the C++ stack: the awaiter leaves the callee in the
// thread's trampoline slot and returns, and the task's step (TaskCore::run) resumes whatever
// the slot holds next, in a loop — a trampoline. (Symmetric transfer would do the same with tail
// calls, but g++ makes those real tail calls only at -O2 without sanitizers; at -O0 or under ASan a
// chain of 100,000 nested co_awaits overflowed the stack. The trampoline works in every build.)
// Wrapping a Coro in a task (create_task) makes the task the owner of the frame instead.
//
// Edge cases, as in Python: awaiting a Coro twice throws InvalidStateError ("cannot reuse already
// awaited coroutine", or "coroutine is being awaited already" while the first awaiter still
// runs it); destroying a Coro that never ran destroys its frame, and with it the arguments it
// captured.
//
// Mirrors: the coroutine protocol of Objects/genobject.c (its async generators are in
// generators.hpp).
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "gilio/asyncio/exceptions.hpp"

namespace gilio::asyncio {

// A value or an exception: what a coroutine or task ended with. gather(return_exceptions, ...)
// returns these. value() rethrows the exception; error() gives it without throwing.
template <class T>
class Outcome {
 public:
  static_assert(!std::is_reference_v<T>, "a coroutine result cannot be a reference");
  Outcome() = default;
  bool has_value() const noexcept { return v_.index() == 1; }
  bool has_error() const noexcept { return v_.index() == 2; }
  bool empty() const noexcept { return v_.index() == 0; }
  std::exception_ptr error() const noexcept {
    return has_error() ? std::get<2>(v_) : std::exception_ptr{};
  }
  T& value() & {
    check();
    return std::get<1>(v_);
  }
  T&& value() && {
    check();
    return std::get<1>(std::move(v_));
  }
  template <class U>
  void set_value(U&& v) {
    v_.template emplace<1>(std::forward<U>(v));
  }
  void set_error(std::exception_ptr e) noexcept { v_.template emplace<2>(std::move(e)); }

 private:
  void check() const {
    if (has_error()) std::rethrow_exception(std::get<2>(v_));
    if (empty()) throw InvalidStateError("Outcome: no result yet");
  }
  std::variant<std::monostate, T, std::exception_ptr> v_;
};

template <>
class Outcome<void> {
 public:
  bool has_value() const noexcept { return done_ && !error_; }
  bool has_error() const noexcept { return error_ != nullptr; }
  bool empty() const noexcept { return !done_ && !error_; }
  std::exception_ptr error() const noexcept { return error_; }
  void value() const {
    if (error_) std::rethrow_exception(error_);
    if (!done_) throw InvalidStateError("Outcome: no result yet");
  }
  void set_value() noexcept { done_ = true; }
  void set_error(std::exception_ptr e) noexcept { error_ = std::move(e); }

 private:
  bool done_ = false;
  std::exception_ptr error_;
};

template <class T = void>
class Coro;

namespace detail {

// The trampoline of the task step running on this thread: the coroutine to resume next within
// the step (TaskCore::run). One per thread, not one per task — only one step runs at a time.
extern constinit thread_local std::coroutine_handle<> next_in_step;
// The root coroutine of the task whose step runs on this thread has ended (futures.cpp).
void finish_root(std::coroutine_handle<> root) noexcept;

// Small-object pool for coroutine frames and tasks (runtime/frame_pool.cpp): per-thread free
// lists by 16-byte size class, carved from 64 KiB slabs — no malloc header, no malloc call on
// the hot path. Memory is kept for reuse, not returned to the system. Under ASan/TSan it is
// plain operator new, so the sanitizers still see every use after free.
void* pool_alloc(std::size_t size);
void pool_free(void* p, std::size_t size) noexcept;
// Memory for the loop's big arrays (timers: the heap, nodes, due list), 64-byte aligned, not
// zero-filled. Past a MiB it is mapped with its pages filled in by one call: touched a page at a
// time, a fresh MiB costs 256 page faults (frame_pool.cpp).
void* array_alloc(std::size_t bytes);
// Resizes an array_alloc block to new_bytes (> old_bytes), keeping its contents; a mapped block
// is moved by the kernel (mremap) rather than copied.
void* array_grow(void* p, std::size_t old_bytes, std::size_t new_bytes);
void array_free(void* p, std::size_t bytes) noexcept;

// A growable array of plain values on array_alloc memory: std::vector for the loop's own big
// arrays (due timers, the timer sort's scratch), less what they do not need — no zero fill on
// resize, and past a MiB no copy on growth and no page fault per fresh page. Capacity is kept
// until the array is destroyed: the next million entries find their memory ready. (The ready
// queue stays on std::vector: moved onto this, `sleep(0)` switches measured 10% slower on the
// Zen 5 VM with the same instructions in the hot loop, for reasons not found.)
template <class T>
class BigArray {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>);

 public:
  BigArray() = default;
  BigArray(const BigArray&) = delete;
  BigArray& operator=(const BigArray&) = delete;
  ~BigArray() { array_free(data_, capacity_ * sizeof(T)); }
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  const T& operator[](std::size_t i) const noexcept { return data_[i]; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + size_; }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + size_; }
  void clear() noexcept { size_ = 0; }
  void push_back(T v) {
    if (size_ == capacity_) [[unlikely]]
      reserve(capacity_ < 64 ? 64 : 2 * capacity_);
    data_[size_++] = v;
  }
  // New elements are left uninitialised, for the caller to fill.
  void resize(std::size_t n) {
    reserve(n);
    size_ = n;
  }
  void reserve(std::size_t n) {
    if (n <= capacity_) return;
    data_ = static_cast<T*>(array_grow(data_, capacity_ * sizeof(T), n * sizeof(T)));
    capacity_ = n;
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// An awaitable that stands in for a coroutine (a stream read, a queue get), like a coroutine
// object, may be awaited once: the second time throws InvalidStateError naming `what` (the
// method that returned it).
inline void first_await(bool& awaited, const char* what) {
  if (std::exchange(awaited, true)) [[unlikely]] {
    throw InvalidStateError(std::string(what) + ": awaited twice");
  }
}

// Every frame carries one word of its own: who awaits it, and whether it runs in a task's step
// (the trampoline) — the task itself is the one whose step runs, known to the thread
// (TaskCore::run). The flag lives in the address's low bit, which a frame address never uses (a
// frame holds pointers, so it is at least 8-aligned): a word less in every frame, which for a
// trivial Coro<int> is the step from the pool's 80-byte class to its 64-byte one.
struct PromiseBase {
  static void* operator new(std::size_t size) { return pool_alloc(size); }
  static void operator delete(void* p, std::size_t size) noexcept { pool_free(p, size); }
  PromiseBase() noexcept = default;
  PromiseBase(const PromiseBase&) = delete;
  PromiseBase& operator=(const PromiseBase&) = delete;

  // Who awaits us: null for a task's root (and for a Coro not yet awaited).
  std::coroutine_handle<> continuation() const noexcept {
    return std::coroutine_handle<>::from_address(reinterpret_cast<void*>(link_ & ~kInTask));
  }
  // Do we run in a task's step? (Else a foreign coroutine awaits us: symmetric transfer.)
  bool in_task() const noexcept { return (link_ & kInTask) != 0; }
  // Awaited by `awaiting`, in a task's step or not.
  void link(std::coroutine_handle<> awaiting, bool in_task) noexcept {
    link_ = reinterpret_cast<std::uintptr_t>(awaiting.address()) | (in_task ? kInTask : 0);
  }
  // The root of a task: no awaiter, and run by the task's steps.
  void make_root() noexcept { link_ = kInTask; }
  // Was it ever awaited (or made a task's root)? A coroutine runs for one awaiter only.
  bool claimed() const noexcept { return link_ != 0; }

  std::suspend_always initial_suspend() noexcept { return {}; }

  // Where control goes when this frame suspends for its awaiter (at its end, or at an async
  // generator's co_yield): in a task's step, the awaiter is left to the trampoline; else it is
  // resumed by symmetric transfer. Not for a task's root, which has no awaiter.
  std::coroutine_handle<> back_to_awaiter() const noexcept {
    const std::coroutine_handle<> awaiter = continuation();
    if (!in_task()) return awaiter ? awaiter : std::noop_coroutine();
    next_in_step = awaiter;  // the task's step resumes the awaiter
    return std::noop_coroutine();
  }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      const PromiseBase& p = h.promise();
      if (p.in_task() && !p.continuation()) {
        finish_root(h);  // the root of a task has ended
        return std::noop_coroutine();
      }
      return p.back_to_awaiter();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

 private:
  static constexpr std::uintptr_t kInTask = 1;
  std::uintptr_t link_ = 0;
};

// Runs the frame `callee` (whose promise is `p`) for the coroutine `awaiting`, which suspends
// until the callee hands control back (back_to_awaiter). Inside a task's step the callee is left
// to the trampoline, so the stack does not grow; awaited from a foreign coroutine, it is resumed
// by symmetric transfer.
template <class P>
std::coroutine_handle<> run_for(PromiseBase& p, std::coroutine_handle<> callee,
                                std::coroutine_handle<P> awaiting) noexcept {
  if constexpr (std::is_base_of_v<PromiseBase, P>) {
    if (awaiting.promise().in_task()) {
      p.link(awaiting, true);
      next_in_step = callee;  // the task's step resumes the callee: no nesting
      return std::noop_coroutine();
    }
  }
  p.link(awaiting, false);
  return callee;
}

// The promises declare their default constructor, so that they are not aggregates: a coroutine
// whose first parameter is another promise (generators.cpp's take an async generator's) would
// have its own promise built from that one by C++20's parenthesized aggregate initialization —
// a copy of the other frame's link.
template <class T>
struct Promise : PromiseBase {
  Promise() noexcept = default;
  Outcome<T> outcome;
  Coro<T> get_return_object() noexcept;
  void unhandled_exception() noexcept { outcome.set_error(std::current_exception()); }
  template <class U = T>
  void return_value(U&& v) {
    outcome.set_value(std::forward<U>(v));
  }
};

// A void coroutine's result is only its exception (8 bytes less per frame than Outcome<void>).
struct VoidResult {
  std::exception_ptr e;
  std::exception_ptr error() const noexcept { return e; }
  void value() const {
    if (e) std::rethrow_exception(e);
  }
};

template <>
struct Promise<void> : PromiseBase {
  Promise() noexcept = default;
  VoidResult outcome;
  Coro<void> get_return_object() noexcept;
  void unhandled_exception() noexcept { outcome.e = std::current_exception(); }
  void return_void() noexcept {}
};

}  // namespace detail

template <class T>
class [[nodiscard]] Coro {
 public:
  using promise_type = detail::Promise<T>;
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  Coro() = default;
  Coro(Coro&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Coro& operator=(Coro&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~Coro() {
    if (h_) h_.destroy();
  }

  bool valid() const noexcept { return static_cast<bool>(h_); }
  // Gives up ownership of the frame (create_task takes it).
  handle_type release() noexcept { return std::exchange(h_, {}); }

  struct Awaiter {
    handle_type h;
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> awaiting) noexcept {
      return detail::run_for(h.promise(), h, awaiting);
    }
    T await_resume() {
      if constexpr (std::is_void_v<T>) {
        h.promise().outcome.value();
      } else {
        return std::move(h.promise().outcome).value();
      }
    }
  };
  Awaiter operator co_await() && { return Awaiter{checked()}; }
  Awaiter operator co_await() & { return Awaiter{checked()}; }

 private:
  friend struct detail::Promise<T>;
  explicit Coro(handle_type h) noexcept : h_(h) {}
  // The frame, for one awaiter only, as Python's coroutines: a second, while the first still
  // runs it, would resume a frame that is parked somewhere else. (A Coro being awaited must
  // also outlive the await — given to create_task or destroyed meanwhile, its frame goes with
  // it, as any object awaited by reference would.)
  handle_type checked() const {
    if (!h_) throw InvalidStateError("awaiting an empty Coro (moved from, or given to a task)");
    if (h_.promise().claimed()) [[unlikely]] {
      throw InvalidStateError(h_.done() ? "cannot reuse already awaited coroutine"
                                        : "coroutine is being awaited already");
    }
    return h_;
  }
  handle_type h_;
};

namespace detail {
template <class T>
Coro<T> Promise<T>::get_return_object() noexcept {
  return Coro<T>(std::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Coro<void> Promise<void>::get_return_object() noexcept {
  return Coro<void>(std::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace gilio::asyncio
