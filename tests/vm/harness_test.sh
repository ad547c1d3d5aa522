#!/usr/bin/env bash
# The VM harness's own contract (run-vm.sh's exit codes), which every VM test's verdict
# rests on: a passing guest script is 0, a failing one 1, a kernel crash 2, and a boot that
# never reaches init is booted once more and then reported as 2 (forced here with a boot
# limit shorter than any boot).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
failed=0
expect() {  # expect RC PATTERN... -- RUN-VM ARGS...: each PATTERN on some line of its output
  local want=$1 patterns=() out rc ok=1 p
  shift
  while [ "$1" != -- ]; do patterns+=("$1"); shift; done
  shift
  out=$("$here/run-vm.sh" --cpus 1 --mem 512 "$@" 2>&1); rc=$?
  [ "$rc" = "$want" ] || ok=0
  for p in "${patterns[@]}"; do grep -qE "$p" <<<"$out" || ok=0; done
  if [ $ok = 1 ]; then
    echo "PASS: run-vm.sh $* -> rc=$rc, says ${patterns[*]}"
  else
    echo "FAIL: run-vm.sh $* -> rc=$rc (want $want), or one of ${patterns[*]} not said; its last lines:"
    tail -n 5 <<<"$out"
    failed=1
  fi
}
expect 0 'guest script passed' -- --timeout 120 -- "$here/guest/smoke.sh"
expect 1 'guest script failed \(rc=3\)' -- --timeout 120 -- "$here/guest/exit3.sh"
expect 2 'VM DIED: kernel (panic|BUG|Oops)' -- --timeout 120 -- "$here/guest/crash.sh"
expect 2 'no init after 1s \(.*booting again' 'VM DIED: no init after 1s, twice' -- --timeout 120 --boot-timeout 1 -- "$here/guest/smoke.sh"
exit $failed
