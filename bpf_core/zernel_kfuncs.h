/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sched_ext kfuncs the shim calls, declared here rather than trusted to vmlinux.h:
 * a vmlinux.h made by an older bpftool, or from BTF without decl tags, has no kfunc
 * prototypes at all. Redeclaring a prototype vmlinux.h already has is harmless as long
 * as the signatures agree, and these are the 6.13+ / 7.x signatures.
 *
 * Compat: kfuncs were renamed in 6.13 (scx_bpf_dispatch -> scx_bpf_dsq_insert,
 * scx_bpf_consume -> scx_bpf_dsq_move_to_local) and scx_bpf_now() arrived in 6.14. The old
 * names are declared __weak so that libbpf leaves them unresolved on kernels that dropped
 * them; bpf_ksym_exists() picks the one the running kernel has, and the verifier removes
 * the dead branch. Every kernel we test (Debian 7.2, 7.3) has the new names.
 */
#ifndef ZERNEL_KFUNCS_H
#define ZERNEL_KFUNCS_H

/* libbpf has BPF_PROG for the argument unpacking; the section names are ours. */
#define BPF_STRUCT_OPS(name, args...) SEC("struct_ops/" #name) BPF_PROG(name, ##args)
#define BPF_STRUCT_OPS_SLEEPABLE(name, args...) SEC("struct_ops.s/" #name) BPF_PROG(name, ##args)

void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __weak __ksym;
void scx_bpf_dsq_insert_vtime(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime,
			      u64 enq_flags) __weak __ksym;
bool scx_bpf_dsq_move_to_local(u64 dsq_id) __weak __ksym;
s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __weak __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags,
			   bool *is_idle) __weak __ksym;
s32 scx_bpf_pick_idle_cpu(const struct cpumask *cpus_allowed, u64 flags) __weak __ksym;
bool scx_bpf_test_and_clear_cpu_idle(s32 cpu) __weak __ksym;
void scx_bpf_kick_cpu(s32 cpu, u64 flags) __weak __ksym;
u32 scx_bpf_dispatch_nr_slots(void) __weak __ksym;
s32 scx_bpf_dsq_nr_queued(u64 dsq_id) __weak __ksym;
s32 scx_bpf_task_cpu(const struct task_struct *p) __weak __ksym;
u64 scx_bpf_now(void) __weak __ksym;
u32 scx_bpf_nr_cpu_ids(void) __weak __ksym;
bool scx_bpf_task_set_slice(struct task_struct *p, u64 slice) __weak __ksym; /* 6.17+ */

/* Walking a queue, and moving a task met on the walk (6.13+ names; the aged-task rescue). */
int bpf_iter_scx_dsq_new(struct bpf_iter_scx_dsq *it, u64 dsq_id, u64 flags) __weak __ksym;
struct task_struct *bpf_iter_scx_dsq_next(struct bpf_iter_scx_dsq *it) __weak __ksym;
void bpf_iter_scx_dsq_destroy(struct bpf_iter_scx_dsq *it) __weak __ksym;
bool scx_bpf_dsq_move(struct bpf_iter_scx_dsq *it__iter, struct task_struct *p, u64 dsq_id,
		      u64 enq_flags) __weak __ksym;

struct task_struct *bpf_task_from_pid(s32 pid) __weak __ksym;
void bpf_task_release(struct task_struct *p) __weak __ksym;
bool bpf_cpumask_test_cpu(u32 cpu, const struct cpumask *cpumask) __weak __ksym;

/* Pre-6.13 names. */
void scx_bpf_dispatch(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __weak __ksym;
void scx_bpf_dispatch_vtime(struct task_struct *p, u64 dsq_id, u64 slice, u64 vtime,
			    u64 enq_flags) __weak __ksym;
bool scx_bpf_consume(u64 dsq_id) __weak __ksym;

static __always_inline void zernel_insert(struct task_struct *p, u64 dsq, u64 slice, u64 flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert))
		scx_bpf_dsq_insert(p, dsq, slice, flags);
	else
		scx_bpf_dispatch(p, dsq, slice, flags);
}

static __always_inline void zernel_insert_vtime(struct task_struct *p, u64 dsq, u64 slice,
						u64 vtime, u64 flags)
{
	if (bpf_ksym_exists(scx_bpf_dsq_insert_vtime))
		scx_bpf_dsq_insert_vtime(p, dsq, slice, vtime, flags);
	else
		scx_bpf_dispatch_vtime(p, dsq, slice, vtime, flags);
}

static __always_inline bool zernel_move_to_local(u64 dsq)
{
	if (bpf_ksym_exists(scx_bpf_dsq_move_to_local))
		return scx_bpf_dsq_move_to_local(dsq);
	return scx_bpf_consume(dsq);
}

/* The shim clock: the rq clock when the kernel offers it (scx_bpf_now, 6.14+), which is
 * cheaper than bpf_ktime_get_ns() on the hot path (no clocksource read while the rq clock
 * is fresh). It is sched_clock-based, ns since boot: close to CLOCK_MONOTONIC but not the
 * same clock, so userspace only ever subtracts shim timestamps from each other. */
static __always_inline u64 zernel_now(void)
{
	if (bpf_ksym_exists(scx_bpf_now))
		return scx_bpf_now();
	return bpf_ktime_get_ns();
}

/* How the kernel unloaded us, for userspace (struct zernel_exit_info in zernel_abi.h). */
static __always_inline void zernel_record_exit(struct zernel_exit_info *out, struct scx_exit_info *ei)
{
	bpf_probe_read_kernel_str(out->reason, sizeof(out->reason), ei->reason);
	bpf_probe_read_kernel_str(out->msg, sizeof(out->msg), ei->msg);
	out->exit_code = ei->exit_code;
	/* kind last: userspace treats kind != 0 as "the rest is written". */
	asm volatile("" ::: "memory");
	out->kind = ei->kind;
}

#endif /* ZERNEL_KFUNCS_H */
