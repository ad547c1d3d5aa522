#!/bin/sh
# Guest side of bench/vm/run.sh: EEVDF and each zernel policy on the same workloads, in one
# boot, rounds interleaved (eevdf fair fifo, eevdf fair fifo, ...), so drift hits all alike.
# Prints "RESULT sched=S round=R metric=M value=V" lines for the host to aggregate, and
# leaves raw files in /share (the host's --share directory, when mounted):
#   cyclictest-S-R.txt   the wakeup-latency histogram of each round (non-zero buckets only)
#   runqlat-S.txt        runqlat -P (Debian libbpf-tools) over the latency-agreement window
#   zstatus-S.txt        `zernelctl status` of the scheduler at the end of that window
#
# Latency agreement (after the rounds): for each scheduler, a fresh zernel-scheduler (so its
# cumulative enqueue->running histogram covers only this window), runqlat started before the
# workload and stopped after it, then `zernelctl status`. runqlat times wakeup or preemption
# -> switch-in from the kernel's own tracepoints; it does not trust any of our code.
ROUNDS=${ZERNEL_BENCH_ROUNDS:-3}   # 0: only the latency-agreement block
# Comma-separated on the kernel command line (run-vm.sh --append), POLICY+OPTION = this build
# with -p POLICY --OPTION (an option's A/B in one boot), POLICY@ab = the second
# build (/usr/bin/zernel-ab, run.sh --ab-bin).
SCHEDS=$(echo "${ZERNEL_BENCH_SCHEDS:-eevdf,fair,fifo}" | tr ',' ' ')
NCPU=$(nproc)

wait_state() { i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; }
res() { echo "RESULT sched=$1 round=$2 metric=$3 value=$4"; }

OUT=/tmp/bench-out
mkdir -p /share "$OUT"
if mount -t 9p -o trans=virtio,version=9p2000.L share /share 2>/dev/null; then OUT=/share; fi
echo "bench: raw files in $OUT"

# p50 and p99 (us) of a cyclictest histogram ("NNNNNN CCCCCC" lines; zero padded numbers are
# stripped first because busybox awk reads them as octal).
hist_pct() {
  grep -E '^[0-9]+ [0-9]+' | sed -E 's/^0+([0-9])/\1/; s/ 0+([0-9])/ \1/' |
    awk '{ c[$1] = $2; n += $2; if ($1 > mx) mx = $1 }
         END { s = 0; p50 = -1; p99 = -1
               for (i = 0; i <= mx; i++) { s += c[i]
                 if (p50 < 0 && s >= n * 0.50) p50 = i
                 if (p99 < 0 && s >= n * 0.99) p99 = i }
               print p50, p99 }'
}

# p50 and p99 (us) of runqlat -P output (one log2 histogram per process: "pid = N comm",
# then "  lo -> hi : count |***|"), linear within the bucket that crosses the quantile.
# Prints four numbers: all processes, then only the tasks zernel hands to userspace (not the
# scheduler's own threads, which the shim dispatches itself, nor kernel threads: per-CPU
# ones never leave BPF, and the rest are few).
runqlat_pct() {
  awk 'function kthread(c) { return c ~ /^(kworker|ksoftirqd|rcu|migration|cpuhp|kthreadd|kswapd|kcompactd|khugepaged|watchdog|idle_inject|oom_reaper|kdevtmpfs|khungtaskd|kauditd|writeback|ksmd|irq\/|jbd2|ext4|scsi|kblockd|mm_percpu|pool_workqueue|kintegrity|md|ata_|card|hwrng|napi|netns|zswap|kstrp|xfs|blkcg|edac|devfreq|kpsmoused|ipv6|tpm|watchdogd|krfcomm|inet_frag|psimon|sched_ext|scx|9p|virtio|khvcd|hvc)/ }
       $1 == "pid" && $2 == "=" { comm = $4; mine = (comm != "zernel-schedule" && !kthread(comm)); next }
       $2 == "->" && $4 == ":" { b = $1; lo[b] = $1; hi[b] = $3; all[b] += $5; if (mine) sel[b] += $5
                                 if (!(b in seen)) { seen[b] = 1; order[n++] = b } }
       function q(h, f,   tot, want, s, i, b) { tot = 0; for (i = 0; i < n; i++) tot += h[order[i]]
         if (!tot) return "-"; want = tot * f; s = 0
         for (i = 0; i < n; i++) { b = order[i]; if (h[b] && s + h[b] >= want)
             return sprintf("%.1f", lo[b] + (hi[b] + 1 - lo[b]) * (want - s) / h[b]); s += h[b] } }
       END { print q(all, 0.50), q(all, 0.99), q(sel, 0.50), q(sel, 0.99) }' "$1"
}

start_zernel() { # policy[@ab] log
  case $1 in
    *@ab) zernel-ab -p "${1%@ab}" >"$2" 2>&1 & ;;
    *+*) zernel-scheduler -p "${1%%+*}" "--${1#*+}" >"$2" 2>&1 & ;;
    *) zernel-scheduler -p "$1" >"$2" 2>&1 & ;;
  esac
  ZPID=$!
  wait_state enabled
  [ "$(cat /sys/kernel/sched_ext/state)" = enabled ] || { echo "BENCH ERROR: $1 did not attach"; cat "$2"; exit 1; }
}
stop_zernel() { # policy log
  kill -INT "$ZPID"; wait "$ZPID"
  rc=$?
  [ $rc = 0 ] || { echo "BENCH ERROR: $1 exited $rc"; cat "$2"; exit 1; }
  wait_state disabled
  ZPID=
}

for r in $(seq 1 "$ROUNDS"); do
  for s in $SCHEDS; do
    ZPID=
    [ "$s" = eevdf ] || start_zernel "$s" /tmp/z-$s-$r.log
    t=$(hackbench -g 4 -l 100 2>&1 | sed -n 's/^Time: //p'); res "$s" "$r" hackbench_s "$t"
    t=$(perf bench sched messaging -g 4 -l 100 2>&1 | sed -n 's/.*Total time: *\([0-9.]*\).*/\1/p'); res "$s" "$r" messaging_s "$t"
    t=$(perf bench sched pipe -l 20000 2>&1 | sed -n 's/^ *\([0-9.]*\) usecs\/op.*/\1/p'); res "$s" "$r" pipe_us_per_op "$t"
    # Also the hogs' share of the CPUs, (usr + sys) / (real * NCPU): all a scheduler can give
    # them. Bogo ops per CPU-second follow TCG's speed, which the host's load moves by 10-20%
    # between rounds (37.8-45.9 ops per CPU-second in one boot, both schedulers alike).
    m=$(stress-ng --cpu "$NCPU" --timeout 5s --metrics-brief 2>&1 | grep 'metrc:.* cpu ')
    res "$s" "$r" stressng_cpu_ops_per_s "$(echo "$m" | awk '{print $(NF-1)}')"
    res "$s" "$r" stressng_cpu_share_pct "$(echo "$m" | awk -v n="$NCPU" '$(NF-4) > 0 {printf "%.2f", 100 * ($(NF-3) + $(NF-2)) / ($(NF-4) * n)}')"
    # Wakeup latency of a SCHED_OTHER thread (no -p: RT never goes through sched_ext) while
    # CPU hogs occupy every CPU. The histogram (non-zero buckets) is kept for CDF plots.
    stress-ng --cpu "$NCPU" --timeout 8s >/dev/null 2>&1 &
    HOGS=$!
    sleep 0.5
    cyclictest -q -t 1 -i 1000 -l 3000 -h 100000 2>/dev/null |
      awk '/^[0-9]+ / { if ($2 + 0 > 0) print; next } { print }' >"$OUT/cyclictest-$s-$r.txt"
    set -- $(hist_pct <"$OUT/cyclictest-$s-$r.txt")
    res "$s" "$r" wakeup_p50_us "$1"; res "$s" "$r" wakeup_p99_us "$2"
    kill $HOGS 2>/dev/null; wait $HOGS 2>/dev/null
    [ -z "$ZPID" ] || stop_zernel "$s" /tmp/z-$s-$r.log
  done
done

# Latency agreement: the scheduler's own enqueue->running histogram vs. runqlat, same window.
# Workload: hackbench (wakeups between many tasks) then the wakeup test under CPU hogs
# (slice expiries and preemptions).
for s in $SCHEDS; do
  ZPID=
  [ "$s" = eevdf ] || start_zernel "$s" /tmp/z-lat-$s.log
  # Its stdout is a file, so fully buffered: nothing to wait for in it. Give it 2 s to load
  # and attach (the BPF load takes ~1 s under TCG) and check that it is still running.
  runqlat -P >/tmp/runqlat-$s.txt 2>&1 &
  RQ=$!
  sleep 2
  kill -0 $RQ 2>/dev/null || { echo "BENCH ERROR: runqlat exited"; cat /tmp/runqlat-$s.txt; exit 1; }
  hackbench -g 4 -l 100 >/dev/null 2>&1
  stress-ng --cpu "$NCPU" --timeout 4s >/dev/null 2>&1 &
  HOGS=$!
  sleep 0.3
  cyclictest -q -t 1 -i 1000 -l 2000 >/dev/null 2>&1
  wait $HOGS 2>/dev/null
  kill -INT $RQ; wait $RQ
  cp /tmp/runqlat-$s.txt "$OUT/runqlat-$s.txt"
  set -- $(runqlat_pct /tmp/runqlat-$s.txt)
  res "$s" 0 runqlat_p50_us "$1"; res "$s" 0 runqlat_p99_us "$2"
  res "$s" 0 runqlat_user_p50_us "$3"; res "$s" 0 runqlat_user_p99_us "$4"
  if [ -n "$ZPID" ]; then
    zernelctl status >"$OUT/zstatus-$s.txt" 2>&1
    cat "$OUT/zstatus-$s.txt"
    run=$(sed -n 's/.* run_us=\([0-9.]*\)\/\([0-9.]*\)\/\([0-9.]*\).*/\1 \2 \3/p' "$OUT/zstatus-$s.txt")
    set -- $run
    res "$s" 0 own_run_p50_us "$1"; res "$s" 0 own_run_p99_us "$2"; res "$s" 0 own_run_max_us "$3"
    stop_zernel "$s" /tmp/z-lat-$s.log
  fi
done
echo "BENCH DONE"
