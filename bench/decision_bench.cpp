// The dispatcher's per-task decision path: Dispatcher::run_once() over an in-memory ring,
// per policy and per number of tracked tasks.
//
// The ring always holds a backlog (the dispatcher under load, where ns per decision
// matters), and its receive/send copy records one by one as BpfChannel does, so the copy
// cost is part of the figure; the BPF side of the transport is transport_bench's job.
//
// Two properties are checked rather than trusted, because the policy contract
// (scheduler/policy.h) promises them and a regression would not show up in the timings:
//   - no heap allocation while timing: global operator new is counted while armed;
//   - no page faults while timing: getrusage() around the timed loop, after a warm-up
//     that touches every table slot, trace record and ring slot once.
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "scheduler/dispatcher.h"
#include "scheduler/phase_policy.h"
#include "scheduler/policy.h"

// ---- Allocation counting ---------------------------------------------------------------
// Every replaceable form, so that an aligned or nothrow allocation cannot slip past.
namespace {

constinit thread_local bool g_armed = false;
std::atomic<std::uint64_t> g_allocations{0};

void* counted_alloc(std::size_t n, std::size_t align) noexcept {
  if (g_armed) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (n == 0) n = 1;
  if (align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__) return std::malloc(n);
  return std::aligned_alloc(align, (n + align - 1) / align * align);
}

void* alloc_or_throw(std::size_t n, std::size_t align) {
  void* p = counted_alloc(n, align);
  if (!p) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t n) { return alloc_or_throw(n, 0); }
void* operator new[](std::size_t n) { return alloc_or_throw(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return alloc_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return counted_alloc(n, static_cast<std::size_t>(a));
}

void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace {

using zernel::Decision;
using zernel::Dispatcher;
using zernel::PolicyConfig;
using zernel::TaskEvent;

constexpr std::size_t kBatch = 512;
constexpr int kCpus = 64;  // the machine the trace pretends to come from

// ---- A trace of task events ------------------------------------------------------------
// One lap enqueues each of the N tasks once, in a fixed shuffled order (consecutive pids
// do not arrive together, so table lookups are as scattered as on a busy machine). Task
// mix: 70% interactive (wake up after short bursts), 20% CPU-bound (slice expiries), 10%
// I/O-bound (iowait wakeups); 80% nice 0, the rest spread over nice -10..19; 5% pinned.
struct Trace {
  std::vector<TaskEvent> events;
  std::uint64_t lap_ns = 0;  // enq_ns advances by this much per lap, so time only grows
};

Trace make_trace(std::size_t n_tasks) {
  std::mt19937_64 rng(42);
  auto uniform = [&](std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
  };
  // sched_ext weights (100 = nice 0) of nice -10, -5, 5, 10, 19.
  constexpr std::uint32_t kOtherWeights[] = {932, 304, 32, 10, 1};
  constexpr std::uint64_t kEventGapNs = 2'000;  // ~500k enqueues/s machine-wide

  std::vector<std::size_t> order(n_tasks);
  for (std::size_t i = 0; i < n_tasks; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);

  Trace t;
  t.events.resize(n_tasks);
  for (std::size_t k = 0; k < n_tasks; ++k) {
    const std::size_t task = order[k];
    TaskEvent& ev = t.events[k];
    ev = TaskEvent{};
    ev.pid = static_cast<std::int32_t>(1000 + task);
    ev.tgid = static_cast<std::int32_t>(1000 + task - task % 8);  // 8 threads a process
    ev.prev_cpu = static_cast<std::int32_t>(uniform(0, kCpus - 1));
    ev.nr_cpus_allowed = uniform(0, 99) < 5 ? 1 : kCpus;
    ev.enq_ns = 1'000'000'000 + k * kEventGapNs;
    ev.gen = 1;
    ev.weight = uniform(0, 99) < 80 ? 100 : kOtherWeights[uniform(0, 4)];

    const std::uint64_t kind = uniform(0, 99);
    if (kind < 70) {  // interactive
      ev.flags = ZERNEL_TASK_WAKEUP;
      ev.enq_flags = 1;  // SCX_ENQ_WAKEUP
      ev.burst_ns = uniform(10'000, 500'000);
      ev.runtime_ns = ev.burst_ns;
    } else if (kind < 90) {  // CPU-bound: ran its whole slice
      ev.flags = 0;
      ev.burst_ns = uniform(5'000'000, 50'000'000);
      ev.runtime_ns = 5'000'000;
    } else {  // I/O-bound
      ev.flags = ZERNEL_TASK_WAKEUP | ZERNEL_TASK_IOWAIT;
      ev.enq_flags = 1;
      ev.burst_ns = uniform(5'000, 100'000);
      ev.runtime_ns = ev.burst_ns;
    }
    if (ev.flags & ZERNEL_TASK_WAKEUP) {
      const std::uint64_t waker = uniform(0, n_tasks - 1);
      ev.waker_pid = static_cast<std::int32_t>(1000 + waker);
      ev.waker_tgid = static_cast<std::int32_t>(1000 + waker - waker % 8);
    }
    std::snprintf(ev.comm, sizeof(ev.comm), "worker-%zu", task % 100000);
  }
  t.lap_ns = n_tasks * kEventGapNs;
  return t;
}

// ---- The in-memory ring ----------------------------------------------------------------
// Never empty, never full; both directions copy one record at a time into or out of
// preallocated storage, the way BpfChannel copies out of and into the BPF rings.
class MemoryRing final : public zernel::Channel {
 public:
  explicit MemoryRing(Trace trace)
      : trace_(std::move(trace)), down_(std::make_unique<Decision[]>(kDownSlots)) {}

  std::size_t receive(std::span<TaskEvent> out) override {
    const std::size_t size = trace_.events.size();
    for (TaskEvent& ev : out) {
      std::memcpy(&ev, &trace_.events[pos_], sizeof(TaskEvent));
      ev.enq_ns += lap_ * trace_.lap_ns;
      ev.gen += lap_;
      if (++pos_ == size) {
        pos_ = 0;
        ++lap_;
      }
    }
    return out.size();
  }

  std::size_t send(std::span<const Decision> in) override {
    for (const Decision& d : in) std::memcpy(&down_[head_++ & (kDownSlots - 1)], &d, sizeof(d));
    return in.size();
  }

  void wait_for_events(std::chrono::milliseconds) override {}
  void wait_for_space(std::chrono::milliseconds) override {}

  // Reads every slot of the trace and the down ring so that the timed loop starts warm.
  void touch() {
    std::uint64_t sum = 0;
    for (const TaskEvent& ev : trace_.events) sum += ev.gen;
    for (std::size_t i = 0; i < kDownSlots; ++i) sum += down_[i].gen;
    benchmark::DoNotOptimize(sum);
  }

 private:
  static constexpr std::size_t kDownSlots = 1u << 16;  // a 1 MiB decision ring / 48 B, rounded
  Trace trace_;
  std::unique_ptr<Decision[]> down_;
  std::size_t pos_ = 0;
  std::uint64_t lap_ = 0;
  std::size_t head_ = 0;
};

struct Faults {
  long minor = 0;
  long major = 0;
};

Faults thread_faults() {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  return {ru.ru_minflt, ru.ru_majflt};
}

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// What the phase policy sees on an ML machine: half of the processes are ML jobs of 8
// processes each (a trainer and its workers), spread over 8 GPUs on 2 NUMA nodes of 32
// CPUs; every process belongs to one of 4 tenants; GPUs 90% busy.
struct PhaseWorld {
  zernel::SnapshotExchange<zernel::MlSnapshot> snapshots;
  zernel::SpscQueue<zernel::PhaseChange> changes{1u << 16};
  std::vector<zernel::CpuState> cpus = std::vector<zernel::CpuState>(kCpus);

  explicit PhaseWorld(std::size_t n_tasks) {
    zernel::MlSnapshot* snap = snapshots.begin_write();
    snap->nr_gpus = 8;
    for (std::size_t g = 0; g < 8; ++g) snap->gpu_util[g] = 90;
    snap->multi_tenant = true;
    for (std::size_t t = 0; t < 4; ++t) snap->tenant_gpus[t] = static_cast<std::uint16_t>(t + 1);
    for (std::size_t task = 0; task < n_tasks; task += 8) {
      const auto tgid = static_cast<std::int32_t>(1000 + task);
      const std::size_t proc = task / 8;
      zernel::ProcessInfo info;
      info.tgid = tgid;
      info.tenant = static_cast<std::int8_t>(proc % 4);
      info.priority = 5;
      if (proc % 16 < 8) {  // ML: jobs of 8 processes
        info.job = static_cast<std::int32_t>(1000 + (task / 64) * 64);
        const std::size_t gpu = (task / 64) % 8;
        info.gpu_mask = std::uint64_t{1} << gpu;
        info.node = static_cast<std::int16_t>(gpu / 4);
      }
      snap->insert(info);
    }
    snapshots.publish(snap);
    for (std::size_t c = 0; c < cpus.size(); ++c) cpus[c].busy = c % 3 != 0;
  }

  zernel::NodeMap nodes() const {
    zernel::NodeMap m;
    m.cpus_of_node.resize(2);
    for (int c = 0; c < kCpus; ++c) {
      m.node_of_cpu.push_back(static_cast<std::int16_t>(c / 32));
      m.cpus_of_node[static_cast<std::size_t>(c / 32)].push_back(c);
    }
    return m;
  }
};

void BM_Decision(benchmark::State& state, const char* policy_name) {
  const auto n_tasks = static_cast<std::size_t>(state.range(0));
  PolicyConfig cfg;
  cfg.max_tracked_tasks = n_tasks;
  cfg.nr_cpus = kCpus;
  std::unique_ptr<PhaseWorld> world;
  std::unique_ptr<zernel::Policy> policy;
  if (std::string_view(policy_name) == "phase") {
    world = std::make_unique<PhaseWorld>(n_tasks);
    policy = std::make_unique<zernel::PhasePolicy>(cfg, world->snapshots, world->nodes(),
                                                   std::span<const volatile zernel::CpuState>(world->cpus),
                                                   &world->changes);
  } else {
    policy = zernel::make_policy(policy_name, cfg);
  }
  if (!policy) {
    state.SkipWithError("unknown policy");
    return;
  }
  MemoryRing ring(make_trace(n_tasks));
  Dispatcher dispatcher(ring, *policy, kBatch);

  // Two laps: the first inserts every task into the policy's table, the second runs the
  // steady state once, so first-touch faults and cold misses stay out of the figures.
  ring.touch();
  for (std::size_t done = 0; done < 2 * n_tasks; done += kBatch) dispatcher.run_once();
  if (world) {  // nobody reads phase changes here; keep the queue from filling up
    zernel::PhaseChange c;
    while (world->changes.try_pop(&c)) {
    }
  }

  const Faults before = thread_faults();
  g_allocations.store(0, std::memory_order_relaxed);
  const std::uint64_t t0 = now_ns();
  g_armed = true;
  for (auto _ : state) benchmark::DoNotOptimize(dispatcher.run_once());
  g_armed = false;
  const std::uint64_t t1 = now_ns();
  const Faults after = thread_faults();
  const std::uint64_t allocations = g_allocations.load(std::memory_order_relaxed);

  const auto items = static_cast<std::int64_t>(state.iterations() * kBatch);
  state.SetItemsProcessed(items);
  state.counters["ns_per_task"] = items ? static_cast<double>(t1 - t0) / static_cast<double>(items) : 0;
  state.counters["minor_faults"] = static_cast<double>(after.minor - before.minor);
  state.counters["major_faults"] = static_cast<double>(after.major - before.major);
  state.counters["allocations"] = static_cast<double>(allocations);
  if (allocations != 0)
    state.SkipWithError(("heap allocation on the hot path: " + std::to_string(allocations)).c_str());
}

// With --benchmark_repetitions, a "min" aggregate beside Google Benchmark's median: on a
// shared host another tenant's memory traffic adds to some repetitions, never subtracts.
double smallest(const std::vector<double>& v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); }

void DecisionArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("tasks")->Arg(1000)->Arg(10000)->Arg(65536)->Unit(benchmark::kMicrosecond)->ComputeStatistics("min", smallest);
}

BENCHMARK_CAPTURE(BM_Decision, fair, "fair")->Apply(DecisionArgs);
BENCHMARK_CAPTURE(BM_Decision, fifo, "fifo")->Apply(DecisionArgs);
BENCHMARK_CAPTURE(BM_Decision, phase, "phase")->Apply(DecisionArgs);

}  // namespace

BENCHMARK_MAIN();
