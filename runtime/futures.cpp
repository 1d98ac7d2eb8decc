// runtime/futures.cpp — FutureCore and TaskCore; mirrors Lib/asyncio/futures.py and the Task
// class of Lib/asyncio/tasks.py (Task.__step is TaskCore::run).
#include <cxxabi.h>

#include <cstdio>
#include <cstdlib>
#include <list>
#include <typeinfo>

#include "gilio/asyncio.hpp"

namespace gilio::asyncio {
namespace detail {
std::string describe_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    // The type's name as the source spells it ("std::runtime_error"), not as the ABI mangles it.
    int status = 0;
    char* name = abi::__cxa_demangle(typeid(x).name(), nullptr, nullptr, &status);
    std::string type = status == 0 && name != nullptr ? name : typeid(x).name();
    std::free(name);
    return type + ": " + x.what();
  } catch (const CancelledError& x) {
    return std::string("CancelledError: ") + x.what();
  } catch (...) {
    return "an exception that is not a std::exception";
  }
}

namespace {

// How far ahead a pass over a gather's children asks for the next child's memory: far enough
// to cover a memory access (~100 ns) with the work on the children between.
constexpr std::size_t kPrefetchAhead = 8;

// Task names ("Task-N") count up across the process, as asyncio's do. A thread takes its
// numbers from the shared counter a block at a time, so one thread's tasks are numbered 1, 2,
// 3... as in CPython, without an interlocked add (~20 cycles) in every create_task.
std::uint32_t next_task_id() {
  constexpr std::uint32_t kBlock = 1024;
  static std::atomic<std::uint32_t> next_block{1};
  thread_local std::uint32_t next = 0;
  thread_local std::uint32_t end = 0;
  if (next == end) [[unlikely]] {
    next = next_block.fetch_add(kBlock, std::memory_order_relaxed);
    end = next + kBlock;
  }
  return next++;
}

}  // namespace

TaskCore& current_task_for_await() {
  if (step_task == nullptr) {
    throw std::runtime_error(
        "co_await outside a task: coroutines must run in a task (asyncio::run, create_task)");
  }
  return *step_task;
}

constinit thread_local std::coroutine_handle<> next_in_step;

constinit thread_local TaskCore* step_task = nullptr;

void finish_root(std::coroutine_handle<> root) noexcept {
  step_task->finish(root);
}

void FutureCore::report_unretrieved() noexcept {
  try {
    // Called from ~TaskCore or ~FutureCore, so the dynamic type is the one being destroyed.
    const bool task = dynamic_cast<const TaskCore*>(this) != nullptr;
    ExceptionContext report(
        task ? "Task exception was never retrieved" : "Future exception was never retrieved",
        cold_->error);
    report.future = describe();
    report_to_loop(loop_, report);
  } catch (...) {  // std::bad_alloc: nothing better to do in a destructor
  }
  retrieved_ = true;
}

std::exception_ptr FutureCore::exception() {
  if (state_ == State::cancelled) std::rethrow_exception(cold_->error);
  if (state_ == State::pending) throw InvalidStateError("Exception is not set.");
  retrieved_ = true;
  return has_error_ ? cold_->error : nullptr;
}

void FutureCore::raise_result() {
  if (state_ == State::pending) throw InvalidStateError("Result is not set.");
  retrieved_ = true;
  std::rethrow_exception(cold_->error);
}

bool FutureCore::cancel(std::string message) {
  if (done()) return false;
  complete(State::cancelled, std::make_exception_ptr(CancelledError(std::move(message))));
  return true;
}

// The callback runs in a copy of the context current when it was added (asyncio's
// add_done_callback(fn, context=None)), not in the context of whoever completes the future.
void FutureCore::add_done_callback(std::function<void()> fn) {
  if (contextvars::detail::any_set()) [[unlikely]]
    fn = in_context_of_caller(std::move(fn));
  if (done()) {
    loop_->call_soon_in({}, std::move(fn));
    return;
  }
  cold().callbacks.push_back(std::move(fn));
}

void FutureCore::complete(State state, std::exception_ptr error) {
  if (error) {
    cold().error = std::move(error);  // first: if this cannot allocate, nothing has changed
    has_error_ = true;
  }
  state_ = state;
  notify_done();
}

void FutureCore::complete_ok() {
  state_ = State::finished;
  notify_done();
}

void FutureCore::notify_done() {
  if (FutureWaiter* w = std::exchange(waiter_, nullptr)) w->on_future_done(*this);
  if (cold_) [[unlikely]]
    complete_cold();
}

// The waiters after the first, then the done callbacks.
void FutureCore::complete_cold() {
  // Taken out first: a waiter told here may not find itself registered any more.
  const std::vector<FutureWaiter*> waiters = std::move(cold_->waiters);
  cold_->waiters.clear();
  for (FutureWaiter* w : waiters)
    w->on_future_done(*this);
  if (!cold_->callbacks.empty()) {
    auto callbacks =
        std::make_unique<std::vector<std::function<void()>>>(std::move(cold_->callbacks));
    cold_->callbacks.clear();
    for (auto& fn : *callbacks)
      loop_->call_soon_in({}, std::move(fn));
  }
}

// A second waiter, or a future with a cold part: keep the order they came in — the first
// pointer is used only while no waiter waits in the vector.
void FutureCore::add_waiter_cold(FutureWaiter* w) {
  if (waiter_ == nullptr && cold_->waiters.empty()) {
    waiter_ = w;
  } else {
    cold().waiters.push_back(w);
  }
}

TaskCore::TaskCore(EventLoop* loop, std::coroutine_handle<> root)
    : FutureCore(loop), root_(root), resume_at_(root), id_(next_task_id()) {}

std::string TaskCore::get_name() const {
  return cold_ && !cold_->name.empty() ? cold_->name : "Task-" + std::to_string(id_);
}

void TaskCore::set_name(std::string name) {
  cold().name = std::move(name);
}

bool TaskCore::cancel(std::string message) {
  if (done()) return false;
  ++cancel_requests_;
  if (!message.empty()) {
    cold().cancel_message = std::move(message);
  }
  // Interrupt what the task waits on; if that cannot be cancelled, it is already woken and
  // the CancelledError is thrown when it resumes.
  if (waiting_ != nullptr && waiting_->cancel_wait()) return true;
  must_cancel_ = true;
  return true;
}

void TaskCore::inherit_context() {
  if (contextvars::detail::ContextRef context = contextvars::detail::capture()) {
    cold().context = std::move(context);
  }
}

void TaskCore::throw_cancelled() const {
  throw CancelledError(cancel_message());
}

void Sleep::start_timer(std::coroutine_handle<> h) {
  auto* timer = new (timer_) SleepTimer(task_);
  armed_ = true;
  timer->arm(delay_ns_);  // if this throws, ~Sleep destroys the timer
  task_->suspend(h, timer);
}

void Sleep::stop_timer() noexcept {
  timer()->~SleepTimer();
  armed_ = false;
}

void TaskCore::run() {
  scheduled_ = false;
  if (!done()) {
    TaskCore* const outer = std::exchange(step_task, this);
    if (must_cancel_ && !started_) [[unlikely]] {
      cancel_before_start();
    } else {
      started_ = true;
      // The trampoline: awaiting a coroutine, or finishing one, leaves the next coroutine to
      // resume in next_in_step instead of calling it, so the stack stays flat.
      std::coroutine_handle<> h = resume_at_;
      for (;;) {
        h.resume();
        if (!next_in_step) break;
        h = std::exchange(next_in_step, nullptr);
      }
    }
    step_task = outer;
  }
  release();  // the ready queue's reference
}

// Cancelled before its first step: the body never runs (asyncio throws into the coroutine
// before its first line). Out of line: every step tests for it, almost none takes it.
void TaskCore::cancel_before_start() {
  started_ = true;
  must_cancel_ = false;
  root_.destroy();
  root_ = nullptr;
  finish_with(std::make_exception_ptr(CancelledError(cancel_message())));
}

std::exception_ptr TaskCore::cancelled_at_return() noexcept {
  must_cancel_ = false;
  try {
    return std::make_exception_ptr(CancelledError(cancel_message()));
  } catch (...) {  // the message could not be copied
    return std::current_exception();
  }
}

void TaskCore::abandon() noexcept {
  if (done()) return;
  if (root_) {
    root_.destroy();
    root_ = nullptr;
  }
  finish_with(std::make_exception_ptr(CancelledError("the event loop closed")));
}

void TaskCore::finish_with(std::exception_ptr error) noexcept {
  if (!error) {
    finish_ok();
    return;
  }
  const bool cancelled = holds<CancelledError>(error);
  loop_->remove_task(this);
  try {
    complete(cancelled ? State::cancelled : State::finished, std::move(error));
  } catch (...) {  // only an allocation failure in call_soon can get here
    report_unscheduled_callbacks();
  }
  release();  // the loop's reference
}

void TaskCore::finish_ok() noexcept {
  loop_->remove_task(this);
  try {
    complete_ok();
  } catch (...) {
    report_unscheduled_callbacks();
  }
  release();
}

void TaskCore::report_unscheduled_callbacks() noexcept {
  try {
    std::fprintf(stderr, "gilio: could not schedule the done callbacks of %s\n",
                 get_name().c_str());
  } catch (...) {  // std::bad_alloc again: say less
    std::fputs("gilio: could not schedule a task's done callbacks\n", stderr);
  }
}

// ---- gather / wait / shield ----

MultiWait::MultiWait(MultiWait&& o) noexcept : policy_(o.policy_) {}

MultiWait::~MultiWait() {
  unregister();
  drop_hop();
  if (timer_ != nullptr) task_->loop()->disarm_timer(timer_);
}

void MultiWait::Hop::run() {
  if (wait != nullptr) {
    wait->hop_ = nullptr;
    wait->wake();
  }
  delete this;
}

void MultiWait::Hop::discard() {  // the loop is closing
  if (wait != nullptr) wait->hop_ = nullptr;
  delete this;
}

void MultiWait::drop_hop() noexcept {
  if (hop_ != nullptr) std::exchange(hop_, nullptr)->wait = nullptr;
}

void MultiWait::unregister() noexcept {
  if (remaining_ == 0) return;
  for (std::size_t i = taken_; i < children_.size(); ++i) {
    if (!children_[i]->done()) children_[i]->remove_waiter(this);
  }
  remaining_ = 0;
}

bool MultiWait::failed(const TaskCore& child) {
  return child.cancelled() || child.has_exception();
}

bool MultiWait::ends_wait(TaskCore& child) noexcept {
  switch (policy_) {
    case Policy::gather:
      if (!failed(child)) return false;
      first_failure_ = &child;
      return true;
    case Policy::first_completed:
      return true;
    case Policy::first_exception:
      return child.has_exception();
    default:
      return false;
  }
}

bool MultiWait::suspend(std::coroutine_handle<> h, Children children, std::int64_t timeout_ns) {
  TaskCore& task = current_task_for_await();
  children_ = children;
  bool over = false;
  const std::size_t n = children_.size();
  for (std::size_t i = 0; i < n && !over; ++i) {
    // A child is a cache miss: ask for one a few ahead now (each waits ~100 ns for memory).
    if (i + kPrefetchAhead < n) __builtin_prefetch(children_[i + kPrefetchAhead], 1);
    TaskCore* child = children_[i];
    if (child->done()) {
      over = ends_wait(*child);
      continue;
    }
    child->add_waiter(this);  // if this throws, the destructor unregisters from the others
    ++remaining_;
  }
  over = over || remaining_ == 0;
  // Over already: a gather is done without a turn of the loop (3.12's gather completes at once
  // when its children have), and so is a shield of a task that has ended; wait() still takes
  // its two turns, as asyncio's done callbacks on finished futures are each a call_soon.
  if (over && (!waits_like_wait() || policy_ == Policy::shield))
    return false;  // finish() unregisters
  task_ = &task;
  if (over) {
    decide();
  } else if (timeout_ns >= 0) {
    timer_ = task.loop()->arm_timer(EventLoop::now_ns() + timeout_ns, this);
  }
  task.suspend(h, this);
  return true;
}

void MultiWait::decide() noexcept {
  decided_ = true;
  try {
    hop_ = new Hop(this);
  } catch (...) {  // no memory for the hop: wake the task a turn early rather than never
    wake();
    return;
  }
  task_->loop()->ready(hop_);
}

void MultiWait::wake() noexcept {
  decided_ = true;
  woken_ = true;
  task_->wake();
}

void MultiWait::on_future_done(FutureCore& child) noexcept {
  --remaining_;
  if (decided_) return;
  // A child with a result ends only a FIRST_COMPLETED wait: decided without ends_wait().
  if ((!child.succeeded() || policy_ == Policy::first_completed) &&
      ends_wait(static_cast<TaskCore&>(child))) {
    decide();
    return;
  }
  if (take_ != nullptr) take_ended();
  if (remaining_ == 0) decide();
}

void MultiWait::take_ended() noexcept {
  while (taken_ < children_.size() && children_[taken_]->done()) {
    if (!take_(owner_, taken_)) {
      take_ = nullptr;
      return;
    }
    ++taken_;
  }
}

bool MultiWait::cancel_wait() noexcept {
  if (woken_) return false;
  if (!waits_like_wait()) {
    // Cancelling a gather cancels its children, also when its wake-up is already queued (asyncio's
    // outer future is not done until its callback runs); it ends when they do, or as decided.
    bool any = false;
    for (std::size_t i = taken_; i < children_.size(); ++i) {
      if (!children_[i]->done() && children_[i]->cancel()) any = true;
    }
    if (any) cancel_requested_ = true;
    return any;
  }
  // wait() and shield(): stop waiting at once (asyncio cancels their future, whose callback
  // wakes the task), leave the children alone; a hop already queued finds nothing to do.
  drop_hop();
  wait_cancelled_ = true;
  wake();
  return true;
}

void MultiWait::on_timer() {
  timer_ = nullptr;
  if (woken_) return;
  drop_hop();  // asyncio's timeout sets the waiter at once, before a pending callback would
  wake();
}

void MultiWait::finish() {
  unregister();
  drop_hop();
  if (timer_ != nullptr) {
    task_->loop()->disarm_timer(timer_);
    timer_ = nullptr;
  }
  if (task_ != nullptr) task_->resume_check(wait_cancelled_);
  // gather: suspend() or a child's completion recorded the first failure, if any.
  if (first_failure_ != nullptr) first_failure_->check_result();  // throws its exception
  if (cancel_requested_) throw CancelledError();
}

// ---- timeouts ----

TimeoutScope::TimeoutScope(std::int64_t when_ns)
    : task_(&current_task_for_await()),
      when_ns_(when_ns),
      cancelling_on_entry_(task_->cancelling()) {
  arm();
}

// A deadline already past expires through call_soon, as asyncio's Timeout.reschedule has it:
// the expiry takes its turn in the ready queue behind what is there, where a timer would fire
// at the top of the next iteration, ahead of it. A later deadline is a timer.
void TimeoutScope::arm() {
  if (when_ns_ < 0) return;
  EventLoop* loop = task_->loop();
  if (when_ns_ <= EventLoop::now_ns()) {
    soon_ = loop->call_soon([this] { on_timer(); });
  } else {
    timer_ = loop->arm_timer(when_ns_, this);
  }
}

void TimeoutScope::disarm() noexcept {
  if (timer_ != nullptr) {
    task_->loop()->disarm_timer(timer_);
    timer_ = nullptr;
  }
  soon_.cancel();
}

void TimeoutScope::reschedule(std::int64_t when_ns) {
  if (state_ != State::entered) {
    throw std::runtime_error(state_ == State::exited ? "Cannot change state of exited Timeout"
                                                     : "Cannot change state of expired Timeout");
  }
  disarm();
  when_ns_ = when_ns;
  arm();
}

TimeoutScope::~TimeoutScope() {
  disarm();
}

void TimeoutScope::on_timer() {
  timer_ = nullptr;
  task_->cancel();
  state_ = State::expiring;
}

bool TimeoutScope::exit(bool by_cancellation) noexcept {
  disarm();
  if (state_ == State::expiring) {
    state_ = State::expired;
    return task_->uncancel() <= cancelling_on_entry_ && by_cancellation;
  }
  state_ = State::exited;
  return false;
}

}  // namespace detail

Task<> current_task() {
  detail::TaskCore* t = detail::step_task;
  if (t == nullptr) return Task<>();
  t->add_ref();
  return Task<>(t);
}

std::vector<Task<>> all_tasks() {
  std::vector<Task<>> out;
  get_running_loop().for_each_task([&](detail::TaskCore* t) {
    t->add_ref();
    out.emplace_back(t);
  });
  return out;
}

// ---- TaskGroup ----

struct TaskGroup::State {
  // The unfinished tasks. A list, so that each task's done callback removes its own entry in
  // O(1) (asyncio keeps a set): a vector's erase made a group of n tasks O(n²) — 100,000 tasks
  // took 3.5 s, against CPython's 2.2.
  std::list<Task<>> tasks;
  std::vector<std::exception_ptr> errors;
  std::optional<Future<void>> on_completed;
  bool aborting = false;
  bool exiting = false;
  bool finished = false;
  // join()'s task, while it waits in join() (asyncio's _parent_task); and whether a child's
  // failure cancelled it, which join() takes back (uncancel) before it returns.
  Task<> parent;
  bool parent_cancel_requested = false;

  void abort() {
    aborting = true;
    for (auto& t : tasks) {
      if (!t.done()) t.cancel();
    }
  }
  void on_task_done(std::list<Task<>>::iterator entry, const Task<>& task) {
    tasks.erase(entry);
    if (tasks.empty() && on_completed && !on_completed->done()) on_completed->set_result();
    if (task.cancelled()) return;
    Task<> t = task;
    std::exception_ptr error = t.exception();
    if (!error) return;
    errors.push_back(error);
    if (aborting || parent_cancel_requested) return;
    abort();
    // asyncio also cancels the parent task, to interrupt the body of the `async with`. gilio
    // does not cancel a body (see taskgroups.hpp): the cancel goes to a parent already waiting
    // in join(), which wakes when asyncio's does, or else waits for join() to begin — where
    // asyncio's pending cancel would interrupt the first wait of its __aexit__.
    parent_cancel_requested = true;
    if (parent.valid()) parent.cancel();
  }
};

TaskGroup::TaskGroup() : state_(std::make_shared<State>()) {}

TaskGroup::~TaskGroup() {
  state_->parent = {};  // a join() that never finished (its frame destroyed) left its task here
  if (!state_->finished && !state_->tasks.empty()) state_->abort();
}

void TaskGroup::check_open() const {
  if (state_->finished || (state_->exiting && state_->tasks.empty())) {
    throw std::runtime_error("TaskGroup is finished");
  }
  if (state_->aborting) throw std::runtime_error("TaskGroup is shutting down");
}

void TaskGroup::adopt(Task<> task) {
  auto& tasks = state_->tasks;
  const auto entry = tasks.insert(tasks.end(), task);
  if (task.done()) {  // an eager task that ended inside create_task: counted now, as asyncio's
    state_->on_task_done(entry, task);  // (a failure aborts the group before the next create_task)
    return;
  }
  try {
    task.add_done_callback([state = state_, entry](Task<> t) { state->on_task_done(entry, t); });
  } catch (...) {  // std::bad_alloc: the task will not be waited for, so it must not be listed
    tasks.erase(entry);
    throw;
  }
}

std::vector<std::exception_ptr> TaskGroup::errors() const {
  return state_->errors;
}

Coro<void> TaskGroup::join() {
  auto state = state_;
  state->exiting = true;
  Task<> me = current_task();
  state->parent = me;
  if (state->parent_cancel_requested) me.cancel();  // a child failed before join() began
  bool propagate_cancellation = false;
  while (!state->tasks.empty()) {
    state->on_completed.emplace();
    Future<void> completed = *state->on_completed;
    bool cancelled = false;
    try {
      co_await completed;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    if (cancelled && !state->aborting) {
      propagate_cancellation = true;  // our task is being cancelled: cancel the children too
      state->abort();
    }
    state->on_completed.reset();
  }
  state->finished = true;
  state->parent = {};
  // Our own cancel() taken back: if it was the only one, there is no cancellation to pass on.
  if (state->parent_cancel_requested && me.uncancel() == 0) propagate_cancellation = false;
  if (!state->errors.empty()) {
    // The ExceptionGroup wins over a cancellation from outside; as 3.13's (gh-116720), the
    // task's cancel() is taken back and made again, so that it stays pending and its count
    // stable: the CancelledError comes at the task's next await (or it ends cancelled).
    if (me.cancelling() > 0) {
      me.uncancel();
      me.cancel();
    }
    throw ExceptionGroup("unhandled errors in a TaskGroup", state->errors);
  }
  if (propagate_cancellation) throw CancelledError();
}

}  // namespace gilio::asyncio
