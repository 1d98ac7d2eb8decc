// runtime/thread.cpp — ThreadPoolExecutor; mirrors Lib/concurrent/futures/thread.py.
//
// A queue of work items and up to max_workers gilio threads. submit() queues the item and, if no
// worker is idle and the pool is not full, starts one more (Python's _adjust_thread_count). A
// worker takes the GIL like any gilio thread, waits for work with the GIL released, and runs
// each item holding it. shutdown(wait) stops new submissions, lets the workers drain the queue
// (or cancels what is queued, with cancel_futures) and joins them.
#include <algorithm>
#include <deque>
#include <thread>

#include "gilio/concurrent.hpp"
#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "spin.hpp"

namespace gilio::concurrent {

namespace detail {
bool wait_released(std::mutex& mutex, std::condition_variable& cv, double timeout,
                   const std::function<bool()>& pred) {
  gil::Released nogil;
  // A pool's answer often comes within microseconds: look a moment before sleeping (spin.hpp)
  // — unless the caller's timeout is shorter than the look; the look counts against it.
  constexpr double kSpinSeconds = kSpinNs * 1e-9;
  if (timeout < 0 || timeout > kSpinSeconds) {
    if (spin_briefly_locked(mutex, pred)) return true;
    if (timeout > 0) timeout -= kSpinSeconds;
  }
  std::unique_lock lk(mutex);  // destroyed before nogil: the mutex is dropped, then the GIL taken
  if (timeout < 0) {
    cv.wait(lk, pred);
    return true;
  }
  return cv.wait_for(lk, std::chrono::duration<double>(std::min(timeout, 1e9)), pred);
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
