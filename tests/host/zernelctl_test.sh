#!/usr/bin/env bash
# zernelctl, the real binary, against no scheduler, bad command lines, and a
# control_test_server (a ControlServer with fake status/policy/trace handlers).
# Runs on the host (no sched_ext needed); the other-user check needs root and setpriv.
set -uo pipefail
ctl=$(realpath "$1") server=$(realpath "$2")
fails=0 total=0

tmp=$(mktemp -d); srv_pid=
cleanup() {
  [ -n "$srv_pid" ] && kill -INT "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
sock=$tmp/run/ctl.sock

result() {  # result NAME OK(0/1) DETAIL
  total=$((total + 1))
  if [ "$2" -eq 0 ]; then echo "ok   $1: $3"; else echo "FAIL $1: $3"; fails=$((fails + 1)); fi
}

# check NAME WANT_RC WANT_STDOUT STDERR_PATTERN -- CMD...: the exit code, stdout exactly,
# and stderr either empty (pattern "") or one line that matches and carries a fix.
check() {
  local name=$1 want_rc=$2 want_out=$3 pattern=$4; shift 5
  local out err rc lines ok=0
  out=$("$@" 2>"$tmp/err"); rc=$?
  err=$(cat "$tmp/err"); lines=$(printf '%s' "$err" | grep -c '')
  [ "$rc" -eq "$want_rc" ] || ok=1
  [ "$want_out" = "*" ] || [ "$out" = "$want_out" ] || ok=1
  if [ -z "$pattern" ]; then
    [ -z "$err" ] || ok=1
  elif [ "$lines" -ne 1 ] || ! grep -q -- "$pattern" <<<"$err" || ! grep -q 'fix:' <<<"$err"; then
    ok=1
  fi
  result "$name" "$ok" "rc=$rc (want $want_rc) out=[${out//$'\n'/|}] err=[$err]"
}

# --- No scheduler.
check no-server 1 "" \
  "no zernel-scheduler is running (cannot connect to $sock: No such file or directory); fix: start zernel-scheduler" \
  -- "$ctl" --socket "$sock" status
err=$("$ctl" status 2>&1 >/dev/null)
# The default path, as long as this host runs no scheduler of its own.
if [ ! -S /run/zernel/scheduler.sock ]; then
  [ "$err" = "zernelctl: no zernel-scheduler is running (cannot connect to /run/zernel/scheduler.sock: No such file or directory); fix: start zernel-scheduler" ]
  result default-socket $? "$err"
fi

# --- Usage errors: exit 2, one line, nothing sent.
check no-command 2 "" 'no command given; fix: zernelctl \[--socket PATH\] status | policy <name> | reload' -- "$ctl" --socket "$sock"
check unknown-command 2 "" "unknown command 'bogus'; fix: zernelctl" -- "$ctl" --socket "$sock" bogus
check policy-needs-name 2 "" 'name' -- "$ctl" --socket "$sock" policy
check trace-bad-seconds 2 "" 'seconds' -- "$ctl" --socket "$sock" trace abc /tmp/t
check trace-zero-seconds 2 "" 'seconds' -- "$ctl" --socket "$sock" trace 0 /tmp/t
check trace-space-in-path 2 "" 'spaces' -- "$ctl" --socket "$sock" trace 1 "/tmp/a b"
check extra-argument 2 "" 'not expected' -- "$ctl" --socket "$sock" status now
"$ctl" --help >/dev/null; result help $? "--help exits 0"

# --- Against a server.
"$server" "$sock" >"$tmp/server.log" 2>&1 &
srv_pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/server.log" && break; sleep 0.1; done
grep -q ready "$tmp/server.log"; result server-started $? "$(cat "$tmp/server.log")"

check status 0 $'policy=fair\nattached=1' "" -- "$ctl" --socket "$sock" status
check policy 0 "policy: fair -> fifo" "" -- "$ctl" --socket "$sock" policy fifo
check status-after-policy 0 $'policy=fifo\nattached=1' "" -- "$ctl" --socket "$sock" status
check policy-refused 1 "" "zernelctl: error: unknown policy 'nosuch'; fix: use one of: fair, fifo" \
  -- "$ctl" --socket "$sock" policy nosuch
check unregistered-command 1 "" "unknown command 'reload' (known: policy, status, trace)" \
  -- "$ctl" --socket "$sock" reload
# A relative trace path is the client's: zernelctl makes it absolute for the server.
mkdir "$tmp/cwd"
check trace 0 "wrote $tmp/cwd/t.trace" "" -- bash -c 'cd "$1" && exec "$2" --socket "$3" trace 1 t.trace' _ \
  "$tmp/cwd" "$ctl" "$sock"
[ -s "$tmp/cwd/t.trace" ]; result trace-file-in-client-cwd $? "$(cat "$tmp/cwd/t.trace" 2>&1)"

# A second server on the same socket refuses, and the first keeps answering.
check second-server 1 "" "another zernel-scheduler is running (control socket $sock answers); fix: stop it first" \
  -- "$server" "$sock"
check still-serving 0 $'policy=fifo\nattached=1' "" -- "$ctl" --socket "$sock" status

if command -v setpriv >/dev/null && [ "$(id -u)" -eq 0 ]; then
  check other-user 1 "" "cannot connect to $sock: Permission denied; fix: run zernelctl as root" \
    -- setpriv --reuid=65534 --regid=65534 --clear-groups "$ctl" --socket "$sock" status
else
  result other-user 1 "needs root and setpriv (util-linux) to drop privileges"
fi

# --- A scheduler that does not answer in time: the client gives up with a fix.
kill -INT "$srv_pid"; wait "$srv_pid"; srv_pid=
[ ! -e "$sock" ]; result server-removed-socket $? "$(ls -l "$sock" 2>&1)"
"$server" "$sock" --delay-ms 1500 >"$tmp/server.log" 2>&1 &
srv_pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/server.log" && break; sleep 0.1; done
check timeout 1 "" "did not answer for 'status' within 0.5 s" -- "$ctl" --socket "$sock" --timeout 0.5 status

echo "$((total - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
