// fair: weighted virtual-deadline scheduling, the default policy.
//
// Each task carries a virtual runtime that advances by the CPU time it used, scaled by
// 100/weight (nice 0 = weight 100), so heavier tasks advance slower and get more CPU.
// The ordering key is a virtual deadline: vruntime plus the time the task is expected to
// ask for, also weight-scaled. A task that woke up after a short burst asks for only that
// burst (floored at min_slice), so interactive and I/O-bound tasks sort ahead of CPU
// hogs without any heuristics about what they are.
//
// Sleepers do not bank credit: a task's vruntime is clamped to at most one slice behind
// the policy clock (the largest vruntime seen), as in CFS's place_entity(); tasks placed
// there queue behind one another, so newcomers cannot starve a task that has run.
//
// Preemption: a wakeup whose last burst was shorter than half a slice carries
// ZERNEL_DEC_PREEMPT. The shim kicks a CPU only if that CPU runs a task with a later key,
// so hogs are preempted and equals are not.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "scheduler/policy.h"
#include "scheduler/task_table.h"

namespace zernel {

class FairPolicy final : public Policy {
 public:
  explicit FairPolicy(const PolicyConfig& cfg);

  std::string_view name() const override { return "fair"; }
  void decide(std::span<const TaskEvent> in, std::span<Decision> out) override;
  // Moves the virtual clock up to the shim clock: keys then sort after those of tasks
  // queued earlier by another policy (fifo keys are enqueue times), and nobody keeps
  // credit across the switch.
  void activate(std::uint64_t now_ns) override;
  // The slice in force: cfg.slice_ns, shrunk so that `nr_waiting` tasks all run within
  // round_budget_ns on nr_cpus CPUs (never below min_slice). It also bounds how far
  // apart keys may be, which is what bounds every task's wait.
  void set_load(std::uint64_t nr_waiting) override;
  std::uint64_t slice() const { return slice_; }

  // Exposed for tests.
  std::uint64_t clock() const { return vclock_; }
  struct TaskState {
    std::uint64_t vruntime = 0;
  };
  const TaskTable<TaskState>& tasks() const { return tasks_; }

 private:
  Decision decide_one(const TaskEvent& ev);

  PolicyConfig cfg_;
  TaskTable<TaskState> tasks_;
  std::uint64_t vclock_ = 0;  // the largest vruntime seen: the policy's notion of "now"
  std::uint64_t floor_cursor_ = 0;  // where the next task placed at the floor queues
  std::uint64_t slice_;             // see set_load()
};

}  // namespace zernel
