// gilio/asyncio/sockets.hpp — what the loop's sock_recv_into, sock_recv and sock_sendall return;
// the methods mirror the sock_* methods of Lib/asyncio/selector_events.py (runtime/sockets.cpp).
//
// A server's loop awaits one of these per message, so they are not coroutines: each is a small
// awaitable that lives in the awaiting frame, as StreamReader::read() and Lock::acquire() are,
// with room inside it for the io_uring operation (runtime/io_op.hpp) that sockets.cpp builds
// there when the task suspends. So a receive or a send costs no allocation and no coroutine
// frame of its own. sock_sendall continues a partial send from the send's completion, without
// waking the task, and wakes it once, when every byte has gone. Like a coroutine object, each
// does nothing until awaited, may be awaited once (InvalidStateError otherwise), and converts to
// a Coro — or goes to create_task, gather, wait_for — where one is wanted. sock_accept and
// sock_connect, awaited once per connection, stay coroutines.
#pragma once

#include <coroutine>
#include <cstddef>
#include <string>
#include <utility>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/events.hpp"
#include "gilio/asyncio/futures.hpp"
#include "gilio/asyncio/tasks.hpp"

namespace gilio::asyncio {

namespace detail {
struct SendallStep;

// Room for the operation runtime/sockets.cpp builds in place when the awaitable suspends (an
// IoOp, which is internal; sockets.cpp checks that it fits). Built once, never moved, trivially
// destroyed. An awaitable may be moved only before it is awaited (as as_coro does).
class SocketOpBase {
 protected:
  explicit SocketOpBase(int fd) noexcept : fd_(fd) {}
  SocketOpBase(SocketOpBase&& o) noexcept : fd_(o.fd_), awaited_(o.awaited_) {}

  alignas(void*) unsigned char op_[80];
  int fd_;
  bool awaited_ = false;
  bool started_ = false;  // op_ holds a live operation
};
}  // namespace detail

class [[nodiscard]] EventLoop::SockRecvInto : detail::SocketOpBase {
 public:
  SockRecvInto(int fd, char* buf, std::size_t nbytes) noexcept
      : SocketOpBase(fd), buf_(buf), nbytes_(nbytes) {}
  SockRecvInto(SockRecvInto&&) noexcept = default;
  bool await_ready();
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    begin(detail::task_of(h), h);
  }
  std::size_t await_resume();
  operator Coro<std::size_t>() && { return detail::as_coro(std::move(*this)); }

 private:
  friend class SockRecv;
  void begin(detail::TaskCore& task, std::coroutine_handle<> h);
  char* buf_;
  std::size_t nbytes_;
};

class [[nodiscard]] EventLoop::SockRecv {
 public:
  SockRecv(int fd, std::size_t nbytes) noexcept : recv_(fd, nullptr, nbytes) {}
  SockRecv(SockRecv&&) noexcept = default;
  bool await_ready();
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    recv_.await_suspend(h);
  }
  std::string await_resume();
  operator Coro<std::string>() && { return detail::as_coro(std::move(*this)); }

 private:
  std::string data_;  // sized, and lent to recv_, when awaited
  SockRecvInto recv_;
};

class [[nodiscard]] EventLoop::SockSendall : detail::SocketOpBase {
 public:
  SockSendall(int fd, std::string data) noexcept : SocketOpBase(fd), data_(std::move(data)) {}
  SockSendall(SockSendall&&) noexcept = default;
  bool await_ready();
  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    begin(detail::task_of(h), h);
  }
  void await_resume();
  operator Coro<void>() && { return detail::as_coro(std::move(*this)); }

 private:
  friend struct detail::SendallStep;
  void begin(detail::TaskCore& task, std::coroutine_handle<> h);
  std::string data_;
  std::size_t sent_ = 0;
};

inline EventLoop::SockRecvInto EventLoop::sock_recv_into(int fd, char* buf, std::size_t nbytes) {
  return SockRecvInto(fd, buf, nbytes);
}
inline EventLoop::SockRecv EventLoop::sock_recv(int fd, std::size_t nbytes) {
  return SockRecv(fd, nbytes);
}
inline EventLoop::SockSendall EventLoop::sock_sendall(int fd, std::string data) {
  return SockSendall(fd, std::move(data));
}

}  // namespace gilio::asyncio
