#include "telemetry/stats.h"

#include <cstdio>

namespace zernel::telemetry {

namespace {
double us(std::uint64_t ns) { return static_cast<double>(ns) / 1e3; }
}  // namespace

std::uint64_t in_flight(const ShimStats& s) {
  const std::uint64_t answered = s.nr_user_dispatched + s.nr_cancelled + s.nr_exited;
  return s.nr_queued > answered ? s.nr_queued - answered : 0;
}

std::string format_stats_line(const StatsSnapshot& snap) {
  const ShimStats& s = snap.shim;
  char buf[768];
  std::snprintf(buf, sizeof(buf),
                "zernel: %.1fs queued=%llu user=%llu kernel=%llu fallback=%llu "
                "(congested=%llu bypassed=%llu rescued=%llu) cancelled=%llu exited=%llu bounced=%llu "
                "malformed=%llu direct=%llu sync=%llu grant_preempts=%llu resumed=%llu aged=%llu preempt=%llu in_flight=%llu batches=%llu ring_full=%llu faults=%llu/%llu "
                "waiting=%lld rt_us=%.0f/%.0f/%.0f run_us=%.0f/%.0f/%.0f decide_us=%.1f/%.1f/%.1f",
                snap.elapsed_s, static_cast<unsigned long long>(s.nr_queued),
                static_cast<unsigned long long>(s.nr_user_dispatched),
                static_cast<unsigned long long>(s.nr_kernel_dispatched),
                static_cast<unsigned long long>(s.nr_congested + s.nr_bypassed + s.nr_rescued),
                static_cast<unsigned long long>(s.nr_congested),
                static_cast<unsigned long long>(s.nr_bypassed),
                static_cast<unsigned long long>(s.nr_rescued),
                static_cast<unsigned long long>(s.nr_cancelled),
                static_cast<unsigned long long>(s.nr_exited),
                static_cast<unsigned long long>(s.nr_bounced),
                static_cast<unsigned long long>(s.nr_malformed),
                static_cast<unsigned long long>(s.nr_direct),
                static_cast<unsigned long long>(s.nr_sync_wakes),
                static_cast<unsigned long long>(s.nr_grant_preempts),
                static_cast<unsigned long long>(s.nr_resumed),
                static_cast<unsigned long long>(s.nr_aged),
                static_cast<unsigned long long>(s.nr_preempt_kicks),
                static_cast<unsigned long long>(in_flight(s)),
                static_cast<unsigned long long>(snap.dispatcher.batches),
                static_cast<unsigned long long>(snap.dispatcher.ring_full_waits),
                static_cast<unsigned long long>(snap.minor_faults),
                static_cast<unsigned long long>(snap.major_faults),
                static_cast<long long>(snap.tasks_waiting), us(snap.round_trip.p50),
                us(snap.round_trip.p99), us(snap.round_trip.max), us(snap.enqueue_to_running.p50),
                us(snap.enqueue_to_running.p99), us(snap.enqueue_to_running.max),
                us(snap.decision_batch.p50), us(snap.decision_batch.p99), us(snap.decision_batch.max));
  return buf;
}

}  // namespace zernel::telemetry
