// Software prefetch for the dispatcher's tables that are larger than the caches.
#pragma once

namespace zernel {

// Starts loading the cache line at `p` into every cache level, without waiting for it.
// GCC 12 deletes a __builtin_prefetch whose address comes out of a loop (its dead-code pass
// does not count the prefetch as a use of the loop's result, and removes both), so x86 gets
// the instruction itself.
inline void prefetch_line(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

}  // namespace zernel
