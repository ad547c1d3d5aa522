// Phase classification of one ML task from what it did during one evaluation window
// (general.phase_eval_interval_ms), and the hysteresis that keeps a task's phase from
// flapping with every noisy window.
//
// Control path: called once per ML task per window, never per scheduling event. Only
// tasks of ML processes (see ml_process.h) should be classified; everything else stays
// Phase::Unknown without asking.
#pragma once

#include <cstdint>

#include "scheduler/config.h"
#include "scheduler/phase.h"

namespace zernel {

// What one task did during one window. Whoever fills it in (the ML policy, from the
// shim's per-task messages and the GPU source) owns the accounting; the detector only
// applies the rules.
struct PhaseSignals {
  double io_wait_fraction = 0;  // share of the window the task spent in I/O wait, 0..1
  double gpu_util_pct = 0;      // utilization of the GPU(s) the task's process uses, 0..100
  bool cpu_burst_in_window = false;  // it did real CPU work in the window (the phase policy: > 5% of it)
  std::uint64_t last_burst_ns = 0;   // length of its last CPU burst (0 = none seen yet)
  bool gpu_sync_since_last_burst = false;  // it waited for the GPU after that burst
  std::uint32_t futex_waits = 0;           // futex sleeps during the window
  bool nccl_active = false;                // its process runs NCCL (ml_process.h)
  // The thread the GPU-feeding (trainer) thread keeps waiting for: it woke a blocked
  // trainer thread during the window. CPU-bound DataLoader workers (decode, augment)
  // never wait on I/O, so this is how they are recognised as data loading.
  bool feeds_gpu_thread = false;
};

// The raw per-window rule. Several rules can match one window; the first in this order
// wins, most specific signal first:
//   1. NcclCollective  nccl_detection_enabled && nccl_active && futex_waits > 0.
//                      An all-reduce keeps the GPU busy too, so it must beat GpuCompute.
//   2. OptimizerStep   0 < last_burst_ns < optimizer_burst_max_ns && gpu_sync_since_last_burst.
//                      A short burst right after a GPU sync is the step between two
//                      forward/backward passes; it would otherwise read as GpuCompute
//                      when that burst ended before the window began.
//   3. DataLoading     feeds_gpu_thread, or (io_wait_fraction > io_wait_threshold &&
//                      gpu_util_pct < gpu_idle_threshold). A feeder stays DataLoading
//                      whatever the GPU does: prefetching while the GPU computes is still
//                      the critical path of the next step.
//   4. GpuCompute      gpu_util_pct > gpu_active_threshold && !cpu_burst_in_window.
//   5. Unknown         otherwise.
// Every threshold comparison is strict, as in the spec's table: a value exactly at a
// threshold does not match.
class PhaseDetector {
 public:
  explicit PhaseDetector(const Config::PhaseDetection& cfg) : cfg_(cfg) {}

  Phase classify(const PhaseSignals& s) const;

  int stability_count() const { return static_cast<int>(cfg_.phase_stability_count); }
  const Config::PhaseDetection& config() const { return cfg_; }

 private:
  Config::PhaseDetection cfg_;
};

// Hysteresis for one task: a new phase commits only after `stability_count` identical raw
// classifications in a row. Any window that disagrees restarts the count, and a window
// that agrees with the committed phase drops the candidate, so inputs that alternate
// (A,B,A,B,...) never commit anything.
struct PhaseTracker {
  Phase committed = Phase::Unknown;
  Phase candidate = Phase::Unknown;
  int streak = 0;  // identical classifications of `candidate` in a row

  // Feeds one raw classification; returns true when it committed a transition
  // (`committed` changed). stability_count <= 1 commits every change at once.
  bool observe(Phase raw, int stability_count);
};

}  // namespace zernel
