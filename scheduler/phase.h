// The phases of an ML training step that the scheduler tells apart, per task (thread).
// Unknown is both "not an ML task" and "an ML task doing none of the recognised things".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace zernel {

enum class Phase : std::uint8_t { DataLoading, GpuCompute, NcclCollective, OptimizerStep, Unknown };

inline constexpr std::size_t kPhaseCount = 5;

// snake_case, stable: these are label values in the metrics.
constexpr std::string_view phase_name(Phase p) {
  switch (p) {
    case Phase::DataLoading: return "data_loading";
    case Phase::GpuCompute: return "gpu_compute";
    case Phase::NcclCollective: return "nccl_collective";
    case Phase::OptimizerStep: return "optimizer_step";
    case Phase::Unknown: break;
  }
  return "unknown";
}

// For per-phase arrays: std::array<T, kPhaseCount> indexed by phase_index(p).
constexpr std::size_t phase_index(Phase p) { return static_cast<std::size_t>(p); }

}  // namespace zernel
