// runtime/streams.cpp — StreamReader, StreamWriter, open_connection, start_server and their Unix
// domain socket twins; mirrors Lib/asyncio/streams.py (and the transport half of
// selector_events.py, and the Unix server of unix_events.py).
//
// One StreamState per connection, shared by its reader and writer (and kept alive by an
// operation in flight) through StreamRef, a count without atomics: a stream is its loop's. Reading:
// the state owns one pooled recv (IoOp) at a time; its completion appends the bytes to the buffer
// and gives the kernel's buffer back to the ring, and queues it again until what the read wants
// (ReadWant: some bytes, n bytes, a separator, EOF) is there. The reads are awaitables, not
// coroutines: each starts that recv straight from the awaiting frame, and its task wakes once, when
// the read is settled. Writing: the pending bytes move to `inflight`, whose memory stays put while
// the kernel sends from it; the send's completion (SendOp) continues a partial send, starts the
// next batch, wakes drain() waiters, and finishes a requested close. Serving: one multishot
// accept per listening socket feeds a dispatcher task that starts a handler per connection; an
// accept that fails for want of descriptors waits a second before it accepts again, as
// selector_events' _accept_connection does (ServerState). A child process's stdout and stderr
// are streams too (subprocess.cpp): a pipe's read end, read with a pooled read instead of a recv;
// so are the pipes of pipe transports (protocols.cpp), written with a write instead of a send.
#include <fcntl.h>
#include <fmt/core.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "big_string.hpp"
#include "gilio/asyncio.hpp"
#include "gilio/asyncio/streams.hpp"
#include "io_op.hpp"
#include "net.hpp"
#include "tls.hpp"
#include "uring.hpp"

namespace gilio::asyncio {
namespace detail {

namespace {
constexpr std::size_t kHighWater = 64 * 1024;
constexpr std::size_t kLowWater = 16 * 1024;

}  // namespace

// The bytes received and not yet read: a string, and how much of its front was read already.
// Reading from the front advances `head_` instead of moving the rest down: a readline loop
// over a full 32 KiB receive was a memmove of 16 KiB on average per line, over half of its time
// (CPython's bytearray does the same: deleting from its front moves its start). The bytes move
// only once the read part is half the string, so each byte moves at most once on average.
class RecvBuffer {
 public:
  std::string_view view() const noexcept { return std::string_view(s_).substr(head_); }
  std::size_t size() const noexcept { return s_.size() - head_; }
  bool empty() const noexcept { return s_.size() == head_; }
  std::string& tail() noexcept { return s_; }  // append only: the new bytes go at the end
  // Room for n more bytes at the end; a string past a MiB grows into populated pages
  // (big_string.hpp), leaving the part already read behind.
  void reserve_more(std::size_t n) {
    if (s_.size() + n <= s_.capacity()) [[likely]]
      return;
    if (head_ != 0) compact();
    detail::reserve_more(s_, n);
  }
  // n <= size().
  [[gnu::always_inline]] std::string take_front(std::size_t n) {
    if (n >= kPopulateFrom) [[unlikely]]
      return take_big(n);
    std::string out(s_.data() + head_, n);
    drop_front(n);
    return out;
  }
  // n <= size().
  [[gnu::always_inline]] void drop_front(std::size_t n) noexcept {
    head_ += n;
    if (head_ == s_.size()) {
      clear();
    } else if (head_ >= s_.size() / 2) [[unlikely]] {
      compact();
    }
  }
  void append(std::string_view data) {
    reserve_more(data.size());
    s_.append(data);
  }
  // Puts bytes taken by a read back in front of those still here (loop.start_tls hands the
  // handshake what a transport's read took: net.hpp's unread).
  void unread(std::string_view front) {
    compact();
    s_.insert(0, front);
  }
  // The same for a string given up: into an empty buffer it is taken whole, not copied.
  void append(std::string&& data) {
    if (!empty()) return append(std::string_view(data));
    s_ = std::move(data);
    head_ = 0;
  }
  std::string take_all() {
    s_.erase(0, head_);
    head_ = 0;
    return std::exchange(s_, {});
  }
  void clear() noexcept {
    s_.clear();
    head_ = 0;
  }

 private:
  [[gnu::noinline]] void compact() noexcept {
    s_.erase(0, head_);
    head_ = 0;
  }
  // A big read: all of the buffer is handed over as it is; part of it, copied into populated
  // pages.
  [[gnu::noinline]] std::string take_big(std::size_t n) {
    if (head_ == 0 && n == s_.size()) return std::exchange(s_, {});
    std::string out = copy_of(view().substr(0, n));
    drop_front(n);
    return out;
  }
  std::string s_;
  std::size_t head_ = 0;
};

// A server's connection is also linked into its ServerState's list of clients (ListNode), for
// close_clients(); the link goes with the state, and the server holds no reference.
struct StreamState : StreamCount, ListNode {
  // The completion of the send in flight.
  struct SendOp final : Completion {
    StreamState* owner = nullptr;
    void complete(int result, std::uint32_t) override { owner->on_sent(result); }
  };

  StreamState(EventLoop* l, int f, std::size_t lim) : StreamState(l, f, lim, peer_of(f), false) {}
  StreamState(EventLoop* l, int f, std::size_t lim, std::string name, bool is_pipe)
      : loop(l), fd(f), limit(lim), pipe(is_pipe), peer(std::move(name)) {
    send_op.owner = this;
  }
  ~StreamState() {
    if (fd >= 0) ::close(fd);
  }

  EventLoop* loop;
  int fd;
  std::size_t limit;
  bool pipe;         // not a socket (a pipe, a FIFO, a terminal): read and write, not recv and send
  std::string peer;  // in messages: "host:port", a socket path, "stdout of process 42"

  RecvBuffer buffer;  // received, not yet read
  bool eof = false;
  bool reading = false;

  std::string pending;   // written, not yet handed to the kernel
  std::string inflight;  // being sent now (stable memory)
  std::size_t inflight_sent = 0;
  std::size_t high_water = kHighWater;  // drain() waits above this (set_write_buffer_limits)
  std::size_t low_water = kLowWater;    // until the unsent bytes fall to this
  bool sending = false;                 // a send in flight, or a sendfile
  bool sendfile_busy = false;  // StreamWriter::sendfile has begun and not ended: write() refuses
  Event* on_idle = nullptr;    // a sendfile waiting for the sends before it: set when they end
  Event* transport_wake = nullptr;  // a Transport's (protocols.cpp): set at the close
  bool closing = false;
  bool eof_requested = false;
  bool eof_sent = false;
  std::exception_ptr write_error;
  SendOp send_op;
  StreamRef self;  // keeps us alive while a send is in flight
  List<SyncWaiter> drainers;
  Event closed;
  // A TLS stream's engine (tls.hpp), once its handshake is done: `buffer` then holds what it
  // decrypted, `pending` what it encrypted. Null for a plain stream.
  std::shared_ptr<ssl::detail::TlsSession> tls;
  bool server_side = false;  // a server's connection: start_tls takes the server's side

  std::size_t unsent() const { return pending.size() + (inflight.size() - inflight_sent); }

  // Receiving: one pooled recv at a time, appended to `buffer` inside its completion, which also
  // returns the kernel's buffer to the ring at once. The operation is the stream's own (a
  // stream has one read in flight at most); whoever awaits it holds a reference to the stream
  // until it completes, and what the read wants lives in that awaiter's frame. The completion
  // queues the recv again, without waking the reader, when the ring was empty (-ENOBUFS left the
  // data in the socket) and when the bytes that came do not settle the read yet (a read to EOF,
  // a line not yet whole); `settled` records which it was, for the rare completion that could
  // not queue the recv again.
  struct RecvPrep {
    int fd;
    bool pipe;
    void operator()(Backend& b, Completion* op) const {
      pipe ? b.read_pooled(op, fd) : b.recv_pooled(op, fd);
    }
  };
  struct RecvHook {
    StreamState* s;
    ReadWant* want;
    bool operator()(int result, std::uint32_t flags) const {
      if (s->tls) [[unlikely]]
        return s->received_tls(result, flags, *want);
      if (result > 0) s->buffer.reserve_more(static_cast<std::size_t>(result));
      s->loop->backend().take_buffer(result, flags, s->buffer.tail());
      // Bytes came: that settles a read(n) at once (the common case, kept off the switch).
      s->settled = result <= 0 || want->kind == ReadWant::Kind::some || want->settled(*s);
      return result != -ENOBUFS && s->settled;
    }
  };
  std::optional<IoOp<RecvPrep, RecvHook>> recv;
  bool settled = false;

  // TLS: a receive brings ciphertext, which goes to the engine; the reads see what it decrypts,
  // so a receive that completes no record settles nothing and is queued again.
  [[gnu::noinline]] bool received_tls(int result, std::uint32_t flags, ReadWant& want) {
    thread_local std::string cipher;
    cipher.clear();
    loop->backend().take_buffer(result, flags, cipher);
    if (result > 0) {
      tls->feed(cipher);
      decrypt_fed();
    }
    settled = result <= 0 || tls->error() || want.settled(*this);
    return result != -ENOBUFS && settled;
  }
  // Decrypts the records fed so far into `buffer`: the peer's close_notify is the stream's EOF,
  // and records the engine answers (a TLS 1.3 key update) are sent.
  void decrypt_fed() {
    std::string out;
    if (tls->decrypt(buffer.tail(), out) == ssl::detail::TlsSession::Read::closed) eof = true;
    if (!out.empty() && fd >= 0 && !closing && !write_error) {
      pending += out;
      if (!sending && !sendfile_busy) start_send();
    }
  }
  // A TLS stream whose engine failed (a bad record, a fatal alert) fails its reads.
  void check_tls() const {
    if (tls && tls->error()) [[unlikely]]
      std::rethrow_exception(tls->error());
  }

  // A reader fed by hand (StreamReader::fed) has no descriptor: a read that the buffer does not
  // settle parks its task here until feed_data, feed_eof or set_exception settles it. Flow
  // control is asyncio's (StreamReader._maybe_resume_transport): above twice the limit unread,
  // with no read waiting for more, the feeding transport is paused; a read that brings the
  // buffer down to the limit, or one that must wait for more, resumes it. (A read waiting for
  // more is never left waiting on a paused transport: read(-1) would wait forever.)
  struct Feed {
    List<SyncWaiter> waiting;        // holds `waiter` while it waits (declared first: outlives it)
    SyncWaiter waiter;               // the read waiting, if any (one at most)
    ReadWant* want = nullptr;        // what that read wants
    std::exception_ptr error;        // set_exception's
    std::function<void(bool)> flow;  // the transport's pause_reading (true) or resume_reading
    bool paused = false;
  };
  std::unique_ptr<Feed> feed;  // a fed reader's; null for a socket's or a pipe's

  void check_readable() const {
    if (reading) throw std::runtime_error("read() called while another task is already reading");
    if (fd < 0 && !feed) throw std::runtime_error("read from a closed stream");
    check_tls();
  }
  void check_fed() const {
    if (feed->error) std::rethrow_exception(feed->error);
  }
  void park_fed(TaskCore& task, std::coroutine_handle<> h, ReadWant& want) {
    feed->want = &want;
    reading = true;
    if (feed->paused) set_flow(false);  // the read needs more than is here: let it come
    feed->waiter.park(feed->waiting, task, h);
  }
  void end_fed_wait() {
    reading = false;
    feed->want = nullptr;
    feed->waiter.task()->resume_check(feed->waiter.cancelled());  // CancelledError if cancelled
    check_fed();
  }
  // Something was fed: wake the read waiting if that settles it; else pause a transport that
  // has fed more than twice the limit, unless a read waits for still more.
  void fed_more() {
    Feed& f = *feed;
    if (f.waiter.linked()) {
      if (f.error || f.want->settled(*this)) f.waiter.wake_up();
      return;
    }
    if (!f.paused && buffer.size() > 2 * limit) set_flow(true);
  }
  // After a read: a paused transport resumes once the buffer is down to the limit.
  void maybe_resume_feed() noexcept {
    if (feed->paused && buffer.size() <= limit) set_flow(false);
  }
  void set_flow(bool pause) noexcept {
    if (!feed->flow) return;
    feed->paused = pause;
    try {
      feed->flow(pause);
    } catch (...) {  // a transport that cannot pause: fed without flow control, as asyncio does
      feed->flow = nullptr;
      feed->paused = false;
    }
  }
  // net.hpp's interrupt_read: the receive in flight is cancelled, and ends in ReadInterrupted
  // unless it completed first (then its bytes are the read's, as always).
  bool interrupted = false;
  void interrupt_read() {
    if (!reading || feed || interrupted || fd < 0) return;
    interrupted = true;
    loop->backend().cancel(&*recv);
  }
  void begin_recv(TaskCore& task, std::coroutine_handle<> h, ReadWant& want) {
    recv.emplace(RecvPrep{fd, pipe}, RecvHook{this, &want});
    recv->start(task, h);
    reading = true;
  }
  void end_recv() {
    reading = false;
    const bool was_interrupted = std::exchange(interrupted, false);
    int n = recv->await_resume();  // throws CancelledError if cancelled
    if (was_interrupted && (n == -ECANCELED || n == -EINTR)) throw ReadInterrupted{};
    // A receive that our own close cut short (a pipe's read cancelled; a socket's reset by a
    // peer that answered after our shutdown, as a TLS peer answers close_notify): the end.
    if (n < 0 && fd < 0) n = 0;
    if (n < 0) raise_os_error(-n, (pipe ? "read from " : "recv from ") + peer);
    if (n == 0) eof = true;  // over TLS without a close_notify too, as asyncio takes it
    check_tls();
  }

  void start_send() {
    inflight.swap(pending);
    pending.clear();
    inflight_sent = 0;
    sending = true;
    if (!self) self = StreamRef(this);
    submit_send();
  }
  void submit_send() {
    const std::size_t left = inflight.size() - inflight_sent;
    const char* from = inflight.data() + inflight_sent;
    if (pipe) {
      loop->backend().write(&send_op, fd, from, clamp_io_len(left), kNoOffset);
    } else {
      loop->backend().send(&send_op, fd, from, clamp_io_len(left));
    }
  }
  void on_sent(int result) {
    if (result < 0) {
      write_error = os_error_ptr(-result, (pipe ? "write to " : "send to ") + peer);
      pending.clear();
      inflight.clear();
      inflight_sent = 0;
      sending = false;
      if (transport_wake != nullptr) closing = true;  // fatal for a transport: closed below
    } else {
      inflight_sent += static_cast<std::size_t>(result);
      if (inflight_sent < inflight.size()) {
        submit_send();
        return;
      }
      inflight.clear();
      inflight_sent = 0;
      if (!pending.empty()) {
        start_send();
        wake_drainers();
        return;
      }
    }
    auto last = std::move(self);  // perhaps the last reference: we may die on return
    sent_all();
  }
  // The last send (or a sendfile) has ended: what waited for that goes on — a sendfile first,
  // if one waits for its turn; then a write_eof() or a close() that came meanwhile.
  void sent_all() {
    sending = false;
    if (on_idle != nullptr) on_idle->set();
    wake_drainers();
    if (sendfile_busy) return;
    if (eof_requested && !eof_sent) shutdown_write();
    if (closing) finish_close();
  }
  void wake_drainers() {
    if (write_error || unsent() <= low_water) {
      while (wake_first(drainers)) {
      }
    }
  }
  // close(): after what is buffered has been sent — and over TLS, after the close_notify.
  void close() {
    if (closing) return;
    if (tls && fd >= 0 && !write_error) {
      tls->shutdown(pending);
      if (!pending.empty() && !sending && !sendfile_busy) start_send();
    }
    closing = true;
    if (!sending && !sendfile_busy) finish_close();
  }
  // abort(): at once. A send the kernel holds keeps `inflight` until it completes; the shutdown
  // (a pipe has none: a cancel) makes it fail now, and its completion finishes the close.
  void abort() {
    pending.clear();
    closing = true;
    if (!sending) {
      finish_close();
    } else if (pipe) {
      if (!sendfile_busy) loop->backend().cancel(&send_op);
    } else if (fd >= 0) {
      ::shutdown(fd, SHUT_RDWR);
    }
  }
  // A socket closed with bytes it never read resets the connection, and the kernel drops what it
  // has not yet sent: the last writes (over TLS, the close_notify too). asyncio's transport reads
  // whatever comes, so its close finds nothing unread and sends a FIN; a stream here receives
  // only when a read asks, so it reads and drops what has arrived before it closes (a bounded
  // amount: a flood can not hold it). A TLS peer always leaves such bytes: TLS 1.3's session
  // tickets, which only a read consumes.
  void discard_unread() const noexcept {
    char sink[16 * 1024];
    for (int i = 0; i < 64 && ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
  }
  void shutdown_write() {
    eof_sent = true;
    if (fd >= 0 && !pipe) ::shutdown(fd, SHUT_WR);
  }
  void finish_close() {
    if (fd >= 0) {
      if (!pipe) {
        discard_unread();
        ::shutdown(fd, SHUT_RDWR);  // wakes a recv in flight (it completes with 0)
      } else if (reading) {
        loop->backend().cancel(&*recv);  // a read in flight ends (-ECANCELED: end_recv's EOF)
      }
      ::close(fd);
      fd = -1;
    }
    eof = true;
    closed.set();
    if (transport_wake != nullptr) transport_wake->set();
  }
};

void StreamRef::destroy(StreamCount* c) noexcept {
  delete static_cast<StreamState*>(c);
}

// asyncio's constants.ACCEPT_RETRY_DELAY: how long a server whose accept failed for want of
// descriptors or memory waits before it accepts again.
constexpr double kAcceptRetryDelay = 1.0;

// Errors that concern one connection, not the server: accept again at once, quietly (asyncio
// ignores ConnectionAbortedError; accept(2) asks to treat the network errors it passes on from
// the new connection like EAGAIN).
bool accept_error_is_passing(int err) {
  switch (err) {
    case EAGAIN:
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENETUNREACH:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENONET:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
      return true;
    default:
      return false;
  }
}

// A server accepts with one multishot accept per listening socket: one submission, and a
// completion for every connection, until it is cancelled. The completions queue the new
// sockets; one dispatcher task turns each into a handler task.
//
// An accept that fails for want of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) ends the
// multishot, and accepting again at once would fail again at once — the connection waiting in
// the backlog is still there, the descriptors still used up — so the loop would do nothing but
// fail and report. As asyncio's _accept_connection does, the server reports it once and a small
// task accepts again a second later; by then a handler may have closed its connection.
struct ServerState : std::enable_shared_from_this<ServerState> {
  struct MultishotAccept final : Completion {
    ServerState* owner = nullptr;
    int fd = -1;
    bool armed = false;
    Task<void> retry;  // accept_later, after a failure for want of resources
    void complete(int result, std::uint32_t flags) override {
      owner->on_accept(*this, result, flags);
    }
  };

  EventLoop* loop = nullptr;
  ClientConnected handler;
  std::size_t limit = kDefaultStreamLimit;
  int backlog = SOMAXCONN;
  std::vector<int> listeners;
  std::vector<std::unique_ptr<MultishotAccept>> accepts;
  std::shared_ptr<ServerState> self;  // while an accept is armed
  std::deque<int> accepted;
  Event have_accepted;
  int port = 0;
  std::string where;      // "port N" or "unix socket PATH", for messages
  bool tcp = true;        // else a Unix domain socket (no TCP_NODELAY to set)
  std::string unix_path;  // a Unix server's socket file, removed by close() if still ours
  dev_t unix_dev = 0;
  ino_t unix_ino = 0;
  Event accepts_ended;  // set when the last accept has had its last completion
  Task<void> dispatcher;
  std::vector<Task<void>> connections;  // handler tasks, the finished ones swept out now and then
  std::size_t sweep_at = 64;            // sweep when there are this many
  List<StreamState> clients;            // the accepted connections' streams, while they exist
  std::optional<ssl::SSLContext> ssl;   // TLS: each connection's handshake precedes its handler
  double ssl_handshake_timeout = 60.0;
  bool serving = false;
  Event closed;

  ~ServerState() {
    for (int fd : accepted)
      ::close(fd);
    for (int fd : listeners)
      ::close(fd);
    remove_socket_file();  // a server never closed, or one whose start failed after its bind
  }
  // A Unix server's socket file goes with it (asyncio 3.13's cleanup_socket) — unless another
  // server has put its own in its place meanwhile. Once only.
  void remove_socket_file() noexcept {
    struct stat st;
    if (!unix_path.empty() && ::stat(unix_path.c_str(), &st) == 0 && st.st_dev == unix_dev &&
        st.st_ino == unix_ino) {
      ::unlink(unix_path.c_str());
    }
    unix_path.clear();
  }
  bool any_armed() const {
    return std::any_of(accepts.begin(), accepts.end(), [](const auto& a) { return a->armed; });
  }
  void arm(MultishotAccept& a) {
    loop->backend().accept_multishot(&a, a.fd);
    a.armed = true;
    if (!self) self = shared_from_this();
  }
  void on_accept(MultishotAccept& a, int result, std::uint32_t flags) {
    auto keep = self;  // dropping the self-reference below must not destroy us mid-call
    bool wait_first = false;
    if (result >= 0) {
      if (serving) {
        accepted.push_back(result);
        have_accepted.set();
      } else {
        ::close(result);
      }
    } else if (result != -ECANCELED && !accept_error_is_passing(-result)) {
      wait_first = true;
      ExceptionContext report(
          fmt::format("accept on {} failed; accepting again in {} s", where, kAcceptRetryDelay),
          os_error_ptr(-result, "accept on " + where));
      report.socket = a.fd;
      loop->call_exception_handler_soon(std::move(report));
    }
    if (!(flags & kCompletionMore)) {
      // The kernel ended the multishot (an error, or the cancel of close()).
      a.armed = false;
      if (serving && result != -ECANCELED && loop->is_running()) {
        if (wait_first) {
          a.retry = loop->create_task(accept_later(shared_from_this(), &a));
        } else {
          arm(a);
        }
      }
      if (!any_armed()) {
        self.reset();  // a waiting accept_later holds the state itself
        if (!serving) accepts_ended.set();
      }
    }
  }
  static Coro<void> accept_later(std::shared_ptr<ServerState> state, MultishotAccept* a) {
    co_await sleep(kAcceptRetryDelay);
    if (state->serving) state->arm(*a);  // close() cancels us first
  }
};

}  // namespace detail

// ---- StreamReader ----

namespace {
// The state behind a reader, writer or server; a default-constructed one has none.
[[noreturn]] void not_connected(const char* what) {
  throw std::runtime_error(std::string(what) + ": not connected (default-constructed)");
}
detail::ServerState& connected(const std::shared_ptr<detail::ServerState>& s, const char* what) {
  if (!s) not_connected(what);
  return *s;
}
// The state behind a reference known to have one (an awaitable's, once await_ready passed).
detail::StreamState& state_of(const detail::StreamRef& s) noexcept {
  return static_cast<detail::StreamState&>(*s.count());
}
detail::StreamState& connected(const detail::StreamRef& s, const char* what) {
  if (!s) not_connected(what);
  return state_of(s);
}
// The same, for an operation that goes through the stream's loop — a read, a write, a drain, a
// wait for the close. A stream is its loop's: its operations use that loop's ring and wake that
// loop's tasks, so a task of another loop (another thread), or code that runs after its loop has
// ended, gets std::runtime_error instead of touching a ring that is not its own or is gone.
detail::StreamState& on_its_loop(const detail::StreamRef& ref, const char* what) {
  detail::StreamState& s = connected(ref, what);
  const EventLoop* here = running_loop();
  if (s.loop == here) [[likely]]
    return s;
  if (here == nullptr) {
    throw std::runtime_error(std::string(what) +
                             ": no running event loop (a stream is used on the loop that opened "
                             "it, while that loop runs)");
  }
  throw std::runtime_error(std::string(what) + ": the stream belongs to a different event loop");
}
}  // namespace

namespace detail {

ReadWant::ReadWant(Kind k, std::vector<std::string> seps) noexcept
    : kind(k), untils(std::move(seps)) {
  std::stable_sort(untils.begin(), untils.end(),
                   [](const std::string& a, const std::string& b) { return a.size() < b.size(); });
}

std::size_t ReadWant::find_separator(std::string_view buffer) {
  if (!untils.empty()) [[unlikely]]
    return find_one_of(buffer);
  const std::string_view sep = separator();
  if (buffer.size() < searched + sep.size()) return std::string::npos;
  const std::size_t at = buffer.find(sep, searched);
  if (at == std::string::npos) {
    searched = buffer.size() + 1 - sep.size();
  } else {
    matched = sep.size();
  }
  return at;
}

std::size_t ReadWant::find_one_of(std::string_view buffer) {
  // untils is sorted shortest first: a later match must end strictly sooner to win.
  if (buffer.size() < searched + untils.front().size()) return std::string::npos;
  std::size_t start = std::string::npos, end = std::string::npos;
  for (const std::string& sep : untils) {
    const std::size_t at = buffer.find(sep, searched);
    if (at != std::string::npos && at + sep.size() < end) {
      start = at;
      end = at + sep.size();
    }
  }
  if (start == std::string::npos) {
    // No separator starts before the last (longest - 1) bytes: none can end in what is here.
    const std::size_t longest = untils.back().size();
    if (buffer.size() + 1 > longest) searched = std::max(searched, buffer.size() + 1 - longest);
  } else {
    matched = end - start;
  }
  return start;
}

[[gnu::always_inline]] inline bool ReadWant::settled(const StreamState& s) {
  switch (kind) {
    case Kind::some:
      return n == 0 || s.eof || !s.buffer.empty();
    case Kind::all:
      return s.eof;
    case Kind::exactly:
      return s.eof || s.buffer.size() >= n;
    case Kind::until:
    case Kind::line:
      return find_separator(s.buffer.view()) != std::string::npos || searched > s.limit || s.eof;
  }
  return true;
}

namespace {

// A settled readuntil's or readline's answer, or its error (asyncio's rules; the header's
// essay).
[[gnu::noinline]] std::string answer_separated(StreamState& s, ReadWant& w) {
  const std::size_t at = w.find_separator(s.buffer.view());
  std::size_t consumed = 0;
  const char* overrun = nullptr;
  if (at == std::string::npos && w.searched > s.limit) {
    overrun = "Separator is not found, and chunk exceed the limit";
    consumed = w.searched;
  } else if (at != std::string::npos && at > s.limit) {
    overrun = "Separator is found, but chunk is longer than limit";
    consumed = at;
  }
  if (w.kind == ReadWant::Kind::until) {
    if (overrun != nullptr) throw LimitOverrunError(overrun, consumed);
    if (at == std::string::npos) {  // EOF first
      throw IncompleteReadError(s.buffer.take_all(), std::string::npos);
    }
    return s.buffer.take_front(at + w.matched);
  }
  // readline: at EOF the last line comes without its newline; a line over the limit is dropped
  // (up to its newline if that is in the buffer, else the whole buffer) and is asyncio's
  // ValueError.
  if (overrun != nullptr) {
    if (s.buffer.view().substr(consumed, 1) == "\n") {
      s.buffer.drop_front(consumed + 1);
    } else {
      s.buffer.clear();
    }
    throw std::invalid_argument(overrun);
  }
  if (at == std::string::npos) return s.buffer.take_all();
  return s.buffer.take_front(at + 1);
}

void check_separators(const ReadWant& w) {
  if (w.until ? w.until->empty() : w.untils.empty() || w.untils.front().empty()) {
    throw std::invalid_argument(w.until || !w.untils.empty() ? "readuntil: the separator is empty"
                                                             : "readuntil: no separator given");
  }
}

const char* method_name(ReadWant::Kind kind) {
  static constexpr const char* kNames[] = {"StreamReader.read", "StreamReader.read",
                                           "StreamReader.readexactly", "StreamReader.readuntil",
                                           "StreamReader.readline"};  // in Kind's order
  return kNames[static_cast<int>(kind)];
}

}  // namespace
}  // namespace detail

bool StreamReader::Read::await_ready() {
  detail::StreamState& s = on_its_loop(s_, detail::method_name(want_.kind));
  detail::first_await(awaited_, detail::method_name(want_.kind));
  if (want_.kind == detail::ReadWant::Kind::until) detail::check_separators(want_);
  if (want_.kind == detail::ReadWant::Kind::exactly &&
      want_.n > static_cast<std::size_t>(PTRDIFF_MAX)) [[unlikely]] {
    throw std::invalid_argument("readexactly: the size can not be less than zero");
  }
  if (s.feed) [[unlikely]]
    s.check_fed();  // an exception set fails the read, bytes buffered or not (asyncio's rule)
  if (want_.settled(s)) return true;
  s.check_readable();
  return false;
}

void StreamReader::Read::begin(detail::TaskCore& task, std::coroutine_handle<> h) {
  detail::StreamState& s = state_of(s_);
  if (s.feed) [[unlikely]] {
    s.park_fed(task, h, want_);
  } else {
    s.begin_recv(task, h, want_);
  }
  suspended_ = true;
}

namespace {
// A fed reader's flow control looks again once a read has taken its bytes (or failed).
struct ResumeFeedAfter {
  detail::StreamState* s;
  ~ResumeFeedAfter() {
    if (s != nullptr) s->maybe_resume_feed();
  }
};
}  // namespace

std::string StreamReader::Read::await_resume() {
  using Kind = detail::ReadWant::Kind;
  detail::StreamState& s = state_of(s_);
  const ResumeFeedAfter resume_feed{s.feed ? &s : nullptr};
  if (suspended_) {
    if (s.feed) [[unlikely]] {
      s.end_fed_wait();
    } else {
      s.end_recv();
      if (!s.settled) {  // the completion could not queue the receive again
        throw std::runtime_error(std::string(detail::method_name(want_.kind)) +
                                 ": the receive could not be queued again");
      }
    }
  }
  detail::RecvBuffer& b = s.buffer;
  switch (want_.kind) {
    case Kind::some:
      return b.take_front(std::min(want_.n, b.size()));
    case Kind::all:  // only at EOF: all of it
      return b.take_all();
    case Kind::exactly:
      if (b.size() < want_.n) throw IncompleteReadError(b.take_all(), want_.n);
      return b.take_front(want_.n);
    case Kind::until:
    case Kind::line:
      break;
  }
  return detail::answer_separated(s, want_);
}

bool StreamReader::at_eof() const {
  const detail::StreamState& s = connected(s_, "StreamReader.at_eof");
  return s.eof && s.buffer.empty();
}
std::size_t StreamReader::limit() const {
  return connected(s_, "StreamReader.limit").limit;
}

// asyncio's StreamReader.__anext__: readline() until it gives b"".
AsyncGenerator<std::string> StreamReader::lines_of(StreamReader reader) {
  for (;;) {
    std::string line = co_await reader.readline();
    if (line.empty()) co_return;
    co_yield std::move(line);
  }
}

StreamReader StreamReader::fed(std::size_t limit) {
  if (limit == 0) throw std::invalid_argument("StreamReader.fed: the limit must be above 0");
  detail::StreamRef ref(
      new detail::StreamState(&get_running_loop(), -1, limit, "a fed StreamReader", false));
  state_of(ref).feed = std::make_unique<detail::StreamState::Feed>();
  return StreamReader(std::move(ref));
}

namespace {
detail::StreamState& fed_state(const detail::StreamRef& ref, const char* who) {
  detail::StreamState& s = on_its_loop(ref, who);
  if (!s.feed) {
    throw std::runtime_error(std::string(who) +
                             ": this reader reads its own socket or pipe; only one made by "
                             "StreamReader::fed() is fed");
  }
  return s;
}

// feed_data's work, for a view (copied in) or a string given up (taken if the buffer is empty).
template <class Bytes>
void feed(const detail::StreamRef& ref, Bytes&& data) {
  detail::StreamState& s = fed_state(ref, "StreamReader.feed_data");
  if (s.eof) throw std::runtime_error("StreamReader.feed_data after feed_eof()");
  if (data.empty()) return;
  s.buffer.append(std::forward<Bytes>(data));
  s.fed_more();
}
}  // namespace

void StreamReader::feed_data(std::string_view data) {
  feed(s_, data);
}

void StreamReader::feed_eof() {
  detail::StreamState& s = fed_state(s_, "StreamReader.feed_eof");
  s.eof = true;
  s.fed_more();
}

void StreamReader::set_exception(std::exception_ptr error) {
  detail::StreamState& s = fed_state(s_, "StreamReader.set_exception");
  if (!error) throw std::invalid_argument("StreamReader.set_exception: no exception given");
  s.feed->error = std::move(error);
  s.fed_more();
}

std::exception_ptr StreamReader::exception() const {
  const detail::StreamState& s = connected(s_, "StreamReader.exception");
  return s.feed ? s.feed->error : nullptr;
}

// ---- StreamWriter ----

namespace {
detail::StreamState& writable(const detail::StreamRef& ref, const char* who) {
  detail::StreamState& s = on_its_loop(ref, who);
  if (s.closing || s.fd < 0) throw std::runtime_error(std::string(who) + ": the writer is closed");
  if (s.eof_requested) throw std::runtime_error(std::string(who) + ": write after write_eof()");
  if (s.write_error) std::rethrow_exception(s.write_error);
  if (s.sendfile_busy) {  // asyncio's message
    throw std::runtime_error(std::string(who) + ": unable to write; sendfile is in progress");
  }
  return s;
}
}  // namespace

void StreamWriter::write(std::string_view data) {
  detail::StreamState& s = writable(s_, "StreamWriter.write");
  if (data.empty()) return;
  if (s.tls) [[unlikely]] {
    s.tls->encrypt(data, s.pending);
  } else {
    detail::reserve_more(s.pending, data.size());
    s.pending.append(data);
  }
  if (!s.sending) s.start_send();
}

void StreamWriter::writelines(const std::vector<std::string>& pieces) {
  for (const std::string& piece : pieces)
    write(std::string_view(piece));
}

void StreamWriter::write_owned(std::string data) {
  detail::StreamState& s = writable(s_, "StreamWriter.write");
  if (data.empty()) return;
  if (s.tls) [[unlikely]]
    return write(std::string_view(data));  // encrypted into the pending bytes: nothing to take
  if (s.pending.empty()) {
    s.pending = std::move(data);  // the common case: sent from the caller's own memory
  } else {
    detail::reserve_more(s.pending, data.size());
    s.pending.append(data);
  }
  if (!s.sending) s.start_send();
}

bool StreamWriter::Drain::await_ready() {
  const detail::StreamState& s = on_its_loop(s_, "StreamWriter.drain");
  detail::first_await(awaited_, "StreamWriter.drain");
  if (s.write_error) return true;  // rethrown by await_resume
  // Closed already (asyncio: the connection is lost): nothing will ever drain.
  if (s.fd < 0) {
    raise_os_error(ECONNRESET,
                   "StreamWriter.drain after close() (connection to " + s.peer + " lost)");
  }
  return s.unsent() <= (to_low_water_ ? s.low_water : s.high_water);
}

detail::List<detail::SyncWaiter>& StreamWriter::Drain::waiters() {
  return state_of(s_).drainers;  // woken together once the buffer is below the low-water mark
}

void StreamWriter::Drain::await_resume() {
  if (parked()) task()->resume_check(cancelled());
  const detail::StreamState& s = state_of(s_);
  if (s.write_error) std::rethrow_exception(s.write_error);
}

bool StreamWriter::can_write_eof() const {
  return !connected(s_, "StreamWriter.can_write_eof").tls;
}

void StreamWriter::write_eof() {
  detail::StreamState& s = connected(s_, "StreamWriter.write_eof");
  if (s.tls) {  // asyncio's NotImplementedError
    throw std::runtime_error("StreamWriter.write_eof: a TLS stream can not half-close");
  }
  if (s.eof_requested) return;
  s.eof_requested = true;
  if (!s.sending && !s.sendfile_busy) s.shutdown_write();
}

void StreamWriter::close() {
  connected(s_, "StreamWriter.close").close();
}

void StreamWriter::abort() {
  connected(s_, "StreamWriter.abort").abort();
}

namespace {
// A sendfile's hold on its stream: it marks the stream busy while it lives, and however the
// sendfile ends — done, failed, cancelled, or its frame destroyed at the loop's close — lets go
// of what it set.
class SendfileHold {
 public:
  explicit SendfileHold(detail::StreamState& s) : s_(s) { s_.sendfile_busy = true; }
  SendfileHold(const SendfileHold&) = delete;
  SendfileHold& operator=(const SendfileHold&) = delete;
  ~SendfileHold() {
    s_.on_idle = nullptr;
    s_.sendfile_busy = false;
    // A close() or write_eof() that came meanwhile happens now — or, if the sendfile never got
    // its turn, when the send it waited for ends.
    if (sending_ || !s_.sending) s_.sent_all();
  }
  // The sends before it are done: from now on the sendfile is the stream's send.
  void start() { s_.sending = sending_ = true; }

 private:
  detail::StreamState& s_;
  bool sending_ = false;
};
}  // namespace

namespace {
// sendfile over TLS, where the kernel can not splice (the bytes must be encrypted), and to a
// pipe: asyncio's _sendfile_fallback — the file read a chunk at a time through the ring, each
// chunk written and drained.
Coro<std::size_t> send_file_by_writes(StreamWriter writer, int file_fd, std::uint64_t offset,
                                      std::optional<std::size_t> count) {
  constexpr std::size_t kChunk = 256 * 1024;
  const bool seekable = detail::sendfile_source_seekable(file_fd, offset, "StreamWriter.sendfile");
  std::string chunk;
  std::size_t total = 0;
  while (!count || total < *count) {
    const std::size_t want = count ? std::min(kChunk, *count - total) : kChunk;
    chunk.resize(want);
    char* into = chunk.data();
    const std::uint64_t at = seekable ? offset + total : detail::kNoOffset;
    const int n = co_await detail::IoOp([=](detail::Backend& b, detail::Completion* op) {
      b.read(op, file_fd, into, static_cast<unsigned>(want), at);
    });
    if (n < 0) raise_os_error(-n, fmt::format("StreamWriter.sendfile: read from fd {}", file_fd));
    if (n == 0) break;
    chunk.resize(static_cast<std::size_t>(n));
    writer.write(std::string_view(chunk));
    total += static_cast<std::size_t>(n);
    co_await writer.drain();
  }
  if (seekable) ::lseek(file_fd, static_cast<off_t>(offset + total), SEEK_SET);
  co_return total;
}
}  // namespace

Coro<std::size_t> StreamWriter::sendfile(int file_fd, std::uint64_t offset,
                                         std::optional<std::size_t> count) {
  const detail::StreamRef keep = s_;
  detail::StreamState& s = writable(keep, "StreamWriter.sendfile");
  if (s.pipe) {  // a subprocess's stdin, a write pipe's transport: no splice to a socket
    detail::check_sendfile_source(file_fd, offset, count, "StreamWriter.sendfile");
    co_return co_await send_file_by_writes(*this, file_fd, offset, count);
  }
  detail::check_sendfile(s.fd, file_fd, offset, count, "StreamWriter.sendfile");  // before waiting
  if (s.tls) co_return co_await send_file_by_writes(*this, file_fd, offset, count);
  SendfileHold hold(s);
  if (s.sending) {  // what was written before goes first
    Event idle;
    s.on_idle = &idle;
    co_await idle.wait();
    s.on_idle = nullptr;
    if (s.write_error) std::rethrow_exception(s.write_error);
    if (s.fd < 0) throw std::runtime_error("StreamWriter.sendfile: the writer is closed");
  }
  hold.start();
  co_return co_await s.loop->sock_sendfile(s.fd, file_fd, offset, count);
}

Coro<void> StreamWriter::wait_closed() {
  const detail::StreamRef keep = s_;
  co_await on_its_loop(keep, "StreamWriter.wait_closed").closed.wait();
}

bool StreamWriter::is_closing() const {
  return connected(s_, "StreamWriter.is_closing").closing;
}
std::string StreamWriter::peername() const {
  return connected(s_, "StreamWriter.peername").peer;
}
std::string StreamWriter::sockname() const {
  const detail::StreamState& s = connected(s_, "StreamWriter.sockname");
  if (s.fd < 0) throw std::runtime_error("StreamWriter.sockname: the writer is closed");
  return detail::name_of(s.fd);
}

void StreamWriter::set_write_buffer_limits(std::optional<std::size_t> high,
                                           std::optional<std::size_t> low) {
  detail::set_write_buffer_limits(*this, high, low, "StreamWriter.set_write_buffer_limits");
}

std::pair<std::size_t, std::size_t> StreamWriter::get_write_buffer_limits() const {
  const detail::StreamState& s = connected(s_, "StreamWriter.get_write_buffer_limits");
  return {s.low_water, s.high_water};
}
std::size_t StreamWriter::buffered() const {
  return connected(s_, "StreamWriter.buffered").unsent();
}

std::optional<ssl::SSLObject> StreamWriter::ssl_object() const {
  const detail::StreamState& s = connected(s_, "StreamWriter.ssl_object");
  if (!s.tls) return std::nullopt;
  return ssl::SSLObject(s.tls);
}

namespace detail {
struct WriterAccess {
  static StreamState& of(const StreamWriter& w) { return connected(w.s_, "Transport"); }
  static const StreamRef& state(const StreamWriter& w) { return w.s_; }
  static StreamWriter::Drain to_low_water(const StreamWriter& w) {
    return StreamWriter::Drain(w.s_, true);
  }
};
Coro<void> drain_to_low_water(const StreamWriter& writer) {
  co_await WriterAccess::to_low_water(writer);
}
void bind_transport(const StreamWriter& writer, Event* wake) {
  WriterAccess::of(writer).transport_wake = wake;
}
std::exception_ptr write_error_of(const StreamWriter& writer) {
  return WriterAccess::of(writer).write_error;
}
struct ReaderAccess {
  static StreamState& fed(const StreamReader& r, const char* who) { return fed_state(r.s_, who); }
  static const StreamRef& state(const StreamReader& r) { return r.s_; }
  static void feed_owned(const StreamReader& r, std::string data) { feed(r.s_, std::move(data)); }
};
void feed_owned(const StreamReader& reader, std::string data) {
  ReaderAccess::feed_owned(reader, std::move(data));
}
void set_feed_flow(const StreamReader& reader, std::function<void(bool)> flow) {
  StreamState& s = ReaderAccess::fed(reader, "StreamReaderProtocol");
  s.feed->flow = std::move(flow);
  s.feed->paused = false;
}
void set_write_buffer_limits(const StreamWriter& writer, std::optional<std::size_t> high,
                             std::optional<std::size_t> low, const char* who) {
  StreamState& s = connected(WriterAccess::state(writer), who);
  // asyncio's _FlowControlMixin._set_write_buffer_limits: either one follows from the other.
  const std::size_t h = high ? *high : low ? 4 * *low : kHighWater;
  const std::size_t l = low ? *low : h / 4;
  if (l > h) {
    throw std::invalid_argument(
        fmt::format("{}: high ({}) must be >= low ({}) must be >= 0", who, h, l));
  }
  s.high_water = h;
  s.low_water = l;
  s.wake_drainers();  // a drain() waiting may be done under the new limits
}
}  // namespace detail

// ---- TLS ----

namespace {

using ssl::detail::TlsSession;

// asyncio's check of ssl_handshake_timeout, made before anything connects or listens.
void check_handshake_timeout(double timeout, const char* who) {
  if (!(timeout > 0)) {
    throw std::invalid_argument(
        fmt::format("{}: ssl_handshake_timeout should be a positive number, got {}", who, timeout));
  }
}

// The handshake, over the stream's plain reads and writes: each flight the engine produces is
// written, each answer read and fed, until it is done; then the stream turns TLS on. Bytes that
// came behind the peer's last handshake message are its first records: decrypted at once, or a
// read would wait for bytes that are already here.
Coro<void> handshake(detail::StreamRef ref, std::shared_ptr<TlsSession> tls) {
  detail::StreamState& s = state_of(ref);
  StreamReader reader(ref);
  StreamWriter writer(ref);
  std::string out;
  for (;;) {
    out.clear();
    const TlsSession::Progress step = tls->handshake(out);
    if (!out.empty()) writer.write(std::string_view(out));
    if (step == TlsSession::Progress::done) break;
    if (step == TlsSession::Progress::failed) std::rethrow_exception(tls->error());
    const std::string cipher = co_await reader.read(kDefaultStreamLimit);
    if (cipher.empty()) {
      raise_os_error(ECONNRESET,
                     "TLS handshake with " + s.peer + ": the peer closed the connection");
    }
    tls->feed(cipher);
  }
  s.tls = std::move(tls);
  if (!s.buffer.empty()) s.tls->feed(s.buffer.take_all());
  s.decrypt_fed();
}

// The handshake within `timeout` seconds; however it fails, the connection is closed (after the
// alert the engine may have for the peer), and past the timeout it is aborted, as asyncio's
// sslproto does.
Coro<void> secure(detail::StreamRef ref, std::shared_ptr<TlsSession> tls, double timeout) {
  const std::string peer = state_of(ref).peer;
  std::exception_ptr error;
  bool timed_out = false;
  try {
    Coro<void> steps = handshake(ref, std::move(tls));
    co_await wait_for(std::move(steps), timeout);
  } catch (const TimeoutError&) {
    timed_out = true;
  } catch (const CancelledError&) {
    state_of(ref).abort();
    throw;
  } catch (...) {
    error = std::current_exception();
  }
  if (timed_out) {
    state_of(ref).abort();
    raise_os_error(ECONNABORTED,
                   fmt::format("TLS handshake with {} is taking longer than {} seconds: aborting "
                               "the connection",
                               peer, timeout));
  }
  if (error) {
    state_of(ref).close();
    std::rethrow_exception(error);
  }
}

// open_connection's and open_unix_connection's TLS, on the streams just connected.
Coro<std::pair<StreamReader, StreamWriter>> secured(std::pair<StreamReader, StreamWriter> streams,
                                                    std::shared_ptr<TlsSession> tls,
                                                    double timeout) {
  if (tls) co_await secure(detail::ReaderAccess::state(streams.first), std::move(tls), timeout);
  co_return streams;
}

// A client's engine, made before connecting so that a context that can not work fails first.
std::shared_ptr<TlsSession> client_session(const ConnectionOptions& options,
                                           const std::string& default_hostname,
                                           const std::string& peer) {
  if (!options.ssl) {
    if (options.server_hostname)
      throw std::invalid_argument("server_hostname is only meaningful with ssl");
    return nullptr;
  }
  check_handshake_timeout(options.ssl_handshake_timeout, "open_connection");
  return std::make_shared<TlsSession>(*options.ssl, false,
                                      options.server_hostname.value_or(default_hostname), peer);
}

// StreamWriter::start_tls, and loop.start_tls on a transport's stream (which names its side).
Coro<void> upgrade(detail::StreamRef keep, const ssl::SSLContext& context,
                   std::optional<bool> server_side, const std::string& server_hostname,
                   double ssl_handshake_timeout, const char* who) {
  detail::StreamState& s = writable(keep, who);
  if (s.tls) throw std::runtime_error(fmt::format("{}: the stream already uses TLS", who));
  if (s.pipe) throw std::runtime_error(fmt::format("{}: the stream is not a socket", who));
  if (s.reading) {
    throw std::runtime_error(
        fmt::format("{}: a task is reading the stream; its read must end first", who));
  }
  check_handshake_timeout(ssl_handshake_timeout, who);
  auto tls = std::make_shared<TlsSession>(context, server_side.value_or(s.server_side),
                                          server_hostname, s.peer);
  co_await secure(std::move(keep), std::move(tls), ssl_handshake_timeout);
}

}  // namespace

Coro<void> StreamWriter::start_tls(ssl::SSLContext context, std::string server_hostname,
                                   double ssl_handshake_timeout) {
  co_await upgrade(s_, context, std::nullopt, server_hostname, ssl_handshake_timeout,
                   "StreamWriter.start_tls");
}

namespace detail {
Coro<void> start_tls_on(const StreamWriter& writer, const ssl::SSLContext& context,
                        bool server_side, const std::string& server_hostname,
                        double ssl_handshake_timeout) {
  co_await upgrade(WriterAccess::state(writer), context, server_side, server_hostname,
                   ssl_handshake_timeout, "start_tls");
}
std::vector<sockaddr_storage> interleaved(const std::vector<sockaddr_storage>& addresses,
                                          int first_count) {
  std::vector<std::vector<sockaddr_storage>> families;
  for (const sockaddr_storage& ss : addresses) {
    auto same = std::find_if(families.begin(), families.end(),
                             [&](const auto& f) { return f[0].ss_family == ss.ss_family; });
    if (same == families.end()) {
      families.emplace_back(1, ss);
    } else {
      same->push_back(ss);
    }
  }
  std::vector<sockaddr_storage> out;
  std::vector<std::size_t> taken(families.size(), 0);
  while (static_cast<int>(taken[0]) < first_count - 1 && taken[0] < families[0].size())
    out.push_back(families[0][taken[0]++]);
  while (out.size() < addresses.size()) {
    for (std::size_t f = 0; f < families.size(); ++f) {
      if (taken[f] < families[f].size()) out.push_back(families[f][taken[f]++]);
    }
  }
  return out;
}

void interrupt_read(const StreamReader& reader) {
  state_of(ReaderAccess::state(reader)).interrupt_read();
}
void unread(const StreamReader& reader, std::string_view bytes) {
  if (!bytes.empty()) state_of(ReaderAccess::state(reader)).buffer.unread(bytes);
}
}  // namespace detail

// ---- connections and servers ----

namespace {

int make_socket(int family) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) raise_os_error(errno, "socket");
  return fd;
}

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// A socket the caller made (open_connection's and start_server's Socket): checked to be a stream
// socket, `listening` or not, while it is still the caller's. Returns its family.
int check_callers_socket(Socket sock, bool listening, const char* who) {
  const int fd = sock.fd;
  if (fd < 0) throw std::invalid_argument(fmt::format("{}: {} is no descriptor", who, fd));
  const int type = detail::socket_option(fd, SO_TYPE);
  if (type < 0) raise_os_error(errno, fmt::format("{}: fd {}", who, fd));  // ENOTSOCK, EBADF
  if (type != SOCK_STREAM)
    throw std::invalid_argument(fmt::format("{}: fd {} is not a stream socket", who, fd));
  if (!listening) {
    if (detail::socket_option(fd, SO_ACCEPTCONN) == 1)
      throw std::invalid_argument(fmt::format("{}: fd {} is a listening socket", who, fd));
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0)
      throw std::invalid_argument(fmt::format("{}: fd {} is not connected", who, fd));
  }
  return detail::socket_option(fd, SO_DOMAIN);
}

// Taking over a caller's socket: it is made blocking, as the runtime's own sockets are.
void take_over(int fd, int family) {
  detail::make_blocking(fd);
  if (family == AF_INET || family == AF_INET6) set_nodelay(fd);
}

}  // namespace

namespace detail {
// Asyncio does the reverse, for its readiness loop. On Linux 6.18 a recv or an accept on a
// non-blocking socket still waits in io_uring, but a splice ends with EAGAIN (sock_sendfile polls
// for that), a read of an empty pipe ends with EAGAIN, and older kernels honoured the flag in
// more operations; blocking, the kernel always waits.
void make_blocking(int fd) {
  if (const int flags = ::fcntl(fd, F_GETFL); flags >= 0 && (flags & O_NONBLOCK) != 0)
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}
}  // namespace detail

namespace detail {
StreamRef stream_of(int fd, std::size_t limit, std::string name, bool pipe) {
  return StreamRef(new StreamState(&get_running_loop(), fd, limit, std::move(name), pipe));
}
}  // namespace detail

namespace {

// A connected socket's reader and writer; a server's connection is also linked into `clients`.
std::pair<StreamReader, StreamWriter> make_streams(
    int fd, std::size_t limit, detail::List<detail::StreamState>* clients = nullptr) {
  const detail::StreamRef state(new detail::StreamState(&get_running_loop(), fd, limit));
  if (clients != nullptr) {
    clients->push_back(&state_of(state));
    state_of(state).server_side = true;
  }
  return {StreamReader(state), StreamWriter(state)};
}

// Binds `fd`, a new socket for `to`, to the first of `locals` of its family that will take it;
// else closes it and throws the last bind's OSError, or EAFNOSUPPORT if none is of its family.
void bind_local(int fd, const sockaddr_storage& to, const std::vector<sockaddr_storage>& locals) {
  int err = 0;
  const sockaddr_storage* tried = nullptr;
  for (const sockaddr_storage& local : locals) {
    if (local.ss_family != to.ss_family) continue;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), detail::address_length(local)) == 0)
      return;
    err = errno;
    tried = &local;
  }
  ::close(fd);
  if (tried != nullptr) raise_os_error(err, "bind to local address " + detail::where_of(*tried));
  raise_os_error(EAFNOSUPPORT,
                 "connect to " + detail::where_of(to) + ": no local_addr address of its family");
}

// A new socket connected to `ss`: its descriptor, or -errno (a socket that could not be made,
// or that failed to connect and was closed again). Cancelled, it closes the socket before the
// CancelledError goes on. `ss` is a copy: a Happy Eyeballs attempt may outlive its caller.
// With `locals` (local_addr's addresses), it is first bound to one of its family, as asyncio's
// create_connection binds: an OSError if none will do.
Coro<int> connect_new_socket(sockaddr_storage ss, std::vector<sockaddr_storage> locals) {
  const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) co_return -errno;  // EAFNOSUPPORT where IPv6 is off: the next address may do
  if (!locals.empty()) bind_local(fd, ss, locals);
  int err = 0;
  try {
    err = co_await detail::connect_to(fd, ss);
  } catch (...) {  // cancelled
    ::close(fd);
    throw;
  }
  if (err == 0) co_return fd;
  ::close(fd);
  co_return -err;
}

// What open_connection tries, and how (ConnectionOptions' Happy Eyeballs fields).
struct Attempts {
  std::string target;  // "host:port", for the errors
  std::vector<sockaddr_storage> addresses;
  std::vector<std::exception_ptr> errors;  // each address's, in the addresses' order
  std::vector<int> connect_errno;          // ... its connect's errno; 0: it failed before
  std::vector<sockaddr_storage> locals;    // local_addr's addresses, if given
  // The error of an attempt whose connect failed with errno `err`.
  void failed(std::size_t i, int err) {
    connect_errno[i] = err;
    std::string what = "connect to " + target;
    if (addresses.size() > 1) {
      what += " at " + detail::where_of(addresses[i]);
    }
    errors[i] = detail::os_error_ptr(err, what);
  }
};

// A Happy Eyeballs attempt let go of (cancelled, or beaten by another): if it connects anyway,
// its socket is closed.
void close_if_connected(Task<int> attempt) {
  if (!attempt.cancelled() && attempt.exception() == nullptr && attempt.result() >= 0)
    ::close(attempt.result());
}

// asyncio's staggered_race over the addresses: an attempt starts, and the next one starts when
// `delay` seconds pass with none connected, or at once when one fails; the first to connect
// wins and the others are cancelled. A negative delay never starts the next early: each address
// is tried in turn, to its end (asyncio's way without Happy Eyeballs). Returns the descriptor,
// or -1 if every attempt failed.
Coro<int> connect_staggered(Attempts& a, double delay) {
  struct Running {
    Task<int> task;
    std::size_t index;
  };
  std::vector<Running> running;
  std::size_t next = 0;
  int winner = -1;
  std::exception_ptr interrupted;  // a CancelledError of the whole race
  try {
    while (winner < 0) {
      if (next < a.addresses.size()) {
        running.push_back(
            Running{create_task(connect_new_socket(a.addresses[next], a.locals)), next});
        ++next;
      }
      if (running.empty()) break;  // every address has failed
      std::vector<Task<int>> tasks;
      for (const Running& r : running)
        tasks.push_back(r.task);
      auto first = wait(std::move(tasks), ReturnWhen::FIRST_COMPLETED,
                        next < a.addresses.size() ? delay : -1.0);
      co_await first;
      std::vector<Running> still;
      for (Running& r : running) {
        if (!r.task.done()) {
          still.push_back(std::move(r));
          continue;
        }
        if (r.task.exception() != nullptr) {  // no local address would do
          a.errors[r.index] = r.task.exception();
          continue;
        }
        const int fd = r.task.result();
        if (fd >= 0 && winner < 0) {
          winner = fd;
        } else if (fd >= 0) {
          ::close(fd);  // two connected in the same turn: the first in order wins
        } else {
          a.failed(r.index, -fd);
        }
      }
      running = std::move(still);
    }
  } catch (...) {
    interrupted = std::current_exception();
  }
  for (Running& r : running) {
    r.task.add_done_callback(close_if_connected);
    r.task.cancel();
  }
  if (interrupted) {
    if (winner >= 0) ::close(winner);
    std::rethrow_exception(interrupted);
  }
  co_return winner;
}

// When every address failed: asyncio's choice of error (see open_connection in streams.hpp).
[[noreturn]] void raise_connect_errors(Attempts& a, bool all_errors) {
  std::vector<std::exception_ptr> errors;
  bool one_connect_errno = true;  // every attempt's connect failed, each with the same errno
  int first_errno = 0;
  for (std::size_t i = 0; i < a.errors.size(); ++i) {
    if (!a.errors[i]) continue;
    if (errors.empty()) first_errno = a.connect_errno[i];
    one_connect_errno =
        one_connect_errno && a.connect_errno[i] != 0 && a.connect_errno[i] == first_errno;
    errors.push_back(a.errors[i]);
  }
  if (errors.empty()) raise_os_error(EADDRNOTAVAIL, "connect to " + a.target + ": no address");
  if (all_errors) throw ExceptionGroup("create_connection failed", std::move(errors));
  if (errors.size() == 1) std::rethrow_exception(errors[0]);
  if (one_connect_errno) {
    std::string tried;
    for (const sockaddr_storage& ss : a.addresses)
      tried += (tried.empty() ? "" : ", ") + detail::where_of(ss);
    raise_os_error(first_errno, "connect to " + a.target + " at each of " + tried);
  }
  int code = 0;  // the first error's
  std::string each;
  for (const std::exception_ptr& e : errors) {
    try {
      std::rethrow_exception(e);
    } catch (const OSError& os) {
      if (code == 0) code = os.code().value();
      each += (each.empty() ? "" : ", ") + std::string(os.what());
    }
  }
  throw OSError(code, "Multiple exceptions: " + each);
}

// open_connection's connecting: the descriptor of a socket connected to host:port.
Coro<int> connect_host(std::string host, int port, const ConnectionOptions& options) {
  const std::optional<double> delay = options.happy_eyeballs_delay;
  if (delay && !(*delay >= 0)) {
    throw std::invalid_argument(
        fmt::format("open_connection: happy_eyeballs_delay must be >= 0, got {}", *delay));
  }
  const int interleave = options.interleave.value_or(delay ? 1 : 0);
  if (interleave < 0) {
    throw std::invalid_argument(
        fmt::format("open_connection: interleave must be >= 0, got {}", interleave));
  }
  Attempts a;
  a.target = (host.empty() ? std::string("loopback") : host) + ":" + std::to_string(port);
  a.addresses = co_await detail::resolve(std::move(host), port, SOCK_STREAM, options.family);
  if (options.local_addr) {
    a.locals = co_await detail::resolve(options.local_addr->first, options.local_addr->second,
                                        SOCK_STREAM, options.family);
  }
  if (interleave > 0 && a.addresses.size() > 1)
    a.addresses = detail::interleaved(a.addresses, interleave);
  a.errors.resize(a.addresses.size());
  a.connect_errno.resize(a.addresses.size());
  const int fd = co_await connect_staggered(a, delay.value_or(-1.0));
  if (fd < 0) raise_connect_errors(a, options.all_errors);
  set_nodelay(fd);
  co_return fd;
}

// The Happy Eyeballs fields are for a host name's addresses: refused where there is none.
void check_no_host_options(const ConnectionOptions& options, const char* who) {
  if (options.happy_eyeballs_delay || options.interleave || options.all_errors ||
      options.family != AF_UNSPEC || options.local_addr) {
    throw std::invalid_argument(std::string(who) +
                                ": happy_eyeballs_delay, interleave, all_errors, family and "
                                "local_addr are for a host name's addresses");
  }
}
}  // namespace

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, int port,
                                                            std::size_t limit) {
  ConnectionOptions options;
  options.limit = limit;
  const int fd = co_await connect_host(std::move(host), port, options);
  co_return make_streams(fd, limit);
}

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, int port,
                                                            ConnectionOptions options) {
  const std::string peer = host + ":" + std::to_string(port);
  auto tls = client_session(options, host, peer);
  const int fd = co_await connect_host(std::move(host), port, options);
  auto streams = make_streams(fd, options.limit);
  co_return co_await secured(std::move(streams), std::move(tls), options.ssl_handshake_timeout);
}

Coro<std::pair<StreamReader, StreamWriter>> open_connection(Socket sock, std::size_t limit) {
  take_over(sock.fd, check_callers_socket(sock, false, "open_connection"));
  co_return make_streams(sock.fd, limit);
}

Coro<std::pair<StreamReader, StreamWriter>> open_connection(Socket sock,
                                                            ConnectionOptions options) {
  check_callers_socket(sock, false, "open_connection");
  check_no_host_options(options, "open_connection(Socket)");
  auto tls = client_session(options, "", detail::peer_of(sock.fd));
  auto streams = co_await open_connection(sock, options.limit);
  co_return co_await secured(std::move(streams), std::move(tls), options.ssl_handshake_timeout);
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 std::size_t limit) {
  const sockaddr_storage ss = detail::unix_address(path, "open_unix_connection");
  const std::vector<sockaddr_storage> no_local;  // (named: g++ 12 mishandles a {} in co_await)
  const int fd = co_await connect_new_socket(ss, no_local);
  if (fd < 0) {
    raise_os_error(-fd, "connect to unix socket " + detail::where_of(ss));
  }
  co_return make_streams(fd, limit);
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                 ConnectionOptions options) {
  check_no_host_options(options, "open_unix_connection");
  auto tls = client_session(options, "", "unix socket " + path);
  auto streams = co_await open_unix_connection(std::move(path), options.limit);
  co_return co_await secured(std::move(streams), std::move(tls), options.ssl_handshake_timeout);
}

namespace {

Coro<void> run_handler(std::shared_ptr<detail::ServerState> state, StreamReader r, StreamWriter w) {
  if (state->ssl) {  // the handshake first, in the connection's own task
    const detail::StreamRef& ref = detail::ReaderAccess::state(r);
    bool secured = false;
    try {
      auto tls = std::make_shared<TlsSession>(*state->ssl, true, "", state_of(ref).peer);
      co_await secure(ref, std::move(tls), state->ssl_handshake_timeout);
      secured = true;
    } catch (const CancelledError&) {
      throw;
    } catch (const std::exception& e) {  // asyncio logs a failed handshake in debug mode only
      if (state->loop->get_debug()) std::fprintf(stderr, "gilio: %s\n", e.what());
    }
    if (!secured) co_return;
  }
  try {
    co_await state->handler(std::move(r), std::move(w));
  } catch (const CancelledError&) {
    throw;
  } catch (...) {
    state->loop->call_exception_handler(
        ExceptionContext("Unhandled exception in client_connected_cb", std::current_exception()));
  }
}

// Turns accepted sockets into handler tasks.
Coro<void> dispatch(std::shared_ptr<detail::ServerState> state) {
  for (;;) {
    while (state->accepted.empty()) {
      state->have_accepted.clear();
      co_await state->have_accepted.wait();
    }
    const int fd = state->accepted.front();
    state->accepted.pop_front();
    if (state->tcp) set_nodelay(fd);
    auto [reader, writer] = make_streams(fd, state->limit, &state->clients);
    // Sweeping the finished handlers on every accept was O(open connections) an accept; once
    // their number has doubled since the last sweep keeps it O(1) on average.
    if (state->connections.size() >= state->sweep_at) {
      std::erase_if(state->connections, [](const Task<void>& t) { return t.done(); });
      state->sweep_at = std::max<std::size_t>(64, 2 * state->connections.size());
    }
    state->connections.push_back(create_task(run_handler(state, reader, writer)));
  }
}

}  // namespace

namespace {

std::shared_ptr<detail::ServerState> new_server(ClientConnected handler,
                                                const ServerOptions& options, const char* who) {
  if (options.backlog <= 0) {
    throw std::invalid_argument(
        fmt::format("{}: the backlog must be positive (got {})", who, options.backlog));
  }
  if (options.ssl) {
    ssl::detail::check_context(*options.ssl, true, who);
    check_handshake_timeout(options.ssl_handshake_timeout, who);
  }
  auto state = std::make_shared<detail::ServerState>();
  state->loop = &get_running_loop();
  state->handler = std::move(handler);
  state->limit = options.limit;
  state->backlog = options.backlog;
  state->ssl = options.ssl;
  state->ssl_handshake_timeout = options.ssl_handshake_timeout;
  return state;
}

ServerOptions with_limit(std::size_t limit) {
  ServerOptions options;
  options.limit = limit;
  return options;
}

// reuse_port, keep_alive and family need a TCP socket that the server itself binds.
void refuse_bind_options(const ServerOptions& options, const char* who) {
  if (options.reuse_port)
    throw std::invalid_argument(std::string(who) + ": reuse_port is for TCP servers that bind");
  if (options.keep_alive)
    throw std::invalid_argument(std::string(who) + ": keep_alive is for TCP servers that bind");
  if (options.family != AF_UNSPEC)
    throw std::invalid_argument(std::string(who) + ": family is for TCP servers that bind");
}

void set_port(sockaddr_storage& ss, int port) {
  const auto p = htons(static_cast<std::uint16_t>(port));
  if (ss.ss_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = p;
  } else {
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = p;
  }
}

// The port a TCP socket is bound to.
int bound_port(int fd) {
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  return ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

// The listening sockets are bound: listen on each (all first, so that a failure arms nothing),
// then one multishot accept each, and the dispatcher. asyncio's Server._start_serving.
void begin_serving(const std::shared_ptr<detail::ServerState>& state) {
  if (state->serving) return;
  if (state->closed.is_set())
    throw std::runtime_error("Server.start_serving: the server is closed");
  for (int fd : state->listeners) {
    if (::listen(fd, state->backlog) != 0) raise_os_error(errno, "listen on " + state->where);
  }
  state->serving = true;
  for (int fd : state->listeners) {
    auto a = std::make_unique<detail::ServerState::MultishotAccept>();
    a->owner = state.get();
    a->fd = fd;
    state->arm(*a);
    state->accepts.push_back(std::move(a));
  }
  state->dispatcher = create_task(dispatch(state));
}

Server started(const std::shared_ptr<detail::ServerState>& state, const ServerOptions& options) {
  if (options.start_serving) begin_serving(state);
  return Server(state);
}

}  // namespace

Coro<Server> start_server(ClientConnected handler, std::string host, int port, std::size_t limit) {
  return start_server(std::move(handler), std::move(host), port, with_limit(limit));
}

// How many times start_server(host, 0) asks the kernel for a port before it gives up: see below.
constexpr int kPortTries = 16;

Coro<Server> start_server(ClientConnected handler, std::string host, int port,
                          ServerOptions options) {
  auto state = new_server(std::move(handler), options, "start_server");
  // An empty host is every interface, of both families unless `family` says one (asyncio's
  // AI_PASSIVE look-up of None).
  const auto addresses =
      co_await detail::resolve(host, port, SOCK_STREAM, options.family, AI_PASSIVE);
  // Port 0 on several addresses: the port the kernel gives the first is asked of the others
  // (asyncio gives each socket an ephemeral port of its own, so server.port() could name only
  // one). The kernel chose that port as free in the first one's family only; if another program
  // holds it in the other family, the round starts over. The sockets of a failed round stay
  // bound until the end, so the kernel offers their ports to no later round.
  std::vector<int> held;
  struct CloseHeld {
    std::vector<int>& fds;
    ~CloseHeld() {
      for (int fd : fds)
        ::close(fd);
    }
  } close_held{held};
  for (int round = 1;; ++round) {
    bool taken_elsewhere = false;
    for (sockaddr_storage ss : addresses) {
      if (state->port != 0) set_port(ss, state->port);
      const int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        if (errno == EAFNOSUPPORT && addresses.size() > 1) continue;  // no IPv6 here: as asyncio
        raise_os_error(errno, "start_server: socket");
      }
      state->listeners.push_back(fd);
      const std::string where = detail::where_of(ss);
      const int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
        raise_os_error(errno, "start_server: SO_REUSEPORT on " + where);
      }
      if (options.keep_alive && ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) != 0) {
        raise_os_error(errno, "start_server: SO_KEEPALIVE on " + where);
      }
      if (ss.ss_family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), detail::address_length(ss)) != 0) {
        const int err = errno;
        if (err == EADDRINUSE && port == 0 && state->port != 0) {
          if (round < kPortTries) {
            taken_elsewhere = true;
            break;
          }
          raise_os_error(err, fmt::format("bind to {}: each of the {} ports the kernel chose "
                                          "for the first address was taken in this one's family",
                                          where, kPortTries));
        }
        raise_os_error(err, "bind to " + where);
      }
      if (state->port == 0) state->port = bound_port(fd);
    }
    if (!taken_elsewhere) break;
    held.insert(held.end(), state->listeners.begin(), state->listeners.end());
    state->listeners.clear();
    state->port = 0;
  }
  if (state->listeners.empty())
    raise_os_error(EAFNOSUPPORT, "start_server: no address of " + host + " can be listened on");
  state->where = "port " + std::to_string(state->port);
  co_return started(state, options);
}

Coro<Server> start_server(ClientConnected handler, Socket sock, std::size_t limit) {
  return start_server(std::move(handler), sock, with_limit(limit));
}

Coro<Server> start_server(ClientConnected handler, Socket sock, ServerOptions options) {
  refuse_bind_options(options, "start_server(Socket)");
  const int family = check_callers_socket(sock, true, "start_server");
  auto state = new_server(std::move(handler), options, "start_server");
  state->tcp = family == AF_INET || family == AF_INET6;
  if (state->tcp) {
    state->port = bound_port(sock.fd);
    state->where = "port " + std::to_string(state->port);
  } else {
    state->where = "unix socket " + detail::name_of(sock.fd);
  }
  state->listeners.push_back(sock.fd);
  Server server;
  try {
    server = started(state, options);
  } catch (...) {
    state->listeners.clear();  // it could not listen: the socket is left to the caller
    throw;
  }
  take_over(sock.fd, family);
  co_return server;
}

Coro<Server> start_unix_server(ClientConnected handler, std::string path, std::size_t limit) {
  return start_unix_server(std::move(handler), std::move(path), with_limit(limit));
}

Coro<Server> start_unix_server(ClientConnected handler, std::string path, ServerOptions options) {
  refuse_bind_options(options, "start_unix_server");
  auto state = new_server(std::move(handler), options, "start_unix_server");
  state->tcp = false;
  const sockaddr_storage ss = detail::unix_address(path, "start_unix_server");
  const bool abstract = path[0] == '\0';
  state->where = "unix socket " + detail::where_of(ss);
  detail::remove_stale_socket_file(path);
  struct stat st;
  const int fd = make_socket(AF_UNIX);
  state->listeners.push_back(fd);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), detail::address_length(ss)) != 0) {
    raise_os_error(errno, "bind to " + state->where);
  }
  if (!abstract && ::stat(path.c_str(), &st) == 0) {
    state->unix_path = path;
    state->unix_dev = st.st_dev;
    state->unix_ino = st.st_ino;
  }
  co_return started(state, options);
}

int Server::port() const {
  return connected(s_, "Server.port").port;
}
bool Server::is_serving() const {
  return connected(s_, "Server.is_serving").serving;
}

void Server::start_serving() {
  connected(s_, "Server.start_serving");
  begin_serving(s_);
}

void Server::close() {
  if (connected(s_, "Server.close").closed.is_set()) return;
  s_->serving = false;
  s_->remove_socket_file();
  for (auto& a : s_->accepts) {
    if (a->armed) s_->loop->backend().cancel(a.get());  // ends with a last completion
    if (a->retry.valid()) a->retry.cancel();
  }
  if (!s_->any_armed()) s_->accepts_ended.set();
  if (s_->dispatcher.valid()) s_->dispatcher.cancel();
  s_->closed.set();
}

void Server::close_clients() {
  connected(s_, "Server.close_clients").clients.for_each([](detail::StreamState* c) {
    c->close();
  });
}

void Server::abort_clients() {
  connected(s_, "Server.abort_clients").clients.for_each([](detail::StreamState* c) {
    c->abort();
  });
}

Coro<void> Server::serve_forever() {
  auto state = s_;
  connected(state, "Server.serve_forever");
  if (!state->closed.is_set()) begin_serving(state);  // asyncio's serve_forever starts it too
  bool cancelled = false;
  try {
    co_await state->closed.wait();
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (cancelled) {
    Server(state).close();
    throw CancelledError();
  }
}

Coro<void> Server::wait_closed() {
  auto state = s_;
  connected(state, "Server.wait_closed");
  co_await state->closed.wait();
  std::vector<Task<void>> serving_tasks;
  if (state->dispatcher.valid()) serving_tasks.push_back(state->dispatcher);
  for (const auto& a : state->accepts) {
    if (a->retry.valid()) serving_tasks.push_back(a->retry);
  }
  co_await gather(return_exceptions, std::move(serving_tasks));
  co_await state->accepts_ended.wait();  // the accepts' last completions
  for (int fd : state->listeners)
    ::close(fd);
  state->listeners.clear();
  std::erase_if(state->connections, [](const Task<void>& t) { return t.done(); });
  co_await gather(return_exceptions, state->connections);
}

}  // namespace gilio::asyncio
