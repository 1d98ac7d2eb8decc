// runtime/big_string.hpp — room in a big std::string, without a page fault per page (internal).
//
// No CPython twin. A string that grows past a MiB (a stream read to its end, a child's output,
// a big write waiting to be sent, a file read whole) gets fresh memory from the kernel, and on
// this VM the first touch of a fresh page costs about 2.9 ms per MiB — appending 64 MiB to a
// string 32 KiB at a time took 400 ms, almost all of it page faults, where the copying itself
// is 40 ms. Asking the kernel to fill in the pages in one call (madvise MADV_POPULATE_WRITE,
// Linux 5.14) costs about 0.2 ms per MiB: the same string grows in 120 ms. frame_pool.cpp maps
// its chunks with MAP_POPULATE for the same reason.
//
// reserve_more is the one way in: below kPopulateFrom it leaves the growing to std::string; past
// it, it moves the bytes into a new buffer at least twice as large whose pages were populated
// before the copy (std::string::reserve would copy first, into pages not yet there). On an older
// kernel the madvise fails and the pages just fault in as before.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gilio::asyncio::detail {

inline constexpr std::size_t kPopulateFrom = std::size_t{1} << 20;

// Pre-faults the whole pages inside [p, p + n) for writing; does nothing if the kernel cannot.
void populate_for_write(void* p, std::size_t n) noexcept;

// The slow half of reserve_more: a new, populated buffer (frame_pool.cpp).
void grow_populated(std::string& s, std::size_t more);

// Makes room for `more` bytes after s.size() (see above).
inline void reserve_more(std::string& s, std::size_t more) {
  if (s.size() + more <= s.capacity() || s.size() + more < kPopulateFrom) [[likely]]
    return;
  grow_populated(s, more);
}

// A copy of `bytes` in a new string, its pages populated first when it is big.
inline std::string copy_of(std::string_view bytes) {
  std::string out;
  reserve_more(out, bytes.size());
  out.append(bytes);
  return out;
}

}  // namespace gilio::asyncio::detail
