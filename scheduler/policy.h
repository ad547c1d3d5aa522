// A scheduling policy: turns task events into decisions. The dispatcher owns the loop and
// the channel; a policy sees only decoded events and answers each with a Decision.
//
// Contract for implementations: decide() runs on the dispatcher thread, on the hot path.
// It must not allocate, lock or make system calls; per-task state lives in a TaskTable
// sized at construction.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "scheduler/messages.h"

namespace zernel {

struct PolicyConfig {
  std::uint64_t slice_ns = 5'000'000;  // the time slice a task gets by default
  std::uint64_t min_slice_ns = 250'000;  // floor for latency-sensitive requests
  std::size_t max_tracked_tasks = 65536;
  std::uint32_t nr_cpus = 1;
  // Every waiting task must get a CPU within this long (half the kernel's 5 s watchdog):
  // slices shrink when many tasks wait, so that a full round fits.
  std::uint64_t round_budget_ns = 2'500'000'000;
};

// sched_ext's weight of a nice-0 task.
inline constexpr std::uint64_t kNiceZeroWeight = 100;

// What `ns` of CPU costs a task of `weight` in virtual time: ns * 100 / weight. Most tasks
// of a machine run at nice 0, and for them the answer is `ns` without the 64-bit divide,
// which takes 40-90 cycles on many x86 cores and is twice on every decision (CFS's
// calc_delta_fair() skips it for nice 0 the same way). Exact for every weight.
constexpr std::uint64_t virtual_ns(std::uint64_t ns, std::uint64_t weight) {
  if (weight == kNiceZeroWeight) return ns;
  return ns * kNiceZeroWeight / std::max<std::uint64_t>(weight, 1);
}

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;

  // Answers in[i] with out[i]. REQUIRES: out.size() >= in.size().
  // A task's events come in the order it had them, with one exception: a direct wakeup's
  // report (ZERNEL_TASK_DIRECT) is read lazily and can come after the task's next event
  // from another CPU's ring; time differences of one task's events must not assume order.
  // The report's decision is not sent (the task ran already).
  virtual void decide(std::span<const TaskEvent> in, std::span<Decision> out) = 0;

  // Called before the first batch a policy decides after it became active (at start and
  // after every live switch), with the shim clock of that batch's first event. Ordering
  // keys of all policies share one domain, the shim clock in ns, so that tasks queued
  // under the previous policy are neither starved nor favoured by the next one: a policy
  // whose keys are virtual re-anchors them at `now_ns` here.
  virtual void activate(std::uint64_t now_ns) { (void)now_ns; }

  // Before each batch: how many tasks wait for a CPU (the shim samples it every 50 ms).
  virtual void set_load(std::uint64_t nr_waiting) { (void)nr_waiting; }
  // The phase (phase_index) of each task of the last decide() batch, in event order, for
  // traces; empty for policies without phases (every task is then Unknown). Valid until the
  // next decide(); dispatcher thread only.
  virtual std::span<const std::uint8_t> batch_phases() const { return {}; }
};

// The self-contained policies, by name (`fair`, `fifo`); nullptr for any other name.
// `phase` needs the ML monitor's snapshots and the shim's CPU states, so the agent builds
// it itself (scheduler/phase_policy.h).
std::unique_ptr<Policy> make_policy(std::string_view name, const PolicyConfig& cfg);

// Every policy the scheduler runs, for help texts and errors.
inline constexpr std::string_view kPolicyNames = "fair, fifo, phase";

}  // namespace zernel
