// PhasePolicy driven with synthetic shim messages and a hand-made MlSnapshot: phase
// detection from the per-message signals, the per-phase scheduling rules, NUMA placement
// and tenant CPU shares.
#include "scheduler/phase_policy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <tuple>
#include <vector>

#include "scheduler/fair_policy.h"

namespace zernel {
namespace {

constexpr std::uint64_t kMs = 1'000'000;
constexpr std::uint64_t kUs = 1'000;
constexpr std::uint64_t kT0 = 10'000 * kMs;  // shim clock at the first event: not 0
constexpr std::uint64_t kPreemptNow = ZERNEL_DEC_PREEMPT | ZERNEL_DEC_PREEMPT_NOW;
// A decision's preemption request, without its direct wakeup grant (tested on its own).
std::uint64_t preempt_of(const Decision& d) { return d.flags & kPreemptNow; }

// A process of an ML job using GPU 0 (the trainer of most tests).
ProcessInfo ml_proc(std::int32_t tgid, std::int32_t job, std::int16_t node = -1) {
  ProcessInfo p;
  p.tgid = tgid;
  p.job = job;
  p.gpu_mask = 1;
  p.node = node;
  return p;
}

// Two NUMA nodes of two CPUs: {0,1} and {2,3}.
NodeMap two_nodes() {
  NodeMap m;
  m.node_of_cpu = {0, 0, 1, 1};
  m.cpus_of_node = {{0, 1}, {2, 3}};
  return m;
}

TaskEvent base_event(std::int32_t pid, std::int32_t tgid, std::uint64_t at) {
  TaskEvent ev{};
  ev.pid = pid;
  ev.tgid = tgid;
  ev.prev_cpu = 0;
  ev.nr_cpus_allowed = 4;
  ev.enq_ns = at;
  ev.weight = 100;
  return ev;
}

// Re-enqueued at slice expiry (or a yield): no wakeup.
TaskEvent runnable(std::int32_t pid, std::int32_t tgid, std::uint64_t at, std::uint64_t runtime,
                   std::uint32_t futex_waits = 0) {
  TaskEvent ev = base_event(pid, tgid, at);
  ev.runtime_ns = runtime;
  ev.burst_ns = runtime;
  ev.futex_waits = futex_waits;
  return ev;
}

// A wakeup after `sleep` following a burst of `burst` (which is also what it ran since the
// previous enqueue). waker 0 = woken by an interrupt or timer, no task.
TaskEvent wakeup(std::int32_t pid, std::int32_t tgid, std::uint64_t at, std::uint64_t burst, std::uint64_t sleep,
                 std::int32_t waker_pid = 0, std::int32_t waker_tgid = 0, bool iowait = false) {
  TaskEvent ev = base_event(pid, tgid, at);
  ev.flags = ZERNEL_TASK_WAKEUP | (iowait ? std::uint32_t{ZERNEL_TASK_IOWAIT} : 0u);
  ev.runtime_ns = burst;
  ev.burst_ns = burst;
  ev.sleep_ns = static_cast<std::uint32_t>(sleep);
  ev.waker_pid = waker_pid;
  ev.waker_tgid = waker_tgid;
  return ev;
}

class Harness {
 public:
  explicit Harness(NodeMap nodes = NodeMap::single_node(4)) : nodes_(std::move(nodes)) {
    cfg.max_tracked_tasks = 1024;
    cfg.nr_cpus = 4;
    snap->nr_gpus = 1;
    snap->gpu_util[0] = 90;
    snap->eval_interval_ns = 100 * kMs;
  }

  // Edit `snap` (and `cfg`, `cpus`) before the first decide(); later edits need publish().
  PolicyConfig cfg;
  std::unique_ptr<MlSnapshot> snap = std::make_unique<MlSnapshot>();
  std::vector<CpuState> cpus = std::vector<CpuState>(4);
  SpscQueue<PhaseChange> changes{4096};

  void add(const ProcessInfo& p) { ASSERT_TRUE(snap->insert(p)); }

  void publish() {
    MlSnapshot* w = exchange_.begin_write();
    if (!w) {
      ADD_FAILURE() << "no free snapshot buffer";
      return;
    }
    *w = *snap;
    exchange_.publish(w);
  }

  PhasePolicy& policy() {
    if (!policy_) {
      publish();
      policy_ = std::make_unique<PhasePolicy>(cfg, exchange_, nodes_,
                                              std::span<const volatile CpuState>(cpus.data(), cpus.size()),
                                              &changes);
    }
    return *policy_;
  }

  Decision decide(TaskEvent ev) {
    ev.gen = ++gen_;
    Decision d{};
    policy().decide(std::span(&ev, 1), std::span(&d, 1));
    EXPECT_EQ(d.pid, ev.pid);
    EXPECT_EQ(d.gen, ev.gen);
    return d;
  }

  std::vector<Decision> decide(std::vector<TaskEvent> evs) {
    for (auto& ev : evs) ev.gen = ++gen_;
    std::vector<Decision> out(evs.size());
    policy().decide(evs, out);
    return out;
  }

  Phase phase(std::int32_t pid) {
    const PhasePolicy::TaskState* st = policy().task(pid);
    return st ? st->tracker.committed : Phase::Unknown;
  }

  std::vector<PhaseChange> drain() {
    std::vector<PhaseChange> v;
    PhaseChange c;
    while (changes.try_pop(&c)) v.push_back(c);
    return v;
  }

 private:
  NodeMap nodes_;
  SnapshotExchange<MlSnapshot> exchange_;
  std::unique_ptr<PhasePolicy> policy_;
  std::uint64_t gen_ = 0;
};

// The I/O-bound loader of the spec's rule: every 10 ms it wakes from an 8 ms I/O wait and
// runs 1 ms. With the GPU idle (< gpu_idle_threshold) that is DataLoading. Returns the
// time after the last event.
std::uint64_t run_io_loader(Harness& h, std::int32_t pid, std::int32_t tgid, std::uint64_t from, int events) {
  std::uint64_t t = from;
  for (int k = 0; k < events; ++k, t += 10 * kMs)
    h.decide(wakeup(pid, tgid, t, 1 * kMs, 8 * kMs, 0, 0, /*iowait=*/true));
  return t;
}

// The trainer: every 25 ms it wakes from a GPU sync (nobody of its job woke it) and runs
// a 2 ms burst.
std::uint64_t run_trainer(Harness& h, std::int32_t pid, std::int32_t tgid, std::uint64_t from, int events) {
  std::uint64_t t = from;
  for (int k = 0; k < events; ++k, t += 25 * kMs) h.decide(wakeup(pid, tgid, t, 2 * kMs, 23 * kMs));
  return t;
}

TEST(PhasePolicy, TrainerPatternCommitsOptimizerStepAfterStabilityCount) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  ASSERT_EQ(h.snap->detection.phase_stability_count, 3u);

  // Windows close at the events at +100, +200 and +300 ms (k = 4, 8, 12); each saw the
  // optimizer pattern, so the third closes the streak.
  for (int k = 0; k < 12; ++k) {
    const Decision d = h.decide(wakeup(1000, 1000, kT0 + k * 25 * kMs, 2 * kMs, 23 * kMs));
    ASSERT_EQ(h.phase(1000), Phase::Unknown) << "committed early, at event " << k;
    // Unknown: fair's rule, a short-burst wakeup may preempt, with the margin.
    EXPECT_EQ(preempt_of(d), std::uint64_t{ZERNEL_DEC_PREEMPT}) << k;
  }
  const Decision d = h.decide(wakeup(1000, 1000, kT0 + 12 * 25 * kMs, 2 * kMs, 23 * kMs));
  EXPECT_EQ(h.phase(1000), Phase::OptimizerStep);
  EXPECT_EQ(preempt_of(d), kPreemptNow);  // the committing event is already decided as OptimizerStep
  EXPECT_EQ(h.policy().transitions(), 1u);

  const std::vector<PhaseChange> ch = h.drain();
  ASSERT_EQ(ch.size(), 2u);
  EXPECT_EQ(ch[0].pid, 1000);
  EXPECT_EQ(ch[0].tgid, 1000);
  EXPECT_EQ(ch[0].from, Phase::Unknown);
  EXPECT_EQ(ch[0].to, Phase::Unknown);
  EXPECT_EQ(ch[0].at_ns, kT0);
  EXPECT_EQ(ch[1].pid, 1000);
  EXPECT_EQ(ch[1].from, Phase::Unknown);
  EXPECT_EQ(ch[1].to, Phase::OptimizerStep);
  EXPECT_EQ(ch[1].at_ns, kT0 + 300 * kMs);

  // The same pattern goes on: nothing more to report.
  run_trainer(h, 1000, 1000, kT0 + 13 * 25 * kMs, 40);
  EXPECT_EQ(h.phase(1000), Phase::OptimizerStep);
  EXPECT_TRUE(h.drain().empty());
  EXPECT_EQ(h.policy().transitions(), 1u);
  EXPECT_EQ(h.policy().changes_dropped(), 0u);
  EXPECT_GT(h.policy().decisions_in(Phase::OptimizerStep), 40u);
}

// A direct wakeup's report can come after the task's next event (policy.h). Every
// other wakeup of the trainer below is such a late report, decided after the event 25 ms
// later: the pattern still commits after three windows, and nothing wraps around (a late
// event's negative age, read as huge, closed a window at every report and broke the streak).
TEST(PhasePolicy, LateDirectReportsDoNotBreakTheWindows) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  for (int k = 0; k < 12; k += 2) {
    TaskEvent late = wakeup(1000, 1000, kT0 + k * 25 * kMs, 2 * kMs, 23 * kMs);
    late.flags |= ZERNEL_TASK_DIRECT;
    const TaskEvent next = wakeup(1000, 1000, kT0 + (k + 1) * 25 * kMs, 2 * kMs, 23 * kMs);
    if (k == 0) {
      h.decide(late);  // the first sighting comes first
      h.decide(next);
    } else {
      h.decide(next);
      h.decide(late);
    }
    ASSERT_EQ(h.phase(1000), Phase::Unknown) << "committed early, at event " << k;
  }
  // In arrival order the windows closed at +125 and +225 ms (a late event belongs to the
  // open window); the third closes at +325.
  h.decide(wakeup(1000, 1000, kT0 + 12 * 25 * kMs, 2 * kMs, 23 * kMs));
  ASSERT_EQ(h.phase(1000), Phase::Unknown);
  h.decide(wakeup(1000, 1000, kT0 + 13 * 25 * kMs, 2 * kMs, 23 * kMs));
  EXPECT_EQ(h.phase(1000), Phase::OptimizerStep);
  EXPECT_EQ(h.policy().transitions(), 1u);
}

TEST(PhasePolicy, LongBurstsAfterGpuSyncsAreNotOptimizerSteps) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  // The trainer's pattern, but each burst is 8 ms: above optimizer_burst_max_ns (5 ms).
  ASSERT_LT(h.snap->detection.optimizer_burst_max_ns, 8 * kMs);
  for (int k = 0; k < 40; ++k) h.decide(wakeup(1000, 1000, kT0 + k * 25 * kMs, 8 * kMs, 17 * kMs));
  EXPECT_EQ(h.phase(1000), Phase::Unknown);
  // And at 4 ms it is one.
  for (int k = 40; k < 60; ++k) h.decide(wakeup(1000, 1000, kT0 + k * 25 * kMs, 4 * kMs, 21 * kMs));
  EXPECT_EQ(h.phase(1000), Phase::OptimizerStep);
}

TEST(PhasePolicy, WorkerThatWakesTheTrainerIsDataLoading) {
  Harness h;
  h.add(ml_proc(1000, 1000));  // trainer
  h.add(ml_proc(2000, 1000));  // DataLoader worker process of the same job
  h.add(ml_proc(3000, 1000));  // another process of the job that never talks to the trainer

  for (int c = 0; c < 25; ++c) {
    const std::uint64_t base = kT0 + c * 20 * kMs;
    h.decide(wakeup(1000, 1000, base, 1 * kMs, 9 * kMs));  // GPU sync
    h.decide(runnable(2001, 2000, base + 5 * kMs, 5 * kMs));
    h.decide(runnable(3001, 3000, base + 5 * kMs, 5 * kMs));
    h.decide(wakeup(1000, 1000, base + 10 * kMs, 1 * kMs, 5 * kMs, 2001, 2000));  // batch handed over
    h.decide(runnable(2001, 2000, base + 15 * kMs, 5 * kMs));
    h.decide(runnable(3001, 3000, base + 15 * kMs, 5 * kMs));
  }
  EXPECT_EQ(h.phase(2001), Phase::DataLoading);
  EXPECT_EQ(h.phase(3001), Phase::Unknown);
  EXPECT_NE(h.phase(1000), Phase::DataLoading);

  // The worker's first event was at +5 ms, its windows closed at +105, +205, +305 ms.
  std::optional<PhaseChange> worker;
  for (const PhaseChange& c : h.drain()) {
    if (c.pid == 3001) {
      EXPECT_EQ(c.to, Phase::Unknown);
    }
    if (c.pid == 2001 && c.to != Phase::Unknown) {
      EXPECT_FALSE(worker) << "worker committed twice";
      worker = c;
    }
  }
  ASSERT_TRUE(worker);
  EXPECT_EQ(worker->tgid, 2000);
  EXPECT_EQ(worker->to, Phase::DataLoading);
  EXPECT_EQ(worker->at_ns, kT0 + 305 * kMs);

  // The hand-overs stop (the trainer only waits for the GPU now): the worker is just a
  // CPU-bound task of the job again once the evidence is two windows old and three
  // windows agree.
  for (int c = 25; c < 60; ++c) {
    const std::uint64_t base = kT0 + c * 20 * kMs;
    h.decide(wakeup(1000, 1000, base, 1 * kMs, 9 * kMs));
    h.decide(runnable(2001, 2000, base + 5 * kMs, 5 * kMs));
    h.decide(wakeup(1000, 1000, base + 10 * kMs, 1 * kMs, 9 * kMs));
    h.decide(runnable(2001, 2000, base + 15 * kMs, 5 * kMs));
  }
  EXPECT_EQ(h.phase(2001), Phase::Unknown);
  const std::vector<PhaseChange> back = h.drain();
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].pid, 2001);
  EXPECT_EQ(back[0].from, Phase::DataLoading);
  EXPECT_EQ(back[0].to, Phase::Unknown);
}

TEST(PhasePolicy, IoBoundTaskWhileGpuIdleIsDataLoading) {
  {
    Harness h;
    h.snap->gpu_util[0] = 5;  // below gpu_idle_threshold (10)
    h.add(ml_proc(4000, 4000));
    run_io_loader(h, 4000, 4000, kT0, 30);  // events at +0..+290 ms: two windows closed
    EXPECT_EQ(h.phase(4000), Phase::Unknown);
    run_io_loader(h, 4000, 4000, kT0 + 300 * kMs, 1);
    EXPECT_EQ(h.phase(4000), Phase::DataLoading);
  }
  {
    Harness h;  // the same task while the GPU is half busy: the rule needs an idle GPU
    h.snap->gpu_util[0] = 50;
    h.add(ml_proc(4000, 4000));
    run_io_loader(h, 4000, 4000, kT0, 60);
    EXPECT_EQ(h.phase(4000), Phase::Unknown);
  }
  {
    Harness h;  // the same sleeps, but not I/O waits
    h.snap->gpu_util[0] = 5;
    h.add(ml_proc(4000, 4000));
    for (int k = 0; k < 60; ++k) h.decide(wakeup(4000, 4000, kT0 + k * 10 * kMs, 1 * kMs, 8 * kMs));
    EXPECT_EQ(h.phase(4000), Phase::Unknown);
  }
}

TEST(PhasePolicy, NcclCollectiveNeedsNcclTheSwitchAndFutexWaits) {
  const auto run = [](bool enabled, bool nccl, std::uint32_t futex) {
    Harness h;
    h.snap->detection.nccl_detection_enabled = enabled;
    ProcessInfo p = ml_proc(8000, 8000);
    p.nccl = nccl;
    h.add(p);
    std::optional<std::uint64_t> committed_at;
    Decision last{};
    for (int k = 0; k < 50; ++k) {
      last = h.decide(runnable(8001, 8000, kT0 + k * 10 * kMs, 1 * kMs, futex));
      if (!committed_at && h.phase(8001) != Phase::Unknown) committed_at = k * 10 * kMs;
    }
    return std::tuple{h.phase(8001), committed_at, preempt_of(last)};
  };
  const auto [phase, at, flags] = run(true, true, 2);
  EXPECT_EQ(phase, Phase::NcclCollective);
  EXPECT_EQ(at, std::optional<std::uint64_t>(300 * kMs));
  EXPECT_EQ(flags, kPreemptNow);  // low latency: on every enqueue, not only wakeups

  EXPECT_EQ(std::get<0>(run(false, true, 2)), Phase::Unknown);  // detection disabled
  EXPECT_EQ(std::get<0>(run(true, false, 2)), Phase::Unknown);  // process does not run NCCL
  EXPECT_EQ(std::get<0>(run(true, true, 0)), Phase::Unknown);   // no futex waits
  EXPECT_EQ(std::get<2>(run(false, true, 2)), 0u);
}

TEST(PhasePolicy, FlappingInputNeverCommits) {
  Harness h;
  h.snap->detection.nccl_detection_enabled = true;
  ProcessInfo p = ml_proc(1000, 1000);
  p.nccl = true;
  h.add(p);
  // Window w spans [kT0 + w*100ms, +100ms); its first event closes window w-1.
  const auto optimizer_window = [&](int w) {
    for (int j = 0; j < 10; ++j)
      h.decide(wakeup(1000, 1000, kT0 + (w * 100 + j * 10) * kMs, 2 * kMs, 8 * kMs));
  };
  const auto nccl_window = [&](int w) {
    for (int j = 0; j < 10; ++j) h.decide(runnable(1000, 1000, kT0 + (w * 100 + j * 10) * kMs, 1 * kMs, 1));
  };
  int w = 0;
  for (; w < 20; ++w) {
    if (w % 2 == 0) optimizer_window(w);
    else nccl_window(w);
    ASSERT_EQ(h.phase(1000), Phase::Unknown) << "window " << w;
  }
  EXPECT_EQ(h.policy().transitions(), 0u);
  const std::vector<PhaseChange> first = h.drain();
  ASSERT_EQ(first.size(), 1u);  // the first sighting only
  EXPECT_EQ(first[0].to, Phase::Unknown);

  // Proof that each window was classified: the same windows without the alternation commit.
  for (int i = 0; i < 5; ++i, ++w) nccl_window(w);
  EXPECT_EQ(h.phase(1000), Phase::NcclCollective);
}

TEST(PhasePolicy, NonMlTasksAreUnknownAndDecidedLikeFair) {
  Harness h;
  h.add(ml_proc(1000, 1000));  // an ML job exists, but not these processes
  ProcessInfo tenant_only;     // known to the snapshot, but in no ML job
  tenant_only.tgid = 6000;
  h.add(tenant_only);
  FairPolicy fair(h.cfg);

  std::vector<TaskEvent> evs;
  for (int k = 0; k < 100; ++k) {
    const std::uint64_t t = kT0 + k * 10 * kMs;
    // A trainer-like pattern, an I/O loader pattern, a hog, a pinned task.
    evs.push_back(wakeup(5001, 5000, t, 2 * kMs, 8 * kMs));
    evs.push_back(wakeup(5002, 5000, t + 1 * kMs, 200 * kUs, 8 * kMs, 0, 0, true));
    evs.push_back(runnable(5003, 5000, t + 2 * kMs, 5 * kMs, 3));
    // (Wakeups, all but the hog: fair also lifts a lagging task that did not sleep to the
    // floor, which the phase policy leaves alone by design.)
    TaskEvent pinned = wakeup(6001, 6000, t + 3 * kMs, 1 * kMs, 9 * kMs);
    pinned.nr_cpus_allowed = 1;
    pinned.prev_cpu = 3;
    evs.push_back(pinned);
  }
  for (std::size_t i = 0; i < evs.size(); ++i) {
    const Decision d = h.decide(evs[i]);
    TaskEvent ev = evs[i];
    ev.gen = d.gen;
    Decision f{};
    fair.decide(std::span(&ev, 1), std::span(&f, 1));
    ASSERT_EQ(d.vtime, f.vtime) << "event " << i;
    ASSERT_EQ(d.slice_ns, f.slice_ns) << i;
    ASSERT_EQ(d.flags, f.flags) << i;
    ASSERT_EQ(d.cpu, f.cpu) << i;
    EXPECT_EQ(d.flags & ZERNEL_DEC_PREEMPT_NOW, 0u);
    EXPECT_EQ(d.cpu, ev.pid == 6001 ? 3 : kCpuAny);
  }
  for (int pid : {5001, 5002, 5003, 6001}) EXPECT_EQ(h.phase(pid), Phase::Unknown) << pid;
  EXPECT_TRUE(h.drain().empty());  // not even a first sighting
  EXPECT_EQ(h.policy().decisions_in(Phase::Unknown), evs.size());
  EXPECT_EQ(h.policy().transitions(), 0u);
}

TEST(PhasePolicy, DataLoadingPreemptsAtOnceOnEveryEnqueue) {
  Harness h;
  h.snap->gpu_util[0] = 5;
  h.add(ml_proc(4000, 4000));
  h.add(ml_proc(4100, 4100));
  const std::uint64_t t = run_io_loader(h, 4000, 4000, kT0, 31);
  ASSERT_EQ(h.phase(4000), Phase::DataLoading);

  const Decision d = h.decide(runnable(4000, 4000, t, 5 * kMs));  // slice expiry, no wakeup
  EXPECT_EQ(preempt_of(d), kPreemptNow);
  // An ML task in Unknown gets nothing for the same enqueue.
  const Decision u = h.decide(runnable(4100, 4100, t, 5 * kMs));
  EXPECT_EQ(h.phase(4100), Phase::Unknown);
  EXPECT_EQ(preempt_of(u), 0u);
}

TEST(PhasePolicy, OptimizerStepPreemptsOnWakeupsOnly) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  std::uint64_t t = run_trainer(h, 1000, 1000, kT0, 13);
  ASSERT_EQ(h.phase(1000), Phase::OptimizerStep);

  EXPECT_EQ(preempt_of(h.decide(runnable(1000, 1000, t, 5 * kMs))), 0u);
  t += 5 * kMs;
  // Even after a burst too long for fair's short-burst rule (> slice / 2).
  const Decision d = h.decide(wakeup(1000, 1000, t, 4 * kMs, 10 * kMs));
  ASSERT_GT(4 * kMs, h.policy().slice() / 2);
  EXPECT_EQ(preempt_of(d), kPreemptNow);
  EXPECT_EQ(h.phase(1000), Phase::OptimizerStep);
}

// The trainer wakes from its GPU step while data loaders of another job run flat out with
// the same latency target: it must go first, and ask for one of their CPUs at once.
TEST(PhasePolicy, WakingTrainerGoesAheadOfDataLoadersRunningFlatOut) {
  Harness h;
  h.snap->gpu_util[0] = 90;  // the trainer's GPU: busy
  h.snap->gpu_util[1] = 5;   // the loaders': idle, so their I/O waits make them DataLoading
  h.snap->nr_gpus = 2;
  h.add(ml_proc(1000, 1000));
  ProcessInfo loaders = ml_proc(4000, 4000);
  loaders.gpu_mask = 2;
  h.add(loaders);
  h.policy().activate(kT0);  // as the dispatcher does with its first batch
  const std::uint64_t t = std::max(run_trainer(h, 1000, 1000, kT0, 13), run_io_loader(h, 4000, 4000, kT0, 31));
  h.decide(wakeup(4001, 4000, t - 50 * kMs, 1 * kMs, 8 * kMs, 0, 0, true));
  ASSERT_EQ(h.phase(1000), Phase::OptimizerStep);
  ASSERT_EQ(h.phase(4000), Phase::DataLoading);

  const std::uint64_t grants = h.policy().tier_grants();  // the trainer's, while it committed
  // Both loaders are CPU-bound now: slice expiries at their phase's deadline.
  const Decision l1 = h.decide(runnable(4000, 4000, t, 5 * kMs));
  const Decision trainer = h.decide(wakeup(1000, 1000, t + 100 * kUs, 2 * kMs, 23 * kMs));
  EXPECT_EQ(preempt_of(trainer), kPreemptNow);
  // The latency tier: target + the 2 ms burst, under every normal key.
  EXPECT_EQ(trainer.vtime, 100 * kUs + 2 * kMs);
  EXPECT_LT(trainer.vtime, PhasePolicy::tier_top(h.cfg));
  EXPECT_GE(l1.vtime, PhasePolicy::tier_top(h.cfg));
  EXPECT_EQ(trainer.slice_ns, 4 * kMs) << "twice its burst: a tier grant is short";
  EXPECT_EQ(h.policy().tier_grants(), grants + 1);
  // A loader woken for its next batch ran longer (30 ms) than it slept (8 ms): no tier,
  // so it neither sorts ahead of the trainer nor kicks its CPU.
  const Decision l2 = h.decide(wakeup(4000, 4000, t + 200 * kUs, 30 * kMs, 8 * kMs, 0, 0, true));
  EXPECT_GE(l2.vtime, PhasePolicy::tier_top(h.cfg));
  EXPECT_EQ(h.policy().tier_grants(), grants + 1);
  // The trainer's next wakeup found an idle CPU and ran there at once (a direct wakeup's
  // report): it spends none of the tier's budget.
  TaskEvent direct = wakeup(1000, 1000, t + 30 * kMs, 2 * kMs, 23 * kMs);
  direct.flags |= ZERNEL_TASK_DIRECT;
  h.decide(direct);
  EXPECT_EQ(h.policy().tier_grants(), grants + 1);
  EXPECT_EQ(h.decide(wakeup(1000, 1000, t + 60 * kMs, 2 * kMs, 23 * kMs)).vtime, 100 * kUs + 2 * kMs);
  EXPECT_EQ(h.policy().tier_grants(), grants + 2);
}

// The dispatcher's own wakeup takes a CPU from whatever runs there, the trainer included:
// the trainer comes back as a slice expiry 1 ms into its 4 ms grant and keeps its place.
TEST(PhasePolicy, TierTaskPreemptedEarlyKeepsTheRestOfItsGrant) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  h.policy().activate(kT0);
  const std::uint64_t t = run_trainer(h, 1000, 1000, kT0, 13);
  ASSERT_EQ(h.phase(1000), Phase::OptimizerStep);
  const Decision woke = h.decide(wakeup(1000, 1000, t, 2 * kMs, 23 * kMs));
  ASSERT_LT(woke.vtime, PhasePolicy::tier_top(h.cfg));
  ASSERT_EQ(woke.slice_ns, 4 * kMs);
  const Decision back = h.decide(runnable(1000, 1000, t + 1 * kMs, 1 * kMs));
  EXPECT_EQ(back.vtime, woke.vtime);
  EXPECT_EQ(back.slice_ns, 3 * kMs);
  EXPECT_EQ(preempt_of(back), kPreemptNow);
  // It used the rest: the next enqueue is a plain slice expiry, in the normal tier.
  const Decision done = h.decide(runnable(1000, 1000, t + 4 * kMs, 3 * kMs));
  EXPECT_GE(done.vtime, PhasePolicy::tier_top(h.cfg));
  EXPECT_EQ(preempt_of(done), 0u);
}

// Traces name each run after the phase it was decided in: the policy reports the phase of
// every event of its last batch.
TEST(PhasePolicy, BatchPhasesAreThePhasesOfTheLastBatch) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  const std::uint64_t t = run_trainer(h, 1000, 1000, kT0, 13);
  ASSERT_EQ(h.phase(1000), Phase::OptimizerStep);
  h.decide(std::vector<TaskEvent>{wakeup(1000, 1000, t, 2 * kMs, 23 * kMs), runnable(5001, 5000, t, 5 * kMs)});
  const std::span<const std::uint8_t> phases = h.policy().batch_phases();
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0], phase_index(Phase::OptimizerStep));
  EXPECT_EQ(phases[1], phase_index(Phase::Unknown));
}

// The tier's grants add up to at most half the machine's CPU time per evaluation window:
// beyond that, wakeups get their phase's normal deadline; the next window has a new budget.
TEST(PhasePolicy, LatencyTierBudgetIsHalfTheMachinePerWindow) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  h.policy().activate(kT0);
  std::uint64_t t = run_trainer(h, 1000, 1000, kT0, 13);
  ASSERT_EQ(h.phase(1000), Phase::OptimizerStep);
  const std::uint64_t granted_before = h.policy().tier_grants();
  // Start of a fresh window; 4 CPUs x 100 ms / 2 = 200 ms of tier slices; each is 4 ms.
  t = (t / (100 * kMs) + 1) * (100 * kMs);
  int granted = 0, refused = 0;
  for (int k = 0; k < 60; ++k) {
    const Decision d = h.decide(wakeup(1000, 1000, t + k * kUs, 2 * kMs, 23 * kMs));
    (d.vtime < PhasePolicy::tier_top(h.cfg) ? granted : refused)++;
  }
  EXPECT_EQ(granted, 50);
  EXPECT_EQ(refused, 10);
  EXPECT_EQ(h.policy().tier_grants() - granted_before, 50u);
  EXPECT_EQ(h.policy().tier_refused(), 10u);
  const Decision next = h.decide(wakeup(1000, 1000, t + 100 * kMs, 2 * kMs, 23 * kMs));
  EXPECT_LT(next.vtime, PhasePolicy::tier_top(h.cfg)) << "a new window, a new budget";
}

TEST(PhasePolicy, GpuComputeYieldsAtOnceAndNeverPreempts) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  // The GPU thread is woken by another thread of its process every 10 ms and runs 20 us:
  // the GPU is busy and it barely uses a CPU.
  std::optional<Decision> before;
  Decision after{};
  std::uint64_t t = kT0;
  for (int k = 0; k < 40; ++k, t += 10 * kMs) {
    const Decision d = h.decide(wakeup(1000, 1000, t, 20 * kUs, 10 * kMs, 1001, 1000));
    if (k == 0) before = d;
    after = d;
  }
  ASSERT_EQ(h.phase(1000), Phase::GpuCompute);
  ASSERT_TRUE(before);
  // While Unknown: fair's short-burst wakeup, the full slice.
  EXPECT_EQ(preempt_of(*before), std::uint64_t{ZERNEL_DEC_PREEMPT});
  EXPECT_EQ(before->slice_ns, h.cfg.slice_ns);
  EXPECT_EQ(after.slice_ns, h.cfg.min_slice_ns);
  EXPECT_EQ(preempt_of(after), 0u);
  const Decision r = h.decide(runnable(1000, 1000, t, 1 * kMs));
  EXPECT_EQ(r.slice_ns, h.cfg.min_slice_ns);
  EXPECT_EQ(preempt_of(r), 0u);

  // Priority -5: charged ~1.25^5 times its runtime.
  const std::uint64_t v0 = h.policy().task(1000)->vruntime;
  h.decide(runnable(1000, 1000, t + 1 * kMs, 1 * kMs));
  const double charged = static_cast<double>(h.policy().task(1000)->vruntime - v0);
  EXPECT_NEAR(charged / static_cast<double>(1 * kMs), std::pow(1.25, 5), 0.1);
}

TEST(PhasePolicy, LatencyTargetPutsDataLoaderAheadOfHogThatUsedLess) {
  Harness h;
  h.snap->gpu_util[0] = 5;
  h.add(ml_proc(4000, 4000));
  std::uint64_t t = kT0;
  for (int k = 0; k < 31; ++k, t += 10 * kMs) {
    h.decide(wakeup(4000, 4000, t, 1 * kMs, 8 * kMs, 0, 0, true));
    h.decide(runnable(5001, 5000, t + 1 * kMs, 5 * kMs));  // a non-ML hog
  }
  ASSERT_EQ(h.phase(4000), Phase::DataLoading);

  const Decision hog = h.decide(runnable(5001, 5000, t, 5 * kMs));
  const std::uint64_t hog_v = h.policy().task(5001)->vruntime;
  // The loader then runs far more than the hog: its vruntime ends two slices ahead.
  const std::uint64_t weight = 100 * priority_scale_1024(10) / 1024;
  const std::uint64_t v0 = h.policy().task(4000)->vruntime;
  const std::uint64_t target = hog_v + 2 * h.policy().slice();
  ASSERT_LT(v0, target);
  const std::uint64_t runtime = (target - v0) * weight / 100 + 1 * kMs;
  const Decision dl = h.decide(runnable(4000, 4000, t + 1 * kMs, runtime));
  ASSERT_EQ(h.phase(4000), Phase::DataLoading);
  ASSERT_GT(runtime, 10 * 5 * kMs);  // ten of the hog's slices
  ASSERT_GT(h.policy().task(4000)->vruntime, hog_v + h.policy().slice());
  // Without the target its key would be past its vruntime, past the hog's key.
  ASSERT_GT(h.policy().task(4000)->vruntime, hog.vtime);
  EXPECT_LT(dl.vtime, hog.vtime);
}

TEST(PhasePolicy, DataLoadingPriorityScalesVruntimeByPlusTenSteps) {
  Harness h;
  h.snap->gpu_util[0] = 5;
  h.add(ml_proc(4000, 4000));
  std::uint64_t t = run_io_loader(h, 4000, 4000, kT0, 31);
  ASSERT_EQ(h.phase(4000), Phase::DataLoading);

  // Both always runnable from here on: each runs 4 ms per turn.
  h.decide(runnable(5001, 5000, t, 0));
  const std::uint64_t dl0 = h.policy().task(4000)->vruntime;
  const std::uint64_t un0 = h.policy().task(5001)->vruntime;
  for (int r = 0; r < 20; ++r) {
    t += 4 * kMs;
    h.decide(runnable(4000, 4000, t, 4 * kMs));
    t += 4 * kMs;
    h.decide(runnable(5001, 5000, t, 4 * kMs));
  }
  ASSERT_EQ(h.phase(4000), Phase::DataLoading);  // still (fewer than 3 windows without I/O)
  const double dl = static_cast<double>(h.policy().task(4000)->vruntime - dl0);
  const double un = static_cast<double>(h.policy().task(5001)->vruntime - un0);
  EXPECT_EQ(un, 80.0 * kMs);
  EXPECT_NEAR(un / dl, std::pow(1.25, 10), std::pow(1.25, 10) * 0.01);
}

TEST(PhasePolicy, PlacesGpuProcessOnItsNode) {
  Harness h(two_nodes());
  h.add(ml_proc(1000, 1000, /*node=*/1));
  h.cpus[2].busy = 1;  // node 1: CPU 2 busy, CPU 3 idle; node 0 all idle
  TaskEvent ev = runnable(1000, 1000, kT0, 0);
  ev.prev_cpu = 0;
  const Decision placed = h.decide(ev);
  EXPECT_EQ(placed.cpu, 3);
  // No standing grant for wakeups onto an idle CPU: one on node 0 would undo the placement.
  EXPECT_EQ(placed.flags & ZERNEL_DEC_DIRECT_WAKE, 0u);
  const Decision other = h.decide(runnable(5000, 5000, kT0, 0));  // not in a job: the shim places it
  EXPECT_EQ(other.cpu, kCpuAny);
  EXPECT_NE(other.flags & ZERNEL_DEC_DIRECT_WAKE, 0u);

  // All of node 1 busy: the least loaded CPU there, never idle node 0.
  h.cpus[2].busy = 1;
  h.cpus[2].nr_queued = 2;
  h.cpus[3].busy = 1;
  h.cpus[3].nr_queued = 0;
  ev = runnable(1000, 1000, kT0 + 1 * kMs, 1 * kMs);
  ev.prev_cpu = 1;
  EXPECT_EQ(h.decide(ev).cpu, 3);
  h.cpus[3].nr_queued = 4;
  ev.enq_ns += 1 * kMs;
  EXPECT_EQ(h.decide(ev).cpu, 2);

  // Equally loaded: the previous CPU (warm caches).
  h.cpus[2] = CpuState{};
  h.cpus[3] = CpuState{};
  for (int prev : {3, 2, 2, 3, 3, 2}) {
    ev.enq_ns += 1 * kMs;
    ev.prev_cpu = prev;
    EXPECT_EQ(h.decide(ev).cpu, prev);
  }
}

// A node wider than the placement window (8 CPUs): the window starts at the previous CPU,
// wraps past the node's last CPU to its first, and a CPU outside it is not looked at.
TEST(PhasePolicy, PlacementWindowWrapsAndStaysBounded) {
  NodeMap m;  // node 0: CPUs 0..11, node 1: CPUs 12..15
  m.cpus_of_node.resize(2);
  for (int c = 0; c < 16; ++c) {
    m.node_of_cpu.push_back(static_cast<std::int16_t>(c < 12 ? 0 : 1));
    m.cpus_of_node[c < 12 ? 0 : 1].push_back(c);
  }
  Harness h(m);
  h.cfg.nr_cpus = 16;
  h.cpus.assign(16, CpuState{});
  h.add(ml_proc(1000, 1000, /*node=*/0));
  for (CpuState& c : h.cpus) {
    c.busy = 1;
    c.nr_queued = 3;
  }
  // From CPU 9 the window is 9, 10, 11, 0, 1, 2, 3, 4.
  h.cpus[1].nr_queued = 1;  // the least loaded in the window, after the wrap
  h.cpus[7].busy = 0;       // idle, but outside the window
  h.cpus[7].nr_queued = 0;
  TaskEvent ev = runnable(1000, 1000, kT0, 0);
  ev.prev_cpu = 9;
  EXPECT_EQ(h.decide(ev).cpu, 1);
  // Two CPUs equally least loaded: the first in window order, 11 before 2.
  h.cpus[11].nr_queued = 0;
  h.cpus[2].nr_queued = 0;
  ev.enq_ns += kMs;
  EXPECT_EQ(h.decide(ev).cpu, 11);
  // An idle CPU later in the window beats them.
  h.cpus[3].busy = 0;
  h.cpus[3].nr_queued = 0;
  ev.enq_ns += kMs;
  EXPECT_EQ(h.decide(ev).cpu, 3);
}

TEST(PhasePolicy, OneBatchDoesNotStackTasksOnOneIdleCpu) {
  Harness h(two_nodes());
  h.add(ml_proc(1000, 1000, 1));
  // All three last ran on CPU 2, so each would pick CPU 2 first.
  std::vector<TaskEvent> batch = {runnable(1000, 1000, kT0, 0), runnable(1001, 1000, kT0, 0),
                                  runnable(1002, 1000, kT0, 0)};
  for (TaskEvent& ev : batch) ev.prev_cpu = 2;
  const std::vector<Decision> d = h.decide(batch);
  EXPECT_EQ(d[0].cpu, 2);
  EXPECT_EQ(d[1].cpu, 3);
  EXPECT_NE(d[0].cpu, d[1].cpu);
  for (const Decision& x : d) EXPECT_TRUE(x.cpu == 2 || x.cpu == 3) << x.cpu;
  // The count is per batch: the next batch sees both CPUs idle again.
  const std::vector<Decision> next = h.decide(std::vector<TaskEvent>{runnable(1000, 1000, kT0 + 1 * kMs, 0)});
  EXPECT_TRUE(next[0].cpu == 2 || next[0].cpu == 3);
}

TEST(PhasePolicy, PinnedTaskKeepsItsCpuAndNumaSwitchOff) {
  {
    Harness h(two_nodes());
    h.add(ml_proc(1000, 1000, 1));
    TaskEvent ev = runnable(1000, 1000, kT0, 0);
    ev.nr_cpus_allowed = 1;
    ev.prev_cpu = 0;  // on node 0, and it may run nowhere else
    EXPECT_EQ(h.decide(ev).cpu, 0);
  }
  {
    Harness h(two_nodes());
    h.snap->numa.enabled = false;
    h.add(ml_proc(1000, 1000, 1));
    EXPECT_EQ(h.decide(runnable(1000, 1000, kT0, 0)).cpu, kCpuAny);
  }
  {
    Harness h(two_nodes());
    h.snap->numa.gpu_affinity = false;
    h.snap->numa.memory_affinity = false;
    h.add(ml_proc(1000, 1000, 1));
    EXPECT_EQ(h.decide(runnable(1000, 1000, kT0, 0)).cpu, kCpuAny);
  }
}

TEST(PhasePolicy, MemoryAffinityKeepsNodelessMlTaskOnItsNode) {
  Harness h(two_nodes());
  h.add(ml_proc(1000, 1000, /*node=*/-1));
  TaskEvent ev = runnable(1000, 1000, kT0, 0);
  ev.prev_cpu = 3;
  h.cpus[3].busy = 1;
  EXPECT_EQ(h.decide(ev).cpu, 2);  // the idle CPU of the node it ran on
  h.cpus[2].busy = 1;
  ev.enq_ns += 1 * kMs;
  EXPECT_EQ(h.decide(ev).cpu, kCpuAny);  // none idle there: the shim decides
  // Non-ML tasks: always the shim.
  EXPECT_EQ(h.decide(runnable(5001, 5000, kT0, 0)).cpu, kCpuAny);
}

// One CPU: repeatedly runs the queued task with the lowest key for a slice and feeds its
// runtime back. Returns the CPU time per task.
std::vector<std::uint64_t> simulate(Harness& h, const std::vector<std::pair<int, int>>& tasks, int rounds) {
  std::vector<TaskEvent> first;
  for (const auto& [pid, tgid] : tasks) first.push_back(runnable(pid, tgid, kT0, 0));
  std::vector<Decision> keys = h.decide(first);
  std::vector<std::uint64_t> ran(tasks.size(), 0);
  std::uint64_t now = kT0;
  for (int r = 0; r < rounds; ++r) {
    std::size_t pick = 0;
    for (std::size_t i = 1; i < keys.size(); ++i)
      if (keys[i].vtime < keys[pick].vtime) pick = i;
    const std::uint64_t slice = keys[pick].slice_ns;
    now += slice;
    ran[pick] += slice;
    keys[pick] = h.decide(runnable(tasks[pick].first, tasks[pick].second, now, slice));
  }
  return ran;
}

// Two ML processes, 6000 in tenant 0 and 7000 in tenant 1, holding these GPUs.
void add_two_tenants(Harness& h, bool multi_tenant, std::uint16_t gpus0, std::uint16_t gpus1) {
  h.snap->multi_tenant = multi_tenant;
  h.snap->tenant_gpus[0] = gpus0;
  h.snap->tenant_gpus[1] = gpus1;
  ProcessInfo a = ml_proc(6000, 6000);
  a.tenant = 0;
  ProcessInfo b = ml_proc(7000, 7000);
  b.tenant = 1;
  h.add(a);
  h.add(b);
}

TEST(PhasePolicy, TenantsShareCpuByTheirGpus) {
  const std::vector<std::pair<int, int>> tasks = {{6001, 6000}, {6002, 6000}, {7001, 7000}, {7002, 7000}};
  const auto shares = [&](bool multi_tenant) {
    Harness h;
    add_two_tenants(h, multi_tenant, 1, 3);
    const std::vector<std::uint64_t> ran = simulate(h, tasks, 4000);
    const double total = static_cast<double>(ran[0] + ran[1] + ran[2] + ran[3]);
    return std::pair{static_cast<double>(ran[0] + ran[1]) / total, static_cast<double>(ran[2] + ran[3]) / total};
  };
  const auto [a, b] = shares(true);
  EXPECT_NEAR(a, 0.25, 0.03);
  EXPECT_NEAR(b, 0.75, 0.03);
  const auto [a0, b0] = shares(false);
  EXPECT_NEAR(a0, 0.5, 0.03);
  EXPECT_NEAR(b0, 0.5, 0.03);
}

TEST(PhasePolicy, TenantShareDoesNotDependOnThreadCount) {
  // Tenant 0 (1 GPU) runs three threads, tenant 1 (1 GPU) one: still half each.
  Harness h;
  add_two_tenants(h, true, 1, 1);
  const std::vector<std::uint64_t> ran = simulate(h, {{6001, 6000}, {6002, 6000}, {6003, 6000}, {7001, 7000}}, 4000);
  const double total = static_cast<double>(ran[0] + ran[1] + ran[2] + ran[3]);
  EXPECT_NEAR(static_cast<double>(ran[3]) / total, 0.5, 0.03);
}

// Real ML processes run dozens of threads that mostly sleep (CUDA callbacks, pin-memory,
// OpenMP pools, the NCCL proxy). A tenant's share must come from its GPUs, not from how
// many of its threads happened to wake during a window: here each tenant has one
// CPU-bound thread and the same GPUs, and tenant 0 also has nine threads that wake for
// 50 us every 100 ms.
TEST(PhasePolicy, TenantShareIgnoresMostlySleepingThreads) {
  Harness h;
  add_two_tenants(h, true, 1, 1);
  std::vector<Decision> keys =
      h.decide(std::vector<TaskEvent>{runnable(6001, 6000, kT0, 0), runnable(7001, 7000, kT0, 0)});
  std::uint64_t now = kT0, next_wake = kT0;
  std::uint64_t ran[2] = {0, 0};
  for (int r = 0; r < 4000; ++r) {
    if (now >= next_wake) {
      std::vector<TaskEvent> sleepers;
      for (int i = 0; i < 9; ++i) sleepers.push_back(wakeup(6100 + i, 6000, now, 50 * kUs, 90 * kMs));
      h.decide(sleepers);
      next_wake += 100 * kMs;
    }
    const std::size_t pick = keys[1].vtime < keys[0].vtime ? 1 : 0;
    now += keys[pick].slice_ns;
    ran[pick] += keys[pick].slice_ns;
    keys[pick] = h.decide(runnable(pick ? 7001 : 6001, pick ? 7000 : 6000, now, keys[pick].slice_ns));
  }
  EXPECT_NEAR(static_cast<double>(ran[0]) / static_cast<double>(ran[0] + ran[1]), 0.5, 0.05)
      << "tenant 0's CPU-bound thread, out of the two tenants' CPU-bound threads";
}

TEST(PhasePolicy, TenantClassPriorityOnlyWithMultiTenant) {
  const auto ratio = [](bool multi_tenant) {
    Harness h;
    h.snap->multi_tenant = multi_tenant;
    ProcessInfo training;  // in no ML job, no tenant rule: just the class offset
    training.tgid = 6000;
    training.priority = 5;
    h.add(training);
    h.decide(runnable(6001, 6000, kT0, 0));
    h.decide(runnable(5001, 5000, kT0, 0));
    const std::uint64_t t0 = h.policy().task(6001)->vruntime, n0 = h.policy().task(5001)->vruntime;
    for (int r = 1; r <= 10; ++r) {
      h.decide(runnable(6001, 6000, kT0 + r * 10 * kMs, 5 * kMs));
      h.decide(runnable(5001, 5000, kT0 + r * 10 * kMs, 5 * kMs));
    }
    return static_cast<double>(h.policy().task(5001)->vruntime - n0) /
           static_cast<double>(h.policy().task(6001)->vruntime - t0);
  };
  EXPECT_NEAR(ratio(true), std::pow(1.25, 5), 0.05);
  EXPECT_DOUBLE_EQ(ratio(false), 1.0);
}

TEST(PriorityScale, PerStepRatioAndClamp) {
  EXPECT_EQ(priority_scale_1024(0), 1024u);
  EXPECT_NEAR(priority_scale_1024(10), 1024 * std::pow(1.25, 10), 1.0);  // ~9537
  EXPECT_NEAR(priority_scale_1024(-5), 1024 / std::pow(1.25, 5), 1.0);   // ~336
  EXPECT_NEAR(priority_scale_1024(5), 1024 * std::pow(1.25, 5), 1.0);
  EXPECT_EQ(priority_scale_1024(25), priority_scale_1024(20));
  EXPECT_EQ(priority_scale_1024(1000), priority_scale_1024(20));
  EXPECT_EQ(priority_scale_1024(-21), priority_scale_1024(-20));
  EXPECT_EQ(priority_scale_1024(-1000), priority_scale_1024(-20));
  EXPECT_GT(priority_scale_1024(20), priority_scale_1024(19));
  EXPECT_LT(priority_scale_1024(-20), priority_scale_1024(-19));
  EXPECT_GE(priority_scale_1024(-20), 1u);
  for (int p = -19; p <= 20; ++p) {
    const double r = static_cast<double>(priority_scale_1024(p)) / priority_scale_1024(p - 1);
    EXPECT_NEAR(r, 1.25, p <= -10 ? 0.1 : 0.01) << p;  // rounding matters for small values
  }
}

TEST(PhasePolicy, TaskLeavingItsJobReportsBackToUnknown) {
  Harness h;
  h.add(ml_proc(1000, 1000));
  std::uint64_t t = run_trainer(h, 1000, 1000, kT0, 13);
  ASSERT_EQ(h.phase(1000), Phase::OptimizerStep);
  h.drain();
  // The control thread's next snapshot no longer has the process in a job (it exec'd).
  h.snap->clear_procs();
  h.publish();
  const Decision d = h.decide(wakeup(1000, 1000, t, 2 * kMs, 23 * kMs));
  EXPECT_EQ(h.phase(1000), Phase::Unknown);
  EXPECT_EQ(d.flags & ZERNEL_DEC_PREEMPT_NOW, 0u);
  const std::vector<PhaseChange> ch = h.drain();
  ASSERT_EQ(ch.size(), 1u);
  EXPECT_EQ(ch[0].from, Phase::OptimizerStep);
  EXPECT_EQ(ch[0].to, Phase::Unknown);
}

}  // namespace
}  // namespace zernel
