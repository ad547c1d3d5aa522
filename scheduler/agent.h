// The agent: one process's whole life as a scheduler. It attaches the shim, runs the
// dispatcher until asked to stop or until the kernel unloads it, reports how it ended and
// restarts in place when the kernel's exit code asks for it.
//
//   kernel --ops.enqueue--> shim --task ring--> Dispatcher --Policy--> decision ring
//          <--ops.dispatch-- shim <-----------------------------------------'
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "scheduler/policy.h"
#include "scheduler/shim.h"

namespace zernel {

struct AgentOptions {
  ShimOptions shim;
  PolicyConfig policy_cfg;
  std::string policy = "fair";
  double stats_interval_s = 0;  // 0: no periodic stats line
  double duration_s = 0;        // 0: run until signalled
  std::size_t batch = 512;
};

// Process exit code: 0 after a requested stop (signal or duration), 1 if the kernel
// unloaded the scheduler (error, stall, sysrq) or it could not be loaded.
int run_agent(const AgentOptions& opts, const std::atomic<bool>& stop);

}  // namespace zernel
