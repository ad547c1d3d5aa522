// The channel on real BPF maps: messages written by a BPF program are read by the
// production BpfChannel field for field, and decisions written by BpfChannel are read by a
// BPF program as ops.dispatch would. Catches any layout drift between clang-bpf and g++.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "scheduler/bpf_channel.h"
#include "ring_layout.skel.h"

namespace zernel {
namespace {

struct ProduceArgs {  // struct produce_args in ring_layout.bpf.c
  std::uint64_t seed;
  std::uint32_t count;
  std::uint32_t pad;
};

// The C++ twin of fill() in ring_layout.bpf.c.
TaskEvent expected(std::uint64_t seed) {
  TaskEvent m{};
  m.pid = static_cast<std::int32_t>(seed + 1);
  m.tgid = static_cast<std::int32_t>(seed + 2);
  m.prev_cpu = static_cast<std::int32_t>(seed % 7);
  m.nr_cpus_allowed = static_cast<std::uint32_t>(seed % 64 + 1);
  m.enq_flags = seed * 3;
  m.enq_ns = seed * 5;
  m.runtime_ns = seed * 11;
  m.burst_ns = seed * 13;
  m.gen = seed * 17;
  m.weight = static_cast<std::uint32_t>(seed % 10000 + 1);
  m.flags = static_cast<std::uint32_t>(seed & 7);
  m.waker_pid = -static_cast<std::int32_t>(seed);
  m.waker_tgid = static_cast<std::int32_t>(seed * 19);
  m.prev_decision_ns = static_cast<std::uint32_t>(seed * 23);
  m.prev_running_ns = static_cast<std::uint32_t>(seed * 29);
  m.prev_enq_ns = seed * 31;
  for (int i = 0; i < ZERNEL_COMM_LEN; i++) m.comm[i] = static_cast<char>('a' + (seed + i) % 26);
  m.comm[ZERNEL_COMM_LEN - 1] = 0;
  return m;
}

class RingLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "host BPF tests load BPF programs: run them as root";
    skel_ = ring_layout_bpf__open();
    ASSERT_NE(skel_, nullptr);
    bpf_map__set_max_entries(skel_->maps.tasks, task_ring_bytes_);
    bpf_map__set_max_entries(skel_->maps.decisions, decision_ring_bytes_);
    ASSERT_EQ(ring_layout_bpf__load(skel_), 0) << "BPF load failed: " << std::strerror(errno);
    std::string error;
    channel_ = BpfChannel::open(bpf_map__fd(skel_->maps.tasks), bpf_map__fd(skel_->maps.decisions),
                                &consumed_, &wake_, &error);
    ASSERT_NE(channel_, nullptr) << error;
  }
  void TearDown() override {
    channel_.reset();
    ring_layout_bpf__destroy(skel_);
  }

  void produce(std::uint64_t seed, std::uint32_t count) {
    ProduceArgs args{seed, count, 0};
    LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &args, .ctx_size_in = sizeof(args));
    ASSERT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.produce), &opts), 0);
  }

  long drain() {
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    EXPECT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.drain), &opts), 0);
    return static_cast<std::int32_t>(opts.retval);
  }

  std::uint32_t task_ring_bytes_ = 1u << 20;
  std::uint32_t decision_ring_bytes_ = 1u << 16;
  ring_layout_bpf* skel_ = nullptr;
  std::unique_ptr<BpfChannel> channel_;
  volatile std::uint64_t consumed_ = 0;
  zernel_wake_flags wake_{};
};

TEST_F(RingLayout, EveryFieldOfATaskMessageArrivesIntact) {
  produce(1000, 100);
  EXPECT_EQ(skel_->bss->nr_produced, 100u);

  std::vector<TaskEvent> got(64);
  std::size_t n1 = channel_->receive(got);
  ASSERT_EQ(n1, 64u);  // bounded by the batch, the rest stays queued
  for (std::size_t i = 0; i < n1; ++i) {
    const TaskEvent want = expected(1000 + i);
    EXPECT_EQ(std::memcmp(&got[i], &want, sizeof(TaskEvent)), 0) << "message " << i;
  }
  EXPECT_EQ(consumed_, 64u);
  EXPECT_GT(channel_->pending_bytes(), 0u);

  std::size_t n2 = channel_->receive(got);
  ASSERT_EQ(n2, 36u);
  for (std::size_t i = 0; i < n2; ++i) {
    const TaskEvent want = expected(1064 + i);
    EXPECT_EQ(got[i].pid, want.pid);
    EXPECT_EQ(got[i].gen, want.gen);
    EXPECT_EQ(std::string(comm_of(got[i])), std::string(comm_of(want)));
  }
  EXPECT_EQ(consumed_, 100u);
  EXPECT_EQ(channel_->pending_bytes(), 0u);
  EXPECT_EQ(channel_->receive(got), 0u);
}

TEST_F(RingLayout, DecisionsArriveIntactInOrder) {
  std::vector<Decision> out(50);
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = Decision{};
    out[i].pid = static_cast<std::int32_t>(100 + i);
    out[i].cpu = i % 3 == 0 ? kCpuAny : static_cast<std::int32_t>(i % 4);
    out[i].slice_ns = 1000 * i;
    out[i].vtime = ~std::uint64_t{0} - i;
    out[i].gen = 7 * i;
    out[i].flags = i & 1 ? ZERNEL_DEC_PREEMPT : 0;
  }
  ASSERT_EQ(channel_->send(out), out.size());
  EXPECT_EQ(drain(), 50);
  ASSERT_EQ(skel_->bss->nr_seen, 50u);
  for (std::size_t i = 0; i < out.size(); ++i)
    EXPECT_EQ(std::memcmp(&skel_->bss->seen[i], &out[i], sizeof(Decision)), 0) << "decision " << i;
}

TEST_F(RingLayout, FullDecisionRingAcceptsTheRestAfterADrain) {
  // 64 KiB / 48 bytes a record (8-byte header + 40): about 1365 fit, 3000 do not.
  std::vector<Decision> out(3000);
  for (std::size_t i = 0; i < out.size(); ++i) out[i].pid = static_cast<std::int32_t>(i + 1);
  std::size_t sent = channel_->send(out);
  ASSERT_GT(sent, 1000u);
  ASSERT_LT(sent, out.size());
  EXPECT_GT(drain(), 0);
  EXPECT_EQ(skel_->bss->nr_seen, 1024u);  // the test program records at most MAX_SEEN
  channel_->wait_for_space(std::chrono::milliseconds(100));
  const std::size_t more = channel_->send(std::span<const Decision>(out).subspan(sent));
  EXPECT_GT(more, 0u);
}

TEST_F(RingLayout, FullTaskRingRefusesReservationsInsteadOfOverwriting) {
  // The shim's congestion fallback relies on reserve failing when the consumer is behind.
  produce(0, 20000);  // 20000 * 112 bytes > 1 MiB
  EXPECT_GT(skel_->bss->nr_reserve_failed, 0u);
  std::vector<TaskEvent> got(512);
  std::size_t total = 0, n;
  std::uint64_t next = 0;
  bool in_order = true;
  while ((n = channel_->receive(got)) > 0) {
    for (std::size_t i = 0; i < n; ++i, ++next) in_order &= got[i].pid == static_cast<std::int32_t>(next + 1);
    total += n;
  }
  EXPECT_EQ(total, skel_->bss->nr_produced);
  EXPECT_TRUE(in_order);
}

}  // namespace
}  // namespace zernel
