#!/usr/bin/env bash
# The errors a user meets before anything loads: each must be one line on stderr that says
# how to fix it, with a non-zero exit. Runs on the host (no sched_ext needed).
set -uo pipefail
bin=$1
fails=0

check() {  # check NAME WANT_RC PATTERN -- CMD...
  local name=$1 want_rc=$2 pattern=$3; shift 4
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  local lines; lines=$(printf '%s' "$err" | grep -c '')
  if [ "$rc" -ne "$want_rc" ] || [ "$lines" -ne 1 ] || ! grep -q -- "$pattern" <<<"$err" \
     || ! grep -q 'fix:' <<<"$err"; then
    echo "FAIL $name: rc=$rc (want $want_rc), $lines line(s): $err"
    fails=$((fails + 1))
  else
    echo "ok   $name: $err"
  fi
}

check unknown-flag 2 'not expected: --bogus' -- "$bin" --bogus
check bad-slice 2 'slice-us' -- "$bin" --slice-us 10
check bad-slice-type 2 'slice-us' -- "$bin" --slice-us abc
check bad-policy 2 'policy' -- "$bin" --policy nosuch
if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
  check not-root 1 'must run as root' -- setpriv --reuid=65534 --regid=65534 --clear-groups "$bin"
else
  echo "FAIL not-root: needs root and setpriv (util-linux) to drop privileges"; fails=$((fails + 1))
fi
# A fake sysfs without sched_ext, so this holds on any kernel.
fake=$(mktemp -d); trap 'rm -rf "$fake"' EXIT
check no-sched-ext 1 'has no sched_ext' -- "$bin" --sysfs "$fake"
mkdir -p "$fake/kernel/sched_ext/root"; echo enabled >"$fake/kernel/sched_ext/state"
echo scx_lavd >"$fake/kernel/sched_ext/root/ops"
check other-scheduler 1 'another sched_ext scheduler is loaded: scx_lavd' -- "$bin" --sysfs "$fake"

echo "$((6 + 1 - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
