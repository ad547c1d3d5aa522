// The observer's trace: runs are named after the phase the policy decided them in.
#include "scheduler/dispatch_observer.h"

#include <gtest/gtest.h>

#include <string>

#include "scheduler/phase.h"
#include "telemetry/trace.h"

namespace zernel {
namespace {

// A message that reports a complete previous trip: decided 10 ns and running 20 ns after
// its enqueue at 1000, for 500 ns of CPU.
TaskEvent with_previous_trip(std::int32_t pid) {
  TaskEvent ev{};
  ev.pid = ev.tgid = pid;
  ev.prev_enq_ns = 1000;
  ev.prev_decision_ns = 10;
  ev.prev_running_ns = 20;
  ev.runtime_ns = 500;
  ev.enq_ns = 2000;
  ev.prev_cpu = 1;
  return ev;
}

std::string trace_of(std::span<const std::uint8_t> phases) {
  DispatchObserver obs;
  telemetry::TraceRecorder rec(64);
  obs.arm(&rec);
  const TaskEvent ev = with_previous_trip(7);
  Decision d{};
  d.pid = 7;
  d.cpu = kCpuAny;
  obs.on_batch(std::span(&ev, 1), std::span(&d, 1), 5, phases);
  obs.disarm();
  return rec.chrome_json();
}

TEST(DispatchObserver, TraceRunsAreNamedAfterTheirPhase) {
  const std::uint8_t phases[] = {static_cast<std::uint8_t>(phase_index(Phase::OptimizerStep))};
  const std::string json = trace_of(phases);
  EXPECT_NE(json.find("{\"name\":\"optimizer_step\",\"cat\":\"run\""), std::string::npos) << json;
  EXPECT_EQ(json.find("\"unknown\""), std::string::npos) << json;
}

TEST(DispatchObserver, PolicyWithoutPhasesTracesUnknown) {
  const std::string json = trace_of({});
  EXPECT_NE(json.find("{\"name\":\"unknown\",\"cat\":\"run\""), std::string::npos) << json;
}

// A direct wakeup made no round trip: its enqueue -> running counts (runqlat sees it too),
// its round trip does not, and its run is traced like any other.
TEST(DispatchObserver, DirectTripCountsItsWaitButNoRoundTrip) {
  DispatchObserver obs;
  telemetry::TraceRecorder rec(64);
  obs.arm(&rec);
  TaskEvent direct = with_previous_trip(7);
  direct.flags = ZERNEL_TASK_PREV_DIRECT;
  direct.prev_decision_ns = 0;
  TaskEvent normal = with_previous_trip(8);
  const TaskEvent events[] = {direct, normal};
  Decision d[2]{};
  obs.on_batch(events, d, 5, {});
  obs.disarm();
  EXPECT_EQ(obs.round_trip().snapshot().count(), 1u);
  EXPECT_EQ(obs.enqueue_to_running().snapshot().count(), 2u);
  const std::string json = rec.chrome_json();
  std::size_t runs = 0;
  for (std::size_t at = json.find("\"cat\":\"run\""); at != std::string::npos; at = json.find("\"cat\":\"run\"", at + 1)) ++runs;
  EXPECT_EQ(runs, 2u) << json;
}

}  // namespace
}  // namespace zernel
