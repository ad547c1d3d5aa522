// The dispatcher: the hot loop that moves tasks from the channel through a policy and
// back. One thread runs it; it owns two preallocated batch buffers and nothing else.
//
//   channel.receive(events)  ->  policy.decide(events, decisions)  ->  channel.send(decisions)
//                                        `-> observer.on_batch(events, decisions, decide time)
//
// Invariant: every event received that awaits a decision is answered by exactly one
// decision that reaches the channel, in order. If the down ring is full, run_once() waits
// for space instead of dropping: a dropped decision is a task that never runs (the shim
// would only notice at the watchdog). A direct wakeup's report (ZERNEL_TASK_DIRECT: the
// shim already ran the task on an idle CPU under its grant) awaits none: the policy decides
// it like any event, so that its accounting sees the task's CPU time and wakeup, and its
// decision is not sent.
//
// Threads: run_once() and everything it calls run on the dispatcher thread. Other threads
// (the agent's control thread) may read counters() and call request_policy() at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "scheduler/channel.h"
#include "scheduler/policy.h"

namespace zernel {

// A counter with one writer and any number of readers: a relaxed load + store instead of
// a locked read-modify-write, since no other thread ever writes it. Readers see a value
// that was current at some recent point, which is all a statistic needs.
class SingleWriterCounter {
 public:
  void add(std::uint64_t n) { v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

struct DispatcherCounters {
  std::uint64_t received = 0;         // task events taken from the channel
  std::uint64_t sent = 0;             // decisions accepted by the channel
  std::uint64_t batches = 0;          // non-empty run_once() passes
  std::uint64_t ring_full_waits = 0;  // times the down ring was full mid-batch
  std::uint64_t policy_switches = 0;  // policies taken over from request_policy()
  std::uint64_t direct_reports = 0;   // events that were direct wakeups: decided, not sent
};

// Sees every batch after the policy decided it, on the dispatcher thread: the place for
// latency histograms and tracing. Must not allocate, lock or make system calls.
class BatchObserver {
 public:
  virtual ~BatchObserver() = default;
  // `phases`: Policy::batch_phases() of the batch (may be empty).
  virtual void on_batch(std::span<const TaskEvent> events, std::span<const Decision> decisions,
                        std::uint64_t decide_ns, std::span<const std::uint8_t> phases) = 0;
};

class Dispatcher {
 public:
  static constexpr std::size_t kDefaultBatch = 512;

  // Allocates the batch buffers, here and only here.
  Dispatcher(Channel& channel, Policy& policy, std::size_t batch = kDefaultBatch);

  // One pass: receive up to a batch, decide, send all of it. Returns the number of tasks
  // handled (0 = nothing queued). `keep_waiting` is asked while the down ring stays full;
  // returning false abandons the rest of the batch (only when the process is detaching,
  // which hands every task back to the kernel anyway).
  template <typename KeepWaiting>
  std::size_t run_once(KeepWaiting&& keep_waiting);

  std::size_t run_once() {
    return run_once([] { return true; });
  }

  // Any thread: the policy for the batches after the current one. The policy object must
  // outlive the dispatcher (the agent keeps every policy for the whole run, so a switch
  // allocates nothing). Returns at once; policy_epoch() advances when it takes effect.
  void request_policy(Policy& policy) { pending_policy_.store(&policy, std::memory_order_release); }

  // Any thread: how many switches have taken effect, and when the last one did (steady
  // clock ns of the first batch decided by it; 0 before any switch).
  std::uint64_t policy_epoch() const { return epoch_.load(std::memory_order_acquire); }
  std::uint64_t last_switch_first_decision_ns() const {
    return first_decision_ns_.load(std::memory_order_relaxed);
  }

  // Dispatcher thread only (or before the loop starts).
  Policy& policy() const { return *policy_; }
  // The events of the last non-empty run_once(), valid until the next one.
  std::span<const TaskEvent> last_batch() const { return {events_.get(), last_n_}; }
  // How many of them awaited a decision (not direct wakeup reports).
  std::size_t last_answered() const { return last_answered_; }
  // Whether decisions may carry ZERNEL_DEC_DIRECT_WAKE (the policies ask for it; off, the
  // dispatcher clears it, and every wakeup comes up for a decision). Before the loop starts.
  void set_direct_wakeups(bool on) { direct_wakeups_ = on; }
  void set_observer(BatchObserver* observer) { observer_ = observer; }
  // Where the number of waiting tasks is published (the shim's .bss); read once per batch.
  void set_load_source(const volatile std::uint64_t* nr_waiting) { load_ = nr_waiting; }

  // Any thread.
  DispatcherCounters counters() const;
  std::size_t batch_size() const { return batch_; }

 private:
  static std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }
  void adopt_pending_policy();

  Channel& channel_;
  Policy* policy_;
  BatchObserver* observer_ = nullptr;
  const volatile std::uint64_t* load_ = nullptr;
  std::size_t batch_;
  std::size_t last_n_ = 0;
  std::size_t last_answered_ = 0;
  bool direct_wakeups_ = true;
  std::unique_ptr<TaskEvent[]> events_;
  std::unique_ptr<Decision[]> decisions_;
  std::unique_ptr<Decision[]> outgoing_;  // a batch's decisions without the direct reports'
  // What of `decisions` goes down: all of it (the same span) unless the batch holds direct
  // wakeup reports, whose decisions are left out (copied to outgoing_, in order).
  std::span<const Decision> answers(std::span<const TaskEvent> events, std::span<Decision> decisions);

  // Written by request_policy() (any thread, release), taken by the dispatcher thread
  // (acquire exchange), so the policy object's state is visible before it is used.
  std::atomic<Policy*> pending_policy_{nullptr};
  bool mark_first_decision_ = false;
  bool activate_pending_ = true;  // the initial policy is activated by the first batch too
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<std::uint64_t> first_decision_ns_{0};

  SingleWriterCounter received_, sent_, batches_, ring_full_waits_, switches_, direct_;
};

template <typename KeepWaiting>
std::size_t Dispatcher::run_once(KeepWaiting&& keep_waiting) {
  // A relaxed peek first: the common case (no switch pending) costs a plain load per batch.
  if (pending_policy_.load(std::memory_order_relaxed) != nullptr) adopt_pending_policy();

  const std::span<TaskEvent> events(events_.get(), batch_);
  const std::size_t n = channel_.receive(events);
  if (n == 0) return 0;
  last_n_ = n;
  received_.add(n);
  batches_.add(1);

  const std::span<Decision> decisions(decisions_.get(), n);
  if (activate_pending_) {
    activate_pending_ = false;
    policy_->activate(events[0].enq_ns);
  }
  if (load_) policy_->set_load(*load_);
  const std::uint64_t t0 = now_ns();
  policy_->decide(events.first(n), decisions);
  const std::uint64_t t1 = now_ns();
  if (mark_first_decision_) {
    mark_first_decision_ = false;
    first_decision_ns_.store(t1, std::memory_order_relaxed);
    epoch_.store(epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }

  const std::span<const Decision> out = answers(events.first(n), decisions);
  last_answered_ = out.size();
  std::size_t done = 0;
  while (done < out.size()) {
    done += channel_.send(out.subspan(done));
    if (done < out.size()) {
      ring_full_waits_.add(1);
      if (!keep_waiting()) break;
      channel_.wait_for_space(std::chrono::milliseconds(10));
    }
  }
  sent_.add(done);
  if (observer_) observer_->on_batch(events.first(n), decisions, t1 - t0, policy_->batch_phases());
  return n;
}

}  // namespace zernel
