#!/bin/sh
# Smoke test of the VM harness itself: sched_ext present, topology as requested, the
# benchmark binaries and their shared libraries work in the guest.
set -e
echo "sched_ext state: $(cat /sys/kernel/sched_ext/state)"
echo "nproc: $(nproc)"
echo "nodes: $(ls /sys/devices/system/node | tr '\n' ' ')"
stress-ng --cpu 2 --timeout 3s --metrics-brief
hackbench -g 2 -l 50
perf --version
cyclictest -q -l 200 -i 1000
exit 0
