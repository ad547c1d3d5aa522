#include "scheduler/bpf_channel.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>

namespace zernel {
namespace {

static_assert(std::atomic<unsigned long>::is_always_lock_free);
static_assert(sizeof(std::atomic<unsigned long>) == sizeof(unsigned long),
              "the ring positions are plain unsigned longs shared with the kernel");

constexpr std::uint32_t kDiscard = BPF_RINGBUF_DISCARD_BIT;
constexpr std::size_t kHeader = BPF_RINGBUF_HDR_SZ;

// A task ring position, a __u64 in a mapping that a BPF program writes too.
std::atomic_ref<__u64> position(__u64& p) { return std::atomic_ref<__u64>(p); }
static_assert(std::atomic_ref<__u64>::is_always_lock_free);

// A decision record: ring header, then a whole sample whatever its count (the shim reads
// samples in place, which takes one constant size). 8-byte aligned by construction (the
// kernel rejects a producer position that is not a multiple of 8).
constexpr std::size_t kDecisionRecord = kHeader + sizeof(DecisionSample);
static_assert(kDecisionRecord % 8 == 0);
static_assert(sizeof(DecisionSample) < (1u << 24), "a user ring sample must fit a dynptr");

// Bytes of the records that carry `n` decisions: full samples, then one partial sample.
constexpr std::size_t decision_bytes(std::size_t n) {
  return (n + kDecisionsPerSample - 1) / kDecisionsPerSample * kDecisionRecord;
}

// The header of a committed record: length, no BUSY bit, pg_off 0 (the kernel does not use
// pg_off for user ring buffers; libbpf writes 0 too). Little-endian: len is the low word.
constexpr std::uint64_t record_header(std::uint32_t len_and_flags) { return len_and_flags; }

// Maps `len` bytes of a BPF map at `offset`; nullptr with *error naming `what` on failure.
void* map_region(int fd, std::size_t len, int prot, std::size_t offset, const char* what, std::string* error) {
  void* p = mmap(nullptr, len, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p != MAP_FAILED) return p;
  *error = std::string("cannot map the ") + what + ": " + std::strerror(errno);
  return nullptr;
}

// What userspace needs of a task ring map: an array it can map, of `value_size` entries.
bool is_mmapable_array(const bpf_map_info& info, std::size_t value_size) {
  return info.type == BPF_MAP_TYPE_ARRAY && (info.map_flags & BPF_F_MMAPABLE) && info.value_size == value_size &&
         info.max_entries > 0;
}

bool map_info(int fd, bpf_map_info* info, const char* what, std::string* error) {
  std::uint32_t len = sizeof(*info);
  *info = bpf_map_info{};
  if (bpf_map_get_info_by_fd(fd, info, &len) != 0) {
    *error = std::string("cannot read the ") + what + "'s size: " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

std::uint32_t task_ring_slots_for(std::size_t ring_bytes, std::uint32_t nr_cpus) {
  const std::size_t per_cpu = ring_bytes / std::max<std::uint32_t>(nr_cpus, 1) / sizeof(TaskEvent);
  // At most 2^20 slots (112 MiB) a CPU. With a u32 budget, nr_cpus * slots, the map's u32
  // index, stays below 2^26 + nr_cpus * kMinTaskRingSlots.
  return static_cast<std::uint32_t>(std::bit_floor(std::clamp<std::size_t>(per_cpu, kMinTaskRingSlots, 1u << 20)));
}

std::unique_ptr<BpfChannel> BpfChannel::open(const TaskRingMaps& tasks, int decision_ring_fd,
                                             zernel_consumed* consumed,
                                             zernel_wake_flags* wake, std::string* error) {
  std::unique_ptr<BpfChannel> ch(new BpfChannel());
  ch->doorbell_fd_ = tasks.doorbell_fd;
  ch->decision_fd_ = decision_ring_fd;
  ch->consumed_ = consumed;
  ch->wake_ = wake;
  ch->page_size_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const auto page_round = [&](std::size_t n) { return (n + ch->page_size_ - 1) / ch->page_size_ * ch->page_size_; };

  // --- Up rings: positions RW (we write tail), messages RO.
  bpf_map_info info{};
  if (!map_info(tasks.positions_fd, &info, "task ring positions", error)) return nullptr;
  if (!is_mmapable_array(info, sizeof(zernel_task_ring_pos))) {
    *error = "the task ring positions are not an mmapable array of struct zernel_task_ring_pos "
             "(a shim built from another version); fix: rebuild the shim and the scheduler together";
    return nullptr;
  }
  ch->nr_rings_ = info.max_entries;
  if (!map_info(tasks.slots_fd, &info, "task ring slots", error)) return nullptr;
  const std::uint32_t slots = info.max_entries / ch->nr_rings_;
  if (!is_mmapable_array(info, sizeof(TaskEvent)) || !std::has_single_bit(slots) ||
      info.max_entries != slots * ch->nr_rings_) {
    *error = "the task ring slots are not an mmapable array of " + std::to_string(sizeof(TaskEvent)) +
             "-byte messages, a power of two per CPU (a shim built from another version); fix: rebuild "
             "the shim and the scheduler together";
    return nullptr;
  }
  ch->slots_per_ring_ = slots;

  ch->positions_map_len_ = page_round(std::size_t{ch->nr_rings_} * sizeof(zernel_task_ring_pos));
  ch->positions_map_ = map_region(tasks.positions_fd, ch->positions_map_len_, PROT_READ | PROT_WRITE, 0,
                                  "task ring positions", error);
  if (!ch->positions_map_) return nullptr;
  ch->positions_ = static_cast<zernel_task_ring_pos*>(ch->positions_map_);

  ch->slots_map_len_ = page_round(std::size_t{ch->nr_rings_} * slots * sizeof(TaskEvent));
  ch->slots_map_ = map_region(tasks.slots_fd, ch->slots_map_len_, PROT_READ, 0, "task ring slots", error);
  if (!ch->slots_map_) return nullptr;
  ch->slots_ = static_cast<const TaskEvent*>(ch->slots_map_);

  // --- Doorbell: a ring buffer's consumer page RW, the first page of its producer side RO.
  if (!map_info(tasks.doorbell_fd, &info, "task doorbell", error)) return nullptr;
  if (info.type != BPF_MAP_TYPE_RINGBUF) {
    *error = "the task doorbell is not a BPF_MAP_TYPE_RINGBUF";
    return nullptr;
  }
  ch->doorbell_consumer_map_ = map_region(tasks.doorbell_fd, ch->page_size_, PROT_READ | PROT_WRITE, 0,
                                          "task doorbell's consumer page", error);
  if (!ch->doorbell_consumer_map_) return nullptr;
  ch->doorbell_consumer_pos_ = static_cast<std::atomic<unsigned long>*>(ch->doorbell_consumer_map_);
  ch->doorbell_producer_map_ = map_region(tasks.doorbell_fd, ch->page_size_, PROT_READ, ch->page_size_,
                                          "task doorbell's producer page", error);
  if (!ch->doorbell_producer_map_) return nullptr;
  ch->doorbell_producer_pos_ = static_cast<const std::atomic<unsigned long>*>(ch->doorbell_producer_map_);

  // --- Down ring: consumer page RO (the kernel refuses a writable mapping of it), producer
  // page + data RW.
  if (!map_info(decision_ring_fd, &info, "decision ring", error)) return nullptr;
  if (info.type != BPF_MAP_TYPE_USER_RINGBUF) {
    *error = "the decision ring is not a BPF_MAP_TYPE_USER_RINGBUF";
    return nullptr;
  }
  const std::size_t down_len = info.max_entries;
  if (down_len < kDecisionRecord) {
    *error = "the decision ring is smaller than one decision sample";
    return nullptr;
  }
  ch->down_mask_ = down_len - 1;

  ch->down_consumer_map_ =
      map_region(decision_ring_fd, ch->page_size_, PROT_READ, 0, "decision ring's consumer page", error);
  if (!ch->down_consumer_map_) return nullptr;
  ch->down_consumer_pos_ = static_cast<const std::atomic<unsigned long>*>(ch->down_consumer_map_);

  ch->down_producer_map_len_ = ch->page_size_ + 2 * down_len;
  ch->down_producer_map_ = map_region(decision_ring_fd, ch->down_producer_map_len_, PROT_READ | PROT_WRITE,
                                      ch->page_size_, "decision ring's data", error);
  if (!ch->down_producer_map_) return nullptr;
  ch->down_producer_pos_ = static_cast<std::atomic<unsigned long>*>(ch->down_producer_map_);
  ch->down_data_ = static_cast<std::uint8_t*>(ch->down_producer_map_) + ch->page_size_;
  ch->down_consumer_seen_ = ch->down_consumer_pos_->load(std::memory_order_acquire);
  return ch;
}

BpfChannel::~BpfChannel() {
  if (down_producer_map_) munmap(down_producer_map_, down_producer_map_len_);
  if (down_consumer_map_) munmap(down_consumer_map_, page_size_);
  if (doorbell_producer_map_) munmap(doorbell_producer_map_, page_size_);
  if (doorbell_consumer_map_) munmap(doorbell_consumer_map_, page_size_);
  if (slots_map_) munmap(slots_map_, slots_map_len_);
  if (positions_map_) munmap(positions_map_, positions_map_len_);
}

std::size_t BpfChannel::receive(std::span<TaskEvent> out) {
  TaskEvent* const dst = out.data();
  const std::size_t max = out.size();
  const std::uint64_t mask = slots_per_ring_ - 1;
  std::size_t n = 0;
  std::uint32_t ring = next_ring_;
  for (std::uint32_t k = 0; k < nr_rings_ && n < max; ++k, ring = ring + 1 == nr_rings_ ? 0 : ring + 1) {
    zernel_task_ring_pos& pos = positions_[ring];
    // Pairs with the producer's xchg of head (zernel_task_publish): the slots below head
    // are filled by the time we read them.
    const std::uint64_t head = position(pos.head).load(std::memory_order_acquire);
    // Only this thread writes tail: a relaxed load reads our own last store.
    const std::uint64_t tail = position(pos.tail).load(std::memory_order_relaxed);
    if (head == tail) continue;
    // A producer never runs more than a ring ahead of tail; the bound keeps a corrupt head
    // from making us read one slot twice.
    const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>({head - tail, slots_per_ring_, max - n}));
    const TaskEvent* const base = slots_ + std::size_t{ring} * slots_per_ring_;
    // A compile-time size per message: a few vector moves, not a run-time-length copy.
    for (std::size_t i = 0; i < take; ++i) {
      std::memcpy(dst + n + i, base + ((tail + i) & mask), sizeof(TaskEvent));
      consumed_direct_ += (dst[n + i].flags & ZERNEL_TASK_DIRECT) != 0;
    }
    n += take;
    // One release store per ring per batch. Pairs with the producer's read of tail when it
    // looks for space: the slots we copied may be reused once it sees the new tail.
    position(pos.tail).store(tail + take, std::memory_order_release);
  }
  next_ring_ = ring;
  if (n) {
    consumed_total_ += n;
    // Plain stores, once per batch, read by the stall timer without ordering: a read
    // between the two is off by one batch's reports, for one timer period.
    *static_cast<volatile __u64*>(&consumed_->direct) = consumed_direct_;
    *static_cast<volatile __u64*>(&consumed_->messages) = consumed_total_;
  }
  return n;
}

std::size_t BpfChannel::send(std::span<const Decision> in) {
  if (in.empty()) return 0;
  const std::size_t size = down_mask_ + 1;
  // Only this thread writes producer_pos: a relaxed load reads our own last store.
  const unsigned long start = down_producer_pos_->load(std::memory_order_relaxed);
  // Free bytes if the drain is at `cons`. A copy read before another producer moved
  // producer_pos (only the benchmark's libbpf baseline and the host test's malformed
  // samples share the ring) can be more than a ring behind: that reads as no space, never
  // as more.
  const auto room = [&](unsigned long cons) -> std::size_t {
    const unsigned long used = start - cons;
    return used < size ? size - used : 0;
  };
  std::size_t free = room(down_consumer_seen_);
  if (free < decision_bytes(in.size())) {
    // Pairs with the drain's release store of consumer_pos (__bpf_user_ringbuf_sample_release,
    // after the BPF callback read the sample): the bytes below it are no longer read and may
    // be overwritten.
    down_consumer_seen_ = down_consumer_pos_->load(std::memory_order_acquire);
    free = room(down_consumer_seen_);
  }

  // Write the records past producer_pos, where the drain does not read (it stops at
  // producer_pos), with plain stores and their final headers (no BUSY bit: nothing is
  // visible before the publication below). A record that crosses the end of the data area
  // lands in the second mapping, which is the start of the area again. Up to
  // kDecisionsPerSample decisions a record, and only whole records.
  unsigned long pos = start;
  std::size_t n = 0;
  while (n < in.size() && free - (pos - start) >= kDecisionRecord) {
    const std::size_t count = std::min(in.size() - n, kDecisionsPerSample);
    std::uint8_t* rec = down_data_ + (pos & down_mask_);
    const std::uint64_t hdr = record_header(static_cast<std::uint32_t>(sizeof(DecisionSample)));
    const std::uint32_t sample_hdr[2] = {static_cast<std::uint32_t>(count), 0};  // count, pad
    std::memcpy(rec, &hdr, sizeof(hdr));
    std::memcpy(rec + kHeader, sample_hdr, sizeof(sample_hdr));
    // A fixed-size copy per decision: a few vector moves each. One copy of the whole run
    // compiles to rep movs, whose start-up costs more than the 640 bytes it moves. The
    // slots past `count` keep whatever an earlier lap of the ring left; nothing reads them.
    std::uint8_t* dst = rec + kHeader + kDecisionSampleHeader;
    for (std::size_t i = 0; i < count; ++i)
      std::memcpy(dst + i * sizeof(Decision), &in[n + i], sizeof(Decision));
    n += count;
    pos += kDecisionRecord;
  }
  if (n < in.size()) {
    // Full. The map fd polls writable while any byte is free, and the leftover here is
    // smaller than a record (656 bytes) but may be 8 or more, so
    // wait_for_space() would return at once and the caller would spin (libbpf's reserve had
    // the same problem). Fill the leftover with a discarded record: the ring is then exactly
    // full, poll blocks until a drain frees a record, and the drain skips discarded records
    // without calling back.
    const std::size_t rest = free - (pos - start);  // a multiple of 8
    if (rest >= kHeader) {
      const std::uint64_t hdr = record_header(static_cast<std::uint32_t>(rest - kHeader) | kDiscard);
      std::memcpy(down_data_ + (pos & down_mask_), &hdr, sizeof(hdr));
      pos += rest;
    }
  }
  if (pos != start) {
    // One release store per batch: the drain's acquire load of producer_pos
    // (__bpf_user_ringbuf_peek) then sees every header and sample written above.
    down_producer_pos_->store(pos, std::memory_order_release);
  }
  return n;
}

std::uint64_t BpfChannel::pending_messages(std::memory_order head_order) const {
  std::uint64_t n = 0;
  for (std::uint32_t r = 0; r < nr_rings_; ++r) {
    zernel_task_ring_pos& pos = positions_[r];
    // Only this thread writes tail: relaxed.
    n += position(pos.head).load(head_order) - position(pos.tail).load(std::memory_order_relaxed);
  }
  return n;
}

void BpfChannel::wait_for_events(std::chrono::milliseconds timeout) {
  // Announce the sleep, then look again (seq_cst store then seq_cst loads: the store may
  // not pass the loads). Pairs with the producer's publish-then-read in
  // zernel_task_publish().
  __atomic_store_n(&wake_->user_sleeping, 1u, __ATOMIC_SEQ_CST);
  // Mark the doorbell's earlier rings read, so that its fd polls readable only for a ring
  // from now on. Before the look at the rings: a ring read here was rung after its
  // message's head was published (acquire on producer_pos), so the look below sees that
  // message.
  doorbell_consumer_pos_->store(doorbell_producer_pos_->load(std::memory_order_acquire), std::memory_order_release);
  if (pending_messages(std::memory_order_seq_cst) == 0) {
    // The doorbell fd is readable while it holds a ring not marked read. EINTR (a signal)
    // just returns so the caller can look at its stop flag.
    pollfd p{doorbell_fd_, POLLIN, 0};
    (void)poll(&p, 1, static_cast<int>(timeout.count()));
  }
  __atomic_store_n(&wake_->user_sleeping, 0u, __ATOMIC_RELAXED);
}

void BpfChannel::wait_for_space(std::chrono::milliseconds timeout) {
  // A user ring buffer map fd polls writable while it is not completely full (send() pads a
  // full ring to exactly full, so this blocks); the drain in ops.dispatch wakes it only
  // while user_waiting_space is set. poll() re-checks the positions after queueing us on
  // the ring's wait queue, so a drain that released space before that is not missed. A
  // drain that read the flag before our store and releases space after poll's check does
  // not wake us: the next drain on any CPU (it sees the flag) does, or the timeout.
  __atomic_store_n(&wake_->user_waiting_space, 1u, __ATOMIC_SEQ_CST);
  pollfd p{decision_fd_, POLLOUT, 0};
  (void)poll(&p, 1, static_cast<int>(timeout.count()));
  __atomic_store_n(&wake_->user_waiting_space, 0u, __ATOMIC_RELAXED);
}

std::size_t BpfChannel::pending_decision_bytes() const {
  return down_producer_pos_->load(std::memory_order_relaxed) -
         down_consumer_pos_->load(std::memory_order_acquire);
}

std::size_t BpfChannel::pending_bytes() const {
  return pending_messages(std::memory_order_acquire) * sizeof(TaskEvent);
}

}  // namespace zernel
