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
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gilio/asyncio/coro.hpp"
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

}  // namespace gilio::asyncio
