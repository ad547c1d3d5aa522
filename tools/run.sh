#!/usr/bin/env bash
# Sets up and runs zernel-scheduler: installs the dependencies (Debian 12), builds, then
#  - on a kernel with sched_ext: runs zernel-scheduler here, in the foreground, until Ctrl-C;
#  - otherwise: boots Debian's sched_ext kernel in QEMU and runs it there with a demo
#    workload (stress-ng + hackbench), then Ctrl-C's it and shows the kernel falling back.
# Arguments go to zernel-scheduler (default: --stats 2).
#   ZERNEL_SKIP_INSTALL=1  skip apt-get        ZERNEL_DEMO_SECONDS=N  demo length (20)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${ZERNEL_BUILD_DIR:-$top/build}
[ $# -gt 0 ] || set -- --stats 2

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: must run as root (installs packages, loads a BPF scheduler); fix: sudo $0 $*" >&2
  exit 1
fi
[ "${ZERNEL_SKIP_INSTALL:-0}" = 1 ] || "$top/tools/install-deps.sh"
"$top/tools/build.sh"
bin=$build/zernel-scheduler

if [ -d /sys/kernel/sched_ext ]; then
  exec "$bin" "$@"
fi

echo "run.sh: this kernel ($(uname -r)) has no sched_ext; booting Debian's sched_ext kernel in QEMU"
args=$(mktemp); trap 'rm -f "$args"' EXIT
printf '%s\n' "$*" >"$args"
exec "$top/tests/vm/run-vm.sh" --cpus 2 --timeout 600 \
  --bin "$bin:/usr/bin/zernel-scheduler" --file "$args:/etc/zernel/args" \
  --append "ZERNEL_DEMO_SECONDS=${ZERNEL_DEMO_SECONDS:-20}" \
  -- "$top/tests/vm/guest/demo.sh"
