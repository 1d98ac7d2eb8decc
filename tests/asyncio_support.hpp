// tests/asyncio_support.hpp — runs a test coroutine under asyncio::run with a deadline, so a bug
// that leaves a task waiting forever fails the test (TimeoutError) instead of hanging CI.
#pragma once

#include <gilio/asyncio.hpp>
#include <stdexcept>
#include <string>

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

template <class T>
T run_test(asyncio::Coro<T> body, double limit_seconds = 20.0) {
  return asyncio::run(asyncio::wait_for(std::move(body), limit_seconds));
}

}  // namespace gilio::testing
