// In-memory Channel for unit tests: a deque of task events going up, a vector of
// decisions coming down, and a settable capacity for the down ring to exercise the
// "ring full" path.
#pragma once

#include <algorithm>
#include <cstddef>
#include <deque>
#include <limits>
#include <vector>

#include "scheduler/channel.h"

namespace zernel::testing {

class FakeChannel final : public Channel {
 public:
  void push(const TaskEvent& ev) { up_.push_back(ev); }

  std::size_t receive(std::span<TaskEvent> out) override {
    std::size_t n = std::min(out.size(), up_.size());
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = up_.front();
      up_.pop_front();
    }
    return n;
  }

  std::size_t send(std::span<const Decision> in) override {
    std::size_t room = down_capacity - in_ring;
    std::size_t n = std::min(room, in.size());
    for (std::size_t i = 0; i < n; ++i) sent.push_back(in[i]);
    in_ring += n;
    return n;
  }

  void wait_for_events(std::chrono::milliseconds) override { ++event_waits; }

  // The "kernel" drains the ring while we wait for space.
  void wait_for_space(std::chrono::milliseconds) override {
    ++space_waits;
    in_ring = 0;
  }

  std::vector<Decision> sent;
  std::size_t down_capacity = std::numeric_limits<std::size_t>::max();
  std::size_t in_ring = 0;
  int event_waits = 0;
  int space_waits = 0;

 private:
  std::deque<TaskEvent> up_;
};

inline TaskEvent make_event(int pid, std::uint64_t gen = 1) {
  TaskEvent ev{};
  ev.pid = pid;
  ev.tgid = pid;
  ev.prev_cpu = 0;
  ev.nr_cpus_allowed = 4;
  ev.weight = 100;
  ev.gen = gen;
  return ev;
}

}  // namespace zernel::testing
