#include "scheduler/fair_policy.h"

#include <algorithm>

namespace zernel {

FairPolicy::FairPolicy(const PolicyConfig& cfg)
    : cfg_(cfg), tasks_(cfg.max_tracked_tasks), slice_(cfg.slice_ns) {}

void FairPolicy::set_load(std::uint64_t nr_waiting) {
  const std::uint64_t fit = cfg_.round_budget_ns * std::max<std::uint32_t>(cfg_.nr_cpus, 1) / (nr_waiting + 1);
  slice_ = std::clamp(fit, cfg_.min_slice_ns, cfg_.slice_ns);
}

Decision FairPolicy::decide_one(const TaskEvent& ev) {
  bool created = false;
  TaskState& st = tasks_.get(ev.pid, ev.enq_ns, &created);

  st.vruntime += virtual_ns(ev.runtime_ns, ev.weight);
  // New tasks and long sleepers start one slice behind the clock: ahead of the tasks that
  // have been running, but without the credit of all the time they were away. Those
  // placed at the floor queue behind each other (floor_cursor_): otherwise an endless
  // stream of newcomers (a fork storm) would all sit at the same point, ahead of a task
  // that has run, and starve it. Each placement moves the floor on by its request, so a
  // waiting task is passed by at most ~2 slices' worth of newcomers.
  const std::uint64_t clock_floor = vclock_ > slice_ ? vclock_ - slice_ : 0;
  const std::uint64_t floor = std::max(clock_floor, floor_cursor_);
  const bool placed = st.vruntime < floor;
  if (placed) st.vruntime = floor;
  vclock_ = std::max(vclock_, st.vruntime);

  const bool short_burst = is_wakeup(ev) && ev.burst_ns < slice_ / 2;
  const std::uint64_t request =
      short_burst ? std::clamp<std::uint64_t>(ev.burst_ns, cfg_.min_slice_ns, slice_) : slice_;
  if (placed) floor_cursor_ = st.vruntime + virtual_ns(request, ev.weight);

  Decision d{};
  d.pid = ev.pid;
  // A pinned task can only go to its CPU; the shim places the others on an idle CPU.
  d.cpu = ev.nr_cpus_allowed == 1 ? ev.prev_cpu : kCpuAny;
  d.slice_ns = slice_;
  d.vtime = st.vruntime + virtual_ns(request, ev.weight);
  d.gen = ev.gen;
  // Its next wakeups that find an idle CPU run there at once (the shim's placement of
  // kCpuAny, without the round trip): with a CPU to itself the task's key orders nothing.
  d.flags = (short_burst ? ZERNEL_DEC_PREEMPT : 0) | ZERNEL_DEC_DIRECT_WAKE;
  return d;
}

void FairPolicy::activate(std::uint64_t now_ns) {
  vclock_ = std::max(vclock_, now_ns);
  floor_cursor_ = std::max(floor_cursor_, vclock_ > slice_ ? vclock_ - slice_ : 0);
}

void FairPolicy::decide(std::span<const TaskEvent> in, std::span<Decision> out) {
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = decide_one(in[i]);
}

}  // namespace zernel
