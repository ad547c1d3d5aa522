#include "scheduler/bpf_channel.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

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

std::size_t round_up8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

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

  bpf_map_info info{};
  std::uint32_t len = sizeof(info);
  if (bpf_map_get_info_by_fd(task_ring_fd, &info, &len) != 0) {
    *error = std::string("cannot read the task ring's size: ") + std::strerror(errno);
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

  void* pos = mmap(nullptr, 2 * ch->page_size_, PROT_READ, MAP_SHARED, decision_ring_fd, 0);
  ch->down_pos_map_ = pos == MAP_FAILED ? nullptr : pos;  // occupancy is a nicety: optional
  ch->down_ = user_ring_buffer__new(decision_ring_fd, nullptr);
  if (!ch->down_) {
    *error = std::string("cannot map the decision ring: ") + std::strerror(errno);
    return nullptr;
  }
  return ch;
}

BpfChannel::~BpfChannel() {
  if (down_) user_ring_buffer__free(down_);
  if (down_pos_map_) munmap(down_pos_map_, 2 * page_size_);
  if (producer_map_) munmap(producer_map_, producer_map_len_);
  if (consumer_map_) munmap(consumer_map_, page_size_);
}

std::size_t BpfChannel::receive(std::span<TaskEvent> out) {
  // Pairs with the producer's release store of producer_pos in bpf_ringbuf_reserve().
  const unsigned long prod = producer_pos_->load(std::memory_order_acquire);
  // Only this thread writes consumer_pos: a relaxed load reads our own last store.
  unsigned long cons = consumer_pos_->load(std::memory_order_relaxed);
  std::size_t n = 0;

  while (cons < prod && n < out.size()) {
    const auto* hdr = reinterpret_cast<const std::uint32_t*>(data_ + (cons & mask_));
    // Pairs with the release store that clears BUSY in bpf_ringbuf_submit/discard.
    // (std::atomic_ref<const T> is C++26; the mapping is read-only, so a builtin load.)
    const std::uint32_t word = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
    if (word & kBusy) break;  // reserved but not yet submitted: records stay in order
    const std::size_t len = word & ~(kBusy | kDiscard);
    if (!(word & kDiscard)) {
      // Records are at least as large as what this build expects only if both sides agree
      // on the ABI; copy what fits and zero the rest rather than read past the record.
      const std::size_t copy = len < sizeof(TaskEvent) ? len : sizeof(TaskEvent);
      std::memcpy(&out[n], reinterpret_cast<const std::uint8_t*>(hdr) + kHeader, copy);
      if (copy < sizeof(TaskEvent))
        std::memset(reinterpret_cast<std::uint8_t*>(&out[n]) + copy, 0, sizeof(TaskEvent) - copy);
      ++n;
    }
    cons += round_up8(len + kHeader);
  }
  // Pairs with the producer's acquire load of consumer_pos when it computes free space:
  // the bytes we copied are no longer needed once it sees the new position.
  consumer_pos_->store(cons, std::memory_order_release);

  if (n) {
    consumed_total_ += n;
    *consumed_ = consumed_total_;  // one plain store per batch, read by the stall timer
  }
  return n;
}

std::size_t BpfChannel::send(std::span<const Decision> in) {
  std::size_t sent = 0;
  for (const Decision& d : in) {
    void* slot = user_ring_buffer__reserve(down_, sizeof(Decision));
    if (!slot) break;  // full (ENOSPC): the caller waits for space and retries the rest
    std::memcpy(slot, &d, sizeof(Decision));
    user_ring_buffer__submit(down_, slot);
    ++sent;
  }
  return sent;
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
  // A user ring buffer map fd polls writable while it is not full; the drain in ops.dispatch
  // wakes it only while user_waiting_space is set.
  __atomic_store_n(&wake_->user_waiting_space, 1u, __ATOMIC_SEQ_CST);
  pollfd p{decision_fd_, POLLOUT, 0};
  (void)poll(&p, 1, static_cast<int>(timeout.count()));
  __atomic_store_n(&wake_->user_waiting_space, 0u, __ATOMIC_RELAXED);
}

std::size_t BpfChannel::pending_decision_bytes() const {
  if (!down_pos_map_) return 0;
  const auto* base = static_cast<const std::uint8_t*>(down_pos_map_);
  const unsigned long cons =
      __atomic_load_n(reinterpret_cast<const unsigned long*>(base), __ATOMIC_ACQUIRE);
  const unsigned long prod =
      __atomic_load_n(reinterpret_cast<const unsigned long*>(base + page_size_), __ATOMIC_ACQUIRE);
  return prod - cons;
}

std::size_t BpfChannel::pending_bytes() const {
  return producer_pos_->load(std::memory_order_acquire) -
         consumer_pos_->load(std::memory_order_relaxed);
}

}  // namespace zernel
