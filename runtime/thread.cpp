// runtime/thread.cpp — ThreadPoolExecutor; mirrors Lib/concurrent/futures/thread.py.
//
// A queue of work items and up to max_workers gilio threads. submit() queues the item and, if no
// worker is idle and the pool is not full, starts one more (Python's _adjust_thread_count). A
// worker takes the GIL like any gilio thread, waits for work with the GIL released, and runs
// each item holding it. shutdown(wait) stops new submissions, lets the workers drain the queue
// (or cancels what is queued, with cancel_futures) and joins them.
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "gilio/concurrent.hpp"
#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "spin.hpp"

namespace gilio::concurrent {

namespace detail {

// ---- a Future's lock and flag (concurrent.hpp): the parts that sleep and wake ----

namespace {
// Sleeps while *word == expected, up to `timeout` (nullptr: for ever), or until woken.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, const timespec* timeout) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected,
            timeout, nullptr, 0);
}
void futex_wake(std::atomic<std::uint32_t>& word, int how_many) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, how_many,
            nullptr, nullptr, 0);
}
}  // namespace

void FutexLock::lock_contended() noexcept {
  auto try_take = [this] {
    std::uint32_t free = 0;
    return state_.load(std::memory_order_relaxed) == 0 &&
           state_.compare_exchange_strong(free, 1, std::memory_order_acquire);
  };
  if (try_briefly(try_take)) return;
  // Say that someone sleeps (2), and sleep until the holder's unlock wakes us; whoever takes it
  // from here on takes it as 2, since others may still be asleep.
  while (state_.exchange(2, std::memory_order_acquire) != 0)
    futex_wait(state_, 2, nullptr);
}

void FutexLock::wake_one() noexcept {
  futex_wake(state_, 1);
}

void DoneFlag::wake_all() noexcept {
  futex_wake(state_, INT_MAX);
}

bool DoneFlag::wait_released(double timeout) {
  gil::Released nogil;
  // A pool's answer often comes within microseconds: look a moment before sleeping (spin.hpp)
  // — unless the caller's timeout is shorter than the look; the look counts against it.
  constexpr double kSpinSeconds = kSpinNs * 1e-9;
  if (timeout < 0 || timeout > kSpinSeconds) {
    if (spin_briefly([this] { return is_set(); })) return true;
    if (timeout > 0) timeout -= kSpinSeconds;
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(std::min(timeout, 1e9)));
  for (;;) {
    std::uint32_t seen = state_.load(std::memory_order_acquire);
    if (seen & kSet) return true;
    timespec rel{};
    if (timeout >= 0) {
      const auto left = deadline - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return is_set();
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      rel = {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    }
    // Say that someone sleeps, so that set() wakes us; then sleep unless it was set meanwhile.
    if (!(seen & kSleepers) &&
        !state_.compare_exchange_strong(seen, seen | kSleepers, std::memory_order_acquire)) {
      continue;  // set meanwhile, or another sleeper marked it: look again
    }
    futex_wait(state_, kSleepers, timeout >= 0 ? &rel : nullptr);
  }
}

}  // namespace detail

struct ThreadPoolExecutor::Impl {
  struct Item {
    std::function<void()> run;
    std::function<void()> cancel;
  };
  std::mutex mutex;
  std::condition_variable cv;
  std::deque<Item> queue;
  std::vector<threading::Thread> workers;
  std::size_t idle = 0;
  bool shutting_down = false;
  int counter = 0;

  void worker_loop() {
    for (;;) {
      Item item;
      {
        // Wait without the GIL; `lk` is released before `nogil` takes the GIL back, because
        // a thread holding the GIL (the loop, in submit) may be waiting for this mutex.
        gil::Released nogil;
        auto have_work = [this] { return !queue.empty() || shutting_down; };
        std::unique_lock lk(mutex);
        ++idle;
        if (!have_work()) {  // more work often follows at once: look a moment before sleeping
          lk.unlock();
          detail::spin_briefly_locked(mutex, have_work);
          lk.lock();
        }
        cv.wait(lk, have_work);
        --idle;
        if (queue.empty()) return;  // shutting down and drained
        item = std::move(queue.front());
        queue.pop_front();
      }
      item.run();  // holding the GIL, like Python code in a worker
    }
  }
};

ThreadPoolExecutor::ThreadPoolExecutor(std::size_t max_workers)
    : max_workers_(max_workers != 0
                       ? max_workers
                       : std::min<std::size_t>(32, std::thread::hardware_concurrency() + 4)),
      impl_(std::make_unique<Impl>()) {}

ThreadPoolExecutor::~ThreadPoolExecutor() {
  shutdown(true);
}

void ThreadPoolExecutor::enqueue(std::function<void()> work, std::function<void()> cancel) {
  std::lock_guard lk(impl_->mutex);
  if (impl_->shutting_down) {
    throw std::runtime_error("cannot schedule new futures after shutdown");
  }
  impl_->queue.push_back({std::move(work), std::move(cancel)});
  if (impl_->idle > 0) {
    impl_->cv.notify_one();
  } else if (impl_->workers.size() < max_workers_) {
    // Created and started under the lock, so two submitting threads cannot start one worker
    // twice; the new worker blocks on this mutex until we return.
    impl_->workers.emplace_back([impl = impl_.get()] { impl->worker_loop(); });
    impl_->workers.back().set_name("ThreadPoolExecutor-" + std::to_string(impl_->counter++));
    impl_->workers.back().start();
  }
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  std::vector<Impl::Item> dropped;
  {
    std::lock_guard lk(impl_->mutex);
    impl_->shutting_down = true;
    if (cancel_futures) {
      dropped.assign(std::make_move_iterator(impl_->queue.begin()),
                     std::make_move_iterator(impl_->queue.end()));
      impl_->queue.clear();
    }
    impl_->cv.notify_all();
  }
  for (auto& item : dropped)
    item.cancel();
  if (!wait) return;
  std::vector<threading::Thread> workers;
  {
    std::lock_guard lk(impl_->mutex);
    workers.swap(impl_->workers);
  }
  for (auto& w : workers)
    w.join();  // releases the GIL while waiting
}

}  // namespace gilio::concurrent
