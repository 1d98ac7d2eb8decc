// gilio/asyncio/tasks.hpp — Task<T>, create_task, sleep, current_task, all_tasks; mirrors the
// first half of Lib/asyncio/tasks.py (gather, wait, shield, as_completed are in waiting.hpp).
//
// A task drives one coroutine: each step resumes it where it last suspended and runs it until
// it suspends again (a task step is asyncio's Task.__step). The coroutine's frame belongs to the
// task, and the task belongs to the loop until it ends: dropping every Task handle neither stops
// nor loses a running task ("fire and forget" works, unlike asyncio, where the loop keeps only a
// weak reference — a well-known trap).
//
// Cancellation (futures.hpp has the protocol): cancel() makes CancelledError appear at the
// task's current co_await, or at its first one if it has not started — then its body never
// runs. The task may catch it and go on; cancelling() counts requests, uncancel() takes one
// back (timeouts and task groups use this to tell their own cancellations from others').
// A task that ends by CancelledError is cancelled(): result() then throws CancelledError.
//
// Eager tasks (asyncio 3.12's eager_task_factory; loop.set_task_factory in events.hpp): a task
// created while the loop runs takes its first step inside create_task, on the creator's stack,
// and create_task returns when that step suspends or the task ends. A coroutine that ends
// without suspending (a cache hit, a value already there) is never queued: it costs no trip
// through the ready queue, and its frame is freed before the next task's is made, so a burst
// of such tasks reuses one frame's memory. What a program sees change, as in asyncio: the task
// runs before the line after create_task (and before tasks created earlier but not started),
// and an exception there ends the task, never the creator. The loop's main task, made before
// the loop runs, still starts lazily.
//
// sleep(d) arms one timer in the loop's heap — no allocation, no kernel timer of its own;
// sleep(0) just yields: the task goes to the back of the ready queue.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <concepts>
#include <coroutine>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/futures.hpp"

namespace gilio::asyncio {

namespace detail {

template <class T>
class TaskState final : public TaskCore, public ValueSlot<T> {
 public:
  TaskState(EventLoop* loop, typename Coro<T>::handle_type h) : TaskCore(loop, h) {
    h.promise().make_root();
  }
  void finish(std::coroutine_handle<> root) noexcept override {
    auto h = Coro<T>::handle_type::from_address(root.address());
    auto& outcome = h.promise().outcome;
    std::exception_ptr error;
    if (outcome.error()) [[unlikely]] {
      error = outcome.error();
    } else if (must_cancel_) [[unlikely]] {
      error = cancelled_at_return();
    } else if constexpr (!std::is_void_v<T>) {
      try {
        this->set(std::move(outcome).value());
      } catch (...) {  // T's move threw
        error = std::current_exception();
      }
    }
    h.destroy();
    root_ = nullptr;
    if (error) [[unlikely]] {
      finish_with(std::move(error));
    } else {
      finish_ok();
    }
  }
  T result() {
    check_result();
    return this->get();
  }
  // result(), moved out instead of copied when nobody but the caller can ask for it any more.
  T take_result() {
    check_result();
    return result_is_callers_alone() ? this->take() : this->get();
  }
};

// What `co_await aw` gives, for any awaitable type Aw.
template <class Aw>
decltype(auto) get_awaiter(Aw&& aw) {
  if constexpr (requires { std::forward<Aw>(aw).operator co_await(); }) {
    return std::forward<Aw>(aw).operator co_await();
  } else {
    return std::forward<Aw>(aw);
  }
}
template <class Aw>
using await_result_t = decltype(get_awaiter(std::declval<Aw>()).await_resume());

// Runs any awaitable as a coroutine (so that it can become a task).
template <class Aw>
Coro<await_result_t<Aw>> as_coro(Aw aw) {
  co_return co_await std::move(aw);
}

}  // namespace detail

namespace detail {
template <class X>
inline constexpr bool is_coro_v = false;
template <class T>
inline constexpr bool is_coro_v<Coro<T>> = true;
template <class X>
inline constexpr bool is_task_v = false;
template <class T>
inline constexpr bool is_task_v<Task<T>> = true;
}  // namespace detail

template <class Aw>
concept Awaitable = requires(Aw&& aw) {
  detail::get_awaiter(std::forward<Aw>(aw)).await_ready();
};

// asyncio.Task: a copyable handle to a scheduled coroutine. Task<> (Task<void>) can also refer
// to a task of any result type (current_task(), all_tasks()): awaiting it waits for the end and
// rethrows its exception, without the value.
template <class T = void>
class Task {
 public:
  using value_type = T;
  Task() = default;
  explicit Task(detail::TaskCore* core) noexcept : core_(core) {}  // adopts a reference
  Task(const Task& o) noexcept : core_(o.core_) {
    if (core_) core_->add_ref();
  }
  Task(Task&& o) noexcept : core_(std::exchange(o.core_, nullptr)) {}
  Task& operator=(Task o) noexcept {
    std::swap(core_, o.core_);
    return *this;
  }
  ~Task() {
    if (core_) core_->release();
  }
  // Any task can be viewed as a Task<> (its result type forgotten).
  template <class U>
  requires(std::is_void_v<T> && !std::is_void_v<U>) Task(const Task<U>& o)
      : Task(&o.core()) {  // NOLINT: implicit on purpose
    core_->add_ref();
  }

  bool valid() const noexcept { return core_ != nullptr; }
  bool done() const { return core().done(); }
  bool cancelled() const { return core().cancelled(); }
  // Requests cancellation; false if the task is already done.
  bool cancel(std::string message = {}) { return core().cancel(std::move(message)); }
  int cancelling() const { return core().cancelling(); }
  int uncancel() { return core().uncancel(); }
  // The result; rethrows the task's exception; InvalidStateError if it is not done.
  T result() {
    if constexpr (std::is_void_v<T>) {
      core().check_result();
    } else {
      return state().result();
    }
  }
  std::exception_ptr exception() { return core().exception(); }
  // For gather, which lets go of the handle next: result(), but a value this handle alone still
  // refers to is moved out rather than copied (a 64 MiB string gathered from a Coro was copied).
  T take_result() {
    if constexpr (std::is_void_v<T>) {
      core().check_result();
    } else {
      return state().take_result();
    }
  }
  // fn(task) runs through call_soon once the task is done.
  void add_done_callback(std::function<void(Task)> fn) {
    core().add_done_callback([fn = std::move(fn), self = *this] { fn(self); });
  }
  std::string get_name() const { return core().get_name(); }
  void set_name(std::string name) { core().set_name(std::move(name)); }
  // The context the task runs in (Task.get_context, Python 3.12): the same object for as long
  // as the task lives — what the task sets, it shows.
  contextvars::Context get_context() const {
    contextvars::detail::ContextRef& slot = core().context_slot();
    slot.materialize();
    return contextvars::Context(slot);
  }

  auto operator co_await() const {
    if constexpr (std::is_void_v<T>) {
      return detail::FutureAwaiter<detail::TaskCore>(&core());
    } else {
      return detail::FutureAwaiter<detail::TaskState<T>>(&state());
    }
  }

  detail::TaskCore& core() const {
    if (core_ == nullptr) throw InvalidStateError("empty Task handle");
    return *core_;
  }
  friend bool operator==(const Task& a, const Task& b) noexcept { return a.core_ == b.core_; }

 private:
  detail::TaskState<T>& state() const { return static_cast<detail::TaskState<T>&>(core()); }
  detail::TaskCore* core_ = nullptr;
};

namespace detail {
// A task for the coroutine, listed by the loop, not yet started: the caller starts it.
template <class T>
TaskState<T>* new_task(EventLoop* loop, Coro<T>& coro) {
  loop->check_open("create_task");
  if (!coro.valid()) throw InvalidStateError("create_task: empty Coro");
  auto* state = new TaskState<T>(loop, coro.release());
  if (contextvars::detail::any_set()) [[unlikely]] {
    try {
      state->inherit_context();  // asyncio's Task.__init__: context = copy_context()
    } catch (...) {
      state->release();  // not listed yet: destroys the frame too
      throw;
    }
  }
  loop->add_task(state);  // the loop's reference is the one `new` gave
  state->add_ref();       // the handle's
  return state;
}
}  // namespace detail

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro) {
  auto* state = detail::new_task(this, coro);
  Task<T> task(state);
  start_task(state);
  return task;
}
// Named apart from the unnamed form so that spawning an unnamed task — the common case, and a
// hot path — does not build and move an empty std::string (about 30 instructions a task). The
// name is set before the start, so that an eager first step already has it.
template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, std::string name) {
  return create_task(std::move(coro), std::move(name), std::nullopt);
}
template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, std::string name,
                               std::optional<contextvars::Context> context) {
  auto* state = detail::new_task(this, coro);
  Task<T> task(state);
  try {
    if (!name.empty()) state->set_name(std::move(name));
    if (context) state->set_context(context->ref());
  } catch (...) {  // std::bad_alloc: the task is listed, so it must still run
    start_task(state);
    throw;
  }
  start_task(state);
  return task;
}

// asyncio.create_task: schedules the coroutine on the running loop.
template <class T>
Task<T> create_task(Coro<T> coro) {
  return get_running_loop().create_task(std::move(coro));
}
template <class T>
Task<T> create_task(Coro<T> coro, std::string name) {
  return get_running_loop().create_task(std::move(coro), std::move(name));
}
// create_task(coro, name=..., context=...): the task runs in `context` itself, not in a copy —
// what it sets there, the context keeps.
template <class T>
Task<T> create_task(Coro<T> coro, std::string name, contextvars::Context context) {
  return get_running_loop().create_task(std::move(coro), std::move(name), std::move(context));
}
// Any other awaitable (a sleep, a gather...) is wrapped in a coroutine first.
template <Awaitable Aw>
requires(!detail::is_coro_v<std::remove_cvref_t<Aw>> &&
         !detail::is_task_v<std::remove_cvref_t<Aw>>) auto create_task(Aw&& aw,
                                                                       std::string name = {}) {
  return create_task(detail::as_coro(std::forward<Aw>(aw)), std::move(name));
}

// asyncio.ensure_future for what gather/wait accept: a Task stays itself, a coroutine or other
// awaitable becomes a new task.
template <class T>
Task<T> ensure_task(Task<T> t) {
  return t;
}
template <class T>
Task<T> ensure_task(Coro<T> c) {
  return create_task(std::move(c));
}
template <Awaitable Aw>
requires(!detail::is_coro_v<std::remove_cvref_t<Aw>> &&
         !detail::is_task_v<std::remove_cvref_t<Aw>>) auto ensure_task(Aw&& aw) {
  return create_task(detail::as_coro(std::forward<Aw>(aw)));
}

// The task running now, or an empty handle outside any task.
Task<> current_task();
// Every unfinished task of the running loop.
std::vector<Task<>> all_tasks();

namespace detail {

// The timer half of a Sleep with a positive delay: armed in the loop's heap, and what a
// cancel() finds in the task's waiting_ slot.
class SleepTimer final : public TimerTarget, public Suspension {
 public:
  explicit SleepTimer(TaskCore* task) noexcept : task_(task) {}
  SleepTimer(const SleepTimer&) = delete;
  SleepTimer& operator=(const SleepTimer&) = delete;
  ~SleepTimer() {
    if (node_ != nullptr) task_->loop()->disarm_timer(node_);
  }
  void arm(std::int64_t delay_ns) {
    node_ = task_->loop()->arm_timer(EventLoop::now_ns() + delay_ns, this);
  }
  bool cancelled() const noexcept { return cancelled_; }
  void on_timer() override {
    node_ = nullptr;
    task_->wake();
  }
  bool cancel_wait() noexcept override {
    task_->loop()->disarm_timer(node_);
    node_ = nullptr;
    cancelled_ = true;
    task_->wake();
    return true;
  }

 private:
  TaskCore* task_;
  TimerNode* node_ = nullptr;
  bool cancelled_ = false;
};

// asyncio.sleep. Suspends even for 0: then it is asyncio's bare yield to the loop, and builds
// no timer at all — the SleepTimer (two vtable pointers, a node) exists only for a delay, and
// its code, construction and destruction both, is out of line, so a coroutine awaiting
// sleep(0), the cheapest task switch there is, inlines none of it (95 instructions a switch by
// callgrind; 98 while the timer's destructor was still inline). The price: a frame holding a
// positive-delay Sleep is 16 bytes larger, the task pointer being kept twice.
class Sleep final {
 public:
  explicit Sleep(std::int64_t delay_ns) noexcept : delay_ns_(delay_ns) {}
  Sleep(Sleep&& o) noexcept : delay_ns_(o.delay_ns_) {}
  ~Sleep() {
    if (armed_) [[unlikely]]
      stop_timer();
  }
  bool await_ready() const noexcept { return false; }
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    task_ = &task_of(h);
    if (delay_ns_ <= 0) {
      task_->suspend(h, nullptr);
      task_->wake();
    } else {
      start_timer(h);
    }
  }
  void await_resume() { task_->resume_check(armed_ && timer()->cancelled()); }

 private:
  void start_timer(std::coroutine_handle<> h);
  void stop_timer() noexcept;
  SleepTimer* timer() noexcept { return std::launder(reinterpret_cast<SleepTimer*>(timer_)); }

  std::int64_t delay_ns_;
  TaskCore* task_ = nullptr;
  // The timer half, built in place by start_timer and destroyed by stop_timer, both out of
  // line. A std::optional<SleepTimer> would put SleepTimer's destructor (its vtable stores)
  // inline in every coroutine that awaits a sleep, and g++ then loads those vtable addresses
  // on every resumption of the coroutine: 8 of the instructions of a sleep(0) switch.
  alignas(SleepTimer) unsigned char timer_[sizeof(SleepTimer)];
  bool armed_ = false;  // timer_ holds a SleepTimer
};

}  // namespace detail

// asyncio.sleep(seconds): negative counts as 0; NaN throws std::invalid_argument.
inline detail::Sleep sleep(double seconds) {
  return detail::Sleep(std::max<std::int64_t>(0, detail::seconds_to_ns(seconds, "sleep")));
}
template <class Rep, class Period>
detail::Sleep sleep(std::chrono::duration<Rep, Period> d) {
  return sleep(std::chrono::duration<double>(d).count());
}

template <class F>
void EventLoop::for_each_task(F&& fn) {
  if (tasks_ == nullptr) return;
  std::vector<detail::TaskCore*> snapshot;
  detail::TaskCore* t = tasks_;
  do {
    snapshot.push_back(t);
    t = t->next_task;
  } while (t != tasks_);
  for (detail::TaskCore* task : snapshot)
    task->add_ref();
  for (detail::TaskCore* task : snapshot) {
    fn(task);
    task->release();
  }
}

}  // namespace gilio::asyncio
