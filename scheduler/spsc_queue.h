// A bounded single-producer single-consumer queue (after rigtorp/SPSCQueue), for events
// the dispatcher thread reports to the control thread (phase changes).
//
// Why our own: the producer is the hot path, which must never block or allocate, and
// must drop rather than wait when the consumer falls behind. Boost.Lockfree's
// spsc_queue would do, but pulls Boost into a project that otherwise needs none of it.
//
// Invariants:
//   head_ (next slot to read) is written only by the consumer, tail_ (next slot to write)
//   only by the producer. The producer's release store of tail_ publishes the slot it
//   filled; the consumer's acquire load of tail_ sees it. The consumer's release store of
//   head_ hands a slot back; the producer's acquire load of head_ sees it freed before
//   overwriting it. Each side caches the other's index and re-reads it only when the
//   cache says full/empty, so the common case touches no shared cache line but its own.
//   The two indices sit on separate cache lines so the threads do not false-share.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <memory>
#include <new>

namespace zernel {

template <typename T>
class SpscQueue {
 public:
  // Allocates once; capacity is rounded up to a power of two.
  explicit SpscQueue(std::size_t capacity)
      : cap_(std::bit_ceil(capacity < 2 ? 2 : capacity)), slots_(std::make_unique<T[]>(cap_)) {}

  // Producer. False (and nothing written) when full.
  bool try_push(const T& v) {
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    if (t - head_cache_ == cap_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (t - head_cache_ == cap_) return false;
    }
    slots_[t & (cap_ - 1)] = v;
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // Consumer. False when empty.
  bool try_pop(T* out) {
    const std::size_t h = head_.load(std::memory_order_relaxed);
    if (h == tail_cache_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (h == tail_cache_) return false;
    }
    *out = slots_[h & (cap_ - 1)];
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

  std::size_t capacity() const { return cap_; }

 private:
  static constexpr std::size_t kLine = 64;
  const std::size_t cap_;
  std::unique_ptr<T[]> slots_;
  alignas(kLine) std::atomic<std::size_t> head_{0};
  std::size_t tail_cache_ = 0;  // consumer's view of tail_
  alignas(kLine) std::atomic<std::size_t> tail_{0};
  std::size_t head_cache_ = 0;  // producer's view of head_
};

}  // namespace zernel
