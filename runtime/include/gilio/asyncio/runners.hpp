// gilio/asyncio/runners.hpp — asyncio.run and EventLoop::run_until_complete; mirrors
// Lib/asyncio/runners.py.
//
// run(main) is the whole life of a program's loop: make a new loop, run `main` to completion,
// then clean up as asyncio.Runner.close() does — cancel every task still pending and let them
// finish, shut down the default executor (joining its threads), close the loop. The result of
// `main` is returned, or its exception rethrown — after the clean-up. The GIL is held for the
// whole run (the loop drops it only while it waits for I/O).
#pragma once

#include <memory>
#include <optional>
#include <stdexcept>
#include <utility>

#include "gilio/asyncio/events.hpp"
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
}  // namespace detail

// asyncio.run(main, debug=None). Throws std::runtime_error if a loop already runs here.
template <class T>
T run(Coro<T> main, std::optional<bool> debug = std::nullopt) {
  if (running_loop() != nullptr) {
    throw std::runtime_error("asyncio::run() cannot be called from a running event loop");
  }
  EventLoop loop;
  if (debug) loop.set_debug(*debug);
  struct Cleanup {
    EventLoop& loop;
    ~Cleanup() { detail::finish_run(loop); }
  } cleanup{loop};
  return loop.run_until_complete(std::move(main));
}

}  // namespace gilio::asyncio
