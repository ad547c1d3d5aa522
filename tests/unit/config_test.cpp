#include "scheduler/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/unit/fake_sysfs.h"

namespace zernel {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

Config load_ok(std::string_view text) {
  ConfigResult r = load_config_string(text, "test.toml");
  EXPECT_TRUE(r.config.has_value()) << r.error;
  EXPECT_TRUE(r.error.empty());
  return r.config.value_or(Config{});
}

// Returns the error, and checks nothing was loaded.
std::string load_error(std::string_view text) {
  ConfigResult r = load_config_string(text, "test.toml");
  EXPECT_FALSE(r.config.has_value());
  EXPECT_FALSE(r.error.empty());
  return r.error;
}

TEST(Config, DefaultsAreTheSpecsValues) {
  const Config c;
  EXPECT_EQ(c.general.phase_eval_interval_ms, 100u);
  EXPECT_EQ(c.general.gpu_poll_interval_ms, 500u);
  EXPECT_EQ(c.general.max_tracked_tasks, 65536u);
  EXPECT_TRUE(c.general.ml_process_names.empty());
  EXPECT_DOUBLE_EQ(c.phase_detection.io_wait_threshold, 0.3);
  EXPECT_EQ(c.phase_detection.optimizer_burst_max_ns, 5'000'000u);
  EXPECT_DOUBLE_EQ(c.phase_detection.gpu_idle_threshold, 10);
  EXPECT_DOUBLE_EQ(c.phase_detection.gpu_active_threshold, 80);
  EXPECT_EQ(c.phase_detection.phase_stability_count, 3u);
  EXPECT_FALSE(c.phase_detection.nccl_detection_enabled);
  EXPECT_TRUE(c.numa.enabled);
  EXPECT_TRUE(c.numa.gpu_affinity);
  EXPECT_TRUE(c.numa.memory_affinity);
  EXPECT_FALSE(c.multi_tenant.enabled);
  EXPECT_EQ(c.multi_tenant.default_priority_class, PriorityClass::Normal);
  EXPECT_TRUE(c.multi_tenant.rules.empty());
  EXPECT_EQ(c.telemetry.metrics_port, 9093);
  EXPECT_EQ(c.telemetry.push_interval_ms, 1000u);
  EXPECT_EQ(c.telemetry.metrics_address, "127.0.0.1");
}

TEST(Config, EmptyFileIsTheDefaults) { EXPECT_EQ(load_ok(""), Config{}); }

TEST(Config, DumpParsesBackToTheDefaults) {
  const std::string dump = default_config_toml();
  EXPECT_EQ(load_ok(dump), Config{});
}

TEST(Config, DumpHasExactlyTheSpecsSectionsAndKeys) {
  const std::string dump = default_config_toml();
  for (const char* line :
       {"\n[general]\n", "\nphase_eval_interval_ms = 100", "\ngpu_poll_interval_ms = 500",
        "\nmax_tracked_tasks = 65536", "\n[phase_detection]\n", "\nio_wait_threshold = 0.3",
        "\noptimizer_burst_max_ns = 5000000", "\ngpu_idle_threshold = 10",
        "\ngpu_active_threshold = 80", "\nphase_stability_count = 3",
        "\nnccl_detection_enabled = false", "\n[numa]\n", "\nenabled = true",
        "\ngpu_affinity = true", "\nmemory_affinity = true", "\n[multi_tenant]\n",
        "\nenabled = false", "\ndefault_priority_class = \"normal\"", "\n[telemetry]\n",
        "\nmetrics_port = 9093", "\npush_interval_ms = 1000"}) {
    EXPECT_THAT(dump, HasSubstr(line));
  }
  // Optional keys only as comments.
  EXPECT_THAT(dump, Not(HasSubstr("\nml_process_names")));
  EXPECT_THAT(dump, Not(HasSubstr("\nmetrics_address")));
  EXPECT_THAT(dump, Not(HasSubstr("\n[[multi_tenant.rules]]")));
  std::size_t sections = 0;
  for (std::size_t i = 0; (i = dump.find("\n[", i)) != std::string::npos; ++i) ++sections;
  EXPECT_EQ(sections, 5u);
}

TEST(Config, ReadsEveryKey) {
  const Config c = load_ok(R"(
[general]
phase_eval_interval_ms = 50
gpu_poll_interval_ms = 250
max_tracked_tasks = 4096
ml_process_names = ["python3", "torchrun"]

[phase_detection]
io_wait_threshold = 0.5
optimizer_burst_max_ns = 2000000
gpu_idle_threshold = 5.5
gpu_active_threshold = 90
phase_stability_count = 1
nccl_detection_enabled = true

[numa]
enabled = false
gpu_affinity = false
memory_affinity = false

[multi_tenant]
enabled = true
default_priority_class = "background"

[[multi_tenant.rules]]
class = "Training"
cgroup = "/kubepods/train"
gpus = 4

[[multi_tenant.rules]]
class = "interactive"
comm = "jupyter"
uid = 1000

[telemetry]
metrics_port = 9100
push_interval_ms = 5000
metrics_address = "::"
)");
  EXPECT_EQ(c.general.phase_eval_interval_ms, 50u);
  EXPECT_EQ(c.general.gpu_poll_interval_ms, 250u);
  EXPECT_EQ(c.general.max_tracked_tasks, 4096u);
  EXPECT_EQ(c.general.ml_process_names, (std::vector<std::string>{"python3", "torchrun"}));
  EXPECT_DOUBLE_EQ(c.phase_detection.io_wait_threshold, 0.5);
  EXPECT_EQ(c.phase_detection.optimizer_burst_max_ns, 2'000'000u);
  EXPECT_DOUBLE_EQ(c.phase_detection.gpu_idle_threshold, 5.5);
  EXPECT_DOUBLE_EQ(c.phase_detection.gpu_active_threshold, 90);
  EXPECT_EQ(c.phase_detection.phase_stability_count, 1u);
  EXPECT_TRUE(c.phase_detection.nccl_detection_enabled);
  EXPECT_FALSE(c.numa.enabled);
  EXPECT_FALSE(c.numa.gpu_affinity);
  EXPECT_FALSE(c.numa.memory_affinity);
  EXPECT_TRUE(c.multi_tenant.enabled);
  EXPECT_EQ(c.multi_tenant.default_priority_class, PriorityClass::Background);
  ASSERT_EQ(c.multi_tenant.rules.size(), 2u);
  EXPECT_EQ(c.multi_tenant.rules[0],
            (TenantRule{PriorityClass::Training, "/kubepods/train", std::nullopt, std::nullopt, 4}));
  EXPECT_EQ(c.multi_tenant.rules[1],
            (TenantRule{PriorityClass::Interactive, std::nullopt, "jupyter", 1000u, std::nullopt}));
  EXPECT_EQ(c.telemetry.metrics_port, 9100);
  EXPECT_EQ(c.telemetry.push_interval_ms, 5000u);
  EXPECT_EQ(c.telemetry.metrics_address, "::");

  // And a non-default config survives its own dump.
  EXPECT_EQ(load_ok(config_to_toml(c)), c);
}

TEST(Config, MissingKeysKeepDefaults) {
  const Config c = load_ok("[phase_detection]\nphase_stability_count = 5\n");
  Config want;
  want.phase_detection.phase_stability_count = 5;
  EXPECT_EQ(c, want);
}

TEST(Config, SyntaxErrorHasPosition) {
  const std::string e = load_error("[general]\nphase_eval_interval_ms = = 3\n");
  EXPECT_THAT(e, StartsWith("test.toml:2:"));
}

TEST(Config, WrongTypeAtTheValue) {
  EXPECT_EQ(load_error("[general]\nphase_eval_interval_ms = \"100\"\n"),
            "test.toml:2:26: [general].phase_eval_interval_ms: must be an integer, not a string");
  EXPECT_EQ(load_error("[numa]\nenabled = 1\n"),
            "test.toml:2:11: [numa].enabled: must be a boolean (true or false), not an integer");
  EXPECT_THAT(load_error("[general]\nmax_tracked_tasks = 1.5\n"),
              HasSubstr("must be an integer, not a float"));
  EXPECT_THAT(load_error("[phase_detection]\nio_wait_threshold = true\n"),
              HasSubstr("must be a number, not a boolean"));
  EXPECT_EQ(load_error("general = 5\n"),
            "test.toml:1:11: 'general' must be a section (a table), not an integer");
}

TEST(Config, OutOfRangeAtTheValue) {
  EXPECT_EQ(load_error("[general]\nphase_eval_interval_ms = 5\n"),
            "test.toml:2:26: [general].phase_eval_interval_ms: 5 is out of range (10..60000)");
  EXPECT_EQ(load_error("[telemetry]\nmetrics_port = 70000\n"),
            "test.toml:2:16: [telemetry].metrics_port: 70000 is out of range (1..65535)");
  EXPECT_THAT(load_error("[phase_detection]\nio_wait_threshold = 1.5\n"),
              HasSubstr("test.toml:2:21: [phase_detection].io_wait_threshold: 1.5 is out of range"));
  EXPECT_THAT(load_error("[phase_detection]\nio_wait_threshold = nan\n"),
              HasSubstr("is out of range"));
  EXPECT_THAT(load_error("[phase_detection]\nphase_stability_count = 0\n"),
              HasSubstr("out of range (1..100)"));
  EXPECT_THAT(load_error("[general]\nmax_tracked_tasks = -1\n"), HasSubstr("out of range"));
}

TEST(Config, BoundariesAreInclusive) {
  load_ok("[general]\nphase_eval_interval_ms = 10\n");
  load_ok("[general]\nphase_eval_interval_ms = 60000\n");
  load_ok("[phase_detection]\nio_wait_threshold = 0\n");
  load_ok("[phase_detection]\nio_wait_threshold = 1.0\n");
  load_ok("[telemetry]\nmetrics_port = 65535\n");
  load_error("[general]\nphase_eval_interval_ms = 60001\n");
}

TEST(Config, IdleThresholdMustBeBelowActive) {
  EXPECT_EQ(load_error("[phase_detection]\ngpu_idle_threshold = 50\ngpu_active_threshold = 50\n"),
            "test.toml:3:24: [phase_detection].gpu_active_threshold: gpu_idle_threshold (50) must "
            "be below gpu_active_threshold (50)");
  // Only idle set: the error points at it.
  EXPECT_THAT(load_error("[phase_detection]\ngpu_idle_threshold = 85\n"),
              StartsWith("test.toml:2:22: [phase_detection].gpu_idle_threshold:"));
}

TEST(Config, UnknownKeyAtTheKey) {
  EXPECT_THAT(load_error("[general]\nphase_eval_interval_ms = 100\n  phase_eval_intervl = 3\n"),
              StartsWith("test.toml:3:3: unknown key 'phase_eval_intervl' in [general] (known keys: "
                         "phase_eval_interval_ms,"));
}

TEST(Config, UnknownSectionAtItsName) {
  EXPECT_THAT(load_error("[general]\n\n[scheduler]\nx = 1\n"),
              StartsWith("test.toml:3:2: unknown section [scheduler]"));
  EXPECT_THAT(load_error("[general.extra]\n"), HasSubstr("unknown key 'extra' in [general]"));
  EXPECT_THAT(load_error("top = 1\n"), StartsWith("test.toml:1:1: unknown top-level key 'top'"));
}

TEST(Config, ReportsTheFirstErrorInTheFile) {
  // Tables iterate in key order (telemetry < zzz alphabetically), not file order.
  EXPECT_THAT(load_error("[zzz]\n[telemetry]\nmetrics_port = 0\n"),
              StartsWith("test.toml:1:2: unknown section [zzz]"));
  EXPECT_THAT(load_error("[telemetry]\nmetrics_port = 0\n[general]\nbogus = 1\n"),
              StartsWith("test.toml:2:16:"));
}

TEST(Config, DuplicateKeyIsASyntaxError) {
  EXPECT_THAT(load_error("[numa]\nenabled = true\nenabled = false\n"), StartsWith("test.toml:3:"));
}

TEST(Config, PriorityClasses) {
  EXPECT_EQ(priority_of(PriorityClass::Training), 5);
  EXPECT_EQ(priority_of(PriorityClass::Inference), 3);
  EXPECT_EQ(priority_of(PriorityClass::Interactive), 1);
  EXPECT_EQ(priority_of(PriorityClass::Background), -5);
  EXPECT_EQ(priority_of(PriorityClass::Normal), 0);
  EXPECT_EQ(parse_priority_class("TRAINING"), PriorityClass::Training);
  EXPECT_EQ(parse_priority_class("normal"), PriorityClass::Normal);
  EXPECT_EQ(parse_priority_class("urgent"), std::nullopt);
  for (auto c : {PriorityClass::Normal, PriorityClass::Training, PriorityClass::Inference,
                 PriorityClass::Interactive, PriorityClass::Background}) {
    EXPECT_EQ(parse_priority_class(priority_class_name(c)), c);
  }
  EXPECT_THAT(load_error("[multi_tenant]\ndefault_priority_class = \"urgent\"\n"),
              StartsWith("test.toml:2:26: [multi_tenant].default_priority_class: 'urgent' is not"));
}

TEST(Config, RuleErrors) {
  EXPECT_THAT(load_error("[[multi_tenant.rules]]\ncomm = \"python\"\n"),
              StartsWith("test.toml:1:1: [[multi_tenant.rules]] #1: missing required key 'class'"));
  EXPECT_THAT(load_error("[[multi_tenant.rules]]\nclass = \"Training\"\ngpus = 2\n"),
              HasSubstr("needs at least one of cgroup, comm, uid"));
  EXPECT_THAT(
      load_error("[[multi_tenant.rules]]\nclass = \"Training\"\ncomm = \"py\"\n\n"
                 "[[multi_tenant.rules]]\nclass = \"Urgent\"\ncomm = \"x\"\n"),
      StartsWith("test.toml:6:9: [[multi_tenant.rules]] #2.class: 'Urgent' is not a class"));
  EXPECT_THAT(load_error("[[multi_tenant.rules]]\nclass = \"Training\"\ncgroup = \"kubepods\"\n"),
              HasSubstr("must be an absolute cgroup path"));
  EXPECT_THAT(load_error("[[multi_tenant.rules]]\nclass = \"Training\"\ncomm = \"py*\"\n"),
              HasSubstr("glob"));
  EXPECT_THAT(
      load_error("[[multi_tenant.rules]]\nclass = \"Training\"\ncomm = \"a_name_of_16_chars\"\n"),
      HasSubstr("1..15 characters"));
  EXPECT_THAT(load_error("[[multi_tenant.rules]]\nclass = \"Training\"\nuid = 4294967295\n"),
              HasSubstr("[[multi_tenant.rules]] #1.uid: 4294967295 is out of range"));
  EXPECT_THAT(load_error("[[multi_tenant.rules]]\nclass = \"Training\"\nuid = 0\nhost = \"a\"\n"),
              StartsWith("test.toml:4:1: unknown key 'host' in [[multi_tenant.rules]] #1"));
  EXPECT_THAT(load_error("[multi_tenant]\nrules = 3\n"), HasSubstr("must be an array of tables"));
  EXPECT_THAT(load_error("[multi_tenant]\nrules = [1]\n"), HasSubstr("entries must be tables"));
}

TEST(Config, InlineRulesWork) {
  const Config c = load_ok(
      "[multi_tenant]\nrules = [{ class = \"Background\", uid = 0 }, { class = \"Inference\", "
      "comm = \"tritonserver\" }]\n");
  ASSERT_EQ(c.multi_tenant.rules.size(), 2u);
  EXPECT_EQ(c.multi_tenant.rules[0].cls, PriorityClass::Background);
  EXPECT_EQ(c.multi_tenant.rules[0].uid, 0u);
  EXPECT_EQ(c.multi_tenant.rules[1].comm, "tritonserver");
}

TEST(Config, MlProcessNames) {
  EXPECT_THAT(load_error("[general]\nml_process_names = \"python\"\n"),
              HasSubstr("must be an array of strings, not a string"));
  EXPECT_THAT(load_error("[general]\nml_process_names = [\"python\", 3]\n"),
              StartsWith("test.toml:2:31: [general].ml_process_names: entries must be strings"));
  EXPECT_THAT(load_error("[general]\nml_process_names = [\"\"]\n"), HasSubstr("1..15 characters"));
  EXPECT_EQ(load_ok("[general]\nml_process_names = []\n"), Config{});
}

TEST(Config, MetricsAddress) {
  EXPECT_EQ(load_ok("[telemetry]\nmetrics_address = \"0.0.0.0\"\n").telemetry.metrics_address,
            "0.0.0.0");
  EXPECT_THAT(load_error("[telemetry]\nmetrics_address = \"localhost\"\n"),
              StartsWith("test.toml:2:19: [telemetry].metrics_address: 'localhost' is not an IPv4"));
}

TEST(Config, QuotingSurvivesTheDump) {
  Config c;
  c.multi_tenant.rules.push_back(
      TenantRule{PriorityClass::Training, "/we\"ird\\path\t", std::nullopt, std::nullopt, 0});
  EXPECT_EQ(load_ok(config_to_toml(c)), c);
}

TEST(Config, LoadFile) {
  testing::FakeSysfs dir;
  dir.Write("scheduler.toml", "[numa]\nenabled = false");
  ConfigResult ok = load_config_file(dir.root() / "scheduler.toml");
  ASSERT_TRUE(ok.config) << ok.error;
  EXPECT_FALSE(ok.config->numa.enabled);

  dir.Write("bad.toml", "[numa]\nenabled = 3");
  const std::string path = (dir.root() / "bad.toml").string();
  ConfigResult bad = load_config_file(path);
  EXPECT_FALSE(bad.config);
  EXPECT_THAT(bad.error, StartsWith(path + ":2:11: "));

  ConfigResult missing = load_config_file(dir.root() / "nope.toml");
  EXPECT_FALSE(missing.config);
  EXPECT_THAT(missing.error, HasSubstr("nope.toml: cannot read: No such file or directory"));
}

}  // namespace
}  // namespace zernel
