// examples/concurrent_requests.cpp — lesson L5: N slow requests one after another, in N
// threads, and in N tasks on one thread.
//
// The Python program it mirrors:
//
//     import asyncio, socket, threading, time
//     N, PORT = 10, ...                                  # a local server that answers in 100 ms
//     def fetch_blocking():
//         with socket.create_connection(('127.0.0.1', PORT)) as s:
//             s.sendall(b'GET\n'); return s.recv(100)      # recv releases the GIL
//     async def fetch():
//         reader, writer = await asyncio.open_connection('127.0.0.1', PORT)
//         writer.write(b'GET\n'); data = await reader.readline(); writer.close(); return data
//     t0 = time.perf_counter(); [fetch_blocking() for _ in range(N)]       # ~1.0 s
//     t0 = time.perf_counter(); ts = [threading.Thread(target=fetch_blocking) for _ in range(N)]
//     [t.start() for t in ts]; [t.join() for t in ts]                      # ~0.1 s, N threads
//     async def main(): await asyncio.gather(*(fetch() for _ in range(N)))
//     t0 = time.perf_counter(); asyncio.run(main())                        # ~0.1 s, one thread
//
// Threads and tasks both overlap the waiting; tasks do it on one thread, with no thread per
// request and no GIL hand-offs. The slow server runs in a child process with its own loop.
#include <fmt/core.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cstdio>
#include <gilio/asyncio.hpp>
#include <gilio/gil.hpp>
#include <gilio/threading.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace asyncio = gilio::asyncio;
namespace gil = gilio::gil;
namespace threading = gilio::threading;

constexpr int kRequests = 10;
constexpr double kLatency = 0.1;

// The slow server: answers each line after 100 ms.
asyncio::Coro<> slow_handler(asyncio::StreamReader r, asyncio::StreamWriter w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    co_await asyncio::sleep(kLatency);
    w.write("OK " + line);
    co_await w.drain();
  }
  w.close();
}

asyncio::Coro<> serve(int ready_fd) {
  auto server = co_await asyncio::start_server(slow_handler, "127.0.0.1", 0);
  const int port = server.port();
  if (::write(ready_fd, &port, sizeof port) != sizeof port) throw std::runtime_error("pipe");
  co_await server.serve_forever();
}

// One request with blocking calls, each inside gil::Released (as CPython's socket module).
std::string fetch_blocking(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  char buf[100] = {};
  ssize_t n = -1;
  {
    gil::Released nogil;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::send(fd, "GET\n", 4, MSG_NOSIGNAL) == 4) {
      n = ::recv(fd, buf, sizeof buf, 0);
    }
  }
  ::close(fd);
  if (n <= 0) throw std::runtime_error("the slow server did not answer");
  return std::string(buf, static_cast<std::size_t>(n));
}

asyncio::Coro<std::string> fetch(int port) {
  auto [reader, writer] = co_await asyncio::open_connection("127.0.0.1", port);
  writer.write("GET\n");
  std::string data = co_await reader.readline();
  writer.close();
  co_return data;
}

asyncio::Coro<> fetch_all(int port) {
  std::vector<asyncio::Task<std::string>> tasks;
  for (int i = 0; i < kRequests; ++i)
    tasks.push_back(asyncio::create_task(fetch(port)));
  co_await asyncio::gather(tasks);
}

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int main() {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return 1;
  const pid_t server = ::fork();  // before this process has any thread or loop
  if (server == 0) {
    ::close(pipe_fds[0]);
    asyncio::run(serve(pipe_fds[1]));
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  int port = 0;
  if (::read(pipe_fds[0], &port, sizeof port) != sizeof port) return 1;

  gil::acquire();
  double t0 = now();
  for (int i = 0; i < kRequests; ++i)
    fetch_blocking(port);
  const double sequential = now() - t0;
  gil::release();

  std::vector<threading::Thread> threads;
  for (int i = 0; i < kRequests; ++i)
    threads.emplace_back([port] { fetch_blocking(port); });
  t0 = now();
  for (auto& t : threads)
    t.start();
  for (auto& t : threads)
    t.join();
  const double threaded = now() - t0;

  t0 = now();
  asyncio::run(fetch_all(port));
  const double tasks = now() - t0;

  ::kill(server, SIGTERM);
  ::waitpid(server, nullptr, 0);

  fmt::print("{} requests to a server that answers each after {:.0f} ms\n\n", kRequests,
             kLatency * 1000);
  fmt::print("{:<28} {:>9} {:>9}\n", "", "seconds", "threads");
  fmt::print("{:<28} {:>9.3f} {:>9}\n", "one after another", sequential, 1);
  fmt::print("{:<28} {:>9.3f} {:>9}\n", "one thread per request", threaded, kRequests);
  fmt::print("{:<28} {:>9.3f} {:>9}\n", "one task per request", tasks, 1);
  fmt::print("\nTasks overlap the waiting like threads do — on one thread, holding the GIL.\n");
  return tasks < sequential / 3 ? 0 : 1;
}
