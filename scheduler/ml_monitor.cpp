#include "scheduler/ml_monitor.h"

#include <algorithm>
#include <bit>
#include <system_error>

namespace zernel {
namespace {

using Clock = std::chrono::steady_clock;

// A process's tenant (its comm, cgroup and uid: a process can be moved to another cgroup)
// is re-read this often; a new pid (or a reused one: start time differs) is read at once.
// GPUs and NCCL come from jobs_, which keeps what does not change for a process's life.
constexpr auto kRecheck = std::chrono::seconds(2);

std::uint64_t mask_of(const std::vector<int>& gpus, std::size_t nr_gpus) {
  std::uint64_t m = 0;
  for (int g : gpus)
    if (g >= 0 && static_cast<std::size_t>(g) < std::min(nr_gpus, kMaxSnapshotGpus)) m |= std::uint64_t{1} << g;
  return m;
}

}  // namespace

MlMonitor::MlMonitor(MlMonitorOptions opts)
    : opts_(std::move(opts)),
      jobs_(MlProcessInspector(ProcReader(opts_.proc_root), opts_.config.general.ml_process_names)) {
  if (!opts_.gpus) opts_.gpus = make_gpu_source(FileGpuSource::kDefaultPath, NvmlGpuSource::kLibrary, &gpu_source_why_);
  tenants_ = std::make_unique<TenantClassifier>(opts_.config.multi_tenant, ProcReader(opts_.proc_root));
}

void MlMonitor::set_config(const Config& cfg) {
  std::lock_guard lock(mu_);
  const bool names_changed = cfg.general.ml_process_names != opts_.config.general.ml_process_names;
  opts_.config = cfg;
  if (names_changed) jobs_ = MlJobTracker(MlProcessInspector(ProcReader(opts_.proc_root), cfg.general.ml_process_names));
  tenants_ = std::make_unique<TenantClassifier>(cfg.multi_tenant, ProcReader(opts_.proc_root));
  for (auto& [pid, p] : procs_) p.checked = {};  // re-classify tenants under the new rules
  next_refresh_ = {};
}

void MlMonitor::tick(Clock::time_point now) {
  std::lock_guard lock(mu_);
  drain_locked();
  if (now >= next_refresh_) {
    refresh_locked(now);
    next_refresh_ = now + std::chrono::milliseconds(opts_.config.general.gpu_poll_interval_ms);
  }
}

void MlMonitor::refresh() {
  std::lock_guard lock(mu_);
  drain_locked();
  refresh_locked(Clock::now());
}

void MlMonitor::drain_locked() {
  PhaseChange c;
  while (changes_.try_pop(&c)) tasks_[c.pid] = TaskPhase{c.tgid, c.to};
}

void MlMonitor::refresh_locked(Clock::time_point now) {
  MlSnapshot* snap = exchange_.begin_write();
  if (!snap) {
    ++skipped_;
    return;
  }
  const Config& cfg = opts_.config;
  GpuSource& gpus = *opts_.gpus;
  gpus.poll();
  jobs_.refresh();

  snap->clear_procs();
  snap->detection = cfg.phase_detection;
  snap->eval_interval_ns = std::uint64_t{cfg.general.phase_eval_interval_ms} * 1'000'000;
  snap->numa = cfg.numa;
  snap->multi_tenant = cfg.multi_tenant.enabled;
  snap->nr_gpus = std::min<std::size_t>(static_cast<std::size_t>(std::max(gpus.count(), 0)), kMaxSnapshotGpus);
  snap->gpu_util.fill(0);
  std::vector<std::vector<int>> on_gpu(snap->nr_gpus);
  std::vector<int> gpu_node(snap->nr_gpus, -1);
  for (std::size_t g = 0; g < snap->nr_gpus; ++g) {
    const int i = static_cast<int>(g);
    snap->gpu_util[g] = static_cast<float>(gpus.utilization_pct(i).value_or(0));
    on_gpu[g] = gpus.pids_on_gpu(i);
    gpu_node[g] = gpus.numa_node(i).value_or(opts_.topology ? opts_.topology->gpu_node(i) : -1);
  }
  const std::uint64_t all_gpus = snap->nr_gpus >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << snap->nr_gpus) - 1;

  // The processes as jobs_.refresh() just read them: no second pass over /proc.
  std::unordered_map<int, Proc> seen;
  seen.reserve(procs_.size());
  for (const MlJobTracker::Process& st : jobs_.processes()) {
    const int pid = st.pid;
    Proc p;
    if (auto it = procs_.find(pid); it != procs_.end() && it->second.start_time == st.start_time)
      p = std::move(it->second);
    p.ppid = st.ppid;
    p.root = jobs_.job_root(pid);
    p.visible = p.root ? jobs_.visible_gpus(pid) : std::nullopt;
    p.nccl = p.root && jobs_.nccl_active(pid);
    if (p.start_time != st.start_time || now - p.checked >= kRecheck) {
      p.start_time = st.start_time;
      p.checked = now;
      p.tenant = cfg.multi_tenant.enabled ? tenants_->classify(pid) : Tenant{};
    }
    seen.emplace(pid, std::move(p));
  }
  procs_ = std::move(seen);

  // The GPUs a process names, or those of its nearest ancestor in the job that names some:
  // workers inherit CUDA_VISIBLE_DEVICES, but a process that rewrites its command line
  // (setproctitle, as stress-ng and some launchers do) overwrites the environment that
  // /proc/PID/environ shows.
  const auto visible_of = [&](int pid, const Proc& p) -> const std::optional<std::vector<int>>& {
    const Proc* cur = &p;
    for (int hops = 0; hops < 64 && !cur->visible && cur->root && pid != *cur->root; ++hops) {
      const auto parent = procs_.find(cur->ppid);
      if (parent == procs_.end() || parent->second.root != cur->root) break;
      pid = parent->first;
      cur = &parent->second;
    }
    return cur->visible;
  };

  std::array<std::uint64_t, kMaxTenants> tenant_masks{};
  ml_processes_ = 0;
  for (const auto& [pid, p] : procs_) {
    const std::optional<std::vector<int>>& visible = visible_of(pid, p);
    ProcessInfo info;
    info.tgid = pid;
    info.job = p.root.value_or(0);
    info.nccl = p.nccl;
    if (visible) info.gpu_mask = mask_of(*visible, snap->nr_gpus);
    for (std::size_t g = 0; g < snap->nr_gpus; ++g)
      if (std::find(on_gpu[g].begin(), on_gpu[g].end(), pid) != on_gpu[g].end()) info.gpu_mask |= std::uint64_t{1} << g;
    // An ML process that names no GPU may use any of them (CUDA's default).
    if (p.root && !visible && info.gpu_mask == 0) info.gpu_mask = all_gpus;
    // Bound to a GPU only when it names some: "all GPUs" says nothing about a node.
    if (info.gpu_mask && (visible || info.gpu_mask != all_gpus || snap->nr_gpus == 1)) {
      const int node = gpu_node[static_cast<std::size_t>(std::countr_zero(info.gpu_mask))];
      info.node = static_cast<std::int16_t>(node);
    }
    if (cfg.multi_tenant.enabled) {
      info.priority = static_cast<std::int8_t>(p.tenant.priority);
      if (p.tenant.rule >= 0 && static_cast<std::size_t>(p.tenant.rule) < kMaxTenants) {
        info.tenant = static_cast<std::int8_t>(p.tenant.rule);
        tenant_masks[static_cast<std::size_t>(p.tenant.rule)] |= info.gpu_mask;
      }
    }
    if (info.job) ++ml_processes_;
    if (info.job || info.tenant >= 0 || info.priority != 0 || info.gpu_mask) snap->insert(info);
  }

  snap->tenant_gpus.fill(0);
  for (std::size_t t = 0; t < cfg.multi_tenant.rules.size() && t < kMaxTenants; ++t) {
    const auto& rule = cfg.multi_tenant.rules[t];
    const int held = rule.gpus ? *rule.gpus : std::popcount(tenant_masks[t]);
    snap->tenant_gpus[t] = static_cast<std::uint16_t>(std::clamp(held, 1, 65535));
  }
  exchange_.publish(snap);
  ++snapshots_;

  // Forget tasks whose thread is gone or whose process left every ML job.
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    const ProcessInfo* p = snap->find(it->second.tgid);
    std::error_code ec;
    const bool alive = std::filesystem::exists(
        opts_.proc_root / std::to_string(it->second.tgid) / "task" / std::to_string(it->first), ec);
    it = (!p || !p->job || !alive) ? tasks_.erase(it) : std::next(it);
  }
}

std::vector<std::string> MlMonitor::phases() {
  std::lock_guard lock(mu_);
  drain_locked();
  std::vector<std::pair<std::int32_t, TaskPhase>> sorted(tasks_.begin(), tasks_.end());
  std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::string> lines;
  lines.reserve(sorted.size());
  for (const auto& [pid, t] : sorted)
    lines.push_back(std::to_string(pid) + " " + std::to_string(t.tgid) + " " + std::string(phase_name(t.phase)));
  return lines;
}

MlMonitor::Counts MlMonitor::counts() {
  std::lock_guard lock(mu_);
  drain_locked();
  Counts c;
  c.ml_tasks = tasks_.size();
  for (const auto& [pid, t] : tasks_) ++c.by_phase[phase_index(t.phase)];
  c.ml_processes = ml_processes_;
  c.gpus = static_cast<std::size_t>(std::max(opts_.gpus->count(), 0));
  c.gpu_source = std::string(opts_.gpus->name());
  c.snapshots = snapshots_;
  c.skipped = skipped_;
  return c;
}

}  // namespace zernel
