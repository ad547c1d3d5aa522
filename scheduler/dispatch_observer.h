// What the dispatcher thread records about every batch it decides: latency histograms and,
// while a trace is armed, the trace events. The control thread reads both.
//
// Latencies come from the shim, one trip late (zernel_task_msg.prev_*): enqueue -> decision
// applied (the userspace round trip) and enqueue -> running (what the task felt), plus the
// policy's decision time per batch measured here. Histograms are single-writer (this
// thread); see telemetry/histogram.h for the reader contract.
//
// Tracing: the control thread publishes a TraceRecorder with arm() (release) and takes it
// back with disarm(); on_batch() loads the pointer once per batch (acquire). disarm() then
// waits until no batch that may have seen the old pointer is still running, tracked by a
// sequence number that is odd while a batch is being recorded.
#pragma once

#include <atomic>
#include <cstdint>

#include "scheduler/dispatcher.h"
#include "telemetry/histogram.h"
#include "telemetry/trace.h"

namespace zernel {

class DispatchObserver final : public BatchObserver {
 public:
  void on_batch(std::span<const TaskEvent> events, std::span<const Decision> decisions,
                std::uint64_t decide_ns, std::span<const std::uint8_t> phases) override;

  // Any thread.
  const telemetry::LatencyHistogram& round_trip() const { return round_trip_; }
  const telemetry::LatencyHistogram& enqueue_to_running() const { return enqueue_to_running_; }
  const telemetry::LatencyHistogram& decision_batch() const { return decision_batch_; }

  // Control thread. The recorder must stay alive until disarm() returns.
  void arm(telemetry::TraceRecorder* recorder) { trace_.store(recorder, std::memory_order_release); }
  void disarm();

 private:
  void trace_batch(telemetry::TraceRecorder& rec, std::span<const TaskEvent> events,
                   std::span<const Decision> decisions, std::span<const std::uint8_t> phases);

  telemetry::LatencyHistogram round_trip_;
  telemetry::LatencyHistogram enqueue_to_running_;
  telemetry::LatencyHistogram decision_batch_;
  std::atomic<telemetry::TraceRecorder*> trace_{nullptr};
  std::atomic<std::uint64_t> batch_seq_{0};  // odd while on_batch() runs
};

}  // namespace zernel
