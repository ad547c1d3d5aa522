// zernel-scheduler: command line, configuration, preflight checks, signals; then the agent
// runs (or, with --monitor, a client of a running agent).
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "scheduler/agent.h"
#include "scheduler/config.h"
#include "scheduler/control.h"
#include "scheduler/policy.h"
#include "scheduler/preflight.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void on_stop(int) { g_stop.store(true, std::memory_order_relaxed); }
void on_hup(int) { g_reload.store(true, std::memory_order_relaxed); }

void install_signals() {
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking poll() returns EINTR and the loop exits
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sa.sa_handler = on_hup;
  sigaction(SIGHUP, &sa, nullptr);
}

}  // namespace

int main(int argc, char** argv) {
  zernel::AgentOptions opts;
  std::uint64_t slice_us = 5000;
  std::uint64_t stall_ms = 250;
  std::string sysfs = "/sys";
  std::string config_path;
  double wait_free_s = 0;
  double monitor_s = 0;
  bool dump_config = false;
  bool no_metrics = false;
  bool no_direct = false;
  std::size_t max_tracked = 0;

  CLI::App app{"zernel-scheduler: a userspace sched_ext CPU scheduler for ML machines.\n"
               "Runs in the foreground until Ctrl-C; the kernel then returns to its default scheduler."};
  app.add_option("-s,--slice-us", slice_us, "Time slice in microseconds")
      ->check(CLI::Range(50, 1000000))
      ->capture_default_str();
  app.add_option("-p,--policy", opts.policy, "Scheduling policy: " + std::string(zernel::kPolicyNames))
      ->check(CLI::IsMember({"fair", "fifo", "phase"}))
      ->capture_default_str();
  app.add_option("-c,--config", config_path,
                 "TOML configuration (default: " + std::string(zernel::kDefaultConfigPath) + " if it exists)");
  app.add_flag("--dump-config", dump_config, "Print the default configuration and exit");
  app.add_option("--stats", opts.stats_interval_s, "Print a stats line every SECONDS (0 = never)")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_option("--monitor", monitor_s,
                 "Print the running scheduler's stats every SECONDS (loads nothing)")
      ->check(CLI::Range(0.05, 86400.0));
  app.add_option("--duration", opts.duration_s, "Detach after SECONDS (0 = run until Ctrl-C)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--batch", opts.batch, "Tasks per dispatcher batch")->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("--spin-us", opts.spin_us,
                 "After a batch, poll for new tasks this long before sleeping, while no task waits for a "
                 "CPU (0: sleep at once; saves a wakeup of the dispatcher per burst, in the VM 40% of a "
                 "pipe round trip, at the price of up to one CPU that would otherwise idle; never on one CPU)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  app.add_flag("--no-direct-wakeups", no_direct,
               "Send every wakeup up for a decision, also those that find an idle CPU (by default the "
               "policies grant tasks a standing decision for that case, applied by the shim without "
               "the round trip)");
  app.add_option("--max-tracked-tasks", max_tracked,
                 "Tasks whose history the policy keeps (default: [general] max_tracked_tasks)")
      ->check(CLI::Range(16, 1 << 22));
  app.add_option("--stall-timeout-ms", stall_ms,
                 "The shim schedules tasks itself after the dispatcher has not consumed for this long")
      ->check(CLI::Range(20, 4000))
      ->capture_default_str();
  app.add_option("--wait-free", wait_free_s,
                 "If another sched_ext scheduler is loaded, wait up to SECONDS for it to go")
      ->check(CLI::Range(0.0, 86400.0));
  app.add_flag("--no-metrics", no_metrics, "Do not serve Prometheus metrics");
  app.add_option("--control-socket", opts.control_socket, "Control socket (default /run/zernel/scheduler.sock)");
  app.add_option("--pidfile", opts.pidfile, "Where to write the process id (empty: none)")->capture_default_str();
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

  if (dump_config) {
    std::fputs(zernel::default_config_toml().c_str(), stdout);
    return 0;
  }
  install_signals();
  if (monitor_s > 0) return zernel::run_monitor(opts.control_socket, monitor_s, g_stop);

  // An explicit --config must exist; the default path is optional.
  if (config_path.empty() && std::filesystem::exists(zernel::kDefaultConfigPath))
    config_path = std::string(zernel::kDefaultConfigPath);
  if (!config_path.empty()) {
    zernel::ConfigResult r = zernel::load_config_file(config_path);
    if (!r.config) {
      std::fprintf(stderr, "zernel-scheduler: %s; fix: correct the file (zernel-scheduler --dump-config shows the defaults)\n",
                   r.error.c_str());
      return 1;
    }
    opts.config = *r.config;
    opts.config_path = config_path;
  }

  opts.policy_cfg.slice_ns = slice_us * 1000;
  opts.policy_cfg.nr_cpus = static_cast<std::uint32_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  opts.policy_cfg.max_tracked_tasks = max_tracked ? max_tracked : opts.config.general.max_tracked_tasks;
  opts.shim.slice_dfl_ns = opts.policy_cfg.slice_ns;
  opts.sysfs_root = sysfs;
  opts.shim.stall_timeout_ns = stall_ms * 1'000'000;
  // The agent runs the dispatcher on this (the main) thread.
  opts.shim.dispatcher_tid = gettid();
  opts.shim.agent_tgid = getpid();
  opts.metrics = !no_metrics;
  opts.direct_wakeups = !no_direct;

  if (wait_free_s > 0 && geteuid() == 0) {
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(wait_free_s));
    zernel::wait_until_free(sysfs, wait_free_s);
    // A zernel-scheduler detaches from the kernel before it closes its control socket:
    // starting in between would be refused as "another zernel-scheduler is running".
    const std::filesystem::path sock = opts.control_socket.empty()
                                           ? std::filesystem::path(zernel::control::kDefaultSocketPath)
                                           : std::filesystem::path(opts.control_socket);
    while (zernel::control_socket_answers(sock) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (std::string err = zernel::preflight(sysfs, geteuid()); !err.empty()) {
    std::fprintf(stderr, "zernel-scheduler: %s\n", err.c_str());
    return 1;
  }
  return zernel::run_agent(opts, g_stop, g_reload);
}
