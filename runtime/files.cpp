// runtime/files.cpp — read_file / write_file on io_uring (see files.hpp). No CPython twin.
//
// A whole file is opened, read or written in chunks, and closed, each step an operation on the
// loop's ring that the task awaits, so a big file never blocks the loop. A read goes into one
// string made the file's size up front (fstat), not grown as the bytes come. The essay on why,
// and on cancellation, is in files.hpp.
#include "gilio/asyncio/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "big_string.hpp"
#include "gilio/asyncio.hpp"
#include "io_op.hpp"

namespace gilio::asyncio {
namespace {

constexpr unsigned kFileChunk = 1u << 20;

Coro<int> open_file(const std::string& path, int flags) {
  const char* p = path.c_str();
  const int fd = co_await detail::IoOp(
      [p, flags](detail::Backend& b, detail::Completion* op) { b.openat(op, p, flags, 0644); });
  if (fd < 0) raise_os_error(-fd, "open '" + path + "'");
  co_return fd;
}

// Closes through the ring; also on the way out of a failed or cancelled read or write.
Coro<void> close_file(int fd) {
  co_await detail::IoOp([fd](detail::Backend& b, detail::Completion* op) { b.close(op, fd); });
}

// How many bytes to make room for before the first read: the size fstat gives a regular file,
// plus one byte, so that the read which finds the end has room and the buffer never has to
// grow; a chunk for anything else (a pipe, /proc), which grows as it is read.
std::size_t first_capacity(int fd) {
  struct stat st;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
    return static_cast<std::size_t>(st.st_size) + 1;
  return kFileChunk;
}

// Makes `s` n bytes long for the kernel to overwrite. Zero-filling 256 MiB first made a read
// a quarter slower; resize_and_overwrite (C++23: this file is built as C++23 where the
// compiler can) leaves the new bytes as they are. A big buffer's pages are populated first
// (big_string.hpp): the kernel's copy into pages not yet there faulted each one in, which was
// most of the read's time.
void grow(std::string& s, std::size_t n) {
  detail::reserve_more(s, n - s.size());
#if defined(__cpp_lib_string_resize_and_overwrite)
  s.resize_and_overwrite(n, [](char*, std::size_t size) { return size; });
#else
  s.resize(n);
#endif
}

}  // namespace

Coro<std::string> read_file(std::string path) {
  const int fd = co_await open_file(path, O_RDONLY);
  std::string data;
  std::exception_ptr error;
  try {
    // One buffer of the file's size (growing it a chunk at a time, as this once did, copied and
    // zero-filled it over and over: a third of a plain read() loop's speed).
    grow(data, first_capacity(fd));
    std::uint64_t offset = 0;
    for (;;) {
      if (offset == data.size())
        grow(data, data.size() + std::max<std::size_t>(kFileChunk, data.size() / 2));  // it grew
      char* buf = data.data() + offset;
      const auto len =
          static_cast<unsigned>(std::min<std::uint64_t>(kFileChunk, data.size() - offset));
      const int n = co_await detail::IoOp(
          [=](detail::Backend& b, detail::Completion* op) { b.read(op, fd, buf, len, offset); });
      if (n < 0) raise_os_error(-n, "read '" + path + "'");
      if (n == 0) break;
      offset += static_cast<std::uint64_t>(n);
    }
    data.resize(offset);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) ::close(fd);  // (no co_await in a handler; a plain close cannot block on a file)
  if (error) std::rethrow_exception(error);
  co_await close_file(fd);
  co_return data;
}

Coro<void> write_file(std::string path, std::string data) {
  const int fd = co_await open_file(path, O_WRONLY | O_CREAT | O_TRUNC);
  std::exception_ptr error;
  try {
    std::uint64_t offset = 0;
    while (offset < data.size()) {
      const char* buf = data.data() + offset;
      const unsigned len =
          static_cast<unsigned>(std::min<std::uint64_t>(kFileChunk, data.size() - offset));
      const int n = co_await detail::IoOp(
          [=](detail::Backend& b, detail::Completion* op) { b.write(op, fd, buf, len, offset); });
      if (n < 0) raise_os_error(-n, "write '" + path + "'");
      offset += static_cast<std::uint64_t>(n);
    }
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    ::close(fd);
    std::rethrow_exception(error);
  }
  co_await close_file(fd);
}

}  // namespace gilio::asyncio
