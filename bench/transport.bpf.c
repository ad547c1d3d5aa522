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
 * produce:    what ops.enqueue does with the ring: the shim's reserve of a slot in this
 *             CPU's task ring, fill every field the way the shim fills it (and the
 *             task-context updates that go with it), publish, which rings the doorbell only
 *             if wake.user_sleeping says the consumer is about to block (zernel_rings.bpf.h).
 *             Per-task state the shim keeps in task storage comes from one global here
 *             (the task storage lookup is not transport).
 * produce_ringbuf: the same messages into a BPF_MAP_TYPE_RINGBUF (baseline_tasks), as the
 *             shim sent them before its per-CPU rings: reserve, fill, submit with
 *             BPF_RB_NO_WAKEUP, then a discarded record with BPF_RB_FORCE_WAKEUP if
 *             wake.user_sleeping. The plain libbpf baseline consumes it with
 *             ring_buffer__consume.
 * drain:      what ops.dispatch does with the ring: the shim's own drain
 *             (zernel_drain_decisions() in zernel_rings.bpf.h: samples of up to
 *             ZERNEL_DECISIONS_PER_SAMPLE decisions, each read in place and checked,
 *             ZERNEL_DECISIONS_PER_STEP of them per bpf_loop step) with BPF_RB_NO_WAKEUP, or
 *             BPF_RB_FORCE_WAKEUP while wake.user_waiting_space is set; per decision a
 *             lookup of per-task state, a generation check and apply_decision()'s
 *             timestamp, each taking one of `slots` dispatch slots, so that the drain stops
 *             as ops.dispatch's does. The shim's bpf_task_from_pid and dispatch kfuncs are
 *             not measured (no sched_ext here).
 *
 * The shim's clock. zernel_now() is scx_bpf_now() on 6.14+ kernels: in ops.enqueue and
 * ops.dispatch the rq lock is held and the rq clock is fresh, so it is a kfunc call that
 * reads rq->scx.clock, no clocksource read. There is no sched_ext here, so CLOCK_RQ stands
 * in for it with bpf_jiffies64(): also a call that returns a stored time. CLOCK_KTIME is
 * zernel_now() on kernels before 6.14, bpf_ktime_get_ns(): a TSC read, ~16 ns on this VM.
 *
 * Variants, for the tables of what each leg is made of (args->variant):
 *   produce P_FLOOR   reserve + publish of an unfilled slot: the ring's own cost (and
 *                     reserve + submit for produce_ringbuf).
 *   drain   D_STEP1   one decision per bpf_loop step, instead of the shim's
 *                     ZERNEL_DECISIONS_PER_STEP: what a call per decision costs.
 *   drain   D_FLOOR   a callback that only reads the sample's count and takes the slots:
 *                     the kernel's per-sample cost.
 * Other designs, for comparison: produce_ringbuf above (the shim's ring before), and the
 * earlier drain_batched, a whole batch of decisions per sample, which is now the shim's
 * format with a cap (see `drain`).
 *
 * `wake` is the shim's struct zernel_wake_flags (zernel_rings.bpf.h), in this object's .bss
 * as in the shim's; BpfChannel gets a pointer to it as it does in production.
 * args->legacy = 1 replays a wakeup per message instead (the doorbell rung every time, or
 * flags 0 on the ring buffer helpers: the kernel's default wakeups), for comparison.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "zernel_abi.h"
#include "zernel_rings.bpf.h"

char _license[] SEC("license") = "GPL";

/* For the bench's captions. */
const volatile __u32 decisions_per_step = ZERNEL_DECISIONS_PER_STEP;

/* legacy: 0 = the shim's wakeup protocol, 1 = flags 0 (the kernel's default wakeups). */
struct produce_args {
	__u32 count;
	__u32 legacy;
	__u32 clock;
	__u32 variant;
};

struct drain_args {
	__u32 slots; /* dispatch slots of the call */
	__u32 legacy;
	__u32 clock;
	__u32 variant;
};

enum { CLOCK_RQ = 0, CLOCK_KTIME = 1 };
enum { P_SHIM = 0, P_FLOOR = 1 };
enum { D_SHIM = 0, D_STEP1 = 1, D_FLOOR = 2 };

static __always_inline __u64 shim_clock(__u32 clock)
{
	if (clock == CLOCK_KTIME)
		return bpf_ktime_get_ns();
	return bpf_jiffies64(); /* stands in for scx_bpf_now() (see the top) */
}

/* The shim's ring before its per-CPU task rings, for produce_ringbuf and the baseline. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the bench */
} baseline_tasks SEC(".maps");

/* As the shim's doorbell, for baseline_tasks: wakes the poller without adding data. */
static __always_inline void wake_baseline_consumer(void)
{
	void *r = bpf_ringbuf_reserve(&baseline_tasks, 8, 0);

	if (r)
		bpf_ringbuf_discard(r, BPF_RB_FORCE_WAKEUP);
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
	__u32 sleep;
	__u32 futex_waits;
	__u32 in_user;
	__u32 pad;
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
	.sleep = 250000,
	.futex_waits = 3,
};

__u64 produce_ns;
__u64 nr_produced;
__u64 nr_reserve_failed;
__u64 nr_rung; /* doorbells rung for a sleeping consumer */

__u64 drain_ns;
__u64 nr_drained;
__u64 nr_applied;
__u64 nr_malformed;

__u64 pair_ns;
__u64 nr_pairs;

__u64 loop_ns;
__u64 nr_loops;

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

/* The shim's ops.enqueue, field for field, from `msg->pid` to `tctx->in_user = 1`
 * (prev_cpu: scx_bpf_task_cpu(p) there, a kfunc call; the inlined CPU id here). */
static __always_inline void fill(struct zernel_task_msg *msg, struct task_struct *p, __u64 now)
{
	__u64 enq_flags = SCX_ENQ_WAKEUP_BIT;

	tctx.gen++;
	msg->pid = p->pid;
	msg->tgid = p->tgid;
	msg->prev_cpu = bpf_get_smp_processor_id();
	msg->nr_cpus_allowed = p->nr_cpus_allowed;
	msg->enq_flags = enq_flags;
	msg->enq_ns = now;
	msg->runtime_ns = tctx.runtime;
	msg->burst_ns = (enq_flags & SCX_ENQ_WAKEUP_BIT) ? tctx.last_burst : tctx.burst;
	msg->gen = tctx.gen;
	msg->weight = tctx.weight;
	msg->flags = (enq_flags & SCX_ENQ_WAKEUP_BIT) ? ZERNEL_TASK_WAKEUP : 0;
	if (tctx.iowait)
		msg->flags |= ZERNEL_TASK_IOWAIT;
	msg->waker_pid = tctx.waker_pid;
	msg->waker_tgid = tctx.waker_tgid;
	msg->sleep_ns = (enq_flags & SCX_ENQ_WAKEUP_BIT) ? tctx.sleep : 0;
	msg->futex_waits = tctx.futex_waits;
	tctx.futex_waits = 0;
	msg->prev_decision_ns = 0;
	msg->prev_running_ns = 0;
	msg->prev_enq_ns = tctx.enq_at;
	if (tctx.decided_at && tctx.started_at >= tctx.decided_at) {
		msg->prev_decision_ns = sat_u32(tctx.decided_at - tctx.enq_at);
		msg->prev_running_ns = sat_u32(tctx.started_at - tctx.enq_at);
	}
	tctx.enq_at = now;
	tctx.decided_at = 0;
	tctx.started_at = 0;
	__builtin_memcpy(msg->comm, p->comm, ZERNEL_COMM_LEN);
	tctx.runtime = 0;
	tctx.in_user = 1;
}

/* One message into this CPU's task ring (the shim's ops.enqueue); false if it is full. */
static __always_inline bool produce_one(struct task_struct *p, __u32 clock, __u32 floor, __u32 legacy)
{
	struct zernel_task_reservation r;
	struct zernel_task_msg *msg = zernel_task_reserve(&r);

	if (!msg)
		return false;
	if (!floor)
		fill(msg, p, shim_clock(clock));
	/* The shim: no wakeup per message, the doorbell only for a sleeping consumer. */
	if (zernel_task_publish(&r))
		nr_rung++;
	if (legacy)
		zernel_ring_doorbell();
	return true;
}

/* One message into baseline_tasks, as the shim sent it before its per-CPU rings. */
static __always_inline bool produce_one_ringbuf(struct task_struct *p, __u32 clock, __u32 floor, __u32 legacy)
{
	struct zernel_task_msg *msg = bpf_ringbuf_reserve(&baseline_tasks, sizeof(*msg), 0);

	if (!msg)
		return false;
	if (floor) {
		bpf_ringbuf_submit(msg, BPF_RB_NO_WAKEUP);
		return true;
	}
	fill(msg, p, shim_clock(clock));
	if (legacy) {
		bpf_ringbuf_submit(msg, 0);
		return true;
	}
	/* No IPI per message; submit is a full barrier, then the flag. */
	bpf_ringbuf_submit(msg, BPF_RB_NO_WAKEUP);
	if (wake.user_sleeping) {
		wake_baseline_consumer();
		nr_rung++;
	}
	return true;
}

/* args->count messages, timed; @ringbuf is a constant at each call. */
static __always_inline int produce_timed(struct produce_args *args, bool ringbuf)
{
	struct task_struct *p = bpf_get_current_task_btf();
	__u32 i, clock = args->clock, floor = args->variant == P_FLOOR, legacy = args->legacy;
	__u64 t0 = bpf_ktime_get_ns();

	bpf_for(i, 0, args->count) {
		if (!(ringbuf ? produce_one_ringbuf(p, clock, floor, legacy) : produce_one(p, clock, floor, legacy))) {
			nr_reserve_failed++;
			break;
		}
		nr_produced++;
	}
	produce_ns += bpf_ktime_get_ns() - t0;
	return 0;
}

SEC("syscall")
int produce(struct produce_args *args)
{
	return produce_timed(args, false);
}

SEC("syscall")
int produce_ringbuf(struct produce_args *args)
{
	return produce_timed(args, true);
}

struct drain_ctx {
	__u32 n;     /* decisions drained */
	__u32 slots; /* dispatch slots left */
	__u32 clock;
	__u32 variant;
};

/* What zernel_on_decision() and apply_decision() do per decision before the dispatch
 * kfuncs. */
static __always_inline void apply(const struct zernel_decision *d, __u32 clock)
{
	struct dispatch_state *st;
	__u32 key = (__u32)d->pid & (TASK_SLOTS - 1);

	st = bpf_map_lookup_elem(&task_states, &key);
	if (st && st->gen <= d->gen) {
		st->gen = d->gen;
		st->key = d->vtime;
		tctx.decided_at = shim_clock(clock); /* apply_decision(): zernel_now() */
		tctx.started_at = tctx.decided_at;   /* ops.running's, so that fill() takes
						      * the prev_* branch as in the shim */
		nr_applied++;
	}
}

/* The shim's drain hooks (zernel_rings.bpf.h), on a struct drain_ctx: each decision
 * applied takes a slot, as the shim's insert does. */
static __always_inline void zernel_on_decision(const struct zernel_decision *d, void *ctx)
{
	struct drain_ctx *c = ctx;

	apply(d, c->clock);
	c->n++;
	if (c->slots)
		c->slots--;
}

static __always_inline void zernel_on_malformed(void *ctx)
{
	nr_malformed++;
}

static __always_inline __u32 zernel_dispatch_slots(void *ctx)
{
	return ((struct drain_ctx *)ctx)->slots;
}

/* D_STEP1: the shim's drain, but a bpf_loop step (a call) per decision. */
static long apply_one(__u64 i, void *data)
{
	struct zernel_sample_walk *w = data;

	if (i >= w->count || i >= ZERNEL_DECISIONS_PER_SAMPLE)
		return 1;
	zernel_on_decision(&w->sample->decisions[i], w->ctx);
	return 0;
}

static long drain_step1_one(struct bpf_dynptr *dynptr, void *ctx)
{
	return zernel_walk_sample(dynptr, ctx, apply_one, 1);
}

/* D_FLOOR: the sample's decision count and the slots; no decision read. */
static long drain_floor_one(struct bpf_dynptr *dynptr, void *ctx)
{
	struct drain_ctx *c = ctx;
	const __u32 *count = bpf_dynptr_data(dynptr, 0, sizeof(*count));
	__u32 k = count && *count <= ZERNEL_DECISIONS_PER_SAMPLE ? *count : 0;

	c->n += k;
	c->slots = c->slots > k ? c->slots - k : 0;
	return !zernel_room_for_sample(c->slots);
}

SEC("syscall")
int drain(struct drain_args *args)
{
	struct drain_ctx c = { .n = 0, .slots = args->slots, .clock = args->clock, .variant = args->variant };
	__u64 t0 = bpf_ktime_get_ns();

	__u64 flags = args->legacy ? 0
				   : (wake.user_waiting_space ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);

	if (c.variant == D_SHIM) {
		zernel_drain_decisions(&c, flags);
	} else if (zernel_room_for_sample(c.slots)) {
		if (c.variant == D_STEP1)
			bpf_user_ringbuf_drain(&decisions, drain_step1_one, &c, flags);
		else
			bpf_user_ringbuf_drain(&decisions, drain_floor_one, &c, flags);
	}
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

/* The cost of one bpf_for iteration, the produce leg's loop (the shim pays a struct_ops
 * call per task instead, which is not measured here). */
SEC("syscall")
int loop_cost(void *ctx)
{
	__u32 i;
	__u64 t0 = bpf_ktime_get_ns();

	bpf_for(i, 0, 1000) {
		nr_loops++;
	}
	loop_ns += bpf_ktime_get_ns() - t0;
	return 0;
}

/* The fixed cost of BPF_PROG_TEST_RUN itself, for the whole-syscall cross-check. */
SEC("syscall")
int empty(void *ctx)
{
	return 0;
}
