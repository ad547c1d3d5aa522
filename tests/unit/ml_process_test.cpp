#include "scheduler/ml_process.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tests/unit/fake_proc.h"

namespace zernel {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// A /proc-shaped tree: a machine where
//   1     systemd
//   2     kthreadd, 3 its child kworker
//   100   bash (login shell)
//   200   python3 trainer, child of bash: libtorch mapped, CUDA_VISIBLE_DEVICES=1,3,
//         threads "python3" and "NCCL Progress", cgroup /train.slice/job7, uid 1000
//   201   pt_data_worker, forked by the trainer: inherits the maps
//   202   a worker just spawned by the trainer (exec'd, nothing mapped yet)
//   300   bash with no ML anything, uid 0
//   400   "my_cuda_app" with libcudart only
//   500   "jupyter" with CUDA_VISIBLE_DEVICES=GPU-1234... (UUID)
class FakeProc : public testing::FakeProcTree {
 public:
  FakeProc() {
    AddProcess(1, 0, "systemd", 0, "/init.scope");
    AddProcess(2, 0, "kthreadd", 0, "/");
    AddProcess(3, 2, "kworker/0:1", 0, "/");
    AddProcess(100, 1, "bash", 1000, "/user.slice");
    AddProcess(200, 100, "python3", 1000, "/train.slice/job7");
    Maps(200, {"/usr/lib/x86_64-linux-gnu/libc.so.6",
               "/opt/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so"});
    Environ(200, {"HOME=/home/u", "CUDA_VISIBLE_DEVICES=1,3", "PATH=/usr/bin"});
    Thread(200, 200, "python3");
    Thread(200, 210, "NCCL Progress");
    AddProcess(201, 200, "pt_data_worker", 1000, "/train.slice/job7");
    Maps(201, {"/opt/venv/lib/python3.11/site-packages/torch/lib/libtorch_cpu.so"});
    AddProcess(202, 200, "python3", 1000, "/train.slice/job7");
    AddProcess(300, 1, "bash", 0, "/user.slice/user-0.slice");
    Maps(300, {"/usr/bin/bash", "/usr/lib/x86_64-linux-gnu/libtinfo.so.6"});
    Environ(300, {"TERM=xterm", "NOT_CUDA_VISIBLE_DEVICES=0"});
    AddProcess(400, 1, "my_cuda_app", 1000, "/user.slice");
    Maps(400, {"/usr/local/cuda/lib64/libcudart.so.12.2.140 (deleted)"});
    AddProcess(500, 1, "jupyter", 1001, "/user.slice");
    Environ(500, {"CUDA_VISIBLE_DEVICES=GPU-1234abcd-0000-0000-0000-000000000000"});
  }

  ProcReader reader() const { return ProcReader(root()); }
  void Remove(int pid) { Delete(std::to_string(pid)); }
};

TEST(ProcReader, ReadsTheFiles) {
  FakeProc proc;
  const ProcReader r = proc.reader();
  const auto st = r.stat(201);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->ppid, 200);
  EXPECT_EQ(st->comm, "pt_data_worker");
  EXPECT_EQ(st->start_time, 1000u);
  EXPECT_EQ(r.environ_var(200, "CUDA_VISIBLE_DEVICES"), "1,3");
  EXPECT_EQ(r.environ_var(200, "CUDA"), std::nullopt);
  EXPECT_EQ(r.environ_var(300, "CUDA_VISIBLE_DEVICES"), std::nullopt);
  EXPECT_EQ(r.cgroup_path(200), "/train.slice/job7");
  EXPECT_EQ(r.uid(200), 1000u);
  EXPECT_THAT(r.thread_names(200), ::testing::UnorderedElementsAre("python3", "NCCL Progress"));
  EXPECT_THAT(r.pids(), ElementsAre(1, 2, 3, 100, 200, 201, 202, 300, 400, 500));
  EXPECT_EQ(r.stat(999), std::nullopt);
  EXPECT_EQ(r.uid(999), std::nullopt);
}

TEST(ProcReader, CommWithParenthesesAndSpaces) {
  FakeProc proc;
  proc.AddProcess(600, 1, "a) b (c", 0, "/");
  const auto st = proc.reader().stat(600);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->comm, "a) b (c");
  EXPECT_EQ(st->ppid, 1);
}

TEST(ProcReader, CgroupV1OnlyHasNoPath) {
  FakeProc proc;
  proc.AddProcess(601, 1, "x", 0, "/");
  std::ofstream(proc.root() / "601/cgroup") << "1:name=systemd:/a\n2:cpu:/b\n";
  EXPECT_EQ(proc.reader().cgroup_path(601), std::nullopt);
}

TEST(MlProcessInspector, DetectsMlProcesses) {
  FakeProc proc;
  const MlProcessInspector ml(proc.reader());
  EXPECT_TRUE(ml.is_ml_process(200));   // libtorch + CUDA_VISIBLE_DEVICES
  EXPECT_TRUE(ml.is_ml_process(201));   // inherited libtorch mapping
  EXPECT_FALSE(ml.is_ml_process(202));  // not yet: it is in the job through its parent
  EXPECT_FALSE(ml.is_ml_process(300));  // plain bash
  EXPECT_FALSE(ml.is_ml_process(100));
  EXPECT_TRUE(ml.is_ml_process(400));   // libcudart, even a deleted file
  EXPECT_TRUE(ml.is_ml_process(500));   // CUDA_VISIBLE_DEVICES set (to a UUID)
  EXPECT_FALSE(ml.is_ml_process(3));    // kernel thread: nothing to read
  EXPECT_FALSE(ml.is_ml_process(999));  // gone
}

TEST(MlProcessInspector, NameRulesFromTheConfig) {
  FakeProc proc;
  const MlProcessInspector ml(proc.reader(), {"pyth"});
  EXPECT_TRUE(ml.is_ml_process(202));  // "python3" starts with "pyth"
  EXPECT_FALSE(ml.is_ml_process(300));
}

TEST(MlProcessInspector, VisibleGpus) {
  FakeProc proc;
  const MlProcessInspector ml(proc.reader());
  EXPECT_EQ(ml.visible_gpus(200), (std::vector<int>{1, 3}));
  EXPECT_EQ(ml.visible_gpus(300), std::nullopt);  // unset: all GPUs
  EXPECT_EQ(ml.visible_gpus(500), std::nullopt);  // UUIDs: unknown
}

TEST(MlProcessInspector, ParseCudaVisibleDevices) {
  EXPECT_EQ(parse_cuda_visible_devices("0"), (std::vector<int>{0}));
  EXPECT_EQ(parse_cuda_visible_devices("1,3"), (std::vector<int>{1, 3}));
  EXPECT_EQ(parse_cuda_visible_devices(" 2 , 0 "), (std::vector<int>{2, 0}));
  EXPECT_EQ(parse_cuda_visible_devices(""), std::vector<int>{});       // no GPUs
  EXPECT_EQ(parse_cuda_visible_devices("-1"), std::vector<int>{});     // the usual "hide all"
  EXPECT_EQ(parse_cuda_visible_devices("0,-1,2"), (std::vector<int>{0}));  // stops at invalid
  EXPECT_EQ(parse_cuda_visible_devices("0,x,2"), (std::vector<int>{0}));
  EXPECT_EQ(parse_cuda_visible_devices("1,1"), (std::vector<int>{1}));
  EXPECT_EQ(parse_cuda_visible_devices("GPU-8932f937-d72c-4106-c12f-20bd9faed9f6"), std::nullopt);
  EXPECT_EQ(parse_cuda_visible_devices("MIG-GPU-8932f937/1/0"), std::nullopt);
}

TEST(MlProcessInspector, NcclActive) {
  FakeProc proc;
  const MlProcessInspector ml(proc.reader());
  EXPECT_TRUE(ml.nccl_active(200));   // the "NCCL Progress" thread
  EXPECT_FALSE(ml.nccl_active(201));
  EXPECT_FALSE(ml.nccl_active(300));
  proc.Maps(400, {"/usr/lib/x86_64-linux-gnu/libnccl.so.2"});
  EXPECT_TRUE(ml.nccl_active(400));
}

TEST(MlJobTracker, WorkersBelongToTheTrainersJob) {
  FakeProc proc;
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  EXPECT_EQ(jobs.job_root(200), 200);
  EXPECT_EQ(jobs.job_root(201), 200);  // forked DataLoader worker
  EXPECT_EQ(jobs.job_root(202), 200);  // not ML by itself, but the trainer's child
  EXPECT_EQ(jobs.job_root(100), std::nullopt);  // the shell that started the trainer
  EXPECT_EQ(jobs.job_root(300), std::nullopt);
  EXPECT_EQ(jobs.job_root(1), std::nullopt);
  EXPECT_EQ(jobs.job_root(3), std::nullopt);
  EXPECT_EQ(jobs.job_root(400), 400);
  EXPECT_THAT(jobs.job_roots(), ElementsAre(200, 400, 500));
  EXPECT_THAT(jobs.job_members(200), ElementsAre(200, 201, 202));
  EXPECT_THAT(jobs.job_members(300), IsEmpty());
}

TEST(MlJobTracker, TopmostMlAncestorIsTheRoot) {
  FakeProc proc;
  // torchrun (ML) -> rank (ML) -> worker: one job rooted at torchrun.
  proc.AddProcess(700, 1, "torchrun", 1000, "/");
  proc.Maps(700, {"/x/libtorch.so"});
  proc.AddProcess(701, 700, "python3", 1000, "/");
  proc.Maps(701, {"/x/libtorch.so"});
  proc.AddProcess(702, 701, "pt_data_worker", 1000, "/");
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  // Without a refresh: looked up on the spot.
  EXPECT_EQ(jobs.job_root(702), 700);
  EXPECT_EQ(jobs.job_root(701), 700);
  EXPECT_THAT(jobs.job_members(700), ElementsAre(700, 701, 702));
}

TEST(MlJobTracker, RefreshSeesProcessesBecomeMlAndExit) {
  FakeProc proc;
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  proc.AddProcess(800, 100, "python3", 1000, "/");
  jobs.refresh();
  EXPECT_EQ(jobs.job_root(800), std::nullopt);  // has not imported torch yet

  proc.Maps(800, {"/x/libtorch_cuda.so"});
  EXPECT_EQ(jobs.job_root(800), std::nullopt);  // cached until the next refresh
  jobs.refresh();
  EXPECT_EQ(jobs.job_root(800), 800);

  proc.Remove(800);
  jobs.refresh();
  EXPECT_EQ(jobs.job_root(800), std::nullopt);
  EXPECT_THAT(jobs.job_roots(), ElementsAre(200, 400, 500));
}

TEST(MlJobTracker, ANonMlProcessIsCheckedAgainAtGrowingGaps) {
  FakeProc proc;
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  proc.AddProcess(800, 100, "python3", 1000, "/");
  jobs.refresh();  // 1: checked, not ML; again at 2
  jobs.refresh();  // 2: checked, not ML; again at 4
  proc.Maps(800, {"/x/libtorch_cuda.so"});
  jobs.refresh();  // 3: not due
  EXPECT_EQ(jobs.job_root(800), std::nullopt);
  jobs.refresh();  // 4: due
  EXPECT_EQ(jobs.job_root(800), 800);

  // The gap stops growing at 16 refreshes: a process that stays plain for long is still
  // found within 16 refreshes of becoming ML.
  proc.AddProcess(900, 100, "python3", 1000, "/");
  for (int i = 0; i < 100; ++i) jobs.refresh();
  proc.Maps(900, {"/x/libtorch_cuda.so"});
  int refreshes = 0;
  while (!jobs.job_root(900) && refreshes < 40) {
    jobs.refresh();
    ++refreshes;
  }
  EXPECT_GE(refreshes, 1);
  EXPECT_LE(refreshes, 16);
}

TEST(MlJobTracker, ChecksNoProcessBelowAnMlAncestorAndBacksOffTheRest) {
  FakeProc proc;
  // A trainer with 20 workers, and 20 plain processes.
  proc.AddProcess(700, 1, "python3", 1000, "/");
  proc.Maps(700, {"/x/libtorch.so"});
  for (int i = 0; i < 20; ++i) {
    proc.AddProcess(701 + i, 700, "pt_data_worker", 1000, "/");
    proc.AddProcess(801 + i, 1, "perf", 1000, "/");
  }
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(jobs.job_root(701 + i), 700);
  // 700 and the 20 plain ones, and the fake's own user processes (plain: 1, 100, 300; ML:
  // 200, 400, 500); never a worker of 700 (nor 201, 202 of 200), nor a kernel thread.
  constexpr std::uint64_t kPlain = 20 + 3;
  EXPECT_EQ(jobs.checks(), kPlain + 1 + 3);
  const std::uint64_t first = jobs.checks();
  // Over 31 more refreshes a plain process is checked at refreshes 2, 4, 8, 16 and 32: 5
  // times, instead of 31. The ML ones, not again.
  for (int r = 0; r < 31; ++r) jobs.refresh();
  EXPECT_EQ(jobs.checks() - first, 5 * kPlain);
  EXPECT_EQ(jobs.job_root(720), 700);
}

TEST(MlJobTracker, ReusedPidIsReExamined) {
  FakeProc proc;
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  ASSERT_EQ(jobs.job_root(400), 400);
  // 400 exits and the pid comes back as a plain program with a new start time.
  proc.Remove(400);
  proc.AddProcess(400, 1, "ls", 0, "/", /*start_time=*/5000);
  jobs.refresh();
  EXPECT_EQ(jobs.job_root(400), std::nullopt);
}

// What the monitor asks every refresh of every process in a job.
void AskLikeTheMonitor(MlJobTracker& jobs) {
  for (int root : jobs.job_roots()) {
    for (int pid : jobs.job_members(root)) {
      jobs.visible_gpus(pid);
      jobs.nccl_active(pid);
    }
  }
}

TEST(MlJobTracker, ReadsEnvironOncePerProcess) {
  FakeProc proc;
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  AskLikeTheMonitor(jobs);
  // Checked for ML: 1, 100, 300 (plain), 200, 400, 500; asked for GPUs: 201, 202 too.
  EXPECT_EQ(jobs.environ_reads(), 8u);
  // 40 more refreshes re-check the plain ones for ML a few times and ask about every job
  // member each time, but environ is never read again.
  for (int r = 0; r < 40; ++r) {
    jobs.refresh();
    AskLikeTheMonitor(jobs);
    ASSERT_EQ(jobs.visible_gpus(200), (std::vector<int>{1, 3}));
    ASSERT_EQ(jobs.visible_gpus(201), std::nullopt);  // no environ of its own
  }
  EXPECT_EQ(jobs.environ_reads(), 8u);
  EXPECT_GT(jobs.checks(), 6u);  // the plain ones were re-checked, from the kept environ
}

TEST(MlJobTracker, AReusedPidIsReadAgain) {
  FakeProc proc;
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  EXPECT_EQ(jobs.visible_gpus(200), (std::vector<int>{1, 3}));
  EXPECT_TRUE(jobs.nccl_active(200));
  const std::uint64_t environ_reads = jobs.environ_reads();
  const std::uint64_t nccl_checks = jobs.nccl_checks();

  // The trainer exits and its pid comes back as another trainer, on GPU 0, without NCCL.
  proc.Remove(200);
  proc.AddProcess(200, 100, "python3", 1000, "/", /*start_time=*/5000);
  proc.Environ(200, {"CUDA_VISIBLE_DEVICES=0"});
  jobs.refresh();
  EXPECT_EQ(jobs.visible_gpus(200), (std::vector<int>{0}));
  EXPECT_FALSE(jobs.nccl_active(200));
  EXPECT_EQ(jobs.environ_reads(), environ_reads + 1);
  EXPECT_EQ(jobs.nccl_checks(), nccl_checks + 1);
}

// A shell forks, the child sets CUDA_VISIBLE_DEVICES and execs the trainer: same pid, same
// start time. A refresh between the fork and the exec must not keep the shell's answers.
TEST(MlJobTracker, AnExecIsReadAgain) {
  FakeProc proc;
  proc.AddProcess(700, 100, "bash", 1000, "/user.slice", /*start_time=*/7000);
  proc.Environ(700, {"HOME=/home/u"});
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  EXPECT_EQ(jobs.job_root(700), std::nullopt);
  EXPECT_EQ(jobs.visible_gpus(700), std::nullopt);
  EXPECT_FALSE(jobs.nccl_active(700));

  proc.AddProcess(700, 100, "python3", 1000, "/user.slice", /*start_time=*/7000);
  proc.Environ(700, {"CUDA_VISIBLE_DEVICES=2"});
  proc.Maps(700, {"/x/libtorch_cuda.so", "/x/libnccl.so.2"});
  jobs.refresh();
  EXPECT_EQ(jobs.job_root(700), 700);
  EXPECT_EQ(jobs.visible_gpus(700), (std::vector<int>{2}));
  EXPECT_TRUE(jobs.nccl_active(700));
}

TEST(MlJobTracker, ATrueNcclVerdictIsNotCheckedAgain) {
  FakeProc proc;
  proc.AddProcess(600, 1, "python3", 1000, "/");
  proc.Maps(600, {"/x/libtorch_cuda.so", "/x/libnccl.so.2"});
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  EXPECT_TRUE(jobs.nccl_active(200));  // its "NCCL Progress" thread
  EXPECT_TRUE(jobs.nccl_active(600));  // libnccl mapped
  EXPECT_EQ(jobs.nccl_checks(), 2u);
  for (int r = 0; r < 40; ++r) {
    jobs.refresh();
    ASSERT_TRUE(jobs.nccl_active(200));
    ASSERT_TRUE(jobs.nccl_active(600));
  }
  EXPECT_EQ(jobs.nccl_checks(), 2u);
}

TEST(MlJobTracker, AFalseNcclVerdictIsCheckedAtGrowingGaps) {
  FakeProc proc;
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  // The worker 201 runs no NCCL; asked once per refresh, it is checked at refreshes 1, 2,
  // 4, 8, 16 and then every 16.
  std::vector<int> checked_at;
  for (int r = 1; r <= 64; ++r) {
    jobs.refresh();
    const std::uint64_t before = jobs.nccl_checks();
    ASSERT_FALSE(jobs.nccl_active(201));
    if (jobs.nccl_checks() != before) checked_at.push_back(r);
  }
  EXPECT_THAT(checked_at, ElementsAre(1, 2, 4, 8, 16, 32, 48, 64));

  // It calls init_process_group: found within 16 refreshes, and not checked after that.
  proc.Maps(201, {"/x/libtorch_cuda.so", "/x/libnccl.so.2"});
  int refreshes = 0;
  do {
    jobs.refresh();
    ++refreshes;
  } while (!jobs.nccl_active(201) && refreshes < 40);
  EXPECT_EQ(refreshes, 16);  // the last check was at 64, the next is due at 80
  const std::uint64_t checks = jobs.nccl_checks();
  for (int r = 0; r < 40; ++r) {
    jobs.refresh();
    ASSERT_TRUE(jobs.nccl_active(201));
  }
  EXPECT_EQ(jobs.nccl_checks(), checks);
}

TEST(MlJobTracker, ForgetsProcessesThatExited) {
  FakeProc proc;
  // A trainer with no children (whose view of their job would change when it exits).
  proc.AddProcess(600, 1, "python3", 1000, "/");
  proc.Environ(600, {"CUDA_VISIBLE_DEVICES=1"});
  proc.Thread(600, 610, "NCCL Progress");
  MlJobTracker jobs{MlProcessInspector(proc.reader())};
  jobs.refresh();
  ASSERT_EQ(jobs.visible_gpus(600), (std::vector<int>{1}));
  ASSERT_TRUE(jobs.nccl_active(600));
  const std::uint64_t environ_reads = jobs.environ_reads();
  const std::uint64_t nccl_checks = jobs.nccl_checks();

  proc.Remove(600);
  jobs.refresh();
  for (const MlJobTracker::Process& p : jobs.processes()) EXPECT_NE(p.pid, 600);
  EXPECT_FALSE(jobs.nccl_active(600));

  // Seen by its reads: a process with the same pid and, unlike a real one, the same start
  // time is read afresh, so nothing of the old one was kept.
  proc.AddProcess(600, 1, "python3", 1000, "/");
  proc.Environ(600, {"CUDA_VISIBLE_DEVICES=2"});
  jobs.refresh();
  EXPECT_EQ(jobs.visible_gpus(600), (std::vector<int>{2}));
  EXPECT_FALSE(jobs.nccl_active(600));
  EXPECT_EQ(jobs.environ_reads(), environ_reads + 1);
  EXPECT_EQ(jobs.nccl_checks(), nccl_checks + 1);
}

TEST(Matching, CommAndCgroup) {
  EXPECT_TRUE(comm_matches("python3", "python"));
  EXPECT_TRUE(comm_matches("python", "python"));
  EXPECT_FALSE(comm_matches("python", "python3"));
  EXPECT_FALSE(comm_matches("ipython", "python"));
  EXPECT_FALSE(comm_matches("python", ""));
  EXPECT_TRUE(cgroup_matches("/train", "/train"));
  EXPECT_TRUE(cgroup_matches("/train/job1", "/train"));
  EXPECT_TRUE(cgroup_matches("/train/job1", "/train/"));
  EXPECT_FALSE(cgroup_matches("/training", "/train"));
  EXPECT_FALSE(cgroup_matches("/", "/train"));
  EXPECT_TRUE(cgroup_matches("/anything", "/"));
}

Config::MultiTenant tenants() {
  Config::MultiTenant m;
  m.enabled = true;
  m.rules = {
      {PriorityClass::Training, "/train.slice", std::nullopt, std::nullopt, 4},
      {PriorityClass::Interactive, std::nullopt, "jupyter", std::nullopt, std::nullopt},
      {PriorityClass::Inference, std::nullopt, "my_cuda", 1000u, 1},
      {PriorityClass::Background, std::nullopt, std::nullopt, 0u, std::nullopt},
  };
  return m;
}

TEST(TenantClassifier, MatchesRulesFromProc) {
  FakeProc proc;
  const TenantClassifier tc(tenants(), proc.reader());

  Tenant t = tc.classify(200);  // by cgroup
  EXPECT_EQ(t.cls, PriorityClass::Training);
  EXPECT_EQ(t.priority, 5);
  EXPECT_EQ(t.gpus, 4);
  EXPECT_EQ(t.rule, 0);

  t = tc.classify(500);  // by comm
  EXPECT_EQ(t.cls, PriorityClass::Interactive);
  EXPECT_EQ(t.priority, 1);
  EXPECT_EQ(t.gpus, std::nullopt);

  t = tc.classify(400);  // comm prefix and uid together
  EXPECT_EQ(t.cls, PriorityClass::Inference);
  EXPECT_EQ(t.priority, 3);
  EXPECT_EQ(t.gpus, 1);

  t = tc.classify(300);  // by uid 0
  EXPECT_EQ(t.cls, PriorityClass::Background);
  EXPECT_EQ(t.priority, -5);
  EXPECT_EQ(t.rule, 3);

  t = tc.classify(100);  // no rule: the default class
  EXPECT_EQ(t.cls, PriorityClass::Normal);
  EXPECT_EQ(t.priority, 0);
  EXPECT_EQ(t.rule, -1);
}

TEST(TenantClassifier, AllFieldsOfARuleMustMatch) {
  Config::MultiTenant m = tenants();
  const TenantClassifier tc(m, ProcReader("/nonexistent"));
  // comm matches rule 2 but the uid does not; no other rule matches.
  EXPECT_EQ(tc.classify(ProcessIdentity{"my_cuda_app", "/x", 1001u}).rule, -1);
  // Unreadable fields never match a rule that tests them.
  EXPECT_EQ(tc.classify(ProcessIdentity{"my_cuda_app", std::nullopt, std::nullopt}).rule, -1);
  // First match wins: cgroup rule 0 before uid rule 3.
  EXPECT_EQ(tc.classify(ProcessIdentity{"x", "/train.slice/a", 0u}).rule, 0);
}

TEST(TenantClassifier, DefaultClassAndOffSwitch) {
  Config::MultiTenant m = tenants();
  m.default_priority_class = PriorityClass::Background;
  const TenantClassifier tc(m, ProcReader("/nonexistent"));
  const Tenant t = tc.classify(ProcessIdentity{"sshd", "/system.slice", 22u});
  EXPECT_EQ(t.cls, PriorityClass::Background);
  EXPECT_EQ(t.priority, -5);

  m.enabled = false;
  const TenantClassifier off(m, ProcReader("/nonexistent"));
  const Tenant o = off.classify(ProcessIdentity{"x", "/train.slice", 0u});
  EXPECT_EQ(o.cls, PriorityClass::Normal);
  EXPECT_EQ(o.priority, 0);
  EXPECT_EQ(o.rule, -1);
}

}  // namespace
}  // namespace zernel
