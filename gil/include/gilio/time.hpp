// gilio/time.hpp — time.sleep: block the calling thread with the GIL released.
//
// Mirrors Modules/timemodule.c's pysleep: the sleep itself sits between Py_BEGIN_ALLOW_THREADS
// and Py_END_ALLOW_THREADS, so other threads run while this one sleeps (lesson L3). Coming back
// it has to take the GIL again, and in Mode::cpython that can cost up to a switch interval
// behind a CPU-bound holder — the convoy effect. A negative or NaN length throws
// std::invalid_argument (Python raises ValueError: "sleep length must be non-negative").
#pragma once

#include <chrono>

namespace gilio::time {

void sleep(double seconds);

template <class Rep, class Period>
void sleep(std::chrono::duration<Rep, Period> d) {
  sleep(std::chrono::duration<double>(d).count());
}

// time.monotonic(): seconds on a clock that never goes back.
double monotonic();

}  // namespace gilio::time
