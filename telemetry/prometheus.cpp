#include "telemetry/prometheus.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace zernel::telemetry::prom {

namespace {

constexpr double kNsPerSecond = 1e9;

bool valid_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_label_name(std::string_view s) {
  if (s.empty() || s.starts_with("__")) return false;  // __ is reserved for Prometheus itself
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::Counter:
      return "counter";
    case MetricType::Gauge:
      return "gauge";
    case MetricType::Histogram:
      return "histogram";
  }
  return "untyped";
}

// name{k="v",...} value\n, with an optional trailing label (histograms' le).
void append_sample(std::string& out, std::string_view name, std::string_view suffix, const Labels& labels,
                   std::string_view extra_key, std::string_view extra_value, std::string_view value) {
  out += name;
  out += suffix;
  if (!labels.empty() || !extra_key.empty()) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out += ',';
      first = false;
      out += k;
      out += "=\"";
      out += EscapeLabelValue(v);
      out += '"';
    }
    if (!extra_key.empty()) {
      if (!first) out += ',';
      out += extra_key;
      out += "=\"";
      out += extra_value;
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

std::string format_count(std::uint64_t n) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), n);
  return std::string(buf, r.ptr);
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Integers (counts, bytes) print as integers, not 1e+05; other values in the usual
  // range print in plain decimal (0.0001), the rest in the shortest exact form.
  const double mag = std::fabs(value);
  std::to_chars_result r;
  if (value == std::trunc(value) && mag < 9007199254740992.0) {  // 2^53: exact in a double
    r = std::to_chars(buf, buf + sizeof(buf), static_cast<long long>(value));
  } else if (mag >= 1e-6 && mag < 1e15) {
    r = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::fixed);
  } else {
    r = std::to_chars(buf, buf + sizeof(buf), value);
  }
  return std::string(buf, r.ptr);
}

// --- Counter

void Counter::Increment(double by) {
  if (!(by >= 0)) return;
  value_.fetch_add(by, std::memory_order_relaxed);
}

// --- Histogram

Histogram::Histogram(const BucketBoundaries& buckets) : bounds_(buckets) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i] > bounds_[i - 1]))) {
      throw std::invalid_argument("histogram bucket boundaries must be finite and strictly increasing");
    }
  }
  counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  base_counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;  // it would poison _sum forever
  // le semantics: a value equal to a bound belongs to that bucket.
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  const auto idx = static_cast<std::size_t>(it - bounds_.begin());
  counts_[idx].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::bucket_counts(const LatencySnapshot& snap) const {
  std::vector<std::uint64_t> per_bucket(bounds_.size() + 1, 0);
  std::uint64_t below = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    // Bounds below 0 s hold nothing; bounds past the tracked range hold everything up to it.
    const double le_ns = std::floor(bounds_[i] * kNsPerSecond + 0.5);
    const std::uint64_t cum =
        le_ns < 0 ? 0 : snap.count_le(le_ns >= 1.8e19 ? std::numeric_limits<std::uint64_t>::max()
                                                      : static_cast<std::uint64_t>(le_ns));
    per_bucket[i] = cum - below;
    below = cum;
  }
  per_bucket[bounds_.size()] = snap.count() - below;
  return per_bucket;
}

void Histogram::ObserveSnapshot(const LatencySnapshot& ns_snapshot) {
  const std::vector<std::uint64_t> add = bucket_counts(ns_snapshot);
  for (std::size_t i = 0; i < add.size(); ++i) counts_[i].fetch_add(add[i], std::memory_order_relaxed);
  sum_.fetch_add(static_cast<double>(ns_snapshot.sum_ns()) / kNsPerSecond, std::memory_order_relaxed);
}

void Histogram::SetFromSnapshot(const LatencySnapshot& ns_snapshot) {
  if (ns_snapshot.count() < last_source_count_) {
    // The source started over: keep what has been exported as the base to add to.
    for (std::size_t i = 0; i < base_counts_.size(); ++i) base_counts_[i] = counts_[i].load(std::memory_order_relaxed);
    base_sum_ = sum_.load(std::memory_order_relaxed);
  }
  last_source_count_ = ns_snapshot.count();
  const std::vector<std::uint64_t> now = bucket_counts(ns_snapshot);
  for (std::size_t i = 0; i < now.size(); ++i) counts_[i].store(base_counts_[i] + now[i], std::memory_order_relaxed);
  sum_.store(base_sum_ + static_cast<double>(ns_snapshot.sum_ns()) / kNsPerSecond, std::memory_order_relaxed);
}

Histogram::Collected Histogram::Collect() const {
  Collected c;
  c.cumulative.resize(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    total += counts_[i].load(std::memory_order_relaxed);
    c.cumulative[i] = total;
  }
  c.sum = sum_.load(std::memory_order_relaxed);
  return c;
}

// --- Families and registry

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type, Labels constant_labels)
    : name_(std::move(name)), help_(std::move(help)), type_(type), constant_labels_(std::move(constant_labels)) {}

void FamilyBase::append_header(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  out += EscapeHelp(help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type_name(type_);
  out += '\n';
}

Labels FamilyBase::merged(const Labels& labels) const {
  if (constant_labels_.empty()) return labels;
  Labels full = constant_labels_;
  for (const auto& [k, v] : labels) {
    if (!full.emplace(k, v).second) throw std::invalid_argument("label " + k + " of " + name_ + " is a constant label");
  }
  return full;
}

void Registry::check_new_family(const std::string& name, MetricType type, const Labels& constant_labels) {
  if (!valid_metric_name(name)) throw std::invalid_argument("invalid metric name: \"" + name + "\"");
  detail::check_label_names(constant_labels, type);
}

std::string Serialize(const Registry& registry) {
  std::string out;
  std::lock_guard lock(registry.mu_);
  for (const auto& family : registry.families_) family->serialize(out);
  return out;
}

namespace detail {

void check_label_names(const Labels& labels, MetricType type) {
  for (const auto& [k, v] : labels) {
    if (!valid_label_name(k)) throw std::invalid_argument("invalid label name: \"" + k + "\"");
    if (type == MetricType::Histogram && k == "le") throw std::invalid_argument("label le is reserved for histogram buckets");
  }
}

void append_samples(std::string& out, std::string_view name, const Labels& labels, const Counter& m) {
  append_sample(out, name, "", labels, "", "", FormatValue(m.Value()));
}

void append_samples(std::string& out, std::string_view name, const Labels& labels, const Gauge& m) {
  append_sample(out, name, "", labels, "", "", FormatValue(m.Value()));
}

void append_samples(std::string& out, std::string_view name, const Labels& labels, const Histogram& m) {
  const Histogram::Collected c = m.Collect();
  const auto& bounds = m.boundaries();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    append_sample(out, name, "_bucket", labels, "le", FormatValue(bounds[i]), format_count(c.cumulative[i]));
  }
  const std::string count = format_count(c.cumulative.back());
  append_sample(out, name, "_bucket", labels, "le", "+Inf", count);
  append_sample(out, name, "_sum", labels, "", "", FormatValue(c.sum));
  append_sample(out, name, "_count", labels, "", "", count);
}

}  // namespace detail

}  // namespace zernel::telemetry::prom
