// The message channel between the shim and the dispatcher, as an interface so that the
// dispatcher and its policies are tested against an in-memory fake (tests/unit) and run
// against the real BPF rings (bpf_channel.h) unchanged.
//
// One thread owns a Channel: every method is called from the dispatcher thread only.
// Methods work on whole batches so that the virtual call is paid once per batch.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>

#include "scheduler/messages.h"

namespace zernel {

class Channel {
 public:
  virtual ~Channel() = default;

  // Moves up to out.size() queued task events into `out`, oldest first; returns how many.
  // Never blocks, never allocates.
  virtual std::size_t receive(std::span<TaskEvent> out) = 0;

  // Queues decisions for the kernel, in order; returns how many were accepted. Fewer than
  // in.size() means the down ring is full: the caller keeps the rest and retries after
  // wait_for_space(), it must not drop them (each one is a task waiting to run).
  virtual std::size_t send(std::span<const Decision> in) = 0;

  // Blocks until events may be available, the timeout passes or a signal arrives.
  virtual void wait_for_events(std::chrono::milliseconds timeout) = 0;

  // Blocks until the down ring may have room again, or the timeout passes.
  virtual void wait_for_space(std::chrono::milliseconds timeout) = 0;
};

}  // namespace zernel
