#include "scheduler/dispatcher.h"

#include <gtest/gtest.h>

#include "scheduler/fair_policy.h"
#include "scheduler/fifo_policy.h"
#include "tests/unit/fake_channel.h"

namespace zernel {
namespace {

using testing::FakeChannel;
using testing::make_event;

TEST(Dispatcher, AnswersEveryEventOnceInOrderWithItsGeneration) {
  FakeChannel ch;
  FifoPolicy policy({});
  Dispatcher d(ch, policy, 8);
  for (int i = 1; i <= 20; ++i) ch.push(make_event(1000 + i, /*gen=*/i * 3));

  std::size_t handled = 0;
  while (std::size_t n = d.run_once()) {
    EXPECT_LE(n, 8u);  // batches are bounded
    handled += n;
  }
  ASSERT_EQ(handled, 20u);
  ASSERT_EQ(ch.sent.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(ch.sent[i].pid, 1001 + i);
    EXPECT_EQ(ch.sent[i].gen, static_cast<std::uint64_t>((i + 1) * 3));
  }
  EXPECT_EQ(d.counters().received, 20u);
  EXPECT_EQ(d.counters().sent, 20u);
  EXPECT_EQ(d.counters().batches, 3u);
}

TEST(Dispatcher, FullDownRingWaitsInsteadOfDropping) {
  FakeChannel ch;
  ch.down_capacity = 3;
  FifoPolicy policy({});
  Dispatcher d(ch, policy, 16);
  for (int i = 0; i < 10; ++i) ch.push(make_event(1 + i));

  EXPECT_EQ(d.run_once(), 10u);
  EXPECT_EQ(ch.sent.size(), 10u);
  EXPECT_EQ(ch.space_waits, 3);  // 3 + 3 + 3 + 1
  EXPECT_EQ(d.counters().ring_full_waits, 3u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ch.sent[i].pid, 1 + i);
}

TEST(Dispatcher, GivingUpOnAFullRingOnlyWhenTold) {
  FakeChannel ch;
  ch.down_capacity = 2;
  FifoPolicy policy({});
  Dispatcher d(ch, policy, 16);
  for (int i = 0; i < 5; ++i) ch.push(make_event(1 + i));
  EXPECT_EQ(d.run_once([] { return false; }), 5u);
  EXPECT_EQ(ch.sent.size(), 2u);
  EXPECT_EQ(d.counters().sent, 2u);
}

TEST(Dispatcher, EmptyChannelReturnsZeroAndSendsNothing) {
  FakeChannel ch;
  FairPolicy policy({});
  Dispatcher d(ch, policy);
  EXPECT_EQ(d.run_once(), 0u);
  EXPECT_TRUE(ch.sent.empty());
  EXPECT_EQ(d.counters().batches, 0u);
}

TEST(Dispatcher, PolicySwitchTakesEffectAtTheNextBatch) {
  FakeChannel ch;
  PolicyConfig cfg;
  cfg.slice_ns = 1'000'000;
  FairPolicy fair(cfg);
  PolicyConfig fifo_cfg;
  fifo_cfg.slice_ns = 7'000'000;
  FifoPolicy fifo(fifo_cfg);
  Dispatcher d(ch, fair, 4);
  ch.push(make_event(1));
  d.run_once();
  EXPECT_EQ(d.policy_epoch(), 0u);
  d.request_policy(fifo);
  EXPECT_EQ(d.policy().name(), "fair");  // not before the next batch
  ch.push(make_event(2));
  d.run_once();
  ASSERT_EQ(ch.sent.size(), 2u);
  EXPECT_EQ(ch.sent[0].slice_ns, 1'000'000u);
  EXPECT_EQ(ch.sent[1].slice_ns, 7'000'000u);
  EXPECT_EQ(d.policy().name(), "fifo");
  EXPECT_EQ(d.policy_epoch(), 1u);
  EXPECT_GT(d.last_switch_first_decision_ns(), 0u);
  EXPECT_EQ(d.counters().policy_switches, 1u);
}

TEST(Dispatcher, SwitchReanchorsVirtualKeysAfterQueuedFifoKeys) {
  // Tasks queued under fifo carry their enqueue time as key; after a switch to fair, new
  // keys must not sort ahead of all of them (they would starve until the queue empties).
  FakeChannel ch;
  FifoPolicy fifo({});
  FairPolicy fair({});
  Dispatcher d(ch, fifo, 4);
  TaskEvent old = make_event(1);
  old.enq_ns = 50'000'000'000;  // 50 s of uptime
  ch.push(old);
  d.run_once();
  d.request_policy(fair);
  TaskEvent next = make_event(2);
  next.enq_ns = 50'001'000'000;  // 1 ms later
  ch.push(next);
  d.run_once();
  ASSERT_EQ(ch.sent.size(), 2u);
  EXPECT_GT(ch.sent[1].vtime, ch.sent[0].vtime);
}

TEST(Dispatcher, SwitchRequestedWhileIdleCompletesWithTheNextTask) {
  FakeChannel ch;
  FairPolicy fair({});
  FifoPolicy fifo({});
  Dispatcher d(ch, fair, 4);
  d.request_policy(fifo);
  EXPECT_EQ(d.run_once(), 0u);  // adopted, but nothing decided yet
  EXPECT_EQ(d.policy_epoch(), 0u);
  ch.push(make_event(5));
  d.run_once();
  EXPECT_EQ(d.policy_epoch(), 1u);
}

struct RecordingObserver : BatchObserver {
  void on_batch(std::span<const TaskEvent> e, std::span<const Decision> d, std::uint64_t,
                std::span<const std::uint8_t>) override {
    events += e.size();
    ASSERT_EQ(e.size(), d.size());
    for (std::size_t i = 0; i < e.size(); ++i) EXPECT_EQ(e[i].pid, d[i].pid);
    ++batches;
  }
  std::size_t events = 0, batches = 0;
};

TEST(Dispatcher, ObserverSeesEveryBatchWithItsDecisions) {
  FakeChannel ch;
  FifoPolicy policy({});
  Dispatcher d(ch, policy, 4);
  RecordingObserver obs;
  d.set_observer(&obs);
  for (int i = 0; i < 10; ++i) ch.push(make_event(100 + i));
  while (d.run_once()) {
  }
  EXPECT_EQ(obs.events, 10u);
  EXPECT_EQ(obs.batches, 3u);
}

// A direct wakeup's report (the shim ran the task already) is decided, so that the policy
// accounts for it, but not answered: a decision for it would only be cancelled in the shim.
TEST(Dispatcher, DirectWakeupReportsAreDecidedButNotAnswered) {
  FakeChannel ch;
  FairPolicy policy({});
  Dispatcher d(ch, policy, 8);
  RecordingObserver obs;
  d.set_observer(&obs);
  for (int i = 0; i < 6; ++i) {
    TaskEvent ev = make_event(100 + i);
    ev.flags = ZERNEL_TASK_WAKEUP | (i % 2 ? std::uint32_t{ZERNEL_TASK_DIRECT} : 0u);
    ch.push(ev);
  }
  EXPECT_EQ(d.run_once(), 6u);
  EXPECT_EQ(d.last_answered(), 3u);
  ASSERT_EQ(ch.sent.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(ch.sent[i].pid, 100 + 2 * i);  // in order, reports left out
  EXPECT_EQ(obs.events, 6u);                                            // the observer sees all
  EXPECT_EQ(d.counters().sent, 3u);
  EXPECT_EQ(d.counters().direct_reports, 3u);
  // The policy accounted for the reported ones too.
  EXPECT_NE(policy.tasks().find(101), nullptr);
}

TEST(Dispatcher, DirectWakeupsOffClearsTheGrantOfEveryDecision) {
  for (const bool on : {true, false}) {
    FakeChannel ch;
    FairPolicy policy({});
    Dispatcher d(ch, policy, 8);
    d.set_direct_wakeups(on);
    for (int i = 0; i < 4; ++i) ch.push(make_event(100 + i));
    d.run_once();
    ASSERT_EQ(ch.sent.size(), 4u);
    for (const Decision& dec : ch.sent)
      EXPECT_EQ((dec.flags & ZERNEL_DEC_DIRECT_WAKE) != 0, on) << dec.pid;
  }
}

}  // namespace
}  // namespace zernel
