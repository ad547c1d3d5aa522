#include "scheduler/phase_policy.h"

#include <algorithm>
#include <bit>
#include <cmath>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace zernel {
namespace {

// A task "had a CPU burst" in a window when it used more than this share of it: a thread
// that only launches GPU work and waits still runs for a few microseconds per launch.
constexpr std::uint64_t kBurstShareDivisor = 20;  // 5%

// How long a task stays a GPU thread, and a feeder stays a feeder, after the evidence:
// in evaluation windows. Two, so that one quiet window does not break the stability
// streak of a pipeline that hands over a batch every window or so.
constexpr std::uint64_t kMemoryWindows = 2;

// The latency tier may use at most 1/kTierShareDivisor of the machine's CPU time per
// evaluation window: beyond that its wakeups get their phase's normal deadline, so that a
// job whose "latency" threads wake and run all the time cannot starve the rest into the
// kernel's watchdog.
constexpr std::uint64_t kTierShareDivisor = 2;

// Events between a prefetch of a task's state and its decision: enough for the miss (~100
// ns) to finish behind the decisions between, few enough that the lines are still cached.
constexpr std::size_t kPrefetchAhead = 8;

// A whole task's load (runnable all the time), in the fixed point of runnable_1024.
constexpr std::uint64_t kOneTask = 1024;

constexpr std::array<std::uint32_t, 41> make_scales() {
  std::array<std::uint32_t, 41> t{};
  // 1024 * 1.25^p for p = -20..20, computed without <cmath> in a constant expression.
  double v = 1024.0;
  for (int i = 0; i < 20; ++i) v /= 1.25;
  for (int p = -20; p <= 20; ++p) {
    t[static_cast<std::size_t>(p + 20)] = static_cast<std::uint32_t>(v + 0.5) ? static_cast<std::uint32_t>(v + 0.5) : 1;
    v *= 1.25;
  }
  return t;
}
constexpr auto kScales = make_scales();

// Whether `then` (0 = never) lies less than `span` before `now`. A task's events can come
// out of order (policy.h: a direct wakeup's report, read lazily, after the task's next
// message from another CPU's ring), so a `then` after `now` counts as within, not as a
// difference that wrapped around.
bool within(std::uint64_t now, std::uint64_t then, std::uint64_t span) {
  return then != 0 && (now <= then || now - then < span);
}

}  // namespace

std::uint32_t priority_scale_1024(int priority) {
  return kScales[static_cast<std::size_t>(std::clamp(priority, -20, 20) + 20)];
}

NodeMap NodeMap::single_node(int nr_cpus) {
  NodeMap m;
  m.node_of_cpu.assign(static_cast<std::size_t>(std::max(nr_cpus, 1)), 0);
  m.cpus_of_node.resize(1);
  for (int c = 0; c < nr_cpus; ++c) m.cpus_of_node[0].push_back(c);
  return m;
}

PhasePolicy::PhasePolicy(const PolicyConfig& cfg, SnapshotExchange<MlSnapshot>& snapshots, NodeMap nodes,
                         std::span<const volatile CpuState> cpus, SpscQueue<PhaseChange>* changes)
    : cfg_(cfg),
      snapshots_(snapshots),
      nodes_(std::move(nodes)),
      cpus_(cpus),
      changes_(changes),
      tasks_(cfg.max_tracked_tasks),
      slice_(cfg.slice_ns) {
  // A CPU is placeable if the topology or the shim knows it.
  const std::size_t known = std::max(nodes_.node_of_cpu.size(), cpus.size());
  for (const auto& node : nodes_.cpus_of_node) {
    NodeScan scan;
    for (int c : node)
      if (c >= 0 && static_cast<std::size_t>(c) < known) scan.cpus.push_back(c);
    scan.size = scan.cpus.size();
    for (std::size_t i = 0; i < scan.size; ++i) {
      const auto c = static_cast<std::size_t>(scan.cpus[i]);
      if (c >= index_in_node_.size()) index_in_node_.resize(c + 1, 0);
      index_in_node_[c] = static_cast<std::uint32_t>(i);
    }
    // Repeated cyclically, so that a window starting at any position is contiguous.
    if (scan.size)
      for (std::size_t i = 0; i + 1 < kPlacementScan; ++i) scan.cpus.push_back(scan.cpus[i % scan.size]);
    scan.load.assign(scan.cpus.size(), 0);
    scan_of_node_.push_back(std::move(scan));
  }
}

std::uint64_t PhasePolicy::tier_top(const PolicyConfig& cfg) {
  // A tier key is at most the longest target plus a request (<= slice). The normal tier
  // starts two slices above that (activate()), so that clock_floor (vclock - slice) never
  // reaches it.
  return 2 * cfg.slice_ns + 1'000'000;
}

void PhasePolicy::set_load(std::uint64_t nr_waiting) {
  const std::uint64_t fit = cfg_.round_budget_ns * std::max<std::uint32_t>(cfg_.nr_cpus, 1) / (nr_waiting + 1);
  slice_ = std::clamp(fit, cfg_.min_slice_ns, cfg_.slice_ns);
}

void PhasePolicy::activate(std::uint64_t now_ns) {
  // The dispatcher activates with the shim clock (ns since boot), far above tier_top().
  vclock_ = std::max({vclock_, now_ns, tier_top(cfg_)});
  floor_cursor_ = std::max(floor_cursor_, vclock_ > slice_ ? vclock_ - slice_ : 0);
}

void PhasePolicy::report(const PhaseChange& c) {
  if (!changes_ || !changes_->try_push(c)) dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void PhasePolicy::decide(std::span<const TaskEvent> in, std::span<Decision> out) {
  snap_ = snapshots_.acquire();
  ++batch_seq_;
  // Evaluation windows (the latency tier's budget, tenant loads) roll over at batch
  // granularity: one division per batch, not per decision.
  const std::uint64_t window_ns = std::max<std::uint64_t>(snap_ ? snap_->eval_interval_ns : 0, 1);
  const std::uint64_t epoch = in.empty() ? tier_epoch_ : in[0].enq_ns / window_ns;
  if (epoch > tier_epoch_) {  // not back: the batch may open with a late report
    tier_epoch_ = epoch;
    tier_used_ns_ = 0;
  }
  tier_budget_ns_ = std::uint64_t{std::max<std::uint32_t>(cfg_.nr_cpus, 1)} * (snap_ ? snap_->eval_interval_ns : 0) /
                    kTierShareDivisor;
  window_ns_ = window_ns;
  window_inverse_ = (kOneTask << kWindowShift) / window_ns;
  if (snap_ && snap_->multi_tenant && !in.empty()) {
    if (epoch > tenant_epoch_) {
      tenant_load_prev_ = epoch == tenant_epoch_ + 1 ? tenant_load_cur_ : decltype(tenant_load_cur_){};
      tenant_load_cur_ = {};
      tenant_epoch_ = epoch;
    }
    tenant_total_load_ = tenant_total_gpus_ = 0;
    for (std::size_t i = 0; i < kMaxTenants; ++i) {
      const std::uint64_t load = std::max(tenant_load_prev_[i], tenant_load_cur_[i]);
      if (!load) continue;
      tenant_total_load_ += std::max<std::uint64_t>(load, kOneTask);
      tenant_total_gpus_ += std::max<std::uint16_t>(snap_->tenant_gpus[i], 1);
    }
    // effective_weight()'s factor is gpus * total_load / (load * total_gpus) in
    // 1/2^kScaleShift; this is all of it but gpus / load. The clamps only bound the
    // arithmetic (2^40 is a billion tasks' load): numerator * gpus stays below 2^63.
    const std::uint64_t total_load = std::clamp<std::uint64_t>(tenant_total_load_, kOneTask, std::uint64_t{1} << 40);
    tenant_numerator_ = std::min((total_load << kScaleShift) / std::max<std::uint64_t>(tenant_total_gpus_, 1),
                                 std::uint64_t{1} << 47);
  }
  batch_size_ = std::min(in.size(), batch_phases_.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    // A table of 65,536 tasks is far larger than the caches. In two stages, so that no
    // prefetch waits on a miss of its own: the key and process slot of an event
    // 2 * kPrefetchAhead on (and its waker's process: account() looks it up), then, with
    // its key in cache, the state of the one kPrefetchAhead on.
    // Not the waker's state: account() reads it only when the waker is of the task's own
    // job, and a waker is running when it wakes the task, so its state was touched at its
    // own decision moments ago. Prefetching it for every wakeup cost more than it saved
    // (phase at 10,000 tasks: 48.1-48.8 ns a decision with it, 44.7-45.6 without; at
    // 65,536: 62-67 with, 60-63 without).
    if (i + 2 * kPrefetchAhead < in.size()) {
      const TaskEvent& far = in[i + 2 * kPrefetchAhead];
      tasks_.prefetch_key(far.pid);
      if (snap_) {
        snap_->prefetch(far.tgid);
        if (is_wakeup(far)) snap_->prefetch(far.waker_tgid);
      }
    }
    if (i + kPrefetchAhead < in.size()) tasks_.prefetch(in[i + kPrefetchAhead].pid);
    const Phase phase = decide_one(in[i], out[i]);
    if (i < batch_size_) batch_phases_[i] = static_cast<std::uint8_t>(phase_index(phase));
  }
}

void PhasePolicy::account(TaskState& st, const TaskEvent& ev, const ProcessInfo& proc) {
  const Config::PhaseDetection& det = snap_->detection;
  const std::uint64_t memory = kMemoryWindows * snap_->eval_interval_ns;
  st.win_run_ns += ev.runtime_ns;
  st.win_futex += ev.futex_waits;
  futex_waits_.store(futex_waits_.load(std::memory_order_relaxed) + ev.futex_waits, std::memory_order_relaxed);
  if (!is_wakeup(ev)) return;

  const bool io = slept_on_io(ev);
  if (io) st.win_iowait_ns += ev.sleep_ns;
  // burst_ns of a wakeup is the burst that ended in the sleep it wakes from: after a GPU
  // sync, that burst is the optimizer step.
  st.last_burst_ns = ev.burst_ns;
  if (st.last_wakeup_was_sync && ev.burst_ns > 0 && ev.burst_ns < det.optimizer_burst_max_ns) {
    st.win_opt_pattern = true;
    st.win_opt_burst_ns = ev.burst_ns;
  }

  const ProcessInfo* waker = snap_->find(ev.waker_tgid);
  const bool by_job = waker && waker->job == proc.job && ev.waker_pid != ev.pid;
  const bool gpu_busy = snap_->gpu_util_of(proc.gpu_mask) > det.gpu_idle_threshold;
  const bool sync = !io && !by_job && gpu_busy && ev.sleep_ns > 0;
  st.last_wakeup_was_sync = sync;
  if (sync) st.last_gpu_sync_ns = std::max<std::uint64_t>(st.last_gpu_sync_ns, ev.enq_ns);

  if (!by_job) return;
  // A hand-over between a GPU thread and another task of its job, in either direction
  // (the trainer waited for a batch, or a worker waited for room in the queue): that task
  // is the GPU thread's data pipeline.
  const auto is_gpu_thread = [&](const TaskState& t) {
    return within(ev.enq_ns, t.last_gpu_sync_ns, memory);
  };
  TaskState* other = tasks_.find(ev.waker_pid);
  if (!other || other->job != proc.job) return;
  if (is_gpu_thread(st) && !is_gpu_thread(*other)) other->last_fed_ns = std::max<std::uint64_t>(other->last_fed_ns, ev.enq_ns);
  if (is_gpu_thread(*other) && !is_gpu_thread(st)) st.last_fed_ns = std::max<std::uint64_t>(st.last_fed_ns, ev.enq_ns);
}

void PhasePolicy::evaluate(TaskState& st, const TaskEvent& ev, const ProcessInfo& proc) {
  const std::uint64_t window = ev.enq_ns - st.win_start;
  PhaseSignals s;
  s.io_wait_fraction = std::min(1.0, static_cast<double>(st.win_iowait_ns) / static_cast<double>(window));
  s.gpu_util_pct = snap_->gpu_util_of(proc.gpu_mask);
  s.cpu_burst_in_window = st.win_run_ns * kBurstShareDivisor > window;
  s.last_burst_ns = st.win_opt_pattern ? st.win_opt_burst_ns : st.last_burst_ns;
  s.gpu_sync_since_last_burst = st.win_opt_pattern;
  s.futex_waits = st.win_futex;
  s.nccl_active = proc.nccl;
  s.feeds_gpu_thread = within(ev.enq_ns, st.last_fed_ns, kMemoryWindows * snap_->eval_interval_ns);

  const PhaseDetector detector(snap_->detection);
  const Phase before = st.tracker.committed;
  if (st.tracker.observe(detector.classify(s), detector.stability_count())) {
    transitions_.store(transitions_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    report({ev.pid, ev.tgid, before, st.tracker.committed, ev.enq_ns});
  }

  st.win_start = ev.enq_ns;
  st.win_run_ns = st.win_iowait_ns = 0;
  st.win_futex = 0;
  st.win_opt_pattern = false;
  st.win_opt_burst_ns = 0;
}

void PhasePolicy::update_runnable(TaskState& st, const TaskEvent& ev, bool created) const {
  const std::uint64_t dt = !created && st.last_event_ns && ev.enq_ns > st.last_event_ns ? ev.enq_ns - st.last_event_ns : 0;
  st.last_event_ns = std::max<std::uint64_t>(st.last_event_ns, ev.enq_ns);
  std::uint64_t runnable = dt, span = dt;  // a slice expiry: runnable all along
  if (is_wakeup(ev)) {
    // Ran for its burst after waiting prev_running_ns in the queue, then slept.
    runnable = ev.burst_ns + ev.prev_running_ns;
    if (dt > ev.sleep_ns) runnable = std::min<std::uint64_t>(runnable, dt - ev.sleep_ns);
    span = runnable + ev.sleep_ns;
  }
  if (span == 0) return;
  // A moving average weighted by how much time the sample covers, up to one window:
  // new = old * (1 - alpha) + (runnable / span) * alpha, alpha = min(1, span / window).
  // Below a window, (runnable / span) * alpha is runnable / window, so both terms divide by
  // the window: a reciprocal taken once per batch, and no division here. A sample of a
  // window or more (or a first sighting by a wakeup, which has no history to average
  // with) replaces the average: one division.
  if (span >= window_ns_ || (created && is_wakeup(ev))) {
    st.runnable_1024 = static_cast<std::uint32_t>(runnable * kOneTask / span);
    return;
  }
  // span < window: both products stay below 2^42 (kWindowShift).
  const std::uint64_t alpha = span * window_inverse_ >> kWindowShift;
  const std::uint64_t added = runnable * window_inverse_ >> kWindowShift;
  st.runnable_1024 = static_cast<std::uint32_t>((st.runnable_1024 * (kOneTask - alpha) / kOneTask) + added);
}

std::uint32_t PhasePolicy::effective_weight(const TaskEvent& ev, TaskState& st, const ProcessInfo* proc,
                                            Phase phase) {
  int priority = phase_rule(phase).priority;
  const bool tenant = snap_ && snap_->multi_tenant && proc && proc->tenant >= 0 &&
                      static_cast<std::size_t>(proc->tenant) < kMaxTenants;
  if (snap_ && snap_->multi_tenant && proc) priority += proc->priority;
  std::uint64_t w = std::uint64_t{ev.weight} * priority_scale_1024(priority) / 1024;
  if (tenant) {
    const auto t = static_cast<std::size_t>(proc->tenant);
    if (st.tenant_epoch != tenant_epoch_ + 1) {  // +1: 0 means "never counted"
      st.tenant_epoch = tenant_epoch_ + 1;
      tenant_load_cur_[t] += st.runnable_1024;
    }
    // The tenant's GPUs, split by its load, normalised so that all tenant tasks together
    // weigh as many plain tasks as their load (totals as of batch start).
    const std::uint64_t load = std::max<std::uint64_t>({tenant_load_prev_[t], tenant_load_cur_[t], kOneTask});
    // One factor per tenant per batch, with the load as of its first task in the batch
    // (the totals are as of batch start): a division per tenant and batch, not per decision.
    TenantScale& scale = tenant_scale_[t];
    if (scale.batch != batch_seq_) {
      const std::uint64_t gpus = std::max<std::uint16_t>(snap_->tenant_gpus[t], 1);
      scale.batch = batch_seq_;
      scale.factor = std::min(tenant_numerator_ * gpus / load, kMaxScale);
    }
    w = w * scale.factor >> kScaleShift;
  }
  return static_cast<std::uint32_t>(std::clamp<std::uint64_t>(w, 1, 1'000'000));
}

namespace {

// The first of the kPlacementScan (8) loads at `p` that is the smallest, as an index 0..7.
// Branch-free: which CPU is least loaded is data the branch predictor cannot learn, and a
// mispredicted branch per CPU cost more than looking at the whole window.
std::size_t first_least(const std::uint16_t* p) {
#if defined(__SSE2__)
  // Loads are below 2^15 (kLoadCap), so the signed 16-bit minimum is the unsigned one.
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  __m128i m = _mm_min_epi16(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm_min_epi16(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
  m = _mm_min_epi16(m, _mm_or_si128(_mm_slli_epi32(m, 16), _mm_srli_epi32(m, 16)));
  const auto equal = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi16(v, m)));
  return static_cast<std::size_t>(std::countr_zero(equal)) / 2;
#else
  std::size_t best = 0;
  for (std::size_t k = 1; k < 8; ++k) best = p[k] < p[best] ? k : best;
  return best;
#endif
}

}  // namespace

void PhasePolicy::refresh_loads(NodeScan& scan) {
  for (std::size_t i = 0; i < scan.size; ++i) {
    const auto c = static_cast<std::size_t>(scan.cpus[i]);
    const std::uint32_t running_and_queued = c < cpus_.size() ? cpus_[c].busy + cpus_[c].nr_queued : 0;
    scan.load[i] = static_cast<std::uint16_t>(std::min<std::uint32_t>(running_and_queued, kLoadCap));
  }
  for (std::size_t i = scan.size; i < scan.load.size(); ++i) scan.load[i] = scan.load[i - scan.size];
  scan.batch = batch_seq_;
}

int PhasePolicy::least_loaded(std::size_t node, int prefer, bool idle_only) {
  NodeScan& scan = scan_of_node_[node];
  const std::size_t n = scan.size;
  if (n == 0) return -1;
  if (scan.batch != batch_seq_) refresh_loads(scan);
  // Start at the previous CPU when it is in the set (warm caches), and look at no more than
  // kPlacementScan CPUs: the first idle one wins, else the least loaded of those seen. A
  // bounded sample keeps the cost flat on 192-CPU nodes; it is what the power-of-choices
  // result says is nearly as good as a full scan. On a node of fewer CPUs the window's
  // last positions repeat its first, which never changes the first smallest.
  const auto p = static_cast<std::size_t>(prefer);
  std::size_t at;
  if (prefer >= 0 && p < index_in_node_.size() && index_in_node_[p] < n && scan.cpus[index_in_node_[p]] == prefer) {
    at = index_in_node_[p];
  } else {
    at = scan.cursor;
    scan.cursor = at + 1 == n ? 0 : at + 1;
  }
  static_assert(kPlacementScan == 8, "first_least() looks at 8 loads");
  std::size_t best = at + first_least(&scan.load[at]);
  if (idle_only && scan.load[best] != 0) return -1;
  if (best >= n) best -= n;
  for (std::size_t q = best; q < scan.load.size(); q += n)  // the position and its repeats
    if (scan.load[q] < kLoadCap) ++scan.load[q];
  return scan.cpus[best];
}

int PhasePolicy::place(const TaskEvent& ev, const ProcessInfo* proc) {
  if (ev.nr_cpus_allowed == 1) return ev.prev_cpu;  // pinned: nothing to choose
  if (!proc || !snap_ || !snap_->numa.enabled) return kCpuAny;
  // One node: nothing to choose between. The shim's own placement (previous CPU if idle,
  // any idle CPU, else the shared vtime queue with a preemption kick) is then better than
  // naming a busy CPU: the CPU that drains the decision, which has just gone idle, pulls
  // the task from the shared queue at once, without a kick and a second reschedule.
  if (nodes_.cpus_of_node.size() <= 1) return kCpuAny;
  if (snap_->numa.gpu_affinity && proc->node >= 0 &&
      static_cast<std::size_t>(proc->node) < nodes_.cpus_of_node.size()) {
    const auto node = static_cast<std::size_t>(proc->node);
    if (scan_of_node_[node].size) return least_loaded(node, ev.prev_cpu, false);
  }
  if (snap_->numa.memory_affinity && proc->job && nodes_.cpus_of_node.size() > 1 && ev.prev_cpu >= 0 &&
      static_cast<std::size_t>(ev.prev_cpu) < nodes_.node_of_cpu.size()) {
    const int node = nodes_.node_of_cpu[static_cast<std::size_t>(ev.prev_cpu)];
    if (node >= 0 && static_cast<std::size_t>(node) < nodes_.cpus_of_node.size()) {
      const int c = least_loaded(static_cast<std::size_t>(node), ev.prev_cpu, true);
      if (c >= 0) return c;
    }
  }
  return kCpuAny;
}

// Flattened: its helpers (account, effective_weight, update_runnable, place, ...) each
// run once per decision, and as calls they cost a tenth of its instructions in register
// saves and argument passing (callgrind at 65,536 tasks: 592 -> 520 per decision).
[[gnu::flatten]] Phase PhasePolicy::decide_one(const TaskEvent& ev, Decision& d) {
  bool created = false;
  TaskState& st = tasks_.get(ev.pid, ev.enq_ns, &created);
  const ProcessInfo* proc = snap_ ? snap_->find(ev.tgid) : nullptr;
  const bool ml = proc && proc->job != 0;

  if (ml) {
    if (st.job != proc->job) {  // first seen in this job: a fresh history
      const std::uint64_t vruntime = st.vruntime;
      st = TaskState{};
      st.vruntime = vruntime;
      st.job = proc->job;
      st.win_start = ev.enq_ns;
      report({ev.pid, ev.tgid, Phase::Unknown, Phase::Unknown, ev.enq_ns});
    }
    // Close the window first: this event's runtime and wakeup belong to the next one.
    // A late event (before the window's start) belongs to the open window.
    if (ev.enq_ns >= st.win_start && ev.enq_ns - st.win_start >= snap_->eval_interval_ns) evaluate(st, ev, *proc);
    account(st, ev, *proc);
  } else if (st.job != 0) {  // no longer in a job (exec, exit of the job root)
    if (st.tracker.committed != Phase::Unknown) {
      transitions_.store(transitions_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      report({ev.pid, ev.tgid, st.tracker.committed, Phase::Unknown, ev.enq_ns});
    }
    st.job = 0;
    st.tracker = PhaseTracker{};
  }

  const Phase phase = ml ? st.tracker.committed : Phase::Unknown;
  const PhaseRule rule = phase_rule(phase);
  if (snap_ && snap_->multi_tenant) update_runnable(st, ev, created);
  const std::uint32_t weight = effective_weight(ev, st, proc, phase);

  // Virtual runtime and placement in virtual time, as FairPolicy, except that only new
  // tasks and wakeups are placed at the floor: a weighted task that stays runnable must
  // keep its lag, or the weights would not hold between tasks that never sleep.
  st.vruntime += virtual_ns(ev.runtime_ns, weight);
  const std::uint64_t clock_floor = vclock_ > slice_ ? vclock_ - slice_ : 0;
  const std::uint64_t floor = std::max(clock_floor, floor_cursor_);
  const bool placed = (created || is_wakeup(ev)) && st.vruntime < floor;
  if (placed) st.vruntime = floor;
  vclock_ = std::max(vclock_, st.vruntime);

  const bool short_burst = is_wakeup(ev) && ev.burst_ns < slice_ / 2;
  std::uint64_t request = short_burst ? std::clamp<std::uint64_t>(ev.burst_ns, cfg_.min_slice_ns, slice_) : slice_;
  std::uint64_t slice = slice_;
  std::uint64_t flags = 0;
  switch (rule.preempt) {
    case PhaseRule::Preempt::Aggressive:
    case PhaseRule::Preempt::LowLatency: flags = ZERNEL_DEC_PREEMPT | ZERNEL_DEC_PREEMPT_NOW; break;
    case PhaseRule::Preempt::Preemptive: flags = is_wakeup(ev) ? ZERNEL_DEC_PREEMPT | ZERNEL_DEC_PREEMPT_NOW : 0; break;
    case PhaseRule::Preempt::Standard: flags = short_burst ? ZERNEL_DEC_PREEMPT : 0; break;
    case PhaseRule::Preempt::YieldAtOnce:
      slice = request = cfg_.min_slice_ns;
      break;
  }
  if (placed) floor_cursor_ = st.vruntime + virtual_ns(request, weight);

  std::uint64_t key = st.vruntime + virtual_ns(request, weight);
  // The latency target as a deadline: ahead of every task placed at the floor.
  if (rule.latency_target_ns) key = std::min(key, clock_floor + rule.latency_target_ns);
  // The rest of a latency tier grant the task was preempted in (see the header).
  const bool resumed = rule.latency_target_ns && !is_wakeup(ev) && st.tier_left_ns > ev.runtime_ns + cfg_.min_slice_ns;
  if (resumed) {
    key = st.tier_key;
    slice = st.tier_left_ns - ev.runtime_ns;
    st.tier_left_ns = slice;
    flags = ZERNEL_DEC_PREEMPT | ZERNEL_DEC_PREEMPT_NOW;
  } else {
    st.tier_left_ns = 0;
  }
  // The latency tier (see the header): a wakeup of a task that sleeps at least as long as
  // it runs, while the tier's CPU budget for this window lasts.
  if (!resumed && rule.latency_target_ns && is_wakeup(ev) && ev.sleep_ns >= ev.burst_ns &&
      !(ev.flags & ZERNEL_TASK_DIRECT)) {  // a direct wakeup ran at once, without the tier
    const std::uint64_t tier_slice = std::clamp<std::uint64_t>(2 * request, cfg_.min_slice_ns, slice);
    if (tier_used_ns_ + tier_slice <= tier_budget_ns_) {
      tier_used_ns_ += tier_slice;
      key = rule.latency_target_ns + request;  // < tier_top() <= every key of the normal tier
      slice = tier_slice;
      st.tier_key = key;
      st.tier_left_ns = tier_slice;
      tier_grants_.store(tier_grants_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    } else {
      tier_refused_.store(tier_refused_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  }

  // Single writer (this thread): plain load + store, no locked instruction.
  auto& counter = by_phase_[phase_index(phase)];
  counter.store(counter.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  auto& cpu = cpu_by_phase_[phase_index(phase)];
  cpu.store(cpu.load(std::memory_order_relaxed) + ev.runtime_ns, std::memory_order_relaxed);

  d.pid = ev.pid;
  d.cpu = place(ev, ml || (proc && snap_->multi_tenant) ? proc : nullptr);
  d.slice_ns = slice;
  d.vtime = key;
  d.gen = ev.gen;
  // As fair: a standing grant for wakeups onto an idle CPU, unless the task was given a
  // CPU of its own choosing (its GPU's node), which an idle CPU elsewhere would undo.
  if (d.cpu == kCpuAny || ev.nr_cpus_allowed == 1) flags |= ZERNEL_DEC_DIRECT_WAKE;
  d.flags = flags;
  return phase;
}

}  // namespace zernel
