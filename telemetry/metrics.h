// SchedulerMetrics: the scheduler's Prometheus metrics, by their product names.
//
// The scheduler fills a plain MetricsSnapshot on its control thread once per interval
// (totals it already keeps: shim counters, dispatcher counters, LatencyHistogram
// snapshots) and calls update(); serialize() renders the text the HTTP endpoint serves.
// Nothing here is on the dispatcher's hot path, and the hot path needs no lock for it.
//
// Exported families (text format 0.0.4):
//   zernel_scheduler_tasks{type="total"|"ml"}                           gauge
//   zernel_scheduler_decisions_total                                    counter
//   zernel_scheduler_phase_transitions_total                            counter
//   zernel_scheduler_phase_tasks{phase}                                 gauge
//   zernel_scheduler_phase_time_pct{phase}                              gauge (0..100)
//   zernel_scheduler_dispatch_latency_seconds{kind,phase}               histogram
//       kind: round_trip (enqueue -> decision reaches the kernel), enqueue_to_running,
//             decision_batch (userspace decision time per batch)
//       phase: "all" always; a phase name once that phase has a sample
//   zernel_scheduler_dispatches_total{path}                             counter
//       path: user kernel congested bypassed rescued cancelled bounced exited direct
//   zernel_scheduler_preempt_kicks_total                                counter
//   zernel_scheduler_grant_preemptions_total                            counter
//       wakeups that took a busy CPU under a preempting grant, without the dispatcher
//   zernel_scheduler_resumed_total                                      counter
//       tasks such a wakeup preempted, put back on their CPU without a trip up
//   zernel_scheduler_aged_total                                         counter
//       decided tasks that waited ZERNEL_AGED_AFTER_MS (2 s) in a queue, moved ahead of the rest (the watchdog)
//   zernel_scheduler_sync_wakeups_total                                 counter
//       direct wakeups from a short-burst waker put on the waker's CPU (a pipe's ping-pong)
//   zernel_scheduler_ring_used_bytes{ring="tasks"|"decisions"}           gauge
//   zernel_scheduler_tasks_waiting                                      gauge
//       tasks queued in the shim for a CPU (the dispatcher spins only while none waits)
//   zernel_scheduler_page_faults_total{kind="minor"|"major"}              counter (must stay 0)
//   zernel_scheduler_policy_info{policy}                                gauge, 1
//   zernel_scheduler_build_info{version}                                gauge, 1
// with phase one of data_loading gpu_compute nccl_collective optimizer_step unknown.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "telemetry/histogram.h"
#include "telemetry/prometheus.h"

namespace zernel::telemetry {

// Training phases, in the order every per-phase array uses (index 0..4).
inline constexpr std::size_t kPhaseCount = 5;
inline constexpr std::array<std::string_view, kPhaseCount> kPhaseNames = {
    "data_loading", "gpu_compute", "nccl_collective", "optimizer_step", "unknown"};

enum class LatencyKind : std::uint8_t { RoundTrip, EnqueueToRunning, DecisionBatch };
inline constexpr std::size_t kLatencyKindCount = 3;
inline constexpr std::array<std::string_view, kLatencyKindCount> kLatencyKindNames = {
    "round_trip", "enqueue_to_running", "decision_batch"};

// Cumulative totals since attach, as the shim counts them (zernel_shim_stats).
struct DispatchPathTotals {
  std::uint64_t user = 0;       // decisions applied
  std::uint64_t kernel = 0;     // dispatched by the shim without asking userspace
  std::uint64_t congested = 0;  // ring full
  std::uint64_t bypassed = 0;   // userspace stalled
  std::uint64_t rescued = 0;    // handed up, then taken back by the stall timer
  std::uint64_t cancelled = 0;  // stale decisions
  std::uint64_t bounced = 0;    // decision for a CPU the task may no longer use
  std::uint64_t exited = 0;     // decision for a task that had exited
  std::uint64_t direct = 0;     // wakeups placed on an idle CPU under a standing grant
};

struct LatencyByPhase {
  LatencySnapshot all;                                // phase="all"
  std::array<LatencySnapshot, kPhaseCount> by_phase;  // exported once non-empty
};

// Filled by the scheduler's control thread. Every *_total and every histogram is
// cumulative since the scheduler attached: SchedulerMetrics turns them into Prometheus
// counters that never go down, even when the source starts over (a re-attach).
// About 150 KiB (18 histogram snapshots): keep one, don't put it on a small stack.
struct MetricsSnapshot {
  std::uint64_t tasks_total = 0;
  std::uint64_t tasks_ml = 0;
  std::uint64_t decisions_total = 0;
  std::uint64_t phase_transitions_total = 0;
  std::array<std::uint64_t, kPhaseCount> phase_tasks{};
  std::array<double, kPhaseCount> phase_time_pct{};  // share of the interval's CPU time, 0..100
  DispatchPathTotals dispatches;
  std::uint64_t preempt_kicks_total = 0;
  std::uint64_t grant_preemptions_total = 0;
  std::uint64_t resumed_total = 0;
  std::uint64_t aged_total = 0;
  std::uint64_t sync_wakeups_total = 0;
  std::uint64_t ring_used_bytes_tasks = 0;
  std::uint64_t ring_used_bytes_decisions = 0;
  std::int64_t tasks_waiting = 0;  // Shim::tasks_waiting()
  std::uint64_t minor_faults_total = 0;
  std::uint64_t major_faults_total = 0;
  std::array<LatencyByPhase, kLatencyKindCount> latency;  // indexed by LatencyKind

  LatencyByPhase& latency_of(LatencyKind k) { return latency[static_cast<std::size_t>(k)]; }
  const LatencyByPhase& latency_of(LatencyKind k) const { return latency[static_cast<std::size_t>(k)]; }
};

class SchedulerMetrics {
 public:
  // Registers every family; build_info and policy_info are set here.
  SchedulerMetrics(std::string_view version, std::string_view policy);

  // Control thread only (one caller at a time).
  void update(const MetricsSnapshot& snap);
  // After a live policy switch: the old policy_info series disappears.
  void set_policy(std::string_view policy);

  // Any thread: the text to serve at /metrics.
  std::string serialize() const { return prom::Serialize(registry_); }
  prom::Registry& registry() { return registry_; }

  // Bucket bounds of every dispatch latency histogram, in seconds (1 us .. 1 s).
  static const prom::Histogram::BucketBoundaries& latency_buckets_seconds();

 private:
  // A Prometheus counter fed from a cumulative total; a total below the previous one means
  // the source restarted from zero, and all of it is new.
  struct TotalCounter {
    prom::Counter* counter = nullptr;
    std::uint64_t last = 0;
    void set_total(std::uint64_t total);
  };

  prom::Registry registry_;
  prom::Gauge* tasks_total_ = nullptr;
  prom::Gauge* tasks_ml_ = nullptr;
  TotalCounter decisions_;
  TotalCounter phase_transitions_;
  std::array<prom::Gauge*, kPhaseCount> phase_tasks_{};
  std::array<prom::Gauge*, kPhaseCount> phase_time_pct_{};
  prom::Family<prom::Histogram>* latency_family_ = nullptr;
  // [kind][phase], phase index kPhaseCount = "all"; nullptr until the series exists.
  std::array<std::array<prom::Histogram*, kPhaseCount + 1>, kLatencyKindCount> latency_{};
  std::array<TotalCounter, 9> dispatches_{};  // DispatchPathTotals' order
  TotalCounter preempt_kicks_;
  TotalCounter grant_preemptions_;
  TotalCounter resumed_;
  TotalCounter aged_;
  TotalCounter sync_wakeups_;
  prom::Gauge* ring_tasks_ = nullptr;
  prom::Gauge* ring_decisions_ = nullptr;
  prom::Gauge* tasks_waiting_ = nullptr;
  TotalCounter minor_faults_;
  TotalCounter major_faults_;
  prom::Family<prom::Gauge>* policy_family_ = nullptr;
  prom::Gauge* policy_info_ = nullptr;
};

}  // namespace zernel::telemetry
