// Fixed-capacity table of per-task policy state, keyed by thread id.
//
// Why not std::unordered_map: the hot path must not allocate, and tasks come and go
// without telling userspace. The table is sized once (a power of two >= 2x the task
// limit) and never grows. Lookup is linear probing over at most kProbe slots; when a
// probe window is full, the entry seen least recently in that window is recycled, so
// exited threads age out by themselves and a full table degrades to forgetting the
// coldest task's history, never to failing.
//
// Layout, for tables larger than the caches (65,536 tasks: 16 MiB of phase state): the
// keys are an array of their own, 16 to a cache line, so that a probe reads one line (two
// at a window that crosses one), and each state sits in whole cache lines of its own
// (a 128-byte slot is two lines, not three), touched only once its key is found.
// prefetch() starts those two misses for a task a few events ahead of its turn.
//
// Single-threaded: only the dispatcher thread touches it.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "scheduler/prefetch.h"

namespace zernel {

template <typename State>
class TaskTable {
 public:
  static constexpr std::size_t kProbe = 16;

  // REQUIRES: max_tasks > 0. Allocates once, here.
  explicit TaskTable(std::size_t max_tasks)
      : capacity_(std::bit_ceil(max_tasks * 2 < kProbe ? kProbe : max_tasks * 2)),
        mask_(capacity_ - 1),
        pids_(std::make_unique<std::int32_t[]>(capacity_)),
        slots_(std::make_unique<Slot[]>(capacity_)) {}

  // Returns the state of `pid`, creating it (value-initialized) if absent; `now` orders
  // recycling. `*created` tells the caller whether the state is fresh.
  State& get(std::int32_t pid, std::uint64_t now, bool* created) {
    std::size_t at = index_of(pid);
    if (at != capacity_ && pids_[at] == pid) {
      slots_[at].last_seen = now;
      *created = false;
      return slots_[at].state;
    }
    if (at == capacity_) {  // the window is full: recycle its coldest
      const std::size_t idx = hash(pid) & mask_;
      at = idx;
      for (std::size_t i = 1; i < kProbe; ++i) {
        const std::size_t j = (idx + i) & mask_;
        if (slots_[j].last_seen < slots_[at].last_seen) at = j;
      }
      ++recycled_;
    } else {
      ++size_;
    }
    pids_[at] = pid;
    slots_[at].last_seen = now;
    slots_[at].state = State{};
    *created = true;
    return slots_[at].state;
  }

  // Looks up without inserting; nullptr if absent.
  State* find(std::int32_t pid) {
    return const_cast<State*>(static_cast<const TaskTable*>(this)->find(pid));
  }
  const State* find(std::int32_t pid) const {
    const std::size_t at = index_of(pid);
    return at < capacity_ && pids_[at] == pid ? &slots_[at].state : nullptr;
  }

  // Asks the CPU to bring in the keys where a lookup of `pid` starts: the first stage of a
  // prefetch, some events before prefetch() for the same pid needs them.
  void prefetch_key(std::int32_t pid) const { prefetch_line(&pids_[hash(pid) & mask_]); }

  // Asks the CPU to bring in the state of `pid` (where get() will find or create it), so
  // that the miss overlaps the work on the events before it: the slot's first `lines`
  // cache lines (the timestamp and the state's first 64 - 8 bytes, then the rest), all of
  // it by default. Reads the keys (probably cached: 4 bytes a slot), writes nothing.
  void prefetch(std::int32_t pid, std::size_t lines = sizeof(Slot) / 64) const {
    const std::size_t at = index_of(pid);
    if (at == capacity_) return;  // a full window: get() will recycle, no guess worth making
    const auto* p = reinterpret_cast<const char*>(&slots_[at]);
    prefetch_line(p);
    if (sizeof(Slot) > 64 && lines > 1) prefetch_line(p + 64);
  }

  std::size_t capacity() const { return capacity_; }
  std::size_t size() const { return size_; }
  std::uint64_t recycled() const { return recycled_; }

 private:
  // A slot's size rounded to a power of two up to a cache line, and aligned to it: a
  // 16-byte slot shares a line with three others, a 128-byte one takes two lines exactly.
  static constexpr std::size_t kSlotAlign =
      std::bit_ceil(sizeof(std::uint64_t) + sizeof(State)) < 64 ? std::bit_ceil(sizeof(std::uint64_t) + sizeof(State))
                                                                 : 64;
  struct alignas(kSlotAlign) Slot {
    std::uint64_t last_seen = 0;
    State state{};
  };

  // The slot that holds `pid`, or the free one where it would go, or capacity_ if neither
  // is in its window.
  std::size_t index_of(std::int32_t pid) const {
    const std::size_t idx = hash(pid) & mask_;
    for (std::size_t i = 0; i < kProbe; ++i) {
      const std::size_t at = (idx + i) & mask_;
      if (pids_[at] == pid || pids_[at] == 0) return at;
    }
    return capacity_;
  }

  // Fibonacci hashing: consecutive pids (threads of one process) spread over the table.
  static std::size_t hash(std::int32_t pid) {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) *
                                     0x9E3779B97F4A7C15ull) >> 16);
  }

  std::size_t capacity_;
  std::size_t mask_;
  std::unique_ptr<std::int32_t[]> pids_;  // 0 = free (pid 0 is the idle task, never scheduled by us)
  std::unique_ptr<Slot[]> slots_;
  std::size_t size_ = 0;
  std::uint64_t recycled_ = 0;
};

}  // namespace zernel
