// bench/sock_echo.cpp — an echo server on gilio's low-level loop.sock_* methods (no streams):
// asyncio's sock_accept / sock_recv / sock_sendall loop, for the echo comparison beside
// examples/echo_server (streams). Usage: sock_echo PORT
#include <fmt/core.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <gilio/asyncio.hpp>

namespace asyncio = gilio::asyncio;

asyncio::Coro<> echo(int fd) {
  auto& loop = asyncio::get_running_loop();
  char buf[65536];
  for (;;) {
    const std::size_t n = co_await loop.sock_recv_into(fd, buf, sizeof buf);
    if (n == 0) break;
    co_await loop.sock_sendall(fd, std::string(buf, n));
  }
  ::close(fd);
}

asyncio::Coro<> serve(int port) {
  auto& loop = asyncio::get_running_loop();
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, SOMAXCONN) != 0) {
    throw std::runtime_error("bind/listen failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  fmt::print("Serving on 127.0.0.1:{}\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  for (;;) {
    auto conn = co_await loop.sock_accept(lfd);
    ::setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    asyncio::create_task(echo(conn.fd));
  }
}

int main(int argc, char** argv) {
  asyncio::run(serve(argc > 1 ? std::atoi(argv[1]) : 8888));
}
