// tests/support.hpp — small helpers shared by the test files.
//
// Every wait in a test is bounded: spin_until() gives up after a deadline and reports false, so
// a broken GIL fails the test instead of hanging CI.
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>

namespace gilio::testing {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Calls step() until pred() holds or `limit` seconds pass; returns pred().
template <class Pred, class Step>
bool spin_until(Pred pred, double limit, Step step) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!pred()) {
    if (seconds_since(t0) > limit) return pred();
    step();
  }
  return true;
}

template <class Pred>
bool spin_until(Pred pred, double limit = 10.0) {
  return spin_until(pred, limit, [] { std::this_thread::yield(); });
}

// The calling thread's kernel id.
inline pid_t this_tid() {
  return static_cast<pid_t>(::syscall(SYS_gettid));
}

// Is thread `tid` of this process asleep in the kernel ('S' in /proc/self/task/TID/stat)? A test
// that must reach a loop asleep in io_uring waits for this before it acts.
inline bool asleep(pid_t tid) {
  std::ifstream stat("/proc/self/task/" + std::to_string(tid) + "/stat");
  const std::string all((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto paren = all.rfind(')');  // the name, in parentheses, may hold spaces
  return paren != std::string::npos && paren + 2 < all.size() && all[paren + 2] == 'S';
}

// Waits up to `limit` seconds for child process `pid`; kills it on timeout. Returns its exit
// code; -1 if it was killed for running late, -2 if a signal ended it.
inline int wait_child(pid_t pid, double limit = 10.0) {
  int status = 0;
  const bool exited = spin_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit,
                                 [] { ::usleep(1000); });
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

}  // namespace gilio::testing
