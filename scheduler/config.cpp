#include "scheduler/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <toml++/toml.h>

namespace zernel {
namespace {

constexpr std::array<std::string_view, 5> kSections = {"general", "phase_detection", "numa",
                                                       "multi_tenant", "telemetry"};

// The kernel keeps 15 characters of a process name (TASK_COMM_LEN 16 with the NUL).
constexpr std::size_t kMaxCommLen = 15;

std::string_view type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string join(std::initializer_list<std::string_view> names) {
  std::string out;
  for (std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}

// Shortest text that parses back to exactly `v` ("0.3", "10").
std::string number_text(double v) {
  std::array<char, 64> buf{};
  auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return ec == std::errc{} ? std::string(buf.data(), end) : std::string("0");
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      std::array<char, 8> esc{};
      std::snprintf(esc.data(), esc.size(), "\\u%04x", c);
      out += esc.data();
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

bool has_glob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// Collects errors and keeps the one that comes first in the file: toml++ tables iterate
// in key order, not file order, and the first problem in the file is the one a person
// reading it top-down expects to be told about.
class Loader {
 public:
  explicit Loader(std::string_view name) : name_(name) {}

  void fail(const toml::source_region& where, std::string_view what) {
    const std::pair<std::uint32_t, std::uint32_t> pos{where.begin.line, where.begin.column};
    if (!error_.empty() && pos >= pos_) return;
    pos_ = pos;
    error_ = pos.first == 0 ? std::string(name_) + ": " + std::string(what)
                            : std::string(name_) + ":" + std::to_string(pos.first) + ":" +
                                  std::to_string(pos.second) + ": " + std::string(what);
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  std::string_view name_;
  std::string error_;
  std::pair<std::uint32_t, std::uint32_t> pos_{};
};

// One table (a section or a rule) and the keys it allows. Every accessor leaves the
// target untouched when the key is absent, which is how defaults survive.
class Section {
 public:
  Section(Loader& ld, const toml::table& t, std::string name)
      : ld_(ld), t_(t), name_(std::move(name)) {}

  const toml::table& table() const { return t_; }

  // Reports every key of the table that is not in `known`.
  void reject_unknown(std::initializer_list<std::string_view> known) {
    for (auto&& [key, node] : t_) {
      if (std::find(known.begin(), known.end(), key.str()) != known.end()) continue;
      ld_.fail(key.source(), "unknown key '" + std::string(key.str()) + "' in " + name_ +
                                 " (known keys: " + join(known) + ")");
    }
  }

  template <typename T>
  void integer(std::string_view key, std::int64_t lo, std::int64_t hi, T& out) {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return;
    if (!n->is_integer()) return wrong_type(key, *n, "an integer");
    const std::int64_t v = n->as_integer()->get();
    if (v < lo || v > hi) return out_of_range(key, *n, std::to_string(v), lo, hi);
    out = static_cast<T>(v);
  }

  // Integers are accepted too: "gpu_idle_threshold = 10" is what people write.
  void real(std::string_view key, double lo, double hi, double& out) {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return;
    double v = 0;
    if (n->is_integer()) {
      v = static_cast<double>(n->as_integer()->get());
    } else if (n->is_floating_point()) {
      v = n->as_floating_point()->get();
    } else {
      return wrong_type(key, *n, "a number");
    }
    if (!(v >= lo && v <= hi)) return out_of_range(key, *n, number_text(v), lo, hi);
    out = v;
  }

  void boolean(std::string_view key, bool& out) {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return;
    if (!n->is_boolean()) return wrong_type(key, *n, "a boolean (true or false)");
    out = n->as_boolean()->get();
  }

  // Returns the node so callers can validate the text and report at its position.
  const toml::node* string(std::string_view key, std::string& out) {
    const toml::node* n = t_.get(key);
    if (n == nullptr) return nullptr;
    if (!n->is_string()) {
      wrong_type(key, *n, "a string");
      return nullptr;
    }
    out = n->as_string()->get();
    return n;
  }

  void fail_at(const toml::node& n, std::string_view key, std::string_view what) {
    ld_.fail(n.source(), name_ + "." + std::string(key) + ": " + std::string(what));
  }

 private:
  void wrong_type(std::string_view key, const toml::node& n, std::string_view want) {
    fail_at(n, key, "must be " + std::string(want) + ", not " + std::string(type_name(n.type())));
  }
  template <typename N>
  void out_of_range(std::string_view key, const toml::node& n, const std::string& got, N lo, N hi) {
    fail_at(n, key, got + " is out of range (" + number_text(static_cast<double>(lo)) + ".." +
                        number_text(static_cast<double>(hi)) + ")");
  }

  Loader& ld_;
  const toml::table& t_;
  std::string name_;
};

// A process name for a rule: what the kernel could report as comm.
bool check_comm(Section& s, const toml::node& n, std::string_view key, const std::string& v) {
  if (v.empty() || v.size() > kMaxCommLen) {
    s.fail_at(n, key, "'" + v + "' must be 1.." + std::to_string(kMaxCommLen) +
                          " characters (the kernel truncates process names to 15)");
    return false;
  }
  if (has_glob(v)) {
    s.fail_at(n, key, "'" + v + "' has a glob character; names match exactly or by prefix");
    return false;
  }
  return true;
}

void load_general(Loader& ld, Section s, Config::General& g) {
  s.reject_unknown(
      {"phase_eval_interval_ms", "gpu_poll_interval_ms", "max_tracked_tasks", "ml_process_names"});
  s.integer("phase_eval_interval_ms", 10, 60000, g.phase_eval_interval_ms);
  s.integer("gpu_poll_interval_ms", 10, 60000, g.gpu_poll_interval_ms);
  s.integer("max_tracked_tasks", 16, 1 << 22, g.max_tracked_tasks);

  const toml::node* names = s.table().get("ml_process_names");
  if (names == nullptr) return;
  const toml::array* arr = names->as_array();
  if (arr == nullptr) {
    return s.fail_at(*names, "ml_process_names",
                     "must be an array of strings, not " + std::string(type_name(names->type())));
  }
  std::vector<std::string> out;
  for (const toml::node& e : *arr) {
    if (!e.is_string()) {
      ld.fail(e.source(), "[general].ml_process_names: entries must be strings, not " +
                              std::string(type_name(e.type())));
      continue;
    }
    const std::string& v = e.as_string()->get();
    if (check_comm(s, e, "ml_process_names", v)) out.push_back(v);
  }
  g.ml_process_names = std::move(out);
}

void load_phase_detection(Section s, Config::PhaseDetection& p) {
  s.reject_unknown({"io_wait_threshold", "optimizer_burst_max_ns", "gpu_idle_threshold",
                    "gpu_active_threshold", "phase_stability_count", "nccl_detection_enabled"});
  s.real("io_wait_threshold", 0.0, 1.0, p.io_wait_threshold);
  s.integer("optimizer_burst_max_ns", 1000, 1'000'000'000, p.optimizer_burst_max_ns);
  s.real("gpu_idle_threshold", 0.0, 100.0, p.gpu_idle_threshold);
  s.real("gpu_active_threshold", 0.0, 100.0, p.gpu_active_threshold);
  s.integer("phase_stability_count", 1, 100, p.phase_stability_count);
  s.boolean("nccl_detection_enabled", p.nccl_detection_enabled);

  if (p.gpu_idle_threshold >= p.gpu_active_threshold) {
    // Point at whichever of the two the file set (the active one when both are).
    const toml::node* at = s.table().get("gpu_active_threshold");
    std::string_view key = "gpu_active_threshold";
    if (at == nullptr) {
      at = s.table().get("gpu_idle_threshold");
      key = "gpu_idle_threshold";
    }
    if (at != nullptr) {
      s.fail_at(*at, key,
                "gpu_idle_threshold (" + number_text(p.gpu_idle_threshold) +
                    ") must be below gpu_active_threshold (" +
                    number_text(p.gpu_active_threshold) + ")");
    }
  }
}

void load_numa(Section s, Config::Numa& n) {
  s.reject_unknown({"enabled", "gpu_affinity", "memory_affinity"});
  s.boolean("enabled", n.enabled);
  s.boolean("gpu_affinity", n.gpu_affinity);
  s.boolean("memory_affinity", n.memory_affinity);
}

std::optional<TenantRule> load_rule(Loader& ld, const toml::table& t, std::size_t index) {
  Section s(ld, t, "[[multi_tenant.rules]] #" + std::to_string(index + 1));
  s.reject_unknown({"class", "cgroup", "comm", "uid", "gpus"});
  TenantRule r;
  bool ok = true;

  std::string cls;
  if (const toml::node* n = s.string("class", cls)) {
    if (auto c = parse_priority_class(cls)) {
      r.cls = *c;
    } else {
      s.fail_at(*n, "class",
                "'" + cls + "' is not a class (Training, Inference, Interactive, Background, Normal)");
      ok = false;
    }
  } else if (!t.contains("class")) {
    ld.fail(t.source(), "[[multi_tenant.rules]] #" + std::to_string(index + 1) +
                            ": missing required key 'class'");
    ok = false;
  }

  std::string text;
  if (const toml::node* n = s.string("cgroup", text)) {
    if (text.empty() || text.front() != '/') {
      s.fail_at(*n, "cgroup", "'" + text + "' must be an absolute cgroup path (starting with '/')");
      ok = false;
    } else {
      r.cgroup = text;
    }
  }
  if (const toml::node* n = s.string("comm", text)) {
    if (check_comm(s, *n, "comm", text)) {
      r.comm = text;
    } else {
      ok = false;
    }
  }
  // (uid_t)-1 means "no uid" to the kernel, so it cannot name one.
  std::int64_t uid = -1;
  s.integer("uid", 0, 4294967294LL, uid);
  if (uid >= 0) r.uid = static_cast<std::uint32_t>(uid);
  std::int64_t gpus = -1;
  s.integer("gpus", 0, 4096, gpus);
  if (gpus >= 0) r.gpus = static_cast<int>(gpus);

  if (!t.contains("cgroup") && !t.contains("comm") && !t.contains("uid")) {
    ld.fail(t.source(), "[[multi_tenant.rules]] #" + std::to_string(index + 1) +
                            ": needs at least one of cgroup, comm, uid (a rule without one "
                            "would match every process)");
    ok = false;
  }
  if (!ok) return std::nullopt;
  return r;
}

void load_multi_tenant(Loader& ld, Section s, Config::MultiTenant& m) {
  s.reject_unknown({"enabled", "default_priority_class", "rules"});
  s.boolean("enabled", m.enabled);
  std::string cls;
  if (const toml::node* n = s.string("default_priority_class", cls)) {
    if (auto c = parse_priority_class(cls)) {
      m.default_priority_class = *c;
    } else {
      s.fail_at(*n, "default_priority_class",
                "'" + cls + "' is not a class (normal, training, inference, interactive, "
                            "background)");
    }
  }

  const toml::node* rules = s.table().get("rules");
  if (rules == nullptr) return;
  const toml::array* arr = rules->as_array();
  if (arr == nullptr) {
    return s.fail_at(*rules, "rules",
                     "must be an array of tables ([[multi_tenant.rules]]), not " +
                         std::string(type_name(rules->type())));
  }
  std::vector<TenantRule> out;
  for (std::size_t i = 0; i < arr->size(); ++i) {
    const toml::node& e = *arr->get(i);
    const toml::table* t = e.as_table();
    if (t == nullptr) {
      ld.fail(e.source(), "[multi_tenant].rules: entries must be tables, not " +
                              std::string(type_name(e.type())));
      continue;
    }
    if (auto r = load_rule(ld, *t, i)) out.push_back(std::move(*r));
  }
  m.rules = std::move(out);
}

void load_telemetry(Section s, Config::Telemetry& t) {
  s.reject_unknown({"metrics_port", "push_interval_ms", "metrics_address"});
  s.integer("metrics_port", 1, 65535, t.metrics_port);
  s.integer("push_interval_ms", 100, 3'600'000, t.push_interval_ms);
  std::string addr;
  if (const toml::node* n = s.string("metrics_address", addr)) {
    std::array<unsigned char, 16> buf{};
    if (inet_pton(AF_INET, addr.c_str(), buf.data()) != 1 &&
        inet_pton(AF_INET6, addr.c_str(), buf.data()) != 1) {
      s.fail_at(*n, "metrics_address",
                "'" + addr + "' is not an IPv4 or IPv6 address (host names are not resolved)");
    } else {
      t.metrics_address = addr;
    }
  }
}

void load_root(Loader& ld, const toml::table& root, Config& cfg) {
  for (auto&& [key, node] : root) {
    const std::string_view k = key.str();
    if (std::find(kSections.begin(), kSections.end(), k) == kSections.end()) {
      ld.fail(key.source(), (node.is_table() ? "unknown section [" + std::string(k) + "]"
                                             : "unknown top-level key '" + std::string(k) + "'") +
                                " (sections: [general], [phase_detection], [numa], "
                                "[multi_tenant], [telemetry])");
      continue;
    }
    const toml::table* t = node.as_table();
    if (t == nullptr) {
      ld.fail(node.source(), "'" + std::string(k) + "' must be a section (a table), not " +
                                 std::string(type_name(node.type())));
      continue;
    }
    Section s(ld, *t, "[" + std::string(k) + "]");
    if (k == "general") load_general(ld, s, cfg.general);
    if (k == "phase_detection") load_phase_detection(s, cfg.phase_detection);
    if (k == "numa") load_numa(s, cfg.numa);
    if (k == "multi_tenant") load_multi_tenant(ld, s, cfg.multi_tenant);
    if (k == "telemetry") load_telemetry(s, cfg.telemetry);
  }
}

// One "key = value  # comment" line, comments aligned so the dump reads as a table.
void line(std::ostringstream& out, std::string_view key, const std::string& value,
          std::string_view comment = {}) {
  std::string kv = std::string(key) + " = " + value;
  if (!comment.empty()) {
    kv.resize(std::max<std::size_t>(kv.size() + 2, 34), ' ');
    kv += "# ";
    kv += comment;
  }
  out << kv << '\n';
}

std::string boolean_text(bool b) { return b ? "true" : "false"; }

}  // namespace

int priority_of(PriorityClass cls) {
  switch (cls) {
    case PriorityClass::Training: return 5;
    case PriorityClass::Inference: return 3;
    case PriorityClass::Interactive: return 1;
    case PriorityClass::Background: return -5;
    case PriorityClass::Normal: break;
  }
  return 0;
}

std::string_view priority_class_name(PriorityClass cls) {
  switch (cls) {
    case PriorityClass::Training: return "Training";
    case PriorityClass::Inference: return "Inference";
    case PriorityClass::Interactive: return "Interactive";
    case PriorityClass::Background: return "Background";
    case PriorityClass::Normal: break;
  }
  return "normal";
}

std::optional<PriorityClass> parse_priority_class(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "normal") return PriorityClass::Normal;
  if (lower == "training") return PriorityClass::Training;
  if (lower == "inference") return PriorityClass::Inference;
  if (lower == "interactive") return PriorityClass::Interactive;
  if (lower == "background") return PriorityClass::Background;
  return std::nullopt;
}

ConfigResult load_config_string(std::string_view text, std::string_view name) {
  Loader ld(name);
  toml::table root;
  try {
    root = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    ld.fail(e.source(), e.description());
    return {std::nullopt, ld.error()};
  }
  Config cfg;
  load_root(ld, root, cfg);
  if (!ld.ok()) return {std::nullopt, ld.error()};
  return {std::move(cfg), {}};
}

ConfigResult load_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {std::nullopt, path.string() + ": cannot read: " + std::strerror(errno)};
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return {std::nullopt, path.string() + ": cannot read: " + std::strerror(errno)};
  return load_config_string(text.str(), path.string());
}

std::string config_to_toml(const Config& cfg) {
  std::ostringstream out;
  out << "# zernel-scheduler configuration (" << kDefaultConfigPath << ").\n"
      << "# Every key is optional: a missing key keeps its default. Unknown keys are errors.\n";

  const auto& g = cfg.general;
  out << "\n[general]\n";
  line(out, "phase_eval_interval_ms", std::to_string(g.phase_eval_interval_ms),
       "re-classify ML tasks this often");
  line(out, "gpu_poll_interval_ms", std::to_string(g.gpu_poll_interval_ms),
       "sample GPU utilization this often");
  line(out, "max_tracked_tasks", std::to_string(g.max_tracked_tasks),
       "tasks whose history the policy keeps");
  if (g.ml_process_names.empty()) {
    out << "# ml_process_names = [\"python3\"]  # also ML: these process names (or prefixes)\n";
  } else {
    std::string list = "[";
    for (const auto& n : g.ml_process_names) list += (list.size() > 1 ? ", " : "") + toml_string(n);
    line(out, "ml_process_names", list + "]");
  }

  const auto& p = cfg.phase_detection;
  out << "\n[phase_detection]\n";
  line(out, "io_wait_threshold", number_text(p.io_wait_threshold),
       "data_loading: I/O-wait fraction above this");
  line(out, "optimizer_burst_max_ns", std::to_string(p.optimizer_burst_max_ns),
       "optimizer_step: CPU bursts shorter than this");
  line(out, "gpu_idle_threshold", number_text(p.gpu_idle_threshold), "GPU % below this: idle");
  line(out, "gpu_active_threshold", number_text(p.gpu_active_threshold),
       "GPU % above this: computing");
  line(out, "phase_stability_count", std::to_string(p.phase_stability_count),
       "identical classifications before a phase changes");
  line(out, "nccl_detection_enabled", boolean_text(p.nccl_detection_enabled));

  const auto& n = cfg.numa;
  out << "\n[numa]\n";
  line(out, "enabled", boolean_text(n.enabled));
  line(out, "gpu_affinity", boolean_text(n.gpu_affinity), "GPU feeders on the GPU's node");
  line(out, "memory_affinity", boolean_text(n.memory_affinity), "tasks near their memory");

  const auto& m = cfg.multi_tenant;
  out << "\n[multi_tenant]\n";
  line(out, "enabled", boolean_text(m.enabled));
  line(out, "default_priority_class",
       toml_string(m.default_priority_class == PriorityClass::Normal
                  ? std::string("normal")
                  : std::string(priority_class_name(m.default_priority_class))),
       "class of processes no rule matches");
  if (m.rules.empty()) {
    out << "# [[multi_tenant.rules]]        # first match wins; all given fields must match\n"
        << "# class = \"Training\"            # Training|Inference|Interactive|Background|Normal\n"
        << "# cgroup = \"/training\"          # cgroup v2 path prefix\n"
        << "# comm = \"python\"               # process name, exact or prefix\n"
        << "# uid = 1000\n"
        << "# gpus = 4                      # GPUs the tenant holds\n";
  }
  for (const TenantRule& r : m.rules) {
    out << "\n[[multi_tenant.rules]]\n";
    line(out, "class", toml_string(priority_class_name(r.cls)));
    if (r.cgroup) line(out, "cgroup", toml_string(*r.cgroup));
    if (r.comm) line(out, "comm", toml_string(*r.comm));
    if (r.uid) line(out, "uid", std::to_string(*r.uid));
    if (r.gpus) line(out, "gpus", std::to_string(*r.gpus));
  }

  const auto& t = cfg.telemetry;
  out << "\n[telemetry]\n";
  line(out, "metrics_port", std::to_string(t.metrics_port), "Prometheus endpoint");
  line(out, "push_interval_ms", std::to_string(t.push_interval_ms));
  if (t.metrics_address == Config::Telemetry{}.metrics_address) {
    out << "# metrics_address = \"127.0.0.1\"  # address the endpoint listens on\n";
  } else {
    line(out, "metrics_address", toml_string(t.metrics_address));
  }
  return out.str();
}

std::string default_config_toml() { return config_to_toml(Config{}); }

}  // namespace zernel
