// A small Prometheus exporter whose API mirrors prometheus-cpp's core (Registry,
// Family<T>, Counter, Gauge, Histogram, BuildCounter().Name().Help().Register(),
// family.Add(labels)), so that code written against it reads like prometheus-cpp and
// could move to it with little more than an include change.
//
// Why hand-written: Debian 12 does not package prometheus-cpp, every dependency here
// comes from Debian (README, "Dependencies"), and the scheduler needs only the text
// format, three metric types and no HTTP stack of the library's (telemetry/http_server.h
// serves the text). What is ours and not prometheus-cpp's: Serialize(const Registry&)
// instead of TextSerializer + Collect(), and Histogram::SetFromSnapshot/ObserveSnapshot,
// which export a LatencyHistogram (nanoseconds) in seconds without re-observing values.
//
// Threads: metric values are atomics. The control thread updates them, the HTTP thread
// (or whoever calls Serialize) reads them; neither blocks the other. Registering families
// and adding or removing children takes a mutex and belongs to the control path; the
// dispatcher's hot loop never calls into this file.
//
// Output is the text exposition format 0.0.4: families in registration order, children in
// label order (Labels is a sorted map), so the same registry always prints the same text.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "telemetry/histogram.h"

namespace zernel::telemetry::prom {

using Labels = std::map<std::string, std::string>;

enum class MetricType { Counter, Gauge, Histogram };

class Counter {
 public:
  static constexpr MetricType kType = MetricType::Counter;

  // A counter never goes down: negative and NaN increments are ignored (as prometheus-cpp).
  void Increment() { Increment(1.0); }
  void Increment(double by);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  static constexpr MetricType kType = MetricType::Gauge;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Increment(double by = 1.0) { value_.fetch_add(by, std::memory_order_relaxed); }
  void Decrement(double by = 1.0) { value_.fetch_sub(by, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  static constexpr MetricType kType = MetricType::Histogram;
  using BucketBoundaries = std::vector<double>;

  // Upper bounds (le), finite and strictly increasing; +Inf is implied. Throws
  // std::invalid_argument otherwise.
  explicit Histogram(const BucketBoundaries& buckets);

  void Observe(double value);  // NaN is ignored: it would turn _sum into NaN for good

  // Adds the values of a LatencySnapshot in nanoseconds (e.g. one interval's delta) to
  // this histogram in seconds. A value is counted in the first bucket whose bound is at
  // or above its HDR bucket's upper bound (LatencySnapshot::count_le).
  void ObserveSnapshot(const LatencySnapshot& ns_snapshot);

  // Makes this histogram mirror a cumulative LatencyHistogram (nanoseconds -> seconds):
  // the exported counts become the snapshot's. If the source restarts (a snapshot with a
  // smaller count than the previous one), what was exported so far is kept as a base, so
  // the exported counts never go down. One caller thread; do not mix with Observe().
  void SetFromSnapshot(const LatencySnapshot& ns_snapshot);

  const BucketBoundaries& boundaries() const { return bounds_; }

  struct Collected {
    std::vector<std::uint64_t> cumulative;  // one per boundary, then +Inf (== count)
    double sum = 0;
  };
  Collected Collect() const;

 private:
  // Per-bucket (not cumulative) counts of a nanosecond snapshot against bounds_.
  std::vector<std::uint64_t> bucket_counts(const LatencySnapshot& ns_snapshot) const;

  BucketBoundaries bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1 (+Inf)
  std::atomic<double> sum_{0.0};
  // SetFromSnapshot only (its caller's thread).
  std::vector<std::uint64_t> base_counts_;
  double base_sum_ = 0;
  std::uint64_t last_source_count_ = 0;
};

namespace detail {
void check_label_names(const Labels& labels, MetricType type);
void append_samples(std::string& out, std::string_view name, const Labels& labels, const Counter& m);
void append_samples(std::string& out, std::string_view name, const Labels& labels, const Gauge& m);
void append_samples(std::string& out, std::string_view name, const Labels& labels, const Histogram& m);
}  // namespace detail

class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type, Labels constant_labels);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }

  // Appends "# HELP", "# TYPE" and every child's samples; nothing if it has no children.
  virtual void serialize(std::string& out) const = 0;

 protected:
  void append_header(std::string& out) const;
  Labels merged(const Labels& labels) const;

  std::string name_;
  std::string help_;
  MetricType type_;
  Labels constant_labels_;
};

template <typename T>
class Family final : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;

  // The child with these labels, created with T(args...) on first use; later calls with
  // the same labels return the same object (and ignore args). Control path: takes a lock.
  template <typename... Args>
  T& Add(const Labels& labels, Args&&... args) {
    Labels full = merged(labels);
    std::lock_guard lock(mu_);
    auto it = children_.find(full);
    if (it != children_.end()) return *it->second;
    detail::check_label_names(full, T::kType);
    auto child = std::make_unique<T>(std::forward<Args>(args)...);
    T& ref = *child;
    children_.emplace(std::move(full), std::move(child));
    return ref;
  }

  bool Has(const Labels& labels) const {
    const Labels full = merged(labels);
    std::lock_guard lock(mu_);
    return children_.contains(full);
  }

  // Drops a child (its series disappears from the output). The reference dies with it.
  void Remove(T* metric) {
    std::lock_guard lock(mu_);
    for (auto it = children_.begin(); it != children_.end(); ++it) {
      if (it->second.get() == metric) {
        children_.erase(it);
        return;
      }
    }
  }

  void serialize(std::string& out) const override {
    std::lock_guard lock(mu_);
    if (children_.empty()) return;
    append_header(out);
    for (const auto& [labels, metric] : children_) detail::append_samples(out, name_, labels, *metric);
  }

 private:
  mutable std::mutex mu_;
  std::map<Labels, std::unique_ptr<T>> children_;
};

class Registry {
 public:
  // The family called `name`, created on first use. Registering a name again with the
  // same type returns the existing family; with another type it throws
  // std::invalid_argument, as does an invalid metric or label name.
  template <typename T>
  Family<T>& Add(const std::string& name, const std::string& help, const Labels& constant_labels) {
    std::lock_guard lock(mu_);
    for (const auto& f : families_) {
      if (f->name() != name) continue;
      if (f->type() != T::kType) throw std::invalid_argument("metric " + name + " is already registered with another type");
      return static_cast<Family<T>&>(*f);
    }
    check_new_family(name, T::kType, constant_labels);
    auto family = std::make_unique<Family<T>>(name, help, T::kType, constant_labels);
    Family<T>& ref = *family;
    families_.push_back(std::move(family));
    return ref;
  }

 private:
  friend std::string Serialize(const Registry& registry);
  static void check_new_family(const std::string& name, MetricType type, const Labels& constant_labels);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
};

// The whole registry in the text exposition format 0.0.4.
std::string Serialize(const Registry& registry);

namespace detail {

template <typename T>
class Builder {
 public:
  Builder& Name(std::string name) {
    name_ = std::move(name);
    return *this;
  }
  Builder& Help(std::string help) {
    help_ = std::move(help);
    return *this;
  }
  Builder& Labels(const prom::Labels& constant_labels) {
    labels_ = constant_labels;
    return *this;
  }
  Family<T>& Register(Registry& registry) { return registry.Add<T>(name_, help_, labels_); }

 private:
  std::string name_;
  std::string help_;
  prom::Labels labels_;
};

}  // namespace detail

inline detail::Builder<Counter> BuildCounter() { return {}; }
inline detail::Builder<Gauge> BuildGauge() { return {}; }
inline detail::Builder<Histogram> BuildHistogram() { return {}; }

// Exposition-format pieces, public for tests and for anyone writing samples by hand.
std::string EscapeLabelValue(std::string_view value);  // \ " newline
std::string EscapeHelp(std::string_view help);          // \ newline
std::string FormatValue(double value);                  // shortest exact form, +Inf, -Inf, NaN

}  // namespace zernel::telemetry::prom
