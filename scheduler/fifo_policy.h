// fifo: first come, first served, one fixed slice, no preemption. The baseline to compare
// other policies against, and the simplest policy that is still correct.
#pragma once

#include <span>
#include <string_view>

#include "scheduler/policy.h"

namespace zernel {

class FifoPolicy final : public Policy {
 public:
  explicit FifoPolicy(const PolicyConfig& cfg) : cfg_(cfg) {}

  std::string_view name() const override { return "fifo"; }

  void decide(std::span<const TaskEvent> in, std::span<Decision> out) override {
    for (std::size_t i = 0; i < in.size(); ++i) {
      const TaskEvent& ev = in[i];
      Decision& d = out[i];
      d = Decision{};
      d.pid = ev.pid;
      d.cpu = ev.nr_cpus_allowed == 1 ? ev.prev_cpu : kCpuAny;
      d.slice_ns = cfg_.slice_ns;
      d.vtime = ev.enq_ns;  // enqueue time orders the queues: arrival order
      d.gen = ev.gen;
      d.flags = ZERNEL_DEC_DIRECT_WAKE;  // an idle CPU serves arrival order at once
    }
  }

 private:
  PolicyConfig cfg_;
};

}  // namespace zernel
