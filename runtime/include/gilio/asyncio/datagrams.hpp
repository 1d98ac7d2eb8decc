// gilio/asyncio/datagrams.hpp — UDP endpoints: create_datagram_endpoint, DatagramProtocol,
// DatagramTransport; mirrors loop.create_datagram_endpoint (Lib/asyncio/base_events.py) and
// _SelectorDatagramTransport (Lib/asyncio/selector_events.py).
//
// Streams suit byte streams; a datagram socket's unit is the message, and asyncio gives it the
// older protocol/transport pair instead of a reader and a writer. The caller supplies a protocol
// — an object whose methods the transport calls: connection_made once, datagram_received for
// each datagram, error_received for an error of one send or receive (an ICMP "port unreachable"
// on a connected socket, say), connection_lost at the end — and gets back the transport, whose
// sendto() queues a datagram and returns at once.
//
// Under the hood the transport runs two small tasks on the loop: one keeps a recvmsg in flight
// into a buffer of its own (64 KiB, the most a UDP datagram holds) and hands each datagram to
// the protocol; the other, started when the first datagram is queued, sends the queue with one
// sendmsg after another. A protocol method is thus called from a task, never from inside the
// backend, and one that throws is reported through the loop's exception handler; the transport
// goes on. close() stops receiving, sends what is queued, then closes the socket and calls
// connection_lost; abort() drops the queue first.
//
// Read next: runtime/datagrams.cpp; docs/05-io-uring.md, where the Streams section turns to
// datagrams.
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "gilio/asyncio/coro.hpp"

namespace gilio::asyncio {

class DatagramTransport;

// asyncio.DatagramProtocol: override what you need; each default does nothing.
class DatagramProtocol {
 public:
  virtual ~DatagramProtocol() = default;
  virtual void connection_made(DatagramTransport& transport) { (void)transport; }
  // One datagram, from host:port (numeric; a Unix socket's path and port 0, or "" and 0 for an
  // unbound one).
  virtual void datagram_received(std::string data, std::string host, int port) {
    (void)data, (void)host, (void)port;
  }
  // A send or receive failed (an OSError); the transport goes on.
  virtual void error_received(std::exception_ptr error) { (void)error; }
  // The transport is closed: null after close() or abort().
  virtual void connection_lost(std::exception_ptr error) { (void)error; }
};

namespace detail {
struct DatagramState;
}

// asyncio's DatagramTransport: a copyable handle.
class DatagramTransport {
 public:
  DatagramTransport() = default;
  explicit DatagramTransport(std::shared_ptr<detail::DatagramState> s) : s_(std::move(s)) {}
  // Queues `data` as one datagram to the remote address the endpoint was made with.
  // std::invalid_argument if it has none; std::runtime_error once closing.
  void sendto(std::string data);
  // Queues `data` as one datagram to host:port, a numeric address of the socket's family (a
  // name would need a lookup, which sendto cannot wait for); on a Unix endpoint, host is the
  // peer's path and port 0, as datagram_received gives them. An endpoint with a remote address
  // takes only that one, as asyncio's (std::invalid_argument otherwise).
  void sendto(std::string data, const std::string& host, int port);
  // Stops receiving; sends what is queued; then closes the socket and calls connection_lost.
  void close();
  // The same at once, dropping what is queued.
  void abort();
  bool is_closing() const;
  // Bytes queued and not yet sent (get_write_buffer_size()).
  std::size_t get_write_buffer_size() const;
  // The socket's address, and the remote one ("" if the endpoint has none): get_extra_info's
  // 'sockname' and 'peername', as "host:port".
  std::string sockname() const;
  std::string peername() const;

 private:
  std::shared_ptr<detail::DatagramState> s_;
};

// create_datagram_endpoint's keyword arguments. At least one address is needed: local_addr to
// bind (port 0: any free one), remote_addr to connect to (then datagrams come only from there
// and go there by default). Names are resolved without blocking the loop.
//
// Or, instead of those, paths: a Unix datagram socket (asyncio's family=AF_UNIX, with paths for
// local_addr and remote_addr), bound to local_path and/or connected to remote_path; '\0' first
// names one in Linux's abstract namespace. A socket file left at local_path is replaced, as
// asyncio replaces it; another kind of file there is an error (EADDRINUSE). A peer that is not
// bound has no address to answer to: its datagrams arrive from host "".
struct DatagramEndpoint {
  std::optional<std::pair<std::string, int>> local_addr;
  std::optional<std::pair<std::string, int>> remote_addr;
  std::optional<std::string> local_path;
  std::optional<std::string> remote_path;
  bool reuse_port = false;       // SO_REUSEPORT: several sockets bind one port
  bool allow_broadcast = false;  // SO_BROADCAST: may send to a broadcast address
};

namespace detail {
Coro<DatagramTransport> open_datagram_endpoint(std::shared_ptr<DatagramProtocol> protocol,
                                               DatagramEndpoint where);
}

// loop.create_datagram_endpoint(protocol_factory, local_addr, remote_addr, ...): makes the
// protocol with `factory()` (a std::shared_ptr to a DatagramProtocol) and a UDP socket for it;
// returns the transport and the protocol. connection_made follows soon after, from the loop.
template <class Factory>
auto create_datagram_endpoint(Factory factory, DatagramEndpoint where)
    -> Coro<std::pair<DatagramTransport, decltype(factory())>> {
  auto protocol = factory();
  std::shared_ptr<DatagramProtocol> base = protocol;  // g++ 12: no converted temporary in co_await
  DatagramTransport transport =
      co_await detail::open_datagram_endpoint(std::move(base), std::move(where));
  co_return std::pair<DatagramTransport, decltype(factory())>(std::move(transport),
                                                              std::move(protocol));
}

}  // namespace gilio::asyncio
