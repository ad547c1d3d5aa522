#include "telemetry/metrics.h"

#include <linux/types.h>  // the __u32/__u64 of the shared ABI header

#include "bpf_core/zernel_abi.h"  // ZERNEL_AGED_AFTER_MS, for the aged metric's help

namespace zernel::telemetry {

namespace {

constexpr std::array<std::string_view, 9> kDispatchPaths = {"user",      "kernel",    "congested",
                                                            "bypassed",  "rescued",   "cancelled",
                                                            "bounced",   "exited",    "direct"};

std::string str(std::string_view s) { return std::string(s); }

}  // namespace

void SchedulerMetrics::TotalCounter::set_total(std::uint64_t total) {
  const std::uint64_t delta = total >= last ? total - last : total;
  counter->Increment(static_cast<double>(delta));
  last = total;
}

const prom::Histogram::BucketBoundaries& SchedulerMetrics::latency_buckets_seconds() {
  // 1-2.5-5 steps: a healthy round trip is tens of microseconds, a stalled one hundreds of
  // milliseconds (the stall timeout is 250 ms). The same bounds for every kind and phase so
  // that series can be summed in PromQL.
  static const prom::Histogram::BucketBoundaries bounds = {
      1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
      2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0};
  return bounds;
}

SchedulerMetrics::SchedulerMetrics(std::string_view version, std::string_view policy) {
  auto& tasks = prom::BuildGauge()
                    .Name("zernel_scheduler_tasks")
                    .Help("Tasks the scheduler tracks: all of them (type=total) and those in an ML job (type=ml).")
                    .Register(registry_);
  tasks_total_ = &tasks.Add({{"type", "total"}});
  tasks_ml_ = &tasks.Add({{"type", "ml"}});

  decisions_.counter = &prom::BuildCounter()
                            .Name("zernel_scheduler_decisions_total")
                            .Help("Scheduling decisions made in userspace.")
                            .Register(registry_)
                            .Add({});
  phase_transitions_.counter = &prom::BuildCounter()
                                    .Name("zernel_scheduler_phase_transitions_total")
                                    .Help("Changes of a task's detected training phase.")
                                    .Register(registry_)
                                    .Add({});

  auto& phase_tasks = prom::BuildGauge()
                          .Name("zernel_scheduler_phase_tasks")
                          .Help("Tasks currently in each training phase.")
                          .Register(registry_);
  auto& phase_pct = prom::BuildGauge()
                        .Name("zernel_scheduler_phase_time_pct")
                        .Help("Share of the last interval's CPU time spent in each training phase, in percent.")
                        .Register(registry_);
  for (std::size_t p = 0; p < kPhaseCount; ++p) {
    phase_tasks_[p] = &phase_tasks.Add({{"phase", str(kPhaseNames[p])}});
    phase_time_pct_[p] = &phase_pct.Add({{"phase", str(kPhaseNames[p])}});
  }

  latency_family_ = &prom::BuildHistogram()
                         .Name("zernel_scheduler_dispatch_latency_seconds")
                         .Help("Dispatch latency: round_trip = enqueue to decision in the kernel, "
                               "enqueue_to_running = enqueue to running on a CPU, "
                               "decision_batch = userspace decision time per batch.")
                         .Register(registry_);
  for (std::size_t k = 0; k < kLatencyKindCount; ++k) {
    latency_[k][kPhaseCount] =
        &latency_family_->Add({{"kind", str(kLatencyKindNames[k])}, {"phase", "all"}}, latency_buckets_seconds());
  }

  auto& dispatches = prom::BuildCounter()
                         .Name("zernel_scheduler_dispatches_total")
                         .Help("Tasks dispatched, by path: user = decision applied, kernel = by the shim "
                               "without asking, congested/bypassed/rescued = fallback queue, "
                               "cancelled/bounced/exited = decisions not applied as sent, direct = wakeups placed on an "
                               "idle CPU under the policy's standing grant (reported, not decided).")
                         .Register(registry_);
  for (std::size_t i = 0; i < kDispatchPaths.size(); ++i) {
    dispatches_[i].counter = &dispatches.Add({{"path", str(kDispatchPaths[i])}});
  }

  preempt_kicks_.counter = &prom::BuildCounter()
                                .Name("zernel_scheduler_preempt_kicks_total")
                                .Help("Preemption kicks sent to CPUs for latency-sensitive wakeups.")
                                .Register(registry_)
                                .Add({});
  grant_preemptions_.counter = &prom::BuildCounter()
                                    .Name("zernel_scheduler_grant_preemptions_total")
                                    .Help("Wakeups that took a busy CPU under a preempting grant, without the dispatcher.")
                                    .Register(registry_)
                                    .Add({});
  resumed_.counter = &prom::BuildCounter()
                          .Name("zernel_scheduler_resumed_total")
                          .Help("Tasks a grant's wakeup preempted, put back on their CPU without a trip to userspace.")
                          .Register(registry_)
                          .Add({});
  aged_.counter = &prom::BuildCounter()
                       .Name("zernel_scheduler_aged_total")
                       .Help("Decided tasks that waited " + std::to_string(ZERNEL_AGED_AFTER_MS) +
                             " ms in a queue, moved ahead of the others before the kernel's watchdog.")
                       .Register(registry_)
                       .Add({});
  sync_wakeups_.counter = &prom::BuildCounter()
                               .Name("zernel_scheduler_sync_wakeups_total")
                               .Help("Direct wakeups from a waker about to sleep (synchronous, short bursts), run next on the waker's CPU instead of waking an idle one.")
                               .Register(registry_)
                               .Add({});

  auto& rings = prom::BuildGauge()
                    .Name("zernel_scheduler_ring_used_bytes")
                    .Help("Bytes waiting in the task ring (kernel to userspace) and the decision ring (back).")
                    .Register(registry_);
  ring_tasks_ = &rings.Add({{"ring", "tasks"}});
  ring_decisions_ = &rings.Add({{"ring", "decisions"}});

  tasks_waiting_ = &prom::BuildGauge()
                        .Name("zernel_scheduler_tasks_waiting")
                        .Help("Tasks queued in the shim for a CPU; the dispatcher spins only while none waits.")
                        .Register(registry_)
                        .Add({});

  auto& faults = prom::BuildCounter()
                     .Name("zernel_scheduler_page_faults_total")
                     .Help("Page faults of the scheduler process since attach; must stay 0.")
                     .Register(registry_);
  minor_faults_.counter = &faults.Add({{"kind", "minor"}});
  major_faults_.counter = &faults.Add({{"kind", "major"}});

  policy_family_ = &prom::BuildGauge()
                        .Name("zernel_scheduler_policy_info")
                        .Help("The scheduling policy in use (value is always 1).")
                        .Register(registry_);
  policy_info_ = &policy_family_->Add({{"policy", str(policy)}});
  policy_info_->Set(1);

  prom::BuildGauge()
      .Name("zernel_scheduler_build_info")
      .Help("The scheduler's version (value is always 1).")
      .Register(registry_)
      .Add({{"version", str(version)}})
      .Set(1);
}

void SchedulerMetrics::set_policy(std::string_view policy) {
  prom::Gauge& next = policy_family_->Add({{"policy", str(policy)}});
  next.Set(1);
  if (&next != policy_info_) policy_family_->Remove(policy_info_);
  policy_info_ = &next;
}

void SchedulerMetrics::update(const MetricsSnapshot& s) {
  tasks_total_->Set(static_cast<double>(s.tasks_total));
  tasks_ml_->Set(static_cast<double>(s.tasks_ml));
  decisions_.set_total(s.decisions_total);
  phase_transitions_.set_total(s.phase_transitions_total);
  for (std::size_t p = 0; p < kPhaseCount; ++p) {
    phase_tasks_[p]->Set(static_cast<double>(s.phase_tasks[p]));
    phase_time_pct_[p]->Set(s.phase_time_pct[p]);
  }

  for (std::size_t k = 0; k < kLatencyKindCount; ++k) {
    const LatencyByPhase& lat = s.latency[k];
    latency_[k][kPhaseCount]->SetFromSnapshot(lat.all);
    for (std::size_t p = 0; p < kPhaseCount; ++p) {
      prom::Histogram*& h = latency_[k][p];
      if (h == nullptr) {
        // A series per phase only once the phase has a sample: most machines never see
        // most phases, and 15 empty histograms would be noise in every scrape.
        if (lat.by_phase[p].count() == 0) continue;
        h = &latency_family_->Add({{"kind", str(kLatencyKindNames[k])}, {"phase", str(kPhaseNames[p])}},
                                  latency_buckets_seconds());
      }
      h->SetFromSnapshot(lat.by_phase[p]);
    }
  }

  const DispatchPathTotals& d = s.dispatches;
  const std::array<std::uint64_t, 9> paths = {d.user,      d.kernel,  d.congested, d.bypassed, d.rescued,
                                              d.cancelled, d.bounced, d.exited,    d.direct};
  for (std::size_t i = 0; i < paths.size(); ++i) dispatches_[i].set_total(paths[i]);
  preempt_kicks_.set_total(s.preempt_kicks_total);
  grant_preemptions_.set_total(s.grant_preemptions_total);
  resumed_.set_total(s.resumed_total);
  aged_.set_total(s.aged_total);
  sync_wakeups_.set_total(s.sync_wakeups_total);
  ring_tasks_->Set(static_cast<double>(s.ring_used_bytes_tasks));
  ring_decisions_->Set(static_cast<double>(s.ring_used_bytes_decisions));
  tasks_waiting_->Set(static_cast<double>(s.tasks_waiting));
  minor_faults_.set_total(s.minor_faults_total);
  major_faults_.set_total(s.major_faults_total);
}

}  // namespace zernel::telemetry
