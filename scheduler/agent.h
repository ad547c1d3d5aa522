// The agent: one process's whole life as a scheduler. It attaches the shim, runs the
// dispatcher until asked to stop or until the kernel unloads it, reports how it ended and
// restarts in place when the kernel's exit code asks for it.
//
//   kernel --ops.enqueue--> shim --task ring--> Dispatcher --Policy--> decision ring
//          <--ops.dispatch-- shim <-----------------------------------------'
//
// Threads:
//   dispatcher (the caller of run_agent): the hot loop, nothing else.
//   control:   a 100 ms tick: stats line, metrics snapshot, SIGHUP reload.
//   control server (scheduler/control.h): zernelctl requests; handlers take the agent's
//              mutex, which the dispatcher never takes.
//   metrics HTTP server (telemetry/http_server.h): serves the last serialized snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "scheduler/config.h"
#include "scheduler/policy.h"
#include "scheduler/shim.h"

namespace zernel {

struct AgentOptions {
  ShimOptions shim;
  PolicyConfig policy_cfg;
  Config config;             // the TOML configuration in force
  std::string config_path;   // re-read by `zernelctl reload` and SIGHUP; empty = defaults
  std::string policy = "fair";
  double stats_interval_s = 0;  // 0: no periodic stats line
  double duration_s = 0;        // 0: run until signalled
  std::size_t batch = 512;
  std::uint32_t spin_us = 200;  // poll this long after a batch before sleeping (IdleStrategy; 0: sleep at once)
  bool direct_wakeups = true;   // let the policies' grants place wakeups on idle CPUs (ZERNEL_DEC_DIRECT_WAKE)
  bool metrics = true;          // serve /metrics on config.telemetry
  std::string control_socket;   // empty: control::kDefaultSocketPath
  std::string pidfile = "/run/zernel/scheduler.pid";
  std::string sysfs_root = "/sys";  // topology (tests inject a fake tree)
};

// Process exit code: 0 after a requested stop (signal or duration), 1 if the kernel
// unloaded the scheduler (error, stall, sysrq) or it could not be loaded or set up.
// `reload` is set by the SIGHUP handler; the agent clears it when it has reloaded.
int run_agent(const AgentOptions& opts, const std::atomic<bool>& stop, std::atomic<bool>& reload);

// `zernel-scheduler --monitor SECONDS`: prints the running instance's status every
// interval, loading nothing. Returns the process exit code.
int run_monitor(const std::string& socket_path, double interval_s, const std::atomic<bool>& stop);

}  // namespace zernel
