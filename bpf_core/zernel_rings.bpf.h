/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two rings of the channel, and the drain of the decision ring, defined once: the shim
 * includes them, and so do the host test (tests/host/ring_layout.bpf.c) and the transport
 * bench (bench/transport.bpf.c), which drive the very same maps and the very same drain
 * through BPF_PROG_TEST_RUN on a kernel without sched_ext.
 *
 * tasks:     per-CPU single-producer rings (ops.enqueue on that CPU) -> one userspace
 *            consumer. Two BPF_F_MMAPABLE arrays: task_pos, one struct zernel_task_ring_pos
 *            per CPU, and task_slots, task_ring_slots messages per CPU, back to back. Not a
 *            BPF_MAP_TYPE_RINGBUF: its reserve and submit cost 44-54 ns a message on the host
 *            (two helper calls, the ring's spinlock with IRQs saved, an xchg to clear the
 *            busy bit) against ~18 ns here (bench/README.md, transport), and a CPU's
 *            ops.enqueue never runs beside another on the same CPU (the rq lock is held with
 *            IRQs off), so one producer per ring needs no lock. task_doorbell, a small
 *            BPF_MAP_TYPE_RINGBUF that never carries data, is only what the sleeping
 *            consumer polls: a discarded record with BPF_RB_FORCE_WAKEUP wakes it.
 * decisions: one userspace producer -> BPF consumer (ops.dispatch; one CPU at a time,
 *            bpf_user_ringbuf_drain returns -EBUSY to the others). A sample is a whole
 *            struct zernel_decision_sample, of which the first `count` decisions are
 *            meant (zernel_abi.h).
 *
 * The drain leaves three things to its includer, which defines them before its first call
 * of zernel_drain_decisions() (the shim: apply the decision, count in its stats map, ask
 * the kernel for its dispatch slots; the tests: record, count, a simulated slot count):
 *   zernel_on_decision(d, ctx)   one well-formed decision, in ring order.
 *   zernel_on_malformed(ctx)     one sample skipped whole, none of it applied.
 *   zernel_dispatch_slots(ctx)   inserts ops.dispatch may still make in this call.
 * `ctx` is the one given to zernel_drain_decisions().
 */
#ifndef ZERNEL_RINGS_BPF_H
#define ZERNEL_RINGS_BPF_H

/* Messages per CPU's task ring, a power of two; set with the maps' sizes by the loader
 * (BpfChannel's size_task_rings() in scheduler/bpf_channel.h). */
const volatile __u32 task_ring_slots = 1024;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);  /* resized by the loader: one per possible CPU */
	__type(key, __u32);
	__type(value, struct zernel_task_ring_pos);
} task_pos SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1024); /* resized by the loader: task_ring_slots per possible CPU */
	__type(key, __u32);
	__type(value, struct zernel_task_msg);
} task_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096); /* resized by the loader (a page or more) */
} task_doorbell SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the loader */
} decisions SEC(".maps");

/* Wakeup protocol (both rings), written by BpfChannel::wait_for_events/wait_for_space. */
struct zernel_wake_flags wake;

/* A message slot of this CPU's ring, between zernel_task_reserve() and _publish(). */
struct zernel_task_reservation {
	struct zernel_task_ring_pos *pos;
	__u64 head;
};

/* Returns the slot for this CPU's next message, or NULL if its ring is full (the caller
 * schedules the task itself) or the CPU has no ring (not possible: the loader sizes the
 * maps by the possible CPUs). REQUIRES: no other producer on this CPU until _publish(),
 * which holds for ops.enqueue (rq lock, IRQs off) and for one BPF_PROG_TEST_RUN at a time.
 * tail is read once, plainly: the store into the slot depends on it by a branch, and the
 * consumer released the slots below tail after it read them (the kernel's memory model
 * orders a load before a store that depends on it by control; the JITs keep it). */
static __always_inline struct zernel_task_msg *
zernel_task_reserve(struct zernel_task_reservation *r)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u32 slot;

	r->pos = bpf_map_lookup_elem(&task_pos, &cpu);
	if (!r->pos)
		return NULL;
	r->head = r->pos->head;
	if (r->head - *(volatile __u64 *)&r->pos->tail >= task_ring_slots)
		return NULL;
	slot = cpu * task_ring_slots + (__u32)(r->head & (task_ring_slots - 1));
	return bpf_map_lookup_elem(&task_slots, &slot);
}

/* Wakes the consumer's poll without giving it anything to read there. */
static __always_inline void zernel_ring_doorbell(void)
{
	void *d = bpf_ringbuf_reserve(&task_doorbell, 8, 0);

	if (d)
		bpf_ringbuf_discard(d, BPF_RB_FORCE_WAKEUP);
}

/* Makes the reserved message visible to the consumer, and wakes it if it is about to sleep.
 * head is stored with an xchg, a full barrier on every JIT: the message's stores are
 * visible before head (the consumer reads head with acquire, then the slot), and the read
 * of wake.user_sleeping cannot pass the store. The consumer sets the flag, then re-reads
 * every head, then sleeps (Dekker): one of the two sees the other. Returns whether it rang. */
static __always_inline bool zernel_task_publish_filled(struct zernel_task_reservation *r,
							 __u64 ring_from)
{
	__sync_lock_test_and_set(&r->pos->head, r->head + 1);
	if (!wake.user_sleeping)
		return false;
	if (ring_from && r->head + 1 - *(volatile __u64 *)&r->pos->tail < ring_from)
		return false;
	zernel_ring_doorbell();
	return true;
}

static __always_inline bool zernel_task_publish(struct zernel_task_reservation *r)
{
	return zernel_task_publish_filled(r, 0);
}

/* As zernel_task_publish(), for a message nothing waits on (a direct wakeup's report): the
 * sleeping consumer is rung only once the ring is half full, so that it reads such
 * messages in bursts and never lets the ring fill with them (a full ring would turn the
 * next tasks that do need a decision away to the fallback queue). Below that, it reads
 * them at its next wakeup or its sleep's timeout. */
static __always_inline bool zernel_task_publish_lazy(struct zernel_task_reservation *r)
{
	return zernel_task_publish_filled(r, task_ring_slots / 2);
}

/* Decisions applied per bpf_loop iteration of the drain (see zernel_apply_step): 4 takes
 * the drain from 13.8 to 8.0 ns per decision on the host (2: 9.6, 8: 6.0, 16: 5.3), for three more
 * inlined copies of the includer's zernel_on_decision() for the verifier to check. */
enum { ZERNEL_DECISIONS_PER_STEP = 4 };

static __always_inline void zernel_on_decision(const struct zernel_decision *d, void *ctx);
static __always_inline void zernel_on_malformed(void *ctx);
static __always_inline __u32 zernel_dispatch_slots(void *ctx);

/* The kernel consumes a sample whole, whatever the callback does with it, and each of its
 * decisions may take a dispatch slot: a sample is begun only with room for a full one, so
 * that ops.dispatch can never overflow its dispatch buffer (the scheduler would be aborted
 * with "dispatch buffer overflow"). */
static __always_inline bool zernel_room_for_sample(__u32 slots)
{
	return slots >= ZERNEL_DECISIONS_PER_SAMPLE;
}

/* Returns the sample behind @dynptr where it lies in the ring, or NULL if it is malformed:
 * a length other than a sample's (an ABI mismatch, or a writer that is not BpfChannel), or
 * a count of 0 or above ZERNEL_DECISIONS_PER_SAMPLE. *count is the count as read once:
 * the ring's pages are mapped writable in the producer, so a later read of the field could
 * differ from the one checked here. Read in place, not copied: every sample has the same
 * size, so bpf_dynptr_data, which needs a constant size, covers all of them. */
static __always_inline const struct zernel_decision_sample *
zernel_sample_of(struct bpf_dynptr *dynptr, __u32 *count)
{
	const struct zernel_decision_sample *s;

	if (bpf_dynptr_size(dynptr) != sizeof(*s))
		return NULL;
	s = bpf_dynptr_data(dynptr, 0, sizeof(*s));
	if (!s)
		return NULL;
	*count = *(volatile const __u32 *)&s->count;
	if (*count < 1 || *count > ZERNEL_DECISIONS_PER_SAMPLE)
		return NULL;
	return s;
}

struct zernel_sample_walk {
	const struct zernel_decision_sample *sample;
	void *ctx;
	__u32 count;
};

/* One step of the walk of a sample: decisions [step * STEP, step * STEP + STEP) that exist.
 * Each call of a BPF function costs ~9 ns on a host with return-thunk mitigations (the
 * bpf_loop callback's, or a kfunc's such as bpf_for's), against ~4 ns for a decision
 * itself, so a step applies several: the verifier checks the callback once per call site,
 * with its STEP inlined decisions, instead of 16 times as a bounded loop over the sample
 * would make it (which had made loading the shim under TCG take over 10 s). */
static long zernel_apply_step(__u64 step, void *data)
{
	struct zernel_sample_walk *w = data;
	__u32 i;

#pragma unroll
	for (i = 0; i < ZERNEL_DECISIONS_PER_STEP; i++) {
		__u64 n = step * ZERNEL_DECISIONS_PER_STEP + i;

		if (n >= w->count || n >= ZERNEL_DECISIONS_PER_SAMPLE)
			return 1;
		zernel_on_decision(&w->sample->decisions[n], w->ctx);
	}
	return 0;
}

/* One sample, applied in order by @step, @per_step decisions per bpf_loop iteration, or
 * skipped whole; then whether the drain must stop (fewer slots left than a full sample may
 * need: the rest of the ring waits for the next ops.dispatch). Always inlined, so that
 * @step is a constant at each bpf_loop call, which the verifier requires and then inlines
 * into a plain loop (flags 0). The shim's callback is zernel_drain_sample(); the transport
 * bench measures other step sizes with the same walk. */
static __always_inline long zernel_walk_sample(struct bpf_dynptr *dynptr, void *ctx,
					       long (*step)(__u64, void *), __u32 per_step)
{
	struct zernel_sample_walk w = { .ctx = ctx };

	w.sample = zernel_sample_of(dynptr, &w.count);
	if (!w.sample)
		zernel_on_malformed(ctx);
	else
		bpf_loop((w.count + per_step - 1) / per_step, step, &w, 0);
	return !zernel_room_for_sample(zernel_dispatch_slots(ctx));
}

/* bpf_user_ringbuf_drain's callback. */
static long zernel_drain_sample(struct bpf_dynptr *dynptr, void *ctx)
{
	return zernel_walk_sample(dynptr, ctx, zernel_apply_step, ZERNEL_DECISIONS_PER_STEP);
}

/* Drains what the dispatch slots allow. Returns the samples consumed (malformed ones
 * included), 0 without room for one sample, or the drain's error (-EBUSY: another CPU is
 * draining). @flags: BPF_RB_NO_WAKEUP or BPF_RB_FORCE_WAKEUP (see the shim). */
static __always_inline long zernel_drain_decisions(void *ctx, __u64 flags)
{
	if (!zernel_room_for_sample(zernel_dispatch_slots(ctx)))
		return 0;
	return bpf_user_ringbuf_drain(&decisions, zernel_drain_sample, ctx, flags);
}

#endif /* ZERNEL_RINGS_BPF_H */
