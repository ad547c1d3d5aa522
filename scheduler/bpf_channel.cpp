#include "scheduler/bpf_channel.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace zernel {
namespace {

static_assert(std::atomic<unsigned long>::is_always_lock_free);
static_assert(sizeof(std::atomic<unsigned long>) == sizeof(unsigned long),
              "the ring positions are plain unsigned longs shared with the kernel");

constexpr std::uint32_t kBusy = BPF_RINGBUF_BUSY_BIT;
constexpr std::uint32_t kDiscard = BPF_RINGBUF_DISCARD_BIT;
constexpr std::size_t kHeader = BPF_RINGBUF_HDR_SZ;

constexpr std::size_t round_up8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

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

std::unique_ptr<BpfChannel> BpfChannel::open(int task_ring_fd, int decision_ring_fd,
                                             volatile std::uint64_t* consumed,
                                             zernel_wake_flags* wake, std::string* error) {
  std::unique_ptr<BpfChannel> ch(new BpfChannel());
  ch->task_fd_ = task_ring_fd;
  ch->decision_fd_ = decision_ring_fd;
  ch->consumed_ = consumed;
  ch->wake_ = wake;
  ch->page_size_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

  // --- Up ring: consumer page RW, producer page + data RO.
  bpf_map_info info{};
  if (!map_info(task_ring_fd, &info, "task ring", error)) return nullptr;
  if (info.type != BPF_MAP_TYPE_RINGBUF) {
    *error = "the task ring is not a BPF_MAP_TYPE_RINGBUF";
    return nullptr;
  }
  const std::size_t data_len = info.max_entries;
  ch->mask_ = data_len - 1;

  void* cons = mmap(nullptr, ch->page_size_, PROT_READ | PROT_WRITE, MAP_SHARED, task_ring_fd, 0);
  if (cons == MAP_FAILED) {
    *error = std::string("cannot map the task ring's consumer page: ") + std::strerror(errno);
    return nullptr;
  }
  ch->consumer_map_ = cons;
  ch->consumer_pos_ = static_cast<std::atomic<unsigned long>*>(cons);

  ch->producer_map_len_ = ch->page_size_ + 2 * data_len;
  void* prod = mmap(nullptr, ch->producer_map_len_, PROT_READ, MAP_SHARED, task_ring_fd,
                    static_cast<off_t>(ch->page_size_));
  if (prod == MAP_FAILED) {
    *error = std::string("cannot map the task ring's data: ") + std::strerror(errno);
    return nullptr;
  }
  ch->producer_map_ = prod;
  ch->producer_pos_ = static_cast<const std::atomic<unsigned long>*>(prod);
  ch->data_ = static_cast<const std::uint8_t*>(prod) + ch->page_size_;

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

  void* dcons = mmap(nullptr, ch->page_size_, PROT_READ, MAP_SHARED, decision_ring_fd, 0);
  if (dcons == MAP_FAILED) {
    *error = std::string("cannot map the decision ring's consumer page: ") + std::strerror(errno);
    return nullptr;
  }
  ch->down_consumer_map_ = dcons;
  ch->down_consumer_pos_ = static_cast<const std::atomic<unsigned long>*>(dcons);

  ch->down_producer_map_len_ = ch->page_size_ + 2 * down_len;
  void* dprod = mmap(nullptr, ch->down_producer_map_len_, PROT_READ | PROT_WRITE, MAP_SHARED,
                     decision_ring_fd, static_cast<off_t>(ch->page_size_));
  if (dprod == MAP_FAILED) {
    *error = std::string("cannot map the decision ring's data: ") + std::strerror(errno);
    return nullptr;
  }
  ch->down_producer_map_ = dprod;
  ch->down_producer_pos_ = static_cast<std::atomic<unsigned long>*>(dprod);
  ch->down_data_ = static_cast<std::uint8_t*>(dprod) + ch->page_size_;
  ch->down_consumer_seen_ = ch->down_consumer_pos_->load(std::memory_order_acquire);
  return ch;
}

BpfChannel::~BpfChannel() {
  if (down_producer_map_) munmap(down_producer_map_, down_producer_map_len_);
  if (down_consumer_map_) munmap(down_consumer_map_, page_size_);
  if (producer_map_) munmap(producer_map_, producer_map_len_);
  if (consumer_map_) munmap(consumer_map_, page_size_);
}

std::size_t BpfChannel::receive(std::span<TaskEvent> out) {
  // One acquire load per batch. Pairs with the release store of producer_pos in
  // bpf_ringbuf_reserve(): every header below prod has been written (with BUSY set at
  // least) by the time we read it.
  const unsigned long prod = producer_pos_->load(std::memory_order_acquire);
  // Only this thread writes consumer_pos: a relaxed load reads our own last store.
  const unsigned long start = consumer_pos_->load(std::memory_order_relaxed);
  unsigned long cons = start;
  TaskEvent* const dst = out.data();
  const std::size_t max = out.size();
  std::size_t n = 0;

  while (cons < prod && n < max) {
    const std::uint8_t* rec = data_ + (cons & mask_);
    // Per record, unavoidable with many producers: producer_pos covers records still being
    // filled. Pairs with the xchg that clears BUSY in bpf_ringbuf_submit/discard, so the
    // sample's bytes are visible once BUSY reads clear. (A plain load on x86; the mapping
    // is read-only, so a builtin rather than std::atomic_ref<const T>, which is C++26.)
    const std::uint32_t word =
        __atomic_load_n(reinterpret_cast<const std::uint32_t*>(rec), __ATOMIC_ACQUIRE);
    if (word & kBusy) break;  // reserved, not yet submitted: records stay in order
    const std::size_t len = word & ~(kBusy | kDiscard);
    if (len == sizeof(TaskEvent) && !(word & kDiscard)) [[likely]] {
      // A compile-time size: a few vector moves, not a run-time-length copy (rep movs).
      std::memcpy(dst + n, rec + kHeader, sizeof(TaskEvent));
      ++n;
    } else if (!(word & kDiscard)) {
      // The shim sends another size: copy what fits, zero the rest rather than read past
      // the record, and count it. (Discarded records are the shim's 8-byte wakeups.)
      const std::size_t copy = len < sizeof(TaskEvent) ? len : sizeof(TaskEvent);
      std::memcpy(dst + n, rec + kHeader, copy);
      std::memset(reinterpret_cast<std::uint8_t*>(dst + n) + copy, 0, sizeof(TaskEvent) - copy);
      ++n;
      ++mismatched_;
    }
    cons += round_up8(len + kHeader);
  }
  if (cons != start) {
    // One release store per batch. Pairs with the producers' acquire load of consumer_pos
    // when they compute free space: the bytes we copied are no longer needed once they see
    // the new position.
    consumer_pos_->store(cons, std::memory_order_release);
  }
  if (n) {
    consumed_total_ += n;
    *consumed_ = consumed_total_;  // one plain store per batch, read by the stall timer
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

void BpfChannel::wait_for_events(std::chrono::milliseconds timeout) {
  // Announce the sleep, then look again (seq_cst store then seq_cst load: the store may not
  // pass the load). Pairs with the producer's submit-then-read in ops.enqueue.
  __atomic_store_n(&wake_->user_sleeping, 1u, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(reinterpret_cast<const unsigned long*>(producer_pos_), __ATOMIC_SEQ_CST) ==
      consumer_pos_->load(std::memory_order_relaxed)) {
    // The ring map fd is pollable: readable when data is available. EINTR (a signal) just
    // returns so the caller can look at its stop flag.
    pollfd p{task_fd_, POLLIN, 0};
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
  return producer_pos_->load(std::memory_order_acquire) -
         consumer_pos_->load(std::memory_order_relaxed);
}

}  // namespace zernel
