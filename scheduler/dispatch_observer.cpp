#include "scheduler/dispatch_observer.h"

#include <thread>

#include "scheduler/phase.h"

namespace zernel {

void DispatchObserver::on_batch(std::span<const TaskEvent> events,
                                std::span<const Decision> decisions, std::uint64_t decide_ns,
                                std::span<const std::uint8_t> phases) {
  // Odd: a batch is in progress. The store is relaxed; the acquire load of trace_ below
  // cannot move above it on the reader's side of disarm(), which re-reads both.
  batch_seq_.store(batch_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst);

  decision_batch_.record(decide_ns);
  for (const TaskEvent& ev : events) {
    // A direct wakeup made no round trip, but waited from its enqueue to running as any.
    if (ev.flags & ZERNEL_TASK_PREV_DIRECT) {
      enqueue_to_running_.record(ev.prev_running_ns);
      continue;
    }
    if (ev.prev_decision_ns == 0) continue;  // previous trip bypassed userspace
    round_trip_.record(ev.prev_decision_ns);
    enqueue_to_running_.record(ev.prev_running_ns);
  }
  if (telemetry::TraceRecorder* rec = trace_.load(std::memory_order_acquire))
    trace_batch(*rec, events, decisions, phases);

  batch_seq_.store(batch_seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

void DispatchObserver::trace_batch(telemetry::TraceRecorder& rec, std::span<const TaskEvent> events,
                                   std::span<const Decision> decisions, std::span<const std::uint8_t> phases) {
  using telemetry::TraceKind;
  constexpr auto kUnknown = static_cast<std::uint8_t>(phase_index(Phase::Unknown));
  for (std::size_t i = 0; i < events.size(); ++i) {
    const TaskEvent& ev = events[i];
    // The phase the policy decided this enqueue in. The previous trip's run was decided in
    // the phase of the previous enqueue, which is the same one except at a transition.
    const std::uint8_t ph = i < phases.size() ? phases[i] : kUnknown;
    rec.name_thread(ev.pid, ev.tgid, comm_of(ev));
    // The previous trip, complete now that the shim reported it: decided, ran on
    // prev_cpu from `start` for about runtime_ns (CPU time since that enqueue).
    if (ev.prev_decision_ns != 0 || (ev.flags & ZERNEL_TASK_PREV_DIRECT)) {
      const std::uint64_t start = ev.prev_enq_ns + ev.prev_running_ns;
      rec.record({ev.prev_enq_ns + ev.prev_decision_ns, ev.pid, ev.tgid, -1, TraceKind::Decision, ph});
      rec.record({start, ev.pid, ev.tgid, ev.prev_cpu, TraceKind::Running, ph});
      rec.record({start + ev.runtime_ns, ev.pid, ev.tgid, ev.prev_cpu, TraceKind::Stopping, ph});
    }
    rec.record({ev.enq_ns, ev.pid, ev.tgid, decisions[i].cpu, TraceKind::Enqueue, ph});
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
