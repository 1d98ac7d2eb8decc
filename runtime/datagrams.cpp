// runtime/datagrams.cpp — create_datagram_endpoint and its transport; mirrors
// _SelectorDatagramTransport in Lib/asyncio/selector_events.py and the endpoint's setup in
// BaseEventLoop.create_datagram_endpoint (Lib/asyncio/base_events.py).
//
// asyncio's transport registers a reader with the selector: when the socket is readable, the
// loop calls _read_ready, which calls recvfrom once and hands the datagram to the protocol; and
// sendto tries the socket at once, buffering only what would block. Here the kernel does the
// waiting: a receiver task keeps one recvmsg in flight, into a 64 KiB buffer the task owns for
// its whole life, and calls datagram_received after each completion; a sender task, started by
// the first sendto after the queue was empty, submits one sendmsg after another until the queue
// is empty, each datagram's bytes and address staying in the queue's front entry until its
// completion (DESIGN.md invariant 1). The tasks hold the state; the state holds the tasks'
// handles, which close() and abort() cancel.
//
// Errors follow asyncio: an OSError of one receive or one send goes to error_received and the
// transport goes on (a connected UDP socket reports a peer's ICMP "port unreachable" that way,
// as ECONNREFUSED on its next operation). An exception thrown by a protocol method goes to the
// loop's exception handler, as the selector loop's Handle._run sends it there.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "gilio/asyncio.hpp"
#include "gilio/asyncio/datagrams.hpp"
#include "io_op.hpp"
#include "net.hpp"

namespace gilio::asyncio {
namespace detail {

// The most a UDP datagram carries (65,535 bytes less the IP and UDP headers), rounded up; a
// Unix datagram may be bigger (up to the socket's send buffer), and asyncio reads 256 KiB.
constexpr std::size_t kMaxDatagram = 64 * 1024;
constexpr std::size_t kMaxUnixDatagram = 256 * 1024;

struct DatagramState {
  struct Outgoing {
    std::string data;
    sockaddr_storage to{};
    socklen_t to_len = 0;  // 0: the connected peer
  };

  EventLoop* loop = nullptr;
  int fd = -1;
  int family = AF_INET;
  std::shared_ptr<DatagramProtocol> protocol;
  std::string peer;  // "host:port" of the remote address, "" if none
  sockaddr_storage peer_addr{};
  std::deque<Outgoing> queue;
  std::size_t queued_bytes = 0;
  Task<void> receiver;
  Task<void> sender;  // while it runs
  bool sending = false;
  bool closing = false;
  bool lost = false;  // connection_lost has been scheduled

  ~DatagramState() { close_socket(); }

  // A protocol method, called so that what it throws goes to the loop's exception handler —
  // unless connection_lost has let go of the protocol already.
  template <class F>
  void call_protocol(const char* method, F&& fn) {
    if (!protocol) return;
    try {
      fn(*protocol);
    } catch (...) {
      loop->report_callback_exception(std::string("DatagramProtocol.") + method);
    }
  }
  void report_error(int err, const std::string& what) {
    call_protocol("error_received",
                  [&](DatagramProtocol& p) { p.error_received(os_error_ptr(err, what)); });
  }
  void close_socket() noexcept {
    if (fd >= 0) ::close(std::exchange(fd, -1));
  }
  // The end: the socket closes now, connection_lost follows from the loop, once.
  void finish(const std::shared_ptr<DatagramState>& self) {
    if (lost) return;
    lost = true;
    close_socket();
    loop->call_soon([self] {
      self->call_protocol("connection_lost",
                          [](DatagramProtocol& p) { p.connection_lost(nullptr); });
      self->protocol.reset();  // the protocol may hold the transport: no cycle left behind
    });
  }
};

namespace {

Coro<void> receive_each(std::shared_ptr<DatagramState> s);

// The receiver: one recvmsg after another, each datagram to the protocol. Cancelled by close()
// or abort() — or by the loop's close, with the transport still open: then the socket closes
// and the protocol is let go of (which may hold the transport: a cycle otherwise), without a
// connection_lost, as asyncio's loop leaves an unclosed transport to its finalizer.
Coro<void> receive(std::shared_ptr<DatagramState> s) {
  try {
    co_await receive_each(s);
  } catch (const CancelledError&) {
    if (!s->closing) {
      s->closing = s->lost = true;
      s->close_socket();
      s->protocol.reset();
    }
    throw;
  }
}

Coro<void> receive_each(std::shared_ptr<DatagramState> s) {
  const std::size_t size = s->family == AF_UNIX ? kMaxUnixDatagram : kMaxDatagram;
  const std::unique_ptr<char[]> buffer(new char[size]);
  for (;;) {
    sockaddr_storage from{};
    iovec iov{buffer.get(), size};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const int fd = s->fd;
    const int n =
        co_await IoOp([fd, &msg](Backend& b, Completion* op) { b.recvmsg(op, fd, &msg); });
    // A receive that beat close()'s cancel: a closed transport reads no more (asyncio's removes
    // its reader), so the datagram goes with the socket.
    if (s->closing) co_return;
    if (n < 0) {
      s->report_error(-n, "recvfrom on fd " + std::to_string(fd));
      if (n == -EBADF || n == -ENOTSOCK) co_return;  // no socket left to receive on
      continue;
    }
    auto [host, port] = sender_of(from, msg.msg_namelen);
    std::string data(buffer.get(), static_cast<std::size_t>(n));
    s->call_protocol("datagram_received", [&](DatagramProtocol& p) {
      p.datagram_received(std::move(data), std::move(host), port);
    });
  }
}

Coro<void> send_queue(std::shared_ptr<DatagramState> s) {
  while (!s->queue.empty()) {
    DatagramState::Outgoing& out = s->queue.front();
    iovec iov{out.data.data(), out.data.size()};
    msghdr msg{};
    if (out.to_len != 0) {
      msg.msg_name = &out.to;
      msg.msg_namelen = out.to_len;
    }
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const int fd = s->fd;
    const int n =
        co_await IoOp([fd, &msg](Backend& b, Completion* op) { b.sendmsg(op, fd, &msg); });
    if (n < 0) s->report_error(-n, "sendto " + (out.to_len != 0 ? where_of(out.to) : s->peer));
    s->queued_bytes -= s->queue.front().data.size();
    s->queue.pop_front();
  }
  s->sending = false;
  if (s->closing) s->finish(s);
}

// sendto's queueing: the datagram joins the queue, and the sender starts if it is not running.
void enqueue(const std::shared_ptr<DatagramState>& s, DatagramState::Outgoing out) {
  if (s->closing) throw std::runtime_error("DatagramTransport.sendto: the transport is closing");
  s->queued_bytes += out.data.size();
  s->queue.push_back(std::move(out));
  if (!s->sending) {
    s->sending = true;
    s->sender = create_task(send_queue(s));
  }
}

// A numeric address of `family` for sendto, which cannot wait for a name lookup.
sockaddr_storage numeric_address(const std::string& host, int port, int family) {
  if (family == AF_UNIX) return unix_peer(host, port, "sendto");
  if (port < 0 || port > 65535)
    throw std::invalid_argument("sendto: port " + std::to_string(port) + " is out of range");
  if (auto ss = numeric_address_of(host, port, family == AF_INET6 ? AF_INET6 : AF_INET)) return *ss;
  throw std::invalid_argument("sendto: '" + host + "' is not a numeric " +
                              (family == AF_INET6 ? "IPv6" : "IPv4") +
                              " address (sendto cannot wait for a name lookup)");
}

// Whether two IPv4 or IPv6 addresses are the same address and port, or two Unix ones the same
// path (unix_address zero-fills the rest).
bool same_address(const sockaddr_storage& a, const sockaddr_storage& b) {
  if (a.ss_family != b.ss_family) return false;
  if (a.ss_family == AF_UNIX) {
    return std::memcmp(reinterpret_cast<const sockaddr_un&>(a).sun_path,
                       reinterpret_cast<const sockaddr_un&>(b).sun_path,
                       sizeof(sockaddr_un::sun_path)) == 0;
  }
  if (a.ss_family == AF_INET6) {
    const auto& x = reinterpret_cast<const sockaddr_in6&>(a);
    const auto& y = reinterpret_cast<const sockaddr_in6&>(b);
    return x.sin6_port == y.sin6_port &&
           std::memcmp(&x.sin6_addr, &y.sin6_addr, sizeof x.sin6_addr) == 0;
  }
  const auto& x = reinterpret_cast<const sockaddr_in&>(a);
  const auto& y = reinterpret_cast<const sockaddr_in&>(b);
  return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
}

// The first address in `from` of `family` (any family if AF_UNSPEC).
const sockaddr_storage* first_of(const std::vector<sockaddr_storage>& from, int family) {
  for (const sockaddr_storage& ss : from) {
    if (family == AF_UNSPEC || ss.ss_family == family) return &ss;
  }
  return nullptr;
}

}  // namespace

Coro<DatagramTransport> open_datagram_endpoint(std::shared_ptr<DatagramProtocol> protocol,
                                               DatagramEndpoint where) {
  if (!protocol)
    throw std::invalid_argument("create_datagram_endpoint: the factory gave no protocol");
  const bool by_path = where.local_path || where.remote_path;
  if (by_path && (where.local_addr || where.remote_addr)) {
    throw std::invalid_argument(
        "create_datagram_endpoint: give addresses (local_addr, remote_addr) or Unix socket paths "
        "(local_path, remote_path), not both");
  }
  if (by_path && (where.reuse_port || where.allow_broadcast)) {
    throw std::invalid_argument(
        "create_datagram_endpoint: reuse_port and allow_broadcast are for UDP, not Unix sockets");
  }
  if (!by_path && !where.local_addr && !where.remote_addr) {
    throw std::invalid_argument(
        "create_datagram_endpoint: give local_addr, remote_addr or both (unexpected address "
        "family)");
  }
  std::vector<sockaddr_storage> locals, remotes;
  if (where.local_addr)
    locals = co_await resolve(where.local_addr->first, where.local_addr->second, SOCK_DGRAM);
  if (where.remote_addr)
    remotes = co_await resolve(where.remote_addr->first, where.remote_addr->second, SOCK_DGRAM);
  if (where.local_path) {
    locals.push_back(unix_address(*where.local_path, "create_datagram_endpoint"));
    remove_stale_socket_file(*where.local_path);
  }
  if (where.remote_path)
    remotes.push_back(unix_address(*where.remote_path, "create_datagram_endpoint"));
  // One family for both: the local address's, or the first remote one's.
  const sockaddr_storage* local = first_of(locals, AF_UNSPEC);
  const sockaddr_storage* remote = first_of(remotes, local ? local->ss_family : AF_UNSPEC);
  if (where.remote_addr && remote == nullptr) {
    raise_os_error(EAFNOSUPPORT, "create_datagram_endpoint: no address of " +
                                     where.remote_addr->first + " in the local address's family");
  }
  auto s = std::make_shared<DatagramState>();
  s->loop = &get_running_loop();
  s->protocol = std::move(protocol);
  s->family = local ? local->ss_family : remote->ss_family;
  s->fd = ::socket(s->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s->fd < 0) raise_os_error(errno, "create_datagram_endpoint: socket");
  const int one = 1;
  if (where.reuse_port && ::setsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
    raise_os_error(errno, "create_datagram_endpoint: SO_REUSEPORT");
  if (where.allow_broadcast && ::setsockopt(s->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof one) != 0)
    raise_os_error(errno, "create_datagram_endpoint: SO_BROADCAST");
  if (local && ::bind(s->fd, reinterpret_cast<const sockaddr*>(local), address_length(*local)) != 0)
    raise_os_error(errno, "create_datagram_endpoint: bind to " + where_of(*local));
  if (remote) {
    // A UDP connect only records the peer: it neither blocks nor sends anything.
    if (::connect(s->fd, reinterpret_cast<const sockaddr*>(remote), address_length(*remote)) != 0)
      raise_os_error(errno, "create_datagram_endpoint: connect to " + where_of(*remote));
    s->peer_addr = *remote;
    s->peer = where_of(*remote);
  }
  DatagramTransport transport(s);
  // Before connection_lost, whenever close() comes: both go through call_soon, in order.
  s->loop->call_soon([s, transport]() mutable {
    s->call_protocol("connection_made", [&](DatagramProtocol& p) { p.connection_made(transport); });
  });
  s->receiver = create_task(receive(s));
  co_return transport;
}

}  // namespace detail

namespace {
detail::DatagramState& open_state(const std::shared_ptr<detail::DatagramState>& s,
                                  const char* who) {
  if (!s) throw std::runtime_error(std::string(who) + ": the transport is not connected");
  return *s;
}
}  // namespace

void DatagramTransport::sendto(std::string data) {
  detail::DatagramState& s = open_state(s_, "DatagramTransport.sendto");
  if (s.peer.empty()) {
    throw std::invalid_argument(
        "DatagramTransport.sendto: no address given, and the endpoint has no remote address");
  }
  detail::enqueue(s_, {std::move(data), {}, 0});
}

void DatagramTransport::sendto(std::string data, const std::string& host, int port) {
  detail::DatagramState& s = open_state(s_, "DatagramTransport.sendto");
  const sockaddr_storage to = detail::numeric_address(host, port, s.family);
  if (!s.peer.empty()) {
    if (!detail::same_address(to, s.peer_addr)) {
      throw std::invalid_argument(
          "DatagramTransport.sendto: invalid address: must be the remote "
          "address " +
          s.peer + " or none");
    }
    sendto(std::move(data));
    return;
  }
  detail::enqueue(s_, {std::move(data), to, detail::address_length(to)});
}

void DatagramTransport::close() {
  detail::DatagramState& s = open_state(s_, "DatagramTransport.close");
  if (s.closing) return;
  s.closing = true;
  s.receiver.cancel();
  if (!s.sending) s.finish(s_);
}

void DatagramTransport::abort() {
  detail::DatagramState& s = open_state(s_, "DatagramTransport.abort");
  s.closing = true;
  s.receiver.cancel();
  if (s.sending) {
    // The send in flight reads the queue's front until its completion: keep that one entry.
    s.sender.cancel();
    if (!s.queue.empty()) s.queue.erase(s.queue.begin() + 1, s.queue.end());
  } else {
    s.queue.clear();
  }
  s.queued_bytes = 0;
  s.sending = false;
  s.finish(s_);
}

bool DatagramTransport::is_closing() const {
  return open_state(s_, "DatagramTransport.is_closing").closing;
}
std::size_t DatagramTransport::get_write_buffer_size() const {
  return open_state(s_, "DatagramTransport.get_write_buffer_size").queued_bytes;
}
std::string DatagramTransport::sockname() const {
  const detail::DatagramState& s = open_state(s_, "DatagramTransport.sockname");
  if (s.fd < 0) throw std::runtime_error("DatagramTransport.sockname: the transport is closed");
  return detail::name_of(s.fd);
}
std::string DatagramTransport::peername() const {
  return open_state(s_, "DatagramTransport.peername").peer;
}

}  // namespace gilio::asyncio
