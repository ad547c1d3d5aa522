#!/usr/bin/env bash
# Writes vmlinux.h for the BPF build: from this machine's BTF when its kernel has
# sched_ext, otherwise from the test kernel that tests/vm/fetch-kernel.sh downloads.
# An explicit BTF file wins: ZERNEL_VMLINUX_BTF=/path/to/vmlinux.
# Usage: gen-vmlinux-h.sh BPFTOOL OUT
set -euo pipefail
bpftool=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)

if [ -n "${ZERNEL_VMLINUX_BTF:-}" ]; then
  btf=$ZERNEL_VMLINUX_BTF
elif [ -d /sys/kernel/sched_ext ] && [ -r /sys/kernel/btf/vmlinux ]; then
  btf=/sys/kernel/btf/vmlinux
else
  kdir=$("$here/../tests/vm/fetch-kernel.sh")
  btf=$kdir/vmlinux
fi
"$bpftool" btf dump file "$btf" format c > "$out.tmp"
if ! grep -q 'struct sched_ext_ops {' "$out.tmp"; then
  echo "gen-vmlinux-h: $btf has no sched_ext (struct sched_ext_ops missing); fix: set ZERNEL_VMLINUX_BTF to a sched_ext kernel's vmlinux" >&2
  rm -f "$out.tmp"; exit 1
fi
mv "$out.tmp" "$out"
echo "vmlinux.h from $btf"
