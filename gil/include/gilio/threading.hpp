// gilio/threading.hpp — threads that run "interpreter code", and their Lock and Event.
//
// Mirrors Python's threading module (Lib/threading.py over Modules/_threadmodule.c). A
// threading::Thread runs its target holding the GIL, exactly as a Python thread runs Python
// code: it takes the GIL when it starts, gives it up at checkpoints when another thread asks,
// and drops it when it finishes. So two CPU-bound threads take turns (L1, L4) unless the GIL is
// off, and a thread in a blocking call lets the others run (L3, L10).
//
// Every blocking operation here — join(), Lock::acquire() on a held lock, Event::wait() —
// releases the GIL while it waits (CPython wraps the same waits in Py_BEGIN_ALLOW_THREADS).
// Forgetting that is how deadlocks happen: a thread blocked on a Lock while holding the GIL would
// stop the Lock's owner from ever running to release it.
//
// Edge cases, as in Python: start() twice is an error, join() before start() is an error,
// join() of the calling thread itself is an error; an exception escaping the target is printed
// (threading.excepthook) and ends only that thread. Unlike a std::thread, destroying a started,
// unjoined Thread joins it (Python waits for non-daemon threads at exit).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace gilio::threading {

class Thread {
 public:
  // Stores fn and copies of args; nothing runs until start().
  template <class F, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, Thread>) explicit Thread(F&& fn, Args&&... args)
      : Thread(std::function<void()>(
            [fn = std::forward<F>(fn), tup = std::make_tuple(std::forward<Args>(
                                           args)...)]() mutable { std::apply(fn, tup); })) {}
  explicit Thread(std::function<void()> target);
  Thread(Thread&&) noexcept;
  Thread& operator=(Thread&&) noexcept;
  ~Thread();

  void start();
  // Waits for the thread to finish, with the GIL released.
  void join();
  // Waits at most `timeout` seconds; check is_alive() afterwards, as in Python.
  void join(double timeout);
  bool is_alive() const;
  const std::string& name() const;
  void set_name(std::string name);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// threading.Lock: not owned by a thread (any thread may release it), not reentrant.
class Lock {
 public:
  Lock();
  ~Lock();
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // blocking=false tries once; timeout < 0 means wait forever (Python's -1). Returns whether
  // the lock was taken. A timeout with blocking=false, or a negative timeout other than -1,
  // throws std::invalid_argument, as Python raises ValueError.
  bool acquire(bool blocking = true, double timeout = -1);
  // Releasing an unlocked lock throws std::runtime_error (Python's RuntimeError).
  void release();
  bool locked() const;

  // BasicLockable / Lockable, so std::lock_guard and std::unique_lock work.
  void lock() { acquire(); }
  bool try_lock() { return acquire(false); }
  void unlock() { release(); }

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// threading.Event: a flag threads can wait for.
class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  void set();
  void clear();
  bool is_set() const;
  // Waits until the flag is set (GIL released); returns the flag. timeout < 0 waits forever.
  bool wait(double timeout = -1);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace gilio::threading
