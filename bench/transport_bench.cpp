// The transport on this host's kernel, leg by leg, against plain libbpf.
//
//   produce (BPF)   transport.bpf.c `produce`: reserve + fill + publish into the shim's task
//                   ring of this CPU (zernel_rings.bpf.h)
//   consume         BpfChannel::receive, a batch at a time
//   submit          BpfChannel::send, a batch at a time
//   drain (BPF)     transport.bpf.c `drain`: the shim's drain (zernel_rings.bpf.h), samples of
//                   up to ZERNEL_DECISIONS_PER_SAMPLE decisions, a batch per call
//
// Then what the BPF legs are made of (the shim's clock vs. bpf_ktime_get_ns, the ring
// alone, a call per decision in the drain). The baseline is plain libbpf end to end: the
// same messages through a BPF_MAP_TYPE_RINGBUF (transport.bpf.c `produce_ringbuf`, the
// shim's design before its per-CPU rings) consumed by ring_buffer__consume, and decisions
// by user_ring_buffer__reserve/submit.
//
// BPF legs follow the shim's wakeup protocol (transport.bpf.c): no wakeup while the
// dispatcher is awake. Every leg runs with a backlog: the ring holds a whole chunk when a consuming leg starts,
// which is the dispatcher under load, where ns per task matters. Userspace legs are timed
// around the whole loop of calls (one clock_gettime pair per chunk); BPF legs time
// themselves in the program (see transport.bpf.c) minus the cost of their clock pair.
// Each figure is the median of --reps runs, to ride out other load on the machine.
//
// Needs root (loads BPF programs).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "scheduler/bpf_channel.h"

// The skeleton names this type of transport.bpf.c's .data; it must be complete here.
struct bench_task_ctx {
  std::uint64_t runtime, burst, last_burst, gen;
  std::int32_t waker_pid, waker_tgid;
  std::uint32_t iowait, weight;
  std::uint64_t enq_at, decided_at, started_at;
  std::uint32_t sleep, futex_waits, in_user, pad;
};

#include "transport.skel.h"

namespace {

using zernel::BpfChannel;
using zernel::Decision;
using zernel::TaskEvent;

// The shim's ring sizes (the loader's defaults).
constexpr std::uint32_t kTaskRingBytes = 4u << 20;
constexpr std::uint32_t kDecisionRingBytes = 1u << 20;
// Tasks per backlog chunk, at most; Bench also caps it at half of every ring, so that no
// leg ever sees a full ring: up, one CPU's task ring (a chunk may all come from one CPU)
// and the baseline's ring buffer (records of sizeof(TaskEvent) + 8); down, whole samples of
// K decisions each (a batch of 64 takes 4 samples, a batch of 1 a whole sample too). With
// the default rings the decision ring is the limit at batch 1 and 8 (799 and 6392 tasks),
// the task ring from batch 64 on (chunk_for()).
constexpr std::size_t kMaxChunk = 16384;
constexpr std::size_t kPerSample = zernel::kDecisionsPerSample;
// Ring bytes of a decision sample (ring header, the whole sample).
constexpr std::size_t kSampleRecordBytes = 8 + sizeof(zernel::DecisionSample);

// The dispatch slots a drain call gets: a batch rounded up to whole samples, so that a
// call drains exactly one of the dispatcher's batches (floor(batch / K) full samples and a
// partial one) and stops, as the drain did per batch before samples were batched. The
// shim's ops.dispatch has 128 per call; batch 512 here takes 512.
std::uint32_t slots_for(std::size_t batch) {
  return static_cast<std::uint32_t>((batch + kPerSample - 1) / kPerSample * kPerSample);
}
constexpr std::size_t kDefaultBatches[] = {1, 8, 64, 512};

struct ProduceArgs {  // struct produce_args in transport.bpf.c
  std::uint32_t count;
  std::uint32_t legacy;
  std::uint32_t clock;
  std::uint32_t variant;
};
struct DrainArgs {  // struct drain_args in transport.bpf.c
  std::uint32_t slots;
  std::uint32_t legacy;
  std::uint32_t clock;
  std::uint32_t variant;
};
// How the BPF legs wake the other side.
enum Wakeups : std::uint32_t {
  kShim = 0,    // the shim's protocol: NO_WAKEUP, wake only if the wake flags say so
  kLegacy = 1,  // a wakeup per record: the doorbell rung every time; flags 0 on the ring
                // buffer helpers (the kernel's default: an irq_work self-IPI per batch or record)
};
// What the BPF legs run (transport.bpf.c). The default is the shim on a 6.14+ kernel.
enum Clock : std::uint32_t { kRqClock = 0, kKtime = 1 };
enum ProduceVariant : std::uint32_t { kProduceShim = 0, kProduceFloor = 1 };
enum DrainVariant : std::uint32_t { kDrainShim = 0, kDrainStep1 = 1, kDrainFloor = 2 };
struct Config {
  Clock clock = kRqClock;
  ProduceVariant produce = kProduceShim;
  DrainVariant drain = kDrainShim;
  bool baseline = true;  // also run the plain-libbpf baseline
};

std::uint64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "transport_bench: %s\n", what.c_str());
  std::exit(1);
}

int run(int prog_fd, void* args, std::uint32_t size) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = size);
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0)
    die(std::string("BPF_PROG_TEST_RUN failed: ") + std::strerror(errno));
  return static_cast<int>(opts.retval);
}

// ns per task of each leg in one run.
struct Legs {
  double produce = 0, produce_syscall = 0, consume = 0, submit = 0, drain = 0;
  double lb_produce = 0, lb_consume = 0, lb_submit = 0;
  double userspace() const { return consume + submit; }
  double round_trip() const { return produce + consume + submit + drain; }
  double lb_round_trip() const { return lb_produce + lb_consume + lb_submit + drain; }
};

// libbpf's consumer cannot stop at a batch (1.4 has no consume_n); a negative return from
// the callback makes it publish the consumer position and stop, which is the closest
// plain-libbpf equivalent of "take up to a batch".
struct LibbpfSink {
  TaskEvent* out = nullptr;
  std::size_t n = 0;
  std::size_t limit = 0;
};

int libbpf_copy(void* ctx, void* data, std::size_t size) {
  auto* sink = static_cast<LibbpfSink*>(ctx);
  std::memcpy(&sink->out[sink->n], data, std::min(size, sizeof(TaskEvent)));
  return ++sink->n >= sink->limit ? -1 : 0;
}

// Lockstep: one batch at a time through all four legs, so the rings are empty between
// batches, as when the dispatcher keeps up. The main figures use the shim's wakeup protocol
// with the dispatcher awake (its flags clear: no wakeups). The *_legacy figures replay a
// wakeup per record (the doorbell rung for every message; flags 0 on the drain, where the
// kernel wakes the other side whenever the ring was caught up, i.e. every batch here);
// produce_asleep is the produce leg with wake.user_sleeping set, where the shim rings the
// doorbell per record until the dispatcher runs and clears the flag (at batch 1: the cost
// of one wakeup).

struct Lockstep {
  double produce = 0, consume = 0, submit = 0, drain = 0;
  double produce_legacy = 0, drain_legacy = 0, produce_asleep = 0;
  double round_trip() const { return produce + consume + submit + drain; }
  double round_trip_legacy() const { return produce_legacy + consume + submit + drain_legacy; }
};

class Bench {
 public:
  Bench(std::uint32_t task_ring_bytes, std::uint32_t decision_ring_bytes) : decision_ring_bytes_(decision_ring_bytes) {
    skel_ = transport_bpf__open();
    if (!skel_) die("cannot open the BPF object");
    const int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) die("cannot count possible CPUs");
    // The shim's sizes (Shim::attach).
    const std::uint32_t slots = zernel::task_ring_slots_for(task_ring_bytes, static_cast<std::uint32_t>(cpus));
    zernel::size_task_rings(skel_, static_cast<std::uint32_t>(cpus), slots);
    bpf_map__set_max_entries(skel_->maps.baseline_tasks, task_ring_bytes);
    bpf_map__set_max_entries(skel_->maps.decisions, decision_ring_bytes);
    chunk_ = std::min({kMaxChunk, std::size_t{slots} / 2, std::size_t{task_ring_bytes} / (sizeof(TaskEvent) + 8) / 2});
    if (transport_bpf__load(skel_) != 0)
      die(std::string("cannot load the BPF programs: ") + std::strerror(errno) + " (run as root)");
    const int decision_fd = bpf_map__fd(skel_->maps.decisions);
    std::string error;
    // The wake flags live in the BPF object's .bss, as the shim's do.
    channel_ = BpfChannel::open(zernel::task_ring_maps(skel_), decision_fd, &consumed_, &skel_->bss->wake, &error);
    if (!channel_) die(error);
    lb_up_ = ring_buffer__new(bpf_map__fd(skel_->maps.baseline_tasks), libbpf_copy, &sink_, nullptr);
    lb_down_ = user_ring_buffer__new(decision_fd, nullptr);
    if (!lb_up_ || !lb_down_) die(std::string("libbpf ring setup failed: ") + std::strerror(errno));
    events_.resize(kMaxChunk);
    decisions_.resize(kMaxChunk);
    calibrate();
  }

  ~Bench() {
    user_ring_buffer__free(lb_down_);
    ring_buffer__free(lb_up_);
    channel_.reset();
    transport_bpf__destroy(skel_);
  }

  double pair_ns() const { return pair_ns_; }
  double empty_syscall_ns() const { return empty_ns_; }
  double clock_ns() const { return clock_ns_; }
  double loop_ns() const { return loop_ns_; }
  std::uint32_t task_ring_slots() const { return channel_->task_ring_slots(); }
  unsigned decisions_per_step() const { return skel_->rodata->decisions_per_step; }
  // Tasks per chunk at this batch size: whole batches that fit half of either ring.
  std::size_t chunk_for(std::size_t batch) const {
    const std::size_t samples = (batch + kPerSample - 1) / kPerSample;
    const std::size_t batches = std::min(chunk_ / batch, decision_ring_bytes_ / 2 / (samples * kSampleRecordBytes));
    return std::max<std::size_t>(1, batches) * batch;
  }

  Legs measure(std::size_t batch, std::size_t tasks, const Config& cfg = Config{}) {
    const std::size_t chunk = chunk_for(batch);
    const std::size_t calls = chunk / batch;
    const std::size_t rounds = std::max<std::size_t>(1, tasks / chunk);
    double produce = 0, produce_sys = 0, consume = 0, submit = 0, drain = 0;
    double lb_produce = 0, lb_consume = 0, lb_submit = 0;

    for (std::size_t r = 0; r < rounds; ++r) {
      // --- The production path.
      produce_chunk(batch, calls, kShim, &produce, &produce_sys, cfg);

      std::uint64_t t0 = now_ns();
      std::size_t got = 0;
      for (std::size_t i = 0; i < calls; ++i)
        got += channel_->receive(std::span<TaskEvent>(events_.data(), batch));
      consume += static_cast<double>(now_ns() - t0);
      if (got != chunk) die("consume: got " + std::to_string(got) + " of " + std::to_string(chunk));

      make_decisions(batch);
      t0 = now_ns();
      std::size_t sent = 0;
      for (std::size_t i = 0; i < calls; ++i)
        sent += channel_->send(std::span<const Decision>(decisions_.data(), batch));
      submit += static_cast<double>(now_ns() - t0);
      if (sent != chunk) die("submit: sent " + std::to_string(sent) + " of " + std::to_string(chunk));

      drain_chunk(batch, calls, chunk, kShim, &drain, cfg);
      if (!cfg.baseline) continue;

      // --- The same messages and decisions with plain libbpf: a BPF ring buffer up.
      double unused = 0;
      produce_chunk(batch, calls, kShim, &lb_produce, &unused, cfg, skel_->progs.produce_ringbuf);

      sink_ = LibbpfSink{events_.data(), 0, batch};
      t0 = now_ns();
      std::size_t lb_got = 0;
      for (std::size_t i = 0; i < calls; ++i) {
        sink_.n = 0;
        (void)ring_buffer__consume(lb_up_);
        lb_got += sink_.n;
      }
      lb_consume += static_cast<double>(now_ns() - t0);
      if (lb_got != chunk) die("libbpf consume: got " + std::to_string(lb_got));

      // The same samples as BpfChannel's (the shim's drain reads no other format): a
      // reserve/submit per sample of up to K decisions.
      t0 = now_ns();
      for (std::size_t i = 0; i < calls; ++i) {
        for (std::size_t done = 0; done < batch;) {
          const std::uint32_t count = static_cast<std::uint32_t>(std::min(batch - done, kPerSample));
          auto* sample = static_cast<std::uint8_t*>(
              user_ring_buffer__reserve(lb_down_, static_cast<std::uint32_t>(sizeof(zernel::DecisionSample))));
          if (!sample) die("libbpf submit: ring full");
          const std::uint32_t hdr[2] = {count, 0};
          std::memcpy(sample, hdr, sizeof(hdr));
          std::memcpy(sample + zernel::kDecisionSampleHeader, &decisions_[done], count * sizeof(Decision));
          user_ring_buffer__submit(lb_down_, sample);
          done += count;
        }
      }
      lb_submit += static_cast<double>(now_ns() - t0);

      drain_chunk(batch, calls, chunk, kShim, &unused);
    }

    const double n = static_cast<double>(rounds * chunk);
    return Legs{produce / n, produce_sys / n, consume / n, submit / n, drain / n,
                lb_produce / n, lb_consume / n, lb_submit / n};
  }

  // Userspace legs are timed per call here, minus the cost of the clock pair.
  Lockstep measure_lockstep(std::size_t batch, std::size_t tasks) {
    const std::size_t iterations = std::max<std::size_t>(1, tasks / batch);
    const std::span<TaskEvent> events(events_.data(), batch);
    const std::span<const Decision> decisions(decisions_.data(), batch);
    Lockstep l;
    double unused = 0;
    for (std::size_t i = 0; i < iterations; ++i) {
      produce_chunk(batch, 1, kShim, &l.produce, &unused);
      std::uint64_t t0 = now_ns();
      const std::size_t got = channel_->receive(events);
      l.consume += static_cast<double>(now_ns() - t0) - clock_ns_;
      if (got != batch) die("lockstep consume: got " + std::to_string(got));
      make_decisions(batch);
      t0 = now_ns();
      const std::size_t sent = channel_->send(decisions);
      l.submit += static_cast<double>(now_ns() - t0) - clock_ns_;
      if (sent != batch) die("lockstep submit: sent " + std::to_string(sent));
      drain_chunk(batch, 1, batch, kShim, &l.drain);
    }
    for (std::size_t i = 0; i < iterations; ++i) {
      produce_chunk(batch, 1, kLegacy, &l.produce_legacy, &unused);
      if (channel_->receive(events) != batch) die("lockstep consume (legacy)");
      if (channel_->send(decisions) != batch) die("lockstep submit (legacy)");
      drain_chunk(batch, 1, batch, kLegacy, &l.drain_legacy);
    }
    skel_->bss->wake.user_sleeping = 1;
    const std::uint64_t rung = skel_->bss->nr_rung;
    for (std::size_t i = 0; i < iterations; ++i) {
      produce_chunk(batch, 1, kShim, &l.produce_asleep, &unused);
      if (channel_->receive(events) != batch) die("lockstep consume (asleep)");
      if (channel_->send(decisions) != batch) die("lockstep submit (asleep)");
      drain_chunk(batch, 1, batch, kShim, &unused);
    }
    skel_->bss->wake.user_sleeping = 0;
    if (skel_->bss->nr_rung - rung != iterations * batch)
      die("asleep: expected a doorbell per record");
    const double n = static_cast<double>(iterations * batch);
    l.produce /= n;
    l.consume /= n;
    l.submit /= n;
    l.drain /= n;
    l.produce_legacy /= n;
    l.drain_legacy /= n;
    l.produce_asleep /= n;
    return l;
  }

 private:
  // Medians of many short rounds: one preemption or interrupt in a round (the machine may
  // be busy) moves that round, not the figure subtracted from every timed call.
  void calibrate() {
    constexpr int kRounds = 201;
    std::vector<double> rounds;
    rounds.reserve(kRounds);
    for (int r = 0; r < kRounds; ++r) {
      constexpr int kPairs = 500;
      std::uint64_t sum = 0;
      for (int i = 0; i < kPairs; ++i) {
        const std::uint64_t t0 = now_ns();
        sum += now_ns() - t0;
      }
      rounds.push_back(static_cast<double>(sum) / kPairs);
    }
    clock_ns_ = median_of(rounds);

    // clock_pair: 1000 in-program pairs per call.
    const int pair_fd = bpf_program__fd(skel_->progs.clock_pair);
    rounds.clear();
    for (int r = 0; r < kRounds; ++r) {
      const std::uint64_t ns = skel_->bss->pair_ns, n = skel_->bss->nr_pairs;
      run(pair_fd, nullptr, 0);
      rounds.push_back(static_cast<double>(skel_->bss->pair_ns - ns) /
                       static_cast<double>(skel_->bss->nr_pairs - n));
    }
    pair_ns_ = median_of(rounds);

    const int empty_fd = bpf_program__fd(skel_->progs.empty);
    for (int i = 0; i < 1000; ++i) run(empty_fd, nullptr, 0);
    rounds.clear();
    for (int r = 0; r < kRounds; ++r) {
      constexpr int kCalls = 100;
      const std::uint64_t t0 = now_ns();
      for (int i = 0; i < kCalls; ++i) run(empty_fd, nullptr, 0);
      rounds.push_back(static_cast<double>(now_ns() - t0) / kCalls);
    }
    empty_ns_ = median_of(rounds);

    // loop_cost: 1000 empty bpf_for iterations per call.
    const int loop_fd = bpf_program__fd(skel_->progs.loop_cost);
    rounds.clear();
    for (int r = 0; r < kRounds; ++r) {
      const std::uint64_t ns = skel_->bss->loop_ns, n = skel_->bss->nr_loops;
      run(loop_fd, nullptr, 0);
      rounds.push_back((static_cast<double>(skel_->bss->loop_ns - ns) - pair_ns_) /
                       static_cast<double>(skel_->bss->nr_loops - n));
    }
    loop_ns_ = median_of(rounds);
  }

  static double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }

  // `prog`: the shim's produce, or produce_ringbuf for the baseline.
  void produce_chunk(std::size_t batch, std::size_t calls, Wakeups mode, double* in_prog,
                     double* syscall, const Config& cfg = Config{}, bpf_program* prog = nullptr) {
    const int fd = bpf_program__fd(prog ? prog : skel_->progs.produce);
    ProduceArgs args{static_cast<std::uint32_t>(batch), mode, cfg.clock, cfg.produce};
    const std::uint64_t before = skel_->bss->produce_ns;
    const std::uint64_t produced = skel_->bss->nr_produced;
    const std::uint64_t t0 = now_ns();
    for (std::size_t i = 0; i < calls; ++i) run(fd, &args, sizeof(args));
    const std::uint64_t t1 = now_ns();
    const double c = static_cast<double>(calls);
    *in_prog += static_cast<double>(skel_->bss->produce_ns - before) - c * pair_ns_;
    *syscall += static_cast<double>(t1 - t0) - c * empty_ns_;
    if (skel_->bss->nr_produced - produced != calls * batch || skel_->bss->nr_reserve_failed)
      die("produce: the task ring filled up");
  }

  void drain_chunk(std::size_t batch, std::size_t calls, std::size_t chunk, Wakeups mode,
                   double* in_prog, const Config& cfg = Config{}) {
    const int fd = bpf_program__fd(skel_->progs.drain);
    DrainArgs args{slots_for(batch), mode, cfg.clock, cfg.drain};
    const std::uint64_t before = skel_->bss->drain_ns;
    const std::uint64_t drained = skel_->bss->nr_drained;
    for (std::size_t i = 0; i < calls; ++i) run(fd, &args, sizeof(args));
    *in_prog += static_cast<double>(skel_->bss->drain_ns - before) - static_cast<double>(calls) * pair_ns_;
    if (skel_->bss->nr_drained - drained != chunk || skel_->bss->nr_malformed)
      die("drain: took " + std::to_string(skel_->bss->nr_drained - drained) + " of " +
          std::to_string(chunk) + ", " + std::to_string(skel_->bss->nr_malformed) + " malformed samples");
  }

  // What a policy would answer, from the batch just received; outside the timed legs.
  void make_decisions(std::size_t batch) {
    for (std::size_t i = 0; i < batch; ++i) {
      Decision& d = decisions_[i];
      d = Decision{};
      d.pid = events_[i].pid;
      d.cpu = zernel::kCpuAny;
      d.slice_ns = 5'000'000;
      d.vtime = events_[i].enq_ns;
      d.gen = events_[i].gen;
    }
  }

  std::size_t chunk_ = 0;  // tasks, by the task rings
  std::size_t decision_ring_bytes_;
  transport_bpf* skel_ = nullptr;
  std::unique_ptr<BpfChannel> channel_;
  zernel_consumed consumed_{};
  ring_buffer* lb_up_ = nullptr;
  user_ring_buffer* lb_down_ = nullptr;
  LibbpfSink sink_;
  std::vector<TaskEvent> events_;
  std::vector<Decision> decisions_;
  double pair_ns_ = 0;
  double empty_ns_ = 0;
  double loop_ns_ = 0;
  double clock_ns_ = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// "median (min-max)" in ns.
std::string ns_cell(const std::vector<double>& v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.1f (%.1f-%.1f)", median(v), *std::min_element(v.begin(), v.end()),
                *std::max_element(v.begin(), v.end()));
  return buf;
}

std::string rate_cell(const std::vector<double>& v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", 1e3 / median(v));  // ns/task -> million tasks/s
  return buf;
}

void usage() {
  std::fprintf(stderr,
               "usage: transport_bench [--reps N] [--tasks N] [--cpu N] [--task-ring KiB] [--decision-ring KiB] [--batch N] [--backlog-only]\n"
               "  --reps N             runs per figure; the median is reported (default 3)\n"
               "  --tasks N            tasks per run and batch size (default 65536)\n"
               "  --cpu N              pin to CPU N (default: not pinned)\n"
               "  --task-ring KiB      up ring size, a power of two (default 4096, the shim's)\n"
               "  --decision-ring KiB  down ring size, a power of two (default 1024, the shim's)\n"
               "  --batch N            only this batch size, 1..512 (default: 1, 8, 64, 512), e.g. to profile\n"
               "  --backlog-only       skip the lockstep tables (whose wakeup rows dominate a profile)\n");
  std::exit(2);
}

template <typename Run, typename F>
std::vector<double> col(const std::vector<Run>& runs, F f) {
  std::vector<double> out;
  for (const Run& r : runs) out.push_back(f(r));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  std::size_t tasks = 65536;
  int cpu = -1;
  bool lockstep = true;
  std::vector<std::size_t> batches(std::begin(kDefaultBatches), std::end(kDefaultBatches));
  std::uint32_t task_ring = kTaskRingBytes, decision_ring = kDecisionRingBytes;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--backlog-only") {
      lockstep = false;
      continue;
    }
    if (i + 1 >= argc) usage();
    if (arg == "--reps") reps = std::atoi(argv[++i]);
    else if (arg == "--tasks") tasks = static_cast<std::size_t>(std::atoll(argv[++i]));
    else if (arg == "--cpu") cpu = std::atoi(argv[++i]);
    else if (arg == "--batch") batches = {static_cast<std::size_t>(std::atoll(argv[++i]))};
    else if (arg == "--task-ring") task_ring = static_cast<std::uint32_t>(std::atoi(argv[++i])) << 10;
    else if (arg == "--decision-ring") decision_ring = static_cast<std::uint32_t>(std::atoi(argv[++i])) << 10;
    else usage();
  }
  if (reps < 1 || tasks < 1 || task_ring < (64u << 10) || decision_ring < (64u << 10) ||
      batches[0] < 1 || batches[0] > 512)
    usage();
  if (geteuid() != 0) die("loads BPF programs: run as root");
  if (cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) die(std::string("--cpu: ") + std::strerror(errno));
  }

  Bench bench(task_ring, decision_ring);

  // One unreported pass so that every ring page has been touched and the programs are hot.
  for (std::size_t b : batches) (void)bench.measure(b, bench.chunk_for(b));

  const std::size_t kN = batches.size();
  std::vector<std::vector<Legs>> runs(kN);
  std::vector<std::vector<Lockstep>> steps(kN);
  // What the BPF legs are made of: the same legs with one thing changed.
  const Config ktime{kKtime, kProduceShim, kDrainShim, false};
  const Config step1{kRqClock, kProduceShim, kDrainStep1, false};
  const Config floor{kRqClock, kProduceFloor, kDrainFloor, false};
  std::vector<std::vector<Legs>> with_ktime(kN), with_step1(kN), floors(kN);
  for (int r = 0; r < reps; ++r) {
    for (std::size_t i = 0; i < kN; ++i) runs[i].push_back(bench.measure(batches[i], tasks));
    if (lockstep)
      for (std::size_t i = 0; i < kN; ++i) steps[i].push_back(bench.measure_lockstep(batches[i], tasks));
    for (std::size_t i = 0; i < kN; ++i) {
      with_ktime[i].push_back(bench.measure(batches[i], tasks, ktime));
      with_step1[i].push_back(bench.measure(batches[i], tasks, step1));
      floors[i].push_back(bench.measure(batches[i], tasks, floor));
    }
  }

  std::string chunks;
  for (std::size_t i = 0; i < kN; ++i)
    chunks += (i ? ", " : "") + std::to_string(bench.chunk_for(batches[i])) + " at batch " + std::to_string(batches[i]);
  std::printf("Transport: %d runs of %zu tasks per batch size; cells are median (min-max). Rings: tasks "
              "%u KiB over the CPUs (%u messages a CPU), decisions %u KiB; backlog chunk %s tasks. In-program clock pair %.1f ns and "
              "userspace clock pair %.1f ns (subtracted per timed call); empty BPF_PROG_TEST_RUN %.0f ns. "
              "BPF legs: the shim's per-task work on a 6.14+ kernel, where its clock is scx_bpf_now() "
              "(the rq clock; bpf_jiffies64() stands in for it here, see transport.bpf.c), and its drain "
              "takes samples of up to %zu decisions, each read in place, %u decisions per bpf_loop step, "
              "with the dispatch slots of a batch rounded up to whole samples.\n\n",
              reps, tasks, task_ring >> 10, bench.task_ring_slots(), decision_ring >> 10, chunks.c_str(), bench.pair_ns(),
              bench.clock_ns(), bench.empty_syscall_ns(), kPerSample, bench.decisions_per_step());

  std::printf("### Backlog (rings hold a chunk when a leg starts), ns/task\n\n");
  std::printf("| batch | produce (BPF) | consume | submit | drain (BPF) | userspace (consume+submit) | round trip |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < kN; ++i) {
    const auto& v = runs[i];
    std::printf("| %zu | %s | %s | %s | %s | %s | %s |\n", batches[i],
                ns_cell(col(v, [](const Legs& l) { return l.produce; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.consume; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.submit; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.drain; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.userspace(); })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.round_trip(); })).c_str());
  }

  std::printf("\n### Backlog, million tasks/s (from the medians)\n\n");
  std::printf("| batch | produce (BPF) | consume | submit | drain (BPF) | round trip |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < kN; ++i) {
    const auto& v = runs[i];
    std::printf("| %zu | %s | %s | %s | %s | %s |\n", batches[i],
                rate_cell(col(v, [](const Legs& l) { return l.produce; })).c_str(),
                rate_cell(col(v, [](const Legs& l) { return l.consume; })).c_str(),
                rate_cell(col(v, [](const Legs& l) { return l.submit; })).c_str(),
                rate_cell(col(v, [](const Legs& l) { return l.drain; })).c_str(),
                rate_cell(col(v, [](const Legs& l) { return l.round_trip(); })).c_str());
  }

  std::printf("\n### Backlog, baseline with plain libbpf, ns/task: the same messages up a "
              "BPF_MAP_TYPE_RINGBUF (reserve, fill, submit: the shim's ring before its per-CPU rings) "
              "read by ring_buffer__consume; the same samples of up to %zu decisions down, a "
              "user_ring_buffer__reserve/submit per sample; the shim's drain (round trip = these + "
              "drain)\n\n", kPerSample);
  std::printf("| batch | produce: BPF ring buffer | consume: ring_buffer__consume | submit: user_ring_buffer__reserve/submit | userspace | round trip | vs. BpfChannel round trip |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < kN; ++i) {
    const auto& v = runs[i];
    const double ours = median(col(v, [](const Legs& l) { return l.round_trip(); }));
    const double base = median(col(v, [](const Legs& l) { return l.lb_round_trip(); }));
    std::printf("| %zu | %s | %s | %s | %s | %s | %+.1f%% |\n", batches[i],
                ns_cell(col(v, [](const Legs& l) { return l.lb_produce; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.lb_consume; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.lb_submit; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.lb_consume + l.lb_submit; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.lb_round_trip(); })).c_str(),
                (base - ours) / ours * 100);
  }

  if (lockstep) {
  std::printf("\n### Lockstep (one batch at a time, rings empty between batches), ns/task: the shim's "
              "wakeup protocol with the dispatcher awake; then a wakeup per record (the doorbell rung "
              "every time, flags 0 on the drain: before the protocol); then produce while the dispatcher "
              "is asleep (the doorbell rung per record)\n\n");
  std::printf("| batch | produce (BPF) | consume | submit | drain (BPF) | round trip | produce, a wakeup per record | drain, flags 0 | round trip, wakeups | produce, dispatcher asleep |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < kN; ++i) {
    const auto& v = steps[i];
    std::printf("| %zu | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", batches[i],
                ns_cell(col(v, [](const Lockstep& l) { return l.produce; })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.consume; })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.submit; })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.drain; })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.round_trip(); })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.produce_legacy; })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.drain_legacy; })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.round_trip_legacy(); })).c_str(),
                ns_cell(col(v, [](const Lockstep& l) { return l.produce_asleep; })).c_str());
  }
  }

  std::printf("\n### What the BPF legs are made of (backlog), ns/task: the shim's legs as above; with "
              "bpf_ktime_get_ns() as the clock (zernel_now() before 6.14: enqueue timestamp, and "
              "apply_decision()'s); the ring alone (reserve + publish of an unfilled slot; a "
              "drain callback that only reads the sample's count); the drain with a bpf_loop step (a "
              "call) per decision instead of %u. One bpf_for iteration of the "
              "produce loop: %.1f ns\n\n",
              bench.decisions_per_step(), bench.loop_ns());
  std::printf("| batch | produce: shim | produce: bpf_ktime_get_ns | produce: ring only | drain: shim | drain: a step per decision | drain: bpf_ktime_get_ns | drain: kernel only (empty callback) |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (std::size_t i = 0; i < kN; ++i) {
    const auto& v = runs[i];
    std::printf("| %zu | %s | %s | %s | %s | %s | %s | %s |\n", batches[i],
                ns_cell(col(v, [](const Legs& l) { return l.produce; })).c_str(),
                ns_cell(col(with_ktime[i], [](const Legs& l) { return l.produce; })).c_str(),
                ns_cell(col(floors[i], [](const Legs& l) { return l.produce; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.drain; })).c_str(),
                ns_cell(col(with_step1[i], [](const Legs& l) { return l.drain; })).c_str(),
                ns_cell(col(with_ktime[i], [](const Legs& l) { return l.drain; })).c_str(),
                ns_cell(col(floors[i], [](const Legs& l) { return l.drain; })).c_str());
  }

  std::printf("\n### Cross-check of the backlog produce leg, ns/task: in-program timing vs. whole "
              "syscall minus an empty program\n\n");
  std::printf("| batch | in-program | syscall - empty |\n|---:|---:|---:|\n");
  for (std::size_t i = 0; i < kN; ++i) {
    const auto& v = runs[i];
    std::printf("| %zu | %s | %s |\n", batches[i],
                ns_cell(col(v, [](const Legs& l) { return l.produce; })).c_str(),
                ns_cell(col(v, [](const Legs& l) { return l.produce_syscall; })).c_str());
  }
  return 0;
}
