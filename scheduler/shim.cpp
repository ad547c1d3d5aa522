#include "scheduler/shim.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "scheduler/bpf_channel.h"
#include "zernel.skel.h"

namespace zernel {
namespace {

std::string errstr(int err) { return std::strerror(err < 0 ? -err : err); }

std::array<bpf_program*, 3> futex_programs(zernel_bpf* s) {
  return {s->progs.zernel_futex_wait, s->progs.zernel_futex_wait_multiple, s->progs.zernel_futex_wait_requeue_pi};
}

}  // namespace

std::unique_ptr<Shim> Shim::attach(const ShimOptions& opts, std::string* error) {
  std::unique_ptr<Shim> shim(new Shim());
  shim->skel_ = zernel_bpf__open();
  if (!shim->skel_) {
    *error = "cannot open the BPF object: " + errstr(errno);
    return nullptr;
  }
  zernel_bpf* s = shim->skel_;

  const int nr_cpus = libbpf_num_possible_cpus();
  if (nr_cpus <= 0) {
    *error = "cannot count possible CPUs: " + errstr(nr_cpus);
    return nullptr;
  }
  s->rodata->usersched_pid = opts.dispatcher_tid;
  s->rodata->usersched_tgid = opts.agent_tgid;
  s->rodata->nr_cpus = static_cast<std::uint32_t>(nr_cpus);
  s->rodata->slice_dfl_ns = opts.slice_dfl_ns;
  s->rodata->stall_timeout_ns = opts.stall_timeout_ns;
  s->rodata->preempt_margin_ns = opts.slice_dfl_ns;
  const auto cpus = static_cast<std::uint32_t>(nr_cpus);
  size_task_rings(s, cpus, task_ring_slots_for(opts.task_ring_bytes, cpus));
  bpf_map__set_max_entries(s->maps.decisions, opts.decision_ring_bytes);
  bpf_map__set_max_entries(s->maps.cpu_ctxs, static_cast<std::uint32_t>(nr_cpus));

  // An fentry program whose function the kernel lacks (renamed, inlined) would fail the
  // whole load: leave it out and say so.
  btf* vmlinux = btf__load_vmlinux_btf();
  for (bpf_program* prog : futex_programs(s)) {
    const char* fn = std::strchr(bpf_program__section_name(prog), '/');
    if (vmlinux && fn && btf__find_by_name_kind(vmlinux, fn + 1, BTF_KIND_FUNC) >= 0) continue;
    std::fprintf(stderr, "zernel-scheduler: warning: futex wait counting unavailable (%s: %s)\n",
                 fn ? fn + 1 : bpf_program__name(prog),
                 vmlinux ? "not in this kernel" : "no kernel BTF at /sys/kernel/btf/vmlinux");
    bpf_program__set_autoload(prog, false);
  }
  btf__free(vmlinux);

  if (int err = zernel_bpf__load(s); err) {
    *error = "the kernel rejected the BPF scheduler (" + errstr(err) +
             "); the libbpf lines above give the verifier's reason; fix: use a kernel with "
             "sched_ext and BTF (7.x), the one this was built against";
    return nullptr;
  }

  shim->link_ = bpf_map__attach_struct_ops(s->maps.zernel_ops);
  if (!shim->link_) {
    const int err = errno;
    if (err == EBUSY || err == EEXIST)
      *error = "another sched_ext scheduler attached first; fix: stop it, then start zernel-scheduler again";
    else
      *error = "cannot attach the scheduler to the kernel: " + errstr(err);
    return nullptr;
  }

  // Futex waits are a phase signal, not a safety need: without them the phase policy
  // only loses its NcclCollective rule, so a kernel without the wait functions is told,
  // not refused.
  for (bpf_program* prog : futex_programs(s)) {
    if (!bpf_program__autoload(prog)) continue;  // warned about before the load
    bpf_link* l = bpf_program__attach(prog);
    if (!l) {
      std::fprintf(stderr, "zernel-scheduler: warning: futex wait counting unavailable (%s: %s)\n",
                   bpf_program__name(prog), errstr(errno).c_str());
      continue;
    }
    shim->tracing_links_.push_back(l);
  }

  // Read-only view of the per-CPU states (BPF_F_MMAPABLE): placement reads it per task.
  shim->nr_cpus_ = nr_cpus;
  shim->cpu_states_len_ = static_cast<std::size_t>(nr_cpus) * sizeof(CpuState);
  void* cpu_states = mmap(nullptr, shim->cpu_states_len_, PROT_READ, MAP_SHARED, bpf_map__fd(s->maps.cpu_ctxs), 0);
  if (cpu_states == MAP_FAILED) {
    *error = "cannot map the shim's per-CPU state: " + errstr(errno);
    return nullptr;
  }
  shim->cpu_states_ = static_cast<const CpuState*>(cpu_states);
  return shim;
}

Shim::~Shim() {
  detach();
  if (cpu_states_) munmap(const_cast<CpuState*>(cpu_states_), cpu_states_len_);
  if (skel_) zernel_bpf__destroy(skel_);
}

void Shim::detach() {
  if (link_) {
    bpf_link__destroy(link_);
    link_ = nullptr;
  }
  for (bpf_link* l : tracing_links_) bpf_link__destroy(l);
  tracing_links_.clear();
}

std::span<const volatile CpuState> Shim::cpu_states() const {
  return {cpu_states_, static_cast<std::size_t>(nr_cpus_)};
}

Shim::CpuDemand Shim::cpu_demand() const {
  // Each difference wraps like the counters; the sum is meant as a small signed number.
  std::uint32_t waiting = 0;
  std::int64_t idle = 0;
  for (const volatile CpuState& c : cpu_states()) {
    waiting += c.nr_inserted - c.nr_left;
    idle += c.busy == 0;
  }
  return {static_cast<std::int32_t>(waiting), idle};
}

TaskRingMaps Shim::task_rings() const { return task_ring_maps(skel_); }
int Shim::decision_ring_fd() const { return bpf_map__fd(skel_->maps.decisions); }

zernel_consumed* Shim::consumed_counter() {
  return &skel_->bss->user_consumed;
}

zernel_wake_flags* Shim::wake_flags() { return &skel_->bss->wake; }

const volatile std::uint64_t* Shim::waiting_counter() {
  return reinterpret_cast<const volatile std::uint64_t*>(&skel_->bss->nr_waiting);
}

bool Shim::exited() const {
  // Pairs with ops.exit, which writes kind last.
  return __atomic_load_n(&skel_->bss->exit_info.kind, __ATOMIC_ACQUIRE) != 0;
}

std::string Shim::exit_dump() const {
  const char* dump = const_cast<const char*>(skel_->bss->exit_dump);
  return std::string(dump, strnlen(dump, sizeof(skel_->bss->exit_dump)));
}

ExitInfo Shim::exit_info() const {
  ExitInfo info;
  std::memcpy(&info, const_cast<const zernel_exit_info*>(&skel_->bss->exit_info), sizeof(info));
  info.reason[sizeof(info.reason) - 1] = '\0';
  info.msg[sizeof(info.msg) - 1] = '\0';
  return info;
}

ShimStats Shim::read_stats() const {
  ShimStats total{};
  const int nr_cpus = libbpf_num_possible_cpus();
  std::vector<ShimStats> per_cpu(static_cast<std::size_t>(nr_cpus));
  std::uint32_t zero = 0;
  if (bpf_map__lookup_elem(skel_->maps.stats, &zero, sizeof(zero), per_cpu.data(),
                           per_cpu.size() * sizeof(ShimStats), 0) != 0)
    return total;
  for (const ShimStats& c : per_cpu) {
    total.nr_queued += c.nr_queued;
    total.nr_user_dispatched += c.nr_user_dispatched;
    total.nr_kernel_dispatched += c.nr_kernel_dispatched;
    total.nr_congested += c.nr_congested;
    total.nr_bypassed += c.nr_bypassed;
    total.nr_cancelled += c.nr_cancelled;
    total.nr_exited += c.nr_exited;
    total.nr_bounced += c.nr_bounced;
    total.nr_preempt_kicks += c.nr_preempt_kicks;
    total.nr_drain_busy += c.nr_drain_busy;
    total.nr_rescued += c.nr_rescued;
    total.nr_malformed += c.nr_malformed;
    total.nr_direct += c.nr_direct;
    total.nr_direct_unsent += c.nr_direct_unsent;
    total.nr_grant_preempts += c.nr_grant_preempts;
    total.nr_resumed += c.nr_resumed;
    total.nr_aged += c.nr_aged;
    total.nr_sync_wakes += c.nr_sync_wakes;
  }
  return total;
}

}  // namespace zernel
