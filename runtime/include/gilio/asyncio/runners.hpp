// gilio/asyncio/runners.hpp — asyncio.run and EventLoop::run_until_complete; mirrors
// Lib/asyncio/runners.py.
//
// run(main) is the whole life of a program's loop: make a new loop, run `main` to completion,
// then clean up as asyncio.Runner.close() does — cancel every task still pending and let them
// finish, shut down the default executor (joining its threads), close the loop. The result of
// `main` is returned, or its exception rethrown — after the clean-up. The GIL is held for the
// whole run (the loop drops it only while it waits for I/O). Ctrl-C cancels `main` first (below).
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
// Cancels what is left, shuts the default executor down, closes the loop. Never throws.
void finish_run(EventLoop& loop) noexcept;

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

// asyncio.run(main, debug=None). Throws std::runtime_error if a loop already runs here.
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
  EventLoop loop;
  if (debug) loop.set_debug(*debug);
  {
    struct Cleanup {
      EventLoop& loop;
      ~Cleanup() { detail::finish_run(loop); }
    } cleanup{loop};
    Task<T> task = loop.create_task(std::move(main));
    detail::SigintGuard sigint(loop, task.core());
    try {
      return loop.run_until_complete(task);
    } catch (const CancelledError&) {
      if (!sigint.interrupted() || task.uncancel() != 0) throw;
    }
  }  // cleaned up
  detail::die_of_sigint();
}

}  // namespace gilio::asyncio
