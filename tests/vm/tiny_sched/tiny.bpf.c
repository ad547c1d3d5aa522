/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zernel_tiny: a second, minimal sched_ext scheduler for the VM tests only.
 *
 * The tests switch the machine zernel -> another sched_ext scheduler -> zernel, and Debian
 * 12 packages no other sched_ext scheduler, so the tests build this one. It is global FIFO:
 * a waking task whose default CPU choice is idle goes straight to that CPU's local queue,
 * every other task goes to SCX_DSQ_GLOBAL, which the kernel consumes by itself (no
 * ops.dispatch). ops.exit records why the kernel unloaded it, for the loader to print.
 *
 * Not done here on purpose: no priorities or weights, no per-task state, no preemption, no
 * stall handling, no tunables. Anything more would need its own tests.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "zernel_abi.h"
#include "zernel_kfuncs.h"

char _license[] SEC("license") = "GPL";

/* Written once in ops.exit; userspace polls .kind. */
struct zernel_exit_info exit_info;

s32 BPF_STRUCT_OPS(tiny_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	/* Inserting here skips ops.enqueue for this wakeup. */
	if (is_idle)
		zernel_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, 0);
	return cpu;
}

void BPF_STRUCT_OPS(tiny_enqueue, struct task_struct *p, u64 enq_flags)
{
	zernel_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
}

void BPF_STRUCT_OPS(tiny_exit, struct scx_exit_info *ei)
{
	zernel_record_exit(&exit_info, ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops tiny_ops = {
	.select_cpu = (void *)tiny_select_cpu,
	.enqueue = (void *)tiny_enqueue,
	.exit = (void *)tiny_exit,
	.name = "zernel_tiny",
};
