// runtime/unix_events.cpp — signals delivered to an event loop: EventLoop::add_signal_handler
// and remove_signal_handler; mirrors the signal half of Lib/asyncio/unix_events.py.
//
// A Unix signal interrupts whatever a thread was doing and runs a handler in the middle of it,
// where almost nothing is safe: no locks, no allocation, no touching the loop's queues. So the
// real handler does as little as CPython's does. CPython's C-level handler (Modules/signalmodule.c)
// marks the signal as tripped and writes its number to a "wakeup fd" (signal.set_wakeup_fd), a
// socket the selector loop watches; the loop reads the byte and schedules the Python handler as
// an ordinary callback. Here the real handler (on_signal) counts the delivery in a table of
// atomics, one slot per signal, and writes the owning loop's eventfd — the one that
// call_soon_threadsafe writes, on which the loop always has a read in the ring. The loop wakes
// from its io_uring wait, and each iteration, where it collects what other threads posted, it
// takes the counts of its own signals and queues each handler once per delivery (take_signals).
// write() is on POSIX's list of async-signal-safe functions; lock-free atomics are safe too.
//
// What the table allows: each signal belongs to at most one loop at a time, but two loops on two
// threads may handle different signals (CPython confines signal handling to the main thread
// instead). The handler may run on any thread of the process — the kernel picks one that does not
// block the signal — which is why it writes the loop's eventfd and never touches the loop itself.
//
// Edges, as asyncio has them: a handler is installed with SA_RESTART, so a blocking call on
// another thread is resumed, not failed with EINTR; removing a handler (or closing the loop)
// restores the default action, not whatever was there before; a number that is not a signal is
// std::invalid_argument (ValueError), one that cannot be caught (SIGKILL, SIGSTOP) is
// std::runtime_error (RuntimeError). Before the loop's eventfd can close, removal waits for any
// handler still running on another thread, so no handler writes a descriptor that has since been
// reused. A forked child starts with the default action for every signal a loop handled here —
// the parent's loop does not run there, and its eventfd is shared with the parent.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/futures.hpp"
#include "gilio/asyncio/runners.hpp"
#include "uring.hpp"

namespace gilio::asyncio {
namespace {

struct SignalSlot {
  std::atomic<int> wake_fd{-1};     // the owning loop's eventfd; -1: no loop handles the signal
  std::atomic<unsigned> raised{0};  // deliveries the loop has not taken yet
  EventLoop* owner = nullptr;       // under *g_mutex
};
SignalSlot g_slots[NSIG];
std::atomic<int> g_in_handler{0};  // handlers running now, on any thread
// Add and remove, from any loop's thread. A pointer: a forked child takes a fresh one, since a
// fork may catch another thread holding this one (the old one is left behind, locked).
std::mutex* g_mutex = new std::mutex;
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<unsigned>::is_always_lock_free,
              "a signal handler may only touch lock-free atomics");

extern "C" void on_signal(int sig) {
  const int saved_errno = errno;  // the interrupted code may be about to read it
  g_in_handler.fetch_add(1);
  SignalSlot& slot = g_slots[sig];
  slot.raised.fetch_add(1);
  if (const int fd = slot.wake_fd.load(); fd >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(fd, &one, sizeof one);  // EAGAIN: already awake
  }
  g_in_handler.fetch_sub(1);
  errno = saved_errno;
}

// The parent's loops do not run in a forked child, and their eventfds are the parent's: the
// child gets the default actions back, and a clean table. A slot that another thread was
// filling in at the fork has its descriptor set before its handler is installed, so it is
// cleared too.
void reset_in_child() {
  g_mutex = new std::mutex;
  g_in_handler.store(0);  // a handler that ran on another thread at the fork never ends here
  for (int sig = 1; sig < NSIG; ++sig) {
    SignalSlot& slot = g_slots[sig];
    if (slot.owner == nullptr && slot.wake_fd.load() < 0) continue;
    ::signal(sig, SIG_DFL);
    slot.owner = nullptr;
    slot.wake_fd.store(-1);
    slot.raised.store(0);
  }
}
void watch_forks() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(nullptr, nullptr, reset_in_child); });
}

void check_signal(int sig, const char* who) {
  sigset_t valid;  // glibc leaves out the two real-time signals it keeps for itself
  ::sigfillset(&valid);
  if (sig < 1 || sig >= NSIG || ::sigismember(&valid, sig) != 1) {
    throw std::invalid_argument(std::string(who) + ": invalid signal number " +
                                std::to_string(sig));
  }
}

std::string signal_name(int sig) {
  const char* what = ::strsignal(sig);
  return "signal " + std::to_string(sig) + (what != nullptr ? std::string(" (") + what + ")" : "");
}

// With *g_mutex held: the default action back, the slot cleared, and no handler still running
// that read the slot's descriptor before it was cleared.
void release_slot(int sig) noexcept {
  SignalSlot& slot = g_slots[sig];
  ::signal(sig, SIG_DFL);
  slot.wake_fd.store(-1);
  slot.raised.store(0);
  slot.owner = nullptr;
  while (g_in_handler.load() != 0)
    ::sched_yield();
}

}  // namespace

void EventLoop::add_signal_handler(int sig, std::function<void()> fn) {
  install_signal_handler(sig, std::move(fn), false);
}

void EventLoop::install_signal_handler(int sig, std::function<void()> fn, bool once) {
  check_open("add_signal_handler");
  check_signal(sig, "add_signal_handler");
  if (!fn) throw std::invalid_argument("add_signal_handler: the handler is empty");
  watch_forks();
  {
    std::lock_guard lk(*g_mutex);
    SignalSlot& slot = g_slots[sig];
    if (slot.owner != nullptr && slot.owner != this) {
      throw std::runtime_error("add_signal_handler: " + signal_name(sig) +
                               " is already handled by another event loop");
    }
    const bool fresh = slot.owner == nullptr;
    if (fresh) {
      slot.raised.store(0);
      slot.wake_fd.store(backend_->wake_fd());
    }
    // Installed again on a second add too, as asyncio does: it may have been replaced meanwhile.
    struct sigaction action;
    ::memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    // Blocking calls elsewhere resume (siginterrupt(sig, False)).
    action.sa_flags = SA_RESTART | (once ? SA_RESETHAND : 0);
    ::sigemptyset(&action.sa_mask);
    if (::sigaction(sig, &action, nullptr) != 0) {
      const int err = errno;
      if (fresh) slot.wake_fd.store(-1);
      if (err == EINVAL) {
        throw std::runtime_error("add_signal_handler: " + signal_name(sig) + " cannot be caught");
      }
      throw std::system_error(err, std::system_category(), "add_signal_handler: sigaction");
    }
    slot.owner = this;
  }
  for (auto& [s, handler] : signal_handlers_) {
    if (s == sig) {
      handler = std::move(fn);
      return;
    }
  }
  signal_handlers_.emplace_back(sig, std::move(fn));
}

bool EventLoop::remove_signal_handler(int sig) {
  check_signal(sig, "remove_signal_handler");
  for (auto it = signal_handlers_.begin(); it != signal_handlers_.end(); ++it) {
    if (it->first != sig) continue;
    {
      std::lock_guard lk(*g_mutex);
      release_slot(sig);
    }
    signal_handlers_.erase(it);
    return true;
  }
  return false;
}

void EventLoop::remove_signal_handlers() noexcept {
  if (signal_handlers_.empty()) return;
  {
    std::lock_guard lk(*g_mutex);
    for (const auto& entry : signal_handlers_)
      release_slot(entry.first);
  }
  signal_handlers_.clear();
}

void EventLoop::take_signals() {
  for (const auto& [sig, handler] : signal_handlers_) {
    std::atomic<unsigned>& raised = g_slots[sig].raised;
    if (raised.load(std::memory_order_relaxed) == 0) continue;
    for (unsigned n = raised.exchange(0); n > 0; --n)
      call_soon(handler);  // a copy: the handler may remove itself, or be replaced, meanwhile
  }
}

}  // namespace gilio::asyncio

// ---- asyncio::run's Ctrl-C (runners.hpp) ----

namespace gilio::asyncio::detail {

struct SigintGuard::State {
  explicit State(TaskCore& t) : main(t) { main.add_ref(); }
  ~State() { main.release(); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  TaskCore& main;
  int interrupts = 0;
};

SigintGuard::SigintGuard(EventLoop& loop, TaskCore& main) : loop_(loop) {
  if (::getpid() != static_cast<pid_t>(::syscall(SYS_gettid))) return;  // the main thread only
  struct sigaction now;
  if (::sigaction(SIGINT, nullptr, &now) != 0 || now.sa_handler != SIG_DFL) return;  // not ours
  {
    std::lock_guard lk(*g_mutex);
    if (g_slots[SIGINT].owner != nullptr) return;  // another loop handles it
  }
  auto state = std::make_shared<State>(main);
  loop_.install_signal_handler(
      SIGINT,
      [state] {
        ++state->interrupts;
        if (!state->main.done()) state->main.cancel();
      },
      true);
  state_ = std::move(state);
}

SigintGuard::~SigintGuard() {
  if (state_ && !loop_.is_closed()) loop_.remove_signal_handler(SIGINT);
}

bool SigintGuard::interrupted() const noexcept {
  return state_ && state_->interrupts > 0;
}

void die_of_sigint() noexcept {
  std::fflush(nullptr);  // what a normal exit would have written (std::cout shares stdio's)
  ::signal(SIGINT, SIG_DFL);
  sigset_t set;
  ::sigemptyset(&set);
  ::sigaddset(&set, SIGINT);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::raise(SIGINT);
  std::_Exit(128 + SIGINT);  // the shell's status for it, should the signal not end us
}

}  // namespace gilio::asyncio::detail
