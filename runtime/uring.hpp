// runtime/uring.hpp — the io_uring backend: the only code that talks to liburing.
//
// No CPython twin: CPython's selector event loop waits in epoll_wait (Lib/selectors.py). An
// io_uring loop does not ask "which sockets are ready?" — it submits the operations themselves
// and is told when each has completed. This file keeps that readable: one ring, one eventfd to
// be woken from other threads, and three verbs.
//
//   wait(timeout)  submit everything queued, then sleep until one completion arrives or the
//                  timeout passes (io_uring_submit_and_wait_timeout: the kernel's timer is the
//                  loop's nearest deadline — one timer, however many sleeps are pending);
//   reap()         hand every completion to its Completion object (user_data points at it);
//   wake()         from any thread: write the eventfd, on which a read is always pending.
//
// The ring belongs to one thread — the one that first waits on it: it is set up with
// DEFER_TASKRUN + SINGLE_ISSUER (see open_ring), so the kernel finishes completed operations
// when the loop asks for completions rather than interrupting it for each one. A loop run later
// by another thread moves to a fresh ring if nothing is in flight, and refuses otherwise.
//
// A full submission queue is flushed and retried, never an error; the completion queue is
// sized generously, and the kernel keeps overflowing completions (IORING_FEAT_NODROP) until
// reap() makes room, so none is lost.
//
// Streams receive through a provided-buffer ring (recv_pooled): the loop lends the kernel a set
// of buffers, and a recv takes one only when its data arrives. A waiting connection therefore
// holds no buffer at all — 10,000 idle readers cost no receive memory, where a recv into a buffer
// of its own pins one per connection (uvloop shares one read buffer per loop for the same
// reason). The receiver copies the bytes out in its completion and gives the buffer straight
// back (take_buffer), so the ring runs dry only if more recvs complete at once than it has
// buffers; such a recv ends with -ENOBUFS, its data still in the socket, and is simply retried.
//
// Receives go last. A server's task answers a request and reads the next in one go: a send and
// then a recv on the same socket, queued together. The kernel runs a batch in queue order, so
// that recv would run a moment after its send, long before the peer can have answered: it finds
// the socket empty and the kernel arms a poll to retry it when data comes (a poll, a wake-up,
// a second try: the costliest way a recv can end). So recv() and recv_pooled() hold their
// submissions back and flush_late() queues them at the end of the batch, just before the ring
// is entered: by the time the kernel reaches a recv it has run every other send in the batch,
// and the first peers to be answered have often written again. On the echo benchmark this took
// the polls armed per request from 1.00 to about 0.4-0.8 (`perf stat -e
// io_uring:io_uring_poll_arm`; the hand-written floor, which submits its recvs one loop turn
// after their sends, arms 0.5-0.8). A cancel or a close flushes the held recvs first, so that
// the queue keeps the order in which the loop asked for them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gilio::asyncio::detail {

// A completion's flags: more completions will follow for this submission (multishot).
inline constexpr std::uint32_t kCompletionMore = 1u << 1;  // IORING_CQE_F_MORE
// read() and write() at this offset use none: what a pipe, a socket or a terminal needs.
inline constexpr std::uint64_t kNoOffset = ~std::uint64_t{0};

// The object a submission's user_data points at; complete() is called with the CQE's result.
class Completion {
 public:
  virtual void complete(int result, std::uint32_t flags) = 0;

 protected:
  ~Completion() = default;
};

class Backend {
 public:
  explicit Backend(unsigned entries = 1024);
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // timeout_ns < 0: until a completion; 0: only submit; > 0: at most that long.
  void wait(std::int64_t timeout_ns);
  // Dispatches every available completion; returns how many there were.
  unsigned reap();
  // Thread-safe: makes a wait() in progress (or the next one) return.
  void wake() noexcept;
  // The eventfd that wake() writes: a signal handler writes it too (runtime/unix_events.cpp),
  // since write() is async-signal-safe. Open for the backend's whole life.
  int wake_fd() const noexcept { return event_fd_; }
  // Whether completions are waiting to be reaped (a peek at the ring; no system call).
  bool completions_ready() const noexcept;
  // Operations submitted whose completion has not been reaped (the wake-up read included).
  std::uint64_t in_flight() const noexcept { return in_flight_; }

  // For I/O operations: a submission slot, flushing a full queue first. The returned pointer is
  // an io_uring_sqe*; its user_data is set to `op`.
  void* submission(Completion* op);

  // The operations: each queues one submission whose completion goes to `op`. Buffers and
  // addresses must stay alive until then (they live in the awaiting coroutine's frame or in an
  // object the operation keeps alive).
  void recv(Completion* op, int fd, void* buf, unsigned len);
  // A recv into a buffer of the loop's provided-buffer ring (set up on first use; Linux 5.19+).
  // Its completion must be passed to take_buffer(). -ENOBUFS: the ring was empty; retry.
  void recv_pooled(Completion* op, int fd);
  static constexpr unsigned kPooledBufferSize = 32 * 1024;  // the most one recv_pooled returns
  // For a recv_pooled completion: appends the received bytes to `out` and returns the buffer to
  // the ring. Returns false if the completion carried no buffer (an error or end of stream).
  bool take_buffer(int result, std::uint32_t flags, std::string& out);
  // recv_pooled for a pipe (a read, as recv works on sockets only): a child process's output.
  void read_pooled(Completion* op, int fd);
  // How many recv_pooled completions found the ring empty (-ENOBUFS) and were retried.
  std::uint64_t ring_empty_count() const noexcept { return ring_empty_; }
  void send(Completion* op, int fd, const void* buf, unsigned len);
  // One message, with its address (datagrams): `msg` is a msghdr* that must stay alive until
  // the completion, as must what it points at.
  void recvmsg(Completion* op, int fd, void* msg);
  void sendmsg(Completion* op, int fd, const void* msg);
  void accept(Completion* op, int fd, void* addr, void* addrlen);
  // One submission, one completion per accepted connection (kCompletionMore on all but the last).
  void accept_multishot(Completion* op, int fd);
  void connect(Completion* op, int fd, const void* addr, unsigned addrlen);
  void read(Completion* op, int fd, void* buf, unsigned len, std::uint64_t offset);
  void write(Completion* op, int fd, const void* buf, unsigned len, std::uint64_t offset);
  // len bytes from fd_in (at off_in; -1: a pipe) into fd_out (a pipe or a socket).
  void splice(Completion* op, int fd_in, std::int64_t off_in, int fd_out, unsigned len);
  void openat(Completion* op, const char* path, int flags, unsigned mode);
  // One-shot poll: completes with the fd's ready events (POLLIN, POLLOUT, POLLERR, POLLHUP...)
  // once one of `events` holds — at once if it already does.
  void poll(Completion* op, int fd, unsigned events);
  void close(Completion* op, int fd);
  // Asks the kernel to cancel the operation whose completion goes to `target`; the target still
  // completes (with -ECANCELED, or its result if it won the race). Its own completion is ignored.
  void cancel(Completion* target);
  // Loop close: cancels every operation in flight and reaps until only the eventfd read is
  // left (or `rounds` waits of 10 ms have passed), so each one's completion has run.
  void drain(int rounds = 200);

 private:
  struct Ring;
  class WakeRead;
  struct BufferRing;
  static Ring* open_ring(unsigned entries);
  void enter_from_this_thread();
  void arm_wake_read();
  BufferRing& buffer_ring();
  void drop_buffer_ring() noexcept;
  unsigned entries_;
  Ring* ring_;
  std::uint64_t owner_ = 0;  // the thread that enters the ring (this_thread_number), 0: none yet
  BufferRing* buffers_ = nullptr;  // created by the first recv_pooled
  WakeRead* wake_read_;
  int event_fd_ = -1;
  std::uint64_t in_flight_ = 0;
  std::uint64_t ring_empty_ = 0;
  // Receives wait here until the batch is submitted, then go last (flush_late).
  struct LateRecv {
    Completion* op;
    int fd;
    void* buf;  // null: a buffer from the provided-buffer ring
    unsigned len;
    bool pipe = false;  // a read (of a pipe) rather than a recv
  };
  std::vector<LateRecv> late_;
  std::vector<LateRecv> flushing_;  // the batch being flushed
  void* slot(Completion* op);       // submission() without counting the operation
  void hold(const LateRecv& r);     // queues a recv for flush_late, counted as in flight
  void flush_late();
};

}  // namespace gilio::asyncio::detail
