// Which processes are ML jobs, which GPUs they use, and which tenant they belong to, read
// from /proc (under an injectable root, so tests use a fake tree).
//
// Control path only: everything here reads files and allocates. The policy asks about a
// process once (results are cached by MlJobTracker for the process's lifetime, or re-read
// at growing gaps while they are "no") and re-scans every so often, never per scheduling
// event.
//
// Reading another process's /proc/PID/environ and maps needs root (ptrace read access);
// the scheduler runs as root. A file that cannot be read counts as "no evidence", never
// as an error: processes exit between listing /proc and reading it all the time.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "scheduler/config.h"

namespace zernel {

// Shared libraries whose presence in a process's maps makes it an ML process, matched as a
// prefix of the mapped file's name: "libcuda" covers libcuda.so.1 and libcudart.so.12,
// "libtorch" covers libtorch_cpu.so and libtorch_cuda.so, "libtensorflow" covers
// libtensorflow_framework.so.2.
inline constexpr std::string_view kMlLibraryPrefixes[] = {"libcuda", "libnccl", "libtorch",
                                                          "libtensorflow", "libnvidia-ml"};

// The raw /proc reads.
class ProcReader {
 public:
  explicit ProcReader(std::filesystem::path root = "/proc") : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }

  struct Stat {
    int ppid = 0;
    std::uint64_t start_time = 0;  // clock ticks after boot: tells a reused pid apart
    std::string comm;
  };
  // /proc/PID/stat. comm is parsed up to the *last* ')', since a name may contain one.
  std::optional<Stat> stat(int pid) const;

  // One variable of the environment the process was started with (/proc/PID/environ).
  // Changes the process made later with setenv() are not visible there.
  std::optional<std::string> environ_var(int pid, std::string_view name) const;

  // Whether a file mapped into the process has a name starting with one of `prefixes`.
  bool maps_library(int pid, std::span<const std::string_view> prefixes) const;

  // The cgroup v2 path from the "0::/path" line of /proc/PID/cgroup (as seen from our
  // cgroup namespace), nullopt on a v1-only system.
  std::optional<std::string> cgroup_path(int pid) const;

  // Real uid from the "Uid:" line of /proc/PID/status.
  std::optional<std::uint32_t> uid(int pid) const;

  // comm of every thread (/proc/PID/task/*/comm).
  std::vector<std::string> thread_names(int pid) const;

  // Every process (numeric entry) under the root, ascending.
  std::vector<int> pids() const;

 private:
  std::filesystem::path root_;
};

// CUDA_VISIBLE_DEVICES as CUDA reads it: comma-separated ordinals, and the list ends at the
// first entry that is not a non-negative integer ("0,-1,2" is {0}; "" is none). Returns
// nullopt when the value names GPUs by UUID ("GPU-..."/"MIG-...") instead: which ordinals
// those are needs NVML, so the answer is "unknown", not "none".
std::optional<std::vector<int>> parse_cuda_visible_devices(std::string_view value);

// A name rule matches a comm equal to it or starting with it (no globs).
bool comm_matches(std::string_view comm, std::string_view rule);

// A cgroup rule matches the path itself and everything below it, by whole components:
// "/train" matches "/train" and "/train/job1", not "/training". "/" matches every path.
bool cgroup_matches(std::string_view path, std::string_view prefix);

// CUDA_VISIBLE_DEVICES of a process as read from /proc/PID/environ: the environment it
// was started with, which setenv() does not change, so it is read once per process. (A
// setproctitle-style rename may overwrite it later; the first read is then the better.)
struct CudaDevices {
  bool set = false;                      // in the environment, possibly empty
  std::optional<std::vector<int>> gpus;  // parse_cuda_visible_devices; nullopt: unset, UUIDs
};

// The per-process questions.
class MlProcessInspector {
 public:
  explicit MlProcessInspector(ProcReader proc = ProcReader(),
                              std::vector<std::string> ml_process_names = {})
      : proc_(std::move(proc)), names_(std::move(ml_process_names)) {}

  // Reads /proc/PID/environ.
  CudaDevices cuda_devices(int pid) const;

  // An ML process is one that
  //   1. has a name matching general.ml_process_names (checked first: cheapest), or
  //   2. was started with CUDA_VISIBLE_DEVICES in its environment (set or empty), or
  //   3. maps one of kMlLibraryPrefixes.
  // Rule 3 finds the usual PyTorch/TensorFlow trainer once it has imported the framework;
  // rules 1 and 2 cover the time before that and CUDA programs with other libraries.
  // `cuda` is cuda_devices(pid), which a caller that asks again keeps rather than re-reads.
  bool is_ml_process(int pid, const CudaDevices& cuda) const;
  bool is_ml_process(int pid) const { return is_ml_process(pid, cuda_devices(pid)); }

  // GPUs named by CUDA_VISIBLE_DEVICES; nullopt when unset (all GPUs) or unknown (UUIDs).
  std::optional<std::vector<int>> visible_gpus(int pid) const { return cuda_devices(pid).gpus; }

  // libnccl mapped, or a thread whose name starts with "NCCL". Both can miss: PyTorch
  // wheels link NCCL statically into libtorch_cuda.so, and NCCL names its threads only
  // with NCCL_SET_THREAD_NAME=1, so it is only as good as the evidence the job exposes.
  bool nccl_active(int pid) const;

  const ProcReader& proc() const { return proc_; }

 private:
  ProcReader proc_;
  std::vector<std::string> names_;
};

// ML jobs as process trees. DataLoader workers are processes the trainer forks, so a job is
// an ML process together with all its descendants (whether or not they look like ML
// themselves: a freshly spawned worker has not imported anything yet). A process's job
// root is its topmost ancestor-or-self that is an ML process, so a launcher (torchrun)
// and its ranks and their workers are one job; a process with no ML ancestor-or-self is
// in no job.
//
// What it reads is cached per process (pid, start time and name: pids are reused, and an
// exec replaces environ and maps) and dropped
// when a refresh no longer lists the pid. "Is ML" and "runs NCCL" are kept for the
// process's life once true (a process does not unload its framework or NCCL). "No" is
// checked again, since a trainer maps libtorch only after it starts and libnccl only at
// init_process_group, but at growing gaps: at the next refresh, then 2, 4, 8 and at most
// kMaxRecheckGap refreshes later. Each check reads the process's maps (the kernel walks
// its memory map under its mmap lock; a trainer maps thousands of regions): done for every
// process on every refresh, it cost `perf bench sched messaging`, whose 160 processes map
// ~100 regions each, 2.97 s against 2.02 s without the monitor in one VM boot (EEVDF
// 1.74). CUDA_VISIBLE_DEVICES is read from environ once per process. A process below an ML
// ancestor is in that job whatever it maps, so it is not checked for ML at all.
class MlJobTracker {
 public:
  explicit MlJobTracker(MlProcessInspector inspector) : inspector_(std::move(inspector)) {}

  // The job root of `pid`, or nullopt if it is in no ML job (or has exited). A pid not
  // seen by the last refresh() is looked up on the spot and cached until the next one.
  std::optional<int> job_root(int pid);

  // Re-reads every process under the /proc root and recomputes all jobs. Cost: one stat
  // per process plus, for each process due for an ML check, its maps (and its environ, the
  // first time); call it every few hundred milliseconds at most
  // (general.gpu_poll_interval_ms is a good pace), not per window.
  void refresh();

  // MlProcessInspector::visible_gpus of `pid`, from the environ read once per process.
  std::optional<std::vector<int>> visible_gpus(int pid);
  // MlProcessInspector::nccl_active of `pid` (maps and thread names), kept once true and
  // checked again at growing gaps while false, like "not ML". Meant for the processes of
  // a job, once per refresh; false for a pid that has exited.
  bool nccl_active(int pid);

  // Every process as the last refresh() (and lookups since) read its stat, so that a
  // caller walking them all need not read /proc again.
  struct Process {
    int pid = 0;
    int ppid = 0;
    std::uint64_t start_time = 0;
  };
  std::vector<Process> processes() const;

  // As of the last refresh() plus on-the-spot lookups, ascending.
  std::vector<int> job_roots() const;
  std::vector<int> job_members(int root) const;

  const MlProcessInspector& inspector() const { return inspector_; }
  // What the tracker costs, so far: ML checks (maps), NCCL checks (maps, thread names)
  // and environ reads.
  std::uint64_t checks() const { return checks_; }
  std::uint64_t nccl_checks() const { return nccl_checks_; }
  std::uint64_t environ_reads() const { return environ_reads_; }

 private:
  // At most this many refreshes between two checks of a process found not ML: 8 s at the
  // default general.gpu_poll_interval_ms of 500.
  static constexpr std::uint32_t kMaxRecheckGap = 16;

  // A yes/no about a process that stays yes once it is: a "no" is checked again at the
  // next refresh, then 2, 4, ... kMaxRecheckGap refreshes later.
  struct Verdict {
    bool yes = false;
    bool checked = false;            // `yes` is a verdict, not a default
    std::uint32_t recheck_gap = 0;   // refreshes between its last two checks
    std::uint64_t recheck_at = 0;    // the refresh (refreshes_) of its next check, if no

    bool due(std::uint64_t refresh) const { return !checked || (!yes && refresh >= recheck_at); }
    void set(bool result, std::uint64_t refresh);
  };
  // What is kept across refreshes while it is the same process.
  struct Known {
    Verdict ml;
    Verdict nccl;
    std::optional<CudaDevices> cuda;  // read on first use
  };
  struct Entry {
    int ppid = 0;
    std::uint64_t start_time = 0;
    std::string comm;
    Known known;
    bool root_known = false;
    int root = -1;  // -1: in no job
  };
  using Entries = std::unordered_map<int, Entry>;

  // Reads the process's stat; takes what is known from `previous` if it is the same process.
  Entries::iterator load(int pid, Entries* previous);
  // The entry of `pid`, loaded on the spot if the last refresh did not see it.
  Entries::iterator find(int pid);
  // Makes `e.known.ml` a verdict of this refresh's, unless a "not ML" is not due for a check.
  void check(int pid, Entry& e);
  const CudaDevices& cuda_devices(int pid, Entry& e);

  MlProcessInspector inspector_;
  Entries entries_;
  std::uint64_t refreshes_ = 0;
  std::uint64_t checks_ = 0;
  std::uint64_t nccl_checks_ = 0;
  std::uint64_t environ_reads_ = 0;
};

// Tenant of a process, from [multi_tenant]: the first rule whose given fields all match.
struct Tenant {
  PriorityClass cls = PriorityClass::Normal;
  int priority = 0;         // priority_of(cls)
  std::optional<int> gpus;  // the matching rule's `gpus`, if it has one
  int rule = -1;            // index into the rules, -1 = no rule matched
};

// What tenant rules look at. A field that could not be read never matches a rule that
// tests it.
struct ProcessIdentity {
  std::string comm;
  std::optional<std::string> cgroup;
  std::optional<std::uint32_t> uid;
};

class TenantClassifier {
 public:
  TenantClassifier(Config::MultiTenant cfg, ProcReader proc = ProcReader())
      : cfg_(std::move(cfg)), proc_(std::move(proc)) {}

  // With multi_tenant disabled every process is Normal (priority 0) whatever the rules
  // say: `enabled = false` is the off switch. Otherwise the first matching rule decides,
  // and a process no rule matches gets default_priority_class.
  Tenant classify(const ProcessIdentity& id) const;

  // Reads comm, cgroup and uid of `pid` and classifies it; an exited process is
  // classified on whatever could be read (usually nothing: the default class).
  Tenant classify(int pid) const;

  ProcessIdentity identity(int pid) const;

 private:
  Config::MultiTenant cfg_;
  ProcReader proc_;
};

}  // namespace zernel
