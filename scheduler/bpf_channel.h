// The real channel: task events from the shim's per-CPU task rings, decisions into its BPF
// user ring buffer. Both are read and written directly on their shared pages, without
// libbpf's ring objects, and a batch at a time: each side publishes its position once per
// batch, not once per record. Positions are counts that only grow (64-bit: they never
// wrap); position & mask is the offset in the ring.
//
// Up rings (bpf_core/zernel_rings.bpf.h), one per possible CPU, each with one BPF producer
// (ops.enqueue on that CPU) and one consumer (this thread): struct zernel_task_ring_pos per
// CPU in the task_pos array, the messages in the task_slots array (slots per CPU, a power
// of two, CPU after CPU), both BPF_F_MMAPABLE.
//   task_pos (RW):  head  written by the CPU's producer (xchg: release), read by us (acquire).
//                   tail  written only by us (release), read by the producer to find space.
//   task_slots (RO): the messages, fixed-size, read in place.
// The producer fills the slot at head, then publishes head + 1; we read head, copy the
// slots up to it, then store the new tail once per ring per batch: the producer reuses a
// slot only once tail has passed it. A batch takes from the rings in turn, starting after
// the ring the previous batch stopped in, so that one busy CPU cannot hold back the others'
// tasks. Each message is whole and of one size, so there is no header to check: open()
// refuses maps whose value size is not sizeof(TaskEvent) (a shim built against another ABI).
// The sleeping consumer polls task_doorbell, a BPF ring buffer that carries no data: a
// producer rings it (a discarded record with BPF_RB_FORCE_WAKEUP) only when
// wake->user_sleeping is set (see Wakeups).
//
// Down ring (BPF_MAP_TYPE_USER_RINGBUF), one producer (this thread), one BPF consumer
// (bpf_user_ringbuf_drain in ops.dispatch; the kernel lets one CPU drain at a time).
//   page 0 (RO): consumer_pos   written by the kernel's drain (release), read by us (acquire).
//   page 1 (RW): producer_pos   written only by us (release), read by the drain (acquire).
//   data (RW)
// A sample carries up to kDecisionsPerSample decisions (struct zernel_decision_sample: an
// 8-byte {u32 count, u32 pad} header, then `count` decisions), since the kernel's drain
// costs about the same per sample whatever its size; every sample takes its whole 648
// bytes, so that the shim reads it in place; a batch of n goes out as n / K full samples
// and one partial one, in order. Unlike libbpf's
// user_ring_buffer__reserve/submit (a release store of producer_pos per reserve, then a
// locked xchg per header to clear BUSY), send() writes whole records, headers without BUSY,
// past producer_pos where the kernel does not look, then publishes them all with one
// release store of producer_pos. The drain reads producer_pos with acquire, then the header
// and the sample, so it never sees a record before its bytes. A batch that does not fit is
// accepted in part (the whole records that fit), and the
// leftover bytes are padded with a discarded record so that the ring reads as full and
// wait_for_space() sleeps (see send()). The drain consumes a sample only when ops.dispatch
// has a dispatch slot for each decision it may carry, so a sample is never half applied
// (bpf_core/zernel_rings.bpf.h).
//
// Wakeups: neither side sends a wakeup per record (each is an IPI, ~6 us in a VM). Before
// blocking, this side sets wake->user_sleeping (or user_waiting_space) with a sequentially
// consistent store and re-checks the rings; a BPF producer publishes its record (an xchg, a
// full barrier) and then reads the flag. One of the two always sees the other (Dekker's
// pattern), so a record is never left unnoticed while this side sleeps.
#pragma once

#include <bpf/libbpf.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "scheduler/channel.h"

namespace zernel {

// The task rings' maps (bpf_core/zernel_rings.bpf.h) of a loaded BPF object.
struct TaskRingMaps {
  int positions_fd = -1;  // task_pos
  int slots_fd = -1;      // task_slots
  int doorbell_fd = -1;   // task_doorbell
};

// Messages per CPU's task ring for a budget of `ring_bytes` over `nr_cpus` rings: a power
// of two, at least kMinTaskRingSlots, so that a burst of enqueues on one CPU (a thousand
// hackbench tasks woken at once) still fits while the dispatcher is scheduled in.
inline constexpr std::uint32_t kMinTaskRingSlots = 1024;
std::uint32_t task_ring_slots_for(std::size_t ring_bytes, std::uint32_t nr_cpus);

// Sizes the task rings of a BPF object before it is loaded, the same way for the shim, the
// host test and the benchmark: `slots` messages (a power of two) for each of `nr_cpus`
// CPUs, and a one-page doorbell. The BPF side reads `slots` from task_ring_slots.
template <typename Skeleton>
void size_task_rings(Skeleton* skel, std::uint32_t nr_cpus, std::uint32_t slots) {
  skel->rodata->task_ring_slots = slots;
  bpf_map__set_max_entries(skel->maps.task_pos, nr_cpus);
  bpf_map__set_max_entries(skel->maps.task_slots, nr_cpus * slots);
  bpf_map__set_max_entries(skel->maps.task_doorbell, static_cast<std::uint32_t>(sysconf(_SC_PAGESIZE)));
}

template <typename Skeleton>
TaskRingMaps task_ring_maps(const Skeleton* skel) {
  return {bpf_map__fd(skel->maps.task_pos), bpf_map__fd(skel->maps.task_slots),
          bpf_map__fd(skel->maps.task_doorbell)};
}

class BpfChannel final : public Channel {
 public:
  // Maps the rings. `consumed` points into the shim's .bss: the count of task events taken
  // from the rings (and of the direct wakeup reports among them), which the shim's stall
  // timer watches. `wake` (also .bss) is where this
  // side announces that it is about to block, so that producers wake it only then.
  // Returns nullptr with *error set.
  static std::unique_ptr<BpfChannel> open(const TaskRingMaps& tasks, int decision_ring_fd,
                                          zernel_consumed* consumed,
                                          zernel_wake_flags* wake, std::string* error);
  ~BpfChannel() override;

  std::size_t receive(std::span<TaskEvent> out) override;
  std::size_t send(std::span<const Decision> in) override;
  void wait_for_events(std::chrono::milliseconds timeout) override;
  void wait_for_space(std::chrono::milliseconds timeout) override;

  // Bytes of task events waiting in the up rings.
  std::size_t pending_bytes() const;
  // Bytes of decisions waiting in the down ring for ops.dispatch to drain.
  std::size_t pending_decision_bytes() const;
  std::uint32_t task_rings() const { return nr_rings_; }
  std::uint32_t task_ring_slots() const { return slots_per_ring_; }

 private:
  BpfChannel() = default;
  // Messages waiting in the up rings, each head read with `head_order` (wait_for_events
  // needs seq_cst: see there).
  std::uint64_t pending_messages(std::memory_order head_order) const;

  int doorbell_fd_ = -1;
  int decision_fd_ = -1;
  std::size_t page_size_ = 0;

  // Up rings (task events).
  std::uint32_t nr_rings_ = 0;
  std::uint32_t slots_per_ring_ = 0;  // a power of two
  zernel_task_ring_pos* positions_ = nullptr;  // nr_rings_ of them
  const TaskEvent* slots_ = nullptr;           // nr_rings_ * slots_per_ring_ of them
  std::uint32_t next_ring_ = 0;                // where the next batch starts taking
  void* positions_map_ = nullptr;
  std::size_t positions_map_len_ = 0;
  void* slots_map_ = nullptr;
  std::size_t slots_map_len_ = 0;
  // The doorbell's positions (a BPF ring buffer's consumer and producer pages): only to
  // mark its wakeup records read, so that its fd polls readable for new ones only.
  std::atomic<unsigned long>* doorbell_consumer_pos_ = nullptr;
  const std::atomic<unsigned long>* doorbell_producer_pos_ = nullptr;
  void* doorbell_consumer_map_ = nullptr;
  void* doorbell_producer_map_ = nullptr;

  // Down ring (decisions).
  std::size_t down_mask_ = 0;
  const std::atomic<unsigned long>* down_consumer_pos_ = nullptr;
  std::atomic<unsigned long>* down_producer_pos_ = nullptr;
  std::uint8_t* down_data_ = nullptr;
  void* down_consumer_map_ = nullptr;
  void* down_producer_map_ = nullptr;
  std::size_t down_producer_map_len_ = 0;
  // The drain's position as last read. It only grows, so a stale copy understates the free
  // space, never overstates it: send() reads the kernel's page again only when the copy
  // says a batch does not fit, not once per batch.
  unsigned long down_consumer_seen_ = 0;

  zernel_consumed* consumed_ = nullptr;
  zernel_wake_flags* wake_ = nullptr;
  std::uint64_t consumed_total_ = 0;
  std::uint64_t consumed_direct_ = 0;
};

}  // namespace zernel
