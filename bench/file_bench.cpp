// bench/file_bench.cpp — whole-file reads and writes through the ring (read_file, write_file)
// beside a plain blocking read()/write() loop in the same process, printed as one JSON line.
//
//   read    a 256 MiB file already in the page cache, into one std::string
//   write   the same 256 MiB replacing a file (O_TRUNC), handed over with std::move
//
// Each round times the two reads and then the two writes, who goes first alternating between
// rounds, and every figure is the median of the rounds (MB/s), so that drift in this shared
// machine's speed falls on all of them alike. The plain loops are the floor: they do what
// read_file and write_file do (a buffer of the file's size that nothing fills first, its pages
// populated at once, 1 MiB steps) with blocking system calls and no event loop. CPython's side
// (asyncio has no file I/O; a program calls to_thread) is bench/python/file_bench.py. Usage:
// file_bench [--quick]
#include <fcntl.h>
#include <fmt/core.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <gilio/asyncio.hpp>
#include <gilio/asyncio/files.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace asyncio = gilio::asyncio;
using asyncio::Coro;

#include "bench_util.hpp"

namespace {

using bench::now;

constexpr std::size_t kStep = 1 << 20;

// The floor: read() in 1 MiB steps into a buffer of the file's size that nothing fills first,
// its pages populated in one call before the reads, as read_file's are (runtime/big_string.hpp:
// without it, the kernel's copy faults each page in, at about 2.9 ms a MiB on this VM).
struct Bytes {
  std::unique_ptr<char[]> data;
  std::size_t size = 0;
  bool operator==(const std::string& s) const {
    return s.size() == size && std::memcmp(s.data(), data.get(), size) == 0;
  }
};

Bytes plain_read(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  struct stat st;
  ::fstat(fd, &st);
  Bytes b{std::unique_ptr<char[]>(new char[static_cast<std::size_t>(st.st_size)]),
          static_cast<std::size_t>(st.st_size)};
  const auto first =
      (reinterpret_cast<std::uintptr_t>(b.data.get()) + 4095) & ~std::uintptr_t{4095};
  const auto end =
      (reinterpret_cast<std::uintptr_t>(b.data.get()) + b.size) & ~std::uintptr_t{4095};
  if (end > first)  // madvise takes whole pages, and new[] gives no page-aligned start
    ::madvise(reinterpret_cast<void*>(first), end - first, MADV_POPULATE_WRITE);
  std::size_t off = 0;
  while (off < b.size) {
    const ssize_t n = ::read(fd, b.data.get() + off, std::min(kStep, b.size - off));
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::close(fd);
  b.size = off;
  return b;
}

void plain_write(const std::string& path, const std::string& data) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  for (std::size_t off = 0; off < data.size();) {
    const ssize_t n = ::write(fd, data.data() + off, std::min(kStep, data.size() - off));
    if (n <= 0) throw std::runtime_error("write " + path + ": " + std::strerror(errno));
    off += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Coro<std::string> all(bool quick) {
  const std::size_t size = (quick ? 32u : 256u) << 20;
  const int rounds = quick ? 1 : 5;
  const char* tmp = std::getenv("TMPDIR");
  const std::string dir = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  const std::string in = dir + "/gilio_file_bench_in.bin";
  const std::string out = dir + "/gilio_file_bench_out.bin";
  std::string data(size, '\0');
  for (std::size_t i = 0; i < size; i += 4096)
    data[i] = static_cast<char>(i / 4096);
  plain_write(in, data);
  (void)plain_read(in);  // into the page cache
  std::vector<double> ours_read, plain_reads, ours_write, plain_writes;
  const double mb = static_cast<double>(size) / 1e6;
  for (int r = 0; r < rounds; ++r) {
    // Each pair in turn, who goes first alternating with the rounds: whichever follows a write
    // shares the machine with that write's writeback.
    for (int k = 0; k < 2; ++k) {
      const double t0 = now();
      if ((k == 0) == (r % 2 == 0)) {
        const std::string a = co_await asyncio::read_file(in);
        ours_read.push_back(mb / (now() - t0));
        if (a != data) throw std::runtime_error("read_file came back different");
      } else {
        const Bytes b = plain_read(in);
        plain_reads.push_back(mb / (now() - t0));
        if (!(b == data)) throw std::runtime_error("the plain read came back different");
      }
    }
    for (int k = 0; k < 2; ++k) {
      if ((k == 0) == (r % 2 == 0)) {
        std::string copy = data;  // write_file takes its own; the copy is made before the clock
        const double t0 = now();
        co_await asyncio::write_file(out, std::move(copy));
        ours_write.push_back(mb / (now() - t0));
      } else {
        // From a fresh copy too, freed inside the clock as write_file frees its own: on this VM
        // the kernel's first read of a page a process has never handed it costs several times
        // a later one, so writing `data` itself, read by every round before, ran at 3-4x the
        // speed of the same write from a new buffer.
        auto copy = std::make_unique<std::string>(data);
        const double t0 = now();
        plain_write(out, *copy);
        copy.reset();
        plain_writes.push_back(mb / (now() - t0));
      }
    }
  }
  std::remove(in.c_str());
  std::remove(out.c_str());
  co_return fmt::format(
      "{{\"mib\": {}, \"rounds\": {}, \"read_file_mb_s\": {:.0f}, \"plain_read_mb_s\": {:.0f}, "
      "\"write_file_mb_s\": {:.0f}, \"plain_write_mb_s\": {:.0f}}}",
      size >> 20, rounds, median(ours_read), median(plain_reads), median(ours_write),
      median(plain_writes));
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::puts(asyncio::run(all(quick)).c_str());
}
