#!/bin/sh
# Guest side of bench/vm/run.sh: EEVDF and each zernel policy on the same workloads, in one
# boot, rounds interleaved (eevdf fair fifo, eevdf fair fifo, ...), so drift hits all alike.
# Prints "RESULT sched=S round=R metric=M value=V" lines for the host to aggregate.
ROUNDS=${ZERNEL_BENCH_ROUNDS:-3}
SCHEDS=${ZERNEL_BENCH_SCHEDS:-eevdf fair fifo}
NCPU=$(nproc)

wait_state() { i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; }
res() { echo "RESULT sched=$1 round=$2 metric=$3 value=$4"; }

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

for r in $(seq 1 "$ROUNDS"); do
  for s in $SCHEDS; do
    ZPID=
    if [ "$s" != eevdf ]; then
      zernel-scheduler -p "$s" >/tmp/z-$s-$r.log 2>&1 &
      ZPID=$!
      wait_state enabled
      [ "$(cat /sys/kernel/sched_ext/state)" = enabled ] || { echo "BENCH ERROR: $s did not attach"; cat /tmp/z-$s-$r.log; exit 1; }
    fi
    t=$(hackbench -g 4 -l 100 2>&1 | sed -n 's/^Time: //p'); res "$s" "$r" hackbench_s "$t"
    t=$(perf bench sched messaging -g 4 -l 100 2>&1 | sed -n 's/.*Total time: *\([0-9.]*\).*/\1/p'); res "$s" "$r" messaging_s "$t"
    t=$(perf bench sched pipe -l 20000 2>&1 | sed -n 's/^ *\([0-9.]*\) usecs\/op.*/\1/p'); res "$s" "$r" pipe_us_per_op "$t"
    t=$(stress-ng --cpu "$NCPU" --timeout 5s --metrics-brief 2>&1 | awk '/metrc:.* cpu /{print $(NF-1)}'); res "$s" "$r" stressng_cpu_ops_per_s "$t"
    # Wakeup latency of a SCHED_OTHER thread (no -p: RT never goes through sched_ext) while
    # CPU hogs occupy every CPU.
    stress-ng --cpu "$NCPU" --timeout 8s >/dev/null 2>&1 &
    HOGS=$!
    sleep 0.5
    set -- $(cyclictest -q -t 1 -i 1000 -l 3000 -h 100000 2>/dev/null | hist_pct)
    res "$s" "$r" wakeup_p50_us "$1"; res "$s" "$r" wakeup_p99_us "$2"
    kill $HOGS 2>/dev/null; wait $HOGS 2>/dev/null
    if [ -n "$ZPID" ]; then
      kill -INT $ZPID; wait $ZPID
      rc=$?
      [ $rc = 0 ] || { echo "BENCH ERROR: $s exited $rc"; cat /tmp/z-$s-$r.log; exit 1; }
      wait_state disabled
    fi
  done
done
echo "BENCH DONE"
