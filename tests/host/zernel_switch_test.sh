#!/usr/bin/env bash
# tools/zernel-switch.sh against a fake sched_ext: a sysfs directory, fake schedulers
# (scripts that "attach" by writing it) and a fake kernel loop that, like the real one,
# disables sched_ext when the attached scheduler's process is gone. No kernel support
# needed; never touches the real /sys or SysRq. Needs root (the script insists on it).
set -uo pipefail
switch=$(realpath "$1")
fails=0 total=0

tmp=$(mktemp -d)
export ZERNEL_SCX_DIR=$tmp/scx ZERNEL_RUN_DIR=$tmp/run ZERNEL_SYSRQ=$tmp/sysrq
export ZERNEL_STOP_TIMEOUT_MS=1000 ZERNEL_START_TIMEOUT_MS=3000 FAKE_SCX=$tmp/scx
mkdir -p "$tmp/scx" "$tmp/bin"
echo disabled >"$tmp/scx/state"

# A fake scheduler: attaches after a moment, runs until SIGINT (or, as scx_stubborn,
# ignores it), or fails to load as scx_broken. The ops name is the binary's minus scx_.
# #!/bin/bash, not env: through env the process would be named bash, not scx_fake.
fake='#!/bin/bash
name=${0##*/}; name=${name#scx_}; [ "$name" = zernel-scheduler ] && name=zernel
sleep 0.1
[ "$name" = broken ] && { echo "fake: failed to load the BPF program"; exit 3; }
[ "$name" = stubborn ] && trap "" INT || trap "exit 0" INT
mkdir -p "$FAKE_SCX/root"; echo "$name" >"$FAKE_SCX/root/ops"; echo $$ >"$FAKE_SCX/owner"
echo enabled >"$FAKE_SCX/state"
echo "fake $name attached with args: $*"
while :; do sleep 0.02; done'
for b in scx_fake scx_stubborn scx_broken zernel-scheduler; do
  printf '%s\n' "$fake" >"$tmp/bin/$b"; chmod +x "$tmp/bin/$b"
done
export ZERNEL_BIN=$tmp/bin/zernel-scheduler

# The fake kernel: an attached scheduler whose process died is detached.
(
  while :; do
    # State before owner: a fake writes its owner before "enabled", so this never pairs a
    # new scheduler's state with the previous one's pid. A zombie counts as gone: the
    # kernel detaches when the files close, before the process is reaped.
    [ "$(cat "$tmp/scx/state")" = enabled ] && owner=$(cat "$tmp/scx/owner" 2>/dev/null) &&
    if [ -z "$owner" ] || ! kill -0 "$owner" 2>/dev/null ||
       [ "$(sed 's/^[0-9]* (.*) \(.\) .*/\1/' "/proc/$owner/stat" 2>/dev/null)" = Z ]; then
      rm -rf "$tmp/scx/root"; echo disabled >"$tmp/scx/state"
    fi
    sleep 0.02
  done
) &
kernel_pid=$!
cleanup() {
  kill "$kernel_pid" 2>/dev/null
  for b in scx_fake scx_stubborn zernel-schedule; do pkill -KILL -x "$b" -P 1 2>/dev/null; done
  [ -f "$tmp/scx/owner" ] && kill -KILL "$(cat "$tmp/scx/owner")" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

result() {  # result NAME OK(0/1) DETAIL
  total=$((total + 1))
  if [ "$2" -eq 0 ]; then echo "ok   $1: $3"; else echo "FAIL $1: $3"; fails=$((fails + 1)); fi
}
# check NAME WANT_RC STDOUT_PATTERN STDERR_PATTERN -- CMD...; a non-empty stderr pattern
# must match the last stderr line, which must carry a fix.
check() {
  local name=$1 want_rc=$2 out_pat=$3 err_pat=$4; shift 5
  local out err rc ok=0
  out=$("$@" 2>"$tmp/err"); rc=$?
  err=$(cat "$tmp/err")
  [ "$rc" -eq "$want_rc" ] || ok=1
  [ -z "$out_pat" ] || grep -q -- "$out_pat" <<<"$out" || ok=1
  if [ -n "$err_pat" ]; then
    tail -n1 <<<"$err" | grep -q -- "$err_pat" || ok=1
    tail -n1 <<<"$err" | grep -q 'fix:' || ok=1
  fi
  result "$name" "$ok" "rc=$rc (want $want_rc) out=[${out//$'\n'/|}] err=[${err//$'\n'/|}]"
}
state_is() { [ "$(cat "$tmp/scx/state")" = "$1" ]; result "$2" $? "state $(cat "$tmp/scx/state"), ops $(cat "$tmp/scx/root/ops" 2>/dev/null)"; }

check usage-none 2 "" "no target given" -- "$switch"
check usage-bogus 2 "" "unknown target 'bogus'" -- "$switch" bogus
check missing-binary 1 "" "scheduler binary '/nonexistent/scx_x' not found" -- "$switch" exec /nonexistent/scx_x
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
  check not-root 1 "" "must run as root" -- setpriv --reuid=65534 --regid=65534 --clear-groups "$switch" eevdf
fi
check eevdf-to-eevdf 0 "switch: eevdf -> eevdf: no sched_ext scheduler was running" "" -- "$switch" eevdf

check eevdf-to-fake 0 "switch: eevdf -> fake: attached in [0-9]* ms" "" -- "$switch" exec "$tmp/bin/scx_fake" --x 1
state_is enabled fake-attached
grep -q "args: --x 1" "$tmp/run/scx_fake.log"; result fake-log $? "$(cat "$tmp/run/scx_fake.log")"

check fake-to-zernel 0 "switch: fake -> zernel: eevdf gap [0-9]* ms" "" -- "$switch" zernel --stats 1
! pgrep -r R,S,D -x scx_fake >/dev/null; result fake-stopped $? "scx_fake pids (zombies do not count): $(pgrep -x scx_fake)"
state_is enabled zernel-attached

check zernel-to-broken 1 "stopped zernel" \
  "scx_broken exited with status 3 before attaching (last log line: fake: failed to load the BPF program); fix: see $tmp/run/scx_broken.log; the machine is on EEVDF (state disabled); to go back: zernel-switch.sh exec .*zernel-scheduler --stats 1" \
  -- "$switch" exec "$tmp/bin/scx_broken"
state_is disabled broken-left-eevdf

"$switch" exec "$tmp/bin/scx_stubborn" >/dev/null 2>&1
check stubborn-escalates 0 "switch: stubborn -> eevdf: detached in [0-9]* ms" "" -- "$switch" eevdf
grep -q "did not detach within 1000 ms of SIGINT; sending SIGKILL" "$tmp/err"; result stubborn-sigkill $? "$(cat "$tmp/err")"
[ ! -e "$tmp/sysrq" ]; result no-sysrq-needed $? "SysRq-S was not needed"

# Loaded, but no process to stop: refuse, and leave it loaded.
mkdir -p "$tmp/scx/root"; echo ghost >"$tmp/scx/root/ops"; echo "$kernel_pid" >"$tmp/scx/owner"
echo enabled >"$tmp/scx/state"
check ghost 1 "" "sched_ext scheduler 'ghost' is loaded but its process was not found" -- "$switch" zernel
state_is enabled ghost-untouched
rm -f "$tmp/scx/owner"; echo disabled >"$tmp/scx/state"

ZERNEL_SCX_DIR=$tmp/none check no-sched-ext 1 "" "has no sched_ext" -- "$switch" zernel
ZERNEL_SCX_DIR=$tmp/none check no-sched-ext-eevdf 0 "this kernel has no sched_ext" "" -- "$switch" eevdf

echo "$((total - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
