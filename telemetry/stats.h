// The one-line stats print of `--stats SECONDS`: the shim's counters (how each task was
// dispatched) next to the dispatcher's. Formatting happens on the control path, once per
// interval, never per task.
#pragma once

#include <cstdint>
#include <string>

#include "scheduler/dispatcher.h"
#include "scheduler/messages.h"

namespace zernel::telemetry {

// p50/p99/max of one latency histogram over the stats interval (ns).
struct LatencySummary {
  std::uint64_t p50 = 0, p99 = 0, max = 0, count = 0;
};

struct StatsSnapshot {
  double elapsed_s = 0;
  ShimStats shim{};
  DispatcherCounters dispatcher{};
  std::uint64_t minor_faults = 0;  // of the dispatcher thread since attach: must stay 0
  std::uint64_t major_faults = 0;
  std::int64_t tasks_waiting = 0;  // in the shim's queues for a CPU now (Shim::tasks_waiting)
  LatencySummary round_trip;          // enqueue -> decision applied in the kernel
  LatencySummary enqueue_to_running;  // enqueue -> running: what a task feels
  LatencySummary decision_batch;      // the policy's time per batch
};

// Tasks sent up whose decision has not been applied or cancelled yet.
std::uint64_t in_flight(const ShimStats& s);

// "zernel: 5.0s queued=... user=... kernel=... fallback=... cancelled=... ...": stable keys,
// key=value pairs, so scripts can grep them. Latencies print as p50/p99/max in µs:
// rt_us= (round trip), run_us= (enqueue -> running), decide_us= (per batch). waiting= is the
// tasks queued for a CPU at the moment of the print.
std::string format_stats_line(const StatsSnapshot& snap);

}  // namespace zernel::telemetry
