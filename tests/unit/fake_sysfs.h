// Builds a throwaway sysfs-shaped directory tree, so topology code can be tested
// against machines we do not have (multi-socket, multi-GPU) and against broken input.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace zernel::testing {

class FakeSysfs {
 public:
  // mkdtemp rather than a made-up name: parallel ctest runs must never share a tree.
  FakeSysfs() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "zernel-sysfs-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      throw std::system_error(errno, std::system_category(), "mkdtemp " + tmpl);
    }
    root_ = tmpl;
  }
  ~FakeSysfs() { Remove(); }
  FakeSysfs(const FakeSysfs&) = delete;
  FakeSysfs& operator=(const FakeSysfs&) = delete;

  const std::filesystem::path& root() const { return root_; }

  void Remove() {
    if (root_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
    root_.clear();
  }

  // Writes `content` plus the trailing newline every sysfs attribute has.
  void Write(const std::filesystem::path& rel, std::string_view content) const {
    const std::filesystem::path path = root_ / rel;
    std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path);
    out << content << '\n';
    if (!out) throw std::runtime_error("cannot write " + path.string());
  }

  void Delete(const std::filesystem::path& rel) const { std::filesystem::remove_all(root_ / rel); }

  void SetOnline(std::string_view cpulist) const { Write("devices/system/cpu/online", cpulist); }

  // Writes the per-CPU files the way x86 lays them out: split L1, per-core L2, and
  // the last level at index3. An empty `llc_cpus` leaves out the cache directory, as
  // on VMs whose firmware describes no caches.
  void AddCpu(int id, int core_id, int package_id, std::string_view siblings,
              std::string_view llc_cpus) const {
    const std::filesystem::path dir = "devices/system/cpu/cpu" + std::to_string(id);
    Write(dir / "topology/core_id", std::to_string(core_id));
    Write(dir / "topology/physical_package_id", std::to_string(package_id));
    Write(dir / "topology/thread_siblings_list", siblings);
    if (llc_cpus.empty()) return;
    Write(dir / "cache/index0/level", "1");
    Write(dir / "cache/index0/shared_cpu_list", siblings);
    Write(dir / "cache/index1/level", "1");
    Write(dir / "cache/index1/shared_cpu_list", siblings);
    Write(dir / "cache/index2/level", "2");
    Write(dir / "cache/index2/shared_cpu_list", siblings);
    Write(dir / "cache/index3/level", "3");
    Write(dir / "cache/index3/shared_cpu_list", llc_cpus);
  }

  void AddNode(int id, std::string_view cpulist) const {
    Write("devices/system/node/node" + std::to_string(id) + "/cpulist", cpulist);
  }

  // `numa_node` nullopt leaves the file out, as on CONFIG_NUMA=n kernels.
  void AddPciDevice(std::string_view address, std::string_view pci_class,
                    std::string_view vendor, std::optional<int> numa_node) const {
    const std::filesystem::path dir = std::filesystem::path("bus/pci/devices") / address;
    Write(dir / "class", pci_class);
    Write(dir / "vendor", vendor);
    if (numa_node) Write(dir / "numa_node", std::to_string(*numa_node));
  }

 private:
  std::filesystem::path root_;
};

}  // namespace zernel::testing
