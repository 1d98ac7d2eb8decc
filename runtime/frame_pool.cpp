// runtime/frame_pool.cpp — the small-object pool behind coroutine frames and tasks.
//
// No CPython twin (CPython has pymalloc, its own small-object allocator, for the same reason:
// many small, short-lived objects). Each thread keeps a free list per 16-byte size class up to
// 512 bytes, linked through the free blocks themselves; an empty list is refilled from a fresh
// 64 KiB slab. A block freed on another thread joins that thread's list — blocks are plain
// memory, never returned to a slab; a thread's list is lost (not freed) when it exits. Slabs are
// cut from 1 MiB chunks mapped with MAP_POPULATE: the kernel fills in a chunk's 256 pages in one
// call instead of taking a page fault on each first touch, which was close to half the time of
// spawning a million tasks (the price: memory is committed a MiB at a time). Chunks are never
// freed: they stay reachable from one global registry, so a program that once had a million
// tasks keeps that memory for the next million. Under ASan or TSan the pool steps aside, so
// that every use after free is still caught.
//
// populate_for_write and grow_populated (big_string.hpp) apply the same remedy to big strings.
//
// array_alloc serves the loop's arrays that grow with the number of timers (the heap, the due
// list, the timer nodes): past a MiB they are mapped the same way, since a page fault on this VM
// costs about ten times what populating the page in the mmap call does (2.6 against 0.2 ms per
// MiB), and they grow with mremap, which moves page tables instead of copying bytes.
//
// Transparent huge pages (2 MiB-aligned chunks with MADV_HUGEPAGE) were tried and dropped: a
// huge page freed moments before comes back three times faster than 512 small ones, but a
// fresh one came eight times slower on this VM (200 MiB: 480 ms against 60 ms), whose balloon
// reports free 2 MiB blocks to the host, so the host must fault them in again.
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <algorithm>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "big_string.hpp"
#include "gilio/asyncio/coro.hpp"

namespace gilio::asyncio::detail {
namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kPooled = false;
#else
constexpr bool kPooled = true;
#endif
constexpr std::size_t kGranule = 16;
constexpr std::size_t kClasses = 512 / kGranule;
constexpr std::size_t kSlab = 64 * 1024;

// Per thread, per size class: a singly linked list threaded through the free blocks themselves.
// Plain data, zero-initialised: reaching it costs one TLS offset, no guard, no constructor —
// and it stays usable while other thread_local objects are being destroyed.
struct FreeLists {
  void* head[kClasses + 1];
  char* bump[kClasses + 1];  // the unused rest of the class's current slab...
  char* end[kClasses + 1];   // ...up to here: blocks are carved only when needed
};
thread_local FreeLists tl_free;

struct Registry {
  std::mutex mutex;
  std::vector<void*> chunks;
  char* next = nullptr;  // the unused rest of the current chunk
  char* end = nullptr;
};
constexpr std::size_t kChunk = 1 << 20;
Registry* registry_ptr = new Registry;  // never destroyed: frames may die during exit
Registry& registry() {
  return *registry_ptr;
}

// A fork while another thread refills a slab must not leave the child a locked mutex.
[[maybe_unused]] const bool fork_safe = [] {
  pthread_atfork([] { registry().mutex.lock(); }, [] { registry().mutex.unlock(); },
                 [] { registry_ptr = new Registry; });  // the child's: the old one stays locked
  return true;
}();

// Fresh memory with its pages filled in by the kernel in one call, not a fault at a time.
void* map_populated(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

std::size_t size_class(std::size_t size) {
  return (size + kGranule - 1) / kGranule;
}

// The list is empty: carve the next block from the current slab, or from a new one. Pages of a
// slab are touched only as blocks are used, so memory counts what is really in use.
// Out of line: inlined, its registers would make every pool_alloc save and restore six.
[[gnu::noinline]] void* refill(std::size_t c) {
  const std::size_t block = c * kGranule;
  if (tl_free.bump[c] == nullptr || tl_free.bump[c] + block > tl_free.end[c]) {
    char* slab;
    {
      Registry& r = registry();
      std::lock_guard lk(r.mutex);
      if (r.next == r.end) {
        void* p = map_populated(kChunk);
        r.chunks.push_back(p);
        r.next = static_cast<char*>(p);
        r.end = r.next + kChunk;
      }
      slab = r.next;
      r.next += kSlab;
    }
    tl_free.bump[c] = slab;
    tl_free.end[c] = slab + kSlab / block * block;
  }
  void* p = tl_free.bump[c];
  tl_free.bump[c] += block;
  return p;
}

// The loop's big arrays: 64-byte aligned; from a MiB on, mapped with MAP_POPULATE like the
// chunks above (under a sanitizer, plain heap memory, so that it is still checked).
constexpr std::size_t kArrayLine = 64;
constexpr std::size_t kMapped = std::size_t{1} << 20;
bool mapped(std::size_t bytes) {
  return kPooled && bytes >= kMapped;
}

}  // namespace

void* array_alloc(std::size_t bytes) {
  if (mapped(bytes)) return map_populated(bytes);
  // aligned_alloc wants a multiple of the alignment.
  void* p = std::aligned_alloc(kArrayLine, (bytes + kArrayLine - 1) / kArrayLine * kArrayLine);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void* array_grow(void* p, std::size_t old_bytes, std::size_t new_bytes) {
  if (p == nullptr) return array_alloc(new_bytes);
  if (mapped(old_bytes)) {
    // The kernel moves the page tables, not the bytes; then fills in the new tail in one call
    // (without MADV_POPULATE_WRITE, before Linux 5.14, the tail just faults in as it is used).
    void* q = ::mremap(p, old_bytes, new_bytes, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) throw std::bad_alloc();
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t kept = (old_bytes + page - 1) / page * page;
    if (kept < new_bytes)
      ::madvise(static_cast<char*>(q) + kept, new_bytes - kept, MADV_POPULATE_WRITE);
    return q;
  }
  void* q = array_alloc(new_bytes);
  std::memcpy(q, p, old_bytes);
  array_free(p, old_bytes);
  return q;
}

void array_free(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  if (mapped(bytes)) {
    ::munmap(p, bytes);
  } else {
    std::free(p);
  }
}

void populate_for_write(void* p, std::size_t n) noexcept {
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  const std::uintptr_t first = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
  const std::uintptr_t end = (reinterpret_cast<std::uintptr_t>(p) + n) / page * page;
  if (end > first) ::madvise(reinterpret_cast<void*>(first), end - first, MADV_POPULATE_WRITE);
}

void grow_populated(std::string& s, std::size_t more) {
  std::string bigger;
  bigger.reserve(std::max(2 * s.capacity(), s.size() + more));
  populate_for_write(bigger.data(), bigger.capacity());
  bigger.append(s);
  s.swap(bigger);
}

void* pool_alloc(std::size_t size) {
  const std::size_t c = size_class(size);
  if (!kPooled || c > kClasses) return ::operator new(size);
  void* p = tl_free.head[c];
  if (p == nullptr) return refill(c);
  void* next = *static_cast<void**>(p);
  tl_free.head[c] = next;
  // Blocks come back in the order their owners died, so after a burst of frees the list jumps
  // around memory and each block is a cache miss. Start loading the next one now: the caller
  // usually allocates again a little later, by when it has arrived (a nullptr is ignored).
  __builtin_prefetch(next, 1);
  return p;
}

void pool_free(void* p, std::size_t size) noexcept {
  const std::size_t c = size_class(size);
  if (!kPooled || c > kClasses) {
    ::operator delete(p);
    return;
  }
  *static_cast<void**>(p) = tl_free.head[c];
  tl_free.head[c] = p;
}

}  // namespace gilio::asyncio::detail
