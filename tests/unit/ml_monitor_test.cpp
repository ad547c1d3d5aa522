// MlMonitor against a fake /proc tree and the simulated GPU file: what the published
// MlSnapshot says about jobs, GPUs, nodes and tenants, and the phase list it keeps from
// the dispatcher's PhaseChange records.
#include "scheduler/ml_monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/unit/fake_proc.h"

namespace zernel {
namespace {

using ::testing::ElementsAre;

constexpr std::uint64_t kMs = 1'000'000;

// A /proc-shaped tree (tests/unit/fake_proc.h):
//   1    systemd
//   100  bash, the login shell
//   200  python3 trainer, child of 100, started with CUDA_VISIBLE_DEVICES=0; threads 200, 210
//   201  pt_data_worker, forked by the trainer (no environ of its own)
//   300  bash, nothing ML
class FakeProc : public testing::FakeProcTree {
 public:
  FakeProc() {
    AddProcess(1, 0, "systemd");
    AddProcess(100, 1, "bash");
    AddProcess(200, 100, "python3");
    Environ(200, {"HOME=/root", "CUDA_VISIBLE_DEVICES=0"});
    Thread(200, 210, "python3");
    AddProcess(201, 200, "pt_data_worker");
    AddProcess(300, 1, "bash");
    Environ(300, {"TERM=xterm"});
  }
};

class MlMonitorTest : public ::testing::Test {
 protected:
  MlMonitorTest() { gpu_.Write("gpu_sim", "gpu 0 util 90 node 1"); }

  std::unique_ptr<MlMonitor> make(const Config& cfg = Config{}) {
    MlMonitorOptions opts;
    opts.config = cfg;
    opts.proc_root = proc_.root();
    opts.topology = std::nullopt;
    opts.gpus = std::make_unique<FileGpuSource>(gpu_.root() / "gpu_sim");
    return std::make_unique<MlMonitor>(std::move(opts));
  }

  FakeProc proc_;
  testing::FakeSysfs gpu_;
};

TEST_F(MlMonitorTest, PublishesJobsGpusAndNodes) {
  auto m = make();
  EXPECT_EQ(m->snapshots().acquire(), nullptr);  // nothing before the first refresh
  m->refresh();
  const MlSnapshot* s = m->snapshots().acquire();
  ASSERT_NE(s, nullptr);

  EXPECT_EQ(s->nr_gpus, 1u);
  EXPECT_FLOAT_EQ(s->gpu_util[0], 90);
  EXPECT_EQ(s->eval_interval_ns, 100 * kMs);
  EXPECT_EQ(s->detection, Config{}.phase_detection);
  EXPECT_FALSE(s->multi_tenant);
  EXPECT_EQ(s->nr_procs, 2u);

  const ProcessInfo* trainer = s->find(200);
  ASSERT_NE(trainer, nullptr);
  EXPECT_EQ(trainer->job, 200);
  EXPECT_EQ(trainer->gpu_mask, 1u);
  EXPECT_EQ(trainer->node, 1);
  EXPECT_FALSE(trainer->nccl);
  EXPECT_EQ(trainer->tenant, -1);
  EXPECT_EQ(trainer->priority, 0);

  const ProcessInfo* worker = s->find(201);
  ASSERT_NE(worker, nullptr);
  EXPECT_EQ(worker->job, 200);  // in its parent's job
  EXPECT_EQ(worker->gpu_mask, 1u);
  EXPECT_EQ(worker->node, 1);

  EXPECT_EQ(s->find(300), nullptr);  // not ML
  EXPECT_EQ(s->find(100), nullptr);  // the trainer's parent is not in its job
  EXPECT_EQ(s->find(1), nullptr);

  const MlMonitor::Counts c = m->counts();
  EXPECT_EQ(c.ml_processes, 2u);
  EXPECT_EQ(c.gpus, 1u);
  EXPECT_EQ(c.gpu_source, "file");
  EXPECT_EQ(c.snapshots, 1u);
  EXPECT_EQ(c.skipped, 0u);
}

TEST_F(MlMonitorTest, WorkersInheritTheTrainersGpus) {
  gpu_.Write("gpu_sim", "gpu 0 util 10 node 0\ngpu 1 util 95 node 1");
  proc_.Environ(200, {"CUDA_VISIBLE_DEVICES=1"});
  proc_.AddProcess(202, 201, "pt_data_worker");  // the worker's own child
  proc_.AddProcess(700, 1, "python3");            // a job naming no GPU: may use any
  proc_.Environ(700, {"CUDA_VISIBLE_DEVICES="});
  proc_.AddProcess(800, 1, "train");
  proc_.Environ(800, {"CUDA_VISIBLE_DEVICES=GPU-1234"});  // by UUID: unknown
  auto m = make();
  m->refresh();
  const MlSnapshot* s = m->snapshots().acquire();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->nr_gpus, 2u);
  EXPECT_FLOAT_EQ(s->gpu_util_of(0b10), 95);
  for (int pid : {200, 201, 202}) {
    const ProcessInfo* p = s->find(pid);
    ASSERT_NE(p, nullptr) << pid;
    EXPECT_EQ(p->job, 200) << pid;
    EXPECT_EQ(p->gpu_mask, 0b10u) << pid;  // CUDA_VISIBLE_DEVICES=1 of the trainer
    EXPECT_EQ(p->node, 1) << pid;
  }
  // "" hides every GPU: in the job, no GPU, no node.
  ASSERT_NE(s->find(700), nullptr);
  EXPECT_EQ(s->find(700)->gpu_mask, 0u);
  EXPECT_EQ(s->find(700)->node, -1);
  // Unknown GPUs: all of them, and no node (two GPUs on two nodes).
  ASSERT_NE(s->find(800), nullptr);
  EXPECT_EQ(s->find(800)->gpu_mask, 0b11u);
  EXPECT_EQ(s->find(800)->node, -1);
}

TEST_F(MlMonitorTest, FollowsProcessesAndConfig) {
  auto m = make();
  m->refresh();
  ASSERT_NE(m->snapshots().acquire(), nullptr);

  // A new NCCL trainer appears, the worker exits, the GPU goes idle, the interval changes.
  proc_.AddProcess(400, 1, "python3");
  proc_.Environ(400, {"CUDA_VISIBLE_DEVICES=0"});
  proc_.Thread(400, 401, "NCCL Progress");
  proc_.Delete("201");
  gpu_.Write("gpu_sim", "gpu 0 util 3 node 0");
  Config cfg;
  cfg.general.phase_eval_interval_ms = 250;
  cfg.phase_detection.nccl_detection_enabled = true;
  m->set_config(cfg);
  m->refresh();
  const MlSnapshot* s = m->snapshots().acquire();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->eval_interval_ns, 250 * kMs);
  EXPECT_TRUE(s->detection.nccl_detection_enabled);
  EXPECT_FLOAT_EQ(s->gpu_util[0], 3);
  EXPECT_EQ(s->find(201), nullptr);
  ASSERT_NE(s->find(400), nullptr);
  EXPECT_EQ(s->find(400)->job, 400);
  EXPECT_TRUE(s->find(400)->nccl);
  EXPECT_EQ(s->find(400)->node, 0);
  ASSERT_NE(s->find(200), nullptr);
  EXPECT_EQ(s->find(200)->node, 0);
  EXPECT_EQ(m->counts().ml_processes, 2u);
}

TEST_F(MlMonitorTest, SkipsRefreshWhileTheReaderHoldsTheOtherBuffer) {
  auto m = make();
  m->refresh();
  const MlSnapshot* first = m->snapshots().acquire();  // the dispatcher holds it
  ASSERT_NE(first, nullptr);
  m->refresh();  // fills the other buffer
  m->refresh();  // no free buffer: skipped, and `first` left alone
  EXPECT_EQ(m->counts().snapshots, 2u);
  EXPECT_EQ(m->counts().skipped, 1u);
  ASSERT_NE(first->find(200), nullptr);
  EXPECT_EQ(first->find(200)->job, 200);
  const MlSnapshot* second = m->snapshots().acquire();
  EXPECT_NE(second, first);
  m->refresh();
  EXPECT_EQ(m->counts().snapshots, 3u);
  EXPECT_EQ(m->snapshots().acquire(), first);  // the buffers alternate
}

TEST_F(MlMonitorTest, TenantsFromRules) {
  Config cfg;
  cfg.multi_tenant.enabled = true;
  cfg.multi_tenant.rules = {
      {PriorityClass::Training, std::nullopt, "python3", std::nullopt, 3},
      {PriorityClass::Inference, std::nullopt, "infer", std::nullopt, std::nullopt},
  };
  proc_.AddProcess(500, 1, "infer_srv");
  proc_.Environ(500, {"CUDA_VISIBLE_DEVICES=0"});
  proc_.AddProcess(600, 1, "python3");  // matches rule 0 but runs nothing ML
  auto m = make(cfg);
  m->refresh();
  const MlSnapshot* s = m->snapshots().acquire();
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->multi_tenant);

  const ProcessInfo* trainer = s->find(200);
  ASSERT_NE(trainer, nullptr);
  EXPECT_EQ(trainer->tenant, 0);
  EXPECT_EQ(trainer->priority, 5);  // Training
  EXPECT_EQ(s->tenant_gpus[0], 3);  // the rule's gpus

  const ProcessInfo* worker = s->find(201);  // "pt_data_worker": no rule
  ASSERT_NE(worker, nullptr);
  EXPECT_EQ(worker->tenant, -1);
  EXPECT_EQ(worker->priority, 0);

  const ProcessInfo* infer = s->find(500);
  ASSERT_NE(infer, nullptr);
  EXPECT_EQ(infer->job, 500);
  EXPECT_EQ(infer->tenant, 1);
  EXPECT_EQ(infer->priority, 3);    // Inference
  EXPECT_EQ(s->tenant_gpus[1], 1);  // no `gpus`: the GPUs its processes use

  const ProcessInfo* plain = s->find(600);  // a tenant member outside any ML job
  ASSERT_NE(plain, nullptr);
  EXPECT_EQ(plain->job, 0);
  EXPECT_EQ(plain->tenant, 0);

  EXPECT_EQ(s->find(300), nullptr);  // no rule, no job, default class
}

TEST_F(MlMonitorTest, PhasesFromChangesAndPrunedOnRefresh) {
  auto m = make();
  m->refresh();
  ASSERT_NE(m->snapshots().acquire(), nullptr);
  EXPECT_TRUE(m->phases().empty());

  SpscQueue<PhaseChange>& q = m->changes();
  ASSERT_TRUE(q.try_push({200, 200, Phase::Unknown, Phase::Unknown, 1}));
  ASSERT_TRUE(q.try_push({200, 200, Phase::Unknown, Phase::OptimizerStep, 2}));
  ASSERT_TRUE(q.try_push({210, 200, Phase::Unknown, Phase::Unknown, 3}));
  ASSERT_TRUE(q.try_push({201, 201, Phase::Unknown, Phase::DataLoading, 4}));
  ASSERT_TRUE(q.try_push({999, 200, Phase::Unknown, Phase::GpuCompute, 5}));  // no such thread
  ASSERT_TRUE(q.try_push({300, 300, Phase::Unknown, Phase::DataLoading, 6}));  // not in a job
  EXPECT_THAT(m->phases(), ElementsAre("200 200 optimizer_step", "201 201 data_loading", "210 200 unknown",
                                       "300 300 data_loading", "999 200 gpu_compute"));
  MlMonitor::Counts c = m->counts();
  EXPECT_EQ(c.ml_tasks, 5u);
  EXPECT_EQ(c.by_phase[phase_index(Phase::DataLoading)], 2u);

  // The latest change wins.
  ASSERT_TRUE(q.try_push({210, 200, Phase::Unknown, Phase::GpuCompute, 7}));
  // A refresh forgets threads that do not exist and processes in no job.
  m->refresh();
  ASSERT_NE(m->snapshots().acquire(), nullptr);
  EXPECT_THAT(m->phases(), ElementsAre("200 200 optimizer_step", "201 201 data_loading", "210 200 gpu_compute"));

  // Thread 210 exits, and the worker process leaves.
  proc_.Delete("200/task/210");
  proc_.Delete("201");
  m->refresh();
  ASSERT_NE(m->snapshots().acquire(), nullptr);
  EXPECT_THAT(m->phases(), ElementsAre("200 200 optimizer_step"));
  c = m->counts();
  EXPECT_EQ(c.ml_tasks, 1u);
  EXPECT_EQ(c.by_phase[phase_index(Phase::OptimizerStep)], 1u);
  EXPECT_EQ(c.by_phase[phase_index(Phase::DataLoading)], 0u);
}

TEST_F(MlMonitorTest, TickRefreshesAtThePollInterval) {
  Config cfg;
  cfg.general.gpu_poll_interval_ms = 500;
  auto m = make(cfg);
  const auto t0 = std::chrono::steady_clock::now();
  m->tick(t0);
  ASSERT_NE(m->snapshots().acquire(), nullptr);
  EXPECT_EQ(m->counts().snapshots, 1u);
  m->tick(t0 + std::chrono::milliseconds(100));
  EXPECT_EQ(m->counts().snapshots, 1u);
  // Ticks between refreshes still drain the phase changes.
  ASSERT_TRUE(m->changes().try_push({200, 200, Phase::Unknown, Phase::DataLoading, 1}));
  m->tick(t0 + std::chrono::milliseconds(200));
  PhaseChange left;
  EXPECT_FALSE(m->changes().try_pop(&left));
  EXPECT_EQ(m->counts().snapshots, 1u);
  EXPECT_THAT(m->phases(), ElementsAre("200 200 data_loading"));
  m->tick(t0 + std::chrono::milliseconds(500));
  EXPECT_EQ(m->counts().snapshots, 2u);
}

}  // namespace
}  // namespace zernel
