// tests/support.hpp — small helpers shared by the test files.
//
// Every wait in a test is bounded: spin_until() gives up after a deadline and reports false, so
// a broken GIL fails the test instead of hanging CI.
#pragma once

#include <chrono>
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

}  // namespace gilio::testing
