// The control-path half of the phase policy: discovers ML jobs, GPUs and tenants and
// publishes them to the dispatcher as MlSnapshots; collects the phase changes the
// dispatcher reports and answers `zernelctl phases` and the per-phase metrics from them.
//
//   /proc, NVML or /run/zernel/gpu_sim, sysfs --tick()--> SnapshotExchange --> PhasePolicy
//   PhasePolicy --SpscQueue<PhaseChange>--> tick() --> phases(), counts()
//
// Threads: tick() runs on the agent's control thread; phases()/counts()/set_config() may
// be called from control-server threads. A mutex guards everything here; the dispatcher
// never takes it (it only touches the exchange and the queue, which are lock-free).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "scheduler/config.h"
#include "scheduler/gpu_source.h"
#include "scheduler/ml_process.h"
#include "scheduler/ml_snapshot.h"
#include "scheduler/phase.h"
#include "scheduler/phase_policy.h"
#include "scheduler/spsc_queue.h"
#include "topology/topology.h"

namespace zernel {

struct MlMonitorOptions {
  Config config;
  std::filesystem::path proc_root = "/proc";
  std::optional<topology::Topology> topology;  // GPU -> node when the GPU source does not say
  std::unique_ptr<GpuSource> gpus;             // nullptr: make_gpu_source() defaults
};

class MlMonitor {
 public:
  explicit MlMonitor(MlMonitorOptions opts);

  SnapshotExchange<MlSnapshot>& snapshots() { return exchange_; }
  SpscQueue<PhaseChange>& changes() { return changes_; }

  // Control thread, every ~100 ms: drains phase changes; every gpu_poll_interval_ms also
  // polls the GPUs, rescans /proc and publishes a new snapshot.
  void tick(std::chrono::steady_clock::time_point now);
  // Rescans and publishes now (start-up, tests).
  void refresh();

  // A reloaded configuration: thresholds, intervals, [numa] and [multi_tenant] apply from
  // the next refresh.
  void set_config(const Config& cfg);

  // `<tid> <tgid> <phase>` per task of an ML job the dispatcher has seen, by tid.
  std::vector<std::string> phases();

  struct Counts {
    std::uint64_t ml_tasks = 0;
    std::array<std::uint64_t, kPhaseCount> by_phase{};
    std::size_t ml_processes = 0;
    std::size_t gpus = 0;
    std::string gpu_source;
    std::uint64_t snapshots = 0;  // published so far
    std::uint64_t skipped = 0;    // refreshes skipped because the dispatcher held both buffers
  };
  Counts counts();

 private:
  struct Proc {
    std::uint64_t start_time = 0;
    int ppid = 0;
    std::optional<int> root;                  // ML job root, as of this refresh
    std::optional<std::vector<int>> visible;  // CUDA_VISIBLE_DEVICES
    bool nccl = false;
    Tenant tenant;
    std::chrono::steady_clock::time_point checked;  // when `tenant` was read
  };
  struct TaskPhase {
    std::int32_t tgid = 0;
    Phase phase = Phase::Unknown;
  };

  void refresh_locked(std::chrono::steady_clock::time_point now);
  void drain_locked();

  std::mutex mu_;
  MlMonitorOptions opts_;
  std::string gpu_source_why_;
  MlJobTracker jobs_;
  std::unique_ptr<TenantClassifier> tenants_;
  std::unordered_map<int, Proc> procs_;
  std::unordered_map<std::int32_t, TaskPhase> tasks_;
  SnapshotExchange<MlSnapshot> exchange_;
  SpscQueue<PhaseChange> changes_{1u << 14};
  std::chrono::steady_clock::time_point next_refresh_{};
  std::size_t ml_processes_ = 0;
  std::uint64_t snapshots_ = 0, skipped_ = 0;
};

}  // namespace zernel
