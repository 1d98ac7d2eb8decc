// bench/loadgen.cpp — drives an echo server: C connections, each sending an S-byte message and
// waiting for its echo, again and again, for T seconds. Plain C++ and epoll, not gilio, so that
// the client is the same for every server. One thread, pinned to the core given.
//
// Prints one JSON line: requests/s, p50/p99 latency (µs), and the server's CPU time per request
// (µs, utime + stime from /proc/PID/stat) — which stays meaningful when both cores are busy —
// and the load generator's own (µs per request, and the share of its core it used: near 1, the
// client and not the server set the requests/s).
//
// With `tls` after the CPU, every connection is a TLS 1.3 one (OpenSSL, the server's
// certificate taken unchecked): the handshakes happen before the clock starts, then each message
// is one SSL_write and its echo is read with SSL_read on the same epoll loop. The TLS engine is
// the same for every server, so the comparison stays one of servers.
// Usage: loadgen PORT CONNECTIONS SIZE SECONDS SERVER_PID [CPU [tls]]
#include <fcntl.h>
#include <fmt/core.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// utime + stime of a process, in seconds.
double cpu_seconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  std::istringstream in(line.substr(line.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

// This process's user + system CPU time, in seconds.
double own_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

struct Conn {
  int fd;
  SSL* tls = nullptr;
  std::size_t got = 0;
  double sent_at = 0;
};

// One message out: the whole of it (a small message fits the socket's buffer at once).
bool send_message(const Conn& c, const std::string& m) {
  if (c.tls != nullptr)
    return SSL_write(c.tls, m.data(), static_cast<int>(m.size())) == static_cast<int>(m.size());
  return ::send(c.fd, m.data(), m.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(m.size());
}

// What has arrived of the echo (up to `room` bytes): > 0 bytes, 0 for none yet (TLS: half a
// record), < 0 when the server closed or failed.
ssize_t receive(const Conn& c, char* into, std::size_t room) {
  if (c.tls == nullptr) {
    const ssize_t n = ::recv(c.fd, into, room, 0);
    return n > 0 ? n : -1;
  }
  const int n = SSL_read(c.tls, into, static_cast<int>(room));
  if (n > 0) return n;
  return SSL_get_error(c.tls, n) == SSL_ERROR_WANT_READ ? 0 : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    fmt::print(stderr, "usage: loadgen PORT CONNECTIONS SIZE SECONDS SERVER_PID [CPU]\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int conns = std::atoi(argv[2]);
  const std::size_t size = std::strtoul(argv[3], nullptr, 10);
  const double seconds = std::atof(argv[4]);
  const int server_pid = std::atoi(argv[5]);
  if (argc > 6) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(std::atoi(argv[6]), &set);
    sched_setaffinity(0, sizeof set, &set);
  }
  SSL_CTX* tls = nullptr;
  if (argc > 7 && std::string(argv[7]) == "tls") {
    tls = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, nullptr);
  }
  const std::string message(size, 'm');
  std::vector<char> buf(size);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> all(conns);
  for (int i = 0; i < conns; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      fmt::print(stderr, "loadgen: cannot connect to port {}\n", port);
      return 1;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    all[i].fd = fd;
    if (tls != nullptr) {  // the handshake blocking, then the socket non-blocking for the loop
      all[i].tls = SSL_new(tls);
      SSL_set_fd(all[i].tls, fd);
      if (SSL_connect(all[i].tls) != 1) {
        fmt::print(stderr, "loadgen: the TLS handshake with port {} failed\n", port);
        return 1;
      }
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<std::uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  std::vector<double> latencies;
  latencies.reserve(1 << 20);
  const double cpu0 = cpu_seconds(server_pid);
  const double own0 = own_cpu_seconds();
  const double t0 = now();
  const double end = t0 + seconds;
  for (auto& c : all) {
    c.sent_at = now();
    if (!send_message(c, message)) return 1;
  }
  std::vector<epoll_event> events(conns);
  double t = t0;
  while (t < end) {
    const int n = epoll_wait(ep, events.data(), conns, 100);
    t = now();
    for (int i = 0; i < n; ++i) {
      Conn& c = all[events[i].data.u32];
      // TLS: every record that came is read now; epoll will not tell of what OpenSSL holds.
      for (;;) {
        const ssize_t got = receive(c, buf.data(), size - c.got);
        if (got < 0) {
          fmt::print(stderr, "loadgen: the server closed a connection\n");
          return 1;
        }
        if (got == 0) break;
        c.got += static_cast<std::size_t>(got);
        if (c.got < size) {
          if (c.tls == nullptr) break;
          continue;
        }
        latencies.push_back(t - c.sent_at);
        c.got = 0;
        c.sent_at = t;
        if (!send_message(c, message)) return 1;
        break;
      }
    }
  }
  const double elapsed = now() - t0;
  const double cpu = cpu_seconds(server_pid) - cpu0;
  const double own = own_cpu_seconds() - own0;
  for (auto& c : all) {
    SSL_free(c.tls);
    ::close(c.fd);
  }
  SSL_CTX_free(tls);
  std::sort(latencies.begin(), latencies.end());
  const std::size_t k = latencies.size();
  if (k == 0) return 1;
  fmt::print(
      "{{\"requests_per_s\": {:.0f}, \"p50_us\": {:.1f}, \"p99_us\": {:.1f}, "
      "\"server_cpu_us_per_req\": {:.2f}, \"client_cpu_us_per_req\": {:.2f}, "
      "\"client_busy\": {:.3f}, \"requests\": {}}}\n",
      k / elapsed, latencies[k / 2] * 1e6, latencies[k * 99 / 100] * 1e6, cpu / k * 1e6,
      own / k * 1e6, own / elapsed, k);
}
