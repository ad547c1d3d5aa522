#!/usr/bin/env bash
# Installs the dependencies (Debian 12), builds, and runs every test through CTest:
# unit (GoogleTest), host (real BPF on this kernel, CLI errors) and vm (the real sched_ext
# kernel in QEMU). Extra arguments go to ctest (e.g. -L unit, -R vm_e2e).
#   ZERNEL_SKIP_INSTALL=1  skip apt-get
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${ZERNEL_BUILD_DIR:-$top/build}
if [ "$(id -u)" -ne 0 ]; then
  echo "test.sh: must run as root (installs packages; host tests load BPF); fix: sudo $0 $*" >&2
  exit 1
fi
[ "${ZERNEL_SKIP_INSTALL:-0}" = 1 ] || "$top/tools/install-deps.sh"
"$top/tools/build.sh"
# The kernel download is part of setup, not of a test's time budget.
"$top/tests/vm/fetch-kernel.sh" >/dev/null
ctest --test-dir "$build" --output-on-failure "$@"
