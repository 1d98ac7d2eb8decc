// gilio/asyncio/events.hpp — the event loop; mirrors Lib/asyncio/events.py and base_events.py.
//
// An event loop is a queue of things ready to run, a heap of timers, and a way to sleep until
// the next I/O completion or the next timer. One iteration (EventLoop::run_once, the twin of
// BaseEventLoop._run_once in base_events.py):
//
//   1. pop cancelled timers off the top of the heap (and rebuild the heap when more than half
//      of it is cancelled — timers are cancelled lazily, as in asyncio);
//   2. wait for I/O: if something is ready, only peek at the completion queue; otherwise drop
//      the GIL and sleep in io_uring until a completion arrives or the nearest timer is due —
//      one kernel timeout for the nearest deadline, never one per sleep (while a
//      run_in_executor call is out, it first polls a moment, as runtime/spin.hpp explains);
//   3. run the completions' callbacks, which make their tasks ready;
//   4. take every due timer off the heap (in deadline order, FIFO among equal deadlines);
//   5. run every handle that was ready when this step began — not the ones they make ready,
//      which wait for the next iteration — with gil::checkpoint() between handles, so a thread
//      waiting for the GIL gets it within about one switch interval;
//   6. fire the due timers: a call_later handle runs, a sleep or a timeout wakes its task for
//      the next iteration. asyncio appends the due handles to the ready queue in step 4, so
//      they run last in step 5, and whatever they wake runs in the next iteration: firing them
//      after the batch is the same order, without queueing each one.
//
// The ready queue holds Runnable pointers: a task (one step of its coroutine) or a callback
// handle (call_soon, call_later). The loop owns every unfinished task (tasks.hpp). Only the
// backend (runtime/uring.cpp) includes <liburing.h>.
//
// Read next: gilio/asyncio/coro.hpp, then tasks.hpp; docs/02-event-loop.md.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
#include "gilio/contextvars.hpp"

namespace gilio::concurrent {
class ThreadPoolExecutor;
}  // namespace gilio::concurrent

namespace gilio::asyncio {

template <class T>
class Coro;
template <class T>
class Task;
template <class T>
class Future;
class EventLoop;

namespace detail {

// fn, made to run in a copy of the context current now (or a fresh empty one): for a callback
// that is scheduled later by the runtime rather than by its caller (call_soon_threadsafe's,
// add_done_callback's), as asyncio copies the context when the callback is handed over.
std::function<void()> in_context_of_caller(std::function<void()> fn);

class AsyncGenCore;  // generators.hpp: an async generator's promise
class Backend;       // runtime/uring.hpp: the io_uring backend
class FdWatch;       // runtime/fd_events.cpp: an add_reader / add_writer registration
class SigintGuard;   // runners.hpp: asyncio::run's Ctrl-C
class TaskCore;

// Seconds as the loop's nanoseconds, saturating at about ±285 years; NaN throws
// std::invalid_argument naming `who`. The one conversion every delay and deadline goes through.
inline std::int64_t seconds_to_ns(double seconds, const char* who) {
  if (seconds != seconds) throw std::invalid_argument(std::string(who) + ": the time is NaN");
  const double ns = seconds * 1e9;
  return ns > 9e18    ? static_cast<std::int64_t>(9e18)
         : ns < -9e18 ? static_cast<std::int64_t>(-9e18)
                      : static_cast<std::int64_t>(ns);
}

// An entry of the ready queue.
class Runnable {
 public:
  virtual void run() = 0;
  // The loop is closing and this entry will not run: drop the queue's reference.
  virtual void discard() {}
  // For debug mode's slow-callback warning and the trace.
  virtual std::string describe() const { return "callback"; }

 protected:
  ~Runnable() = default;
};

// A node of an intrusive, circular, doubly linked list. A node unlinks itself when destroyed,
// so an awaiter that lives in a coroutine frame can never leave a dangling pointer in a list.
class ListNode {
 public:
  ListNode() = default;
  ListNode(const ListNode&) = delete;
  ListNode& operator=(const ListNode&) = delete;
  ~ListNode() { unlink(); }
  bool linked() const noexcept { return next_ != nullptr; }
  void unlink() noexcept {
    if (next_ == nullptr) return;
    prev_->next_ = next_;
    next_->prev_ = prev_;
    prev_ = next_ = nullptr;
  }

 private:
  template <class>
  friend class List;
  ListNode* prev_ = nullptr;
  ListNode* next_ = nullptr;
};

// A FIFO of nodes of type Node (which derives from ListNode).
template <class Node>
class List {
 public:
  List() { head_.prev_ = head_.next_ = &head_; }
  List(const List&) = delete;
  List& operator=(const List&) = delete;
  ~List() {
    while (!empty())
      head_.next_->unlink();
    head_.prev_ = head_.next_ = nullptr;
  }
  bool empty() const noexcept { return head_.next_ == &head_; }
  void push_back(Node* n) noexcept {
    ListNode* node = n;
    node->prev_ = head_.prev_;
    node->next_ = &head_;
    head_.prev_->next_ = node;
    head_.prev_ = node;
  }
  Node* front() const noexcept { return empty() ? nullptr : static_cast<Node*>(head_.next_); }
  Node* pop_front() noexcept {
    Node* n = front();
    if (n != nullptr) static_cast<ListNode*>(n)->unlink();
    return n;
  }
  // Calls fn(node) for every node; fn may unlink the node it is given (and only that one).
  template <class F>
  void for_each(F&& fn) {
    for (ListNode* n = head_.next_; n != &head_;) {
      ListNode* next = n->next_;
      fn(static_cast<Node*>(n));
      n = next;
    }
  }
  std::size_t size() const noexcept {
    std::size_t k = 0;
    for (const ListNode* n = head_.next_; n != &head_; n = n->next_)
      ++k;
    return k;
  }

 private:
  ListNode head_;
};

// What a due timer calls.
class TimerTarget {
 public:
  // A pooled node is already back in the pool: forget it first thing (disarming it now would
  // corrupt the pool's free list).
  virtual void on_timer() = 0;
  // The loop is closing with this timer still armed.
  virtual void discard() {}

 protected:
  ~TimerTarget() = default;
};

// A timer in the loop's heap: its place in arming order (FIFO among equal deadlines; the
// deadline itself is in the heap entry) and what to call. A node leaves the heap only at the
// top or in a rebuild, so cancelling just clears `target`: memory the heap points at is never
// freed under it. Most nodes come from the loop's pool (TimerNodePool) and go back when they
// leave; a call_later handle's node is part of the handle, which the heap's reference keeps
// alive until then (the low bit of seq says which).
struct TimerNode {
  std::uint64_t seq = 0;  // arming order << 1, | 1 if the node is part of a CallbackHandle
  union {
    TimerTarget* target = nullptr;  // in the heap: what to call (null once disarmed or fired)
    TimerNode* next_free;           // in the pool's free list
  };
  bool in_handle() const noexcept { return (seq & 1) != 0; }
};

// The loop's timer nodes: first the free list, threaded through the nodes themselves (they come
// back in firing order, scattered, so the next is loaded while one is handed out), then the
// unused rest of the newest chunk. Chunks double in size and live as long as the loop.
class TimerNodePool {
 public:
  TimerNodePool() = default;
  TimerNodePool(const TimerNodePool&) = delete;
  TimerNodePool& operator=(const TimerNodePool&) = delete;
  ~TimerNodePool();
  TimerNode* take() {
    if (TimerNode* n = free_) {
      free_ = n->next_free;
      __builtin_prefetch(free_, 1);
      return n;
    }
    if (bump_ == end_) [[unlikely]]
      add_chunk();
    return new (bump_++) TimerNode;
  }
  void put(TimerNode* n) noexcept {
    n->next_free = free_;
    free_ = n;
  }

 private:
  void add_chunk();
  TimerNode* free_ = nullptr;
  TimerNode* bump_ = nullptr;
  TimerNode* end_ = nullptr;
  std::vector<std::pair<void*, std::size_t>> chunks_;  // for array_free
};

// The loop's timers: a 4-ary min-heap on (deadline, then sequence number: FIFO among equal
// deadlines). With a million timers a heap is bound by cache misses, so an entry is 16 bytes
// (the sequence number is read from the node, and only to break a tie) and the heap is laid out
// so that each group of four siblings fills exactly one 64-byte cache line: a step down the
// heap is one miss, not two. Cancelled timers stay in until they reach the top (or a rebuild).
class TimerHeap {
 public:
  struct Entry {
    std::int64_t when;
    TimerNode* node;
  };
  TimerHeap() = default;
  TimerHeap(const TimerHeap&) = delete;
  TimerHeap& operator=(const TimerHeap&) = delete;
  ~TimerHeap();
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  const Entry& front() const noexcept { return at_[0]; }
  void push(Entry e);
  void pop() noexcept;  // removes front()
  // Removes every entry due by `end` and appends it to `out`, in heap order. A burst of due
  // timers that is a large part of the heap leaves it in one pass instead of one pop each: the
  // due entries are split off in a linear scan and radix-sorted, the rest re-heapified.
  void take_due(std::int64_t end, BigArray<Entry>& out);
  // Removes every entry for which drop(entry) is true, then restores the heap order.
  template <class Drop>
  void remove_if(Drop drop) {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < size_; ++i) {
      if (!drop(at_[i])) at_[kept++] = at_[i];
    }
    size_ = kept;
    heapify();
  }
  const Entry* begin() const noexcept { return at_; }
  const Entry* end() const noexcept { return at_ + size_; }
  void clear() noexcept { size_ = 0; }

 private:
  void grow();
  void heapify() noexcept;
  void sift_down(std::size_t i, Entry e) noexcept;
  Entry* at_ = nullptr;  // entry 0, 48 bytes into a 64-byte-aligned block
  void* block_ = nullptr;
  void sort_burst(Entry* burst, std::size_t n);
  BigArray<Entry> scratch_;  // sort_burst's
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

// A callback scheduled with call_soon / call_later / call_at: asyncio's Handle / TimerHandle.
// Reference-counted: the ready queue or the timer heap holds one reference, every Handle one.
// One pool block holds everything a timer needs: the callable itself (CallbackFor<F> below, no
// type-erased buffer sized for the largest lambda) and the timer's heap node. As asyncio leaves
// a cancelled TimerHandle in its heap, a cancelled timer stays until its entry leaves, but its
// callable — and whatever that holds — is destroyed at once.
class CallbackHandle : public Runnable, public TimerTarget, public TimerNode {
 public:
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;
  void run() final;
  void on_timer() final;
  void discard() final { release(); }
  void cancel() noexcept;
  bool cancelled() const noexcept { return cancelled_; }
  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }
  std::int64_t when_ns = 0;
  EventLoop* loop_;
  // The context the callback runs in (asyncio's Handle._context): a copy of the scheduler's, or
  // the one given. Null: an empty one, made only if the callback sets a variable.
  contextvars::detail::ContextRef context;

 protected:
  explicit CallbackHandle(EventLoop* loop) noexcept : loop_(loop) {}
  virtual ~CallbackHandle() = default;
  bool has_callable() const noexcept { return has_callable_; }

 private:
  virtual void call() = 0;
  virtual void destroy_callable() noexcept = 0;
  void drop_callable() noexcept;
  int refs_ = 1;
  bool cancelled_ = false;
  bool calling_ = false;      // a callback that cancels its own handle is not destroyed mid-call
  bool has_callable_ = true;  // until cancel() (or the end of the call that cancelled it)
};

template <class F>
class CallbackFor final : public CallbackHandle {
 public:
  template <class G>
  CallbackFor(EventLoop* loop, G&& fn) : CallbackHandle(loop), fn_(std::forward<G>(fn)) {}
  ~CallbackFor() override {
    if (has_callable()) fn_.~F();
  }

 private:
  void call() override { fn_(); }
  void destroy_callable() noexcept override { fn_.~F(); }
  union {
    F fn_;
  };
};

// A callable aligned beyond what the pool's blocks are (16 bytes) is kept on the heap.
template <class F>
struct OverAligned {
  std::unique_ptr<F> fn;
  void operator()() { (*fn)(); }
};

template <class F>
CallbackHandle* make_callback(EventLoop* loop, F&& fn) {
  using Fn = std::decay_t<F>;
  if constexpr (alignof(Fn) > alignof(std::max_align_t)) {
    return new CallbackFor<OverAligned<Fn>>(
        loop, OverAligned<Fn>{std::make_unique<Fn>(std::forward<F>(fn))});
  } else {
    return new CallbackFor<Fn>(loop, std::forward<F>(fn));
  }
}

// The ready queue. A loop iteration runs exactly what was ready when it began, so the queue is
// two arrays: push() appends to one, and take() hands that one over whole — the iteration walks
// it by index — while later pushes fill the other. Pushing is a bounds check and a store;
// popping is one load from an array the caller holds in a register.
class ReadyQueue {
 public:
  struct Batch {
    Runnable* const* items;
    std::size_t size;
  };
  ReadyQueue() : fill_(1024), spare_(1024), data_(fill_.data()), capacity_(fill_.size()) {}
  ReadyQueue(const ReadyQueue&) = delete;  // data_ points into fill_
  ReadyQueue& operator=(const ReadyQueue&) = delete;
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  void push(Runnable* r) {
    if (size_ == capacity_) [[unlikely]]
      grow();
    data_[size_++] = r;
  }
  // Everything pushed so far, in order; the queue starts empty. Valid until the next take().
  Batch take() noexcept {
    fill_.swap(spare_);
    const Batch b{spare_.data(), size_};
    data_ = fill_.data();
    capacity_ = fill_.size();
    size_ = 0;
    return b;
  }
  // An iteration that stopped part-way (an exception): its unrun entries go back to the front.
  void put_back(Runnable* const* first, std::size_t count);

 private:
  void grow();
  std::vector<Runnable*> fill_;   // what push() appends to
  std::vector<Runnable*> spare_;  // the last batch taken
  Runnable** data_;               // fill_.data()
  std::size_t capacity_;          // fill_.size()
  std::size_t size_ = 0;
};

}  // namespace detail

// asyncio.Handle: returned by call_soon; cancel() stops the callback if it has not run yet.
class Handle {
 public:
  Handle() = default;
  explicit Handle(detail::CallbackHandle* h) : h_(h) {}  // adopts a reference
  Handle(const Handle& o) : h_(o.h_) {
    if (h_) h_->add_ref();
  }
  Handle& operator=(Handle o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  ~Handle() {
    if (h_) h_->release();
  }
  void cancel() {
    if (h_) h_->cancel();
  }
  bool cancelled() const { return h_ != nullptr && h_->cancelled(); }

 protected:
  detail::CallbackHandle* h_ = nullptr;
};

// asyncio.TimerHandle: returned by call_later / call_at.
class TimerHandle : public Handle {
 public:
  using Handle::Handle;
  double when() const { return h_ ? h_->when_ns * 1e-9 : 0; }
};

// asyncio.eager_task_factory, for EventLoop::set_task_factory: a tag, as gilio has no other.
struct EagerTaskFactory {
  explicit constexpr EagerTaskFactory() = default;
};
inline constexpr EagerTaskFactory eager_task_factory{};

// What went wrong, and where: the context of asyncio's loop.call_exception_handler, with the keys
// gilio has. The runtime reports through the handler what no caller can be handed: an exception
// from a callback, a task's exception that nobody retrieved, a client handler that failed, an
// accept that failed. Each field but `message` may be empty.
struct ExceptionContext {
  ExceptionContext() = default;
  explicit ExceptionContext(std::string message, std::exception_ptr exception = nullptr)
      : message(std::move(message)), exception(std::move(exception)) {}
  std::string message;           // what happened ("Exception in callback", ...)
  std::exception_ptr exception;  // what was raised, if anything was
  std::string future;            // the task or future concerned ("Task fetch-3"): asyncio's
                                 // 'task' and 'future' keys, by description
  std::string handle;            // the callback concerned ("reader callback for fd 7")
  int socket = -1;               // the socket concerned (a server's listening socket)
};
// set_exception_handler's argument: called with the loop and the context.
using ExceptionHandler = std::function<void(EventLoop&, const ExceptionContext&)>;

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop's clock: monotonic seconds (loop.time()).
  double time() const;

  // Schedules fn (anything callable with no arguments) for the next iteration; callbacks run in
  // the order they were scheduled. fn runs in a copy of the caller's context (contextvars.hpp),
  // or, given one, in `context` itself (asyncio's context= argument); so do call_later's and
  // call_at's.
  template <class F>
  Handle call_soon(F&& fn) {
    return call_soon_in(captured_context(), std::forward<F>(fn));
  }
  template <class F>
  Handle call_soon(F&& fn, contextvars::Context context) {
    return call_soon_in(context.ref(), std::forward<F>(fn));
  }
  // Schedules fn after `delay` seconds / at loop time `when`. Equal deadlines run in FIFO order.
  template <class F>
  TimerHandle call_later(double delay, F&& fn) {
    return call_at_ns(later_ns(delay), std::forward<F>(fn), captured_context());
  }
  template <class F>
  TimerHandle call_later(double delay, F&& fn, contextvars::Context context) {
    return call_at_ns(later_ns(delay), std::forward<F>(fn), context.ref());
  }
  template <class F>
  TimerHandle call_at(double when, F&& fn) {
    return call_at_ns(to_ns(when), std::forward<F>(fn), captured_context());
  }
  template <class F>
  TimerHandle call_at(double when, F&& fn, contextvars::Context context) {
    return call_at_ns(to_ns(when), std::forward<F>(fn), context.ref());
  }
  // The only method safe to call from another thread: wakes a sleeping loop through the ring.
  // Throws std::runtime_error if the loop is closed.
  void call_soon_threadsafe(std::function<void()> fn);

  // loop.create_future(), asyncio's preferred way to make a future: one bound to this loop
  // (futures.hpp).
  template <class T = void>
  Future<T> create_future();

  // Wraps the coroutine in a task scheduled to start on the next iteration (tasks.hpp) — or,
  // under the eager task factory, one that takes its first step at once.
  template <class T>
  Task<T> create_task(Coro<T> coro);
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name);
  // With create_task's `context=`: the task runs in that context object (not a copy of the
  // caller's). An empty name leaves the default one.
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name, std::optional<contextvars::Context> context);

  // loop.set_task_factory(asyncio.eager_task_factory), asyncio 3.12: from then on, a task
  // created while this loop runs takes its first step inside create_task, before create_task
  // returns, and is scheduled only if it suspends; one that finishes without suspending is
  // never queued at all. set_task_factory(nullptr) restores the default (every task starts on
  // the loop's next iteration). These are the two factories gilio has: asyncio also accepts
  // any callable that builds a Task subclass, which has no counterpart here. tasks.hpp says
  // what changes for a program that turns it on.
  void set_task_factory(EagerTaskFactory) noexcept { eager_tasks_ = true; }
  void set_task_factory(std::nullptr_t) noexcept { eager_tasks_ = false; }
  // &eager_task_factory, or nullptr for the default (None, in asyncio).
  const EagerTaskFactory* get_task_factory() const noexcept;

  // Runs until the coroutine / task is done and returns its result (runners.hpp).
  template <class T>
  T run_until_complete(Coro<T> coro);
  template <class T>
  T run_until_complete(Task<T> task);
  // Runs until stop() is called. Takes the GIL for its duration if the thread does not hold it.
  void run_forever();
  // Finishes the current iteration, then makes run_forever() return.
  void stop() noexcept { stopping_ = true; }
  bool is_running() const noexcept { return running_; }
  bool is_closed() const noexcept { return closed_; }
  // Cancels and finishes every task, closes the async generators still parked
  // (shutdown_asyncgens), waits for in-flight I/O, shuts the default executor down, frees
  // everything. Throws std::runtime_error if the loop is running.
  void close();

  // loop.shutdown_asyncgens() (generators.hpp, runtime/generators.cpp): closes (aclose) every
  // asynchronous generator that started on this loop and is parked at a co_yield, all at once,
  // and reports an error one throws through the exception handler ("an error occurred during
  // closing of asynchronous generator"). close() does it itself after the leftover tasks have
  // ended, as asyncio.run does. From the call on, a generator dropped while parked is left for
  // close() to close, not given a task of its own at once.
  Coro<void> shutdown_asyncgens();

  // Readiness callbacks (loop.add_reader / add_writer; runtime/fd_events.cpp): fn runs on this
  // loop whenever `fd` can be read (written) without blocking — every iteration while it can,
  // as asyncio's level-triggered selector does — until removed. For descriptors that another
  // library owns and reads or writes itself. Replaces an earlier callback for the same fd and
  // direction. std::invalid_argument for a negative fd, OSError (EBADF) for one that is not
  // open. Remove it before closing the fd. remove_reader / remove_writer return whether there
  // was one; close() removes them all.
  void add_reader(int fd, std::function<void()> fn);
  void add_writer(int fd, std::function<void()> fn);
  bool remove_reader(int fd);
  bool remove_writer(int fd);

  // Unix signals (loop.add_signal_handler; runtime/unix_events.cpp): when the process receives
  // `sig`, fn runs on this loop as a callback, like any call_soon — so, unlike a plain signal
  // handler, it may do anything a callback may (set an Event, cancel a task, stop the loop).
  // Replaces this loop's earlier handler for `sig`. Throws std::invalid_argument for a number
  // that is not a signal, std::runtime_error for one that cannot be caught (SIGKILL, SIGSTOP)
  // or that another loop handles. remove_signal_handler restores the default action and returns
  // whether there was a handler; close() removes them all.
  void add_signal_handler(int sig, std::function<void()> fn);
  bool remove_signal_handler(int sig);

  // Debug mode (GILIO_DEBUG=1 or set_debug(true)): warns about handles slower than
  // slow_callback_duration and about tasks still pending when the loop closes; and, as asyncio's
  // _check_thread, call_soon, call_later, call_at and create_task called from a thread other than
  // the one running the loop throw std::runtime_error (call_soon_threadsafe is the way in).
  void set_debug(bool enabled) noexcept { debug_ = enabled; }
  bool get_debug() const noexcept { return debug_; }
  double slow_callback_duration = 0.1;

  // The loop's exception handler (asyncio's, base_events.py). An empty handler — the one a loop
  // starts with — means the default: default_exception_handler, which writes the context to
  // stderr. call_exception_handler calls the handler; if the handler throws, the default reports
  // both the original context and that exception ("Unhandled error in exception handler").
  void set_exception_handler(ExceptionHandler handler) { exception_handler_ = std::move(handler); }
  const ExceptionHandler& get_exception_handler() const noexcept { return exception_handler_; }
  void default_exception_handler(const ExceptionContext& context) const;
  void call_exception_handler(const ExceptionContext& context) noexcept;

  // Runs fn(args...) in `executor` — anything with a submit(fn, args...) that returns a
  // concurrent::Future — or in the default ThreadPoolExecutor when it is nullptr. The work is
  // submitted at once; the returned Coro gives its result (threads.hpp).
  template <class Executor, class F, class... Args>
  auto run_in_executor(Executor* executor, F fn, Args... args);
  template <class F, class... Args>
  auto run_in_executor(std::nullptr_t, F fn, Args... args);
  concurrent::ThreadPoolExecutor& default_executor();
  // loop.set_default_executor(executor): run_in_executor(nullptr, ...) and to_thread use it from
  // now on. The loop owns it and shuts it down, waiting for its work, with
  // shutdown_default_executor (which close() calls). A default it replaces is shut down then
  // too, not at once: work may still be running in it. Null is std::invalid_argument.
  void set_default_executor(std::unique_ptr<concurrent::ThreadPoolExecutor> executor);
  void shutdown_default_executor();

  // Socket operations on io_uring (asyncio's loop.sock_*; runtime/sockets.cpp). `fd` is a
  // socket the caller owns. Errors throw the OSError subclass for the errno, naming the
  // operation and the peer; a cancelled operation is cancelled in the kernel and waited for
  // before CancelledError is thrown, so no buffer is written after its owner is gone.
  // sock_recv, sock_recv_into and sock_sendall return awaitables, not coroutines (defined in
  // gilio/asyncio/sockets.hpp): co_await each once; each converts to a Coro.
  class SockRecv;
  class SockRecvInto;
  class SockSendall;
  // Up to nbytes bytes; "" at end of stream.
  SockRecv sock_recv(int fd, std::size_t nbytes);
  // Into the caller's buffer, which must outlive the await; returns the count (0: end of stream).
  SockRecvInto sock_recv_into(int fd, char* buf, std::size_t nbytes);
  // Sends every byte (partial sends are continued).
  SockSendall sock_sendall(int fd, std::string data);
  struct Accepted {
    int fd;
    std::string peer;  // "host:port" ("[host]:port" for IPv6)
  };
  Coro<Accepted> sock_accept(int fd);
  // Datagrams (asyncio's sock_recvfrom / sock_sendto), for a SOCK_DGRAM socket the caller owns.
  struct Datagram {
    std::string data;  // up to nbytes of one datagram (the rest of a longer one is dropped)
    std::string host;  // the sender: numeric address and port (a Unix socket's: its path, with
                       // '\0' first for an abstract name, "" if the sender is not bound; port 0)
    int port = 0;
  };
  Coro<Datagram> sock_recvfrom(int fd, std::size_t nbytes);
  // asyncio 3.11's sock_recvfrom_into: one datagram into the caller's buffer, which must outlive
  // the await — its first nbytes bytes, the rest dropped — and who sent it.
  struct DatagramInto {
    std::size_t nbytes = 0;  // bytes written into the buffer
    std::string host;        // the sender, as Datagram's
    int port = 0;
  };
  Coro<DatagramInto> sock_recvfrom_into(int fd, char* buf, std::size_t nbytes);
  // Sends `data` as one datagram to host:port — to its first address of the socket's family; a
  // name is resolved without blocking the loop, as sock_connect does — and returns the bytes
  // sent. No address of that family is an OSError (EAFNOSUPPORT), a datagram too large one too
  // (EMSGSIZE). On a Unix datagram socket, host is the peer's path and port 0, as
  // sock_recvfrom gives them.
  Coro<std::size_t> sock_sendto(int fd, std::string data, std::string host, int port);
  // Resolves `host` for the socket's own family and type without blocking the loop (getaddrinfo
  // in the default executor, as asyncio does) and connects to the first address that accepts.
  // NameResolutionError if it does not resolve for that family; else the first address's
  // ConnectionRefusedError etc., naming each address tried. On a Unix socket, host is the path
  // and port 0, as sock_sendto takes them.
  Coro<void> sock_connect(int fd, std::string host, int port);
  // loop.getaddrinfo(host, port, family=0, type=0, proto=0, flags=0): ::getaddrinfo in the
  // default executor, as asyncio runs socket.getaddrinfo, so the loop goes on while a name is
  // looked up. `host` "" is Python's None (with AI_PASSIVE: the wildcard address); `port` is a
  // number or a service name ("http"), "" for none. Each answer is Python's (family, type, proto,
  // canonname, sockaddr) tuple. A name that does not resolve is a NameResolutionError
  // (socket.gaierror) carrying getaddrinfo's code.
  struct AddrInfo {
    int family = 0;         // AF_INET, AF_INET6
    int type = 0;           // SOCK_STREAM, SOCK_DGRAM, SOCK_RAW
    int protocol = 0;       // IPPROTO_TCP...
    std::string canonname;  // with AI_CANONNAME, on the first answer; else ""
    std::string host;       // the address, numeric: the sockaddr tuple's host
    int port = 0;
    sockaddr_storage address{};  // as connect() and bind() take it
    socklen_t address_len = 0;
  };
  Coro<std::vector<AddrInfo>> getaddrinfo(std::string host, std::string port, int family = 0,
                                          int type = 0, int proto = 0, int flags = 0);
  // loop.getnameinfo((host, port), flags=0): the host name and service name of a numeric
  // address (NI_NUMERICHOST, NI_NUMERICSERV, NI_NAMEREQD... as flags), in the default executor.
  // A host that is not a numeric address is a NameResolutionError, as socket.getnameinfo's
  // gaierror.
  Coro<std::pair<std::string, std::string>> getnameinfo(std::string host, int port, int flags = 0);
  // asyncio's sock_sendfile(sock, file, offset, count): sends `count` bytes of the file
  // `file_fd` from `offset` (std::nullopt: up to its end) to the connected SOCK_STREAM socket
  // `sock`, and returns how many were sent. The bytes never pass through user space: the ring
  // splices them from the file into a pipe and from the pipe into the socket (as asyncio's
  // os.sendfile). As asyncio's, it leaves the file's position after the last byte sent — also
  // when it fails or is cancelled, so that lseek(file_fd, 0, SEEK_CUR) tells how far it got.
  // A pipe or a socket (which asyncio sends by its read-and-send fallback) is read from where it
  // is, up to `count` bytes or its EOF; an offset other than 0 in one is an OSError (ESPIPE).
  Coro<std::size_t> sock_sendfile(int sock, int file_fd, std::uint64_t offset = 0,
                                  std::optional<std::size_t> count = std::nullopt);

  // ---- for the runtime's own awaitables (tasks, futures, timers, I/O); not user API ----
  // call_soon with the context named: null runs fn in a fresh empty one. For the runtime's
  // callbacks that carry a user's function already wrapped with its own context
  // (detail::in_context_of_caller).
  template <class F>
  Handle call_soon_in(contextvars::detail::ContextRef context, F&& fn) {
    check_open("call_soon");
    detail::CallbackHandle* h = detail::make_callback(this, std::forward<F>(fn));
    h->context = std::move(context);
    h->add_ref();  // the ready queue's
    ready(h);
    return Handle(h);
  }
  void ready(detail::Runnable* r) { ready_.push(r); }
  static std::int64_t now_ns() noexcept;
  detail::TimerNode* arm_timer(std::int64_t when_ns, detail::TimerTarget* target);
  void disarm_timer(detail::TimerNode* node) noexcept;
  detail::Backend& backend() noexcept { return *backend_; }
  // call_exception_handler from a callback of its own, for a report made while completions are
  // reaped: no user code runs inside the backend.
  void call_exception_handler_soon(ExceptionContext context) {
    call_soon([this, c = std::move(context)] { call_exception_handler(c); });
  }
  // In a catch handler: "Exception in callback", with the exception being handled.
  void report_callback_exception(std::string handle) noexcept;
  inline void add_task(detail::TaskCore* t) noexcept;  // futures.hpp
  inline void remove_task(detail::TaskCore* t) noexcept;
  // A new task's start: made ready, or its first step at once under the eager task factory.
  inline void start_task(detail::TaskCore* t);  // futures.hpp
  template <class F>
  void for_each_task(F&& fn);
  std::size_t task_count() const noexcept { return task_count_; }
  // Calls in an executor whose result has not come back yet (run_in_executor): while there are
  // some, an idle loop polls a moment before it sleeps (runtime/spin.hpp).
  void executor_call_started() noexcept { ++executor_calls_; }
  void executor_call_ended() noexcept { --executor_calls_; }
  // Async generators (runtime/generators.cpp): register one at its first step (asyncio's
  // firstiter hook); close one whose handle was dropped while it was parked (the finalizer hook).
  void add_asyncgen(detail::AsyncGenCore& g) noexcept;
  void finalize_asyncgen(detail::AsyncGenCore& g) noexcept;
  // Shared with threads that post results back: null once the loop is closed.
  struct Token {
    std::mutex mutex;
    EventLoop* loop = nullptr;
  };
  std::shared_ptr<Token> token() const { return token_; }
  // std::runtime_error naming `who` if the loop is closed — or, in debug mode, if the calling
  // thread is not the one running the loop.
  void check_open(const char* who) const {
    if (closed_ || debug_) [[unlikely]]
      check_open_or_thread(who);
  }

 private:
  template <class F>
  TimerHandle call_at_ns(std::int64_t when_ns, F&& fn, contextvars::detail::ContextRef context) {
    check_open("call_at");
    detail::CallbackHandle* h = detail::make_callback(this, std::forward<F>(fn));
    h->context = std::move(context);
    h->when_ns = when_ns;
    arm_handle(h);
    return TimerHandle(h);
  }
  void check_open_or_thread(const char* who) const;
  static std::int64_t to_ns(double seconds);
  // asyncio's call_at(time() + delay), computed in integer nanoseconds throughout: the same
  // deadline (to the nanosecond) without a round trip through floating-point seconds.
  static std::int64_t later_ns(double delay) {
    return now_ns() + detail::seconds_to_ns(delay, "call_later");
  }
  // What a callback scheduled now runs in: a copy of the current context, or null (empty) as
  // long as no variable was ever set — one load and a branch for a program without them.
  static contextvars::detail::ContextRef captured_context() {
    if (contextvars::detail::any_set()) [[unlikely]]
      return contextvars::detail::capture();
    return {};
  }
  void run_once();
  void run_ready_handle(detail::Runnable* r);
  void fire_due();
  void put_back_due(std::size_t from) noexcept;
  std::int64_t pop_cancelled_timers();
  void drain_threadsafe();
  void arm_handle(detail::CallbackHandle* h);
  void leave_heap(detail::TimerNode* node) noexcept;
  void finish_tasks_for_close();
  void detach_asyncgens() noexcept;  // generators.cpp: the last step of close()
  void add_watch(int fd, bool writing, std::function<void()> fn);  // fd_events.cpp
  bool remove_watch(int fd, bool writing);
  void remove_watches() noexcept;
  friend class detail::SigintGuard;
  // add_signal_handler; `once`: the kernel restores the default action as it delivers the
  // signal (SA_RESETHAND), so a second one acts at once even if the loop never gets to run.
  void install_signal_handler(int sig, std::function<void()> fn, bool once);
  void take_signals();  // unix_events.cpp: queues the handlers of the signals that arrived
  void remove_signal_handlers() noexcept;

  detail::ReadyQueue ready_;
  detail::TimerHeap timers_;
  detail::TimerNodePool timer_nodes_;
  detail::BigArray<detail::TimerHeap::Entry> due_;  // run_once's due timers
  std::uint64_t timer_seq_ = 0;
  std::size_t cancelled_timers_ = 0;
  std::unique_ptr<detail::Backend> backend_;
  detail::TaskCore* tasks_ = nullptr;  // all unfinished tasks (a circular list through TaskCore)
  std::size_t task_count_ = 0;
  std::size_t executor_calls_ = 0;
  std::mutex threadsafe_mutex_;
  std::vector<std::function<void()>> threadsafe_;
  std::atomic<bool> threadsafe_pending_{false};  // read without the mutex on every iteration
  bool trace_ = false;                           // GILIO_TRACE is on (read once)
  std::shared_ptr<Token> token_;
  std::unique_ptr<concurrent::ThreadPoolExecutor> default_executor_;
  std::vector<std::unique_ptr<concurrent::ThreadPoolExecutor>> replaced_executors_;
  ExceptionHandler exception_handler_;  // empty: default_exception_handler
  // add_reader / add_writer: (fd << 1 | writing) -> its watch (fd_events.cpp).
  std::unordered_map<std::uint64_t, detail::FdWatch*> watches_;
  // (signal, handler) for add_signal_handler; the loop looks at it on every iteration.
  std::vector<std::pair<int, std::function<void()>>> signal_handlers_;
  // Async generators that started here and are not closed (asyncio's _asyncgens).
  detail::List<detail::AsyncGenCore> asyncgens_;
  bool asyncgens_shutdown_ = false;  // shutdown_asyncgens() called, or close() begun
  bool running_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  bool debug_ = false;
  bool eager_tasks_ = false;  // set_task_factory(eager_task_factory)
  // The thread running the loop (none while it is not running), for debug mode's thread check:
  // the one member another thread reads, hence atomic.
  std::atomic<std::thread::id> thread_id_{};
};

namespace detail {
// The loop running on this thread (base_events.cpp). constinit: no dynamic initialisation, so
// code in other files reads it directly rather than through a TLS wrapper call — the streams
// check it on every read and write.
extern thread_local constinit EventLoop* tl_running_loop;
// Reports `context` through the handler of `loop` if that loop still exists, and through the
// default handler otherwise: for what is reported when an object of a loop dies (a future's
// unretrieved exception), which may be after the loop has gone. Never throws.
void report_to_loop(const EventLoop* loop, const ExceptionContext& context) noexcept;
}  // namespace detail

// The loop running on this thread; std::runtime_error("no running event loop") otherwise.
EventLoop& get_running_loop();
// The loop running on this thread, or nullptr.
inline EventLoop* running_loop() noexcept {
  return detail::tl_running_loop;
}

inline const EagerTaskFactory* EventLoop::get_task_factory() const noexcept {
  return eager_tasks_ ? &eager_task_factory : nullptr;
}

}  // namespace gilio::asyncio
