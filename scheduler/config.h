// The scheduler's configuration file, /etc/zernel/scheduler.toml.
//
// The file has exactly five sections; every key is optional and a missing key keeps its
// default, so an empty file is the default configuration. Anything the loader does not
// understand is an error rather than a warning: a misspelt key silently ignored would
// leave the operator believing a setting is in force when it is not. Errors name the
// place in the file as `path:line:col: message` (editors and CI annotate that form), and
// a file with any error loads nothing.
//
//   [general]
//   phase_eval_interval_ms  10..60000          how often each ML task's phase is re-evaluated
//   gpu_poll_interval_ms    10..60000          how often GPU utilization is sampled
//   max_tracked_tasks       16..4194304        same range as --max-tracked-tasks; 4194304 is
//                                              the kernel's PID_MAX_LIMIT
//   ml_process_names        optional array of process names (comm) that make a process an ML
//                           process even if it maps no ML library (see "Match rules" below)
//   [phase_detection]
//   io_wait_threshold       0.0..1.0           fraction of the window spent in I/O wait
//   optimizer_burst_max_ns  1000..1000000000   1 µs .. 1 s
//   gpu_idle_threshold      0..100 (percent)   must be below gpu_active_threshold, or the
//   gpu_active_threshold    0..100 (percent)   "idle" and "active" bands would overlap
//   phase_stability_count   1..100             1 = commit every classification at once
//   nccl_detection_enabled  bool
//   [numa]                  enabled, gpu_affinity, memory_affinity: bool
//   [multi_tenant]
//   enabled                 bool
//   default_priority_class  normal | training | inference | interactive | background
//   rules                   optional array of tables, [[multi_tenant.rules]] (below)
//   [telemetry]
//   metrics_port            1..65535
//   push_interval_ms        100..3600000
//   metrics_address         optional, an IPv4 or IPv6 literal (default 127.0.0.1: the
//                           metrics say what runs on the machine, so they are not served
//                           to the network unless the operator asks)
//
// Match rules (the config decision): the product needs two kinds of rules, and both fit
// inside the five sections without adding a sixth.
//  - Which processes are ML processes beyond what the library scan finds: a plain list of
//    names, `general.ml_process_names = ["python3", "torchrun"]`. One field per rule would
//    have been a table; a rule that only ever has one field is a list entry.
//  - Tenant rules: `[[multi_tenant.rules]]`, an array of tables that is a key of the
//    multi_tenant section (TOML's dotted header), so the section list stays exact:
//        [[multi_tenant.rules]]
//        class = "Training"          # required: Training|Inference|Interactive|Background|Normal
//        cgroup = "/kubepods/train"  # cgroup v2 path prefix, matched by whole components
//        comm = "python"             # process name: exact, or a prefix (no globs)
//        uid = 1000                  # real uid
//        gpus = 4                    # optional: GPUs the tenant holds (not a match field)
//    A rule needs at least one of cgroup/comm/uid (a rule with none would silently claim
//    every process); all fields given must match; the first matching rule wins.
// Names (comm) are at most 15 characters because the kernel truncates comm to that; a
// longer name could never match, so it is rejected. Class names are case-insensitive.
// None of the optional keys appear in the default dump (only as comments), so
// `--dump-config` prints exactly the spec's defaults.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zernel {

// Tenant priority classes. `Normal` is what a process gets when no rule matches (and the
// value of default_priority_class unless configured otherwise).
enum class PriorityClass : std::uint8_t { Normal, Training, Inference, Interactive, Background };

// The priority offset a class adds: Training +5, Inference +3, Interactive +1,
// Background -5, Normal 0.
int priority_of(PriorityClass cls);

// Canonical spelling, as in the spec ("Training", ..., "normal" for Normal because that is
// how default_priority_class spells it).
std::string_view priority_class_name(PriorityClass cls);

// Case-insensitive; nullopt for anything else.
std::optional<PriorityClass> parse_priority_class(std::string_view name);

struct TenantRule {
  PriorityClass cls = PriorityClass::Normal;
  std::optional<std::string> cgroup;  // cgroup v2 path prefix, starts with '/'
  std::optional<std::string> comm;    // exact name or prefix, 1..15 characters
  std::optional<std::uint32_t> uid;
  std::optional<int> gpus;  // GPUs the tenant holds, 0..4096

  bool operator==(const TenantRule&) const = default;
};

struct Config {
  struct General {
    std::uint32_t phase_eval_interval_ms = 100;
    std::uint32_t gpu_poll_interval_ms = 500;
    std::uint32_t max_tracked_tasks = 65536;
    std::vector<std::string> ml_process_names;  // optional key

    bool operator==(const General&) const = default;
  };
  struct PhaseDetection {
    double io_wait_threshold = 0.3;
    std::uint64_t optimizer_burst_max_ns = 5'000'000;
    double gpu_idle_threshold = 10;    // percent
    double gpu_active_threshold = 80;  // percent
    std::uint32_t phase_stability_count = 3;
    bool nccl_detection_enabled = false;

    bool operator==(const PhaseDetection&) const = default;
  };
  struct Numa {
    bool enabled = true;
    bool gpu_affinity = true;
    bool memory_affinity = true;

    bool operator==(const Numa&) const = default;
  };
  struct MultiTenant {
    bool enabled = false;
    PriorityClass default_priority_class = PriorityClass::Normal;
    std::vector<TenantRule> rules;  // optional key

    bool operator==(const MultiTenant&) const = default;
  };
  struct Telemetry {
    std::uint16_t metrics_port = 9093;
    std::uint32_t push_interval_ms = 1000;
    std::string metrics_address = "127.0.0.1";  // optional key

    bool operator==(const Telemetry&) const = default;
  };

  General general;
  PhaseDetection phase_detection;
  Numa numa;
  MultiTenant multi_tenant;
  Telemetry telemetry;

  bool operator==(const Config&) const = default;
};

inline constexpr std::string_view kDefaultConfigPath = "/etc/zernel/scheduler.toml";

// Exactly one of the two is set.
struct ConfigResult {
  std::optional<Config> config;
  std::string error;  // "path:line:col: message", or "path: message" when there is no position
};

// Parses `text`; `name` is the path used in error messages.
ConfigResult load_config_string(std::string_view text, std::string_view name);

// Reads and parses a file. A missing or unreadable file is an error ("path: cannot read:
// ..."); whether a missing *default* file means "use the defaults" is the caller's call.
ConfigResult load_config_file(const std::filesystem::path& path);

// `cfg` as TOML with short comments. Optional keys are written only when they differ
// from their defaults, so load_config_string(config_to_toml(c)) == c for every valid c and
// the dump of the defaults shows only the spec's keys.
std::string config_to_toml(const Config& cfg);

// What --dump-config prints: config_to_toml(Config{}).
std::string default_config_toml();

}  // namespace zernel
