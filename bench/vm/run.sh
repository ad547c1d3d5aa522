#!/usr/bin/env bash
# End-to-end comparison in the VM: EEVDF vs each zernel policy, one boot, interleaved rounds
# (bench/vm/compare.sh), plus the latency-agreement block (the scheduler's own
# enqueue->running histogram next to runqlat from Debian's libbpf-tools).
# Prints markdown tables (bench/report.py compare): min and median of the rounds, ratio of
# medians to EEVDF. Keeps the console log as OUT/vm-compare.log and the guest's raw files
# (cyclictest histograms, runqlat, zernelctl status) in OUT/raw/.
# Usage: bench/vm/run.sh [--rounds N] [--cpus N] [--tcg multi|single] [--out DIR] [--log-name F]
#                        [--scheds "eevdf fair fifo"] [--ab-bin PATH]
# --ab-bin puts a second zernel-scheduler build in the same boot (an A/B of two commits,
# drift and all): a scheduler named POLICY@ab in --scheds runs it with -p POLICY, e.g.
#   bench/vm/run.sh --rounds 5 --ab-bin /tmp/old/zernel-scheduler --scheds "eevdf fair fair@ab" --out /tmp/ab
# POLICY+OPTION runs this build with -p POLICY --OPTION, an A/B of an option in one boot, e.g.
#   bench/vm/run.sh --scheds "eevdf fair fair+no-direct-wakeups"
# --rounds 0 runs only the latency-agreement block (use --log-name vm-latency.log to keep the
# rounds' log; bench/report.py reads both).
# Multi-threaded TCG by default (parallel vCPUs, closer to hardware); a guest that dies is
# retried once and reported. Needs /usr/sbin/runqlat (apt-get install libbpf-tools).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rounds=3 cpus=2 tcg=multi out=$top/bench/results log_name=vm-compare.log scheds="eevdf fair fifo" ab_bin=''
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --cpus) cpus=$2; shift 2 ;;
    --tcg) tcg=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --log-name) log_name=$2; shift 2 ;;
    --scheds) scheds=$2; shift 2 ;;
    --ab-bin) ab_bin=$2; shift 2 ;;
    *) echo "bench/vm/run.sh: unknown option $1; fix: see the usage line in $0" >&2; exit 2 ;;
  esac
done
bin=${ZERNEL_BIN:-$top/build/zernel-scheduler}
ctl=${ZERNELCTL_BIN:-$top/build/zernelctl}
[ -x "$bin" ] && [ -x "$ctl" ] || { echo "bench/vm/run.sh: $bin or $ctl not built; fix: tools/build.sh" >&2; exit 1; }
ab_args=()
if [ -n "$ab_bin" ]; then
  [ -x "$ab_bin" ] || { echo "bench/vm/run.sh: --ab-bin $ab_bin is not an executable; fix: pass a built zernel-scheduler" >&2; exit 2; }
  ab_args=(--bin "$ab_bin:/usr/bin/zernel-ab")
fi
for s in $scheds; do
  case $s in
    eevdf|fair|fifo|phase) ;;
    fair@ab|fifo@ab|phase@ab) [ -n "$ab_bin" ] || { echo "bench/vm/run.sh: --scheds names $s but no --ab-bin; fix: add --ab-bin PATH" >&2; exit 2; } ;;
    fair+[a-z]*|fifo+[a-z]*|phase+[a-z]*) ;;
    *) echo "bench/vm/run.sh: unknown scheduler '$s' in --scheds; fix: use eevdf, fair, fifo, phase, POLICY@ab or POLICY+OPTION" >&2; exit 2 ;;
  esac
done
case " $scheds " in *" eevdf "*) ;; *) echo "bench/vm/run.sh: --scheds must include eevdf (every ratio is to it)" >&2; exit 2 ;; esac
[ -x /usr/sbin/runqlat ] || { echo "bench/vm/run.sh: /usr/sbin/runqlat missing; fix: apt-get install libbpf-tools (or tools/install-deps.sh)" >&2; exit 1; }
mkdir -p "$out/raw"
chmod 777 "$out/raw"
[ "$rounds" -eq 0 ] || rm -f "$out"/raw/cyclictest-*.txt
rm -f "$out"/raw/runqlat-*.txt "$out"/raw/zstatus-*.txt
log=$out/$log_name
for attempt in 1 2; do
  rc=0
  "$top/tests/vm/run-vm.sh" --cpus "$cpus" --mem 2048 --tcg "$tcg" --timeout 1800 --log "$log" \
    --share "$out/raw" --bin "$bin:/usr/bin/zernel-scheduler" --bin "$ctl:/usr/bin/zernelctl" \
    --bin /usr/sbin/runqlat "${ab_args[@]}" --append "ZERNEL_BENCH_ROUNDS=$rounds ZERNEL_BENCH_SCHEDS=${scheds// /,}" \
    -- "$top/bench/vm/compare.sh" >/dev/null 2>"$log.err" || rc=$?
  [ $rc -eq 2 ] || break
  echo "bench/vm/run.sh: guest died (attempt $attempt): $(grep 'VM DIED' "$log.err" | head -n1)" >&2
done
[ $rc -eq 0 ] || { echo "bench/vm/run.sh: VM run failed (rc=$rc), log: $log" >&2; grep -E 'BENCH ERROR|VM DIED' "$log" "$log.err" >&2 || true; exit 1; }
echo "VM: $cpus vCPUs, TCG $tcg, $rounds interleaved rounds, kernel $(sed -n 's/^run-vm: kernel \([^,]*\),.*/\1/p' "$log.err"); log $log"
python3 "$top/bench/report.py" compare "$out"
