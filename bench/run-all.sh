#!/usr/bin/env bash
# The whole benchmark suite, one command (as root, on the host):
#   sudo bench/run-all.sh
# 1. builds (tools/build.sh)
# 2. decision path: build/bench/decision_bench, 5 repetitions        -> decision.json
# 3. transport on this kernel: build/bench/transport_bench, 3 runs   -> transport.md
# 4. EEVDF vs. zernel in one VM boot, 3 interleaved rounds, plus the
#    latency agreement with runqlat (bench/vm/run.sh)                -> vm-compare.log, raw/
# 5. dispatcher scaling, one boot per vCPU count (bench/vm/scaling-run.sh) -> vm-scaling-N.log
# 6. tables (bench/report.py all) and plots (bench/plots.sh)         -> RESULTS.md, *.svg
# Everything lands in bench/results/ (or --out DIR). Takes 25-40 minutes on 2 cores.
# Usage: bench/run-all.sh [--out DIR] [--rounds N] [--cpus-list "2 4 8"] [--skip-vm]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/bench/results rounds=3 cpus_list="2 4 8" levels="10 120 1000 4000 10000" skip_vm=
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --cpus-list) cpus_list=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --skip-vm) skip_vm=1; shift ;;
    *) echo "run-all.sh: unknown option $1; fix: see the usage line in $0" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run-all.sh: loads BPF programs and boots VMs: run as root; fix: sudo $0" >&2; exit 1; }
for t in gnuplot python3 /usr/sbin/runqlat qemu-system-x86_64; do
  command -v "$t" >/dev/null || { echo "run-all.sh: $t missing; fix: sudo tools/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$out"
step() { echo "== $(date +%T) $*" >&2; }

step "build"
"$top/tools/build.sh"
build=${ZERNEL_BUILD_DIR:-$top/build}
{
  echo "host: $(nproc) CPUs, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n1), kernel $(uname -r)"
  echo "git: $(git -C "$top" rev-parse --short HEAD 2>/dev/null)$(git -C "$top" diff --quiet 2>/dev/null || echo ' (+ local changes)')"
  echo "date: $(date -u +%FT%TZ)"
  echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/environment.txt"

step "decision path (decision_bench, 5 repetitions)"
"$build/bench/decision_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out/decision.json" --benchmark_out_format=json >"$out/decision.txt" 2>&1

step "transport (transport_bench, 3 runs)"
"$build/bench/transport_bench" --reps 3 >"$out/transport.md"

# A failed VM part does not stop the others (their tables are still worth having), but it
# makes the whole run fail at the end.
failed=''
if [ -z "$skip_vm" ]; then
  step "VM comparison ($rounds rounds)"
  "$top/bench/vm/run.sh" --rounds "$rounds" --out "$out" || failed="$failed vm-comparison"
  step "VM scaling (vCPUs: $cpus_list)"
  "$top/bench/vm/scaling-run.sh" --cpus-list "$cpus_list" --levels "$levels" --out "$out" ||
    failed="$failed vm-scaling"
fi

step "tables and plots"
python3 "$top/bench/report.py" all "$out"
"$top/bench/plots.sh" "$out"
if [ -n "$failed" ]; then
  echo "run-all.sh: failed:$failed; the tables hold what did run; fix: see $out/vm-*.log" >&2
  exit 1
fi
step "done: $out/RESULTS.md"
