// bench/uring_echo.cpp — the floor: a minimal echo server written directly on liburing, one
// ring, one thread, no abstraction. Each connection has one buffer and alternates recv and
// send; accept is re-armed after each connection. What the kernel allows on this machine.
// Not gilio: gilio's own io_uring code is runtime/uring.cpp.
//
// The ring is set up as io_uring's authors advise for a ring only one thread uses (and as gilio
// sets up its own): DEFER_TASKRUN + SINGLE_ISSUER. Without them the kernel interrupts the server
// to finish each completed recv, which cost it a fifth more CPU per request here (docs/05).
// Its recv for a connection's next message is queued when the send's completion arrives, so it
// reaches the kernel one loop turn after the send (gilio's backend gets there by queueing every
// recv last in its batch; runtime/uring.hpp).
// Usage: uring_echo PORT
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

enum Kind { kAccept, kRecv, kSend };

struct Conn {
  int fd;
  unsigned sent;
  unsigned len;
  char buf[65536];
};

struct Op {
  Kind kind;
  Conn* conn;
};

io_uring ring;
Op accept_op{kAccept, nullptr};

io_uring_sqe* sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  while (s == nullptr) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

void submit_recv(Conn* c, Op* op) {
  op->kind = kRecv;
  io_uring_sqe* s = sqe();
  io_uring_prep_recv(s, c->fd, c->buf, sizeof c->buf, 0);
  io_uring_sqe_set_data(s, op);
}

void drop(Conn* c, Op* op) {
  ::close(c->fd);
  delete c;
  delete op;
}

void submit_send(Conn* c, Op* op) {
  op->kind = kSend;
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, c->fd, c->buf + c->sent, c->len - c->sent, MSG_NOSIGNAL);
  io_uring_sqe_set_data(s, op);
}

}  // namespace

int main(int argc, char** argv) {
  const int port = argc > 1 ? std::atoi(argv[1]) : 8888;
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(lfd, SOMAXCONN) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("Serving on 127.0.0.1:%d\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  if (int rc =
          io_uring_queue_init(1024, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
      rc < 0) {
    std::fprintf(stderr, "io_uring_queue_init: %s\n", std::strerror(-rc));
    return 1;
  }
  io_uring_sqe* s = sqe();
  io_uring_prep_accept(s, lfd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data(s, &accept_op);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    io_uring_cqe* cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++n;
      Op* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
      const int res = cqe->res;
      if (op->kind == kAccept) {
        if (res >= 0) {
          ::setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          auto* c = new Conn{res, 0, 0, {}};
          submit_recv(c, new Op{kRecv, c});
        }
        io_uring_sqe* a = sqe();
        io_uring_prep_accept(a, lfd, nullptr, nullptr, SOCK_CLOEXEC);
        io_uring_sqe_set_data(a, &accept_op);
      } else if (op->kind == kRecv) {
        Conn* c = op->conn;
        if (res <= 0) {
          drop(c, op);
        } else {
          c->len = static_cast<unsigned>(res);
          c->sent = 0;
          submit_send(c, op);
        }
      } else {
        Conn* c = op->conn;
        if (res <= 0) {
          drop(c, op);
        } else {
          c->sent += static_cast<unsigned>(res);
          if (c->sent < c->len) {
            submit_send(c, op);
          } else {
            submit_recv(c, op);
          }
        }
      }
    }
    io_uring_cq_advance(&ring, n);
  }
}
