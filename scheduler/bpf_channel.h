// The real channel: task events from the shim's BPF ring buffer, decisions into its BPF
// user ring buffer. Both rings are read and written directly on their shared pages, without
// libbpf's ring objects, and a batch at a time: each side publishes its position once per
// batch, not once per record. Memory layout and protocol are the kernel's
// (kernel/bpf/ringbuf.c, include/uapi/linux/bpf.h): a consumer position page, a producer
// position page, then the data area mapped twice back to back, so that a record that runs
// past the end of the area continues at its start through the second mapping and is read
// and written as one contiguous block. Each record: an 8-byte header {u32 len | BUSY |
// DISCARD, u32 pg_off}, then the sample, padded to 8 bytes. Positions are byte counts that
// only grow (64-bit: they never wrap); position & mask is the offset in the data area.
//
// Up ring (BPF_MAP_TYPE_RINGBUF), many BPF producers (ops.enqueue on any CPU), one consumer
// (this thread). libbpf's ring_buffer__consume() publishes the consumer position after every
// record and cannot stop at a batch limit (1.4 has no consume_n).
//   page 0 (RW): consumer_pos   written only by us, read by BPF producers to find space.
//   page 1 (RO): producer_pos   written by BPF producers (release), read by us (acquire).
//   data (RO)
// A producer reserves (advances producer_pos with the header's BUSY bit set, under the
// ring's spinlock), fills the sample, then clears BUSY with an xchg (bpf_ringbuf_submit).
// So producer_pos can run ahead of what is readable: we read each header with acquire and
// stop at the first BUSY one (records are consumed in order). Records of a size other than
// sizeof(TaskEvent) take a slow path and are counted (mismatched_records()): the shim and
// this build disagree on the ABI.
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
// consistent store and re-checks the ring; a BPF producer commits its record (an xchg, a full
// barrier) and then reads the flag. One of the two always sees the other (Dekker's pattern),
// so a record is never left unnoticed while this side sleeps.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "scheduler/channel.h"

namespace zernel {

class BpfChannel final : public Channel {
 public:
  // Maps the rings. `consumed` points into the shim's .bss: the count of task events taken
  // from the ring, which the shim's stall timer watches. `wake` (also .bss) is where this
  // side announces that it is about to block, so that producers wake it only then.
  // Returns nullptr with *error set.
  static std::unique_ptr<BpfChannel> open(int task_ring_fd, int decision_ring_fd,
                                          volatile std::uint64_t* consumed,
                                          zernel_wake_flags* wake, std::string* error);
  ~BpfChannel() override;

  std::size_t receive(std::span<TaskEvent> out) override;
  std::size_t send(std::span<const Decision> in) override;
  void wait_for_events(std::chrono::milliseconds timeout) override;
  void wait_for_space(std::chrono::milliseconds timeout) override;

  // Bytes of task events waiting in the up ring.
  std::size_t pending_bytes() const;
  // Bytes of decisions waiting in the down ring for ops.dispatch to drain.
  std::size_t pending_decision_bytes() const;
  // Task events whose record size was not sizeof(TaskEvent) (an ABI mismatch with the
  // shim): delivered truncated or zero-padded, and counted here.
  std::uint64_t mismatched_records() const { return mismatched_; }

 private:
  BpfChannel() = default;

  int task_fd_ = -1;
  int decision_fd_ = -1;
  std::size_t page_size_ = 0;

  // Up ring (task events).
  std::size_t mask_ = 0;  // data area size - 1 (a power of two)
  std::atomic<unsigned long>* consumer_pos_ = nullptr;
  const std::atomic<unsigned long>* producer_pos_ = nullptr;
  const std::uint8_t* data_ = nullptr;
  void* consumer_map_ = nullptr;
  void* producer_map_ = nullptr;
  std::size_t producer_map_len_ = 0;

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

  volatile std::uint64_t* consumed_ = nullptr;
  zernel_wake_flags* wake_ = nullptr;
  std::uint64_t consumed_total_ = 0;
  std::uint64_t mismatched_ = 0;
};

}  // namespace zernel
