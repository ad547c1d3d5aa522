#!/bin/sh
# The demo that tools/run.sh boots when the host kernel has no sched_ext: zernel-scheduler
# with the user's flags, a mixed workload under it, then Ctrl-C (SIGINT) and the kernel back
# on its default scheduler.
Z=${ZERNEL_BIN:-zernel-scheduler}
ARGS=$(cat /etc/zernel/args 2>/dev/null)
SECS=${ZERNEL_DEMO_SECONDS:-20}
# shellcheck disable=SC2086  # the user's flags, split as a shell would
$Z $ARGS &
ZPID=$!
i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != enabled ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
echo "demo: sched_ext state=$(cat /sys/kernel/sched_ext/state) ops=$(cat /sys/kernel/sched_ext/root/ops 2>/dev/null)"
kill -0 $ZPID 2>/dev/null || { wait $ZPID; exit $?; }
echo "demo: running stress-ng (cpu, fork, io, switch) and hackbench for ${SECS}s under zernel"
stress-ng --cpu 2 --fork 1 --io 1 --switch 1 --timeout "${SECS}s" --metrics-brief 2>&1 | sed -u 's/^/demo: /' &
WPID=$!
end=$(( $(date +%s) + SECS ))
while [ "$(date +%s)" -lt "$end" ]; do hackbench -g 2 -l 50 2>&1 | sed -n 's/^Time:/demo: hackbench time:/p'; done
wait $WPID
echo "demo: sending SIGINT (Ctrl-C) to zernel-scheduler"
kill -INT $ZPID
wait $ZPID
rc=$?
echo "demo: zernel-scheduler exited $rc; sched_ext state=$(cat /sys/kernel/sched_ext/state)"
exit $rc
