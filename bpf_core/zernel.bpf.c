/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zernel: the kernel half of a userspace scheduler.
 *
 * Policy lives in userspace. This shim only moves tasks: every runnable task is sent up
 * its CPU's task ring (a single-producer ring in BPF array maps that userspace maps; see
 * zernel_rings.bpf.h) as a struct zernel_task_msg, and the dispatcher's answers (struct
 * zernel_decision: CPU, slice, ordering key, preempt flag) come back over a user ring
 * buffer that ops.dispatch drains, up to ZERNEL_DECISIONS_PER_SAMPLE of them per sample:
 * the kernel's drain costs ~35-50 ns per sample (bench host), however small. The kernel
 * consumes a sample whole, and ops.dispatch has dispatch_max_batch slots, one per insert,
 * which it must not overflow: it begins a sample only with room for a full one and leaves
 * the rest of the ring for its next call (zernel_rings.bpf.h). A malformed sample is skipped whole, counted
 * and answered with a rescue walk (below). The shim decides by itself only where userspace
 * cannot:
 *
 *  - The dispatcher thread runs from a dedicated queue that every CPU serves first, and its
 *    wakeup kicks a CPU. A userspace scheduler that waits behind the tasks it schedules
 *    deadlocks.
 *  - Kernel threads are dispatched here too: per-CPU ones to their CPU's local queue, the
 *    others (kswapd, kcompactd, unbound kworkers: page faults of the dispatcher and the
 *    sched_ext watchdog itself depend on them) to the agent's queue. See
 *    is_kernel_critical().
 *  - A task whose message does not fit in the ring (congested) or that arrives while the
 *    dispatcher has stopped consuming (a stall timer notices) goes to a FIFO fallback queue,
 *    counted. When the timer declares a stall, or a decision sample arrives malformed, the
 *    tasks already handed to userspace are rescued too: ops.dispatch walks all threads once
 *    and moves every task still waiting for a decision to the fallback queue. Nothing is
 *    dropped and nothing waits on a dispatcher that is not running; the kernel's own
 *    watchdog work (an unbound kworker, which must run every timeout/2 = 2.5 s) is one of
 *    the tasks this protects.
 *  - A decided task that has waited aged_after_ns (2 s) in a vtime-ordered queue moves to a
 *    FIFO aged queue served right after the agent's (rescue_aged()): no policy's order may
 *    keep a task waiting into the kernel's watchdog.
 *
 * Direct wakeups: a decision may carry a standing grant (ZERNEL_DEC_DIRECT_WAKE, the
 * policy's choice). Until the task's next decision replaces it, a wakeup of the task that
 * finds an idle CPU in select_cpu runs there at once with the grant's slice, as the
 * decision would have placed it, and ops.runnable reports it up (ZERNEL_TASK_DIRECT) so
 * that the policy still sees every wakeup and its CPU time. A wakeup that finds no idle CPU
 * goes up for a decision. select_cpu is not called for a task pinned to one CPU, so
 * ops.enqueue applies its grant: its CPU if idle, and if the decision also asked for
 * preemption (ZERNEL_DEC_PREEMPT) and the task has used less than a slice since, its CPU
 * when busy with a later key, whose task then resumes there without a trip up
 * (grant_may_preempt()). cyclictest's measuring thread is such a task: before, each of its
 * wakeups under CPU hogs made the round trip through a sleeping dispatcher. Preempting
 * from select_cpu for unpinned tasks too was tried: hackbench 1.89x and messaging 1.44x
 * EEVDF's time, against 1.01x and 1.09x without, in one boot. A synchronous wakeup from
 * a short-burst waker runs under the grant on the waker's CPU rather than an idle one
 * (sync_wake_here()). The reports ring
 * the doorbell only at half a ring: a serial workload (a pipe's ping-pong) then never
 * waits on the dispatcher at all.
 *
 * Placement of a decision: a named CPU gets the task in that CPU's vtime-ordered queue;
 * ZERNEL_CPU_ANY takes the previous CPU if it is idle, else any idle CPU, else the shared
 * vtime-ordered queue. ZERNEL_DEC_PREEMPT kicks the CPU whose current task has the latest
 * ordering key, if that key is later than the decision's by more than preempt_margin_ns.
 *
 * Ownership of a task handed to userspace is one flag, task_ctx.in_user, set at enqueue
 * and cleared by whoever applies it first: a decision (gen must match), the rescue walk or
 * ops.dequeue. Clearing is a compare-and-swap, so a late decision and a rescue racing on
 * two CPUs cannot both insert the task.
 *
 * Races tolerated: cpu_ctx[] is written by each CPU in ops.running and read by others
 * without locks when choosing a preemption victim; a stale read kicks the wrong CPU at
 * worst, which costs one extra reschedule. Each CPU also counts there the tasks it queued
 * and those that left a queue on it (nr_inserted, nr_left); userspace sums them to know
 * whether a task waits for a CPU, which only decides whether the dispatcher spins or
 * sleeps, so a sum read mid-update costs at most one spin or one sleep. The stall timer
 * reads a counter userspace writes without ordering; a late read delays bypass by one
 * timer period.
 *
 * Not done here on purpose: no vruntime, no priorities, no phase logic. That is the
 * dispatcher's job and changes at run time without reloading this program.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "zernel_abi.h"
#include "zernel_kfuncs.h"
#include "zernel_rings.bpf.h"

char _license[] SEC("license") = "GPL";

/* #defines of the kernel headers, which BTF does not carry. */
#define PF_KTHREAD 0x00200000
enum { ENOENT = 2, ENOMEM = 12, EBUSY = 16 };
enum { CLOCK_MONOTONIC = 1 };

/* Custom DSQ ids. Per-CPU queues use the CPU id itself (0 .. nr_cpu_ids-1). */
enum zernel_dsq {
	SHARED_DSQ = 1ULL << 32,
	FALLBACK_DSQ,
	USERSCHED_DSQ,
	AGENT_DSQ,
	AGED_DSQ,
};

/* Tunables, set by the loader before load. */
/* The dispatcher thread (a thread id) and its process. The dispatcher has a queue of its
 * own that every CPU serves first. The agent's other threads (control, metrics, zernelctl
 * requests) have the next queue: they must not go through userspace either, because the
 * dispatcher can block on them (a page fault waits for mmap_lock, which a control thread
 * may hold while allocating) and they would then wait for the dispatcher: a cycle only the
 * stall timer would break. Served second, they can never delay the dispatcher itself. */
const volatile __s32 usersched_pid;
const volatile __s32 usersched_tgid;
const volatile __u32 nr_cpus = 1;                 /* nr_cpu_ids */
const volatile __u64 slice_dfl_ns = 5000000;      /* fallback/kernel-dispatched slice */
const volatile __u64 stall_timeout_ns = 250000000;/* no consumption this long = stalled */
const volatile __u64 stall_period_ns = 50000000;  /* how often the timer looks */
/* A preemption kick needs the victim's key to be later than the decision's by this much:
 * hogs (a slice or more ahead) are preempted, peers with similar keys are not, which would
 * only trade one short task for another at the price of a round trip through userspace. */
const volatile __u64 preempt_margin_ns = 5000000;
/* A task a grant preempted resumes with what was left of its slice, at least this much. */
const volatile __u64 min_resume_ns = 100000;
/* A decided task still waiting in a queue this long goes to the aged queue (see
 * rescue_aged()). The stall timer looks every aged_scan_every periods (250 ms). */
const volatile __u64 aged_after_ns = ZERNEL_AGED_AFTER_MS * 1000000ULL;
const volatile __u32 aged_scan_every = 5;

/* Written by userspace (mmap'ed .bss), read by the stall timer. */
struct zernel_consumed user_consumed;

/* Written by the stall timer; read by ops.enqueue and ops.dispatch. */
volatile bool bypass;
/* Tasks waiting in the shim's queues, sampled by the stall timer every stall_period_ns;
 * read by userspace (policies size slices by it) and by watchdog_safe_slice(). */
volatile __u64 nr_waiting;
/* Set by the timer when a stall begins and by the drain on a malformed sample; cleared by
 * the rescue walk as it starts (see rescue_stalled()). Plain stores on any CPU: a request
 * seen late is walked one ops.dispatch later. */
volatile bool rescue_pending;

/* Written once in ops.exit; userspace polls .kind. */
struct zernel_exit_info exit_info;
char exit_dump[ZERNEL_EXIT_DUMP_LEN]; /* written in ops.exit before exit_info.kind */


struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct zernel_shim_stats);
} stats SEC(".maps");

struct task_ctx {
	__u64 gen;        /* bumped on every enqueue and dequeue */
	__u64 key;        /* ordering key of the decision that dispatched it */
	__u64 running_at; /* when it last started running */
	__u64 runtime;    /* CPU time since the last enqueue */
	__u64 burst;      /* CPU time since the last wakeup */
	__u64 last_burst; /* the previous complete burst */
	__s32 waker_pid;
	__s32 waker_tgid;
	__u32 waker_noted;/* select_cpu recorded the waker of the wakeup in progress */
	__u32 iowait;     /* last sleep was an I/O wait */
	__u32 in_user;    /* 1 while its message awaits a decision (see the header) */
	__u64 enq_at;      /* this trip: sent up */
	__u64 decided_at;  /* this trip: decision applied; 0 if the trip bypassed userspace */
	__u64 started_at;  /* this trip: first ran after the decision */
	__u64 slept_at;    /* when its last sleep began (0 = never slept) */
	__u32 sleep;       /* length of the sleep that the current wakeup ended (ns, saturated) */
	__u32 futex_waits; /* futex wait calls since the last enqueue (fentry on futex_wait*) */
	__u32 queued;      /* 1 from its insertion into a queue until it runs (see note_queued()) */
	__u32 direct;      /* select_cpu placed this wakeup under the grant; ops.runnable reports it */
	__u32 trip_direct; /* this trip was such a wakeup (ZERNEL_TASK_PREV_DIRECT in the next message) */
	__u64 grant_slice; /* ZERNEL_DEC_DIRECT_WAKE of its last decision: the slice; 0 = no grant */
	/* The grant may also preempt (the decision had ZERNEL_DEC_PREEMPT too): a pinned
	 * task's wakeup takes its CPU if that CPU's task has a key later than grant_key +
	 * grant_used + grant_margin, as the decision's kick would have required. See
	 * grant_may_preempt(). */
	__u32 grant_preempts;
	__u64 grant_key;
	__u64 grant_margin;
	__u64 grant_used;   /* CPU time since that decision */
	__u64 resume_slice; /* a grant preempted it: its next slice expiry resumes on its CPU */
	__u64 resume_key;   /* with its key, which ops.stopping cleared */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

/* What each CPU is running (struct zernel_cpu_state in zernel_abi.h): the preemption victim
 * choice reads it here, and userspace maps it to place tasks on idle CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1024); /* resized by the loader to nr_cpu_ids */
	__type(key, __u32);
	__type(value, struct zernel_cpu_state);
} cpu_ctxs SEC(".maps");

struct stall_timer {
	struct bpf_timer timer;
	__u64 last_consumed;
	__u64 stalled_since;
	__u32 ticks;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stall_timer);
} stall_timers SEC(".maps");

static __always_inline struct zernel_shim_stats *stat(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&stats, &zero);
}

/* Per-CPU counters: no atomics needed, each CPU owns its slot. */
#define STAT_INC(field)                                  \
	do {                                             \
		struct zernel_shim_stats *__s = stat();  \
		if (__s)                                 \
			__s->field++;                    \
	} while (0)

static __always_inline struct task_ctx *lookup_task_ctx(struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, p, 0, 0);
}

static __always_inline struct zernel_cpu_state *this_cpu_state(void)
{
	u32 cpu = bpf_get_smp_processor_id();

	return bpf_map_lookup_elem(&cpu_ctxs, &cpu);
}

/* Counts a task into a queue (struct zernel_cpu_state: nr_inserted). Called wherever the shim
 * inserts a task other than the dispatcher (a decision, the fallback queue, a rescue, kernel
 * and agent threads), always in a callback that holds an rq lock with interrupts off (not
 * always this CPU's: a remote wakeup enqueues on the wakee's rq), so nothing else on this
 * CPU runs meanwhile and the plain increment of this CPU's counter has no other writer. */
static __always_inline void note_queued(struct task_ctx *tctx)
{
	struct zernel_cpu_state *cctx = this_cpu_state();

	if (tctx->queued || !cctx)
		return;
	tctx->queued = 1;
	cctx->nr_inserted++;
}

static __always_inline void note_queued_task(struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (tctx)
		note_queued(tctx);
}

/* The task left its queue: it runs, or the kernel took it out before it ran (an affinity or
 * class change, its exit). @atomic where the caller may be preempted by a callback on the
 * same CPU that counts too (exit_task). */
static __always_inline void note_left(struct task_ctx *tctx, struct zernel_cpu_state *cctx,
				      bool atomic)
{
	if (!tctx->queued || !cctx)
		return;
	tctx->queued = 0;
	if (atomic)
		__sync_fetch_and_add(&cctx->nr_left, 1);
	else
		cctx->nr_left++;
}

static __always_inline bool is_usersched(const struct task_struct *p)
{
	return p->pid == usersched_pid;
}

static __always_inline bool is_agent_thread(const struct task_struct *p)
{
	return p->tgid == usersched_tgid;
}

/* Kernel threads never go to userspace. Per-CPU kthreads (kworkers, ksoftirqd) and the
 * memory-management threads because the dispatcher itself may wait on them: a page fault
 * of the dispatcher can wait for a page kcompactd is migrating (seen in the VM: kcompactd
 * sat in the ring while the dispatcher waited on it, until the stall timer broke the
 * cycle 250 ms later). Unbound kworkers because sched_ext's own watchdog runs in one and
 * must run every 2.5 s: under 4,000 runnable hackbench tasks it waited behind them in the
 * shared queue and the kernel ejected the scheduler ("watchdog failed to check in"). */
static __always_inline bool is_kernel_critical(const struct task_struct *p)
{
	return p->flags & PF_KTHREAD;
}

/* Find the CPU, allowed for @p, whose current task has the latest ordering key, if that
 * key is later than @than; -1 if none. Bounded by nr_cpus. */
static __always_inline s32 latest_key_cpu(struct task_struct *p, u64 than)
{
	u64 worst_key = than;
	s32 victim = -1;
	u32 i;

	bpf_for(i, 0, nr_cpus) {
		struct zernel_cpu_state *cctx;

		if (!bpf_cpumask_test_cpu(i, p->cpus_ptr))
			continue;
		cctx = bpf_map_lookup_elem(&cpu_ctxs, &i);
		if (cctx && cctx->key > worst_key) {
			worst_key = cctx->key;
			victim = i;
		}
	}
	return victim;
}

/* Wake an idle CPU allowed for @p so that it comes to ops.dispatch. */
static __always_inline void kick_idle_for(struct task_struct *p)
{
	s32 cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);

	if (cpu >= 0)
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
}

/* The preempt count tells a task waking another (a futex wake, a pipe write) from an
 * interrupt that does (a timer ending a sleep, an I/O completion), whose "current task" is
 * just whatever it interrupted. x86 keeps it in a per-CPU variable; arm64 (and others with
 * THREAD_INFO_IN_TASK and no such variable) in the current task's thread_info. Both are
 * looked up at load time (a weak ksym, a CO-RE field check); a kernel with neither loses
 * the hint (no waker), never gets a wrong one. */
extern const int __preempt_count __ksym __weak;
struct thread_info___preempt {
	u64 preempt_count; /* arm64: a union whose low 32 bits are the count */
} __attribute__((preserve_access_index));
struct task_struct___preempt {
	struct thread_info___preempt thread_info;
} __attribute__((preserve_access_index));
enum {
	SOFTIRQ_OFFSET = 0x00000100,
	HARDIRQ_MASK = 0x000f0000,
	NMI_MASK = 0x00f00000,
};

static __always_inline bool in_task_context(void)
{
	struct task_struct___preempt *cur;
	int pc;

	if (bpf_ksym_exists(&__preempt_count)) {
		pc = *(const int *)bpf_this_cpu_ptr(&__preempt_count);
	} else if (bpf_core_field_exists(struct thread_info___preempt, preempt_count)) {
		cur = (void *)bpf_get_current_task_btf();
		pc = (int)cur->thread_info.preempt_count;
	} else {
		return false;
	}
	return !(pc & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET));
}

/* Who wakes @p, or 0 when no task does. Called where the waker runs. */
static __always_inline void note_waker(struct task_ctx *tctx)
{
	struct task_struct *waker = bpf_get_current_task_btf();
	bool by_task = in_task_context();

	tctx->waker_pid = by_task ? waker->pid : 0;
	tctx->waker_tgid = by_task ? waker->tgid : 0;
}

/* Safety, not policy: sched_ext ejects the scheduler if any runnable task waits longer
 * than timeout_ms (5 s). With thousands of runnable tasks a fixed slice cannot serve them
 * all in time (10,000 tasks x 5 ms on 2 CPUs is 25 s), so the slice is capped to give
 * every waiting task a turn within half the timeout. */
static __always_inline u64 watchdog_safe_slice(u64 slice)
{
	u64 waiting = nr_waiting;
	u64 budget = 2500ULL * 1000 * 1000 * nr_cpus; /* timeout_ms / 2, on every CPU */
	u64 cap;

	if (!waiting)
		return slice;
	cap = budget / (waiting + 1);
	if (cap < 50000)
		cap = 50000;
	return slice < cap ? slice : cap;
}

/* Whether the preempting grant of @p, pinned to @cpu, may take that CPU: its task's key is
 * later than the grant's by the margin, as the decision's kick would have required. Only
 * while @p has used less than a slice since its decision: the grant's key is then at most
 * that stale, and the used time is added to it, so the task cannot preempt on credit it
 * has spent. The task preempted is marked to resume (see zernel_enqueue()) rather than go
 * up for a decision, or each such wakeup would wake the dispatcher for the victim instead.
 * We hold @cpu's rq lock (the wakeup is enqueued there), so its current task cannot
 * change under us. */
static __always_inline bool grant_may_preempt(struct task_struct *p, struct task_ctx *tctx, s32 cpu)
{
	struct zernel_cpu_state *cctx = bpf_map_lookup_elem(&cpu_ctxs, &cpu);
	struct task_struct *curr;
	struct task_ctx *vctx;
	bool marked = false;

	if (!tctx->grant_preempts || tctx->grant_used >= slice_dfl_ns || !cctx ||
	    cctx->key <= tctx->grant_key + tctx->grant_used + tctx->grant_margin ||
	    !bpf_ksym_exists(scx_bpf_cpu_curr))
		return false;
	bpf_rcu_read_lock();
	curr = scx_bpf_cpu_curr(cpu);
	if (curr && curr != p && !is_usersched(curr) && !is_kernel_critical(curr)) {
		vctx = bpf_task_storage_get(&task_ctxs, curr, 0, 0);
		if (vctx) {
			vctx->resume_key = vctx->key;
			vctx->resume_slice = curr->scx.slice > min_resume_ns ? curr->scx.slice : min_resume_ns;
			marked = true;
		}
	}
	bpf_rcu_read_unlock();
	return marked;
}

/* A waker whose bursts are this short is taken at its word when it wakes synchronously. */
const volatile __u64 sync_wake_burst_ns = 100000;

/* A synchronous wakeup (SCX_WAKE_SYNC: the waker says it is about to sleep, as a pipe's or
 * a socket's writer does) is best served on the waker's CPU: the wakee runs there as soon
 * as the waker sleeps, with its data warm in the cache, and no idle CPU is woken by an IPI
 * only for the waker's CPU to go idle a moment later. The waker's word is trusted only if
 * it keeps it: its last burst and the one in progress are short, and nothing else waits
 * on this CPU (a sender that goes on writing would hold the wakee up to a slice while
 * another CPU idles: the reason the kernel's own rule looks at load). Measured, 2 vCPUs,
 * one boot: perf bench sched pipe 79.2 us/op against 126 without and 103 under EEVDF;
 * hackbench, messaging, stress-ng and cyclictest within 1-3% of without. */
static __always_inline bool sync_wake_here(struct task_struct *p, u64 wake_flags, s32 cpu)
{
	struct task_struct *waker;
	struct task_ctx *wctx;
	u64 so_far;

	if (!sync_wake_burst_ns || !(wake_flags & SCX_WAKE_SYNC) || !in_task_context())
		return false;
	waker = bpf_get_current_task_btf();
	/* The dispatcher spins on the rings after a batch instead of sleeping (--spin-us). */
	if (is_usersched(waker))
		return false;
	wctx = bpf_task_storage_get(&task_ctxs, waker, 0, 0);
	if (!wctx || !wctx->running_at || wctx->last_burst > sync_wake_burst_ns)
		return false;
	so_far = wctx->burst + (zernel_now() - wctx->running_at);
	if (so_far > sync_wake_burst_ns)
		return false;
	if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
		return false;
	return scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL) == 0;
}

/* select_cpu's placement of a granted wakeup on the CPU it returns. */
static __always_inline void place_under_grant(struct task_struct *p, struct task_ctx *tctx)
{
	zernel_insert(p, SCX_DSQ_LOCAL, watchdog_safe_slice(tctx->grant_slice), 0);
	tctx->direct = 1;
	STAT_INC(nr_direct);
}

s32 BPF_STRUCT_OPS(zernel_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false, granted;
	s32 cpu;
	/* Both uses below are for a wakeup (not a fork's or an exec's placement). */
	struct task_ctx *tctx = (wake_flags & SCX_WAKE_TTWU) ? lookup_task_ctx(p) : NULL;

	/* select_cpu runs in the waker's context, before a wakeup to another CPU is queued
	 * to that CPU's wake list (where ops.runnable later sees only the IPI). */
	if (tctx) {
		note_waker(tctx);
		tctx->waker_noted = 1;
	}
	/* A task userspace granted it to (ZERNEL_DEC_DIRECT_WAKE) runs now, as its decision
	 * would have placed it, and ops.runnable reports the wakeup. Not while bypassing: then
	 * the dispatcher is not consuming and the fallback queue serves everyone. */
	granted = tctx && tctx->grant_slice && !bypass;
	/* Checked before scx_bpf_select_cpu_dfl(), which would claim an idle CPU this leaves idle. */
	cpu = bpf_get_smp_processor_id();
	if (granted && sync_wake_here(p, wake_flags, cpu)) {
		place_under_grant(p, tctx);
		STAT_INC(nr_sync_wakes);
		return cpu;
	}
	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	/* The dispatcher must not queue behind anything: straight onto an idle CPU. Other
	 * tasks only get a CPU hint here; the dispatcher places them. (Waking it on the
	 * waker's CPU when none is idle, to save the IPI, made every wakeup preempt the task
	 * running there: hackbench under fair went from 1.0x to 2.9x EEVDF's time.) */
	if (is_idle && is_usersched(p)) {
		zernel_insert(p, SCX_DSQ_LOCAL, slice_dfl_ns, 0);
		STAT_INC(nr_kernel_dispatched);
		return cpu;
	}
	/* Or the idle CPU it found. */
	if (is_idle && granted)
		place_under_grant(p, tctx);
	return cpu;
}

static __always_inline u32 sat_u32(u64 v)
{
	return v > 0xffffffffULL ? 0xffffffffU : (u32)v;
}

static __always_inline void fallback(struct task_struct *p, struct task_ctx *tctx, u64 enq_flags)
{
	zernel_insert(p, FALLBACK_DSQ, slice_dfl_ns, enq_flags);
	if (tctx)
		note_queued(tctx);
	kick_idle_for(p);
}

/* The message of an enqueue (or of a direct wakeup): what the task did since its last one,
 * and how its previous trip went. Starts the new trip. */
static __always_inline void fill_msg(struct zernel_task_msg *msg, struct task_struct *p,
				     struct task_ctx *tctx, u64 enq_flags)
{
	bool wakeup = enq_flags & SCX_ENQ_WAKEUP;

	tctx->gen++;
	msg->pid = p->pid;
	msg->tgid = p->tgid;
	msg->prev_cpu = scx_bpf_task_cpu(p);
	msg->nr_cpus_allowed = p->nr_cpus_allowed;
	msg->enq_flags = enq_flags;
	msg->enq_ns = zernel_now();
	msg->runtime_ns = tctx->runtime;
	msg->burst_ns = wakeup ? tctx->last_burst : tctx->burst;
	msg->gen = tctx->gen;
	msg->weight = p->scx.weight;
	msg->flags = wakeup ? ZERNEL_TASK_WAKEUP : 0;
	if (tctx->iowait)
		msg->flags |= ZERNEL_TASK_IOWAIT;
	if (tctx->trip_direct)
		msg->flags |= ZERNEL_TASK_PREV_DIRECT;
	msg->waker_pid = tctx->waker_pid;
	msg->waker_tgid = tctx->waker_tgid;
	msg->sleep_ns = wakeup ? tctx->sleep : 0;
	msg->futex_waits = tctx->futex_waits;
	tctx->futex_waits = 0;
	msg->prev_decision_ns = 0;
	msg->prev_running_ns = 0;
	msg->prev_enq_ns = tctx->enq_at;
	if (tctx->decided_at && tctx->started_at >= tctx->decided_at) {
		msg->prev_decision_ns = sat_u32(tctx->decided_at - tctx->enq_at);
		msg->prev_running_ns = sat_u32(tctx->started_at - tctx->enq_at);
	}
	tctx->enq_at = msg->enq_ns;
	tctx->decided_at = 0;
	tctx->started_at = 0;
	tctx->trip_direct = 0;
	__builtin_memcpy(msg->comm, p->comm, ZERNEL_COMM_LEN);
	tctx->runtime = 0;
}

/* A wakeup placed under the grant: by select_cpu, which ops.enqueue then does not follow,
 * so its message goes up from ops.runnable; or, for a pinned task, by ops.enqueue. Either
 * way the same producer context (this rq's lock, IRQs off). The message is marked
 * ZERNEL_TASK_DIRECT and never in_user: no decision is awaited, and a late one for an
 * older trip is cancelled by the generation. The doorbell rings only when the ring is half
 * full: nothing waits on the dispatcher reading it (see zernel_task_publish_lazy()). A
 * full ring loses only the report: the CPU time stays in task_ctx for the next message. */
static __always_inline void report_direct(struct task_struct *p, struct task_ctx *tctx, u64 enq_flags)
{
	struct zernel_task_reservation slot;
	struct zernel_task_msg *msg;

	tctx->direct = 0;
	msg = zernel_task_reserve(&slot);
	if (!msg) {
		STAT_INC(nr_direct_unsent);
		return;
	}
	fill_msg(msg, p, tctx, enq_flags);
	msg->flags |= ZERNEL_TASK_DIRECT;
	/* The trip's decision was this placement: enqueue -> running is measured as for
	 * any trip (ops.running sets started_at once decided_at is set). */
	tctx->decided_at = tctx->enq_at;
	tctx->trip_direct = 1;
	zernel_task_publish_lazy(&slot);
}

/* The wakeup of a task pinned to one CPU, under its grant (select_cpu is not called for
 * it): its CPU if idle, or preempting it if the grant allows (grant_may_preempt()),
 * reported at once (ops.runnable, which reports select_cpu's, came before this). False:
 * it goes up for a decision. */
static __always_inline bool grant_pinned_wakeup(struct task_struct *p, struct task_ctx *tctx,
						u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p);
	u64 slice = watchdog_safe_slice(tctx->grant_slice);

	if (!tctx->grant_slice)
		return false;
	if (scx_bpf_test_and_clear_cpu_idle(cpu)) {
		zernel_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
	} else if (grant_may_preempt(p, tctx, cpu)) {
		zernel_insert(p, SCX_DSQ_LOCAL, slice, enq_flags | SCX_ENQ_PREEMPT);
		STAT_INC(nr_grant_preempts);
	} else {
		return false;
	}
	STAT_INC(nr_direct);
	report_direct(p, tctx, enq_flags);
	return true;
}

void BPF_STRUCT_OPS(zernel_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct zernel_task_reservation slot;
	struct zernel_task_msg *msg;
	struct task_ctx *tctx;

	if (is_usersched(p)) {
		s32 cpu;

		zernel_insert(p, USERSCHED_DSQ, slice_dfl_ns, enq_flags);
		STAT_INC(nr_kernel_dispatched);
		/* It yielded or used up its slice: its own CPU is rescheduling and serves this
		 * queue first. Waking another CPU would only move it there. */
		if ((u32)bpf_get_current_pid_tgid() == (u32)p->pid)
			return;
		/* Prefer an idle CPU; else preempt the one running the latest key: every other
		 * task waits for the dispatcher, so the dispatcher waits for no one, but the
		 * task it takes the CPU from is re-enqueued as a slice expiry, so let that be
		 * the least urgent one (a hog, not the trainer just woken ahead of it). */
		cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
		if (cpu >= 0) {
			scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
			return;
		}
		cpu = latest_key_cpu(p, 0);
		scx_bpf_kick_cpu(cpu >= 0 ? cpu : scx_bpf_task_cpu(p), SCX_KICK_PREEMPT);
		return;
	}

	if (is_kernel_critical(p)) {
		/* Pinned ones on their CPU; the others wherever the kernel finds room. */
		zernel_insert(p, p->nr_cpus_allowed == 1 ? SCX_DSQ_LOCAL : AGENT_DSQ, slice_dfl_ns,
			      enq_flags);
		note_queued_task(p);
		STAT_INC(nr_kernel_dispatched);
		if (p->nr_cpus_allowed != 1)
			kick_idle_for(p);
		return;
	}

	if (is_agent_thread(p)) {
		zernel_insert(p, AGENT_DSQ, slice_dfl_ns, enq_flags);
		note_queued_task(p);
		STAT_INC(nr_kernel_dispatched);
		kick_idle_for(p);
		return;
	}

	tctx = lookup_task_ctx(p);
	/* Queued before, and taken out without running (its affinity or priority changed). */
	if (tctx)
		note_left(tctx, this_cpu_state(), false);
	/* A preempting grant took its CPU (grant_may_preempt()): back into this CPU's queue, behind
	 * the task that took it, with the rest of its slice. Its decision still holds, and a
	 * trip up would wake the dispatcher for nothing new. Its CPU time goes up with its next
	 * message. A mark met by a wakeup is stale: the task slept meanwhile. */
	if (tctx && tctx->resume_slice) {
		u64 slice = tctx->resume_slice;

		tctx->resume_slice = 0;
		if (!(enq_flags & SCX_ENQ_WAKEUP) && !bypass) {
			/* Without its key its CPU would read as not preemptible (0) until its
			 * next decision, for the next wakeup too. */
			tctx->key = tctx->resume_key;
			zernel_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
			note_queued(tctx);
			STAT_INC(nr_resumed);
			return;
		}
	}
	/* select_cpu is not called for a task pinned to one CPU: its grant applies here. */
	if (tctx && (enq_flags & SCX_ENQ_WAKEUP) && p->nr_cpus_allowed == 1 && !bypass &&
	    grant_pinned_wakeup(p, tctx, enq_flags))
		return;
	if (!tctx || bypass) {
		/* No context means init_task failed for it; bypass means the dispatcher has
		 * not consumed for stall_timeout_ns. Either way the kernel schedules it. */
		STAT_INC(nr_bypassed);
		fallback(p, tctx, enq_flags);
		return;
	}

	msg = zernel_task_reserve(&slot);
	if (!msg) {
		STAT_INC(nr_congested);
		fallback(p, tctx, enq_flags);
		return;
	}

	fill_msg(msg, p, tctx, enq_flags);
	/* Before the publication: a decision can only exist after userspace read the
	 * message, and the publication's barrier orders this store before it. */
	tctx->in_user = 1;
	/* No wakeup IPI per message: a dispatcher that is running will find it; one that is
	 * about to sleep is rung (see zernel_task_publish()). */
	zernel_task_publish(&slot);
	STAT_INC(nr_queued);
}

void BPF_STRUCT_OPS(zernel_dequeue, struct task_struct *p, u64 deq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	/* The task left our custody (affinity or class change); a decision still in flight
	 * for it must not be applied. */
	if (tctx) {
		tctx->gen++;
		tctx->in_user = 0;
	}
}

/* Kick the CPU running the latest key if that key is later than @key + @margin. */
static __always_inline void preempt_for(struct task_struct *p, u64 key, u64 margin)
{
	s32 victim = latest_key_cpu(p, key + margin);

	if (victim >= 0) {
		scx_bpf_kick_cpu(victim, SCX_KICK_PREEMPT);
		STAT_INC(nr_preempt_kicks);
	}
}

static __always_inline void apply_decision(struct task_struct *p, struct task_ctx *tctx,
					   const struct zernel_decision *d)
{
	u64 slice = watchdog_safe_slice(d->slice_ns ?: slice_dfl_ns);
	u64 margin = (d->flags & ZERNEL_DEC_PREEMPT_NOW) ? 0 : preempt_margin_ns;
	s32 cpu = d->cpu;

	tctx->key = d->vtime;
	tctx->decided_at = zernel_now();
	tctx->grant_slice = (d->flags & ZERNEL_DEC_DIRECT_WAKE) ? (d->slice_ns ?: slice_dfl_ns) : 0;
	tctx->grant_preempts = tctx->grant_slice && (d->flags & ZERNEL_DEC_PREEMPT);
	tctx->grant_key = d->vtime;
	tctx->grant_margin = margin;
	tctx->grant_used = 0;
	note_queued(tctx);

	if (cpu != ZERNEL_CPU_ANY &&
	    (cpu < 0 || (u32)cpu >= nr_cpus || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))) {
		/* Affinity changed since the message, or a bad CPU: place it ourselves. */
		STAT_INC(nr_bounced);
		cpu = ZERNEL_CPU_ANY;
	}

	if (cpu != ZERNEL_CPU_ANY) {
		zernel_insert_vtime(p, cpu, slice, d->vtime, 0);
		if (d->flags & ZERNEL_DEC_PREEMPT) {
			struct zernel_cpu_state *cctx = bpf_map_lookup_elem(&cpu_ctxs, (u32 *)&cpu);

			if (cctx && cctx->key > d->vtime + margin) {
				scx_bpf_kick_cpu(cpu, SCX_KICK_PREEMPT);
				STAT_INC(nr_preempt_kicks);
				return;
			}
		}
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}

	cpu = scx_bpf_task_cpu(p);
	if (!scx_bpf_test_and_clear_cpu_idle(cpu))
		cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
	if (cpu >= 0) {
		zernel_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, 0);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}
	zernel_insert_vtime(p, SHARED_DSQ, slice, d->vtime, 0);
	if (d->flags & ZERNEL_DEC_PREEMPT)
		preempt_for(p, d->vtime, margin);
}

/* One decision of a sample (zernel_rings.bpf.h calls this for each, in ring order). */
static __always_inline void zernel_on_decision(const struct zernel_decision *d, void *ctx)
{
	struct task_struct *p;
	struct task_ctx *tctx;

	p = bpf_task_from_pid(d->pid);
	if (!p) {
		STAT_INC(nr_exited);
		return;
	}
	tctx = lookup_task_ctx(p);
	if (!tctx || tctx->gen != d->gen || !__sync_bool_compare_and_swap(&tctx->in_user, 1, 0)) {
		/* Re-enqueued since (a newer message is in the ring), dequeued, or rescued
		 * during a stall: applying it would run the task on an outdated decision. */
		STAT_INC(nr_cancelled);
	} else {
		apply_decision(p, tctx, d);
		STAT_INC(nr_user_dispatched);
	}
	bpf_task_release(p);
}

/* A sample that is not what BpfChannel writes (an ABI mismatch): none of it is applied,
 * since none of it can be trusted. Its tasks would then wait for decisions that never come,
 * and the stall timer would not notice (userspace did consume their messages), so the
 * rescue walk hands every task still waiting to the fallback queue. Decisions still in the
 * ring for those tasks lose the in_user CAS and are counted as cancelled. */
static __always_inline void zernel_on_malformed(void *ctx)
{
	STAT_INC(nr_malformed);
	rescue_pending = true;
}

/* Every applied decision inserts the task once (a cancelled one inserts nothing), and
 * ops.dispatch may insert only dispatch_max_batch tasks per call. */
static __always_inline __u32 zernel_dispatch_slots(void *ctx)
{
	return scx_bpf_dispatch_nr_slots();
}

/* The dispatcher has stalled, or sent a malformed sample: move every task still waiting
 * for its decision to the fallback queue. O(threads), but only once per request. The flag
 * is cleared before the walk, not after, so that a request made while a walk runs (a
 * malformed sample drained on another CPU, for tasks the walk may have passed already)
 * leaves it set for another walk; a walk that runs out of dispatch slots sets it again and
 * the next ops.dispatch walks again (tasks rescued already are skipped: in_user is 0). */
static __always_inline void rescue_stalled(void)
{
	struct task_struct *p;

	rescue_pending = false;
	bpf_for_each(task, p, NULL, BPF_TASK_ITER_ALL_THREADS) {
		struct task_ctx *tctx;

		if (!scx_bpf_dispatch_nr_slots()) {
			rescue_pending = true;
			return;
		}
		tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);
		if (tctx && __sync_bool_compare_and_swap(&tctx->in_user, 1, 0)) {
			zernel_insert(p, FALLBACK_DSQ, slice_dfl_ns, 0);
			note_queued(tctx);
			STAT_INC(nr_rescued);
		}
	}
}

static __always_inline void drain_decisions(void)
{
	long ret;

	/* Wake the producer only if it waits for space: the default wakes it (an IPI) after
	 * every drain that consumed anything. */
	ret = zernel_drain_decisions(NULL, wake.user_waiting_space ? BPF_RB_FORCE_WAKEUP
								  : BPF_RB_NO_WAKEUP);
	if (ret == -EBUSY)
		STAT_INC(nr_drain_busy);
}

/* Nothing to run here but @prev, whose slice ran out. The kernel then keeps it running
 * without an enqueue, so without a new decision, refilled with SCX_SLICE_DFL (20 ms): a
 * data loader woken with an early deadline kept running that way for 11 ms while the
 * trainer waited. So the shim's slice instead. Its CPU keeps the key of its last decision.
 * (It was set to a key above every decision's, so that any preempting decision would take
 * the CPU: under CPU hogs that made every wakeup preempt a kept hog, whose re-enqueue woke
 * the dispatcher again, and cyclictest's p50 wakeup latency went from 1.9x to 2.7-3.1x
 * EEVDF's; the latency tier's keys beat every normal key, stale or not, without it.) */
static __always_inline void keep_prev(struct task_struct *prev)
{
	if (!prev || !(prev->scx.flags & SCX_TASK_QUEUED) || is_usersched(prev))
		return;
	if (bpf_ksym_exists(scx_bpf_task_set_slice))
		scx_bpf_task_set_slice(prev, slice_dfl_ns);
}

void BPF_STRUCT_OPS(zernel_dispatch, s32 cpu, struct task_struct *prev)
{
	/* A spinning dispatcher yields after each batch so that its decisions are applied
	 * here at once, before it runs again. */
	if (prev && is_usersched(prev))
		drain_decisions();
	if (zernel_move_to_local(USERSCHED_DSQ))
		return;
	if (zernel_move_to_local(AGENT_DSQ))
		return;
	if (zernel_move_to_local(AGED_DSQ))
		return;
	if (rescue_pending)
		rescue_stalled();

	/* Drain before serving the fallback queue, so that a steady trickle of fallback
	 * tasks cannot hold userspace's decisions back. */
	drain_decisions();

	if (zernel_move_to_local(FALLBACK_DSQ))
		return;
	if (zernel_move_to_local(cpu))
		return;
	if (zernel_move_to_local(SHARED_DSQ))
		return;
	keep_prev(prev);
}

void BPF_STRUCT_OPS(zernel_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx;

	if (!(enq_flags & SCX_ENQ_WAKEUP))
		return;
	tctx = lookup_task_ctx(p);
	if (!tctx)
		return;
	/* select_cpu noted the waker, unless it was skipped (a task pinned to one CPU): then
	 * the wakeup runs here in the waker's context, or from a wake-list IPI, which reads
	 * as "no task" (a lost hint, never a wrong one). */
	if (!tctx->waker_noted)
		note_waker(tctx);
	tctx->waker_noted = 0;
	tctx->sleep = tctx->slept_at ? sat_u32(zernel_now() - tctx->slept_at) : 0;
	if (tctx->direct)
		report_direct(p, tctx, enq_flags);
}

void BPF_STRUCT_OPS(zernel_running, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	u32 cpu = scx_bpf_task_cpu(p);
	struct zernel_cpu_state *cctx = bpf_map_lookup_elem(&cpu_ctxs, &cpu);

	if (tctx) {
		tctx->running_at = zernel_now();
		if (tctx->decided_at && !tctx->started_at)
			tctx->started_at = tctx->running_at;
		note_left(tctx, cctx, false);
	}
	if (cctx) {
		cctx->key = (tctx && !is_usersched(p)) ? tctx->key : 0;
		cctx->busy = 1;
	}
}

void BPF_STRUCT_OPS(zernel_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	u32 cpu = scx_bpf_task_cpu(p);
	struct zernel_cpu_state *cctx = bpf_map_lookup_elem(&cpu_ctxs, &cpu);
	u64 ran;

	if (cctx) {
		cctx->key = 0;
		cctx->busy = 0;
	}
	if (!tctx || !tctx->running_at)
		return;
	ran = zernel_now() - tctx->running_at;
	tctx->runtime += ran;
	tctx->burst += ran;
	tctx->grant_used += ran;
	/* Not charged twice if the next running() is missed. */
	tctx->running_at = 0;
	tctx->key = 0;
}

void BPF_STRUCT_OPS(zernel_quiescent, struct task_struct *p, u64 deq_flags)
{
	struct task_struct *sleeper;
	struct task_ctx *tctx;

	if (!(deq_flags & SCX_DEQ_SLEEP))
		return;
	tctx = lookup_task_ctx(p);
	if (!tctx)
		return;
	tctx->last_burst = tctx->burst;
	tctx->burst = 0;
	tctx->slept_at = zernel_now();
	/* io_schedule() sets in_iowait before it sleeps and clears it after; at
	 * quiescent time it still tells why this sleep began. */
	sleeper = p; /* BPF_CORE_READ_BITFIELD declares its own `p` */
	tctx->iowait = BPF_CORE_READ_BITFIELD(sleeper, in_iowait);
}

s32 BPF_STRUCT_OPS(zernel_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
}

void BPF_STRUCT_OPS(zernel_exit_task, struct task_struct *p, struct scx_exit_task_args *args)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (tctx)
		note_left(tctx, this_cpu_state(), true);
	bpf_task_storage_delete(&task_ctxs, p);
}

/* It leaves sched_ext (set to a realtime class, say), maybe from a queue it never ran from. */
void BPF_STRUCT_OPS(zernel_disable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (tctx)
		note_left(tctx, this_cpu_state(), true);
}

/* Futex waits, a phase signal (collectives block in futexes): counted per task and sent
 * with its next message. On the kernel's wait functions (fentry: a trampoline call on
 * futex waits only), not on the futex syscall tracepoints: enabling any syscall
 * tracepoint sends every syscall of every task through the slow tracing entry and exit
 * path, which made hackbench, whose tasks do nothing but read and write, ~10% slower
 * under the scheduler (in the VM). futex_wait()
 * serves FUTEX_WAIT, FUTEX_WAIT_BITSET and futex2's futex_wait; futex_wait_multiple()
 * futex_waitv; futex_wait_requeue_pi() FUTEX_WAIT_REQUEUE_PI. The loader skips any the
 * kernel does not have (Shim::attach). */
static __always_inline void count_futex_wait(void)
{
	struct task_struct *cur = bpf_get_current_task_btf();
	struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, cur, 0, 0);

	if (tctx)
		__sync_fetch_and_add(&tctx->futex_waits, 1);
}

SEC("fentry/futex_wait")
int BPF_PROG(zernel_futex_wait)
{
	count_futex_wait();
	return 0;
}

SEC("fentry/futex_wait_multiple")
int BPF_PROG(zernel_futex_wait_multiple)
{
	count_futex_wait();
	return 0;
}

SEC("fentry/futex_wait_requeue_pi")
int BPF_PROG(zernel_futex_wait_requeue_pi)
{
	count_futex_wait();
	return 0;
}

/* The task bpf_for_each() is at: what scx_bpf_dsq_move() moves from. */
#define BPF_FOR_EACH_ITER (&___it)

/* Safety, not policy: the vtime-ordered queues serve the earliest key first, so a task can
 * wait there for as long as the policy keeps handing out earlier keys, and with thousands
 * of runnable tasks a few waited longer than the kernel's watchdog allows (10,000 hackbench
 * threads on 8 vCPUs: mean 0.49 s, 4,312 over 3 s, the longest 3.9 s in one run, over 5 s
 * and ejected in others). Those past aged_after_ns move to the aged queue, FIFO, which
 * every CPU serves right after the agent's. The order of every other task is untouched.
 * O(queued tasks) per look, which is why it looks only every aged_scan_every periods; the
 * walk takes no rq lock (a BPF timer is an unlocked context for scx_bpf_dsq_move()). A
 * task whose trip began on another CPU may read as a little younger or older (each CPU's
 * clock); that moves the bound by microseconds. */
static __always_inline void rescue_aged_from(u64 dsq, u64 now, struct zernel_shim_stats *s)
{
	struct task_struct *p;

	/* Counted in the map, not in a local: a counter the verifier tracks as a known value
	 * makes every iteration a new state, and the loop is then too long to verify. */
	bpf_for_each(scx_dsq, p, dsq, 0) {
		struct task_ctx *tctx = bpf_task_storage_get(&task_ctxs, p, 0, 0);

		if (tctx && tctx->enq_at < now && now - tctx->enq_at > aged_after_ns &&
		    scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, AGED_DSQ, 0))
			__sync_fetch_and_add(&s->nr_aged, 1);
	}
}

static __always_inline void rescue_aged(void)
{
	struct zernel_shim_stats *s = stat();
	u64 now = zernel_now(), before;
	u32 i;

	if (!s || !bpf_ksym_exists(scx_bpf_dsq_move))
		return;
	before = s->nr_aged;
	rescue_aged_from(SHARED_DSQ, now, s);
	bpf_for(i, 0, nr_cpus)
		rescue_aged_from(i, now, s);
	if (s->nr_aged == before)
		return;
	/* The busy CPUs come to the aged queue at their next dispatch; wake the idle ones. */
	bpf_for(i, 0, nr_cpus)
		scx_bpf_kick_cpu(i, SCX_KICK_IDLE);
}

static int stall_check(void *map, int *key, struct stall_timer *st)
{
	struct zernel_shim_stats *s;
	u64 now = bpf_ktime_get_ns();
	u64 sent = 0, reports = 0;
	u64 consumed = *(volatile __u64 *)&user_consumed.messages;
	u64 consumed_reports = *(volatile __u64 *)&user_consumed.direct;
	u32 zero = 0, i;

	u64 waiting = 0;
	struct zernel_cpu_state *cctx;
	s32 q;

	bpf_for(i, 0, nr_cpus) {
		s = bpf_map_lookup_percpu_elem(&stats, &zero, i);
		if (s) {
			sent += s->nr_queued;
			reports += s->nr_direct - s->nr_direct_unsent;
		}
		q = scx_bpf_dsq_nr_queued(i);
		if (q > 0)
			waiting += q;
		cctx = bpf_map_lookup_elem(&cpu_ctxs, &i);
		if (cctx)
			cctx->nr_queued = q > 0 ? q : 0;
	}
	q = scx_bpf_dsq_nr_queued(SHARED_DSQ);
	if (q > 0)
		waiting += q;
	q = scx_bpf_dsq_nr_queued(FALLBACK_DSQ);
	if (q > 0)
		waiting += q;
	q = scx_bpf_dsq_nr_queued(AGED_DSQ);
	if (q > 0)
		waiting += q;
	/* Messages userspace has not answered yet are waiting tasks too; direct wakeup
	 * reports are not (their tasks run already). Progress is judged on every message: a
	 * dispatcher that reads only reports is consuming (it wakes for them at least once
	 * per sleep timeout, 100 ms, below stall_timeout_ns). */
	if (sent > consumed - consumed_reports)
		waiting += sent - (consumed - consumed_reports);
	nr_waiting = waiting;
	sent += reports;
	if (sent == consumed || consumed != st->last_consumed) {
		/* Nothing pending, or progress since the last look. */
		st->stalled_since = 0;
		bypass = false;
	} else if (!st->stalled_since) {
		st->stalled_since = now;
	} else if (now - st->stalled_since >= stall_timeout_ns && !bypass) {
		bypass = true;
		rescue_pending = true;
		/* Wake a CPU so the rescue does not wait for the next natural dispatch. */
		scx_bpf_kick_cpu(bpf_get_smp_processor_id(), SCX_KICK_PREEMPT);
	}
	st->last_consumed = consumed;
	if (++st->ticks >= aged_scan_every) {
		st->ticks = 0;
		rescue_aged();
	}
	bpf_timer_start(&st->timer, stall_period_ns, 0);
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(zernel_init)
{
	struct stall_timer *st;
	u32 zero = 0, i;
	s32 ret;

	ret = scx_bpf_create_dsq(SHARED_DSQ, -1);
	if (!ret)
		ret = scx_bpf_create_dsq(FALLBACK_DSQ, -1);
	if (!ret)
		ret = scx_bpf_create_dsq(USERSCHED_DSQ, -1);
	if (!ret)
		ret = scx_bpf_create_dsq(AGENT_DSQ, -1);
	if (!ret)
		ret = scx_bpf_create_dsq(AGED_DSQ, -1);
	if (ret)
		return ret;
	bpf_for(i, 0, nr_cpus) {
		ret = scx_bpf_create_dsq(i, -1);
		if (ret)
			return ret;
	}

	st = bpf_map_lookup_elem(&stall_timers, &zero);
	if (!st)
		return -ENOENT;
	bpf_timer_init(&st->timer, &stall_timers, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&st->timer, stall_check);
	return bpf_timer_start(&st->timer, stall_period_ns, 0);
}

void BPF_STRUCT_OPS(zernel_exit, struct scx_exit_info *ei)
{
	if (ei->dump)
		bpf_probe_read_kernel_str(exit_dump, sizeof(exit_dump), ei->dump);
	zernel_record_exit(&exit_info, ei);
}

SEC(".struct_ops.link")
struct sched_ext_ops zernel_ops = {
	.select_cpu = (void *)zernel_select_cpu,
	.enqueue = (void *)zernel_enqueue,
	.dequeue = (void *)zernel_dequeue,
	.dispatch = (void *)zernel_dispatch,
	.runnable = (void *)zernel_runnable,
	.running = (void *)zernel_running,
	.stopping = (void *)zernel_stopping,
	.quiescent = (void *)zernel_quiescent,
	.init_task = (void *)zernel_init_task,
	.exit_task = (void *)zernel_exit_task,
	.disable = (void *)zernel_disable,
	.init = (void *)zernel_init,
	.exit = (void *)zernel_exit,
	.dispatch_max_batch = 128,
	.exit_dump_len = ZERNEL_EXIT_DUMP_LEN,
	.timeout_ms = 5000,
	.name = "zernel",
};
