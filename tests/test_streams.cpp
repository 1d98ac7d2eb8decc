// tests/test_streams.cpp — gilio/asyncio/streams.hpp over real TCP on loopback and over Unix
// domain sockets, after Lib/test/test_asyncio/test_streams.py; plus the loop's sock_* methods.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "../runtime/net.hpp"
#include "../runtime/uring.hpp"
#include "asyncio_support.hpp"
#include "support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using asyncio::StreamReader;
using asyncio::StreamWriter;
using gilio::testing::expect_await_throws;
using gilio::testing::run_test;

namespace {

// Many sockets at once: lift the soft limit on descriptors to the hard one.
void raise_fd_limit() {
  rlimit r{};
  ::getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &r);
}

Coro<void> echo_lines(StreamReader r, StreamWriter w) {
  for (;;) {
    std::string line = co_await r.readline();
    if (line.empty()) break;
    w.write(line);
    co_await w.drain();
  }
  w.close();
}

// A handler that reads until the client's EOF, then closes.
Coro<void> read_to_eof_then_close(StreamReader r, StreamWriter w) {
  co_await r.read();
  w.close();
}

Coro<void> send_then_close(StreamReader, StreamWriter w, std::string data) {
  w.write(data);
  co_await w.drain();
  w.close();
}

// n bytes of letters in a pattern that shows a lost or reordered chunk.
std::string patterned(std::size_t n, std::size_t step) {
  std::string data(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    data[i] = static_cast<char>('a' + (i * step) % 26);
  return data;
}

}  // namespace

// A server that answers and closes without reading all the client sent: its socket still holds
// unread bytes at the close, which resets the connection and makes the kernel drop what it has
// not sent yet. asyncio's transport has read those bytes already; a stream reads and drops them
// before it closes (streams.cpp, discard_unread), so the answer arrives whole, then EOF.
TEST(Streams, AServerClosingWithBytesUnreadStillDeliversItsAnswer) {
  run_test([]() -> Coro<void> {
    const std::string answer = patterned(512 * 1024, 7);
    asyncio::Event got_request;
    asyncio::Event more_sent;  // the bytes the server will not read are in its socket
    asyncio::ClientConnected handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await r.readline();
      got_request.set();
      co_await more_sent.wait();
      w.write(std::string_view(answer));
      w.close();
      co_await w.wait_closed();
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    for (int round = 0; round < 3; ++round) {
      got_request.clear();
      more_sent.clear();
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
      w.write(std::string_view("GET /\n"));
      co_await got_request.wait();
      w.set_write_buffer_limits(0);  // drain() now waits until the kernel has every byte
      w.write(std::string(16 * 1024, 'x'));
      co_await w.drain();
      more_sent.set();
      const std::string got = co_await r.readexactly(answer.size());
      EXPECT_TRUE(got == answer) << "round " << round;
      EXPECT_EQ(co_await r.read(), "");
      w.close();
    }
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(Streams, EchoWithReadline) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    EXPECT_GT(server.port(), 0);
    EXPECT_TRUE(server.is_serving());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_NE(w.peername().find("127.0.0.1:"), std::string::npos);
    for (int i = 0; i < 10; ++i) {
      w.write("line " + std::to_string(i) + "\n");
      co_await w.drain();
      EXPECT_EQ(co_await r.readline(), "line " + std::to_string(i) + "\n");
    }
    w.close();
    co_await w.wait_closed();
    EXPECT_TRUE(w.is_closing());
    EXPECT_THROW(w.write("x"), std::runtime_error) << "write after close is an error";
    server.close();
    co_await server.wait_closed();
    EXPECT_FALSE(server.is_serving());
  }());
}

// `async for line in reader`: aiter() gives the lines as readline() does, the last without its
// newline, then std::nullopt; over a fed reader and over a connection.
TEST(Streams, AsyncIterationGivesTheLinesUntilEof) {
  run_test([]() -> Coro<void> {
    asyncio::StreamReader fed = asyncio::StreamReader::fed();
    fed.feed_data("one\ntw");
    fed.feed_data("o\n\nthree");
    fed.feed_eof();
    std::vector<std::string> lines;
    auto it = fed.aiter();
    while (std::optional<std::string> line = co_await it.next())
      lines.push_back(std::move(*line));
    const std::vector<std::string> expected{"one\n", "two\n", "\n", "three"};
    EXPECT_EQ(lines, expected);
    EXPECT_FALSE((co_await it.next()).has_value());

    auto server = co_await asyncio::start_server(
        [](StreamReader r, StreamWriter w) { return send_then_close(r, w, "a\nb\nc\n"); },
        "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    lines.clear();
    auto from_socket = r.aiter();
    while (std::optional<std::string> line = co_await from_socket.next())
      lines.push_back(std::move(*line));
    const std::vector<std::string> abc{"a\n", "b\n", "c\n"};
    EXPECT_EQ(lines, abc);
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// write(std::string&&) takes the string over when nothing waits to be sent and appends it
// otherwise; mixed with copied writes and writelines(), large and small, every byte arrives
// once and in order.
TEST(Streams, MovedAndCopiedWritesKeepTheirOrder) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    std::string expected;
    for (int i = 0; i < 40; ++i) {
      std::string line = patterned(i % 4 == 0 ? 60000 : 10 + i, 3 + i) + "\n";
      expected += line;
      if (i % 3 == 0) {
        w.write(std::move(line));  // taken over, or appended behind a big one still pending
      } else if (i % 3 == 1) {
        w.write(line);  // copied
        EXPECT_FALSE(line.empty());
      } else {
        w.writelines({line.substr(0, 5), line.substr(5)});  // two pieces, one line
      }
    }
    EXPECT_TRUE(w.can_write_eof());
    co_await w.drain();
    std::string got;
    while (got.size() < expected.size())
      got += co_await r.readline();
    EXPECT_TRUE(got == expected) << "the echoed bytes differ";
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(Streams, ReadVariantsAndEof) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(
        [](StreamReader r, StreamWriter w) { return send_then_close(r, w, "abc\ndefgh|tail"); },
        "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await r.readline(), "abc\n");
    EXPECT_EQ(co_await r.readexactly(2), "de");
    EXPECT_EQ(co_await r.readuntil("|"), "fgh|");
    EXPECT_EQ(co_await r.read(0), "");
    try {
      co_await r.readexactly(10);  // only "tail" is left before EOF
      ADD_FAILURE() << "readexactly past EOF did not throw";
    } catch (const asyncio::IncompleteReadError& e) {
      EXPECT_EQ(e.partial, "tail");
      EXPECT_EQ(e.expected, 10u);
    }
    EXPECT_TRUE(r.at_eof());
    EXPECT_EQ(co_await r.read(), "");
    EXPECT_EQ(co_await r.readline(), "");
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// Reads take their bytes from the front of what was received without moving the rest
// (streams.cpp, RecvBuffer): every read kind, in turn, over many receives' worth of small
// pieces, must give exactly the bytes in order as the unread part is moved down now and then.
TEST(Streams, ManySmallReadsOfEveryKindKeepTheBytesInOrder) {
  run_test([]() -> Coro<void> {
    constexpr int kPieces = 20'000;
    const auto block = [](int i) { return patterned(static_cast<std::size_t>(i % 37), i + 1); };
    std::string script;
    for (int i = 0; i < kPieces; ++i)
      script += "L" + std::to_string(i) + "\n" + block(i) + "U" + std::to_string(i) + "|";
    // Named first: g++ 12 destroys a capturing lambda temporary in a co_await expression twice.
    asyncio::ClientConnected send_script = [script](StreamReader r, StreamWriter w) {
      return send_then_close(r, w, script);
    };
    auto server = co_await asyncio::start_server(send_script, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    int wrong = 0;
    for (int i = 0; i < kPieces && wrong < 5; ++i) {
      std::string line;
      if (i % 5 == 0) line = co_await r.read(1);  // one byte is buffered: read(1) gives it
      line += co_await r.readline();
      if (line != "L" + std::to_string(i) + "\n") ++wrong;
      if (co_await r.readexactly(static_cast<std::size_t>(i % 37)) != block(i)) ++wrong;
      if (co_await r.readuntil("|") != "U" + std::to_string(i) + "|") ++wrong;
    }
    EXPECT_EQ(wrong, 0) << "a read gave the wrong bytes";
    EXPECT_EQ(co_await r.read(), "");
    EXPECT_TRUE(r.at_eof());
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// read() to EOF keeps receiving inside the completion, without waking the reader per chunk:
// every chunk, however the kernel splits them, ends up in the one result.
TEST(Streams, ReadToEofCollectsEveryChunk) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          for (int i = 0; i < 5; ++i) {
            w.write(std::string(3000, static_cast<char>('a' + i)));
            co_await w.drain();
            co_await asyncio::sleep(0.002);  // separate sends; the result must not depend on it
          }
          w.close();
        },
        "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    const std::string all = co_await r.read();
    EXPECT_EQ(all.size(), 15000u);
    for (int i = 0; i < 5; ++i)
      EXPECT_EQ(all.substr(i * 3000, 3000), std::string(3000, static_cast<char>('a' + i)));
    EXPECT_TRUE(r.at_eof());
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// Reads past a MiB take the big-string paths of RecvBuffer (runtime/big_string.hpp): a buffer
// that grows into populated pages, a read that takes the whole buffer over, one that copies a
// part of it.
TEST(Streams, ReadsOfManyMegabytesKeepEveryByte) {
  const std::string first = patterned(2 << 20, 5);
  const std::string second = patterned((3 << 20) + 77, 11);
  run_test([](const std::string& first, const std::string& second) -> Coro<void> {
    auto server = co_await asyncio::start_server(
        [&](StreamReader r, StreamWriter w) -> Coro<void> {
          w.write(first);
          co_await w.drain();
          EXPECT_EQ(co_await r.readline(), "go\n");  // nothing more arrives until this
          w.write(second);
          co_await w.drain();
          w.close();
        },
        "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    // Exactly what the buffer holds: handed over whole.
    EXPECT_TRUE(co_await r.readexactly(first.size()) == first) << "the first 2 MiB differ";
    w.write("go\n");
    std::string got = co_await r.readexactly(10);
    got += co_await r.readexactly(3 << 20);  // a part of a buffer whose front was read: copied
    got += co_await r.read();
    EXPECT_EQ(got.size(), second.size());
    EXPECT_TRUE(got == second) << "the next 3 MiB differ";
    w.close();
    server.close();
    co_await server.wait_closed();
  }(first, second));
}

// Big writes copied in behind one still being sent grow the pending bytes past a MiB.
TEST(Streams, WritesOfManyMegabytesKeepTheirOrder) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(
        [](StreamReader r, StreamWriter w) -> Coro<void> {
          w.write(co_await r.read());  // all of it back, after the client's EOF
          co_await w.drain();
          w.close();
        },
        "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    std::string expected;
    for (int i = 0; i < 4; ++i) {
      const std::string part = patterned((3 << 20) + i, 3 + i);
      w.write(std::string_view(part));  // copied; the next ones queue behind the first send
      expected += part;
    }
    w.write_eof();
    co_await w.drain();
    const std::string got = co_await r.read();
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected) << "the echoed 12 MiB differ";
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// A read to EOF that is cancelled loses nothing: what it had received stays for the next read.
TEST(Streams, ACancelledReadToEofKeepsWhatItReceived) {
  run_test([]() -> Coro<void> {
    asyncio::Event finish;
    auto server = co_await asyncio::start_server(
        [&finish](StreamReader, StreamWriter w) -> Coro<void> {
          w.write("first part;");
          co_await w.drain();
          co_await finish.wait();
          w.write("second part");
          w.close();
        },
        "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    auto reader = asyncio::create_task(
        [](StreamReader r) -> Coro<std::string> { co_return co_await r.read(); }(r));
    co_await asyncio::sleep(0.01);  // let it receive the first part (or not: nothing may be lost)
    reader.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(reader,
                                                          "the cancelled read to EOF returned");
    finish.set();
    EXPECT_EQ(co_await asyncio::wait_for(r.read(), 5.0), "first part;second part");
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// read() and drain() return awaitables, not coroutines; they still go wherever a coroutine goes.
TEST(Streams, ReadAndDrainGoWhereACoroutineGoes) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write("abcdefghij\n");
    Coro<void> drained = w.drain();
    co_await std::move(drained);
    Coro<std::string> three = r.read(3);
    EXPECT_EQ(co_await std::move(three), "abc");
    EXPECT_EQ(co_await asyncio::create_task(r.read(2)), "de");
    EXPECT_EQ(co_await asyncio::wait_for(r.read(3), 5.0), "fgh");
    co_await asyncio::wait_for(w.drain(), 5.0);
    auto [ij] = co_await asyncio::gather(r.read(100));
    EXPECT_EQ(ij, "ij\n");

    auto once = r.read(1);
    w.write("k\n");
    EXPECT_EQ(co_await once, "k");
    co_await expect_await_throws<asyncio::InvalidStateError>(once,
                                                             "a read awaited twice did not throw");

    // The other reads are the same kind of awaitable (the server echoes whole lines).
    EXPECT_EQ(co_await r.readline(), "\n");  // what was left of "k\n"
    w.write("lm|nop\nqrs\n");
    Coro<std::string> until = r.readuntil("|");
    EXPECT_EQ(co_await std::move(until), "lm|");
    EXPECT_EQ(co_await asyncio::create_task(r.readline()), "nop\n");
    EXPECT_EQ(co_await asyncio::wait_for(r.readexactly(2), 5.0), "qr");
    auto line_once = r.readexactly(1);
    EXPECT_EQ(co_await line_once, "s");
    co_await expect_await_throws<asyncio::InvalidStateError>(
        line_once, "a readexactly awaited twice did not throw", "readexactly");

    auto drain_once = w.drain();
    co_await drain_once;
    co_await expect_await_throws<asyncio::InvalidStateError>(drain_once,
                                                             "a drain awaited twice did not throw");

    StreamReader unconnected;
    co_await expect_await_throws<std::runtime_error>(
        unconnected.read(1), "reading an unconnected StreamReader did not throw", "not connected");
    StreamWriter unconnected_writer;
    co_await expect_await_throws<std::runtime_error>(
        unconnected_writer.drain(), "draining an unconnected StreamWriter did not throw",
        "not connected");
    // Every other use of a default-constructed reader, writer or server says so too.
    EXPECT_THROW(unconnected.at_eof(), std::runtime_error);
    EXPECT_THROW(unconnected_writer.write("x"), std::runtime_error);
    EXPECT_THROW(unconnected_writer.close(), std::runtime_error);
    EXPECT_THROW(unconnected_writer.peername(), std::runtime_error);
    asyncio::Server no_server;
    EXPECT_THROW(no_server.port(), std::runtime_error);
    EXPECT_THROW(no_server.close(), std::runtime_error);
    co_await expect_await_throws<std::runtime_error>(
        unconnected.readline(), "readline on an unconnected StreamReader did not throw");
    w.close();
    co_await w.wait_closed();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(Streams, ASeparatorSplitAcrossChunksIsFound) {
  // What the receive's completion asks after each chunk, step by step.
  asyncio::detail::ReadWant want(asyncio::detail::ReadWant::Kind::until, std::string("||"));
  std::string buffer = "ab|";
  EXPECT_EQ(want.find_separator(buffer), std::string::npos);
  EXPECT_EQ(want.searched, 2u) << "the last byte may begin the separator: look there again";
  buffer += "|cd";
  EXPECT_EQ(want.find_separator(buffer), 2u);
  buffer = "x";
  want.searched = 0;
  EXPECT_EQ(want.find_separator(buffer), std::string::npos);
  EXPECT_EQ(want.searched, 0u) << "shorter than the separator: nothing looked at yet";
}

// Several separators (3.13's tuple), step by step: the match that ends first wins, whatever its
// place in the list or where it starts; of two that end at the same byte, the shorter; and the
// search goes on from where the longest could still begin.
TEST(Streams, OfSeveralSeparatorsTheMatchThatEndsFirstWins) {
  using asyncio::detail::ReadWant;
  ReadWant want(ReadWant::Kind::until, std::vector<std::string>{"12345", "34"});
  EXPECT_EQ(want.find_separator("0123456"), 3u);  // "34" ends at 5, "12345" at 6
  EXPECT_EQ(want.matched, 2u);
  ReadWant tie(ReadWant::Kind::until, std::vector<std::string>{"\r\n", "\n"});
  EXPECT_EQ(tie.find_separator("ab\r\n"), 3u);  // both end at 4: the shorter, as asyncio's sort
  EXPECT_EQ(tie.matched, 1u);
  ReadWant split(ReadWant::Kind::until, std::vector<std::string>{"XYZ", "QQ"});
  std::string buffer = "aaaXY";
  EXPECT_EQ(split.find_separator(buffer), std::string::npos);
  EXPECT_EQ(split.searched, 3u) << "\"XY\" may begin the longest separator: look there again";
  buffer += "Z";
  EXPECT_EQ(split.find_separator(buffer), 3u);
  EXPECT_EQ(split.matched, 3u);
}

// End to end: the bytes up to whichever separator ends first, across receives; the limit and
// EOF rules are those of a single separator; an empty list or an empty separator is refused.
TEST(Streams, ReaduntilWithSeveralSeparators) {
  run_test([]() -> Coro<void> {
    asyncio::ClientConnected handler = [](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await r.readline();  // the client's go-ahead, so that the pieces arrive one by one
      const std::vector<std::string> pieces = {"GET /\r\nHost", ": x\n", "body|", "|", "tail"};
      for (const std::string& piece : pieces) {
        w.write(piece);
        co_await w.drain();
        co_await asyncio::sleep(0.005);
      }
      w.close();
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write("go\n");
    const std::vector<std::string> line_ends = {"\r\n", "\n"};
    EXPECT_EQ(co_await r.readuntil(line_ends), "GET /\r\n");
    EXPECT_EQ(co_await r.readuntil(line_ends), "Host: x\n");
    auto bars = r.readuntil({"||", "|||"});  // g++ 12: no braced list inside co_await
    EXPECT_EQ(co_await bars, "body||");
    const std::vector<std::string> never = {"#", "@@"};
    try {
      co_await r.readuntil(never);
      ADD_FAILURE() << "readuntil past EOF did not throw";
    } catch (const asyncio::IncompleteReadError& e) {
      EXPECT_EQ(e.partial, "tail");
      EXPECT_EQ(e.expected, std::string::npos);  // asyncio's None
      EXPECT_STREQ(e.what(), "4 bytes read on a total of undefined expected bytes");
    }
    const std::vector<std::string> none, with_empty = {"x", ""};
    EXPECT_THROW(co_await r.readuntil(none), std::invalid_argument);
    EXPECT_THROW(co_await r.readuntil(with_empty), std::invalid_argument);

    asyncio::ClientConnected flood = [](StreamReader r2, StreamWriter w2) {
      return send_then_close(r2, w2, std::string(100, 'x') + "\n");
    };
    auto server2 = co_await asyncio::start_server(flood, "127.0.0.1", 0);
    auto [r3, w3] = co_await asyncio::open_connection("127.0.0.1", server2.port(), /*limit=*/16);
    EXPECT_THROW(co_await r3.readuntil(line_ends), asyncio::LimitOverrunError);
    w.close();
    w3.close();
    server.close();
    server2.close();
    co_await server.wait_closed();
    co_await server2.wait_closed();
  }());
}

TEST(Streams, ReadsSettleAcrossChunksAndACancelledReadKeepsItsBytes) {
  run_test([]() -> Coro<void> {
    asyncio::Event connected, done;
    StreamWriter peer;
    // g++ 12 bug: a lambda temporary with a non-trivial capture inside a co_await expression is
    // destroyed twice; name it first.
    asyncio::ClientConnected handler = [&](StreamReader, StreamWriter w) -> Coro<void> {
      peer = w;
      connected.set();
      co_await done.wait();
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    co_await connected.wait();
    // Each piece is sent and given a few loop iterations to arrive, so that the reader's
    // receive usually completes with it alone; the answers do not depend on that.
    auto send_pieces = [&peer](std::vector<std::string> pieces) -> Coro<void> {
      for (const std::string& piece : pieces) {
        peer.write(piece);
        co_await peer.drain();
        for (int i = 0; i < 3; ++i)
          co_await asyncio::sleep(0);
      }
    };
    auto until = asyncio::create_task(r.readuntil("||"));
    std::vector<std::string> pieces = {"ab|", "|cd|", "|"};
    co_await send_pieces(pieces);
    EXPECT_EQ(co_await until, "ab||");
    EXPECT_EQ(co_await r.readuntil("||"), "cd||");

    auto exactly = asyncio::create_task(r.readexactly(10));
    pieces = {"012", "3456", "789", "X"};
    co_await send_pieces(pieces);
    EXPECT_EQ(co_await exactly, "0123456789");
    EXPECT_EQ(co_await r.read(1), "X");

    auto line = asyncio::create_task(r.readline());
    pieces = {"hel", "lo wor", "ld\n"};
    co_await send_pieces(pieces);
    EXPECT_EQ(co_await line, "hello world\n");

    // A readline cancelled mid-line: the bytes it had received stay for the next read.
    auto cancelled = asyncio::create_task(r.readline());
    pieces = {"par"};
    co_await send_pieces(pieces);
    cancelled.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(cancelled,
                                                          "the readline was not cancelled");
    pieces = {"tial\n"};
    co_await send_pieces(pieces);
    EXPECT_EQ(co_await r.readline(), "partial\n");

    // The same goes for a read to EOF that is cancelled, and the last line needs no newline.
    peer.write("last");
    peer.close();
    EXPECT_EQ(co_await r.readline(), "last");
    EXPECT_EQ(co_await r.readline(), "");
    done.set();
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(Streams, ReaduntilOverTheLimit) {
  run_test([]() -> Coro<void> {
    const std::string big(100, 'x');
    // g++ 12 bug: a lambda temporary with a non-trivial capture inside a co_await expression is
    // destroyed twice; name it first.
    asyncio::ClientConnected handler = [big](StreamReader r, StreamWriter w) {
      return send_then_close(r, w, big + "\nok\n");
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port(), /*limit=*/16);
    EXPECT_EQ(r.limit(), 16u);
    EXPECT_THROW(co_await r.readuntil("\n"), asyncio::LimitOverrunError);
    auto [r2, w2] = co_await asyncio::open_connection("127.0.0.1", server.port(), 16);
    EXPECT_THROW(co_await r2.readline(), std::invalid_argument) << "asyncio raises ValueError";
    EXPECT_EQ(co_await r2.readline(), "ok\n") << "the overlong line was dropped, the rest kept";
    EXPECT_THROW(co_await r2.readuntil(""), std::invalid_argument);
    w.close();
    w2.close();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(Streams, EightMegabytesToASlowReaderArriveWholeAndInOrder) {
  run_test([]() -> Coro<void> {
    const std::string data = patterned(8 << 20, 7);
    std::string received;
    auto server = co_await asyncio::start_server(
        [&received](StreamReader r, StreamWriter w) -> Coro<void> {
          for (;;) {
            std::string chunk = co_await r.read(4096);
            if (chunk.empty()) break;
            received += chunk;
            if (received.size() % (1 << 20) < 4096) co_await asyncio::sleep(0.001);  // slow
          }
          w.close();
        },
        "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    std::size_t most_buffered = 0;
    for (std::size_t off = 0; off < data.size(); off += 256 * 1024) {
      w.write(std::string_view(data).substr(off, 256 * 1024));
      most_buffered = std::max(most_buffered, w.buffered());
      co_await w.drain();  // backpressure: waits while the reader is slow
      EXPECT_LE(w.buffered(), 64u * 1024 + 256 * 1024);
    }
    w.close();
    co_await w.wait_closed();
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(received.size(), data.size());
    EXPECT_TRUE(received == data) << "bytes arrived out of order or corrupted";
    EXPECT_GT(most_buffered, 0u);
  }());
}

// The stream's state outlives its reader and writer while a send is in flight: the bytes
// written and the close() after them still happen once both handles are gone.
TEST(Streams, ADroppedWriterStillSendsWhatItBufferedThenCloses) {
  run_test([]() -> Coro<void> {
    const std::string data = patterned(2 << 20, 11);
    asyncio::Event done;
    std::string received;
    auto server = co_await asyncio::start_server(
        [&](StreamReader r, StreamWriter w) -> Coro<void> {
          received = co_await r.read();  // to EOF: the peer's close
          w.close();
          done.set();
        },
        "127.0.0.1", 0);
    {
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
      w.write(data);
      EXPECT_GT(w.buffered(), 0u);  // more than the socket takes at once: a send is in flight
      w.close();
    }  // the reader and the writer are gone; the send in flight holds the stream
    co_await asyncio::wait_for(done.wait(), 10.0);
    server.close();
    co_await server.wait_closed();
    EXPECT_EQ(received.size(), data.size());
    EXPECT_TRUE(received == data) << "bytes lost or reordered after the handles were dropped";
  }());
}

TEST(Streams, AThousandConnectionsExchangeAHundredMessagesEach) {
  raise_fd_limit();
  run_test(
      []() -> Coro<void> {
        auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
        const int port = server.port();
        std::vector<asyncio::Task<int>> clients;
        for (int c = 0; c < 1000; ++c) {
          clients.push_back(asyncio::create_task([](int port, int c) -> Coro<int> {
            auto [r, w] = co_await asyncio::open_connection("127.0.0.1", port);
            int ok = 0;
            for (int m = 0; m < 100; ++m) {
              const std::string msg = std::to_string(c) + ":" + std::to_string(m) + "\n";
              w.write(msg);
              co_await w.drain();
              ok += (co_await r.readline()) == msg;
            }
            w.close();
            co_return ok;
          }(port, c)));
        }
        auto results = co_await asyncio::gather(clients);
        long total = 0;
        for (int ok : results)
          total += ok;
        EXPECT_EQ(total, 100'000);
        server.close();
        co_await server.wait_closed();
      }(),
      120);
}

TEST(Streams, MoreReadsCompletingAtOnceThanTheLoopHasReceiveBuffers) {
  raise_fd_limit();
  run_test(
      []() -> Coro<void> {
        // 300 connections whose data and EOF are all waiting in the kernel before the readers
        // start: their 300 recvs complete in one batch, more than the loop's 128 provided
        // buffers, so some find the ring empty (-ENOBUFS) and must be retried — losing nothing.
        constexpr int kConnections = 300;
        auto payload = [](int c) {
          std::string s(40'000 + c, '\0');
          for (std::size_t i = 0; i < s.size(); ++i)
            s[i] = static_cast<char>('a' + (i * 13 + static_cast<std::size_t>(c)) % 26);
          return s;
        };
        int closed = 0;
        asyncio::Event all_sent;
        asyncio::ClientConnected handler = [&](StreamReader r, StreamWriter w) -> Coro<void> {
          const std::string hello = co_await r.readline();
          w.write(payload(std::stoi(hello)));
          w.close();
          co_await w.wait_closed();
          if (++closed == kConnections) all_sent.set();
        };
        auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
        std::vector<StreamReader> readers;
        std::vector<StreamWriter> writers;
        for (int c = 0; c < kConnections; ++c) {
          auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
          w.write(std::to_string(c) + "\n");
          readers.push_back(r);
          writers.push_back(w);
        }
        co_await all_sent.wait();
        auto& loop = asyncio::get_running_loop();
        const std::uint64_t empty_before = loop.backend().ring_empty_count();
        std::vector<asyncio::Task<std::string>> reads;
        for (auto& r : readers)
          reads.push_back(asyncio::create_task(r.read()));
        auto got = co_await asyncio::gather(reads);
        for (int c = 0; c < kConnections; ++c)
          EXPECT_TRUE(got[c] == payload(c)) << "connection " << c << " lost or mixed bytes";
        EXPECT_GT(loop.backend().ring_empty_count(), empty_before)
            << "the ring never ran dry: the retry path was not exercised";
        for (auto& w : writers)
          w.close();
        server.close();
        co_await server.wait_closed();
      }(),
      60);
}

TEST(Streams, TenThousandBlockedReadsCancelledAtOnce) {
  raise_fd_limit();
  run_test(
      []() -> Coro<void> {
        // 5,000 socket pairs, a reader task blocked on each end: 10,000 recvs in flight, all
        // submitted in one loop iteration — ten times the ring's 1,024 submission slots.
        std::vector<int> fds;
        for (int i = 0; i < 5000; ++i) {
          int sv[2];
          EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
          fds.push_back(sv[0]);
          fds.push_back(sv[1]);
        }
        auto& loop = asyncio::get_running_loop();
        std::vector<asyncio::Task<std::string>> readers;
        for (int fd : fds)
          readers.push_back(asyncio::create_task(loop.sock_recv(fd, 100)));
        co_await asyncio::sleep(0.01);
        EXPECT_GE(loop.backend().in_flight(), 10'000u);
        for (auto& t : readers)
          t.cancel();
        auto outcomes = co_await asyncio::gather(asyncio::return_exceptions, readers);
        int cancelled = 0;
        for (auto& o : outcomes) {
          try {
            std::rethrow_exception(o.error());
          } catch (const asyncio::CancelledError&) {
            ++cancelled;
          }
        }
        EXPECT_EQ(cancelled, 10'000);
        EXPECT_EQ(loop.backend().in_flight(), 1u) << "a stray operation is still in flight";
        // The sockets still work: nothing was read and lost by a cancelled operation.
        EXPECT_EQ(::write(fds[0], "z", 1), 1);
        EXPECT_EQ(co_await loop.sock_recv(fds[1], 10), "z");
        for (int fd : fds)
          ::close(fd);
      }(),
      120);
}

namespace {
Coro<void> cancel_it(asyncio::Task<std::string> t) {
  t.cancel();
  co_return;
}

// `reader` and the task that cancels it run in the same loop iteration, so the recv is still
// held back by the backend (receives go last in a batch, uring.hpp) when the cancel comes.
// `unblock` sends the reader something, to end the test if the cancel was lost.
Coro<void> expect_cancelled_in_the_same_iteration(asyncio::Task<std::string> reader,
                                                  std::function<void()> unblock) {
  auto canceller = asyncio::create_task(cancel_it(reader));
  std::vector<asyncio::Task<std::string>> one;
  one.push_back(reader);  // g++ 12: a braced list inside co_await does not compile
  auto [done, pending] = co_await asyncio::wait(one, asyncio::ReturnWhen::ALL_COMPLETED, 5.0);
  EXPECT_TRUE(pending.empty()) << "the cancel overtook the recv it cancels: the read hangs";
  EXPECT_TRUE(reader.cancelled());
  if (!reader.done()) {
    unblock();
    co_await asyncio::wait(one);
  }
  co_await canceller;
}
}  // namespace

TEST(Streams, AReadCancelledInTheIterationItBeganIsCancelled) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_await expect_cancelled_in_the_same_iteration(
        asyncio::create_task(loop.sock_recv(sv[0], 100)),
        [&] { EXPECT_EQ(::write(sv[1], "lost", 4), 4); });
    // The socket still works, and nothing was taken from it by the cancelled recv.
    EXPECT_EQ(::write(sv[1], "z", 1), 1);
    EXPECT_EQ(co_await loop.sock_recv(sv[0], 10), "z");

    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    co_await expect_cancelled_in_the_same_iteration(
        asyncio::create_task(
            [](StreamReader r) -> Coro<std::string> { co_return co_await r.read(100); }(r)),
        [&writer = w] { writer.write("lost\n"); });  // clang 14 cannot capture a structured binding
    w.write("still here\n");
    co_await w.drain();
    EXPECT_EQ(co_await r.readline(), "still here\n");
    w.close();
    co_await w.wait_closed();
    server.close();
    co_await server.wait_closed();
    ::close(sv[0]);
    ::close(sv[1]);
  }());
}

// As asyncio's drain() once the connection is lost: after close() has closed the socket, a
// drain raises ConnectionResetError — a write-and-drain loop learns the stream is gone — while a
// drain awaited as close() flushes returns normally.
TEST(Streams, DrainAfterCloseIsAConnectionResetError) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(read_to_eof_then_close, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write("bye");
    w.close();
    co_await w.drain();  // the socket is still open while the write is flushed
    co_await w.wait_closed();
    co_await expect_await_throws<asyncio::ConnectionResetError>(
        w.drain(), "a drain after close() did not throw", "after close()");
    EXPECT_THROW(w.write("more"), std::runtime_error);
    server.close();
    co_await server.wait_closed();
  }());
}

// A negative size reaching a size_t parameter is a clear error (asyncio's ValueError), not a
// length_error from deep inside std::string or a read that waits for EOF.
TEST(Streams, NegativeSizesAreClearErrors) {
  run_test([]() -> Coro<void> {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    auto& loop = asyncio::get_running_loop();
    const long negative = -1;
    co_await expect_await_throws<std::invalid_argument>(
        loop.sock_recv(sv[0], static_cast<std::size_t>(negative)),
        "sock_recv(-1) did not throw invalid_argument", "negative buffer size (-1)");
    auto server = co_await asyncio::start_server(read_to_eof_then_close, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    co_await expect_await_throws<std::invalid_argument>(
        r.readexactly(static_cast<std::size_t>(negative)),
        "readexactly(-1) did not throw invalid_argument", "less than zero");
    w.close();
    server.close();
    co_await server.wait_closed();
    ::close(sv[0]);
    ::close(sv[1]);
  }());
}

TEST(Streams, PeerResetMidStream) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(
        [](StreamReader r, StreamWriter w) -> Coro<void> {
          co_await r.readline();
          // Vanish without a goodbye: an RST, not a FIN (SO_LINGER 0).
          w.close();
          co_return;
        },
        "127.0.0.1", 0);
    auto& loop = asyncio::get_running_loop();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    co_await loop.sock_connect(fd, "127.0.0.1", server.port());
    linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(fd);  // reset from the client side...
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write("hi\n");
    co_await w.drain();
    // ...and a writer whose peer has gone gets a ConnectionError, not a hang or a crash.
    bool failed = false;
    try {
      for (int i = 0; i < 200; ++i) {
        w.write(std::string(64 * 1024, 'x'));
        co_await w.drain();
        co_await asyncio::sleep(0.001);
      }
    } catch (const asyncio::ConnectionError&) {
      failed = true;
    }
    EXPECT_TRUE(failed) << "writing to a closed peer never failed";
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(Streams, ConnectErrorsNameTheProblem) {
  run_test([]() -> Coro<void> {
    try {
      co_await asyncio::open_connection("127.0.0.1", 1);
      ADD_FAILURE() << "connected to a closed port";
    } catch (const asyncio::ConnectionRefusedError& e) {
      EXPECT_EQ(e.code().value(), ECONNREFUSED);
      EXPECT_NE(std::string(e.what()).find("127.0.0.1:1"), std::string::npos) << e.what();
    }
    EXPECT_THROW(co_await asyncio::open_connection("no-such-host.invalid", 80),
                 asyncio::NameResolutionError);
    EXPECT_THROW(co_await asyncio::open_connection("127.0.0.1", 70000), std::invalid_argument);
    EXPECT_THROW(co_await asyncio::start_server(echo_lines, "203.0.113.77", 0), asyncio::OSError);
  }());
}

TEST(Streams, ResolvesNamesWithoutBlockingTheLoop) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("localhost", server.port());
    w.write("x\n");
    EXPECT_EQ(co_await r.readline(), "x\n");
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// Lowers the soft limit on descriptors to a few above those open; use_up() then takes all of
// them but one, free_one() gives one back, the destructor the rest and the old limit. Lower it
// before a server arms its accept: io_uring reads the limit when the accept is submitted.
class FewDescriptors {
 public:
  FewDescriptors() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    int highest = 0;
    for (int fd = 0; fd < 4096; ++fd) {
      if (::fcntl(fd, F_GETFD) != -1) highest = fd;
    }
    rlimit low = saved_;
    low.rlim_cur = static_cast<rlim_t>(highest) + 16;
    ::setrlimit(RLIMIT_NOFILE, &low);
  }
  FewDescriptors(const FewDescriptors&) = delete;
  FewDescriptors& operator=(const FewDescriptors&) = delete;
  ~FewDescriptors() {
    for (int fd : taken_)
      ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  void use_up() {
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;)
      taken_.push_back(fd);
    EXPECT_EQ(errno, EMFILE);
    free_one();
  }
  void free_one() {
    ::close(taken_.back());
    taken_.pop_back();
  }

 private:
  rlimit saved_{};
  std::vector<int> taken_;
};

// A blocking connect on loopback: when it returns, the connection waits in the server's backlog.
int connect_on_loopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// A connection that echoes one line through the server before the descriptors run out, kept
// open (its descriptors at both ends stay taken) until the caller closes it. Under UBSan, the
// first check of each polymorphic type tests memory through a pipe, which needs two
// descriptors; after this round every type the tests below use has been checked once.
Coro<int> warm_connection(int port) {
  const int fd = connect_on_loopback(port);
  co_await asyncio::sleep(0.001);
  co_await asyncio::get_running_loop().sock_sendall(fd, "warm\n");
  EXPECT_EQ(co_await asyncio::wait_for(asyncio::get_running_loop().sock_recv(fd, 100), 10.0),
            "warm\n");
  co_return fd;
}

// What a server reports through the loop's exception handler about its accepts: how many
// reports, and whether each carried the OSError for EMFILE and the listening socket. install()
// also makes one report of its own, which the loop delivers before the descriptors run out, so
// that UBSan has checked the types of a report once while it still has descriptors for it
// (warm_connection's comment).
struct AcceptReports {
  int count = 0;
  bool all_emfile_on_a_socket = true;
  void install(asyncio::EventLoop& loop) {
    loop.set_exception_handler([this](asyncio::EventLoop&, const asyncio::ExceptionContext& c) {
      int err = 0;
      try {
        if (c.exception) std::rethrow_exception(c.exception);
      } catch (const asyncio::OSError& e) {
        err = e.code().value();
      } catch (...) {
      }
      if (c.message.rfind("accept on port", 0) != 0) return;
      ++count;
      if (err != EMFILE || c.socket < 0) all_emfile_on_a_socket = false;
    });
    loop.call_exception_handler_soon(asyncio::ExceptionContext(
        "warm-up", std::make_exception_ptr(asyncio::OSError(EMFILE, "warm-up"))));
  }
};

// Out of descriptors, a server must not spin on an accept that fails at once every time it is
// tried: it reports the failure once and accepts again a second later (asyncio's
// ACCEPT_RETRY_DELAY), by when a descriptor may be free. Deterministic: the client's connect()
// on loopback has queued the connection before it returns, and the loop's next wait in the
// kernel runs the accept, which fails; the retry is a second away.
TEST(Streams, AServerOutOfDescriptorsReportsOnceAndAcceptsAgainLater) {
  std::string echoed;
  AcceptReports reports;
  run_test([&]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    reports.install(loop);
    FewDescriptors few;
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    const int warm = co_await warm_connection(server.port());
    few.use_up();
    const int client = connect_on_loopback(server.port());  // the last descriptor
    co_await asyncio::sleep(0.3);  // a spinning accept would fail thousands of times in this
    few.free_one();                // for the retry to take
    co_await loop.sock_sendall(client, "still there?\n");
    echoed = co_await asyncio::wait_for(loop.sock_recv(client, 100), 10.0);
    ::close(client);  // the handlers' EOF
    ::close(warm);
    server.close();
    co_await server.wait_closed();
  }());
  EXPECT_GE(reports.count, 1);
  EXPECT_LE(reports.count, 3) << "the failing accept was retried at once";
  EXPECT_TRUE(reports.all_emfile_on_a_socket);
  EXPECT_EQ(echoed, "still there?\n");
}

// Closed while it waits to accept again, the server stops at once: the retry is cancelled,
// wait_closed returns, and the connection left in the backlog goes with the listener.
TEST(Streams, AServerClosedWhileWaitingToAcceptAgainClosesAtOnce) {
  AcceptReports reports;
  run_test([&]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    reports.install(loop);
    std::optional<FewDescriptors> few;
    few.emplace();
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    const int warm = co_await warm_connection(server.port());
    few->use_up();
    const int client = connect_on_loopback(server.port());
    co_await asyncio::sleep(0.05);  // the accept has failed: the retry waits its second
    few.reset();                    // descriptors free again (the retry is not due for a second)
    server.close();
    ::close(warm);  // its handler's EOF
    EXPECT_FALSE(server.is_serving());
    // Before the retry was due (a second after the failure): an uncancelled retry would hold
    // wait_closed until then.
    co_await asyncio::wait_for(server.wait_closed(), 0.9);
    // The listener is closed, and with it the connection nobody accepted.
    EXPECT_THROW(co_await asyncio::wait_for(loop.sock_recv(client, 100), 5.0),
                 asyncio::ConnectionResetError);
    ::close(client);
  }());
  EXPECT_EQ(reports.count, 1);
  EXPECT_TRUE(reports.all_emfile_on_a_socket);
}

TEST(Streams, ServeForeverStopsWhenCancelled) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    auto serving = asyncio::create_task(server.serve_forever());
    co_await asyncio::sleep(0.005);
    serving.cancel();
    EXPECT_THROW(co_await serving, asyncio::CancelledError);
    EXPECT_FALSE(server.is_serving());
    co_await server.wait_closed();
    EXPECT_THROW(co_await asyncio::open_connection("127.0.0.1", server.port()),
                 asyncio::ConnectionRefusedError);
  }());
}

// A listening TCP socket on 127.0.0.1, on a port the kernel picked: {fd, port}.
std::pair<int, int> loopback_listener() {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(listener, 1), 0);
  EXPECT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  return {listener, ntohs(addr.sin_port)};
}

// loop.getaddrinfo / loop.getnameinfo: Python's tuples, answered from an executor thread, and an
// address that a plain socket call takes as it is.
TEST(LoopResolver, GetaddrinfoAnswersWithAddressesThatConnect) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const auto local = co_await loop.getaddrinfo("localhost", "80", AF_INET, SOCK_STREAM);
    EXPECT_FALSE(local.empty());
    for (const auto& a : local) {
      EXPECT_EQ(a.family, AF_INET);
      EXPECT_EQ(a.type, SOCK_STREAM);
      EXPECT_EQ(a.protocol, IPPROTO_TCP);
      EXPECT_EQ(a.host, "127.0.0.1");
      EXPECT_EQ(a.port, 80);
      EXPECT_EQ(a.address_len, sizeof(sockaddr_in));
      EXPECT_EQ(a.canonname, "");
    }
    // A service name, the canonical name, the passive wildcard.
    EXPECT_EQ((co_await loop.getaddrinfo("127.0.0.1", "http", AF_INET, SOCK_STREAM)).at(0).port,
              80);
    const auto canon =
        co_await loop.getaddrinfo("localhost", "", AF_INET, SOCK_STREAM, 0, AI_CANONNAME);
    EXPECT_EQ(canon.at(0).canonname, "localhost");
    const auto any = co_await loop.getaddrinfo("", "0", AF_INET6, SOCK_STREAM, 0, AI_PASSIVE);
    EXPECT_EQ(any.at(0).host, "::");
    EXPECT_EQ(any.at(0).family, AF_INET6);
    // Unspecified type: one answer per socket type, as getaddrinfo gives them.
    const auto all = co_await loop.getaddrinfo("127.0.0.1", "7");
    EXPECT_GE(all.size(), 2u);

    // The answer for a real listener's port connects as it is.
    const auto [listener, port] = loopback_listener();
    const auto there =
        co_await loop.getaddrinfo("localhost", std::to_string(port), AF_INET, SOCK_STREAM);
    const auto& a = there.at(0);
    const int fd = ::socket(a.family, a.type | SOCK_CLOEXEC, a.protocol);
    EXPECT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&a.address), a.address_len), 0)
        << std::strerror(errno);
    ::close(fd);
    ::close(listener);
  }());
}

TEST(LoopResolver, WhatDoesNotResolveIsANameResolutionErrorWithItsCode) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    try {
      co_await loop.getaddrinfo("no-such-host.invalid", "80");
      ADD_FAILURE() << "an unknown host must not resolve";
    } catch (const asyncio::NameResolutionError& e) {
      EXPECT_NE(std::string(e.what()).find("no-such-host.invalid"), std::string::npos) << e.what();
      EXPECT_NE(e.code(), 0);
    }
    try {
      co_await loop.getaddrinfo("127.0.0.1", "no-such-service");
      ADD_FAILURE() << "an unknown service must not resolve";
    } catch (const asyncio::NameResolutionError& e) {
      EXPECT_EQ(e.code(), EAI_SERVICE) << e.what();
    }
    EXPECT_THROW(co_await loop.getaddrinfo("", ""), asyncio::NameResolutionError);
  }());
}

TEST(LoopResolver, GetnameinfoNamesANumericAddressAndRefusesAName) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    auto numeric = co_await loop.getnameinfo("127.0.0.1", 80, NI_NUMERICHOST | NI_NUMERICSERV);
    EXPECT_EQ(numeric.first, "127.0.0.1");
    EXPECT_EQ(numeric.second, "80");
    auto named = co_await loop.getnameinfo("127.0.0.1", 80);
    EXPECT_EQ(named.first, "localhost");  // /etc/hosts
    EXPECT_EQ(named.second, "http");      // /etc/services
    auto v6 = co_await loop.getnameinfo("::1", 22, NI_NUMERICHOST);
    EXPECT_EQ(v6.first, "::1");
    EXPECT_EQ(v6.second, "ssh");
    try {
      co_await loop.getnameinfo("localhost", 80);
      ADD_FAILURE() << "getnameinfo takes a numeric address only";
    } catch (const asyncio::NameResolutionError& e) {
      EXPECT_NE(std::string(e.what()).find("not a numeric address"), std::string::npos) << e.what();
    }
    EXPECT_THROW(co_await loop.getnameinfo("127.0.0.1", 70000), std::invalid_argument);
  }());
}

TEST(SockMethods, RecvSendallAcceptConnect) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const int listener = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    EXPECT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::listen(listener, 8);
    socklen_t len = sizeof addr;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    const int port = ntohs(addr.sin6_port);
    auto accepted = asyncio::create_task(loop.sock_accept(listener));
    const int client = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    co_await loop.sock_connect(client, "::1", port);  // IPv6
    auto conn = co_await accepted;
    EXPECT_NE(conn.peer.find("[::1]:"), std::string::npos) << conn.peer;
    co_await loop.sock_sendall(client, std::string(300000, 'q'));
    std::size_t got = 0;
    while (got < 300000)
      got += (co_await loop.sock_recv(conn.fd, 65536)).size();
    EXPECT_EQ(got, 300000u);
    ::close(client);
    EXPECT_EQ(co_await loop.sock_recv(conn.fd, 10), "") << "EOF reads as empty";
    ::close(conn.fd);
    ::close(listener);
  }());
}

namespace {
// A pattern in which every offset is distinguishable for a long way: a prefix check catches a
// dropped, repeated or reordered chunk.
std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i)
    s[i] = static_cast<char>('a' + (i * 7 + i / 26) % 26);
  return s;
}
}  // namespace

TEST(SockMethods, SendallContinuesPartialSendsAndTheAwaitablesGoWhereACoroutineGoes) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    const int small = 4096;  // many partial sends: each completion queues the rest
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const std::string data = pattern(4 << 20);
    auto sending = asyncio::create_task(loop.sock_sendall(sv[0], data));
    std::string got;
    std::vector<char> buf(65536);
    while (got.size() < data.size()) {
      const std::size_t n = co_await loop.sock_recv_into(sv[1], buf.data(), buf.size());
      EXPECT_GT(n, 0u) << "end of stream after " << got.size() << " bytes";
      if (n == 0) break;
      got.append(buf.data(), n);
    }
    co_await sending;
    EXPECT_TRUE(got == data) << "4 MiB through sock_sendall arrived changed or out of order";

    // Converted to a Coro, in create_task, wait_for and gather.
    Coro<void> send = loop.sock_sendall(sv[0], "abcdefg");
    co_await std::move(send);
    Coro<std::string> two = loop.sock_recv(sv[1], 2);
    EXPECT_EQ(co_await std::move(two), "ab");
    EXPECT_EQ(co_await asyncio::create_task(loop.sock_recv(sv[1], 1)), "c");
    EXPECT_EQ(co_await asyncio::wait_for(loop.sock_recv(sv[1], 1), 5.0), "d");
    char three[3];
    auto [n] = co_await asyncio::gather(loop.sock_recv_into(sv[1], three, sizeof three));
    EXPECT_EQ(std::string(three, n), "efg");

    // Nothing to do: ready at once, no submission.
    EXPECT_EQ(co_await loop.sock_recv(sv[1], 0), "");
    EXPECT_EQ(co_await loop.sock_recv_into(sv[1], three, 0), 0u);
    co_await loop.sock_sendall(sv[0], "");

    // Each may be awaited once.
    auto recv_once = loop.sock_recv(sv[1], 1);
    auto recv_into_once = loop.sock_recv_into(sv[1], three, 1);
    auto send_once = loop.sock_sendall(sv[0], "hi");
    co_await send_once;
    EXPECT_EQ(co_await recv_once, "h");
    EXPECT_EQ(co_await recv_into_once, 1u);
    EXPECT_EQ(three[0], 'i');
    co_await expect_await_throws<asyncio::InvalidStateError>(recv_once, "a sock_recv awaited twice",
                                                             "awaited twice");
    co_await expect_await_throws<asyncio::InvalidStateError>(recv_into_once,
                                                             "a sock_recv_into awaited twice");
    co_await expect_await_throws<asyncio::InvalidStateError>(send_once,
                                                             "a sock_sendall awaited twice");

    // Errors name the problem: a bad descriptor, and a peer that has gone.
    co_await expect_await_throws<asyncio::OSError>(loop.sock_recv(-1, 10),
                                                   "sock_recv on fd -1 did not throw", "recv");
    ::close(sv[1]);
    co_await expect_await_throws<asyncio::BrokenPipeError>(
        loop.sock_sendall(sv[0], "x"), "sock_sendall to a closed peer did not throw", "send to");
    ::close(sv[0]);
  }());
}

TEST(SockMethods, ACancelledSendallLeavesAPrefixInOrder) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    const std::string data = pattern(8 << 20);  // far more than the socket buffers hold
    auto sending = asyncio::create_task(loop.sock_sendall(sv[0], data));
    for (int i = 0; i < 3; ++i)  // let it start and fill the buffers; nobody reads
      co_await asyncio::sleep(0);
    sending.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(
        sending, "a sendall blocked on a full socket was not cancelled");
    // What did arrive is the start of the data, in order, and nothing more comes.
    ::shutdown(sv[0], SHUT_WR);
    std::string got;
    std::vector<char> buf(65536);
    for (;;) {
      const std::size_t n = co_await loop.sock_recv_into(sv[1], buf.data(), buf.size());
      if (n == 0) break;
      got.append(buf.data(), n);
    }
    EXPECT_GT(got.size(), 0u);
    EXPECT_LT(got.size(), data.size());
    EXPECT_TRUE(data.compare(0, got.size(), got) == 0) << "the bytes sent are not a prefix";
    ::close(sv[0]);
    ::close(sv[1]);
  }());
}

// loop.sock_sendfile: splices through a pipe, from the page cache to the socket.
namespace {

// An unnamed regular file holding `data`; its descriptor, at position 0.
int file_holding(const std::string& data) {
  char name[] = "/tmp/gilio-sendfile-XXXXXX";
  const int fd = ::mkstemp(name);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::unlink(name);
  if (::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    throw std::runtime_error("writing the test file failed");
  ::lseek(fd, 0, SEEK_SET);
  return fd;
}

Coro<std::string> recv_to_eof(int fd) {
  auto& loop = asyncio::get_running_loop();
  std::string got;
  for (std::string chunk; !(chunk = co_await loop.sock_recv(fd, 1 << 20)).empty();)
    got += chunk;
  co_return got;
}

// A connected pair of non-blocking stream sockets: a socketpair, or TCP on loopback.
Coro<std::pair<int, int>> stream_pair(bool tcp) {
  if (!tcp) {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    co_return std::pair<int, int>(sv[0], sv[1]);
  }
  auto& loop = asyncio::get_running_loop();
  const auto [listener, port] = loopback_listener();
  const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  auto accepting = asyncio::create_task(loop.sock_accept(listener));
  co_await loop.sock_connect(client, "127.0.0.1", port);
  const int server = (co_await accepting).fd;
  ::close(listener);
  co_return std::pair<int, int>(client, server);
}

}  // namespace

TEST(SockMethods, SendfileSendsTheFileOrASliceAndLeavesThePositionAfterIt) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const std::string data = pattern((3 << 20) + 123);  // several pipes' worth
    const int file = file_holding(data);
    struct Case {
      std::uint64_t offset;
      std::optional<std::size_t> count;
      std::size_t expected;  // bytes sent from `offset`
    };
    const std::vector<Case> cases{{0, std::nullopt, data.size()},
                                  {1000, 5000, 5000},
                                  {(2 << 20) + 5, std::nullopt, data.size() - (2 << 20) - 5},
                                  {data.size() - 10, 100, 10},  // the end comes first
                                  {data.size(), std::nullopt, 0}};
    for (const bool tcp : {false, true}) {
      for (const Case& c : cases) {
        const auto [from, to] = co_await stream_pair(tcp);
        auto receiving = asyncio::create_task(recv_to_eof(to));
        const std::size_t sent = co_await loop.sock_sendfile(from, file, c.offset, c.count);
        ::shutdown(from, SHUT_WR);
        const std::string got = co_await receiving;
        EXPECT_EQ(sent, c.expected);
        EXPECT_TRUE(got == data.substr(c.offset, c.expected))
            << "tcp " << tcp << " at " << c.offset;
        EXPECT_EQ(::lseek(file, 0, SEEK_CUR), static_cast<off_t>(c.offset + c.expected));
        ::close(from);
        ::close(to);
      }
    }
    ::close(file);
  }());
}

TEST(SockMethods, SendfileRefusesWhatItCannotSendWithAClearError) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const int file = file_holding("some bytes");
    const auto [from, to] = co_await stream_pair(false);
    const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    co_await expect_await_throws<std::invalid_argument>(
        loop.sock_sendfile(udp, file), "sent a file on a datagram socket",
        "only SOCK_STREAM type sockets are supported");
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    co_await expect_await_throws<asyncio::OSError>(loop.sock_sendfile(from, p[0], 10),
                                                   "sent from an offset in a pipe",
                                                   "offset 10 in descriptor");
    const int dir = ::open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    co_await expect_await_throws<asyncio::IsADirectoryError>(loop.sock_sendfile(from, dir),
                                                             "sent a directory", "is a directory");
    co_await expect_await_throws<std::invalid_argument>(
        loop.sock_sendfile(from, file, 0, 0), "sent 0 bytes", "count must be a positive integer");
    ::close(to);  // the peer is gone
    co_await expect_await_throws<asyncio::ConnectionError>(
        loop.sock_sendfile(from, file), "sent a file to a closed peer", "sock_sendfile to");
    for (const int fd : {file, from, udp, p[0], p[1], dir})
      ::close(fd);
  }());
}

TEST(SockMethods, ACancelPendingAtARecvLosesNoByte) {
  // The task cancels itself while it runs, then receives bytes already waiting: the recv is
  // interrupted before it takes them, or takes them and returns them (the CancelledError comes
  // at the next wait). Before a pending cancel interrupted the new wait, the recv ran, and its
  // bytes were dropped for the CancelledError delivered when it completed.
  run_test([]() -> Coro<void> {
    for (int round = 0; round < 20; ++round) {
      const auto [a, b] = co_await stream_pair(false);
      EXPECT_EQ(::write(a, "abc", 3), 3);
      std::string taken;
      auto t = asyncio::create_task([](int fd, std::string& taken) -> Coro<void> {
        asyncio::current_task().cancel();
        taken = co_await asyncio::get_running_loop().sock_recv(fd, 3);
        co_await asyncio::sleep(0);
      }(b, taken));
      co_await gilio::testing::expect_await_throws<asyncio::CancelledError>(
          t, "the pending cancel never came");
      ::close(a);
      const std::string left = co_await recv_to_eof(b);
      EXPECT_EQ(taken + left, "abc") << "round " << round;
      ::close(b);
    }
  }());
}

TEST(SockMethods, ACancelledSendfileLeavesThePositionAfterWhatWasSent) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const std::string data = pattern(32 << 20);  // far more than the socket buffers hold
    const int file = file_holding(data);
    const auto [from, to] = co_await stream_pair(true);
    auto sending = asyncio::create_task(loop.sock_sendfile(from, file));
    std::string got = co_await loop.sock_recv(to, 1);  // it has begun; now nobody reads
    sending.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(
        sending, "a sendfile blocked on a full socket was not cancelled");
    const off_t position = ::lseek(file, 0, SEEK_CUR);
    ::shutdown(from, SHUT_WR);
    got += co_await recv_to_eof(to);
    // Exactly what the position says went, in order: nothing lost from the pipe, nothing twice.
    EXPECT_EQ(static_cast<off_t>(got.size()), position);
    EXPECT_LT(got.size(), data.size());
    EXPECT_TRUE(data.compare(0, got.size(), got) == 0) << "the bytes sent are not a prefix";
    for (const int fd : {file, from, to})
      ::close(fd);
  }());
}

// Writes `data` into the pipe `fd` (non-blocking) as the pipe takes it, then closes it: the
// writer at the other end of a sendfile from a pipe.
Coro<void> feed_pipe(int fd, std::string data) {
  for (std::size_t at = 0; at < data.size();) {
    const ssize_t n = ::write(fd, data.data() + at, data.size() - at);
    if (n > 0) {
      at += static_cast<std::size_t>(n);
    } else {
      EXPECT_EQ(errno, EAGAIN);
      co_await asyncio::sleep(0.001);  // full: the sendfile drains it meanwhile
    }
  }
  ::close(fd);
}

// A pipe has no position: sock_sendfile reads it from where it is, `count` bytes or up to its
// EOF, as asyncio's read-and-send fallback does. Blocking or not, the bytes go as the writer
// puts them in.
TEST(SockMethods, SendfileFromAPipeSendsWhatComesUntilItsEnd) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    for (const bool nonblocking : {false, true}) {
      int p[2];
      EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
      if (nonblocking) ::fcntl(p[0], F_SETFL, O_NONBLOCK);
      ::fcntl(p[1], F_SETFL, O_NONBLOCK);
      const auto [from, to] = co_await stream_pair(true);
      auto receiving = asyncio::create_task(recv_to_eof(to));
      EXPECT_EQ(::write(p[1], "0123456789", 10), 10);
      EXPECT_EQ(co_await loop.sock_sendfile(from, p[0], 0, 4), 4u);
      char rest[6];
      EXPECT_EQ(::read(p[0], rest, 6), 6) << "the rest stays in the pipe";
      EXPECT_EQ(std::string(rest, 6), "456789");
      const std::string data = pattern((2 << 20) + 333);  // far more than a pipe holds
      auto feeding = asyncio::create_task(feed_pipe(p[1], data));
      EXPECT_EQ(co_await loop.sock_sendfile(from, p[0]), data.size()) << nonblocking;
      co_await feeding;
      ::shutdown(from, SHUT_WR);
      const std::string got = co_await receiving;
      EXPECT_TRUE(got == "0123" + data) << got.size() << (nonblocking ? " nonblocking" : "");
      for (const int fd : {p[0], from, to})
        ::close(fd);
    }
  }());
}

TEST(Streams, AServerAndASendLeftOpenAreCleanedUpAtLoopClose) {
  // Neither the server nor the connection is closed; the peer never reads, so a 16 MiB send is
  // still in flight when run() ends. Loop close must cancel the multishot accept and the send
  // and run their completions, so nothing leaks (LeakSanitizer, under ASan) and nothing hangs.
  run_test([]() -> Coro<void> {
    asyncio::ClientConnected idle = [](StreamReader, StreamWriter) -> Coro<void> {
      co_await asyncio::sleep(3600);
    };
    auto server = co_await asyncio::start_server(idle, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write(std::string(16 << 20, 'x'));
    co_await asyncio::sleep(0.01);
    EXPECT_GT(w.buffered(), 0u);
  }());
}

// The loop's ring lets one thread in (io_uring's SINGLE_ISSUER, which DEFER_TASKRUN needs):
// the thread that first runs the loop. A loop built on one thread runs on another; a loop with
// nothing in flight moves to a new thread on a fresh ring; one with I/O in flight cannot move,
// and says so.
namespace {

// One line echoed through `server` over a new connection: connect, send and a recv through the
// loop's buffer ring, on whichever thread runs the loop; then the connection and server close.
Coro<void> echo_through(asyncio::Server& server, std::string text) {
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
  w.write(text + "\n");
  co_await w.drain();
  EXPECT_EQ(co_await r.readline(), text + "\n");
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}

// The same over a fresh server (its multishot accept included).
Coro<void> echo_once(std::string text) {
  auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
  co_await echo_through(server, std::move(text));
}

template <class F>
void on_new_thread(F fn) {
  std::exception_ptr error;
  std::thread t([&] {
    try {
      fn();
    } catch (...) {
      error = std::current_exception();
    }
  });
  t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

TEST(LoopThreads, ALoopRunsOnOneThreadAfterAnother) {
  asyncio::EventLoop loop;  // built here, first run elsewhere
  on_new_thread([&] { loop.run_until_complete(asyncio::wait_for(echo_once("first"), 20)); });
  on_new_thread([&] { loop.run_until_complete(asyncio::wait_for(echo_once("second"), 20)); });
  loop.run_until_complete(asyncio::wait_for(echo_once("third"), 20));
  loop.close();
}

// A task parked while its loop stops, and resumed when the loop runs again on another thread,
// runs there as itself: the running task and the trampoline are the thread's (thread-locals set
// by each step), not its frames', so nothing stale comes along from the old thread.
namespace {
Coro<int> echo_after_a_sleep(int k) {
  co_await asyncio::sleep(0.0005);
  co_return k;
}
Coro<void> counting_steps(int& steps, int& wrong) {
  const asyncio::Task<> me = asyncio::current_task();
  for (;;) {
    co_await asyncio::sleep(0.0002);
    const int v = co_await echo_after_a_sleep(steps);
    if (v != steps || !(asyncio::current_task() == me)) ++wrong;
    ++steps;
  }
}
}  // namespace

TEST(LoopThreads, ATaskParkedWhileItsLoopMovesResumesAsItselfOnTheNewThread) {
  asyncio::EventLoop loop;
  int steps = 0;
  int wrong = 0;
  asyncio::Task<void> background;
  on_new_thread([&] {
    loop.run_until_complete([&]() -> Coro<void> {
      background = asyncio::create_task(counting_steps(steps, wrong));
      co_await asyncio::sleep(0.02);
    }());
  });
  for (int round = 0; round < 4; ++round) {
    const int before = steps;
    // Its timers are due long before this one, which ends the run: it steps in every run.
    on_new_thread(
        [&] { loop.run_until_complete([]() -> Coro<void> { co_await asyncio::sleep(0.02); }()); });
    EXPECT_GT(steps, before) << "the parked task ran on the loop's new thread";
  }
  EXPECT_EQ(wrong, 0);
  background.cancel();
  loop.close();
}

TEST(LoopThreads, ALoopWithIoInFlightCannotMoveToAnotherThread) {
  asyncio::EventLoop loop;
  // The server's multishot accept stays in flight after this returns.
  asyncio::Server server =
      loop.run_until_complete(asyncio::start_server(echo_lines, "127.0.0.1", 0));
  std::string error;
  on_new_thread([&] {
    try {
      loop.run_until_complete([]() -> Coro<void> { co_await asyncio::sleep(0); }());
    } catch (const std::runtime_error& e) {
      error = e.what();
    }
  });
  EXPECT_NE(error.find("run (and close) an event loop on one thread"), std::string::npos) << error;
  // The thread that owns the ring carries on: the server still serves, then closes.
  loop.run_until_complete(asyncio::wait_for(echo_through(server, "still here"), 20));
  loop.close();
}

// The kernel posts a finished receive's completion only when the loop asks for completions
// (DEFER_TASKRUN); a loop that always has a task ready never sleeps, so its non-blocking
// submit must collect them — else every read below would wait for ever (and time out).
Coro<void> pings_while_the_loop_is_never_idle() {
  auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
  bool done = false;
  long spins = 0;
  auto spinner = asyncio::create_task([](bool& d, long& n) -> Coro<void> {
    while (!d) {
      co_await asyncio::sleep(0);
      ++n;
    }
  }(done, spins));
  for (int i = 0; i < 200; ++i) {
    w.write("ping " + std::to_string(i) + "\n");
    co_await w.drain();
    EXPECT_EQ(co_await r.readline(), "ping " + std::to_string(i) + "\n");
  }
  done = true;
  co_await spinner;
  EXPECT_GT(spins, 200);  // the spinner really kept the loop busy throughout
  w.close();
  co_await w.wait_closed();
  server.close();
  co_await server.wait_closed();
}

TEST(Streams, ReadsCompleteWhileTheLoopIsNeverIdle) {
  run_test(pings_while_the_loop_is_never_idle());
}

// The ring setups of older kernels (COOP_TASKRUN, 5.19+; none), which the backend falls back to
// when the kernel refuses DEFER_TASKRUN: streams work, a busy loop still gets its completions,
// and any thread may run the loop, even with I/O in flight (no single issuer).
TEST(LoopThreads, TheFallbackRingSetupsWork) {
  for (const char* setup : {"coop", "plain"}) {
    SCOPED_TRACE(setup);
    ASSERT_EQ(::setenv("GILIO_URING_SETUP", setup, 1), 0);
    asyncio::EventLoop loop;
    ::unsetenv("GILIO_URING_SETUP");
    loop.run_until_complete(asyncio::wait_for(pings_while_the_loop_is_never_idle(), 20));
    asyncio::Server server =
        loop.run_until_complete(asyncio::start_server(echo_lines, "127.0.0.1", 0));
    on_new_thread(
        [&] { loop.run_until_complete(asyncio::wait_for(echo_through(server, "moved"), 20)); });
    loop.close();
  }
}

// ---- Unix domain sockets (asyncio.open_unix_connection / start_unix_server) ----

namespace {

// A fresh directory for socket files, removed with what is left in it.
class TempDir {
 public:
  TempDir() {
    char name[] = "/tmp/gilio-unix-XXXXXX";
    if (::mkdtemp(name) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = name;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool is_socket_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

TEST(UnixStreams, EchoWithReadlineAndTheSocketFileGoesWithTheServer) {
  TempDir dir;
  const std::string path = dir.file("echo.sock");
  run_test([&path]() -> Coro<void> {
    auto server = co_await asyncio::start_unix_server(echo_lines, path);
    EXPECT_TRUE(is_socket_file(path));
    EXPECT_TRUE(server.is_serving());
    EXPECT_EQ(server.port(), 0);
    auto [r, w] = co_await asyncio::open_unix_connection(path);
    EXPECT_EQ(w.peername(), path);
    for (int i = 0; i < 10; ++i) {
      w.write("line " + std::to_string(i) + "\n");
      co_await w.drain();
      EXPECT_EQ(co_await r.readline(), "line " + std::to_string(i) + "\n");
    }
    w.write_eof();
    EXPECT_EQ(co_await r.read(), "");  // the handler saw EOF and closed its side
    w.close();
    co_await w.wait_closed();
    server.close();
    EXPECT_FALSE(std::filesystem::exists(path)) << "close() leaves the socket file behind";
    co_await server.wait_closed();
  }());
}

// A server that is never closed still takes its socket file with it: when its loop closes and
// the server's last reference goes (also the path of a start that failed after its bind).
TEST(UnixStreams, AServerNeverClosedLeavesNoSocketFileOnceItsLoopCloses) {
  TempDir dir;
  const std::string path = dir.file("forgotten.sock");
  run_test([&path]() -> Coro<void> {
    auto server = co_await asyncio::start_unix_server(echo_lines, path);
    EXPECT_TRUE(is_socket_file(path));
  }());
  EXPECT_FALSE(std::filesystem::exists(path)) << "the socket file outlived its server";
}

// As asyncio: a socket file left by a server that died is replaced; a file of another kind is
// not touched, and the bind fails with an error that names the path.
TEST(UnixStreams, AStaleSocketFileIsReplacedAndOtherFilesAreNot) {
  TempDir dir;
  const std::string stale = dir.file("stale.sock"), plain = dir.file("plain");
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, stale.c_str(), stale.size() + 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // the file stays, and nothing listens on it
  }
  std::ofstream(plain) << "not a socket";
  run_test([&]() -> Coro<void> {
    try {
      co_await asyncio::open_unix_connection(stale);
      ADD_FAILURE() << "connected to a socket nobody listens on";
    } catch (const asyncio::ConnectionRefusedError& e) {
      EXPECT_NE(std::string(e.what()).find(stale), std::string::npos) << e.what();
    }
    auto server = co_await asyncio::start_unix_server(echo_lines, stale);
    auto [r, w] = co_await asyncio::open_unix_connection(stale);
    w.write("again\n");
    EXPECT_EQ(co_await r.readline(), "again\n");
    w.close();
    try {
      co_await asyncio::start_unix_server(echo_lines, plain);
      ADD_FAILURE() << "a server bound over a regular file";
    } catch (const asyncio::OSError& e) {
      EXPECT_EQ(e.code().value(), EADDRINUSE);
      EXPECT_NE(std::string(e.what()).find(plain), std::string::npos) << e.what();
    }
    std::ifstream kept(plain);
    std::string text;
    std::getline(kept, text);
    EXPECT_EQ(text, "not a socket");
    server.close();
    co_await server.wait_closed();
  }());
}

TEST(UnixStreams, ErrorsNameTheProblem) {
  TempDir dir;
  const std::string missing = dir.file("missing.sock");
  run_test([&]() -> Coro<void> {
    try {
      co_await asyncio::open_unix_connection(missing);
      ADD_FAILURE() << "connected to a path with no socket";
    } catch (const asyncio::FileNotFoundError& e) {
      EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
    }
    const std::string too_long = "/tmp/" + std::string(200, 'x');
    try {
      co_await asyncio::open_unix_connection(too_long);
      ADD_FAILURE() << "a 205-byte path was accepted";
    } catch (const asyncio::OSError& e) {
      EXPECT_EQ(e.code().value(), ENAMETOOLONG);
      EXPECT_NE(std::string(e.what()).find("too long"), std::string::npos) << e.what();
    }
    EXPECT_THROW(co_await asyncio::start_unix_server(echo_lines, too_long), asyncio::OSError);
    EXPECT_THROW(co_await asyncio::open_unix_connection(""), std::invalid_argument);
    EXPECT_THROW(co_await asyncio::start_unix_server(echo_lines, std::string("a\0b", 3)),
                 std::invalid_argument);
    EXPECT_THROW(co_await asyncio::start_unix_server(echo_lines, dir.file("no-dir/x.sock")),
                 asyncio::FileNotFoundError);
  }());
}

// Linux's abstract namespace: a name with a leading NUL, no file at all.
TEST(UnixStreams, AbstractNamesWork) {
  const std::string name = std::string(1, '\0') + "gilio-test-" + std::to_string(::getpid());
  run_test([&name]() -> Coro<void> {
    std::string client_seen_as;
    asyncio::ClientConnected handler = [&client_seen_as](StreamReader r, StreamWriter w) {
      client_seen_as = w.peername();
      return echo_lines(std::move(r), std::move(w));
    };
    auto server = co_await asyncio::start_unix_server(handler, name);
    auto [r, w] = co_await asyncio::open_unix_connection(name);
    EXPECT_EQ(w.peername(), "@" + name.substr(1));
    w.write("abstract\n");
    EXPECT_EQ(co_await r.readline(), "abstract\n");
    EXPECT_EQ(client_seen_as, "(unnamed unix socket)");  // a client socket that bound no name
    w.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// A thousand connections over one socket file, each exchanging ten messages.
TEST(UnixStreams, ManyConnectionsAtOnce) {
  raise_fd_limit();
  TempDir dir;
  const std::string path = dir.file("many.sock");
  run_test([&path]() -> Coro<void> {
    auto server = co_await asyncio::start_unix_server(echo_lines, path);
    auto client = [&path](int id) -> Coro<int> {
      auto [r, w] = co_await asyncio::open_unix_connection(path);
      int ok = 0;
      for (int i = 0; i < 10; ++i) {
        const std::string line = std::to_string(id) + ":" + std::to_string(i) + "\n";
        w.write(line);
        ok += co_await r.readline() == line;
      }
      w.close();
      co_await w.wait_closed();
      co_return ok;
    };
    std::vector<asyncio::Task<int>> clients;
    for (int id = 0; id < 1000; ++id)
      clients.push_back(asyncio::create_task(client(id)));
    int ok = 0;
    for (int n : co_await asyncio::gather(std::move(clients)))
      ok += n;
    EXPECT_EQ(ok, 10000);
    server.close();
    co_await server.wait_closed();
  }());
}

// ---- datagrams: the loop's sock_recvfrom / sock_sendto ----

namespace {

// A UDP socket bound to the loopback address of `family` on a free port; returns {fd, port}.
std::pair<int, int> udp_socket(int family) {
  const int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(ss);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    len = sizeof a;
  } else {
    auto& a = reinterpret_cast<sockaddr_in&>(ss);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof a;
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) throw std::runtime_error("bind");
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  const int port = family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6&>(ss).sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in&>(ss).sin_port);
  return {fd, port};
}

// Answers every datagram with "echo:" + it, to whoever sent it, until it gets "stop".
Coro<void> udp_echo(int fd) {
  auto& loop = asyncio::get_running_loop();
  for (;;) {
    auto d = co_await loop.sock_recvfrom(fd, 2048);
    if (d.data == "stop") co_return;
    co_await loop.sock_sendto(fd, "echo:" + d.data, d.host, d.port);
  }
}

}  // namespace

TEST(Datagrams, EchoOverIpv4AndIpv6KeepsEachMessageWhole) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    for (int family : {AF_INET, AF_INET6}) {
      const auto [server, port] = udp_socket(family);
      const auto [client, client_port] = udp_socket(family);
      auto echo = asyncio::create_task(udp_echo(server));
      const std::string host = family == AF_INET6 ? "::1" : "127.0.0.1";
      for (int i = 0; i < 50; ++i) {
        const std::string message(static_cast<std::size_t>(1 + i * 20),
                                  static_cast<char>('a' + i % 26));
        EXPECT_EQ(co_await loop.sock_sendto(client, message, host, port), message.size());
        auto reply = co_await loop.sock_recvfrom(client, 4096);
        EXPECT_EQ(reply.data, "echo:" + message);
        EXPECT_EQ(reply.host, host);
        EXPECT_EQ(reply.port, port);
      }
      // IPv4: a name, resolved (here "localhost" has no IPv6 address in /etc/hosts). Named
      // first: g++ 12 frees a temporary made by ?: inside a co_await expression twice.
      const std::string stop_to = family == AF_INET ? std::string("localhost") : host;
      co_await loop.sock_sendto(client, "stop", stop_to, port);
      co_await echo;
      ::close(client);
      ::close(server);
    }
  }());
}

// A datagram longer than the buffer: the front of it, the rest dropped — as recvfrom does.
TEST(Datagrams, ALongDatagramIsCutToTheBuffer) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const auto [a, a_port] = udp_socket(AF_INET);
    const auto [b, b_port] = udp_socket(AF_INET);
    co_await loop.sock_sendto(a, "0123456789", "127.0.0.1", b_port);
    co_await loop.sock_sendto(a, "next", "127.0.0.1", b_port);
    auto first = co_await loop.sock_recvfrom(b, 4);
    EXPECT_EQ(first.data, "0123");
    EXPECT_EQ(first.port, a_port);
    EXPECT_EQ((co_await loop.sock_recvfrom(b, 100)).data, "next");
    ::close(a);
    ::close(b);
  }());
}

// sock_recvfrom_into (asyncio 3.11): the datagram lands in the caller's buffer, cut to its size
// as recvfrom cuts it, with its sender.
TEST(Datagrams, RecvfromIntoFillsTheCallersBufferAndNamesTheSender) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const auto [a, a_port] = udp_socket(AF_INET);
    const auto [b, b_port] = udp_socket(AF_INET);
    co_await loop.sock_sendto(a, "0123456789", "127.0.0.1", b_port);
    co_await loop.sock_sendto(a, "whole", "127.0.0.1", b_port);
    char buf[8];
    std::memset(buf, '.', sizeof buf);
    auto cut = co_await loop.sock_recvfrom_into(b, buf, 4);
    EXPECT_EQ(cut.nbytes, 4u);
    EXPECT_EQ(std::string(buf, sizeof buf), "0123....");  // nothing past nbytes is written
    EXPECT_EQ(cut.host, "127.0.0.1");
    EXPECT_EQ(cut.port, a_port);
    auto whole = co_await loop.sock_recvfrom_into(b, buf, sizeof buf);
    EXPECT_EQ(std::string(buf, whole.nbytes), "whole");
    ::close(a);
    ::close(b);
  }());
}

// Cancelling a task blocked in sock_recvfrom cancels the receive in the kernel (no byte is
// written into a frame that is gone); the socket works afterwards.
TEST(Datagrams, ABlockedReceiveIsCancelledCleanly) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const auto [a, a_port] = udp_socket(AF_INET);
    const auto [b, b_port] = udp_socket(AF_INET);
    std::vector<asyncio::Task<asyncio::EventLoop::Datagram>> waiting;
    for (int i = 0; i < 100; ++i)
      waiting.push_back(asyncio::create_task(loop.sock_recvfrom(b, 64)));
    co_await asyncio::sleep(0);
    for (auto& t : waiting)
      t.cancel();
    for (auto& t : waiting)
      EXPECT_THROW(co_await t, asyncio::CancelledError);
    co_await loop.sock_sendto(a, "after", "127.0.0.1", b_port);
    EXPECT_EQ((co_await loop.sock_recvfrom(b, 64)).data, "after");
    ::close(a);
    ::close(b);
  }());
}

// Unix datagram sockets: the peer is a path (port 0), as sock_recvfrom gives it back — "" for a
// sender that never bound its socket, which cannot be answered.
TEST(Datagrams, UnixSocketsAreAddressedByTheirPaths) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const std::string base = "/tmp/gilio-sock-dgram-" + std::to_string(::getpid());
    auto bound = [](const std::string& path) {
      const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_un un{};
      un.sun_family = AF_UNIX;
      std::memcpy(un.sun_path, path.data(), path.size());
      ::unlink(path.c_str());
      EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&un), sizeof un), 0) << path;
      return fd;
    };
    const int a = bound(base + "-a"), b = bound(base + "-b");
    EXPECT_EQ(co_await loop.sock_sendto(a, "ping", base + "-b", 0), 4u);
    const auto got = co_await loop.sock_recvfrom(b, 64);
    EXPECT_EQ(got.data, "ping");
    EXPECT_EQ(got.host, base + "-a");
    EXPECT_EQ(got.port, 0);
    co_await loop.sock_sendto(b, "pong", got.host, got.port);  // answered where it came from
    EXPECT_EQ((co_await loop.sock_recvfrom(a, 64)).data, "pong");
    const int unbound = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    co_await loop.sock_sendto(unbound, "anonymous", base + "-b", 0);
    EXPECT_EQ((co_await loop.sock_recvfrom(b, 64)).host, "");
    EXPECT_THROW(co_await loop.sock_sendto(a, "x", base + "-b", 9), std::invalid_argument);
    EXPECT_THROW(co_await loop.sock_sendto(a, "x", base + "-nobody", 0), asyncio::OSError);
    for (const int fd : {a, b, unbound})
      ::close(fd);
    ::unlink((base + "-a").c_str());
    ::unlink((base + "-b").c_str());
  }());
}

TEST(Datagrams, ErrorsNameTheProblem) {
  run_test([]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    const auto [v4, v4_port] = udp_socket(AF_INET);
    try {
      co_await loop.sock_sendto(v4, "x", "::1", 9);  // an IPv6 address from an IPv4 socket
      ADD_FAILURE() << "an IPv4 socket sent to an IPv6 address";
    } catch (const asyncio::OSError& e) {
      EXPECT_NE(std::string(e.what()).find("sendto ::1:9"), std::string::npos) << e.what();
    }
    try {
      co_await loop.sock_sendto(v4, std::string(70000, 'x'), "127.0.0.1", v4_port);
      ADD_FAILURE() << "a 70,000-byte datagram was sent";
    } catch (const asyncio::OSError& e) {
      EXPECT_EQ(e.code().value(), EMSGSIZE);
    }
    EXPECT_THROW(co_await loop.sock_sendto(v4, "x", "no-such-host.invalid", 9),
                 asyncio::NameResolutionError);
    EXPECT_THROW(co_await loop.sock_recvfrom(-1, 10), asyncio::OSError);
    ::close(v4);
  }());
}

// A stream is its loop's: a task of another loop (another thread, in a real program), or code
// running after its loop has ended, gets std::runtime_error, not a ring that is not its own.
namespace {

struct Kept {
  std::optional<asyncio::Server> server;
  StreamReader reader;
  StreamWriter writer;
};

Coro<void> connect_and_keep(Kept& k) {
  k.server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", k.server->port());
  k.reader = r;
  k.writer = w;
}

Coro<void> use_from_another_loop(Kept& k) {
  co_await expect_await_throws<std::runtime_error>(
      k.reader.readline(), "read a stream of another loop",
      "StreamReader.readline: the stream belongs to a different event loop");
  EXPECT_THROW(k.writer.write("x\n"), std::runtime_error);
  co_await expect_await_throws<std::runtime_error>(
      k.writer.drain(), "drained a stream of another loop",
      "StreamWriter.drain: the stream belongs to a different event loop");
  co_await expect_await_throws<std::runtime_error>(
      k.writer.wait_closed(), "waited for a stream of another loop", "different event loop");
}

Coro<void> echo_once_and_close(Kept& k) {
  k.writer.write("ping\n");
  EXPECT_EQ(co_await k.reader.readline(), "ping\n");
  k.writer.close();
  co_await k.writer.wait_closed();
  k.server->close();
  co_await k.server->wait_closed();
}

std::string write_error(StreamWriter& w) {
  try {
    w.write("late\n");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Streams, AStreamIsUsedOnlyOnItsOwnLoop) {
  asyncio::EventLoop a;
  asyncio::EventLoop b;
  Kept k;
  a.run_until_complete(asyncio::wait_for(connect_and_keep(k), 20.0));
  b.run_until_complete(asyncio::wait_for(use_from_another_loop(k), 20.0));
  EXPECT_EQ(write_error(k.writer),
            "StreamWriter.write: no running event loop (a stream is used on the loop that opened "
            "it, while that loop runs)");
  a.run_until_complete(asyncio::wait_for(echo_once_and_close(k), 20.0));  // unharmed
}

TEST(Streams, AStreamOutlivingItsLoopIsAClearErrorNotARingGone) {
  Kept k;
  run_test(connect_and_keep(k));  // the loop is gone after this; the socket is still open
  EXPECT_NE(write_error(k.writer).find("no running event loop"), std::string::npos);
  EXPECT_FALSE(k.writer.is_closing());
  k.writer.close();  // closing needs no loop
  EXPECT_TRUE(k.writer.is_closing());
  k.server.reset();
}

// asyncio 3.13's Server.close_clients() and abort_clients(), and StreamWriter::abort() (asyncio's
// writer.transport.abort()).
namespace {

// Answers one line, then reads until the client's EOF (or until the server closes it).
Coro<void> greet_then_wait(StreamReader r, StreamWriter w) {
  w.write(co_await r.readline());
  co_await r.read();
}

Coro<std::pair<StreamReader, StreamWriter>> greeted_client(int port) {
  auto [r, w] = co_await asyncio::open_connection("127.0.0.1", port);
  w.write("hi\n");
  EXPECT_EQ(co_await r.readline(), "hi\n");  // its handler is running now
  co_return std::pair<StreamReader, StreamWriter>(r, w);
}

// Writes `n` bytes to a client that does not read, so that most of them wait in the buffer.
Coro<void> flood(StreamReader, StreamWriter w, std::size_t n, asyncio::Event& written) {
  w.write(std::string(n, 'x'));
  written.set();
  try {
    co_await w.drain();
  } catch (const asyncio::ConnectionError&) {  // aborted under it
  } catch (const std::runtime_error&) {
  }
}

}  // namespace

TEST(Server, CloseClientsClosesEveryConnectionItServes) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(greet_then_wait, "127.0.0.1", 0);
    std::vector<std::pair<StreamReader, StreamWriter>> clients;
    for (int i = 0; i < 3; ++i)
      clients.push_back(co_await greeted_client(server.port()));
    server.close();
    server.close_clients();
    for (auto& [r, w] : clients) {
      EXPECT_EQ(co_await r.read(), "");  // EOF: the server's side closed
      w.close();
    }
    co_await server.wait_closed();  // every handler saw its connection end
  }());
}

TEST(Server, CloseClientsFlushesAndAbortClientsDoesNot) {
  run_test([]() -> Coro<void> {
    constexpr std::size_t kBytes = 32 << 20;  // more than the kernel's socket buffers hold
    for (const bool abort : {false, true}) {
      asyncio::Event written;
      auto handler = [&written](StreamReader r, StreamWriter w) {
        return flood(std::move(r), std::move(w), kBytes, written);
      };
      auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
      co_await written.wait();
      server.close();
      abort ? server.abort_clients() : server.close_clients();
      std::size_t got = 0;
      try {
        for (std::string chunk; !(chunk = co_await r.read(1 << 20)).empty();)
          got += chunk.size();
      } catch (const asyncio::ConnectionResetError&) {  // an abort may reset
      }
      if (abort) {
        EXPECT_LT(got, kBytes);  // what was buffered is gone
      } else {
        EXPECT_EQ(got, kBytes);  // close() sends what is buffered first
      }
      w.close();
      co_await server.wait_closed();
    }
  }());
}

TEST(Streams, AbortClosesAtOnceAndDropsWhatIsBuffered) {
  run_test([]() -> Coro<void> {
    asyncio::Event written;
    auto handler = [&written](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await written.wait();
      co_await r.read();  // reads nothing until the client aborts
      w.close();
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write(std::string(32 << 20, 'x'));
    written.set();
    EXPECT_GT(w.buffered(), 0u);
    w.abort();
    EXPECT_TRUE(w.is_closing());
    co_await w.wait_closed();
    EXPECT_EQ(w.buffered(), 0u);
    EXPECT_THROW(w.write("more"), std::runtime_error);
    w.abort();  // again: nothing
    server.close();
    co_await server.wait_closed();
  }());
}

// A client handler that throws is reported through the loop's exception handler (asyncio's
// "Unhandled exception in client_connected_cb"), and its connection is closed; the server goes
// on serving.
TEST(Server, AHandlerThatThrowsIsReportedAndItsConnectionClosed) {
  gilio::testing::Reports reports;
  run_test([&]() -> Coro<void> {
    reports.install(asyncio::get_running_loop());
    auto handler = [](StreamReader r, StreamWriter) -> Coro<void> {
      const std::string line = co_await r.readline();
      throw std::invalid_argument("cannot serve " + line.substr(0, line.size() - 1));
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    for (const char* ask : {"soup\n", "tea\n"}) {
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
      w.write(ask);
      EXPECT_EQ(co_await asyncio::wait_for(r.read(), 10.0), "");  // closed, nothing sent
      w.close();
    }
    server.close();
    co_await server.wait_closed();
  }());
  ASSERT_EQ(reports.seen.size(), 2u);
  for (const asyncio::ExceptionContext& c : reports.seen)
    EXPECT_EQ(c.message, "Unhandled exception in client_connected_cb");
  EXPECT_EQ(gilio::testing::what_of(reports.seen[0]), "cannot serve soup");
  EXPECT_EQ(gilio::testing::what_of(reports.seen[1]), "cannot serve tea");
}

// ---- sockets the caller made (asyncio's sock= argument) ----

namespace {
bool nonblocking(int fd) {
  return (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}
}  // namespace

// Streams over both ends of a socketpair made non-blocking, as a Python caller's would be: they
// talk both ways, each end is made blocking for io_uring, and closing a writer ends the other's
// reading.
TEST(Streams, OpenConnectionOverASocketTheCallerMade) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
  run_test([&sv]() -> Coro<void> {
    auto [ra, wa] = co_await asyncio::open_connection(asyncio::Socket{sv[0]});
    auto [rb, wb] = co_await asyncio::open_connection(asyncio::Socket{sv[1]}, /*limit=*/1024);
    EXPECT_FALSE(nonblocking(sv[0]));
    EXPECT_FALSE(nonblocking(sv[1]));
    EXPECT_EQ(rb.limit(), 1024u);
    wa.write("ping\n");
    EXPECT_EQ(co_await asyncio::wait_for(rb.readline(), 10.0), "ping\n");
    wb.write("pong\n");
    EXPECT_EQ(co_await asyncio::wait_for(ra.readline(), 10.0), "pong\n");
    wa.close();
    co_await wa.wait_closed();
    EXPECT_EQ(co_await asyncio::wait_for(rb.read(), 10.0), "");
    wb.close();
    co_await wb.wait_closed();
  }());
}

// What is not a connected stream socket is refused with an error that says so, and the
// descriptor is left as it was: open, still the caller's, still non-blocking.
TEST(Streams, OpenConnectionRefusesWhatIsNotAConnectedStreamSocket) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int unconnected = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int listening = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::listen(listening, 1), 0);
  run_test([&]() -> Coro<void> {
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_connection(asyncio::Socket{-1}), "took fd -1", "-1 is no descriptor");
    co_await expect_await_throws<asyncio::OSError>(asyncio::open_connection(asyncio::Socket{p[0]}),
                                                   "took a pipe", "open_connection: fd");
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_connection(asyncio::Socket{udp}), "took a UDP socket",
        "is not a stream socket");
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_connection(asyncio::Socket{unconnected}), "took an unconnected socket",
        "is not connected");
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_connection(asyncio::Socket{listening}), "took a listening socket",
        "is a listening socket");
  }());
  for (int fd : {p[0], p[1], udp, unconnected, listening})
    EXPECT_NE(::fcntl(fd, F_GETFD), -1) << "fd " << fd << " was closed";
  EXPECT_TRUE(nonblocking(unconnected));
  EXPECT_TRUE(nonblocking(listening));
  for (int fd : {p[0], p[1], udp, unconnected, listening})
    ::close(fd);
}

// A server on a TCP socket the caller bound but did not listen on, and one on a Unix socket in
// the abstract namespace: each serves, reports its port (0 for Unix), and closes the socket at
// close(), so a later connect is refused.
TEST(Server, StartServerOnASocketTheCallerBound) {
  const int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(tcp, reinterpret_cast<sockaddr*>(&in), sizeof in), 0);
  socklen_t len = sizeof in;
  ASSERT_EQ(::getsockname(tcp, reinterpret_cast<sockaddr*>(&in), &len), 0);
  const int port = ntohs(in.sin_port);
  const std::string abstract =
      std::string(1, '\0') + "gilio-test-callers-socket-" + std::to_string(::getpid());
  const int unix_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  std::memcpy(un.sun_path, abstract.data(), abstract.size());
  ASSERT_EQ(::bind(unix_fd, reinterpret_cast<sockaddr*>(&un),
                   static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + abstract.size())),
            0);
  run_test([&]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, asyncio::Socket{tcp});
    EXPECT_EQ(server.port(), port);
    EXPECT_FALSE(nonblocking(tcp));
    auto unix_server = co_await asyncio::start_server(echo_lines, asyncio::Socket{unix_fd});
    EXPECT_EQ(unix_server.port(), 0);
    {
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", port);
      w.write("over tcp\n");
      EXPECT_EQ(co_await asyncio::wait_for(r.readline(), 10.0), "over tcp\n");
      w.close();
      auto [ur, uw] = co_await asyncio::open_unix_connection(abstract);
      uw.write("over unix\n");
      EXPECT_EQ(co_await asyncio::wait_for(ur.readline(), 10.0), "over unix\n");
      uw.close();
    }
    server.close();
    unix_server.close();
    co_await server.wait_closed();
    co_await unix_server.wait_closed();
    co_await expect_await_throws<asyncio::ConnectionRefusedError>(
        asyncio::open_connection("127.0.0.1", port), "the TCP socket was not closed");
    co_await expect_await_throws<asyncio::ConnectionRefusedError>(
        asyncio::open_unix_connection(abstract), "the Unix socket was not closed");
  }());
}

// A datagram socket cannot serve streams; a connected one cannot listen. Neither is taken.
TEST(Server, StartServerRefusesWhatCannotListen) {
  const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  run_test([&]() -> Coro<void> {
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_server(echo_lines, asyncio::Socket{udp}), "served on UDP",
        "is not a stream socket");
    co_await expect_await_throws<asyncio::OSError>(
        asyncio::start_server(echo_lines, asyncio::Socket{sv[0]}), "listened on a connected one",
        "listen on");
  }());
  for (int fd : {udp, sv[0], sv[1]}) {
    EXPECT_NE(::fcntl(fd, F_GETFD), -1) << "fd " << fd << " was closed";
    ::close(fd);
  }
}

// ---- StreamWriter::sendfile (asyncio's loop.sendfile on a stream's transport) ----

namespace {
// A stream's sendfile of 16 MiB into a socketpair whose peer (`to`) does not read yet: once
// started, its splice waits on the full socket.
struct StuckSendfile {
  std::string data;
  int file = -1;
  int to = -1;
  StreamWriter writer;
  asyncio::Task<std::size_t> sending;
};
Coro<StuckSendfile> start_stuck_sendfile() {
  StuckSendfile s;
  s.data = pattern(16 << 20);  // more than the socket buffers hold
  s.file = file_holding(s.data);
  const auto [from, to] = co_await stream_pair(false);
  s.to = to;
  auto [r, w] = co_await asyncio::open_connection(asyncio::Socket{from});
  s.writer = w;
  s.sending = asyncio::create_task(w.sendfile(s.file));
  // Stuck mid-splice once file bytes reach the peer: waited for, not guessed with a sleep (a
  // fixed 10 ms was too short for the io-wq worker on a loaded machine).
  for (int queued = 0; queued == 0 && !s.sending.done();) {
    co_await asyncio::sleep(0.001);
    ::ioctl(to, FIONREAD, &queued);
  }
  EXPECT_FALSE(s.sending.done());
  co_return s;
}
}  // namespace

// What was written before goes first, the file next, what is written after last: in order,
// over TCP, with a megabyte still buffered when the sendfile begins. A pipe is sent to its EOF.
TEST(Streams, SendfileSendsTheFileBetweenWhatWasWrittenBeforeAndAfter) {
  run_test([]() -> Coro<void> {
    const std::string data = pattern((3 << 20) + 77);
    const int file = file_holding(data);
    const auto [from, to] = co_await stream_pair(true);
    auto receiving = asyncio::create_task(recv_to_eof(to));
    auto [r, w] = co_await asyncio::open_connection(asyncio::Socket{from});
    const std::string before = "header\n" + std::string(1 << 20, 'b');
    w.write(before);
    EXPECT_EQ(co_await w.sendfile(file), data.size());
    EXPECT_EQ(::lseek(file, 0, SEEK_CUR), static_cast<off_t>(data.size()));
    EXPECT_EQ(co_await w.sendfile(file, 5, 10), 10u);  // a slice, as sock_sendfile's
    int p[2];                                          // and a pipe, to its EOF
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    EXPECT_EQ(::write(p[1], "piped\n", 6), 6);
    ::close(p[1]);
    EXPECT_EQ(co_await w.sendfile(p[0]), 6u);
    w.write("trailer\n");
    w.close();
    co_await w.wait_closed();
    const std::string got = co_await receiving;
    EXPECT_EQ(got.size(), before.size() + data.size() + 10 + 6 + 8);
    EXPECT_TRUE(got == before + data + data.substr(5, 10) + "piped\ntrailer\n");
    for (const int fd : {to, file, p[0]})
      ::close(fd);
  }());
}

// While a sendfile is in progress write() refuses (asyncio's "unable to write; sendfile is in
// progress"), and a close() waits for it: the peer gets the whole file, then the end.
TEST(Streams, DuringASendfileWriteRefusesAndCloseWaits) {
  run_test([]() -> Coro<void> {
    auto [data, file, to, w, sending] = co_await start_stuck_sendfile();
    try {
      w.write("x");
      ADD_FAILURE() << "write() during a sendfile did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("sendfile is in progress"), std::string::npos);
    }
    auto second = asyncio::create_task(w.sendfile(file, 0, 1));
    co_await expect_await_throws<std::runtime_error>(second, "a second sendfile did not wait",
                                                     "sendfile is in progress");
    w.close();
    EXPECT_TRUE(w.is_closing());
    const std::string got = co_await recv_to_eof(to);  // reads: the splice goes on, then EOF
    EXPECT_EQ(co_await sending, data.size());
    EXPECT_TRUE(got == data) << got.size() << " bytes of " << data.size();
    co_await w.wait_closed();
    ::close(to);
    ::close(file);
  }());
}

// A sendfile cancelled while it waits for the bytes written before it, or refused for its
// arguments, leaves the writer as it was: writing works again, and nothing is lost.
TEST(Streams, ASendfileCancelledOrRefusedLeavesTheWriterUsable) {
  run_test([]() -> Coro<void> {
    const int file = file_holding("file bytes");
    const auto [from, to] = co_await stream_pair(false);
    auto [r, w] = co_await asyncio::open_connection(asyncio::Socket{from});
    const std::string big(8 << 20, 'q');  // the peer does not read yet: the send waits
    w.write(big);
    auto waiting = asyncio::create_task(w.sendfile(file));
    co_await asyncio::sleep(0.01);
    EXPECT_FALSE(waiting.done());
    waiting.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(waiting,
                                                          "the sendfile was not cancelled");
    EXPECT_EQ(::lseek(file, 0, SEEK_CUR), 0) << "nothing of the file was sent";
    co_await expect_await_throws<std::invalid_argument>(w.sendfile(file, 0, 0), "sent 0 bytes");
    w.write("after\n");  // does not throw: no sendfile holds the writer
    w.close();
    const std::string got = co_await recv_to_eof(to);
    EXPECT_TRUE(got == big + "after\n") << got.size();
    co_await w.wait_closed();
    for (int fd : {to, file})
      ::close(fd);
  }());
}

// A stream's socket is blocking, so a splice into a full one waits inside an io-wq worker, not
// in a poll: cancelled there, it is interrupted all the same, and the file position tells how
// much the peer got.
TEST(Streams, ASendfileCancelledMidSpliceStopsWhereThePositionSays) {
  run_test([]() -> Coro<void> {
    auto [data, file, to, w, sending] = co_await start_stuck_sendfile();
    sending.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(sending,
                                                          "the sendfile was not cancelled");
    const off_t position = ::lseek(file, 0, SEEK_CUR);
    EXPECT_GT(position, 0);
    EXPECT_LT(position, static_cast<off_t>(data.size()));
    w.close();
    const std::string got = co_await recv_to_eof(to);
    EXPECT_TRUE(got == data.substr(0, static_cast<std::size_t>(position)))
        << got.size() << " bytes arrived, the position says " << position;
    ::close(to);
    ::close(file);
  }());
}

// ---- ServerOptions: start_serving, reuse_port, backlog ----

// start_serving = false: bound (so the port is known) but not listening, so a connect is
// refused, until start_serving(); a second start_serving() changes nothing.
TEST(Server, AServerNotStartedRefusesConnectionsUntilStartServing) {
  run_test([]() -> Coro<void> {
    asyncio::ServerOptions options;
    options.start_serving = false;
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0, options);
    EXPECT_FALSE(server.is_serving());
    EXPECT_GT(server.port(), 0);
    co_await expect_await_throws<asyncio::ConnectionRefusedError>(
        asyncio::open_connection("127.0.0.1", server.port()), "connected before start_serving");
    server.start_serving();
    server.start_serving();
    EXPECT_TRUE(server.is_serving());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write("now\n");
    EXPECT_EQ(co_await asyncio::wait_for(r.readline(), 10.0), "now\n");
    w.close();
    server.close();
    co_await server.wait_closed();
    EXPECT_THROW(server.start_serving(), std::runtime_error);
  }());
}

// serve_forever() starts a server that is not serving yet, as asyncio's does; a server never
// started closes and is waited for like any other.
TEST(Server, ServeForeverStartsAServerNotYetServing) {
  run_test([]() -> Coro<void> {
    asyncio::ServerOptions options;
    options.start_serving = false;
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0, options);
    auto serving = asyncio::create_task(server.serve_forever());
    co_await asyncio::sleep(0);
    EXPECT_TRUE(server.is_serving());
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    w.write("served\n");
    EXPECT_EQ(co_await asyncio::wait_for(r.readline(), 10.0), "served\n");
    w.close();
    serving.cancel();
    co_await expect_await_throws<asyncio::CancelledError>(serving, "serve_forever went on");
    EXPECT_FALSE(server.is_serving());
    co_await asyncio::wait_for(server.wait_closed(), 10.0);

    auto never = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0, options);
    never.close();
    co_await asyncio::wait_for(never.wait_closed(), 10.0);
  }());
}

// reuse_port: two servers bind one port and the kernel spreads connections over both; without
// it the second bind fails with EADDRINUSE.
TEST(Server, ReusePortLetsTwoServersShareAPort) {
  run_test([]() -> Coro<void> {
    int served[2] = {0, 0};
    auto counting = [&served](int which) -> asyncio::ClientConnected {
      return [&served, which](StreamReader r, StreamWriter w) -> Coro<void> {
        ++served[which];
        co_await echo_lines(std::move(r), std::move(w));
      };
    };
    asyncio::ServerOptions options;
    options.reuse_port = true;
    auto first = co_await asyncio::start_server(counting(0), "127.0.0.1", 0, options);
    auto second = co_await asyncio::start_server(counting(1), "127.0.0.1", first.port(), options);
    EXPECT_EQ(second.port(), first.port());
    co_await expect_await_throws<asyncio::OSError>(
        asyncio::start_server(echo_lines, "127.0.0.1", first.port()),
        "bound a used port without reuse_port", "bind to");
    // Connections from 64 source ports: the chance that the hash puts all on one is 2^-63.
    for (int i = 0; i < 64; ++i) {
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", first.port());
      w.write("hi\n");
      EXPECT_EQ(co_await asyncio::wait_for(r.readline(), 10.0), "hi\n");
      w.close();
    }
    EXPECT_EQ(served[0] + served[1], 64);
    EXPECT_GT(served[0], 0);
    EXPECT_GT(served[1], 0);
    first.close();
    second.close();
    co_await first.wait_closed();
    co_await second.wait_closed();
  }());
}

// What the options cannot mean is refused before anything is bound.
TEST(Server, ServerOptionsThatCannotApplyAreRefused) {
  run_test([]() -> Coro<void> {
    asyncio::ServerOptions no_backlog;
    no_backlog.backlog = 0;
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_server(echo_lines, "127.0.0.1", 0, no_backlog), "took backlog 0",
        "the backlog must be positive");
    asyncio::ServerOptions reuse;
    reuse.reuse_port = true;
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_unix_server(echo_lines, std::string(1, '\0') + "gilio-reuse-port", reuse),
        "took reuse_port for a Unix server", "reuse_port is for TCP servers");
  }());
}

namespace {
// SO_KEEPALIVE of this process's connected socket whose own port is `port` — a server's end of
// a connection it accepted there — or -1 if there is none.
int accepted_keepalive(int port) {
  for (int fd = 3; fd < 4096; ++fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0 || ss.ss_family != AF_INET)
      continue;
    if (ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port) != port) continue;
    int listening = 0, keepalive = 0;
    socklen_t n = sizeof listening;
    ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &n);
    if (listening != 0) continue;
    n = sizeof keepalive;
    ::getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive, &n);
    return keepalive;
  }
  return -1;
}
}  // namespace

// keep_alive (asyncio 3.13): SO_KEEPALIVE on the listening socket, so on every connection it
// accepts; refused where gilio does not make the socket.
TEST(Server, KeepAliveSetsSoKeepaliveOnTheConnectionsItAccepts) {
  run_test([]() -> Coro<void> {
    for (const bool keep : {false, true}) {
      asyncio::ServerOptions options;
      options.keep_alive = keep;
      auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0, options);
      auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
      w.write("hi\n");
      EXPECT_EQ(co_await r.readline(), "hi\n");  // accepted by now
      EXPECT_EQ(accepted_keepalive(server.port()), keep ? 1 : 0) << "keep_alive " << keep;
      w.close();
      co_await w.wait_closed();
      server.close();
      co_await server.wait_closed();
    }
    asyncio::ServerOptions keep;
    keep.keep_alive = true;
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_unix_server(echo_lines, std::string(1, '\0') + "gilio-keep-alive", keep),
        "took keep_alive for a Unix server", "keep_alive is for TCP servers");
  }());
}

// ---- the writer's buffer limits and its own address ----

// asyncio's set_write_buffer_limits: drain() waits only above `high`; each limit follows from
// the other as in asyncio; low above high is refused.
TEST(Streams, WriteBufferLimitsDecideWhenDrainWaits) {
  run_test([]() -> Coro<void> {
    const auto [from, to] = co_await stream_pair(false);
    auto [r, w] = co_await asyncio::open_connection(asyncio::Socket{from});
    using Limits = std::pair<std::size_t, std::size_t>;  // (low, high), asyncio's order
    EXPECT_EQ(w.get_write_buffer_limits(), Limits(16384, 65536));
    w.set_write_buffer_limits(1000);
    EXPECT_EQ(w.get_write_buffer_limits(), Limits(250, 1000));
    w.set_write_buffer_limits(std::nullopt, 100);
    EXPECT_EQ(w.get_write_buffer_limits(), Limits(100, 400));
    EXPECT_THROW(w.set_write_buffer_limits(10, 20), std::invalid_argument);
    EXPECT_EQ(w.get_write_buffer_limits(), Limits(100, 400)) << "a refused call changed them";

    const std::size_t total = 32 << 20;  // more than the kernel's socket buffers hold
    w.set_write_buffer_limits(64 << 20);
    w.write(std::string(total, 'z'));
    co_await asyncio::sleep(0.01);
    EXPECT_GT(w.buffered(), std::size_t{1} << 20);
    co_await asyncio::wait_for(w.drain(), 5.0);  // under 64 MiB: no wait
    w.set_write_buffer_limits(1 << 20);
    auto draining = asyncio::create_task(w.drain());
    co_await asyncio::sleep(0.01);
    EXPECT_FALSE(draining.done()) << "drain() did not wait above the new high-water mark";
    auto reading = asyncio::create_task(recv_to_eof(to));
    co_await asyncio::wait_for(draining, 10.0);
    EXPECT_LE(w.buffered(), std::size_t{1} << 18);  // it woke at or under low (high / 4)
    w.close();
    EXPECT_EQ((co_await reading).size(), total);
    ::close(to);
  }());
}

// sockname() is the connection's own address: the one the server sees as its peer.
TEST(Streams, SocknameIsTheAddressThePeerSees) {
  run_test([]() -> Coro<void> {
    std::string seen_by_server;
    asyncio::ClientConnected handler = [&](StreamReader, StreamWriter w) -> Coro<void> {
      seen_by_server = w.peername();
      w.close();
      co_return;
    };
    auto server = co_await asyncio::start_server(handler, "127.0.0.1", 0);
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", server.port());
    EXPECT_EQ(co_await r.read(), "");  // the handler has run
    EXPECT_EQ(w.sockname(), seen_by_server);
    EXPECT_EQ(w.sockname().rfind("127.0.0.1:", 0), 0u) << w.sockname();
    w.close();
    co_await w.wait_closed();
    EXPECT_THROW(w.sockname(), std::runtime_error);
    server.close();
    co_await server.wait_closed();
  }());
}

// ---- several addresses: in turn, or Happy Eyeballs ----

namespace {

// The loopback addresses an empty host resolves to, in getaddrinfo's order (Python's None).
std::vector<int> loopback_families() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  std::vector<int> families;
  if (::getaddrinfo(nullptr, "1", &hints, &found) != 0) return families;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next)
    families.push_back(a->ai_family);
  ::freeaddrinfo(found);
  return families;
}

const char* loopback_of(int family) {
  return family == AF_INET6 ? "::1" : "127.0.0.1";
}

// A socket of `family` bound to its loopback address and `port` (0: any), IPv6 alone on its
// own (IPV6_V6ONLY, so an IPv4 socket may share the port); -1 if the port is taken.
int bound_loopback(int family, int port) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET6) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    in6->sin6_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *in6;
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in->sin_port = htons(static_cast<std::uint16_t>(port));
    len = sizeof *in;
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int port_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

int open_fd_count() {
  return static_cast<int>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                        std::filesystem::directory_iterator{}));
}

}  // namespace

// A listener whose accept queue is full (backlog 0, one connection waiting) drops every SYN,
// so a connection to it hangs — as to a host that is down. The empty host's first loopback
// address is such a listener and the second a server on the same port: without Happy Eyeballs
// the connection would wait minutes for the first; with a 50 ms delay the second attempt starts
// and wins, and the first is cancelled, its socket closed.
TEST(Streams, HappyEyeballsTriesTheNextAddressWhileTheFirstHangs) {
  const std::vector<int> families = loopback_families();
  if (families.size() < 2 || families[0] == families[1])
    GTEST_SKIP() << "the loopback is not both IPv6 and IPv4 here";
  run_test([&]() -> Coro<void> {
    const int baseline = open_fd_count();
    int hanging = -1;
    std::optional<asyncio::Server> server;
    asyncio::ClientConnected handler = echo_lines;
    for (int i = 0; i < 10 && !server; ++i) {
      hanging = bound_loopback(families[0], 0);
      ::listen(hanging, 0);
      try {
        server =
            co_await asyncio::start_server(handler, loopback_of(families[1]), port_of(hanging));
      } catch (const asyncio::OSError&) {  // that port is taken on the other family: another
        ::close(hanging);
      }
    }
    EXPECT_TRUE(server.has_value());
    if (!server) co_return;
    const int port = port_of(hanging);
    // One connection fills the accept queue: connected, never accepted.
    sockaddr_storage listening{};
    socklen_t len = sizeof listening;
    ::getsockname(hanging, reinterpret_cast<sockaddr*>(&listening), &len);
    const int queued = ::socket(families[0], SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(queued, reinterpret_cast<sockaddr*>(&listening), len), 0);
    asyncio::ConnectionOptions options;
    options.happy_eyeballs_delay = 0.05;
    auto [r, w] = co_await asyncio::open_connection("", port, options);
    EXPECT_EQ(w.peername(), std::string(families[1] == AF_INET6 ? "[::1]:" : "127.0.0.1:") +
                                std::to_string(port));
    w.write("across\n");
    EXPECT_EQ(co_await r.readline(), "across\n");
    w.close();
    co_await w.wait_closed();
    server->close();
    co_await server->wait_closed();
    ::close(queued);
    ::close(hanging);
    // The losing attempt's socket is closed once its cancelled connect has ended.
    for (int i = 0; i < 1000 && open_fd_count() > baseline; ++i)
      co_await asyncio::sleep(0.001);
    EXPECT_EQ(open_fd_count(), baseline);
  }());
}

// Every address refused: one ConnectionRefusedError naming them all (asyncio would raise a
// plain OSError, "Multiple exceptions"), in turn and with Happy Eyeballs alike; with
// all_errors, an ExceptionGroup of each address's error.
TEST(Streams, EveryAddressRefusedIsOneConnectionRefusedErrorOrAGroup) {
  const std::vector<int> families = loopback_families();
  if (families.size() < 2 || families[0] == families[1])
    GTEST_SKIP() << "the loopback is not both IPv6 and IPv4 here";
  run_test([&]() -> Coro<void> {
    // A port bound, not listening, on both: refused on both.
    int first = -1;
    int second = -1;
    for (int i = 0; i < 10 && second < 0; ++i) {
      first = bound_loopback(families[0], 0);
      second = bound_loopback(families[1], port_of(first));
      if (second < 0) ::close(first);
    }
    EXPECT_GE(second, 0);
    const int port = port_of(first);
    asyncio::ConnectionOptions in_turn;
    asyncio::ConnectionOptions racing;
    racing.happy_eyeballs_delay = 0.25;
    std::vector<asyncio::ConnectionOptions> ways{in_turn, racing};
    for (const asyncio::ConnectionOptions& way : ways) {
      try {
        co_await asyncio::open_connection("", port, way);
        ADD_FAILURE() << "connected to a port nobody listens on";
      } catch (const asyncio::ConnectionRefusedError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("[::1]:" + std::to_string(port)), std::string::npos) << what;
        EXPECT_NE(what.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << what;
      }
    }
    asyncio::ConnectionOptions grouped;
    grouped.all_errors = true;
    try {
      co_await asyncio::open_connection("", port, grouped);
      ADD_FAILURE() << "connected to a port nobody listens on";
    } catch (const asyncio::ExceptionGroup& group) {
      EXPECT_EQ(group.exceptions().size(), 2u);
      for (const std::exception_ptr& e : group.exceptions())
        EXPECT_THROW(std::rethrow_exception(e), asyncio::ConnectionRefusedError);
    }
    asyncio::ConnectionOptions bad;
    bad.happy_eyeballs_delay = -1;
    co_await expect_await_throws<std::invalid_argument>(asyncio::open_connection("", port, bad),
                                                        "a negative delay", "happy_eyeballs_delay");
    asyncio::ConnectionOptions not_here;
    not_here.interleave = 1;
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::open_unix_connection("/nonexistent", not_here), "interleave on a Unix socket",
        "host name");
    ::close(first);
    ::close(second);
  }());
}

// asyncio's _interleave_addrinfos, which `interleave` applies. A name with several addresses of
// one family can not be had here without editing /etc/hosts, so the order is checked directly,
// against what CPython 3.11's function gives for the same lists.
TEST(Streams, InterleaveOrdersAddressesAsAsyncioDoes) {
  auto address = [](int family, int port) {
    sockaddr_storage ss{};
    ss.ss_family = static_cast<sa_family_t>(family);
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);  // sin_port and sin6_port share a place
    in->sin_port = htons(static_cast<std::uint16_t>(port));
    return ss;
  };
  auto names = [](const std::vector<sockaddr_storage>& addresses) {
    std::vector<std::string> out;
    for (const sockaddr_storage& ss : addresses) {
      out.push_back(std::string(ss.ss_family == AF_INET6 ? "6:" : "4:") +
                    std::to_string(ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)));
    }
    return out;
  };
  const std::vector<sockaddr_storage> given{address(AF_INET6, 1), address(AF_INET6, 2),
                                            address(AF_INET6, 3), address(AF_INET, 1),
                                            address(AF_INET, 2)};
  using Names = std::vector<std::string>;
  EXPECT_EQ(names(asyncio::detail::interleaved(given, 1)),
            (Names{"6:1", "4:1", "6:2", "4:2", "6:3"}));
  EXPECT_EQ(names(asyncio::detail::interleaved(given, 2)),
            (Names{"6:1", "6:2", "4:1", "6:3", "4:2"}));
  EXPECT_EQ(names(asyncio::detail::interleaved(given, 5)),
            (Names{"6:1", "6:2", "6:3", "4:1", "4:2"}));
  const std::vector<sockaddr_storage> v4_first{address(AF_INET, 1), address(AF_INET6, 1),
                                               address(AF_INET6, 2)};
  EXPECT_EQ(names(asyncio::detail::interleaved(v4_first, 1)), (Names{"4:1", "6:1", "6:2"}));
}

// family= keeps the host's addresses of one family: the empty host is then one loopback address,
// and a numeric address of the other family does not resolve. local_addr= binds the socket
// first, to an address of its family: the server sees the connection come from there; with no
// address of that family, an OSError saying so.
TEST(Streams, FamilyAndLocalAddrChooseTheAddresses) {
  run_test([]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    const int port = server.port();
    asyncio::ConnectionOptions v4;
    v4.family = AF_INET;
    auto [r, w] = co_await asyncio::open_connection("", port, v4);
    EXPECT_EQ(w.peername(), "127.0.0.1:" + std::to_string(port));
    w.close();
    asyncio::ConnectionOptions v6;
    v6.family = AF_INET6;
    if (loopback_families().size() >= 2) {
      try {
        co_await asyncio::open_connection("", port, v6);
        ADD_FAILURE() << "connected over IPv6 to a server on 127.0.0.1";
      } catch (const asyncio::ConnectionRefusedError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("loopback:" + std::to_string(port)), std::string::npos) << what;
        EXPECT_EQ(what.find("127.0.0.1"), std::string::npos) << what;
      }
    }
    EXPECT_THROW(co_await asyncio::open_connection("127.0.0.1", port, v6),
                 asyncio::NameResolutionError);

    // A local port of our choosing: bound and let go, then asked for.
    const int probe = bound_loopback(AF_INET, 0);
    const int local_port = port_of(probe);
    ::close(probe);
    asyncio::ConnectionOptions from;
    from.local_addr = std::pair<std::string, int>("127.0.0.1", local_port);
    {
      auto [r2, w2] = co_await asyncio::open_connection("127.0.0.1", port, from);
      EXPECT_EQ(w2.sockname(), "127.0.0.1:" + std::to_string(local_port));
      w2.write("from here\n");
      EXPECT_EQ(co_await r2.readline(), "from here\n");
      w2.close();
      co_await w2.wait_closed();
    }
    asyncio::ConnectionOptions wrong_family;
    wrong_family.local_addr = std::pair<std::string, int>("::1", 0);
    co_await expect_await_throws<asyncio::OSError>(
        asyncio::open_connection("127.0.0.1", port, wrong_family), "bound to an IPv6 address",
        "no local_addr address of its family");
    server.close();
    co_await server.wait_closed();
  }());
}

// An empty host is every interface of both families, as asyncio's None: one port for all, so the
// server is reached at 127.0.0.1 and at ::1 on server.port(); family= keeps one of them.
TEST(Server, AnEmptyHostListensOnEveryInterfaceOfBothFamilies) {
  const std::vector<int> families = loopback_families();
  const bool dual = families.size() >= 2 && families[0] != families[1];
  run_test([dual]() -> Coro<void> {
    auto server = co_await asyncio::start_server(echo_lines, "", 0);
    const int port = server.port();
    std::vector<std::string> hosts{"127.0.0.1"};
    if (dual) hosts.push_back("::1");
    for (const std::string& host : hosts) {
      auto [r, w] = co_await asyncio::open_connection(host, port);
      w.write("hello\n");
      EXPECT_EQ(co_await r.readline(), "hello\n") << host;
      w.close();
      co_await w.wait_closed();
    }
    server.close();
    co_await server.wait_closed();

    asyncio::ServerOptions v4;
    v4.family = AF_INET;
    auto only_v4 = co_await asyncio::start_server(echo_lines, "", 0, v4);
    if (dual) {
      co_await expect_await_throws<asyncio::ConnectionRefusedError>(
          asyncio::open_connection("::1", only_v4.port()), "reached over IPv6");
    }
    auto [r, w] = co_await asyncio::open_connection("127.0.0.1", only_v4.port());
    w.close();
    only_v4.close();
    co_await only_v4.wait_closed();
    co_await expect_await_throws<std::invalid_argument>(
        asyncio::start_unix_server(echo_lines, "/tmp/gilio-never-bound", v4), "a Unix family",
        "family is for TCP servers");
  }());
}

namespace {

constexpr int kNoPrivateNetwork = 77;  // the child could not have a network of its own

// A socket bound (not listening) to `port` of one family's any-address: the port is held there.
int hold_port(int family, int port) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_storage ss{};
  if (family == AF_INET6) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<std::uint16_t>(port));
  }
  const socklen_t len = family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  return ::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0 ? fd : -1;
}

// The child of the test below, in a network namespace of its own whose ephemeral ports are
// 40000-40003 (a range of an even count: the kernel halves it by parity): 40000 is held in IPv4,
// 40001 and 40003 in IPv6, so 40002 is the only one free in both. The kernel offers the odd ones
// first, so the server's first two picks are taken in IPv6.
// Its exit status says what went wrong (0: nothing).
int ports_taken_in_one_family() {
  if (::unshare(CLONE_NEWNET) != 0) return kNoPrivateNetwork;
  const int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq lo{};
  std::strcpy(lo.ifr_name, "lo");
  if (::ioctl(s, SIOCGIFFLAGS, &lo) != 0) return kNoPrivateNetwork;
  lo.ifr_flags = static_cast<short>(lo.ifr_flags | IFF_UP);
  if (::ioctl(s, SIOCSIFFLAGS, &lo) != 0) return kNoPrivateNetwork;
  ::close(s);
  {
    std::ofstream range("/proc/sys/net/ipv4/ip_local_port_range");
    range << "40000 40003" << std::flush;
    if (!range) return kNoPrivateNetwork;
  }
  if (hold_port(AF_INET, 40000) < 0 || hold_port(AF_INET6, 40001) < 0 ||
      hold_port(AF_INET6, 40003) < 0)
    return kNoPrivateNetwork;
  int result = 1;
  try {
    result = asyncio::run([]() -> Coro<int> {
      auto server = co_await asyncio::start_server(echo_lines, "", 0);
      if (server.port() != 40002) co_return 2;
      // Now no port is free in both families (40002 is the server's): a clear error.
      int refused = 4;
      try {
        co_await asyncio::start_server(echo_lines, "", 0);
      } catch (const asyncio::OSError& e) {
        if (e.code().value() == EADDRINUSE) refused = 0;
      }
      // The clients need ports of their own.
      std::ofstream("/proc/sys/net/ipv4/ip_local_port_range") << "41000 41999";
      for (const char* host : {"127.0.0.1", "::1"}) {
        auto [r, w] = co_await asyncio::open_connection(host, 40002);
        w.write("hello\n");
        if (co_await r.readline() != "hello\n") co_return 3;
        w.close();
        co_await w.wait_closed();
      }
      server.close();
      co_await server.wait_closed();
      co_return refused;
    }());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "the child's exception: %s\n", e.what());
    result = 5;
  }
  return result;
}

}  // namespace

// sock_connect resolves the name for the socket's own family, as asyncio: an IPv6 socket told
// to connect to the empty host (::1 and 127.0.0.1) tries ::1 alone, and its refusal is the error
// (it used to try 127.0.0.1 too and report that one's EAFNOSUPPORT). A Unix socket connects to
// a path given as the host, with port 0.
TEST(SockMethods, ConnectResolvesForTheSocketsFamilyAndTakesAPathOnAUnixSocket) {
  const bool dual = loopback_families().size() >= 2;
  run_test([dual]() -> Coro<void> {
    auto& loop = asyncio::get_running_loop();
    auto server = co_await asyncio::start_server(echo_lines, "127.0.0.1", 0);
    const int v4 = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    co_await loop.sock_connect(v4, "", server.port());  // ::1 is not tried
    co_await loop.sock_sendall(v4, "over IPv4\n");
    EXPECT_EQ(co_await loop.sock_recv(v4, 100), "over IPv4\n");
    ::close(v4);
    if (dual) {
      const int v6 = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
      co_await expect_await_throws<asyncio::ConnectionRefusedError>(
          loop.sock_connect(v6, "", server.port()), "::1 has no server", "loopback:");
      ::close(v6);
      const int other = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      co_await expect_await_throws<asyncio::NameResolutionError>(
          loop.sock_connect(other, "::1", server.port()), "an IPv6 address for an IPv4 socket");
      ::close(other);
    }
    server.close();
    co_await server.wait_closed();

    const std::string path = "/tmp/gilio-sock-connect-" + std::to_string(::getpid());
    auto unix_server = co_await asyncio::start_unix_server(echo_lines, path);
    const int u = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    co_await loop.sock_connect(u, path, 0);
    co_await loop.sock_sendall(u, "over a path\n");
    EXPECT_EQ(co_await loop.sock_recv(u, 100), "over a path\n");
    ::close(u);
    unix_server.close();
    co_await unix_server.wait_closed();
    const int gone = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    co_await expect_await_throws<asyncio::FileNotFoundError>(
        loop.sock_connect(gone, path, 0), "the server removed its socket file", path);
    ::close(gone);
  }());
}

// start_server("", 0) binds the first address to the port the kernel picks and asks the same of
// the others; a port another program holds in the other family makes it pick again (without
// that, the server failed with EADDRINUSE). Made certain in a network of the test's own.
TEST(Server, PortZeroOnBothFamiliesPicksAgainWhenTheOtherFamilyHoldsThePort) {
  if (loopback_families().size() < 2) GTEST_SKIP() << "this machine has one address family";
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(ports_taken_in_one_family());
  const int code = gilio::testing::wait_child(pid, 30);
  if (code == kNoPrivateNetwork) GTEST_SKIP() << "no network namespace of its own (not root?)";
  EXPECT_EQ(code, 0) << "2: not port 40002; 3: no echo; 4: no EADDRINUSE once all are taken; "
                        "5: an exception; -1: ran past 30 s";
}
