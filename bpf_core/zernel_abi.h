/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The wire format between the BPF shim and the userspace dispatcher.
 *
 * This one header is compiled by clang -target bpf (after vmlinux.h) and by the C++
 * dispatcher (after <linux/types.h>), so it uses only __u64-style types and no
 * language features either side lacks. Every struct name carries the zernel_ prefix:
 * vmlinux.h forward-declares generic names (`struct msg;`), and a struct defined after
 * such a declaration inherits preserve_access_index, which turns plain field stores into
 * CO-RE relocations that fail to load.
 *
 * Up (kernel -> userspace):   struct zernel_task_msg, one slot each of a per-CPU ring
 *                             (struct zernel_task_ring_pos and the slots, in two
 *                             BPF_F_MMAPABLE array maps; zernel_rings.bpf.h).
 * Down (userspace -> kernel): struct zernel_decision, up to ZERNEL_DECISIONS_PER_SAMPLE of
 *                             them per BPF_MAP_TYPE_USER_RINGBUF sample (struct
 *                             zernel_decision_sample).
 *
 * Layout changes must update the static_asserts in scheduler/messages.h and the
 * host test tests/host/ring_layout_test.cpp, which round-trips both structs through
 * real BPF programs.
 */
#ifndef ZERNEL_ABI_H
#define ZERNEL_ABI_H

#define ZERNEL_COMM_LEN 16

/* zernel_decision.cpu: let the shim place the task (idle prev CPU, any idle CPU, else
 * the shared queue). Negative so that it can never alias a real CPU id. */
#define ZERNEL_CPU_ANY (-1)

/* zernel_task_msg.flags */
enum zernel_task_flags {
	ZERNEL_TASK_WAKEUP = 1u << 0, /* enqueued because it woke up (not a slice expiry) */
	ZERNEL_TASK_IOWAIT = 1u << 1, /* its last sleep was an I/O wait (p->in_iowait) */
	/* A wakeup the shim has already placed on an idle CPU under the task's standing grant
	 * (ZERNEL_DEC_DIRECT_WAKE): sent up so that the policy accounts for it, not to be
	 * answered. The dispatcher sends no decision for it. */
	ZERNEL_TASK_DIRECT = 1u << 2,
	/* The previous trip was such a wakeup: prev_running_ns is its enqueue -> running, and
	 * prev_decision_ns is 0 (no round trip was made). */
	ZERNEL_TASK_PREV_DIRECT = 1u << 3,
};

/* zernel_decision.flags */
enum zernel_decision_flags {
	/* Kick a CPU running lower-priority work (a later ordering key) so the task runs
	 * now rather than at the next slice expiry. */
	ZERNEL_DEC_PREEMPT = 1u << 0,
	/* With ZERNEL_DEC_PREEMPT: kick as soon as the victim's key is later at all, without
	 * the shim's preempt_margin_ns. For tasks with a latency target (the phase policy's
	 * data loaders and collectives), where waiting for a peer's slice to end is the miss. */
	ZERNEL_DEC_PREEMPT_NOW = 1u << 1,
	/* A standing grant, until the task's next decision replaces it: a wakeup of this task
	 * that finds an idle CPU (select_cpu) runs there at once, with this decision's slice,
	 * and is reported up as ZERNEL_TASK_DIRECT instead of waiting for a decision. What the
	 * shim would do with a ZERNEL_CPU_ANY decision on an idle CPU, without the round trip
	 * (ghOSt's agents pre-stage decisions for idle CPUs the same way). The policy decides
	 * who gets one. A wakeup that finds no idle CPU goes up for a decision, except that of a
	 * task pinned to one CPU whose grant came with ZERNEL_DEC_PREEMPT: while the task has used
	 * less than a slice since the decision, it preempts its CPU if the decision's kick would
	 * have (the key there is later by the margin). */
	ZERNEL_DEC_DIRECT_WAKE = 1u << 2,
};

struct zernel_task_msg {
	__s32 pid;             /* thread id (kernel pid) */
	__s32 tgid;            /* process id (thread group leader) */
	__s32 prev_cpu;        /* CPU the task last ran on, or the one select_cpu chose */
	__u32 nr_cpus_allowed; /* size of the task's affinity mask */
	__u64 enq_flags;       /* SCX_ENQ_* of this enqueue */
	__u64 enq_ns;          /* shim clock at enqueue (ns; see zernel_now() in zernel_kfuncs.h) */
	__u64 runtime_ns;      /* CPU time used since the previous enqueue (ns): what to charge */
	__u64 burst_ns;        /* CPU time of the last burst between two sleeps (ns) */
	__u64 gen;             /* per-task enqueue generation; echoed back by the decision */
	__u32 weight;          /* sched_ext weight: 100 at nice 0, 1..10000 */
	__u32 flags;           /* enum zernel_task_flags */
	__s32 waker_pid;       /* thread that woke this one; 0: not a wakeup, or an interrupt did (timer, I/O) */
	__s32 waker_tgid;      /* its process id */
	/* The previous trip of this task through userspace, measured by the shim and carried
	 * here so that latency costs no extra ring or system call. ns, saturated at ~4.29 s;
	 * 0 = the previous trip did not go through userspace (first enqueue, fallback). */
	__u32 prev_decision_ns; /* enqueue -> its decision applied in ops.dispatch */
	__u32 prev_running_ns;  /* enqueue -> it started running */
	__u64 prev_enq_ns;      /* when that previous trip began (shim clock), for traces */
	char comm[ZERNEL_COMM_LEN];
	/* Phase signals (scheduler/phase_policy.h). */
	__u32 sleep_ns;    /* a wakeup: how long the sleep before it lasted (ns, saturated) */
	__u32 futex_waits; /* futex wait calls since the previous enqueue */
};

/* The positions of one CPU's task ring, whose slots are entries
 * [cpu * slots, (cpu + 1) * slots) of the task_slots map (slots: a power of two). Positions
 * are message counts that only grow (64-bit: they never wrap); position & (slots - 1) is the
 * slot. Each on a cache line of its own, so that the producer's stores of head and the
 * consumer's of tail do not take the line from each other. */
struct zernel_task_ring_pos {
	__u64 head;       /* written by the CPU's producer (ops.enqueue, IRQs off), read by userspace */
	__u64 pad0[7];
	__u64 tail;       /* written by userspace, read by the producer to find space */
	__u64 pad1[7];
};

/* Decisions travel in struct zernel_decision_sample after an 8-byte header, and user ring
 * samples must be 8-byte multiples: keep the struct a multiple of 8. */
struct zernel_decision {
	__s32 pid;      /* thread id from zernel_task_msg.pid */
	__s32 cpu;      /* target CPU, or ZERNEL_CPU_ANY */
	__u64 slice_ns; /* time slice (ns); 0 = the shim's default */
	__u64 vtime;    /* ordering key: lower runs first among queued tasks */
	__u64 gen;      /* zernel_task_msg.gen this answers; older than the task's = stale */
	__u64 flags;    /* enum zernel_decision_flags */
};

/* Decisions per user ring sample, at most. The kernel's drain pays ~35-50 ns per sample
 * whatever its size (the busy cmpxchg, an indirect call of the callback, the release of
 * consumer_pos), so a sample carries a batch: ~2-3 ns per decision at 16. The bound is set
 * by ops.dispatch, whose every insert takes one of its dispatch_max_batch = 128 slots and
 * which must never overflow them: it consumes a sample only with at least K slots left
 * (the kernel consumes a sample whole, even if the callback stops partway), so up to K - 1
 * slots of a call can go unused. K = 16 spends at most 15 of 128 (12%) and lets one call
 * apply 8 full samples; K = 32 would halve the per-sample cost again (~1 ns) for up to 24%
 * of the slots. */
#define ZERNEL_DECISIONS_PER_SAMPLE 16

/* One user ring sample, always whole: 648 bytes whatever its count, so that the shim reads
 * it in place (bpf_dynptr_data takes only a constant size; a copy of a variable-length
 * sample cost ~10 ns per decision). Decisions past `count` are not read; the writer need
 * not fill them. The shim skips and counts (nr_malformed) any sample of another length, or
 * whose count is 0 or above the maximum, without applying any of it. A sample that carries
 * one decision thus takes 656 bytes of ring: the 1 MiB ring holds 1,598 samples, and a
 * batch is sent as whole samples but one. */
struct zernel_decision_sample {
	__u32 count; /* decisions that follow, 1..ZERNEL_DECISIONS_PER_SAMPLE */
	__u32 pad;   /* 0; keeps the decisions 8-byte aligned */
	struct zernel_decision decisions[ZERNEL_DECISIONS_PER_SAMPLE]; /* the first `count` hold */
};

/* Counters kept per CPU by the shim (BPF_MAP_TYPE_PERCPU_ARRAY, one entry) and summed by
 * userspace. Every path that takes a task out of userspace's hands has its own counter. */
struct zernel_shim_stats {
	__u64 nr_queued;         /* tasks sent up the ring */
	__u64 nr_user_dispatched;/* decisions applied */
	__u64 nr_kernel_dispatched; /* the agent's threads, kernel threads: never sent up */
	__u64 nr_congested;      /* ring full: dispatched by the shim to the fallback queue */
	__u64 nr_bypassed;       /* userspace stalled: dispatched by the shim */
	__u64 nr_cancelled;      /* stale decisions (generation older than the task's) */
	__u64 nr_exited;         /* decisions for tasks that had exited */
	__u64 nr_bounced;        /* decisions for a CPU the task may not use: sent to any CPU */
	__u64 nr_preempt_kicks;  /* preemption kicks sent for ZERNEL_DEC_PREEMPT */
	__u64 nr_drain_busy;     /* another CPU was draining the user ring */
	__u64 nr_rescued;        /* handed to userspace, then dispatched by the shim in a stall */
	__u64 nr_malformed;      /* decision samples skipped unread: bad count or length */
	__u64 nr_direct;         /* wakeups placed under a grant (ZERNEL_DEC_DIRECT_WAKE) */
	__u64 nr_direct_unsent;  /* of those, reports the full ring could not take (their CPU time goes with the next) */
	__u64 nr_grant_preempts; /* of nr_direct, pinned tasks' wakeups that preempted their CPU (the grant had ZERNEL_DEC_PREEMPT) */
	__u64 nr_resumed;        /* tasks such a wakeup preempted, put back on their CPU without a trip up */
	__u64 nr_aged;           /* decided tasks that waited aged_after_ns in a queue, moved to the aged queue */
	__u64 nr_sync_wakes;     /* of nr_direct, synchronous wakeups from a short-burst waker, placed on the waker's CPU */
};

/* What each CPU runs, one entry per CPU id in the shim's cpu_ctxs array map, which
 * userspace maps read-only (BPF_F_MMAPABLE) to place tasks without a system call. Written
 * by the CPU itself in ops.running/ops.stopping (key, busy) and by the stall timer
 * (nr_queued); read by other CPUs and by userspace without ordering: a stale value costs a
 * worse placement, never a lost task. */
struct zernel_cpu_state {
	__u64 key;       /* ordering key of the running task; 0 = not preemptible (idle, kernel) */
	__u32 busy;      /* 1 while a task runs on it, 0 when idle */
	__u32 nr_queued; /* tasks in its own queue, sampled every 50 ms */
	/* Tasks the shim put in a queue here (every task but the dispatcher), and tasks that
	 * left a queue here: began to run, or were taken out before they ran. Each counter is
	 * written only by its CPU and wraps; the sum over CPUs of nr_inserted - nr_left is the
	 * number of tasks waiting for a CPU right now (the dispatcher spins only while it is 0). */
	__u32 nr_inserted;
	__u32 nr_left;
};

/* A decided task still waiting in a queue this long goes to the shim's aged queue, 3 s
 * before the kernel's watchdog (timeout_ms = 5 s). Here so that the metric's help text
 * (telemetry/metrics.cpp) states the shim's figure, not a copy of it. */
#define ZERNEL_AGED_AFTER_MS 2000

/* How the kernel unloaded us, copied from struct scx_exit_info in ops.exit. */
#define ZERNEL_EXIT_REASON_LEN 128
#define ZERNEL_EXIT_MSG_LEN 1024
/* The kernel's state dump of an error exit (each CPU, its tasks, the stalled task and the
 * queue it waits in), copied to the shim's .bss as exit_dump[]: what a watchdog stall needs
 * to be understood. */
#define ZERNEL_EXIT_DUMP_LEN 32768
/* Wakeup protocol (both rings). Producers skip the wakeup IPI unless the consumer says it
 * is about to sleep; see BpfChannel and ops.enqueue. Lives in the shim's .bss. */
struct zernel_wake_flags {
	__u32 user_sleeping;      /* dispatcher is (about to be) blocked on the task rings' doorbell */
	__u32 user_waiting_space; /* dispatcher is (about to be) blocked on a full decision ring */
};

/* What the dispatcher has read of the task rings, for the shim's stall timer (its .bss).
 * Written by BpfChannel once per batch with plain stores, read by the timer without
 * ordering (a stale read delays a stall's detection by one timer period). */
struct zernel_consumed {
	__u64 messages; /* every message read */
	__u64 direct;   /* of those, direct wakeup reports (ZERNEL_TASK_DIRECT): no task waits on them */
};

struct zernel_exit_info {
	__s32 kind;      /* enum scx_exit_kind; 0 while attached */
	__u32 pad;
	__s64 exit_code; /* bit 48 (SCX_ECODE_ACT_RESTART) asks userspace to restart */
	char reason[ZERNEL_EXIT_REASON_LEN];
	char msg[ZERNEL_EXIT_MSG_LEN];
};

#endif /* ZERNEL_ABI_H */
