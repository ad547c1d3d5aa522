// SnapshotExchange (the control thread -> dispatcher double buffer), MlSnapshot's process
// table, and SpscQueue (dispatcher -> control thread), including two-thread stress runs.
#include "scheduler/ml_snapshot.h"

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "scheduler/spsc_queue.h"

namespace zernel {
namespace {

struct Blob {
  std::array<std::uint64_t, 256> v{};
};

TEST(SnapshotExchange, NothingBeforeTheFirstPublish) {
  SnapshotExchange<Blob> ex;
  EXPECT_EQ(ex.acquire(), nullptr);
  EXPECT_NE(ex.begin_write(), nullptr);
  EXPECT_EQ(ex.acquire(), nullptr);  // begin_write alone publishes nothing
}

TEST(SnapshotExchange, WriterNeverGetsTheReadersBuffer) {
  SnapshotExchange<Blob> ex;
  Blob* a = ex.begin_write();
  ASSERT_NE(a, nullptr);
  a->v[0] = 1;
  ex.publish(a);
  const Blob* r = ex.acquire();
  EXPECT_EQ(r, a);
  EXPECT_EQ(r->v[0], 1u);

  // The reader holds a: the writer gets the other buffer.
  Blob* b = ex.begin_write();
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b, a);
  b->v[0] = 2;
  ex.publish(b);
  // The reader has not moved on yet: it still holds a, and b is published. No free buffer.
  EXPECT_EQ(ex.begin_write(), nullptr);
  EXPECT_EQ(ex.begin_write(), nullptr);

  // The reader moves to b; now a is free again.
  const Blob* r2 = ex.acquire();
  EXPECT_EQ(r2, b);
  EXPECT_EQ(r2->v[0], 2u);
  EXPECT_EQ(ex.begin_write(), a);
  // Acquiring again without a new publish keeps b.
  EXPECT_EQ(ex.acquire(), b);
  EXPECT_EQ(ex.begin_write(), a);
}

TEST(SnapshotExchange, WriterMayRepublishWhileReaderIsAway) {
  SnapshotExchange<Blob> ex;
  Blob* a = ex.begin_write();
  ex.publish(a);
  Blob* b = ex.begin_write();  // reader never acquired: only the published buffer is taken
  ASSERT_NE(b, nullptr);
  EXPECT_NE(b, a);
  ex.publish(b);
  EXPECT_EQ(ex.begin_write(), a);  // a was never read: free
  EXPECT_EQ(ex.acquire(), b);      // the newest
}

TEST(SnapshotExchange, AfterPublishAndAcquireBeginWriteReturnsTheOtherBuffer) {
  SnapshotExchange<Blob> ex;
  const Blob* prev = nullptr;
  for (int i = 0; i < 10; ++i) {
    Blob* w = ex.begin_write();
    ASSERT_NE(w, nullptr) << i;
    if (prev) {
      EXPECT_NE(w, prev) << i;
    }
    w->v[0] = static_cast<std::uint64_t>(i);
    ex.publish(w);
    prev = ex.acquire();
    ASSERT_EQ(prev, w);
    EXPECT_EQ(prev->v[0], static_cast<std::uint64_t>(i));
  }
}

// The writer fills every field of a buffer with a sequence number and publishes; the
// reader checks that every snapshot it sees is whole (all fields equal) and that sequence
// numbers never go backwards. A torn read (the writer reusing the reader's buffer) shows
// up as unequal fields.
TEST(SnapshotExchange, TwoThreadStressSeesWholeSnapshotsOnly) {
  SnapshotExchange<Blob> ex;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> published{0}, skipped{0};
  std::thread writer([&] {
    std::uint64_t seq = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      Blob* w = ex.begin_write();
      if (!w) {
        skipped.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::yield();
        continue;
      }
      ++seq;
      for (auto& x : w->v) x = seq;
      ex.publish(w);
      published.store(seq, std::memory_order_relaxed);
    }
  });

  // At least this many reads, and until the writer has been seen to publish often enough
  // (the writer thread may start late on a loaded machine), within a generous deadline.
  // The reader yields when it sees nothing new: the writer can only fill a buffer after
  // the reader has moved to the newest one, so when both share one CPU (a loaded CI host)
  // a reader that spins its whole slice allows about one publish per slice, and 1,000 of
  // them took longer than ctest's 60 s timeout.
  constexpr int kIterations = 200'000;
  constexpr std::uint64_t kMinDistinct = 1000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::uint64_t last = 0, distinct = 0, torn = 0, backwards = 0;
  for (int i = 0; (i < kIterations || distinct < kMinDistinct) && std::chrono::steady_clock::now() < deadline;
       ++i) {
    const Blob* s = ex.acquire();
    if (!s) continue;
    const std::uint64_t first = s->v[0];
    for (std::uint64_t x : s->v)
      if (x != first) ++torn;
    if (first < last) ++backwards;
    if (first != last) ++distinct;
    else std::this_thread::yield();
    last = first;
  }
  stop.store(true);
  writer.join();
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(backwards, 0u);
  EXPECT_GE(distinct, kMinDistinct) << "the reader must have seen the writer make progress";
  EXPECT_GE(published.load(), distinct);
}

ProcessInfo proc(std::int32_t tgid, std::int32_t job = 0) {
  ProcessInfo p;
  p.tgid = tgid;
  p.job = job;
  return p;
}

TEST(MlSnapshot, InsertFindUpdate) {
  auto s = std::make_unique<MlSnapshot>();
  EXPECT_EQ(s->find(1), nullptr);
  ASSERT_TRUE(s->insert(proc(100, 100)));
  ASSERT_TRUE(s->insert(proc(101, 100)));
  ProcessInfo p = proc(4242, 4242);
  p.gpu_mask = 0b1010;
  p.node = 1;
  p.tenant = 3;
  p.priority = -5;
  p.nccl = true;
  ASSERT_TRUE(s->insert(p));
  EXPECT_EQ(s->nr_procs, 3u);
  EXPECT_EQ(s->nr_dropped, 0u);

  const ProcessInfo* f = s->find(4242);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->tgid, 4242);
  EXPECT_EQ(f->job, 4242);
  EXPECT_EQ(f->gpu_mask, 0b1010u);
  EXPECT_EQ(f->node, 1);
  EXPECT_EQ(f->tenant, 3);
  EXPECT_EQ(f->priority, -5);
  EXPECT_TRUE(f->nccl);
  ASSERT_NE(s->find(101), nullptr);
  EXPECT_EQ(s->find(101)->job, 100);
  EXPECT_EQ(s->find(102), nullptr);
  EXPECT_EQ(s->find(0), nullptr);   // 0 marks free slots: never a match
  EXPECT_EQ(s->find(-1), nullptr);

  // Re-inserting a tgid replaces it without counting it twice.
  ASSERT_TRUE(s->insert(proc(101, 555)));
  EXPECT_EQ(s->nr_procs, 3u);
  EXPECT_EQ(s->find(101)->job, 555);

  s->clear_procs();
  EXPECT_EQ(s->nr_procs, 0u);
  EXPECT_EQ(s->find(4242), nullptr);
  EXPECT_EQ(s->find(100), nullptr);
}

TEST(MlSnapshot, FullProbeWindowsAreCountedAndNotFound) {
  auto s = std::make_unique<MlSnapshot>();
  // More processes than slots: some probe windows must fill up.
  const int n = static_cast<int>(MlSnapshot::kCapacity) + 1000;
  std::vector<int> ok, dropped;
  for (int pid = 1; pid <= n; ++pid) (s->insert(proc(pid, pid)) ? ok : dropped).push_back(pid);
  EXPECT_EQ(s->nr_procs, ok.size());
  EXPECT_EQ(s->nr_dropped, dropped.size());
  EXPECT_EQ(ok.size() + dropped.size(), static_cast<std::size_t>(n));
  EXPECT_GE(dropped.size(), 1000u);
  EXPECT_LE(s->nr_procs, MlSnapshot::kCapacity);
  for (int pid : ok) {
    const ProcessInfo* f = s->find(pid);
    ASSERT_NE(f, nullptr) << pid;
    ASSERT_EQ(f->job, pid);
  }
  for (int pid : dropped) ASSERT_EQ(s->find(pid), nullptr) << pid;
}

TEST(MlSnapshot, GpuUtilOfIsTheBusiestGpuInTheMask) {
  auto s = std::make_unique<MlSnapshot>();
  s->nr_gpus = 4;
  s->gpu_util[0] = 10;
  s->gpu_util[1] = 95;
  s->gpu_util[2] = 40;
  s->gpu_util[3] = 0;
  s->gpu_util[5] = 99;  // beyond nr_gpus: stale, ignored
  EXPECT_FLOAT_EQ(s->gpu_util_of(0), 0);
  EXPECT_FLOAT_EQ(s->gpu_util_of(0b0001), 10);
  EXPECT_FLOAT_EQ(s->gpu_util_of(0b0101), 40);
  EXPECT_FLOAT_EQ(s->gpu_util_of(0b0111), 95);
  EXPECT_FLOAT_EQ(s->gpu_util_of(0b1000), 0);
  EXPECT_FLOAT_EQ(s->gpu_util_of(0b100000), 0);
  EXPECT_FLOAT_EQ(s->gpu_util_of(0b101001), 10);
  EXPECT_FLOAT_EQ(s->gpu_util_of(~std::uint64_t{0}), 95);
}

TEST(SpscQueue, FifoFullAndEmpty) {
  SpscQueue<int> q(5);
  EXPECT_EQ(q.capacity(), 8u);  // rounded up to a power of two
  EXPECT_EQ(SpscQueue<int>(1).capacity(), 2u);
  int out = -1;
  EXPECT_FALSE(q.try_pop(&out));
  EXPECT_EQ(out, -1);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(q.try_push(i)) << i;
  EXPECT_FALSE(q.try_push(100));  // full: nothing written
  ASSERT_TRUE(q.try_pop(&out));
  EXPECT_EQ(out, 0);
  EXPECT_TRUE(q.try_push(8));
  EXPECT_FALSE(q.try_push(101));
  for (int i = 1; i <= 8; ++i) {
    ASSERT_TRUE(q.try_pop(&out));
    EXPECT_EQ(out, i);
  }
  EXPECT_FALSE(q.try_pop(&out));
  // Many times around the ring.
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 1000; ++round) {
    for (int k = 0; k < 3; ++k) ASSERT_TRUE(q.try_push(next_in++));
    for (int k = 0; k < 3; ++k) {
      ASSERT_TRUE(q.try_pop(&out));
      ASSERT_EQ(out, next_out++);
    }
  }
  EXPECT_FALSE(q.try_pop(&out));
}

struct Record {
  std::uint64_t seq = 0;
  std::uint64_t check = 0;  // ~seq: a half-copied record does not match
};

TEST(SpscQueue, TwoThreadStressKeepsOrderAndLosesNothing) {
  constexpr std::uint64_t kCount = 500'000;
  SpscQueue<Record> q(64);  // small: both full and empty happen often
  std::thread producer([&] {
    for (std::uint64_t i = 0; i < kCount;) {
      if (q.try_push(Record{i, ~i})) {
        ++i;
      } else {
        std::this_thread::yield();
      }
    }
  });
  std::uint64_t expected = 0, bad = 0;
  Record r;
  while (expected < kCount) {
    if (!q.try_pop(&r)) {
      std::this_thread::yield();
      continue;
    }
    if (r.seq != expected || r.check != ~expected) ++bad;
    expected = r.seq + 1;
  }
  producer.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(expected, kCount);
  EXPECT_FALSE(q.try_pop(&r));
}

}  // namespace
}  // namespace zernel
