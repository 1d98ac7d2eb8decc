// gilio/asyncio/waiting.hpp — waiting for several tasks: gather, wait, as_completed, shield;
// mirrors the second half of Lib/asyncio/tasks.py.
//
// gather(aws...) turns each awaitable into a task at once (in argument order) and gives their
// results in argument order: a std::tuple (void results become std::monostate), or a
// std::vector for gather(std::vector<Task<T>>). The semantics that trip implementers, as asyncio
// has them:
//   * the first child to fail makes the gather raise that exception at once — the other
//     children are NOT cancelled and keep running;
//   * a child that is cancelled (by someone else) makes the gather raise CancelledError;
//   * cancelling the task that awaits the gather cancels every child; the gather then raises
//     CancelledError once a child ends cancelled (or when all have ended, if they all refused);
//   * gather(return_exceptions, ...) never throws for a child: each result is an Outcome<T>, a
//     value or the exception (a CancelledError for a cancelled child) — but cancelling the
//     gather itself still raises CancelledError.
// wait(tasks, return_when, timeout) returns {done, pending} and never cancels anything, also on
// timeout. shield(task) lets the awaiting task be cancelled without cancelling `task`.
//
// One mechanism serves them all: detail::MultiWait registers itself as a waiter with every
// child (one object, however many children) and decides, as each child ends, whether the
// awaiting task should wake.
//
// The awaiting task wakes two turns of the loop after the child that decides, as in asyncio,
// whose gather, wait and shield each hear of a child through a done callback (one call_soon)
// that completes their own future, whose done callback (a second call_soon) wakes the task.
// MultiWait keeps the two turns without the future: the decision queues a hop, and the hop
// wakes the task. So tasks run in asyncio's order (tests/task_diff.py compares), at the price
// of one queued hop per gather, not one per child.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <tuple>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "gilio/asyncio/generators.hpp"
#include "gilio/asyncio/queues.hpp"
#include "gilio/asyncio/tasks.hpp"

namespace gilio::asyncio {

// The tag that asks gather for Outcome<T> results instead of throwing.
struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };

namespace detail {

// The children a MultiWait watches: `size` task handles in a row, each of which is nothing but a
// TaskCore* — a Task<T> of any T, or a bare TaskCore*. A view of the awaitable's own handles, not
// a copy: a gather of a million tasks reads the vector it was given instead of filling a second
// one (8 MB, which a fresh process pays for a page fault at a time).
class Children {
 public:
  Children() = default;
  Children(TaskCore* const* cores, std::size_t n) noexcept
      : first_(reinterpret_cast<const std::byte*>(cores)), size_(n) {}
  template <class T>
  explicit Children(const std::vector<Task<T>>& tasks) noexcept
      : first_(reinterpret_cast<const std::byte*>(tasks.data())), size_(tasks.size()) {
    // A Task<T> is its one TaskCore* (standard layout: the member sits at offset 0).
    static_assert(sizeof(Task<T>) == sizeof(TaskCore*) && std::is_standard_layout_v<Task<T>>);
  }
  std::size_t size() const noexcept { return size_; }
  TaskCore* operator[](std::size_t i) const noexcept {
    TaskCore* core;  // the handle's pointer, read as the bytes it is
    std::memcpy(&core, first_ + i * sizeof core, sizeof core);
    return core;
  }

 private:
  const std::byte* first_ = nullptr;
  std::size_t size_ = 0;
};

// Waits, inside the awaiting task, for a set of children until `policy` is satisfied.
// FutureWaiter first: a child's completion then calls on_future_done without a this-adjusting
// thunk (a gather of a million tasks makes a million such calls).
class MultiWait final : public FutureWaiter, public Suspension, public TimerTarget {
 public:
  // shield: all_completed over one child, but a child already done does not suspend at all
  // (asyncio's shield returns the task itself then), where wait() still takes its two turns.
  enum class Policy { gather, gather_all, first_completed, first_exception, all_completed, shield };
  explicit MultiWait(Policy policy) noexcept : policy_(policy) {}
  MultiWait(MultiWait&&) noexcept;  // before suspend() only
  ~MultiWait();

  // await_suspend: registers with every pending child and suspends the task, in one pass over
  // the children (with a million of them, each pass is a million cache misses). Returns false
  // — do not suspend — if the wait is already over. `children` must stay where they are until
  // the wait is destroyed: the awaitable that holds them is not moved once awaited.
  bool suspend(std::coroutine_handle<> h, Children children, std::int64_t timeout_ns = -1);
  // In await_resume: unregister from the children, then throw CancelledError (this wait or the
  // task was cancelled) or the first failure (Policy::gather only).
  void finish();
  bool cancel_wait() noexcept override;
  void on_timer() override;
  // A child has ended (each registered child tells us once, and then forgets us).
  void on_future_done(FutureCore& child) noexcept override;

  // For a gather over a vector: call take(owner, i) for child i as soon as it and every child
  // before it have ended — the moment it ends, when children end in order, so the result is
  // read while the child is still in the cache instead of in a second pass over a million of
  // them. take() returns false to stop (it could not take the result: the rest are left to
  // the owner). The children before taken() are never touched again: take() may let them go.
  using Take = bool (*)(void* owner, std::size_t i) noexcept;
  void take_in_order(Take take, void* owner) noexcept {
    take_ = take;
    owner_ = owner;
  }
  std::size_t taken() const noexcept { return taken_; }

 private:
  // The turn of the loop between the decision and the task's wake-up (see the top of the
  // file). It outlives the wait if need be: one whose wait is gone (cancelled, destroyed) only
  // frees itself when it runs.
  struct Hop final : Runnable {
    static void* operator new(std::size_t size) { return pool_alloc(size); }
    static void operator delete(void* p, std::size_t size) noexcept { pool_free(p, size); }
    explicit Hop(MultiWait* w) noexcept : wait(w) {}
    void run() override;
    void discard() override;
    std::string describe() const override { return "gather/wait wake-up"; }
    MultiWait* wait;
  };
  // Unregisters from the children still pending (none, when every child has ended).
  void unregister() noexcept;
  // The wait is over: wake the task a turn from now (through a Hop).
  void decide() noexcept;
  // Forget the hop queued, if any: the task is woken another way, or the wait is gone.
  void drop_hop() noexcept;
  bool waits_like_wait() const noexcept {
    return policy_ != Policy::gather && policy_ != Policy::gather_all;
  }
  // Does this finished child end the wait under the policy (remaining_ aside)? Records the
  // first failure for gather.
  bool ends_wait(TaskCore& child) noexcept;
  void wake() noexcept;
  void take_ended() noexcept;
  static bool failed(const TaskCore& child);

  Children children_;
  Policy policy_;
  TaskCore* task_ = nullptr;
  TimerNode* timer_ = nullptr;
  TaskCore* first_failure_ = nullptr;
  Take take_ = nullptr;
  void* owner_ = nullptr;
  std::size_t taken_ = 0;          // children_[0, taken_) were given to take_
  std::size_t remaining_ = 0;      // children registered with and not yet ended
  Hop* hop_ = nullptr;             // queued by decide(), not yet run
  bool decided_ = false;           // decide() was called, or the task was woken without it
  bool woken_ = false;             // the task was woken
  bool cancel_requested_ = false;  // gather: we cancelled the children
  bool wait_cancelled_ = false;    // wait/shield-like: our own wait was cancelled
};

template <class T>
using gather_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

template <class T>
// `last_look`: nobody will ask `t` for its result again, so a value that `t` alone refers to
// may be moved out instead of copied.
gather_value_t<T> result_of(Task<T>& t, bool last_look) {
  if constexpr (std::is_void_v<T>) {
    t.result();
    return {};
  } else {
    return last_look ? t.take_result() : t.result();
  }
}

template <class T>
Outcome<T> outcome_of(Task<T>& t) {
  Outcome<T> o;
  if (t.done()) {  // its exception as it is stored: rethrown and caught, it cost ~10k instructions
    if (std::exception_ptr e = t.core().stored_exception()) {
      o.set_error(std::move(e));
      return o;
    }
  }
  try {
    if constexpr (std::is_void_v<T>) {
      t.result();
      o.set_value();
    } else {
      o.set_value(t.result());
    }
  } catch (...) {  // CancelledError too: a cancelled child's outcome is a CancelledError
    o.set_error(std::current_exception());
  }
  return o;
}

// What a gather of Tasks gives: a std::vector for a vector of tasks (filled as they end), else
// a tuple.
template <bool Outcomes, class Tasks>
struct GatherResults {
  struct type {};  // a tuple is built at the end, in collect()
};
template <bool Outcomes, class T>
struct GatherResults<Outcomes, std::vector<Task<T>>> {
  using type = std::vector<std::conditional_t<Outcomes, Outcome<T>, gather_value_t<T>>>;
};

// The children of a gather over a tuple of tasks, as an array for MultiWait; a vector's tasks
// serve as they are.
template <class Tasks>
struct GatherCores {
  explicit GatherCores(const Tasks& tasks) {
    cores = std::apply(
        [](const auto&... t) { return std::array<TaskCore*, sizeof...(t)>{&t.core()...}; }, tasks);
  }
  Children children(const Tasks&) const noexcept { return {cores.data(), cores.size()}; }
  std::array<TaskCore*, std::tuple_size_v<Tasks>> cores;
};
template <class T>
struct GatherCores<std::vector<Task<T>>> {
  explicit GatherCores(const std::vector<Task<T>>& tasks) {
    for (const Task<T>& t : tasks) {  // MultiWait will read every handle's task
      if (!t.valid()) throw InvalidStateError("gather: an empty Task handle");
    }
  }
  static Children children(const std::vector<Task<T>>& tasks) noexcept { return Children(tasks); }
};

// The awaitable gather() returns. Tasks is a std::tuple<Task<T>...> or std::vector<Task<T>>.
// A vector's results are taken as the children end, in order, and each child is let go of then
// (MultiWait::take_in_order): a million spawned tasks are each touched while still in the cache
// and freed at once, instead of in two more passes over all of them at the end.
template <bool Outcomes, class Tasks>
class [[nodiscard]] Gather {
  static constexpr bool kVector = requires(Tasks & t) { t.size(); };

 public:
  explicit Gather(Tasks tasks)
      : tasks_(std::move(tasks)),
        cores_(tasks_),
        wait_(Outcomes ? MultiWait::Policy::gather_all : MultiWait::Policy::gather) {}
  // Awaited by name, a gather may be awaited again, and each await copies the results out of
  // the tasks, as asyncio hands out the same objects each time. A temporary (`co_await
  // gather(...)`) is awaited once, so a result that only the gather refers to is moved out: a
  // gather of Coros that each return a 64 MiB string copied 128 MiB for nothing.
  // (The awaiter is a pointer to the gather, not the gather itself: g++ 12 copies an awaiter
  // that operator co_await returns by reference, and a gather cannot be copied.)
  struct Awaiter {
    Gather* g;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) { return g->await_suspend(h); }
    auto await_resume() { return g->await_resume(); }
  };
  Awaiter operator co_await() & noexcept { return {this}; }
  Awaiter operator co_await() && noexcept {
    once_ = true;
    return {this};
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    if constexpr (kVector) {
      results_.reserve(tasks_.size());
      wait_.take_in_order(&take, this);
    }
    return wait_.suspend(h, cores_.children(tasks_));
  }
  auto await_resume() {
    wait_.finish();
    return collect();
  }

 private:
  // One child's result, as gather gives it.
  // A vector's results are looked at once: each task is let go of, and a result that nobody else
  // can ask for is moved out — also one taken as its child ends, inside the child's last step,
  // while the loop still holds the task on its way out (TaskCore::result_is_callers_alone).
  template <class T>
  auto result(Task<T>& t) const {
    if constexpr (Outcomes) {
      return outcome_of(t);
    } else {
      return result_of(t, kVector || once_);
    }
  }
  // MultiWait::Take: child i has ended, and all before it.
  static bool take(void* self, std::size_t i) noexcept {
    auto& g = *static_cast<Gather*>(self);
    try {
      g.results_.push_back(g.result(g.tasks_[i]));
    } catch (...) {  // a failed child, or copying the result threw: collect() meets it again
      return false;
    }
    g.tasks_[i] = {};
    return true;
  }
  auto collect() {
    if constexpr (kVector) {
      for (std::size_t i = wait_.taken(); i < tasks_.size(); ++i)
        results_.push_back(result(tasks_[i]));
      return std::move(results_);
    } else {
      return std::apply([this](auto&... t) { return std::make_tuple(this->result(t)...); }, tasks_);
    }
  }
  Tasks tasks_;
  [[no_unique_address]] GatherCores<Tasks> cores_;
  MultiWait wait_;
  typename GatherResults<Outcomes, Tasks>::type results_;
  bool once_ = false;  // awaited as a temporary
};

template <class Aw>
using task_of_t = decltype(ensure_task(std::declval<Aw>()));

// A task given twice counts once, as in asyncio's wait() and as_completed(), which take the
// tasks as a set; the first place each was given is kept.
template <class T>
void drop_repeats(std::vector<Task<T>>& tasks) {
  std::unordered_set<const TaskCore*> seen;
  std::erase_if(tasks, [&seen](const Task<T>& t) { return !seen.insert(&t.core()).second; });
}

}  // namespace detail

// asyncio.gather(*aws): results in argument order, first exception propagates.
template <Awaitable... Aws>
auto gather(Aws&&... aws) {
  using Tasks = std::tuple<detail::task_of_t<Aws>...>;
  return detail::Gather<false, Tasks>(Tasks{ensure_task(std::forward<Aws>(aws))...});
}
// asyncio.gather(*aws, return_exceptions=True): a tuple of Outcome<T>.
template <Awaitable... Aws>
auto gather(ReturnExceptions, Aws&&... aws) {
  using Tasks = std::tuple<detail::task_of_t<Aws>...>;
  return detail::Gather<true, Tasks>(Tasks{ensure_task(std::forward<Aws>(aws))...});
}
// gather over a vector of tasks: a std::vector of results in the same order.
template <class T>
auto gather(std::vector<Task<T>> tasks) {
  return detail::Gather<false, std::vector<Task<T>>>(std::move(tasks));
}
template <class T>
auto gather(ReturnExceptions, std::vector<Task<T>> tasks) {
  return detail::Gather<true, std::vector<Task<T>>>(std::move(tasks));
}

template <class T>
struct WaitResult {
  std::vector<Task<T>> done;
  std::vector<Task<T>> pending;
};

namespace detail {
template <class T>
class [[nodiscard]] Wait {
 public:
  // wait() made `tasks` a set first (drop_repeats), which refused any empty handle.
  Wait(std::vector<Task<T>> tasks, ReturnWhen when, std::int64_t timeout_ns)
      : tasks_(std::move(tasks)), wait_(policy(when)), timeout_ns_(timeout_ns) {}
  // wait(timeout=0) is no poll: as asyncio's, it takes its turns of the loop (a timer due at
  // once), and the children may end meanwhile.
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) {
    return wait_.suspend(h, Children(tasks_), timeout_ns_);
  }
  WaitResult<T> await_resume() {
    wait_.finish();
    WaitResult<T> r;
    for (auto& t : tasks_)
      (t.done() ? r.done : r.pending).push_back(t);
    return r;
  }

 private:
  static MultiWait::Policy policy(ReturnWhen when) {
    switch (when) {
      case ReturnWhen::FIRST_COMPLETED:
        return MultiWait::Policy::first_completed;
      case ReturnWhen::FIRST_EXCEPTION:
        return MultiWait::Policy::first_exception;
      case ReturnWhen::ALL_COMPLETED:
        break;
    }
    return MultiWait::Policy::all_completed;
  }
  std::vector<Task<T>> tasks_;
  MultiWait wait_;
  std::int64_t timeout_ns_;
};
}  // namespace detail

// asyncio.wait: waits until `when` holds or `timeout` seconds pass (negative: no timeout).
// A task given twice is in the answer once (asyncio takes a set).
// Cancels nothing. An empty list throws std::invalid_argument, as asyncio raises ValueError.
template <class T>
detail::Wait<T> wait(std::vector<Task<T>> tasks, ReturnWhen when = ReturnWhen::ALL_COMPLETED,
                     double timeout = -1) {
  if (tasks.empty()) throw std::invalid_argument("wait: the set of tasks is empty");
  detail::drop_repeats(tasks);
  const std::int64_t ns = timeout < 0 ? -1 : detail::seconds_to_ns(timeout, "wait");
  return detail::Wait<T>(std::move(tasks), when, ns);
}

// asyncio.shield: awaiting it can be cancelled; the task itself is not.
template <class T>
auto shield(Task<T> task) {
  struct [[nodiscard]] Shield {
    Task<T> task;
    detail::TaskCore* core;
    detail::MultiWait wait;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) { return wait.suspend(h, {&core, 1}); }
    T await_resume() {
      wait.finish();
      return task.result();
    }
  };
  detail::TaskCore* core = &task.core();
  return Shield{std::move(task), core, detail::MultiWait(detail::MultiWait::Policy::shield)};
}
template <class T>
auto shield(Coro<T> coro) {
  return shield(create_task(std::move(coro)));
}

// asyncio.as_completed: iterate to get awaitables that give the results in completion order.
//   for (auto next : as_completed(tasks)) { T r = co_await next; ... }
// or, as Python 3.13's `async for task in as_completed(tasks)`, take the tasks themselves (the
// handles given), each as it ends, from an async generator (generators.hpp):
//   auto ended = as_completed(tasks).aiter();
//   while (std::optional<Task<T>> task = co_await ended.next()) { T r = co_await *task; ... }
// As asyncio's: every task gets one done callback that puts it in a queue as it ends, and each
// awaitable takes the next one from the queue — O(n) for n tasks. (It was a wait(FIRST_COMPLETED)
// over the pending tasks per awaitable, O(n²): 20,000 tasks took 1.8 s, CPython 0.4.)
// With a timeout (seconds), the awaitables still unanswered when it falls throw TimeoutError;
// the tasks themselves are not cancelled. An awaitable past the last throws std::out_of_range.
// aiter()'s next() throws TimeoutError once the timeout falls first, and gives std::nullopt after
// the last task; the two ways share one count, so a task taken either way is not given again.
template <class T>
class AsCompleted {
  struct State {
    Queue<Task<T>> done;         // tasks as they end; an empty handle for each one the timeout beat
    std::size_t pending = 0;     // tasks not yet in `done`
    std::size_t handed_out = 0;  // awaitables made
    std::size_t total = 0;
    bool timed_out = false;
    Handle timer;
  };

 public:
  explicit AsCompleted(std::vector<Task<T>> tasks, std::optional<double> timeout = {})
      : state_(std::make_shared<State>()) {
    detail::drop_repeats(tasks);
    state_->total = state_->pending = tasks.size();
    std::weak_ptr<State> weak = state_;
    for (auto& t : tasks) {
      t.add_done_callback([weak](Task<T> t) {
        auto state = weak.lock();
        if (!state || state->timed_out) return;
        state->done.put_nowait(std::move(t));
        if (--state->pending == 0) state->timer.cancel();
      });
    }
    if (timeout && state_->pending > 0) {
      state_->timer = get_running_loop().call_later(*timeout, [weak] {
        auto state = weak.lock();
        if (!state) return;
        state->timed_out = true;
        for (; state->pending > 0; --state->pending)
          state->done.put_nowait(Task<T>());
      });
    }
  }
  // Waits for the next task to end and gives its result (or throws its exception).
  Coro<T> next() {
    if (state_->handed_out == state_->total) throw std::out_of_range("as_completed: no tasks left");
    ++state_->handed_out;
    return wait_next(state_);
  }
  struct Iterator {
    AsCompleted* owner;
    std::size_t left;
    Coro<T> operator*() const { return owner->next(); }
    Iterator& operator++() {
      --left;
      return *this;
    }
    bool operator!=(const Iterator& o) const { return left != o.left; }
  };
  Iterator begin() { return {this, state_->total - state_->handed_out}; }
  Iterator end() { return {this, 0}; }
  // The async iteration of Python 3.13: the tasks, as they end. It shares this object's state,
  // so it may outlive it.
  AsyncGenerator<Task<T>> aiter() { return ended_tasks(state_); }

 private:
  static AsyncGenerator<Task<T>> ended_tasks(std::shared_ptr<State> state) {
    while (state->handed_out < state->total) {
      ++state->handed_out;
      Task<T> task = co_await state->done.get();
      if (!task.valid()) throw TimeoutError("as_completed: the timeout fell first");
      co_yield std::move(task);
    }
  }
  static Coro<T> wait_next(std::shared_ptr<State> state) {
    Task<T> first = co_await state->done.get();
    if (!first.valid()) throw TimeoutError("as_completed: the timeout fell first");
    co_return first.result();
  }
  std::shared_ptr<State> state_;
};

template <class T>
AsCompleted<T> as_completed(std::vector<Task<T>> tasks) {
  return AsCompleted<T>(std::move(tasks));
}
// as_completed(tasks, timeout=...): what is not done `timeout` seconds from now throws
// TimeoutError when awaited (a negative timeout has already fallen, as in asyncio; NaN throws
// std::invalid_argument).
template <class T>
AsCompleted<T> as_completed(std::vector<Task<T>> tasks, double timeout) {
  if (std::isnan(timeout)) throw std::invalid_argument("as_completed: the timeout is NaN");
  return AsCompleted<T>(std::move(tasks), std::max(0.0, timeout));
}

}  // namespace gilio::asyncio
