#!/usr/bin/env bash
# Runs guest/ops.sh in the VM, then checks what it left in the shared directory with tools
# we did not write: the /metrics scrape with the python prometheus_client text parser
# (Debian's python3-prometheus-client), the trace with python's json module.
# zernel-switch.sh is a bash script for real systems: the guest gets bash and the
# coreutils/util-linux/procps tools it uses, since busybox lacks date +%N, nohup, flock.
# Usage: ops_test.sh ZERNEL_SCHEDULER ZERNELCTL ZERNEL_TINY
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
share=$(mktemp -d)
trap 'rm -rf "$share"' EXIT
chmod 777 "$share"
"$here/run-vm.sh" --cpus 2 --timeout 600 --share "$share" \
  --bin "$1:/usr/bin/zernel-scheduler" --bin "$2:/usr/bin/zernelctl" --bin "$3:/usr/bin/zernel-tiny" \
  --bin /bin/bash --bin /usr/bin/flock --bin /usr/bin/date --bin /usr/bin/nohup --bin /usr/bin/setsid --bin /usr/bin/env --bin /usr/bin/pgrep --bin "$top/tools/zernel-switch.sh:/usr/bin/zernel-switch.sh" \
  -- "$here/guest/ops.sh" || {
  rc=$?
  # Where the shim had to step in: the stats lines at which bypassed/rescued moved.
  [ -f "$share/zernel.log" ] && awk '/^zernel: / { b = $0; sub(/.*bypassed=/, "", b); sub(/ .*/, "", b)
      if (b != last) print; last = b }' "$share/zernel.log"
  exit $rc
}
py=/usr/bin/python3
"$py" "$top/tests/unit/prom_parse_check.py" "$share/metrics.txt"
for name in zernel_scheduler_tasks zernel_scheduler_decisions_total zernel_scheduler_phase_transitions_total \
            zernel_scheduler_phase_tasks zernel_scheduler_phase_time_pct zernel_scheduler_dispatch_latency_seconds_bucket \
            zernel_scheduler_dispatches_total zernel_scheduler_page_faults_total zernel_scheduler_build_info; do
  grep -q "^$name" "$share/metrics.txt" || { echo "FAIL: /metrics lacks $name"; exit 1; }
done
echo "PASS: /metrics parsed by prometheus_client and has the product's metric names"
grep -E '^zernel_scheduler_(tasks|decisions_total|phase_transitions_total|phase_tasks|phase_time_pct|dispatches_total|page_faults_total|build_info|policy_info|ring_used_bytes)|^zernel_scheduler_dispatch_latency_seconds_(sum|count)' "$share/metrics.txt"
"$py" - "$share/trace.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
ev = t["traceEvents"]
runs = [e for e in ev if e.get("ph") == "X"]
kinds = {}
for e in ev:
    kinds[e.get("name")] = kinds.get(e.get("name"), 0) + 1
assert runs, f"no run slices in the trace ({len(ev)} events: {kinds})"
print(f"PASS: trace is valid JSON: {len(ev)} events, {len(runs)} run slices")
PY
grep 'eevdf gap' "$share/switch.log"
