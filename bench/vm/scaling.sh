#!/bin/sh
# Guest side of bench/vm/scaling-run.sh: the dispatcher's CPU cost per task as the number of
# tasks grows. For each level a fresh `zernel-scheduler -p fair`; around the workload we read
#   ticks: utime+stime of its main thread (the dispatcher) from /proc/PID/task/PID/stat
#          (clock ticks, USER_HZ = 100 on x86)
#   exec_ns: the same thread's CPU time in ns from /proc/PID/task/PID/schedstat (cross-check)
#   user:  decisions applied (`user=` of `zernelctl status`); batches: its `batches=`
#   wall:  seconds of the workload (/proc/uptime)
# and print "RESULT level=L tasks=T ncpu=N ticks=.. exec_ns=.. user=.. wall=.." lines.
#
# Levels (ZERNEL_SCALE_LEVELS, comma separated, default 10,120,1000,4000,10000):
#   10     stress-ng --cpu 10 for 5 s: 10 always-runnable hogs (slice expiries)
#   N>10   hackbench -T (threads: 10,000 forked processes do not fit in 2 GiB) with N/40
#          groups of 20 senders + 20 receivers, loops chosen for ~400k messages in all
# The largest level runs last: if it takes the guest down, the earlier lines are in the log.
LEVELS=$(echo "${ZERNEL_SCALE_LEVELS:-10,120,1000,4000,10000}" | tr , " ")
NCPU=$(nproc)
ulimit -n 65536 2>/dev/null || ulimit -n 32768 2>/dev/null

wait_state() { i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/task/$1/stat"; }   # comm has no spaces
exec_ns() { awk '{ print $1 }' "/proc/$1/task/$1/schedstat"; }
# "user batches" from one status line.
status_counts() { zernelctl status | sed -n 's/.* user=\([0-9]*\) .* batches=\([0-9]*\) .*/\1 \2/p'; }
uptime_s() { awk '{ print $1 }' /proc/uptime; }

echo "scaling: $NCPU vCPUs, $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB, levels $LEVELS"
for L in $LEVELS; do
  zernel-scheduler -p fair >/tmp/z-scale-$L.log 2>&1 &
  ZPID=$!
  wait_state enabled
  [ "$(cat /sys/kernel/sched_ext/state)" = enabled ] || { echo "BENCH ERROR: did not attach"; cat /tmp/z-scale-$L.log; exit 1; }
  sleep 0.5
  t0=$(ticks $ZPID); e0=$(exec_ns $ZPID); set -- $(status_counts); u0=$1 b0=$2; w0=$(uptime_s)
  if [ "$L" -le 10 ]; then
    stress-ng --cpu "$L" --timeout 5s >/tmp/w-$L.log 2>&1; wrc=$?
  else
    g=$((L / 40)); [ $g -ge 1 ] || g=1
    loops=$((1000 / g)); [ $loops -ge 4 ] || loops=4
    hackbench -T -g $g -l $loops >/tmp/w-$L.log 2>&1; wrc=$?
  fi
  t1=$(ticks $ZPID); e1=$(exec_ns $ZPID); set -- $(status_counts); u1=$1 b1=$2; w1=$(uptime_s)
  tail -n 2 /tmp/w-$L.log
  kill -INT $ZPID; wait $ZPID; zrc=$?
  wait_state disabled
  if [ $wrc -ne 0 ] || [ $zrc -ne 0 ] || [ -z "$u1" ]; then
    echo "RESULT level=$L failed workload_rc=$wrc scheduler_rc=$zrc"
    cat /tmp/z-scale-$L.log
    continue
  fi
  echo "RESULT level=$L tasks=$L ncpu=$NCPU ticks=$((t1 - t0)) exec_ns=$((e1 - e0)) user=$((u1 - u0)) batches=$((b1 - b0)) wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')"
  free -m | sed -n 2p
done
echo "BENCH DONE"
