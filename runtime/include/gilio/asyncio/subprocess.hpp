// gilio/asyncio/subprocess.hpp — child processes with streams: create_subprocess_exec,
// create_subprocess_shell, Process; mirrors Lib/asyncio/subprocess.py (runtime/subprocess.cpp).
//
// As in asyncio, a child's standard streams are either inherited (the default, Python's None),
// connected to the parent (PIPE: the Process then has a StreamWriter for the child's stdin, a
// StreamReader for its stdout or stderr), sent to /dev/null (DEVNULL), or given a descriptor the
// caller owns; STDOUT sends stderr wherever stdout goes. The program is started at once (no
// shell unless create_subprocess_shell is asked for), and the loop learns that it ended through
// a pidfd polled on the ring, so wait() costs no thread and no SIGCHLD handler.
//
//     asyncio::subprocess::Options opts;
//     opts.stdout_ = asyncio::subprocess::PIPE;
//     std::vector<std::string> argv{"ls", "-l"};
//     asyncio::Process proc = co_await asyncio::create_subprocess_exec(argv, opts);
//     auto [out, err] = co_await proc.communicate();
//
// Where it differs from asyncio, and why:
// - Output is pulled, as every gilio stream is: bytes stay in the pipe until someone reads them.
//   wait() waits for the process only (asyncio's also waits until its pipes reach EOF, which it
//   reads eagerly). A child that writes more than a pipe holds (64 KiB) then blocks until it is
//   read — the deadlock asyncio's docs warn of for wait(); communicate() reads while it waits.
// - The child's stdin is a Unix socket pair, not a pipe (libuv, and so Node.js, does the same;
//   asyncio does on AIX). Writing to a pipe whose reader is gone raises SIGPIPE, which would kill
//   a C++ program that did not ignore it (Python ignores it at start-up); a socket is written
//   with MSG_NOSIGNAL, so a child that stops reading makes drain() raise BrokenPipeError or
//   ConnectionResetError instead. What a child may notice: its stdin is a socket, so opening
//   /dev/stdin fails (ENXIO). Its stdout and stderr are real pipes.
// - A Process dropped while its child runs leaves the child running; the loop still reaps it
//   when it ends (asyncio's child watcher does the same). A loop that closes kills and reaps the
//   children still running (asyncio's transports do so when they are collected).
//
// A Process is the loop's that started it, as its streams are: from a task of another loop,
// wait() throws std::runtime_error unless the exit was already heard, and communicate() always.
//
// Beneath Process, asyncio has the callback style of protocols.hpp for children too, and this
// header has it as well: subprocess_exec and subprocess_shell (asyncio's loop.subprocess_exec
// and loop.subprocess_shell) start a child and hand what happens to it to a SubprocessProtocol —
// pipe_data_received(fd, bytes) for each piece of its stdout (1) or stderr (2), then
// pipe_connection_lost(fd, error) as each pipe closes, process_exited() when the child ends, and
// connection_lost() once both have happened for everything — through a SubprocessTransport that
// holds a pipe transport for each piped stream (get_pipe_transport). Their streams default to
// PIPE, as asyncio's do.
//
//     auto [transport, protocol] =
//         co_await asyncio::subprocess_exec([] { return std::make_shared<Collect>(); }, argv);
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
#include "gilio/asyncio/protocols.hpp"
#include "gilio/asyncio/streams.hpp"

namespace gilio::asyncio {

namespace subprocess {
// asyncio.subprocess.PIPE, STDOUT and DEVNULL, with Python's values. A descriptor (>= 0) is
// used as it is; std::nullopt (Python's None) inherits the parent's.
inline constexpr int PIPE = -1;
inline constexpr int STDOUT = -2;  // for stderr only: where stdout goes
inline constexpr int DEVNULL = -3;

// The keyword arguments of create_subprocess_exec. (The trailing underscores: stdin, stdout and
// stderr are macros in <cstdio>.)
struct Options {
  std::optional<int> stdin_;
  std::optional<int> stdout_;
  std::optional<int> stderr_;
  std::size_t limit = kDefaultStreamLimit;  // the StreamReaders' buffer limit
  std::string cwd;                          // "" : the parent's working directory
  // "NAME=value" strings, the child's whole environment; std::nullopt: the parent's.
  std::optional<std::vector<std::string>> env;
  bool close_fds = true;           // close every descriptor above 2 in the child (Python's default)
  bool start_new_session = false;  // setsid() in the child
  // Descriptors the child keeps under the same numbers besides 0-2, also with close_fds (Popen's
  // pass_fds). Each must be open here; it stays close-on-exec in this process.
  std::vector<int> pass_fds;

  // The three streams PIPE: the defaults of loop.subprocess_exec and subprocess_shell.
  static Options piped() {
    Options o;
    o.stdin_ = o.stdout_ = o.stderr_ = PIPE;
    return o;
  }
};
}  // namespace subprocess

namespace detail {
struct ChildState;
}

// asyncio.subprocess.Process: a copyable handle to a child process started by
// create_subprocess_exec or create_subprocess_shell.
class Process {
 public:
  Process() = default;
  explicit Process(std::shared_ptr<detail::ChildState> s) : s_(std::move(s)) {}

  int pid() const;
  // The exit status once the child has ended and the loop has reaped it: its exit code, or
  // -N if signal N ended it (Python's returncode). std::nullopt while it runs.
  std::optional<int> returncode() const;

  // The parent's ends of the pipes (asyncio's proc.stdin, proc.stdout, proc.stderr).
  // std::runtime_error if that stream was not created with PIPE.
  StreamWriter& stdin_();
  StreamReader& stdout_();
  StreamReader& stderr_();

  // Waits until the child ends; returns returncode (see the header's note on pipes).
  Coro<int> wait();
  // Writes `input` to stdin (if given; stdin must be a PIPE) and closes it, reads stdout and
  // stderr to EOF (the ones that are PIPEs), all at once, then waits for the child. Returns
  // (stdout, stderr), "" for one that is not a PIPE. A child that exits without reading all of
  // its input is not an error (asyncio ignores BrokenPipeError and ConnectionResetError there).
  Coro<std::pair<std::string, std::string>> communicate(std::optional<std::string> input);
  Coro<std::pair<std::string, std::string>> communicate();

  // Sends signal `sig` (through the pidfd, so never to a process that reused the pid). Does
  // nothing once the child has been reaped, as Popen.send_signal. OSError for a bad signal.
  void send_signal(int sig);
  void terminate();  // SIGTERM
  void kill();       // SIGKILL

 private:
  detail::ChildState& state(const char* what) const;
  std::shared_ptr<detail::ChildState> s_;
};

// Starts argv[0] (looked up on PATH) with arguments argv[1..]. FileNotFoundError or
// PermissionError if it cannot be run, std::invalid_argument for an empty argv or a bad option.
// (With g++ 12, name a braced argv first: `std::vector<std::string> argv{...};` — g++ 12 does not
// compile a braced list inside a co_await expression.)
Coro<Process> create_subprocess_exec(std::vector<std::string> argv, subprocess::Options options);
// Runs `cmd` with /bin/sh -c, as asyncio.create_subprocess_shell.
Coro<Process> create_subprocess_shell(std::string cmd, subprocess::Options options);
// With the default options: every stream inherited. (Overloads, not default arguments: g++ 12
// destroys a coroutine's defaulted class-type argument twice when the call is co_awaited.)
Coro<Process> create_subprocess_exec(std::vector<std::string> argv);
Coro<Process> create_subprocess_shell(std::string cmd);

class SubprocessTransport;

// asyncio.SubprocessProtocol: override what you need; each default does nothing. Each method is
// called on the loop's thread, never from within another; what one throws is reported to the
// loop's exception handler and delivery goes on (asyncio calls each with call_soon, whose
// handle reports it the same way).
class SubprocessProtocol {
 public:
  virtual ~SubprocessProtocol() = default;
  // The child runs and its pipes are connected; `transport` is the protocol's to keep.
  virtual void connection_made(SubprocessTransport& transport) { (void)transport; }
  // Bytes the child wrote to its stdout (`fd` 1) or stderr (2), in order for each pipe.
  virtual void pipe_data_received(int fd, std::string data) {
    (void)fd;
    (void)data;
  }
  // The pipe for the child's `fd` (0, 1 or 2) closed: nullptr at its EOF or a close(), the
  // OSError of a failure (a write to a stdin that the child stopped reading: BrokenPipeError).
  virtual void pipe_connection_lost(int fd, std::exception_ptr error) {
    (void)fd;
    (void)error;
  }
  // The child ended and was reaped: the transport's get_returncode() has its status.
  virtual void process_exited() {}
  // The last call, once the child has ended and every pipe has closed (always nullptr, as
  // asyncio's: the failures were the pipes').
  virtual void connection_lost(std::exception_ptr error) { (void)error; }
  // The stdin pipe's buffer passed its high-water mark, and later fell to its low one.
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

namespace detail {
struct SubprocessState;
}

// asyncio's SubprocessTransport: a copyable handle to a child started by subprocess_exec or
// subprocess_shell.
class SubprocessTransport {
 public:
  SubprocessTransport() = default;
  explicit SubprocessTransport(std::shared_ptr<detail::SubprocessState> s) : s_(std::move(s)) {}

  int get_pid() const;
  // The child's exit status once it has been reaped (Process::returncode's), else std::nullopt.
  std::optional<int> get_returncode() const;
  // The transport of the pipe for the child's `fd`: a write pipe's for 0 (write, write_eof,
  // close; flow control through the protocol's pause_writing), a read pipe's for 1 and 2
  // (pause_reading, resume_reading, close). std::nullopt for a stream that is not a PIPE, and
  // for any other fd.
  std::optional<Transport> get_pipe_transport(int fd) const;
  // As Process's, through the pidfd; nothing once the child has been reaped. After
  // connection_lost, ProcessLookupError (asyncio's transport has let go of its process then).
  void send_signal(int sig);
  void terminate();  // SIGTERM
  void kill();       // SIGKILL
  // Closes every pipe and kills the child if it still runs (asyncio's close(); a warning says so
  // in debug mode); process_exited and connection_lost follow as always. Twice does nothing.
  void close();
  bool is_closing() const;

 private:
  detail::SubprocessState& state(const char* who) const;
  std::shared_ptr<detail::SubprocessState> s_;
};

namespace detail {
// Starts the child of argv with the given options and connects `protocol` to it.
SubprocessTransport start_subprocess(std::shared_ptr<SubprocessProtocol> protocol,
                                     const std::vector<std::string>& argv,
                                     const subprocess::Options& options, const char* who);

template <class Factory>
using SubprocessPair = std::pair<SubprocessTransport, decltype(std::declval<Factory&>()())>;

// subprocess_exec and subprocess_shell: the protocol made, the child started, the pair.
template <class Factory>
Coro<SubprocessPair<Factory>> subprocess_with(Factory factory, std::vector<std::string> argv,
                                              subprocess::Options options, const char* who) {
  auto protocol = factory();
  SubprocessTransport transport = start_subprocess(protocol, argv, options, who);
  co_return SubprocessPair<Factory>(std::move(transport), std::move(protocol));
}
}  // namespace detail

// loop.subprocess_exec(protocol_factory, *args, ...): starts argv[0] (looked up on PATH) as
// create_subprocess_exec does, with the same options (`limit` aside, which does not apply), and
// returns the transport and the protocol — a std::shared_ptr to a SubprocessProtocol made by
// `factory()` — once connection_made has been called. Errors are create_subprocess_exec's;
// std::invalid_argument if the factory returns no protocol. Without options, the three streams
// are PIPEs (subprocess::Options::piped()), as asyncio's defaults; with options, each stream is
// what they say (std::nullopt: inherited). (With g++ 12, name a capturing factory and a braced
// argv before the co_await.)
template <class Factory>
auto subprocess_exec(Factory factory, std::vector<std::string> argv, subprocess::Options options)
    -> Coro<detail::SubprocessPair<Factory>> {
  return detail::subprocess_with(std::move(factory), std::move(argv), std::move(options),
                                 "subprocess_exec");
}
template <class Factory>
auto subprocess_exec(Factory factory, std::vector<std::string> argv)
    -> Coro<detail::SubprocessPair<Factory>> {
  return subprocess_exec(std::move(factory), std::move(argv), subprocess::Options::piped());
}

// loop.subprocess_shell(protocol_factory, cmd, ...): the same for `cmd` run by /bin/sh -c.
template <class Factory>
auto subprocess_shell(Factory factory, std::string cmd, subprocess::Options options)
    -> Coro<detail::SubprocessPair<Factory>> {
  std::vector<std::string> argv{"/bin/sh", "-c", std::move(cmd)};
  return detail::subprocess_with(std::move(factory), std::move(argv), std::move(options),
                                 "subprocess_shell");
}
template <class Factory>
auto subprocess_shell(Factory factory, std::string cmd) -> Coro<detail::SubprocessPair<Factory>> {
  return subprocess_shell(std::move(factory), std::move(cmd), subprocess::Options::piped());
}

}  // namespace gilio::asyncio
