#include "topology/topology.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fake_sysfs.h"

namespace zernel::topology {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<int> ToVector(std::span<const int> s) { return {s.begin(), s.end()}; }

TEST(ParseCpulistTest, AcceptsKernelFormats) {
  EXPECT_EQ(parse_cpulist("0"), std::vector<int>({0}));
  EXPECT_EQ(parse_cpulist("0-3,8,10-11"), std::vector<int>({0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_cpulist("3-3"), std::vector<int>({3}));
  EXPECT_EQ(parse_cpulist("0-1\n"), std::vector<int>({0, 1}));  // as read from sysfs
  EXPECT_EQ(parse_cpulist("5,1-2,2"), std::vector<int>({1, 2, 5}));
  EXPECT_EQ(parse_cpulist(std::to_string(kMaxCpuId)), std::vector<int>({kMaxCpuId}));
}

TEST(ParseCpulistTest, RejectsMalformed) {
  for (const char* bad : {"", "\n", "3-1", "a", "1,,2", ",1", "1,", "1-", "-1", "-", "1-2-3",
                          "1 2", "0x1", "+1", "1-a", "99999999999", "0-70000"}) {
    EXPECT_EQ(parse_cpulist(bad), std::nullopt) << "input: \"" << bad << "\"";
  }
}

class TopologyTest : public ::testing::Test {
 protected:
  void SetUp() override { fake_ = std::make_unique<zernel::testing::FakeSysfs>(); }
  void TearDown() override { fake_->Remove(); }

  Topology MustLoad() {
    std::string error;
    std::optional<Topology> t = Topology::Load(fake_->root(), &error);
    if (!t) {
      ADD_FAILURE() << "Load failed: " << error;
      throw std::runtime_error(error);
    }
    EXPECT_EQ(error, "");
    return std::move(*t);
  }

  std::string MustFail() {
    std::string error;
    std::optional<Topology> t = Topology::Load(fake_->root(), &error);
    EXPECT_FALSE(t.has_value());
    EXPECT_NE(error, "");
    return error;
  }

  // (a): one socket, two cores with two threads each numbered Intel-style (cpu N and
  // N+2 share a core), one L3, one NVIDIA GPU whose node the firmware did not report.
  void BuildOneNodeSmt() {
    fake_->SetOnline("0-3");
    fake_->AddCpu(0, 0, 0, "0,2", "0-3");
    fake_->AddCpu(1, 1, 0, "1,3", "0-3");
    fake_->AddCpu(2, 0, 0, "0,2", "0-3");
    fake_->AddCpu(3, 1, 0, "1,3", "0-3");
    fake_->AddNode(0, "0-3");
    fake_->AddPciDevice("0000:01:00.0", "0x030200", "0x10de", -1);
  }

  // (b): two sockets, one node and one L3 each. GPUs are created in reverse PCI order
  // so that indexing cannot rely on directory iteration order.
  void BuildTwoNode() {
    fake_->SetOnline("0-7");
    for (int cpu = 0; cpu < 8; ++cpu) {
      const int pair = cpu & ~1;
      const std::string siblings = std::to_string(pair) + "-" + std::to_string(pair + 1);
      fake_->AddCpu(cpu, (cpu % 4) / 2, cpu / 4, siblings, cpu < 4 ? "0-3" : "4-7");
    }
    fake_->AddNode(0, "0-3");
    fake_->AddNode(1, "4-7");
    fake_->AddPciDevice("0000:d8:00.0", "0x030200", "0x10de", 0);
    fake_->AddPciDevice("0000:3b:00.0", "0x030000", "0x10de", 1);
    fake_->AddPciDevice("0000:5e:00.0", "0x020000", "0x15b3", 1);  // Mellanox NIC
    fake_->AddPciDevice("0000:3b:00.1", "0x040300", "0x10de", 1);  // the GPU's HDMI audio
  }

  std::unique_ptr<zernel::testing::FakeSysfs> fake_;
};

TEST_F(TopologyTest, OneNodeSmtMachine) {
  BuildOneNodeSmt();
  Topology t = MustLoad();

  EXPECT_EQ(t.nr_cpus(), 4);
  EXPECT_EQ(t.max_cpu_id(), 3);
  ASSERT_EQ(t.nodes().size(), 1u);
  EXPECT_EQ(t.nodes()[0].id, 0);
  EXPECT_THAT(t.nodes()[0].cpus, ElementsAre(0, 1, 2, 3));
  for (int cpu = 0; cpu < 4; ++cpu) {
    EXPECT_EQ(t.node_of_cpu(cpu), 0);
    EXPECT_EQ(t.llc_of_cpu(cpu), 0);
    EXPECT_EQ(t.cpu(cpu)->package_id, 0);
  }
  EXPECT_EQ(t.nr_llcs(), 1);
  EXPECT_THAT(ToVector(t.smt_siblings(0)), ElementsAre(0, 2));
  EXPECT_THAT(ToVector(t.smt_siblings(2)), ElementsAre(0, 2));
  EXPECT_THAT(ToVector(t.smt_siblings(1)), ElementsAre(1, 3));
  EXPECT_EQ(t.cpu(3)->core_id, 1);

  ASSERT_EQ(t.gpus().size(), 1u);
  EXPECT_EQ(t.gpus()[0].pci_address, "0000:01:00.0");
  EXPECT_EQ(t.gpus()[0].vendor, "nvidia");
  EXPECT_EQ(t.gpus()[0].index, 0);
  EXPECT_EQ(t.gpu_node(0), -1);
  EXPECT_THAT(ToVector(t.cpus_near_gpu(0)), ElementsAre(0, 1, 2, 3));
}

TEST_F(TopologyTest, TwoNodeMachine) {
  BuildTwoNode();
  Topology t = MustLoad();

  EXPECT_EQ(t.nr_cpus(), 8);
  ASSERT_EQ(t.nodes().size(), 2u);
  EXPECT_EQ(t.nodes()[0].id, 0);
  EXPECT_EQ(t.nodes()[1].id, 1);
  EXPECT_THAT(ToVector(t.cpus_of_node(0)), ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(ToVector(t.cpus_of_node(1)), ElementsAre(4, 5, 6, 7));
  EXPECT_TRUE(t.cpus_of_node(2).empty());
  for (int cpu = 0; cpu < 8; ++cpu) {
    EXPECT_EQ(t.node_of_cpu(cpu), cpu / 4) << "cpu " << cpu;
    EXPECT_EQ(t.llc_of_cpu(cpu), cpu / 4) << "cpu " << cpu;
    EXPECT_EQ(t.cpu(cpu)->package_id, cpu / 4) << "cpu " << cpu;
  }
  EXPECT_EQ(t.nr_llcs(), 2);
  EXPECT_THAT(ToVector(t.smt_siblings(4)), ElementsAre(4, 5));
  EXPECT_THAT(ToVector(t.smt_siblings(7)), ElementsAre(6, 7));

  // The NIC and the NVIDIA audio function are not GPUs.
  ASSERT_EQ(t.gpus().size(), 2u);
  EXPECT_EQ(t.gpus()[0].pci_address, "0000:3b:00.0");
  EXPECT_EQ(t.gpus()[0].index, 0);
  EXPECT_EQ(t.gpus()[1].pci_address, "0000:d8:00.0");
  EXPECT_EQ(t.gpus()[1].index, 1);
  EXPECT_EQ(t.gpu_node(0), 1);
  EXPECT_EQ(t.gpu_node(1), 0);
  EXPECT_THAT(ToVector(t.cpus_near_gpu(0)), ElementsAre(4, 5, 6, 7));
  EXPECT_THAT(ToVector(t.cpus_near_gpu(1)), ElementsAre(0, 1, 2, 3));
}

TEST_F(TopologyTest, UnknownIdsAreHarmless) {
  BuildTwoNode();
  Topology t = MustLoad();
  for (int bad : {-1, 8, 100000}) {
    EXPECT_EQ(t.cpu(bad), nullptr);
    EXPECT_EQ(t.node_of_cpu(bad), -1);
    EXPECT_EQ(t.llc_of_cpu(bad), -1);
    EXPECT_TRUE(t.smt_siblings(bad).empty());
  }
  EXPECT_EQ(t.gpu_node(2), -1);
  EXPECT_EQ(t.gpu_node(-1), -1);
  EXPECT_THAT(ToVector(t.cpus_near_gpu(2)), ElementsAreArray(ToVector(t.all_cpu_ids())));
}

TEST_F(TopologyTest, NoNodeDirectoryMeansOneNode) {
  BuildOneNodeSmt();
  fake_->Delete("devices/system/node");
  Topology t = MustLoad();
  ASSERT_EQ(t.nodes().size(), 1u);
  EXPECT_EQ(t.nodes()[0].id, 0);
  EXPECT_THAT(t.nodes()[0].cpus, ElementsAre(0, 1, 2, 3));
  EXPECT_EQ(t.node_of_cpu(3), 0);
}

// Offline CPUs still appear in sibling, cache and node lists; none of them may leak
// into the topology, and ids stay sparse rather than being renumbered.
TEST_F(TopologyTest, OfflineCpusAreExcluded) {
  BuildTwoNode();
  fake_->SetOnline("0-1,4-5,7");
  Topology t = MustLoad();
  EXPECT_EQ(t.nr_cpus(), 5);
  EXPECT_EQ(t.max_cpu_id(), 7);
  EXPECT_THAT(ToVector(t.all_cpu_ids()), ElementsAre(0, 1, 4, 5, 7));
  EXPECT_THAT(ToVector(t.cpus_of_node(0)), ElementsAre(0, 1));
  EXPECT_THAT(ToVector(t.cpus_of_node(1)), ElementsAre(4, 5, 7));
  EXPECT_THAT(ToVector(t.smt_siblings(7)), ElementsAre(7));
  EXPECT_EQ(t.cpu(2), nullptr);
  EXPECT_EQ(t.node_of_cpu(6), -1);
}

// LLC ids must be dense and ordered by lowest CPU even when a package has several L3s
// (AMD CCXs) and the first online CPU is not CPU 0's neighbour.
TEST_F(TopologyTest, LlcIdsAreDenseByLowestCpu) {
  fake_->SetOnline("0-5");
  for (int cpu = 0; cpu < 6; ++cpu) {
    const char* llc = cpu < 2 ? "0-1" : cpu < 4 ? "2-3" : "4-5";
    fake_->AddCpu(cpu, cpu, 0, std::to_string(cpu), llc);
  }
  Topology t = MustLoad();
  EXPECT_EQ(t.nr_llcs(), 3);
  EXPECT_EQ(t.llc_of_cpu(0), 0);
  EXPECT_EQ(t.llc_of_cpu(3), 1);
  EXPECT_EQ(t.llc_of_cpu(5), 2);
  EXPECT_THAT(ToVector(t.smt_siblings(4)), ElementsAre(4));
}

TEST_F(TopologyTest, MissingCacheInfoFallsBackToPackage) {
  BuildTwoNode();
  for (int cpu = 0; cpu < 8; ++cpu) fake_->Delete("devices/system/cpu/cpu" + std::to_string(cpu) + "/cache");
  Topology t = MustLoad();
  EXPECT_EQ(t.nr_llcs(), 2);
  for (int cpu = 0; cpu < 8; ++cpu) EXPECT_EQ(t.llc_of_cpu(cpu), cpu / 4) << "cpu " << cpu;
}

TEST_F(TopologyTest, MemoryOnlyNodeIsSkipped) {
  BuildTwoNode();
  fake_->AddNode(2, "");
  fake_->AddPciDevice("0000:e0:00.0", "0x030200", "0x10de", 2);
  Topology t = MustLoad();
  ASSERT_EQ(t.nodes().size(), 2u);
  ASSERT_EQ(t.gpus().size(), 3u);
  EXPECT_EQ(t.gpu_node(2), 2);
  // No CPU is local to that GPU, so any CPU will do.
  EXPECT_EQ(t.cpus_near_gpu(2).size(), 8u);
}

TEST_F(TopologyTest, DetectsAmdGpusAndMissingNumaNode) {
  BuildOneNodeSmt();
  fake_->AddPciDevice("0000:c1:00.0", "0x038000", "0x1002", 0);        // Instinct
  fake_->AddPciDevice("0000:c2:00.0", "0x030000", "0x1002", std::nullopt);  // Radeon, no numa_node
  fake_->AddPciDevice("0000:c1:00.1", "0x040300", "0x1002", 0);        // HDMI audio
  fake_->AddPciDevice("0000:c3:00.0", "0x038000", "0x10de", 0);        // not an NVIDIA GPU class
  Topology t = MustLoad();
  ASSERT_EQ(t.gpus().size(), 3u);
  EXPECT_EQ(t.gpus()[1].pci_address, "0000:c1:00.0");
  EXPECT_EQ(t.gpus()[1].vendor, "amd");
  EXPECT_EQ(t.gpu_node(1), 0);
  EXPECT_EQ(t.gpus()[2].vendor, "amd");
  EXPECT_EQ(t.gpu_node(2), -1);
}

TEST_F(TopologyTest, GpuIndexFollowsNumericPciOrder) {
  BuildOneNodeSmt();
  fake_->Delete("bus");
  // Hyper-V guests get arbitrary 4-digit domains and Intel VMD 5-digit ones, where
  // string order would put "10000:" before "c7c9:".
  fake_->AddPciDevice("10000:01:00.0", "0x030200", "0x10de", 0);
  fake_->AddPciDevice("c7c9:00:00.0", "0x030200", "0x10de", 0);
  fake_->AddPciDevice("0000:af:00.0", "0x030200", "0x10de", 0);
  fake_->AddPciDevice("0000:1a:00.0", "0x030200", "0x10de", 0);
  Topology t = MustLoad();
  ASSERT_EQ(t.gpus().size(), 4u);
  EXPECT_EQ(t.gpus()[0].pci_address, "0000:1a:00.0");
  EXPECT_EQ(t.gpus()[1].pci_address, "0000:af:00.0");
  EXPECT_EQ(t.gpus()[2].pci_address, "c7c9:00:00.0");
  EXPECT_EQ(t.gpus()[3].pci_address, "10000:01:00.0");
  EXPECT_EQ(t.gpus()[3].index, 3);
}

TEST_F(TopologyTest, NoPciBusMeansNoGpus) {
  BuildOneNodeSmt();
  fake_->Delete("bus");
  Topology t = MustLoad();
  EXPECT_TRUE(t.gpus().empty());
  EXPECT_THAT(ToVector(t.cpus_near_gpu(0)), ElementsAre(0, 1, 2, 3));
}

TEST_F(TopologyTest, MissingOnlineFileNamesThePath) {
  BuildOneNodeSmt();
  fake_->Delete("devices/system/cpu/online");
  const std::string error = MustFail();
  EXPECT_THAT(error, HasSubstr((fake_->root() / "devices/system/cpu/online").string()));
  EXPECT_THAT(error, HasSubstr("No such file or directory"));
}

TEST_F(TopologyTest, MalformedOnlineFileNamesThePathAndContent) {
  BuildOneNodeSmt();
  fake_->SetOnline("3-1");
  const std::string error = MustFail();
  EXPECT_THAT(error, HasSubstr((fake_->root() / "devices/system/cpu/online").string()));
  EXPECT_THAT(error, HasSubstr("malformed cpulist \"3-1\""));
}

TEST_F(TopologyTest, MissingPerCpuFileNamesThePath) {
  BuildOneNodeSmt();
  fake_->Delete("devices/system/cpu/cpu2/topology/core_id");
  const std::string error = MustFail();
  EXPECT_THAT(error, HasSubstr((fake_->root() / "devices/system/cpu/cpu2/topology/core_id").string()));
}

TEST_F(TopologyTest, MalformedCacheLevelNamesThePath) {
  BuildOneNodeSmt();
  fake_->Write("devices/system/cpu/cpu1/cache/index3/level", "three");
  const std::string error = MustFail();
  EXPECT_THAT(error, HasSubstr("cpu1/cache/index3/level: malformed integer \"three\""));
}

TEST_F(TopologyTest, CpuInNoNodeIsAnError) {
  BuildTwoNode();
  fake_->AddNode(1, "4-6");
  const std::string error = MustFail();
  EXPECT_THAT(error, HasSubstr("online cpu 7 is in no node's cpulist"));
}

TEST_F(TopologyTest, CpuInTwoNodesIsAnError) {
  BuildTwoNode();
  fake_->AddNode(1, "3-7");
  const std::string error = MustFail();
  EXPECT_THAT(error, HasSubstr("node1/cpulist: cpu 3 is also in node 0"));
}

TEST_F(TopologyTest, NullErrorPointerIsAccepted) {
  EXPECT_FALSE(Topology::Load(fake_->root()).has_value());  // empty tree
}

// The real host: whatever its shape, the loaded topology must agree with libc on the
// CPU count and be internally consistent.
TEST(RealSysfsTest, LoadsThisHost) {
  std::string error;
  std::optional<Topology> t = Topology::Load("/sys", &error);
  ASSERT_TRUE(t.has_value()) << error;
  EXPECT_EQ(t->nr_cpus(), static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_GE(t->nodes().size(), 1u);
  EXPECT_GE(t->nr_llcs(), 1);
  for (const Cpu& c : t->cpus()) {
    EXPECT_FALSE(t->cpus_of_node(c.node).empty()) << "cpu " << c.id;
    EXPECT_GE(c.llc_id, 0);
    EXPECT_LT(c.llc_id, t->nr_llcs());
    EXPECT_THAT(c.smt_siblings, ::testing::Contains(c.id));
  }
}

}  // namespace
}  // namespace zernel::topology
