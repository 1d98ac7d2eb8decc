// runtime/sockets.cpp — socket operations on io_uring: the loop's sock_recv, sock_sendall,
// sock_accept, sock_connect; mirrors the sock_* methods of Lib/asyncio/selector_events.py.
//
// A selector loop waits until a socket is *ready* and then calls recv() itself; an io_uring loop
// submits the recv and is told when it is *done*. Each operation here is an IoOp: an awaitable
// that lives in the awaiting coroutine's frame, queues one submission whose user_data points at
// itself, and resumes its task only from that submission's completion (DESIGN.md invariant 1).
// Cancelling the task submits an async-cancel and keeps waiting: the original completion still
// arrives — with -ECANCELED, and the task gets CancelledError; or with a result, if the operation
// won the race, and then the result is returned (no received byte is dropped) and the
// cancellation is delivered at the task's next co_await instead.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "gilio/asyncio.hpp"
#include "io_op.hpp"
#include "net.hpp"

namespace gilio::asyncio {

[[noreturn]] void raise_os_error(int err, const std::string& what) {
  const std::string& msg = what;  // std::system_error appends strerror(err) itself
  switch (err) {
    case ECONNREFUSED:
      throw ConnectionRefusedError(err, msg);
    case ECONNRESET:
      throw ConnectionResetError(err, msg);
    case ECONNABORTED:
      throw ConnectionAbortedError(err, msg);
    case EPIPE:
    case ESHUTDOWN:
      throw BrokenPipeError(err, msg);
    case ENOENT:
      throw FileNotFoundError(err, msg);
    case EEXIST:
      throw FileExistsError(err, msg);
    case EACCES:
    case EPERM:
      throw PermissionError(err, msg);
    case EISDIR:
      throw IsADirectoryError(err, msg);
    default:
      throw OSError(err, msg);
  }
}

namespace detail {

std::exception_ptr os_error_ptr(int err, const std::string& what) {
  try {
    raise_os_error(err, what);
  } catch (...) {
    return std::current_exception();
  }
}

std::string describe_address(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "(unix socket)";
}

std::string peer_of(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "(not connected)";
  return describe_address(reinterpret_cast<sockaddr*>(&ss));
}

std::vector<sockaddr_storage> resolve_blocking(const std::string& host, int port, int socktype) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = socktype;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc =
      ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    throw NameResolutionError(rc, "cannot resolve '" + host + "': " + ::gai_strerror(rc));
  }
  std::vector<sockaddr_storage> out;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    out.push_back(ss);
  }
  ::freeaddrinfo(found);
  return out;
}

Coro<std::vector<sockaddr_storage>> resolve(std::string host, int port, int socktype) {
  if (port < 0 || port > 65535) {
    throw std::invalid_argument("port must be 0-65535, got " + std::to_string(port));
  }
  // A numeric address needs no resolver; anything else goes to a thread (getaddrinfo blocks).
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<std::uint16_t>(port));
    co_return std::vector<sockaddr_storage>{ss};
  }
  if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<std::uint16_t>(port));
    co_return std::vector<sockaddr_storage>{ss};
  }
  co_return co_await to_thread(resolve_blocking, host, port, socktype);
}

socklen_t address_length(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

Coro<int> connect_to(int fd, const sockaddr_storage& ss) {
  const socklen_t len = address_length(ss);
  const int rc =
      co_await IoOp([fd, &ss, len](Backend& b, Completion* op) { b.connect(op, fd, &ss, len); });
  co_return -rc;
}

}  // namespace detail

Coro<std::size_t> EventLoop::sock_recv_into(int fd, char* buf, std::size_t nbytes) {
  if (nbytes == 0) co_return 0;
  const unsigned len = static_cast<unsigned>(std::min<std::size_t>(nbytes, 1u << 30));
  const int n = co_await detail::IoOp(
      [=](detail::Backend& b, detail::Completion* op) { b.recv(op, fd, buf, len); });
  if (n < 0) raise_os_error(-n, "recv from " + detail::peer_of(fd));
  co_return static_cast<std::size_t>(n);
}

Coro<std::string> EventLoop::sock_recv(int fd, std::size_t nbytes) {
  std::string data(nbytes, '\0');
  const std::size_t n = co_await sock_recv_into(fd, data.data(), nbytes);
  data.resize(n);
  co_return data;
}

Coro<void> EventLoop::sock_sendall(int fd, std::string data) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const char* p = data.data() + sent;
    const unsigned len = static_cast<unsigned>(std::min<std::size_t>(data.size() - sent, 1u << 30));
    const int n = co_await detail::IoOp(
        [=](detail::Backend& b, detail::Completion* op) { b.send(op, fd, p, len); });
    if (n < 0) raise_os_error(-n, "send to " + detail::peer_of(fd));
    sent += static_cast<std::size_t>(n);
  }
}

Coro<EventLoop::Accepted> EventLoop::sock_accept(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const int conn = co_await detail::IoOp(
      [fd, &ss, &len](detail::Backend& b, detail::Completion* op) { b.accept(op, fd, &ss, &len); });
  if (conn < 0) raise_os_error(-conn, "accept");
  co_return Accepted{conn, detail::describe_address(reinterpret_cast<sockaddr*>(&ss))};
}

Coro<void> EventLoop::sock_connect(int fd, std::string host, int port) {
  const auto addresses = co_await detail::resolve(host, port, SOCK_STREAM);
  int last_error = EADDRNOTAVAIL;
  for (const sockaddr_storage& ss : addresses) {
    last_error = co_await detail::connect_to(fd, ss);
    if (last_error == 0) co_return;
    // EAFNOSUPPORT: an IPv6 address for an IPv4 socket — try the next address.
  }
  raise_os_error(last_error, "connect to " + host + ":" + std::to_string(port));
}

}  // namespace gilio::asyncio
