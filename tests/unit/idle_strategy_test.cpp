#include "scheduler/idle_strategy.h"

#include <gtest/gtest.h>

namespace zernel {
namespace {

using namespace std::chrono_literals;
using Clock = IdleStrategy::Clock;

// A batch of woken tasks: `queued` waiting, `unplaced` beyond the idle CPUs (one idle CPU).
IdleStrategy::BatchDemand woken(std::int64_t queued, std::int64_t unplaced) {
  return {.queued = queued, .sent = unplaced + 1, .requeued = 0, .idle = 1};
}

// Polls until the strategy says sleep or `limit` polls have passed; returns the polls made
// and how often it read the waiting count.
struct PollRun {
  unsigned polls = 0;
  unsigned looks = 0;
};
PollRun poll_until_sleep(IdleStrategy& s, Clock::time_point now, std::int64_t waiting,
                         unsigned limit = 10 * IdleStrategy::kPollsPerLook) {
  PollRun r;
  while (r.polls < limit && s.when_empty(now, [&] {
           ++r.looks;
           return waiting;
         }) == IdleAction::kPoll) {
    ++r.polls;
  }
  return r;
}

TEST(IdleStrategy, SpinZeroNeverYieldsNorPolls) {
  const auto t0 = Clock::now();
  IdleStrategy s(0us, 2, t0);
  EXPECT_FALSE(s.spinning_enabled());
  EXPECT_FALSE(s.after_batch(t0, woken(0, 0)));
  EXPECT_EQ(s.when_empty(t0, [] { return std::int64_t{0}; }), IdleAction::kSleep);
}

TEST(IdleStrategy, NeverSpinsOnOneCpu) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 1, t0);
  EXPECT_FALSE(s.spinning_enabled());
  EXPECT_FALSE(s.after_batch(t0, woken(0, 0)));
  EXPECT_EQ(s.when_empty(t0 + 1us, [] { return std::int64_t{0}; }), IdleAction::kSleep);
}

TEST(IdleStrategy, YieldsAfterABatchAndPollsUntilTheSpinRunsOut) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 2, t0);
  EXPECT_TRUE(s.after_batch(t0, woken(0, 0)));
  // Nothing waits: it polls, reading the count once per kPollsPerLook polls.
  const PollRun r = poll_until_sleep(s, t0 + 10us, 0);
  EXPECT_EQ(r.polls, 10 * IdleStrategy::kPollsPerLook);
  EXPECT_EQ(r.looks, 10u);
  EXPECT_EQ(s.when_empty(t0 + 199us, [] { return std::int64_t{0}; }), IdleAction::kPoll);
  EXPECT_EQ(s.when_empty(t0 + 200us, [] { return std::int64_t{0}; }), IdleAction::kSleep);
}

TEST(IdleStrategy, SleepsRightAfterABatchThatLeavesTasksWaiting) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 2, t0);
  EXPECT_FALSE(s.after_batch(t0, woken(1, 0)));  // no yield: sleeping frees this CPU for the waiting task
  EXPECT_EQ(s.when_empty(t0 + 1us, [] { return std::int64_t{0}; }), IdleAction::kSleep);
  // The next batch decides afresh.
  EXPECT_TRUE(s.after_batch(t0 + 2us, woken(0, 0)));
  EXPECT_EQ(s.when_empty(t0 + 3us, [] { return std::int64_t{0}; }), IdleAction::kPoll);
}

TEST(IdleStrategy, OneUnplacedTaskOfABatchIsAllowedTwoAreNot) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 2, t0);
  EXPECT_TRUE(s.after_batch(t0, woken(0, 1)));  // a pipe's reader, behind its writer
  EXPECT_EQ(s.when_empty(t0 + 1us, [] { return std::int64_t{0}; }), IdleAction::kPoll);
  EXPECT_FALSE(s.after_batch(t0 + 2us, woken(0, 2)));  // more tasks than CPUs
  EXPECT_EQ(s.when_empty(t0 + 3us, [] { return std::int64_t{0}; }), IdleAction::kSleep);
  EXPECT_TRUE(s.after_batch(t0 + 4us, woken(0, -3)));  // idle CPUs to spare
}

TEST(IdleStrategy, ATaskThatWasRunningAndFindsNoIdleCpuStopsTheSpin) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 2, t0);
  // A CPU hog's slice ran out, no CPU is idle: it would wait for this one.
  EXPECT_FALSE(s.after_batch(t0, {.queued = 0, .sent = 1, .requeued = 1, .idle = 0}));
  EXPECT_EQ(s.when_empty(t0 + 1us, [] { return std::int64_t{0}; }), IdleAction::kSleep);
  // With an idle CPU to take it, spinning holds nobody up.
  EXPECT_TRUE(s.after_batch(t0 + 2us, {.queued = 0, .sent = 1, .requeued = 1, .idle = 1}));
  // A woken task alone is the allowed one.
  EXPECT_TRUE(s.after_batch(t0 + 3us, {.queued = 0, .sent = 1, .requeued = 0, .idle = 0}));
}

TEST(IdleStrategy, ABriefWaitWhilePollingDoesNotStopTheSpin) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 2, t0);
  ASSERT_TRUE(s.after_batch(t0, woken(0, 0)));
  // Tasks wait at looks spanning less than the grace (a pipe's reader queued behind its
  // writer): still polling.
  EXPECT_EQ(poll_until_sleep(s, t0 + 10us, 1).polls, 10 * IdleStrategy::kPollsPerLook);
  EXPECT_EQ(poll_until_sleep(s, t0 + 10us + IdleStrategy::kWaitGrace - 1us, 1).polls,
            10 * IdleStrategy::kPollsPerLook);
  // Then none waits: the clock restarts.
  EXPECT_EQ(poll_until_sleep(s, t0 + 70us, 0).polls, 10 * IdleStrategy::kPollsPerLook);
  EXPECT_EQ(poll_until_sleep(s, t0 + 80us, 1).polls, 10 * IdleStrategy::kPollsPerLook);
}

TEST(IdleStrategy, TasksWaitingAtEveryLookForTheGraceStopTheSpin) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 2, t0);
  ASSERT_TRUE(s.after_batch(t0, woken(0, 0)));
  EXPECT_EQ(poll_until_sleep(s, t0 + 10us, 2).polls, 10 * IdleStrategy::kPollsPerLook);
  const PollRun r = poll_until_sleep(s, t0 + 10us + IdleStrategy::kWaitGrace, 2);
  EXPECT_LT(r.polls, IdleStrategy::kPollsPerLook);  // stopped at the first look
  EXPECT_EQ(r.looks, 1u);
  // And stays stopped until it has slept.
  EXPECT_EQ(s.when_empty(t0 + 100us, [] { return std::int64_t{0}; }), IdleAction::kSleep);
}

TEST(IdleStrategy, AWakeupWithNothingToDoDoesNotStartASpin) {
  const auto t0 = Clock::now();
  IdleStrategy s(200us, 2, t0);
  ASSERT_TRUE(s.after_batch(t0, woken(0, 0)));
  EXPECT_EQ(s.when_empty(t0 + 300us, [] { return std::int64_t{0}; }), IdleAction::kSleep);
  s.woke();  // the sleep's timeout, 100 ms later
  EXPECT_EQ(s.when_empty(t0 + 100ms, [] { return std::int64_t{0}; }), IdleAction::kSleep);
  // A batch after the wakeup spins again.
  EXPECT_TRUE(s.after_batch(t0 + 100ms, woken(0, 0)));
  EXPECT_EQ(s.when_empty(t0 + 100ms + 1us, [] { return std::int64_t{0}; }), IdleAction::kPoll);
}

}  // namespace
}  // namespace zernel
