// phase: the ML policy. Fair (weighted virtual deadlines, as FairPolicy) for everything,
// with the weight, deadline, preemption and CPU of each task of an ML job set by the
// phase that task is in, and CPU shares between tenants set by the GPUs they hold.
//
// Signals, per task, accumulated from the shim's messages on the hot path (no extra
// system call; see the README's signal table):
//   CPU burst          burst_ns / runtime_ns of each message (ops.stopping accounting)
//   sleep and I/O wait sleep_ns of a wakeup, and ZERNEL_TASK_IOWAIT (p->in_iowait when it
//                      went to sleep): the window's io_wait_fraction
//   waker              waker_pid/waker_tgid of a wakeup (ops.runnable's current task)
//   futex waits        futex_waits (fentry on the kernel's futex wait functions, in the shim)
//   GPU utilization    MlSnapshot::gpu_util, sampled by the control thread (NVML or the
//                      simulated file)
//   ML job, NCCL, GPUs MlSnapshot::procs, refreshed by the control thread from /proc
// Derived:
//   GPU sync           a wakeup from a sleep that was not an I/O wait, not ended by a task
//                      of the same job, while the process's GPUs were busy (above
//                      gpu_idle_threshold): the thread waited for the GPU (a CUDA sync ends
//                      by the driver's interrupt; a data queue ends by a job member).
//   GPU thread         a task with a GPU sync in the last two windows.
//   feeds GPU thread   the task woke a GPU thread of its own job in the window (a
//                      DataLoader worker handing over a batch the trainer waited for).
//   optimizer pattern  a burst shorter than optimizer_burst_max_ns right after a GPU sync.
// Each task of an ML job is classified at its first event after every
// phase_eval_interval_ms by PhaseDetector, and PhaseTracker commits a phase after
// phase_stability_count identical windows. A task sleeping through windows keeps its
// phase until it runs again (it needs no scheduling meanwhile).
//
// What a phase does (the spec's table, and how each column is realised):
//   phase           priority  preemption         latency target
//   DataLoading     +10       aggressive         100 us
//   GpuCompute      -5        yields at once     none
//   NcclCollective  +10       low latency        50 us
//   OptimizerStep   +10       preemptive         100 us
//   Unknown         0         standard           none
// - Priority scales the weight like a nice level in reverse: x1.25 per step (CFS's
//   ratio), so +10 is x9.3 the CPU of a peer when both want it and -5 is x0.33. Tenant
//   classes add their offset (Training +5, ...) to the same sum.
// - A latency target becomes a deadline: the task's key is at most target past the
//   policy clock's floor (the largest virtual runtime seen, less a slice), so it sorts
//   before every task placed normally, however much CPU it used before. A wakeup (or a new
//   task) of such a phase goes further, into the latency tier, when it sleeps at least as
//   long as it runs (sleep_ns >= its last burst): its key is target + its expected burst,
//   a few ms at most, below every key of the normal tier (activate() puts the policy
//   clock above tier_top()), and its slice is twice that burst. So the trainer
//   waking from a GPU step runs before everything that has been running or waiting,
//   however long (a hog starved in the shared queue for 100 ms has an old, small key),
//   and its PREEMPT_NOW finds any CPU not running a tier task. Among tier wakeups the
//   shorter target plus burst goes first: the trainer's 2 ms optimizer step before a
//   loader's 30 ms batch. A tier task preempted before its grant ran out (the dispatcher
//   itself takes a CPU when it wakes) comes back as a slice expiry; it keeps its tier key
//   for the rest of the grant rather than queue behind the tasks it had gone ahead of.
//   Bounds: a tier grant is worth one short slice (the next
//   enqueue of a task that keeps running is a slice expiry, back in the normal tier), the
//   sleep rule keeps each tier task under half a CPU, and the tier's grants may add up to
//   half the machine's CPU time per window (kTierShareDivisor), so it can never starve
//   the rest into the kernel's watchdog. Measured before it (ML benchmark): the trainer
//   had the loaders' deadline and waited for one of their slices, 5.6 ms per step late
//   against 1.7 ms alone.
// - Preemption: "aggressive" and "low latency" ask the shim to kick a CPU running a task
//   with any later key (ZERNEL_DEC_PREEMPT_NOW) on every enqueue, wakeup or not;
//   "preemptive" does so on wakeups; "standard" is fair's rule (short-burst wakeups, with
//   the shim's one-slice margin); "yields at once" gives the task min_slice, so a GPU
//   thread that wakes to launch work hands the CPU back at once, and never kicks.
// - Non-ML tasks are Unknown: CFS-like fair treatment, nothing else.
//
// Placement ([numa]): a task of a process bound to a GPU goes to an idle CPU of that GPU's
// node, else the least loaded one there (running + queued, from the shim's per-CPU state
// as of the node's first placement in the batch, plus what this batch placed there since;
// of up to 8 CPUs from the previous one on); on a single-node machine there is no choice to
// make and the shim places every task. Other ML tasks stay on their previous CPU's node
// when it has an idle CPU (memory_affinity: their memory is where they ran). Everything
// else is placed by the shim (ZERNEL_CPU_ANY).
//
// Tenants ([multi_tenant] enabled): each tenant's tasks share the tenant's GPU count as
// weight: a task's weight is scaled by gpus(tenant) / load(tenant), normalised so that all
// tenant tasks together weigh as many plain tasks. A tenant's load is the sum of its tasks'
// runnable fractions (CFS's group load, not its task count): a CPU-bound thread counts 1,
// a thread that wakes for 50 us every 100 ms counts 0.0005, so the dozens of mostly
// sleeping threads of a real ML process do not dilute its CPU-bound ones. A task's
// runnable fraction is a moving average over about one evaluation window: a slice expiry
// means it was runnable since its previous event; a wakeup after a sleep means it was
// runnable for its burst plus its previous queue wait out of that plus the sleep. Loads
// are summed per evaluation window (each task once) and a tenant counts as at least one
// task. Two saturating tenants holding 1 and 3 GPUs therefore split the CPU 25/75 however
// many threads each runs.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "scheduler/ml_snapshot.h"
#include "scheduler/phase_detector.h"
#include "scheduler/policy.h"
#include "scheduler/spsc_queue.h"
#include "scheduler/task_table.h"

namespace zernel {

// A committed phase, or the first sighting of a task of an ML job (from == to == Unknown).
struct PhaseChange {
  std::int32_t pid = 0;
  std::int32_t tgid = 0;
  Phase from = Phase::Unknown;
  Phase to = Phase::Unknown;
  std::uint64_t at_ns = 0;  // shim clock
};

struct PhaseRule {
  int priority = 0;
  enum class Preempt : std::uint8_t { Standard, Aggressive, LowLatency, Preemptive, YieldAtOnce } preempt =
      Preempt::Standard;
  std::uint64_t latency_target_ns = 0;  // 0 = none
};

// The spec's table.
constexpr PhaseRule phase_rule(Phase p) {
  switch (p) {
    case Phase::DataLoading: return {10, PhaseRule::Preempt::Aggressive, 100'000};
    case Phase::GpuCompute: return {-5, PhaseRule::Preempt::YieldAtOnce, 0};
    case Phase::NcclCollective: return {10, PhaseRule::Preempt::LowLatency, 50'000};
    case Phase::OptimizerStep: return {10, PhaseRule::Preempt::Preemptive, 100'000};
    case Phase::Unknown: break;
  }
  return {};
}

// Weight multiplier of a priority offset, x1.25 per step, in 1/1024ths. Clamped to -20..20.
std::uint32_t priority_scale_1024(int priority);

// Which CPUs belong to which NUMA node, flattened for the hot path.
struct NodeMap {
  std::vector<std::int16_t> node_of_cpu;     // by CPU id; -1 = unknown
  std::vector<std::vector<int>> cpus_of_node;  // by node id
  static NodeMap single_node(int nr_cpus);
};

class PhasePolicy final : public Policy {
 public:
  static constexpr std::size_t kMaxBatch = 65536;  // the largest --batch
  // `snapshots`, `cpus` (the shim's per-CPU states) and `changes` must outlive the
  // policy; `changes` may be null (nobody listens).
  PhasePolicy(const PolicyConfig& cfg, SnapshotExchange<MlSnapshot>& snapshots, NodeMap nodes,
              std::span<const volatile CpuState> cpus, SpscQueue<PhaseChange>* changes);

  std::string_view name() const override { return "phase"; }
  void decide(std::span<const TaskEvent> in, std::span<Decision> out) override;
  void activate(std::uint64_t now_ns) override;
  void set_load(std::uint64_t nr_waiting) override;
  std::span<const std::uint8_t> batch_phases() const override {
    return std::span<const std::uint8_t>(batch_phases_.data(), batch_size_);
  }

  // Any thread reads these counters relaxed; the dispatcher thread writes them.
  std::uint64_t decisions_in(Phase p) const { return by_phase_[phase_index(p)].load(std::memory_order_relaxed); }
  // CPU time charged to tasks while in phase p (non-ML tasks count as Unknown).
  std::uint64_t cpu_ns_in(Phase p) const { return cpu_by_phase_[phase_index(p)].load(std::memory_order_relaxed); }
  std::uint64_t transitions() const { return transitions_.load(std::memory_order_relaxed); }
  std::uint64_t changes_dropped() const { return dropped_.load(std::memory_order_relaxed); }
  std::uint64_t futex_waits() const { return futex_waits_.load(std::memory_order_relaxed); }  // of ML tasks
  // Wakeups put in the latency tier, and those refused because its budget was spent.
  std::uint64_t tier_grants() const { return tier_grants_.load(std::memory_order_relaxed); }
  std::uint64_t tier_refused() const { return tier_refused_.load(std::memory_order_relaxed); }
  // Keys below this are the latency tier's.
  static std::uint64_t tier_top(const PolicyConfig& cfg);

  // Dispatcher thread / tests.
  // 120 bytes, so that with the table's 8-byte timestamp a slot is two cache lines. The
  // first line holds all that a decision of a task outside an ML job touches (most tasks
  // of a machine: one line to fetch, not two) and all that account() reads and writes of
  // a waker (job, last_gpu_sync_ns, last_fed_ns); the second, the ML window's signals.
  struct TaskState {
    // The slot's first line (after the table's timestamp): 56 bytes.
    std::int32_t job = 0;                // job root when last seen; 0 = not an ML task
    std::uint32_t runnable_1024 = 1024;  // runnable fraction, in 1/1024ths
    std::uint64_t vruntime = 0;
    std::uint64_t last_gpu_sync_ns = 0;  // 0 = never
    std::uint64_t last_fed_ns = 0;       // last hand-over with a GPU thread of its job
    std::uint64_t tier_left_ns = 0;      // what is left of a latency tier grant's slice; 0 = none
    std::uint64_t last_event_ns = 0;     // for the runnable fraction; 0 = none yet
    std::uint64_t tenant_epoch = 0;
    // The second line: tasks of ML jobs only.
    std::uint64_t win_start = 0;  // the current window's
    std::uint64_t win_run_ns = 0;
    std::uint64_t win_iowait_ns = 0;
    std::uint64_t win_opt_burst_ns = 0;  // the burst of the last optimizer pattern
    std::uint64_t last_burst_ns = 0;     // across windows
    std::uint64_t tier_key = 0;          // the last decision's, if it was a latency tier grant
    std::uint32_t win_futex = 0;
    bool win_opt_pattern = false;
    bool last_wakeup_was_sync = false;
    PhaseTracker tracker;
  };
  static_assert(sizeof(TaskState) <= 120, "a slot of the task table must stay two cache lines");
  static_assert(offsetof(TaskState, tenant_epoch) + sizeof(std::uint64_t) <= 56,
                "what a non-ML decision and account()'s waker touch must stay in the slot's first line");
  const TaskState* task(std::int32_t pid) const { return tasks_.find(pid); }
  std::uint64_t slice() const { return slice_; }

 private:
  // Writes every field of `d` (the batch's output slot, written in place); returns the
  // phase it decided in.
  Phase decide_one(const TaskEvent& ev, Decision& d);
  void account(TaskState& st, const TaskEvent& ev, const ProcessInfo& proc);
  void evaluate(TaskState& st, const TaskEvent& ev, const ProcessInfo& proc);
  std::uint32_t effective_weight(const TaskEvent& ev, TaskState& st, const ProcessInfo* proc, Phase phase);
  void update_runnable(TaskState& st, const TaskEvent& ev, bool created) const;
  int place(const TaskEvent& ev, const ProcessInfo* proc);
  int least_loaded(std::size_t node, int prefer, bool idle_only);
  void report(const PhaseChange& c);

  PolicyConfig cfg_;
  SnapshotExchange<MlSnapshot>& snapshots_;
  const MlSnapshot* snap_ = nullptr;  // this batch's
  NodeMap nodes_;
  std::span<const volatile CpuState> cpus_;
  SpscQueue<PhaseChange>* changes_;
  TaskTable<TaskState> tasks_;
  std::vector<std::uint32_t> index_in_node_;  // per CPU: its position in its node's scan
  // Placement (least_loaded()) looks at up to this many CPUs of a node.
  static constexpr std::size_t kPlacementScan = 8;
  static constexpr std::uint16_t kLoadCap = 0x7fff;  // loads saturate here
  // A node's CPUs and their loads by position, each followed by its first
  // kPlacementScan - 1 positions again (cyclically), so that a window starting anywhere is
  // contiguous. A load is running + queued from the shim's per-CPU state as of the node's
  // first placement in the batch, plus what the batch put there since.
  struct NodeScan {
    std::vector<int> cpus;
    std::vector<std::uint16_t> load;
    std::size_t size = 0;     // the node's CPUs
    std::size_t cursor = 0;   // where a scan starts when the previous CPU is elsewhere
    std::uint64_t batch = 0;  // the batch_seq_ `load` is of
  };
  std::vector<NodeScan> scan_of_node_;  // by node id
  void refresh_loads(NodeScan& scan);
  // Per event of the last batch: its phase. Sized once for the largest batch (--batch).
  std::vector<std::uint8_t> batch_phases_ = std::vector<std::uint8_t>(kMaxBatch);
  std::size_t batch_size_ = 0;

  std::uint64_t vclock_ = 0;
  std::uint64_t floor_cursor_ = 0;
  // The latency tier's CPU budget: what its grants (their slices) used in this window.
  std::uint64_t tier_epoch_ = 0;
  std::uint64_t tier_used_ns_ = 0;
  std::uint64_t tier_budget_ns_ = 0;  // as of batch start
  std::uint64_t slice_;

  // Tenant load (sum of runnable fractions, 1/1024ths of a task) in the previous and the
  // current window.
  std::uint64_t tenant_epoch_ = 0;
  std::array<std::uint64_t, kMaxTenants> tenant_load_prev_{}, tenant_load_cur_{};
  std::uint64_t tenant_total_load_ = 0, tenant_total_gpus_ = 0;  // as of batch start
  // Each tenant's weight factor (effective_weight()) in 1/2^kScaleShift, computed at its
  // first task in a batch. kMaxScale keeps weight * factor in 64 bits.
  static constexpr unsigned kScaleShift = 16;
  static constexpr std::uint64_t kMaxScale = std::uint64_t{1} << 40;
  struct TenantScale {
    std::uint64_t batch = 0;  // batch_seq_ of the batch it is for
    std::uint64_t factor = 0;
  };
  std::uint64_t batch_seq_ = 0;         // batches decided, counting this one
  std::uint64_t tenant_numerator_ = 0;  // as of batch start: see decide()
  std::array<TenantScale, kMaxTenants> tenant_scale_{};
  // This batch's evaluation window and (kOneTask << kWindowShift) / window, so that the
  // runnable fraction's average needs no division (update_runnable()).
  static constexpr unsigned kWindowShift = 32;
  std::uint64_t window_ns_ = 1;
  std::uint64_t window_inverse_ = 0;

  std::array<std::atomic<std::uint64_t>, kPhaseCount> by_phase_{}, cpu_by_phase_{};
  std::atomic<std::uint64_t> transitions_{0}, dropped_{0}, futex_waits_{0}, tier_grants_{0}, tier_refused_{0};
};

}  // namespace zernel
