// tests/test_protocols.cpp — gilio/asyncio/protocols.hpp: create_connection, create_server and
// their Unix twins, connect_accepted_socket, connect_read_pipe and connect_write_pipe, Protocol,
// Transport, and StreamReaderProtocol with a fed StreamReader, over real sockets on loopback and
// real pipes (ideas from Lib/test/test_asyncio's test_selector_events transport cases and
// test_base_events' create_connection and create_server cases, in our own code).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::expect_await_throws;
using gilio::testing::Reports;
using gilio::testing::run_test;
using gilio::testing::what_of;

namespace {

// Records what its transport tells it. `echo`: writes back what arrives. `keep_open`: what
// eof_received answers.
struct Recorder : asyncio::Protocol {
  void connection_made(asyncio::Transport& t) override {
    note("made");
    transport = t;
  }
  void data_received(std::string d) override {
    if (events.empty() || events.back() != "data") note("data");
    if (echo) transport.write(d);
    data += d;
    changed.set();
  }
  bool eof_received() override {
    note("eof");
    return keep_open;
  }
  void connection_lost(std::exception_ptr e) override {
    note(e ? "lost with an error" : "lost");
    error = e;
  }
  void pause_writing() override {
    note("pause");
    buffer_at_pause = transport.get_write_buffer_size();
  }
  void resume_writing() override {
    note("resume");
    buffer_at_resume = transport.get_write_buffer_size();
  }
  void note(std::string what) {
    events.push_back(std::move(what));
    changed.set();
  }
  bool saw(const std::string& what) const {
    return std::find(events.begin(), events.end(), what) != events.end();
  }
  // Waits (bounded) until `ready()` holds.
  Coro<void> until(std::function<bool()> ready) {
    while (!ready()) {
      changed.clear();
      co_await asyncio::wait_for(changed.wait(), 10.0);
    }
  }
  Coro<void> until_bytes(std::size_t n) {
    co_await until([this, n] { return data.size() >= n; });
  }
  Coro<void> until_lost() {
    co_await until([this] { return saw("lost") || saw("lost with an error"); });
  }

  bool echo = false;
  bool keep_open = false;
  asyncio::Transport transport;
  std::string data;
  std::vector<std::string> events;
  std::exception_ptr error;
  std::size_t buffer_at_pause = 0, buffer_at_resume = 0;
  asyncio::Event changed;
};

// A server factory that keeps every protocol it made, for the test to look at.
struct Accepted {
  bool echo = false;
  bool keep_open = false;
  std::vector<std::shared_ptr<Recorder>> made;
  asyncio::Event more;
  asyncio::ProtocolFactory factory() {
    return [this] {
      auto p = std::make_shared<Recorder>();
      p->echo = echo;
      p->keep_open = keep_open;
      made.push_back(p);
      more.set();
      return p;
    };
  }
  // The n-th protocol made (from 0), once the server has accepted that many connections.
  Coro<void> until_made(std::size_t n) {
    while (made.size() <= n) {
      more.clear();
      co_await asyncio::wait_for(more.wait(), 10.0);
    }
  }
};

// Bytes that say where in the stream they were: a reordering or a loss shows.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

auto make_recorder = [] { return std::make_shared<Recorder>(); };

// A file holding `content`, already unlinked: its descriptor.
int file_holding(const std::string& content) {
  char path[] = "/tmp/gilio_sendfile_XXXXXX";
  const int fd = ::mkstemp(path);
  ::unlink(path);
  if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()))
    ADD_FAILURE() << "could not write the file";
  return fd;
}

}  // namespace

// asyncio's protocol echo pair: the server's protocol writes back what it receives; the client
// writes, hears it back, and closes. The client's EOF makes eof_received() answer false, so the
// server's transport closes too. Each side sees connection_made first, connection_lost(nullptr)
// last, and the transport reports its addresses.
TEST(Protocols, EchoServerAndClient) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    accepted.echo = true;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto [transport, client] =
        co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
    EXPECT_EQ(client->events, std::vector<std::string>{"made"})
        << "connection_made before create_connection returns";
    EXPECT_EQ(transport.peername(), "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_TRUE(transport.is_reading());
    EXPECT_FALSE(transport.is_closing());
    EXPECT_TRUE(transport.can_write_eof());
    transport.write(std::string_view("hello, "));
    transport.writelines({"pro", "to", "col"});
    co_await client->until_bytes(15);
    EXPECT_EQ(client->data, "hello, protocol");
    const std::string big = pattern(1 << 20);
    transport.write(std::string(big));  // moved in: sent from its own memory
    co_await client->until_bytes(15 + big.size());
    EXPECT_TRUE(client->data.substr(15) == big) << "a MiB echoed whole and in order";
    transport.close();
    EXPECT_TRUE(transport.is_closing());
    EXPECT_FALSE(transport.is_reading());
    co_await client->until_lost();
    // A MiB is past the high-water mark: write() paused the protocol, the echo resumed it.
    EXPECT_EQ(client->events.front(), "made");
    EXPECT_TRUE(client->saw("pause") && client->saw("resume"));
    EXPECT_EQ(client->events.back(), "lost");
    EXPECT_FALSE(client->error);
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);  // waits for the server's side too
    EXPECT_EQ(accepted.made.size(), 1u);
    const Recorder& server_side = *accepted.made.at(0);
    EXPECT_EQ(server_side.events, (std::vector<std::string>{"made", "data", "eof", "lost"}));
    EXPECT_EQ(server_side.data, "hello, protocol" + big);
  }());
}

// eof_received() answering true keeps the transport open for writing: the server answers after
// the client's half-close, then closes; the client's own eof_received() (false) closes its side.
TEST(Protocols, EofReceivedTrueKeepsTheTransportOpenForWriting) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    accepted.keep_open = true;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto [transport, client] =
        co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
    transport.write(std::string_view("ping"));
    transport.write_eof();
    EXPECT_THROW(transport.write(std::string_view("more")), std::runtime_error);
    EXPECT_FALSE(transport.is_closing()) << "half-closed, still reading";
    co_await accepted.until_made(0);
    co_await accepted.made[0]->until([&] { return accepted.made[0]->saw("eof"); });
    Recorder& server_side = *accepted.made[0];
    EXPECT_EQ(server_side.data, "ping");
    EXPECT_FALSE(server_side.transport.is_closing()) << "eof_received() kept it open";
    server_side.transport.write(std::string_view("pong"));
    server_side.transport.close();
    co_await client->until_lost();
    EXPECT_EQ(client->data, "pong");
    EXPECT_EQ(client->events, (std::vector<std::string>{"made", "data", "eof", "lost"}));
    co_await server_side.until_lost();
    EXPECT_EQ(server_side.events.back(), "lost");
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// A peer that resets the connection: the receive fails, which is fatal, and connection_lost gets
// the ConnectionResetError. An OSError is the network's doing: the loop's handler hears nothing.
TEST(Protocols, AResetIsFatalAndConnectionLostGetsTheError) {
  run_test([]() -> Coro<void> {
    Reports reports;
    reports.install(asyncio::get_running_loop());
    Accepted accepted;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(static_cast<std::uint16_t>(server.port()));
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);  // loopback: at once
    co_await accepted.until_made(0);
    const linger abort_on_close{1, 0};  // close() sends RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    ::close(fd);
    Recorder& server_side = *accepted.made[0];
    co_await server_side.until_lost();
    EXPECT_EQ(server_side.events.back(), "lost with an error");
    try {
      std::rethrow_exception(server_side.error);
    } catch (const asyncio::ConnectionResetError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "expected ConnectionResetError, got " << e.what();
    }
    EXPECT_TRUE(server_side.transport.is_closing());
    server_side.transport.write(std::string_view("into the void"));  // dropped quietly, as asyncio
    EXPECT_TRUE(reports.seen.empty());
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// A send that fails is fatal too, even while the protocol is not reading (so no receive would
// notice): the transport closes and connection_lost gets the OSError.
TEST(Protocols, ASendThatFailsIsFatalWhileReadingIsPaused) {
  struct NotReading : Recorder {
    void connection_made(asyncio::Transport& t) override {
      Recorder::connection_made(t);
      t.pause_reading();
    }
  };
  run_test([]() -> Coro<void> {
    std::vector<std::shared_ptr<NotReading>> made;
    asyncio::ProtocolFactory factory = [&made] {
      made.push_back(std::make_shared<NotReading>());
      return made.back();
    };
    asyncio::Server server = co_await asyncio::create_server(factory, "127.0.0.1", 0);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(static_cast<std::uint16_t>(server.port()));
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    while (made.empty())
      co_await asyncio::sleep(0.001);
    const linger abort_on_close{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_on_close, sizeof abort_on_close);
    ::close(fd);
    NotReading& side = *made[0];
    // The first send after the reset arrives fails; keep writing until one has.
    for (int i = 0; i < 2000 && !side.saw("lost with an error"); ++i) {
      side.transport.write(std::string_view("are you there?"));
      co_await asyncio::sleep(0.001);
    }
    co_await side.until_lost();
    EXPECT_EQ(side.events.back(), "lost with an error");
    try {
      std::rethrow_exception(side.error);
    } catch (const asyncio::OSError& e) {
      EXPECT_TRUE(e.code().value() == ECONNRESET || e.code().value() == EPIPE) << e.what();
    }
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// A protocol method that throws is a bug: reported through the loop's exception handler with
// asyncio's message, and fatal to that connection — connection_lost gets the exception, the
// peer sees the connection end. The server goes on serving others.
TEST(Protocols, AProtocolMethodThatThrowsIsFatalAndReported) {
  struct Fussy : Recorder {
    void data_received(std::string d) override {
      Recorder::data_received(d);
      if (d.find('!') != std::string::npos) throw std::runtime_error("no shouting");
    }
  };
  run_test([]() -> Coro<void> {
    Reports reports;
    reports.install(asyncio::get_running_loop());
    std::vector<std::shared_ptr<Fussy>> made;
    asyncio::ProtocolFactory factory = [&made] {
      made.push_back(std::make_shared<Fussy>());
      made.back()->echo = true;
      return made.back();
    };
    asyncio::Server server = co_await asyncio::create_server(factory, "127.0.0.1", 0);
    auto [rude, rude_side] =
        co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
    rude.write(std::string_view("hey!"));
    co_await rude_side->until_lost();
    EXPECT_EQ(rude_side->events.back(), "lost") << "the server closed: an EOF here";
    while (made.empty())  // the server accepted before the client's data came
      co_await asyncio::sleep(0.001);
    co_await made[0]->until_lost();
    EXPECT_EQ(made[0]->events.back(), "lost with an error");
    try {
      std::rethrow_exception(made[0]->error);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "no shouting");
    }
    EXPECT_EQ(reports.seen.size(), 1u);
    if (!reports.seen.empty()) {
      EXPECT_EQ(reports.seen[0].message, "Fatal error: protocol.data_received() call failed.");
      EXPECT_EQ(what_of(reports.seen[0]), "no shouting");
      EXPECT_NE(reports.seen[0].handle.find("Transport to 127.0.0.1:"), std::string::npos);
    }
    // Another connection is served as before.
    auto [polite, polite_side] =
        co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
    polite.write(std::string_view("hello"));
    co_await polite_side->until_bytes(5);
    EXPECT_EQ(polite_side->data, "hello");
    polite.close();
    co_await polite_side->until_lost();
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// A server's factory that throws, or gives no protocol, costs that connection only: reported as
// asyncio reports it, the socket closed, the next connection served.
TEST(Protocols, AServerFactoryThatFailsCostsOnlyThatConnection) {
  run_test([]() -> Coro<void> {
    Reports reports;
    reports.install(asyncio::get_running_loop());
    int calls = 0;
    asyncio::ProtocolFactory factory = [&calls]() -> std::shared_ptr<asyncio::Protocol> {
      ++calls;
      if (calls == 1) throw std::runtime_error("out of protocols");
      if (calls == 2) return nullptr;
      auto p = std::make_shared<Recorder>();
      p->echo = true;
      return p;
    };
    asyncio::Server server = co_await asyncio::create_server(factory, "127.0.0.1", 0);
    for (int i = 0; i < 2; ++i) {
      auto [t, p] = co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
      co_await p->until_lost();
      EXPECT_EQ(p->events, (std::vector<std::string>{"made", "eof", "lost"})) << "connection " << i;
    }
    EXPECT_EQ(reports.seen.size(), 2u);
    for (const auto& r : reports.seen)
      EXPECT_EQ(r.message, "Error on transport creation for incoming connection");
    if (reports.seen.size() == 2) {
      EXPECT_EQ(what_of(reports.seen[0]), "out of protocols");
      EXPECT_NE(what_of(reports.seen[1]).find("no protocol"), std::string::npos);
    }
    auto [t, p] = co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
    t.write(std::string_view("third time"));
    co_await p->until_bytes(10);
    EXPECT_EQ(p->data, "third time");
    t.close();
    co_await p->until_lost();
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// Flow control both ways. The client pauses reading before anything arrives, so nothing is
// delivered and the server's buffer grows: write() calls pause_writing() at once once past the
// high-water mark. When the client resumes reading, the bytes arrive whole and in order, and the
// server's resume_writing() comes once its buffer is down to the low-water mark.
TEST(Protocols, PauseAndResumeFollowTheWaterMarksBothWays) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto paused = [] {
      struct PausedAtOnce : Recorder {
        void connection_made(asyncio::Transport& t) override {
          Recorder::connection_made(t);
          t.pause_reading();
        }
      };
      return std::make_shared<PausedAtOnce>();
    };
    auto [transport, client] =
        co_await asyncio::create_connection(paused, "127.0.0.1", server.port());
    EXPECT_FALSE(transport.is_reading());
    co_await accepted.until_made(0);
    Recorder& server_side = *accepted.made[0];
    EXPECT_EQ(server_side.transport.get_write_buffer_limits(),
              (std::pair<std::size_t, std::size_t>{16 * 1024, 64 * 1024}));
    const std::string big = pattern(8 << 20);
    server_side.transport.write(std::string_view(big));
    EXPECT_TRUE(server_side.saw("pause")) << "pause_writing() from within write()";
    EXPECT_GT(server_side.buffer_at_pause, 64u * 1024);
    // Whatever the kernel takes meanwhile, 8 MiB do not fit in loopback's socket buffers, so the
    // server stays paused; nothing is delivered to a paused reader.
    co_await asyncio::sleep(0.05);
    EXPECT_TRUE(client->data.empty()) << "data_received while reading is paused";
    EXPECT_FALSE(server_side.saw("resume"));
    transport.resume_reading();
    transport.resume_reading();  // twice does nothing
    EXPECT_TRUE(transport.is_reading());
    co_await client->until_bytes(big.size());
    EXPECT_TRUE(client->data == big) << "8 MiB whole and in order";
    co_await server_side.until([&] { return server_side.saw("resume"); });
    EXPECT_LE(server_side.buffer_at_resume, 16u * 1024);
    EXPECT_EQ(std::count(server_side.events.begin(), server_side.events.end(), "pause"), 1);
    transport.close();
    co_await client->until_lost();
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// close() sends what is buffered before the socket closes, then connection_lost(nullptr);
// abort() drops the buffer at once and is no error either. write() after close() is refused;
// after abort() it is dropped quietly.
TEST(Protocols, CloseFlushesAndAbortDrops) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    const std::string big = pattern(4 << 20);
    {
      auto [closing, side] =
          co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
      closing.write(std::string_view(big));
      EXPECT_GT(closing.get_write_buffer_size(), 0u);
      closing.close();
      EXPECT_THROW(closing.write(std::string_view("late")), std::runtime_error);
      co_await side->until_lost();
      EXPECT_EQ(side->events.back(), "lost");
      co_await accepted.until_made(0);
      co_await accepted.made[0]->until_lost();
      EXPECT_TRUE(accepted.made[0]->data == big) << "every buffered byte before the close";
    }
    {
      auto [aborting, side] =
          co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
      aborting.write(std::string_view(big));
      aborting.abort();
      EXPECT_TRUE(aborting.is_closing());
      aborting.write(std::string_view("late"));  // the connection is lost: dropped, as asyncio
      EXPECT_EQ(aborting.get_write_buffer_size(), 0u) << "the buffer dropped";
      co_await side->until_lost();
      EXPECT_EQ(side->events.back(), "lost") << "an abort is no error";
      EXPECT_FALSE(side->error);
    }
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
    EXPECT_EQ(accepted.made.size(), 2u);
    EXPECT_LT(accepted.made.at(1)->data.size(), big.size()) << "the aborted rest never came";
  }());
}

// What cannot connect raises from create_connection, before the factory is called (asyncio makes
// the protocol once connected); a factory that gives no protocol, or no factory, is an error.
TEST(Protocols, WhatCannotConnectIsAClearError) {
  run_test([]() -> Coro<void> {
    int calls = 0;
    auto counted = [&calls] {
      ++calls;
      return std::make_shared<Recorder>();
    };
    // A port nobody listens on: a server's, closed again.
    Accepted accepted;
    asyncio::Server gone = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    const int port = gone.port();
    gone.close();
    co_await gone.wait_closed();
    co_await expect_await_throws<asyncio::ConnectionRefusedError>(
        asyncio::create_connection(counted, "127.0.0.1", port), "connected to nobody");
    EXPECT_EQ(calls, 0);
    co_await expect_await_throws<asyncio::FileNotFoundError>(
        asyncio::create_unix_connection(counted, "/nonexistent/gilio.sock"), "connected");
    EXPECT_EQ(calls, 0);
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto nothing = [] { return std::shared_ptr<Recorder>(); };
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::create_connection(nothing, "127.0.0.1", server.port()), "ran no protocol",
        "no protocol");
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::create_server(asyncio::ProtocolFactory(), "127.0.0.1", 0), "served nothing",
        "no protocol factory");
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// The Unix twins, and a socket connected elsewhere (one end of a socketpair) taken over by
// connect_accepted_socket.
TEST(Protocols, UnixServerAndAnAcceptedSocket) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    accepted.echo = true;
    const std::string path = "/tmp/gilio-protocols-" + std::to_string(::getpid()) + ".sock";
    asyncio::Server server = co_await asyncio::create_unix_server(accepted.factory(), path);
    auto [transport, client] = co_await asyncio::create_unix_connection(make_recorder, path);
    transport.write(std::string_view("over a unix socket"));
    co_await client->until_bytes(18);
    EXPECT_EQ(client->data, "over a unix socket");
    transport.close();
    co_await client->until_lost();
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file removed";

    int pair[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    auto [mine, side] =
        co_await asyncio::connect_accepted_socket(make_recorder, asyncio::Socket{pair[0]});
    EXPECT_EQ(::write(pair[1], "abc", 3), 3);
    co_await side->until_bytes(3);
    EXPECT_EQ(side->data, "abc");
    mine.write(std::string_view("xyz"));
    while (mine.get_write_buffer_size() > 0)  // the send is submitted when the loop next waits
      co_await asyncio::sleep(0.001);
    char got[3] = {};
    EXPECT_EQ(::read(pair[1], got, 3), 3);
    EXPECT_EQ(std::string(got, 3), "xyz");
    ::close(pair[1]);  // EOF: eof_received() answers false, the transport closes
    co_await side->until_lost();
    EXPECT_EQ(side->events, (std::vector<std::string>{"made", "data", "eof", "lost"}));
  }());
}

// Server.close_clients() ends every connection the server accepted: each server-side protocol
// gets connection_lost(nullptr), and wait_closed() returns once they all have.
TEST(Protocols, CloseClientsEndsEveryConnection) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    std::vector<std::shared_ptr<Recorder>> clients;
    std::vector<asyncio::Transport> transports;
    for (int i = 0; i < 20; ++i) {
      auto [t, p] = co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
      transports.push_back(t);
      clients.push_back(p);
    }
    co_await accepted.until_made(19);
    server.close();
    server.close_clients();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
    for (const auto& p : accepted.made)
      EXPECT_EQ(p->events.back(), "lost");
    for (const auto& p : clients) {
      co_await p->until_lost();
      EXPECT_EQ(p->events, (std::vector<std::string>{"made", "eof", "lost"}));
    }
  }());
}

// Many connections at once, each a protocol on either side: 300 clients × 20 messages echoed.
TEST(Protocols, ManyConnectionsEchoConcurrently) {
  run_test(
      []() -> Coro<void> {
        Accepted accepted;
        accepted.echo = true;
        asyncio::Server server =
            co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
        const int port = server.port();
        auto one = [port](int id) -> Coro<void> {
          auto [t, p] = co_await asyncio::create_connection(make_recorder, "127.0.0.1", port);
          std::string expected;
          for (int m = 0; m < 20; ++m) {
            const std::string msg = std::to_string(id) + ":" + std::to_string(m) + ";";
            expected += msg;
            t.write(std::string_view(msg));
            co_await p->until_bytes(expected.size());
          }
          EXPECT_EQ(p->data, expected);
          t.close();
          co_await p->until_lost();
        };
        std::vector<asyncio::Task<void>> all;
        for (int i = 0; i < 300; ++i)
          all.push_back(asyncio::create_task(one(i)));
        co_await asyncio::gather(std::move(all));
        server.close();
        co_await asyncio::wait_for(server.wait_closed(), 10.0);
        EXPECT_EQ(accepted.made.size(), 300u);
      }(),
      60.0);
}

// The loop ends with connections still open: their tasks are cancelled, the sockets closed and
// the protocols let go of (a protocol holds its transport: LeakSanitizer would see the cycle).
TEST(Protocols, ALoopThatEndsWithConnectionsOpenLetsThemGo) {
  std::weak_ptr<Recorder> client_side;
  run_test([&]() -> Coro<void> {
    Accepted accepted;
    accepted.echo = true;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto [transport, client] =
        co_await asyncio::create_connection(make_recorder, "127.0.0.1", server.port());
    transport.write(std::string_view("left open"));
    co_await client->until_bytes(9);
    client_side = client;
  }());
  EXPECT_TRUE(client_side.expired()) << "the client's protocol outlived its loop";
}

// ---- BufferedProtocol ----

namespace {
// Lends a small buffer of its own (`room` bytes), and keeps what lands in it. `pause_after`:
// pauses reading once that many bytes have come.
struct Lender : asyncio::BufferedProtocol {
  explicit Lender(std::size_t room_size) : room(room_size) {}
  void connection_made(asyncio::Transport& t) override { transport = t; }
  std::span<char> get_buffer(std::size_t sizehint) override {
    EXPECT_GT(sizehint, 0u);
    ++lent;
    return std::span<char>(room.data(), room.size());
  }
  void buffer_updated(std::size_t nbytes) override {
    EXPECT_LE(nbytes, room.size());
    data.append(room.data(), nbytes);
    if (pause_after != 0 && data.size() >= pause_after && transport.is_reading())
      transport.pause_reading();
    changed.set();
  }
  void connection_lost(std::exception_ptr e) override {
    error = e;
    lost = true;
    changed.set();
  }
  Coro<void> until(std::function<bool()> ready) {
    while (!ready()) {
      changed.clear();
      co_await asyncio::wait_for(changed.wait(), 10.0);
    }
  }

  std::vector<char> room;
  std::size_t pause_after = 0;
  asyncio::Transport transport;
  std::string data;
  std::size_t lent = 0;
  bool lost = false;
  std::exception_ptr error;
  asyncio::Event changed;
};
}  // namespace

// A BufferedProtocol gets the bytes in the buffer it lends, 7 bytes at a time here: 100 KiB
// echoed arrive whole and in order, in as many rounds as that takes.
TEST(Protocols, ABufferedProtocolGetsTheBytesInItsOwnBuffer) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    accepted.echo = true;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto lender = [] { return std::make_shared<Lender>(7); };
    auto [transport, client] =
        co_await asyncio::create_connection(lender, "127.0.0.1", server.port());
    const std::string big = pattern(100 * 1024);
    transport.write(std::string_view(big));
    co_await client->until([&] { return client->data.size() >= big.size(); });
    EXPECT_TRUE(client->data == big) << "100 KiB through a 7-byte buffer";
    EXPECT_GE(client->lent, (big.size() + 6) / 7);
    transport.close();
    co_await client->until([&] { return client->lost; });
    EXPECT_FALSE(client->error);
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// pause_reading() from within buffer_updated() stops the rounds at once, though the rest of the
// piece is at hand; resume_reading() goes on where they stopped.
TEST(Protocols, ABufferedProtocolThatPausesGetsNothingMoreUntilItResumes) {
  run_test([]() -> Coro<void> {
    Accepted accepted;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto lender = [] {
      auto p = std::make_shared<Lender>(10);
      p->pause_after = 10;
      return p;
    };
    auto [transport, client] =
        co_await asyncio::create_connection(lender, "127.0.0.1", server.port());
    co_await accepted.until_made(0);
    accepted.made[0]->transport.write(std::string_view("0123456789abcdefghij"));
    co_await client->until([&] { return !client->data.empty(); });
    co_await asyncio::sleep(0.05);  // time for more rounds, if any were wrongly made
    EXPECT_EQ(client->data, "0123456789") << "a round after pause_reading()";
    EXPECT_FALSE(transport.is_reading());
    transport.resume_reading();
    co_await client->until([&] { return client->data.size() >= 20; });
    EXPECT_EQ(client->data, "0123456789abcdefghij");
    transport.close();
    co_await client->until([&] { return client->lost; });
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// get_buffer() lending no room is a bug: fatal to the connection, reported as asyncio reports it.
TEST(Protocols, ABufferedProtocolLendingNoRoomIsAFatalError) {
  struct NoRoom : Lender {
    NoRoom() : Lender(0) {}
  };
  run_test([]() -> Coro<void> {
    Reports reports;
    reports.install(asyncio::get_running_loop());
    Accepted accepted;
    accepted.echo = true;
    asyncio::Server server = co_await asyncio::create_server(accepted.factory(), "127.0.0.1", 0);
    auto none = [] { return std::make_shared<NoRoom>(); };
    auto [transport, client] =
        co_await asyncio::create_connection(none, "127.0.0.1", server.port());
    transport.write(std::string_view("anyone?"));
    co_await client->until([&] { return client->lost; });
    try {
      std::rethrow_exception(client->error);
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "get_buffer() returned an empty buffer");
    }
    EXPECT_EQ(reports.seen.size(), 1u);
    if (!reports.seen.empty()) {
      EXPECT_EQ(reports.seen[0].message, "Fatal error: protocol.get_buffer() call failed.");
    }
    server.close();
    co_await asyncio::wait_for(server.wait_closed(), 10.0);
  }());
}

// ---- pipe transports (asyncio's connect_read_pipe, connect_write_pipe) ----

namespace {
struct Pipe {
  int read_end = -1, write_end = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    read_end = fds[0];
    write_end = fds[1];
  }
};
struct PausedAtOnce : Recorder {
  void connection_made(asyncio::Transport& t) override {
    Recorder::connection_made(t);
    t.pause_reading();
  }
};
}  // namespace

// Both ends of one pipe through transports in one loop: 8 MiB through a 64 KiB pipe, with flow
// control — the writer pauses while the reader does not read, and resumes once it does; the
// writer's close is the reader's EOF. A read pipe ends at EOF even when eof_received() says to
// keep it open (there is nothing to write), and each transport goes one way only.
TEST(PipeTransports, EightMegabytesThroughAPipeWithFlowControl) {
  run_test([]() -> Coro<void> {
    Pipe pipe;
    auto reader_factory = [] {
      auto p = std::make_shared<PausedAtOnce>();
      p->keep_open = true;
      return p;
    };
    auto [in, reader] = co_await asyncio::connect_read_pipe(reader_factory, pipe.read_end);
    auto [out, writer] = co_await asyncio::connect_write_pipe(make_recorder, pipe.write_end);
    EXPECT_FALSE(in.can_write_eof());
    EXPECT_TRUE(out.can_write_eof());
    EXPECT_FALSE(out.is_reading());
    try {
      in.write(std::string_view("no"));
      ADD_FAILURE() << "a read pipe wrote";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Transport.write: a read pipe's transport cannot write");
    }
    EXPECT_THROW(out.pause_reading(), std::runtime_error);
    EXPECT_THROW(in.set_write_buffer_limits(1), std::runtime_error);
    EXPECT_THROW(
        {
          try {
            out.set_write_buffer_limits(1, 2);
          } catch (const std::invalid_argument& e) {
            EXPECT_STREQ(e.what(),
                         "Transport.set_write_buffer_limits: high (1) must be >= low (2) must "
                         "be >= 0");
            throw;
          }
        },
        std::invalid_argument);

    const std::string big = pattern(8 << 20);
    out.write(std::string_view(big));
    EXPECT_TRUE(writer->saw("pause")) << "pause_writing() from within write()";
    co_await asyncio::sleep(0.05);
    EXPECT_TRUE(reader->data.empty()) << "data_received while reading is paused";
    EXPECT_FALSE(writer->saw("resume"));
    in.resume_reading();
    co_await reader->until_bytes(big.size());
    EXPECT_TRUE(reader->data == big) << "8 MiB whole and in order";
    co_await writer->until([&] { return writer->saw("resume"); });
    out.write_eof();  // a write pipe's EOF is its close
    EXPECT_TRUE(out.is_closing());
    co_await writer->until_lost();
    co_await reader->until_lost();
    EXPECT_EQ(reader->events, (std::vector<std::string>{"made", "data", "eof", "lost"}));
    EXPECT_EQ(writer->events, (std::vector<std::string>{"made", "pause", "resume", "lost"}));
    EXPECT_FALSE(reader->error);
    EXPECT_FALSE(writer->error);
    EXPECT_EQ(::fcntl(pipe.read_end, F_GETFD), -1) << "the transport closed its end";
    EXPECT_EQ(::fcntl(pipe.write_end, F_GETFD), -1);
  }());
}

// A pipe's read that waits cannot be woken by a shutdown, as a socket's is: close() cancels it,
// and the transport ends at once, with connection_lost(nullptr) and no EOF.
TEST(PipeTransports, CloseEndsAReadPipeWhileItsReadWaits) {
  run_test([]() -> Coro<void> {
    Pipe pipe;
    auto [in, reader] = co_await asyncio::connect_read_pipe(make_recorder, pipe.read_end);
    ::write(pipe.write_end, "abc", 3);
    co_await reader->until_bytes(3);  // the next read now waits in the ring
    in.close();
    co_await reader->until_lost();
    EXPECT_EQ(reader->events, (std::vector<std::string>{"made", "data", "lost"}));
    EXPECT_FALSE(reader->error);
    ::close(pipe.write_end);
  }());
}

// The reader is gone: the write fails with EPIPE — BrokenPipeError for connection_lost, not a
// SIGPIPE that kills the test — and a write pipe aborted while its write waits for room ends at
// once, as no error.
TEST(PipeTransports, ABrokenPipeIsFatalAndAnAbortWithAFullPipeEndsAtOnce) {
  run_test([]() -> Coro<void> {
    {
      Pipe pipe;
      ::close(pipe.read_end);
      auto [out, writer] = co_await asyncio::connect_write_pipe(make_recorder, pipe.write_end);
      struct sigaction action {};
      ::sigaction(SIGPIPE, nullptr, &action);
      EXPECT_EQ(action.sa_handler, SIG_IGN) << "ignored, as the Python interpreter has it";
      out.write(std::string_view("to nobody"));
      co_await writer->until_lost();
      EXPECT_EQ(writer->events.back(), "lost with an error");
      try {
        std::rethrow_exception(writer->error);
      } catch (const asyncio::BrokenPipeError& e) {
        EXPECT_NE(std::string(e.what()).find("write to write pipe (fd "), std::string::npos)
            << e.what();
      } catch (...) {
        ADD_FAILURE() << "connection_lost got something else than BrokenPipeError";
      }
    }
    {
      Pipe pipe;  // nobody reads: the write waits for room
      auto [out, writer] = co_await asyncio::connect_write_pipe(make_recorder, pipe.write_end);
      out.write(pattern(1 << 20));
      co_await asyncio::sleep(0.01);
      EXPECT_GT(out.get_write_buffer_size(), 0u);
      out.abort();
      co_await writer->until_lost();
      EXPECT_EQ(writer->events.back(), "lost") << "an abort is no error";
      ::close(pipe.read_end);
    }
  }());
}

// A write pipe with nothing to write hears of its reader's departure at once, as asyncio's does
// (a poll on its end): connection_lost(nullptr), without a write that fails.
TEST(PipeTransports, AWritePipeEndsWhenItsReaderLeaves) {
  run_test([]() -> Coro<void> {
    Pipe pipe;
    auto [out, writer] = co_await asyncio::connect_write_pipe(make_recorder, pipe.write_end);
    out.write(std::string_view("read before the reader leaves"));
    co_await asyncio::sleep(0.01);
    EXPECT_EQ(out.get_write_buffer_size(), 0u);
    ::close(pipe.read_end);
    co_await writer->until_lost();
    EXPECT_EQ(writer->events, (std::vector<std::string>{"made", "lost"}));
    EXPECT_FALSE(writer->error);
    EXPECT_TRUE(out.is_closing());
  }());
}

// A write "pipe" that is a socket (a child's stdin under subprocess_exec is one) is watched for
// its peer's hang-up only: bytes the peer sends are no departure, its close is — then
// connection_lost(nullptr), without a write that fails.
TEST(PipeTransports, AWriteSocketEndsWhenItsPeerClosesNotWhenItSends) {
  run_test([]() -> Coro<void> {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto [out, writer] = co_await asyncio::connect_write_pipe(make_recorder, sv[0]);
    auto [in, reader] = co_await asyncio::connect_read_pipe(make_recorder, sv[1]);
    EXPECT_EQ(::send(sv[1], "hi", 2, MSG_NOSIGNAL), 2);  // to the writer, which never reads
    out.write(std::string_view("ping"));
    co_await reader->until_bytes(4);
    EXPECT_EQ(reader->data, "ping");
    EXPECT_FALSE(out.is_closing()) << "the peer's bytes were taken for its departure";
    in.close();  // the peer's end closes
    co_await writer->until_lost();
    EXPECT_EQ(writer->events, (std::vector<std::string>{"made", "lost"}));
    EXPECT_FALSE(writer->error);
  }());
}

// What is not a pipe, a socket or a character device is refused, as is a closed descriptor;
// either way before the factory is called, and the descriptor is left alone.
TEST(PipeTransports, WhatIsNotAPipeIsRefused) {
  run_test([]() -> Coro<void> {
    int made = 0;
    auto counting = [&made] {
      ++made;
      return std::make_shared<Recorder>();
    };
    char path[] = "/tmp/gilio_pipe_test_XXXXXX";
    const int file = ::mkstemp(path);
    ::unlink(path);
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::connect_read_pipe(counting, file), "a regular file was taken for a pipe",
        "is not a pipe, a socket or a character device");
    EXPECT_EQ(::fcntl(file, F_GETFD) >= 0, true) << "left open";
    ::close(file);
    co_await expect_await_throws<asyncio::OSError>(asyncio::connect_write_pipe(counting, file),
                                                   "a closed descriptor was taken", "fd ");
    EXPECT_EQ(made, 0);
    // A socket will do (asyncio's pipe transports take sockets too).
    int pair[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
    auto [in, reader] = co_await asyncio::connect_read_pipe(counting, pair[0]);
    ::write(pair[1], "over a socket", 13);
    ::close(pair[1]);
    co_await reader->until_lost();
    EXPECT_EQ(reader->data, "over a socket");
    EXPECT_EQ(made, 1);
  }());
}

// ---- StreamReader::fed and StreamReaderProtocol ----

// A reader fed by hand reads as a socket's does: a read the buffer settles returns at once; one
// it does not waits, and is woken by the feed that settles it (and not before); feed_eof ends
// it. A read cancelled while it waits leaves the reader as it was; set_exception fails the read
// waiting and every later one, with bytes buffered or not.
TEST(FedStreamReader, ReadsWhatIsFedAsAStreamDoes) {
  run_test([]() -> Coro<void> {
    asyncio::StreamReader r = asyncio::StreamReader::fed();
    EXPECT_EQ(r.limit(), asyncio::kDefaultStreamLimit);
    r.feed_data("ab");
    r.feed_data("c\nde");
    EXPECT_EQ(co_await r.readline(), "abc\n");
    auto five = asyncio::create_task(r.readexactly(5));
    co_await asyncio::sleep(0);
    r.feed_data("f");
    co_await asyncio::sleep(0);
    EXPECT_FALSE(five.done()) << "woken by a feed that does not settle it";
    r.feed_data("ghi");
    EXPECT_EQ(co_await asyncio::wait_for(five, 10.0), "defgh");

    auto cancelled = asyncio::create_task(r.readuntil("!"));
    co_await asyncio::sleep(0);
    cancelled.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(cancelled, "the read was not cancelled");
    r.feed_data("j!");
    EXPECT_EQ(co_await r.readuntil("!"), "ij!") << "nothing lost to the cancelled read";

    r.feed_data("k");
    r.feed_eof();
    EXPECT_FALSE(r.at_eof());
    EXPECT_EQ(co_await r.read(), "k");
    EXPECT_TRUE(r.at_eof());
    EXPECT_EQ(co_await r.read(), "");
    try {
      r.feed_data("late");
      ADD_FAILURE() << "fed after feed_eof()";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "StreamReader.feed_data after feed_eof()");
    }

    asyncio::StreamReader failing = asyncio::StreamReader::fed(8);
    auto line = asyncio::create_task(failing.readline());
    co_await asyncio::sleep(0);
    failing.feed_data("no newline yet");
    failing.set_exception(std::make_exception_ptr(asyncio::ConnectionResetError(ECONNRESET, "x")));
    co_await expect_await_throws<asyncio::ConnectionResetError>(line, "the waiting read went on");
    EXPECT_TRUE(failing.exception());
    co_await expect_await_throws<asyncio::ConnectionResetError>(
        failing.read(3), "a later read ignored the exception");
    EXPECT_FALSE(r.exception());
  }());
}

// A reader of a socket feeds itself, and an empty handle is no reader: both are refused, by
// feed_data and by the protocol that would feed them.
TEST(FedStreamReader, OnlyAFedReaderIsFed) {
  run_test([]() -> Coro<void> {
    int pair[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
    const asyncio::Socket sock{pair[0]};  // named: g++ 12 cannot take a braced list in co_await
    auto [reader, writer] = co_await asyncio::open_connection(sock);
    EXPECT_THROW(reader.feed_data("x"), std::runtime_error);
    EXPECT_THROW(asyncio::StreamReaderProtocol{reader}, std::runtime_error);
    EXPECT_THROW(asyncio::StreamReaderProtocol{asyncio::StreamReader()}, std::runtime_error);
    EXPECT_THROW(asyncio::StreamReader::fed(0), std::invalid_argument);
    writer.close();
    ::close(pair[1]);
  }());
}

// asyncio's recipe for reading a pipe as a stream, with its flow control: a reader that lags
// pauses the pipe's transport once more than twice its limit waits unread (the writer then
// waits for room), and reading it down resumes it. A read(-1) that needs far more than the
// limit is never left waiting on a paused transport. The writer's close is the reader's EOF.
TEST(StreamReaderProtocol, APipeReadAsAStreamWithFlowControl) {
  run_test([]() -> Coro<void> {
    Pipe pipe;
    constexpr std::size_t kLimit = 16 * 1024;
    asyncio::StreamReader reader = asyncio::StreamReader::fed(kLimit);
    auto protocol = std::make_shared<asyncio::StreamReaderProtocol>(reader);
    auto [in, unused] =
        co_await asyncio::connect_read_pipe([&] { return protocol; }, pipe.read_end);
    auto [out, writer] = co_await asyncio::connect_write_pipe(make_recorder, pipe.write_end);
    const std::string big = pattern(1 << 20);
    out.write(std::string_view(big));
    auto until_paused = [&]() -> Coro<void> {
      for (int i = 0; i < 2000 && in.is_reading(); ++i)
        co_await asyncio::sleep(0.005);
      EXPECT_FALSE(in.is_reading()) << "the transport went on feeding a reader that lags";
    };
    co_await until_paused();
    EXPECT_GT(out.get_write_buffer_size(), 0u) << "the writer waits for room";
    std::string got;
    bool waited = false;  // whether the last read suspended (the loop ran the call_soon then)
    while (!in.is_reading() && got.size() < big.size() / 2) {
      waited = false;
      asyncio::get_running_loop().call_soon([&waited] { waited = true; });
      got += co_await reader.readexactly(4096);
    }
    EXPECT_TRUE(in.is_reading()) << "reading down to the limit resumed the transport";
    EXPECT_FALSE(waited) << "resumed only by a read that found the buffer empty";
    EXPECT_LT(got.size(), big.size() / 2);
    co_await until_paused();  // and the reader lags again: read(-1) must resume it
    auto rest = asyncio::create_task(reader.read());
    co_await writer->until([&] { return out.get_write_buffer_size() == 0; });
    out.close();
    got += co_await asyncio::wait_for(rest, 10.0);
    EXPECT_TRUE(got == big) << "1 MiB whole and in order (" << got.size() << " bytes)";
    EXPECT_TRUE(reader.at_eof());
    EXPECT_TRUE(in.is_closing());
  }());
}

// Over a socket a reset ends the stream with the error: the bytes before it are read, then the
// reads raise ConnectionResetError (connection_lost's set_exception).
TEST(StreamReaderProtocol, AResetFailsTheReadsAfterTheBytesBeforeIt) {
  run_test([]() -> Coro<void> {
    int pair[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair);
    ::write(pair[0], "unread", 6);  // left unread in the peer: its close is then a reset
    asyncio::StreamReader reader = asyncio::StreamReader::fed();
    auto protocol = std::make_shared<asyncio::StreamReaderProtocol>(reader);
    auto [in, unused] = co_await asyncio::connect_read_pipe([&] { return protocol; }, pair[0]);
    ::write(pair[1], "line\n", 5);
    ::close(pair[1]);
    EXPECT_EQ(co_await asyncio::wait_for(reader.readline(), 10.0), "line\n");
    co_await expect_await_throws<asyncio::ConnectionResetError>(
        asyncio::wait_for(reader.readline(), 10.0), "the reset was lost");
    EXPECT_TRUE(reader.exception());
  }());
}

// loop.sendfile on a transport: the file goes after what the protocol wrote, spliced to the
// socket; a write while it runs is refused (asyncio's RuntimeError), and writes go on after it;
// an offset and a count send that part; a closing transport is refused.
TEST(Protocols, SendfileSendsAFileAfterWhatWasWritten) {
  const std::string content = pattern(3 << 20);
  const int file = file_holding(content);
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  run_test([&]() -> Coro<void> {
    const asyncio::Socket ours{pair[0]};
    const asyncio::Socket theirs{pair[1]};
    auto [transport, protocol] = co_await asyncio::connect_accepted_socket(make_recorder, ours);
    auto [r, w] = co_await asyncio::open_connection(theirs);
    transport.write(std::string_view("header\n"));
    auto sending = asyncio::create_task(asyncio::sendfile(transport, file));
    co_await asyncio::sleep(0);  // it has begun: the peer reads nothing yet, so it cannot end
    EXPECT_THROW(transport.write(std::string_view("x")), std::runtime_error);
    EXPECT_EQ(co_await r.readexactly(7 + content.size()), "header\n" + content);
    EXPECT_EQ(co_await sending, content.size());
    transport.write(std::string_view("after\n"));
    EXPECT_EQ(co_await r.readline(), "after\n");
    const std::optional<std::size_t> count = 100;
    EXPECT_EQ(co_await asyncio::sendfile(transport, file, 5, count), 100u);
    EXPECT_EQ(co_await r.readexactly(100), content.substr(5, 100));
    transport.close();
    co_await protocol->until_lost();
    co_await expect_await_throws<std::runtime_error>(asyncio::sendfile(transport, file),
                                                     "a closed transport sent", "closing");
    w.close();
  }());
  ::close(file);
}

// A write pipe's transport has no socket to splice to: its sendfile reads the file through the
// ring and writes it, as asyncio's fallback does; a read pipe's is refused.
TEST(PipeTransports, SendfileToAWritePipeWritesTheFile) {
  const std::string content = pattern(1 << 20);
  const int file = file_holding(content);
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  run_test([&]() -> Coro<void> {
    auto [in, reader] = co_await asyncio::connect_read_pipe(make_recorder, p[0]);
    auto [out, writer] = co_await asyncio::connect_write_pipe(make_recorder, p[1]);
    EXPECT_EQ(co_await asyncio::sendfile(out, file, 0), content.size());
    EXPECT_EQ(::lseek(file, 0, SEEK_CUR), static_cast<off_t>(content.size()));
    // A source with no position (a pipe) is read from where it is, to its EOF; an offset in it
    // is an error.
    int source[2];
    EXPECT_EQ(::pipe2(source, O_CLOEXEC), 0);
    EXPECT_EQ(::write(source[1], "and a pipe\n", 11), 11);
    ::close(source[1]);
    co_await expect_await_throws<asyncio::OSError>(asyncio::sendfile(out, source[0], 3),
                                                   "an offset in a pipe", "no position");
    EXPECT_EQ(co_await asyncio::sendfile(out, source[0]), 11u);
    ::close(source[0]);
    out.close();
    co_await reader->until_lost();
    EXPECT_TRUE(reader->data == content + "and a pipe\n")
        << reader->data.size() << " bytes of " << content.size() + 11;
    co_await expect_await_throws<std::runtime_error>(asyncio::sendfile(in, file),
                                                     "a read pipe sent", "read pipe");
  }());
  ::close(file);
}
