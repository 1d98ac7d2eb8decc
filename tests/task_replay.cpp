// tests/task_replay.cpp — replays scripted sessions of tasks that start, await, gather, wait
// for, shield, time out and cancel each other, and prints one transcript per script for
// tests/task_diff.py to compare, line for line, with what CPython's asyncio prints for the
// same script.
//
// A script is a list of coroutine bodies, each a list of operations, and the bodies the main
// task starts as root tasks (task_diff.py says what each operation does). Every activation of a
// body is named by where it was started ("r0.3.1": the second task that the fourth operation of
// the first root started), prints a line as it starts, one per operation as it finishes and one
// as it returns or raises; so the transcript pins which task ran when, what each await gave and
// who ended cancelled — the order of asyncio's turns of the loop, not only the results.
//
// Input (stdin), one script after another:
//     body plain spawn:1 gather:0:1,1 await:0      (one line per body; "resist": it catches
//     body resist sleep cancel_self sleep           the CancelledError of an operation and goes on)
//     roots 0 0                                     (the bodies started as root tasks)
//     eager 1                                       (1: under the eager task factory)
//     end
// Output: the transcript's lines, then "==" after each script.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "replay_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using asyncio::Task;

namespace {

struct Body {
  bool resist = false;
  std::vector<std::string> ops;
};

struct Script {
  std::vector<Body> bodies;
  std::vector<int> roots;
  bool eager = false;  // the eager task factory for every task the script makes
};

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep))
    parts.push_back(part);
  return parts;
}

// An exception as the transcript shows it (task_diff.py's describe()).
std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const asyncio::CancelledError&) {
    return "CancelledError";
  } catch (const asyncio::TimeoutError&) {
    return "TimeoutError";
  } catch (const std::invalid_argument& e) {  // asyncio's ValueError
    return fmt::format("ValueError {}", e.what());
  } catch (const asyncio::ExceptionGroup& group) {
    std::string text = "ExceptionGroup[";
    for (std::size_t i = 0; i < group.exceptions().size(); ++i)
      text += (i ? ", " : "") + describe(group.exceptions()[i]);
    return text + "]";
  } catch (const std::runtime_error&) {
    return "RuntimeError";
  } catch (const std::exception& e) {
    return fmt::format("other {}", e.what());
  }
}

struct World {
  const Script& script;
  std::vector<std::string> out;
  std::vector<std::pair<std::string, Task<std::string>>> made;  // in the order they were made
  std::map<const void*, Task<>> parents;  // a task's core: the task that made it (roots: none)
  void adopt(std::string name, const Task<std::string>& t, Task<> parent) {
    made.emplace_back(std::move(name), t);
    parents[&t.core()] = std::move(parent);
  }
};

Coro<std::string> body(World& w, int b, std::string name);

Task<std::string> start(World& w, int b, std::string name) {
  Task<std::string> t = asyncio::create_task(body(w, b, name));
  w.adopt(std::move(name), t, asyncio::current_task());
  return t;
}

// The tasks of a gather, wait or as_completed: one per body in the list, named here.0, here.1…
std::vector<Task<std::string>> start_many(World& w, const std::string& list,
                                          const std::string& here,
                                          std::vector<Task<std::string>>& children) {
  std::vector<Task<std::string>> tasks;
  for (const std::string& j : split(list, ','))
    tasks.push_back(start(w, std::stoi(j), fmt::format("{}.{}", here, tasks.size())));
  children.insert(children.end(), tasks.begin(), tasks.end());
  return tasks;
}

double delay_of(const std::string& word) {
  return word == "0" ? 0.0 : std::numeric_limits<double>::infinity();  // "inf": no deadline
}

// gather(tasks) or gather(return_exceptions, tasks), and what it gave.
Coro<std::string> gather_text(std::vector<Task<std::string>> tasks, bool outcomes) {
  std::string text;
  if (outcomes) {
    auto g = asyncio::gather(asyncio::return_exceptions, tasks);
    for (auto& r : co_await g)
      text += (text.empty() ? "" : ", ") + (r.has_error() ? describe(r.error()) : r.value());
  } else {
    auto g = asyncio::gather(tasks);
    for (const std::string& r : co_await g)
      text += (text.empty() ? "" : ", ") + r;
  }
  co_return "ok [" + text + "]";
}

// wait(tasks, when) — "first", "exc", "all", or "t0" (timeout=0) — and which tasks were done.
Coro<std::string> wait_text(std::vector<Task<std::string>> tasks, std::string when) {
  const auto return_when = when == "first" ? asyncio::ReturnWhen::FIRST_COMPLETED
                           : when == "exc" ? asyncio::ReturnWhen::FIRST_EXCEPTION
                                           : asyncio::ReturnWhen::ALL_COMPLETED;
  auto waiting = asyncio::wait(tasks, return_when, when == "t0" ? 0.0 : -1.0);
  const asyncio::WaitResult<std::string> r = co_await waiting;
  std::string text;
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    for (const Task<std::string>& d : r.done) {
      if (&d.core() == &tasks[i].core()) {
        text += (text.empty() ? "" : ",") + std::to_string(i);
        break;
      }
    }
  }
  co_return "done " + text;
}

Coro<std::string> one(World& w, const std::vector<std::string>& words, const std::string& here,
                      std::vector<Task<std::string>>& children) {
  const std::string& op = words[0];
  if (op == "sleep") {
    co_await asyncio::sleep(0);
  } else if (op == "spawn") {
    children.push_back(start(w, std::stoi(words[1]), here));
  } else if (op == "await" || op == "cancel" || op == "shield_old") {
    if (children.empty()) co_return "none";
    Task<std::string> child = children[std::stoul(words[1]) % children.size()];
    if (op == "cancel") co_return child.cancel() ? "True" : "False";
    std::string v;
    if (op == "shield_old") {
      v = co_await asyncio::shield(child);
    } else {
      v = co_await child;
    }
    co_return "ok " + v;
  } else if (op == "cancel_parent") {
    Task<>& parent = w.parents[&asyncio::current_task().core()];
    if (!parent.valid()) co_return "none";
    co_return parent.cancel() ? "True" : "False";
  } else if (op == "sleep_timer") {
    co_await asyncio::sleep(1e-9);  // a timer, not sleep(0)'s bare yield
  } else if (op == "gather_old") {
    co_return co_await gather_text(children, words[1] == "1");
  } else if (op == "wait_old") {
    if (children.empty()) co_return "none";
    co_return co_await wait_text(children, words[1]);
  } else if (op == "cancel_self") {
    co_return asyncio::current_task().cancel() ? "True" : "False";
  } else if (op == "raise") {
    co_return "raising";
  } else if (op == "uncancel") {
    co_return std::to_string(asyncio::current_task().uncancel());
  } else if (op == "cancelling") {
    co_return std::to_string(asyncio::current_task().cancelling());
  } else if (op == "call") {
    const std::string v = co_await body(w, std::stoi(words[1]), here);
    co_return "ok " + v;
  } else if (op == "shield") {
    Task<std::string> t = start(w, std::stoi(words[1]), here);
    children.push_back(t);
    const std::string v = co_await asyncio::shield(t);
    co_return "ok " + v;
  } else if (op == "wait_for_task") {
    Task<std::string> t = start(w, std::stoi(words[2]), here);
    children.push_back(t);
    const std::string v = co_await asyncio::wait_for(t, delay_of(words[1]));
    co_return "ok " + v;
  } else if (op == "wait_for") {
    const std::string v =
        co_await asyncio::wait_for(body(w, std::stoi(words[2]), here), delay_of(words[1]));
    co_return "ok " + v;
  } else if (op == "timeout") {
    const std::string v =
        co_await asyncio::timeout(delay_of(words[1]), body(w, std::stoi(words[2]), here));
    co_return "ok " + v;
  } else if (op == "gather") {
    co_return co_await gather_text(start_many(w, words[2], here, children), words[1] == "1");
  } else if (op == "wait") {
    co_return co_await wait_text(start_many(w, words[2], here, children), words[1]);
  } else if (op == "taskgroup") {
    asyncio::TaskGroup group;
    const std::vector<std::string> list = split(words[1], ',');
    for (std::size_t m = 0; m < list.size(); ++m) {
      const std::string name = fmt::format("{}.{}", here, m);
      Task<std::string> t;
      try {
        t = group.create_task(body(w, std::stoi(list[m]), name));
      } catch (const std::runtime_error&) {  // shutting down: an eager child failed already
        w.out.push_back(name + " refused");
        continue;
      }
      w.adopt(name, t, asyncio::current_task());
      children.push_back(t);
    }
    co_await group.join();
  } else if (op == "as_completed") {
    std::vector<Task<std::string>> tasks = start_many(w, words[1], here, children);
    std::string text;
    for (auto next : asyncio::as_completed(tasks)) {
      std::string got;
      try {
        got = co_await std::move(next);
      } catch (const std::invalid_argument& e) {
        got = describe(std::current_exception());
      }
      text += (text.empty() ? "" : ", ") + got;
    }
    co_return "ok [" + text + "]";
  } else {
    throw std::logic_error("task_replay: unknown op " + op);
  }
  co_return "ok";
}

Coro<std::string> body(World& w, int b, std::string name) {
  const Body& self = w.script.bodies[static_cast<std::size_t>(b)];
  w.out.push_back(name + " start");
  std::vector<Task<std::string>> children;  // the tasks this activation made, in order
  for (std::size_t k = 0; k < self.ops.size(); ++k) {
    const std::string& op = self.ops[k];
    const std::vector<std::string> words = split(op, ':');
    std::string result;
    try {
      result = co_await one(w, words, fmt::format("{}.{}", name, k), children);
    } catch (const asyncio::CancelledError&) {
      w.out.push_back(fmt::format("{} {} CancelledError", name, op));
      if (!self.resist) throw;
      continue;
    } catch (const std::logic_error& e) {
      if (dynamic_cast<const std::invalid_argument*>(&e) == nullptr) throw;  // a runner bug
      result = describe(std::current_exception());
    } catch (const std::runtime_error&) {  // TimeoutError, ExceptionGroup, RuntimeError
      result = describe(std::current_exception());
    }
    w.out.push_back(fmt::format("{} {} {}", name, op, result));
    if (words[0] == "raise") throw std::invalid_argument("e" + name);
  }
  w.out.push_back(name + " return");
  co_return "v" + name;
}

Coro<std::string> replay(Script s) {
  World w{s, {}, {}, {}};
  asyncio::EventLoop& loop = asyncio::get_running_loop();
  if (s.eager) loop.set_task_factory(asyncio::eager_task_factory);
  for (std::size_t i = 0; i < s.roots.size(); ++i) {
    const Task<std::string> root = start(w, s.roots[i], fmt::format("r{}", i));
    w.parents[&root.core()] = {};  // the main task is not for the scripts to cancel
  }
  for (int k = 0; k < 150; ++k)
    co_await asyncio::sleep(0);
  const std::size_t made = w.made.size();
  for (std::size_t i = 0; i < made; ++i) {
    if (!w.made[i].second.done()) {
      w.out.push_back("main cancels " + w.made[i].first);
      w.made[i].second.cancel();
    }
  }
  for (int k = 0; k < 150; ++k)
    co_await asyncio::sleep(0);
  loop.set_task_factory(nullptr);
  for (auto& [name, t] : w.made) {
    std::string state;
    if (!t.done()) {
      state = "pending";
    } else if (t.cancelled()) {
      state = "cancelled";
    } else if (std::exception_ptr e = t.exception()) {
      state = describe(e);
    } else {
      state = "ok " + t.result();
    }
    w.out.push_back(fmt::format("main {} {}", name, state));
  }
  co_return gilio::testing::transcript(w.out);
}

}  // namespace

int main() {
  Script s;
  return gilio::testing::replay_scripts(
      "task_replay",
      [&](const std::string& head, std::istringstream& words) {
        if (head == "body") {
          Body b;
          std::string kind;
          words >> kind;
          b.resist = kind == "resist";
          for (std::string op; words >> op;)
            b.ops.push_back(op);
          s.bodies.push_back(std::move(b));
        } else if (head == "roots") {
          for (int r; words >> r;)
            s.roots.push_back(r);
        } else if (head == "eager") {
          words >> s.eager;
        }
      },
      [&] { return asyncio::run(replay(std::exchange(s, Script{}))); });
}
