#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <thread>

#include "tests/unit/alloc_counter.h"
#include "telemetry/trace.h"


namespace zernel::telemetry {
namespace {

TraceEvent ev(std::uint64_t ts, std::int32_t pid, std::int32_t tgid, std::int32_t cpu, TraceKind kind,
              std::uint8_t phase = 0) {
  return TraceEvent{.ts_ns = ts, .pid = pid, .tgid = tgid, .cpu = cpu, .kind = kind, .phase = phase};
}

std::string temp_path(const std::string& tag) {
  return ::testing::TempDir() + "zernel_trace_" + tag + "_" + std::to_string(::getpid()) + ".json";
}

// Runs Python on the written file: json.load must accept it, then `checks` (Python
// statements over `d`, the parsed document) must hold.
int python_check(const std::string& path, const std::string& checks) {
  const std::string script = "import json,sys\nd=json.load(open(sys.argv[1],encoding='utf-8'))\n" + checks;
  const std::string script_path = path + ".py";
  if (FILE* f = std::fopen(script_path.c_str(), "w")) {
    std::fputs(script.c_str(), f);
    std::fclose(f);
  }
  const int status = std::system((std::string(ZERNEL_PYTHON3) + " " + script_path + " " + path).c_str());
  std::remove(script_path.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(TraceRecorder, WritesAChromeTraceThatPythonParses) {
  TraceRecorder rec(64);
  ASSERT_TRUE(rec.name_thread(101, 100, "python3"));
  ASSERT_TRUE(rec.name_thread(102, 100, "pt_data\"wkr\\"));  // needs escaping
  rec.record(ev(1'000'000, 101, 100, 2, TraceKind::Enqueue, 1));
  rec.record(ev(1'010'000, 101, 100, -1, TraceKind::Decision, 1));
  rec.record(ev(1'020'500, 101, 100, 3, TraceKind::Running, 1));
  rec.record(ev(1'500'000, 102, 100, 1, TraceKind::Running, 0));
  rec.record(ev(2'020'501, 101, 100, 3, TraceKind::Stopping, 1));
  rec.record(ev(2'100'000, 103, 103, 0, TraceKind::Stopping, 4));  // began before the trace
  rec.record(ev(2'600'000, 104, 104, 0, TraceKind::Enqueue, 200));  // phase past the names
  // 102 never stops: closed at the last timestamp, marked unfinished.

  const std::string path = temp_path("basic");
  ASSERT_EQ(rec.write_chrome_json(path), "");
  const int rc = python_check(path, R"(
ev = d['traceEvents']
assert d['otherData']['dropped_events'] == 0, d['otherData']
names = {e['tid']: e['args']['name'] for e in ev if e['ph'] == 'M'}
assert names == {101: 'python3', 102: 'pt_data"wkr\\'}, names
assert all(e['name'] == 'thread_name' for e in ev if e['ph'] == 'M')
inst = [e for e in ev if e['ph'] == 'i']
assert [(e['name'], e['tid'], e['pid'], e['ts']) for e in inst] == [
    ('enqueue', 101, 100, 1000.0), ('decision', 101, 100, 1010.0), ('enqueue', 104, 104, 2600.0)], inst
assert inst[0]['args'] == {'cpu': 2, 'phase': 'gpu_compute'}, inst[0]
assert inst[1]['args']['cpu'] == -1
assert inst[2]['args']['phase'] == 'phase200'
runs = sorted((e['tid'], e['name'], e['ts'], e['dur'], e['args']) for e in ev if e['ph'] == 'X')
assert runs == [
    (101, 'gpu_compute', 1020.5, 1000.001, {'cpu': 3, 'phase': 'gpu_compute'}),
    (102, 'data_loading', 1500.0, 1100.0, {'cpu': 1, 'phase': 'data_loading', 'unfinished': True}),
], runs
assert all(e['pid'] == 100 for e in ev if e['ph'] == 'X')
)");
  EXPECT_EQ(rc, 0) << "see the Python assertion above; file: " << path;
  if (rc == 0) std::remove(path.c_str());
}

TEST(TraceRecorder, CountsDroppedEventsWhenFull) {
  TraceRecorder rec(4, 1);
  for (int i = 0; i < 10; ++i) {
    const bool stored = rec.record(ev(1'000 * (i + 1), 7, 7, 0, i % 2 == 0 ? TraceKind::Running : TraceKind::Stopping));
    EXPECT_EQ(stored, i < 4) << i;
  }
  EXPECT_EQ(rec.size(), 4u);
  EXPECT_EQ(rec.dropped(), 6u);
  EXPECT_TRUE(rec.name_thread(7, 7, "a"));
  EXPECT_FALSE(rec.name_thread(8, 8, "b"));
  EXPECT_EQ(rec.names_dropped(), 1u);

  const std::string path = temp_path("full");
  ASSERT_EQ(rec.write_chrome_json(path), "");
  const int rc = python_check(path, R"(
assert d['otherData'] == {'dropped_events': 6, 'dropped_thread_names': 1}, d['otherData']
assert len([e for e in d['traceEvents'] if e['ph'] == 'X']) == 2
)");
  EXPECT_EQ(rc, 0);
  std::remove(path.c_str());

  rec.clear();
  EXPECT_EQ(rec.size(), 0u);
  EXPECT_EQ(rec.dropped(), 0u);
  EXPECT_TRUE(rec.record(ev(1, 1, 1, 0, TraceKind::Enqueue)));
}

TEST(TraceRecorder, InvalidUtf8InCommStaysValidJson) {
  TraceRecorder rec(4);
  rec.name_thread(1, 1, std::string_view("caf\xc3\xa9\x01\xff\xe2\x82", 9));  // é, control, junk, cut char
  rec.record(ev(5, 1, 1, 0, TraceKind::Enqueue));
  const std::string path = temp_path("utf8");
  ASSERT_EQ(rec.write_chrome_json(path), "");
  const int rc = python_check(path, R"(
names = [e['args']['name'] for e in d['traceEvents'] if e['ph'] == 'M']
assert names == ['caf\u00e9\u0001\ufffd\ufffd\ufffd'], ascii(names)
)");
  EXPECT_EQ(rc, 0);
  std::remove(path.c_str());
}

TEST(TraceRecorder, RecordingNeverAllocates) {
  TraceRecorder rec(1'000, 16);
  const std::uint64_t before = ::zernel::testing::allocations_so_far();
  for (int i = 0; i < 5'000; ++i) rec.record(ev(static_cast<std::uint64_t>(i), i % 50, 1, i % 4, TraceKind::Running));
  for (int i = 0; i < 100; ++i) rec.name_thread(i, 1, "worker-with-a-long-name");
  EXPECT_EQ(::zernel::testing::allocations_so_far(), before);
  EXPECT_EQ(rec.dropped(), 4'000u);
  EXPECT_EQ(rec.names_dropped(), 84u);
}

TEST(TraceRecorder, AReaderSeesAConsistentPrefixWhileTheWriterRecords) {
  TraceRecorder rec(200'000);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (std::uint64_t i = 0; i < 200'000; ++i) {
      rec.record(ev(i * 10, 42, 42, 1, i % 2 == 0 ? TraceKind::Running : TraceKind::Stopping));
    }
    done.store(true);
  });
  std::size_t prev = 0;
  while (!done.load()) {
    const std::string json = rec.chrome_json();
    ASSERT_TRUE(json.starts_with("{\"traceEvents\":[") && json.ends_with("}}\n"));
    const std::size_t n = rec.size();
    ASSERT_GE(n, prev);
    prev = n;
  }
  writer.join();
  EXPECT_EQ(rec.size(), 200'000u);
}

TEST(TraceRecorder, WriteFailureIsOneLine) {
  TraceRecorder rec(1);
  const std::string err = rec.write_chrome_json("/nonexistent-dir/trace.json");
  EXPECT_TRUE(err.starts_with("cannot write trace /nonexistent-dir/trace.json: ")) << err;
}

}  // namespace
}  // namespace zernel::telemetry
