// tests/sync_replay.cpp — replays scripted sessions of several tasks sharing a Lock, a Condition
// over it, a Semaphore, an Event and a Queue, and prints one transcript per script for
// tests/sync_diff.py to compare, line for line, with what CPython's asyncio prints for the same
// script.
//
// (A Semaphore, a BoundedSemaphore and a Barrier are in the scripts too.)
//
// A transcript holds every operation as it finishes, in the order the tasks ran, so it pins
// more than results: which waiter a release wakes, whether a woken waiter that is cancelled
// passes its wake-up on, how many turns of the loop a wake-up takes. The runner is the same on
// both sides (see sync_diff.py): tasks started in order, each doing its operations one after
// another and ending at the first CancelledError, then 100 turns of the loop, a cancel() for
// each task still running, 100 more turns, the primitives' state, and the lock freed for the
// cancelled Condition waiters that take it back before they end.
//
// Input (stdin), one script after another:
//     queue 2              (the Queue's maxsize)
//     semaphore 1 0        (the Semaphore's initial value; 1: a BoundedSemaphore)
//     barrier 2            (the Barrier's parties)
//     task lock q_put:7 cancel:0 unlock      (one line per task: op or op:argument)
//     end
// Output: the transcript's lines, then "==" after each script.
#include <fmt/core.h>

#include <gilio/asyncio.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "replay_support.hpp"

namespace asyncio = gilio::asyncio;

namespace {

struct Op {
  std::string name;
  int arg = 0;
  std::string text;  // as written in the script
};

struct Script {
  std::size_t maxsize = 0;
  long semaphore = 1;
  bool bounded = false;
  std::size_t parties = 1;
  std::vector<std::vector<Op>> tasks;
};

struct World {
  explicit World(const Script& s)
      : cond(lock),
        bounded(s.bounded),
        plain_sem(s.semaphore),
        bounded_sem(s.semaphore),
        q(s.maxsize),
        bar(s.parties) {}
  asyncio::Lock lock;
  asyncio::Condition cond;
  bool bounded;  // which of the two is the script's semaphore
  asyncio::Semaphore plain_sem;
  asyncio::BoundedSemaphore bounded_sem;
  asyncio::Semaphore& sem() { return bounded ? bounded_sem : plain_sem; }
  void sem_release() { bounded ? bounded_sem.release() : plain_sem.release(); }
  asyncio::Event ev;
  asyncio::Queue<int> q;
  asyncio::Barrier bar;
  std::vector<asyncio::Task<void>> tasks;
  std::vector<std::string> out;
  std::optional<int> holder;  // the task that took the lock last

  std::string state() const {
    return fmt::format("q={} lock={} sem={} ev={} bar={}/{}", q.qsize(), int(lock.locked()),
                       int(bounded ? bounded_sem.locked() : plain_sem.locked()), int(ev.is_set()),
                       bar.n_waiting(), int(bar.broken()));
  }
};

asyncio::Coro<std::string> one(World& w, int i, const Op& op) {
  const std::string& n = op.name;
  if (n == "sleep") {
    co_await asyncio::sleep(0);
  } else if (n == "lock") {
    co_await w.lock.acquire();
    w.holder = i;
  } else if (n == "unlock") {
    w.lock.release();
    w.holder.reset();
  } else if (n == "sem_acq") {
    co_await w.sem().acquire();
  } else if (n == "sem_rel") {
    w.sem_release();
  } else if (n == "ev_wait") {
    co_await w.ev.wait();
  } else if (n == "ev_set") {
    w.ev.set();
  } else if (n == "ev_clear") {
    w.ev.clear();
  } else if (n == "q_put") {
    co_await w.q.put(op.arg);
  } else if (n == "q_get") {
    const int v = co_await w.q.get();
    co_return fmt::format("ok {}", v);
  } else if (n == "q_put_nowait") {
    w.q.put_nowait(op.arg);
  } else if (n == "q_get_nowait") {
    co_return fmt::format("ok {}", w.q.get_nowait());
  } else if (n == "q_done") {
    w.q.task_done();
  } else if (n == "q_join") {
    co_await w.q.join();
  } else if (n == "cond_wait") {
    co_await w.cond.wait();
    w.holder = i;
  } else if (n == "cond_notify") {
    w.cond.notify(static_cast<std::size_t>(op.arg));
  } else if (n == "cond_notify_all") {
    w.cond.notify_all();
  } else if (n == "bar_wait") {
    const std::size_t index = co_await w.bar.wait();
    co_return fmt::format("ok {}", index);
  } else if (n == "bar_reset") {
    co_await w.bar.reset();
  } else if (n == "bar_abort") {
    co_await w.bar.abort();
  } else if (n == "cancel") {
    co_return w.tasks[static_cast<std::size_t>(op.arg)].cancel() ? "True" : "False";
  } else if (n == "state") {
    co_return w.state();
  } else {
    throw std::logic_error("sync_replay: unknown op " + n);
  }
  co_return "ok";
}

asyncio::Coro<void> run_task(World& w, int i, const std::vector<Op>& ops) {
  for (const Op& op : ops) {
    std::string result;
    try {
      result = co_await one(w, i, op);
    } catch (const asyncio::CancelledError&) {
      w.out.push_back(fmt::format("t{} {} CancelledError", i, op.text));
      break;
    } catch (const asyncio::QueueFull&) {
      result = "QueueFull";
    } catch (const asyncio::QueueEmpty&) {
      result = "QueueEmpty";
    } catch (const asyncio::BrokenBarrierError&) {
      result = "BrokenBarrierError";
    } catch (const std::invalid_argument&) {  // asyncio's ValueError (task_done too often)
      result = "ValueError";
    } catch (const std::runtime_error&) {  // asyncio's RuntimeError (not acquired)
      result = "RuntimeError";
    }
    w.out.push_back(fmt::format("t{} {} {}", i, op.text, result));
  }
  w.out.push_back(fmt::format("t{} end", i));
  if (w.holder == i && w.lock.locked()) {
    w.holder.reset();
    w.lock.release();
  }
}

asyncio::Coro<std::string> replay(Script s) {
  World w(s);
  for (std::size_t i = 0; i < s.tasks.size(); ++i)
    w.tasks.push_back(asyncio::create_task(run_task(w, static_cast<int>(i), s.tasks[i])));
  for (int k = 0; k < 100; ++k)
    co_await asyncio::sleep(0);
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    if (!w.tasks[i].done()) {
      w.out.push_back(fmt::format("main cancels t{}", i));
      w.tasks[i].cancel();
    }
  }
  for (int k = 0; k < 100; ++k)
    co_await asyncio::sleep(0);
  w.out.push_back("main " + w.state());
  // A cancelled Condition::wait takes the lock back before it throws: free the lock until every
  // such waiter has done so and ended.
  for (int k = 0; k < 100; ++k) {
    bool all_done = true;
    for (const asyncio::Task<void>& t : w.tasks)
      all_done = all_done && t.done();
    if (all_done) break;
    if (w.lock.locked()) w.lock.release();
    co_await asyncio::sleep(0);
  }
  for (std::size_t i = 0; i < w.tasks.size(); ++i) {
    if (!w.tasks[i].done()) w.out.push_back(fmt::format("main: t{} still running", i));
  }
  co_return gilio::testing::transcript(w.out);
}

}  // namespace

int main() {
  Script s;
  return gilio::testing::replay_scripts(
      "sync_replay",
      [&](const std::string& head, std::istringstream& words) {
        if (head == "queue") {
          words >> s.maxsize;
        } else if (head == "semaphore") {
          words >> s.semaphore >> s.bounded;
        } else if (head == "barrier") {
          words >> s.parties;
        } else if (head == "task") {
          std::vector<Op> ops;
          for (std::string w; words >> w;) {
            const std::size_t colon = w.find(':');
            Op op{w.substr(0, colon), 0, w};
            if (colon != std::string::npos) op.arg = std::stoi(w.substr(colon + 1));
            ops.push_back(op);
          }
          s.tasks.push_back(ops);
        }
      },
      [&] { return asyncio::run(replay(std::exchange(s, Script{}))); });
}
