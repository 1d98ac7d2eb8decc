// tests/asyncio_support.hpp — runs a test coroutine under asyncio::run with a deadline, so a bug
// that leaves a task waiting forever fails the test (TimeoutError) instead of hanging CI.
#pragma once

#include <gilio/asyncio.hpp>

namespace gilio::testing {

template <class T>
T run_test(asyncio::Coro<T> body, double limit_seconds = 20.0) {
  return asyncio::run(asyncio::wait_for(std::move(body), limit_seconds));
}

}  // namespace gilio::testing
