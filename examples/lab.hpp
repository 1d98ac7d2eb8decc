// examples/lab.hpp — the few helpers the lesson examples share.
//
// A GIL mode is chosen once per process (as CPython's build decides whether it has a GIL), so an
// example that compares modes runs itself again as a child process with GILIO_GIL set, and reads
// the child's one-line answer from a pipe: run_self(). round_trip() is a blocking one-byte request
// over a socket, with the GIL released around each call. cpu_work() is the "interpreter code" of
// the CPU-bound lessons: a pure loop that calls gil::checkpoint() once per iteration, where
// CPython's eval loop would check its eval breaker at the loop's backward jump; native_work() is
// the same loop as a C extension runs it, with the GIL released.
#pragma once

#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "gilio/gil.hpp"

extern char** environ;

namespace lab {

inline double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Counts primes below `limit` by trial division — deliberately naive CPU work — calling
// `between()` after each number.
template <class Between>
std::int64_t count_primes(std::int64_t limit, Between between) {
  std::int64_t count = 0;
  for (std::int64_t n = 2; n < limit; ++n) {
    bool prime = true;
    for (std::int64_t d = 2; d * d <= n; ++d) {
      if (n % d == 0) {
        prime = false;
        break;
      }
    }
    count += prime;
    between();
  }
  asm volatile("" : : "r"(count) : "memory");  // the result counts even when the caller drops it
  return count;
}

// The work as interpreter code: holding the GIL, checking the eval breaker at the loop's
// backward jump, where CPython's eval loop checks it.
inline std::int64_t cpu_work(std::int64_t limit) {
  return count_primes(limit, [] { gilio::gil::checkpoint(); });
}

// The work as a native library does it (L11: NumPy and the like): the GIL released around the
// whole computation, which touches no interpreter object.
inline std::int64_t native_work(std::int64_t limit) {
  gilio::gil::Released nogil;
  return count_primes(limit, [] {});
}

// One blocking request over a socket: send a byte, wait for a byte back. Each call blocks, so
// each sits in gil::Released — as CPython's socket module wraps send and recv in
// Py_BEGIN_ALLOW_THREADS — and coming back from each, the thread must take the GIL again.
inline void send_byte(int fd) {
  char byte = 'x';
  ssize_t n;
  {
    gilio::gil::Released nogil;
    n = ::send(fd, &byte, 1, MSG_NOSIGNAL);
  }
  if (n != 1) throw std::runtime_error("send failed");
}

inline void recv_byte(int fd) {
  char byte;
  ssize_t n;
  {
    gilio::gil::Released nogil;
    n = ::recv(fd, &byte, 1, 0);
  }
  if (n != 1) throw std::runtime_error("the peer closed the connection");
}

inline void round_trip(int fd) {
  send_byte(fd);
  recv_byte(fd);
}

// Runs this program again with `args` and extra environment entries ("NAME=value"); returns what
// the child printed on stdout. Throws if it cannot start or exits with an error.
inline std::string run_self(const std::vector<std::string>& args,
                            const std::vector<std::string>& env_extra) {
  std::vector<std::string> env_strings(env_extra);
  for (char** e = environ; *e != nullptr; ++e)
    env_strings.emplace_back(*e);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string self = "/proc/self/exe";
  argv.push_back(self.data());
  std::vector<std::string> args_copy(args);
  for (auto& a : args_copy)
    argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("run_self: pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("run_self: cannot start a child process");
  }
  gilio::gil::Released nogil;  // waiting for the child is a blocking call
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("run_self: the child process failed");
  }
  return out;
}

}  // namespace lab
