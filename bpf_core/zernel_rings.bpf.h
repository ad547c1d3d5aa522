/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The two rings of the channel, defined once: the shim includes them, and so does the
 * host test (tests/host/ring_layout.bpf.c), which drives the very same map definitions
 * through BPF_PROG_TEST_RUN on a kernel without sched_ext.
 *
 * tasks:     BPF producers (any CPU, ops.enqueue) -> one userspace consumer.
 * decisions: one userspace producer -> BPF consumer (ops.dispatch; one CPU at a time,
 *            bpf_user_ringbuf_drain returns -EBUSY to the others).
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

#endif /* ZERNEL_RINGS_BPF_H */
