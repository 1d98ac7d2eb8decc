// runtime/subprocess.cpp — create_subprocess_exec, create_subprocess_shell, Process, and the
// protocol side, subprocess_exec and subprocess_shell with SubprocessTransport; mirrors
// Lib/asyncio/subprocess.py, with the parts of base_subprocess.py and unix_events.py
// (_UnixSubprocessTransport, PidfdChildWatcher) that start the child and learn of its end.
//
// Starting: posix_spawnp, which glibc builds on clone(CLONE_VM | CLONE_VFORK) — the child runs
// on the parent's memory until it execs, so no page tables are copied however large the parent
// is, and a failed exec comes back as an error code instead of a child that exits 127. The file
// actions lay out the child's descriptors 0, 1 and 2 (a pipe's end, /dev/null, a caller's
// descriptor, or stdout again for STDOUT), then close everything above 2 (close_fds, Python's
// default). SIGPIPE and SIGXFSZ go back to their default actions, as Python's restore_signals.
//
// Ending: pidfd_open gives a descriptor for the child (Linux 5.3+) that polls readable when it
// exits, so the loop keeps one io_uring poll on it — no SIGCHLD handler, no thread, and no
// waitpid(-1) that could reap someone else's child. That is asyncio's PidfdChildWatcher, its
// default on Linux since 3.12. The poll's completion reaps the child with waitid(P_PIDFD), sets
// returncode and wakes wait(). Signals go through the pidfd as well (pidfd_send_signal), so a
// signal can never reach an unrelated process that was given the pid of a reaped child.
//
// Lifetime: the child's state is shared by the Process handles and, while the poll is in the
// ring, by the poll itself (`self`), so a child whose handles are all gone is still reaped. The
// loop's close cancels every operation in flight; a cancelled poll means the loop is closing
// while the child runs, and the child is killed and reaped then and there.
//
// The protocol side, subprocess_exec and subprocess_shell (base_subprocess.py's
// BaseSubprocessTransport): the same child, with each of its pipes given to a pipe transport
// (protocols.cpp) whose protocol passes what happens to the SubprocessProtocol with the fd
// named, and a task that waits for the exit to call process_exited. connection_lost comes when
// both are over: process_exited called and every pipe closed, whichever comes last (asyncio's
// _try_finish). The pipe protocols and that task hold the transport's state until then, so a
// caller may drop its handles and still hear everything.
#include <fcntl.h>
#include <fmt/core.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gilio/asyncio.hpp"
#include "gilio/asyncio/subprocess.hpp"
#include "net.hpp"
#include "uring.hpp"

extern char** environ;  // NOLINT: POSIX's, not declared by <unistd.h> in C++

namespace gilio::asyncio {
namespace detail {

namespace {
int pidfd_open(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}
}  // namespace

struct ChildState final : Completion {
  ChildState(EventLoop* l, pid_t p, int fd) : loop(l), pid(p), pidfd(fd) {}
  ~ChildState() {
    if (pidfd >= 0) ::close(pidfd);
  }

  EventLoop* loop;
  pid_t pid;
  int pidfd;  // -1 once reaped
  std::optional<int> returncode;
  Event exited;
  std::shared_ptr<ChildState> self;  // while the pidfd's poll is in the ring
  std::optional<StreamWriter> in;
  std::optional<StreamReader> out;
  std::optional<StreamReader> err;

  void watch(std::shared_ptr<ChildState> me) {
    loop->backend().poll(this, pidfd, POLLIN);
    self = std::move(me);
  }

  void complete(int result, std::uint32_t) override {
    auto me = std::move(self);  // perhaps the last reference: we may be gone on return
    if (result > 0) {
      if (!reap(WNOHANG)) watch(std::move(me));  // not ended after all: poll again
      return;
    }
    // Cancelled (the loop's close cancels what is in flight) or failed: the loop will not hear
    // of this child again, so it ends now rather than become a zombie nobody reaps.
    if (loop->get_debug() || result != -ECANCELED) {
      std::fprintf(stderr, "gilio: %s while child process %d was running; killed it\n",
                   result == -ECANCELED ? "the loop closed" : std::strerror(-result),
                   static_cast<int>(pid));
    }
    pidfd_send_signal(pidfd, SIGKILL);
    reap(0);
  }

  // Popen.send_signal: nothing once the child has been reaped (its pid may be another's by now).
  void send_signal(int sig) {
    if (returncode) return;
    if (pidfd_send_signal(pidfd, sig) != 0)
      raise_os_error(errno, fmt::format("send signal {} to process {}", sig, pid));
  }

  // waitid on the pidfd; false if the child has not ended (with WNOHANG).
  bool reap(int flags) {
    siginfo_t info{};
    int rc;
    while ((rc = ::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED | flags)) < 0 &&
           errno == EINTR) {
    }
    if (rc < 0) {
      // ECHILD: something else in the program reaped it (a waitpid(-1) or SIGCHLD set to
      // SIG_IGN). asyncio's watchers report 255 then, with a warning; so does gilio.
      std::fprintf(stderr,
                   "gilio: child process %d's exit status was already read elsewhere (%s); "
                   "its returncode will be 255\n",
                   static_cast<int>(pid), std::strerror(errno));
      returncode = 255;
    } else if (info.si_pid == 0) {
      return false;
    } else {
      returncode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
    }
    ::close(pidfd);
    pidfd = -1;
    exited.set();
    return true;
  }
};

namespace {

// The descriptors one spawn makes; whatever is not handed on is closed when it ends.
struct SpawnFds {
  int parent[3] = {-1, -1, -1};
  int child[3] = {-1, -1, -1};
  ~SpawnFds() {
    for (int i = 0; i < 3; ++i) {
      if (parent[i] >= 0) ::close(parent[i]);
      if (child[i] >= 0) ::close(child[i]);
    }
  }
};

// A descriptor the file actions can dup2 onto 0, 1 or 2 without clobbering another one they still
// need: one above 2. (A parent started with a standard stream closed gets 0, 1 or 2 for a pipe.)
int above_std(int fd, const char* who) {
  if (fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  const int saved = errno;
  ::close(fd);
  if (moved < 0) raise_os_error(saved, std::string(who) + ": fcntl(F_DUPFD_CLOEXEC)");
  return moved;
}

constexpr const char* kStreamName[3] = {"stdin", "stdout", "stderr"};

void check_redirect(const std::optional<int>& r, int target, const char* who) {
  if (!r) return;
  const int v = *r;
  const std::string what = fmt::format("{}: {}_ = {}", who, kStreamName[target], v);
  if (v == subprocess::STDOUT && target != 2)
    throw std::invalid_argument(what + ": STDOUT is for stderr_ only");
  if (v < subprocess::DEVNULL)
    throw std::invalid_argument(what + ": neither a descriptor nor PIPE, STDOUT or DEVNULL");
  if (v >= 0 && ::fcntl(v, F_GETFD) < 0) raise_os_error(errno, what);
}

void check_text(const std::string& s, const char* what, const char* who) {
  if (s.find('\0') != std::string::npos)
    throw std::invalid_argument(fmt::format("{}: {} holds a NUL byte", who, what));
}

// A posix_spawn object (file actions or attributes), initialised and destroyed with its scope.
template <class T, int (*Init)(T*), int (*Destroy)(T*)>
class SpawnObject {
 public:
  SpawnObject() { Init(&v_); }
  ~SpawnObject() { Destroy(&v_); }
  SpawnObject(const SpawnObject&) = delete;
  SpawnObject& operator=(const SpawnObject&) = delete;
  T* get() { return &v_; }

 private:
  T v_;
};
using FileActions = SpawnObject<posix_spawn_file_actions_t, posix_spawn_file_actions_init,
                                posix_spawn_file_actions_destroy>;
using SpawnAttr = SpawnObject<posix_spawnattr_t, posix_spawnattr_init, posix_spawnattr_destroy>;

// The posix_spawn_file_actions_add* calls fail only for want of memory or for a bad descriptor.
void check_action(int rc, const char* who) {
  if (rc != 0) raise_os_error(rc, std::string(who) + ": posix_spawn_file_actions");
}

// pass_fds and close_fds. dup2(fd, fd) in the child clears the descriptor's close-on-exec flag
// there only (glibc does so when the two are equal, as POSIX.1-2024 asks). close_fds then closes
// everything else above 2: all above the highest kept descriptor with one closefrom, and in the
// gaps below it every number, open or not. Which are open is not asked here: a descriptor that
// another thread opens without close-on-exec between that look and the spawn would reach the
// child. glibc's child ignores the EBADF of a close on a number that is not open, so the gaps
// cost one close(2) each in the child, as CPython's child closes its gaps after the fork.
void keep_and_close(FileActions& fa, const subprocess::Options& o, const char* who) {
  std::vector<int> keep;
  for (const int fd : o.pass_fds) {
    if (fd < 0)
      throw std::invalid_argument(fmt::format("{}: pass_fds: {} is no descriptor", who, fd));
    if (::fcntl(fd, F_GETFD) < 0)
      raise_os_error(errno, fmt::format("{}: pass_fds: descriptor {}", who, fd));
    if (fd > 2) keep.push_back(fd);  // 0-2 are the child's standard streams anyway
  }
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  for (const int fd : keep)
    check_action(posix_spawn_file_actions_adddup2(fa.get(), fd, fd), who);
  if (!o.close_fds) return;
  int from = 3;
  for (const int fd : keep) {
    for (int gap = from; gap < fd; ++gap)
      check_action(posix_spawn_file_actions_addclose(fa.get(), gap), who);
    from = fd + 1;
  }
  check_action(posix_spawn_file_actions_addclosefrom_np(fa.get(), from), who);
}

// Starts the child, watched by the running loop; the parent's ends of its pipes are left in
// `fds.parent` for the caller to take.
std::shared_ptr<ChildState> start_child(const std::vector<std::string>& argv,
                                        const subprocess::Options& o, const char* who,
                                        SpawnFds& fds) {
  EventLoop& loop = get_running_loop();
  if (argv.empty()) throw std::invalid_argument(std::string(who) + ": no program given");
  for (const std::string& a : argv)
    check_text(a, "an argument", who);
  check_redirect(o.stdin_, 0, who);
  check_redirect(o.stdout_, 1, who);
  check_redirect(o.stderr_, 2, who);
  if (o.env) {
    for (const std::string& e : *o.env) {
      check_text(e, "an environment entry", who);
      if (e.find('=') == std::string::npos || e.front() == '=')
        throw std::invalid_argument(
            fmt::format("{}: environment entry '{}' is not NAME=value", who, e));
    }
  }
  if (!o.cwd.empty()) {  // checked here so that the error names the directory, not the program
    check_text(o.cwd, "cwd", who);
    struct stat st {};
    if (::stat(o.cwd.c_str(), &st) != 0) raise_os_error(errno, std::string(who) + ": cwd " + o.cwd);
    if (!S_ISDIR(st.st_mode)) raise_os_error(ENOTDIR, std::string(who) + ": cwd " + o.cwd);
  }

  FileActions fa;
  const std::optional<int>* redirect[3] = {&o.stdin_, &o.stdout_, &o.stderr_};
  for (int target = 0; target < 3; ++target) {
    if (!*redirect[target]) continue;  // inherited
    const int r = **redirect[target];
    if (r == subprocess::PIPE) {
      int ends[2];
      if (target == 0) {
        // A socket, so that writing to a child that stopped reading is an error, not SIGPIPE
        // (see subprocess.hpp).
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0)
          raise_os_error(errno, std::string(who) + ": socketpair for stdin");
        fds.parent[0] = above_std(ends[0], who);
        fds.child[0] = above_std(ends[1], who);
      } else {
        if (::pipe2(ends, O_CLOEXEC) != 0)
          raise_os_error(errno, fmt::format("{}: pipe for {}", who, kStreamName[target]));
        fds.parent[target] = above_std(ends[0], who);
        fds.child[target] = above_std(ends[1], who);
      }
      check_action(posix_spawn_file_actions_adddup2(fa.get(), fds.child[target], target), who);
    } else if (r == subprocess::DEVNULL) {
      check_action(posix_spawn_file_actions_addopen(fa.get(), target, "/dev/null", O_RDWR, 0), who);
    } else if (r == subprocess::STDOUT) {
      check_action(posix_spawn_file_actions_adddup2(fa.get(), 1, 2), who);
    } else if (r != target) {
      check_action(posix_spawn_file_actions_adddup2(fa.get(), r, target), who);
    }
  }
  if (!o.cwd.empty())
    check_action(posix_spawn_file_actions_addchdir_np(fa.get(), o.cwd.c_str()), who);
  keep_and_close(fa, o, who);

  SpawnAttr attr;
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  posix_spawnattr_setsigdefault(attr.get(), &defaults);
  short flags = POSIX_SPAWN_SETSIGDEF;
  if (o.start_new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(attr.get(), flags);

  std::vector<char*> args;
  for (const std::string& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  if (o.env) {
    for (const std::string& e : *o.env)
      env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);
  }

  pid_t pid = 0;
  if (const int rc = ::posix_spawnp(&pid, args[0], fa.get(), attr.get(), args.data(),
                                    o.env ? env.data() : environ);
      rc != 0) {
    raise_os_error(rc, fmt::format("{}: cannot run '{}'", who, argv[0]));
  }
  const int pidfd = pidfd_open(pid);  // close-on-exec, as pidfd_open always makes it
  if (pidfd < 0) {
    const int saved = errno;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    raise_os_error(saved, fmt::format("{}: pidfd_open for process {}", who, pid));
  }

  auto state = std::make_shared<ChildState>(&loop, pid, pidfd);
  state->watch(state);
  return state;
}

Process spawn(const std::vector<std::string>& argv, const subprocess::Options& o, const char* who) {
  SpawnFds fds;
  auto state = start_child(argv, o, who, fds);
  const pid_t pid = state->pid;
  for (int i = 0; i < 3; ++i) {
    if (fds.parent[i] < 0) continue;
    StreamRef stream = stream_of(std::exchange(fds.parent[i], -1), o.limit,
                                 fmt::format("{} of process {}", kStreamName[i], pid), i != 0);
    if (i == 0) {
      state->in.emplace(std::move(stream));
    } else {
      (i == 1 ? state->out : state->err).emplace(std::move(stream));
    }
  }
  return Process(std::move(state));
}

// A child's exit is heard by the loop that started it, and its pipes are that loop's streams: a
// task of another loop would wait forever, or be woken from that loop's thread.
void check_own_loop(const ChildState& s, const char* what) {
  if (running_loop() != s.loop) {
    throw std::runtime_error(std::string(what) + ": the process belongs to a different event loop");
  }
}

Coro<int> wait_for_exit(std::shared_ptr<ChildState> s) {
  while (!s->returncode) {  // (an exit already heard is anyone's to read)
    check_own_loop(*s, "Process.wait");
    co_await s->exited.wait();
  }
  co_return *s->returncode;
}

Coro<void> feed_stdin(StreamWriter in, std::optional<std::string> input) {
  try {
    if (input) {
      in.write(std::move(*input));
      co_await in.drain();
    }
  } catch (const BrokenPipeError&) {  // the child exited without reading it all: not an error
  } catch (const ConnectionResetError&) {
  }
  in.close();
}

Coro<void> nothing_to_feed() {
  co_return;
}
Coro<std::string> nothing_to_read() {
  co_return std::string();
}

Coro<std::pair<std::string, std::string>> communicate_with(std::shared_ptr<ChildState> s,
                                                           std::optional<std::string> input) {
  check_own_loop(*s, "Process.communicate");
  Coro<void> feeding = s->in ? feed_stdin(*s->in, std::move(input)) : nothing_to_feed();
  Coro<std::string> out = s->out ? Coro<std::string>(s->out->read()) : nothing_to_read();
  Coro<std::string> err = s->err ? Coro<std::string>(s->err->read()) : nothing_to_read();
  auto got = co_await gather(std::move(feeding), std::move(out), std::move(err));
  co_await wait_for_exit(s);
  co_return std::pair<std::string, std::string>(std::move(std::get<1>(got)),
                                                std::move(std::get<2>(got)));
}

}  // namespace
}  // namespace detail

detail::ChildState& Process::state(const char* what) const {
  if (!s_) throw std::runtime_error(std::string(what) + ": no process (default-constructed)");
  return *s_;
}

int Process::pid() const {
  return state("Process.pid").pid;
}

std::optional<int> Process::returncode() const {
  return state("Process.returncode").returncode;
}

namespace {
template <class Stream>
Stream& piped(std::optional<Stream>& s, const char* name) {
  if (!s) {
    throw std::runtime_error(fmt::format(
        "Process.{0}: the child's {0} is not a pipe (start it with {0}_ = subprocess::PIPE)",
        name));
  }
  return *s;
}
}  // namespace

StreamWriter& Process::stdin_() {
  return piped(state("Process.stdin").in, "stdin");
}
StreamReader& Process::stdout_() {
  return piped(state("Process.stdout").out, "stdout");
}
StreamReader& Process::stderr_() {
  return piped(state("Process.stderr").err, "stderr");
}

Coro<int> Process::wait() {
  state("Process.wait");
  return detail::wait_for_exit(s_);
}

Coro<std::pair<std::string, std::string>> Process::communicate(std::optional<std::string> input) {
  if (input && !state("Process.communicate").in) {
    throw std::invalid_argument(
        "Process.communicate: input given, but the child's stdin is not a pipe");
  }
  state("Process.communicate");
  return detail::communicate_with(s_, std::move(input));
}

Coro<std::pair<std::string, std::string>> Process::communicate() {
  return communicate(std::nullopt);
}

void Process::send_signal(int sig) {
  state("Process.send_signal").send_signal(sig);
}

void Process::terminate() {
  send_signal(SIGTERM);
}

void Process::kill() {
  send_signal(SIGKILL);
}

Coro<Process> create_subprocess_exec(std::vector<std::string> argv, subprocess::Options options) {
  co_return detail::spawn(argv, options, "create_subprocess_exec");
}

Coro<Process> create_subprocess_shell(std::string cmd, subprocess::Options options) {
  std::vector<std::string> argv{"/bin/sh", "-c", std::move(cmd)};
  co_return detail::spawn(argv, options, "create_subprocess_shell");
}

Coro<Process> create_subprocess_exec(std::vector<std::string> argv) {
  return create_subprocess_exec(std::move(argv), subprocess::Options{});
}

Coro<Process> create_subprocess_shell(std::string cmd) {
  return create_subprocess_shell(std::move(cmd), subprocess::Options{});
}

// ---- subprocess_exec, subprocess_shell: the protocol side (base_subprocess.py) ----

namespace detail {

struct SubprocessState {
  SubprocessState(std::shared_ptr<ChildState> c, std::shared_ptr<SubprocessProtocol> p)
      : child(std::move(c)), protocol(std::move(p)) {}

  std::shared_ptr<ChildState> child;
  std::shared_ptr<SubprocessProtocol> protocol;  // until connection_lost has been called
  std::optional<Transport> pipes[3];             // the child's fds 0-2 that are PIPEs
  bool pipe_open[3] = {false, false, false};     // ... until their pipe_connection_lost
  bool closing = false;
  bool exit_told = false;  // process_exited has been called
  bool finished = false;   // connection_lost has been called

  // Calls a protocol method; what it throws is reported, and the caller goes on.
  template <class F>
  void call(const char* method, F&& fn) {
    if (!protocol) return;
    try {
      fn(*protocol);
    } catch (...) {  // as asyncio's, whose protocol calls are call_soon callbacks
      child->loop->report_callback_exception(
          fmt::format("SubprocessProtocol.{}() for process {}", method, child->pid));
    }
  }
  void pipe_lost(int fd, std::exception_ptr error) {
    pipe_open[fd] = false;
    call("pipe_connection_lost", [&](SubprocessProtocol& p) { p.pipe_connection_lost(fd, error); });
    try_finish();
  }
  void exited() {
    exit_told = true;
    call("process_exited", [](SubprocessProtocol& p) { p.process_exited(); });
    try_finish();
  }
  // asyncio's _try_finish: connection_lost once the protocol has heard of the child's end (not
  // just once it was reaped: that wakes watch_exit only later) and every pipe has closed.
  void try_finish() {
    if (finished || !exit_told) return;
    for (const bool open : pipe_open) {
      if (open) return;
    }
    finished = true;
    call("connection_lost", [](SubprocessProtocol& p) { p.connection_lost(nullptr); });
    protocol.reset();
  }
};

namespace {

// The protocol of one pipe's transport (asyncio's ReadSubprocessPipeProto and
// WriteSubprocessPipeProto): passes what happens to the subprocess protocol, naming the fd.
// It holds the state until its transport's connection_lost lets go of it.
class PipeProtocol final : public Protocol {
 public:
  PipeProtocol(std::shared_ptr<SubprocessState> s, int fd) : s_(std::move(s)), fd_(fd) {}
  void data_received(std::string data) override {
    s_->call("pipe_data_received",
             [&](SubprocessProtocol& p) { p.pipe_data_received(fd_, std::move(data)); });
  }
  void connection_lost(std::exception_ptr error) override { s_->pipe_lost(fd_, std::move(error)); }
  void pause_writing() override {
    s_->call("pause_writing", [](SubprocessProtocol& p) { p.pause_writing(); });
  }
  void resume_writing() override {
    s_->call("resume_writing", [](SubprocessProtocol& p) { p.resume_writing(); });
  }

 private:
  std::shared_ptr<SubprocessState> s_;
  int fd_;
};

// Tells the protocol of the child's end; holds the state until then.
Coro<void> watch_exit(std::shared_ptr<SubprocessState> s) {
  try {
    co_await s->child->exited.wait();
  } catch (const CancelledError&) {
    // The loop is closing with the child running (the child is killed as the loop closes): the
    // protocol is let go of without connection_lost, since it may hold the transport — a cycle
    // otherwise — as a socket transport's is (protocols.cpp).
    s->protocol.reset();
    throw;
  }
  s->exited();
}

}  // namespace

SubprocessTransport start_subprocess(std::shared_ptr<SubprocessProtocol> protocol,
                                     const std::vector<std::string>& argv,
                                     const subprocess::Options& options, const char* who) {
  if (!protocol)
    throw std::invalid_argument(std::string(who) + ": the protocol factory returned no protocol");
  SpawnFds fds;
  auto child = start_child(argv, options, who, fds);
  auto s = std::make_shared<SubprocessState>(child, std::move(protocol));
  try {
    for (int i = 0; i < 3; ++i) {
      if (fds.parent[i] < 0) continue;
      s->pipes[i] =
          start_pipe_transport(std::make_shared<PipeProtocol>(s, i), fds.parent[i],
                               i == 0 ? PipeEnd::write : PipeEnd::read,
                               fmt::format("{} of process {}", kStreamName[i], child->pid));
      fds.parent[i] = -1;  // the transport's now
      s->pipe_open[i] = true;
    }
  } catch (...) {
    // Reaped by its watch; the pipes made so far close as it ends.
    pidfd_send_signal(child->pidfd, SIGKILL);
    throw;
  }
  create_task(watch_exit(s));
  SubprocessTransport transport(s);
  s->call("connection_made", [&](SubprocessProtocol& p) { p.connection_made(transport); });
  return transport;
}

}  // namespace detail

detail::SubprocessState& SubprocessTransport::state(const char* who) const {
  if (!s_) throw std::runtime_error(std::string(who) + ": no process (default-constructed)");
  return *s_;
}

int SubprocessTransport::get_pid() const {
  return state("SubprocessTransport.get_pid").child->pid;
}

std::optional<int> SubprocessTransport::get_returncode() const {
  return state("SubprocessTransport.get_returncode").child->returncode;
}

std::optional<Transport> SubprocessTransport::get_pipe_transport(int fd) const {
  const detail::SubprocessState& s = state("SubprocessTransport.get_pipe_transport");
  if (fd < 0 || fd > 2) return std::nullopt;
  return s.pipes[fd];
}

void SubprocessTransport::send_signal(int sig) {
  detail::SubprocessState& s = state("SubprocessTransport.send_signal");
  if (s.finished) {
    raise_os_error(ESRCH, fmt::format("send signal {} to process {}: its transport has finished",
                                      sig, s.child->pid));
  }
  s.child->send_signal(sig);
}

void SubprocessTransport::terminate() {
  send_signal(SIGTERM);
}

void SubprocessTransport::kill() {
  send_signal(SIGKILL);
}

void SubprocessTransport::close() {
  detail::SubprocessState& s = state("SubprocessTransport.close");
  if (s.closing) return;
  s.closing = true;
  for (std::optional<Transport>& pipe : s.pipes) {
    if (pipe) pipe->close();
  }
  if (!s.child->returncode) {
    if (s.child->loop->get_debug()) {
      std::fprintf(stderr, "gilio: SubprocessTransport.close(): killing running process %d\n",
                   static_cast<int>(s.child->pid));
    }
    try {
      s.child->send_signal(SIGKILL);
    } catch (const ProcessLookupError&) {  // it has just ended: its watch will tell
    }
  }
}

bool SubprocessTransport::is_closing() const {
  return state("SubprocessTransport.is_closing").closing;
}

}  // namespace gilio::asyncio
