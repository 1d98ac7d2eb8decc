// tests/test_files.cpp — gilio/asyncio/files.hpp: whole files through the ring.
// A large file's round trip through write_file and read_file, and errors that name the path.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

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
