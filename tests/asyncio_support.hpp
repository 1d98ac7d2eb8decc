// tests/asyncio_support.hpp — runs a test coroutine under asyncio::run with a deadline, so a bug
// that leaves a task waiting forever fails the test (TimeoutError) instead of hanging CI.
#pragma once

#include <gtest/gtest.h>

#include <gilio/asyncio.hpp>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace gilio::testing {

// Coroutines the tests share: a value after a delay, a failure after a delay, a wait forever.
inline asyncio::Coro<int> value_after(int v, double delay) {
  co_await asyncio::sleep(delay);
  co_return v;
}
inline asyncio::Coro<int> fail_after(double delay, std::string what) {
  co_await asyncio::sleep(delay);
  throw std::runtime_error(what);
}
inline asyncio::Coro<void> forever() {
  co_await asyncio::sleep(3600);
}

// Logs "tick 0", "tick 1", ... one a turn of the loop, n in all: a clock beside the events a
// test logs, to tell on which turn each came — which must be the turn asyncio's came on (each
// such test quotes the Python program it mirrors and the log CPython 3.13 printed).
inline asyncio::Coro<void> ticker(std::vector<std::string>& log, int n) {
  for (int i = 0; i < n; ++i) {
    log.push_back("tick " + std::to_string(i));
    co_await asyncio::sleep(0);
  }
}

// Awaits `aw` (by reference: it may be awaited again later) and records a failure unless it
// throws an E — whose what(), for a std::exception, must contain `needle`.
template <class E, class Aw>
asyncio::Coro<void> expect_await_throws(Aw& aw, std::string what_failed, std::string needle = {}) {
  try {
    co_await aw;
    ADD_FAILURE() << what_failed;
  } catch (const E& e) {
    if constexpr (std::is_base_of_v<std::exception, E>) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}
template <class E, class Aw>
asyncio::Coro<void> expect_await_throws(
    Aw&& aw, std::string what_failed,
    std::string needle = {}) requires(!std::is_lvalue_reference_v<Aw>) {
  co_await expect_await_throws<E>(aw, std::move(what_failed), std::move(needle));
}

// What a loop's exception handler was given, in order: install() makes it the loop's handler.
struct Reports {
  std::vector<asyncio::ExceptionContext> seen;
  void install(asyncio::EventLoop& loop) {
    loop.set_exception_handler(
        [this](asyncio::EventLoop&, const asyncio::ExceptionContext& c) { seen.push_back(c); });
  }
};

// The what() of a context's exception ("" if it has none, or not a std::exception).
inline std::string what_of(const asyncio::ExceptionContext& c) {
  try {
    if (c.exception) std::rethrow_exception(c.exception);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "";
}

template <class T>
T run_test(asyncio::Coro<T> body, double limit_seconds = 20.0) {
  return asyncio::run(asyncio::wait_for(std::move(body), limit_seconds));
}

}  // namespace gilio::testing
