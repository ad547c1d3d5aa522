// The loaded BPF shim: skeleton, struct_ops link, and the pieces of its memory userspace
// reads and writes. Loader order is fixed (as in scx's loaders): open -> set rodata and
// map sizes -> load -> attach the struct_ops link; destruction detaches, which hands every
// task back to the kernel's default scheduler.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "scheduler/messages.h"

struct zernel_bpf;
struct bpf_link;

namespace zernel {

struct TaskRingMaps;

struct ShimOptions {
  pid_t dispatcher_tid = 0;  // the dispatcher thread: dispatched in the kernel, served first
  pid_t agent_tgid = 0;      // the agent's other threads: dispatched in the kernel, served next
  std::uint64_t slice_dfl_ns = 5'000'000;   // slice of kernel-dispatched and fallback tasks
  std::uint64_t stall_timeout_ns = 250'000'000;  // no consumption this long: bypass
  // The task rings' budget, split over the CPUs (task_ring_slots_for() in bpf_channel.h).
  std::uint32_t task_ring_bytes = 4u << 20;
  std::uint32_t decision_ring_bytes = 1u << 20;  // power of two, >= page size
};

class Shim {
 public:
  // Loads and attaches. On failure returns nullptr and sets *error to one line that names
  // the cause and the fix; nothing stays loaded.
  static std::unique_ptr<Shim> attach(const ShimOptions& opts, std::string* error);
  ~Shim();

  Shim(const Shim&) = delete;
  Shim& operator=(const Shim&) = delete;

  // Destroys the struct_ops link: the kernel unregisters the scheduler. Idempotent.
  void detach();

  TaskRingMaps task_rings() const;
  int decision_ring_fd() const;
  zernel_consumed* consumed_counter();
  zernel_wake_flags* wake_flags();
  // Tasks waiting in the shim's queues (and in the ring), sampled every 50 ms.
  const volatile std::uint64_t* waiting_counter();

  // Set by ops.exit when the kernel unloads us; kind != 0 means the rest is written.
  bool exited() const;
  ExitInfo exit_info() const;
  // The kernel's state dump of an error exit (empty otherwise); valid once exited().
  std::string exit_dump() const;

  // Sums the per-CPU counters (one system call).
  ShimStats read_stats() const;

  // What each CPU runs, indexed by CPU id (see struct zernel_cpu_state): shared memory the
  // shim writes, read without a system call. Valid while the Shim lives.
  std::span<const volatile CpuState> cpu_states() const;

  // Tasks waiting in the shim's queues for a CPU right now (every CPU's nr_inserted - nr_left,
  // summed without a system call). The counters are read one after another while the CPUs
  // move them, so this is exact only when they hold still; it is never far below the truth for
  // long, because a task that waits keeps its CPU's nr_inserted ahead until it runs.
  std::int64_t tasks_waiting() const { return cpu_demand().waiting; }

  struct CpuDemand {
    std::int64_t waiting = 0;  // tasks_waiting()
    std::int64_t idle = 0;     // CPUs running nothing (struct zernel_cpu_state: busy == 0)
  };
  // Both in one pass over the per-CPU states.
  CpuDemand cpu_demand() const;

 private:
  Shim() = default;
  zernel_bpf* skel_ = nullptr;
  bpf_link* link_ = nullptr;
  std::vector<bpf_link*> tracing_links_;  // futex wait counting (fentry)
  const CpuState* cpu_states_ = nullptr;
  std::size_t cpu_states_len_ = 0;
  int nr_cpus_ = 0;
};

// SCX_ECODE_ACT_RESTART: the kernel asks the scheduler to restart (e.g. after hotplug).
inline constexpr std::int64_t kExitRestart = std::int64_t{1} << 48;
// SCX_EXIT_UNREG: unregistered from user space (our own detach).
inline constexpr std::int32_t kExitUnreg = 64;

}  // namespace zernel
