// LatencyHistogram: a log-linear (HDR-style) histogram of nanosecond values in fixed
// memory, cheap enough to record from the dispatcher's hot loop.
//
// Layout: values below 32 ns get one bucket each; above, every power of two [2^e, 2^e+1)
// is split into 32 equal sub-buckets. A bucket's width is at most 1/32 of its lower
// bound, so a value read back (a bucket's upper bound) is less than 1/32 (3.125%) above
// the true one. 1024 buckets cover 0 .. 2^36-1 ns (68.7 s); larger values are clamped into the
// last bucket and counted in clamped(); sum and max keep their true value.
//
// Why not a fixed list of Prometheus buckets: the dispatcher wants p50/p99 per interval
// at ~3% error anywhere from 1 us to a minute, and Prometheus buckets are chosen later,
// when exporting (LatencySnapshot::count_le).
//
// Concurrency (one writer, many readers):
//   - Exactly one thread calls record(). It updates each counter with a relaxed load and
//     a relaxed store (no lock prefix: there is no other writer to race with).
//   - Any thread may call snapshot(). It reads every counter relaxed, one at a time.
//   - A snapshot is not a single instant: a record() in flight while it is taken may be
//     seen in its bucket but not yet in sum/max, or the other way round. That is a few
//     samples out of thousands per interval, inside the histogram's own error; making it
//     exact would need a lock or a seqlock retry on the writer's side, which is the path
//     we must keep cheap. count() is the sum of the buckets the snapshot read, so
//     percentiles and Prometheus _count/+Inf always agree with each other.
//   - Counters only grow, so a later snapshot is never below an earlier one bucket by
//     bucket (LatencySnapshot::subtract relies on it and still saturates at 0).
//
// record() never allocates and never blocks. The object is 8 KiB of counters; a snapshot
// is a plain copy of about the same size.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

namespace zernel::telemetry {

namespace histogram_layout {

inline constexpr unsigned kSubBucketBits = 5;                   // 32 sub-buckets per power of two
inline constexpr std::uint64_t kSubBuckets = 1ull << kSubBucketBits;
inline constexpr unsigned kMaxBits = 36;                        // values below 2^36 ns are tracked
inline constexpr std::uint64_t kMaxTrackable = (1ull << kMaxBits) - 1;  // 68.7 s
inline constexpr std::size_t kBuckets =
    static_cast<std::size_t>(kSubBuckets * (kMaxBits - kSubBucketBits + 1));

// The bucket a value falls in; values above kMaxTrackable land in the last one.
constexpr std::size_t bucket_index(std::uint64_t ns) noexcept {
  if (ns > kMaxTrackable) return kBuckets - 1;
  if (ns < kSubBuckets) return static_cast<std::size_t>(ns);
  const unsigned shift = static_cast<unsigned>(std::bit_width(ns)) - 1 - kSubBucketBits;
  return static_cast<std::size_t>(kSubBuckets * (shift + 1) + ((ns >> shift) - kSubBuckets));
}

// Smallest and largest value a bucket holds.
constexpr std::uint64_t bucket_lower(std::size_t index) noexcept {
  if (index < kSubBuckets) return index;
  const std::uint64_t shift = index / kSubBuckets - 1;
  return (kSubBuckets + index % kSubBuckets) << shift;
}
constexpr std::uint64_t bucket_upper(std::size_t index) noexcept {
  if (index < kSubBuckets) return index;
  const std::uint64_t shift = index / kSubBuckets - 1;
  return bucket_lower(index) + (1ull << shift) - 1;
}

static_assert(kBuckets == 1024);
static_assert(bucket_index(kMaxTrackable) == kBuckets - 1);
static_assert(bucket_upper(kBuckets - 1) == kMaxTrackable);
static_assert(bucket_index(63) == 63 && bucket_index(64) == 64 && bucket_index(65) == 64);
static_assert(bucket_lower(bucket_index(1'000'000)) <= 1'000'000 &&
              bucket_upper(bucket_index(1'000'000)) >= 1'000'000);

}  // namespace histogram_layout

// A copy of a histogram's counters, owned by the reader: percentiles, merging, interval
// deltas and cumulative counts for Prometheus.
class LatencySnapshot {
 public:
  static constexpr std::size_t kBuckets = histogram_layout::kBuckets;

  std::uint64_t count() const { return count_; }
  std::uint64_t sum_ns() const { return sum_ns_; }
  std::uint64_t max_ns() const { return max_ns_; }
  // Values above the tracked range (68.7 s), counted in the last bucket.
  std::uint64_t clamped() const { return clamped_; }
  std::span<const std::uint64_t, kBuckets> buckets() const { return counts_; }

  // The value at quantile q (0..1, so 0.99 is p99): the upper bound of the bucket that
  // holds the ceil(q * count)-th smallest value, capped at max_ns() (max_ns() itself in
  // the last bucket, which holds the clamped values). Never below the true value, at
  // most 1/32 (3.125%) above it below 68.7 s. 0 when empty.
  std::uint64_t percentile(double q) const {
    if (count_ == 0) return 0;
    if (!(q > 0)) q = 0;  // NaN too
    if (q > 1) q = 1;
    auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_)));
    rank = std::clamp<std::uint64_t>(rank, 1, count_);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen < rank) continue;
      // The last bucket also holds clamped values: only max bounds them.
      return i == kBuckets - 1 ? max_ns_ : std::min(histogram_layout::bucket_upper(i), max_ns_);
    }
    return max_ns_;  // unreachable: count_ is the sum of the buckets
  }

  // How many values are <= le_ns, at bucket resolution: a bucket that straddles le_ns
  // counts as above it, so the answer errs towards "slower", never "faster".
  std::uint64_t count_le(std::uint64_t le_ns) const {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < kBuckets && histogram_layout::bucket_upper(i) <= le_ns; ++i) n += counts_[i];
    return n;
  }

  // Adds another histogram's values (e.g. several CPUs' or phases' histograms).
  void merge(const LatencySnapshot& other) {
    for (std::size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ns_ += other.sum_ns_;
    clamped_ += other.clamped_;
    max_ns_ = std::max(max_ns_, other.max_ns_);
  }

  // Turns this (a later snapshot of the same histogram) into the values recorded since
  // `earlier`: per-interval p50/p99/max. The interval's max is exact when it set a new
  // all-time max; otherwise it is the upper bound of the highest non-empty bucket of the
  // interval (the histogram keeps no per-interval max, which would need the reader to
  // reset the writer's counter).
  void subtract(const LatencySnapshot& earlier) {
    std::size_t top = kBuckets;
    count_ = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      counts_[i] = counts_[i] > earlier.counts_[i] ? counts_[i] - earlier.counts_[i] : 0;
      count_ += counts_[i];
      if (counts_[i] != 0) top = i;
    }
    sum_ns_ = sum_ns_ > earlier.sum_ns_ ? sum_ns_ - earlier.sum_ns_ : 0;
    clamped_ = clamped_ > earlier.clamped_ ? clamped_ - earlier.clamped_ : 0;
    if (top == kBuckets) {
      max_ns_ = 0;
    } else if (max_ns_ <= earlier.max_ns_) {
      max_ns_ = std::min(histogram_layout::bucket_upper(top), max_ns_);
    }
  }

 private:
  friend class LatencyHistogram;

  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ns_ = 0;
  std::uint64_t max_ns_ = 0;
  std::uint64_t clamped_ = 0;
};

class LatencyHistogram {
 public:
  static constexpr std::size_t kBuckets = histogram_layout::kBuckets;
  static constexpr std::uint64_t kMaxTrackableNs = histogram_layout::kMaxTrackable;

  LatencyHistogram() = default;
  LatencyHistogram(const LatencyHistogram&) = delete;
  LatencyHistogram& operator=(const LatencyHistogram&) = delete;

  // Writer thread only. No allocation, no lock, no read-modify-write instruction.
  void record(std::uint64_t ns) noexcept {
    bump(counts_[histogram_layout::bucket_index(ns)], 1);
    bump(sum_ns_, ns);
    if (ns > max_ns_.load(std::memory_order_relaxed)) max_ns_.store(ns, std::memory_order_relaxed);
    if (ns > kMaxTrackableNs) [[unlikely]]
      bump(clamped_, 1);
  }

  // Any thread.
  LatencySnapshot snapshot() const {
    LatencySnapshot s;
    snapshot_into(s);
    return s;
  }

  // Any thread; fills a caller-owned snapshot (no 8 KiB temporary on the stack).
  void snapshot_into(LatencySnapshot& s) const {
    s.count_ = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      s.counts_[i] = counts_[i].load(std::memory_order_relaxed);
      s.count_ += s.counts_[i];
    }
    s.sum_ns_ = sum_ns_.load(std::memory_order_relaxed);
    s.max_ns_ = max_ns_.load(std::memory_order_relaxed);
    s.clamped_ = clamped_.load(std::memory_order_relaxed);
  }

 private:
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t by) noexcept {
    c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  std::array<std::atomic<std::uint64_t>, kBuckets> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
  std::atomic<std::uint64_t> max_ns_{0};
  std::atomic<std::uint64_t> clamped_{0};
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(sizeof(LatencyHistogram) == LatencyHistogram::kBuckets * 8 + 3 * 8,
              "fixed memory: 8 KiB of counters plus sum, max and clamped");

}  // namespace zernel::telemetry
