// gilio/asyncio/queues.hpp — Queue, PriorityQueue, LifoQueue; mirrors Lib/asyncio/queues.py
// (with 3.13's shutdown()).
//
// A bounded or unbounded queue between tasks of one loop. put() waits while the queue is full,
// get() while it is empty; each is woken in FIFO order by the other side. As in asyncio, a woken
// task re-checks before it proceeds (another task may have got there first), and one that is
// cancelled just after being woken passes the wake-up on, so no item and no free slot is lost.
// put() and get() return awaitables, not coroutines: when there is a free slot or an item they
// finish inside await_ready — no coroutine frame, no trip through the loop, as asyncio's never
// yields then either — and only a wait runs a coroutine (put_waiting, get_waiting).
//
// task_done() / join(): every put() counts one unfinished task; task_done() marks one done;
// join() waits until the count is back to zero. task_done() more often than items were put
// throws std::invalid_argument (asyncio's ValueError).
//
// shutdown(immediate = false): put() throws QueueShutDown from then on, and so do blocked puts;
// get() drains what is left, then throws QueueShutDown. With immediate = true the queue is
// emptied at once (each dropped item counts as done for join()) and every blocked get() throws.
//
// PriorityQueue<T, Compare = std::less<T>> gives the smallest item first; LifoQueue the newest.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "gilio/asyncio/locks.hpp"
#include "gilio/asyncio/tasks.hpp"

namespace gilio::asyncio {
namespace detail {

template <class T>
struct FifoStore {
  std::deque<T> items;
  void push(T v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.front());
    items.pop_front();
    return v;
  }
  std::size_t size() const { return items.size(); }
};

template <class T>
struct LifoStore {
  std::vector<T> items;
  void push(T v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const { return items.size(); }
};

template <class T, class Compare>
struct HeapStore {
  std::vector<T> items;
  // std::*_heap keeps the largest by Compare on top; invert it for smallest-first.
  struct Inverted {
    Compare less;
    bool operator()(const T& a, const T& b) const { return less(b, a); }
  };
  void push(T v) {
    items.push_back(std::move(v));
    std::push_heap(items.begin(), items.end(), Inverted{});
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(), Inverted{});
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  std::size_t size() const { return items.size(); }
};

// An awaitable that either finishes in await_ready, with no coroutine frame, or awaits the
// coroutine it is given for the rest: done_with(value) or wait_in(coro) is await_ready's answer.
template <class R>
class Shortcut {
 public:
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    return slow_->await_suspend(h);
  }
  R await_resume() {
    if (slow_) return slow_->await_resume();
    if constexpr (!std::is_void_v<R>) return std::move(*value_);
  }

 protected:
  // Like a coroutine object, it may be awaited once.
  void first_await(const char* what) { detail::first_await(awaited_, what); }
  template <class... V>
  bool done_with(V&&... value) {
    if constexpr (!std::is_void_v<R>) value_.emplace(std::forward<V>(value)...);
    return true;
  }
  bool wait_in(Coro<R> coro) {
    coro_ = std::move(coro);
    slow_.emplace(coro_.operator co_await());
    return false;
  }

 private:
  struct NoValue {};
  [[no_unique_address]] std::conditional_t<std::is_void_v<R>, NoValue, std::optional<R>> value_;
  Coro<R> coro_;  // owns the waiting coroutine's frame
  std::optional<typename Coro<R>::Awaiter> slow_;
  bool awaited_ = false;
};

template <class T, class Store>
class BasicQueue {
 public:
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  // What get() and put() return: co_await it. When the queue can answer at once — an item to
  // take, a free slot — await_ready does the work and there is no coroutine frame at all (the
  // common case when a queue is busy); only a wait runs a coroutine (get_waiting, put_waiting).
  // Like a coroutine object, it does nothing until awaited and converts to a Coro where one is
  // wanted (create_task, gather, wait_for).
  class [[nodiscard]] Get : public Shortcut<T> {
   public:
    explicit Get(BasicQueue& q) noexcept : q_(&q) {}
    bool await_ready() {
      this->first_await("Queue.get");
      if (q_->empty() && !q_->shutdown_) return this->wait_in(q_->get_waiting());
      return this->done_with(q_->get_nowait());  // QueueShutDown once shut down and empty
    }
    operator Coro<T>() && { return as_coro(std::move(*this)); }

   private:
    BasicQueue* q_;
  };
  class [[nodiscard]] Put : public Shortcut<void> {
   public:
    Put(BasicQueue& q, T item) : q_(&q), item_(std::move(item)) {}
    bool await_ready() {
      first_await("Queue.put");
      if (q_->full() && !q_->shutdown_) return wait_in(q_->put_waiting(std::move(item_)));
      q_->put_nowait(std::move(item_));  // QueueShutDown after shutdown(), as asyncio
      return done_with();
    }
    operator Coro<void>() && { return as_coro(std::move(*this)); }

   private:
    BasicQueue* q_;
    T item_;
  };

  // Waits for a free slot, then puts the item.
  Put put(T item) { return Put(*this, std::move(item)); }
  // Waits for an item, then takes it.
  Get get() { return Get(*this); }
  void put_nowait(T item) {
    if (shutdown_) throw QueueShutDown();
    if (full()) throw QueueFull();
    store_.push(std::move(item));
    ++unfinished_;
    finished_.clear();
    wake_first(getters_);
  }
  T get_nowait() {
    if (empty()) {
      if (shutdown_) throw QueueShutDown();
      throw QueueEmpty();
    }
    T item = store_.pop();
    wake_first(putters_);
    return item;
  }
  void task_done() {
    if (unfinished_ == 0) throw std::invalid_argument("task_done() called too many times");
    if (--unfinished_ == 0) finished_.set();
  }
  // Waits until every item put has been marked done.
  Coro<void> join() {
    if (unfinished_ > 0) co_await finished_.wait();
  }
  void shutdown(bool immediate = false) {
    shutdown_ = true;
    if (immediate) {
      while (!empty()) {
        store_.pop();
        if (unfinished_ > 0) --unfinished_;
      }
      if (unfinished_ == 0) finished_.set();
    }
    while (wake_first(getters_)) {
    }
    while (wake_first(putters_)) {
    }
  }
  std::size_t qsize() const noexcept { return store_.size(); }
  bool empty() const noexcept { return store_.size() == 0; }
  bool full() const noexcept { return maxsize_ > 0 && store_.size() >= maxsize_; }
  std::size_t maxsize() const noexcept { return maxsize_; }

 private:
  // The waiting halves of put() and get(), as asyncio's loops: a woken task re-checks (another
  // may have got there first), and one cancelled just after being woken passes the wake-up on.
  Coro<void> put_waiting(T item) {
    while (full()) {
      if (shutdown_) throw QueueShutDown();
      Parked p(putters_, binding_, "Queue", Parked::deferred);
      co_await p;
      if (p.take_cancel()) {
        if (p.woken() && !full()) wake_first(putters_);  // pass the free slot on
        p.raise_cancelled();
      }
    }
    put_nowait(std::move(item));
  }
  Coro<T> get_waiting() {
    while (empty()) {
      if (shutdown_) throw QueueShutDown();
      Parked p(getters_, binding_, "Queue", Parked::deferred);
      co_await p;
      if (p.take_cancel()) {
        if (p.woken() && !empty()) wake_first(getters_);  // pass the item on
        p.raise_cancelled();
      }
    }
    co_return get_nowait();
  }
  std::size_t maxsize_;
  Store store_;
  std::size_t unfinished_ = 0;
  bool shutdown_ = false;
  Event finished_;
  List<SyncWaiter> getters_;
  List<SyncWaiter> putters_;
  LoopBinding binding_;  // one for both lists, as asyncio binds the queue
};

}  // namespace detail

template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
 public:
  using detail::BasicQueue<T, detail::FifoStore<T>>::BasicQueue;
};

template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
 public:
  using detail::BasicQueue<T, detail::HeapStore<T, Compare>>::BasicQueue;
};

template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoStore<T>> {
 public:
  using detail::BasicQueue<T, detail::LifoStore<T>>::BasicQueue;
};

}  // namespace gilio::asyncio
