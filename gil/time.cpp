// gil/time.cpp — time.sleep and time.monotonic; mirrors Modules/timemodule.c.
//
// The sleep is a plain nanosleep inside gil::Released: the GIL is free for its whole length.
#include "gilio/time.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>

#include "gilio/gil.hpp"
#include "gilio/trace.hpp"

namespace gilio::time {

void sleep(double seconds) {
  if (std::isnan(seconds)) throw std::invalid_argument("time::sleep: invalid value NaN");
  if (seconds < 0) {
    throw std::invalid_argument("time::sleep: sleep length must be non-negative, got " +
                                std::to_string(seconds));
  }
  gil::Released nogil;
  std::this_thread::sleep_for(std::chrono::duration<double>(std::min(seconds, 1e9)));
}

double monotonic() {
  return trace::now_ns() * 1e-9;
}

}  // namespace gilio::time
