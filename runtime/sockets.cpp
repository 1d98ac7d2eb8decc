// runtime/sockets.cpp — socket operations on io_uring: the loop's sock_recv, sock_sendall,
// sock_accept, sock_connect, sock_recvfrom(_into), sock_sendto, sock_sendfile; mirrors the sock_*
// methods of Lib/asyncio/selector_events.py (and base_events.py's sock_sendfile).
//
// A selector loop waits until a socket is *ready* and then calls recv() itself; an io_uring loop
// submits the recv and is told when it is *done*; sock_recvfrom and sock_sendto do the same for
// datagrams, with recvmsg and sendmsg, whose address the kernel reads or writes in the awaiting
// frame. Each operation here is an IoOp: it queues one submission whose user_data points at
// itself, and resumes its task only from that submission's completion (DESIGN.md invariant 1).
// sock_recv_into, sock_recv and sock_sendall, awaited once per message, build theirs inside the
// awaitable they return (gilio/asyncio/sockets.hpp), which lives in the awaiting frame;
// sock_accept, sock_connect and the datagram pair are coroutines that await one. sock_sendfile
// awaits a chain of them: a splice from the file into a pipe, then splices from the pipe into the
// socket until it is empty (a poll for room between them when a non-blocking socket is full), so
// the file's pages go to the socket without a copy in user space, as os.sendfile's do.
// Cancelling the task submits an async-cancel and keeps waiting: the original completion still
// arrives — with -ECANCELED, and the task gets CancelledError; or with a result, if the operation
// won the race, and then the result is returned (no received byte is dropped) and the
// cancellation is delivered at the task's next co_await instead.
//
// Name resolution is the one part that is not on the ring: the loop's getaddrinfo and
// getnameinfo (base_events.py's) and the look-ups behind sock_connect run ::getaddrinfo on an
// executor thread, as asyncio does, since the C library's resolver blocks.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

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
    case ESRCH:
      throw ProcessLookupError(err, msg);
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

std::pair<std::string, int> host_and_port(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    return {host, ntohs(in6->sin6_port)};
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
  ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
  return {host, ntohs(in->sin_port)};
}

std::string describe_address(const sockaddr* sa, socklen_t len) {
  if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6) {
    const auto [host, port] = host_and_port(sa);
    return (sa->sa_family == AF_INET6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
  if (sa->sa_family == AF_UNIX) {
    const std::string path = unix_path_of(sa, len);
    if (path.empty()) return "(unnamed unix socket)";
    if (path[0] != '\0') return path;
    return "@" + std::string(path.c_str() + 1);  // an abstract name, shown as ss(8) shows it
  }
  return "(address family " + std::to_string(sa->sa_family) + ")";
}

std::string where_of(const sockaddr_storage& ss) {
  return describe_address(reinterpret_cast<const sockaddr*>(&ss), address_length(ss));
}

std::pair<std::string, int> sender_of(const sockaddr_storage& from, socklen_t len) {
  const auto* sa = reinterpret_cast<const sockaddr*>(&from);
  if (from.ss_family == AF_UNIX || len < sizeof(sa_family_t)) return {unix_path_of(sa, len), 0};
  return host_and_port(sa);
}

std::string peer_of(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "(not connected)";
  return describe_address(reinterpret_cast<sockaddr*>(&ss), len);
}

int socket_option(int fd, int name) {
  int value = 0;
  socklen_t len = sizeof value;
  return ::getsockopt(fd, SOL_SOCKET, name, &value, &len) == 0 ? value : -1;
}

std::string name_of(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "(closed)";
  return describe_address(reinterpret_cast<sockaddr*>(&ss), len);
}

std::vector<sockaddr_storage> resolve_blocking(const std::string& host, int port, int socktype,
                                               int family, int flags) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_flags = flags;
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

std::optional<sockaddr_storage> numeric_address_of(const std::string& host, int port, int family) {
  sockaddr_storage ss{};
  auto* in = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (family != AF_INET6 && ::inet_pton(AF_INET, host.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<std::uint16_t>(port));
    return ss;
  }
  if (family != AF_INET && ::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<std::uint16_t>(port));
    return ss;
  }
  return std::nullopt;
}

Coro<std::vector<sockaddr_storage>> resolve(std::string host, int port, int socktype, int family,
                                            int flags) {
  if (port < 0 || port > 65535) {
    throw std::invalid_argument("port must be 0-65535, got " + std::to_string(port));
  }
  // A numeric address needs no resolver; anything else goes to a thread (getaddrinfo blocks).
  // (An address of another family than the one asked for goes to getaddrinfo, which refuses it.)
  if (const std::optional<sockaddr_storage> ss = numeric_address_of(host, port, family))
    co_return std::vector<sockaddr_storage>{*ss};
  co_return co_await to_thread(resolve_blocking, host, port, socktype, family, flags);
}

socklen_t address_length(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_UNIX) {  // the path, with its NUL; an abstract name, without one
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    const bool abstract = un->sun_path[0] == '\0';
    const std::size_t n = abstract ? 1 + ::strnlen(un->sun_path + 1, sizeof un->sun_path - 1)
                                   : ::strnlen(un->sun_path, sizeof un->sun_path) + 1;
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  }
  return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}

sockaddr_storage unix_address(const std::string& path, const char* who) {
  sockaddr_storage ss{};
  auto* un = reinterpret_cast<sockaddr_un*>(&ss);
  un->sun_family = AF_UNIX;
  if (path.empty() || path == std::string(1, '\0')) {
    throw std::invalid_argument(std::string(who) + ": the socket path is empty");
  }
  const bool abstract = path[0] == '\0';
  // A path needs room for its NUL; an abstract name ends at its first NUL after the leading one.
  if (path.size() + (abstract ? 0 : 1) > sizeof un->sun_path) {
    raise_os_error(ENAMETOOLONG, std::string(who) + ": AF_UNIX path too long (" +
                                     std::to_string(path.size()) + " bytes, at most " +
                                     std::to_string(sizeof un->sun_path - 1) + ")");
  }
  if (path.find('\0', abstract ? 1 : 0) != std::string::npos) {
    throw std::invalid_argument(std::string(who) + ": the socket path holds a NUL byte");
  }
  std::memcpy(un->sun_path, path.data(), path.size());
  return ss;
}

void remove_stale_socket_file(const std::string& path) {
  struct stat st;
  if (!path.empty() && path[0] != '\0' && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
    ::unlink(path.c_str());
}

std::string unix_path_of(const sockaddr* sa, socklen_t len) {
  // The name is as long as the kernel said: an abstract one has no NUL to end it.
  const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
  const std::size_t start = offsetof(sockaddr_un, sun_path);
  if (len <= start) return "";
  const std::size_t room = std::min<std::size_t>(sizeof un->sun_path, len - start);
  if (un->sun_path[0] != '\0') return std::string(un->sun_path, ::strnlen(un->sun_path, room));
  return std::string(un->sun_path, room);  // abstract: the kernel's length is the name's
}

sockaddr_storage unix_peer(const std::string& path, int port, const char* who) {
  if (port != 0)
    throw std::invalid_argument(std::string(who) +
                                ": a Unix socket's peer is a path, and its port 0");
  return unix_address(path, who);
}

Coro<int> connect_to(int fd, const sockaddr_storage& ss) {
  const socklen_t len = address_length(ss);
  const int rc =
      co_await IoOp([fd, &ss, len](Backend& b, Completion* op) { b.connect(op, fd, &ss, len); });
  co_return -rc;
}

}  // namespace detail

namespace detail {

namespace {

// The operation an awaitable builds in its op_ space when it suspends, and finds there again.
template <class Op, std::size_t N, class... Args>
Op& build_in(unsigned char (&space)[N], Args&&... args) {
  static_assert(sizeof(Op) <= N && alignof(Op) <= alignof(void*), "SocketOpBase::op_ too small");
  static_assert(std::is_trivially_destructible_v<Op>, "op_ is never destroyed");
  return *::new (static_cast<void*>(space)) Op(std::forward<Args>(args)...);
}
template <class Op, std::size_t N>
Op& built_in(unsigned char (&space)[N]) {
  return *std::launder(reinterpret_cast<Op*>(space));
}

struct RecvPrep {
  int fd;
  char* buf;
  unsigned len;
  void operator()(Backend& b, Completion* op) const { b.recv(op, fd, buf, len); }
};
using RecvOp = IoOp<RecvPrep>;

}  // namespace

// sock_sendall's operation is both IoOp's callables: it queues the send of what is left, and
// counts what each completion sent, asking for the rest to be queued (false) until none is.
struct SendallStep {
  EventLoop::SockSendall* self;
  void operator()(Backend& b, Completion* op) const {
    b.send(op, self->fd_, self->data_.data() + self->sent_,
           clamp_io_len(self->data_.size() - self->sent_));
  }
  bool operator()(int result, std::uint32_t) const noexcept {
    if (result <= 0) return true;  // an error (or nothing sent): over, await_resume says why
    self->sent_ += static_cast<std::size_t>(result);
    return self->sent_ == self->data_.size();
  }
};
using SendallOp = IoOp<SendallStep, SendallStep>;

}  // namespace detail

bool EventLoop::SockRecvInto::await_ready() {
  detail::first_await(awaited_, "sock_recv_into");
  return nbytes_ == 0;
}

void EventLoop::SockRecvInto::begin(detail::TaskCore& task, std::coroutine_handle<> h) {
  auto& op = detail::build_in<detail::RecvOp>(
      op_, detail::RecvPrep{fd_, buf_, detail::clamp_io_len(nbytes_)});
  started_ = true;
  op.start(task, h);
}

std::size_t EventLoop::SockRecvInto::await_resume() {
  if (!started_) return 0;
  const int n = detail::built_in<detail::RecvOp>(op_).await_resume();
  if (n < 0) raise_os_error(-n, "recv from " + detail::peer_of(fd_));
  return static_cast<std::size_t>(n);
}

bool EventLoop::SockRecv::await_ready() {
  if (recv_.nbytes_ > static_cast<std::size_t>(PTRDIFF_MAX)) [[unlikely]] {
    throw std::invalid_argument("sock_recv: negative buffer size (" +
                                std::to_string(static_cast<std::ptrdiff_t>(recv_.nbytes_)) + ")");
  }
  if (recv_.await_ready()) return true;
  // Here, where the awaitable stays put until it resumes; no bigger than one recv can fill.
  data_.resize(detail::clamp_io_len(recv_.nbytes_));
  recv_.buf_ = data_.data();
  return false;
}

std::string EventLoop::SockRecv::await_resume() {
  data_.resize(recv_.await_resume());
  return std::move(data_);
}

bool EventLoop::SockSendall::await_ready() {
  detail::first_await(awaited_, "sock_sendall");
  return data_.empty();
}

void EventLoop::SockSendall::begin(detail::TaskCore& task, std::coroutine_handle<> h) {
  auto& op = detail::build_in<detail::SendallOp>(op_, detail::SendallStep{this},
                                                 detail::SendallStep{this});
  started_ = true;
  op.start(task, h);
}

void EventLoop::SockSendall::await_resume() {
  if (!started_) return;
  const int n = detail::built_in<detail::SendallOp>(op_).await_resume();
  if (n < 0) raise_os_error(-n, "send to " + detail::peer_of(fd_));
  if (sent_ < data_.size()) {
    throw std::runtime_error(
        "sock_sendall to " + detail::peer_of(fd_) + ": stopped after " + std::to_string(sent_) +
        " of " + std::to_string(data_.size()) +
        " bytes (the kernel sent nothing more, or the rest could not be queued)");
  }
}

Coro<EventLoop::Accepted> EventLoop::sock_accept(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const int conn = co_await detail::IoOp(
      [fd, &ss, &len](detail::Backend& b, detail::Completion* op) { b.accept(op, fd, &ss, &len); });
  if (conn < 0) raise_os_error(-conn, "accept");
  co_return Accepted{conn, detail::describe_address(reinterpret_cast<sockaddr*>(&ss), len)};
}

Coro<EventLoop::DatagramInto> EventLoop::sock_recvfrom_into(int fd, char* buf, std::size_t nbytes) {
  // The sender's address lives in this frame, which outlives the completion; the bytes go where
  // the caller said.
  DatagramInto d;
  sockaddr_storage from{};
  iovec iov{buf, detail::clamp_io_len(nbytes)};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  const int n = co_await detail::IoOp(
      [fd, &msg](detail::Backend& b, detail::Completion* op) { b.recvmsg(op, fd, &msg); });
  if (n < 0) raise_os_error(-n, "recvfrom on fd " + std::to_string(fd));
  d.nbytes = static_cast<std::size_t>(n);
  std::tie(d.host, d.port) = detail::sender_of(from, msg.msg_namelen);
  co_return d;
}

Coro<EventLoop::Datagram> EventLoop::sock_recvfrom(int fd, std::size_t nbytes) {
  // The bytes live in this frame, which outlives the completion.
  Datagram d;
  d.data.resize(detail::clamp_io_len(nbytes));
  DatagramInto got = co_await sock_recvfrom_into(fd, d.data.data(), d.data.size());
  d.data.resize(got.nbytes);
  d.host = std::move(got.host);
  d.port = got.port;
  co_return d;
}

namespace {
// One sendmsg of `data` to `to`; `where` names it in an error.
Coro<std::size_t> send_datagram(int fd, std::string data, sockaddr_storage to, std::string where) {
  iovec iov{data.data(), data.size()};
  msghdr msg{};
  msg.msg_name = &to;
  msg.msg_namelen = detail::address_length(to);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  const int n = co_await detail::IoOp(
      [fd, &msg](detail::Backend& b, detail::Completion* op) { b.sendmsg(op, fd, &msg); });
  if (n < 0) raise_os_error(-n, "sendto " + where);
  co_return static_cast<std::size_t>(n);
}
}  // namespace

Coro<std::size_t> EventLoop::sock_sendto(int fd, std::string data, std::string host, int port) {
  // As Python's sendto: the first address of the socket's own family.
  const int family = detail::socket_option(fd, SO_DOMAIN);
  if (family < 0) {
    raise_os_error(errno,
                   "sendto " + host + ":" + std::to_string(port) + " on fd " + std::to_string(fd));
  }
  if (family == AF_UNIX) {  // the peer is a path, as sock_recvfrom gives it
    const sockaddr_storage path = detail::unix_peer(host, port, "sock_sendto");
    co_return co_await send_datagram(fd, std::move(data), path, std::move(host));
  }
  const auto addresses = co_await detail::resolve(host, port, SOCK_DGRAM);
  const auto to =
      std::find_if(addresses.begin(), addresses.end(),
                   [family](const sockaddr_storage& ss) { return ss.ss_family == family; });
  if (to == addresses.end()) {
    raise_os_error(EAFNOSUPPORT, "sendto " + host + ":" + std::to_string(port) + ": no " +
                                     (family == AF_INET6 ? "IPv6" : "IPv4") +
                                     " address for the socket's family");
  }
  std::string where = host + ":" + std::to_string(port);  // g++ 12: no temporary in co_await
  co_return co_await send_datagram(fd, std::move(data), *to, std::move(where));
}

namespace {
// sock_sendfile's pipe, and the file position it leaves behind (asyncio's `finally: file.seek`)
// in a file that has one.
struct SendfileScope {
  int pipe[2] = {-1, -1};
  int file;
  std::uint64_t position;  // offset + the bytes the socket took
  bool seekable = true;    // false: a pipe, a socket, a terminal — no position to leave
  ~SendfileScope() {
    if (seekable) ::lseek(file, static_cast<off_t>(position), SEEK_SET);
    for (const int fd : pipe)
      if (fd >= 0) ::close(fd);
  }
};
}  // namespace

namespace detail {
void check_sendfile(int sock, int file_fd, std::uint64_t offset, std::optional<std::size_t> count,
                    const std::string& who) {
  // The checks asyncio's _check_sendfile_params and _sock_sendfile_native make.
  const int type = socket_option(sock, SO_TYPE);
  if (type < 0) raise_os_error(errno, who + ": socket " + std::to_string(sock));
  if (type != SOCK_STREAM)
    throw std::invalid_argument(who + ": only SOCK_STREAM type sockets are supported");
  check_sendfile_source(file_fd, offset, count, who);
}

bool sendfile_source_seekable(int file_fd, std::uint64_t offset, const std::string& who) {
  if (::lseek(file_fd, 0, SEEK_CUR) >= 0) return true;
  if (offset != 0) {
    raise_os_error(ESPIPE, who + ": offset " + std::to_string(offset) + " in descriptor " +
                               std::to_string(file_fd) + ", which has no position");
  }
  return false;
}

void check_sendfile_source(int file_fd, std::uint64_t offset, std::optional<std::size_t> count,
                           const std::string& who) {
  struct stat st {};
  if (::fstat(file_fd, &st) != 0) raise_os_error(errno, who + ": file " + std::to_string(file_fd));
  if (S_ISDIR(st.st_mode))
    raise_os_error(EISDIR, who + ": descriptor " + std::to_string(file_fd) + " is a directory");
  if (count && *count == 0)
    throw std::invalid_argument(who + ": count must be a positive integer (got 0)");
  if (offset > static_cast<std::uint64_t>(INT64_MAX))
    throw std::invalid_argument(who + ": offset out of range");
}
}  // namespace detail

Coro<std::size_t> EventLoop::sock_sendfile(int sock, int file_fd, std::uint64_t offset,
                                           std::optional<std::size_t> count) {
  detail::check_sendfile(sock, file_fd, offset, count, "sock_sendfile");

  SendfileScope scope{.file = file_fd, .position = offset};
  scope.seekable = detail::sendfile_source_seekable(file_fd, offset, "sock_sendfile");
  if (::pipe2(scope.pipe, O_CLOEXEC) != 0) raise_os_error(errno, "sock_sendfile: pipe");
  ::fcntl(scope.pipe[1], F_SETPIPE_SZ, 1 << 20);  // fewer, larger steps; 64 KiB if refused
  const int capacity = ::fcntl(scope.pipe[1], F_GETPIPE_SZ);
  const std::size_t step = capacity > 0 ? static_cast<std::size_t>(capacity) : 65536;
  const std::string to = "sock_sendfile to " + detail::peer_of(sock);
  std::size_t sent = 0;
  while (!count || sent < *count) {
    const auto want = static_cast<unsigned>(count ? std::min(step, *count - sent) : step);
    const std::int64_t at = scope.seekable ? static_cast<std::int64_t>(offset + sent) : -1;
    const int n = co_await detail::IoOp([&](detail::Backend& b, detail::Completion* op) {
      b.splice(op, file_fd, at, scope.pipe[1], want);
    });
    if (n == -EAGAIN) {  // a non-blocking pipe or socket with nothing in it yet: wait for bytes
      co_await detail::IoOp(
          [file_fd](detail::Backend& b, detail::Completion* op) { b.poll(op, file_fd, POLLIN); });
      continue;
    }
    if (n < 0) raise_os_error(-n, to + ": reading the file");
    if (n == 0) break;  // the end of the file
    for (int left = n; left > 0;) {
      const int m = co_await detail::IoOp([&](detail::Backend& b, detail::Completion* op) {
        b.splice(op, scope.pipe[0], -1, sock, static_cast<unsigned>(left));
      });
      if (m == -EAGAIN) {  // a non-blocking socket with a full buffer: wait until it has room
        co_await detail::IoOp(
            [sock](detail::Backend& b, detail::Completion* op) { b.poll(op, sock, POLLOUT); });
        continue;
      }
      if (m <= 0) raise_os_error(m < 0 ? -m : EPIPE, to);
      left -= m;
      sent += static_cast<std::size_t>(m);
      scope.position = offset + sent;
    }
  }
  co_return sent;
}

Coro<void> EventLoop::sock_connect(int fd, std::string host, int port) {
  // As asyncio: the name is resolved for the socket's own family and type, so an IPv4 socket is
  // never tried on an IPv6 address; on a Unix socket, host is the path and port 0 (as sock_sendto).
  const int family = detail::socket_option(fd, SO_DOMAIN);
  const std::string target = (host.empty() ? "loopback" : host) + ":" + std::to_string(port);
  if (family < 0) raise_os_error(errno, "connect to " + target + " on fd " + std::to_string(fd));
  if (family == AF_UNIX) {
    const sockaddr_storage path = detail::unix_peer(host, port, "sock_connect");
    const int err = co_await detail::connect_to(fd, path);
    if (err != 0) raise_os_error(err, "connect to " + detail::where_of(path));
    co_return;
  }
  const auto addresses =
      co_await detail::resolve(host, port, detail::socket_option(fd, SO_TYPE), family);
  // Each address in turn (asyncio tries the first alone): a socket whose connect failed may
  // connect again. All failing, the error is the first's, naming every address tried.
  int first_error = 0;
  std::string tried;
  for (const sockaddr_storage& ss : addresses) {
    const int err = co_await detail::connect_to(fd, ss);
    if (err == 0) co_return;
    if (first_error == 0) first_error = err;
    tried += (tried.empty() ? "" : ", ") + detail::where_of(ss);
  }
  raise_os_error(first_error,
                 "connect to " + target + (addresses.size() > 1 ? " at each of " + tried : ""));
}

namespace {

// socket.getaddrinfo's work, on an executor thread.
std::vector<EventLoop::AddrInfo> addrinfo_blocking(const std::string& host, const std::string& port,
                                                   int family, int type, int proto, int flags) {
  if (host.empty() && port.empty()) {
    throw NameResolutionError(EAI_NONAME, "getaddrinfo: host and port cannot both be empty");
  }
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = type;
  hints.ai_protocol = proto;
  hints.ai_flags = flags;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                               port.empty() ? nullptr : port.c_str(), &hints, &found);
  if (rc != 0) {
    throw NameResolutionError(
        rc, "getaddrinfo('" + host + "', '" + port +
                "'): " + (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
  }
  std::vector<EventLoop::AddrInfo> out;
  try {
    for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
      EventLoop::AddrInfo info;
      info.family = a->ai_family;
      info.type = a->ai_socktype;
      info.protocol = a->ai_protocol;
      if (a->ai_canonname != nullptr) info.canonname = a->ai_canonname;
      std::memcpy(&info.address, a->ai_addr, a->ai_addrlen);
      info.address_len = a->ai_addrlen;
      if (a->ai_family == AF_INET || a->ai_family == AF_INET6) {
        std::tie(info.host, info.port) = detail::host_and_port(a->ai_addr);
      }
      out.push_back(std::move(info));
    }
  } catch (...) {
    ::freeaddrinfo(found);
    throw;
  }
  ::freeaddrinfo(found);
  return out;
}

// socket.getnameinfo's work: the numeric host made an address (never looked up), then named.
std::pair<std::string, std::string> nameinfo_blocking(const std::string& host, int port,
                                                      int flags) {
  if (port < 0 || port > 65535) {
    throw std::invalid_argument("getnameinfo: port must be 0-65535, got " + std::to_string(port));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;  // one answer per address, as CPython asks
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    throw NameResolutionError(
        rc, "getnameinfo: '" + host + "' is not a numeric address: " + ::gai_strerror(rc));
  }
  char name[NI_MAXHOST];
  char serv[NI_MAXSERV];
  const int rc =
      ::getnameinfo(found->ai_addr, found->ai_addrlen, name, sizeof name, serv, sizeof serv, flags);
  ::freeaddrinfo(found);
  if (rc != 0) {
    throw NameResolutionError(
        rc, "getnameinfo('" + host + "', " + service + "): " + ::gai_strerror(rc));
  }
  return {name, serv};
}

}  // namespace

Coro<std::vector<EventLoop::AddrInfo>> EventLoop::getaddrinfo(std::string host, std::string port,
                                                              int family, int type, int proto,
                                                              int flags) {
  co_return co_await run_in_executor(nullptr, addrinfo_blocking, std::move(host), std::move(port),
                                     family, type, proto, flags);
}

Coro<std::pair<std::string, std::string>> EventLoop::getnameinfo(std::string host, int port,
                                                                 int flags) {
  co_return co_await run_in_executor(nullptr, nameinfo_blocking, std::move(host), port, flags);
}

}  // namespace gilio::asyncio
