#include "scheduler/agent.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

#include "scheduler/bpf_channel.h"
#include "scheduler/dispatcher.h"
#include "telemetry/stats.h"

namespace zernel {
namespace {

using Clock = std::chrono::steady_clock;

struct Faults {
  std::uint64_t minor = 0, major = 0;
};

Faults faults_now() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {static_cast<std::uint64_t>(ru.ru_minflt), static_cast<std::uint64_t>(ru.ru_majflt)};
}

// A userspace scheduler that page-faults can deadlock: the fault may need a kernel thread
// that waits for this scheduler to run it. Lock everything now and everything later.
void lock_memory() {
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
    std::fprintf(stderr, "zernel-scheduler: warning: mlockall failed (%s); page faults may stall scheduling\n",
                 std::strerror(errno));
}

enum class Outcome { kStopped, kKernelExit, kRestart, kLoadFailed };

Outcome run_once(const AgentOptions& opts, const std::atomic<bool>& stop, bool first) {
  std::string error;
  auto shim = Shim::attach(opts.shim, &error);
  if (!shim) {
    std::fprintf(stderr, "zernel-scheduler: %s\n", error.c_str());
    return Outcome::kLoadFailed;
  }
  auto channel = BpfChannel::open(shim->task_ring_fd(), shim->decision_ring_fd(),
                                  shim->consumed_counter(), shim->wake_flags(), &error);
  if (!channel) {
    std::fprintf(stderr, "zernel-scheduler: %s\n", error.c_str());
    return Outcome::kLoadFailed;
  }
  auto policy = make_policy(opts.policy, opts.policy_cfg);
  Dispatcher dispatcher(*channel, *policy, opts.batch);
  if (first) lock_memory();

  std::printf("zernel-scheduler: attached (policy %s, slice %llu us, batch %zu)\n",
              std::string(policy->name()).c_str(),
              static_cast<unsigned long long>(opts.policy_cfg.slice_ns / 1000), dispatcher.batch_size());
  std::fflush(stdout);

  const auto start = Clock::now();
  const Faults faults0 = faults_now();
  auto next_stats = start + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(opts.stats_interval_s));
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(opts.duration_s));

  auto print_stats = [&] {
    telemetry::StatsSnapshot snap;
    snap.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
    snap.shim = shim->read_stats();
    snap.dispatcher = dispatcher.counters();
    const Faults f = faults_now();
    snap.minor_faults = f.minor - faults0.minor;
    snap.major_faults = f.major - faults0.major;
    std::printf("%s\n", telemetry::format_stats_line(snap).c_str());
    std::fflush(stdout);
  };

  const auto keep_waiting = [&] {
    return !stop.load(std::memory_order_relaxed) && !shim->exited();
  };
  while (keep_waiting()) {
    if (dispatcher.run_once(keep_waiting) == 0)
      channel->wait_for_events(std::chrono::milliseconds(100));
    // One clock read per pass (vDSO, no system call), not per task.
    const auto now = Clock::now();
    if (opts.stats_interval_s > 0 && now >= next_stats) {
      print_stats();
      next_stats = now + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double>(opts.stats_interval_s));
    }
    if (opts.duration_s > 0 && now >= deadline) break;
  }

  const bool kernel_exit = shim->exited();
  print_stats();
  shim->detach();
  const ExitInfo info = shim->exit_info();
  if (!kernel_exit) {
    std::printf("EXIT: %s\n", info.kind ? info.reason : "detached");
    std::fflush(stdout);
    return Outcome::kStopped;
  }
  std::printf("EXIT: %s (%s)\n", info.reason, info.msg);
  std::fflush(stdout);
  if (info.exit_code & kExitRestart) return Outcome::kRestart;
  return Outcome::kKernelExit;
}

}  // namespace

int run_agent(const AgentOptions& opts, const std::atomic<bool>& stop) {
  // BPF maps are charged to memcg on current kernels, but older ones count them against
  // RLIMIT_MEMLOCK; and mlockall needs the limit lifted too.
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &unlimited);

  for (bool first = true;; first = false) {
    switch (run_once(opts, stop, first)) {
      case Outcome::kStopped:
        return 0;
      case Outcome::kLoadFailed:
      case Outcome::kKernelExit:
        return 1;
      case Outcome::kRestart:
        std::printf("zernel-scheduler: the kernel asked for a restart; restarting\n");
        std::fflush(stdout);
        continue;
    }
  }
}

}  // namespace zernel
