// tests/test_files.cpp — gilio/asyncio/files.hpp: whole files through the ring.
// A large file's round trip through write_file and read_file, files whose size fstat does not
// know (an empty file, /proc, a pipe), and errors that name the path.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <thread>

#include "asyncio_support.hpp"

namespace asyncio = gilio::asyncio;
using asyncio::Coro;
using gilio::testing::run_test;

TEST(Files, LargeFileRoundTrip) {
  run_test([]() -> Coro<void> {
    const std::string path = ::testing::TempDir() + "gilio_file_roundtrip.bin";
    std::string data(20 * 1024 * 1024 + 123, '\0');  // 20 MiB and a bit: many 1 MiB chunks
    for (std::size_t i = 0; i < data.size(); ++i)
      data[i] = static_cast<char>(i * 131 % 251);
    co_await asyncio::write_file(path, data);
    const std::string back = co_await asyncio::read_file(path);
    EXPECT_EQ(back.size(), data.size());
    EXPECT_TRUE(back == data);
    co_await asyncio::write_file(path, "short");  // truncates
    EXPECT_EQ(co_await asyncio::read_file(path), "short");
    std::remove(path.c_str());
  }());
}

// read_file sizes its buffer from fstat; these sizes are wrong or unknown, and it must read on
// to the end regardless.
TEST(Files, FilesOfUnknownSizeAreReadToTheEnd) {
  run_test([]() -> Coro<void> {
    const std::string empty = ::testing::TempDir() + "gilio_file_empty.bin";
    co_await asyncio::write_file(empty, "");
    EXPECT_EQ(co_await asyncio::read_file(empty), "");
    std::remove(empty.c_str());

    // /proc files say they are empty.
    const std::string status = co_await asyncio::read_file("/proc/self/status");
    EXPECT_EQ(status.rfind("Name:", 0), 0u) << status.substr(0, 40);
    EXPECT_EQ(status.back(), '\n');

    // A pipe: 3 MiB and a bit arrive 64 KiB at a time, and the buffer grows past its first chunk
    // twice. The writer's open() waits for read_file's; if read_file never gets that far, the
    // test drains the pipe itself so that the writer can finish.
    const std::string fifo = ::testing::TempDir() + "gilio_file_fifo";
    std::remove(fifo.c_str());
    EXPECT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::string sent(3 * 1024 * 1024 + 5, '\0');
    for (std::size_t i = 0; i < sent.size(); ++i)
      sent[i] = static_cast<char>(i * 7 % 253);
    std::thread writer([&] {
      sigset_t pipe_signal;  // a reader that stops early is an EPIPE here, not a dead process
      sigemptyset(&pipe_signal);
      sigaddset(&pipe_signal, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
      const int fd = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
      for (std::size_t off = 0; fd >= 0 && off < sent.size();) {
        const ssize_t n = ::write(fd, sent.data() + off, sent.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      if (fd >= 0) ::close(fd);
    });
    std::string got;
    bool read_it = false;
    try {
      got = co_await asyncio::read_file(fifo);
      read_it = true;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "read_file of a pipe: " << e.what();
    }
    if (!read_it) {
      const int fd = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
      char buf[65536];
      while (fd >= 0 && ::read(fd, buf, sizeof buf) > 0) {
      }
      if (fd >= 0) ::close(fd);
    }
    writer.join();
    EXPECT_EQ(got.size(), sent.size());
    EXPECT_TRUE(got == sent);
    std::remove(fifo.c_str());
  }());
}

TEST(Files, ErrorsNameThePath) {
  run_test([]() -> Coro<void> {
    try {
      co_await asyncio::read_file("/nonexistent/dir/file.txt");
      ADD_FAILURE() << "read of a missing file did not throw";
    } catch (const asyncio::FileNotFoundError& e) {
      EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/file.txt"), std::string::npos);
    }
    EXPECT_THROW(co_await asyncio::read_file("/"), asyncio::IsADirectoryError);
    EXPECT_THROW(co_await asyncio::write_file("/proc/version", "x"), asyncio::OSError);
  }());
}
