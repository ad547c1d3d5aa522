/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Host test programs for the channel: the shim's own ring maps (zernel_rings.bpf.h),
 * driven by SEC("syscall") programs that BPF_PROG_TEST_RUN can run on any kernel with
 * BPF, sched_ext or not.
 *
 * produce:      writes `count` struct zernel_task_msg into this CPU's task ring with the
 *               shim's own reserve and publish (zernel_rings.bpf.h), every field derived
 *               from the seed so that userspace can check each byte landed where it
 *               expects. A full ring refuses the rest, counted in nr_reserve_failed;
 *               nr_rung counts the doorbell rings (wake.user_sleeping was set).
 * drain:        drains the decision ring with the shim's own drain (zernel_rings.bpf.h),
 *               given `slots` dispatch slots as ops.dispatch would be by the kernel (each
 *               decision takes one). Records every decision in seen[] from nr_seen on
 *               (userspace resets nr_seen between drains) and counts malformed samples.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "zernel_abi.h"
#include "zernel_rings.bpf.h"

char _license[] SEC("license") = "GPL";

struct produce_args {
	__u64 seed;
	__u32 count;
	__u32 pad;
};

__u64 nr_produced;
__u64 nr_reserve_failed;
__u64 nr_rung;

#define MAX_SEEN 4096 /* more than a 64 KiB decision ring holds: no drained sample is lost */
struct zernel_decision seen[MAX_SEEN];
__u64 nr_seen;
__u64 nr_malformed;
/* Set by userspace before a drain: what scx_bpf_dispatch_nr_slots() would return. */
__u32 slots;

static __always_inline void fill(struct zernel_task_msg *m, __u64 seed)
{
	int i;

	m->pid = (__s32)(seed + 1);
	m->tgid = (__s32)(seed + 2);
	m->prev_cpu = (__s32)(seed % 7);
	m->nr_cpus_allowed = (__u32)(seed % 64 + 1);
	m->enq_flags = seed * 3;
	m->enq_ns = seed * 5;
	m->runtime_ns = seed * 11;
	m->burst_ns = seed * 13;
	m->gen = seed * 17;
	m->weight = (__u32)(seed % 10000 + 1);
	m->flags = (__u32)(seed & 7);
	m->waker_pid = -(__s32)seed;
	m->waker_tgid = (__s32)(seed * 19);
	m->prev_decision_ns = (__u32)(seed * 23);
	m->prev_running_ns = (__u32)(seed * 29);
	m->prev_enq_ns = seed * 31;
	for (i = 0; i < ZERNEL_COMM_LEN; i++)
		m->comm[i] = (char)('a' + (seed + i) % 26);
	m->comm[ZERNEL_COMM_LEN - 1] = 0;
	m->sleep_ns = (__u32)(seed * 37);
	m->futex_waits = (__u32)(seed * 41);
}

SEC("syscall")
int produce(struct produce_args *args)
{
	__u32 i, n = args->count;
	__u64 seed = args->seed;

	bpf_for(i, 0, n) {
		struct zernel_task_reservation r;
		struct zernel_task_msg *m = zernel_task_reserve(&r);

		if (!m) {
			nr_reserve_failed++;
			continue;
		}
		fill(m, seed + i);
		if (zernel_task_publish(&r))
			nr_rung++;
		nr_produced++;
	}
	return 0;
}

/* The drain's hooks (zernel_rings.bpf.h): record instead of dispatching. */
static __always_inline void zernel_on_decision(const struct zernel_decision *d, void *ctx)
{
	__u64 idx = nr_seen;

	if (slots)
		slots--; /* as an insert takes a dispatch slot */
	if (idx >= MAX_SEEN)
		return;
	seen[idx] = *d;
	nr_seen = idx + 1;
}

static __always_inline void zernel_on_malformed(void *ctx)
{
	nr_malformed++;
}

static __always_inline __u32 zernel_dispatch_slots(void *ctx)
{
	return slots;
}

SEC("syscall")
int drain(void *ctx)
{
	return zernel_drain_decisions(NULL, 0);
}
