#include "scheduler/dispatcher.h"

namespace zernel {

Dispatcher::Dispatcher(Channel& channel, Policy& policy, std::size_t batch)
    : channel_(channel),
      policy_(&policy),
      batch_(batch ? batch : kDefaultBatch),
      events_(std::make_unique<TaskEvent[]>(batch_)),
      decisions_(std::make_unique<Decision[]>(batch_)) {}

}  // namespace zernel
