// gilio/asyncio/protocols.hpp — stream protocols and transports: create_connection,
// create_server, create_unix_connection, create_unix_server, connect_accepted_socket,
// connect_read_pipe, connect_write_pipe, start_tls, Protocol, StreamReaderProtocol, Transport;
// mirrors Lib/asyncio/protocols.py, the transport half of selector_events.py
// (_SelectorSocketTransport), the pipe transports of unix_events.py, streams.py's
// StreamReaderProtocol, and loop.create_connection / create_server / start_tls in base_events.py.
//
// Streams are asyncio's high-level face; beneath them asyncio has the older callback style, and
// much code is written against it: the caller supplies a protocol, an object whose methods the
// transport calls — connection_made once, data_received with each piece of bytes as it arrives,
// eof_received when the peer half-closes, connection_lost at the end — and writes through the
// transport, whose write() buffers and returns at once. No coroutine is awaited per message;
// the protocol is a state machine fed by the loop.
//
// Here a transport is a thin layer over a stream (StreamReader and StreamWriter share its state):
// one task per connection reads — a read of up to 256 KiB, the most asyncio's transport reads at
// once — and calls the protocol; write() is the stream writer's. Flow control is asyncio's: when
// the unsent bytes pass the high-water mark (64 KiB), write() calls the protocol's
// pause_writing(); once they fall to the low-water mark (16 KiB), resume_writing() follows.
// pause_reading() stops the data_received calls until resume_reading(); the receive already in
// flight may finish meanwhile, and its bytes wait in the transport, so the kernel's buffer fills
// and the peer is slowed, as with the selector loop.
//
// How a connection ends, as asyncio: close() stops reading, sends what is buffered, closes the
// socket, then connection_lost(nullptr); abort() drops the buffer first. At the peer's EOF,
// eof_received() decides: false (the default) closes the transport; true keeps it open for
// writing, until the protocol closes it. A receive or send that fails (a reset, a broken pipe)
// is fatal: the socket is closed and connection_lost gets the OSError. An exception thrown by
// data_received, eof_received or connection_made is fatal too, and is also reported through the
// loop's exception handler ("Fatal error: protocol.data_received() call failed."); one thrown by
// pause_writing, resume_writing or connection_lost is reported and the transport goes on.
// After connection_lost the transport lets go of the protocol, which may hold the transport.
//
// A BufferedProtocol (below) is served the same way, through get_buffer() and buffer_updated().
//
// A protocol method is always called on the loop's thread, from the connection's task or (for
// pause_writing) from within the write() that crossed the mark — never from inside the backend.
//
// Read next: runtime/protocols.cpp; docs/05-io-uring.md, section "Protocols and transports".
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/streams.hpp"

namespace gilio::asyncio {

class Transport;

// asyncio.Protocol: override what you need; each default does nothing.
class Protocol {
 public:
  virtual ~Protocol() = default;
  // The connection is up; `transport` is the protocol's to keep (a copyable handle).
  virtual void connection_made(Transport& transport) { (void)transport; }
  // Bytes from the peer, in order; how the stream was cut into pieces is the network's choice.
  virtual void data_received(std::string data) { (void)data; }
  // The peer sent EOF (it will send nothing more). false closes the transport; true keeps it
  // open, so that the protocol may still write and close it later.
  virtual bool eof_received() { return false; }
  // The end: nullptr after a close() or abort() or an EOF, the OSError after a failure.
  virtual void connection_lost(std::exception_ptr error) { (void)error; }
  // The transport's buffer went above its high-water mark: stop writing until resume_writing().
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

// asyncio.BufferedProtocol: the protocol lends the buffer the bytes go into, instead of being
// handed each piece as a new string — for a parser that wants the bytes where it keeps them.
// The transport asks get_buffer() for room, copies what it received into it, and reports how
// much with buffer_updated(); a large piece takes several rounds. data_received is not called.
class BufferedProtocol : public Protocol {
 public:
  // Room for the next bytes; `sizehint` is how many are waiting (a wish, not a demand). An
  // empty span is an error (fatal to the connection, as asyncio's RuntimeError).
  virtual std::span<char> get_buffer(std::size_t sizehint) = 0;
  // The first `nbytes` of the last buffer now hold received bytes.
  virtual void buffer_updated(std::size_t nbytes) = 0;

 private:
  void data_received(std::string) final {}
};

// asyncio.StreamReaderProtocol, the reading half: the protocol that feeds a StreamReader made
// by StreamReader::fed() with what its transport delivers — data_received to feed_data, the
// peer's EOF to feed_eof, connection_lost to feed_eof or set_exception — and pauses the
// transport while the reader lags (the reader's flow control). With connect_read_pipe it turns
// a pipe into a stream, asyncio's recipe:
//
//     StreamReader reader = StreamReader::fed();
//     auto protocol = std::make_shared<StreamReaderProtocol>(reader);
//     co_await connect_read_pipe([&] { return protocol; }, fd);
//     std::string line = co_await reader.readline();
//
// As asyncio's, eof_received() keeps a socket's transport open (true): whoever holds the
// transport closes it.
class StreamReaderProtocol : public Protocol {
 public:
  explicit StreamReaderProtocol(StreamReader reader);
  void connection_made(Transport& transport) override;
  void data_received(std::string data) override;
  bool eof_received() override;
  void connection_lost(std::exception_ptr error) override;

 private:
  StreamReader reader_;
};

namespace detail {
struct TransportState;
// Which way a pipe transport goes (connect_read_pipe, connect_write_pipe); none: a socket's.
enum class PipeEnd { none, read, write };
}  // namespace detail

// loop.start_tls's keyword arguments.
struct StartTlsOptions {
  bool server_side = false;     // take the server's side of the handshake (asyncio's default: no)
  std::string server_hostname;  // a client's: the name to check the certificate against, and SNI
  double ssl_handshake_timeout = 60.0;  // seconds, then ConnectionAbortedError
};

// loop.start_tls(transport, protocol, sslcontext, ...): upgrades a plain connection to TLS in
// place, as a STARTTLS protocol (SMTP, IMAP, PostgreSQL) does after its plain-text greeting.
// The transport stops reading, the handshake runs over the connection (bytes already received
// are its first), and once it is done the returned transport — the same handle, now over TLS,
// reading again — delivers plaintext to `protocol`, whose connection_made is not called (asyncio
// calls it only for a new connection). `protocol` may be the old one. Errors: an SSLError
// (SSLCertVerificationError) if the handshake fails, ConnectionAbortedError past the timeout,
// ConnectionResetError if the peer closes meanwhile; the connection is then closed, and the old
// protocol's connection_lost gets the error. std::runtime_error for a transport that is
// closing, a pipe's, or one already TLS; a context of the wrong side (ssl.hpp) is refused with
// the transport left as it was.
Coro<Transport> start_tls(Transport transport, std::shared_ptr<Protocol> protocol,
                          ssl::SSLContext context, StartTlsOptions options);
// The same with the default options. (An overload, not a default argument: g++ 12 destroys a
// `= {}` default argument of a coroutine called inside co_await without having made it.)
Coro<Transport> start_tls(Transport transport, std::shared_ptr<Protocol> protocol,
                          ssl::SSLContext context);

// asyncio's stream transport (_SelectorSocketTransport): a copyable handle. A pipe's transport
// (asyncio's _UnixReadPipeTransport, _UnixWritePipeTransport) is one too, which goes one way
// only: a read pipe's write() and a write pipe's pause_reading() throw std::runtime_error, as the
// methods are missing in asyncio's ReadTransport and WriteTransport.
class Transport {
 public:
  Transport() = default;
  explicit Transport(std::shared_ptr<detail::TransportState> s) : s_(std::move(s)) {}

  // Buffers `data` and starts sending it; never waits. std::runtime_error after close() or
  // write_eof(). Once the connection is lost (abort(), a failed send or receive), a write is
  // dropped quietly, as asyncio's is: connection_lost is on its way.
  void write(std::string_view data);
  // A string passed with std::move is sent from its own memory when nothing else waits.
  template <class S>
  requires std::same_as<S, std::string>
  void write(S&& data) { write_owned(std::move(data)); }
  void writelines(const std::vector<std::string>& pieces);
  // Half-closes: FIN after what is buffered; data_received goes on. A write pipe has no half:
  // write_eof() closes it after what is buffered. Over TLS, std::runtime_error (no half-close).
  void write_eof();
  bool can_write_eof() const;  // false for a read pipe, and over TLS
  // Stops reading; sends what is buffered; closes; then connection_lost(nullptr).
  void close();
  // The same at once, dropping the buffer.
  void abort();
  bool is_closing() const;
  // No data_received until resume_reading(). Either one twice does nothing.
  void pause_reading();
  void resume_reading();
  bool is_reading() const;
  // Bytes written and not yet sent.
  std::size_t get_write_buffer_size() const;
  // As StreamWriter's: pause_writing() above `high`, resume_writing() at `low` or below.
  void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                               std::optional<std::size_t> low = std::nullopt);
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const;
  // get_extra_info('peername') and ('sockname'), as "host:port" (a Unix socket: its path).
  std::string peername() const;
  std::string sockname() const;
  // get_extra_info('ssl_object'): a TLS connection's facts (ssl.hpp); none for a plain one or a
  // pipe.
  std::optional<ssl::SSLObject> ssl_object() const;

 private:
  friend Coro<Transport> start_tls(Transport transport, std::shared_ptr<Protocol> protocol,
                                   ssl::SSLContext context, StartTlsOptions options);
  friend Coro<std::size_t> sendfile(Transport transport, int file_fd, std::uint64_t offset,
                                    std::optional<std::size_t> count);
  void write_owned(std::string data);
  detail::TransportState& state(const char* who) const;
  std::shared_ptr<detail::TransportState> s_;
};

// loop.sendfile(transport, file, offset, count): StreamWriter::sendfile on the transport's
// connection — after what is buffered, `count` bytes of `file_fd` from `offset` (std::nullopt:
// to its end) spliced to the socket, or read and written over TLS and to a write pipe — and
// returns how many. write() meanwhile throws std::runtime_error, as asyncio's does.
// std::runtime_error for a transport that is closing or a read pipe's.
Coro<std::size_t> sendfile(Transport transport, int file_fd, std::uint64_t offset = 0,
                           std::optional<std::size_t> count = std::nullopt);

// What create_server and create_unix_server call for each connection: a new protocol.
using ProtocolFactory = std::function<std::shared_ptr<Protocol>()>;

namespace detail {
// Runs `protocol` over the connection in a task of its own; returns the transport once
// connection_made has been called.
Transport start_transport(std::shared_ptr<Protocol> protocol, StreamReader reader,
                          StreamWriter writer, PipeEnd end = PipeEnd::none);
// A pipe transport's checks: `fd` must be open (OSError) and a pipe, a FIFO, a socket or a
// character device such as a terminal (std::invalid_argument), as asyncio's pipe transports ask.
void check_pipe(int fd, const char* who);
// The transport over a pipe end, which it owns from now on: reads or writes it with read() and
// write(), and closes it at the end. `name` is what its errors call it ("" : "read pipe (fd N)").
Transport start_pipe_transport(std::shared_ptr<Protocol> protocol, int fd, PipeEnd end,
                               std::string name = {});
// A server's handler that runs a protocol from `factory` over each connection.
ClientConnected serve_protocol(ProtocolFactory factory);

// The (transport, protocol) pair of the create_* functions, over streams just opened.
template <class P>
std::pair<Transport, P> connected_pair(P protocol, std::pair<StreamReader, StreamWriter> streams) {
  Transport transport =
      start_transport(protocol, std::move(streams.first), std::move(streams.second));
  return std::pair<Transport, P>(std::move(transport), std::move(protocol));
}
}  // namespace detail

// loop.create_connection(protocol_factory, host, port): connects (a name is resolved without
// blocking the loop), makes the protocol with `factory()` — a std::shared_ptr to a Protocol —
// and returns the transport and the protocol once connection_made has been called. Errors are
// open_connection's. With ConnectionOptions::ssl (streams.hpp), the connection is TLS and
// connection_made comes after the handshake: the protocol sees and writes plaintext, as over
// asyncio's SSL transport. (ConnectionOptions::limit does not apply.)
template <class Factory>
auto create_connection(Factory factory, std::string host, int port, ConnectionOptions options = {})
    -> Coro<std::pair<Transport, decltype(factory())>> {
  auto streams = co_await open_connection(std::move(host), port, std::move(options));
  co_return detail::connected_pair(factory(), std::move(streams));
}

// loop.create_unix_connection(protocol_factory, path).
template <class Factory>
auto create_unix_connection(Factory factory, std::string path, ConnectionOptions options = {})
    -> Coro<std::pair<Transport, decltype(factory())>> {
  auto streams = co_await open_unix_connection(std::move(path), std::move(options));
  co_return detail::connected_pair(factory(), std::move(streams));
}

// loop.connect_accepted_socket(protocol_factory, sock): a connected stream socket made or
// accepted elsewhere; checked and taken over as open_connection(Socket) does. With
// ConnectionOptions::ssl, it takes the client's side of TLS, as asyncio's default does.
template <class Factory>
auto connect_accepted_socket(Factory factory, Socket sock, ConnectionOptions options = {})
    -> Coro<std::pair<Transport, decltype(factory())>> {
  auto streams = co_await open_connection(sock, std::move(options));
  co_return detail::connected_pair(factory(), std::move(streams));
}

// loop.connect_read_pipe(protocol_factory, pipe): the protocol gets what comes from `fd`, a
// pipe's read end (or a FIFO, a terminal, a socket), as from a connection: data_received, then
// eof_received and connection_lost(nullptr) when the writer closes its end. The transport owns
// `fd` and closes it at the end; close() ends it at once, even with a read waiting.
template <class Factory>
auto connect_read_pipe(Factory factory, int fd) -> Coro<std::pair<Transport, decltype(factory())>> {
  detail::check_pipe(fd, "connect_read_pipe");
  auto protocol = factory();
  Transport transport = detail::start_pipe_transport(protocol, fd, detail::PipeEnd::read);
  co_return std::pair<Transport, decltype(factory())>(std::move(transport), std::move(protocol));
}

// loop.connect_write_pipe(protocol_factory, pipe): a transport that writes to `fd`, with the
// flow control of a connection's (pause_writing above the high-water mark). A reader that
// closes its end ends the transport: with nothing buffered, connection_lost(nullptr) at once (a
// pipe, FIFO or socket is watched for it, as asyncio's is); with bytes left, or at the next
// write, connection_lost gets BrokenPipeError (or, from a socket, ConnectionResetError). As the
// Python interpreter does at its start, SIGPIPE is ignored from the first write pipe on, if the
// program left it at its default action (which would kill the process instead). The transport owns
// `fd` and closes it at the end.
template <class Factory>
auto connect_write_pipe(Factory factory, int fd)
    -> Coro<std::pair<Transport, decltype(factory())>> {
  detail::check_pipe(fd, "connect_write_pipe");
  auto protocol = factory();
  Transport transport = detail::start_pipe_transport(protocol, fd, detail::PipeEnd::write);
  co_return std::pair<Transport, decltype(factory())>(std::move(transport), std::move(protocol));
}

// loop.create_server(protocol_factory, host, port, ...) and loop.create_unix_server: a Server
// as start_server's (the options' `limit` does not apply), whose connections each get a protocol
// from `factory` — over TLS with ServerOptions::ssl, once each handshake is done.
// Server.wait_closed() waits for every connection's connection_lost. (With g++ 12, name a capturing
// factory before the co_await: a temporary one is destroyed twice.)
Coro<Server> create_server(ProtocolFactory factory, std::string host, int port,
                           ServerOptions options = {});
Coro<Server> create_server(ProtocolFactory factory, Socket sock, ServerOptions options = {});
Coro<Server> create_unix_server(ProtocolFactory factory, std::string path,
                                ServerOptions options = {});

}  // namespace gilio::asyncio
