// runtime/base_events.cpp — the event loop's machinery; mirrors Lib/asyncio/base_events.py.
//
// run_once() is BaseEventLoop._run_once, step for step (events.hpp lists the steps). The rest
// is bookkeeping: the timer heap with its node pool, the list of unfinished tasks, the queue
// that call_soon_threadsafe fills from other threads, and close(), which must leave nothing in
// flight: it cancels the remaining tasks and runs the loop until they end (a task that refuses
// a thousand times is destroyed), then frees what is left in the ready queue and the heap.
#include <fmt/core.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>

#include "gilio/asyncio.hpp"
#include "gilio/concurrent.hpp"
#include "gilio/gil.hpp"
#include "gilio/trace.hpp"
#include "spin.hpp"
#include "uring.hpp"

namespace gilio::asyncio {
namespace detail {
thread_local constinit EventLoop* tl_running_loop = nullptr;
}  // namespace detail
using detail::tl_running_loop;

namespace {

// The default exception handler's one line: "gilio: MESSAGE (future: F, handle: H, socket: S):
// Type: what", each part only if the context has it. asyncio's logs the context's keys on lines
// of their own and then the traceback, which C++ exceptions do not carry.
void print_context(const ExceptionContext& c) noexcept {
  try {
    std::string line = "gilio: " + c.message;
    std::string where;
    const auto add = [&where](const char* key, const std::string& value) {
      if (value.empty()) return;
      where += where.empty() ? " (" : ", ";
      where += key;
      where += value;
    };
    add("future: ", c.future);
    add("handle: ", c.handle);
    add("socket: ", c.socket >= 0 ? std::to_string(c.socket) : std::string());
    if (!where.empty()) line += where + ")";
    if (c.exception) line += ": " + detail::describe_exception(c.exception);
    line += '\n';
    std::fputs(line.c_str(), stderr);
  } catch (...) {  // std::bad_alloc: say what can be said without allocating
    std::fprintf(stderr, "gilio: %s\n", c.message.c_str());
  }
}

// Called in a catch handler, where there is no loop to report to: the exception being handled.
void report_callback_error(const char* where) {
  print_context(ExceptionContext(std::string("exception in ") + where, std::current_exception()));
}

// Every loop that exists, for detail::report_to_loop: a future that dies after its loop must
// not call a handler the loop took with it.
struct LiveLoops {
  std::mutex mutex;
  std::vector<const EventLoop*> loops;
};
LiveLoops& live_loops() {
  static LiveLoops live;  // made by the first loop's constructor, so it outlives every loop
  return live;
}

// Holds the GIL for the loop's run unless the thread already holds it.
class GilForRun {
 public:
  GilForRun() : took_(!gil::held()) {
    if (took_) gil::acquire();
  }
  ~GilForRun() {
    if (took_) gil::release();
  }

 private:
  bool took_;
};

}  // namespace

namespace detail {

std::function<void()> in_context_of_caller(std::function<void()> fn) {
  return [context = contextvars::detail::capture(), fn = std::move(fn)]() mutable {
    contextvars::detail::EnteredScope scope(context);
    fn();
  };
}

namespace {
// Heap order: earliest deadline first, FIFO (by sequence number) among equal deadlines.
bool later(const TimerHeap::Entry& a, const TimerHeap::Entry& b) noexcept {
  return a.when != b.when ? a.when > b.when : a.node->seq > b.node->seq;
}
constexpr std::size_t kLine = 64;
constexpr std::size_t kLead = kLine - sizeof(TimerHeap::Entry);  // entry 0 sits just before a line
std::size_t heap_bytes(std::size_t capacity) {
  return kLead + capacity * sizeof(TimerHeap::Entry);
}
}  // namespace

TimerHeap::~TimerHeap() {
  array_free(block_, heap_bytes(capacity_));
}

void TimerHeap::grow() {
  const std::size_t capacity = capacity_ == 0 ? 256 : capacity_ * 2;
  // 64-byte aligned, a big one pre-faulted and moved by the kernel as it grows.
  block_ = array_grow(block_, capacity_ == 0 ? 0 : heap_bytes(capacity_), heap_bytes(capacity));
  at_ = reinterpret_cast<Entry*>(static_cast<char*>(block_) + kLead);
  capacity_ = capacity;
}

void TimerHeap::push(Entry e) {
  if (size_ == capacity_) grow();
  std::size_t i = size_++;
  while (i > 0) {
    const std::size_t parent = (i - 1) / 4;
    if (!later(at_[parent], e)) break;
    at_[i] = at_[parent];
    i = parent;
  }
  at_[i] = e;
}

// Moves the hole at i down until `e` fits there.
void TimerHeap::sift_down(std::size_t i, Entry e) noexcept {
  for (;;) {
    const std::size_t first = 4 * i + 1;
    if (first >= size_) break;
    std::size_t best = first;
    const std::size_t last = std::min(first + 4, size_);
    for (std::size_t c = first + 1; c < last; ++c) {
      if (later(at_[best], at_[c])) best = c;
    }
    if (!later(e, at_[best])) break;
    at_[i] = at_[best];
    i = best;
  }
  at_[i] = e;
}

void TimerHeap::pop() noexcept {
  const Entry last = at_[--size_];
  if (size_ > 0) sift_down(0, last);
}

void TimerHeap::take_due(std::int64_t end, BigArray<Entry>& out) {
  std::size_t popped = 0;
  while (size_ > 0 && at_[0].when <= end) {
    if (popped >= 1024 && popped * 64 >= size_) {
      // Many due: split them off in one pass (popping them would cost a cache miss per level).
      const std::size_t first = out.size();
      std::size_t kept = 0;
      for (std::size_t i = 0; i < size_; ++i) {
        if (at_[i].when <= end) {
          out.push_back(at_[i]);
        } else {
          at_[kept++] = at_[i];
        }
      }
      size_ = kept;
      heapify();
      sort_burst(out.data() + first, out.size() - first);
      return;
    }
    __builtin_prefetch(at_[0].node);  // the caller reads every node: start loading it now
    out.push_back(at_[0]);
    pop();
    ++popped;
  }
}

// Sorts burst[0, n) into firing order: by deadline with a radix sort (a few linear passes over
// (deadline - earliest), 11 bits each — for a million entries several times cheaper than a
// comparison sort, which misses the cache on every level), then FIFO among equal deadlines.
void TimerHeap::sort_burst(Entry* burst, std::size_t n) {
  auto fifo = [](const Entry& a, const Entry& b) { return later(b, a); };
  if (n < 4096) {
    std::sort(burst, burst + n, fifo);
    return;
  }
  std::int64_t lo = burst[0].when;
  std::int64_t hi = lo;
  for (std::size_t i = 0; i < n; ++i) {
    lo = std::min(lo, burst[i].when);
    hi = std::max(hi, burst[i].when);
  }
  const auto span = static_cast<std::uint64_t>(hi - lo);
  constexpr int kBits = 11;
  constexpr std::size_t kBuckets = std::size_t{1} << kBits;
  scratch_.resize(n);
  Entry* from = burst;
  Entry* to = scratch_.data();
  for (int shift = 0; shift < 64 && (span >> shift) != 0; shift += kBits) {
    std::size_t count[kBuckets + 1] = {};
    for (std::size_t i = 0; i < n; ++i)
      ++count[((static_cast<std::uint64_t>(from[i].when - lo) >> shift) & (kBuckets - 1)) + 1];
    for (std::size_t b = 1; b <= kBuckets; ++b)
      count[b] += count[b - 1];
    for (std::size_t i = 0; i < n; ++i)
      to[count[(static_cast<std::uint64_t>(from[i].when - lo) >> shift) & (kBuckets - 1)]++] =
          from[i];
    std::swap(from, to);
  }
  if (from != burst) std::copy(from, from + n, burst);  // an odd number of passes
  // Equal deadlines are rare with nanosecond clocks; where they occur, order them by arming.
  for (std::size_t i = 0; i < n;) {
    std::size_t j = i + 1;
    while (j < n && burst[j].when == burst[i].when)
      ++j;
    if (j - i > 1) std::sort(burst + i, burst + j, fifo);
    i = j;
  }
}

void TimerHeap::heapify() noexcept {
  if (size_ < 2) return;
  for (std::size_t i = (size_ - 2) / 4 + 1; i-- > 0;)
    sift_down(i, at_[i]);
}

TimerNodePool::~TimerNodePool() {
  for (const auto& [chunk, bytes] : chunks_)
    array_free(chunk, bytes);
}

void TimerNodePool::add_chunk() {
  // 256 nodes, doubling up to 64 Ki (1.5 MiB: mapped populated, see array_alloc).
  constexpr std::size_t kFirst = 256;
  constexpr std::size_t kMost = std::size_t{1} << 16;
  const std::size_t count =
      chunks_.empty() ? kFirst : std::min(kMost, 2 * chunks_.back().second / sizeof(TimerNode));
  const std::size_t bytes = count * sizeof(TimerNode);
  chunks_.reserve(chunks_.size() + 1);  // so that the push below cannot throw and leak
  bump_ = static_cast<TimerNode*>(array_alloc(bytes));
  end_ = bump_ + count;
  chunks_.emplace_back(bump_, bytes);
}

void ReadyQueue::grow() {
  fill_.resize(fill_.size() * 2);
  data_ = fill_.data();
  capacity_ = fill_.size();
}

void ReadyQueue::put_back(Runnable* const* first, std::size_t count) {
  std::vector<Runnable*> merged(first, first + count);
  merged.insert(merged.end(), data_, data_ + size_);
  size_ = merged.size();
  merged.resize(std::max(size_, capacity_));
  fill_.swap(merged);
  data_ = fill_.data();
  capacity_ = fill_.size();
}

void* CallbackHandle::operator new(std::size_t size) {
  return pool_alloc(size);
}
void CallbackHandle::operator delete(void* p, std::size_t size) noexcept {
  pool_free(p, size);
}

void CallbackHandle::run() {
  if (!cancelled_) {
    calling_ = true;
    try {
      // In its own context, as asyncio's Handle._run calls self._context.run(callback).
      contextvars::detail::EnteredScope scope(context);
      call();
    } catch (...) {
      loop_->report_callback_exception(describe());
    }
    calling_ = false;
    if (cancelled_) drop_callable();  // it cancelled its own handle while it ran
  }
  release();  // the ready queue's reference
}

void CallbackHandle::drop_callable() noexcept {
  if (!has_callable_) return;
  has_callable_ = false;
  destroy_callable();
}

// Not called by the loop, which runs a due handle itself (EventLoop::fire_due); what firing a
// handle means anywhere else: run it, letting go of the heap's reference.
void CallbackHandle::on_timer() {
  target = nullptr;
  run();
}

void CallbackHandle::cancel() noexcept {
  if (cancelled_) return;
  cancelled_ = true;
  if (!calling_) drop_callable();  // let go of what the callable holds now, as asyncio does
  // Armed: cleared; the entry, holding the heap's reference, stays until it leaves the heap.
  if (target != nullptr) loop_->disarm_timer(this);
}

}  // namespace detail

EventLoop& get_running_loop() {
  if (tl_running_loop == nullptr) throw std::runtime_error("no running event loop");
  return *tl_running_loop;
}

EventLoop::EventLoop()
    : backend_(std::make_unique<detail::Backend>()), token_(std::make_shared<Token>()) {
  {
    LiveLoops& live = live_loops();
    std::lock_guard lk(live.mutex);
    live.loops.push_back(this);
  }
  token_->loop = this;
  trace_ = trace::enabled();
  if (const char* d = std::getenv("GILIO_DEBUG"); d != nullptr && *d != '\0' && *d != '0') {
    debug_ = true;
  }
}

EventLoop::~EventLoop() {
  if (!closed_) {
    try {
      close();
    } catch (...) {
      report_callback_error("EventLoop::~EventLoop");
    }
  }
  LiveLoops& live = live_loops();
  std::lock_guard lk(live.mutex);
  std::erase(live.loops, this);
}

void EventLoop::default_exception_handler(const ExceptionContext& context) const {
  print_context(context);
}

void EventLoop::call_exception_handler(const ExceptionContext& context) noexcept {
  if (!exception_handler_) {
    print_context(context);
    return;
  }
  try {
    exception_handler_(*this, context);
  } catch (...) {
    // As asyncio: the handler's own failure, and then what it was given, through the default.
    print_context(
        ExceptionContext("Unhandled error in exception handler", std::current_exception()));
    print_context(context);
  }
}

void EventLoop::report_callback_exception(std::string handle) noexcept {
  try {
    ExceptionContext report("Exception in callback", std::current_exception());
    report.handle = std::move(handle);
    call_exception_handler(report);
  } catch (...) {  // std::bad_alloc
    print_context(ExceptionContext("Exception in callback"));
  }
}

namespace detail {
void report_to_loop(const EventLoop* loop, const ExceptionContext& context) noexcept {
  EventLoop* alive = loop == tl_running_loop ? tl_running_loop : nullptr;
  if (alive == nullptr && loop != nullptr) {
    LiveLoops& live = live_loops();
    std::lock_guard lk(live.mutex);
    if (std::find(live.loops.begin(), live.loops.end(), loop) != live.loops.end())
      alive = const_cast<EventLoop*>(loop);  // the registry holds every loop as const
  }
  alive != nullptr ? alive->call_exception_handler(context) : print_context(context);
}
}  // namespace detail

std::int64_t EventLoop::now_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double EventLoop::time() const {
  return now_ns() * 1e-9;
}

void EventLoop::check_open_or_thread(const char* who) const {
  if (closed_) throw std::runtime_error(std::string(who) + ": the event loop is closed");
  // Debug mode: asyncio's _check_thread. A loop that is not running has no thread to check.
  const std::thread::id owner = thread_id_.load(std::memory_order_relaxed);
  if (owner != std::thread::id() && owner != std::this_thread::get_id()) {
    throw std::runtime_error(std::string(who) +
                             ": non-thread-safe operation invoked on an event loop other than the "
                             "current one (from another thread, use call_soon_threadsafe)");
  }
}

std::int64_t EventLoop::to_ns(double seconds) {
  return detail::seconds_to_ns(seconds, "call_at");
}

void EventLoop::call_soon_threadsafe(std::function<void()> fn) {
  // The wake-up is written under the lock too. Written after it, it raced with the loop's end:
  // the loop could run the callback, close (which takes this lock) and free its eventfd while
  // the write was still to come — a write to a closed descriptor, or to one the number had
  // gone to meanwhile (TSan, RunCoroutineThreadsafe.AnotherThreadGetsTheOutcome). close() sets
  // closed_ under this lock, so no wake-up can follow it.
  // The callback runs in a copy of the calling thread's context, which is taken here.
  if (contextvars::detail::any_set()) [[unlikely]]
    fn = detail::in_context_of_caller(std::move(fn));
  std::lock_guard lk(threadsafe_mutex_);
  if (closed_) throw std::runtime_error("call_soon_threadsafe: the event loop is closed");
  threadsafe_.push_back(std::move(fn));
  if (!threadsafe_pending_.load(std::memory_order_relaxed)) {
    threadsafe_pending_.store(true, std::memory_order_release);
    backend_->wake();
  }
}

void EventLoop::drain_threadsafe() {
  if (!signal_handlers_.empty()) [[unlikely]]
    take_signals();  // signals wake the loop the same way (unix_events.cpp)
  if (!threadsafe_pending_.load(std::memory_order_acquire)) return;  // the common case: no lock
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard lk(threadsafe_mutex_);
    batch.swap(threadsafe_);
    threadsafe_pending_.store(false, std::memory_order_relaxed);
  }
  for (auto& fn : batch)
    call_soon_in({}, std::move(fn));  // each carries its caller's context, if it had one
}

detail::TimerNode* EventLoop::arm_timer(std::int64_t when_ns, detail::TimerTarget* target) {
  detail::TimerNode* node = timer_nodes_.take();
  node->seq = timer_seq_++ << 1;
  node->target = target;
  timers_.push({when_ns, node});
  return node;
}

void EventLoop::arm_handle(detail::CallbackHandle* h) {
  h->seq = timer_seq_++ << 1 | 1;
  h->target = h;
  h->add_ref();  // the heap's
  timers_.push({h->when_ns, h});
}

void EventLoop::disarm_timer(detail::TimerNode* node) noexcept {
  if (node == nullptr || node->target == nullptr) return;
  node->target = nullptr;  // removed lazily: the heap entry stays until it reaches the top
  ++cancelled_timers_;
}

// A node leaves the heap without firing (cancelled, or the loop is closing).
void EventLoop::leave_heap(detail::TimerNode* node) noexcept {
  if (node->in_handle()) {
    static_cast<detail::CallbackHandle*>(node)->release();  // the heap's reference
  } else {
    timer_nodes_.put(node);
  }
}

std::int64_t EventLoop::pop_cancelled_timers() {
  // asyncio rebuilds the heap when more than half of it is cancelled timers.
  if (cancelled_timers_ > 64 && cancelled_timers_ * 2 > timers_.size()) {
    timers_.remove_if([this](const detail::TimerHeap::Entry& e) {
      if (e.node->target != nullptr) return false;
      leave_heap(e.node);
      return true;
    });
    cancelled_timers_ = 0;
  }
  while (!timers_.empty() && timers_.front().node->target == nullptr) {
    detail::TimerNode* node = timers_.front().node;
    timers_.pop();
    leave_heap(node);
    if (cancelled_timers_ > 0) --cancelled_timers_;
  }
  return timers_.empty() ? -1 : timers_.front().when;
}

void EventLoop::run_ready_handle(detail::Runnable* r) {
  const std::string what = r->describe();
  const std::uint64_t t0 = trace::now_ns();
  r->run();
  const std::uint64_t t1 = trace::now_ns();
  if (trace_) trace::span(what, "loop", t0, t1);
  const double seconds = (t1 - t0) * 1e-9;
  if (debug_ && seconds >= slow_callback_duration) {
    std::fprintf(stderr, "gilio: executing %s took %.3f seconds\n", what.c_str(), seconds);
  }
}

void EventLoop::run_once() {
  const std::int64_t next_timer = pop_cancelled_timers();
  drain_threadsafe();

  std::int64_t timeout = -1;
  if (!ready_.empty() || stopping_) {
    timeout = 0;
  } else if (next_timer >= 0) {
    timeout = std::max<std::int64_t>(0, next_timer - now_ns());
  }
  if (timeout == 0) {
    backend_->wait(0);
  } else {
    // The only place the loop thread lets go of the GIL (DESIGN.md, invariant 4).
    const std::uint64_t t0 = trace_ ? trace::now_ns() : 0;
    {
      gil::Released nogil;
      // A result from an executor is due soon: poll a moment before sleeping (spin.hpp), unless
      // a timer is due sooner than the poll would last.
      const bool soon = executor_calls_ > 0 &&
                        (timeout < 0 || timeout > concurrent::detail::kSpinNs) &&
                        concurrent::detail::spin_briefly([this] {
                          return backend_->completions_ready() ||
                                 threadsafe_pending_.load(std::memory_order_acquire);
                        });
      backend_->wait(soon ? 0 : timeout);
    }
    if (t0 != 0) trace::span("loop waits (GIL released)", "loop", t0, trace::now_ns());
  }
  backend_->reap();
  drain_threadsafe();

  // The timers due now leave the heap before the batch runs and fire after it, in deadline
  // order: asyncio appends due timer handles to the ready queue behind what is there, so they
  // run last in this step, and what they wake (a sleeping task, one whose timeout fell) runs in
  // the next — a turn after the timer, as asyncio's sleep(d) sets a future that wakes the task.
  due_.clear();
  if (const std::int64_t end = timers_.empty() ? 0 : now_ns();
      !timers_.empty() && timers_.front().when <= end) {
    timers_.take_due(end, due_);
  }

  // Run what was ready when this step began; what they make ready waits for the next one.
  const detail::ReadyQueue::Batch batch = ready_.take();
  detail::Runnable* const* const items = batch.items;
  const std::size_t n = batch.size;
  std::size_t i = 0;
  try {
    if (!debug_ && !trace_) {
      if (n >= 256) {  // many ready: each handle is likely a cache miss; load a few ahead
        for (; i < n; ++i) {
          gil::checkpoint();
          if (i + 4 < n) __builtin_prefetch(items[i + 4]);
          items[i]->run();
        }
      } else {
        for (; i < n; ++i) {
          gil::checkpoint();  // let a thread that asked for the GIL have it between handles
          items[i]->run();
        }
      }
    } else {
      for (; i < n; ++i) {
        gil::checkpoint();
        run_ready_handle(items[i]);  // timed: debug mode's warnings, the trace's spans
      }
    }
  } catch (...) {
    ready_.put_back(items + i + 1, n - i - 1);  // the one that threw has run
    put_back_due(0);
    throw;
  }
  fire_due();
}

// With many due at once (a million timers) every node and target is a cache miss; the misses
// are prefetched several entries ahead and overlap.
void EventLoop::fire_due() {
  // Two stages: a node is loaded 2 x kAhead entries ahead, its target kAhead ahead (by when
  // the node has arrived, so reading its target pointer does not stall).
  constexpr std::size_t kAhead = 8;
  std::size_t i = 0;
  try {
    for (; i < due_.size(); ++i) {
      if (i + 2 * kAhead < due_.size()) __builtin_prefetch(due_[i + 2 * kAhead].node);
      if (i + kAhead < due_.size()) {
        if (detail::TimerTarget* later = due_[i + kAhead].node->target) __builtin_prefetch(later);
      }
      detail::TimerNode* node = due_[i].node;
      detail::TimerTarget* target = node->target;  // null if disarmed, even by an earlier on_timer
      if (target == nullptr) {
        leave_heap(node);
        if (cancelled_timers_ > 0) --cancelled_timers_;
        continue;
      }
      if (node->in_handle()) {
        // A call_later handle runs here, as the ready queue would run it (the heap's reference
        // is the one its run() lets go of).
        node->target = nullptr;
        auto* handle = static_cast<detail::CallbackHandle*>(node);
        gil::checkpoint();
        if (!debug_ && !trace_) {
          handle->run();
        } else {
          run_ready_handle(handle);
        }
        continue;
      }
      timer_nodes_.put(node);  // before on_timer, which may arm a timer that reuses it
      target->on_timer();
    }
  } catch (...) {
    put_back_due(i + 1);
    throw;
  }
}

// A step that throws before its due timers have all fired gives the rest back to the heap.
void EventLoop::put_back_due(std::size_t from) noexcept {
  for (std::size_t i = from; i < due_.size(); ++i) {
    try {
      timers_.push(due_[i]);
    } catch (...) {  // no memory to grow the heap: this timer is lost, so say so
      leave_heap(due_[i].node);
      std::fputs("gilio: a due timer was dropped (out of memory)\n", stderr);
    }
  }
  due_.clear();
}

void EventLoop::run_forever() {
  if (closed_) throw std::runtime_error("run_forever: the event loop is closed");
  if (running_) throw std::runtime_error("This event loop is already running");
  if (tl_running_loop != nullptr) {
    throw std::runtime_error("Cannot run the event loop while another loop is running");
  }
  GilForRun gil_scope;
  tl_running_loop = this;
  running_ = true;
  thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  struct Reset {
    EventLoop* self;
    ~Reset() {
      self->thread_id_.store(std::thread::id(), std::memory_order_relaxed);
      self->stopping_ = false;
      self->running_ = false;
      tl_running_loop = nullptr;
    }
  } reset{this};
  for (;;) {
    run_once();
    if (stopping_) break;
  }
}

void EventLoop::finish_tasks_for_close() {
  const bool posted = threadsafe_pending_.load(std::memory_order_acquire);
  if (task_count_ == 0 && ready_.empty() && !posted) return;
  if (debug_) {
    for_each_task([this](detail::TaskCore* t) {
      ExceptionContext report("Task was destroyed but it is pending!");
      report.future = t->describe();
      call_exception_handler(report);
    });
  }
  GilForRun gil_scope;
  tl_running_loop = this;
  running_ = true;
  thread_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  // Cancel and run until every task has ended; a task that catches CancelledError and waits
  // again is cancelled again. A cancelled task is always woken, so the rounds do not stall; with
  // no task left, one round that does not wait runs what is ready or posted.
  for (int round = 0; round == 0 || (task_count_ > 0 && round < 1000); ++round) {
    for_each_task([](detail::TaskCore* t) { t->cancel(); });
    stopping_ = task_count_ == 0;
    run_once();
  }
  for_each_task([](detail::TaskCore* t) { t->abandon(); });  // would not end: destroy them
  thread_id_.store(std::thread::id(), std::memory_order_relaxed);
  running_ = false;
  stopping_ = false;
  tl_running_loop = nullptr;
}

void EventLoop::close() {
  if (running_) throw std::runtime_error("Cannot close a running event loop");
  if (closed_) return;
  // As asyncio.Runner.close: the leftover tasks first, then the async generators still parked
  // (among them those the tasks dropped as they ended: they wait for this, not for a task each).
  asyncgens_shutdown_ = true;
  finish_tasks_for_close();
  if (!asyncgens_.empty()) run_until_complete(shutdown_asyncgens());
  // Join the default executor's threads, then run one more round so that what they posted back
  // (call_soon_threadsafe) is delivered and freed, not leaked.
  shutdown_default_executor();
  finish_tasks_for_close();
  detach_asyncgens();        // any started since: no loop will close them now
  remove_signal_handlers();  // default actions back, before the eventfd they write can close
  remove_watches();          // their polls are cancelled, and reaped by the drain below
  // Operations not owned by a task (a server's multishot accept, a writer's send) are cancelled
  // and their completions run before anything is freed (DESIGN.md invariant 6).
  backend_->drain();
  {
    std::lock_guard lk(token_->mutex);
    token_->loop = nullptr;
  }
  std::vector<std::function<void()>> never_run;
  {
    std::lock_guard lk(threadsafe_mutex_);
    closed_ = true;
    never_run.swap(threadsafe_);
  }
  // Freed outside the lock: a callback's captures may, as they go, complete a future whose own
  // callbacks post to a loop (run_coroutine_threadsafe's does: threads.hpp).
  never_run.clear();
  while (!ready_.empty()) {
    const detail::ReadyQueue::Batch batch = ready_.take();
    for (std::size_t i = 0; i < batch.size; ++i)
      batch.items[i]->discard();
  }
  // A handle that outlives the loop must find its timer disarmed (cancel() then leaves the loop
  // alone), so each target is cleared before it is told.
  for (const detail::TimerHeap::Entry& e : timers_) {
    if (detail::TimerTarget* target = std::exchange(e.node->target, nullptr)) {
      target->discard();
    } else {
      leave_heap(e.node);  // cancelled: a handle's entry still holds its reference
    }
  }
  timers_.clear();
}

concurrent::ThreadPoolExecutor& EventLoop::default_executor() {
  if (!default_executor_) default_executor_ = std::make_unique<concurrent::ThreadPoolExecutor>();
  return *default_executor_;
}

void EventLoop::set_default_executor(std::unique_ptr<concurrent::ThreadPoolExecutor> executor) {
  if (!executor) throw std::invalid_argument("set_default_executor: no executor given");
  if (default_executor_) replaced_executors_.push_back(std::move(default_executor_));
  default_executor_ = std::move(executor);
}

void EventLoop::shutdown_default_executor() {
  for (auto& replaced : replaced_executors_)
    replaced->shutdown(true);
  if (default_executor_) default_executor_->shutdown(true);
}

// ---- Runner ----

void Runner::lazy_init() {
  if (state_ == State::closed) throw std::runtime_error("Runner is closed");
  if (state_ == State::initialized) return;
  loop_ = std::make_unique<EventLoop>();
  if (debug_) loop_->set_debug(*debug_);
  context_ = contextvars::copy_context();
  state_ = State::initialized;
}

EventLoop& Runner::get_loop() {
  lazy_init();
  return *loop_;
}

void Runner::close() {
  if (state_ != State::initialized) return;
  if (loop_->is_running())
    throw std::runtime_error("Runner.close: Cannot close a running event loop");
  state_ = State::closed;
  const std::unique_ptr<EventLoop> loop = std::move(loop_);
  loop->close();  // cancels what is left, joins the default executor, closes
}

Runner::~Runner() {
  try {
    close();
  } catch (...) {
    report_callback_error("asyncio::Runner::~Runner");
  }
}
}  // namespace gilio::asyncio
