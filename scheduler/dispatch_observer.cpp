#include "scheduler/dispatch_observer.h"

#include <thread>

namespace zernel {

void DispatchObserver::on_batch(std::span<const TaskEvent> events,
                                std::span<const Decision> decisions, std::uint64_t decide_ns) {
  // Odd: a batch is in progress. The store is relaxed; the acquire load of trace_ below
  // cannot move above it on the reader's side of disarm(), which re-reads both.
  batch_seq_.store(batch_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);

  decision_batch_.record(decide_ns);
  for (const TaskEvent& ev : events) {
    if (ev.prev_decision_ns == 0) continue;  // previous trip bypassed userspace
    round_trip_.record(ev.prev_decision_ns);
    enqueue_to_running_.record(ev.prev_running_ns);
  }
  if (telemetry::TraceRecorder* rec = trace_.load(std::memory_order_acquire))
    trace_batch(*rec, events, decisions);

  batch_seq_.store(batch_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void DispatchObserver::trace_batch(telemetry::TraceRecorder& rec, std::span<const TaskEvent> events,
                                   std::span<const Decision> decisions) {
  using telemetry::TraceKind;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const TaskEvent& ev = events[i];
    rec.name_thread(ev.pid, ev.tgid, comm_of(ev));
    // The previous trip, complete now that the shim reported it: decided, ran on
    // prev_cpu from `start` for about runtime_ns (CPU time since that enqueue).
    if (ev.prev_decision_ns != 0) {
      const std::uint64_t start = ev.prev_enq_ns + ev.prev_running_ns;
      rec.record({ev.prev_enq_ns + ev.prev_decision_ns, ev.pid, ev.tgid, -1, TraceKind::Decision, 4});
      rec.record({start, ev.pid, ev.tgid, ev.prev_cpu, TraceKind::Running, 4});
      rec.record({start + ev.runtime_ns, ev.pid, ev.tgid, ev.prev_cpu, TraceKind::Stopping, 4});
    }
    rec.record({ev.enq_ns, ev.pid, ev.tgid, decisions[i].cpu, TraceKind::Enqueue, 4});
  }
}

void DispatchObserver::disarm() {
  trace_.store(nullptr, std::memory_order_seq_cst);
  // A batch that loaded the old pointer is still inside on_batch() only if the sequence is
  // odd now; wait for it to move on. An idle dispatcher (even) holds no pointer.
  const std::uint64_t seq = batch_seq_.load(std::memory_order_seq_cst);
  if (seq % 2 == 0) return;
  while (batch_seq_.load(std::memory_order_acquire) == seq) std::this_thread::yield();
}

}  // namespace zernel
