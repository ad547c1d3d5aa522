#!/bin/sh
# Guest side of bench/vm/ml.sh: the simulated training job (zernel-train-sim) alone and
# beside CPU hogs, under EEVDF and under zernel, one boot, rounds interleaved:
#   alone  the job alone under EEVDF (its standalone step rate)
#   eevdf  the job + stress-ng --cpu NCPU under EEVDF
#   fair   the job + hogs under zernel-scheduler -p fair
#   phase  the job + hogs under zernel-scheduler -p $PHASE_POLICY --config /etc/zernel/bench.toml
# for each variant (cpu: loader processes doing CPU work; io: loader threads reading a
# null_blk device with O_DIRECT, then CPU work).
# Prints "MLRESULT sched=S round=R variant=V steps=.. seconds=.. steps_per_s=.. data_wait_frac=..
# workers=.. wake_late_us=.. opt_wall_us=.. [reads=.. read_us=..]" lines for the host (the job's
# RESULT line and its STATS line), and leaves in /share (the host's --share directory, when mounted):
#   ml-truth-V-S-R.txt    the job's "<tid> <role>" ground truth
#   ml-phases-V-S-R.txt   `zernelctl phases` every 0.5 s after the warm-up (zernel runs only),
#                         each sample headed "# sample <uptime>"
#   ml-status-V-S-R.txt   `zernelctl status` at the end of a zernel run (ml-status-mid-*: half way)
# Busybox sh: no bash-isms.
ROUNDS=${ZERNEL_ML_ROUNDS:-3}
# Lists come from the kernel command line with commas for spaces.
SCHEDS=$(echo "${ZERNEL_ML_SCHEDS:-alone eevdf fair phase}" | tr , ' ')
VARIANTS=$(echo "${ZERNEL_ML_VARIANTS:-cpu io}" | tr , ' ')
PHASE_POLICY=${ZERNEL_ML_PHASE_POLICY:-phase}
ZARGS=$(echo "${ZERNEL_ML_ZARGS:-}" | tr , ' ')  # extra zernel-scheduler arguments
DURATION=${ZERNEL_ML_DURATION:-15}
WARMUP=${ZERNEL_ML_WARMUP:-2}
# Job parameters, chosen so that alone the job is CPU-limited but does not saturate the 2
# vCPUs (bench/README.md: "ML job"); overridable from the host with commas for spaces.
CPU_ARGS=${ZERNEL_ML_CPU_ARGS:---workers,2,--queue,4,--batch-cpu-us,32000,--step-ms,20,--opt-us,2000}
IO_ARGS=${ZERNEL_ML_IO_ARGS:---workers,2,--queue,4,--read-kb,128,--batch-cpu-us,30000,--step-ms,20,--opt-us,2000}
NULLB_ARGS=${ZERNEL_ML_NULLB:-queue_mode=2,irqmode=2,completion_nsec=5000000,nr_devices=1,gb=1}
NCPU=$(nproc)
CONFIG=/etc/zernel/bench.toml

wait_state() { i=0; while [ "$(cat /sys/kernel/sched_ext/state)" != "$1" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; }
uptime_s() { read -r u _ </proc/uptime; echo "$u"; }

OUT=/tmp/bench-out
mkdir -p /share "$OUT"
if mount -t 9p -o trans=virtio,version=9p2000.L share /share 2>/dev/null; then OUT=/share; fi
echo "ml-bench: raw files in $OUT; $NCPU vCPUs; variants '$VARIANTS', scheds '$SCHEDS', $ROUNDS rounds, ${WARMUP}+${DURATION} s per run"

# null_blk: /init loaded it with the defaults; reload it with ours (I/O completed by a timer
# after completion_nsec, so a read is a real sleep in I/O wait).
case " $VARIANTS " in
  *" io "*)
    ko=$(grep '/null_blk\.ko$' /etc/modules.list | head -n1)
    [ -n "$ko" ] || { echo "BENCH ERROR: null_blk not in /etc/modules.list; fix: run-vm.sh --module null_blk"; exit 1; }
    rmmod null_blk 2>/dev/null
    # shellcheck disable=SC2046 # word splitting of the parameter list is wanted
    insmod "$ko" $(echo "$NULLB_ARGS" | tr , ' ') || { echo "BENCH ERROR: insmod $ko $NULLB_ARGS failed"; exit 1; }
    i=0; while [ ! -b /dev/nullb0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    [ -b /dev/nullb0 ] || { echo "BENCH ERROR: /dev/nullb0 did not appear"; exit 1; }
    echo "ml-bench: null_blk $NULLB_ARGS"
    ;;
esac

ZPID=
start_zernel() { # log args...
  log=$1; shift
  zernel-scheduler "$@" >"$log" 2>&1 &
  ZPID=$!
  wait_state enabled
  [ "$(cat /sys/kernel/sched_ext/state)" = enabled ] || { echo "BENCH ERROR: zernel-scheduler $* did not attach"; cat "$log"; exit 1; }
}
stop_zernel() { # log
  kill -INT "$ZPID"; wait "$ZPID"
  rc=$?
  [ $rc = 0 ] || { echo "BENCH ERROR: zernel-scheduler exited $rc"; cat "$1"; exit 1; }
  wait_state disabled
  ZPID=
}

# Samples `zernelctl phases` every 0.5 s into $1 until the job ($2) exits.
sample_phases() {
  n=0
  while kill -0 "$2" 2>/dev/null; do
    if zernelctl phases >/tmp/phases.out 2>&1; then
      { echo "# sample $(uptime_s)"; cat /tmp/phases.out; } >>"$1"
      n=$((n+1))
    elif [ ! -f /tmp/phases.noted ]; then
      echo "NOTE: zernelctl phases failed (no classification samples): $(head -n1 /tmp/phases.out)"
      : >/tmp/phases.noted
    fi
    sleep 0.5
  done
  echo "ml-bench: $n phase samples in $1"
}

run_one() { # variant sched round
  v=$1 s=$2 r=$3 tag=$1-$2-$3
  args=$CPU_ARGS; [ "$v" = io ] && args=$IO_ARGS
  truth=$OUT/ml-truth-$tag.txt phases=$OUT/ml-phases-$tag.txt
  rm -f "$truth" "$phases"
  case $s in
    alone|eevdf) ;;
    # shellcheck disable=SC2086 # ZARGS is a word list
    fair) start_zernel "/tmp/z-$tag.log" -p fair $ZARGS ;;
    # shellcheck disable=SC2086
    phase) start_zernel "/tmp/z-$tag.log" -p "$PHASE_POLICY" --config "$CONFIG" $ZARGS ;;
    # POLICY+OPTION: the same with --OPTION, an option's A/B in one boot.
    # shellcheck disable=SC2086
    fair+*) start_zernel "/tmp/z-$tag.log" -p fair $ZARGS "--${s#fair+}" ;;
    # shellcheck disable=SC2086
    phase+*) start_zernel "/tmp/z-$tag.log" -p "$PHASE_POLICY" --config "$CONFIG" $ZARGS "--${s#phase+}" ;;
    *) echo "BENCH ERROR: unknown sched '$s'"; exit 1 ;;
  esac
  HOGS=
  if [ "$s" != alone ]; then
    stress-ng --cpu "$NCPU" --timeout $((WARMUP + DURATION + 30))s >/dev/null 2>&1 &
    HOGS=$!
    sleep 0.5
  fi
  # shellcheck disable=SC2046
  CUDA_VISIBLE_DEVICES=0 zernel-train-sim --variant "$v" $(echo "$args" | tr , ' ') \
    --warmup "$WARMUP" --duration "$DURATION" --truth "$truth" --gpu-file /run/zernel/gpu_sim \
    >/tmp/job.out 2>&1 &
  JOB=$!
  SAMPLER=
  if [ -n "$ZPID" ]; then
    ( sleep "$WARMUP"; sample_phases "$phases" "$JOB" ) &
    SAMPLER=$!
    # The scheduler's view of the job half way through (the end-of-run status has the
    # counters but no job any more).
    ( sleep $((WARMUP + DURATION / 2)); zernelctl status >"$OUT/ml-status-mid-$tag.txt" 2>&1 ) &
    MID=$!
  fi
  wait $JOB
  jrc=$?
  [ -z "$SAMPLER" ] || wait "$SAMPLER" "$MID"
  [ -z "$HOGS" ] || { kill "$HOGS" 2>/dev/null; wait "$HOGS" 2>/dev/null; }
  if [ -n "$ZPID" ]; then
    zernelctl status >"$OUT/ml-status-$tag.txt" 2>&1
    stop_zernel "/tmp/z-$tag.log"
  fi
  line=$(grep '^RESULT ' /tmp/job.out)
  if [ $jrc != 0 ] || [ -z "$line" ]; then
    echo "BENCH ERROR: zernel-train-sim --variant $v under $s (round $r) exited $jrc"; cat /tmp/job.out; exit 1
  fi
  stats=$(sed -n 's/^STATS //p' /tmp/job.out)
  echo "ML${line%% *} sched=$s round=$r ${line#RESULT } $stats"
}

for r in $(seq 1 "$ROUNDS"); do
  for v in $VARIANTS; do
    for s in $SCHEDS; do
      run_one "$v" "$s" "$r"
    done
  done
done
echo "BENCH DONE"
