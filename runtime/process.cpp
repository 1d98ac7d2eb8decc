// runtime/process.cpp — ProcessPoolExecutor; mirrors Lib/concurrent/futures/process.py (its
// queue management thread is the manager thread here). See process.hpp for the design.
//
// Wire protocol, over one SOCK_STREAM socketpair per worker, every frame prefixed by its length
// (u32):
//   call:   u64 id, u64 trampoline, u64 fn, argument bytes
//   result: u64 id, u8 kind (0 value, 1 exception), value bytes or "type\0message"
// A worker exits when its channel reaches EOF (shutdown closes the parent's write side).
#include <cxxabi.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <typeinfo>

#include "big_string.hpp"
#include "gilio/concurrent/process.hpp"
#include "gilio/gil.hpp"
#include "spin.hpp"

namespace gilio::concurrent {

void wire::reserve_more(std::string& s, std::size_t n) {
  asyncio::detail::reserve_more(s, n);
}
std::string wire::copy_of(std::string_view bytes) {
  return asyncio::detail::copy_of(bytes);
}

namespace {

constexpr std::size_t kInFlightPerWorker = 256;  // calls sent to one worker, not yet answered

void put_u32(std::string& s, std::uint32_t v) {
  s.append(reinterpret_cast<const char*>(&v), 4);
}
void put_u64(std::string& s, std::uint64_t v) {
  s.append(reinterpret_cast<const char*>(&v), 8);
}
std::uint32_t u32_at(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
std::uint64_t u64_at(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

std::string demangled(const char* mangled) {
  int status = 0;
  char* name = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && name != nullptr ? name : mangled;
  std::free(name);
  return out;
}

// ---- the worker process ----

// Writes all of `data`, with the GIL released (a blocking call).
bool write_all(int fd, const std::string& data) {
  gil::Released nogil;
  std::size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

// A forked child starts on its parent's core, and the scheduler's load balancer moves one of
// two such children to an idle core only after several milliseconds (on this VM a fresh pool's
// first CPU-bound jobs ran ~20% slower for it). So a worker starts on the slot-th core it may
// use — pinned for a moment, which moves it there at once — and is then free again to go
// wherever the scheduler sends it.
void start_on_own_core(std::size_t slot) {
  cpu_set_t allowed;
  if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  const int count = CPU_COUNT(&allowed);
  if (count < 2) return;
  int skip = static_cast<int>(slot % static_cast<std::size_t>(count));
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed) || skip-- > 0) continue;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    ::sched_setaffinity(0, sizeof one, &one);
    ::sched_setaffinity(0, sizeof allowed, &allowed);
    return;
  }
}

[[noreturn]] void worker_main(int fd) {
  if (!gil::held()) gil::acquire();  // a worker runs fn holding its own GIL, like Python code
  std::string in;
  std::string out;
  char buf[65536];
  for (;;) {
    // Answer every complete call that has arrived, then send the answers in one write.
    std::size_t pos = 0;
    while (in.size() - pos >= 4 && in.size() - pos - 4 >= u32_at(in.data() + pos)) {
      const std::uint32_t len = u32_at(in.data() + pos);
      const char* p = in.data() + pos + 4;
      const std::uint64_t id = u64_at(p);
      const auto trampoline = reinterpret_cast<detail::Trampoline>(u64_at(p + 8));
      const std::uintptr_t fn = u64_at(p + 16);
      wire::Reader args(std::string_view(p + 24, len - 24));
      wire::Writer result;
      char kind = 0;
      try {
        trampoline(fn, args, result);
      } catch (const std::exception& e) {
        kind = 1;
        result = wire::Writer();
        const std::string text = demangled(typeid(e).name()) + '\0' + e.what();
        result.raw(text.data(), text.size());
      } catch (...) {
        kind = 1;
        result = wire::Writer();
        const std::string text = std::string("unknown exception") + '\0';
        result.raw(text.data(), text.size());
      }
      put_u32(out, static_cast<std::uint32_t>(8 + 1 + result.data().size()));
      put_u64(out, id);
      out.push_back(kind);
      out += result.data();
      pos += 4 + len;
    }
    in.erase(0, pos);
    if (!out.empty()) {
      if (!write_all(fd, out)) ::_exit(1);
      out.clear();
    }
    ssize_t n = -1;
    {
      gil::Released nogil;
      // The next call often follows at once: poll for it a moment before sleeping (spin.hpp).
      const bool got = detail::spin_briefly([&] {
        n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
      });
      if (!got) {
        do {
          n = ::read(fd, buf, sizeof buf);
        } while (n < 0 && errno == EINTR);
      }
    }
    if (n <= 0) ::_exit(0);  // the pool closed our channel: done
    wire::reserve_more(in, static_cast<std::size_t>(n));
    in.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

// ---- the parent ----

namespace {

// A first-in, first-out queue in one array that doubles when full and never shrinks. The pool's
// queues are filled by submitting threads and emptied by the manager thread: a std::deque would
// have the manager free the caller's 512-byte blocks, and glibc's free of another thread's
// memory takes that thread's arena lock — held, in a burst, through its page faults. In a
// profile of a first burst of 200,000 calls the manager spent nearly half its time waiting on
// it, holding the pool's mutex; with this ring, the burst ran 2-3x faster.
template <class T>
class Ring {
 public:
  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  T& front() { return slots_[head_]; }
  void push_back(T item) {
    if (size_ == slots_.size()) grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(item);
    ++size_;
  }
  T pop_front() {
    T item = std::move(slots_[head_]);
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
    return item;
  }

 private:
  void grow() {
    std::vector<T> bigger(std::max<std::size_t>(16, slots_.size() * 2));
    for (std::size_t i = 0; i < size_; ++i)
      bigger[i] = std::move(slots_[(head_ + i) & (slots_.size() - 1)]);
    slots_.swap(bigger);
    head_ = 0;
  }
  std::vector<T> slots_;  // a power of two long
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace

struct ProcessPoolExecutor::Impl {
  struct Call {
    std::uint64_t id;
    std::string frame;  // the encoded call, length prefix included
    std::unique_ptr<CallSink> sink;
  };
  // A call sent to a worker and not yet answered.
  struct Pending {
    std::uint64_t id = 0;
    std::unique_ptr<CallSink> sink;
  };
  struct Worker {
    pid_t pid = -1;
    int fd = -1;
    std::string out;       // frames not yet written (shared with submit()'s fast path)
    std::string sending;   // the manager's: frames taken from `out`, being written...
    std::size_t sent = 0;  // ...of which this much is written already
    std::string in;        // the manager's: bytes not yet parsed
    // The calls sent and not yet answered, oldest first. A worker answers its calls in the
    // order it was sent them, so each answer is the oldest's: no map from id to call, nothing
    // allocated per call to find it again.
    Ring<Pending> awaiting;
    std::size_t sent_total = 0;  // calls ever sent to this process (for max_tasks_per_child)
  };

  std::size_t max_workers;
  std::size_t max_tasks_per_child = 0;  // 0: a worker lives as long as the pool
  mutable detail::FutexLock mutex;      // guards everything below but each worker's `in`
  Ring<Call> queue;
  // One slot per worker, created at the first submit (a retired worker's successor reuses its
  // slot). `out` is shared with submit()'s fast path, so it is touched only under the mutex;
  // `sending` and `in` belong to the manager thread.
  std::vector<Worker> workers;
  std::uint64_t next_id = 1;
  bool started = false;
  bool shutting_down = false;
  bool broken = false;
  std::string broken_reason;
  int wake_fds[2] = {-1, -1};
  // How a submit tells the manager it has work (both under the mutex). `work_waiting`: a call
  // is queued or a frame is left in some `out` — the manager clears it as it begins a round and
  // looks at it, without the lock, while it polls awake. `sleeping`: the manager has decided to
  // block in poll(), so a submit must write a wake-up byte — once; it clears the flag. A busy
  // pool thus costs its submitters no system call, where a byte per manager round cost a
  // write each, and the manager a read.
  std::atomic<bool> work_waiting{false};
  bool sleeping = false;
  std::thread manager;
  // The manager thread's own: answers parsed and not yet delivered (kept to reuse its memory),
  // and whether a worker's answers made no sense.
  std::vector<std::pair<std::unique_ptr<CallSink>, Outcome>> ready;
  bool garbled = false;

  ~Impl() {
    for (int fd : wake_fds) {
      if (fd >= 0) ::close(fd);
    }
  }

  void wake() {
    const char c = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fds[1], &c, 1);
  }

  void start_workers() {
    if (::pipe2(wake_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      throw std::system_error(errno, std::generic_category(), "ProcessPoolExecutor: pipe");
    }
    workers.resize(max_workers);
    for (std::size_t i = 0; i < workers.size(); ++i)
      spawn(workers[i], i);
    manager = std::thread([this] { manage(); });
  }

  // Forks one worker into `w` (a fresh one, or the successor of a retired one); `slot` is its
  // place in the pool, which picks the core it starts on.
  static void spawn(Worker& w, std::size_t slot) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      throw std::system_error(errno, std::generic_category(), "ProcessPoolExecutor: socketpair");
    }
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      ::close(sv[0]);
      ::close(sv[1]);
      throw std::system_error(err, std::generic_category(), "ProcessPoolExecutor: fork");
    }
    if (pid == 0) {
      // The child keeps stdin/stdout/stderr and its channel (as fd 3), nothing else.
      ::dup2(sv[1], 3);
      ::close_range(4, ~0U, 0);
      start_on_own_core(slot);
      worker_main(3);
    }
    ::close(sv[1]);
    ::fcntl(sv[0], F_SETFL, O_NONBLOCK);
    w = Worker{};
    w.pid = pid;
    w.fd = sv[0];
  }

  // max_tasks_per_child: a worker that has been sent its quota and answered all of it is
  // retired — its channel closed (it exits on EOF), reaped — and a fresh fork takes its place
  // (manager thread). As Python's, the quota counts calls, so a leak in fn cannot grow forever.
  // Returns false if no successor could be forked (then the pool is broken).
  bool retire_and_replace(Worker& w) {
    ::close(w.fd);
    while (::waitpid(w.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    std::lock_guard lk(mutex);  // worker_pids() reads the pids
    w = Worker{};
    if (shutting_down && queue.empty()) return true;  // nothing left for a successor to do
    try {
      spawn(w, static_cast<std::size_t>(&w - workers.data()));
      return true;
    } catch (const std::system_error& e) {
      broken_reason = std::string("could not replace a retired worker: ") + e.what();
      return false;
    }
  }

  // Whether `w` may be sent another call now (mutex held): alive, not full, not past its quota.
  bool accepts_calls(const Worker& w) const {
    if (w.fd < 0 || w.awaiting.size() >= kInFlightPerWorker) return false;
    return max_tasks_per_child == 0 || w.sent_total < max_tasks_per_child;
  }

  // Moves an accepted call into `w`'s output (mutex held).
  void assign_locked(Worker& w, Call& call) {
    if (w.out.empty()) {
      w.out = std::move(call.frame);
    } else {
      w.out += call.frame;
    }
    w.awaiting.push_back({call.id, std::move(call.sink)});
    ++w.sent_total;
  }

  // Whether `w` has been sent its max_tasks_per_child quota and answered all of it. Read under
  // the mutex, as submit()'s fast path counts calls too; once true it stays true (no one sends
  // such a worker more calls).
  bool quota_done(const Worker& w) {
    std::lock_guard lk(mutex);
    return max_tasks_per_child != 0 && w.sent_total >= max_tasks_per_child && w.awaiting.empty();
  }

  // Writes what it can of bytes[sent..] to a worker without blocking, and counts it in `sent`;
  // once all is written, empties both. False if the worker is gone. MSG_NOSIGNAL: a dead worker
  // must break the pool, not raise SIGPIPE in the parent. What was written is skipped, not
  // erased: erasing it moved the rest of the buffer down after every send of a socket buffer's
  // worth, which made a big frame quadratic (a 64 MiB argument took two seconds, most of it
  // memmove).
  static bool send_some(int fd, std::string& bytes, std::size_t& sent) {
    if (bytes.empty()) return true;
    const ssize_t n =
        ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      if (sent == bytes.size()) {
        bytes.clear();
        sent = 0;
      }
    }
    return n >= 0 || errno == EAGAIN || errno == EINTR;
  }

  // Moves the frames queued for `w` to the manager's own `sending` (manager thread, mutex
  // held), so that the write itself happens without the lock: a system call under it would
  // hold up every submit meanwhile. `sending` needs no lock: submit()'s fast path only sends
  // to a worker with nothing in flight, and a frame being sent is in flight.
  static void take_output_locked(Worker& w) {
    if (w.out.empty()) return;
    if (w.sending.empty()) {
      w.sending.swap(w.out);  // the two buffers trade places: no copy, no allocation
    } else {
      w.sending += w.out;
      w.out.clear();
    }
  }

  // The fast path of submit() (mutex held): with nothing queued and a worker idle, the call goes
  // straight to that worker from the submitting thread — one thread hop fewer than through the
  // manager, which is what a lone round trip costs most. Returns the worker it went to, or
  // nullptr if the manager must dispatch it.
  Worker* send_directly_locked(Call& call) {
    if (!queue.empty() || broken) return nullptr;
    for (Worker& w : workers) {
      if (!w.awaiting.empty() || !w.out.empty() || !accepts_calls(w)) continue;
      call.sink->start(false);  // a call nobody has seen yet cannot have been cancelled
      assign_locked(w, call);
      // A partial write leaves the rest in w.out for the manager (told by the caller); a dead
      // worker is the manager's to notice, on its channel.
      std::size_t sent = 0;
      send_some(w.fd, w.out, sent);
      w.out.erase(0, sent);
      return &w;
    }
    return nullptr;
  }

  // Hands each queued call to the worker with the fewest calls in flight (manager thread, mutex
  // held) — as Python's idle workers pull from one queue, so a long call does not hold up the
  // calls behind it while another worker is free. Several calls for one worker leave in one
  // write.
  void dispatch_locked() {
    while (!queue.empty()) {
      Worker* best = nullptr;
      for (Worker& w : workers) {
        if (accepts_calls(w) && (best == nullptr || w.awaiting.size() < best->awaiting.size()))
          best = &w;
      }
      if (best == nullptr) return;  // every worker is full or waiting to be retired
      Call call = queue.pop_front();
      if (!call.sink->start(false)) continue;  // cancelled while queued: it never runs
      assign_locked(*best, call);
    }
  }

  void fail_everything(const std::string& reason) {
    std::vector<std::unique_ptr<CallSink>> failed;
    {
      std::lock_guard lk(mutex);
      broken = true;
      broken_reason = reason;
      for (Worker& w : workers) {
        while (!w.awaiting.empty())
          failed.push_back(w.awaiting.pop_front().sink);
      }
      while (!queue.empty()) {
        Call call = queue.pop_front();
        if (call.sink->start(false)) failed.push_back(std::move(call.sink));
      }
    }
    for (auto& sink : failed)
      sink->done(Outcome{Outcome::Kind::broken, reason});
  }

  // Reads what a worker sent; completes the futures. False if the worker is gone (or, which
  // would be a bug, answered a call it was not sent: then `garbled` is set).
  bool read_results(Worker& w) {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(w.fd, buf, sizeof buf);
      if (n > 0) {
        wire::reserve_more(w.in, static_cast<std::size_t>(n));
        w.in.append(buf, static_cast<std::size_t>(n));
        if (static_cast<std::size_t>(n) < sizeof buf) break;  // drained: spare the EAGAIN read
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) break;
      return false;  // EOF or error: the worker died
    }
    std::size_t pos = 0;
    ready.clear();
    {
      std::lock_guard lk(mutex);
      while (w.in.size() - pos >= 4 && w.in.size() - pos - 4 >= u32_at(w.in.data() + pos)) {
        const std::uint32_t len = u32_at(w.in.data() + pos);
        const char* p = w.in.data() + pos + 4;
        if (w.awaiting.empty() || w.awaiting.front().id != u64_at(p)) {
          garbled = true;
          break;
        }
        const auto kind = p[8] == 0 ? Outcome::Kind::value : Outcome::Kind::remote_error;
        ready.emplace_back(w.awaiting.pop_front().sink, Outcome{kind, std::string(p + 9, len - 9)});
        pos += 4 + len;
      }
    }
    w.in.erase(0, pos);
    for (auto& [sink, outcome] : ready)
      sink->done(std::move(outcome));  // outside the lock
    ready.clear();                     // the sinks go now, not at the next read
    return !garbled;
  }

  void manage() {
    std::vector<pollfd> fds;
    for (;;) {
      bool finished;
      bool busy_now;
      {
        std::lock_guard lk(mutex);
        sleeping = false;
        work_waiting.store(false, std::memory_order_relaxed);  // what is waiting is seen now
        if (!broken) dispatch_locked();
        std::size_t busy = 0;
        for (Worker& w : workers) {
          busy += w.awaiting.size();
          take_output_locked(w);
        }
        busy_now = busy > 0;
        finished = broken || (shutting_down && queue.empty() && busy == 0);
      }
      if (finished) break;
      // Send what was dispatched at once (a worker that cannot take it all gets the rest when
      // poll says it can), and poll every channel, and the wake-up pipe.
      fds.clear();
      fds.push_back({wake_fds[0], POLLIN, 0});
      for (Worker& w : workers) {
        const bool more = !send_some(w.fd, w.sending, w.sent) || !w.sending.empty();
        fds.push_back({w.fd, static_cast<short>(POLLIN | (more ? POLLOUT : 0)), 0});
      }
      // With calls in flight a result is on its way: poll a moment before sleeping (spin.hpp),
      // and look for new work between polls.
      const bool awake = busy_now && detail::spin_briefly([&] {
                           return work_waiting.load(std::memory_order_relaxed) ||
                                  ::poll(fds.data(), fds.size(), 0) > 0;
                         });
      if (!awake) {
        bool sleep;  // unless a submit came meanwhile (then revents are all still 0: next round)
        {
          std::lock_guard lk(mutex);
          sleep = sleeping = !work_waiting.load(std::memory_order_relaxed);
        }
        if (sleep && ::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
      }
      if (fds[0].revents & POLLIN) {
        char drain[256];
        while (::read(wake_fds[0], drain, sizeof drain) > 0) {
        }
      }
      for (std::size_t i = 0; i < workers.size(); ++i) {
        Worker& w = workers[i];
        const short ev = fds[i + 1].revents;
        bool alive = true;
        if (ev & POLLOUT) alive = send_some(w.fd, w.sending, w.sent);
        if (ev & (POLLIN | POLLHUP | POLLERR)) alive = read_results(w) && alive;
        if (alive && quota_done(w)) {
          if (retire_and_replace(w)) continue;
          fail_everything(std::string(broken_reason));
          break;
        }
        if (!alive) {
          fail_everything((garbled
                               ? "A process in the process pool answered a call it was not "
                                 "sent (pid "
                               : "A process in the process pool was terminated abruptly (pid ") +
                          std::to_string(w.pid) + ")");
          break;
        }
      }
    }
    // Close the channels (workers see EOF and exit); kill them if the pool is broken; reap all.
    bool was_broken;
    {
      std::lock_guard lk(mutex);
      was_broken = broken;
    }
    for (Worker& w : workers) {
      if (w.pid < 0) continue;  // a retired worker that could not be replaced
      if (was_broken) ::kill(w.pid, SIGKILL);
      ::close(w.fd);
      w.fd = -1;
    }
    for (Worker& w : workers) {
      if (w.pid < 0) continue;
      while (::waitpid(w.pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }
};

ProcessPoolExecutor::ProcessPoolExecutor(std::size_t max_workers, std::size_t max_tasks_per_child)
    : max_workers_(max_workers != 0 ? max_workers
                                    : std::max(1u, std::thread::hardware_concurrency())),
      impl_(std::make_unique<Impl>()) {
  impl_->max_workers = max_workers_;
  impl_->max_tasks_per_child = max_tasks_per_child;
}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  shutdown(true);
}

void ProcessPoolExecutor::enqueue(detail::Trampoline trampoline, std::uintptr_t fn,
                                  std::string args, std::unique_ptr<CallSink> sink) {
  Impl& m = *impl_;
  bool wake = false;
  {
    std::lock_guard lk(m.mutex);
    if (m.broken) throw BrokenProcessPool(m.broken_reason);
    if (m.shutting_down) throw std::runtime_error("cannot schedule new futures after shutdown");
    if (args.size() > (1u << 31))
      throw std::invalid_argument("ProcessPoolExecutor: arguments over 2 GiB");
    if (!m.started) {
      m.started = true;
      m.start_workers();
    }
    Impl::Call call;
    call.id = m.next_id++;
    call.frame.reserve(28 + args.size());
    put_u32(call.frame, static_cast<std::uint32_t>(24 + args.size()));
    put_u64(call.frame, call.id);
    put_u64(call.frame, reinterpret_cast<std::uint64_t>(trampoline));
    put_u64(call.frame, fn);
    call.frame += args;
    call.sink = std::move(sink);
    // Straight to an idle worker when possible; the manager still reads the answer (it polls
    // every channel), so it needs no wake-up unless part of the frame is left to write.
    if (const auto* w = m.send_directly_locked(call)) {
      if (w->out.empty()) return;
    } else {
      m.queue.push_back(std::move(call));
    }
    m.work_waiting.store(true, std::memory_order_relaxed);
    wake = m.sleeping;
    m.sleeping = false;  // one wake-up byte is enough
  }
  if (wake) m.wake();
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  Impl& m = *impl_;
  Ring<Impl::Call> cancelled;
  {
    std::lock_guard lk(m.mutex);
    m.shutting_down = true;
    if (cancel_futures) std::swap(cancelled, m.queue);
  }
  while (!cancelled.empty())
    cancelled.pop_front().sink->start(true);  // never sent: cancelled, as Python does
  if (!m.started) return;
  m.wake();
  if (wait && m.manager.joinable()) {
    gil::Released nogil;  // the manager may be completing futures whose callbacks want the GIL
    m.manager.join();
  }
}

std::vector<pid_t> ProcessPoolExecutor::worker_pids() const {
  std::lock_guard lk(impl_->mutex);
  std::vector<pid_t> pids;
  for (const auto& w : impl_->workers) {
    if (w.pid >= 0) pids.push_back(w.pid);
  }
  return pids;
}

}  // namespace gilio::concurrent
