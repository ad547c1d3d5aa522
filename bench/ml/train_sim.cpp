// zernel-train-sim: a simulated ML training job without a GPU, for the scheduler's ML
// benchmark (bench/vm/ml.sh). One process, the trainer, feeds a simulated GPU from a bounded
// queue of batches that data loaders fill:
//
//   --variant cpu  N worker *processes* (fork, like PyTorch DataLoader workers), each loops:
//                  --batch-cpu-us of CPU work (a hash over a buffer, measured on the thread's
//                  CPU clock), then push one batch.
//   --variant io   N loader *threads* in the trainer, each loops: an O_DIRECT read of
//                  --read-kb at a random aligned offset of --device (a real I/O wait with
//                  null_blk irqmode=2), then --batch-cpu-us of CPU work, then push.
//
// The trainer's main thread, per step: pop a batch (sleeping while the queue is empty: that
// time is "the GPU waited for data"), a "GPU step" (sleep --step-ms: the simulated GPU is
// busy), then an optimizer burst of --opt-us CPU time. A helper thread writes the simulated
// GPU's utilization (share of the last 100 ms spent in the GPU step) to --gpu-file every
// 100 ms in the FileGpuSource format (scheduler/gpu_source.h), atomically (temp + rename).
//
// The queue lives in shared memory (MAP_SHARED before fork) with process-shared robust
// mutex and condition variables: consumer and producers block in futex waits, so the
// kernel (and the scheduler) see exactly who wakes the thread that feeds the GPU.
//
// --truth FILE: once every loader/worker has started, "<tid> <role>" lines (role
// data_loading or trainer), written atomically; the benchmark scores the scheduler's phase
// classification against it.
//
// Output: after --warmup and --duration seconds, exactly one line
//   RESULT variant=<v> steps=<n> seconds=<s> steps_per_s=<x> data_wait_frac=<f> workers=<n>
// and exit 0; on stderr "STATS wake_late_us=.. opt_wall_us=.. [reads=.. read_us=..]" (means per
// step over the same window: how late the trainer ran after its GPU-step sleep, the wall time
// of its optimizer burst, the loaders' mean read time). Exit 1 on a run-time failure (a worker
// died, the device cannot be read), 2 on bad command-line input, 130/143 when interrupted
// (workers are killed and reaped).
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kMaxWorkers = 256;
constexpr std::int64_t kNsPerS = 1'000'000'000;
constexpr std::int64_t kGpuPeriodNs = 100'000'000;

volatile sig_atomic_t g_signal = 0;
void on_signal(int sig) { g_signal = sig; }

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * kNsPerS + ts.tv_nsec;
}
std::int64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }

void sleep_ns(std::int64_t ns) {
  timespec ts{static_cast<time_t>(ns / kNsPerS), static_cast<long>(ns % kNsPerS)};
  // EINTR (a signal): return early; the caller checks g_signal.
  clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, nullptr);
}

void set_thread_name(const std::string& name) { prctl(PR_SET_NAME, name.c_str(), 0, 0, 0); }

// "Decompress/augment": xorshift-mix a buffer in 4 KiB chunks until this thread has used
// `us` microseconds of CPU time (its own CPU clock, so time spent preempted or waiting does
// not count: the work costs the same CPU whatever the scheduler does).
struct Burner {
  std::vector<std::uint64_t> buf = std::vector<std::uint64_t>(16384, 0x9e3779b97f4a7c15ull);
  std::size_t pos = 0;
  std::uint64_t state = 0x2545f4914f6cdd1dull;
  std::uint64_t sink = 0;

  void burn_us(std::int64_t us) {
    if (us <= 0) return;
    const std::int64_t until = clock_ns(CLOCK_THREAD_CPUTIME_ID) + us * 1000;
    do {
      for (int i = 0; i < 512; ++i) {  // 4 KiB
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::uint64_t& w = buf[pos];
        w = (w ^ state) * 0xff51afd7ed558ccdull;
        sink += w >> 33;
        pos = (pos + 1) & (buf.size() - 1);
      }
    } while (clock_ns(CLOCK_THREAD_CPUTIME_ID) < until);
  }
};

// The batch queue, in memory shared by the trainer and its worker processes. Only counts
// travel: a batch's content does not matter, its production cost does.
struct SharedQueue {
  pthread_mutex_t mu;
  pthread_cond_t not_empty;
  pthread_cond_t not_full;
  int count;
  int capacity;
  int stop;
  std::atomic<int> registered;  // loaders/workers that have published their tid
  pid_t tids[kMaxWorkers];
};

void lock(SharedQueue* q) {
  // Robust: a worker killed while holding the lock must not wedge the trainer.
  if (pthread_mutex_lock(&q->mu) == EOWNERDEAD) pthread_mutex_consistent(&q->mu);
}

int cond_wait_ms(pthread_cond_t* c, SharedQueue* q, int ms) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  std::int64_t ns = ts.tv_nsec + static_cast<std::int64_t>(ms) * 1'000'000;
  ts.tv_sec += static_cast<time_t>(ns / kNsPerS);
  ts.tv_nsec = static_cast<long>(ns % kNsPerS);
  const int rc = pthread_cond_timedwait(c, &q->mu, &ts);
  if (rc == EOWNERDEAD) pthread_mutex_consistent(&q->mu);
  return rc;
}

SharedQueue* make_queue(int capacity) {
  void* mem = mmap(nullptr, sizeof(SharedQueue), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  auto* q = new (mem) SharedQueue{};
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(&q->mu, &ma);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->not_empty, &ca);
  pthread_cond_init(&q->not_full, &ca);
  pthread_condattr_destroy(&ca);
  q->capacity = capacity;
  return q;
}

// Producer side: blocks (sleeps) while the queue is full. False once the run is stopping.
bool push(SharedQueue* q) {
  lock(q);
  while (q->count >= q->capacity && !q->stop) {
    if (pthread_cond_wait(&q->not_full, &q->mu) == EOWNERDEAD) pthread_mutex_consistent(&q->mu);
  }
  const bool ok = !q->stop;
  if (ok) {
    ++q->count;
    pthread_cond_signal(&q->not_empty);
  }
  pthread_mutex_unlock(&q->mu);
  return ok;
}

// Consumer side: blocks while empty. False on a signal or stop. Wakes every 100 ms only to
// notice a signal.
bool pop(SharedQueue* q) {
  lock(q);
  while (q->count == 0 && !q->stop && !g_signal) cond_wait_ms(&q->not_empty, q, 100);
  const bool ok = q->count > 0 && !q->stop && !g_signal;
  if (ok) {
    --q->count;
    pthread_cond_signal(&q->not_full);
  }
  pthread_mutex_unlock(&q->mu);
  return ok;
}

void stop_queue(SharedQueue* q) {
  lock(q);
  q->stop = 1;
  pthread_cond_broadcast(&q->not_empty);
  pthread_cond_broadcast(&q->not_full);
  pthread_mutex_unlock(&q->mu);
}

void register_tid(SharedQueue* q, int index) {
  q->tids[index] = gettid();
  q->registered.fetch_add(1, std::memory_order_release);
}

// The simulated GPU's busy time, kept by the trainer, read by the GPU-file thread.
class GpuClock {
 public:
  void begin(std::int64_t now) {
    std::lock_guard g(mu_);
    busy_since_ = now;
  }
  void end(std::int64_t now) {
    std::lock_guard g(mu_);
    busy_total_ += now - busy_since_;
    busy_since_ = -1;
  }
  std::int64_t busy_until(std::int64_t now) {
    std::lock_guard g(mu_);
    return busy_total_ + (busy_since_ >= 0 ? now - busy_since_ : 0);
  }

 private:
  std::mutex mu_;
  std::int64_t busy_total_ = 0;
  std::int64_t busy_since_ = -1;
};

// Write `text` to `path` atomically: a temporary file in the same directory, renamed over it.
bool write_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  if (!ok || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

struct Options {
  std::string variant = "cpu";
  int workers = 2;
  int queue = 4;
  std::int64_t batch_cpu_us = 25000;
  double step_ms = 20;
  std::int64_t opt_us = 2000;
  int read_kb = 256;
  std::string device = "/dev/nullb0";
  std::string gpu_file = "/run/zernel/gpu_sim";
  std::string truth;
  double duration_s = 10;
  double warmup_s = 2;
};

[[noreturn]] void worker_process(SharedQueue* q, int index, const Options& o) {
  // Die with the trainer, whatever kills it.
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  set_thread_name("worker-" + std::to_string(index));
  register_tid(q, index);
  Burner b;
  for (;;) {
    b.burn_us(o.batch_cpu_us);
    if (!push(q)) break;
  }
  _exit(static_cast<int>(b.sink & 0));
}

struct IoLoader {
  int fd = -1;
  std::uint64_t blocks = 0;  // read-size blocks on the device
};

struct IoStats {
  std::atomic<std::int64_t> reads{0};
  std::atomic<std::int64_t> read_ns{0};
  std::atomic<int> errors{0};
};

void loader_thread(SharedQueue* q, int index, const Options& o, IoLoader dev, IoStats* stats) {
  set_thread_name("loader-" + std::to_string(index));
  register_tid(q, index);
  const std::size_t size = static_cast<std::size_t>(o.read_kb) * 1024;
  void* buf = nullptr;
  if (posix_memalign(&buf, 4096, size) != 0) {
    stats->errors.fetch_add(1);
    return;
  }
  std::uint64_t rng = 0x853c49e6748fea9bull ^ (static_cast<std::uint64_t>(index + 1) * 0x9e3779b97f4a7c15ull);
  Burner b;
  for (;;) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    const off_t off = static_cast<off_t>((rng % dev.blocks) * size);
    const std::int64_t r0 = mono_ns();
    if (pread(dev.fd, buf, size, off) != static_cast<ssize_t>(size)) {
      stats->errors.fetch_add(1);
      break;
    }
    stats->read_ns.fetch_add(mono_ns() - r0, std::memory_order_relaxed);
    stats->reads.fetch_add(1, std::memory_order_relaxed);
    b.burn_us(o.batch_cpu_us);
    if (!push(q)) break;
  }
  free(buf);
}

int parse_cli(int argc, char** argv, Options& o) {
  CLI::App app{"zernel-train-sim: a simulated ML training job (data loaders feeding a simulated GPU)"};
  app.add_option("--variant", o.variant, "cpu: loader processes doing CPU work; io: loader threads reading --device")
      ->check(CLI::IsMember({"cpu", "io"}))
      ->capture_default_str();
  app.add_option("--workers", o.workers, "Data loaders (processes for cpu, threads for io)")
      ->check(CLI::Range(1, kMaxWorkers))
      ->capture_default_str();
  app.add_option("--queue", o.queue, "Batches the queue holds")->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--batch-cpu-us", o.batch_cpu_us, "CPU time to make one batch (us)")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
  app.add_option("--step-ms", o.step_ms, "Simulated GPU time per step (ms, a sleep)")
      ->check(CLI::Range(0.0, 10000.0))
      ->capture_default_str();
  app.add_option("--opt-us", o.opt_us, "Optimizer CPU burst per step (us)")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
  app.add_option("--read-kb", o.read_kb, "io: KiB per read (multiple of 4)")
      ->check(CLI::Range(4, 65536))
      ->capture_default_str();
  app.add_option("--device", o.device, "io: block device read with O_DIRECT")->capture_default_str();
  app.add_option("--gpu-file", o.gpu_file, "Simulated GPU utilization file (empty: none)")->capture_default_str();
  app.add_option("--truth", o.truth, "Write '<tid> <role>' of every loader and the trainer here");
  app.add_option("--duration", o.duration_s, "Measured seconds")->check(CLI::Range(0.1, 86400.0))->capture_default_str();
  app.add_option("--warmup", o.warmup_s, "Seconds before measuring")->check(CLI::Range(0.0, 3600.0))->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "zernel-train-sim: %s; fix: see zernel-train-sim --help\n", e.what());
    return 2;
  }
  if (o.read_kb % 4 != 0) {
    std::fprintf(stderr, "zernel-train-sim: --read-kb %d is not a multiple of 4 (O_DIRECT); fix: pass e.g. --read-kb 256\n",
                 o.read_kb);
    return 2;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (const int rc = parse_cli(argc, argv, o); rc >= 0) return rc;
  const bool io = o.variant == "io";

  IoLoader dev;
  if (io) {
    dev.fd = open(o.device.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    std::uint64_t bytes = 0;
    if (dev.fd < 0 || ioctl(dev.fd, BLKGETSIZE64, &bytes) != 0) {
      std::fprintf(stderr, "zernel-train-sim: cannot open block device %s with O_DIRECT: %s; fix: modprobe null_blk (or pass --device)\n",
                   o.device.c_str(), std::strerror(errno));
      return 1;
    }
    dev.blocks = bytes / (static_cast<std::uint64_t>(o.read_kb) * 1024);
    if (dev.blocks == 0) {
      std::fprintf(stderr, "zernel-train-sim: %s is smaller than --read-kb %d; fix: use a smaller --read-kb\n",
                   o.device.c_str(), o.read_kb);
      return 1;
    }
  }
  if (!o.gpu_file.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(o.gpu_file).parent_path(), ec);
    if (!write_atomic(o.gpu_file, "gpu 0 util 0\n")) {
      std::fprintf(stderr, "zernel-train-sim: cannot write %s: %s; fix: run as root or pass --gpu-file PATH (or '')\n",
                   o.gpu_file.c_str(), std::strerror(errno));
      return 1;
    }
  }

  SharedQueue* q = make_queue(o.queue);
  if (q == nullptr) {
    std::fprintf(stderr, "zernel-train-sim: mmap of the shared queue failed: %s\n", std::strerror(errno));
    return 1;
  }

  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = on_signal;  // no SA_RESTART: sleeps return early
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  set_thread_name("train-main");
  std::vector<pid_t> children;
  if (!io) {
    // Fork before any thread exists.
    for (int i = 0; i < o.workers; ++i) {
      const pid_t pid = fork();
      if (pid < 0) {
        std::fprintf(stderr, "zernel-train-sim: fork failed: %s\n", std::strerror(errno));
        stop_queue(q);
        for (pid_t c : children) kill(c, SIGKILL);
        for (pid_t c : children) waitpid(c, nullptr, 0);
        return 1;
      }
      if (pid == 0) worker_process(q, i, o);
      children.push_back(pid);
    }
  }

  // Helper threads never take the signals: the main thread's sleeps must see EINTR.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  std::atomic<bool> stopping{false};
  IoStats io_stats;
  GpuClock gpu;
  std::vector<std::thread> threads;
  if (io) {
    for (int i = 0; i < o.workers; ++i) threads.emplace_back(loader_thread, q, i, std::cref(o), dev, &io_stats);
  }
  std::thread gpu_writer;
  if (!o.gpu_file.empty()) {
    gpu_writer = std::thread([&] {
      set_thread_name("gpu-sim");
      std::int64_t prev_t = mono_ns(), prev_busy = gpu.busy_until(prev_t);
      while (!stopping.load()) {
        sleep_ns(kGpuPeriodNs);
        const std::int64_t t = mono_ns(), busy = gpu.busy_until(t);
        double pct = t > prev_t ? 100.0 * static_cast<double>(busy - prev_busy) / static_cast<double>(t - prev_t) : 0;
        pct = pct < 0 ? 0 : pct > 100 ? 100 : pct;
        char line[64];
        std::snprintf(line, sizeof line, "gpu 0 util %.1f\n", pct);
        write_atomic(o.gpu_file, line);  // a failed write leaves the previous sample
        prev_t = t;
        prev_busy = busy;
      }
    });
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);

  int rc = 0;
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "zernel-train-sim: %s\n", why.c_str());
    rc = 1;
  };

  // Every loader has published its tid: write the ground truth.
  const std::int64_t reg_deadline = mono_ns() + 10 * kNsPerS;
  while (q->registered.load(std::memory_order_acquire) < o.workers && mono_ns() < reg_deadline && !g_signal)
    sleep_ns(1'000'000);
  if (q->registered.load(std::memory_order_acquire) < o.workers && !g_signal) {
    fail("loaders did not start within 10 s");
  } else if (!o.truth.empty() && !g_signal) {
    std::string text = std::to_string(getpid()) + " trainer\n";
    for (int i = 0; i < o.workers; ++i) text += std::to_string(q->tids[i]) + " data_loading\n";
    if (!write_atomic(o.truth, text)) fail("cannot write --truth " + o.truth + ": " + std::strerror(errno));
  }

  Burner b;
  const std::int64_t step_ns = static_cast<std::int64_t>(o.step_ms * 1e6);
  const std::int64_t t0 = mono_ns();
  const std::int64_t warm_end = t0 + static_cast<std::int64_t>(o.warmup_s * 1e9);
  const std::int64_t end = warm_end + static_cast<std::int64_t>(o.duration_s * 1e9);
  std::int64_t steps = 0, wait_ns = 0;
  std::int64_t m_start = -1, m_end = -1, m_steps = 0, m_wait = 0;
  std::int64_t late_ns = 0, opt_wall_ns = 0, m_reads = 0, m_read_ns = 0;  // measured window only
  while (rc == 0 && !g_signal) {
    const std::int64_t now = mono_ns();
    if (m_start < 0 && now >= warm_end) {
      m_start = now;
      m_steps = steps;
      m_wait = wait_ns;
      m_reads = io_stats.reads.load();
      m_read_ns = io_stats.read_ns.load();
    }
    if (m_start >= 0 && now >= end) {
      m_end = now;
      break;
    }
    if (!children.empty()) {
      int st = 0;
      const pid_t dead = waitpid(-1, &st, WNOHANG);
      if (dead > 0) {
        std::erase(children, dead);
        fail("worker process " + std::to_string(dead) + " died (" +
             (WIFSIGNALED(st) ? "signal " + std::to_string(WTERMSIG(st)) : "exit " + std::to_string(WEXITSTATUS(st))) + ")");
        break;
      }
    }
    if (io_stats.errors.load() != 0) {
      fail("a read of " + o.device + " failed");
      break;
    }
    const std::int64_t w0 = mono_ns();
    if (!pop(q)) break;
    const std::int64_t w1 = mono_ns();
    wait_ns += w1 - w0;
    gpu.begin(w1);
    sleep_ns(step_ns);
    const std::int64_t s1 = mono_ns();
    gpu.end(s1);
    b.burn_us(o.opt_us);
    const std::int64_t s2 = mono_ns();
    if (m_start >= 0) {
      late_ns += s1 - (w1 + step_ns);
      opt_wall_ns += s2 - s1;
    }
    ++steps;
  }

  stopping.store(true);
  stop_queue(q);
  for (pid_t c : children) kill(c, SIGKILL);
  for (pid_t c : children) waitpid(c, nullptr, 0);
  for (auto& t : threads) t.join();
  if (gpu_writer.joinable()) gpu_writer.join();
  if (!o.gpu_file.empty()) unlink(o.gpu_file.c_str());
  if (dev.fd >= 0) close(dev.fd);

  if (g_signal) {
    std::fprintf(stderr, "zernel-train-sim: interrupted by signal %d; workers stopped\n", static_cast<int>(g_signal));
    return 128 + g_signal;
  }
  if (rc != 0) return rc;
  const double secs = static_cast<double>(m_end - m_start) / 1e9;
  const std::int64_t n = steps - m_steps;
  // Where a slow step's time went, on stderr (stdout has exactly the RESULT line): how late
  // the trainer ran after its GPU-step sleep, the wall time of the optimizer burst (its CPU
  // time is --opt-us), and for io the mean read time (are the reads real waits?).
  const double per_step = n > 0 ? static_cast<double>(n) * 1e3 : 1;
  std::string stats = "STATS wake_late_us=" + std::to_string(std::lround(static_cast<double>(late_ns) / per_step)) +
                      " opt_wall_us=" + std::to_string(std::lround(static_cast<double>(opt_wall_ns) / per_step));
  if (io) {
    const std::int64_t reads = io_stats.reads.load() - m_reads;
    stats += " reads=" + std::to_string(reads) + " read_us=" +
             std::to_string(reads > 0 ? std::lround(static_cast<double>(io_stats.read_ns.load() - m_read_ns) / static_cast<double>(reads) / 1e3) : 0);
  }
  std::fprintf(stderr, "%s\n", stats.c_str());
  std::printf("RESULT variant=%s steps=%lld seconds=%.3f steps_per_s=%.3f data_wait_frac=%.4f workers=%d\n",
              o.variant.c_str(), static_cast<long long>(n), secs, static_cast<double>(n) / secs,
              static_cast<double>(wait_ns - m_wait) / 1e9 / secs, o.workers);
  std::fflush(stdout);
  return static_cast<int>(b.sink & 0);
}
