// The two messages of the kernel <-> userspace channel, as the dispatcher sees them.
//
// They are the wire structs of bpf_core/zernel_abi.h themselves, not decoded copies: the
// hot path copies each ring record once into a preallocated batch and reads it in place.
// The static_asserts pin the layout that the BPF side was compiled against; the host
// test tests/host/ring_layout_test.cpp checks it against real BPF programs.
#pragma once

#include <linux/types.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bpf_core/zernel_abi.h"

namespace zernel {

using TaskEvent = ::zernel_task_msg;
using Decision = ::zernel_decision;
using ShimStats = ::zernel_shim_stats;
using ExitInfo = ::zernel_exit_info;
using CpuState = ::zernel_cpu_state;
using DecisionSample = ::zernel_decision_sample;

inline constexpr int kCpuAny = ZERNEL_CPU_ANY;
inline constexpr std::size_t kDecisionsPerSample = ZERNEL_DECISIONS_PER_SAMPLE;

static_assert(sizeof(TaskEvent) == 112);
static_assert(offsetof(TaskEvent, pid) == 0);
static_assert(offsetof(TaskEvent, tgid) == 4);
static_assert(offsetof(TaskEvent, prev_cpu) == 8);
static_assert(offsetof(TaskEvent, nr_cpus_allowed) == 12);
static_assert(offsetof(TaskEvent, enq_flags) == 16);
static_assert(offsetof(TaskEvent, enq_ns) == 24);
static_assert(offsetof(TaskEvent, runtime_ns) == 32);
static_assert(offsetof(TaskEvent, burst_ns) == 40);
static_assert(offsetof(TaskEvent, gen) == 48);
static_assert(offsetof(TaskEvent, weight) == 56);
static_assert(offsetof(TaskEvent, flags) == 60);
static_assert(offsetof(TaskEvent, waker_pid) == 64);
static_assert(offsetof(TaskEvent, waker_tgid) == 68);
static_assert(offsetof(TaskEvent, prev_decision_ns) == 72);
static_assert(offsetof(TaskEvent, prev_running_ns) == 76);
static_assert(offsetof(TaskEvent, prev_enq_ns) == 80);
static_assert(offsetof(TaskEvent, comm) == 88);
static_assert(offsetof(TaskEvent, sleep_ns) == 104);
static_assert(offsetof(TaskEvent, futex_waits) == 108);
static_assert(sizeof(::zernel_cpu_state) == 24);

// User ring buffer samples must be 8-byte multiples.
static_assert(sizeof(Decision) == 40 && sizeof(Decision) % 8 == 0);
static_assert(offsetof(Decision, pid) == 0);
static_assert(offsetof(Decision, cpu) == 4);
static_assert(offsetof(Decision, slice_ns) == 8);
static_assert(offsetof(Decision, vtime) == 16);
static_assert(offsetof(Decision, gen) == 24);
static_assert(offsetof(Decision, flags) == 32);

// A decision sample is its header and then up to kDecisionsPerSample decisions, always
// sent whole (zernel_abi.h): the header's size is where the decisions start, and the
// sample's length stays a multiple of 8, as user ring samples must be.
static_assert(offsetof(DecisionSample, count) == 0);
static_assert(offsetof(DecisionSample, pad) == 4);
static_assert(offsetof(DecisionSample, decisions) == 8);
static_assert(sizeof(DecisionSample) == 8 + kDecisionsPerSample * sizeof(Decision));
static_assert(sizeof(DecisionSample) % 8 == 0);
// ops.dispatch drains only with this many dispatch slots free, of dispatch_max_batch = 128.
static_assert(kDecisionsPerSample >= 1 && kDecisionsPerSample <= 128);

inline constexpr std::size_t kDecisionSampleHeader = offsetof(DecisionSample, decisions);

inline bool is_wakeup(const TaskEvent& ev) { return ev.flags & ZERNEL_TASK_WAKEUP; }
inline bool slept_on_io(const TaskEvent& ev) { return ev.flags & ZERNEL_TASK_IOWAIT; }

inline std::string_view comm_of(const TaskEvent& ev) {
  std::string_view s(ev.comm, sizeof(ev.comm));
  return s.substr(0, s.find('\0'));
}

}  // namespace zernel
