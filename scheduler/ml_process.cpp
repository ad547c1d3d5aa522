#include "scheduler/text_parse.h"
#include "scheduler/ml_process.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>
#include <system_error>

namespace zernel {
namespace {

// Deeper than any real process tree; it bounds the parent walk if /proc ever shows a
// cycle (a pid reused by a process whose parent is its old child).
constexpr int kMaxTreeDepth = 256;

std::optional<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return std::move(text).str();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

std::filesystem::path pid_dir(const std::filesystem::path& root, int pid) {
  return root / std::to_string(pid);
}

}  // namespace

// ------------------------------------------------------------------------------------------
// ProcReader

std::optional<ProcReader::Stat> ProcReader::stat(int pid) const {
  const auto text = read_file(pid_dir(root_, pid) / "stat");
  if (!text) return std::nullopt;
  const std::size_t open = text->find('(');
  const std::size_t close = text->rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return std::nullopt;

  Stat st;
  st.comm = text->substr(open + 1, close - open - 1);
  // After ") ": field 3 (state) is index 0, field 4 (ppid) index 1, field 22 (starttime)
  // index 19.
  std::vector<std::string_view> fields;
  std::string_view rest = std::string_view(*text).substr(close + 1);
  while (!rest.empty() && fields.size() < 20) {
    rest = trim(rest);
    const std::size_t sp = rest.find(' ');
    fields.push_back(rest.substr(0, sp));
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  if (fields.size() < 20) return std::nullopt;
  const auto ppid = parse_number<int>(fields[1]);
  const auto start = parse_number<std::uint64_t>(fields[19]);
  if (!ppid || !start) return std::nullopt;
  st.ppid = *ppid;
  st.start_time = *start;
  return st;
}

std::optional<std::string> ProcReader::environ_var(int pid, std::string_view name) const {
  const auto text = read_file(pid_dir(root_, pid) / "environ");
  if (!text) return std::nullopt;
  std::string_view rest = *text;
  while (!rest.empty()) {
    const std::size_t nul = rest.find('\0');
    const std::string_view entry = rest.substr(0, nul);
    if (entry.size() > name.size() && entry.starts_with(name) && entry[name.size()] == '=') {
      return std::string(entry.substr(name.size() + 1));
    }
    if (nul == std::string_view::npos) break;
    rest.remove_prefix(nul + 1);
  }
  return std::nullopt;
}

bool ProcReader::maps_library(int pid, std::span<const std::string_view> prefixes) const {
  // Line by line: a Python process maps thousands of regions, no need to hold them all.
  std::ifstream in(pid_dir(root_, pid) / "maps");
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t slash = line.rfind('/');
    if (slash == std::string::npos) continue;  // anonymous, [heap], [stack], ...
    const std::string_view base = std::string_view(line).substr(slash + 1);
    for (std::string_view p : prefixes) {
      if (base.starts_with(p)) return true;
    }
  }
  return false;
}

std::optional<std::string> ProcReader::cgroup_path(int pid) const {
  const auto text = read_file(pid_dir(root_, pid) / "cgroup");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("0::")) return line.substr(3);
  }
  return std::nullopt;
}

std::optional<std::uint32_t> ProcReader::uid(int pid) const {
  const auto text = read_file(pid_dir(root_, pid) / "status");
  if (!text) return std::nullopt;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with("Uid:")) continue;
    std::string_view rest = trim(std::string_view(line).substr(4));
    return parse_number<std::uint32_t>(rest.substr(0, rest.find_first_of(" \t")));
  }
  return std::nullopt;
}

std::vector<std::string> ProcReader::thread_names(int pid) const {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(pid_dir(root_, pid) / "task", ec)) {
    if (auto comm = read_file(e.path() / "comm")) names.emplace_back(trim(*comm));
  }
  return names;
}

std::vector<int> ProcReader::pids() const {
  std::vector<int> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root_, ec)) {
    if (auto pid = parse_number<int>(e.path().filename().string()); pid && *pid > 0) {
      out.push_back(*pid);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ------------------------------------------------------------------------------------------
// Matching helpers

std::optional<std::vector<int>> parse_cuda_visible_devices(std::string_view value) {
  std::vector<int> gpus;
  while (true) {
    const std::size_t comma = value.find(',');
    const std::string_view entry = trim(value.substr(0, comma));
    if (entry.starts_with("GPU-") || entry.starts_with("MIG-")) return std::nullopt;
    const auto n = parse_number<int>(entry);
    if (!n || *n < 0) break;  // CUDA stops at the first invalid entry
    if (std::find(gpus.begin(), gpus.end(), *n) == gpus.end()) gpus.push_back(*n);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return gpus;
}

bool comm_matches(std::string_view comm, std::string_view rule) {
  return !rule.empty() && comm.starts_with(rule);
}

bool cgroup_matches(std::string_view path, std::string_view prefix) {
  while (prefix.size() > 1 && prefix.back() == '/') prefix.remove_suffix(1);
  if (prefix == "/") return path.starts_with('/');
  if (!path.starts_with(prefix)) return false;
  return path.size() == prefix.size() || path[prefix.size()] == '/';
}

// ------------------------------------------------------------------------------------------
// MlProcessInspector

CudaDevices MlProcessInspector::cuda_devices(int pid) const {
  CudaDevices cuda;
  if (const auto value = proc_.environ_var(pid, "CUDA_VISIBLE_DEVICES")) {
    cuda.set = true;
    cuda.gpus = parse_cuda_visible_devices(*value);
  }
  return cuda;
}

bool MlProcessInspector::is_ml_process(int pid, const CudaDevices& cuda) const {
  if (!names_.empty()) {
    if (const auto st = proc_.stat(pid)) {
      for (const std::string& n : names_) {
        if (comm_matches(st->comm, n)) return true;
      }
    }
  }
  if (cuda.set) return true;
  return proc_.maps_library(pid, kMlLibraryPrefixes);
}

bool MlProcessInspector::nccl_active(int pid) const {
  static constexpr std::string_view kNccl[] = {"libnccl"};
  if (proc_.maps_library(pid, kNccl)) return true;
  const auto names = proc_.thread_names(pid);
  return std::any_of(names.begin(), names.end(),
                     [](const std::string& n) { return n.starts_with("NCCL"); });
}

// ------------------------------------------------------------------------------------------
// MlJobTracker

void MlJobTracker::Verdict::set(bool result, std::uint64_t refresh) {
  yes = result;
  recheck_gap = checked ? std::min(recheck_gap * 2, kMaxRecheckGap) : 1;
  recheck_at = refresh + recheck_gap;
  checked = true;
}

MlJobTracker::Entries::iterator MlJobTracker::load(int pid, Entries* previous) {
  const auto st = inspector_.proc().stat(pid);
  if (!st) return entries_.end();
  Entry e;
  e.ppid = st->ppid;
  e.start_time = st->start_time;
  e.comm = st->comm;
  if (pid == 2 || st->ppid == 2) {
    // kthreadd (2) and its children are kernel threads: no maps, no environ, never ML.
    e.known.ml.checked = true;
    e.known.ml.recheck_at = ~std::uint64_t{0};
  } else if (previous != nullptr) {
    const auto old = previous->find(pid);
    // The same process: pid and start time (pids are reused) and name. An exec keeps the
    // first two but replaces the environment and the maps (a shell's fork reads as the
    // shell until it execs the trainer); what changes with it is the name. A process that
    // renames itself is read again once, which costs one read.
    if (old != previous->end() && old->second.start_time == st->start_time && old->second.comm == st->comm)
      e.known = std::move(old->second.known);
  }
  return entries_.insert_or_assign(pid, std::move(e)).first;
}

MlJobTracker::Entries::iterator MlJobTracker::find(int pid) {
  const auto it = entries_.find(pid);
  return it != entries_.end() ? it : load(pid, nullptr);
}

const CudaDevices& MlJobTracker::cuda_devices(int pid, Entry& e) {
  if (!e.known.cuda) {
    e.known.cuda = inspector_.cuda_devices(pid);
    ++environ_reads_;
  }
  return *e.known.cuda;
}

void MlJobTracker::check(int pid, Entry& e) {
  if (!e.known.ml.due(refreshes_)) return;
  e.known.ml.set(inspector_.is_ml_process(pid, cuda_devices(pid, e)), refreshes_);
  ++checks_;
}

std::optional<std::vector<int>> MlJobTracker::visible_gpus(int pid) {
  const auto it = find(pid);
  if (it == entries_.end()) return std::nullopt;
  return cuda_devices(pid, it->second).gpus;
}

bool MlJobTracker::nccl_active(int pid) {
  const auto it = find(pid);
  if (it == entries_.end()) return false;
  Verdict& v = it->second.known.nccl;
  if (v.due(refreshes_)) {
    v.set(inspector_.nccl_active(pid), refreshes_);
    ++nccl_checks_;
  }
  return v.yes;
}

std::optional<int> MlJobTracker::job_root(int pid) {
  // Walk up until the first ancestor whose root is already known (or the top), then hand
  // roots down the chain: the topmost ML process seen from above wins, so a process is
  // checked only when no ancestor is ML.
  std::vector<std::pair<int, Entry*>> chain;
  int ancestor_root = -1;
  int cur = pid;
  for (int depth = 0; cur > 0 && depth < kMaxTreeDepth; ++depth) {
    const auto it = find(cur);
    if (it == entries_.end()) break;  // exited, or above the top of the tree
    if (it->second.root_known) {
      ancestor_root = it->second.root;
      break;
    }
    chain.emplace_back(cur, &it->second);
    cur = it->second.ppid;
  }
  // The pointers are still valid: inserting into an unordered_map may rehash, which
  // invalidates iterators but never moves elements.
  int running = ancestor_root;
  for (auto e = chain.rbegin(); e != chain.rend(); ++e) {
    if (running < 0) {
      check(e->first, *e->second);
      if (e->second->known.ml.yes) running = e->first;
    }
    e->second->root = running;
    e->second->root_known = true;
  }
  const auto it = entries_.find(pid);
  if (it == entries_.end() || it->second.root < 0) return std::nullopt;
  return it->second.root;
}

void MlJobTracker::refresh() {
  ++refreshes_;
  Entries previous = std::move(entries_);
  entries_.clear();
  const std::vector<int> pids = inspector_.proc().pids();
  for (int pid : pids) load(pid, &previous);
  for (int pid : pids) job_root(pid);
}

std::vector<MlJobTracker::Process> MlJobTracker::processes() const {
  std::vector<Process> out;
  out.reserve(entries_.size());
  for (const auto& [pid, e] : entries_) out.push_back({pid, e.ppid, e.start_time});
  return out;
}

std::vector<int> MlJobTracker::job_roots() const {
  std::set<int> roots;
  for (const auto& [pid, e] : entries_) {
    if (e.root_known && e.root >= 0) roots.insert(e.root);
  }
  return {roots.begin(), roots.end()};
}

std::vector<int> MlJobTracker::job_members(int root) const {
  std::vector<int> out;
  for (const auto& [pid, e] : entries_) {
    if (e.root_known && e.root == root) out.push_back(pid);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ------------------------------------------------------------------------------------------
// TenantClassifier

Tenant TenantClassifier::classify(const ProcessIdentity& id) const {
  Tenant t;
  if (!cfg_.enabled) return t;
  t.cls = cfg_.default_priority_class;
  for (std::size_t i = 0; i < cfg_.rules.size(); ++i) {
    const TenantRule& r = cfg_.rules[i];
    if (r.cgroup && !(id.cgroup && cgroup_matches(*id.cgroup, *r.cgroup))) continue;
    if (r.comm && !comm_matches(id.comm, *r.comm)) continue;
    if (r.uid && id.uid != r.uid) continue;
    t.cls = r.cls;
    t.gpus = r.gpus;
    t.rule = static_cast<int>(i);
    break;
  }
  t.priority = priority_of(t.cls);
  return t;
}

ProcessIdentity TenantClassifier::identity(int pid) const {
  ProcessIdentity id;
  if (auto st = proc_.stat(pid)) id.comm = std::move(st->comm);
  id.cgroup = proc_.cgroup_path(pid);
  id.uid = proc_.uid(pid);
  return id;
}

Tenant TenantClassifier::classify(int pid) const {
  if (!cfg_.enabled) return Tenant{};
  return classify(identity(pid));
}

}  // namespace zernel
