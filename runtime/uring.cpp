// runtime/uring.cpp — the io_uring backend (see uring.hpp). The only includer of <liburing.h>.
//
// It turns the loop's requests into submission queue entries, flushes a full submission queue
// instead of failing, and hands each completion back to the operation that owns it. How the
// ring, the wake-up and the single kernel timeout fit together is uring.hpp's essay.
#include "uring.hpp"

#include <fcntl.h>
#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>

namespace gilio::asyncio::detail {

struct Backend::Ring {
  io_uring ring;
  bool single_issuer = false;  // only one thread may enter it (it is the loop's)
  bool disabled = false;       // created disabled: the first thread to wait enables it
};

// The pending read on the eventfd: when another thread writes it, this completes, which is
// what ends the loop's wait. It re-arms itself.
class Backend::WakeRead final : public Completion {
 public:
  explicit WakeRead(Backend& b) : backend_(b) {}
  void complete(int, std::uint32_t) override { backend_.arm_wake_read(); }
  std::uint64_t buffer = 0;

 private:
  Backend& backend_;
};

namespace {
[[noreturn]] void fail(int err, const char* what) {
  throw std::system_error(err, std::system_category(), what);
}
}  // namespace

// The ring is set up the way io_uring's authors advise for one thread that does all of a ring's
// I/O (Linux 6.1+): DEFER_TASKRUN — the kernel finishes a completed operation's work (copying
// the data, posting the completion) only when this thread asks for completions, in one batch,
// instead of interrupting it each time; SINGLE_ISSUER, which DEFER_TASKRUN requires — only one
// thread may enter the ring. TASKRUN_FLAG makes the kernel say, in the submission ring's flags,
// that such work waits, so a wait(0) knows to collect it. On an echo server this cut the server's
// CPU per request by a fifth (docs/05). The ring starts disabled: the thread that first waits
// on it becomes its owner (an EventLoop may be built on one thread and run on another).
// Older kernels refuse these flags (EINVAL); then COOP_TASKRUN (5.19+: the work waits for the
// thread's next system call instead of interrupting it), then none. GILIO_URING_SETUP=coop or
// =plain starts further down this list — to test the fallbacks, or to measure what the flags
// are worth (docs/05).
Backend::Ring* Backend::open_ring(unsigned entries) {
  constexpr unsigned kSetups[] = {
      IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_TASKRUN_FLAG |
          IORING_SETUP_R_DISABLED,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
      0,
  };
  std::size_t first = 0;
  if (const char* e = std::getenv("GILIO_URING_SETUP")) {
    const std::string_view want = e;
    first = want == "coop" ? 1 : want == "plain" ? 2 : 0;
  }
  auto r = std::make_unique<Ring>();
  int rc = -EINVAL;
  for (std::size_t i = first; i < std::size(kSetups); ++i) {
    const unsigned setup = kSetups[i];
    io_uring_params params;
    std::memset(&params, 0, sizeof params);
    params.flags = IORING_SETUP_CQSIZE | setup;
    params.cq_entries = entries * 8;
    rc = io_uring_queue_init_params(entries, &r->ring, &params);
    if (rc == 0) {
      r->single_issuer = (setup & IORING_SETUP_SINGLE_ISSUER) != 0;
      r->disabled = (setup & IORING_SETUP_R_DISABLED) != 0;
      return r.release();
    }
    if (rc != -EINVAL) break;
  }
  fail(-rc, "io_uring_queue_init_params (is io_uring enabled on this kernel?)");
}

Backend::Backend(unsigned entries)
    : entries_(entries), ring_(open_ring(entries)), wake_read_(new WakeRead(*this)) {
  event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) {
    const int err = errno;
    io_uring_queue_exit(&ring_->ring);
    delete ring_;
    delete wake_read_;
    fail(err, "eventfd");
  }
  arm_wake_read();
}

namespace {
// A number for the calling thread, never reused in this process (unlike a thread id).
std::uint64_t this_thread_number() noexcept {
  static std::atomic<std::uint64_t> next{1};
  thread_local const std::uint64_t mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine;
}
}  // namespace

// Called before this thread enters the ring, when it is not the thread that last did.
void Backend::enter_from_this_thread() {
  if (ring_->single_issuer && !ring_->disabled) {
    // Another thread runs the loop now. The kernel lets only the first one in, so with nothing
    // in flight but the wake-up read a fresh ring takes over; with I/O in flight that cannot be.
    if (in_flight_ > 1) {
      throw std::runtime_error(
          "gilio: this event loop's io_uring ring belongs to the thread that ran it, and I/O it "
          "started is still in flight; run (and close) an event loop on one thread");
    }
    Ring* fresh = open_ring(entries_);
    io_uring_queue_exit(&ring_->ring);  // the old wake-up read dies with it
    delete ring_;
    ring_ = fresh;
    drop_buffer_ring();  // registered with the old ring; the next recv_pooled makes another
    in_flight_ = 0;
    arm_wake_read();
    wake();  // in case a wake-up was written for the old ring: one spurious wake-up is harmless
  }
  if (ring_->disabled) {  // a new ring: this thread becomes its one issuer
    if (int rc = static_cast<int>(::syscall(__NR_io_uring_register, ring_->ring.ring_fd,
                                            IORING_REGISTER_ENABLE_RINGS, nullptr, 0));
        rc < 0) {
      fail(errno, "io_uring_register (enable rings)");
    }
    ring_->disabled = false;
  }
  owner_ = this_thread_number();
}

// The provided-buffer ring: kCount buffers of kSize bytes, group kGroup. The ring of buffer
// descriptors is shared with the kernel (page-aligned, hence mmap); the buffers are one mapping,
// whose pages the kernel touches only as data arrives.
struct Backend::BufferRing {
  static constexpr unsigned kCount = 128;  // a power of two
  static constexpr unsigned kSize = kPooledBufferSize;
  static constexpr unsigned short kGroup = 0;
  io_uring_buf_ring* ring = nullptr;
  std::size_t ring_bytes = kCount * sizeof(io_uring_buf);
  char* data = nullptr;

  void give_back(unsigned short id) {
    io_uring_buf_ring_add(ring, data + std::size_t{id} * kSize, kSize, id,
                          io_uring_buf_ring_mask(kCount), 0);
    io_uring_buf_ring_advance(ring, 1);
  }
};

Backend::BufferRing& Backend::buffer_ring() {
  if (buffers_ != nullptr) return *buffers_;
  auto b = std::make_unique<BufferRing>();
  void* r =
      ::mmap(nullptr, b->ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED) fail(errno, "mmap (io_uring buffer ring)");
  void* d = ::mmap(nullptr, std::size_t{BufferRing::kCount} * BufferRing::kSize,
                   PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (d == MAP_FAILED) {
    const int err = errno;
    ::munmap(r, b->ring_bytes);
    fail(err, "mmap (io_uring receive buffers)");
  }
  b->ring = static_cast<io_uring_buf_ring*>(r);
  b->data = static_cast<char*>(d);
  io_uring_buf_ring_init(b->ring);
  io_uring_buf_reg reg;
  std::memset(&reg, 0, sizeof reg);
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(b->ring);
  reg.ring_entries = BufferRing::kCount;
  reg.bgid = BufferRing::kGroup;
  if (int rc = io_uring_register_buf_ring(&ring_->ring, &reg, 0); rc < 0) {
    ::munmap(r, b->ring_bytes);
    ::munmap(d, std::size_t{BufferRing::kCount} * BufferRing::kSize);
    fail(-rc, "io_uring_register_buf_ring (provided buffer rings need Linux 5.19 or later)");
  }
  for (unsigned i = 0; i < BufferRing::kCount; ++i)
    b->give_back(static_cast<unsigned short>(i));
  buffers_ = b.release();
  return *buffers_;
}

void Backend::drop_buffer_ring() noexcept {
  if (buffers_ == nullptr) return;
  ::munmap(buffers_->ring, buffers_->ring_bytes);
  ::munmap(buffers_->data, std::size_t{BufferRing::kCount} * BufferRing::kSize);
  delete buffers_;
  buffers_ = nullptr;
}

Backend::~Backend() {
  // Closing the ring cancels the pending eventfd read; nothing else may be in flight by now
  // (EventLoop::close drains I/O before it destroys the backend).
  io_uring_queue_exit(&ring_->ring);
  drop_buffer_ring();
  ::close(event_fd_);
  delete wake_read_;
  delete ring_;
}

void* Backend::submission(Completion* op) {
  ++in_flight_;
  return slot(op);
}

void* Backend::slot(Completion* op) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_->ring);
  while (sqe == nullptr) {  // the submission queue is full: flush it and try again
    if (owner_ != this_thread_number()) enter_from_this_thread();
    const int rc = io_uring_submit(&ring_->ring);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) fail(-rc, "io_uring_submit");
    if (rc == -EBUSY || rc == -EAGAIN) reap();
    sqe = io_uring_get_sqe(&ring_->ring);
  }
  io_uring_sqe_set_data(sqe, op);
  return sqe;
}

namespace {
io_uring_sqe* as_sqe(void* p) {
  return static_cast<io_uring_sqe*>(p);
}
}  // namespace

void Backend::recv(Completion* op, int fd, void* buf, unsigned len) {
  hold({op, fd, buf, len});
}
void Backend::recv_pooled(Completion* op, int fd) {
  if (buffers_ == nullptr) buffer_ring();  // the first one registers the ring
  hold({op, fd, nullptr, BufferRing::kSize});
}
void Backend::read_pooled(Completion* op, int fd) {
  if (buffers_ == nullptr) buffer_ring();
  hold({op, fd, nullptr, BufferRing::kSize, true});
}

void Backend::hold(const LateRecv& r) {
  late_.push_back(r);
  ++in_flight_;  // in flight from now on, as far as the loop is concerned
}

// Puts the queued recvs at the end of the submission queue (see the essay in uring.hpp).
void Backend::flush_late() {
  while (!late_.empty()) {
    flushing_.swap(late_);  // a full queue's flush may reap, and a completion may queue a recv
    for (const LateRecv& r : flushing_) {
      io_uring_sqe* sqe = as_sqe(slot(r.op));
      if (r.pipe) {
        io_uring_prep_read(sqe, r.fd, r.buf, r.len, kNoOffset);  // a pipe has no file position
      } else {
        io_uring_prep_recv(sqe, r.fd, r.buf, r.len, 0);
      }
      if (r.buf == nullptr) {
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = BufferRing::kGroup;
      }
    }
    flushing_.clear();
  }
}

bool Backend::take_buffer(int result, std::uint32_t flags, std::string& out) {
  if (result == -ENOBUFS) ++ring_empty_;
  if (!(flags & IORING_CQE_F_BUFFER) || buffers_ == nullptr) return false;
  const auto id = static_cast<unsigned short>(flags >> IORING_CQE_BUFFER_SHIFT);
  if (result > 0)
    out.append(buffers_->data + std::size_t{id} * BufferRing::kSize,
               static_cast<std::size_t>(result));
  buffers_->give_back(id);
  return true;
}

void Backend::send(Completion* op, int fd, const void* buf, unsigned len) {
  io_uring_prep_send(as_sqe(submission(op)), fd, buf, len, MSG_NOSIGNAL);
}
void Backend::recvmsg(Completion* op, int fd, void* msg) {
  io_uring_prep_recvmsg(as_sqe(submission(op)), fd, static_cast<msghdr*>(msg), 0);
}
void Backend::sendmsg(Completion* op, int fd, const void* msg) {
  io_uring_prep_sendmsg(as_sqe(submission(op)), fd, static_cast<const msghdr*>(msg), MSG_NOSIGNAL);
}
void Backend::accept(Completion* op, int fd, void* addr, void* addrlen) {
  io_uring_prep_accept(as_sqe(submission(op)), fd, static_cast<sockaddr*>(addr),
                       static_cast<socklen_t*>(addrlen), SOCK_CLOEXEC);
}
void Backend::accept_multishot(Completion* op, int fd) {
  io_uring_prep_multishot_accept(as_sqe(submission(op)), fd, nullptr, nullptr, SOCK_CLOEXEC);
}
void Backend::connect(Completion* op, int fd, const void* addr, unsigned addrlen) {
  io_uring_prep_connect(as_sqe(submission(op)), fd, static_cast<const sockaddr*>(addr), addrlen);
}
void Backend::read(Completion* op, int fd, void* buf, unsigned len, std::uint64_t offset) {
  io_uring_prep_read(as_sqe(submission(op)), fd, buf, len, offset);
}
void Backend::write(Completion* op, int fd, const void* buf, unsigned len, std::uint64_t offset) {
  io_uring_prep_write(as_sqe(submission(op)), fd, buf, len, offset);
}
void Backend::splice(Completion* op, int fd_in, std::int64_t off_in, int fd_out, unsigned len) {
  io_uring_prep_splice(as_sqe(submission(op)), fd_in, off_in, fd_out, -1, len, 0);
}
void Backend::openat(Completion* op, const char* path, int flags, unsigned mode) {
  io_uring_prep_openat(as_sqe(submission(op)), AT_FDCWD, path, flags | O_CLOEXEC, mode);
}
void Backend::poll(Completion* op, int fd, unsigned events) {
  io_uring_prep_poll_add(as_sqe(submission(op)), fd, events);
}
void Backend::close(Completion* op, int fd) {
  flush_late();  // a recv queued before the close goes before it
  io_uring_prep_close(as_sqe(submission(op)), fd);
}
void Backend::cancel(Completion* target) {
  flush_late();  // the target must be in the queue before the cancel, or the cancel finds nothing
  io_uring_prep_cancel(as_sqe(submission(nullptr)), target, 0);
}

static_assert(kCompletionMore == IORING_CQE_F_MORE);

void Backend::drain(int rounds) {
  flush_late();
  for (int i = 0; i < rounds && in_flight_ > 1; ++i) {
    io_uring_sqe* sqe = static_cast<io_uring_sqe*>(submission(nullptr));
    io_uring_prep_cancel(sqe, nullptr, IORING_ASYNC_CANCEL_ANY);
    wait(10'000'000);
    reap();
  }
}

void Backend::arm_wake_read() {
  auto* sqe = static_cast<io_uring_sqe*>(submission(wake_read_));
  io_uring_prep_read(sqe, event_fd_, &wake_read_->buffer, sizeof wake_read_->buffer, 0);
}

void Backend::wait(std::int64_t timeout_ns) {
  if (owner_ != this_thread_number()) enter_from_this_thread();
  flush_late();
  int rc;
  if (timeout_ns == 0) {
    rc = io_uring_submit(&ring_->ring);
  } else if (timeout_ns < 0) {
    rc = io_uring_submit_and_wait(&ring_->ring, 1);
  } else {
    __kernel_timespec ts;
    ts.tv_sec = timeout_ns / 1'000'000'000;
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait_timeout(&ring_->ring, &cqe, 1, &ts, nullptr);
  }
  // ETIME: the timeout passed; EINTR: a signal; EBUSY/EAGAIN: completions must be reaped first.
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
    fail(-rc, "io_uring_submit_and_wait");
  }
}

unsigned Backend::reap() {
  // Copy a batch out and advance first, so that a complete() that submits (or even reaps)
  // never sees a half-consumed queue.
  struct Done {
    Completion* op;
    int result;
    std::uint32_t flags;
  };
  Done batch[256];
  unsigned total = 0;
  for (;;) {
    unsigned n = 0;
    unsigned head;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_->ring, head, cqe) {
      batch[n++] = {static_cast<Completion*>(io_uring_cqe_get_data(cqe)), cqe->res, cqe->flags};
      if (n == 256) break;
    }
    if (n == 0) return total;
    io_uring_cq_advance(&ring_->ring, n);
    total += n;
    for (unsigned i = 0; i < n; ++i) {
      if (!(batch[i].flags & IORING_CQE_F_MORE)) --in_flight_;
      if (batch[i].op != nullptr) batch[i].op->complete(batch[i].result, batch[i].flags);
    }
  }
}

bool Backend::completions_ready() const noexcept {
  // With DEFER_TASKRUN a finished operation shows first as IORING_SQ_TASKRUN: its completion is
  // posted when this thread next enters the ring (wait(0) does).
  return io_uring_cq_ready(&ring_->ring) > 0 ||
         (__atomic_load_n(ring_->ring.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN) != 0;
}

void Backend::wake() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: a wake-up is pending anyway.
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof one);
}

}  // namespace gilio::asyncio::detail
