// gilio/asyncio/futures.hpp — Future<T>, a result that will exist later; mirrors
// Lib/asyncio/futures.py.
//
// A future is pending, then finished (a value or an exception) or cancelled, once. Whoever
// awaits it is woken when it is done; add_done_callback(fn) schedules fn with call_soon then.
// Task (tasks.hpp) is a future whose result comes from a coroutine, so the two share
// detail::FutureCore.
//
// How a task waits, and how cancellation reaches it — the protocol every awaitable in gilio
// follows:
//   * await_suspend records where to resume and what the task waits on (a Suspension), and
//     hooks itself into the thing it waits for (here: registers a FutureWaiter with the future).
//   * When the thing happens, the task is made ready (TaskCore::wake).
//   * Task::cancel() asks the Suspension to stop waiting (cancel_wait). For a future that means
//     cancelling the future itself — as asyncio's Task.cancel() cancels its _fut_waiter, which is
//     why awaiting a task and cancelling the awaiter cancels the awaited task too (shield()
//     exists to prevent that). If the wait can no longer be cancelled (it already ended), the
//     task's must_cancel flag is set instead.
//   * await_resume throws CancelledError if the wait was cancelled or must_cancel is set: the
//     exception appears at the task's current co_await, as in asyncio.
// Waiters live in the awaiting coroutine's frame and unregister themselves if destroyed first.
// A future keeps its first waiter in one pointer and any later ones in a vector on the side:
// almost every future has at most one, and one waiter may wait on many futures at once — a
// gather of a million tasks is one waiter registered with each, no node per child.
#pragma once

#include <coroutine>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/exceptions.hpp"
#include "gilio/contextvars.hpp"

namespace gilio::asyncio {
namespace detail {

// What a suspended task is waiting on: the hook through which Task::cancel() reaches it.
class Suspension {
 public:
  // Stop waiting: returns true if the task will be woken and throw CancelledError at its
  // co_await; false if the wait cannot be cancelled any more (the task is already woken).
  virtual bool cancel_wait() noexcept = 0;

 protected:
  ~Suspension() = default;
};

class FutureCore;

// Something waiting for one or more futures; told which one is done.
class FutureWaiter {
 public:
  virtual void on_future_done(FutureCore& done) noexcept = 0;

 protected:
  ~FutureWaiter() = default;
};

// "Type: what()" for a stored exception — how the runtime reports one it cannot hand to anyone.
std::string describe_exception(const std::exception_ptr& e);

// The task running on this thread's loop, or std::runtime_error if none: only a task can wait.
TaskCore& current_task_for_await();
// The task whose step runs on this thread (set by TaskCore::run; null between steps).
extern constinit thread_local TaskCore* step_task;
// The task a coroutine runs in: the step's task. For one of ours run by the trampoline that is
// one thread-local load; for any other coroutine, current_task_for_await() also checks that a
// task is running at all.
template <class P>
TaskCore& task_of(std::coroutine_handle<P> h);

// What Future<T> and Task<T> share.
class FutureCore : public Runnable {
 public:
  enum class State : unsigned char { pending, finished, cancelled };
  explicit FutureCore(EventLoop* loop) noexcept : loop_(loop) {}
  // Inline, as are the task's: a task's destruction is one call (pool_free), not three.
  virtual ~FutureCore() {
    if (has_error_ && !retrieved_ && state_ == State::finished) [[unlikely]]
      report_unretrieved();
  }
  FutureCore(const FutureCore&) = delete;
  FutureCore& operator=(const FutureCore&) = delete;

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }
  EventLoop* loop() const noexcept { return loop_; }
  bool done() const noexcept { return state_ != State::pending; }
  bool cancelled() const noexcept { return state_ == State::cancelled; }
  // Finished with an exception (not cancelled).
  bool has_exception() const noexcept { return state_ == State::finished && has_error_; }
  // The exception it ended with (null if a value). Throws CancelledError if cancelled and
  // InvalidStateError if not done — as Future.exception() does.
  std::exception_ptr exception();
  // Cancels a pending future: returns false if it was already done.
  virtual bool cancel(std::string message = {});
  // Calls fn (through call_soon) when done; at once (through call_soon) if already done.
  void add_done_callback(std::function<void()> fn);
  // Registers w to be told (once) when this future is done; waiters are told in the order
  // they came. A second waiter at once may allocate (std::bad_alloc).
  void add_waiter(FutureWaiter* w) {
    if (waiter_ == nullptr && !cold_) {
      waiter_ = w;
    } else {
      add_waiter_cold(w);
    }
  }
  // Unregisters w; nothing happens if it is not registered (any more).
  void remove_waiter(FutureWaiter* w) noexcept {
    if (waiter_ == w) {
      waiter_ = nullptr;
    } else if (cold_) {
      std::erase(cold_->waiters, w);
    }
  }
  void run() override {}  // a plain future is never scheduled itself

  // The exception it ended with — a CancelledError if cancelled — without throwing it; null if
  // it ended with a value or has not ended. Counts as looking at it (no report at destruction).
  std::exception_ptr stored_exception() noexcept {
    if (!has_error_) return nullptr;
    retrieved_ = true;
    return cold_->error;
  }
  // Ended with a result: finished, without an exception.
  bool succeeded() const noexcept { return state_ == State::finished && !has_error_; }
  // Throws the stored exception (CancelledError if cancelled), or InvalidStateError if not done.
  void check_result() {
    if (!succeeded()) [[unlikely]]
      raise_result();
  }

 protected:
  // Marks the future done and wakes everyone waiting for it.
  void complete(State state, std::exception_ptr error);
  // complete(finished, no exception), without passing an empty exception_ptr around.
  void complete_ok();
  void notify_done();
  [[noreturn]] void raise_result();
  void add_waiter_cold(FutureWaiter* w);
  void complete_cold();
  // "Task exception was never retrieved", through the exception handler of the loop (if it still
  // exists), as asyncio's Future.__del__ reports it.
  [[gnu::cold]] void report_unretrieved() noexcept;
  // What is rarely there, out of line so that a task stays small: the exception it ended with
  // (a CancelledError if cancelled), waiters after the first, done callbacks, a task's name and
  // its cancel message, and a task's context once it is not empty. From the pool
  // (frame_pool.cpp), as tasks are: every task made where a context variable is set has one.
  struct Cold {
    static void* operator new(std::size_t size) { return pool_alloc(size); }
    static void operator delete(void* p, std::size_t size) noexcept { pool_free(p, size); }
    std::exception_ptr error;
    std::vector<FutureWaiter*> waiters;
    std::vector<std::function<void()>> callbacks;
    std::string name;
    std::string cancel_message;
    contextvars::detail::ContextRef context;  // contextvars.hpp
  };
  Cold& cold() {
    if (!cold_) cold_ = std::make_unique<Cold>();
    return *cold_;
  }
  EventLoop* loop_;
  FutureWaiter* waiter_ = nullptr;  // the first waiter (later ones: cold_->waiters)
  std::unique_ptr<Cold> cold_;
  int refs_ = 1;
  State state_ = State::pending;
  bool has_error_ : 1 = false;  // ended with an exception, kept in cold_->error
  bool retrieved_ : 1 = false;  // was the exception looked at? (else reported at destruction)
  // TaskCore's flags, kept here to share this word (a task's core is 88 bytes, not 96). The
  // two that every step writes are whole bytes: a plain store, not a read-modify-write.
  bool must_cancel_ : 1 = false;
  bool scheduled_ = false;
  bool started_ = false;
  std::string describe() const override { return "Future"; }
};

// The value slot of Future<T> / Task<T>.
template <class T>
struct ValueSlot {
  std::optional<T> value;
  template <class U>
  void set(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  // A copy for every awaiter when T is copyable; a move-only result can be taken once.
  T get() {
    if constexpr (std::is_copy_constructible_v<T>) {
      return *value;
    } else {
      return take();
    }
  }
  // The value moved out: for a move-only T, or for the last holder of the future.
  T take() {
    if (!value) throw InvalidStateError("the move-only result was already taken");
    T v = std::move(*value);
    value.reset();
    return v;
  }
};
template <>
struct ValueSlot<void> {
  void get() {}
};

template <class T>
class FutureState final : public FutureCore, public ValueSlot<T> {
 public:
  using FutureCore::FutureCore;
  template <class... U>
  void set_result(U&&... v) {
    if (done()) throw InvalidStateError("set_result: the future is already done");
    if constexpr (!std::is_void_v<T>) this->set(std::forward<U>(v)...);
    complete_ok();
  }
  void set_exception(std::exception_ptr e) {
    if (done()) throw InvalidStateError("set_exception: the future is already done");
    if (!e) throw std::invalid_argument("set_exception: null exception");
    complete(State::finished, std::move(e));
  }
  T result() {
    check_result();
    return this->get();
  }
};

// The part of a task that the waiting protocol needs (the rest is in tasks.hpp): where to
// resume, what it waits on, and asyncio's cancellation bookkeeping — cancelling() counts the
// cancel() calls not yet matched by uncancel(); must_cancel means "throw CancelledError at the
// next resumption", for a cancel() that found nothing to interrupt.
class TaskCore : public FutureCore {
 public:
  static void* operator new(std::size_t size) { return pool_alloc(size); }
  static void operator delete(void* p, std::size_t size) noexcept { pool_free(p, size); }

  TaskCore(EventLoop* loop, std::coroutine_handle<> root);
  ~TaskCore() override {
    if (root_) root_.destroy();
    if (has_error_ && !retrieved_ && state_ == State::finished) [[unlikely]]
      report_unretrieved();  // here, while describe() still names the task
  }

  bool cancel(std::string message = {}) override;
  // Whether the caller's handle is the only way left to this task's result: no other handle,
  // and nothing of the loop's but what a task holds while it finishes inside its own step (its
  // place in the loop's list and the ready queue's reference, both let go of on the way out).
  bool result_is_callers_alone() const noexcept { return refs_ == (step_task == this ? 3 : 1); }
  int cancelling() const noexcept { return cancel_requests_; }
  int uncancel() noexcept {
    if (cancel_requests_ > 0 && --cancel_requests_ == 0) must_cancel_ = false;
    return cancel_requests_;
  }
  std::string get_name() const;
  void set_name(std::string name);
  // The task's context (contextvars.hpp): its slot, made now if need be, for a set() in the
  // task; and the slot if the task has one (null: its context is empty), for a read.
  contextvars::detail::ContextRef& context_slot() { return cold().context; }
  const contextvars::detail::ContextRef* context_if_any() const noexcept {
    return cold_ ? &cold_->context : nullptr;
  }
  // create_task's copy of the creating context (when some variable was ever set), or the
  // context it was given.
  void inherit_context();
  void set_context(contextvars::detail::ContextRef ctx) { cold().context = std::move(ctx); }

  // For awaitables: suspend here, waiting on `s` (null: nothing to interrupt, e.g. a yield).
  // A cancel() that is pending — one that came while the task ran, or that an operation which
  // completed anyway deferred (defer_cancel) — interrupts the new wait at once, as asyncio's
  // Task.__step cancels the future a task with _must_cancel yields. Delivered only when that wait
  // ended instead, it would drop what the wait got: an I/O operation that ran in full (a recv's
  // bytes, a splice's) would be reported as cancelled.
  void suspend(std::coroutine_handle<> h, Suspension* s) noexcept {
    resume_at_ = h;
    waiting_ = s;
    // Interrupted, the wait delivers the cancellation (or, a task awaited, passes it on to that
    // task, which may refuse it), so it is no longer pending, as in asyncio's Task.__step; if
    // it cannot be interrupted, the cancel stays pending.
    if (must_cancel_ && s != nullptr) [[unlikely]] {
      if (s->cancel_wait()) must_cancel_ = false;
    }
  }
  // Make the task ready to run its next step (at most once in the ready queue).
  void wake() {
    waiting_ = nullptr;
    if (!scheduled_) {
      scheduled_ = true;
      add_ref();  // the ready queue's
      loop_->ready(this);
    }
  }
  // Called by await_resume: throws CancelledError if the wait was cancelled or a cancel() is
  // pending, consuming both (one cancel() → one CancelledError).
  void resume_check(bool wait_cancelled) {
    if (take_cancel(wait_cancelled)) [[unlikely]]
      throw_cancelled();
  }
  // Will resume_check(wait_cancelled) throw? For an awaitable that must undo something first:
  // asking is far cheaper than catching the CancelledError and throwing it again.
  bool cancel_pending(bool wait_cancelled) const noexcept { return wait_cancelled || must_cancel_; }
  // resume_check without the throw: true if cancelled (the cancel() is consumed), for a caller
  // that must finish something before it raises CancelledError itself.
  bool take_cancel(bool wait_cancelled) noexcept {
    if (!wait_cancelled && !must_cancel_) [[likely]]
      return false;
    must_cancel_ = false;
    return true;
  }
  [[noreturn]] void throw_cancelled() const;
  // A cancel() arrived while an operation that cannot be undone completed anyway: deliver the
  // CancelledError at the next co_await instead.
  void defer_cancel() noexcept { must_cancel_ = true; }

  void run() override;  // one step: resume the coroutine where it last suspended
  // The eager task factory's first step, inside create_task: run() with the reference it
  // gives back taken here, as the ready queue would have. run() saves the step_task of the
  // creating task and restores it, as asyncio 3.12's Task.__eager_start swaps the current task
  // in and out.
  // A context entered around create_task (a Context::run, a callback's) is not the task's:
  // it is set aside for the step.
  void eager_start() {
    add_ref();
    contextvars::detail::ContextRef* const entered =
        std::exchange(contextvars::detail::tl_entered, nullptr);
    TaskCore::run();
    contextvars::detail::tl_entered = entered;
  }
  void discard() override {
    scheduled_ = false;
    release();
  }
  virtual void finish(std::coroutine_handle<> root) noexcept = 0;
  // A cancel() still pending when the coroutine returns (it cancelled itself, or was cancelled
  // by another after its last await): the task ends cancelled, not with the value, as asyncio's
  // Task.__step does ("cancelled right before coro stops"). Consumes the pending cancel().
  [[gnu::cold]] std::exception_ptr cancelled_at_return() noexcept;
  // Loop close: destroy the coroutine frame of a task that would not finish.
  void abandon() noexcept;
  std::string describe() const override { return "Task " + get_name(); }

  TaskCore* prev_task = nullptr;  // the loop's list of unfinished tasks
  TaskCore* next_task = nullptr;

 protected:
  void finish_with(std::exception_ptr error) noexcept;
  void finish_ok() noexcept;  // finish_with(nullptr), the common case, without the exception_ptr
  [[gnu::cold]] void report_unscheduled_callbacks() noexcept;
  [[gnu::noinline, gnu::cold]] void cancel_before_start();
  std::string cancel_message() const { return cold_ ? cold_->cancel_message : std::string(); }
  std::coroutine_handle<> root_;
  std::coroutine_handle<> resume_at_;
  Suspension* waiting_ = nullptr;
  std::uint32_t id_;
  int cancel_requests_ = 0;
};

}  // namespace detail

// The loop's list of unfinished tasks (all_tasks(), and what close() abandons): inline,
// because every task enters and leaves it once.
inline void EventLoop::add_task(detail::TaskCore* t) noexcept {
  if (tasks_ == nullptr) {
    t->prev_task = t->next_task = t;
    tasks_ = t;
  } else {
    t->next_task = tasks_;
    t->prev_task = tasks_->prev_task;
    tasks_->prev_task->next_task = t;
    tasks_->prev_task = t;
  }
  ++task_count_;
}

inline void EventLoop::remove_task(detail::TaskCore* t) noexcept {
  if (t->next_task == nullptr) return;
  if (t->next_task == t) {
    tasks_ = nullptr;
  } else {
    t->prev_task->next_task = t->next_task;
    t->next_task->prev_task = t->prev_task;
    if (tasks_ == t) tasks_ = t->next_task;
  }
  t->prev_task = t->next_task = nullptr;
  --task_count_;
}

inline void EventLoop::start_task(detail::TaskCore* t) {
  if (eager_tasks_ && running_) [[unlikely]] {
    t->eager_start();
  } else {
    t->wake();
  }
}

namespace detail {

// Waits for a future (or a task) from inside a task.
template <class State>
class FutureAwaiter final : public FutureWaiter, public Suspension {
 public:
  explicit FutureAwaiter(State* f) noexcept : fut_(f) {}
  FutureAwaiter(const FutureAwaiter&) = delete;
  FutureAwaiter& operator=(const FutureAwaiter&) = delete;
  // A frame destroyed while it waits (a loop closing on it) unregisters from the future.
  ~FutureAwaiter() {
    if (task_ != nullptr && !fut_->done()) fut_->remove_waiter(this);
  }
  bool await_ready() const noexcept { return fut_->done(); }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h);
  void on_future_done(FutureCore&) noexcept override;
  bool cancel_wait() noexcept override { return fut_->cancel(); }
  decltype(auto) await_resume();

 private:
  State* fut_;
  TaskCore* task_ = nullptr;
};

template <class P>
TaskCore& task_of(std::coroutine_handle<P> h) {
  if constexpr (std::is_base_of_v<PromiseBase, P>) {
    if (h.promise().in_task()) return *step_task;
  }
  return current_task_for_await();
}

template <class State>
template <class P>
void FutureAwaiter<State>::await_suspend(std::coroutine_handle<P> h) {
  TaskCore& task = task_of(h);
  if (static_cast<FutureCore*>(&task) == static_cast<FutureCore*>(fut_)) {
    throw std::runtime_error("Task cannot await on itself: " + task.get_name());
  }
  if (fut_->loop() != task.loop()) [[unlikely]] {  // as asyncio's Task.__step checks
    throw std::runtime_error("Task " + task.get_name() + " got " +
                             static_cast<const Runnable*>(fut_)->describe() +
                             " attached to a different loop");
  }
  task_ = &task;
  fut_->add_waiter(this);
  task.suspend(h, this);
}

template <class State>
void FutureAwaiter<State>::on_future_done(FutureCore&) noexcept {
  task_->wake();
}

template <class State>
decltype(auto) FutureAwaiter<State>::await_resume() {
  if (TaskCore* task = std::exchange(task_, nullptr)) {
    if (!fut_->done()) fut_->remove_waiter(this);  // woken by something else (not a path today)
    task->resume_check(false);
  }
  if constexpr (requires { fut_->result(); }) {
    return fut_->result();
  } else {
    fut_->check_result();  // a task of unknown result type: only its exception comes back
  }
}

}  // namespace detail

// asyncio.Future: a copyable handle to a result that will exist later. Create it on the
// loop's thread (it belongs to get_running_loop(), or to the loop given).
template <class T = void>
class Future {
 public:
  Future() : Future(get_running_loop()) {}
  explicit Future(EventLoop& loop) : s_(new detail::FutureState<T>(&loop)) {}
  Future(const Future& o) noexcept : s_(o.s_) { s_->add_ref(); }
  Future& operator=(Future o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~Future() {
    if (s_) s_->release();
  }

  template <class... U>
  void set_result(U&&... v) {
    s_->set_result(std::forward<U>(v)...);
  }
  void set_exception(std::exception_ptr e) { s_->set_exception(std::move(e)); }
  bool cancel(std::string message = {}) { return s_->cancel(std::move(message)); }
  bool done() const noexcept { return s_->done(); }
  bool cancelled() const noexcept { return s_->cancelled(); }
  // The value; rethrows the exception; CancelledError if cancelled; InvalidStateError if pending.
  T result() { return s_->result(); }
  std::exception_ptr exception() { return s_->exception(); }
  void add_done_callback(std::function<void(Future)> fn) {
    s_->add_done_callback([fn = std::move(fn), self = *this] { fn(self); });
  }

  auto operator co_await() const noexcept {
    return detail::FutureAwaiter<detail::FutureState<T>>(s_);
  }

 private:
  detail::FutureState<T>* s_;
};

namespace detail {
template <class X>
inline constexpr bool is_future_v = false;
template <class T>
inline constexpr bool is_future_v<Future<T>> = true;
}  // namespace detail

template <class T>
Future<T> EventLoop::create_future() {
  return Future<T>(*this);
}

}  // namespace gilio::asyncio
