// The real channel: task events from the shim's BPF ring buffer, decisions into its BPF
// user ring buffer.
//
// Up ring (BPF_MAP_TYPE_RINGBUF), read without libbpf's callback consumer: its
// ring_buffer__consume() publishes the consumer position after every record and cannot
// stop at a batch limit (libbpf 1.4 has no consume_n). This reader copies up to a batch of
// records, then publishes the consumer position once. Memory layout and protocol are the
// kernel's (kernel/bpf/ringbuf.c, include/uapi/linux/bpf.h):
//   page 0 (RW): consumer_pos   — written only by us, read by BPF producers to find space.
//   page 1 (RO): producer_pos   — written by BPF producers (release), read by us (acquire).
//   pages 2.. (RO): the data area, mapped twice back to back so records never wrap.
// Each record: an 8-byte header {u32 len | BUSY | DISCARD, u32 pg_off}, then the sample,
// padded to 8 bytes. BUSY is cleared by bpf_ringbuf_submit with a release store; we read
// the header with acquire, so the sample bytes are visible once BUSY is clear.
//
// Down ring (BPF_MAP_TYPE_USER_RINGBUF): libbpf's user_ring_buffer, single producer (this
// thread). No system call per record: reserve/submit are loads and stores on shared pages.
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

struct user_ring_buffer;

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

 private:
  BpfChannel() = default;

  int task_fd_ = -1;
  int decision_fd_ = -1;
  std::size_t page_size_ = 0;
  std::size_t mask_ = 0;  // data area size - 1 (a power of two)
  std::atomic<unsigned long>* consumer_pos_ = nullptr;
  const std::atomic<unsigned long>* producer_pos_ = nullptr;
  const std::uint8_t* data_ = nullptr;
  void* consumer_map_ = nullptr;
  void* producer_map_ = nullptr;
  std::size_t producer_map_len_ = 0;
  user_ring_buffer* down_ = nullptr;
  // The down ring's two position pages, mapped again read-only to read its occupancy
  // (libbpf does not expose it). Page 0: consumer (the kernel), page 1: producer (us).
  void* down_pos_map_ = nullptr;
  volatile std::uint64_t* consumed_ = nullptr;
  zernel_wake_flags* wake_ = nullptr;
  std::uint64_t consumed_total_ = 0;
};

}  // namespace zernel
