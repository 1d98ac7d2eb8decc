// gilio/asyncio/streams.hpp — TCP and Unix domain socket streams: open_connection,
// start_server, open_unix_connection, start_unix_server, StreamReader, StreamWriter; mirrors
// Lib/asyncio/streams.py.
//
// asyncio builds streams on a protocol that the selector loop feeds whenever the socket is
// readable. On io_uring the reader pulls instead: when a read needs more bytes than the buffer
// holds, it submits one recv of up to 64 KiB and awaits it. So a reader nobody reads from reads
// nothing — backpressure on the receiving side comes for free.
//
// The writer buffers: write() never waits; it appends and, if no send is in flight, submits one.
// drain() waits while more than the high-water mark (64 KiB) is buffered, until it falls below
// the low-water mark (16 KiB), as asyncio's flow control does — and rethrows a send error (a
// peer that vanished mid-write: ConnectionResetError or BrokenPipeError). close() flushes what
// is buffered, then shuts the socket down; abort() drops it and shuts down at once (a server's
// close_clients() and abort_clients() do the same to every connection it accepted);
// wait_closed() waits for either. write() after close() throws std::runtime_error, and drain()
// once close() has closed the socket throws ConnectionResetError (asyncio's drain() once the
// connection is lost).
//
// Reader edge cases, as asyncio: read(-1) reads to EOF; read(n) returns up to n bytes (fewer
// only at EOF); readexactly(n) throws IncompleteReadError (partial, expected) at EOF;
// readuntil(sep) throws IncompleteReadError at EOF and LimitOverrunError when the separator is
// not within the limit (64 KiB by default); readuntil({sep, ...}) takes several separators, as
// 3.13's does with a tuple, and stops at the match that ends first; readline() returns what is
// left at EOF and turns LimitOverrunError into std::invalid_argument (asyncio's ValueError). Two
// tasks reading at once is an error (std::runtime_error), as in asyncio.
//
// A stream is the loop's that opened it: a read, write(), drain() or wait_closed() from a task of
// another loop, or after that loop has ended, throws std::runtime_error (close(), is_closing()
// and peername() need no loop).
//
// The reads and drain() are awaited once per message in the loop of every stream server, so
// they are not coroutines: each returns a small awaitable (as Lock::acquire() does) that lives
// in the awaiting frame — no frame of its own to allocate, start and destroy, and one with
// nothing to wait for never suspends. Like a coroutine object, it does nothing until awaited,
// may be awaited once, and converts to a Coro (or goes to create_task, gather, wait_for) where
// one is wanted. The receive itself is an operation the stream owns, since a stream has at most
// one read in flight, and its completion keeps receiving until the read is settled — a line
// that arrives in five pieces wakes its reader once.
//
// One reader has no socket to pull from: StreamReader::fed(), asyncio's StreamReader() made by
// hand, which a StreamReaderProtocol (protocols.hpp) feeds with what a transport delivers — the
// asyncio recipe for reading a pipe as a stream. Its reads park the task until a feed settles
// them, and its flow control is asyncio's: it pauses the feeding transport while more than
// twice the limit waits unread.
#pragma once

#include <sys/socket.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/generators.hpp"
#include "gilio/asyncio/locks.hpp"
#include "gilio/ssl.hpp"

namespace gilio::asyncio {

inline constexpr std::size_t kDefaultStreamLimit = 64 * 1024;

namespace detail {
struct StreamState;
struct ServerState;
struct WriterAccess;  // runtime/streams.cpp: what a protocol's transport needs of its writer
struct ReaderAccess;  // runtime/streams.cpp: what a StreamReaderProtocol needs of its reader

// The reference count at the head of a StreamState (runtime/streams.cpp).
struct StreamCount {
  std::uint32_t refs = 0;
};

// A counted reference to a stream's state, held by its reader and writer, by every read and
// drain awaitable, and by a send in flight. The count is not atomic: a stream belongs to its
// loop's thread, as an asyncio stream does (with shared_ptr, every read and drain paid two
// locked instructions for a count no other thread touches).
class StreamRef {
 public:
  StreamRef() = default;
  explicit StreamRef(StreamCount* c) noexcept : c_(c) {
    if (c_ != nullptr) ++c_->refs;
  }
  StreamRef(const StreamRef& o) noexcept : StreamRef(o.c_) {}
  StreamRef(StreamRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  StreamRef& operator=(StreamRef o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~StreamRef() {
    if (c_ != nullptr && --c_->refs == 0) destroy(c_);
  }
  explicit operator bool() const noexcept { return c_ != nullptr; }
  StreamCount* count() const noexcept { return c_; }

 private:
  static void destroy(StreamCount* c) noexcept;
  StreamCount* c_ = nullptr;
};

// What a read waits for: some bytes, EOF, n bytes, or a separator (runtime/streams.cpp).
struct ReadWant {
  enum class Kind : unsigned char { some, all, exactly, until, line };
  ReadWant(Kind k, std::size_t count) noexcept : kind(k), n(count) {}
  ReadWant(Kind k, std::string sep) noexcept : kind(k), until(std::move(sep)) {}
  // readuntil with several separators: sorted shortest first, for find_separator.
  ReadWant(Kind k, std::vector<std::string> seps) noexcept;
  Kind kind;
  std::size_t n = 0;                 // some: at most n; exactly: n
  std::size_t searched = 0;          // until, line: no separator starts before this offset
  std::size_t matched = 0;           // until, line: the length of the separator found
  std::optional<std::string> until;  // readuntil's separator (readline's is "\n")
  std::vector<std::string> untils;   // readuntil's separators, when it was given several
  std::string_view separator() const {
    return kind == Kind::line ? std::string_view("\n") : std::string_view(*until);
  }
  // Whether the stream's buffer (or EOF) now settles the read. Also asked by the receive's
  // completion, which keeps receiving, without waking the task, until it does.
  bool settled(const StreamState& s);
  // until, line: where the separator starts in `buffer` (its length goes to `matched`), or npos
  // (then `searched` moves on). Of several separators, the match that ends first wins, and of
  // two that end at the same byte the shorter, as in asyncio.
  std::size_t find_separator(std::string_view buffer);
  std::size_t find_one_of(std::string_view buffer);
};
}  // namespace detail

class StreamReader {
 public:
  StreamReader() = default;
  explicit StreamReader(detail::StreamRef s) : s_(std::move(s)) {}

  // What read(), readline(), readexactly() and readuntil() return: co_await it for the bytes.
  class [[nodiscard]] Read {
   public:
    bool await_ready();
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      begin(detail::task_of(h), h);
    }
    std::string await_resume();
    operator Coro<std::string>() && { return detail::as_coro(std::move(*this)); }

   private:
    friend class StreamReader;
    template <class... Want>  // ReadWant's arguments: it is built in place, never moved
    Read(detail::StreamRef s, Want&&... want) noexcept
        : s_(std::move(s)), want_(std::forward<Want>(want)...) {}
    void begin(detail::TaskCore& task, std::coroutine_handle<> h);
    detail::StreamRef s_;
    detail::ReadWant want_;  // asked by the receive's completion too
    bool awaited_ = false;
    bool suspended_ = false;
  };

  Read read(long n = -1) {
    using K = detail::ReadWant::Kind;
    return Read(s_, n < 0 ? K::all : K::some, n < 0 ? 0 : static_cast<std::size_t>(n));
  }
  Read readline() { return Read(s_, detail::ReadWant::Kind::line, std::size_t{0}); }
  Read readexactly(std::size_t n) { return Read(s_, detail::ReadWant::Kind::exactly, n); }
  Read readuntil(std::string separator = "\n") {
    return Read(s_, detail::ReadWant::Kind::until, std::move(separator));
  }
  // Several separators (Python 3.13's tuple): the bytes up to and including whichever match ends
  // first. With g++ 12 a braced list cannot appear inside co_await (a compiler bug), so there
  // name the vector first.
  Read readuntil(std::vector<std::string> separators) {
    return Read(s_, detail::ReadWant::Kind::until, std::move(separators));
  }
  Read readuntil(std::initializer_list<std::string> separators) {
    return readuntil(std::vector<std::string>(separators));
  }
  bool at_eof() const;
  std::size_t limit() const;
  // `async for line in reader`: an async generator (generators.hpp) of the lines, each as
  // readline() gives it, until EOF — the last may lack its "\n". It holds the reader, so it may
  // outlive this handle.
  AsyncGenerator<std::string> aiter() const { return lines_of(*this); }

  // asyncio.StreamReader(limit) made by hand: a reader of no socket, whose bytes come from
  // feed_data() and whose end from feed_eof() — what a StreamReaderProtocol (protocols.hpp)
  // calls as its transport delivers, as in asyncio's recipe for reading a pipe as a stream. The
  // reads are the same; one waiting is woken when what was fed settles it. Needs a running
  // loop, whose reader it is.
  static StreamReader fed(std::size_t limit = kDefaultStreamLimit);
  // Appends bytes for the reads (std::runtime_error after feed_eof(), or on a reader of a
  // socket, which feeds itself). When more than twice the limit waits unread and no read is
  // waiting for more, the transport that feeds it is asked to pause_reading() until the reads
  // bring it down to the limit, as asyncio's flow control does.
  void feed_data(std::string_view data);
  // Nothing more will be fed: the reads see EOF once the buffer is read.
  void feed_eof();
  // Fails the reads: the one waiting now and every later one rethrow `error`, buffered bytes
  // or not, as asyncio's set_exception. exception() is what was set, or null.
  void set_exception(std::exception_ptr error);
  std::exception_ptr exception() const;

 private:
  friend struct detail::ReaderAccess;
  static AsyncGenerator<std::string> lines_of(StreamReader reader);
  detail::StreamRef s_;
};

class StreamWriter {
 public:
  StreamWriter() = default;
  explicit StreamWriter(detail::StreamRef s) : s_(std::move(s)) {}

  void write(std::string_view data);
  // A string passed with std::move is taken over rather than copied when nothing else waits to
  // be sent (a large write costs no copy).
  template <class S>
  requires std::same_as<S, std::string>
  void write(S&& data) { write_owned(std::move(data)); }
  // Writes each piece in order, as one write of them joined (asyncio's writelines).
  void writelines(const std::vector<std::string>& pieces);
  // Whether write_eof() can half-close: yes for a plain socket or a pipe; no over TLS, which has
  // no half-close (asyncio's can_write_eof()).
  bool can_write_eof() const;

  // What drain() returns: co_await it to wait while the buffer is above the high-water mark
  // (until it falls below the low-water mark); rethrows a send error.
  class [[nodiscard]] Drain final : public detail::SyncWaiter {
   public:
    explicit Drain(detail::StreamRef s) noexcept : s_(std::move(s)) {}
    Drain(Drain&&) noexcept = default;  // before it is awaited only, as every SyncWaiter
    bool await_ready();
    template <class P>
    void await_suspend(std::coroutine_handle<P> h) {
      park(waiters(), h);
    }
    void await_resume();
    operator Coro<void>() && { return detail::as_coro(std::move(*this)); }

   private:
    friend struct detail::WriterAccess;
    Drain(detail::StreamRef s, bool to_low_water) noexcept
        : s_(std::move(s)), to_low_water_(to_low_water) {}
    detail::List<detail::SyncWaiter>& waiters();
    detail::StreamRef s_;
    bool awaited_ = false;
    bool to_low_water_ = false;  // a Transport's: waits whenever above the low-water mark
  };

  Drain drain() { return Drain(s_); }
  // asyncio's loop.sendfile(writer.transport, file, offset, count): after what is buffered has
  // been sent, sends `count` bytes of the file `file_fd` from `offset` (std::nullopt: to its
  // end; a pipe: to its EOF) by splice, as loop.sock_sendfile does, and returns how many.
  // write() meanwhile throws, as asyncio's does; close() waits for it. The file's position is
  // left after the last byte sent. Errors are sock_sendfile's. Over TLS, and to a pipe (a
  // subprocess's stdin), it falls back to reading the file and writing it, as asyncio does.
  Coro<std::size_t> sendfile(int file_fd, std::uint64_t offset = 0,
                             std::optional<std::size_t> count = std::nullopt);
  // Sends FIN after the buffered data (half-close); reading goes on. Over TLS,
  // std::runtime_error (asyncio's NotImplementedError).
  void write_eof();
  // Sends what is buffered, then closes (asyncio's close()); wait_closed() waits for that. Over
  // TLS the close_notify alert goes first, after the buffered bytes; the peer's is not awaited.
  void close();
  // Closes at once, dropping what is buffered (asyncio's writer.transport.abort()): the socket is
  // shut down and closed now, or as soon as a send the kernel holds fails. A drain() waiting
  // meanwhile raises. No loop needed.
  void abort();
  Coro<void> wait_closed();
  bool is_closing() const;
  std::string peername() const;
  // The socket's own address, as peername() gives the peer's (get_extra_info('sockname')).
  std::string sockname() const;
  // asyncio's transport.set_write_buffer_limits(high, low): drain() waits while more than `high`
  // bytes are unsent, until no more than `low` are (64 KiB and 16 KiB at first). Given one, the
  // other follows as in asyncio (low = high / 4, high = 4 * low); low > high is
  // std::invalid_argument. get_write_buffer_limits() returns (low, high), asyncio's order.
  void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                               std::optional<std::size_t> low = std::nullopt);
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const;
  // Bytes written but not yet handed to the kernel (over TLS, counted encrypted).
  std::size_t buffered() const;

  // Python 3.11's writer.start_tls(): upgrades this connection to TLS in place — the reader and
  // writer go on, reading and writing plaintext — once the handshake, over the connection, is
  // done. The side is the stream's: a server's connection takes the server side (`context`
  // then a Protocol::TLS_SERVER one), any other the client side. `server_hostname` is the name
  // to check the certificate against (and to send as SNI): needed when the context checks host
  // names. Bytes already received and not read are the first of the handshake. Errors: an
  // SSLError (SSLCertVerificationError) for a handshake that fails, ConnectionAbortedError
  // past `ssl_handshake_timeout` seconds, ConnectionResetError if the peer closes meanwhile;
  // the connection is closed after each. std::runtime_error if already TLS, or while a read is
  // waiting.
  Coro<void> start_tls(ssl::SSLContext context, std::string server_hostname = "",
                       double ssl_handshake_timeout = 60.0);
  // The TLS connection's facts (asyncio's get_extra_info('ssl_object')); none for a plain one.
  std::optional<ssl::SSLObject> ssl_object() const;

 private:
  friend struct detail::WriterAccess;
  void write_owned(std::string data);
  detail::StreamRef s_;
};

// Connects to host:port (a name is resolved without blocking the loop; an empty host is the
// loopback addresses, as Python's None). A name with several addresses is tried address by
// address; if all fail, the error is that of the one address, or, when every address failed
// with the same errno, that errno's OSError naming them all — a ConnectionRefusedError stays
// one even when "localhost" is both ::1 and 127.0.0.1 (asyncio raises a plain OSError, "Multiple
// exceptions: ..."); mixed errnos give an OSError listing each (code(): the first one's).
Coro<std::pair<StreamReader, StreamWriter>> open_connection(
    std::string host, int port, std::size_t limit = kDefaultStreamLimit);

// open_connection's keyword arguments, as asyncio has them. With g++ 12, name the options before
// the co_await: a braced list inside one does not compile.
struct ConnectionOptions {
  std::size_t limit = kDefaultStreamLimit;
  // TLS: the streams are returned once the handshake is done, and read and write plaintext. A
  // Protocol::TLS_CLIENT context (ssl.hpp).
  std::optional<ssl::SSLContext> ssl;
  // The name the server's certificate must show, and the SNI sent: the host by default (a
  // Socket's or a Unix path's connection has none, so one must be given if the context checks
  // host names).
  std::optional<std::string> server_hostname;
  // How long the handshake may take before ConnectionAbortedError (asyncio's 60 s).
  double ssl_handshake_timeout = 60.0;
  // Happy Eyeballs (RFC 8305), for a host name with several addresses (open_connection and
  // create_connection with a host; refused by the others): with a delay, the next address is
  // tried once the attempts begun have run that many seconds without connecting — or at once
  // when one fails — and the first to connect wins, the others cancelled. Without one (the
  // default) each address is tried in turn, to its end. RFC 8305 recommends 0.25.
  std::optional<double> happy_eyeballs_delay;
  // Reorders the addresses by family before trying them: `interleave` of the first family, then
  // one of each in turn (RFC 8305's "First Address Family Count"); 0 keeps getaddrinfo's order.
  // asyncio's default: 1 with a happy_eyeballs_delay, else 0.
  std::optional<int> interleave;
  // When every address fails: an ExceptionGroup of each one's OSError (Python 3.12's
  // all_errors=True) instead of one OSError.
  bool all_errors = false;
  // Only the host's addresses of this family (AF_INET, AF_INET6); 0 (AF_UNSPEC): all.
  int family = 0;
  // Binds each socket before it connects, to an address of its family among those the host and
  // port (0: any) resolve to, as asyncio's local_addr=; OSError if none will take it.
  std::optional<std::pair<std::string, int>> local_addr;
};
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, int port,
                                                            ConnectionOptions options);

// A socket the caller made, for open_connection and start_server: asyncio's sock= argument. A
// socketpair's end, a socket a parent process passed down, one systemd opened. On success the
// streams (or the server) own it and close it; it is put in blocking mode, which io_uring's
// operations want, and TCP's gets TCP_NODELAY. On an error it is left as it was, the caller's.
struct Socket {
  int fd = -1;
};

// Streams over a connected stream socket (TCP or Unix). std::invalid_argument if it is not a
// stream socket, is a listening one or is not connected; OSError if it is no socket at all.
Coro<std::pair<StreamReader, StreamWriter>> open_connection(
    Socket sock, std::size_t limit = kDefaultStreamLimit);
// With options.ssl, the socket is the streams' once taken over, so a handshake that fails
// closes it.
Coro<std::pair<StreamReader, StreamWriter>> open_connection(Socket sock, ConnectionOptions options);

// Connects to the Unix domain socket at `path` (asyncio.open_unix_connection); a path that
// starts with '\0' names a socket in Linux's abstract namespace. FileNotFoundError if there is
// no socket there, ConnectionRefusedError if nothing listens on it.
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(
    std::string path, std::size_t limit = kDefaultStreamLimit);
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectionOptions options);

using ClientConnected = std::function<Coro<void>(StreamReader, StreamWriter)>;

// start_server's and start_unix_server's keyword arguments, as asyncio has them. With g++ 12,
// name the options before the co_await: a braced list inside one does not compile.
struct ServerOptions {
  std::size_t limit = kDefaultStreamLimit;  // each connection's StreamReader limit
  // listen(2)'s backlog. asyncio's default is 100; gilio's is the kernel's most (SOMAXCONN,
  // 4096), so that a burst of connections waits in the queue rather than retrying its SYN.
  int backlog = SOMAXCONN;
  // SO_REUSEPORT (TCP only): several servers — in several processes, or on several loops — bind
  // the same port, and the kernel spreads the connections among them.
  bool reuse_port = false;
  // SO_KEEPALIVE on the listening sockets, which every accepted connection inherits: the kernel
  // probes a connection that has been idle (two hours by default, net.ipv4.tcp_keepalive_time)
  // and resets it if the peer has gone (asyncio 3.13's keep_alive; TCP only).
  bool keep_alive = false;
  // false: the socket is bound but neither listens nor accepts until start_serving() or
  // serve_forever(); connecting meanwhile is refused.
  bool start_serving = true;
  // TLS: a Protocol::TLS_SERVER context with its certificate loaded (else std::invalid_argument
  // at the start). Each connection's handshake runs before its handler; one that fails or
  // times out closes that connection and the handler never runs (asyncio logs it only in debug
  // mode, as gilio does).
  std::optional<ssl::SSLContext> ssl;
  double ssl_handshake_timeout = 60.0;  // seconds, per connection
  // Only the host's addresses of this family (AF_INET, AF_INET6); 0 (AF_UNSPEC): all — for an
  // empty host, every interface of both families.
  int family = 0;
};

// asyncio.Server: a copyable handle.
class Server {
 public:
  Server() = default;
  explicit Server(std::shared_ptr<detail::ServerState> s) : s_(std::move(s)) {}
  // The port it listens on (useful with port 0, which picks a free one); 0 for a Unix server.
  int port() const;
  bool is_serving() const;
  // Listens and accepts, for a server made with start_serving = false; nothing if it already
  // serves; std::runtime_error once closed. (asyncio's is a coroutine; nothing here waits.)
  void start_serving();
  // Serves — starting to, if it has not — until cancelled (then closes) or until close().
  Coro<void> serve_forever();
  // Stops accepting and closes the listening sockets; connections go on.
  void close();
  // Closes every connection the server accepted that is still open, as each StreamWriter's
  // close() would: what is buffered is sent first (asyncio 3.13's Server.close_clients()).
  // Call close() first, or a client accepted after it stays open.
  void close_clients();
  // The same with abort(): at once, dropping what is buffered (Server.abort_clients()).
  void abort_clients();
  // Waits until the server is closed and every connection handler has finished.
  Coro<void> wait_closed();

 private:
  std::shared_ptr<detail::ServerState> s_;
};

// Listens on host:port ("": every interface, IPv4 and IPv6, as asyncio's None; "0.0.0.0": every
// IPv4 one; "::": every IPv6 one; a name: each of its addresses, all on one port — with port 0,
// one the kernel finds free in every family asked for) and runs handler(reader, writer) as a
// task for each connection. An exception from a handler goes to the loop's exception handler
// and closes that connection only. (With g++ 12, pass a capturing lambda as a named variable,
// not as a temporary inside the co_await expression: g++ 12 destroys such a temporary twice.)
Coro<Server> start_server(ClientConnected handler, std::string host, int port,
                          std::size_t limit = kDefaultStreamLimit);
Coro<Server> start_server(ClientConnected handler, std::string host, int port,
                          ServerOptions options);
// Serves on a stream socket the caller bound (TCP or Unix), listening or not yet: the server
// listens on it and closes it at close(). A Unix socket's file is left where it is.
Coro<Server> start_server(ClientConnected handler, Socket sock,
                          std::size_t limit = kDefaultStreamLimit);
Coro<Server> start_server(ClientConnected handler, Socket sock, ServerOptions options);

// Listens on a Unix domain socket at `path` ('\0' first: the abstract namespace), as
// asyncio.start_unix_server: a socket file already there (left by an earlier server) is
// replaced, a file of another kind is an error (EADDRINUSE), and close() removes the socket
// file (asyncio 3.13's cleanup_socket) unless another server has replaced it meanwhile.
Coro<Server> start_unix_server(ClientConnected handler, std::string path,
                               std::size_t limit = kDefaultStreamLimit);
Coro<Server> start_unix_server(ClientConnected handler, std::string path, ServerOptions options);

}  // namespace gilio::asyncio
