// The channel on real BPF maps: messages written by a BPF program are read by the
// production BpfChannel field for field, and decisions written by BpfChannel are read by a
// BPF program as ops.dispatch would. Catches any layout drift between clang-bpf and g++.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <poll.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstring>
#include <iterator>
#include <thread>
#include <utility>
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
  m.sleep_ns = static_cast<std::uint32_t>(seed * 37);
  m.futex_waits = static_cast<std::uint32_t>(seed * 41);
  return m;
}

// Distinct decisions, so that a lost, repeated or reordered one shows.
std::vector<Decision> make_decisions(std::size_t n) {
  std::vector<Decision> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = Decision{};
    out[i].pid = static_cast<std::int32_t>(100 + i);
    out[i].cpu = i % 3 == 0 ? kCpuAny : static_cast<std::int32_t>(i % 4);
    out[i].slice_ns = 1000 * i;
    out[i].vtime = ~std::uint64_t{0} - i;
    out[i].gen = 7 * i + 1;
    out[i].flags = i & 1 ? ZERNEL_DEC_PREEMPT : 0;
  }
  return out;
}

// A decision record in the user ring: 8-byte ring header, then a whole sample (8-byte
// header, room for K decisions) whatever its count. Written out here rather than taken from
// bpf_channel.cpp, so that a change of the format there has to be made twice to pass.
constexpr std::size_t kPerSample = ZERNEL_DECISIONS_PER_SAMPLE;
constexpr std::size_t kSampleBytes = 8 + kPerSample * sizeof(Decision);
constexpr std::size_t kRecord = 8 + kSampleBytes;

// Ring bytes of a batch of n decisions: full samples, then one partial, as long as a full.
constexpr std::size_t bytes_of(std::size_t n) { return (n + kPerSample - 1) / kPerSample * kRecord; }

// Decisions that fit in `bytes` of free ring: whole records only.
constexpr std::size_t fits(std::size_t bytes) { return bytes / kRecord * kPerSample; }

// The drain's slot count when a test does not limit it: more than any ring here holds.
constexpr std::uint32_t kUnlimited = 1u << 30;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

class RingLayout : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "host BPF tests load BPF programs: run them as root";
    skel_ = ring_layout_bpf__open();
    ASSERT_NE(skel_, nullptr);
    nr_cpus_ = libbpf_num_possible_cpus();
    ASSERT_GT(nr_cpus_, 0);
    // Producers run on the CPU of the thread that calls BPF_PROG_TEST_RUN: pinned, a test's
    // messages share one ring, whose order is theirs.
    ASSERT_TRUE(pin_to(0));
    size_task_rings(skel_, static_cast<std::uint32_t>(nr_cpus_), kSlots);
    bpf_map__set_max_entries(skel_->maps.decisions, decision_ring_bytes_);
    ASSERT_EQ(ring_layout_bpf__load(skel_), 0) << "BPF load failed: " << std::strerror(errno);
    std::string error;
    channel_ = BpfChannel::open(task_ring_maps(skel_), bpf_map__fd(skel_->maps.decisions), &consumed_,
                                &skel_->bss->wake, &error);
    ASSERT_NE(channel_, nullptr) << error;
  }

  static bool pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0;
  }

  // Whether the doorbell's fd polls readable now.
  bool doorbell_rung() {
    pollfd p{bpf_map__fd(skel_->maps.task_doorbell), POLLIN, 0};
    return poll(&p, 1, 0) == 1;
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

  // Drains with `slots` dispatch slots into seen[0..] and returns the number of samples the
  // kernel consumed (malformed ones too; it does not count discarded records).
  long drain(std::uint32_t slots = kUnlimited) {
    skel_->bss->nr_seen = 0;
    skel_->bss->slots = slots;
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    EXPECT_EQ(bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.drain), &opts), 0);
    return static_cast<std::int32_t>(opts.retval);
  }

  // Checks that seen[0 .. n) is want[first .. first + n), in order, byte for byte.
  void expect_seen(const std::vector<Decision>& want, std::size_t first, std::size_t n) {
    ASSERT_EQ(skel_->bss->nr_seen, n);
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(std::memcmp(&skel_->bss->seen[i], &want[first + i], sizeof(Decision)), 0)
          << "decision " << first + i;
  }

  // Drains everything and checks that it is want[first .. first + n), in ceil(n / K)
  // samples.
  void drain_and_expect(const std::vector<Decision>& want, std::size_t first, std::size_t n) {
    ASSERT_EQ(drain(), static_cast<long>((n + kPerSample - 1) / kPerSample));
    expect_seen(want, first, n);
    EXPECT_EQ(skel_->bss->nr_malformed, 0u);
  }

  static constexpr std::uint32_t kSlots = 1024;  // messages per CPU's task ring
  std::uint32_t decision_ring_bytes_ = 1u << 16;
  int nr_cpus_ = 0;
  ring_layout_bpf* skel_ = nullptr;
  std::unique_ptr<BpfChannel> channel_;
  zernel_consumed consumed_{};
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
  EXPECT_EQ(consumed_.messages, 64u);
  EXPECT_GT(channel_->pending_bytes(), 0u);

  std::size_t n2 = channel_->receive(got);
  ASSERT_EQ(n2, 36u);
  for (std::size_t i = 0; i < n2; ++i) {
    const TaskEvent want = expected(1064 + i);
    EXPECT_EQ(got[i].pid, want.pid);
    EXPECT_EQ(got[i].gen, want.gen);
    EXPECT_EQ(std::string(comm_of(got[i])), std::string(comm_of(want)));
  }
  EXPECT_EQ(consumed_.messages, 100u);
  EXPECT_EQ(channel_->pending_bytes(), 0u);
  EXPECT_EQ(channel_->receive(got), 0u);
}

TEST_F(RingLayout, DecisionsArriveIntactInOrder) {
  const std::vector<Decision> out = make_decisions(50);
  ASSERT_EQ(channel_->send(out), out.size());
  // 16 + 16 + 16 + 2: three full samples and a partial one.
  EXPECT_EQ(channel_->pending_decision_bytes(), 4 * kRecord);
  drain_and_expect(out, 0, out.size());
  EXPECT_EQ(channel_->pending_decision_bytes(), 0u);
  EXPECT_EQ(channel_->send({}), 0u);
  EXPECT_EQ(channel_->pending_decision_bytes(), 0u);
}

TEST_F(RingLayout, ABatchLargerThanASampleArrivesAsSeveralSamplesInOrder) {
  // With exactly one sample's worth of slots, each drain takes one sample (the callback
  // stops after it: fewer slots than a full sample remain), so every drain shows one
  // sample's boundaries: 16, 16, 8.
  const std::vector<Decision> out = make_decisions(2 * kPerSample + 8);
  ASSERT_EQ(channel_->send(out), out.size());
  std::size_t first = 0;
  for (const std::size_t count : {kPerSample, kPerSample, std::size_t{8}}) {
    const std::size_t pending = channel_->pending_decision_bytes();
    ASSERT_EQ(drain(kPerSample), 1) << "sample at decision " << first;
    expect_seen(out, first, count);
    EXPECT_EQ(skel_->bss->slots, kPerSample - count);  // one slot per decision
    EXPECT_EQ(channel_->pending_decision_bytes(), pending - kRecord);
    first += count;
  }
  EXPECT_EQ(drain(kPerSample), 0);
  EXPECT_EQ(skel_->bss->nr_seen, 0u);
  EXPECT_EQ(skel_->bss->nr_malformed, 0u);
}

TEST_F(RingLayout, ADrainStopsAtTheSlotLimitAndLeavesTheRestForTheNext) {
  const std::vector<Decision> out = make_decisions(6 * kPerSample + 4);
  ASSERT_EQ(channel_->send(out), out.size());
  const std::size_t all = channel_->pending_decision_bytes();
  ASSERT_EQ(all, bytes_of(out.size()));

  // 40 slots: two samples (40 -> 24 -> 8), then 8 is too few for a third. The kernel
  // consumed exactly those two; nothing was taken that the slots could not hold.
  ASSERT_EQ(drain(40), 2);
  expect_seen(out, 0, 2 * kPerSample);
  EXPECT_EQ(skel_->bss->slots, 8u);
  EXPECT_EQ(channel_->pending_decision_bytes(), all - 2 * kRecord);

  // Fewer slots than a sample: the drain does not start, the ring is untouched.
  ASSERT_EQ(drain(kPerSample - 1), 0);
  EXPECT_EQ(skel_->bss->nr_seen, 0u);
  EXPECT_EQ(channel_->pending_decision_bytes(), all - 2 * kRecord);

  // 20 slots: one sample, never a second that would not fit.
  ASSERT_EQ(drain(20), 1);
  expect_seen(out, 2 * kPerSample, kPerSample);
  EXPECT_EQ(skel_->bss->slots, 4u);

  // The rest, in order: three full samples and the partial one.
  ASSERT_EQ(drain(), 4);
  expect_seen(out, 3 * kPerSample, 3 * kPerSample + 4);
  EXPECT_EQ(channel_->pending_decision_bytes(), 0u);
  EXPECT_EQ(skel_->bss->nr_malformed, 0u);
}

TEST_F(RingLayout, MalformedSamplesAreSkippedWholeAndCounted) {
  // Another producer on the same ring (libbpf's, as the benchmark's baseline uses) writes
  // samples BpfChannel never would, between two batches of BpfChannel's.
  user_ring_buffer* raw = user_ring_buffer__new(bpf_map__fd(skel_->maps.decisions), nullptr);
  ASSERT_NE(raw, nullptr) << std::strerror(errno);
  const std::vector<Decision> good = make_decisions(3 + 2 + 5);
  ASSERT_EQ(channel_->send(std::span<const Decision>(good).first(3)), 3u);

  Decision bad{};
  bad.pid = 666;
  bad.gen = 666;
  const std::uint32_t whole = kSampleBytes;
  // {claimed count, sample length}
  const std::pair<std::uint32_t, std::uint32_t> samples[] = {
      {0, whole},                             // no decisions
      {0, 8},                                 // no decisions, a header only
      // 8 + 40 * count is 48 in 32-bit arithmetic: a check that computed a length from
      // the count in 32 bits would take it for a count of 1.
      {1 + (1u << 29), whole},
      {kPerSample + 1, whole},                // too many
      {kPerSample + 1, whole + 40},           // too many, and longer than a sample
      {1, 8 + 40},                            // cut to its count (the format before)
      {3, whole - 40},                        // shorter than a sample
      {2, whole + 8},                         // longer than a sample
      {1, 4},                                 // shorter than a header
      {1, whole - 4},                         // not a multiple of 8
  };
  // A sample of `count` with `len` bytes: the count, then d's first `count` decisions (or
  // bad ones), then bad ones to its end, which the shim must not read.
  auto write_raw = [&](std::uint32_t count, std::uint32_t len, const Decision* d) {
    auto* p = static_cast<std::uint8_t*>(user_ring_buffer__reserve(raw, len));
    ASSERT_NE(p, nullptr);
    std::memset(p, 0, len);
    const std::uint32_t hdr[2] = {count, 0};
    std::memcpy(p, hdr, std::min<std::size_t>(len, sizeof(hdr)));
    for (std::uint32_t i = 0; 8 + (i + 1) * sizeof(Decision) <= len; ++i)
      std::memcpy(p + 8 + i * sizeof(Decision), d && i < count ? &d[i] : &bad, sizeof(Decision));
    user_ring_buffer__submit(raw, p);
  };
  for (const auto& [count, len] : samples) write_raw(count, len, nullptr);
  // A well-formed sample from the other producer is applied, and only its first `count`
  // decisions: the format, not the writer, and not the bytes past the count.
  write_raw(2, whole, &good[3]);
  ASSERT_EQ(channel_->send(std::span<const Decision>(good).subspan(5)), 5u);

  const long malformed = static_cast<long>(std::size(samples));
  ASSERT_EQ(drain(), 1 + malformed + 1 + 1);
  expect_seen(good, 0, good.size());
  EXPECT_EQ(skel_->bss->nr_malformed, static_cast<std::uint64_t>(malformed));
  EXPECT_EQ(channel_->pending_decision_bytes(), 0u);
  user_ring_buffer__free(raw);
}

TEST_F(RingLayout, BatchedSendsWrapAroundTheRingEnd) {
  // 64 KiB is no multiple of a record's size: as positions go round the ring several times,
  // some records start near the end and continue at its start (through the second mapping
  // of the data area). Count them, so that the test knows it covered the case.
  const std::size_t ring = decision_ring_bytes_;
  const std::vector<Decision> out = make_decisions(5000);
  std::size_t pos = 0, straddling = 0;
  for (std::size_t done = 0; done < out.size();) {
    const std::size_t batch = std::min<std::size_t>(out.size() - done, 333 + done % 7);
    ASSERT_EQ(channel_->send(std::span<const Decision>(out).subspan(done, batch)), batch);
    for (std::size_t left = batch; left > 0;) {
      straddling += (pos % ring) + kRecord > ring;
      pos += kRecord;
      left -= std::min(left, kPerSample);
    }
    drain_and_expect(out, done, batch);
    done += batch;
  }
  EXPECT_GE(pos, 3 * ring);
  EXPECT_GT(straddling, 0u);
}

TEST_F(RingLayout, FullDecisionRingAcceptsPartOfABatchThenTheRestAfterADrain) {
  // 64 KiB: 99 records of 656 bytes, then 592 bytes to spare, too few for another.
  const std::size_t fit = fits(decision_ring_bytes_);
  ASSERT_EQ(fit, 99 * kPerSample);
  const std::vector<Decision> out = make_decisions(3000);
  std::size_t sent = channel_->send(out);
  ASSERT_EQ(sent, fit);
  // The leftover is padded with a discarded record: the ring reads as completely full...
  EXPECT_EQ(channel_->pending_decision_bytes(), decision_ring_bytes_);
  EXPECT_EQ(channel_->send(std::span<const Decision>(out).subspan(sent)), 0u);
  // ...so the map fd does not poll writable and wait_for_space() sleeps until its timeout
  // instead of returning at once (with 592 bytes free it would, and the dispatcher would
  // spin on a full ring).
  auto t0 = std::chrono::steady_clock::now();
  channel_->wait_for_space(std::chrono::milliseconds(60));
  EXPECT_GE(ms_since(t0), 40.0);
  EXPECT_EQ(skel_->bss->wake.user_waiting_space, 0u);

  // The drain skips the padding and returns the decisions only.
  drain_and_expect(out, 0, sent);
  EXPECT_EQ(channel_->pending_decision_bytes(), 0u);
  t0 = std::chrono::steady_clock::now();
  channel_->wait_for_space(std::chrono::milliseconds(5000));
  EXPECT_LT(ms_since(t0), 2500.0);  // room now: returns without waiting for the timeout

  // The rest goes through, a ring at a time, in order.
  while (sent < out.size()) {
    const std::size_t more = channel_->send(std::span<const Decision>(out).subspan(sent));
    ASSERT_EQ(more, std::min(fit, out.size() - sent));
    drain_and_expect(out, sent, more);
    sent += more;
  }
}

TEST_F(RingLayout, PartOfARingFreedAcceptsThatMuch) {
  const std::size_t ring = decision_ring_bytes_;
  const std::size_t fit = fits(ring);
  const std::vector<Decision> out = make_decisions(fit + 200);
  const std::size_t first = fit - 150;
  ASSERT_EQ(channel_->send(std::span<const Decision>(out).first(first)), first);
  // Room for part of 300 only: what fits is accepted (whole records), the ring left full.
  const std::size_t more = fits(ring - bytes_of(first));
  ASSERT_GT(more, 0u);
  ASSERT_LT(more, 300u);
  ASSERT_EQ(channel_->send(std::span<const Decision>(out).subspan(first, 300)), more);
  EXPECT_EQ(channel_->pending_decision_bytes(), ring);
  ASSERT_EQ(drain(), static_cast<long>((first + kPerSample - 1) / kPerSample +
                                       (more + kPerSample - 1) / kPerSample));
  expect_seen(out, 0, first + more);
  const std::size_t rest = out.size() - first - more;
  ASSERT_EQ(channel_->send(std::span<const Decision>(out).subspan(first + more)), rest);
  drain_and_expect(out, first + more, rest);
}

TEST_F(RingLayout, FullTaskRingRefusesMessagesInsteadOfOverwritingThenWrapsAround) {
  // The shim's congestion fallback relies on reserve failing when the consumer is behind.
  produce(0, kSlots + 5);
  EXPECT_EQ(skel_->bss->nr_produced, kSlots);
  EXPECT_EQ(skel_->bss->nr_reserve_failed, 5u);
  EXPECT_EQ(channel_->pending_bytes(), kSlots * sizeof(TaskEvent));
  std::vector<TaskEvent> got(kSlots);
  ASSERT_EQ(channel_->receive(std::span(got).first(100)), 100u);
  // 100 slots freed: that many more fit, written over the first 100, past the ring's end.
  produce(50000, 101);
  EXPECT_EQ(skel_->bss->nr_reserve_failed, 6u);
  ASSERT_EQ(channel_->receive(got), kSlots);
  for (std::size_t i = 0; i < kSlots; ++i) {
    const TaskEvent want = expected(i < kSlots - 100 ? 100 + i : 50000 + (i - (kSlots - 100)));
    ASSERT_EQ(std::memcmp(&got[i], &want, sizeof(TaskEvent)), 0) << "message " << i;
  }
  EXPECT_EQ(consumed_.messages, kSlots + 100u);
  EXPECT_EQ(channel_->pending_bytes(), 0u);
}

TEST_F(RingLayout, MessagesOfEveryCpuArriveAndABacklogIsTakenInTurns) {
  ASSERT_GE(nr_cpus_, 2) << "this test needs two CPUs";
  produce(1000, 200);  // CPU 0
  ASSERT_TRUE(pin_to(1));
  produce(2000, 200);  // CPU 1
  ASSERT_TRUE(pin_to(0));
  // A batch smaller than one CPU's backlog takes from that ring, the next from the other:
  // one busy CPU cannot hold back another's tasks.
  std::vector<TaskEvent> got(64);
  std::vector<std::int32_t> pids;
  std::size_t n;
  std::vector<int> ring_of_batch;
  while ((n = channel_->receive(got)) > 0) {
    ring_of_batch.push_back(got[0].pid >= 2001 ? 1 : 0);
    for (std::size_t i = 0; i < n; ++i) pids.push_back(got[i].pid);
  }
  ASSERT_EQ(pids.size(), 400u);
  ASSERT_GE(ring_of_batch.size(), 4u);
  EXPECT_NE(ring_of_batch[0], ring_of_batch[1]);
  EXPECT_NE(ring_of_batch[1], ring_of_batch[2]);
  // Each CPU's messages in the order it sent them, none lost or repeated.
  std::vector<std::int32_t> cpu0, cpu1;
  for (std::int32_t p : pids) (p >= 2001 ? cpu1 : cpu0).push_back(p);
  ASSERT_EQ(cpu0.size(), 200u);
  ASSERT_EQ(cpu1.size(), 200u);
  for (std::int32_t i = 0; i < 200; ++i) {
    ASSERT_EQ(cpu0[static_cast<std::size_t>(i)], expected(1000 + static_cast<std::uint64_t>(i)).pid);
    ASSERT_EQ(cpu1[static_cast<std::size_t>(i)], expected(2000 + static_cast<std::uint64_t>(i)).pid);
  }
}

TEST_F(RingLayout, ProducersRingTheDoorbellOnlyWhileTheConsumerSleeps) {
  produce(1, 10);
  EXPECT_EQ(skel_->bss->nr_rung, 0u);
  EXPECT_FALSE(doorbell_rung());
  skel_->bss->wake.user_sleeping = 1;  // as wait_for_events() announces it
  produce(11, 1);
  EXPECT_EQ(skel_->bss->nr_rung, 1u);
  EXPECT_TRUE(doorbell_rung());
  skel_->bss->wake.user_sleeping = 0;
  // With messages waiting, a wait returns at once; it also marks the ring read...
  auto t0 = std::chrono::steady_clock::now();
  channel_->wait_for_events(std::chrono::milliseconds(10000));
  EXPECT_LT(ms_since(t0), 5000.0);
  EXPECT_FALSE(doorbell_rung());
  std::vector<TaskEvent> got(64);
  ASSERT_EQ(channel_->receive(got), 11u);
  // ...so that with none waiting, an old ring does not end the next wait early.
  t0 = std::chrono::steady_clock::now();
  channel_->wait_for_events(std::chrono::milliseconds(200));
  EXPECT_GE(ms_since(t0), 150.0);
  EXPECT_EQ(skel_->bss->wake.user_sleeping, 0u);
}

TEST_F(RingLayout, ASleepingConsumerMissesNoMessageOfAProducerOnAnotherCpu) {
  // Dekker's pattern of the wakeup protocol, exercised: a producer on CPU 1 sends bursts
  // while this thread receives and sleeps in between. A missed wakeup shows as a wait that
  // lasts its whole timeout with a message waiting, or as a message never received.
  ASSERT_GE(nr_cpus_, 2) << "this test needs two CPUs";
  // About 1 s of bursts 5 ms apart; a missed wakeup leaves a wait to its 500 ms timeout.
  constexpr std::uint32_t kBursts = 200, kBurst = 3;
  std::atomic<bool> done{false};
  std::thread producer([&] {
    (void)pin_to(1);
    for (std::uint32_t b = 0; b < kBursts; ++b) {
      ProduceArgs args{std::uint64_t{b} * kBurst, kBurst, 0};
      LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &args, .ctx_size_in = sizeof(args));
      (void)bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.produce), &opts);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    done = true;
  });
  std::vector<TaskEvent> got(64);
  std::size_t total = 0, long_waits = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (total < kBursts * kBurst && std::chrono::steady_clock::now() < deadline) {
    const std::size_t n = channel_->receive(got);
    total += n;
    if (n) continue;
    const auto t0 = std::chrono::steady_clock::now();
    channel_->wait_for_events(std::chrono::milliseconds(500));
    if (ms_since(t0) >= 450.0 && !done) ++long_waits;
  }
  producer.join();
  total += channel_->receive(got);
  EXPECT_EQ(total, std::size_t{kBursts} * kBurst);
  EXPECT_EQ(skel_->bss->nr_reserve_failed, 0u);
  EXPECT_EQ(long_waits, 0u);
  EXPECT_GT(skel_->bss->nr_rung, 0u);  // the consumer did sleep, and was woken
}

TEST_F(RingLayout, OpenRefusesTaskSlotsOfAnotherMessageSize) {
  // A shim built against another ABI: its messages are not sizeof(TaskEvent).
  LIBBPF_OPTS(bpf_map_create_opts, mopts, .map_flags = BPF_F_MMAPABLE);
  const int odd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "odd_slots", 4, 64, static_cast<std::uint32_t>(nr_cpus_) * kSlots, &mopts);
  ASSERT_GE(odd, 0) << std::strerror(errno);
  TaskRingMaps maps = task_ring_maps(skel_);
  maps.slots_fd = odd;
  std::string error;
  zernel_consumed consumed{};
  EXPECT_EQ(BpfChannel::open(maps, bpf_map__fd(skel_->maps.decisions), &consumed, &skel_->bss->wake, &error), nullptr);
  EXPECT_NE(error.find("112-byte messages"), std::string::npos) << error;
  EXPECT_NE(error.find("fix: rebuild"), std::string::npos) << error;
  close(odd);
}

TEST(TaskRingSlots, SplitsTheBudgetOverTheCpusInPowersOfTwoWithAFloor) {
  EXPECT_EQ(task_ring_slots_for(4u << 20, 2), 16384u);   // 18,724 a CPU, rounded down
  EXPECT_EQ(task_ring_slots_for(4u << 20, 192), kMinTaskRingSlots);  // 195 a CPU: the floor
  EXPECT_EQ(task_ring_slots_for(1u << 30, 1), 1u << 20);  // the cap: a u32 index
  EXPECT_TRUE(std::has_single_bit(task_ring_slots_for(3u << 20, 3)));
}

}  // namespace
}  // namespace zernel
