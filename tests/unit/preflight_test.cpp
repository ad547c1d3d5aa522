#include "scheduler/preflight.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "telemetry/stats.h"
#include "tests/unit/fake_sysfs.h"

namespace zernel {
namespace {

class Preflight : public ::testing::Test {
 protected:
  void write(const std::string& rel, const std::string& text) { sysfs_.Write(rel, text); }
  testing::FakeSysfs sysfs_;
  const std::filesystem::path root_ = sysfs_.root();
};

TEST_F(Preflight, NotRootSaysSudo) {
  write("kernel/sched_ext/state", "disabled");
  const std::string e = preflight(root_, 1000);
  EXPECT_NE(e.find("must run as root"), std::string::npos);
  EXPECT_NE(e.find("sudo"), std::string::npos);
}

TEST_F(Preflight, NoSchedExtNamesTheDirectoryAndTheVm) {
  const std::string e = preflight(root_, 0);
  EXPECT_NE(e.find((root_ / "kernel/sched_ext").string()), std::string::npos);
  EXPECT_NE(e.find("tools/run.sh"), std::string::npos);
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST_F(Preflight, AnotherSchedulerLoadedIsNamed) {
  write("kernel/sched_ext/state", "enabled");
  write("kernel/sched_ext/root/ops", "scx_simple");
  const std::string e = preflight(root_, 0);
  EXPECT_NE(e.find("another sched_ext scheduler is loaded: scx_simple"), std::string::npos);
}

TEST_F(Preflight, WaitFreeReturnsOnceTheOtherSchedulerIsGone) {
  write("kernel/sched_ext/state", "enabled");
  std::thread other([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    write("kernel/sched_ext/state", "disabled");
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_until_free(root_, 5.0));
  other.join();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(100));
  EXPECT_EQ(preflight(root_, 0), "");
}

TEST_F(Preflight, WaitFreeGivesUpAfterItsTimeout) {
  write("kernel/sched_ext/state", "enabled");
  EXPECT_FALSE(wait_until_free(root_, 0.2));
  EXPECT_NE(preflight(root_, 0).find("--wait-free"), std::string::npos);
}

TEST_F(Preflight, DisabledKernelIsReady) {
  write("kernel/sched_ext/state", "disabled");
  EXPECT_EQ(preflight(root_, 0), "");
}

TEST(StatsLine, CountsInFlightAndKeepsStableKeys) {
  telemetry::StatsSnapshot s;
  s.elapsed_s = 2;
  s.shim.nr_queued = 100;
  s.shim.nr_user_dispatched = 90;
  s.shim.nr_cancelled = 4;
  s.shim.nr_exited = 1;
  s.shim.nr_congested = 2;
  s.shim.nr_bypassed = 3;
  s.shim.nr_kernel_dispatched = 7;
  s.shim.nr_rescued = 1;
  EXPECT_EQ(telemetry::in_flight(s.shim), 5u);
  const std::string line = telemetry::format_stats_line(s);
  EXPECT_NE(line.find("queued=100 user=90 kernel=7 fallback=6 (congested=2 bypassed=3 rescued=1) cancelled=4"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("in_flight=5"), std::string::npos);
}

}  // namespace
}  // namespace zernel
