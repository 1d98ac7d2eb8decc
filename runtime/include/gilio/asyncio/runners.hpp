// gilio/asyncio/runners.hpp — asyncio.run, asyncio.Runner and EventLoop::run_until_complete;
// mirrors Lib/asyncio/runners.py.
//
// run(main) is the whole life of a program's loop: make a new loop, run `main` to completion,
// then clean up as asyncio.Runner.close() does — cancel every task still pending and let them
// finish, close the async generators still parked at a co_yield (shutdown_asyncgens), shut down
// the default executor (joining its threads), close the loop. The result of
// `main` is returned, or its exception rethrown — after the clean-up. The GIL is held for the
// whole run (the loop drops it only while it waits for I/O). Ctrl-C cancels `main` first (below).
//
// Runner (Python 3.11) is the same, taken apart: one loop for several top-level calls, made at
// the first run() (or get_loop()) and cleaned up by close() or the destructor. run() is in fact
// nothing but a Runner used once, as in asyncio:
//
//     asyncio::Runner runner;                // with asyncio.Runner() as runner:
//     runner.run(connect());                 //     runner.run(connect())
//     int n = runner.run(count_requests());  //     n = runner.run(count_requests())
//
// Tasks a run() leaves pending go on in the next run() (they are the loop's, not the run's), and
// close() cancels whatever is left. asyncio's loop_factory argument has no counterpart: gilio
// has one kind of loop.
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/exceptions.hpp"
#include "gilio/asyncio/tasks.hpp"

namespace gilio::asyncio {

template <class T>
T EventLoop::run_until_complete(Task<T> task) {
  // If run_forever() throws, the callback is disarmed (asyncio removes it), so that the task,
  // finishing during a later run, does not stop that run.
  auto armed = std::make_shared<bool>(true);
  task.core().add_done_callback([this, armed] {
    if (*armed) stop();
  });
  struct Disarm {
    bool& armed;
    ~Disarm() { armed = false; }
  } disarm{*armed};
  run_forever();
  if (!task.done()) throw std::runtime_error("Event loop stopped before the task completed");
  return task.result();
}

template <class T>
T EventLoop::run_until_complete(Coro<T> coro) {
  return run_until_complete(create_task(std::move(coro)));
}

namespace detail {
// asyncio.Runner's Ctrl-C (runtime/unix_events.cpp). On the main thread, while SIGINT has its
// default action and no other loop handles it, the first SIGINT cancels the main task, so that
// its clean-up runs (finally blocks, destructors, a writer's close). The kernel restores the
// default action as it delivers that first one, so a second Ctrl-C ends the program at once —
// also when the loop is stuck in CPU work and never gets to the callback.
class SigintGuard {
 public:
  SigintGuard(EventLoop& loop, TaskCore& main);
  ~SigintGuard();
  SigintGuard(const SigintGuard&) = delete;
  SigintGuard& operator=(const SigintGuard&) = delete;
  bool interrupted() const noexcept;

 private:
  struct State;  // shared with the handler, which may still be queued when run() returns
  EventLoop& loop_;
  std::shared_ptr<State> state_;  // null: not installed
};

// Where CPython exits after an uncaught KeyboardInterrupt: stdio flushed, then the process
// ends by SIGINT itself, so that the shell sees what it sent.
[[noreturn]] void die_of_sigint() noexcept;
}  // namespace detail

// asyncio.Runner(debug=None). Not copyable or movable: its loop stays where it was made.
class Runner {
 public:
  explicit Runner(std::optional<bool> debug = std::nullopt) : debug_(debug) {}
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Runs `main` as a task on the runner's loop until it is done; returns its result or rethrows
  // its exception. Throws std::runtime_error from inside a running loop, or once closed. Ctrl-C
  // as in run() below: the first SIGINT cancels `main`; if that ends it, the runner is closed
  // and the process ends by SIGINT (asyncio raises KeyboardInterrupt from run() there).
  template <class T>
  T run(Coro<T> main);
  // run(main, context=...): `main` runs in `context` instead of the runner's own. The runner's
  // own is a copy of the context current when the runner started (its first run() or
  // get_loop()), and every run() without a context shares it, as in asyncio: what one run's
  // main task sets, the next one sees.
  template <class T>
  T run(Coro<T> main, contextvars::Context context);
  // Cancels the tasks still pending and lets them finish, closes the async generators still
  // parked, shuts the default executor down, closes the loop. Once closed, run() and get_loop()
  // throw; close() again does nothing. std::runtime_error from inside the runner's own run(), as
  // loop.close() there.
  void close();
  // The runner's loop, made now if no run() made it yet.
  EventLoop& get_loop();

 private:
  void lazy_init();
  enum class State { created, initialized, closed };
  State state_ = State::created;
  std::optional<bool> debug_;
  std::unique_ptr<EventLoop> loop_;
  std::optional<contextvars::Context> context_;  // made by lazy_init
};

template <class T>
T Runner::run(Coro<T> main) {
  if (running_loop() != nullptr) {
    throw std::runtime_error("Runner.run() cannot be called from a running event loop");
  }
  lazy_init();
  return run(std::move(main), *context_);
}

template <class T>
T Runner::run(Coro<T> main, contextvars::Context context) {
  if (running_loop() != nullptr) {
    throw std::runtime_error("Runner.run() cannot be called from a running event loop");
  }
  lazy_init();
  Task<T> task = loop_->create_task(std::move(main), {}, std::move(context));
  {
    detail::SigintGuard sigint(*loop_, task.core());
    try {
      return loop_->run_until_complete(task);
    } catch (const CancelledError&) {
      if (!sigint.interrupted() || task.uncancel() != 0) throw;
    }
  }
  close();
  detail::die_of_sigint();
}

// asyncio.run(main, debug=None): a Runner used once. Throws std::runtime_error if a loop already
// runs here.
//
// Ctrl-C, as asyncio.run has it since Python 3.11: on the main thread (and unless the program
// set a SIGINT handler of its own), the first SIGINT cancels `main`; once it and the rest of the
// loop are cleaned up, the process ends by SIGINT, as CPython's does when KeyboardInterrupt goes
// uncaught. (A C++ program has no KeyboardInterrupt to catch; one that wants to decide for itself
// calls get_running_loop().add_signal_handler(SIGINT, ...), which replaces run()'s.) If `main`
// catches the CancelledError and returns, run() returns normally.
template <class T>
T run(Coro<T> main, std::optional<bool> debug = std::nullopt) {
  if (running_loop() != nullptr) {
    throw std::runtime_error("asyncio::run() cannot be called from a running event loop");
  }
  Runner runner(debug);
  return runner.run(std::move(main));
}

}  // namespace gilio::asyncio
