// gil/threading.cpp — Thread, Lock and Event; mirrors Modules/_threadmodule.c.
//
// A Thread's body is: take the GIL, run the target, drop the GIL (CPython's thread_run does
// PyEval_AcquireThread / PyEval_ReleaseThread the same way). Lock and Event are a mutex, a
// condition variable and a flag; their waits first leave the GIL (gil::Released) and only then
// block, and they never hold their own mutex while dropping or taking the GIL — the GIL may make
// the caller wait for another thread, and that thread may need this mutex.
#include "gilio/threading.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <typeinfo>

#include "gilio/gil.hpp"

namespace gilio::threading {
namespace {

std::atomic<int> thread_counter{0};

// The Thread::State whose target the calling thread runs (nullptr on other threads): lets join()
// refuse to join the calling thread itself without reading the std::thread being assigned.
thread_local const void* running_state = nullptr;

// Python's timeout convention: negative means forever. Returns nullopt-like -1 for forever.
double checked_timeout(double timeout, const char* who) {
  if (std::isnan(timeout)) throw std::invalid_argument(std::string(who) + ": timeout is NaN");
  return timeout;
}

// Waits on `cv` until pred() holds or the timeout (seconds, < 0 = forever) passes.
template <class Pred>
bool wait_with_timeout(std::condition_variable& cv, std::unique_lock<std::mutex>& lk,
                       double timeout, Pred pred) {
  if (timeout < 0) {
    cv.wait(lk, pred);
    return true;
  }
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(std::min(timeout, 1e9)));
  return cv.wait_until(lk, deadline, pred);
}

}  // namespace

struct Thread::State {
  std::function<void()> target;
  std::string name;
  std::thread thread;
  std::mutex mutex;
  std::condition_variable finished_cv;
  bool started = false;
  bool finished = false;
  bool joined = false;
};

Thread::Thread(std::function<void()> target) : state_(std::make_shared<State>()) {
  state_->target = std::move(target);
  state_->name = "Thread-" + std::to_string(++thread_counter);
}

Thread::Thread(Thread&&) noexcept = default;

Thread& Thread::operator=(Thread&& other) noexcept {
  if (this != &other) {
    if (state_ && state_->started) join();
    state_ = std::move(other.state_);
  }
  return *this;
}

Thread::~Thread() {
  if (state_ && state_->started) join();
}

void Thread::start() {
  State& s = *state_;
  if (s.started)
    throw std::logic_error("Thread::start: thread '" + s.name + "' was already started");
  s.started = true;
  s.thread = std::thread([state = state_] {
    running_state = state.get();
    try {
      gil::set_thread_name(state->name);
      gil::acquire();
      try {
        state->target();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "Exception in thread %s: %s: %s\n", state->name.c_str(),
                     typeid(e).name(), e.what());
      } catch (...) {
        std::fprintf(stderr, "Exception in thread %s: (not a std::exception)\n",
                     state->name.c_str());
      }
      gil::release();
    } catch (const std::exception& e) {  // acquire() itself failed, e.g. a bad GILIO_GIL
      std::fprintf(stderr, "Thread %s could not take the GIL: %s\n", state->name.c_str(), e.what());
    }
    state->target = nullptr;  // destroy captured arguments on this thread, as Python does
    std::lock_guard lk(state->mutex);
    state->finished = true;
    state->finished_cv.notify_all();
  });
}

void Thread::join() {
  join(-1);
}

void Thread::join(double timeout) {
  if (!state_) throw std::logic_error("Thread::join: this Thread was moved from");
  State& s = *state_;
  if (!s.started) throw std::logic_error("Thread::join: thread '" + s.name + "' was never started");
  if (running_state == &s) {
    throw std::logic_error("Thread::join: thread '" + s.name + "' cannot join itself");
  }
  checked_timeout(timeout, "Thread::join");
  gil::Released nogil;
  std::unique_lock lk(s.mutex);
  if (!wait_with_timeout(s.finished_cv, lk, timeout, [&] { return s.finished; })) return;
  if (!s.joined) {
    s.joined = true;
    lk.unlock();
    s.thread.join();
  }
}

bool Thread::is_alive() const {
  std::lock_guard lk(state_->mutex);
  return state_->started && !state_->finished;
}

const std::string& Thread::name() const {
  return state_->name;
}

void Thread::set_name(std::string name) {
  if (state_->started) throw std::logic_error("Thread::set_name: the thread has already started");
  state_->name = std::move(name);
}

struct Lock::State {
  mutable std::mutex mutex;
  std::condition_variable cv;
  bool locked = false;
};

Lock::Lock() : state_(std::make_unique<State>()) {}
Lock::~Lock() = default;

bool Lock::acquire(bool blocking, double timeout) {
  checked_timeout(timeout, "Lock::acquire");
  if (!blocking && timeout != -1) {
    throw std::invalid_argument("Lock::acquire: can't specify a timeout for a non-blocking call");
  }
  if (timeout < 0 && timeout != -1) {
    throw std::invalid_argument("Lock::acquire: timeout value must be positive (or -1)");
  }
  State& s = *state_;
  {
    std::lock_guard lk(s.mutex);
    if (!s.locked) return s.locked = true;
  }
  if (!blocking) return false;
  gil::Released nogil;  // block without the GIL, so the owner can run and release
  std::unique_lock lk(s.mutex);
  if (!wait_with_timeout(s.cv, lk, timeout, [&] { return !s.locked; })) return false;
  s.locked = true;
  return true;
}

void Lock::release() {
  State& s = *state_;
  std::lock_guard lk(s.mutex);
  if (!s.locked) throw std::runtime_error("Lock::release: release unlocked lock");
  s.locked = false;
  s.cv.notify_one();
}

bool Lock::locked() const {
  std::lock_guard lk(state_->mutex);
  return state_->locked;
}

struct Event::State {
  mutable std::mutex mutex;
  std::condition_variable cv;
  bool flag = false;
};

Event::Event() : state_(std::make_unique<State>()) {}
Event::~Event() = default;

void Event::set() {
  std::lock_guard lk(state_->mutex);
  state_->flag = true;
  state_->cv.notify_all();
}

void Event::clear() {
  std::lock_guard lk(state_->mutex);
  state_->flag = false;
}

bool Event::is_set() const {
  std::lock_guard lk(state_->mutex);
  return state_->flag;
}

bool Event::wait(double timeout) {
  checked_timeout(timeout, "Event::wait");
  State& s = *state_;
  {
    std::lock_guard lk(s.mutex);
    if (s.flag) return true;
  }
  gil::Released nogil;
  std::unique_lock lk(s.mutex);
  return wait_with_timeout(s.cv, lk, timeout, [&] { return s.flag; });
}

}  // namespace gilio::threading
