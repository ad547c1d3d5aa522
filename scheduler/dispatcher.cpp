#include "scheduler/dispatcher.h"

#include <algorithm>

namespace zernel {

Dispatcher::Dispatcher(Channel& channel, Policy& policy, std::size_t batch)
    : channel_(channel),
      policy_(&policy),
      batch_(batch ? batch : kDefaultBatch),
      events_(std::make_unique<TaskEvent[]>(batch_)),
      decisions_(std::make_unique<Decision[]>(batch_)),
      outgoing_(std::make_unique<Decision[]>(batch_)) {}

std::span<const Decision> Dispatcher::answers(std::span<const TaskEvent> events, std::span<Decision> decisions) {
  if (!direct_wakeups_)
    for (Decision& d : decisions) d.flags &= ~std::uint64_t{ZERNEL_DEC_DIRECT_WAKE};
  std::size_t first = 0;  // the batch's first direct report, if any
  while (first < events.size() && !(events[first].flags & ZERNEL_TASK_DIRECT)) ++first;
  if (first == events.size()) return decisions;
  std::copy_n(decisions.begin(), first, outgoing_.get());
  std::size_t m = first;
  for (std::size_t i = first + 1; i < events.size(); ++i)
    if (!(events[i].flags & ZERNEL_TASK_DIRECT)) outgoing_[m++] = decisions[i];
  direct_.add(events.size() - m);
  return {outgoing_.get(), m};
}

void Dispatcher::adopt_pending_policy() {
  // Pairs with the release store in request_policy().
  Policy* next = pending_policy_.exchange(nullptr, std::memory_order_acquire);
  if (!next) return;
  policy_ = next;
  switches_.add(1);
  // The switch counts as done when the new policy has decided its first batch.
  mark_first_decision_ = true;
  activate_pending_ = true;
}

DispatcherCounters Dispatcher::counters() const {
  DispatcherCounters c;
  c.received = received_.get();
  c.sent = sent_.get();
  c.batches = batches_.get();
  c.ring_full_waits = ring_full_waits_.get();
  c.policy_switches = switches_.get();
  c.direct_reports = direct_.get();
  return c;
}

}  // namespace zernel
