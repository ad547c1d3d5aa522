/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two rings of the channel, and the drain of the decision ring, defined once: the shim
 * includes them, and so do the host test (tests/host/ring_layout.bpf.c) and the transport
 * bench (bench/transport.bpf.c), which drive the very same maps and the very same drain
 * through BPF_PROG_TEST_RUN on a kernel without sched_ext.
 *
 * tasks:     BPF producers (any CPU, ops.enqueue) -> one userspace consumer.
 * decisions: one userspace producer -> BPF consumer (ops.dispatch; one CPU at a time,
 *            bpf_user_ringbuf_drain returns -EBUSY to the others). A sample is a struct
 *            zernel_decision_sample cut to its `count` decisions (zernel_abi.h).
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

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the loader */
} tasks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 1 << 20); /* resized by the loader */
} decisions SEC(".maps");

/* One decision sample, copied out of the ring: 648 bytes, more than the 512-byte BPF stack.
 * Written and read only inside the drain callback, which the ring's busy bit lets one
 * context at a time run (a nested or concurrent drain gets -EBUSY before any callback), so
 * one buffer would do; per CPU, so that CPUs taking turns at the drain do not pull its
 * cache lines from each other. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zernel_decision_sample);
} decision_scratch SEC(".maps");

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

/* Copies the sample behind @dynptr into this CPU's scratch in one read and returns it, or
 * NULL if it is malformed: a count of 0 or above ZERNEL_DECISIONS_PER_SAMPLE, or a length
 * other than its count's (an ABI mismatch, or a writer that is not BpfChannel). One read of
 * the whole sample: the verifier does not keep a callback's dynptr across the spills that a
 * read per decision inside the loop would need. */
static __always_inline const struct zernel_decision_sample *
zernel_read_sample(struct bpf_dynptr *dynptr)
{
	const __u32 header = offsetof(struct zernel_decision_sample, decisions);
	struct zernel_decision_sample *s;
	__u32 zero = 0, len, count;

	s = bpf_map_lookup_elem(&decision_scratch, &zero);
	if (!s)
		return NULL;
	len = bpf_dynptr_size(dynptr);
	/* The checks below must bound the very register passed to the read: without this,
	 * clang passes the kfunc's untruncated u64 result and the verifier rejects the read. */
	barrier_var(len);
	if (len < header + sizeof(struct zernel_decision) || len > sizeof(*s))
		return NULL;
	if (bpf_dynptr_read(s, len, dynptr, 0, 0))
		return NULL;
	count = s->count;
	if (count < 1 || count > ZERNEL_DECISIONS_PER_SAMPLE ||
	    len != header + count * sizeof(struct zernel_decision))
		return NULL;
	return s;
}

struct zernel_sample_walk {
	const struct zernel_decision_sample *sample;
	void *ctx;
};

static long zernel_apply_nth(__u64 i, void *data)
{
	struct zernel_sample_walk *w = data;

	if (i >= ZERNEL_DECISIONS_PER_SAMPLE)
		return 1;
	zernel_on_decision(&w->sample->decisions[i], w->ctx);
	return 0;
}

/* bpf_user_ringbuf_drain's callback: one sample, applied in order or skipped whole. Stops
 * the drain (returns 1) when fewer slots remain than a full sample may need, and leaves the
 * rest of the ring for the next ops.dispatch. */
static long zernel_drain_sample(struct bpf_dynptr *dynptr, void *ctx)
{
	const struct zernel_decision_sample *s = zernel_read_sample(dynptr);
	struct zernel_sample_walk w = { .sample = s, .ctx = ctx };

	if (!s)
		zernel_on_malformed(ctx);
	else
		/* bpf_loop, not a bounded loop: the verifier checks the callback (the shim's
		 * whole apply_decision) once instead of once per iteration, which had made
		 * loading the shim under TCG take over 10 s; and the verifier inlines the
		 * helper into a plain loop, not bpf_for's kfunc call per iteration (~9 ns). */
		bpf_loop(s->count, zernel_apply_nth, &w, 0);
	return !zernel_room_for_sample(zernel_dispatch_slots(ctx));
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
