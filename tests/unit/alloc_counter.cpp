// Replaces the global operator new/delete for the test binary that links it (a replacement
// may not be inline, hence a source file rather than a header).
#include "tests/unit/alloc_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> g_allocations{0};
// Out of line: GCC's -Wmismatched-new-delete, seeing free() inlined on memory from `new`,
// would not know that this operator new is malloc.
[[gnu::noinline]] void release(void* p) noexcept { std::free(p); }
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void operator delete(void* p) noexcept { release(p); }
void operator delete[](void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }
void operator delete[](void* p, std::size_t) noexcept { release(p); }

namespace zernel::testing {
std::uint64_t allocations_so_far() { return g_allocations.load(std::memory_order_relaxed); }
}  // namespace zernel::testing
