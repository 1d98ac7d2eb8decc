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
  double per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// The I/O thread's loop: send a byte, read it back, for `seconds` (lab::round_trip: both calls
// in gil::Released).
Result round_trips(int fd, double seconds) {
  std::vector<double> latencies;
  const double end = lab::now() + seconds;
  while (lab::now() < end) {
    const double t0 = lab::now();
    lab::round_trip(fd);
    latencies.push_back(lab::now() - t0);
  }
  std::sort(latencies.begin(), latencies.end());
  Result r;
  r.per_second = latencies.size() / seconds;
  if (!latencies.empty()) {
    r.p50_us = latencies[latencies.size() / 2] * 1e6;
    r.p99_us = latencies[latencies.size() * 99 / 100] * 1e6;
  }
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
  fmt::print("{} {} {} {} {} {}\n", alone.per_second, alone.p50_us, alone.p99_us, busy.per_second,
             busy.p50_us, busy.p99_us);
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
      out += fmt::format("{}\"{}\": {{\"alone\": {}, \"busy\": {}, \"busy_p50_us\": {}}}",
                         out.size() > 1 ? ", " : "", mode, v[0], v[3], v[4]);
    }
    fmt::print("{}}}\n", out);
    return 0;
  }

  fmt::print(
      "An I/O thread's round trips over a socketpair, alone and beside one CPU-bound "
      "thread\n(switch interval {} s)\n\n",
      gil::get_switch_interval());
  fmt::print("{:<12} {:>15} {:>16} {:>9}   {:>30}\n", "GIL mode", "alone (trips/s)",
             "with CPU thread", "slowdown", "latency p50 / p99 with CPU");
  for (const char* mode : {"cpython", "io_priority"}) {
    std::istringstream in(
        lab::run_self({"--measure", seconds}, {std::string("GILIO_GIL=") + mode}));
    Result alone, busy;
    in >> alone.per_second >> alone.p50_us >> alone.p99_us >> busy.per_second >> busy.p50_us >>
        busy.p99_us;
    fmt::print("{:<12} {:>15.0f} {:>16.0f} {:>8.1f}x   {:>13.0f} us / {:>8.0f} us\n", mode,
               alone.per_second, busy.per_second, alone.per_second / busy.per_second, busy.p50_us,
               busy.p99_us);
  }
  fmt::print(
      "\ncpython: each return from send/recv waits a switch interval for the spinner.\n"
      "io_priority: the returning thread asks for the GIL at once (Beazley's fix).\n");
  return 0;
}
