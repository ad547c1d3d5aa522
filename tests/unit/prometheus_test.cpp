#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "telemetry/metrics.h"
#include "telemetry/prometheus.h"

namespace zernel::telemetry {
namespace {

using namespace prom;

TEST(Prometheus, SerializesASmallRegistryExactly) {
  Registry r;
  auto& requests = BuildCounter().Name("requests_total").Help("Requests \\ served\nby path.").Register(r);
  requests.Add({{"path", "/a\"b\\c\nd"}}).Increment(3);
  requests.Add({{"path", "/"}}).Increment();
  BuildGauge().Name("temp_celsius").Help("A \"quoted\" help.").Register(r).Add({}).Set(-1.5);
  auto& lat = BuildHistogram().Name("lat_seconds").Help("L").Register(r);
  auto& h = lat.Add({{"k", "v"}}, Histogram::BucketBoundaries{0.25, 1, 2.5});
  for (double v : {0.125, 0.25, 0.5, 4.0}) h.Observe(v);
  BuildGauge().Name("never_used").Help("no children, no lines").Register(r);

  EXPECT_EQ(Serialize(r),
            "# HELP requests_total Requests \\\\ served\\nby path.\n"
            "# TYPE requests_total counter\n"
            "requests_total{path=\"/\"} 1\n"
            "requests_total{path=\"/a\\\"b\\\\c\\nd\"} 3\n"
            "# HELP temp_celsius A \"quoted\" help.\n"
            "# TYPE temp_celsius gauge\n"
            "temp_celsius -1.5\n"
            "# HELP lat_seconds L\n"
            "# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{k=\"v\",le=\"0.25\"} 2\n"
            "lat_seconds_bucket{k=\"v\",le=\"1\"} 3\n"
            "lat_seconds_bucket{k=\"v\",le=\"2.5\"} 3\n"
            "lat_seconds_bucket{k=\"v\",le=\"+Inf\"} 4\n"
            "lat_seconds_sum{k=\"v\"} 4.875\n"
            "lat_seconds_count{k=\"v\"} 4\n");
}

TEST(Prometheus, ConstantLabelsComeFirstInLabelOrder) {
  Registry r;
  auto& f = BuildGauge().Name("g").Help("h").Labels({{"zone", "a"}}).Register(r);
  f.Add({{"b", "1"}}).Set(2);
  EXPECT_EQ(Serialize(r), "# HELP g h\n# TYPE g gauge\ng{b=\"1\",zone=\"a\"} 2\n");
  EXPECT_THROW(f.Add({{"zone", "b"}}), std::invalid_argument);
}

TEST(Prometheus, FormatsValues) {
  EXPECT_EQ(FormatValue(1847293), "1847293");
  EXPECT_EQ(FormatValue(100000), "100000");
  EXPECT_EQ(FormatValue(72.3), "72.3");
  EXPECT_EQ(FormatValue(0.0001), "0.0001");
  EXPECT_EQ(FormatValue(0.0000025), "0.0000025");
  EXPECT_EQ(FormatValue(1e-9), "1e-09");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(-0.5), "-0.5");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
}

TEST(Prometheus, SameLabelsReturnTheSameChild) {
  Registry r;
  auto& f = BuildCounter().Name("c_total").Help("h").Register(r);
  Counter& a = f.Add({{"x", "1"}, {"y", "2"}});
  Counter& b = f.Add({{"y", "2"}, {"x", "1"}});
  Counter& c = f.Add({{"x", "2"}, {"y", "2"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  EXPECT_TRUE(f.Has({{"x", "1"}, {"y", "2"}}));
  f.Remove(&c);
  EXPECT_FALSE(f.Has({{"x", "2"}, {"y", "2"}}));
  // The same name and type is the same family; another type is an error.
  EXPECT_EQ(&BuildCounter().Name("c_total").Register(r), &f);
  EXPECT_THROW(BuildGauge().Name("c_total").Register(r), std::invalid_argument);
}

TEST(Prometheus, RejectsInvalidNames) {
  Registry r;
  EXPECT_THROW(BuildGauge().Name("1abc").Register(r), std::invalid_argument);
  EXPECT_THROW(BuildGauge().Name("a-b").Register(r), std::invalid_argument);
  auto& g = BuildGauge().Name("ok:name_1").Register(r);
  EXPECT_THROW(g.Add({{"bad-label", "x"}}), std::invalid_argument);
  EXPECT_THROW(g.Add({{"__reserved", "x"}}), std::invalid_argument);
  auto& h = BuildHistogram().Name("h").Register(r);
  EXPECT_THROW(h.Add({{"le", "1"}}, Histogram::BucketBoundaries{1}), std::invalid_argument);
  EXPECT_THROW(Histogram(Histogram::BucketBoundaries{1, 1}), std::invalid_argument);
}

TEST(Prometheus, CounterIgnoresNegativeIncrementsGaugeGoesBothWays) {
  Counter c;
  c.Increment(2.5);
  c.Increment(-1);
  c.Increment();
  EXPECT_EQ(c.Value(), 3.5);
  Gauge g;
  g.Set(10);
  g.Increment();
  g.Decrement(4);
  EXPECT_EQ(g.Value(), 7);
}

TEST(Prometheus, HistogramFromLatencySnapshotInSeconds) {
  LatencyHistogram ns;
  for (std::uint64_t v : {500ull, 800ull, 200'000ull, 2'000'000'000ull}) ns.record(v);
  Histogram h({1e-6, 1e-3});
  h.SetFromSnapshot(ns.snapshot());
  Histogram::Collected c = h.Collect();
  EXPECT_EQ(c.cumulative, (std::vector<std::uint64_t>{2, 3, 4}));
  EXPECT_DOUBLE_EQ(c.sum, 2.0002013);

  // Setting again from the same source replaces, it does not add.
  ns.record(100);
  h.SetFromSnapshot(ns.snapshot());
  c = h.Collect();
  EXPECT_EQ(c.cumulative, (std::vector<std::uint64_t>{3, 4, 5}));

  // A source that starts over (fewer values than last time): what was exported stays.
  LatencyHistogram restarted;
  restarted.record(300);
  h.SetFromSnapshot(restarted.snapshot());
  c = h.Collect();
  EXPECT_EQ(c.cumulative, (std::vector<std::uint64_t>{4, 5, 6}));
  EXPECT_DOUBLE_EQ(c.sum, 2.0002014 + 0.0000003);

  // ObserveSnapshot adds (e.g. interval deltas).
  Histogram added({1e-6, 1e-3});
  added.ObserveSnapshot(restarted.snapshot());
  added.ObserveSnapshot(restarted.snapshot());
  EXPECT_EQ(added.Collect().cumulative, (std::vector<std::uint64_t>{2, 2, 2}));
}

// --- SchedulerMetrics

std::unique_ptr<MetricsSnapshot> product_snapshot(LatencyHistogram& round_trip_all, LatencyHistogram& round_trip_gpu,
                                                  LatencyHistogram& batch) {
  auto s = std::make_unique<MetricsSnapshot>();
  s->tasks_total = 42;
  s->tasks_ml = 8;
  s->decisions_total = 1847293;
  s->phase_transitions_total = 4821;
  s->phase_tasks = {3, 4, 1, 0, 34};
  s->phase_time_pct = {10.5, 72.3, 12.2, 5.0, 0.0};
  s->dispatches = {.user = 1847000, .kernel = 9000, .congested = 1, .bypassed = 2, .rescued = 3,
                   .cancelled = 4, .bounced = 5, .exited = 6, .direct = 7};
  s->preempt_kicks_total = 777;
  s->grant_preemptions_total = 555;
  s->resumed_total = 554;
  s->aged_total = 553;
  s->sync_wakeups_total = 552;
  s->ring_used_bytes_tasks = 4096;
  s->ring_used_bytes_decisions = 0;
  s->tasks_waiting = 3;
  for (std::uint64_t v = 1; v <= 1000; ++v) {
    round_trip_all.record(v * 50);  // 50 ns .. 50 us
    if (v % 2 == 0) round_trip_gpu.record(v * 50);
  }
  for (std::uint64_t v = 1; v <= 10; ++v) batch.record(v * 3'000);
  s->latency_of(LatencyKind::RoundTrip).all = round_trip_all.snapshot();
  s->latency_of(LatencyKind::RoundTrip).by_phase[1] = round_trip_gpu.snapshot();
  s->latency_of(LatencyKind::DecisionBatch).all = batch.snapshot();
  return s;
}

std::string product_text() {
  SchedulerMetrics m("0.1.0", "fair");
  LatencyHistogram a, b, c;
  m.update(*product_snapshot(a, b, c));
  return m.serialize();
}

bool has_line(const std::string& text, const std::string& line) {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

TEST(SchedulerMetrics, ExportsTheProductLines) {
  const std::string text = product_text();
  for (const char* line : {
           "zernel_scheduler_tasks{type=\"total\"} 42",
           "zernel_scheduler_tasks{type=\"ml\"} 8",
           "zernel_scheduler_decisions_total 1847293",
           "zernel_scheduler_phase_transitions_total 4821",
           "zernel_scheduler_phase_tasks{phase=\"data_loading\"} 3",
           "zernel_scheduler_phase_tasks{phase=\"gpu_compute\"} 4",
           "zernel_scheduler_phase_tasks{phase=\"nccl_collective\"} 1",
           "zernel_scheduler_phase_tasks{phase=\"optimizer_step\"} 0",
           "zernel_scheduler_phase_tasks{phase=\"unknown\"} 34",
           "zernel_scheduler_phase_time_pct{phase=\"gpu_compute\"} 72.3",
           "zernel_scheduler_phase_time_pct{phase=\"data_loading\"} 10.5",
           "zernel_scheduler_dispatches_total{path=\"user\"} 1847000",
           "zernel_scheduler_dispatches_total{path=\"kernel\"} 9000",
           "zernel_scheduler_dispatches_total{path=\"congested\"} 1",
           "zernel_scheduler_dispatches_total{path=\"bypassed\"} 2",
           "zernel_scheduler_dispatches_total{path=\"rescued\"} 3",
           "zernel_scheduler_dispatches_total{path=\"cancelled\"} 4",
           "zernel_scheduler_dispatches_total{path=\"bounced\"} 5",
           "zernel_scheduler_dispatches_total{path=\"exited\"} 6",
           "zernel_scheduler_dispatches_total{path=\"direct\"} 7",
           "zernel_scheduler_preempt_kicks_total 777",
           "zernel_scheduler_grant_preemptions_total 555",
           "zernel_scheduler_resumed_total 554",
           "zernel_scheduler_aged_total 553",
           "zernel_scheduler_sync_wakeups_total 552",
           "zernel_scheduler_ring_used_bytes{ring=\"tasks\"} 4096",
           "zernel_scheduler_ring_used_bytes{ring=\"decisions\"} 0",
           "zernel_scheduler_tasks_waiting 3",
           "zernel_scheduler_page_faults_total{kind=\"minor\"} 0",
           "zernel_scheduler_page_faults_total{kind=\"major\"} 0",
           "zernel_scheduler_policy_info{policy=\"fair\"} 1",
           "zernel_scheduler_build_info{version=\"0.1.0\"} 1",
           "# TYPE zernel_scheduler_dispatch_latency_seconds histogram",
           // 50 ns .. 1 us: values 50..950 ns, all of whose buckets end at or below 1000 ns.
           "zernel_scheduler_dispatch_latency_seconds_bucket{kind=\"round_trip\",phase=\"all\",le=\"0.000001\"} 19",
           "zernel_scheduler_dispatch_latency_seconds_bucket{kind=\"round_trip\",phase=\"all\",le=\"+Inf\"} 1000",
           "zernel_scheduler_dispatch_latency_seconds_count{kind=\"round_trip\",phase=\"all\"} 1000",
           "zernel_scheduler_dispatch_latency_seconds_sum{kind=\"round_trip\",phase=\"all\"} 0.025025",
           "zernel_scheduler_dispatch_latency_seconds_count{kind=\"round_trip\",phase=\"gpu_compute\"} 500",
           "zernel_scheduler_dispatch_latency_seconds_count{kind=\"decision_batch\",phase=\"all\"} 10",
           "zernel_scheduler_dispatch_latency_seconds_count{kind=\"enqueue_to_running\",phase=\"all\"} 0",
       }) {
    EXPECT_TRUE(has_line(text, line)) << "missing: " << line << "\n--- output:\n" << text;
  }
  // Phases without a sample get no per-phase series.
  EXPECT_EQ(text.find("phase=\"data_loading\",le="), std::string::npos);
  EXPECT_EQ(text.find("kind=\"enqueue_to_running\",phase=\"gpu_compute\""), std::string::npos);

  // Exactly these families, with these types.
  std::set<std::string> types;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("# TYPE ")) types.insert(line.substr(7));
  }
  EXPECT_EQ(types, (std::set<std::string>{
                       "zernel_scheduler_tasks gauge",
                       "zernel_scheduler_decisions_total counter",
                       "zernel_scheduler_phase_transitions_total counter",
                       "zernel_scheduler_phase_tasks gauge",
                       "zernel_scheduler_phase_time_pct gauge",
                       "zernel_scheduler_dispatch_latency_seconds histogram",
                       "zernel_scheduler_dispatches_total counter",
                       "zernel_scheduler_preempt_kicks_total counter",
                       "zernel_scheduler_grant_preemptions_total counter",
                       "zernel_scheduler_resumed_total counter",
                       "zernel_scheduler_aged_total counter",
                       "zernel_scheduler_sync_wakeups_total counter",
                       "zernel_scheduler_ring_used_bytes gauge",
                       "zernel_scheduler_tasks_waiting gauge",
                       "zernel_scheduler_page_faults_total counter",
                       "zernel_scheduler_policy_info gauge",
                       "zernel_scheduler_build_info gauge",
                   }));
}

TEST(SchedulerMetrics, CountersNeverDecreaseWhenTheSourceStartsOver) {
  SchedulerMetrics m("0.1.0", "fair");
  auto s = std::make_unique<MetricsSnapshot>();
  s->decisions_total = 100;
  m.update(*s);
  s->decisions_total = 150;
  m.update(*s);
  EXPECT_TRUE(has_line(m.serialize(), "zernel_scheduler_decisions_total 150"));
  s->decisions_total = 20;  // re-attached: the shim counts from zero again
  m.update(*s);
  EXPECT_TRUE(has_line(m.serialize(), "zernel_scheduler_decisions_total 170"));
}

TEST(SchedulerMetrics, PolicySwitchReplacesTheInfoSeries) {
  SchedulerMetrics m("0.1.0", "fair");
  m.set_policy("ml");
  const std::string text = m.serialize();
  EXPECT_TRUE(has_line(text, "zernel_scheduler_policy_info{policy=\"ml\"} 1"));
  EXPECT_EQ(text.find("policy=\"fair\""), std::string::npos);
}

// --- The text through prometheus_client's parser (Debian's python3-prometheus-client).

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult run(const std::string& cmd) {
  RunResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof(buf), p)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

RunResult parse_check(const std::string& text, const std::string& tag) {
  const std::string path = ::testing::TempDir() + "zernel_prom_" + tag + "_" + std::to_string(::getpid()) + ".txt";
  std::ofstream(path) << text;
  RunResult r = run(std::string(ZERNEL_PYTHON3) + " " + ZERNEL_PROM_PARSE_CHECK + " " + path);
  std::remove(path.c_str());
  return r;
}

TEST(SchedulerMetrics, OutputParsesWithPrometheusClient) {
  const RunResult r = parse_check(product_text(), "product");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(SchedulerMetrics, TheParseCheckRejectsBrokenText) {
  // The checker itself must fail on a broken exposition, or the test above proves nothing.
  std::string text = product_text();
  const std::string needle = "zernel_scheduler_tasks{type=\"ml\"} 8";
  text.replace(text.find(needle), needle.size(), "zernel_scheduler_tasks{type=\"ml} 8");
  const RunResult r = parse_check(text, "broken");
  EXPECT_NE(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace zernel::telemetry
