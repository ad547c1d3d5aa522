// What the dispatcher thread does between batches: yield, poll or sleep.
//
// Sleeping costs a wakeup per burst of events: the shim rings the doorbell (an interrupt on the
// producing CPU), the kernel wakes this thread (a kick and a context switch on some CPU), and
// switches away again when it sleeps. For a strictly serial workload (a pipe's ping-pong, a
// request/response loop) that is paid on every wakeup, and in the VM it was most of a pipe
// round trip's extra time over EEVDF. Spinning instead (spin > 0):
//  - after a batch, the thread yields: the shim drains the decision ring in ops.dispatch, which
//    runs on this CPU as it yields, so the batch is applied at once and the thread runs on;
//  - with the rings empty, it polls them (no system call) until `spin` has passed since the last
//    batch, then sleeps as before.
// A spinning dispatcher holds a CPU, so it spins only while no task waits for one (the shim's
// count, Shim::tasks_waiting()):
//  - right after a batch any task queued counts (sleeping then frees this CPU for it), and so
//    do the batch's tasks beyond the idle CPUs: all of those that were running, all but one
//    of those just woken (see after_batch());
//  - while polling, tasks count only if they were waiting at every look for kWaitGrace: a task
//    that waits only until its CPU's current task blocks (a pipe's reader, just woken, queued
//    behind the writer about to sleep) runs within that time anyway.
// The same rules as scx_rustland's yielding scheduler and ghOSt's spinning agents, bounded by
// what the machine has to spare.
//
// Pure logic: the caller passes the time and the count, so tests drive it without a kernel.
// Used by the dispatcher thread only.
#pragma once

#include <chrono>
#include <cstdint>

namespace zernel {

// Tells the core that the calling thread polls memory (x86 pause, arm64 yield): a sibling
// hyperthread gets the pipeline meanwhile, and the loop does not flood the memory system.
inline void cpu_relax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

enum class IdleAction { kPoll, kSleep };

class IdleStrategy {
 public:
  using Clock = std::chrono::steady_clock;
  // How long tasks must have been waiting, at every look, to stop a spin while polling.
  static constexpr std::chrono::microseconds kWaitGrace{50};
  // The waiting count is read every this many polls: it reads every CPU's counters, lines
  // the CPUs write on every context switch.
  static constexpr unsigned kPollsPerLook = 32;
  static constexpr std::int64_t kUnplacedAllowed = 1;

  // spin 0: never poll nor yield, sleep whenever the rings are empty. Nor on a machine with
  // one CPU: there the dispatcher spinning is the dispatcher holding the CPU that every task
  // it just placed waits for.
  IdleStrategy(std::chrono::microseconds spin, std::uint32_t nr_cpus, Clock::time_point now = Clock::now())
      : spin_(nr_cpus > 1 ? spin : std::chrono::microseconds{0}), last_batch_(now) {}

  bool spinning_enabled() const { return spin_.count() > 0; }

  // What a batch leaves for the CPUs, read as it is sent.
  struct BatchDemand {
    std::int64_t queued = 0;    // tasks waiting in the shim's queues
    std::int64_t sent = 0;      // the batch's tasks
    std::int64_t requeued = 0;  // of those, tasks that were running (a slice expiry, a preemption)
    std::int64_t idle = 0;      // CPUs running nothing
  };

  // A batch was sent. Returns whether to yield (spin on) rather than go on to sleep when the
  // rings are empty. It sleeps when a task is queued, when the batch holds more tasks that
  // were running than there are idle CPUs (they want a CPU now and would wait for this one),
  // or more tasks than idle CPUs by more than one. One woken task is allowed: the one a waker
  // about to block has just woken (a pipe's reader, the reply to a request) runs on the
  // waker's CPU within a moment.
  bool after_batch(Clock::time_point now, const BatchDemand& d) {
    if (!spinning_enabled()) return false;
    last_batch_ = now;
    stop_ = d.queued > 0 || d.requeued > d.idle || d.sent - d.idle > kUnplacedAllowed;
    if (!stop_) waiting_since_ = {};
    return !stop_;
  }

  // The rings are empty. `waiting` is called (for the shim's count) only every kPollsPerLook
  // polls.
  template <typename WaitingFn>
  IdleAction when_empty(Clock::time_point now, WaitingFn&& waiting) {
    if (!spinning_enabled() || stop_ || now - last_batch_ >= spin_) return IdleAction::kSleep;
    if (++polls_ % kPollsPerLook == 0) look(now, waiting());
    return stop_ ? IdleAction::kSleep : IdleAction::kPoll;
  }

  // Back from a sleep. The time of the last batch stays: a wakeup with nothing to do (the
  // sleep's timeout) is no reason to spin.
  void woke() {
    stop_ = false;
    waiting_since_ = {};
  }

 private:
  void look(Clock::time_point now, std::int64_t waiting) {
    if (waiting <= 0) {
      waiting_since_ = {};
      return;
    }
    if (waiting_since_ == Clock::time_point{}) waiting_since_ = now;
    stop_ = now - waiting_since_ >= kWaitGrace;
  }

  std::chrono::microseconds spin_;
  Clock::time_point last_batch_;
  Clock::time_point waiting_since_{};  // the epoch while no look saw a task waiting
  bool stop_ = false;                  // sleep when the rings are next empty
  unsigned polls_ = 0;
};

}  // namespace zernel
