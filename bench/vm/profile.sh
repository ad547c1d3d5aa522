#!/bin/sh
# Where the dispatcher's CPU goes in the VM (optional; not part of run-all.sh):
#   tests/vm/run-vm.sh --cpus 2 --tcg multi --bin build/zernel-scheduler:/usr/bin/zernel-scheduler \
#     --bin build/zernelctl:/usr/bin/zernelctl -- bench/vm/profile.sh
# perf record (cpu-clock) of the zernel-scheduler main thread only, while hackbench -T runs
# 1,000 threads; prints the flat profile (kernel + user symbols) and the batch counters.
echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null
echo -1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null
zernel-scheduler -p fair >/tmp/z.log 2>&1 &
ZPID=$!
i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != enabled ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.5
zernelctl status | head -n1
perf record -e cpu-clock -F 2000 -g -t $ZPID -o /tmp/perf.data >/tmp/perf-rec.log 2>&1 &
PP=$!
sleep 0.5
hackbench -T -g 25 -l 40
kill -INT $PP; wait $PP
zernelctl status | head -n1
echo "== flat profile (self), dispatcher thread"
perf report -i /tmp/perf.data --no-children --stdio --sort sym -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 40
echo "== by DSO"
perf report -i /tmp/perf.data --no-children --stdio --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 10
kill -INT $ZPID; wait $ZPID
