// runtime/locks.cpp — Lock, Event, Condition, Semaphore, Barrier; mirrors Lib/asyncio/locks.py.
// The protocol (park a waiter node, wake the first, pass a wake-up on when its task is
// cancelled) is described in locks.hpp.
#include "gilio/asyncio.hpp"

namespace gilio::asyncio {

void detail::LoopBinding::bind_or_throw(EventLoop* loop, const char* owner) {
  if (loop_ != nullptr)
    throw std::runtime_error(std::string(owner) + " is bound to a different event loop");
  loop_ = loop;
}

// ---- Lock ----

// As asyncio's Lock (3.11 to 3.13), release() unlocks and wakes the first waiter, which takes
// the lock when it runs; until then the lock is unlocked (locked() is false, a second release()
// is an error) but not free: a newcomer queues behind the woken waiter (`woken_`), so the order
// stays FIFO. A cancelled waiter stays in the list until its task runs, as asyncio's cancelled
// future stays in its deque: a release() that finds it first wakes no one, and the cancelled
// task, when it runs, wakes the next waiter if the lock is free (asyncio's _wake_up_first). So a
// wake-up takes the same turns of the loop as in asyncio; tests/sync_diff.py holds the two to it.
bool Lock::free_for_newcomer() {
  if (locked_ || woken_) return false;
  bool all_cancelled = true;  // (asyncio: all(w.cancelled() for w in self._waiters))
  waiters_.for_each(
      [&](detail::SyncWaiter* w) { all_cancelled = all_cancelled && w->cancelled(); });
  return all_cancelled;
}

bool Lock::Acquire::await_ready() noexcept {
  if (!lock_.free_for_newcomer()) return false;
  lock_.locked_ = true;
  return true;
}

void Lock::Acquire::await_resume() {
  if (!parked()) return;  // taken without waiting
  unlink();               // a cancelled waiter was left in the list until now
  if (woken()) {
    lock_.woken_ = false;
    if (!task()->cancel_pending(cancelled())) {
      lock_.locked_ = true;  // ours
      return;
    }
  }
  if (!lock_.locked_) lock_.wake_first();
  task()->resume_check(cancelled());
}

// Wakes the first waiter unless it has been woken already or was cancelled (then its own task
// passes the turn on when it runs).
void Lock::wake_first() {
  if (woken_) return;
  detail::SyncWaiter* w = waiters_.front();
  if (w == nullptr || w->cancelled()) return;
  w->wake_up();
  woken_ = true;
}

void Lock::release() {
  if (!locked_) throw std::runtime_error("Lock is not acquired");
  locked_ = false;
  wake_first();
}

// ---- Event ----

void Event::set() {
  if (flag_) return;
  flag_ = true;
  while (detail::wake_first(waiters_)) {
  }
}

// ---- Condition ----

Coro<bool> Condition::wait() {
  if (!lock_->locked()) throw std::runtime_error("cannot wait on un-acquired lock");
  binding_.check(running_loop(), "Condition");  // before the lock is let go
  lock_->release();
  bool cancelled = false;
  {
    detail::Parked p(waiters_, binding_, "Condition", detail::Parked::deferred);
    co_await p;
    cancelled = p.take_cancel();
  }
  // Take the lock back even if cancelled, before rethrowing (as asyncio does).
  for (;;) {
    try {
      co_await lock_->acquire();
      break;
    } catch (const CancelledError&) {
      cancelled = true;
    }
  }
  if (cancelled) {
    // As asyncio's since 3.12.x (gh-112202): a notification may have reached us before the
    // cancel did, so another waiter is notified in our place. Perhaps spuriously, which a
    // condition variable allows: its waiters check their predicate again (wait_for).
    notify(1);
    throw CancelledError();
  }
  co_return true;
}

void Condition::notify(std::size_t n) {
  if (!lock_->locked()) throw std::runtime_error("cannot notify on un-acquired lock");
  for (std::size_t i = 0; i < n && detail::wake_first(waiters_); ++i) {
  }
}

void Condition::notify_all() {
  notify(static_cast<std::size_t>(-1));
}

// ---- Semaphore ----

Semaphore::Semaphore(long value) : value_(value) {
  if (value < 0) throw std::invalid_argument("Semaphore initial value must be >= 0");
}

// As asyncio's (3.12+): release() adds a unit and hands it to the first waiter, if any, taking
// it off the count at once; acquire() waits while anyone is ahead, even with units left, and a
// waiter that runs, or is cancelled, wakes as many of those behind it as there are units.
bool Semaphore::Acquire::await_ready() noexcept {
  if (!sem_.locked()) {
    --sem_.value_;
    return true;
  }
  return false;
}

void Semaphore::Acquire::await_resume() {
  if (!parked()) return;
  const bool cancelling = task()->cancel_pending(cancelled());
  if (woken()) {
    --sem_.woken_;
    if (cancelling) ++sem_.value_;  // handed a unit, but cancelled: it goes back
  }
  // Units left that newcomers queued behind us for: theirs now.
  while (sem_.value_ > 0 && sem_.wake_next()) {
  }
  task()->resume_check(cancelled());
}

bool Semaphore::wake_next() {
  if (!detail::wake_first(waiters_)) return false;
  --value_;
  ++woken_;
  return true;
}

void Semaphore::release() {
  ++value_;
  wake_next();
}

void BoundedSemaphore::release() {
  if (value_ >= bound_) throw std::invalid_argument("BoundedSemaphore released too many times");
  Semaphore::release();
}

// ---- Barrier ----

Barrier::Barrier(std::size_t parties) : parties_(parties) {
  if (parties < 1) throw std::invalid_argument("Barrier: parties must be >= 1");
}

Coro<std::size_t> Barrier::wait() {
  co_await cond_.acquire();
  std::exception_ptr error;
  std::size_t index = 0;
  try {
    // Block while the barrier drains or resets.
    co_await cond_.wait_for(
        [this] { return state_ != State::draining && state_ != State::resetting; });
    if (state_ == State::broken) throw BrokenBarrierError();
    index = count_++;
    try {
      if (index + 1 == parties_) {
        state_ = State::draining;  // we are the last: release everyone
        cond_.notify_all();
      } else {
        co_await cond_.wait_for([this] { return state_ != State::filling; });
        if (state_ == State::broken || state_ == State::resetting) throw BrokenBarrierError();
      }
    } catch (...) {
      error = std::current_exception();
    }
    --count_;
    exit_wait();
  } catch (...) {
    if (!error) error = std::current_exception();
  }
  cond_.release();
  if (error) std::rethrow_exception(error);
  co_return index;
}

void Barrier::exit_wait() {
  if (count_ == 0) {
    if (state_ == State::resetting || state_ == State::draining) state_ = State::filling;
    cond_.notify_all();
  }
}

Coro<void> Barrier::reset() {
  co_await cond_.acquire();
  if (count_ > 0) {
    state_ = State::resetting;  // wake the waiters with BrokenBarrierError
  } else {
    state_ = State::filling;
  }
  cond_.notify_all();
  cond_.release();
}

Coro<void> Barrier::abort() {
  co_await cond_.acquire();
  state_ = State::broken;
  cond_.notify_all();
  cond_.release();
}

}  // namespace gilio::asyncio
