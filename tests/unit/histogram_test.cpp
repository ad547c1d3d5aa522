#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include "tests/unit/alloc_counter.h"
#include "telemetry/histogram.h"


namespace zernel::telemetry {
namespace {

namespace layout = histogram_layout;

// The rank-ceil(q*n) value of a sorted sample: what percentile(q) must bound.
std::uint64_t true_quantile(const std::vector<std::uint64_t>& sorted, double q) {
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

void expect_within_error(const LatencySnapshot& s, const std::vector<std::uint64_t>& sorted, double q) {
  const std::uint64_t truth = true_quantile(sorted, q);
  const std::uint64_t got = s.percentile(q);
  EXPECT_GE(got, truth) << "q=" << q;
  EXPECT_LE(static_cast<double>(got), static_cast<double>(truth) * (1.0 + 1.0 / 32)) << "q=" << q;
}

TEST(LatencyHistogramLayout, BucketsTileTheRangeAndStayWithinOneThirtySecond) {
  EXPECT_EQ(layout::bucket_lower(0), 0u);
  for (std::size_t i = 1; i < layout::kBuckets; ++i) {
    ASSERT_EQ(layout::bucket_lower(i), layout::bucket_upper(i - 1) + 1) << i;
    const std::uint64_t width = layout::bucket_upper(i) - layout::bucket_lower(i) + 1;
    ASSERT_LE(width * 32, std::max<std::uint64_t>(layout::bucket_lower(i), 32)) << i;
    ASSERT_EQ(layout::bucket_index(layout::bucket_lower(i)), i);
    ASSERT_EQ(layout::bucket_index(layout::bucket_upper(i)), i);
  }
  EXPECT_EQ(layout::bucket_upper(layout::kBuckets - 1), LatencyHistogram::kMaxTrackableNs);
  EXPECT_GT(LatencyHistogram::kMaxTrackableNs, 60'000'000'000ull);  // covers a minute
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 40; ++v) h.record(v);
  const LatencySnapshot s = h.snapshot();
  EXPECT_EQ(s.count(), 40u);
  EXPECT_EQ(s.sum_ns(), 40u * 41 / 2);
  EXPECT_EQ(s.max_ns(), 40u);
  EXPECT_EQ(s.percentile(0.5), 20u);
  EXPECT_EQ(s.percentile(1.0), 40u);
  EXPECT_EQ(s.percentile(0.0), 1u);
}

TEST(LatencyHistogram, EmptySnapshotIsZero) {
  LatencyHistogram h;
  const LatencySnapshot s = h.snapshot();
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.percentile(0.99), 0u);
  EXPECT_EQ(s.max_ns(), 0u);
}

TEST(LatencyHistogram, UniformPercentilesWithinRelativeError) {
  LatencyHistogram h;
  std::vector<std::uint64_t> values;
  for (std::uint64_t v = 1'000; v <= 1'000'000; v += 7) values.push_back(v);
  for (auto v : values) h.record(v);
  const LatencySnapshot s = h.snapshot();
  ASSERT_EQ(s.count(), values.size());
  for (double q : {0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0}) expect_within_error(s, values, q);
  EXPECT_EQ(s.percentile(1.0), values.back());  // capped at the true max
}

TEST(LatencyHistogram, LogNormalPercentilesWithinRelativeError) {
  // Latencies are heavy-tailed: ~20 us median, a tail into tens of milliseconds.
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(std::log(20'000.0), 1.5);
  LatencyHistogram h;
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 200'000; ++i) {
    const auto v = static_cast<std::uint64_t>(dist(rng)) + 1;
    values.push_back(v);
    h.record(v);
  }
  std::sort(values.begin(), values.end());
  const LatencySnapshot s = h.snapshot();
  for (double q : {0.5, 0.9, 0.99, 0.999, 0.9999}) expect_within_error(s, values, q);
  EXPECT_EQ(s.max_ns(), values.back());
  std::uint64_t sum = 0;
  for (auto v : values) sum += v;
  EXPECT_EQ(s.sum_ns(), sum);
}

TEST(LatencyHistogram, ValuesAboveTheRangeClampIntoTheLastBucketAndAreCounted) {
  LatencyHistogram h;
  h.record(1'000);
  h.record(120'000'000'000ull);  // two minutes
  const LatencySnapshot s = h.snapshot();
  EXPECT_EQ(s.count(), 2u);
  EXPECT_EQ(s.clamped(), 1u);
  EXPECT_EQ(s.buckets()[LatencySnapshot::kBuckets - 1], 1u);
  EXPECT_EQ(s.max_ns(), 120'000'000'000ull);
  EXPECT_EQ(s.sum_ns(), 120'000'001'000ull);
  EXPECT_EQ(s.percentile(1.0), 120'000'000'000ull);  // still an upper bound: the max
  EXPECT_EQ(s.count_le(60'000'000'000ull), 1u);
}

TEST(LatencyHistogram, MergeEqualsRecordingEverythingInOne) {
  LatencyHistogram a, b, both;
  for (std::uint64_t v = 100; v < 50'000; v += 13) {
    a.record(v);
    both.record(v);
  }
  for (std::uint64_t v = 7; v < 9'000'000; v += 9'973) {
    b.record(v);
    both.record(v);
  }
  LatencySnapshot m = a.snapshot();
  m.merge(b.snapshot());
  const LatencySnapshot expect = both.snapshot();
  EXPECT_EQ(m.count(), expect.count());
  EXPECT_EQ(m.sum_ns(), expect.sum_ns());
  EXPECT_EQ(m.max_ns(), expect.max_ns());
  EXPECT_TRUE(std::equal(m.buckets().begin(), m.buckets().end(), expect.buckets().begin()));
  EXPECT_EQ(m.percentile(0.99), expect.percentile(0.99));
}

TEST(LatencyHistogram, SubtractGivesTheInterval) {
  LatencyHistogram h, interval_only;
  for (std::uint64_t v = 1; v <= 10'000; ++v) h.record(v * 1'000);  // up to 10 ms
  const LatencySnapshot before = h.snapshot();
  for (std::uint64_t v = 1; v <= 1'000; ++v) {  // the interval: 10..20 us
    h.record(10'000 + v * 10);
    interval_only.record(10'000 + v * 10);
  }
  LatencySnapshot delta = h.snapshot();
  delta.subtract(before);
  const LatencySnapshot expect = interval_only.snapshot();
  EXPECT_EQ(delta.count(), 1'000u);
  EXPECT_EQ(delta.sum_ns(), expect.sum_ns());
  EXPECT_TRUE(std::equal(delta.buckets().begin(), delta.buckets().end(), expect.buckets().begin()));
  EXPECT_EQ(delta.percentile(0.5), expect.percentile(0.5));
  // The all-time max (10 ms) is older than the interval: the interval's max is the top of
  // its highest bucket, an upper bound within the histogram's error.
  EXPECT_GE(delta.max_ns(), 20'000u);
  EXPECT_LE(delta.max_ns(), 20'000u + 20'000u / 32);
  EXPECT_LE(delta.percentile(0.99), delta.max_ns());

  // A new all-time max inside the interval is exact.
  const LatencySnapshot before2 = h.snapshot();
  h.record(50'000'000);
  LatencySnapshot delta2 = h.snapshot();
  delta2.subtract(before2);
  EXPECT_EQ(delta2.count(), 1u);
  EXPECT_EQ(delta2.max_ns(), 50'000'000u);

  // An empty interval.
  LatencySnapshot none = h.snapshot();
  none.subtract(h.snapshot());
  EXPECT_EQ(none.count(), 0u);
  EXPECT_EQ(none.max_ns(), 0u);
  EXPECT_EQ(none.percentile(0.99), 0u);
}

TEST(LatencyHistogram, CountLeIsCumulativeAndConservative) {
  LatencyHistogram h;
  for (std::uint64_t v = 1; v <= 100; ++v) h.record(v * 1'000);  // 1..100 us
  const LatencySnapshot s = h.snapshot();
  EXPECT_EQ(s.count_le(0), 0u);
  EXPECT_EQ(s.count_le(UINT64_MAX), 100u);
  std::uint64_t prev = 0;
  for (std::uint64_t le = 0; le <= 110'000; le += 500) {
    const std::uint64_t n = s.count_le(le);
    EXPECT_GE(n, prev);
    EXPECT_LE(n, le / 1'000);  // never counts a value above le as below it
    // and misses only values within 1/32 below le
    EXPECT_GE(n, std::min<std::uint64_t>(le * 31 / 32 / 1'000, 100));
    prev = n;
  }
}

TEST(LatencyHistogram, RecordNeverAllocates) {
  LatencyHistogram h;
  LatencySnapshot s;
  const std::uint64_t before = ::zernel::testing::allocations_so_far();
  std::uint64_t v = 1;
  for (int i = 0; i < 1'000'000; ++i) {
    h.record(v);
    v = v * 6364136223846793005ull + 1442695040888963407ull;  // all magnitudes, incl. clamped
    v >>= (v & 63);
  }
  h.snapshot_into(s);
  EXPECT_EQ(::zernel::testing::allocations_so_far(), before);
  EXPECT_EQ(s.count(), 1'000'000u);
}

TEST(LatencyHistogram, ReadersSeeMonotonicSnapshotsWhileTheWriterRecords) {
  LatencyHistogram h;
  std::atomic<bool> done{false}, reading{false};
  std::thread writer([&] {
    // Not before the reader runs: on a loaded machine the writer could otherwise finish
    // before the reader's first snapshot, and the test would check nothing.
    while (!reading.load()) std::this_thread::yield();
    for (std::uint64_t i = 0; i < 2'000'000; ++i) h.record(i % 100'000);
    done.store(true);
  });
  LatencySnapshot prev;
  LatencySnapshot cur;
  int snapshots = 0;
  for (bool first = true; first || !done.load(); first = false) {
    if (first) reading.store(true);
    h.snapshot_into(cur);
    ASSERT_GE(cur.count(), prev.count());
    for (std::size_t i = 0; i < LatencySnapshot::kBuckets; ++i) ASSERT_GE(cur.buckets()[i], prev.buckets()[i]);
    prev = cur;
    ++snapshots;
  }
  writer.join();
  h.snapshot_into(cur);
  EXPECT_EQ(cur.count(), 2'000'000u);
  EXPECT_GT(snapshots, 0);
}

}  // namespace
}  // namespace zernel::telemetry
