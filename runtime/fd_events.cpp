// runtime/fd_events.cpp — readiness callbacks on a completion loop: EventLoop::add_reader,
// add_writer, remove_reader, remove_writer; mirrors the _add_reader half of
// Lib/asyncio/selector_events.py.
//
// asyncio's selector loop is built on readiness: each iteration asks epoll which descriptors can
// be read or written, and add_reader(fd, callback) simply puts one more descriptor in that set.
// gilio's loop is built on completions (chapter 5), yet readiness is still what a program needs
// when the I/O belongs to someone else — a database driver or a C library that owns its socket
// and only wants to be told "now you can read". io_uring has readiness as an operation too: a
// poll request, which completes with the events that hold. So each registration (FdWatch) keeps
// one one-shot poll in the ring. Its completion puts the watch in the ready queue, and the watch
// then runs its callback and arms the poll again. A descriptor still readable after the callback
// completes the new poll at once, so the callback runs again on the next iteration: asyncio's
// level-triggered behaviour, which code that reads only part of what is there relies on. (A
// multishot poll would post a completion only when new data arrives — edge-triggered — and such
// code would hang.) POLLERR and POLLHUP complete the poll as well, and the callback is how the
// owner of the descriptor learns about them, as with a selector. A descriptor closed while
// registered cannot be polled again (EBADF): its registration is dropped and reported on stderr,
// where epoll would forget it silently.
//
// Lifetime (DESIGN.md invariant 1): a watch is freed only when nothing refers to it — no poll in
// the ring and no place in the ready queue. remove_reader() marks it removed and cancels its
// poll; the poll's last completion or the queue's run (or discard, at close) frees it. A
// callback may remove its own watch, or add another.
#include <fcntl.h>
#include <poll.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "gilio/asyncio.hpp"
#include "net.hpp"
#include "uring.hpp"

namespace gilio::asyncio {
namespace detail {

class FdWatch final : public Completion, public Runnable {
 public:
  FdWatch(EventLoop* loop, int fd, bool writing, std::function<void()> fn)
      : loop_(loop), fd_(fd), writing_(writing), fn_(std::move(fn)) {}

  void set_callback(std::function<void()> fn) {
    if (running_) {
      next_fn_ = std::move(fn);  // the running one is replaced once it returns
    } else {
      fn_ = std::move(fn);
    }
  }
  void arm() {
    loop_->backend().poll(this, fd_, writing_ ? POLLOUT : POLLIN);
    armed_ = true;
  }
  // No longer registered: stops the poll; freed once the ring and the ready queue let go.
  void remove() noexcept {
    removed_ = true;
    if (armed_) loop_->backend().cancel(this);
    free_if_unused();  // not while its callback runs: run() frees it after
  }

  // The poll ended: ready (the events), or an error, or cancelled by remove().
  void complete(int result, std::uint32_t) override {
    armed_ = false;
    if (removed_) {
      free_if_unused();
      return;
    }
    if (result < 0 && result != -ECANCELED) {
      // The poll itself failed: the descriptor was closed while registered (EBADF), or is one
      // that cannot be polled. epoll forgets a closed descriptor silently; here the registration
      // is dropped and the reason reported, since the callback can never run again.
      EventLoop* loop = loop_;  // remove_* frees this
      ExceptionContext report("cannot poll fd " + std::to_string(fd_) + " for its " +
                                  (writing_ ? "writer" : "reader") + " callback; removed it",
                              os_error_ptr(-result, "poll fd " + std::to_string(fd_)));
      report.handle = describe();
      writing_ ? loop->remove_writer(fd_) : loop->remove_reader(fd_);
      loop->call_exception_handler_soon(report);
      return;
    }
    queued_ = true;
    loop_->ready(this);  // the callback runs this iteration, with what else is ready
  }

  void run() override {
    queued_ = false;
    if (removed_) {
      free_if_unused();
      return;
    }
    running_ = true;
    try {
      fn_();
    } catch (...) {
      loop_->report_callback_exception(describe());
    }
    running_ = false;
    if (next_fn_) fn_ = std::exchange(next_fn_, nullptr);
    if (removed_) {  // the callback removed it
      free_if_unused();
    } else {
      arm();  // at once complete if the descriptor is still ready: level-triggered
    }
  }
  void discard() override {  // the loop is closing and the queue will not run it
    queued_ = false;
    free_if_unused();
  }
  std::string describe() const override {
    return std::string(writing_ ? "writer" : "reader") + " callback for fd " + std::to_string(fd_);
  }

 private:
  void free_if_unused() noexcept {
    if (removed_ && !armed_ && !queued_ && !running_) delete this;
  }
  EventLoop* loop_;
  int fd_;
  bool writing_;
  std::function<void()> fn_;
  bool armed_ = false;
  bool queued_ = false;
  std::function<void()> next_fn_;  // set_callback while fn_ runs
  bool removed_ = false;
  bool running_ = false;  // fn_ is running: neither it nor the watch may be destroyed
};

}  // namespace detail

namespace {
std::uint64_t watch_key(int fd, bool writing) {
  return static_cast<std::uint64_t>(fd) << 1 | (writing ? 1 : 0);
}
}  // namespace

void EventLoop::add_watch(int fd, bool writing, std::function<void()> fn) {
  const char* who = writing ? "add_writer" : "add_reader";
  check_open(who);
  if (fd < 0) {
    throw std::invalid_argument(std::string(who) + ": invalid file descriptor " +
                                std::to_string(fd));
  }
  if (!fn) throw std::invalid_argument(std::string(who) + ": the callback is empty");
  if (::fcntl(fd, F_GETFD) == -1) {
    raise_os_error(errno, std::string(who) + ": fd " + std::to_string(fd));
  }
  auto [it, fresh] = watches_.try_emplace(watch_key(fd, writing), nullptr);
  if (!fresh) {
    it->second->set_callback(std::move(fn));
    return;
  }
  try {
    it->second = new detail::FdWatch(this, fd, writing, std::move(fn));
  } catch (...) {
    watches_.erase(it);
    throw;
  }
  it->second->arm();
}

bool EventLoop::remove_watch(int fd, bool writing) {
  const auto it = watches_.find(watch_key(fd, writing));
  if (it == watches_.end()) return false;
  detail::FdWatch* watch = it->second;
  watches_.erase(it);
  watch->remove();
  return true;
}

void EventLoop::remove_watches() noexcept {
  for (auto& [key, watch] : watches_)
    watch->remove();
  watches_.clear();
}

void EventLoop::add_reader(int fd, std::function<void()> fn) {
  add_watch(fd, false, std::move(fn));
}
void EventLoop::add_writer(int fd, std::function<void()> fn) {
  add_watch(fd, true, std::move(fn));
}
bool EventLoop::remove_reader(int fd) {
  return remove_watch(fd, false);
}
bool EventLoop::remove_writer(int fd) {
  return remove_watch(fd, true);
}

}  // namespace gilio::asyncio
