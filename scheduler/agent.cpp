#include "scheduler/agent.h"

#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "scheduler/bpf_channel.h"
#include "scheduler/control.h"
#include "scheduler/dispatch_observer.h"
#include "scheduler/dispatcher.h"
#include "scheduler/idle_strategy.h"
#include "scheduler/ml_monitor.h"
#include "scheduler/phase_policy.h"
#include "telemetry/http_server.h"
#include "telemetry/metrics.h"
#include "telemetry/stats.h"

namespace zernel {
namespace {

using Clock = std::chrono::steady_clock;
using control::Response;

constexpr std::string_view kVersion = "0.1.0";
// The ML policy: the only one the ML monitor works for.
constexpr std::string_view kPhasePolicy = "phase";
constexpr std::size_t kTraceCapacity = 1u << 18;  // events per trace: 6 MiB, locked in memory

struct Faults {
  std::uint64_t minor = 0, major = 0;
};

// Page faults of the dispatcher thread (fields 10 and 12 of /proc/self/task/TID/stat).
// Only that thread must never fault: the control threads allocate (traces, metrics text),
// and under mlockall(MCL_FUTURE) every new page they touch counts as a minor fault.
Faults faults_of(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close_paren = stat.rfind(')');  // comm may contain spaces and parentheses
  if (close_paren == std::string::npos) return {};
  std::istringstream rest(stat.substr(close_paren + 2));
  std::string field;
  Faults f;
  // After "pid (comm) ": state(3) ppid pgrp session tty_nr tpgid flags minflt(10) cminflt majflt(12)
  for (int i = 3; i <= 12 && rest >> field; ++i) {
    if (i == 10) f.minor = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 12) f.major = std::strtoull(field.c_str(), nullptr, 10);
  }
  return f;
}

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

// A userspace scheduler that page-faults can deadlock: the fault may need a kernel thread
// that waits for this scheduler to run it. Lock everything now and everything later.
void lock_memory() {
  if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0)
    std::fprintf(stderr, "zernel-scheduler: warning: mlockall failed (%s); page faults may stall scheduling\n",
                 std::strerror(errno));
}

// The dispatcher thread must never page-fault: a fault takes mmap_lock, which a control
// thread may hold for writing (a large allocation or free) while it waits to be scheduled
// by this very dispatcher. Seen in the VM as a 250 ms stall the shim had to break. Grow
// and populate the stack now, after mlockall(MCL_FUTURE), so it never grows by a fault.
[[gnu::noinline]] void prefault_stack() {
  volatile char pages[512 * 1024];
  for (std::size_t i = 0; i < sizeof(pages); i += 4096) pages[i] = 0;
}

// Threads in the system (the 4th field of /proc/loadavg is "runnable/total"): with
// switch_all, every one of them is scheduled through us.
std::uint64_t system_tasks() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c, rt;
  in >> a >> b >> c >> rt;
  const auto slash = rt.find('/');
  return slash == std::string::npos ? 0 : std::strtoull(rt.c_str() + slash + 1, nullptr, 10);
}

telemetry::LatencySummary summarize(const telemetry::LatencySnapshot& s) {
  return {s.percentile(0.5), s.percentile(0.99), s.max_ns(), s.count()};
}

// Everything that lives for one attachment of the shim. Shared (shared_ptr) between the
// dispatcher thread and control handlers, so a handler that outlives a restart still
// holds a valid object.
struct Session {
  std::unique_ptr<Shim> shim;
  std::unique_ptr<BpfChannel> channel;
  std::vector<std::unique_ptr<Policy>> policies;  // every policy, built once: switching allocates nothing
  std::unique_ptr<Dispatcher> dispatcher;
  DispatchObserver observer;
  Clock::time_point start;
  pid_t dispatcher_tid = 0;
  Faults faults0;

  Policy* find(std::string_view name) const {
    for (const auto& p : policies)
      if (p->name() == name) return p.get();
    return nullptr;
  }
};

enum class Outcome { kStopped, kKernelExit, kRestart, kLoadFailed };

class Agent {
 public:
  Agent(const AgentOptions& opts, const std::atomic<bool>& stop, std::atomic<bool>& reload)
      : opts_(opts), stop_(stop), reload_(reload), config_(opts.config), policy_name_(opts.policy) {}

  int run();

 private:
  bool start_services();
  void stop_services();
  Outcome run_session(bool first);
  void control_loop(Session& s, const std::atomic<bool>& done);
  telemetry::StatsSnapshot stats(Session& s) const;
  void publish_metrics(Session& s);

  Response on_status();
  Response on_policy(std::string_view name);
  // The phase policy runs (or a switch to it is under way).
  bool phase_active() {
    std::lock_guard lock(mu_);
    return policy_name_ == kPhasePolicy;
  }
  Response on_reload();
  Response on_trace(std::string_view secs, std::string_view file);
  Response on_phases();

  std::shared_ptr<Session> session() {
    std::lock_guard lock(mu_);
    return session_;
  }

  const AgentOptions& opts_;
  const std::atomic<bool>& stop_;
  std::atomic<bool>& reload_;

  std::mutex mu_;  // guards the fields below it; never taken by the dispatcher thread
  std::shared_ptr<Session> session_;
  Config config_;
  std::string policy_name_;

  std::unique_ptr<MlMonitor> ml_;  // the phase policy's control half; lives across restarts
  NodeMap nodes_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<telemetry::HttpServer> http_;
  std::mutex metrics_mu_;  // guards metrics_, snapshot_, metrics_text_
  std::unique_ptr<telemetry::SchedulerMetrics> metrics_;
  std::unique_ptr<telemetry::MetricsSnapshot> snapshot_;  // ~150 KiB: on the heap, once
  std::string metrics_text_;
  std::array<std::uint64_t, kPhaseCount> prev_phase_cpu_{};  // guarded by metrics_mu_
  bool pidfile_written_ = false;
};

// CPU -> node and node -> CPUs for placement; one node holding every CPU when sysfs
// cannot be read (placement then has nothing to choose between).
NodeMap node_map(const std::optional<topology::Topology>& topo, std::uint32_t nr_cpus) {
  if (!topo || topo->nodes().empty()) return NodeMap::single_node(static_cast<int>(nr_cpus));
  NodeMap m;
  m.node_of_cpu.assign(static_cast<std::size_t>(std::max<int>(topo->max_cpu_id() + 1, static_cast<int>(nr_cpus))), -1);
  for (const topology::Node& n : topo->nodes()) {
    if (n.id < 0) continue;
    if (m.cpus_of_node.size() <= static_cast<std::size_t>(n.id)) m.cpus_of_node.resize(static_cast<std::size_t>(n.id) + 1);
    for (int c : n.cpus) {
      m.node_of_cpu[static_cast<std::size_t>(c)] = static_cast<std::int16_t>(n.id);
      m.cpus_of_node[static_cast<std::size_t>(n.id)].push_back(c);
    }
  }
  return m;
}

bool Agent::start_services() {
  {
    std::string why;
    std::optional<topology::Topology> topo = topology::Topology::Load(opts_.sysfs_root, &why);
    if (!topo)
      std::fprintf(stderr, "zernel-scheduler: warning: no topology (%s); NUMA placement is off\n", why.c_str());
    nodes_ = node_map(topo, opts_.policy_cfg.nr_cpus);
    MlMonitorOptions mo;
    mo.config = config_;
    mo.topology = std::move(topo);
    ml_ = std::make_unique<MlMonitor>(std::move(mo));
    ml_->refresh();  // the phase policy starts with a picture of the machine
  }
  control_ = std::make_unique<ControlServer>(
      opts_.control_socket.empty() ? std::filesystem::path(control::kDefaultSocketPath)
                                   : std::filesystem::path(opts_.control_socket));
  control_->on("status", [this](auto) { return on_status(); });
  control_->on("policy", [this](auto args) { return on_policy(args[0]); });
  control_->on("reload", [this](auto) { return on_reload(); });
  control_->on("trace", [this](auto args) { return on_trace(args[0], args[1]); });
  control_->on("phases", [this](auto) { return on_phases(); });
  std::string error;
  if (!control_->start(&error)) {
    std::fprintf(stderr, "zernel-scheduler: %s\n", error.c_str());
    return false;
  }

  metrics_ = std::make_unique<telemetry::SchedulerMetrics>(kVersion, policy_name_);
  snapshot_ = std::make_unique<telemetry::MetricsSnapshot>();
  metrics_text_ = metrics_->serialize();
  if (opts_.metrics) {
    telemetry::HttpServerOptions ho;
    ho.address = config_.telemetry.metrics_address;
    ho.port = config_.telemetry.metrics_port;
    http_ = std::make_unique<telemetry::HttpServer>(ho, [this] {
      std::lock_guard lock(metrics_mu_);
      return metrics_text_;
    });
    if (std::string err = http_->start(); !err.empty()) {
      std::fprintf(stderr, "zernel-scheduler: %s\n", err.c_str());
      return false;
    }
  }

  // For tools/zernel-switch.sh: which process to signal to switch this scheduler out.
  if (!opts_.pidfile.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(opts_.pidfile).parent_path(), ec);
    std::ofstream(opts_.pidfile) << getpid() << "\n";
    pidfile_written_ = true;
  }
  return true;
}

void Agent::stop_services() {
  if (http_) http_->stop();
  if (control_) control_->stop();
  if (pidfile_written_) {
    std::ifstream in(opts_.pidfile);
    pid_t pid = 0;
    in >> pid;
    if (pid == getpid()) std::filesystem::remove(opts_.pidfile);  // not a successor's
  }
}

int Agent::run() {
  // BPF maps are charged to memcg on current kernels, but older ones count them against
  // RLIMIT_MEMLOCK; and mlockall needs the limit lifted too.
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &unlimited);

  if (!start_services()) {
    stop_services();
    return 1;
  }
  int rc = 0;
  for (bool first = true;; first = false) {
    const Outcome o = run_session(first);
    if (o == Outcome::kRestart) {
      std::printf("zernel-scheduler: the kernel asked for a restart; restarting\n");
      std::fflush(stdout);
      continue;
    }
    rc = o == Outcome::kStopped ? 0 : 1;
    break;
  }
  stop_services();
  return rc;
}

Outcome Agent::run_session(bool first) {
  auto s = std::make_shared<Session>();
  std::string error;
  s->shim = Shim::attach(opts_.shim, &error);
  if (!s->shim) {
    std::fprintf(stderr, "zernel-scheduler: %s\n", error.c_str());
    return Outcome::kLoadFailed;
  }
  s->channel = BpfChannel::open(s->shim->task_rings(), s->shim->decision_ring_fd(),
                                s->shim->consumed_counter(), s->shim->wake_flags(), &error);
  if (!s->channel) {
    std::fprintf(stderr, "zernel-scheduler: %s\n", error.c_str());
    return Outcome::kLoadFailed;
  }
  for (std::string_view name : {"fair", "fifo"}) s->policies.push_back(make_policy(name, opts_.policy_cfg));
  s->policies.push_back(std::make_unique<PhasePolicy>(opts_.policy_cfg, ml_->snapshots(), nodes_,
                                                      s->shim->cpu_states(), &ml_->changes()));
  std::string policy_name;
  {
    std::lock_guard lock(mu_);
    policy_name = policy_name_;  // a live switch survives a restart
  }
  Policy* initial = s->find(policy_name);
  s->dispatcher = std::make_unique<Dispatcher>(*s->channel, *initial, opts_.batch);
  s->dispatcher->set_observer(&s->observer);
  s->dispatcher->set_load_source(s->shim->waiting_counter());
  s->dispatcher->set_direct_wakeups(opts_.direct_wakeups);
  if (first) lock_memory();
  prefault_stack();

  std::printf("zernel-scheduler: attached (policy %s, slice %llu us, batch %zu)\n", policy_name.c_str(),
              static_cast<unsigned long long>(opts_.policy_cfg.slice_ns / 1000), s->dispatcher->batch_size());
  std::fflush(stdout);
  s->start = Clock::now();
  s->dispatcher_tid = gettid();  // this thread runs the dispatcher
  {
    std::lock_guard lock(mu_);
    session_ = s;
  }

  std::atomic<bool> done{false};
  // A small stack: under mlockall every page of it is resident, and creating it faults
  // those pages in on this (the dispatcher's) thread, so fault counting starts after.
  struct ControlArgs {
    Agent* agent;
    Session* session;
    std::atomic<bool>* done;
  } args{this, s.get(), &done};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_t control;
  const int err = pthread_create(
      &control, &attr,
      [](void* p) -> void* {
        auto* a = static_cast<ControlArgs*>(p);
        a->agent->control_loop(*a->session, *a->done);
        return nullptr;
      },
      &args);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    std::fprintf(stderr, "zernel-scheduler: cannot start the control thread: %s\n", std::strerror(err));
    std::lock_guard lock(mu_);
    session_.reset();
    return Outcome::kLoadFailed;
  }
  s->faults0 = faults_of(s->dispatcher_tid);

  const auto deadline = s->start + seconds(opts_.duration_s);
  Shim& shim = *s->shim;
  Dispatcher& dispatcher = *s->dispatcher;
  const auto keep_waiting = [&] { return !stop_.load(std::memory_order_relaxed) && !shim.exited(); };
  // Between batches: yield, poll or sleep (scheduler/idle_strategy.h says when and why).
  IdleStrategy idle(std::chrono::microseconds(opts_.spin_us), opts_.policy_cfg.nr_cpus);
  const auto past_deadline = [&] { return opts_.duration_s > 0 && Clock::now() >= deadline; };
  const auto batch_demand = [&](std::span<const TaskEvent> batch) {
    const Shim::CpuDemand d = shim.cpu_demand();
    // Direct wakeup reports run already: not sent, and never requeued (they are wakeups).
    IdleStrategy::BatchDemand b{.queued = d.waiting, .sent = static_cast<std::int64_t>(dispatcher.last_answered()),
                                .idle = d.idle};
    for (const TaskEvent& ev : batch) b.requeued += !is_wakeup(ev);
    return b;
  };
  // While polling: tasks queued beyond the idle CPUs.
  const auto poll_demand = [&] {
    const Shim::CpuDemand d = shim.cpu_demand();
    return d.waiting - d.idle;
  };
  while (keep_waiting() && !past_deadline()) {
    if (dispatcher.run_once(keep_waiting) > 0) {
      // A batch of direct wakeup reports only placed nothing: no reason to spin on.
      if (dispatcher.last_answered() == 0) continue;
      if (idle.spinning_enabled() && idle.after_batch(Clock::now(), batch_demand(dispatcher.last_batch())))
        sched_yield();
      continue;
    }
    if (idle.when_empty(Clock::now(), poll_demand) == IdleAction::kPoll) {
      cpu_relax();
      continue;
    }
    s->channel->wait_for_events(std::chrono::milliseconds(100));
    idle.woke();
  }

  done.store(true, std::memory_order_relaxed);
  pthread_join(control, nullptr);
  {
    std::lock_guard lock(mu_);
    session_.reset();
  }
  const bool kernel_exit = shim.exited();
  std::printf("%s\n", telemetry::format_stats_line(stats(*s)).c_str());
  shim.detach();
  const ExitInfo info = shim.exit_info();
  const std::string dump = kernel_exit ? shim.exit_dump() : std::string();
  if (!kernel_exit) {
    std::printf("EXIT: %s\n", info.kind ? info.reason : "detached");
    std::fflush(stdout);
    return Outcome::kStopped;
  }
  std::printf("EXIT: %s (%s)\n", info.reason, info.msg);
  std::fflush(stdout);
  // Error exits only (a stall, a BPF error): the kernel writes no dump otherwise.
  if (!dump.empty()) std::fprintf(stderr, "zernel-scheduler: the kernel's state at the exit:\n%s\n", dump.c_str());
  return info.exit_code & kExitRestart ? Outcome::kRestart : Outcome::kKernelExit;
}

telemetry::StatsSnapshot Agent::stats(Session& s) const {
  telemetry::StatsSnapshot snap;
  snap.elapsed_s = std::chrono::duration<double>(Clock::now() - s.start).count();
  snap.shim = s.shim->read_stats();
  snap.dispatcher = s.dispatcher->counters();
  const Faults f = faults_of(s.dispatcher_tid);
  snap.minor_faults = f.minor - s.faults0.minor;
  snap.major_faults = f.major - s.faults0.major;
  snap.tasks_waiting = s.shim->tasks_waiting();
  return snap;
}

void Agent::control_loop(Session& s, const std::atomic<bool>& done) {
  const auto tick = std::chrono::milliseconds(100);
  auto next_stats = s.start + seconds(opts_.stats_interval_s);
  auto next_metrics = s.start;
  // Interval deltas for the stats line: the previous cumulative snapshots.
  telemetry::LatencySnapshot prev_rt, prev_run, prev_dec;

  while (!done.load(std::memory_order_relaxed)) {
    std::this_thread::sleep_for(tick);
    const auto now = Clock::now();

    // The /proc scan serves the phase policy alone, and costs every process on the machine
    // a read of its memory map now and then (ml_process.h): only while phase runs.
    if (phase_active()) ml_->tick(now);

    if (reload_.exchange(false)) {
      Response r = on_reload();
      for (const std::string& line : r.lines) std::printf("zernel-scheduler: %s\n", line.c_str());
      if (!r.error.empty()) std::printf("zernel-scheduler: reload refused: %s\n", r.error.c_str());
      std::fflush(stdout);
    }

    if (opts_.stats_interval_s > 0 && now >= next_stats) {
      telemetry::StatsSnapshot snap = stats(s);
      telemetry::LatencySnapshot rt = s.observer.round_trip().snapshot();
      telemetry::LatencySnapshot run = s.observer.enqueue_to_running().snapshot();
      telemetry::LatencySnapshot dec = s.observer.decision_batch().snapshot();
      telemetry::LatencySnapshot d_rt = rt, d_run = run, d_dec = dec;
      d_rt.subtract(prev_rt);
      d_run.subtract(prev_run);
      d_dec.subtract(prev_dec);
      snap.round_trip = summarize(d_rt);
      snap.enqueue_to_running = summarize(d_run);
      snap.decision_batch = summarize(d_dec);
      prev_rt = rt;
      prev_run = run;
      prev_dec = dec;
      std::printf("%s\n", telemetry::format_stats_line(snap).c_str());
      std::fflush(stdout);
      next_stats = now + seconds(opts_.stats_interval_s);
    }

    if (metrics_ && now >= next_metrics) {
      publish_metrics(s);
      std::uint32_t push_ms;
      {
        std::lock_guard lock(mu_);
        push_ms = config_.telemetry.push_interval_ms;
      }
      next_metrics = now + std::chrono::milliseconds(push_ms);
    }
  }
}

void Agent::publish_metrics(Session& s) {
  const telemetry::StatsSnapshot st = stats(s);
  std::lock_guard lock(metrics_mu_);
  telemetry::MetricsSnapshot& m = *snapshot_;
  m.tasks_total = system_tasks();
  const MlMonitor::Counts ml = ml_->counts();
  m.tasks_ml = ml.ml_tasks;
  m.decisions_total = st.dispatcher.sent;
  // Tasks per phase: those of ML jobs as classified, every other task as unknown.
  for (std::size_t i = 0; i < telemetry::kPhaseCount; ++i) m.phase_tasks[i] = ml.by_phase[i];
  const std::size_t unknown = phase_index(Phase::Unknown);
  m.phase_tasks[unknown] += m.tasks_total > ml.ml_tasks ? m.tasks_total - ml.ml_tasks : 0;
  // CPU time per phase over the interval since the last publish, as the phase policy
  // charged it; all of it "unknown" while another policy runs.
  std::array<std::uint64_t, telemetry::kPhaseCount> cpu{};
  if (const auto* phase = dynamic_cast<const PhasePolicy*>(s.find(kPhasePolicy))) {
    m.phase_transitions_total = phase->transitions();
    for (std::size_t i = 0; i < telemetry::kPhaseCount; ++i) cpu[i] = phase->cpu_ns_in(static_cast<Phase>(i));
  }
  std::uint64_t total = 0;
  std::array<std::uint64_t, telemetry::kPhaseCount> delta{};
  for (std::size_t i = 0; i < telemetry::kPhaseCount; ++i) {
    delta[i] = cpu[i] - prev_phase_cpu_[i];
    total += delta[i];
  }
  prev_phase_cpu_ = cpu;
  m.phase_time_pct = {};
  if (total == 0) m.phase_time_pct[unknown] = 100.0;
  for (std::size_t i = 0; i < telemetry::kPhaseCount && total; ++i)
    m.phase_time_pct[i] = 100.0 * static_cast<double>(delta[i]) / static_cast<double>(total);
  m.dispatches = {st.shim.nr_user_dispatched, st.shim.nr_kernel_dispatched, st.shim.nr_congested,
                  st.shim.nr_bypassed,        st.shim.nr_rescued,           st.shim.nr_cancelled,
                  st.shim.nr_bounced,         st.shim.nr_exited,            st.shim.nr_direct};
  m.preempt_kicks_total = st.shim.nr_preempt_kicks;
  m.grant_preemptions_total = st.shim.nr_grant_preempts;
  m.resumed_total = st.shim.nr_resumed;
  m.aged_total = st.shim.nr_aged;
  m.sync_wakeups_total = st.shim.nr_sync_wakes;
  m.ring_used_bytes_tasks = s.channel->pending_bytes();
  m.ring_used_bytes_decisions = s.channel->pending_decision_bytes();
  m.tasks_waiting = s.shim->tasks_waiting();
  m.minor_faults_total = st.minor_faults;
  m.major_faults_total = st.major_faults;
  s.observer.round_trip().snapshot_into(m.latency_of(telemetry::LatencyKind::RoundTrip).all);
  s.observer.enqueue_to_running().snapshot_into(m.latency_of(telemetry::LatencyKind::EnqueueToRunning).all);
  s.observer.decision_batch().snapshot_into(m.latency_of(telemetry::LatencyKind::DecisionBatch).all);
  metrics_->update(m);
  metrics_text_ = metrics_->serialize();
}

Response Agent::on_status() {
  auto s = session();
  if (!s) return Response::fail("the scheduler is not attached right now (starting or restarting)", "retry in a second");
  telemetry::StatsSnapshot snap = stats(*s);
  snap.round_trip = summarize(s->observer.round_trip().snapshot());
  snap.enqueue_to_running = summarize(s->observer.enqueue_to_running().snapshot());
  snap.decision_batch = summarize(s->observer.decision_batch().snapshot());
  std::string policy;
  {
    std::lock_guard lock(mu_);
    policy = policy_name_;
  }
  const MlMonitor::Counts ml = ml_->counts();
  const auto* phase = dynamic_cast<const PhasePolicy*>(s->find(kPhasePolicy));
  std::string phases;
  for (std::size_t i = 0; i < kPhaseCount; ++i)
    phases += std::string(i ? " " : "") + std::string(phase_name(static_cast<Phase>(i))) + "=" +
              std::to_string(ml.by_phase[i]);
  return Response::ok({telemetry::format_stats_line(snap),
                       "policy " + policy + " (switches " + std::to_string(snap.dispatcher.policy_switches) +
                           "), pid " + std::to_string(getpid()),
                       "ml: " + std::to_string(ml.ml_processes) + " processes, " + std::to_string(ml.ml_tasks) +
                           " tasks (" + phases + "), " + std::to_string(ml.gpus) + " GPUs (" + ml.gpu_source +
                           "), snapshots " + std::to_string(ml.snapshots) + ", transitions " +
                           std::to_string(phase ? phase->transitions() : 0) + ", futex_waits=" +
                           std::to_string(phase ? phase->futex_waits() : 0) +
                           (policy == kPhasePolicy ? "" : ", monitor idle (it scans only under the phase policy)")});
}

Response Agent::on_policy(std::string_view name) {
  auto s = session();
  if (!s) return Response::fail("the scheduler is not attached right now (starting or restarting)", "retry in a second");
  Policy* next = s->find(name);
  if (!next)
    return Response::fail("unknown policy '" + std::string(name) + "' (known: " + std::string(kPolicyNames) + ")",
                          "zernelctl policy fair");
  std::string old;
  {
    std::lock_guard lock(mu_);
    old = policy_name_;
  }
  if (old == name) return Response::ok({"policy " + old + " is already running"});
  // The phase policy starts with a current picture of the machine: the monitor has not
  // scanned while another policy ran.
  if (name == kPhasePolicy) ml_->refresh();
  {
    std::lock_guard lock(mu_);
    policy_name_ = std::string(name);
  }

  const std::uint64_t in_flight = telemetry::in_flight(s->shim->read_stats());
  const std::uint64_t epoch = s->dispatcher->policy_epoch();
  const std::uint64_t t0 = steady_ns();
  s->dispatcher->request_policy(*next);
  {
    std::lock_guard lock(metrics_mu_);
    metrics_->set_policy(name);
  }
  const auto give_up = Clock::now() + std::chrono::seconds(2);
  while (s->dispatcher->policy_epoch() == epoch && Clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  if (s->dispatcher->policy_epoch() == epoch)
    return Response::ok({"policy " + old + " -> " + std::string(name) +
                         ": requested; no task arrived within 2 s, it decides the next one"});
  const std::uint64_t t1 = s->dispatcher->last_switch_first_decision_ns();
  char buf[160];
  std::snprintf(buf, sizeof(buf), "policy %s -> %.*s: first decision %.0f us after the request, %llu tasks in flight",
                old.c_str(), static_cast<int>(name.size()), name.data(), (t1 > t0 ? t1 - t0 : 0) / 1e3,
                static_cast<unsigned long long>(in_flight));
  std::printf("zernel-scheduler: %s\n", buf);
  std::fflush(stdout);
  return Response::ok({buf});
}

Response Agent::on_reload() {
  if (opts_.config_path.empty())
    return Response::fail("no configuration file to reload (started without --config)",
                          "start zernel-scheduler with --config /etc/zernel/scheduler.toml");
  ConfigResult r = load_config_file(opts_.config_path);
  if (!r.config) return Response::fail(r.error, "correct the file; the running configuration is unchanged");
  std::lock_guard lock(mu_);
  std::vector<std::string> lines;
  const Config& next = *r.config;
  // What a running scheduler cannot change: the sockets it listens on and table sizes.
  if (next.telemetry.metrics_port != config_.telemetry.metrics_port ||
      next.telemetry.metrics_address != config_.telemetry.metrics_address)
    lines.push_back("telemetry.metrics_address/metrics_port change at the next restart");
  if (next.general.max_tracked_tasks != config_.general.max_tracked_tasks)
    lines.push_back("general.max_tracked_tasks changes at the next restart");
  Config applied = next;
  applied.telemetry.metrics_port = config_.telemetry.metrics_port;
  applied.telemetry.metrics_address = config_.telemetry.metrics_address;
  applied.general.max_tracked_tasks = config_.general.max_tracked_tasks;
  const bool changed = !(applied == config_);
  config_ = applied;
  ml_->set_config(applied);
  lines.push_back("reloaded " + opts_.config_path + (changed ? " (applied)" : " (no change)"));
  return Response::ok(std::move(lines));
}

Response Agent::on_phases() { return Response::ok(ml_->phases()); }

Response Agent::on_trace(std::string_view secs_arg, std::string_view file) {
  char* end = nullptr;
  const std::string secs_s(secs_arg);
  const double secs = std::strtod(secs_s.c_str(), &end);
  if (end == secs_s.c_str() || *end != '\0' || !(secs > 0) || secs > 600)
    return Response::fail("trace length '" + secs_s + "' is not a number of seconds in (0, 600]",
                          "zernelctl trace 5 /tmp/zernel.trace.json");
  auto s = session();
  if (!s) return Response::fail("the scheduler is not attached right now (starting or restarting)", "retry in a second");
  auto rec = std::make_unique<telemetry::TraceRecorder>(kTraceCapacity);
  s->observer.arm(rec.get());
  const auto until = Clock::now() + seconds(secs);
  while (Clock::now() < until && !control_->stop_requested() && !stop_.load(std::memory_order_relaxed))
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  s->observer.disarm();
  if (std::string err = rec->write_chrome_json(std::string(file)); !err.empty())
    return Response::fail(err, "give a writable absolute path");
  return Response::ok({"wrote " + std::to_string(rec->size()) + " events (" + std::to_string(rec->dropped()) +
                       " dropped) to " + std::string(file)});
}

}  // namespace

int run_agent(const AgentOptions& opts, const std::atomic<bool>& stop, std::atomic<bool>& reload) {
  Agent agent(opts, stop, reload);
  return agent.run();
}

int run_monitor(const std::string& socket_path, double interval_s, const std::atomic<bool>& stop) {
  const std::string path = socket_path.empty() ? std::string(control::kDefaultSocketPath) : socket_path;
  while (!stop.load(std::memory_order_relaxed)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      std::fprintf(stderr,
                   "zernel-scheduler: no zernel-scheduler is running (cannot connect to %s: %s); fix: start it first\n",
                   path.c_str(), std::strerror(errno));
      if (fd >= 0) close(fd);
      return 1;
    }
    const timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    (void)!write(fd, "status\n", 7);
    std::string answer;
    char buf[4096];
    for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) answer.append(buf, static_cast<std::size_t>(n));
    close(fd);
    // Print the data lines (the stats line first); the protocol's final "ok" is not news.
    std::size_t pos = 0;
    for (std::size_t nl; (nl = answer.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      const std::string line = answer.substr(pos, nl - pos);
      if (line == control::kOkLine) continue;
      if (line.rfind(control::kErrorPrefix, 0) == 0) {
        std::fprintf(stderr, "zernel-scheduler: %s\n", line.c_str());
        return 1;
      }
      std::printf("%s\n", line.c_str());
    }
    std::fflush(stdout);
    const auto until = Clock::now() + seconds(interval_s);
    while (Clock::now() < until && !stop.load(std::memory_order_relaxed))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

}  // namespace zernel
