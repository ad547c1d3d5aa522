#!/usr/bin/env bash
# End-to-end comparison in the VM: EEVDF vs each zernel policy, one boot, interleaved rounds.
# Prints a markdown table (min and median of the rounds, ratio of medians to EEVDF).
# Usage: sudo bench/vm/run.sh [--rounds N] [--cpus N] [--tcg multi|single]
# Multi-threaded TCG by default (parallel vCPUs, closer to hardware); a guest that dies is
# retried once and reported.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 cpus=2 tcg=multi
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --tcg) tcg=$2; shift 2 ;;
    *) echo "bench/vm/run.sh: unknown option $1; fix: see the usage line in $0" >&2; exit 2 ;;
  esac
done
bin=${ZERNEL_BIN:-$top/build/zernel-scheduler}
[ -x "$bin" ] || { echo "bench/vm/run.sh: $bin not built; fix: tools/build.sh" >&2; exit 1; }
log=$(mktemp /tmp/zernel-bench-XXXXXX.log)
for attempt in 1 2; do
  rc=0
  "$top/tests/vm/run-vm.sh" --cpus "$cpus" --mem 2048 --tcg "$tcg" --timeout 1500 \
    --bin "$bin:/usr/bin/zernel-scheduler" --append "ZERNEL_BENCH_ROUNDS=$rounds" \
    -- "$top/bench/vm/compare.sh" >"$log" 2>&1 || rc=$?
  [ $rc -eq 2 ] || break
  echo "bench/vm/run.sh: guest died (attempt $attempt): $(grep 'VM DIED' "$log" | head -n1)" >&2
done
[ $rc -eq 0 ] || { echo "bench/vm/run.sh: VM run failed (rc=$rc), log: $log" >&2; grep -E 'BENCH ERROR|VM DIED' "$log" >&2 || true; exit 1; }
echo "VM: $cpus vCPUs, TCG $tcg, $rounds interleaved rounds, kernel $(sed -n 's/^run-vm: kernel \([^,]*\),.*/\1/p' "$log"); log $log"
python3 - "$log" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"RESULT sched=(\S+) round=(\d+) metric=(\S+) value=(\S*)", line)
    if m and m.group(4):
        rows.setdefault((m.group(3), m.group(1)), []).append(float(m.group(4)))
metrics = ["hackbench_s", "messaging_s", "pipe_us_per_op", "stressng_cpu_ops_per_s", "wakeup_p50_us", "wakeup_p99_us"]
scheds = [s for s in ["eevdf", "fair", "fifo"] if any(k[1] == s for k in rows)]
print("| metric | " + " | ".join(f"{s} min / median" for s in scheds) + " | " + " | ".join(f"{s}/eevdf" for s in scheds[1:]) + " |")
print("|---" * (1 + 2 * len(scheds) - 1) + "|")
for m in metrics:
    cells, ratio = [], []
    base = statistics.median(rows.get((m, "eevdf"), [float("nan")]))
    for s in scheds:
        v = rows.get((m, s), [])
        cells.append(f"{min(v):g} / {statistics.median(v):g}" if v else "-")
        if s != "eevdf":
            ratio.append(f"{statistics.median(v) / base:.2f}x" if v and base else "-")
    print(f"| {m} | " + " | ".join(cells) + " | " + " | ".join(ratio) + " |")
PY
