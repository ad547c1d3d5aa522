// Tests of the GPU sources. Built twice (tests/unit/ml.cmake): as the test, and with
// ZERNEL_BUILD_FAKE_NVML as a stand-in libnvidia-ml.so that the test dlopen()s by path,
// so the NVML code path runs on machines without an NVIDIA GPU. One file keeps the fake's
// behaviour next to the expectations that depend on it.
#ifdef ZERNEL_BUILD_FAKE_NVML

#include <cstdint>
#include <cstdlib>
#include <cstring>

// The fake: FAKE_NVML_DEVICES GPUs (default 2). GPU i is (30 + 30 i)% busy. GPU 0 runs
// 100 processes (pids 1000..1099), more than the first buffer the caller offers, to
// exercise the INSUFFICIENT_SIZE retry; GPU 1 runs pid 4242; GPU 2 and later fail to
// report utilization. FAKE_NVML_INIT_FAILS makes nvmlInit fail as without a driver.
namespace {
struct ProcessInfo {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct Utilization {
  unsigned int gpu;
  unsigned int memory;
};
unsigned int devices() {
  const char* n = std::getenv("FAKE_NVML_DEVICES");
  return n != nullptr ? static_cast<unsigned int>(std::atoi(n)) : 2;
}
// A device handle is its index + 1, so no handle is null.
unsigned int index_of(void* dev) {
  return static_cast<unsigned int>(reinterpret_cast<std::uintptr_t>(dev)) - 1;
}
}  // namespace

extern "C" {
int nvmlInit_v2() { return std::getenv("FAKE_NVML_INIT_FAILS") != nullptr ? 9 : 0; }
int nvmlShutdown() { return 0; }
const char* nvmlErrorString(int rc) { return rc == 9 ? "Driver Not Loaded" : "Unknown Error"; }
int nvmlDeviceGetCount_v2(unsigned int* n) {
  *n = devices();
  return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** dev) {
  if (i >= devices()) return 2;  // NVML_ERROR_INVALID_ARGUMENT
  *dev = reinterpret_cast<void*>(static_cast<std::uintptr_t>(i) + 1);
  return 0;
}
int nvmlDeviceGetUtilizationRates(void* dev, Utilization* u) {
  const unsigned int i = index_of(dev);
  if (i >= 2) return 3;  // NVML_ERROR_NOT_SUPPORTED
  u->gpu = 30 + 30 * i;
  u->memory = 0;
  return 0;
}
int nvmlDeviceGetComputeRunningProcesses_v3(void* dev, unsigned int* count, ProcessInfo* infos) {
  const unsigned int i = index_of(dev);
  const unsigned int have = i == 0 ? 100 : i == 1 ? 1 : 0;
  if (*count < have) {
    *count = have;
    return 7;  // NVML_ERROR_INSUFFICIENT_SIZE
  }
  for (unsigned int k = 0; k < have; ++k) {
    std::memset(&infos[k], 0xff, sizeof(infos[k]));
    infos[k].pid = i == 0 ? 1000 + k : 4242;
  }
  *count = have;
  return 0;
}
}

#else  // the test

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

#include "scheduler/gpu_source.h"
#include "tests/unit/fake_sysfs.h"

namespace zernel {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(FileGpuSource, ParsesTheFormat) {
  FileGpuSource src("/nonexistent");
  src.parse(
      "# written by the workload\n"
      "gpu 0 util 93.5 pids 4242,4243\n"
      "\n"
      "gpu 1 util 0\n"
      "  gpu\t2   util 100   pids 7  \n");
  EXPECT_EQ(src.count(), 3);
  EXPECT_EQ(src.malformed_lines(), 0u);
  EXPECT_EQ(src.partial_lines(), 0u);
  EXPECT_EQ(src.utilization_pct(0), 93.5);
  EXPECT_EQ(src.utilization_pct(1), 0.0);
  EXPECT_EQ(src.utilization_pct(2), 100.0);
  EXPECT_THAT(src.pids_on_gpu(0), ElementsAre(4242, 4243));
  EXPECT_TRUE(src.pids_on_gpu(1).empty());
  EXPECT_THAT(src.pids_on_gpu(2), ElementsAre(7));
  EXPECT_EQ(src.utilization_pct(3), std::nullopt);
  EXPECT_EQ(src.utilization_pct(-1), std::nullopt);
  EXPECT_TRUE(src.pids_on_gpu(3).empty());
}

TEST(FileGpuSource, NodeIsOptionalInAnyOrder) {
  FileGpuSource src("/nonexistent");
  src.parse(
      "gpu 0 util 10 node 1\n"
      "gpu 1 util 20 pids 5 node 0\n"
      "gpu 2 util 30 node 1 pids 6,7\n"
      "gpu 3 util 40\n");
  EXPECT_EQ(src.malformed_lines(), 0u);
  EXPECT_EQ(src.numa_node(0), 1);
  EXPECT_EQ(src.numa_node(1), 0);
  EXPECT_EQ(src.numa_node(2), 1);
  EXPECT_EQ(src.numa_node(3), std::nullopt);  // unknown: the topology decides
  EXPECT_EQ(src.numa_node(4), std::nullopt);
  EXPECT_THAT(src.pids_on_gpu(1), ElementsAre(5));
  EXPECT_THAT(src.pids_on_gpu(2), ElementsAre(6, 7));
}

TEST(FileGpuSource, GapsAreUnknown) {
  FileGpuSource src("/nonexistent");
  src.parse("gpu 2 util 50\n");
  EXPECT_EQ(src.count(), 3);
  EXPECT_EQ(src.utilization_pct(0), std::nullopt);
  EXPECT_EQ(src.utilization_pct(2), 50.0);
}

TEST(FileGpuSource, MalformedLinesAreSkippedAndCounted) {
  FileGpuSource src("/nonexistent");
  src.parse(
      "gpu 0 util 40\n"
      "gpu one util 40\n"        // index not a number
      "gpu 1 util 101\n"         // utilization out of range
      "gpu 1 util -1\n"          // utilization out of range
      "gpu 1 util nan\n"         // not finite
      "gpu 1 util 5x\n"          // trailing garbage
      "gpu 1024 util 5\n"        // index out of range
      "gpu 1 util 5 pids\n"      // pids without a list
      "gpu 1 util 5 pids 1,,2\n" // empty pid
      "gpu 1 util 5 pids 0\n"    // pid 0
      "gpu 1 util 5 pid 7\n"     // wrong keyword
      "gpu 1 use 5\n"            // wrong keyword
      "gpu 0 util 90\n"          // repeats gpu 0: the first line stays
      "hello\n"
      "gpu 1 util 5 node -1\n"   // node out of range
      "gpu 1 util 5 node 1 node 1\n"  // node twice
      "gpu 1 util 5 node\n"      // node without a value
      "gpu 3 util 12.5\n");
  EXPECT_EQ(src.malformed_lines(), 16u);
  EXPECT_EQ(src.count(), 4);
  EXPECT_EQ(src.utilization_pct(0), 40.0);
  EXPECT_EQ(src.utilization_pct(1), std::nullopt);
  EXPECT_EQ(src.utilization_pct(3), 12.5);
}

TEST(FileGpuSource, UnterminatedLastLineIsPartial) {
  FileGpuSource src("/nonexistent");
  src.parse("gpu 0 util 40\ngpu 1 util 9");  // the writer is mid-way through "99\n"
  EXPECT_EQ(src.count(), 1);
  EXPECT_EQ(src.partial_lines(), 1u);
  EXPECT_EQ(src.malformed_lines(), 0u);
  src.parse("gpu 0 util 40\r\ngpu 1 util 99\r\n");  // CRLF is fine
  EXPECT_EQ(src.count(), 2);
  EXPECT_EQ(src.partial_lines(), 0u);
}

TEST(FileGpuSource, MissingFileIsNoGpus) {
  testing::FakeSysfs dir;
  FileGpuSource src(dir.root() / "gpu_sim");
  EXPECT_EQ(src.count(), 0);  // nothing before the first poll
  EXPECT_FALSE(src.poll());
  EXPECT_EQ(src.count(), 0);

  dir.Write("gpu_sim", "gpu 0 util 88 pids 12");
  EXPECT_TRUE(src.poll());
  EXPECT_EQ(src.count(), 1);
  EXPECT_EQ(src.utilization_pct(0), 88.0);

  // Written with the recommended temporary-and-rename.
  dir.Write("gpu_sim.tmp", "gpu 0 util 20\ngpu 1 util 70");
  std::filesystem::rename(dir.root() / "gpu_sim.tmp", dir.root() / "gpu_sim");
  EXPECT_TRUE(src.poll());
  EXPECT_EQ(src.count(), 2);
  EXPECT_EQ(src.utilization_pct(0), 20.0);

  dir.Delete("gpu_sim");  // the workload went away
  EXPECT_FALSE(src.poll());
  EXPECT_EQ(src.count(), 0);
  EXPECT_EQ(src.name(), "file");
}

TEST(NvmlGpuSource, AbsentLibraryFailsCleanly) {
  std::string error;
  EXPECT_EQ(NvmlGpuSource::open(&error, "libnvidia-ml-does-not-exist.so.1"), nullptr);
  EXPECT_THAT(error, StartsWith("NVML not available: "));
}

TEST(NvmlGpuSource, LibraryWithoutNvmlFailsCleanly) {
  std::string error;
  EXPECT_EQ(NvmlGpuSource::open(&error, "libc.so.6"), nullptr);
  EXPECT_THAT(error, HasSubstr("lacks a required NVML function"));
}

TEST(NvmlGpuSource, ReadsTheFakeDriver) {
  unsetenv("FAKE_NVML_DEVICES");
  unsetenv("FAKE_NVML_INIT_FAILS");
  std::string error;
  auto nvml = NvmlGpuSource::open(&error, ZERNEL_FAKE_NVML_PATH);
  ASSERT_NE(nvml, nullptr) << error;
  EXPECT_EQ(nvml->name(), "nvml");
  EXPECT_EQ(nvml->count(), 0);  // nothing before the first poll
  ASSERT_TRUE(nvml->poll());
  EXPECT_EQ(nvml->count(), 2);
  EXPECT_EQ(nvml->utilization_pct(0), 30.0);
  EXPECT_EQ(nvml->utilization_pct(1), 60.0);
  EXPECT_EQ(nvml->utilization_pct(2), std::nullopt);
  const std::vector<int> pids = nvml->pids_on_gpu(0);  // needed the retry with a bigger buffer
  ASSERT_EQ(pids.size(), 100u);
  EXPECT_EQ(pids.front(), 1000);
  EXPECT_EQ(pids.back(), 1099);
  EXPECT_THAT(nvml->pids_on_gpu(1), ElementsAre(4242));

  setenv("FAKE_NVML_DEVICES", "3", 1);
  ASSERT_TRUE(nvml->poll());
  EXPECT_EQ(nvml->count(), 3);
  EXPECT_EQ(nvml->utilization_pct(2), std::nullopt);  // the driver would not say
  unsetenv("FAKE_NVML_DEVICES");
}

TEST(NvmlGpuSource, InitFailureFailsCleanly) {
  setenv("FAKE_NVML_INIT_FAILS", "1", 1);
  std::string error;
  EXPECT_EQ(NvmlGpuSource::open(&error, ZERNEL_FAKE_NVML_PATH), nullptr);
  EXPECT_EQ(error, "nvmlInit failed: Driver Not Loaded");
  unsetenv("FAKE_NVML_INIT_FAILS");
}

TEST(MakeGpuSource, FallsBackToTheFileWithoutNvml) {
  testing::FakeSysfs dir;
  dir.Write("gpu_sim", "gpu 0 util 77");
  std::string why;
  auto src = make_gpu_source(dir.root() / "gpu_sim", "libnvidia-ml-does-not-exist.so.1", &why);
  ASSERT_NE(src, nullptr);
  EXPECT_EQ(src->name(), "file");
  EXPECT_THAT(why, HasSubstr("NVML not available"));
  ASSERT_TRUE(src->poll());
  EXPECT_EQ(src->utilization_pct(0), 77.0);
}

TEST(MakeGpuSource, PrefersNvmlWithGpus) {
  unsetenv("FAKE_NVML_DEVICES");
  std::string why;
  auto src = make_gpu_source("/nonexistent", ZERNEL_FAKE_NVML_PATH, &why);
  EXPECT_EQ(src->name(), "nvml");
  EXPECT_EQ(why, "nvml: 2 GPU(s)");

  setenv("FAKE_NVML_DEVICES", "0", 1);  // driver loaded, no GPU: the file is more useful
  src = make_gpu_source("/nonexistent", ZERNEL_FAKE_NVML_PATH, &why);
  EXPECT_EQ(src->name(), "file");
  EXPECT_THAT(why, HasSubstr("NVML sees no GPUs"));
  unsetenv("FAKE_NVML_DEVICES");
}

}  // namespace
}  // namespace zernel

#endif
