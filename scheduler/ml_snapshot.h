// What the control thread knows about ML processes, GPUs and tenants, in the shape the
// dispatcher reads on its hot path: a fixed-capacity table keyed by process id plus small
// per-GPU and per-tenant arrays, published whole by SnapshotExchange.
//
// Why a snapshot and not shared maps: discovering ML jobs reads /proc and GPU drivers
// (milliseconds, allocations), which the dispatcher must never do or wait for. The control
// thread builds a complete new picture every general.gpu_poll_interval_ms and swaps it in;
// the dispatcher sees either the old or the new picture, never half of one, and never
// takes a lock.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "scheduler/config.h"
#include "scheduler/prefetch.h"

namespace zernel {

inline constexpr std::size_t kMaxSnapshotGpus = 64;  // GPUs per machine the placement knows
inline constexpr std::size_t kMaxTenants = 32;       // [[multi_tenant.rules]] honoured

struct ProcessInfo {
  std::int32_t tgid = 0;        // 0 = free slot
  std::int32_t job = 0;         // ML job root (a pid), 0 = not in an ML job
  std::uint64_t gpu_mask = 0;   // GPUs it uses: bit i = GPU i
  std::int16_t node = -1;       // NUMA node of its first GPU, -1 = none or unknown
  std::int8_t tenant = -1;      // index of the matching tenant rule, -1 = none
  std::int8_t priority = 0;     // its priority class's offset (Training +5, ...)
  bool nccl = false;            // runs NCCL (ml_process.h: mapped library or thread names)
};

// Everything the phase policy reads, as of one control-thread refresh.
struct MlSnapshot {
  // Processes; a power of two. Open addressing slows down sharply as the table fills: 4x
  // the 8,192 processes of 65,536 tasks at 8 threads each keeps a probe to a cache line or
  // two (at 8,192 slots the decision bench took 230 ns/decision at 65,536 tasks). 768 KiB.
  static constexpr std::size_t kCapacity = 32768;
  static constexpr std::size_t kProbe = 32;

  std::array<ProcessInfo, kCapacity> procs{};
  std::size_t nr_procs = 0;
  std::size_t nr_dropped = 0;  // processes that did not fit (probe window full)

  std::array<float, kMaxSnapshotGpus> gpu_util{};  // percent, 0 when unknown
  std::size_t nr_gpus = 0;
  // GPUs held per tenant rule (the rule's `gpus`, else the GPUs its processes use, at
  // least 1 so that a tenant without GPUs still runs).
  std::array<std::uint16_t, kMaxTenants> tenant_gpus{};

  Config::PhaseDetection detection;
  std::uint64_t eval_interval_ns = 100'000'000;
  Config::Numa numa;
  bool multi_tenant = false;

  void clear_procs() {
    procs.fill(ProcessInfo{});
    nr_procs = nr_dropped = 0;
  }

  // Control thread. Returns false when the probe window is full (counted, not fatal:
  // the process is then treated as no ML job).
  bool insert(const ProcessInfo& p) {
    for (std::size_t i = 0; i < kProbe; ++i) {
      ProcessInfo& s = procs[(hash(p.tgid) + i) & (kCapacity - 1)];
      if (s.tgid == 0 || s.tgid == p.tgid) {
        if (s.tgid == 0) ++nr_procs;
        s = p;
        return true;
      }
    }
    ++nr_dropped;
    return false;
  }

  // Dispatcher thread: nullptr when the process is unknown (no ML job, no tenant).
  const ProcessInfo* find(std::int32_t tgid) const {
    if (tgid <= 0) return nullptr;
    for (std::size_t i = 0; i < kProbe; ++i) {
      const ProcessInfo& s = procs[(hash(tgid) + i) & (kCapacity - 1)];
      if (s.tgid == tgid) return &s;
      if (s.tgid == 0) return nullptr;
    }
    return nullptr;
  }

  // Dispatcher thread: asks the CPU to bring in the slot where find(tgid) starts (the table
  // is 768 KiB, mostly out of the nearest caches).
  void prefetch(std::int32_t tgid) const {
    if (tgid > 0) prefetch_line(&procs[hash(tgid) & (kCapacity - 1)]);
  }

  // Highest utilization among the GPUs in `mask`.
  float gpu_util_of(std::uint64_t mask) const {
    float u = 0;
    for (; mask; mask &= mask - 1) {
      const auto i = static_cast<std::size_t>(std::countr_zero(mask));
      if (i < nr_gpus && gpu_util[i] > u) u = gpu_util[i];
    }
    return u;
  }

 private:
  static std::size_t hash(std::int32_t pid) {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(static_cast<std::uint32_t>(pid)) *
                                     0x9E3779B97F4A7C15ull) >> 20);
  }
};

// Hands snapshots from one writer (the control thread) to one reader (the dispatcher)
// through two buffers, without locks and without the reader ever waiting.
//
//   published_: written by the writer after filling a buffer; read by the reader, so the
//               buffer's contents are visible before it is used (release/acquire).
//   in_use_:    written by the reader when it moves to the published buffer, after its
//               last read of the previous one; read by the writer, which reuses a buffer
//               only when it is neither published nor in use.
// The reader announces (in_use_ = p) and then confirms that p is still the published
// buffer, retrying otherwise. Both sides use sequentially consistent operations for this
// handshake: with a single total order, a writer that published a newer buffer and then
// reads in_use_ either sees the reader's announcement of p (and keeps off p), or the
// reader's confirming load comes after that publish and sees it changed (and the reader
// moves on without having read p). Right after a publish there may be no free buffer (the
// reader has not moved yet): the writer then skips that refresh, which costs freshness,
// never correctness.
template <typename T>
class SnapshotExchange {
 public:
  SnapshotExchange() : buffers_{std::make_unique<T>(), std::make_unique<T>()} {}

  // Writer. The buffer to fill, or nullptr when the reader still holds the other one.
  T* begin_write() {
    const int pub = published_.load(std::memory_order_relaxed);  // only this thread writes it
    const int used = in_use_.load(std::memory_order_seq_cst);
    for (int i = 0; i < 2; ++i)
      if (i != pub && i != used) return buffers_[i].get();
    return nullptr;
  }
  // Writer: makes the buffer returned by begin_write() the current snapshot.
  void publish(T* filled) {
    published_.store(filled == buffers_[0].get() ? 0 : 1, std::memory_order_seq_cst);
  }

  // Reader, once per batch: the newest published snapshot (nullptr before the first).
  const T* acquire() {
    int pub = published_.load(std::memory_order_acquire);
    if (pub < 0) return nullptr;
    while (pub != reader_index_) {
      in_use_.store(pub, std::memory_order_seq_cst);
      const int again = published_.load(std::memory_order_seq_cst);
      if (again == pub) reader_index_ = pub;
      pub = again;
    }
    return buffers_[pub].get();
  }

 private:
  std::unique_ptr<T> buffers_[2];
  std::atomic<int> published_{-1};
  std::atomic<int> in_use_{-1};
  int reader_index_ = -1;  // reader-private copy of in_use_
};

}  // namespace zernel
