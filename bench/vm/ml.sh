#!/usr/bin/env bash
# The ML benchmark in the VM: a simulated training job (build/bench/zernel-train-sim) alone,
# and beside `stress-ng --cpu NCPU` hogs under EEVDF, zernel fair and zernel phase, both
# variants (cpu: loader processes; io: loader threads reading null_blk), rounds interleaved,
# one boot (guest side: bench/vm/ml-guest.sh). Prints the markdown table of bench/ml_report.py:
# steps/s min and median, ratio to standalone, data-wait fraction, and for the phase rows the
# phase classification accuracy against the job's ground truth. Keeps the console log as
# OUT/vm-ml.log and the raw files (truth, `zernelctl phases` samples, status) in OUT/raw-ml/.
#
# Usage: bench/vm/ml.sh [--rounds N] [--cpus N] [--tcg single|multi] [--duration S]
#                       [--variants "cpu io"] [--scheds "alone eevdf fair phase"]
#                       (POLICY+OPTION in --scheds: -p POLICY --OPTION, e.g. phase+no-direct-wakeups)
#                       [--phase-policy NAME] [--zernel-args "ARGS"] [--out DIR]
# --phase-policy fair runs the "phase" rows with `-p fair --config bench.toml` (a stand-in
# while the phase policy is missing). --zernel-args: extra zernel-scheduler arguments for the
# fair and phase rows (e.g. "--spin-us 0"). Env: ZERNEL_BIN, ZERNELCTL_BIN, ZERNEL_TRAIN_SIM_BIN.
# A guest that dies is retried once.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 cpus=2 tcg=single out=$top/bench/results duration=15 variants="cpu io"
scheds="alone eevdf fair phase" phase_policy=phase zargs=""
usage="usage: $0 [--rounds N] [--cpus N] [--tcg single|multi] [--duration S] [--variants LIST] [--scheds LIST] [--phase-policy NAME] [--zernel-args ARGS] [--out DIR]"
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "bench/vm/ml.sh: $1 needs a value; fix: $usage" >&2; exit 2; }
  case $1 in
    --rounds) rounds=$2 ;;
    --cpus) cpus=$2 ;;
    --tcg) tcg=$2 ;;
    --duration) duration=$2 ;;
    --variants) variants=$2 ;;
    --scheds) scheds=$2 ;;
    --phase-policy) phase_policy=$2 ;;
    --zernel-args) zargs=$2 ;;
    --out) out=$2 ;;
    *) echo "bench/vm/ml.sh: unknown option $1; fix: $usage" >&2; exit 2 ;;
  esac
  shift 2
done
[[ $rounds =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ ]] ||
  { echo "bench/vm/ml.sh: --rounds and --duration take positive integers; fix: e.g. --rounds 3 --duration 10" >&2; exit 2; }
bin=${ZERNEL_BIN:-$top/build/zernel-scheduler}
ctl=${ZERNELCTL_BIN:-$top/build/zernelctl}
sim=${ZERNEL_TRAIN_SIM_BIN:-$top/build/bench/zernel-train-sim}
for b in "$bin" "$ctl" "$sim"; do
  [ -x "$b" ] || { echo "bench/vm/ml.sh: $b not built; fix: tools/build.sh" >&2; exit 1; }
done
raw=$out/raw-ml
mkdir -p "$raw"
chmod 777 "$raw"
rm -f "$raw"/ml-*.txt
log=$out/vm-ml.log
# Kernel command line words: spaces in the lists travel as commas.
append="ZERNEL_ML_ROUNDS=$rounds ZERNEL_ML_DURATION=$duration ZERNEL_ML_VARIANTS=${variants// /,}"
append+=" ZERNEL_ML_SCHEDS=${scheds// /,} ZERNEL_ML_PHASE_POLICY=$phase_policy"
[ -z "$zargs" ] || append+=" ZERNEL_ML_ZARGS=${zargs// /,}"
# Per run: warm-up 2 s + duration + scheduler start/stop; x2 for slack, + boot.
runs=$((rounds * $(wc -w <<<"$variants") * $(wc -w <<<"$scheds")))
timeout=$((300 + runs * (duration + 15) * 2))
for attempt in 1 2; do
  rc=0
  "$top/tests/vm/run-vm.sh" --cpus "$cpus" --mem 2048 --tcg "$tcg" --timeout "$timeout" --log "$log" \
    --share "$raw" --module null_blk \
    --bin "$bin:/usr/bin/zernel-scheduler" --bin "$ctl:/usr/bin/zernelctl" \
    --bin "$sim:/usr/bin/zernel-train-sim" --file "$top/bench/vm/ml-bench.toml:/etc/zernel/bench.toml" \
    --append "$append" -- "$top/bench/vm/ml-guest.sh" >/dev/null 2>"$log.err" || rc=$?
  [ $rc -eq 2 ] || break
  echo "bench/vm/ml.sh: guest died (attempt $attempt): $(grep 'VM DIED' "$log.err" | head -n1)" >&2
done
if [ "$rc" -ne 0 ]; then
  echo "bench/vm/ml.sh: VM run failed (rc=$rc), log: $log" >&2
  # The lines that say why, if the guest got far enough to print any.
  grep -E 'BENCH ERROR|VM DIED|run-vm:' "$log" "$log.err" >&2 ||
    echo "bench/vm/ml.sh: no BENCH ERROR / VM DIED / run-vm line in $log or $log.err; see the whole log" >&2
  exit 1
fi
# Notes are optional (the guest writes one when a phase sample failed).
if grep -q '^NOTE:' "$log"; then grep -h '^NOTE:' "$log" | sort -u >&2; fi
echo "VM: $cpus vCPUs, TCG $tcg, $rounds interleaved rounds of ${duration} s (after 2 s warm-up), phase rows: -p $phase_policy${zargs:+ $zargs}, kernel $(sed -n 's/^run-vm: kernel \([^,]*\),.*/\1/p' "$log.err"); log $log"
python3 "$top/bench/ml_report.py" "$log" "$raw" --phase-policy "$phase_policy"
