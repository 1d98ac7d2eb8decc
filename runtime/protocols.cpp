// runtime/protocols.cpp — Transport, and the protocol side of create_connection and
// create_server; mirrors _SelectorSocketTransport in Lib/asyncio/selector_events.py (with
// _FlowControlMixin from transports.py) and the connection half of loop.create_connection /
// loop.create_server in base_events.py.
//
// asyncio's selector transport registers a reader: when the socket is readable the loop calls
// _read_ready, which recv()s once and calls data_received. io_uring inverts that: the kernel
// does the waiting, so each connection gets one task — `drive` below — that awaits a read of the
// stream beneath and calls the protocol with what came, until the connection ends. On a server
// that task is the connection's handler task, so Server.wait_closed() waits for it; a client's
// is a task of its own. The writing side is the stream writer's unchanged (one send in flight,
// the rest buffered); the transport only adds asyncio's protocol flow control around it:
// pause_writing() from within the write() that crossed the high-water mark, and a small task
// that waits in drain() until the buffer is down to the low-water mark, then calls
// resume_writing().
//
// The end of a connection is always reached the same way: the stream is closed (by close(),
// abort(), a fatal error, or a send that failed, which streams.cpp turns into a close for a
// transport, bind_transport), which wakes the task; it waits until the socket is really closed
// (close() sends what is buffered first), then calls connection_lost with the error, if one
// ended it, and lets go of the protocol. A receive and a send that fail are both fatal, as in
// asyncio (_fatal_error); so is an exception from data_received, eof_received or
// connection_made, which is also reported to the loop's exception handler.
//
// start_tls (loop.start_tls) must first stop that task, which is usually waiting in a receive
// that would hand the peer's first handshake bytes to the protocol: the receive is interrupted
// through the ring, and whatever a read already took goes back to the front of the stream's
// buffer; then the handshake runs over the stream and the task reads on, now plaintext.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "gilio/asyncio.hpp"
#include "gilio/asyncio/protocols.hpp"
#include "io_op.hpp"
#include "net.hpp"
#include "tls.hpp"

namespace gilio::asyncio {
namespace detail {

// The most one data_received gets: asyncio's _SelectorSocketTransport.max_size.
constexpr std::size_t kMaxRead = 256 * 1024;

struct TransportState : std::enable_shared_from_this<TransportState> {
  TransportState(std::shared_ptr<Protocol> p, StreamReader r, StreamWriter w, PipeEnd e)
      : loop(&get_running_loop()),
        protocol(std::move(p)),
        reader(std::move(r)),
        writer(std::move(w)),
        peer(writer.peername()),
        buffered(dynamic_cast<BufferedProtocol*>(protocol.get())),
        end(e) {
    bind_transport(writer, &wake);
  }
  ~TransportState() { bind_transport(writer, nullptr); }
  TransportState(const TransportState&) = delete;
  TransportState& operator=(const TransportState&) = delete;

  EventLoop* loop;
  std::shared_ptr<Protocol> protocol;  // until connection_lost has been called
  StreamReader reader;
  StreamWriter writer;
  std::string peer;
  BufferedProtocol* buffered;  // the protocol, if it lends its own buffer
  PipeEnd end;                 // none: a socket's transport, which reads and writes
  int watch_fd = -1;           // a write pipe's: watched for its reader's departure
  bool watch_socket = false;   // ... which is a socket's peer (else a pipe's reader)
  Event wake;                  // resume_reading(), and the stream's close: the task looks again
  bool reading_paused = false;
  bool writing_paused = false;
  bool eof_written = false;
  bool aborted = false;      // by abort() or a fatal error: later send errors are not news
  std::exception_ptr error;  // what ended the connection, for connection_lost
  // start_tls (below): while `upgrading`, the reading task reads nothing and delivers nothing;
  // `parked` tells start_tls that it has stopped (or ended).
  bool upgrading = false;
  Event parked;

  // Closing or closed: nothing more is read or delivered.
  bool ending() const { return writer.is_closing(); }
  // The connection is lost (asyncio's _conn_lost): aborted, failed, or a send failed.
  bool lost() const { return aborted || error != nullptr || write_error_of(writer) != nullptr; }

  // Calls a protocol method, unless the protocol was let go of already. What it throws ends the
  // connection (`fatal_if_thrown`) or is only reported; either way the caller goes on.
  template <class F>
  void call(const char* method, bool fatal_if_thrown, F&& fn) {
    if (!protocol) return;
    try {
      fn(*protocol);
    } catch (...) {
      if (fatal_if_thrown) {
        fail(std::current_exception(), method);
      } else {
        report(fmt::format("protocol.{}() failed", method), std::current_exception());
      }
    }
  }
  // asyncio's _fatal_error: the connection ends at once, and connection_lost gets `e`. A
  // protocol method's exception (`method`) is a bug worth reporting; an OSError is the network's.
  void fail(std::exception_ptr e, const char* method = nullptr) {
    if (method != nullptr)
      report(fmt::format("Fatal error: protocol.{}() call failed.", method), e);
    if (!error) error = std::move(e);
    abort();
  }
  // To the loop's exception handler, naming this transport.
  void report(std::string message, std::exception_ptr e) {
    ExceptionContext context(std::move(message), std::move(e));
    context.handle = "Transport to " + peer;
    loop->call_exception_handler(context);
  }
  void abort() {
    aborted = true;
    writer.abort();
    wake.set();
  }
  Coro<void> wait_wake() {
    wake.clear();
    co_await wake.wait();
  }
  // The reading task's part of start_tls: it waits while the handshake runs.
  Coro<void> park() {
    parked.set();
    while (upgrading && !ending())
      co_await wait_wake();
  }
  // Bytes a read took that are the handshake's, since start_tls began meanwhile.
  void give_back(std::string_view bytes) { unread(reader, bytes); }
  void maybe_pause_writing();
  // A pipe transport does one of the two: std::runtime_error naming `who` if it does not.
  void check_can(PipeEnd needed, const char* who) const {
    if (end == PipeEnd::none || end == needed) return;
    throw std::runtime_error(fmt::format("{}: a {} pipe's transport cannot {}", who,
                                         end == PipeEnd::read ? "read" : "write",
                                         needed == PipeEnd::read ? "read" : "write"));
  }
};

namespace {

// After pause_writing(): waits until the buffer is down to the low-water mark.
Coro<void> resume_when_drained(std::shared_ptr<TransportState> t) {
  try {
    co_await drain_to_low_water(t->writer);
  } catch (const CancelledError&) {
    throw;
  } catch (...) {  // the send failed or the stream closed: connection_lost will tell
    co_return;
  }
  t->writing_paused = false;
  if (!t->ending()) t->call("resume_writing", false, [](Protocol& p) { p.resume_writing(); });
}

// A BufferedProtocol's delivery: get_buffer, copy, buffer_updated, until the bytes are placed —
// stopping while reading is paused, as asyncio calls nothing more once pause_reading() returns.
Coro<void> place(TransportState& t, std::string_view rest) {
  while (!rest.empty()) {
    while (t.reading_paused && !t.ending() && !t.upgrading)
      co_await t.wait_wake();
    if (t.ending() || !t.protocol) co_return;
    if (t.upgrading) {
      t.give_back(rest);
      co_return;
    }
    std::span<char> room;
    t.call("get_buffer", true, [&](Protocol&) { room = t.buffered->get_buffer(rest.size()); });
    if (t.ending()) co_return;  // it threw
    if (room.empty()) {
      t.fail(std::make_exception_ptr(std::runtime_error("get_buffer() returned an empty buffer")),
             "get_buffer");
      co_return;
    }
    const std::size_t n = std::min(room.size(), rest.size());
    std::memcpy(room.data(), rest.data(), n);
    rest.remove_prefix(n);
    t.call("buffer_updated", true, [&](Protocol&) { t.buffered->buffer_updated(n); });
  }
}

// Reads and delivers until the connection is closing: closed by the protocol, at the peer's
// EOF, or by a failure.
Coro<void> deliver(TransportState& t) {
  while (!t.ending()) {
    if (t.upgrading) {
      co_await t.park();
      continue;
    }
    if (t.reading_paused) {
      co_await t.wait_wake();
      continue;
    }
    std::string data;
    try {
      data = co_await t.reader.read(kMaxRead);
    } catch (const CancelledError&) {
      throw;
    } catch (const ReadInterrupted&) {  // by start_tls
      continue;
    } catch (...) {  // a receive that failed (a reset): fatal, as asyncio's _read_ready
      t.fail(std::current_exception());
      co_return;
    }
    // pause_reading() while the receive was in flight: its bytes wait here for resume_reading().
    while (t.reading_paused && !t.ending() && !t.upgrading)
      co_await t.wait_wake();
    if (t.ending()) co_return;  // closed meanwhile: what came goes with the socket
    if (t.upgrading) {  // start_tls while the receive was in flight: its bytes are the handshake's
      t.give_back(data);
      continue;
    }
    if (data.empty()) {  // the peer's EOF
      bool keep_open = false;
      t.call("eof_received", true, [&](Protocol& p) { keep_open = p.eof_received(); });
      // A read pipe has nothing left to do (asyncio's _UnixReadPipeTransport ignores the answer).
      if (!keep_open || t.end == PipeEnd::read) t.writer.close();
      co_return;
    }
    if (t.buffered != nullptr) {
      co_await place(t, data);
    } else {
      t.call("data_received", true, [&](Protocol& p) { p.data_received(std::move(data)); });
    }
  }
}

// A write pipe that has nothing to write learns that its reader is gone from a poll, as asyncio's
// does with a reader callback on it: a pipe's write end reports POLLERR then, and never POLLIN
// (it is not open for reading). A socket is polled for its hang-ups only, not POLLIN (its peer
// may send, which is no departure): POLLHUP once the peer has closed, POLLERR if it closed with
// bytes unread; io_uring also reports POLLRDHUP, a peer that only shut down its sending half and
// may still read — the watch ends then, with nothing decided. With nothing buffered a departure
// is a plain end; with bytes left, a broken pipe.
Coro<void> watch_reader(std::shared_ptr<TransportState> t) {
  const int fd = t->watch_fd;
  const short asked = t->watch_socket ? POLLRDHUP : POLLIN;
  const int events =
      co_await IoOp([fd, asked](Backend& b, Completion* op) { b.poll(op, fd, asked); });
  if (events < 0 || t->ending()) co_return;
  if (t->watch_socket && (events & (POLLHUP | POLLERR)) == 0) co_return;
  if (t->writer.buffered() > 0) {
    t->fail(os_error_ptr(EPIPE, "write to " + t->peer));
  } else {
    t->writer.close();
  }
}

// A connection's task: delivers, waits until the socket is closed, reports the end.
Coro<void> drive(std::shared_ptr<TransportState> t) {
  Task<> watch;
  if (t->watch_fd >= 0) watch = create_task(watch_reader(t));
  try {
    if (t->end != PipeEnd::write) co_await deliver(*t);
    t->parked.set();  // a start_tls waiting to begin: the connection is closing
    co_await t->writer.wait_closed();
    // The poll holds the pipe open in the kernel (so its reader would see no EOF) until it ends.
    if (watch.valid()) watch.cancel();
  } catch (const CancelledError&) {
    t->parked.set();
    if (watch.valid()) watch.cancel();
    // The loop is closing with the connection open: the socket goes, and the protocol is let go
    // of (it may hold the transport: a cycle otherwise) without connection_lost, as asyncio's
    // loop leaves an open transport to its finalizer.
    t->writer.abort();
    t->protocol.reset();
    throw;
  }
  // A send that failed while close() flushed is the connection's error too; after an abort,
  // the sends it cut short are not.
  if (!t->error && !t->aborted) t->error = write_error_of(t->writer);
  t->call("connection_lost", false, [&](Protocol& p) { p.connection_lost(t->error); });
  t->protocol.reset();
}

void check_protocol(const std::shared_ptr<Protocol>& protocol) {
  if (!protocol) throw std::invalid_argument("the protocol factory returned no protocol");
}

// The transport over a connection, with connection_made called.
std::shared_ptr<TransportState> open_transport(std::shared_ptr<Protocol> protocol,
                                               StreamReader reader, StreamWriter writer,
                                               PipeEnd end = PipeEnd::none) {
  check_protocol(protocol);
  auto t = std::make_shared<TransportState>(std::move(protocol), std::move(reader),
                                            std::move(writer), end);
  Transport handle(t);
  t->call("connection_made", true, [&](Protocol& p) { p.connection_made(handle); });
  return t;
}

}  // namespace

void TransportState::maybe_pause_writing() {
  if (writing_paused || writer.buffered() <= writer.get_write_buffer_limits().second) return;
  writing_paused = true;
  call("pause_writing", false, [](Protocol& p) { p.pause_writing(); });
  create_task(resume_when_drained(shared_from_this()));
}

Transport start_transport(std::shared_ptr<Protocol> protocol, StreamReader reader,
                          StreamWriter writer, PipeEnd end) {
  auto t = open_transport(std::move(protocol), std::move(reader), std::move(writer), end);
  create_task(drive(t));
  return Transport(std::move(t));
}

void check_pipe(int fd, const char* who) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) raise_os_error(errno, fmt::format("{}: fd {}", who, fd));
  if (!S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode) && !S_ISCHR(st.st_mode)) {
    throw std::invalid_argument(fmt::format(
        "{}: fd {} is not a pipe, a socket or a character device (pipe transports are for "
        "those only)",
        who, fd));
  }
}

Transport start_pipe_transport(std::shared_ptr<Protocol> protocol, int fd, PipeEnd end,
                               std::string name) {
  check_protocol(protocol);
  if (end == PipeEnd::write) {
    // As the Python interpreter does when it starts: a write to a pipe whose reader is gone is
    // then an error (EPIPE: BrokenPipeError), not the death of the process. Only the default
    // action is replaced; a handler the program installed stays.
    struct sigaction action {};
    if (::sigaction(SIGPIPE, nullptr, &action) == 0 && action.sa_handler == SIG_DFL)
      ::signal(SIGPIPE, SIG_IGN);
  }
  make_blocking(fd);  // a non-blocking pipe would end a read of an empty pipe with EAGAIN
  // Watched, as asyncio's: a pipe or FIFO open for writing only, or a socket (watch_reader).
  struct stat st {};
  const bool is_socket = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
  const bool watched =
      end == PipeEnd::write &&
      (is_socket || (S_ISFIFO(st.st_mode) && (::fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY));
  if (name.empty())
    name = fmt::format("{} pipe (fd {})", end == PipeEnd::read ? "read" : "write", fd);
  StreamRef stream = stream_of(fd, kDefaultStreamLimit, std::move(name), true);
  auto t = open_transport(std::move(protocol), StreamReader(stream), StreamWriter(stream), end);
  if (watched) {
    t->watch_fd = fd;
    t->watch_socket = is_socket;
  }
  create_task(drive(t));
  return Transport(std::move(t));
}

namespace {
// A server's connection: the protocol is made here, so that a factory that throws (or gives no
// protocol) is reported as asyncio reports it, and only that connection is closed.
Coro<void> serve_one(const ProtocolFactory& factory, StreamReader reader, StreamWriter writer) {
  std::shared_ptr<TransportState> t;
  try {
    t = open_transport(factory(), std::move(reader), std::move(writer));
  } catch (...) {
    get_running_loop().call_exception_handler(ExceptionContext(
        "Error on transport creation for incoming connection", std::current_exception()));
    co_return;  // the streams are gone: the socket is closed
  }
  co_await drive(std::move(t));
}
}  // namespace

ClientConnected serve_protocol(ProtocolFactory factory) {
  // The server keeps the handler, and with it the factory, for as long as it has connections.
  return [factory = std::move(factory)](StreamReader reader, StreamWriter writer) {
    return serve_one(factory, std::move(reader), std::move(writer));
  };
}

}  // namespace detail

// ---- Transport ----

detail::TransportState& Transport::state(const char* who) const {
  if (!s_) throw std::runtime_error(std::string(who) + ": not connected (default-constructed)");
  return *s_;
}

namespace {
// Whether a write goes ahead: not after close() or write_eof(); dropped once the connection is
// lost, as asyncio's write() is once its _conn_lost is set.
bool accepts_write(const detail::TransportState& t) {
  if (t.lost()) return false;
  if (t.ending()) throw std::runtime_error("Transport.write: the transport is closing");
  if (t.eof_written) throw std::runtime_error("Transport.write: write after write_eof()");
  return true;
}
}  // namespace

void Transport::write(std::string_view data) {
  detail::TransportState& t = state("Transport.write");
  t.check_can(detail::PipeEnd::write, "Transport.write");
  if (!accepts_write(t)) return;
  t.writer.write(data);
  t.maybe_pause_writing();
}

void Transport::write_owned(std::string data) {
  detail::TransportState& t = state("Transport.write");
  t.check_can(detail::PipeEnd::write, "Transport.write");
  if (!accepts_write(t)) return;
  t.writer.write(std::move(data));
  t.maybe_pause_writing();
}

void Transport::writelines(const std::vector<std::string>& pieces) {
  for (const std::string& piece : pieces)
    write(std::string_view(piece));
}

void Transport::write_eof() {
  detail::TransportState& t = state("Transport.write_eof");
  t.check_can(detail::PipeEnd::write, "Transport.write_eof");
  if (t.ending() || t.eof_written) return;
  if (t.end == detail::PipeEnd::write) {
    t.eof_written = true;
    close();  // a pipe's EOF is its close, after what is buffered
  } else {
    t.writer.write_eof();  // throws over TLS, which has no half-close
    t.eof_written = true;
  }
}

bool Transport::can_write_eof() const {
  const detail::TransportState& t = state("Transport.can_write_eof");
  return t.end == detail::PipeEnd::write ||
         (t.end == detail::PipeEnd::none && t.writer.can_write_eof());
}

std::optional<ssl::SSLObject> Transport::ssl_object() const {
  const detail::TransportState& t = state("Transport.ssl_object");
  if (t.end != detail::PipeEnd::none) return std::nullopt;
  return t.writer.ssl_object();
}

void Transport::close() {
  detail::TransportState& t = state("Transport.close");
  t.writer.close();
  t.wake.set();
}

void Transport::abort() {
  state("Transport.abort").abort();
}

bool Transport::is_closing() const {
  return state("Transport.is_closing").ending();
}

void Transport::pause_reading() {
  detail::TransportState& t = state("Transport.pause_reading");
  t.check_can(detail::PipeEnd::read, "Transport.pause_reading");
  if (!t.ending()) t.reading_paused = true;
}

void Transport::resume_reading() {
  detail::TransportState& t = state("Transport.resume_reading");
  t.check_can(detail::PipeEnd::read, "Transport.resume_reading");
  if (!t.reading_paused || t.ending()) return;
  t.reading_paused = false;
  t.wake.set();
}

bool Transport::is_reading() const {
  const detail::TransportState& t = state("Transport.is_reading");
  return !t.reading_paused && !t.ending() && t.end != detail::PipeEnd::write;
}

std::size_t Transport::get_write_buffer_size() const {
  const detail::TransportState& t = state("Transport.get_write_buffer_size");
  return t.aborted ? 0 : t.writer.buffered();  // a send cut short holds bytes that are dropped
}

void Transport::set_write_buffer_limits(std::optional<std::size_t> high,
                                        std::optional<std::size_t> low) {
  detail::TransportState& t = state("Transport.set_write_buffer_limits");
  t.check_can(detail::PipeEnd::write, "Transport.set_write_buffer_limits");
  detail::set_write_buffer_limits(t.writer, high, low, "Transport.set_write_buffer_limits");
  if (!t.ending()) t.maybe_pause_writing();
}

std::pair<std::size_t, std::size_t> Transport::get_write_buffer_limits() const {
  return state("Transport.get_write_buffer_limits").writer.get_write_buffer_limits();
}

std::string Transport::peername() const {
  return state("Transport.peername").peer;
}

std::string Transport::sockname() const {
  return state("Transport.sockname").writer.sockname();
}

// ---- start_tls ----

Coro<Transport> start_tls(Transport transport, std::shared_ptr<Protocol> protocol,
                          ssl::SSLContext context, StartTlsOptions options) {
  detail::TransportState& t = transport.state("start_tls");
  if (!protocol) throw std::invalid_argument("start_tls: no protocol");
  if (t.end != detail::PipeEnd::none)
    throw std::runtime_error("start_tls: a pipe's transport can not take TLS");
  if (t.ending()) throw std::runtime_error("start_tls: the transport is closing");
  if (t.upgrading) throw std::runtime_error("start_tls: already called on this transport");
  if (t.writer.ssl_object()) throw std::runtime_error("start_tls: the transport already uses TLS");
  ssl::detail::check_context(context, options.server_side, "start_tls");
  // The reading task stops: woken if it waits for resume_reading(), its receive interrupted if
  // one is in flight (what that receive brought is given back, the handshake's first bytes).
  t.upgrading = true;
  t.parked.clear();
  t.wake.set();
  detail::interrupt_read(t.reader);
  try {
    co_await t.parked.wait();
    if (t.ending())
      raise_os_error(ECONNRESET, "start_tls: the connection to " + t.peer + " closed");
    co_await detail::start_tls_on(t.writer, context, options.server_side, options.server_hostname,
                                  options.ssl_handshake_timeout);
  } catch (...) {
    // A handshake that failed has closed the connection: the old protocol's connection_lost
    // gets the error. A refused argument (a context of the wrong side) leaves it as it was.
    t.upgrading = false;
    t.wake.set();
    if (t.ending() && !t.error) {
      try {
        throw;
      } catch (const std::exception&) {
        t.error = std::current_exception();
      } catch (...) {  // CancelledError: the connection was aborted, not failed
      }
    }
    throw;
  }
  t.protocol = std::move(protocol);
  t.buffered = dynamic_cast<BufferedProtocol*>(t.protocol.get());
  t.upgrading = false;
  t.reading_paused = false;  // as asyncio's new transport, which reads from the start
  t.wake.set();
  co_return transport;
}

Coro<Transport> start_tls(Transport transport, std::shared_ptr<Protocol> protocol,
                          ssl::SSLContext context) {
  return start_tls(std::move(transport), std::move(protocol), std::move(context),
                   StartTlsOptions());
}

// ---- sendfile ----

Coro<std::size_t> sendfile(Transport transport, int file_fd, std::uint64_t offset,
                           std::optional<std::size_t> count) {
  detail::TransportState& t = transport.state("sendfile");
  t.check_can(detail::PipeEnd::write, "sendfile");
  if (t.ending() || t.lost()) throw std::runtime_error("sendfile: the transport is closing");
  if (t.eof_written) throw std::runtime_error("sendfile: the transport's write_eof() was called");
  co_return co_await t.writer.sendfile(file_fd, offset, count);
}

// ---- StreamReaderProtocol ----

StreamReaderProtocol::StreamReaderProtocol(StreamReader reader) : reader_(std::move(reader)) {
  detail::set_feed_flow(reader_, nullptr);  // a reader that is not fed fails here, not later
}

void StreamReaderProtocol::connection_made(Transport& transport) {
  // The reader holds the transport, which holds this protocol, until connection_lost (or the
  // transport's end, which lets go of the protocol) breaks the cycle.
  detail::set_feed_flow(reader_, [transport](bool pause) mutable {
    if (pause) {
      transport.pause_reading();
    } else {
      transport.resume_reading();
    }
  });
}

void StreamReaderProtocol::data_received(std::string data) {
  detail::feed_owned(reader_, std::move(data));
}

bool StreamReaderProtocol::eof_received() {
  reader_.feed_eof();
  return true;
}

void StreamReaderProtocol::connection_lost(std::exception_ptr error) {
  detail::set_feed_flow(reader_, nullptr);
  if (error) {
    reader_.set_exception(std::move(error));
  } else {
    reader_.feed_eof();
  }
}

// ---- servers ----

namespace {
ClientConnected protocol_handler(ProtocolFactory factory, const char* who) {
  if (!factory) throw std::invalid_argument(std::string(who) + ": no protocol factory");
  return detail::serve_protocol(std::move(factory));
}
}  // namespace

// (Each names the handler first: g++ 12 destroys a temporary inside co_await twice.)
Coro<Server> create_server(ProtocolFactory factory, std::string host, int port,
                           ServerOptions options) {
  ClientConnected handler = protocol_handler(std::move(factory), "create_server");
  co_return co_await start_server(std::move(handler), std::move(host), port, options);
}

Coro<Server> create_server(ProtocolFactory factory, Socket sock, ServerOptions options) {
  ClientConnected handler = protocol_handler(std::move(factory), "create_server");
  co_return co_await start_server(std::move(handler), sock, options);
}

Coro<Server> create_unix_server(ProtocolFactory factory, std::string path, ServerOptions options) {
  ClientConnected handler = protocol_handler(std::move(factory), "create_unix_server");
  co_return co_await start_unix_server(std::move(handler), std::move(path), options);
}

}  // namespace gilio::asyncio
