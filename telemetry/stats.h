// The one-line stats print of `--stats SECONDS`: the shim's counters (how each task was
// dispatched) next to the dispatcher's. Formatting happens on the control path, once per
// interval, never per task.
#pragma once

#include <cstdint>
#include <string>

#include "scheduler/dispatcher.h"
#include "scheduler/messages.h"

namespace zernel::telemetry {

struct StatsSnapshot {
  double elapsed_s = 0;
  ShimStats shim{};
  DispatcherCounters dispatcher{};
  std::uint64_t minor_faults = 0;  // since attach: a userspace scheduler must not fault
  std::uint64_t major_faults = 0;
};

// Tasks sent up whose decision has not been applied or cancelled yet.
std::uint64_t in_flight(const ShimStats& s);

// "zernel: 5.0s queued=... user=... kernel=... fallback=... cancelled=... ...": stable keys,
// key=value pairs, so scripts can grep them.
std::string format_stats_line(const StatsSnapshot& snap);

}  // namespace zernel::telemetry
