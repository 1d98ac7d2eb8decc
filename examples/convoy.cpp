// examples/convoy.cpp — the convoy effect (bpo-7946): one CPU-bound thread makes an I/O thread's
// round trips about a hundred times slower, and the io_priority mode that fixes it.
//
// The Python program it mirrors (after David Beazley's 2010 experiment):
//
//     import socket, threading, time
//     a, b = socket.socketpair()
//     def echo():                                  # the "remote" peer
//         while data := b.recv(1): b.sendall(data)
//     threading.Thread(target=echo, daemon=True).start()
//     def round_trips(seconds):
//         n, end = 0, time.perf_counter() + seconds
//         while time.perf_counter() < end:
//             a.sendall(b"x"); a.recv(1); n += 1   # both calls release and retake the GIL
//         return n / seconds
//     alone = round_trips(0.5)
//     def spin():
//         while not stop: pass                     # pure CPU, never blocks
//     stop = False; threading.Thread(target=spin).start()
//     busy = round_trips(0.5); stop = True
//     print(f"slowdown {alone / busy:.0f}x")      # ~100x on CPython 3.11 and 3.13 here
//
// Why: each send/recv drops the GIL; the spinning thread grabs it; when the I/O thread comes
// back it must wait a whole switch interval (5 ms) before its drop request is even made. In
// io_priority mode the returning thread makes the request at once, and the spinner hands the GIL
// over at its next checkpoint. The mode is per process, so each row runs in a child process.
// The echo peer is a plain thread that never touches the GIL, standing for another machine.
#include <fmt/core.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "lab.hpp"

namespace gil = gilio::gil;
namespace threading = gilio::threading;

namespace {

struct Result {
  double per_second = 0;   // round trips
  double waited = 0;       // the share of blocking calls whose return waited for the GIL
  double wait_p50_us = 0;  // the median of those calls, GIL wait included
};

// The I/O thread's loop: send a byte, read it back, for `seconds` (lab::send_byte and
// lab::recv_byte: each call in gil::Released). A call's return "waited" if the call took over
// half a switch interval: a free one takes microseconds, one that came back to a spinner holding
// the GIL at least one interval. Counted per call, not per round trip: a round trip may wait
// once, twice or not at all (after each wait the I/O thread gets a few free calls while the
// spinner wakes from its forced switch, and how many depends on how fast this machine wakes a
// sleeping core), so the median round trip jumps between 0, 1 and 2 intervals from run to run.
Result round_trips(int fd, double seconds) {
  std::vector<double> waits;
  std::size_t trips = 0;
  const double threshold = gil::get_switch_interval() / 2;
  const auto timed = [&](void (*call)(int), int fd) {
    const double t0 = lab::now();
    call(fd);
    if (const double took = lab::now() - t0; took > threshold) waits.push_back(took);
  };
  const double end = lab::now() + seconds;
  while (lab::now() < end) {
    timed(lab::send_byte, fd);
    timed(lab::recv_byte, fd);
    ++trips;
  }
  std::sort(waits.begin(), waits.end());
  Result r;
  r.per_second = trips / seconds;
  if (trips > 0) r.waited = static_cast<double>(waits.size()) / (2 * trips);
  if (!waits.empty()) r.wait_p50_us = waits[waits.size() / 2] * 1e6;
  return r;
}

// The child's part: measures alone and beside a CPU-bound thread, prints one line.
void measure(double seconds) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
  std::thread echo([fd = fds[1]] {
    char byte;
    while (::recv(fd, &byte, 1, 0) == 1) {
      if (::send(fd, &byte, 1, 0) != 1) break;
    }
  });

  Result alone, busy;
  threading::Thread io_alone([&] { alone = round_trips(fds[0], seconds); });
  io_alone.start();
  io_alone.join();

  std::atomic<bool> stop{false};
  threading::Thread spinner([&] {
    while (!stop.load(std::memory_order_relaxed))
      gil::checkpoint();
  });
  threading::Thread io_busy([&] { busy = round_trips(fds[0], seconds); });
  spinner.start();
  io_busy.start();
  io_busy.join();
  stop = true;
  spinner.join();

  ::shutdown(fds[0], SHUT_RDWR);
  echo.join();
  ::close(fds[0]);
  ::close(fds[1]);
  fmt::print("{} {} {} {} {} {}\n", alone.per_second, alone.waited, alone.wait_p50_us,
             busy.per_second, busy.waited, busy.wait_p50_us);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 2 && std::strcmp(argv[1], "--measure") == 0) {
    measure(std::stod(argv[2]));
    return 0;
  }
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const bool json = argc > 1 && std::strcmp(argv[1], "--json") == 0;  // for bench/run.py
  const std::string seconds = quick ? "0.2" : "0.5";
  if (json) {
    std::string out = "{";
    for (const char* mode : {"cpython", "io_priority"}) {
      std::istringstream in(
          lab::run_self({"--measure", seconds}, {std::string("GILIO_GIL=") + mode}));
      double v[6];
      for (double& x : v)
        in >> x;
      out += fmt::format(
          "{}\"{}\": {{\"alone\": {}, \"busy\": {}, \"busy_waited\": {}, \"busy_wait_p50_us\": "
          "{}}}",
          out.size() > 1 ? ", " : "", mode, v[0], v[3], v[4], v[5]);
    }
    fmt::print("{}}}\n", out);
    return 0;
  }

  fmt::print(
      "An I/O thread's round trips over a socketpair, alone and beside one CPU-bound "
      "thread\n(switch interval {} s)\n\n",
      gil::get_switch_interval());
  fmt::print("{:<12} {:>15} {:>16} {:>9}   {:>32}\n", "GIL mode", "alone (trips/s)",
             "with CPU thread", "slowdown", "with CPU: calls that waited, p50");
  for (const char* mode : {"cpython", "io_priority"}) {
    std::istringstream in(
        lab::run_self({"--measure", seconds}, {std::string("GILIO_GIL=") + mode}));
    Result alone, busy;
    in >> alone.per_second >> alone.waited >> alone.wait_p50_us >> busy.per_second >> busy.waited >>
        busy.wait_p50_us;
    fmt::print("{:<12} {:>15.0f} {:>16.0f} {:>8.1f}x   {:>19.2f}%, {:>6.0f} us\n", mode,
               alone.per_second, busy.per_second, alone.per_second / busy.per_second,
               busy.waited * 100, busy.wait_p50_us);
  }
  fmt::print(
      "\ncpython: a return from send/recv that finds the spinner holding the GIL waits a switch\n"
      "interval for it; the calls in between are free while the spinner wakes up.\n"
      "io_priority: the returning thread asks for the GIL at once (Beazley's fix).\n");
  return 0;
}
