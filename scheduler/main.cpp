// zernel-scheduler: command line, preflight checks, signals; then the agent runs.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <string>

#include "scheduler/agent.h"
#include "scheduler/policy.h"
#include "scheduler/preflight.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) { g_stop.store(true, std::memory_order_relaxed); }

void install_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking poll() returns EINTR and the loop exits
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  zernel::AgentOptions opts;
  std::uint64_t slice_us = 5000;
  std::uint64_t stall_ms = 250;
  std::string sysfs = "/sys";
  double wait_free_s = 0;

  CLI::App app{"zernel-scheduler: a userspace sched_ext CPU scheduler for ML machines.\n"
               "Runs in the foreground until Ctrl-C; the kernel then returns to its default scheduler."};
  app.add_option("-s,--slice-us", slice_us, "Time slice in microseconds")
      ->check(CLI::Range(50, 1000000))
      ->capture_default_str();
  app.add_option("-p,--policy", opts.policy,
                 "Scheduling policy: " + std::string(zernel::kPolicyNames))
      ->check(CLI::IsMember({"fair", "fifo"}))
      ->capture_default_str();
  app.add_option("--stats", opts.stats_interval_s, "Print a stats line every SECONDS (0 = never)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--duration", opts.duration_s, "Detach after SECONDS (0 = run until Ctrl-C)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--batch", opts.batch, "Tasks per dispatcher batch")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  app.add_option("--max-tracked-tasks", opts.policy_cfg.max_tracked_tasks,
                 "Tasks whose history the policy keeps")
      ->check(CLI::Range(16, 1 << 22))
      ->capture_default_str();
  app.add_option("--stall-timeout-ms", stall_ms,
                 "The shim schedules tasks itself after the dispatcher has not consumed for this long")
      ->check(CLI::Range(20, 4000))
      ->capture_default_str();
  app.add_option("--wait-free", wait_free_s,
                 "If another sched_ext scheduler is loaded, wait up to SECONDS for it to go")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--sysfs", sysfs, "sysfs root (for tests)")->group("");
  app.set_version_flag("-V,--version", "zernel-scheduler 0.1.0");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, with the fix, instead of CLI11's two.
    std::fprintf(stderr, "zernel-scheduler: %s; fix: see zernel-scheduler --help\n", e.what());
    return 2;
  }

  opts.policy_cfg.slice_ns = slice_us * 1000;
  opts.shim.slice_dfl_ns = opts.policy_cfg.slice_ns;
  opts.shim.stall_timeout_ns = stall_ms * 1'000'000;
  opts.shim.usersched_tgid = getpid();

  if (wait_free_s > 0 && geteuid() == 0) zernel::wait_until_free(sysfs, wait_free_s);
  if (std::string err = zernel::preflight(sysfs, geteuid()); !err.empty()) {
    std::fprintf(stderr, "zernel-scheduler: %s\n", err.c_str());
    return 1;
  }

  install_signals();
  return zernel::run_agent(opts, g_stop);
}
