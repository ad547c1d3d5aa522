// TraceRecorder: a bounded, preallocated log of dispatch events, written out as a
// Chrome/Perfetto JSON trace (open it in ui.perfetto.dev or chrome://tracing).
//
// In the trace, each thread (tid = pid) sits under its process (pid = tgid); a run on a
// CPU, from `running` to `stopping`, is one slice ("X" event) named after the task's
// training phase; enqueues and decisions are instant events ("i"); threads named with
// name_thread() get "M" thread_name metadata. Timestamps are CLOCK_MONOTONIC, in
// microseconds with nanosecond decimals, so the trace lines up with perf and bpftrace.
//
// Recording: one writer thread calls record() and name_thread(); neither allocates, locks
// or makes a system call. When the buffer is full, new events are dropped and counted
// (dropped()): the first `capacity` events are kept, not the last, so a buffer never
// changes under a reader. Each slot is written before the size that covers it is
// published (release), so any thread may call chrome_json()/write_chrome_json() while
// the writer goes on; it sees a consistent prefix.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace zernel::telemetry {

enum class TraceKind : std::uint8_t { Enqueue, Decision, Running, Stopping };

struct TraceEvent {
  std::uint64_t ts_ns = 0;  // CLOCK_MONOTONIC (the shim's bpf_ktime_get_ns())
  std::int32_t pid = 0;     // thread id
  std::int32_t tgid = 0;    // process id
  std::int32_t cpu = -1;    // the CPU it ran on, or the decision's target (-1 = any)
  TraceKind kind = TraceKind::Enqueue;
  std::uint8_t phase = 0;  // index into the recorder's phase names
};
static_assert(sizeof(TraceEvent) == 24);

class TraceRecorder {
 public:
  static constexpr std::size_t kCommLen = 16;

  // Allocates both buffers here and only here. Phase names default to kPhaseNames
  // (telemetry/metrics.h); an event's phase past the end prints as "phase<N>".
  explicit TraceRecorder(std::size_t capacity, std::size_t max_threads = 4096,
                         std::vector<std::string> phase_names = {});

  // Writer thread. False (and counted in dropped()) when the buffer is full.
  bool record(const TraceEvent& ev) noexcept;
  // Writer thread: a thread's name (comm, truncated to 15 bytes), for thread_name
  // metadata. Call it once per thread; the last name given wins. False when full.
  bool name_thread(std::int32_t pid, std::int32_t tgid, std::string_view comm) noexcept;

  std::size_t capacity() const { return capacity_; }
  std::size_t size() const { return size_.load(std::memory_order_acquire); }
  std::uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t names_dropped() const { return names_dropped_.load(std::memory_order_relaxed); }

  // Writer thread, with no reader running: forget every event and name, keep the buffers.
  void clear() noexcept;

  // Any thread. The trace as JSON: {"traceEvents":[...],"displayTimeUnit":"ns",...}.
  std::string chrome_json() const;
  // Any thread. Empty on success, else one line naming the file and the error.
  std::string write_chrome_json(const std::filesystem::path& path) const;

 private:
  struct ThreadName {
    std::int32_t pid = 0;
    std::int32_t tgid = 0;
    char comm[kCommLen] = {};
  };

  std::size_t capacity_;
  std::size_t max_threads_;
  std::vector<std::string> phase_names_;
  std::unique_ptr<TraceEvent[]> events_;
  std::unique_ptr<ThreadName[]> names_;
  std::atomic<std::size_t> size_{0};
  std::atomic<std::size_t> names_size_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> names_dropped_{0};
};

}  // namespace zernel::telemetry
