#include "scheduler/policy.h"

#include "scheduler/fair_policy.h"
#include "scheduler/fifo_policy.h"

namespace zernel {

std::unique_ptr<Policy> make_policy(std::string_view name, const PolicyConfig& cfg) {
  if (name == "fair") return std::make_unique<FairPolicy>(cfg);
  if (name == "fifo") return std::make_unique<FifoPolicy>(cfg);
  return nullptr;
}

}  // namespace zernel
