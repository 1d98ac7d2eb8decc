// tests/test_datagrams.cpp — gilio/asyncio/datagrams.hpp: create_datagram_endpoint, its transport
// and protocol, over real UDP sockets on loopback (ideas from Lib/test/test_asyncio's
// test_base_events and test_selector_events datagram cases, in our own code).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::expect_await_throws;
using gilio::testing::run_test;

namespace {

// Records what the transport tells it, and answers each datagram with the same bytes if `echo`.
struct Recorder : asyncio::DatagramProtocol {
  explicit Recorder(bool echo_back = false) : echo(echo_back) {}
  void connection_made(asyncio::DatagramTransport& t) override {
    events.push_back("made");
    transport = t;
  }
  void datagram_received(std::string data, std::string host, int port) override {
    events.push_back("datagram");
    if (echo) transport.sendto(data, host, port);
    received.emplace_back(std::move(data), std::move(host), port);
    arrived.set();
  }
  void error_received(std::exception_ptr e) override {
    events.push_back("error");
    errors.push_back(e);
    failed.set();
  }
  void connection_lost(std::exception_ptr e) override {
    events.push_back(e ? "lost with an error" : "lost");
    lost.set();
  }
  // Waits (bounded) until `n` datagrams have arrived.
  Coro<void> until_received(std::size_t n) {
    while (received.size() < n) {
      arrived.clear();
      co_await asyncio::wait_for(arrived.wait(), 10.0);
    }
  }

  bool echo;
  asyncio::DatagramTransport transport;
  std::vector<std::string> events;
  std::vector<std::tuple<std::string, std::string, int>> received;
  std::vector<std::exception_ptr> errors;
  asyncio::Event arrived, failed, lost;
};

asyncio::DatagramEndpoint local(int port = 0) {
  asyncio::DatagramEndpoint where;
  where.local_addr = {"127.0.0.1", port};
  return where;
}
asyncio::DatagramEndpoint remote(int port) {
  asyncio::DatagramEndpoint where;
  where.remote_addr = {"127.0.0.1", port};
  return where;
}
int port_of(const asyncio::DatagramTransport& t) {
  const std::string name = t.sockname();
  return std::stoi(name.substr(name.rfind(':') + 1));
}

// A UDP port nobody listens on: bound, then closed again.
int unused_udp_port() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&in), sizeof in);
  socklen_t len = sizeof in;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&in), &len);
  ::close(fd);
  return ntohs(in.sin_port);
}

}  // namespace

// asyncio's UDP echo pair: a server bound to a port answers each datagram to its sender; a client
// connected to the server sends and hears back. Datagrams keep their boundaries, an empty one
// and one of the largest size included; connection_made comes first, connection_lost last.
TEST(DatagramEndpoint, EchoKeepsEachDatagramWhole) {
  run_test([]() -> Coro<void> {
    auto make_server = [] { return std::make_shared<Recorder>(true); };
    auto [server, server_side] = co_await asyncio::create_datagram_endpoint(make_server, local());
    const int port = port_of(server);
    EXPECT_GT(port, 0);
    EXPECT_EQ(server.peername(), "");
    auto make_client = [] { return std::make_shared<Recorder>(); };
    auto [client, client_side] =
        co_await asyncio::create_datagram_endpoint(make_client, remote(port));
    EXPECT_EQ(client.peername(), "127.0.0.1:" + std::to_string(port));
    const std::vector<std::string> messages = {"ping", "", "x", std::string(1400, 'm'),
                                               std::string(65507, 'L')};  // 65507: IPv4's most
    for (std::size_t i = 0; i < messages.size(); ++i) {
      client.sendto(messages[i]);
      co_await client_side->until_received(i + 1);
      EXPECT_EQ(std::get<0>(client_side->received[i]), messages[i]) << "datagram " << i;
      EXPECT_EQ(std::get<1>(client_side->received[i]), "127.0.0.1");
      EXPECT_EQ(std::get<2>(client_side->received[i]), port);
    }
    EXPECT_EQ(std::get<2>(server_side->received[0]), port_of(client)) << "the sender's port";
    client.close();
    EXPECT_TRUE(client.is_closing());
    server.close();
    co_await asyncio::wait_for(client_side->lost.wait(), 10.0);
    co_await asyncio::wait_for(server_side->lost.wait(), 10.0);
    EXPECT_EQ(client_side->events.front(), "made");
    EXPECT_EQ(client_side->events.back(), "lost");
    EXPECT_TRUE(client_side->errors.empty());
  }());
}

// sendto refuses what it cannot send, with an error that says why; so does an endpoint with no
// address at all.
TEST(DatagramEndpoint, WhatCannotBeSentIsAClearError) {
  run_test([]() -> Coro<void> {
    auto make = [] { return std::make_shared<Recorder>(); };
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::create_datagram_endpoint(make, asyncio::DatagramEndpoint{}), "made no endpoint",
        "give local_addr, remote_addr or both");
    auto [unconnected, u] = co_await asyncio::create_datagram_endpoint(make, local());
    EXPECT_THROW(unconnected.sendto("where to?"), std::invalid_argument);
    EXPECT_THROW(unconnected.sendto("x", "localhost", 9), std::invalid_argument)
        << "a name would need a lookup";
    EXPECT_THROW(unconnected.sendto("x", "127.0.0.1", 70000), std::invalid_argument);
    auto [connected, c] =
        co_await asyncio::create_datagram_endpoint(make, remote(port_of(unconnected)));
    EXPECT_THROW(connected.sendto("x", "127.0.0.1", port_of(unconnected) + 1),
                 std::invalid_argument);
    connected.sendto("to the remote address, named", "127.0.0.1", port_of(unconnected));
    co_await u->until_received(1);
    connected.close();
    EXPECT_THROW(connected.sendto("late"), std::runtime_error);
    unconnected.close();
    co_await asyncio::wait_for(c->lost.wait(), 10.0);
  }());
}

// A connected socket hears a peer's ICMP "port unreachable" as ECONNREFUSED: it goes to
// error_received, and the transport goes on.
TEST(DatagramEndpoint, APortNobodyListensOnIsAnErrorReceived) {
  run_test([]() -> Coro<void> {
    auto make = [] { return std::make_shared<Recorder>(); };
    auto [t, p] = co_await asyncio::create_datagram_endpoint(make, remote(unused_udp_port()));
    t.sendto("anyone?");
    co_await asyncio::wait_for(p->failed.wait(), 10.0);
    EXPECT_THROW(std::rethrow_exception(p->errors.at(0)), asyncio::ConnectionRefusedError);
    EXPECT_FALSE(t.is_closing());
    t.close();
    co_await asyncio::wait_for(p->lost.wait(), 10.0);
  }());
}

// A protocol method that throws goes to the loop's exception handler; the transport goes on.
TEST(DatagramEndpoint, AProtocolThatThrowsIsReportedAndTheTransportGoesOn) {
  struct Fragile : Recorder {
    void datagram_received(std::string data, std::string host, int port) override {
      if (data == "bad") throw std::runtime_error("cannot digest that");
      Recorder::datagram_received(std::move(data), std::move(host), port);
    }
  };
  gilio::testing::Reports reports;
  run_test([&]() -> Coro<void> {
    reports.install(asyncio::get_running_loop());
    auto make_server = [] { return std::make_shared<Fragile>(); };
    auto [server, fragile] = co_await asyncio::create_datagram_endpoint(make_server, local());
    auto make = [] { return std::make_shared<Recorder>(); };
    auto [client, c] = co_await asyncio::create_datagram_endpoint(make, remote(port_of(server)));
    client.sendto("bad");
    client.sendto("good");
    co_await fragile->until_received(1);
    EXPECT_EQ(std::get<0>(fragile->received[0]), "good");
    client.close();
    server.close();
    co_await asyncio::wait_for(fragile->lost.wait(), 10.0);
  }());
  ASSERT_EQ(reports.seen.size(), 1u);
  EXPECT_EQ(reports.seen[0].message, "Exception in callback");
  EXPECT_EQ(reports.seen[0].handle, "DatagramProtocol.datagram_received");
  EXPECT_EQ(gilio::testing::what_of(reports.seen[0]), "cannot digest that");
}

// close() sends what is queued before it closes; abort() drops it. On loopback a datagram is in
// the receiver's queue when its send returns, so the marker sent after the abort arrives behind
// anything the aborted transport had sent.
TEST(DatagramEndpoint, CloseSendsWhatIsQueuedAndAbortDropsIt) {
  run_test([]() -> Coro<void> {
    auto make = [] { return std::make_shared<Recorder>(); };
    auto [server, s] = co_await asyncio::create_datagram_endpoint(make, local());
    const int port = port_of(server);
    auto [closing, c] = co_await asyncio::create_datagram_endpoint(make, remote(port));
    for (int i = 0; i < 50; ++i)
      closing.sendto("queued " + std::to_string(i));
    EXPECT_GT(closing.get_write_buffer_size(), 0u);
    closing.close();
    co_await asyncio::wait_for(c->lost.wait(), 10.0);
    co_await s->until_received(50);
    EXPECT_EQ(std::get<0>(s->received[49]), "queued 49");

    auto [aborting, a] = co_await asyncio::create_datagram_endpoint(make, remote(port));
    for (int i = 0; i < 50; ++i)
      aborting.sendto("dropped");
    aborting.abort();
    EXPECT_EQ(aborting.get_write_buffer_size(), 0u);
    co_await asyncio::wait_for(a->lost.wait(), 10.0);
    auto [marker, m] = co_await asyncio::create_datagram_endpoint(make, remote(port));
    marker.sendto("marker");
    co_await s->until_received(51);
    EXPECT_EQ(std::get<0>(s->received[50]), "marker") << "an aborted datagram was sent";
    marker.close();
    server.close();
    co_await asyncio::wait_for(s->lost.wait(), 10.0);
  }());
}

// An endpoint left open when its loop closes is cleaned up: the protocol, which holds the
// transport (a cycle through the transport's state), is let go of, and nothing leaks
// (LeakSanitizer).
TEST(DatagramEndpoint, AnEndpointLeftOpenIsCleanedUpWhenItsLoopCloses) {
  std::weak_ptr<Recorder> left;
  run_test([&]() -> Coro<void> {
    auto make = [] { return std::make_shared<Recorder>(); };
    auto [t, p] = co_await asyncio::create_datagram_endpoint(make, local());
    co_await asyncio::sleep(0);  // connection_made: the protocol now holds the transport
    EXPECT_EQ(p->events, std::vector<std::string>{"made"});
    left = p;
  }());
  EXPECT_TRUE(left.expired()) << "the protocol outlived its loop";
}

// After close() the protocol hears nothing but connection_lost, also from a datagram that had
// already arrived when close() was called: its receive may beat the cancel.
TEST(DatagramEndpoint, NothingReachesTheProtocolAfterClose) {
  run_test([]() -> Coro<void> {
    const int raw = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto make = [] { return std::make_shared<Recorder>(); };
    for (int round = 0; round < 20; ++round) {
      auto [t, p] = co_await asyncio::create_datagram_endpoint(make, local());
      co_await asyncio::sleep(0);  // connection_made, and the receive is in flight
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      to.sin_port = htons(static_cast<std::uint16_t>(port_of(t)));
      EXPECT_EQ(::sendto(raw, "late", 4, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 4);
      t.close();  // the datagram is in the socket already
      co_await asyncio::wait_for(p->lost.wait(), 10.0);
      co_await asyncio::sleep(0);
      co_await asyncio::sleep(0);
      EXPECT_EQ(p->events, (std::vector<std::string>{"made", "lost"})) << "round " << round;
    }
    ::close(raw);
  }());
}

// reuse_port lets two endpoints bind one port; without it the second bind is EADDRINUSE.
// allow_broadcast sets SO_BROADCAST, without which a send to a broadcast address is EACCES
// (loopback's, 127.255.255.255, which the kernel always routes on lo).
TEST(DatagramEndpoint, ReusePortAndAllowBroadcastSetTheirSocketOptions) {
  run_test([]() -> Coro<void> {
    auto make = [] { return std::make_shared<Recorder>(); };
    asyncio::DatagramEndpoint shared = local();
    shared.reuse_port = true;
    auto [first, f] = co_await asyncio::create_datagram_endpoint(make, shared);
    shared.local_addr->second = port_of(first);
    auto [second, s] = co_await asyncio::create_datagram_endpoint(make, shared);
    EXPECT_EQ(port_of(second), port_of(first));
    co_await expect_await_throws<asyncio::OSError>(
        asyncio::create_datagram_endpoint(make, local(port_of(first))),
        "bound a used port without reuse_port", "bind to");

    auto [plain, p] = co_await asyncio::create_datagram_endpoint(make, local());
    plain.sendto("to all", "127.255.255.255", 9);
    co_await asyncio::wait_for(p->failed.wait(), 10.0);
    EXPECT_THROW(std::rethrow_exception(p->errors.at(0)), asyncio::PermissionError);
    asyncio::DatagramEndpoint broadcasting = local();
    broadcasting.allow_broadcast = true;
    auto [loud, l] = co_await asyncio::create_datagram_endpoint(make, broadcasting);
    loud.sendto("to all", "127.255.255.255", 9);
    loud.sendto("marker", "127.0.0.1", port_of(first));  // sent after it, on the same socket
    while (f->received.empty() && s->received.empty()) {
      co_await asyncio::sleep(0.001);
    }
    EXPECT_TRUE(l->errors.empty()) << "the broadcast was refused despite SO_BROADCAST";
    for (auto* t : {&first, &second, &plain, &loud})
      t->close();
    co_await asyncio::wait_for(l->lost.wait(), 10.0);
  }());
}

// ---- Unix datagram sockets: local_path and remote_path ----

namespace {
asyncio::DatagramEndpoint unix_endpoint(std::optional<std::string> local,
                                        std::optional<std::string> remote = std::nullopt) {
  asyncio::DatagramEndpoint where;
  where.local_path = std::move(local);
  where.remote_path = std::move(remote);
  return where;
}
std::string temp_socket_path(const char* name) {
  return "/tmp/gilio-dgram-" + std::to_string(::getpid()) + "-" + name + ".sock";
}
}  // namespace

// asyncio's family=AF_UNIX endpoints: a server bound to a path echoes to each sender's path; a
// client bound to its own path and connected to the server's hears back. Datagrams bigger than
// UDP's limit pass whole. A socket file left at a path is replaced by the next endpoint there.
TEST(DatagramEndpoint, UnixEchoBetweenTwoPaths) {
  run_test([]() -> Coro<void> {
    const std::string server_path = temp_socket_path("server");
    const std::string client_path = temp_socket_path("client");
    auto make_server = [] { return std::make_shared<Recorder>(true); };
    auto [server, server_side] =
        co_await asyncio::create_datagram_endpoint(make_server, unix_endpoint(server_path));
    EXPECT_EQ(server.sockname(), server_path);
    auto make_client = [] { return std::make_shared<Recorder>(); };
    auto [client, client_side] = co_await asyncio::create_datagram_endpoint(
        make_client, unix_endpoint(client_path, server_path));
    EXPECT_EQ(client.peername(), server_path);
    const std::vector<std::string> messages = {"ping", "", std::string(100 * 1024, 'U')};
    for (std::size_t i = 0; i < messages.size(); ++i) {
      client.sendto(messages[i]);
      co_await client_side->until_received(i + 1);
      EXPECT_TRUE(std::get<0>(client_side->received[i]) == messages[i]) << "datagram " << i;
      EXPECT_EQ(std::get<1>(client_side->received[i]), server_path);
      EXPECT_EQ(std::get<2>(client_side->received[i]), 0);
    }
    EXPECT_EQ(std::get<1>(server_side->received.at(0)), client_path) << "the sender's path";
    client.sendto("again", server_path, 0);  // the remote address, given explicitly
    EXPECT_THROW(client.sendto("x", client_path, 0), std::invalid_argument) << "not the remote";
    EXPECT_THROW(server.sendto("x", client_path, 7), std::invalid_argument) << "a port";
    co_await client_side->until_received(messages.size() + 1);
    client.close();
    server.close();
    co_await asyncio::wait_for(client_side->lost.wait(), 10.0);
    co_await asyncio::wait_for(server_side->lost.wait(), 10.0);
    // The socket files stay behind (asyncio leaves them too); the next endpoint replaces one.
    auto [again, again_side] =
        co_await asyncio::create_datagram_endpoint(make_client, unix_endpoint(server_path));
    EXPECT_EQ(again.sockname(), server_path);
    again.close();
    co_await asyncio::wait_for(again_side->lost.wait(), 10.0);
    ::unlink(server_path.c_str());
    ::unlink(client_path.c_str());
  }());
}

// An endpoint in the abstract namespace, and a client that is not bound: its datagrams arrive
// from host "" — it has no address to answer to.
TEST(DatagramEndpoint, UnixAbstractNameAndAnUnboundSender) {
  run_test([]() -> Coro<void> {
    const std::string name = std::string(1, '\0') + "gilio-dgram-" + std::to_string(::getpid());
    auto make = [] { return std::make_shared<Recorder>(); };
    auto [server, server_side] =
        co_await asyncio::create_datagram_endpoint(make, unix_endpoint(name));
    EXPECT_EQ(server.sockname(), "@" + name.substr(1));
    auto [client, client_side] =
        co_await asyncio::create_datagram_endpoint(make, unix_endpoint(std::nullopt, name));
    client.sendto("from nowhere");
    co_await server_side->until_received(1);
    EXPECT_EQ(std::get<0>(server_side->received[0]), "from nowhere");
    EXPECT_EQ(std::get<1>(server_side->received[0]), "");
    EXPECT_THROW(server.sendto("reply", "", 0), std::invalid_argument) << "nowhere to answer";
    client.close();
    server.close();
    co_await asyncio::wait_for(server_side->lost.wait(), 10.0);
  }());
}

// What cannot make a Unix endpoint is a clear error: addresses and paths together, UDP's socket
// options, a path nobody is bound to, a path where another kind of file is.
TEST(DatagramEndpoint, UnixEndpointsRefuseWhatCannotWork) {
  run_test([]() -> Coro<void> {
    auto make = [] { return std::make_shared<Recorder>(); };
    asyncio::DatagramEndpoint both = unix_endpoint(temp_socket_path("both"));
    both.local_addr = {"127.0.0.1", 0};
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::create_datagram_endpoint(make, both), "mixed families", "not both");
    asyncio::DatagramEndpoint reuse = unix_endpoint(temp_socket_path("reuse"));
    reuse.reuse_port = true;
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::create_datagram_endpoint(make, reuse), "reuse_port on Unix", "for UDP");
    co_await expect_await_throws<asyncio::FileNotFoundError>(
        asyncio::create_datagram_endpoint(make,
                                          unix_endpoint(std::nullopt, temp_socket_path("nobody"))),
        "connected to nobody");
    const std::string plain = temp_socket_path("plain-file");
    { std::ofstream(plain) << "not a socket"; }
    co_await expect_await_throws<asyncio::OSError>(
        asyncio::create_datagram_endpoint(make, unix_endpoint(plain)), "bound over a file",
        "bind to " + plain);
    std::ifstream kept(plain);
    std::string content;
    std::getline(kept, content);
    EXPECT_EQ(content, "not a socket") << "a file of another kind is left alone";
    ::unlink(plain.c_str());
  }());
}
