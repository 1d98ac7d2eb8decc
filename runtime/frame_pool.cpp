// runtime/frame_pool.cpp — the small-object pool behind coroutine frames and tasks.
//
// No CPython twin (CPython has pymalloc, its own small-object allocator, for the same reason:
// many small, short-lived objects). Each thread keeps a free list per 16-byte size class up to
// 512 bytes; an empty list is refilled from a fresh 64 KiB slab. A block freed on another thread
// joins that thread's list — blocks are plain memory, never returned to a slab. Slabs are never
// freed: they stay reachable from one global registry, so a program that once had a million
// tasks keeps that memory for the next million. Under ASan or TSan the pool steps aside, so
// that every use after free is still caught.
#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

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

struct FreeLists {
  std::vector<void*> lists[kClasses + 1];
};

struct Registry {
  std::mutex mutex;
  std::vector<void*> slabs;
  std::vector<FreeLists*> threads;
};
Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: frames may die during exit
  return *r;
}

// Trivially destructible on purpose: frames may still be freed after thread_local destructors.
thread_local FreeLists* tl_lists = nullptr;

FreeLists& lists() {
  if (tl_lists == nullptr) {
    tl_lists = new FreeLists;
    Registry& r = registry();
    std::lock_guard lk(r.mutex);
    r.threads.push_back(tl_lists);
  }
  return *tl_lists;
}

std::size_t size_class(std::size_t size) {
  return (size + kGranule - 1) / kGranule;
}

}  // namespace

void* pool_alloc(std::size_t size) {
  const std::size_t c = size_class(size);
  if (!kPooled || c > kClasses) return ::operator new(size);
  std::vector<void*>& free = lists().lists[c];
  if (free.empty()) {
    const std::size_t block = c * kGranule;
    char* slab = static_cast<char*>(::operator new(kSlab));
    {
      Registry& r = registry();
      std::lock_guard lk(r.mutex);
      r.slabs.push_back(slab);
    }
    for (std::size_t off = kSlab / block * block; off >= block; off -= block) {
      free.push_back(slab + off - block);
    }
  }
  void* p = free.back();
  free.pop_back();
  return p;
}

void pool_free(void* p, std::size_t size) noexcept {
  const std::size_t c = size_class(size);
  if (!kPooled || c > kClasses) {
    ::operator delete(p);
    return;
  }
  try {
    lists().lists[c].push_back(p);
  } catch (...) {  // out of memory for the list itself: let the block go
  }
}

}  // namespace gilio::asyncio::detail
