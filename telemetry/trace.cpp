#include "telemetry/trace.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <unordered_map>

#include "telemetry/metrics.h"

namespace zernel::telemetry {

namespace {

// JSON string contents. comm is whatever bytes a process put there, so invalid UTF-8
// (including a multi-byte character cut at 15 bytes) becomes U+FFFD: strict parsers
// reject the whole file otherwise.
void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", c);
      out += esc;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      // Length of a well-formed UTF-8 sequence starting here, or 0.
      std::size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
      if (len != 0 && i + len <= s.size()) {
        for (std::size_t k = 1; k < len; ++k) {
          if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) len = 0;
        }
        // Overlong 3/4-byte forms, surrogates and values past U+10FFFF.
        const auto c1 = len != 0 ? static_cast<unsigned char>(s[i + 1]) : 0;
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0) || (c == 0xF0 && c1 < 0x90) ||
            (c == 0xF4 && c1 >= 0x90)) {
          len = 0;
        }
      } else {
        len = 0;
      }
      if (len == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.substr(i, len));
        i += len;
      }
    }
  }
  out += '"';
}

// Microseconds with three decimals, exact: 1234567 ns -> "1234.567".
void append_us(std::string& out, std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%llu.%03llu", static_cast<unsigned long long>(ns / 1000),
                static_cast<unsigned long long>(ns % 1000));
  out += buf;
}

void append_int(std::string& out, long long v) { out += std::to_string(v); }

}  // namespace

TraceRecorder::TraceRecorder(std::size_t capacity, std::size_t max_threads, std::vector<std::string> phase_names)
    : capacity_(capacity),
      max_threads_(max_threads),
      phase_names_(std::move(phase_names)),
      events_(std::make_unique<TraceEvent[]>(capacity)),
      names_(std::make_unique<ThreadName[]>(max_threads)) {
  if (phase_names_.empty()) phase_names_.assign(kPhaseNames.begin(), kPhaseNames.end());
}

bool TraceRecorder::record(const TraceEvent& ev) noexcept {
  const std::size_t n = size_.load(std::memory_order_relaxed);
  if (n >= capacity_) {
    dropped_.store(dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  events_[n] = ev;
  size_.store(n + 1, std::memory_order_release);
  return true;
}

bool TraceRecorder::name_thread(std::int32_t pid, std::int32_t tgid, std::string_view comm) noexcept {
  const std::size_t n = names_size_.load(std::memory_order_relaxed);
  if (n >= max_threads_) {
    names_dropped_.store(names_dropped_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return false;
  }
  ThreadName& t = names_[n];
  t.pid = pid;
  t.tgid = tgid;
  const std::size_t len = std::min(comm.size(), kCommLen - 1);
  std::memcpy(t.comm, comm.data(), len);
  std::memset(t.comm + len, 0, kCommLen - len);
  names_size_.store(n + 1, std::memory_order_release);
  return true;
}

void TraceRecorder::clear() noexcept {
  size_.store(0, std::memory_order_release);
  names_size_.store(0, std::memory_order_release);
  dropped_.store(0, std::memory_order_relaxed);
  names_dropped_.store(0, std::memory_order_relaxed);
}

std::string TraceRecorder::chrome_json() const {
  const std::size_t n = size_.load(std::memory_order_acquire);
  const std::size_t n_names = names_size_.load(std::memory_order_acquire);

  const auto phase_name = [&](std::uint8_t p) -> std::string {
    return p < phase_names_.size() ? phase_names_[p] : "phase" + std::to_string(p);
  };
  std::string out;
  out.reserve(64 + n * 120 + n_names * 96);
  out += "{\"traceEvents\":[";
  bool first = true;
  const auto begin_event = [&] {
    out += first ? "\n" : ",\n";
    first = false;
  };
  const auto append_common = [&](std::int32_t tgid, std::int32_t pid) {
    out += ",\"pid\":";
    append_int(out, tgid);
    out += ",\"tid\":";
    append_int(out, pid);
  };
  const auto append_args = [&](const TraceEvent& ev, bool unfinished) {
    out += ",\"args\":{\"cpu\":";
    append_int(out, ev.cpu);
    out += ",\"phase\":";
    append_json_string(out, phase_name(ev.phase));
    if (unfinished) out += ",\"unfinished\":true";
    out += "}}";
  };

  // Names first; a thread named twice gets its last name.
  std::unordered_map<std::int32_t, std::size_t> last_name;
  for (std::size_t i = 0; i < n_names; ++i) last_name[names_[i].pid] = i;
  for (std::size_t i = 0; i < n_names; ++i) {
    const ThreadName& t = names_[i];
    if (last_name[t.pid] != i) continue;
    begin_event();
    out += "{\"name\":\"thread_name\",\"ph\":\"M\"";
    append_common(t.tgid, t.pid);
    out += ",\"args\":{\"name\":";
    append_json_string(out, std::string_view(t.comm, ::strnlen(t.comm, kCommLen)));
    out += "}}";
  }

  const auto append_run = [&](const TraceEvent& start, std::uint64_t end_ns, bool unfinished) {
    begin_event();
    out += "{\"name\":";
    append_json_string(out, phase_name(start.phase));
    out += ",\"cat\":\"run\",\"ph\":\"X\",\"ts\":";
    append_us(out, start.ts_ns);
    out += ",\"dur\":";
    append_us(out, end_ns > start.ts_ns ? end_ns - start.ts_ns : 0);
    append_common(start.tgid, start.pid);
    append_args(start, unfinished);
  };

  // A run is the interval between a thread's `running` and its next `stopping`. A
  // `stopping` with no `running` before it (the trace began mid-run) is skipped; a run
  // still open at the end closes at the last timestamp, marked unfinished.
  std::unordered_map<std::int32_t, std::size_t> open_run;
  std::uint64_t last_ts = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const TraceEvent& ev = events_[i];
    last_ts = std::max(last_ts, ev.ts_ns);
    switch (ev.kind) {
      case TraceKind::Enqueue:
      case TraceKind::Decision:
        begin_event();
        out += ev.kind == TraceKind::Enqueue ? "{\"name\":\"enqueue\"" : "{\"name\":\"decision\"";
        out += ",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"ts\":";
        append_us(out, ev.ts_ns);
        append_common(ev.tgid, ev.pid);
        append_args(ev, false);
        break;
      case TraceKind::Running: {
        const auto [it, inserted] = open_run.try_emplace(ev.pid, i);
        if (!inserted) {  // the stopping was lost: the earlier run ends where this one starts
          append_run(events_[it->second], ev.ts_ns, true);
          it->second = i;
        }
        break;
      }
      case TraceKind::Stopping:
        if (const auto it = open_run.find(ev.pid); it != open_run.end()) {
          append_run(events_[it->second], ev.ts_ns, false);
          open_run.erase(it);
        }
        break;
    }
  }
  // In event order, so that the output does not depend on the hash map's.
  std::vector<std::size_t> still_open;
  still_open.reserve(open_run.size());
  for (const auto& [pid, idx] : open_run) still_open.push_back(idx);
  std::sort(still_open.begin(), still_open.end());
  for (const std::size_t idx : still_open) append_run(events_[idx], last_ts, true);

  out += "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"dropped_events\":";
  out += std::to_string(dropped());
  out += ",\"dropped_thread_names\":";
  out += std::to_string(names_dropped());
  out += "}}\n";
  return out;
}

std::string TraceRecorder::write_chrome_json(const std::filesystem::path& path) const {
  const std::string json = chrome_json();
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return "cannot write trace " + path.string() + ": " + std::strerror(errno);
  f.write(json.data(), static_cast<std::streamsize>(json.size()));
  f.close();
  if (!f) return "cannot write trace " + path.string() + ": " + std::strerror(errno);
  return "";
}

}  // namespace zernel::telemetry
