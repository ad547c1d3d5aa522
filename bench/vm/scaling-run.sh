#!/usr/bin/env bash
# Host side of the scaling benchmark: one boot per vCPU count (TCG multi), each running
# bench/vm/scaling.sh (dispatcher CPU time per decision at 10 .. 10,000 tasks).
# Logs go to OUT/vm-scaling-N.log; bench/report.py turns them into the table.
# Usage: bench/vm/scaling-run.sh [--cpus-list "2 4 8"] [--levels "10 120 1000 4000 10000"] [--out DIR]
#                                [--tcg multi|single]
# A guest that dies is retried once; if it dies again the levels it finished still count.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cpus_list="2 4 8" levels="10 120 1000 4000 10000" out=$top/bench/results tcg=multi
while [ $# -gt 0 ]; do
  case $1 in
    --cpus-list) cpus_list=$2; shift 2 ;;
    --levels) levels=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --tcg) tcg=$2; shift 2 ;;
    *) echo "scaling-run.sh: unknown option $1; fix: see the usage line in $0" >&2; exit 2 ;;
  esac
done
bin=${ZERNEL_BIN:-$top/build/zernel-scheduler}
ctl=${ZERNELCTL_BIN:-$top/build/zernelctl}
[ -x "$bin" ] && [ -x "$ctl" ] || { echo "scaling-run.sh: $bin or $ctl not built; fix: tools/build.sh" >&2; exit 1; }
mkdir -p "$out"
failed=''
for n in $cpus_list; do
  log=$out/vm-scaling-$n.log
  for attempt in 1 2; do
    rc=0
    "$top/tests/vm/run-vm.sh" --cpus "$n" --mem 2048 --tcg "$tcg" --timeout 1500 --log "$log" \
      --bin "$bin:/usr/bin/zernel-scheduler" --bin "$ctl:/usr/bin/zernelctl" \
      --append "ZERNEL_SCALE_LEVELS=$(echo $levels | tr " " ,)" \
      -- "$top/bench/vm/scaling.sh" >/dev/null 2>"$log.err" || rc=$?
    [ $rc -eq 2 ] || break
    echo "scaling-run.sh: $n vCPUs: guest died (attempt $attempt): $(grep 'VM DIED' "$log.err" | head -n1)" >&2
  done
  levels_done=$(grep -c '^RESULT level=.* tasks=' "$log") || levels_done=0  # grep -c exits 1 on 0 matches
  echo "scaling-run.sh: $n vCPUs: rc=$rc, $levels_done levels measured, log $log" >&2
  [ "$rc" -eq 0 ] || failed="$failed $n"
done
# The boots that worked keep their data, but a failed boot is a failed run.
if [ -n "$failed" ]; then
  echo "scaling-run.sh: the boot(s) with${failed} vCPUs failed; fix: see their logs in $out" >&2
  exit 1
fi
