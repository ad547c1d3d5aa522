#include "topology/topology.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <exception>
#include <map>
#include <system_error>
#include <utility>

namespace zernel::topology {
namespace {

namespace fs = std::filesystem;

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Strict: the whole (trimmed) string must be the number. from_chars alone would accept
// "12abc" as 12, which would hide a corrupt or misread file.
template <typename T>
std::optional<T> parse_number(std::string_view s, int base) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  T value{};
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, value, base);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

// PCI ids in sysfs are written as "0x10de".
std::optional<std::uint32_t> parse_hex(std::string_view s) {
  s = trim(s);
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  if (s.empty() || s.front() == '-' || s.front() == '+') return std::nullopt;
  return parse_number<std::uint32_t>(s, 16);
}

// Digits only: from_chars would take a leading '-', and "-1" inside a cpulist is
// malformed, not CPU minus one.
std::optional<int> parse_cpu_id(std::string_view s) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  auto id = parse_number<int>(s, 10);
  if (!id || *id > kMaxCpuId) return std::nullopt;
  return id;
}

// Returns the numeric suffix of names like "node12" or "index3", so that directory
// entries can be matched and ordered numerically ("node10" after "node9").
std::optional<int> numbered_entry(const fs::path& entry, std::string_view prefix) {
  const std::string name = entry.filename().string();
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) {
    return std::nullopt;
  }
  std::string_view digits = std::string_view(name).substr(prefix.size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return parse_number<int>(digits, 10);
}

// Carries the first failure out of the nested readers, so Load reports the path that
// actually broke rather than a generic "could not load topology".
class SysfsReader {
 public:
  std::string error;

  // POSIX I/O rather than iostreams so the message can carry errno.
  std::optional<std::string> text(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(path, "cannot open: " + std::system_category().message(errno));
    std::string out;
    std::array<char, 4096> buf{};
    // sysfs attributes are small; the cap only guards against a fake or wrong root
    // pointing us at something endless.
    constexpr std::size_t kMaxBytes = 1 << 20;
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int saved = errno;
        ::close(fd);
        return fail(path, "cannot read: " + std::system_category().message(saved));
      }
      if (n == 0) break;
      out.append(buf.data(), static_cast<std::size_t>(n));
      if (out.size() > kMaxBytes) {
        ::close(fd);
        return fail(path, "larger than 1 MiB, not a sysfs attribute");
      }
    }
    ::close(fd);
    return out;
  }

  std::optional<int> integer(const fs::path& path) {
    auto t = text(path);
    if (!t) return std::nullopt;
    auto v = parse_number<int>(*t, 10);
    if (!v) return fail(path, "malformed integer \"" + std::string(trim(*t)) + "\"");
    return v;
  }

  // `allow_empty` is for node cpulists: a memory-only node (CXL, HBM) legitimately
  // lists no CPUs, whereas an empty online or sibling list means something is wrong.
  std::optional<std::vector<int>> cpulist(const fs::path& path, bool allow_empty = false) {
    auto t = text(path);
    if (!t) return std::nullopt;
    if (allow_empty && trim(*t).empty()) return std::vector<int>{};
    auto v = parse_cpulist(*t);
    if (!v) return fail(path, "malformed cpulist \"" + std::string(trim(*t)) + "\"");
    return v;
  }

  // Lists entries named <prefix><number>, sorted by number. A missing directory is not
  // an error (callers decide what absence means); any other failure is.
  std::optional<std::vector<std::pair<int, fs::path>>> numbered_dirs(const fs::path& dir,
                                                                     std::string_view prefix,
                                                                     bool* missing) {
    *missing = false;
    std::error_code ec;
    fs::directory_iterator it(dir, ec);
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      *missing = true;
      return std::vector<std::pair<int, fs::path>>{};
    }
    std::vector<std::pair<int, fs::path>> out;
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      if (auto n = numbered_entry(it->path(), prefix)) out.emplace_back(*n, it->path());
    }
    if (ec) return fail(dir, "cannot list: " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::nullopt_t fail(const fs::path& path, const std::string& what) {
    if (error.empty()) error = path.string() + ": " + what;
    return std::nullopt;
  }
};

// Returns the CPUs sharing `cpu`'s last-level cache, or an empty vector when the
// kernel describes no caches for it (the caller then falls back to the package).
std::optional<std::vector<int>> read_llc_cpus(SysfsReader& r, const fs::path& cpu_dir) {
  bool missing = false;
  auto indices = r.numbered_dirs(cpu_dir / "cache", "index", &missing);
  if (!indices) return std::nullopt;
  int best_level = -1;
  fs::path best;
  for (const auto& [n, dir] : *indices) {
    auto level = r.integer(dir / "level");
    if (!level) return std::nullopt;
    // Strictly greater keeps the lowest-numbered index among equal levels, so the
    // choice is deterministic when a level is split (L1d/L1i).
    if (*level > best_level) {
      best_level = *level;
      best = dir;
    }
  }
  if (best_level < 0) return std::vector<int>{};
  return r.cpulist(best / "shared_cpu_list");
}

// Lexicographic order goes wrong once PCI domains differ in width (Intel VMD uses
// "10000:"), so order numerically by domain, bus, device, function.
std::optional<std::array<std::uint32_t, 4>> pci_sort_key(std::string_view addr) {
  const auto c1 = addr.find(':');
  const auto c2 = c1 == std::string_view::npos ? c1 : addr.find(':', c1 + 1);
  const auto dot = c2 == std::string_view::npos ? c2 : addr.find('.', c2 + 1);
  if (dot == std::string_view::npos) return std::nullopt;
  auto domain = parse_hex(addr.substr(0, c1));
  auto bus = parse_hex(addr.substr(c1 + 1, c2 - c1 - 1));
  auto device = parse_hex(addr.substr(c2 + 1, dot - c2 - 1));
  auto function = parse_hex(addr.substr(dot + 1));
  if (!domain || !bus || !device || !function) return std::nullopt;
  return std::array<std::uint32_t, 4>{*domain, *bus, *device, *function};
}

bool pci_address_less(const std::string& a, const std::string& b) {
  auto ka = pci_sort_key(a);
  auto kb = pci_sort_key(b);
  if (ka && kb) return *ka < *kb;
  if (ka || kb) return ka.has_value();  // well-formed addresses first
  return a < b;
}

// Returns "nvidia"/"amd" for devices that are GPUs we schedule around, "" otherwise.
// The class codes are PCI base class 0x03 (display) with the subclasses each vendor
// actually uses for compute parts: NVIDIA datacenter cards are 3D controllers (0x0302),
// AMD Instinct cards report "display controller, other" (0x0380).
std::string gpu_vendor(std::uint32_t vendor, std::uint32_t pci_class) {
  constexpr std::uint32_t kNvidia = 0x10de;
  constexpr std::uint32_t kAmd = 0x1002;
  constexpr std::uint32_t kVga = 0x030000;
  constexpr std::uint32_t k3d = 0x030200;
  constexpr std::uint32_t kDisplayOther = 0x038000;
  if (vendor == kNvidia && (pci_class == kVga || pci_class == k3d)) return "nvidia";
  if (vendor == kAmd && (pci_class == kVga || pci_class == kDisplayOther)) return "amd";
  return "";
}

std::optional<std::vector<Gpu>> read_gpus(SysfsReader& r, const fs::path& root) {
  const fs::path pci = root / "bus" / "pci" / "devices";
  std::vector<Gpu> gpus;
  std::error_code ec;
  fs::directory_iterator it(pci, ec);
  // No PCI bus in sysfs (some containers, non-PCI arm boards) just means no GPUs.
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) return gpus;
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::path dev = it->path();
    // A device whose ids we cannot read cannot be one of ours; that must not stop the
    // scheduler from starting, so skip it instead of failing. A scratch reader keeps
    // those misses out of the real error.
    SysfsReader quiet;
    auto vendor_text = quiet.text(dev / "vendor");
    auto class_text = quiet.text(dev / "class");
    if (!vendor_text || !class_text) continue;
    auto vendor = parse_hex(*vendor_text);
    auto pci_class = parse_hex(*class_text);
    if (!vendor || !pci_class) continue;
    std::string name = gpu_vendor(*vendor, *pci_class);
    if (name.empty()) continue;

    Gpu gpu;
    gpu.pci_address = dev.filename().string();
    gpu.vendor = std::move(name);
    // Missing numa_node (CONFIG_NUMA=n) means the same as the kernel's own -1.
    if (auto node_text = quiet.text(dev / "numa_node")) {
      gpu.node = parse_number<int>(*node_text, 10).value_or(-1);
      if (gpu.node < -1) gpu.node = -1;
    }
    gpus.push_back(std::move(gpu));
  }
  if (ec) return r.fail(pci, "cannot list: " + ec.message());
  std::sort(gpus.begin(), gpus.end(),
            [](const Gpu& a, const Gpu& b) { return pci_address_less(a.pci_address, b.pci_address); });
  for (std::size_t i = 0; i < gpus.size(); ++i) gpus[i].index = static_cast<int>(i);
  return gpus;
}

}  // namespace

std::optional<std::vector<int>> parse_cpulist(std::string_view text) {
  text = trim(text);
  if (text.empty()) return std::nullopt;
  std::vector<int> cpus;
  while (true) {
    const auto comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    const auto dash = item.find('-');
    auto first = parse_cpu_id(item.substr(0, dash));
    auto last = dash == std::string_view::npos ? first : parse_cpu_id(item.substr(dash + 1));
    if (!first || !last || *last < *first) return std::nullopt;
    for (int c = *first; c <= *last; ++c) cpus.push_back(c);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

std::optional<Topology> Topology::Load(const std::filesystem::path& sysfs_root, std::string* error) {
  SysfsReader r;
  auto failed = [&]() -> std::optional<Topology> {
    if (error) *error = r.error.empty() ? sysfs_root.string() + ": unknown error" : r.error;
    return std::nullopt;
  };

  try {
    Topology t;
    const fs::path cpu_root = sysfs_root / "devices" / "system" / "cpu";

    auto online = r.cpulist(cpu_root / "online");
    if (!online) return failed();
    t.all_cpu_ids_ = *online;
    t.cpu_slot_.assign(static_cast<std::size_t>(online->back()) + 1, -1);
    for (std::size_t i = 0; i < online->size(); ++i) {
      t.cpu_slot_[static_cast<std::size_t>((*online)[i])] = static_cast<int>(i);
    }
    auto is_online = [&](int c) {
      return c >= 0 && c < static_cast<int>(t.cpu_slot_.size()) && t.cpu_slot_[c] >= 0;
    };
    // Sibling and cache lists name offline CPUs too; the scheduler can only use online
    // ones, and the CPU itself is always part of its own group.
    auto online_with_self = [&](std::vector<int> list, int self) {
      std::erase_if(list, [&](int c) { return !is_online(c); });
      if (!std::binary_search(list.begin(), list.end(), self)) {
        list.insert(std::lower_bound(list.begin(), list.end(), self), self);
      }
      return list;
    };

    // The LLC is keyed by the lowest online CPU sharing it before dense renumbering;
    // -1 marks CPUs without cache information, resolved per package below.
    std::vector<int> llc_key;
    for (int id : *online) {
      const fs::path dir = cpu_root / ("cpu" + std::to_string(id));
      Cpu cpu;
      cpu.id = id;
      auto core = r.integer(dir / "topology" / "core_id");
      if (!core) return failed();
      auto package = r.integer(dir / "topology" / "physical_package_id");
      if (!package) return failed();
      auto siblings = r.cpulist(dir / "topology" / "thread_siblings_list");
      if (!siblings) return failed();
      auto llc = read_llc_cpus(r, dir);
      if (!llc) return failed();

      cpu.core_id = *core;
      cpu.package_id = *package;
      cpu.smt_siblings = online_with_self(std::move(*siblings), id);
      llc_key.push_back(llc->empty() ? -1 : online_with_self(std::move(*llc), id).front());
      t.cpus_.push_back(std::move(cpu));
    }

    std::map<int, int> first_cpu_of_package;
    for (const Cpu& c : t.cpus_) first_cpu_of_package.try_emplace(c.package_id, c.id);
    std::map<int, int> llc_dense;
    for (std::size_t i = 0; i < t.cpus_.size(); ++i) {
      if (llc_key[i] < 0) llc_key[i] = first_cpu_of_package[t.cpus_[i].package_id];
      llc_dense.emplace(llc_key[i], 0);
    }
    // std::map iterates keys ascending, so LLC ids follow their lowest CPU.
    int next_llc = 0;
    for (auto& entry : llc_dense) entry.second = next_llc++;
    for (std::size_t i = 0; i < t.cpus_.size(); ++i) t.cpus_[i].llc_id = llc_dense[llc_key[i]];
    t.nr_llcs_ = next_llc;

    const fs::path node_root = sysfs_root / "devices" / "system" / "node";
    bool no_node_dir = false;
    auto node_dirs = r.numbered_dirs(node_root, "node", &no_node_dir);
    if (!node_dirs) return failed();
    if (node_dirs->empty()) {
      // CONFIG_NUMA=n kernels have no node directory: the whole machine is node 0,
      // which is also what the kernel's numa_node_id() returns there.
      t.nodes_.push_back(Node{0, *online});
      for (Cpu& c : t.cpus_) c.node = 0;
    } else {
      for (const auto& [node_id, dir] : *node_dirs) {
        auto list = r.cpulist(dir / "cpulist", /*allow_empty=*/true);
        if (!list) return failed();
        Node node{node_id, {}};
        for (int c : *list) {
          if (!is_online(c)) continue;
          Cpu& cpu = t.cpus_[static_cast<std::size_t>(t.cpu_slot_[c])];
          if (cpu.node >= 0) {
            r.fail(dir / "cpulist", "cpu " + std::to_string(c) + " is also in node " +
                                        std::to_string(cpu.node));
            return failed();
          }
          cpu.node = node_id;
          node.cpus.push_back(c);
        }
        // Memory-only nodes are left out: nothing can be scheduled on them.
        if (!node.cpus.empty()) t.nodes_.push_back(std::move(node));
      }
      for (const Cpu& c : t.cpus_) {
        if (c.node < 0) {
          r.fail(node_root, "online cpu " + std::to_string(c.id) + " is in no node's cpulist");
          return failed();
        }
      }
    }

    auto gpus = read_gpus(r, sysfs_root);
    if (!gpus) return failed();
    t.gpus_ = std::move(*gpus);
    return t;
  } catch (const std::exception& e) {
    // Only allocation failure or a filesystem_error from a path we did not anticipate
    // can land here; the contract is still "no exceptions escape".
    r.fail(sysfs_root, e.what());
    return failed();
  }
}

const Cpu* Topology::cpu(int cpu_id) const {
  if (cpu_id < 0 || cpu_id >= static_cast<int>(cpu_slot_.size())) return nullptr;
  const int slot = cpu_slot_[static_cast<std::size_t>(cpu_id)];
  return slot < 0 ? nullptr : &cpus_[static_cast<std::size_t>(slot)];
}

int Topology::node_of_cpu(int cpu_id) const {
  const Cpu* c = cpu(cpu_id);
  return c ? c->node : -1;
}

std::span<const int> Topology::cpus_of_node(int node_id) const {
  for (const Node& n : nodes_) {
    if (n.id == node_id) return n.cpus;
  }
  return {};
}

int Topology::llc_of_cpu(int cpu_id) const {
  const Cpu* c = cpu(cpu_id);
  return c ? c->llc_id : -1;
}

std::span<const int> Topology::smt_siblings(int cpu_id) const {
  const Cpu* c = cpu(cpu_id);
  if (!c) return {};
  return c->smt_siblings;
}

int Topology::gpu_node(int gpu_index) const {
  if (gpu_index < 0 || gpu_index >= static_cast<int>(gpus_.size())) return -1;
  return gpus_[static_cast<std::size_t>(gpu_index)].node;
}

std::span<const int> Topology::cpus_near_gpu(int gpu_index) const {
  std::span<const int> near = cpus_of_node(gpu_node(gpu_index));
  return near.empty() ? std::span<const int>(all_cpu_ids_) : near;
}

}  // namespace zernel::topology
