/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BPF side of the transport benchmark, on the shim's own ring maps (zernel_rings.bpf.h),
 * as SEC("syscall") programs so that BPF_PROG_TEST_RUN runs them on a kernel without
 * sched_ext.
 *
 * BPF_PROG_TEST_RUN reports no duration for syscall programs (the kernel rejects repeat
 * and duration for them), so the programs time themselves with bpf_ktime_get_ns() around
 * the measured part and add to *_ns below; clock_pair measures what one such pair costs,
 * which userspace subtracts per call.
 *
 * produce:    what ops.enqueue does with the ring: reserve, fill every field the way the
 *             shim fills it, submit. Per-task state the shim keeps in task storage comes
 *             from one global here (the task storage lookup is not transport).
 * drain:      what ops.dispatch does with the ring: bpf_user_ringbuf_drain, each decision
 *             read with bpf_dynptr_read, a lookup of per-task state and a generation
 *             check, stopping after `max` decisions as ops.dispatch stops when it runs
 *             out of dispatch slots. The shim's bpf_task_from_pid and dispatch kfuncs are
 *             not measured (no sched_ext here).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "zernel_abi.h"
#include "zernel_rings.bpf.h"

char _license[] SEC("license") = "GPL";

/* flags: 0 as in the shim, or BPF_RB_NO_WAKEUP to measure what the wakeup costs. */
struct produce_args {
	__u32 count;
	__u32 flags;
};

struct drain_args {
	__u32 max;
	__u32 flags;
};

/* The fields of the shim's struct task_ctx that a message is built from. */
struct bench_task_ctx {
	__u64 runtime;
	__u64 burst;
	__u64 last_burst;
	__u64 gen;
	__s32 waker_pid;
	__s32 waker_tgid;
	__u32 iowait;
	__u32 weight;
};

struct bench_task_ctx tctx = {
	.runtime = 120000,
	.burst = 400000,
	.last_burst = 80000,
	.waker_pid = 4242,
	.waker_tgid = 4240,
	.weight = 100,
};

__u64 produce_ns;
__u64 nr_produced;
__u64 nr_reserve_failed;

__u64 drain_ns;
__u64 nr_drained;
__u64 nr_applied;

__u64 pair_ns;
__u64 nr_pairs;

/* What ops.dispatch looks up per decision: the generation to check, the key to record. */
struct dispatch_state {
	__u64 gen;
	__u64 key;
};

#define TASK_SLOTS 65536
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TASK_SLOTS);
	__type(key, __u32);
	__type(value, struct dispatch_state);
} task_states SEC(".maps");

#define SCX_ENQ_WAKEUP_BIT 1ULL

SEC("syscall")
int produce(struct produce_args *args)
{
	struct task_struct *p = bpf_get_current_task_btf();
	__u64 enq_flags = SCX_ENQ_WAKEUP_BIT;
	__u32 i, n = args->count;
	__u64 flags = args->flags;
	__u64 t0 = bpf_ktime_get_ns();

	bpf_for(i, 0, n) {
		struct zernel_task_msg *msg = bpf_ringbuf_reserve(&tasks, sizeof(*msg), 0);

		if (!msg) {
			nr_reserve_failed++;
			break;
		}
		tctx.gen++;
		msg->pid = p->pid;
		msg->tgid = p->tgid;
		msg->prev_cpu = bpf_get_smp_processor_id();
		msg->nr_cpus_allowed = p->nr_cpus_allowed;
		msg->enq_flags = enq_flags;
		msg->enq_ns = bpf_ktime_get_ns();
		msg->runtime_ns = tctx.runtime;
		msg->burst_ns = (enq_flags & SCX_ENQ_WAKEUP_BIT) ? tctx.last_burst : tctx.burst;
		msg->gen = tctx.gen;
		msg->weight = tctx.weight;
		msg->flags = (enq_flags & SCX_ENQ_WAKEUP_BIT) ? ZERNEL_TASK_WAKEUP : 0;
		if (tctx.iowait)
			msg->flags |= ZERNEL_TASK_IOWAIT;
		if (p->flags & 0x00200000 /* PF_KTHREAD */)
			msg->flags |= ZERNEL_TASK_KTHREAD;
		msg->waker_pid = tctx.waker_pid;
		msg->waker_tgid = tctx.waker_tgid;
		__builtin_memcpy(msg->comm, p->comm, ZERNEL_COMM_LEN);
		bpf_ringbuf_submit(msg, flags);
		nr_produced++;
	}
	produce_ns += bpf_ktime_get_ns() - t0;
	return 0;
}

struct drain_ctx {
	__u32 n;
	__u32 max;
};

static long drain_one(struct bpf_dynptr *dynptr, void *ctx)
{
	struct drain_ctx *c = ctx;
	struct zernel_decision d;
	struct dispatch_state *st;
	__u32 key;

	c->n++;
	if (bpf_dynptr_read(&d, sizeof(d), dynptr, 0, 0))
		return c->n >= c->max;
	key = (__u32)d.pid & (TASK_SLOTS - 1);
	st = bpf_map_lookup_elem(&task_states, &key);
	if (st && st->gen <= d.gen) {
		st->gen = d.gen;
		st->key = d.vtime;
		nr_applied++;
	}
	return c->n >= c->max;
}

SEC("syscall")
int drain(struct drain_args *args)
{
	struct drain_ctx c = { .n = 0, .max = args->max };
	__u64 t0 = bpf_ktime_get_ns();

	bpf_user_ringbuf_drain(&decisions, drain_one, &c, args->flags);
	drain_ns += bpf_ktime_get_ns() - t0;
	nr_drained += c.n;
	return c.n;
}

/* The cost of one bpf_ktime_get_ns() pair as the programs above use it, averaged. */
SEC("syscall")
int clock_pair(void *ctx)
{
	__u32 i;

	bpf_for(i, 0, 1000) {
		__u64 t0 = bpf_ktime_get_ns();

		pair_ns += bpf_ktime_get_ns() - t0;
		nr_pairs++;
	}
	return 0;
}

/* The fixed cost of BPF_PROG_TEST_RUN itself, for the whole-syscall cross-check. */
SEC("syscall")
int empty(void *ctx)
{
	return 0;
}
