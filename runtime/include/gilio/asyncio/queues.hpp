// gilio/asyncio/queues.hpp — Queue, PriorityQueue, LifoQueue; mirrors Lib/asyncio/queues.py
// (with 3.13's shutdown()).
//
// A bounded or unbounded queue between tasks of one loop. put() waits while the queue is full,
// get() while it is empty; each is woken in FIFO order by the other side. As in asyncio, a woken
// task re-checks before it proceeds (another task may have got there first), and one that is
// cancelled just after being woken passes the wake-up on, so no item and no free slot is lost.
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
#include <stdexcept>
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

template <class T, class Store>
class BasicQueue {
 public:
  explicit BasicQueue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;

  // Waits for a free slot, then puts the item.
  Coro<void> put(T item) {
    while (full()) {
      if (shutdown_) throw QueueShutDown();
      Parked p(putters_);
      try {
        co_await p;
      } catch (...) {
        if (p.woken && !full()) wake_first(putters_);  // pass the free slot on
        throw;
      }
    }
    put_nowait(std::move(item));
  }
  // Waits for an item, then takes it.
  Coro<T> get() {
    while (empty()) {
      if (shutdown_) throw QueueShutDown();
      Parked p(getters_);
      try {
        co_await p;
      } catch (...) {
        if (p.woken && !empty()) wake_first(getters_);  // pass the item on
        throw;
      }
    }
    co_return get_nowait();
  }
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
  std::size_t maxsize_;
  Store store_;
  std::size_t unfinished_ = 0;
  bool shutdown_ = false;
  Event finished_;
  List<SyncWaiter> getters_;
  List<SyncWaiter> putters_;
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
