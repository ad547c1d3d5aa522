// Fixed-capacity table of per-task policy state, keyed by thread id.
//
// Why not std::unordered_map: the hot path must not allocate, and tasks come and go
// without telling userspace. The table is sized once (a power of two >= 2x the task
// limit) and never grows. Lookup is linear probing over at most kProbe slots; when a
// probe window is full, the entry seen least recently in that window is recycled, so
// exited threads age out by themselves and a full table degrades to forgetting the
// coldest task's history, never to failing.
//
// Single-threaded: only the dispatcher thread touches it.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace zernel {

template <typename State>
class TaskTable {
 public:
  struct Slot {
    std::int32_t pid = 0;  // 0 = free (pid 0 is the idle task, never scheduled by us)
    std::uint64_t last_seen = 0;
    State state{};
  };

  static constexpr std::size_t kProbe = 16;

  // REQUIRES: max_tasks > 0. Allocates once, here.
  explicit TaskTable(std::size_t max_tasks)
      : capacity_(std::bit_ceil(max_tasks * 2 < kProbe ? kProbe : max_tasks * 2)),
        mask_(capacity_ - 1),
        slots_(std::make_unique<Slot[]>(capacity_)) {}

  // Returns the state of `pid`, creating it (value-initialized) if absent; `now` orders
  // recycling. `*created` tells the caller whether the state is fresh.
  State& get(std::int32_t pid, std::uint64_t now, bool* created) {
    std::size_t idx = hash(pid) & mask_;
    Slot* victim = nullptr;
    for (std::size_t i = 0; i < kProbe; ++i) {
      Slot& s = slots_[(idx + i) & mask_];
      if (s.pid == pid) {
        s.last_seen = now;
        *created = false;
        return s.state;
      }
      if (s.pid == 0) {
        victim = &s;
        break;
      }
      if (!victim || s.last_seen < victim->last_seen) victim = &s;
    }
    if (victim->pid != 0) ++recycled_;
    else ++size_;
    victim->pid = pid;
    victim->last_seen = now;
    victim->state = State{};
    *created = true;
    return victim->state;
  }

  // Looks up without inserting; nullptr if absent.
  State* find(std::int32_t pid) {
    return const_cast<State*>(static_cast<const TaskTable*>(this)->find(pid));
  }
  const State* find(std::int32_t pid) const {
    std::size_t idx = hash(pid) & mask_;
    for (std::size_t i = 0; i < kProbe; ++i) {
      const Slot& s = slots_[(idx + i) & mask_];
      if (s.pid == pid) return &s.state;
      if (s.pid == 0) return nullptr;
    }
    return nullptr;
  }

  std::size_t capacity() const { return capacity_; }
  std::size_t size() const { return size_; }
  std::uint64_t recycled() const { return recycled_; }

 private:
  // Fibonacci hashing: consecutive pids (threads of one process) spread over the table.
  static std::size_t hash(std::int32_t pid) {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) *
                                     0x9E3779B97F4A7C15ull) >> 16);
  }

  std::size_t capacity_;
  std::size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  std::size_t size_ = 0;
  std::uint64_t recycled_ = 0;
};

}  // namespace zernel
