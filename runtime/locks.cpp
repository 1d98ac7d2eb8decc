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

bool Lock::Acquire::await_ready() noexcept {
  if (!lock_.locked_ && lock_.waiters_.empty()) {
    lock_.locked_ = true;
    return true;
  }
  return false;
}

void Lock::Acquire::await_resume() {
  if (!parked()) return;  // taken without waiting
  // Handed the lock, but cancelled: pass it on before CancelledError is thrown.
  if (woken() && task()->cancel_pending(cancelled())) lock_.release();
  task()->resume_check(cancelled());
}

void Lock::release() {
  if (!locked_) throw std::runtime_error("Lock is not acquired");
  // Hand the lock straight to the first waiter (it stays locked), or unlock.
  if (!detail::wake_first(waiters_)) locked_ = false;
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
  bool pass_on = false;
  {
    detail::Parked p(waiters_, binding_, "Condition", detail::Parked::deferred);
    co_await p;
    if (p.take_cancel()) {
      cancelled = true;
      pass_on = p.woken();
    }
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
  if (pass_on) notify(1);  // a notification reached us but we were cancelled: pass it on
  if (cancelled) throw CancelledError();
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

bool Semaphore::Acquire::await_ready() noexcept {
  if (!sem_.locked()) {
    --sem_.value_;
    return true;
  }
  return false;
}

void Semaphore::Acquire::await_resume() {
  if (!parked()) return;
  // Handed a unit, but cancelled: it goes to the next waiter before CancelledError is thrown.
  if (woken() && task()->cancel_pending(cancelled())) sem_.release();
  task()->resume_check(cancelled());
}

void Semaphore::release() {
  // Hand the unit straight to the first waiter, or put it back.
  if (!detail::wake_first(waiters_)) ++value_;
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
