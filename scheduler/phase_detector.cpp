#include "scheduler/phase_detector.h"

namespace zernel {

Phase PhaseDetector::classify(const PhaseSignals& s) const {
  if (cfg_.nccl_detection_enabled && s.nccl_active && s.futex_waits > 0) {
    return Phase::NcclCollective;
  }
  if (s.last_burst_ns > 0 && s.last_burst_ns < cfg_.optimizer_burst_max_ns &&
      s.gpu_sync_since_last_burst) {
    return Phase::OptimizerStep;
  }
  if (s.feeds_gpu_thread ||
      (s.io_wait_fraction > cfg_.io_wait_threshold && s.gpu_util_pct < cfg_.gpu_idle_threshold)) {
    return Phase::DataLoading;
  }
  if (s.gpu_util_pct > cfg_.gpu_active_threshold && !s.cpu_burst_in_window) {
    return Phase::GpuCompute;
  }
  return Phase::Unknown;
}

bool PhaseTracker::observe(Phase raw, int stability_count) {
  if (raw == committed) {
    candidate = committed;
    streak = 0;
    return false;
  }
  if (raw == candidate) {
    ++streak;
  } else {
    candidate = raw;
    streak = 1;
  }
  if (streak < stability_count) return false;
  committed = raw;
  streak = 0;
  return true;
}

}  // namespace zernel
