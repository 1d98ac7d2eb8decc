// examples/io_threads.cpp — lesson L3: the GIL is released around blocking calls, so threads
// that wait for I/O wait together.
//
// The Python program it mirrors:
//
//     import socket, threading, time
//     def slow_server(conn):                    # answers each request after 100 ms
//         while conn.recv(1):
//             time.sleep(0.1); conn.sendall(b"!")
//     def request(sock):
//         sock.sendall(b"?"); sock.recv(1)      # recv blocks with the GIL released
//     pairs = [socket.socketpair() for _ in range(8)]
//     for a, b in pairs: threading.Thread(target=slow_server, args=(b,), daemon=True).start()
//     t0 = time.perf_counter()
//     for a, _ in pairs: request(a)                                  # ~0.8 s
//     print("sequential", time.perf_counter() - t0)
//     t0 = time.perf_counter()
//     ts = [threading.Thread(target=request, args=(a,)) for a, _ in pairs]
//     for t in ts: t.start()
//     for t in ts: t.join()
//     print("8 threads", time.perf_counter() - t0)                    # ~0.1 s
//
// The same with time.sleep(0.1). Each client thread holds the GIL except inside its blocking
// call (gil::Released around send/recv and sleep), which is exactly when the others run.
// `io_threads --check` exits non-zero unless 8 threaded waits take well under 8 sequential ones.
#include <fmt/core.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gilio/gil.hpp"
#include "gilio/threading.hpp"
#include "gilio/time.hpp"
#include "lab.hpp"

namespace gil = gilio::gil;
namespace threading = gilio::threading;

namespace {

constexpr int kWaits = 8;
constexpr double kLatency = 0.1;

// Runs `work(i)` for i in [0, kWaits) one after another, then in kWaits threads.
template <class Work>
std::pair<double, double> sequential_and_threaded(Work work) {
  gil::acquire();
  double t0 = lab::now();
  for (int i = 0; i < kWaits; ++i)
    work(i);
  const double sequential = lab::now() - t0;
  gil::release();

  std::vector<threading::Thread> threads;
  for (int i = 0; i < kWaits; ++i)
    threads.emplace_back(work, i);
  t0 = lab::now();
  for (auto& t : threads)
    t.start();
  for (auto& t : threads)
    t.join();
  return {sequential, lab::now() - t0};
}

}  // namespace

int main(int argc, char** argv) {
  const bool check = argc > 1 && std::strcmp(argv[1], "--check") == 0;

  // The slow server: plain threads outside the GIL, like a server in another process.
  std::vector<int> clients;
  std::vector<std::thread> servers;
  for (int i = 0; i < kWaits; ++i) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) throw std::runtime_error("socketpair");
    clients.push_back(fds[0]);
    servers.emplace_back([fd = fds[1]] {
      char byte;
      while (::recv(fd, &byte, 1, 0) == 1) {
        std::this_thread::sleep_for(std::chrono::duration<double>(kLatency));
        if (::send(fd, "!", 1, 0) != 1) break;
      }
      ::close(fd);
    });
  }

  const auto [sleep_seq, sleep_thr] =
      sequential_and_threaded([](int) { gilio::time::sleep(kLatency); });
  const auto [sock_seq, sock_thr] =
      sequential_and_threaded([&](int i) { lab::round_trip(clients[i]); });

  for (int fd : clients)
    ::shutdown(fd, SHUT_RDWR);
  for (auto& t : servers)
    t.join();
  for (int fd : clients)
    ::close(fd);

  fmt::print("{} blocking waits of {:.0f} ms each\n\n", kWaits, kLatency * 1000);
  fmt::print("{:<34} {:>11} {:>11} {:>9}\n", "", "sequential", "8 threads", "overlap");
  fmt::print("{:<34} {:>10.3f}s {:>10.3f}s {:>8.1f}x\n", "time::sleep(0.1)", sleep_seq, sleep_thr,
             sleep_seq / sleep_thr);
  fmt::print("{:<34} {:>10.3f}s {:>10.3f}s {:>8.1f}x\n", "blocking recv() on a socket", sock_seq,
             sock_thr, sock_seq / sock_thr);
  fmt::print("\nEach thread drops the GIL inside its blocking call, so all 8 wait at once.\n");
  if (check && (sleep_thr > sleep_seq / 3 || sock_thr > sock_seq / 3)) {
    fmt::print("CHECK FAILED: threaded waits did not overlap\n");
    return 1;
  }
  return 0;
}
