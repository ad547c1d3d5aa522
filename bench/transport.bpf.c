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
 *             shim fills it, submit with BPF_RB_NO_WAKEUP, then wake the consumer (a
 *             discarded 8-byte record with BPF_RB_FORCE_WAKEUP) only if wake.user_sleeping
 *             says it is about to block. Per-task state the shim keeps in task storage
 *             comes from one global here (the task storage lookup is not transport).
 * drain:      what ops.dispatch does with the ring: bpf_user_ringbuf_drain with
 *             BPF_RB_NO_WAKEUP, or BPF_RB_FORCE_WAKEUP while wake.user_waiting_space is
 *             set; each decision read with bpf_dynptr_read, a lookup of per-task state and
 *             a generation check, stopping after `max` decisions as ops.dispatch stops when
 *             it runs out of dispatch slots. The shim's bpf_task_from_pid and dispatch
 *             kfuncs are not measured (no sched_ext here).
 *
 * `wake` is the shim's struct zernel_wake_flags, in this object's .bss as in the shim's;
 * BpfChannel gets a pointer to it as it does in production. args->legacy = 1 replays the
 * protocol before it (flags 0 on both helpers: the kernel's default wakeups), for
 * comparison.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "zernel_abi.h"
#include "zernel_rings.bpf.h"

char _license[] SEC("license") = "GPL";

/* legacy: 0 = the shim's wakeup protocol, 1 = flags 0 (the kernel's default wakeups). */
struct produce_args {
	__u32 count;
	__u32 legacy;
};

struct drain_args {
	__u32 max;
	__u32 legacy;
};

/* The shim's wakeup flags, written by BpfChannel::wait_for_events/wait_for_space. */
struct zernel_wake_flags wake;
__u64 nr_forced_wakeups;

/* As the shim's wake_dispatcher(): wakes the poller without adding data to read. */
static __always_inline void wake_dispatcher(void)
{
	void *r = bpf_ringbuf_reserve(&tasks, 8, 0);

	if (r) {
		bpf_ringbuf_discard(r, BPF_RB_FORCE_WAKEUP);
		nr_forced_wakeups++;
	}
}

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
	__u64 enq_at;
	__u64 decided_at;
	__u64 started_at;
};

struct bench_task_ctx tctx = {
	.enq_at = 1000000,
	.decided_at = 1030000,
	.started_at = 1050000,
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

static __always_inline __u32 sat_u32(__u64 v)
{
	return v > 0xffffffffULL ? 0xffffffffU : (__u32)v;
}

SEC("syscall")
int produce(struct produce_args *args)
{
	struct task_struct *p = bpf_get_current_task_btf();
	__u64 enq_flags = SCX_ENQ_WAKEUP_BIT;
	__u32 i, n = args->count;
	__u32 legacy = args->legacy;
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
		msg->waker_pid = tctx.waker_pid;
		msg->waker_tgid = tctx.waker_tgid;
		msg->prev_decision_ns = 0;
		msg->prev_running_ns = 0;
		msg->prev_enq_ns = tctx.enq_at;
		if (tctx.decided_at && tctx.started_at >= tctx.decided_at) {
			msg->prev_decision_ns = sat_u32(tctx.decided_at - tctx.enq_at);
			msg->prev_running_ns = sat_u32(tctx.started_at - tctx.enq_at);
		}
		tctx.enq_at = msg->enq_ns;
		__builtin_memcpy(msg->comm, p->comm, ZERNEL_COMM_LEN);
		if (legacy) {
			bpf_ringbuf_submit(msg, 0);
		} else {
			/* The shim: no IPI per message; submit is a full barrier, then the flag. */
			bpf_ringbuf_submit(msg, BPF_RB_NO_WAKEUP);
			if (wake.user_sleeping)
				wake_dispatcher();
		}
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

	__u64 flags = args->legacy ? 0
				   : (wake.user_waiting_space ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);

	bpf_user_ringbuf_drain(&decisions, drain_one, &c, flags);
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
