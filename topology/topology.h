// Machine topology as the scheduler needs it: which CPUs share a core, a last-level
// cache and a NUMA node, and which node each GPU hangs off. Read once from sysfs at
// startup (and again on hotplug, by building a fresh Topology); a Topology is an
// immutable snapshot, so it can be shared across threads without locking.
#pragma once

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace zernel::topology {

// Upper bound on CPU ids accepted from a cpulist. Far above any kernel NR_CPUS
// (8192 today), but low enough that a corrupt "0-2000000000" cannot make us
// allocate gigabytes.
inline constexpr int kMaxCpuId = 65535;

// Parses the kernel's cpulist format ("0-3,8,10-11"), as found in sysfs files such as
// devices/system/cpu/online. Leading/trailing whitespace (sysfs files end in '\n') is
// ignored. Returns the ids sorted ascending without duplicates, or nullopt if the text
// is empty, has empty elements ("1,,2"), reversed ranges ("3-1"), non-digits, or ids
// above kMaxCpuId. An empty list is rejected on purpose: every caller that reads a
// cpulist expects at least one CPU, and the rare legitimately empty file (a
// memory-only NUMA node) is handled by its reader.
std::optional<std::vector<int>> parse_cpulist(std::string_view text);

struct Cpu {
  int id = -1;
  int node = -1;
  // Core number within its package, as the kernel reports it: not unique across
  // packages, and not necessarily dense.
  int core_id = -1;
  int package_id = -1;
  // Dense 0..nr_llcs()-1, numbered in order of the lowest online CPU sharing the
  // cache, so LLC 0 always contains CPU 0's cache domain. Derived from the highest
  // `level` under cpuN/cache/index*/; when a CPU has no cache directory (some VMs and
  // arm64 firmware do not describe caches) its whole package is taken as one LLC,
  // which is what the kernel's own scheduler domains fall back to as well.
  int llc_id = -1;
  // Online CPUs sharing this CPU's core, sorted, including the CPU itself (the same
  // convention as thread_siblings_list), so a CPU without SMT has {id}.
  std::vector<int> smt_siblings;
};

struct Node {
  int id = -1;
  std::vector<int> cpus;  // online CPUs only, sorted
};

struct Gpu {
  std::string pci_address;  // e.g. "0000:3b:00.0"
  int node = -1;            // -1: the firmware did not say (common in VMs and 1-socket boxes)
  // Ordinal by PCI address, the order nvidia-smi and CUDA_DEVICE_ORDER=PCI_BUS_ID use.
  int index = -1;
  std::string vendor;  // "nvidia" or "amd"
};

class Topology {
 public:
  // Reads the topology under `sysfs_root` (tests point it at a fake tree). Never
  // throws: on failure returns nullopt and, if `error` is non-null, stores one message
  // naming the path that could not be read or parsed. A CPU going offline mid-read can
  // make this fail; callers reacting to hotplug should simply retry.
  static std::optional<Topology> Load(const std::filesystem::path& sysfs_root = "/sys",
                                      std::string* error = nullptr);

  std::span<const Cpu> cpus() const { return cpus_; }  // online CPUs, sorted by id
  std::span<const Node> nodes() const { return nodes_; }  // nodes with online CPUs, by id
  std::span<const Gpu> gpus() const { return gpus_; }  // sorted by index

  // Online CPUs. Ids can be sparse (online "0-3,8"), so size per-CPU arrays with
  // max_cpu_id() + 1, not with this.
  int nr_cpus() const { return static_cast<int>(cpus_.size()); }
  int max_cpu_id() const { return cpus_.empty() ? -1 : cpus_.back().id; }
  int nr_llcs() const { return nr_llcs_; }

  // Lookups by id. Unknown or offline ids give -1 / an empty span rather than failing,
  // because callers often hold ids from before a hotplug event.
  const Cpu* cpu(int cpu_id) const;
  int node_of_cpu(int cpu_id) const;
  std::span<const int> cpus_of_node(int node_id) const;
  int llc_of_cpu(int cpu_id) const;
  std::span<const int> smt_siblings(int cpu_id) const;
  int gpu_node(int gpu_index) const;

  // CPUs to prefer for the threads feeding a GPU: its NUMA node's CPUs. When that is
  // not known (no numa_node, a CPU-less node, or a bad index) every online CPU is
  // returned, since any choice would be a guess and all CPUs is the safe one.
  std::span<const int> cpus_near_gpu(int gpu_index) const;

  std::span<const int> all_cpu_ids() const { return all_cpu_ids_; }

 private:
  Topology() = default;

  std::vector<Cpu> cpus_;
  std::vector<Node> nodes_;
  std::vector<Gpu> gpus_;
  std::vector<int> all_cpu_ids_;
  std::vector<int> cpu_slot_;  // cpu id -> index into cpus_, -1 if not online
  int nr_llcs_ = 0;
};

}  // namespace zernel::topology
