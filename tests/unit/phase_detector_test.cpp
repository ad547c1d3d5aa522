#include "scheduler/phase_detector.h"

#include <gtest/gtest.h>

#include <vector>

namespace zernel {
namespace {

Config::PhaseDetection defaults() { return Config::PhaseDetection{}; }

Config::PhaseDetection with_nccl() {
  Config::PhaseDetection c;
  c.nccl_detection_enabled = true;
  return c;
}

// Signals that match no rule: the starting point of every case.
PhaseSignals quiet() { return PhaseSignals{}; }

PhaseSignals data_loading() {
  PhaseSignals s;
  s.io_wait_fraction = 0.5;
  s.gpu_util_pct = 2;
  s.cpu_burst_in_window = true;
  return s;
}

PhaseSignals gpu_compute() {
  PhaseSignals s;
  s.gpu_util_pct = 95;
  return s;
}

PhaseSignals nccl() {
  PhaseSignals s;
  s.nccl_active = true;
  s.futex_waits = 4;
  return s;
}

PhaseSignals optimizer() {
  PhaseSignals s;
  s.cpu_burst_in_window = true;
  s.last_burst_ns = 1'000'000;
  s.gpu_sync_since_last_burst = true;
  return s;
}

TEST(PhaseNames, AreSnakeCase) {
  EXPECT_EQ(phase_name(Phase::DataLoading), "data_loading");
  EXPECT_EQ(phase_name(Phase::GpuCompute), "gpu_compute");
  EXPECT_EQ(phase_name(Phase::NcclCollective), "nccl_collective");
  EXPECT_EQ(phase_name(Phase::OptimizerStep), "optimizer_step");
  EXPECT_EQ(phase_name(Phase::Unknown), "unknown");
  EXPECT_EQ(phase_index(Phase::Unknown) + 1, kPhaseCount);
}

TEST(PhaseDetector, EachRuleAlone) {
  const PhaseDetector d(with_nccl());
  EXPECT_EQ(d.classify(quiet()), Phase::Unknown);
  EXPECT_EQ(d.classify(data_loading()), Phase::DataLoading);
  EXPECT_EQ(d.classify(gpu_compute()), Phase::GpuCompute);
  EXPECT_EQ(d.classify(nccl()), Phase::NcclCollective);
  EXPECT_EQ(d.classify(optimizer()), Phase::OptimizerStep);
}

TEST(PhaseDetector, DataLoadingThresholds) {
  const PhaseDetector d(defaults());
  PhaseSignals s = data_loading();
  s.io_wait_fraction = 0.3;  // not above the threshold
  EXPECT_EQ(d.classify(s), Phase::Unknown);
  s.io_wait_fraction = 0.3001;
  EXPECT_EQ(d.classify(s), Phase::DataLoading);
  s.gpu_util_pct = 10;  // not below the idle threshold
  EXPECT_EQ(d.classify(s), Phase::Unknown);
  s.gpu_util_pct = 9.9;
  EXPECT_EQ(d.classify(s), Phase::DataLoading);
}

TEST(PhaseDetector, GpuComputeThresholds) {
  const PhaseDetector d(defaults());
  PhaseSignals s = gpu_compute();
  s.gpu_util_pct = 80;
  EXPECT_EQ(d.classify(s), Phase::Unknown);
  s.gpu_util_pct = 80.1;
  EXPECT_EQ(d.classify(s), Phase::GpuCompute);
  s.cpu_burst_in_window = true;  // a CPU burst in the window disqualifies it
  EXPECT_EQ(d.classify(s), Phase::Unknown);
}

TEST(PhaseDetector, NcclThresholds) {
  const PhaseDetector d(with_nccl());
  PhaseSignals s = nccl();
  s.futex_waits = 0;
  EXPECT_EQ(d.classify(s), Phase::Unknown);
  s.futex_waits = 1;
  EXPECT_EQ(d.classify(s), Phase::NcclCollective);
  s.nccl_active = false;
  EXPECT_EQ(d.classify(s), Phase::Unknown);
}

TEST(PhaseDetector, NcclDisabledNeverClassifiesNccl) {
  const PhaseDetector d(defaults());
  EXPECT_EQ(d.classify(nccl()), Phase::Unknown);
  PhaseSignals s = nccl();
  s.gpu_util_pct = 95;  // falls through to the next rule that matches
  EXPECT_EQ(d.classify(s), Phase::GpuCompute);
}

TEST(PhaseDetector, OptimizerThresholds) {
  const PhaseDetector d(defaults());
  PhaseSignals s = optimizer();
  s.last_burst_ns = 5'000'000;  // not below the maximum
  EXPECT_EQ(d.classify(s), Phase::Unknown);
  s.last_burst_ns = 4'999'999;
  EXPECT_EQ(d.classify(s), Phase::OptimizerStep);
  s.gpu_sync_since_last_burst = false;
  EXPECT_EQ(d.classify(s), Phase::Unknown);
  s = optimizer();
  s.last_burst_ns = 0;  // no burst seen yet is not a short burst
  EXPECT_EQ(d.classify(s), Phase::Unknown);
}

TEST(PhaseDetector, Precedence) {
  const PhaseDetector d(with_nccl());
  // NCCL beats everything, including a busy GPU (the collective's kernels).
  PhaseSignals s = optimizer();
  s.gpu_util_pct = 95;
  s.nccl_active = true;
  s.futex_waits = 2;
  s.feeds_gpu_thread = true;
  EXPECT_EQ(d.classify(s), Phase::NcclCollective);
  // Then the optimizer step, even when the GPU reads busy and the burst is from before
  // the window (no CPU burst in it: the GpuCompute rule matches too).
  s.futex_waits = 0;
  s.cpu_burst_in_window = false;
  EXPECT_EQ(d.classify(s), Phase::OptimizerStep);
  // Then data loading over GPU compute.
  s.gpu_sync_since_last_burst = false;
  EXPECT_EQ(d.classify(s), Phase::DataLoading);
  s.feeds_gpu_thread = false;
  EXPECT_EQ(d.classify(s), Phase::GpuCompute);
}

TEST(PhaseDetector, FeederIsDataLoadingWithoutIoWait) {
  const PhaseDetector d(defaults());
  PhaseSignals s;
  s.cpu_burst_in_window = true;  // CPU-bound decode/augment
  s.io_wait_fraction = 0;
  s.gpu_util_pct = 0;
  EXPECT_EQ(d.classify(s), Phase::Unknown);
  s.feeds_gpu_thread = true;
  EXPECT_EQ(d.classify(s), Phase::DataLoading);
  s.gpu_util_pct = 99;  // prefetching while the GPU computes
  EXPECT_EQ(d.classify(s), Phase::DataLoading);
}

TEST(PhaseDetector, HonoursConfiguredThresholds) {
  Config::PhaseDetection c;
  c.gpu_active_threshold = 50;
  c.io_wait_threshold = 0.1;
  const PhaseDetector d(c);
  PhaseSignals s;
  s.gpu_util_pct = 60;
  EXPECT_EQ(d.classify(s), Phase::GpuCompute);
  s = PhaseSignals{};
  s.io_wait_fraction = 0.2;
  EXPECT_EQ(d.classify(s), Phase::DataLoading);
}

// Feeds a sequence; returns the indices at which a transition committed.
std::vector<int> commits(PhaseTracker& t, const std::vector<Phase>& seq, int stability) {
  std::vector<int> at;
  for (int i = 0; i < static_cast<int>(seq.size()); ++i) {
    if (t.observe(seq[i], stability)) at.push_back(i);
  }
  return at;
}

constexpr Phase A = Phase::GpuCompute;
constexpr Phase B = Phase::DataLoading;

TEST(PhaseTracker, StartsUnknown) {
  PhaseTracker t;
  EXPECT_EQ(t.committed, Phase::Unknown);
  EXPECT_FALSE(t.observe(Phase::Unknown, 3));
  EXPECT_EQ(t.committed, Phase::Unknown);
}

TEST(PhaseTracker, TwoIdenticalDoNotCommitThreeDo) {
  PhaseTracker t;
  EXPECT_FALSE(t.observe(A, 3));
  EXPECT_FALSE(t.observe(A, 3));
  EXPECT_EQ(t.committed, Phase::Unknown);
  EXPECT_EQ(t.candidate, A);
  EXPECT_EQ(t.streak, 2);
  EXPECT_TRUE(t.observe(A, 3));
  EXPECT_EQ(t.committed, A);
  EXPECT_FALSE(t.observe(A, 3));  // staying is not a transition
}

TEST(PhaseTracker, FlappingNeverCommits) {
  PhaseTracker t;
  EXPECT_TRUE(commits(t, {A, B, A, B, A, B, A, B, A, B}, 3).empty());
  EXPECT_EQ(t.committed, Phase::Unknown);

  // Flapping between the committed phase and another never leaves it either.
  PhaseTracker u;
  commits(u, {A, A, A}, 3);
  EXPECT_TRUE(commits(u, {B, B, A, B, B, A, B, B, A}, 3).empty());
  EXPECT_EQ(u.committed, A);
}

TEST(PhaseTracker, InterruptedStreakRestarts) {
  PhaseTracker t;
  EXPECT_EQ(commits(t, {A, A, B, A, A, A}, 3), (std::vector<int>{5}));
  EXPECT_EQ(t.committed, A);
}

TEST(PhaseTracker, TransitionBetweenPhases) {
  PhaseTracker t;
  EXPECT_EQ(commits(t, {A, A, A, B, B, B, Phase::Unknown, Phase::Unknown, Phase::Unknown}, 3),
            (std::vector<int>{2, 5, 8}));
  EXPECT_EQ(t.committed, Phase::Unknown);
}

TEST(PhaseTracker, StabilityOneCommitsAtOnce) {
  PhaseTracker t;
  EXPECT_EQ(commits(t, {A, B, B, A}, 1), (std::vector<int>{0, 1, 3}));
}

}  // namespace
}  // namespace zernel
