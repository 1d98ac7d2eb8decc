// gilio/asyncio/locks.hpp — Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier;
// mirrors Lib/asyncio/locks.py (and mixins.py).
//
// These synchronize tasks of one loop; they are not thread-safe (use threading's for threads)
// and they never block the thread: a task that must wait parks a waiter node — which lives in
// its own coroutine frame — in the primitive's FIFO list and suspends.
//
// Fairness is FIFO, as in asyncio: Lock::release() unlocks and wakes the first waiter, which
// takes the lock when it runs; a task that calls acquire() in between queues behind it (asyncio
// keeps the woken waiter in its deque for that). Meanwhile the lock is unlocked, as asyncio's
// is: locked() is false and another release() throws. A Semaphore hands its unit straight to
// the first waiter, as asyncio's does (CPython 3.11.7 already does). The edge case: a waiter that
// was woken (for the lock, a semaphore unit, or a notification) and is cancelled before it runs
// passes the wake-up on to the next waiter rather than losing it. tests/sync_diff.py checks all
// of this against CPython's own asyncio, task order and all.
//
// A primitive belongs to the loop of the first task that waits on it (asyncio's _LoopBoundMixin,
// Lib/asyncio/mixins.py): a task of another loop that would wait on it gets std::runtime_error
// "Lock is bound to a different event loop". Each loop runs on a thread of its own, and a wake-up
// sent from one would resume a task of the other on the wrong thread. As in asyncio, only a wait
// binds and checks: an acquire or a get that need not wait touches nothing of any loop.
//
// Errors, as asyncio raises them: Lock::release() of an unlocked lock and Condition::wait() or
// notify() without holding the lock throw std::runtime_error; a negative Semaphore value, a
// Barrier of fewer than one party and BoundedSemaphore::release() past its initial value throw
// std::invalid_argument; a Barrier that is aborted or reset throws BrokenBarrierError.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include "gilio/asyncio/tasks.hpp"

namespace gilio::asyncio {
namespace detail {

// The loop a primitive is bound to (see above): none until a task first waits on it.
class LoopBinding {
 public:
  void check(EventLoop* loop, const char* owner) {
    if (loop_ == loop) [[likely]]
      return;
    bind_or_throw(loop, owner);
  }

 private:
  void bind_or_throw(EventLoop* loop, const char* owner);
  EventLoop* loop_ = nullptr;
};

// A task parked on a primitive. 32 bytes: the list links, the Suspension's vtable pointer, and
// one word holding the parked task — or, before park(), what the awaiter waits on (Event::Wait
// keeps its Event there) — with three flags in its low bits, which neither pointer uses (both
// point at objects aligned to 8 or more). With the flags as three bools beside the word it was
// 40 bytes, and a coroutine parked on an Event took a 112-byte frame instead of a 96-byte one.
class SyncWaiter : public ListNode, public Suspension {
 public:
  SyncWaiter() = default;
  // An awaitable may move until it is awaited — wait_for, create_task and gather take theirs
  // by value, as asyncio.wait_for(event.wait(), t) does — but never once parked: its list and
  // its task point at it then. (So there are no flags to move.)
  SyncWaiter(SyncWaiter&& o) noexcept : word_(o.word_) {}

  // The task parked here; null until park().
  TaskCore* task() const noexcept {
    return parked() ? reinterpret_cast<TaskCore*>(word_ & ~kFlags) : nullptr;
  }
  bool parked() const noexcept { return (word_ & kParked) != 0; }
  // Handed the lock / a unit / a notification; a wake-up is on its way.
  bool woken() const noexcept { return (word_ & kWoken) != 0; }
  // Its wait was cancelled before it was woken.
  bool cancelled() const noexcept { return (word_ & kCancelled) != 0; }

  template <class P>
  void park(List<SyncWaiter>& list, std::coroutine_handle<P> h) {
    park(list, task_of(h), h);
  }
  // The same, for an awaiter that has found its task already.
  void park(List<SyncWaiter>& list, TaskCore& t, std::coroutine_handle<> h) {
    static_assert(alignof(TaskCore) > kFlags, "the flags need the task's low bits");
    word_ = reinterpret_cast<std::uintptr_t>(&t) | kParked;
    list.push_back(this);
    t.suspend(h, this);
  }
  // The same, for a primitive bound to a loop: a task of another loop gets std::runtime_error
  // instead, and nothing has changed.
  template <class P>
  void park(List<SyncWaiter>& list, LoopBinding& binding, const char* owner,
            std::coroutine_handle<P> h) {
    binding.check(task_of(h).loop(), owner);
    park(list, h);
  }
  void wake_up() {
    unlink();
    word_ |= kWoken;
    task()->wake();
  }
  bool cancel_wait() noexcept override {
    if (woken()) return false;
    unlink();
    word_ |= kCancelled;
    task()->wake();
    return true;
  }

 protected:
  // cancel_wait() that leaves the waiter in its list until its task runs, as an asyncio Lock's
  // cancelled future stays in the deque until its task removes it (Lock::Acquire).
  bool cancel_in_place() noexcept {
    if (woken()) return false;
    word_ |= kCancelled;
    task()->wake();
    return true;
  }
  // What the awaiter waits on, kept in the same word until park().
  // (Its address must leave the low three bits clear: aligned to 8 or more.)
  void set_subject(void* subject) noexcept { word_ = reinterpret_cast<std::uintptr_t>(subject); }
  void* subject() const noexcept { return reinterpret_cast<void*>(word_); }

 private:
  static constexpr std::uintptr_t kParked = 1, kWoken = 2, kCancelled = 4;
  static constexpr std::uintptr_t kFlags = kParked | kWoken | kCancelled;
  std::uintptr_t word_ = 0;
};

// Wakes the first waiter of `list`; false if there is none.
inline bool wake_first(List<SyncWaiter>& list) {
  SyncWaiter* w = list.front();
  if (w == nullptr) return false;
  w->wake_up();
  return true;
}

// Parks the task in `list` until woken; throws CancelledError if cancelled. `woken` tells
// whether a cancelled waiter must pass the wake-up on. Parked(list, deferred) does not throw:
// the caller asks take_cancel(), passes the wake-up on, and raises CancelledError itself —
// catching the exception to do that and throwing it again cost another unwinding.
class Parked final : public SyncWaiter {
 public:
  static constexpr struct Deferred {
  } deferred{};
  Parked(List<SyncWaiter>& list, LoopBinding& binding, const char* owner)
      : list_(list), binding_(binding), owner_(owner) {}
  Parked(List<SyncWaiter>& list, LoopBinding& binding, const char* owner, Deferred)
      : list_(list), binding_(binding), owner_(owner), defer_(true) {}
  bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    park(list_, binding_, owner_, h);
  }
  void await_resume() {
    if (!defer_) task()->resume_check(cancelled());
  }
  // After a deferred wait: was it cancelled? (The cancel() is consumed.)
  bool take_cancel() noexcept { return task()->take_cancel(cancelled()); }
  // ...and then: CancelledError, with the cancel() message.
  [[noreturn]] void raise_cancelled() const { task()->throw_cancelled(); }

 private:
  List<SyncWaiter>& list_;
  LoopBinding& binding_;
  const char* owner_;
  bool defer_ = false;
};

}  // namespace detail

class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  class Acquire final : public detail::SyncWaiter {
   public:
    explicit Acquire(Lock& lock) : lock_(lock) {}
    bool await_ready() noexcept;
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      park(lock_.waiters_, lock_.binding_, "Lock", h);
    }
    void await_resume();
    bool cancel_wait() noexcept override { return cancel_in_place(); }

   private:
    Lock& lock_;
  };
  // co_await lock.acquire(): waits (FIFO) until the lock is ours.
  [[nodiscard]] Acquire acquire() { return Acquire(*this); }
  void release();
  bool locked() const noexcept { return locked_; }

  // co_await lock.scoped(): acquire, and release when the returned guard goes out of scope
  // (Python's `async with lock:`). An awaitable like acquire(): no coroutine frame.
  class Guard {
   public:
    explicit Guard(Lock* lock) : lock_(lock) {}
    Guard(Guard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
    ~Guard() {
      if (lock_) lock_->release();
    }

   private:
    Lock* lock_;
  };
  class [[nodiscard]] Scoped {
   public:
    explicit Scoped(Lock& lock) : lock_(&lock), acquire_(lock) {}
    bool await_ready() noexcept { return acquire_.await_ready(); }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      acquire_.await_suspend(h);
    }
    Guard await_resume() {
      acquire_.await_resume();
      return Guard(lock_);
    }
    operator Coro<Guard>() && { return detail::as_coro(std::move(*this)); }

   private:
    Lock* lock_;
    Acquire acquire_;
  };
  Scoped scoped() { return Scoped(*this); }

 private:
  void wake_first();
  bool free_for_newcomer();
  bool locked_ = false;
  bool woken_ = false;  // a waiter was woken and has not run yet: the lock is its to take
  detail::List<detail::SyncWaiter> waiters_;
  detail::LoopBinding binding_;
};

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  class Wait final : public detail::SyncWaiter {
   public:
    explicit Wait(Event& e) noexcept {
      static_assert(alignof(Event) >= 8);
      set_subject(&e);
    }
    bool await_ready() const noexcept { return event().flag_; }
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      park(event().waiters_, event().binding_, "Event", h);
    }
    bool await_resume() {
      if (parked()) task()->resume_check(cancelled());
      return true;
    }

   private:
    Event& event() const noexcept { return *static_cast<Event*>(subject()); }  // until parked
  };
  // Waits until the flag is set; returns true.
  [[nodiscard]] Wait wait() { return Wait(*this); }
  // Sets the flag and wakes every waiter.
  void set();
  void clear() noexcept { flag_ = false; }
  bool is_set() const noexcept { return flag_; }

 private:
  bool flag_ = false;
  detail::List<detail::SyncWaiter> waiters_;
  detail::LoopBinding binding_;
};

class Condition {
 public:
  Condition() : lock_(&own_lock_) {}
  explicit Condition(Lock& lock) : lock_(&lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  Lock::Acquire acquire() { return lock_->acquire(); }
  void release() { lock_->release(); }
  bool locked() const noexcept { return lock_->locked(); }
  // Releases the lock, waits for a notification, re-acquires the lock (also when cancelled,
  // before rethrowing). Throws std::runtime_error if the lock is not held.
  Coro<bool> wait();
  // Waits until pred() is true; returns its last value.
  template <class Pred>
  Coro<bool> wait_for(Pred pred) {
    while (!pred())
      co_await wait();
    co_return true;
  }
  // Wakes up to n waiters; the lock must be held.
  void notify(std::size_t n = 1);
  void notify_all();

 private:
  Lock own_lock_;
  Lock* lock_;
  detail::List<detail::SyncWaiter> waiters_;
  detail::LoopBinding binding_;
};

class Semaphore {
 public:
  explicit Semaphore(long value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  class Acquire final : public detail::SyncWaiter {
   public:
    explicit Acquire(Semaphore& s) : sem_(s) {}
    bool await_ready() noexcept;
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      park(sem_.waiters_, sem_.binding_, "Semaphore", h);
    }
    void await_resume();

   private:
    Semaphore& sem_;
  };
  [[nodiscard]] Acquire acquire() { return Acquire(*this); }
  void release();
  // True if acquire() would have to wait: no unit left, or waiters ahead (also one that has been
  // handed a unit and has not run yet), as asyncio's.
  bool locked() const noexcept { return value_ == 0 || !waiters_.empty() || woken_ > 0; }
  long value() const noexcept { return value_; }

 protected:
  bool wake_next();
  long value_;
  long woken_ = 0;  // waiters handed a unit that have not run yet
  detail::List<detail::SyncWaiter> waiters_;
  detail::LoopBinding binding_;
};

class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(long value = 1) : Semaphore(value), bound_(value) {}
  // Throws std::invalid_argument when released more times than acquired.
  void release();

 private:
  long bound_;
};

class Barrier {
 public:
  explicit Barrier(std::size_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // Waits until `parties` tasks are waiting; returns this task's arrival index (0..parties-1).
  // Throws BrokenBarrierError if the barrier is aborted or reset meanwhile.
  Coro<std::size_t> wait();
  // Puts the barrier back to its empty state; tasks waiting get BrokenBarrierError.
  Coro<void> reset();
  // Breaks the barrier: current and future wait() calls throw BrokenBarrierError.
  Coro<void> abort();
  std::size_t parties() const noexcept { return parties_; }
  std::size_t n_waiting() const noexcept { return state_ == State::filling ? count_ : 0; }
  bool broken() const noexcept { return state_ == State::broken; }

 private:
  enum class State { filling, draining, resetting, broken };
  void exit_wait();
  Condition cond_;
  std::size_t parties_;
  std::size_t count_ = 0;
  State state_ = State::filling;
};

}  // namespace gilio::asyncio
