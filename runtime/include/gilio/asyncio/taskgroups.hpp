// gilio/asyncio/taskgroups.hpp — TaskGroup, structured concurrency; mirrors
// Lib/asyncio/taskgroups.py.
//
//     TaskGroup group;                               //   async with asyncio.TaskGroup() as tg:
//     auto a = group.create_task(fetch("a"));       //       a = tg.create_task(fetch("a"))
//     auto b = group.create_task(fetch("b"));       //       b = tg.create_task(fetch("b"))
//     co_await group.join();                         //   # the end of the async with block
//
// join() waits for every task. The first task to fail (an exception other than CancelledError)
// cancels all the others; join() then throws ExceptionGroup with every failure, in the order
// they happened (exceptions()). If the task awaiting join() is cancelled, the group cancels its
// children, still waits for all of them, and then rethrows the CancelledError (unless there are
// failures: the ExceptionGroup wins, as in asyncio, and the task's cancellation stays pending,
// to be thrown at its next co_await, as 3.13's). Once the group is aborting, create_task
// throws std::runtime_error ("TaskGroup is shutting down"); after join() it throws "TaskGroup is
// finished".
//
// Where C++ differs: Python's group also cancels the *body* of the `async with` when a child
// fails, and its __aexit__ turns that cancellation back into the ExceptionGroup. C++ has no
// async-with, and a CancelledError thrown in the body would skip join() and lose the errors, so
// gilio does not cancel the body: it runs on until join(), which throws. The cancel that
// asyncio sends the body is sent to the task as join() begins (or at once, if it waits in
// join() already), and join() takes it back, so that the task wakes on asyncio's turns. A
// group destroyed without join() (the body threw) cancels its remaining children; they finish
// on the loop.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gilio/asyncio/tasks.hpp"

namespace gilio::asyncio {

class TaskGroup {
 public:
  TaskGroup();
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name = {}) {
    check_open();
    Task<T> task = asyncio::create_task(std::move(coro), std::move(name));
    adopt(Task<>(task));
    return task;
  }
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name, contextvars::Context context) {
    check_open();
    Task<T> task = asyncio::create_task(std::move(coro), std::move(name), std::move(context));
    adopt(Task<>(task));
    return task;
  }
  template <Awaitable Aw>
  requires(!detail::is_coro_v<std::remove_cvref_t<Aw>>) auto create_task(Aw&& aw,
                                                                         std::string name = {}) {
    return create_task(detail::as_coro(std::forward<Aw>(aw)), std::move(name));
  }

  // Waits for every task; throws ExceptionGroup if any failed.
  Coro<void> join();

  // The failures so far.
  std::vector<std::exception_ptr> errors() const;

 private:
  struct State;
  void check_open() const;
  void adopt(Task<> task);
  std::shared_ptr<State> state_;
};

}  // namespace gilio::asyncio
