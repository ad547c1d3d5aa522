// The dispatcher: the hot loop that moves tasks from the channel through a policy and
// back. One thread runs it; it owns two preallocated batch buffers and nothing else.
//
//   channel.receive(events)  ->  policy.decide(events, decisions)  ->  channel.send(decisions)
//
// Invariant: every event received is answered by exactly one decision that reaches the
// channel, in order. If the down ring is full, run_once() waits for space instead of
// dropping: a dropped decision is a task that never runs (the shim would only notice at
// the watchdog).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "scheduler/channel.h"
#include "scheduler/policy.h"

namespace zernel {

struct DispatcherCounters {
  std::uint64_t received = 0;     // task events taken from the channel
  std::uint64_t sent = 0;         // decisions accepted by the channel
  std::uint64_t batches = 0;      // non-empty run_once() passes
  std::uint64_t ring_full_waits = 0;  // times the down ring was full mid-batch
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

  // The policy for the next batch. Called from the dispatcher thread between batches.
  void set_policy(Policy& policy) { policy_ = &policy; }
  Policy& policy() const { return *policy_; }

  const DispatcherCounters& counters() const { return counters_; }
  std::size_t batch_size() const { return batch_; }

 private:
  Channel& channel_;
  Policy* policy_;
  std::size_t batch_;
  std::unique_ptr<TaskEvent[]> events_;
  std::unique_ptr<Decision[]> decisions_;
  DispatcherCounters counters_;
};

template <typename KeepWaiting>
std::size_t Dispatcher::run_once(KeepWaiting&& keep_waiting) {
  const std::span<TaskEvent> events(events_.get(), batch_);
  const std::size_t n = channel_.receive(events);
  if (n == 0) return 0;
  counters_.received += n;
  ++counters_.batches;

  const std::span<Decision> decisions(decisions_.get(), n);
  policy_->decide(events.first(n), decisions);

  std::size_t done = 0;
  while (done < n) {
    done += channel_.send(decisions.subspan(done));
    if (done < n) {
      ++counters_.ring_full_waits;
      if (!keep_waiting()) break;
      channel_.wait_for_space(std::chrono::milliseconds(10));
    }
  }
  counters_.sent += done;
  return n;
}

}  // namespace zernel
